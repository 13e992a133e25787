#!/usr/bin/env python3
"""Turns the TYPE_EXISTS (kind 8) CO-RE relocations of types whose name has
`___tm` into TYPE_MATCHES (kind 12), in place, in a BPF object built by clang.

clang 14 cannot compile bpf_core_type_matches() (clang 15 can); the two
builtins differ only in that kind number, so the result is what clang 15
emits. Usage: core_kind12.py OBJECT.o
"""
import struct
import sys

TYPE_EXISTS, TYPE_MATCHES = 8, 12


def sections(elf):
    shoff, = struct.unpack_from("<Q", elf, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", elf, 0x3A)
    heads = [struct.unpack_from("<IIQQQQIIQQ", elf, shoff + i * shentsize) for i in range(shnum)]
    names_off = heads[shstrndx][4]
    out = {}
    for h in heads:
        start = names_off + h[0]
        name = elf[start:elf.index(b"\0", start)].decode()
        out[name] = (h[4], h[5])  # file offset, size
    return out


def btf_names(btf):
    hdr_len, type_off, type_len, str_off, _ = struct.unpack_from("<IIIII", btf, 4)
    strings = hdr_len + str_off
    at, end, names = hdr_len + type_off, hdr_len + type_off + type_len, [""]
    extra = {1: lambda v: 4, 14: lambda v: 4, 17: lambda v: 4, 3: lambda v: 12,
             4: lambda v: 12 * v, 5: lambda v: 12 * v, 15: lambda v: 12 * v,
             19: lambda v: 12 * v, 6: lambda v: 8 * v, 13: lambda v: 8 * v}
    while at < end:
        name_off, info = struct.unpack_from("<II", btf, at)
        kind, vlen = (info >> 24) & 0x1F, info & 0xFFFF
        s = strings + name_off
        names.append(btf[s:btf.index(b"\0", s)].decode())
        at += 12 + extra.get(kind, lambda v: 0)(vlen)
    return names


def main(path):
    elf = bytearray(open(path, "rb").read())
    secs = sections(elf)
    btf_at, btf_size = secs[".BTF"]
    names = btf_names(bytes(elf[btf_at:btf_at + btf_size]))
    ext, _ = secs[".BTF.ext"]
    hdr_len, = struct.unpack_from("<I", elf, ext + 4)
    core_off, core_len = struct.unpack_from("<II", elf, ext + 24)
    at = ext + hdr_len + core_off
    end = at + core_len
    rec_size, = struct.unpack_from("<I", elf, at)
    at += 4
    changed = 0
    while at < end:
        _, count = struct.unpack_from("<II", elf, at)
        at += 8
        for _ in range(count):
            _, type_id, _, kind = struct.unpack_from("<IIII", elf, at)
            if kind == TYPE_EXISTS and "___tm" in names[type_id]:
                struct.pack_into("<I", elf, at + 12, TYPE_MATCHES)
                changed += 1
            at += rec_size
    if not changed:
        sys.exit(f"{path}: no TYPE_EXISTS relocation of a `___tm` type")
    open(path, "wb").write(elf)


if __name__ == "__main__":
    main(sys.argv[1])
