#!/usr/bin/env python3
"""Records benches/fixtures/trace_open.records: the raw ring records of a fixed
set of openat calls made by this script, traced by trace_open and drained by
the floor reader (which writes each record it sees).

Usage: scripts/record_decode_fixture.py FLOOR_READER OBJECT OUT_DIR

OBJECT is built from OUT_DIR/trace_open.bpf.c (`make build/fixtures/trace_open.o`;
the records follow its event layout); writes OUT_DIR/trace_open.records. The calls cover what the decoder
formats differently: successful and failed opens (errno names), several
flags and modes, file names with quotes, backslashes, control characters,
multi-byte UTF-8, bytes that are not UTF-8, and a long name. Run once; the
fixture is committed and only re-recorded when the decoder's input changes.
"""
import os
import shutil
import subprocess
import sys
import tempfile


def opens(d):
    """Each entry: (path bytes, flags, mode)."""
    names = [b"plain.txt", b"with space", b'quote"d', b"back\\slash", b"tab\there", b"new\nline",
             "caf\u00e9".encode(), "\u65e5\u672c\u8a9e".encode(), b"bad\xff\xfeutf8", b"x" * 200]
    calls = []
    for n in names:
        p = os.path.join(d, n)
        calls.append((p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640))  # create
        calls.append((p, os.O_RDONLY, 0))                                  # open
        calls.append((p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))    # EEXIST
        calls.append((p, os.O_RDONLY | os.O_DIRECTORY, 0))                 # ENOTDIR
        calls.append((p + b".missing", os.O_RDONLY, 0))                    # ENOENT
    calls.append((d, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, 0))
    calls.append((b"/etc/hostname", os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW, 0))
    return calls


def main():
    if len(sys.argv) != 4:
        raise SystemExit(__doc__)
    reader, obj, out = sys.argv[1:]
    os.makedirs(out, exist_ok=True)
    records = os.path.join(out, "trace_open.records")
    d = tempfile.mkdtemp(prefix="fixture-", dir="/tmp").encode()
    calls = opens(d)
    r = subprocess.Popen([reader, obj, str(os.getpid()), str(len(calls)), records],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    if r.stdout.readline().strip() != "ready":
        raise SystemExit("the floor reader did not start")
    for path, flags, mode in calls:
        try:
            os.close(os.open(path, flags, mode))
        except OSError:
            pass
    out_line = r.communicate(timeout=30)[0].split()
    shutil.rmtree(d)
    print(f"recorded {out_line[0]} records (lost {out_line[1]}) into {records}")
    if int(out_line[0]) != len(calls):
        raise SystemExit(f"expected {len(calls)} records")


if __name__ == "__main__":
    main()
