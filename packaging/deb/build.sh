#!/usr/bin/env bash
# Builds the .deb from a staged tree (packaging/stage.sh) with dpkg-deb.
#   packaging/deb/build.sh STAGE_DIR OUT_DIR VERSION
set -euo pipefail
stage=$1 out=$2 version=$3
here=$(cd "$(dirname "$0")" && pwd)
arch=$(dpkg --print-architecture)
pkg=$(mktemp -d)
trap 'rm -rf "$pkg"' EXIT
cp -a "$stage/." "$pkg/"
mkdir -p "$pkg/DEBIAN" "$out"

# The newest glibc symbol version the binaries use decides the libc6 floor.
glibc=$(objdump -T "$pkg/usr/bin/gadgetd" "$pkg/usr/bin/gadgetctl" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -V | tail -1)
installed_size=$(du -sk --exclude=DEBIAN "$pkg" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@GLIBC@/$glibc/" \
    -e "s/@SIZE@/$installed_size/" "$here/control.in" >"$pkg/DEBIAN/control"
for s in postinst prerm postrm; do install -m 0755 "$here/$s" "$pkg/DEBIAN/$s"; done
install -d "$pkg/usr/share/doc/gadgetd"
sed "s/@VERSION@/$version/" "$here/changelog" | gzip -9n >"$pkg/usr/share/doc/gadgetd/changelog.gz"
(cd "$pkg" && find usr -type f -print0 | sort -z | xargs -0 md5sum >DEBIAN/md5sums)
dpkg-deb --build --root-owner-group -Zxz "$pkg" "$out/gadgetd_${version}_${arch}.deb" >/dev/null
echo "$out/gadgetd_${version}_${arch}.deb"
