#!/usr/bin/env bash
# Package tests (make package-test): lintian, rpm metadata and a scratch-root
# install, then the real thing: the .deb installed in a booted systemd-nspawn
# container (Debian bookworm), used by an unprivileged member of `gadget`, removed
# and purged.   packaging/test-packages.sh PACKAGE_DIR
set -euo pipefail
pkgs=$(realpath "$1")
here=$(cd "$(dirname "$0")" && pwd)
deb=$(ls "$pkgs"/gadgetd_*.deb | head -1)
rpm=$(ls "$pkgs"/gadgetd-*.rpm | head -1)
fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok: $*"; }

# --- lintian: clean, except the tags packaging/README.md justifies.
out=$(lintian --suppress-tags-from-file "$here/deb/lintian-justified" --no-tag-display-limit "$deb" 2>&1 || true)
if echo "$out" | grep -E '^(E|W):' ; then fail "lintian reports the tags above"; fi
ok "lintian clean (justified tags suppressed: $(grep -cv '^#' "$here/deb/lintian-justified"))"

# --- rpm: requires, scripts, files; install into a scratch root.
requires=$(rpm -qp --requires "$rpm" 2>/dev/null)
for r in dbus polkit systemd 'libc.so.6()(64bit)'; do
  echo "$requires" | grep -qxF "$r" || fail "rpm does not require $r: $requires"
done
scripts=$(rpm -qp --scripts "$rpm" 2>/dev/null)
echo "$scripts" | grep -q 'groupadd -r gadget' || fail "rpm %pre does not create the gadget group"
echo "$scripts" | grep -q 'enable gadgetd.socket' || fail "rpm %post does not enable the socket"
echo "$scripts" | grep -q 'systemctl start gadgetd.service' && fail "rpm scripts start the agent"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
rpm --root "$scratch" --initdb
# No rpm-based systemd host here: scripts are checked above, files below.
rpm --root "$scratch" -i --nodeps --noscripts "$rpm" 2>/dev/null
for f in usr/bin/gadgetd usr/bin/gadgetctl usr/lib/systemd/system/gadgetd.socket \
         usr/lib/systemd/system/gadgetd-metrics.socket \
         usr/share/polkit-1/rules.d/49-gadgetd.rules usr/include/gadget/types.h \
         usr/share/man/man1/gadgetctl.1.gz usr/share/bash-completion/completions/gadgetctl; do
  [ -e "$scratch/$f" ] || fail "rpm did not install /$f"
done
[ "$(stat -c %a "$scratch/var/lib/gadgetd")" = 700 ] || fail "/var/lib/gadgetd is not 0700"
rpm --root "$scratch" -V --nodeps gadgetd 2>/dev/null || fail "rpm -V reports changed files"
ok "rpm: requires, scripts and files as expected; scratch-root install verifies"

# --- deb in a booted systemd container.
"$here/nspawn-install-test.sh" "$deb"
