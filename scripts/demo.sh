#!/usr/bin/env bash
# `make run`: trace this machine with trace_open for a few seconds.
# Uses a gadgetd already reachable on the system bus or its socket; otherwise
# starts one on a private peer-to-peer socket (no bus needed) and stops it after.
set -euo pipefail
bin=$1 object=$2 archive=${3:-}
[ "$(id -u)" = 0 ] || exec sudo "$0" "$@"
seconds=${DEMO_SECONDS:-5}
work=$(mktemp -d /tmp/gadgetd-demo.XXXXXX)
agent_pid=
cleanup() {
  [ -n "$agent_pid" ] && kill "$agent_pid" 2>/dev/null && wait "$agent_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

address=()
if ! "$bin/gadgetctl" list >/dev/null 2>&1; then
  echo "== starting gadgetd on $work/gadgetd.sock (log: $work/gadgetd.log)"
  bundled=()
  if [ -n "$archive" ] && [ -f "$archive" ]; then
    # The bundled gadgets' images: run by name, no registry needed.
    bundled=(--bundled-images "$archive")
    object=trace_open
  fi
  "$bin/gadgetd" --no-bus --listen "$work/gadgetd.sock" --state-dir "$work/state" "${bundled[@]}" 2>"$work/gadgetd.log" &
  agent_pid=$!
  for _ in $(seq 200); do [ -S "$work/gadgetd.sock" ] && break; sleep 0.05; done
  address=(--address "$work/gadgetd.sock")
fi

# A little activity so an idle machine shows events too.
( for _ in $(seq $((seconds * 4))); do cat /etc/os-release /etc/hostname >/dev/null 2>&1; sleep 0.25; done ) &
activity_pid=$!
echo "== gadgetctl run $object --timeout ${seconds}s"
"$bin/gadgetctl" "${address[@]}" run "$object" --timeout "${seconds}s"
wait "$activity_pid"
