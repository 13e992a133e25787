#!/usr/bin/env bash
# Installs the .deb in a booted Debian bookworm systemd-nspawn container and
# checks what an admin and a `gadget` member see: D-Bus activation starts the
# agent, events flow, remove stops it, purge deletes the state.
#   packaging/nspawn-install-test.sh gadgetd_VERSION_ARCH.deb
# The debootstrap root is cached in $GADGETD_TEST_ROOTFS (default
# /var/cache/gadgetd-test/bookworm); each run boots a fresh copy of it.
set -euo pipefail
deb=$(realpath "$1")
cache=${GADGETD_TEST_ROOTFS:-/var/cache/gadgetd-test/bookworm}
fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok: $*"; }

"$(dirname "$0")/debian-root.sh" "$cache" >/dev/null

work=$(mktemp -d /var/tmp/gadgetd-nspawn.XXXXXX)
nspawn_pid=
cleanup() {
  if [ -n "$nspawn_pid" ] && kill -0 "$nspawn_pid" 2>/dev/null; then
    kill "$nspawn_pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$nspawn_pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$nspawn_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
cp -a "$cache" "$work/root"
cp "$deb" "$work/root/root/gadgetd.deb"

# Seccomp lets bpf(2) and perf_event_open(2) through only when asked (testenv.md §4).
systemd-nspawn -q -D "$work/root" -b --register=no --keep-unit \
  --system-call-filter='bpf perf_event_open' >"$work/console.log" 2>&1 &
nspawn_pid=$!
leader=
for _ in $(seq 300); do
  child=$(pgrep -P "$nspawn_pid" | head -1 || true)
  [ -n "$child" ] && leader=$(pgrep -P "$child" | head -1 || true)
  [ -z "$leader" ] && leader=$child
  if [ -n "$leader" ] && state=$(nsenter -t "$leader" -a systemctl is-system-running 2>/dev/null) \
     && [[ $state == running || $state == degraded ]]; then break; fi
  sleep 0.1
done
inside() { nsenter -t "$leader" -a "$@"; }
[[ $(inside systemctl is-system-running 2>/dev/null || true) =~ running|degraded ]] \
  || fail "the container did not boot: $(tail -5 "$work/console.log")"
ok "container booted (systemd $(inside systemctl --version | head -1 | cut -d' ' -f2))"

inside dpkg -i /root/gadgetd.deb >/dev/null || fail "dpkg -i failed"
[ "$(inside systemctl is-enabled gadgetd.socket)" = enabled ] || fail "gadgetd.socket not enabled"
[ "$(inside systemctl is-enabled gadgetd.service)" = enabled ] || fail "gadgetd.service not enabled (detached runs would not come back after a reboot)"
[ "$(inside systemctl is-active gadgetd.socket)" = active ] || fail "gadgetd.socket not listening"
[ "$(inside systemctl is-active gadgetd.service || true)" != active ] || fail "installing started the agent"
inside getent group gadget >/dev/null || fail "no gadget group"
ok "installed: socket and service enabled, socket listening, agent not started, group gadget exists"

inside useradd -m -G gadget alice
inside useradd -m bob
events=$(inside runuser -u alice -- gadgetctl run trace_open --timeout 3s -o json 2>"$work/alice.err" | grep -c '"fname"' || true)
[ "$events" -gt 0 ] || fail "alice (group gadget) saw no events: $(cat "$work/alice.err")"
ok "alice (group gadget) ran trace_open: $events events"
[ "$(inside systemctl is-active gadgetd.service)" = active ] || fail "the agent is not active after the run"
inside journalctl -u gadgetd.service --no-pager | grep -q 'Started gadgetd' || inside journalctl -u gadgetd.service --no-pager | grep -qi 'gadgetd' \
  || fail "journalctl -u gadgetd has nothing"
ok "D-Bus activation started gadgetd.service; journalctl -u gadgetd has its start"
if inside runuser -u bob -- gadgetctl run trace_open --timeout 1s >/dev/null 2>"$work/bob.err"; then
  fail "bob (not in group gadget) could run a gadget"
fi
grep -q AccessDenied "$work/bob.err" || fail "bob's error does not say AccessDenied: $(cat "$work/bob.err")"
ok "bob (not in group gadget) is denied: $(head -1 "$work/bob.err")"

[ "$(inside systemctl is-enabled gadgetd-metrics.socket || true)" = disabled ] \
  || fail "gadgetd-metrics.socket is not installed disabled (metrics are off until enabled)"
# systemd refuses to start a socket whose service is already running.
inside systemctl stop gadgetd.service
out=$(inside systemctl enable --now gadgetd-metrics.socket 2>&1) || fail "cannot enable gadgetd-metrics.socket: $out"
inside systemctl start gadgetd.service || fail "gadgetd did not start with the metrics socket"
scrape=$(inside bash -c 'exec 3<>/dev/tcp/127.0.0.1/2224 && printf "GET /metrics HTTP/1.0\r\n\r\n" >&3 && cat <&3' 2>&1 || true)
echo "$scrape" | grep -q '^gadgetd_runs{state="running"}' \
  || fail "no gadgetd_runs on http://127.0.0.1:2224/metrics: $(echo "$scrape" | head -5)"
inside systemctl disable --now gadgetd-metrics.socket >/dev/null 2>&1 || true
ok "gadgetd-metrics.socket: installed disabled; enabled, it passes 127.0.0.1:2224 and gadgetd serves /metrics there"

inside dpkg -r gadgetd >/dev/null || fail "dpkg -r failed"
[ "$(inside systemctl is-active gadgetd.service || true)" != active ] || fail "the agent still runs after dpkg -r"
inside test ! -e /usr/bin/gadgetd || fail "/usr/bin/gadgetd left after dpkg -r"
inside test -d /var/lib/gadgetd || fail "dpkg -r removed /var/lib/gadgetd (only purge may)"
ok "dpkg -r: agent stopped, files gone, state kept"
inside dpkg -P gadgetd >/dev/null || fail "dpkg -P failed"
inside test ! -e /var/lib/gadgetd || fail "/var/lib/gadgetd left after dpkg -P"
ok "dpkg -P: state removed"
inside systemctl poweroff >/dev/null 2>&1 || true
wait "$nspawn_pid" 2>/dev/null || true
nspawn_pid=
