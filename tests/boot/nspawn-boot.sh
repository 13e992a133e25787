#!/usr/bin/env bash
# Boot test: gadgetd under a real systemd in a systemd-nspawn container.
# Checks that the shipped units, D-Bus policy and activation file work:
#   1. a `gadgetctl list` on the system bus starts gadgetd by bus activation,
#      and systemd sees it READY (Type=notify) with its STATUS line;
#   2. the hardened service loads a gadget; a detached run logs to journald;
#   3. kill -9 of gadgetd: systemd restarts it and the run is restored;
#   4. the p2p socket unit starts gadgetd by socket activation.
# The debootstrap root is cached (GADGETD_TEST_ROOTFS, shared with make package-test); the container runs on a
# throw-away overlay (--volatile=overlay), so the cache stays clean.
#
# usage: nspawn-boot.sh BIN_DIR GADGETS_DIR
set -euo pipefail
BIN=$(realpath "${1:?usage: $0 BIN_DIR GADGETS_DIR}")
GADGETS=$(realpath "${2:?usage: $0 BIN_DIR GADGETS_DIR}")
REPO=$(cd "$(dirname "$0")/../.." && pwd)
ROOT=${GADGETD_TEST_ROOTFS:-/var/cache/gadgetd-test/bookworm}

skip() { echo "boot test SKIPPED: $*"; exit 0; }
[ "$(id -u)" = 0 ] || skip "needs root"
command -v systemd-nspawn >/dev/null || skip "systemd-nspawn is missing (apt-get install systemd-container)"
command -v debootstrap >/dev/null || skip "debootstrap is missing (apt-get install debootstrap)"

"$REPO/packaging/debian-root.sh" "$ROOT" >/dev/null || { echo "boot test FAILED: no container root"; exit 1; }

NSPAWN=""
fail() {
  echo "boot test FAILED: $*"
  if [ -n "${L:-}" ]; then
    nsenter -t "$L" -a journalctl -u gadgetd.service --no-pager -n 40 2>/dev/null || true
  fi
  exit 1
}
cleanup() {
  if [ -n "$NSPAWN" ] && kill -0 "$NSPAWN" 2>/dev/null; then
    [ -n "${L:-}" ] && nsenter -t "$L" -a systemctl poweroff >/dev/null 2>&1 || kill "$NSPAWN" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$NSPAWN" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$NSPAWN" 2>/dev/null || true
  fi
}
trap cleanup EXIT

binds=(
  --bind-ro="$BIN/gadgetd:/usr/bin/gadgetd"
  --bind-ro="$BIN/gadgetctl:/usr/bin/gadgetctl"
  --bind-ro="$REPO/units/gadgetd.service:/etc/systemd/system/gadgetd.service"
  --bind-ro="$REPO/units/gadgetd.socket:/etc/systemd/system/gadgetd.socket"
  --bind-ro="$REPO/dbus/data/org.gadgetd.Agent1.conf:/usr/share/dbus-1/system.d/org.gadgetd.Agent1.conf"
  --bind-ro="$REPO/dbus/data/org.gadgetd.Agent1.service:/usr/share/dbus-1/system-services/org.gadgetd.Agent1.service"
  --bind-ro="$GADGETS:/opt/gadgets"
)
started=$(date +%s%N)
elapsed() { echo "$(( ($(date +%s%N) - started) / 1000000 )) ms"; }
systemd-nspawn -q -D "$ROOT" --volatile=overlay -b --register=no --keep-unit \
  --system-call-filter='bpf perf_event_open' "${binds[@]}" >/dev/null 2>&1 &
NSPAWN=$!

# The container's PID 1 (systemd) is a child or grandchild of systemd-nspawn
# (short-lived helpers come and go first).
leader() {
  local c g
  for c in $(pgrep -P "$NSPAWN"); do
    [ "$(cat /proc/"$c"/comm 2>/dev/null)" = systemd ] && { echo "$c"; return; }
    for g in $(pgrep -P "$c"); do
      [ "$(cat /proc/"$g"/comm 2>/dev/null)" = systemd ] && { echo "$g"; return; }
    done
  done
}
L=""
for _ in $(seq 200); do
  L=$(leader || true)
  [ -n "$L" ] && break
  kill -0 "$NSPAWN" 2>/dev/null || break
  sleep 0.1
