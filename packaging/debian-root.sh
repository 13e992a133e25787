#!/usr/bin/env bash
# The cached Debian bookworm root the systemd-nspawn tests boot (make boot-test,
# make package-test): made once with debootstrap (~3 min), then reused.
#   packaging/debian-root.sh [ROOT]   (default /var/cache/gadgetd-test/bookworm)
set -euo pipefail
root=${1:-/var/cache/gadgetd-test/bookworm}
if [ ! -f "$root/.gadgetd-complete" ]; then
  mirror=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  mirror=${mirror:-http://deb.debian.org/debian}
  echo "creating the container root $root (debootstrap from $mirror, once, ~3 min)" >&2
  rm -rf "$root.tmp" && mkdir -p "$(dirname "$root")"
  # polkitd needs a logind (libpam-systemd); adduser/passwd for the package's group and test users.
  debootstrap --variant=minbase \
    --include=systemd,systemd-sysv,libpam-systemd,dbus,polkitd,adduser,passwd,util-linux \
    bookworm "$root.tmp" "$mirror" >"$root.log" 2>&1 \
    || { tail -5 "$root.log" >&2; echo "debootstrap failed (log: $root.log)" >&2; exit 1; }
  rm -f "$root.tmp/var/cache/apt/archives/"*.deb
  touch "$root.tmp/.gadgetd-complete"
  rm -rf "$root" && mv "$root.tmp" "$root"
fi
echo "$root"
