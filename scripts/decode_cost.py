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

With --reference BIN (bench/json-format-cost.c: the hand-written C formatting of
`make bench`'s C reader, same arguments), the same count is taken of it on the
same records, and the ratio printed: what the agent's BTF-driven decoder costs
against C written for this one layout. The two must write the same lines (every
key and value but the wall-clock `timestamp`, whose offset differs): exit 1
naming the first difference otherwise, since the bench's C column is only a
reference while it formats what the agent formats.
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile


def instructions(binary, obj, records, passes):
    p = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
                        binary, obj, records, str(passes)], capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"decode-cost failed under callgrind (exit {p.returncode}):\n{p.stderr[-2000:]}")
    m = re.search(r"Collected : (\d+)", p.stderr)
    if not m:
        raise SystemExit(f"no instruction count in callgrind's output:\n{p.stderr[-2000:]}")
    return int(m.group(1)), int(p.stdout.split()[0])


def per_event(binary, obj, records):
    """(instructions per event, records, instructions of 1 pass, of 11 passes): the
    per-event cost is 11 passes minus 1, over ten times the records."""
    one, n = instructions(binary, obj, records, 1)
    eleven, _ = instructions(binary, obj, records, 11)
    return (eleven - one) / (10 * n), n, one, eleven


def dump(binary, obj, records, path):
    """The lines `binary` writes for the records (its warm-up pass, DECODE_COST_DUMP)."""
    p = subprocess.run([binary, obj, records, "0"], capture_output=True, text=True,
                       env={**os.environ, "DECODE_COST_DUMP": path})
    if p.returncode != 0:
        raise SystemExit(f"{binary} failed (exit {p.returncode}):\n{p.stderr[-2000:]}")
    with open(path, "rb") as f:
        return f.read().splitlines()


def first_difference(ours, theirs):
    """None when both lists of JSON lines hold the same keys in the same order
    and the same values, `timestamp` aside; else a sentence naming the first
    record and key that differ."""
    if len(ours) != len(theirs):
        return f"{len(ours)} lines from the decoder, {len(theirs)} from the C reference"
    for i, (a, b) in enumerate(zip(ours, theirs)):
        try:
            x, y = json.loads(a), json.loads(b)
        except ValueError as e:
            return f"record {i}: a line is not JSON ({e})"
        x.pop("timestamp", None)
        y.pop("timestamp", None)
        if list(x) != list(y):
            return f"record {i}: keys {list(x)} (decoder) and {list(y)} (C reference)"
        for k in x:
            if x[k] != y[k]:
                return f"record {i}, key {k!r}: {x[k]!r} (decoder) and {y[k]!r} (C reference)"
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary")
    ap.add_argument("fixtures")
    ap.add_argument("object", help="trace_open.o built from FIXTURE_DIR/trace_open.bpf.c (make decode-check)")
    ap.add_argument("--update", action="store_true", help="write the measured cost as the new baseline")
    ap.add_argument("--tolerance", type=float, default=0.10)
    ap.add_argument("--reference", help="bench/json-format-cost built: also count the C formatter on the same records")
    args = ap.parse_args()
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed: `.ci/install-deps test`")
    obj = args.object
    records = os.path.join(args.fixtures, "trace_open.records")
    baseline_file = os.path.join(args.fixtures, "baseline.txt")
    cost, n, one, eleven = per_event(args.binary, obj, records)
    print(f"decode cost: {cost:.0f} instructions/event ({n} recorded trace_open events, "
          f"{one} and {eleven} instructions for 1 and 11 passes)")
    if args.reference:
        with tempfile.TemporaryDirectory() as d:
            diff = first_difference(dump(args.binary, obj, records, os.path.join(d, "decoder")),
                                    dump(args.reference, obj, records, os.path.join(d, "reference")))
        if diff:
            print(f"decode-check: the C reference no longer writes the agent's lines: {diff}. "
                  "Update bench/json-format.h (the bench's C reader) to the agent's output.", file=sys.stderr)
            sys.exit(1)
        c_cost, _, _, _ = per_event(args.reference, obj, records)
        print(f"C reference: {c_cost:.0f} instructions/event (bench/json-format.h, the same {n} records, "
              f"the same lines); decoder / C = {cost / c_cost:.2f}x")
    if args.update:
        with open(baseline_file, "w") as f:
            f.write(f"{cost:.0f}\n")
        print(f"baseline written to {baseline_file}")
        return
    with open(baseline_file) as f:
        baseline = float(f.read().split()[0])
    ratio = cost / baseline
    print(f"baseline:    {baseline:.0f} instructions/event ({baseline_file}); now {ratio:.3f}x")
    if ratio > 1 + args.tolerance:
        print(f"decode-check: REGRESSION: {cost:.0f} instructions/event is {100 * (ratio - 1):.1f}% above "
              f"the baseline (tolerance {100 * args.tolerance:.0f}%). Find the cause with "
              f"`valgrind --tool=callgrind {args.binary} {obj} {records} 11` and callgrind_annotate; "
              "if the cost is intended, rerun with --update and commit the baseline.", file=sys.stderr)
        sys.exit(1)
    if ratio < 1 - args.tolerance:
        print(f"decode-check: {100 * (1 - ratio):.1f}% below the baseline: commit the new one "
              "(`make decode-check-update`) so the check keeps its teeth")


if __name__ == "__main__":
    main()
