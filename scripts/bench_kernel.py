#!/usr/bin/env python3
"""Kernel-side cost of tracer objects: nanoseconds per program run (the
kernel's BPF run-time statistics) and the workload slowdown, with the floor
reader draining (no decode, no client).

Usage: scripts/bench_kernel.py FLOOR_READER LOADGEN_C OBJECT... [--events N] [--reps R]

For each OBJECT (variants of one gadget, e.g. trace_open built with other
buffer or map choices), R times, interleaved: N openat+close calls by the load
generator pinned to CPU 0, traced by OBJECT filtered on its pid. Turns on
kernel.bpf_stats_enabled for the runs (and restores it), and reads run_time_ns
and run_cnt of the reader's programs with bpftool. Prints per object: median
ns per run of each program, ns per event (all programs), workload ratio to
untraced, records and losses. Needs root.
"""
import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time

PIN = ["taskset", "-c", "0"]
STATS = "/proc/sys/kernel/bpf_stats_enabled"


def progs_of(pid):
    """{prog id: (name, run_time_ns, run_cnt)} of the bpf programs `pid` holds, from fdinfo."""
    progs = {}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") != "anon_inode:bpf-prog":
                continue
            info = dict(line.split(":", 1) for line in open(f"/proc/{pid}/fdinfo/{fd}") if ":" in line)
        except OSError:
            continue
        pid_ = int(info["prog_id"])
        name = json.loads(subprocess.run(["bpftool", "-j", "prog", "show", "id", str(pid_)],
                                         capture_output=True, text=True).stdout or "{}").get("name", str(pid_))
        progs[pid_] = (name, int(info.get("run_time_ns", 0)), int(info.get("run_cnt", 0)))
    return progs


def one(reader, loadgen, obj, n, path):
    gen = subprocess.Popen([*PIN, loadgen, str(n), path, "--wait"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    gen_pid = int(gen.stdout.readline())
    r = subprocess.Popen([reader, obj, str(gen_pid), str(1 << 62)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    if r.stdout.readline().strip() != "ready":
        raise SystemExit(f"floor reader failed on {obj}")
    before = progs_of(r.pid)
    gen.stdin.write("go\n")
    gen.stdin.flush()
    seconds = float(gen.stdout.readline().split()[1])
    gen.wait()
    progs = {}
    for i, (name, t, c) in progs_of(r.pid).items():
        _, t0, c0 = before.get(i, (name, 0, 0))
        progs[name] = (t - t0, c - c0)
    time.sleep(0.2)
    r.stdin.close()
    records, lost, _cpu = r.stdout.read().split()
    r.wait()
    return seconds, progs, int(records), int(lost)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("reader")
    ap.add_argument("loadgen_c")
    ap.add_argument("objects", nargs="+")
    ap.add_argument("--events", type=int, default=500_000)
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="gadgetd-kbench-")
    loadgen = os.path.join(work, "loadgen")
    subprocess.run(["cc", "-O2", "-o", loadgen, args.loadgen_c], check=True)
    path = os.path.join(work, "probe")
    open(path, "w").close()
    old = open(STATS).read().strip()
    open(STATS, "w").write("1")
    res = {o: [] for o in args.objects}
    untraced = []
    try:
        for _ in range(args.reps):
            out = subprocess.run([*PIN, loadgen, str(args.events), path], capture_output=True, text=True, check=True)
            untraced.append(float(out.stdout.split()[1]))
            for o in args.objects:
                res[o].append(one(args.reader, loadgen, o, args.events, path))
    finally:
        open(STATS, "w").write(old)
        subprocess.run(["rm", "-rf", work])
    base = statistics.median(untraced)
    print(f"{args.events} openat+close on CPU 0, median of {args.reps}; untraced {base:.3f} s")
    for o, runs in res.items():
        names = sorted({k for r in runs for k in r[1]})
        per_prog = []
        for name in names:
            ns = statistics.median(r[1][name][0] / max(r[1][name][1], 1) for r in runs if name in r[1])
            per_prog.append(f"{name} {ns:.0f} ns")
        per_event = statistics.median(sum(t for t, _ in r[1].values()) / max(r[2], 1) for r in runs)
        secs = statistics.median(r[0] for r in runs)
        print(f"{os.path.basename(o):28} {per_event:6.0f} ns/event  ratio {secs / base:.2f}x  "
              f"records {statistics.median(r[2] for r in runs):.0f} lost {max(r[3] for r in runs)}  ({', '.join(per_prog)})")


if __name__ == "__main__":
    main()
