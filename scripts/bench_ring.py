#!/usr/bin/env python3
"""Ring buffer size against events lost: trace_open rebuilt with each ring size, run by gadgetd.

Usage: scripts/bench_ring.py BIN_DIR [--sizes 4M,1M,512K,256K] [--events N] [--reps K]
                             [--flood N] [--gadget-dir gadgets/trace_open]

For each size, gadgets/trace_open/program.bpf.c is compiled with its
GADGET_TRACER_MAP size replaced (into a temporary directory, with its
gadget.yaml beside it), and a release gadgetd on a private p2p socket runs it
K times against N openat calls from the pinned load generator, drained by
`gadgetctl run -o json | wc -l` as in `make bench`. Per size it prints the
median and the worst of the events the kernel lost (the gadget's
`<map>_lost_samples`, as the agent reports them), the lines delivered to the
client, and the agent's RSS with the run loaded and its peak.

With --flood N (e.g. 20000000) each size is also run once with N calls, and
the line says whether every event was accounted for: events seen + events lost
must equal N (a loss that is not counted would leave the sum short).
Needs root (loads eBPF).
"""
import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (scripts/bench.py: the same load generator and traced run)

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
MAP_RE = re.compile(r"GADGET_TRACER_MAP\(events,[^)]*\);")


def parse_size(text):
    """`4M`, `512K`, `65536` -> bytes; a ring must be a power of two of at least one page."""
    m = re.fullmatch(r"(\d+)([KM]?)", text.strip(), re.I)
    if not m:
        raise SystemExit(f"bad ring size {text!r}: write bytes, or a number with K or M (e.g. 512K)")
    n = int(m.group(1)) * {"": 1, "K": 1024, "M": 1024 * 1024}[m.group(2).upper()]
    if n < 4096 or n & (n - 1):
        raise SystemExit(f"bad ring size {text!r}: it must be a power of two of at least 4096 bytes")
    return n


def build_variant(gadget_dir, size, out_dir):
    """trace_open with its ring resized; returns the object path (its definition beside it)."""
    src = open(os.path.join(gadget_dir, "program.bpf.c")).read()
    if not MAP_RE.search(src):
        raise SystemExit(f"{gadget_dir}/program.bpf.c has no GADGET_TRACER_MAP(events, ...) to resize")
    variant = MAP_RE.sub(f"GADGET_TRACER_MAP(events, {size});", src, count=1)
    name = f"trace_open_ring{size // 1024}k"
    c = os.path.join(out_dir, name + ".bpf.c")
    obj = os.path.join(out_dir, name + ".o")
    with open(c, "w") as f:
        f.write(variant)
    subprocess.run(["clang", "-g", "-O2", "-target", "bpf", "-D__TARGET_ARCH_x86",
                    "-I", os.path.join(ROOT, "include"), "-I", gadget_dir, "-c", c, "-o", obj], check=True)
    subprocess.run(["llvm-strip", "-g", obj], check=True)
    shutil.copy(os.path.join(gadget_dir, "gadget.yaml"), os.path.join(out_dir, name + ".yaml"))
    return obj


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bin_dir")
    ap.add_argument("--sizes", default="4M,1M,512K,256K")
    ap.add_argument("--events", type=int, default=2_000_000)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--flood", type=int, default=0, help="also one run of this many calls per size")
    ap.add_argument("--gadget-dir", default=os.path.join(ROOT, "gadgets", "trace_open"))
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root: the benchmark loads eBPF programs")
    sizes = [parse_size(s) for s in args.sizes.split(",")]
    work = tempfile.mkdtemp(prefix="gadgetd-bench-ring-")
    loadgen = os.path.join(work, "loadgen")
    subprocess.run(["cc", "-O2", "-o", loadgen, os.path.join(ROOT, "bench", "loadgen.c")], check=True)
    target = os.path.join(work, "probe-file")
    open(target, "w").close()
    objs = {s: build_variant(os.path.abspath(args.gadget_dir), s, work) for s in sizes}
    agent, sock = bench.start_agent(args.bin_dir, work)
    results = {s: [] for s in sizes}
    floods = {}
    try:
        print(f"agent RSS idle {bench.status_kib(agent.pid, 'VmRSS') / 1024:.1f} MiB", flush=True)
        # Interleaved, so a neighbour's build slows every size alike.
        for _ in range(args.reps):
            for s in sizes:
                r = bench.traced_run(args.bin_dir, sock, objs[s], loadgen, args.events, target, agent.pid)
                results[s].append(r)
                print(f"  ring {s // 1024:6} KiB: lost {r['lost']:8} seen {r['seen']:9} delivered {r['delivered']:9}"
                      f"  {r['gen_seconds']:.2f} s  RSS loaded {r['rss_loaded_kib'] / 1024:.1f} MiB"
                      f"  peak {r['rss_peak_kib'] / 1024:.1f} MiB", flush=True)
        for s in sizes if args.flood else ():
            floods[s] = bench.traced_run(args.bin_dir, sock, objs[s], loadgen, args.flood, target, agent.pid)
    finally:
        agent.terminate()
        agent.wait()
        shutil.rmtree(work, ignore_errors=True)
    print()
    print(f"{args.events} openat+close on CPU 0, {args.reps} runs per ring size, drained by gadgetd -> gadgetctl -o json")
    print(f"{'ring':>10}{'lost median':>13}{'lost max':>10}{'delivered median':>18}{'ring RSS':>10}"
          f"{'RSS loaded':>12}{'calls/s':>10}")
    for s in sizes:
        rs = results[s]
        lost = [r["lost"] for r in rs]
        secs = statistics.median(r["gen_seconds"] for r in rs)
        print(f"{s // 1024:>6} KiB{statistics.median(lost):13.0f}{max(lost):10}"
              f"{statistics.median(r['delivered'] for r in rs):18.0f}"
              f"{statistics.median(r['bpf_loaded_kib'] for r in rs) / 1024:7.1f} MiB"
              f"{statistics.median(r['rss_loaded_kib'] for r in rs) / 1024:8.1f} MiB{args.events / secs:10.0f}")
    for s, r in floods.items():
        counted = r["seen"] + r["lost"]
        verdict = "every event counted" if counted == args.flood else f"{args.flood - counted} NOT accounted for"
        print(f"flood {args.flood}, ring {s // 1024} KiB: seen {r['seen']} + lost {r['lost']} = {counted}: {verdict}"
              f" (delivered {r['delivered']}, peak RSS {r['rss_peak_kib'] / 1024:.1f} MiB)")


if __name__ == "__main__":
    main()