done
[ -n "$L" ] || fail "the container did not start"
inside() { nsenter -t "$L" -a "$@"; }
state=""
for _ in $(seq 300); do
  state=$(inside systemctl is-system-running 2>/dev/null || true)
  case "$state" in running|degraded) break ;; esac
  sleep 0.1
done
echo "boot test: container is $state after $(elapsed)"

# 1. Bus activation.
[ "$(inside systemctl is-active gadgetd.service || true)" = inactive ] || fail "gadgetd runs before anyone asked"
inside gadgetctl --address system list >/dev/null || fail "gadgetctl list on the system bus"
show=$(inside systemctl show -p ActiveState -p Type -p StatusText -p NRestarts gadgetd.service)
echo "$show" | grep -qx 'ActiveState=active' || fail "bus activation did not start gadgetd: $show"
echo "$show" | grep -qx 'Type=notify' || fail "not Type=notify: $show"
echo "$show" | grep -q '^StatusText=0 runs (0 detached), logging to journald' || fail "no READY/STATUS from gadgetd: $show"
echo "boot test: bus activation started gadgetd, READY, $(echo "$show" | grep StatusText)"

# 2. A detached run in the hardened service, logged to the real journald.
id=$(inside gadgetctl --address system run /opt/gadgets/trace_open.o --detach --name boot-probe) || fail "run --detach in the service"
for i in $(seq 20); do inside cat /etc/hostname >/dev/null; sleep 0.1; done
for _ in $(seq 50); do
  entries=$(inside journalctl -o json "GADGET_RUN_ID=$id" --no-pager 2>/dev/null || true)
  n=$(grep -c '"SYSLOG_IDENTIFIER":"gadgetd"' <<<"$entries" || true)
  [ "${n:-0}" -gt 0 ] && break
  sleep 0.2
done
[ "${n:-0}" -gt 0 ] || fail "no journal entries for run $id"
echo "boot test: detached run $id wrote $n journal entries"

# 3. Crash: systemd restarts gadgetd (Restart=on-failure), the run comes back.
pid=$(inside systemctl show -p MainPID --value gadgetd.service)
inside sh -c "kill -9 $pid" || fail "kill -9 gadgetd"
for _ in $(seq 100); do
  newpid=$(inside systemctl show -p MainPID --value gadgetd.service)
  [ "$newpid" != 0 ] && [ "$newpid" != "$pid" ] && [ "$(inside systemctl is-active gadgetd.service)" = active ] && break
  sleep 0.1
done
[ "${newpid:-0}" != 0 ] && [ "$newpid" != "$pid" ] || fail "systemd did not restart gadgetd after kill -9"
runs=$(inside gadgetctl --address system list -o json)
grep -q "\"id\":\"$id\".*\"state\":\"running\"" <<<"$runs" || fail "run $id not restored: $runs"
echo "boot test: after kill -9 systemd restarted gadgetd (pid $pid -> $newpid) and run $id is running again"
inside gadgetctl --address system stop "$id" >/dev/null || fail "stop $id"

# 4. Socket activation of the p2p socket.
inside systemctl stop gadgetd.service
inside systemctl start gadgetd.socket
[ "$(inside systemctl is-active gadgetd.service || true)" = inactive ] || fail "gadgetd did not stop"
inside gadgetctl --address /run/gadgetd/gadgetd.sock list >/dev/null || fail "gadgetctl over the activated socket"
[ "$(inside systemctl is-active gadgetd.service)" = active ] || fail "socket activation did not start gadgetd"
log=$(inside journalctl -u gadgetd.service --no-pager -o cat SYSLOG_IDENTIFIER=gadgetd)
grep -q "inherited from systemd" <<<"$log" || fail "gadgetd did not use the inherited socket"
echo "boot test: socket activation started gadgetd on /run/gadgetd/gadgetd.sock"
echo "boot test PASSED in $(elapsed)"
