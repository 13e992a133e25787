#!/usr/bin/env bash
# Runs each cargo-fuzz target of fuzz/ for SECONDS at nice 19 (idle CPU
# only), seeding its corpus from the objects, definitions and archives the
# build made. Usage: scripts/fuzz.sh SECONDS TARGET...  (`make fuzz`).
# Crashes land in fuzz/artifacts/TARGET/; turn each into a regression test
# (fuzz/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=$1
shift
seed() {
  local target=$1 dir=fuzz/corpus/$1
  mkdir -p "$dir"
  case $target in
    object) cp -n build/gadgets/*.o build/tests/*.o "$dir"/ 2>/dev/null || true ;;
    definition) for f in gadgets/*/gadget.yaml build/gadgets/*.yaml; do
        [ -e "$f" ] && cp -n "$f" "$dir/$(echo "$f" | tr / _)"; done ;;
    oci_archive) cp -n build/*.tar "$dir"/ 2>/dev/null || true ;;
    oci_index) [ -f build/gadgets.tar ] &&
        tar -xOf build/gadgets.tar index.json >"$dir/index.json" 2>/dev/null || true ;;
    reference) printf 'trace_open' >"$dir/bare"
        printf 'GHCR.IO:443/me/tool:v1' >"$dir/host"
        printf 'index.docker.io/busybox@sha256:%064d' 0 >"$dir/digest" ;;
    stream) printf '{"gadgetd":"lost","count":2,"total":5,"cause":"crash"}' >"$dir/lost"
        printf '{"gadgetd":"end","reason":"stopped","events_seen":3,"events_lost":1,"log":{"logged":2,"kernel_lost":0,"dropped":1,"crash":0}}' >"$dir/end" ;;
  esac
}
cd fuzz
cargo +nightly fuzz build -O "$@" 2>&1 | tail -1
cd ..
store=$(mktemp -d /dev/shm/gadgetd-fuzz-store.XXXXXX)
trap 'rm -rf "$store"' EXIT
for t in "$@"; do
  seed "$t"
  mkdir -p "fuzz/artifacts/$t"
  log=fuzz/artifacts/$t/last-run.log
  ( cd fuzz && FUZZ_STORE=$store nice -n 19 cargo +nightly fuzz run -O "$t" "corpus/$t" -- \
      -max_total_time="$seconds" -print_final_stats=1 -rss_limit_mb=2048 ) >"$log" 2>&1 || true
  execs=$(grep -m1 'stat::number_of_executed_units' "$log" | awk '{print $2}')
  crashes=$(find "fuzz/artifacts/$t" -name 'crash-*' -o -name 'oom-*' -o -name 'timeout-*' | wc -l)
  echo "$t: ${execs:-?} executions in ${seconds}s, ${crashes} crash/oom/timeout inputs in fuzz/artifacts/$t"
done
