#!/usr/bin/env bash
# Regenerates include/vmlinux/arm64/vmlinux.h from Debian's arm64 kernel
# package (no arm64 machine needed). The arm64 kernel Image is not an ELF
# file, so the raw .BTF blob is cut out of it by its header (magic 0xeB9F)
# and bpftool turns it into C.
#   scripts/gen-vmlinux-arm64.sh [DEB_URL]
set -euo pipefail
url=${1:-http://deb.debian.org/debian/pool/main/l/linux-signed-arm64/linux-image-6.12.107+deb13-arm64_6.12.107-1_arm64.deb}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
curl -fsSL -o "$work/k.deb" "$url"
dpkg-deb -x "$work/k.deb" "$work/x"
python3 - "$work"/x/boot/vmlinuz-* "$work/vmlinux.btf" <<'PY'
import gzip, struct, sys
img = open(sys.argv[1], 'rb').read()
if img[:2] == b'\x1f\x8b':
    img = gzip.decompress(img)
best = None
i = img.find(b'\x9f\xeb\x01\x00\x18\x00\x00\x00')
while i >= 0:
    hdr_len, _, _, str_off, str_len = struct.unpack_from('<IIIII', img, i + 4)
    total = hdr_len + str_off + str_len
    if best is None or total > best[1]:
        best = (i, total)
    i = img.find(b'\x9f\xeb\x01\x00\x18\x00\x00\x00', i + 1)
if best is None:
    sys.exit('no BTF found in the kernel image (CONFIG_DEBUG_INFO_BTF off?)')
open(sys.argv[2], 'wb').write(img[best[0]:best[0] + best[1]])
PY
out=$(dirname "$0")/../include/vmlinux/arm64/vmlinux.h
mkdir -p "$(dirname "$out")"
bpftool btf dump file "$work/vmlinux.btf" format c > "$out"
echo "wrote $out ($(wc -l < "$out") lines) from $url"
