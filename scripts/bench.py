#!/usr/bin/env python3
"""End-to-end benchmark of the trace_open pipeline: kernel -> gadgetd -> fd -> gadgetctl JSON.

Usage: scripts/bench.py BIN_DIR OBJECT [--events N] [--runs R]

Starts a release gadgetd on a private p2p socket, then measures:
  * time from `gadgetctl run` to the first event (object cached, median of R runs),
  * N openat calls by a C load generator, untraced and traced (filtered on its pid):
    events/s delivered to the client, events lost, agent CPU us/event,
    traced-workload slowdown, agent RSS (one gadget loaded, and peak).
Needs root (loads eBPF). Prints one line per figure.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


def status_kib(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def ctl(bin_dir, sock, *args, **kw):
    return subprocess.run([f"{bin_dir}/gadgetctl", "--address", sock, *args], capture_output=True, text=True, **kw)


def wait_running(bin_dir, sock, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        out = ctl(bin_dir, sock, "list", "-o", "json")
        runs = [json.loads(l) for l in out.stdout.splitlines() if l.strip()]
        live = [r for r in runs if r["state"] == "running"]
        if live:
            return live[0]
        time.sleep(0.01)
    raise SystemExit("the run never started")


def time_to_first_event(bin_dir, sock, obj, runs):
    """Median ms from spawning `gadgetctl run` to its first event line, while this process opens a file every ms."""
    stop = threading.Event()
    probe = tempfile.NamedTemporaryFile(prefix="gadgetd-ttfe-")

    def opener():
        while not stop.is_set():
            open(probe.name).close()
            time.sleep(0.001)

    t = threading.Thread(target=opener, daemon=True)
    t.start()
    samples = []
    for _ in range(runs):
        t0 = time.monotonic()
        p = subprocess.Popen([f"{bin_dir}/gadgetctl", "--address", sock, "run", obj, "-o", "json",
                              "-p", f"targ_pid={os.getpid()}", "--timeout", "5s"],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        p.stdout.readline()
        samples.append((time.monotonic() - t0) * 1000)
        p.terminate()
        p.wait()
        time.sleep(0.2)
    stop.set()
    t.join()
    return statistics.median(samples), min(samples), max(samples)


def rss_breakdown_kib(pid):
    """(anonymous heap/stacks, BPF map mappings) in KiB: ring buffers are kernel
    memory mapped into the agent, sized by the gadget, and count in its RSS."""
    anon = bpf = 0
    name = ""
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            parts = line.split()
            if "-" in parts[0] and len(parts) >= 5 and not parts[0].endswith(":"):
                name = parts[5] if len(parts) > 5 else ""
            elif parts[0] == "Rss:" and "bpf-map" in name:
                bpf += int(parts[1])
            elif parts[0] == "Anonymous:":
                anon += int(parts[1])
    return anon, bpf


def loadgen_untraced(loadgen, n, path):
    out = subprocess.run([loadgen, str(n), path], capture_output=True, text=True, check=True).stdout.split()
    return float(out[1])


def traced_run(bin_dir, sock, obj, loadgen, n, path, agent_pid):
    gen = subprocess.Popen([loadgen, str(n), path, "--wait"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    gen_pid = int(gen.stdout.readline())
    client = subprocess.Popen([f"{bin_dir}/gadgetctl", "--address", sock, "run", obj, "-o", "json",
                               "-p", f"targ_pid={gen_pid}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    counter = subprocess.Popen(["wc", "-l"], stdin=client.stdout, stdout=subprocess.PIPE, text=True)
    client.stdout.close()
    run = wait_running(bin_dir, sock)
    rss_loaded = status_kib(agent_pid, "VmRSS")
    anon_loaded, bpf_loaded = rss_breakdown_kib(agent_pid)
    cpu0 = cpu_seconds(agent_pid)
    client_cpu0 = cpu_seconds(client.pid)
    t0 = time.monotonic()
    gen.stdin.write("go\n")
    gen.stdin.flush()
    gen_out = gen.stdout.readline().split()
    gen.wait()
    # Let the agent drain what the kernel still holds.
    deadline = time.time() + 30
    while time.time() < deadline:
        runs = json.loads(ctl(bin_dir, sock, "list", "-o", "json").stdout.splitlines()[0])
        if runs["events_seen"] + runs["events_lost"] >= n:
            break
        time.sleep(0.05)
    elapsed = time.monotonic() - t0
    cpu1 = cpu_seconds(agent_pid)
    client_cpu = cpu_seconds(client.pid) - client_cpu0
    ctl(bin_dir, sock, "stop", run["id"])
    client.wait()
    lines = int(counter.communicate()[0].strip())
    return {
        "gen_seconds": float(gen_out[1]),
        "delivered": lines,
        "seen": runs["events_seen"],
        "lost": runs["events_lost"],
        "agent_cpu": cpu1 - cpu0,
        "client_cpu": client_cpu,
        "elapsed": elapsed,
        "rss_loaded_kib": rss_loaded,
        "anon_loaded_kib": anon_loaded,
        "bpf_loaded_kib": bpf_loaded,
        "rss_peak_kib": status_kib(agent_pid, "VmHWM"),
        "client_stderr": client.stderr.read().decode().strip(),
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bin_dir")
    ap.add_argument("object")
    ap.add_argument("--events", type=int, default=2_000_000)
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root: the benchmark loads eBPF programs")
    obj = os.path.abspath(args.object)
    work = tempfile.mkdtemp(prefix="gadgetd-bench-")
    loadgen = os.path.join(work, "loadgen")
    subprocess.run(["cc", "-O2", "-o", loadgen, os.path.join(os.path.dirname(__file__), "..", "bench", "loadgen.c")], check=True)
    target = os.path.join(work, "probe-file")
    open(target, "w").close()
    sock = os.path.join(work, "gadgetd.sock")
    agent = subprocess.Popen([f"{args.bin_dir}/gadgetd", "--no-bus", "--listen", sock, "--state-dir", os.path.join(work, "state")],
                             stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 10
        while not os.path.exists(sock):
            if time.time() > deadline:
                raise SystemExit("gadgetd did not start")
            time.sleep(0.01)
        rss_idle = status_kib(agent.pid, "VmRSS")
        ctl(args.bin_dir, sock, "run", obj, "--timeout", "300ms")  # warm: page cache, first-use allocations
        ttfe = time_to_first_event(args.bin_dir, sock, obj, args.runs)
        untraced = loadgen_untraced(loadgen, args.events, target)
        r = traced_run(args.bin_dir, sock, obj, loadgen, args.events, target, agent.pid)
    finally:
        agent.terminate()
        agent.wait()
        shutil.rmtree(work, ignore_errors=True)
    n = args.events
    print(f"events generated            {n}")
    print(f"events delivered (client)   {r['delivered']}")
    print(f"events lost in the kernel   {r['lost']}  (reported by the agent)")
    print(f"events missing at client    {n - r['delivered']}  (kernel losses + slow-client drops)")
    print(f"events/s delivered          {r['delivered'] / r['elapsed']:.0f}")
    print(f"agent CPU per event         {r['agent_cpu'] * 1e6 / max(r['seen'], 1):.3f} us  ({r['agent_cpu']:.2f} s CPU)")
    print(f"client CPU per event        {r['client_cpu'] * 1e6 / max(r['seen'], 1):.3f} us  (gadgetctl -o json)")
    print(f"workload untraced           {untraced:.3f} s  ({n / untraced:.0f} calls/s)")
    print(f"workload traced             {r['gen_seconds']:.3f} s  ({n / r['gen_seconds']:.0f} calls/s)")
    print(f"traced-workload slowdown    {r['gen_seconds'] / untraced:.2f}x")
    print(f"time to first event         median {ttfe[0]:.1f} ms (min {ttfe[1]:.1f}, max {ttfe[2]:.1f}, {args.runs} runs)")
    print(f"agent RSS idle              {rss_idle / 1024:.1f} MiB")
    print(f"agent RSS, 1 gadget loaded  {r['rss_loaded_kib'] / 1024:.1f} MiB (peak during run {r['rss_peak_kib'] / 1024:.1f} MiB)")
    print(f"  of which heap/stacks      {r['anon_loaded_kib'] / 1024:.1f} MiB, "
          f"BPF ring buffer mapping {r['bpf_loaded_kib'] / 1024:.1f} MiB")
    if r["client_stderr"]:
        print(f"client said: {r['client_stderr']}", file=sys.stderr)


if __name__ == "__main__":
    main()
