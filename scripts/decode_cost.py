#!/usr/bin/env python3
"""Instructions per decoded event, counted by callgrind, against a committed baseline.

Usage: scripts/decode_cost.py DECODE_COST_BIN FIXTURE_DIR [--update] [--tolerance 0.10]

FIXTURE_DIR holds trace_open.bpf.c (the source of the object the records were recorded from, so
the fixture stays valid whatever becomes of gadgets/) and trace_open.records
(raw ring records, see benches/src/bin/floor-reader.rs), and baseline.txt: the
committed instructions per event. Runs the decode workload under callgrind
with 1 and 11 passes over the records; the difference divided by ten times the
records is the cost of one event without setup. Instruction counts do not
depend on the machine's load, so a >10% rise is a regression, not noise.
Exit 1 on a regression; --update writes the measured figure as the baseline.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys


def instructions(binary, obj, records, passes):
    p = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
                        binary, obj, records, str(passes)], capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"decode-cost failed under callgrind (exit {p.returncode}):\n{p.stderr[-2000:]}")
    m = re.search(r"Collected : (\d+)", p.stderr)
    if not m:
        raise SystemExit(f"no instruction count in callgrind's output:\n{p.stderr[-2000:]}")
    return int(m.group(1)), int(p.stdout.split()[0])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary")
    ap.add_argument("fixtures")
    ap.add_argument("object", help="trace_open.o built from FIXTURE_DIR/trace_open.bpf.c (make decode-check)")
    ap.add_argument("--update", action="store_true", help="write the measured cost as the new baseline")
    ap.add_argument("--tolerance", type=float, default=0.10)
    args = ap.parse_args()
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed: `.ci/install-deps test`")
    obj = args.object
    records = os.path.join(args.fixtures, "trace_open.records")
    baseline_file = os.path.join(args.fixtures, "baseline.txt")
    one, n = instructions(args.binary, obj, records, 1)
    eleven, _ = instructions(args.binary, obj, records, 11)
    per_event = (eleven - one) / (10 * n)
    print(f"decode cost: {per_event:.0f} instructions/event ({n} recorded trace_open events, "
          f"{one} and {eleven} instructions for 1 and 11 passes)")
    if args.update:
        with open(baseline_file, "w") as f:
            f.write(f"{per_event:.0f}\n")
        print(f"baseline written to {baseline_file}")
        return
    with open(baseline_file) as f:
        baseline = float(f.read().split()[0])
    ratio = per_event / baseline
    print(f"baseline:    {baseline:.0f} instructions/event ({baseline_file}); now {ratio:.3f}x")
    if ratio > 1 + args.tolerance:
        print(f"decode-check: REGRESSION: {per_event:.0f} instructions/event is {100 * (ratio - 1):.1f}% above "
              f"the baseline (tolerance {100 * args.tolerance:.0f}%). Find the cause with "
              f"`valgrind --tool=callgrind {args.binary} {obj} {records} 11` and callgrind_annotate; "
              "if the cost is intended, rerun with --update and commit the baseline.", file=sys.stderr)
        sys.exit(1)
    if ratio < 1 - args.tolerance:
        print(f"decode-check: {100 * (1 - ratio):.1f}% below the baseline: commit the new one "
              "(`make decode-check-update`) so the check keeps its teeth")


if __name__ == "__main__":
    main()
