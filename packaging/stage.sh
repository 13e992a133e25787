#!/usr/bin/env bash
# Lays out everything the packages install under DESTDIR (one tree for the deb
# and the rpm, so they cannot drift apart).
#   packaging/stage.sh BIN_DIR DESTDIR
# BIN_DIR holds release gadgetd and gadgetctl; build/gadgets must be built.
set -euo pipefail
bin=$(realpath "$1") dest=$2
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
rm -rf "$dest"
mkdir -p "$dest"
dest=$(realpath "$dest")

need() { [ -e "$1" ] || { echo "stage: missing $1 ($2)" >&2; exit 1; }; }
put() { # put MODE SRC DST
  install -D -m "$1" "$2" "$dest$3"
}

need "$bin/gadgetd" "build it: cargo build --release"
need "$bin/gadgetctl" "build it: cargo build --release"
put 0755 "$bin/gadgetd" /usr/bin/gadgetd
put 0755 "$bin/gadgetctl" /usr/bin/gadgetctl
strip --strip-unneeded "$dest/usr/bin/gadgetd" "$dest/usr/bin/gadgetctl"

# systemd, D-Bus, polkit, the `gadget` group.
for f in units/gadgetd.service units/gadgetd.socket units/gadgetd-metrics.socket; do need "$f" "systemd unit"; done
put 0644 units/gadgetd.service /usr/lib/systemd/system/gadgetd.service
put 0644 units/gadgetd.socket /usr/lib/systemd/system/gadgetd.socket
put 0644 units/gadgetd-metrics.socket /usr/lib/systemd/system/gadgetd-metrics.socket
put 0644 dbus/data/org.gadgetd.Agent1.conf /usr/share/dbus-1/system.d/org.gadgetd.Agent1.conf
activation=$(grep -l '^SystemdService=gadgetd.service' units/*.service dbus/data/*.service 2>/dev/null | head -1 || true)
need "$activation" "D-Bus activation file with SystemdService=gadgetd.service"
put 0644 "$activation" /usr/share/dbus-1/system-services/org.gadgetd.Agent1.service
policy=$(ls polkit/*.policy dbus/data/*.policy units/*.policy 2>/dev/null | head -1 || true)
rules=$(ls polkit/*.rules dbus/data/*.rules units/*.rules 2>/dev/null | head -1 || true)
need "$policy" "polkit actions"
need "$rules" "polkit rules granting group gadget"
put 0644 "$policy" /usr/share/polkit-1/actions/org.gadgetd.policy
put 0644 "$rules" /usr/share/polkit-1/rules.d/49-gadgetd.rules
put 0644 packaging/common/sysusers.conf /usr/lib/sysusers.d/gadgetd.conf

# The C API: <gadget/types.h> from the default path; -I/usr/include/gadget
# gives the seed's bare "types.h" and <vmlinux/vmlinux.h>.
for h in include/gadget/*.h include/*.h; do put 0644 "$h" "/usr/include/gadget/$(basename "$h")"; done
# <bpf/bpf_tracing.h> filling in what an older libbpf-dev lacks; found before
# the system's through -I/usr/include/gadget (it #include_next's the system one).
for h in include/bpf/*.h; do put 0644 "$h" "/usr/include/gadget/bpf/$(basename "$h")"; done
(cd include && find vmlinux -type f -name '*.h') | while read -r h; do
  put 0644 "include/$h" "/usr/include/gadget/$h"
done

# The bundled gadgets (BPF objects are per architecture: /usr/lib, not /usr/share).
if [ -f build/gadgets.tar ]; then
  put 0644 build/gadgets.tar /usr/lib/gadgetd/gadgets.tar
fi
for o in build/gadgets/*.o; do
  n=$(basename "$o" .o)
  put 0644 "$o" "/usr/lib/gadgetd/gadgets/$n.o"
  if [ -f "build/gadgets/$n.yaml" ]; then put 0644 "build/gadgets/$n.yaml" "/usr/lib/gadgetd/gadgets/$n.yaml"; fi
done

# Man pages and completions, generated from the CLIs themselves.
man=$(mktemp -d)
"$bin/gadgetctl" generate-man "$man"
"$bin/gadgetd" --generate-man "$man"
for p in "$man"/*.1; do gzip -9n <"$p" >"$man/$(basename "$p").gz"; put 0644 "$man/$(basename "$p").gz" "/usr/share/man/man1/$(basename "$p").gz"; done
gzip -9n <"$man/gadgetd.8" >"$man/gadgetd.8.gz"
put 0644 "$man/gadgetd.8.gz" /usr/share/man/man8/gadgetd.8.gz
"$bin/gadgetctl" completion bash >"$man/bash"
"$bin/gadgetctl" completion zsh >"$man/zsh"
"$bin/gadgetctl" completion fish >"$man/fish"
put 0644 "$man/bash" /usr/share/bash-completion/completions/gadgetctl
put 0644 "$man/zsh" /usr/share/zsh/vendor-completions/_gadgetctl
put 0644 "$man/fish" /usr/share/fish/vendor_completions.d/gadgetctl.fish
rm -rf "$man"

put 0644 README.md /usr/share/doc/gadgetd/README.md
put 0644 packaging/common/copyright /usr/share/doc/gadgetd/copyright
# /var/lib/gadgetd (0700) is made by the maintainer scripts and the unit, not shipped.
