#!/usr/bin/env python3
"""The client side of the trace_open pipeline: gadgetctl's CPU per event, A/B.

Usage: scripts/bench_client.py AGENT_BIN_DIR OBJECT CLIENT_DIR [CLIENT_DIR...]
                               [--events N] [--reps K] [--output ARGS]

Starts one release gadgetd (from AGENT_BIN_DIR) on a private socket and, K
times, for each CLIENT_DIR in turn (interleaved), runs
`CLIENT_DIR/gadgetctl run OBJECT ARGS | wc -l` while the C load generator
(bench/loadgen.c, pinned to CPU 0) makes N openat calls. Reports per client
the median of: gadgetctl's CPU per line printed (utime+stime from /proc), events
delivered, events the agent dropped for the slow reader (the client's
loss reports), and the workload's seconds. ARGS (default `-o json`) picks
the output path measured, e.g. `--output "-o columns"` or
`--output "-o json --fields fname"`.
"""
import argparse
import json
import os
import re
import shlex
import shutil
import statistics
import subprocess
import tempfile
import time

from bench import Loadgen, cpu_seconds, ctl, start_agent, wait_running


def client_run(agent_dir, client_dir, sock, obj, loadgen, n, path, output):
    """One flood read by `client_dir`'s gadgetctl: its CPU, what it printed and what it lost."""
    gen = Loadgen(loadgen, n, path)
    err = tempfile.TemporaryFile()
    client = subprocess.Popen([f"{client_dir}/gadgetctl", "--address", sock, "run", obj, *output,
                               "-p", f"targ_pid={gen.pid}"], stdout=subprocess.PIPE, stderr=err)
    counter = subprocess.Popen(["wc", "-l"], stdin=client.stdout, stdout=subprocess.PIPE, text=True)
    client.stdout.close()
    run = wait_running(agent_dir, sock)
    cpu0 = cpu_seconds(client.pid)
    seconds = gen.run()
    deadline = time.time() + 30
    while time.time() < deadline:
        runs = json.loads(ctl(agent_dir, sock, "list", "-o", "json").stdout.splitlines()[0])
        if runs["events_seen"] + runs["events_lost"] >= n:
            break
        time.sleep(0.05)
    # The client may still be printing what it read: wait until its CPU stops.
    last = -1.0
    while (now := cpu_seconds(client.pid)) != last:
        last = now
        time.sleep(0.3)
    cpu = now - cpu0
    ctl(agent_dir, sock, "stop", run["id"])
    client.wait()
    lines = int(counter.communicate()[0].strip())
    err.seek(0)
    # gadgetctl's loss reports: "gadgetctl: C events lost (T in all): ..."; the last has the total.
    totals = [int(t) for t in re.findall(rb"events lost \((\d+) in all\)", err.read())]
    # Per line printed: events the agent dropped for a slow reader cost the client nothing.
    return {"cpu_us": cpu * 1e6 / max(lines, 1), "delivered": lines,
            "dropped": totals[-1] if totals else 0, "seconds": seconds}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("agent_bin_dir")
    ap.add_argument("object")
    ap.add_argument("client_dirs", nargs="+")
    ap.add_argument("--events", type=int, default=2_000_000)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--output", default="-o json", help="gadgetctl output options (default: -o json)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root: the benchmark loads eBPF programs")
    obj = os.path.abspath(args.object)
    work = tempfile.mkdtemp(prefix="gadgetd-bench-client-")
    loadgen = os.path.join(work, "loadgen")
    here = os.path.dirname(os.path.abspath(__file__))
    subprocess.run(["cc", "-O2", "-o", loadgen, os.path.join(here, "..", "bench", "loadgen.c")], check=True)
    target = os.path.join(work, "probe-file")
    open(target, "w").close()
    agent, sock = start_agent(args.agent_bin_dir, work)
    output = shlex.split(args.output)
    results = {d: [] for d in args.client_dirs}
    try:
        ctl(args.agent_bin_dir, sock, "run", obj, "--timeout", "300ms")  # warm
        for _ in range(args.reps):
            for d in args.client_dirs:
                results[d].append(client_run(args.agent_bin_dir, d, sock, obj, loadgen, args.events,
                                             target, output))
    finally:
        agent.terminate()
        agent.wait()
        shutil.rmtree(work, ignore_errors=True)
    print(f"gadgetctl run {args.output}: {args.events} openat, median of {args.reps} interleaved runs")
    print(f"{'client':40}{'CPU us/ev':>10}{'min-max':>14}{'delivered':>11}{'dropped':>9}"
          f"{'max dropped':>12}{'workload s':>11}")
    for d, runs in results.items():
        med = lambda k: statistics.median(r[k] for r in runs)
        cpus = [r["cpu_us"] for r in runs]
        print(f"{d[-40:]:40}{med('cpu_us'):10.3f}{min(cpus):7.3f}-{max(cpus):.3f}"
              f"{med('delivered'):11.0f}{med('dropped'):9.0f}{max(r['dropped'] for r in runs):12}"
              f"{med('seconds'):11.2f}")


if __name__ == "__main__":
    main()
