#!/usr/bin/env python3
"""End-to-end benchmark of the trace_open pipeline: kernel -> gadgetd -> fd -> gadgetctl JSON.

Usage: scripts/bench.py BIN_DIR OBJECT [--events N] [--runs R] [--reps K]
                         [--floor-reader PATH] [--no-bpftrace] [--no-c-reader] [--no-stream-path]

Starts a release gadgetd on a private p2p socket, then measures:
  * time from `gadgetctl run` to the first event (object cached, median of R runs),
  * N openat calls by a C load generator pinned to CPU 0, K times each (interleaved),
    under five tracers, each reported as the median ratio to the untraced workload:
      untraced;
      trace_open attached but filtering every event out (targ_pid 1): the tracepoints alone;
      trace_open drained by the floor reader (benches/src/bin/floor-reader.rs): same object,
        a reader that only counts records: what the kernel side costs;
      trace_open loaded by libbpf and drained by a C reader that writes the JSON line gadgetd
        writes for each record (bench/json-reader.c), `| wc -l`: what formatting the agent's
        output costs a plain C consumer (the reference of the agent's CPU goal);
      bpftrace with the same enter+exit map and a printf of the same fields (bench_trace_open.bt);
      gadgetd in full (`gadgetctl run -o json | wc -l`): the agent writes the events
        straight into the pipe (direct output, `output-fd`);
      gadgetd with GADGETCTL_NO_DIRECT=1: the events over the stream socket, copied through
        gadgetctl into the pipe (the path before direct output);
    and for gadgetd: events/s delivered to the client, events lost, agent and client
    CPU us/event, agent RSS (one gadget loaded, and peak).
Needs root (loads eBPF). Prints one line per figure, then the floor table.
"""
import argparse
import json
import os
import shutil
import signal
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


def context_switches(pid):
    """(voluntary, involuntary) context switches of all of `pid`'s threads so far."""
    vol = invol = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                for line in f:
                    if line.startswith("voluntary_ctxt_switches:"):
                        vol += int(line.split()[1])
                    elif line.startswith("nonvoluntary_ctxt_switches:"):
                        invol += int(line.split()[1])
        except OSError:
            pass  # a thread that ended meanwhile
    return vol, invol


def status_kib(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def machine():
    """`CPU model, N CPUs, kernel RELEASE`: absolute figures (us/event) differ by machine
    (the same commit's C reader spent 0.34 us/event on one and 0.21 on another), ratios less."""
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            model = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), model)
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} CPUs, kernel {os.uname().release}"


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


def start_agent(bin_dir, work):
    """Starts gadgetd on a private socket under `work`; returns (Popen, socket path).

    Raises SystemExit if the socket does not appear within 10 s."""
    sock = os.path.join(work, "gadgetd.sock")
    agent = subprocess.Popen([f"{bin_dir}/gadgetd", "--no-bus", "--listen", sock,
                              "--state-dir", os.path.join(work, "state")], stderr=subprocess.DEVNULL)
    deadline = time.time() + 10
    while not os.path.exists(sock):
        if time.time() > deadline:
            agent.kill()
            raise SystemExit("gadgetd did not start")
        time.sleep(0.01)
    return agent, sock


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


def code_rss_kib(pid):
    """Resident KiB of the agent's executable file mappings (its binary's and
    libraries' code): clean, shared page-cache pages, counted in its RSS."""
    kib = 0
    code = False
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            parts = line.split()
            if "-" in parts[0] and len(parts) >= 5 and not parts[0].endswith(":"):
                code = parts[1] == "r-xp" and len(parts) > 5 and parts[5].startswith("/")
            elif parts[0] == "Rss:" and code:
                kib += int(parts[1])
    return kib


class PeakSampler:
    """Samples the agent's RSS every 10 ms while a run floods it and keeps the
    composition at the highest sample: anonymous memory (heap, stacks) and
    the rest (the binary's and libraries' file pages, BPF ring mappings).
    VmHWM gives the peak's size only; this says what it was made of."""

    def __init__(self, pid):
        self.pid = pid
        self.peak = {"rss": 0, "anon": 0}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _sample(self):
        fields = {}
        with open(f"/proc/{self.pid}/smaps_rollup") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 2 and parts[1].isdigit():
                    fields[parts[0].rstrip(":")] = int(parts[1])
        rss = fields.get("Rss", 0)
        if rss > self.peak["rss"]:
            self.peak = {"rss": rss, "anon": fields.get("Anonymous", 0)}

    def _loop(self):
        while not self.stop.is_set():
            try:
                self._sample()
            except OSError:
                return
            time.sleep(0.01)

    def finish(self):
        self.stop.set()
        self.thread.join()
        return self.peak


# The load generator runs on CPU 0 only; the tracers' consumers go where the
# scheduler puts them (on this 2-CPU machine, mostly CPU 1).
PIN = ["taskset", "-c", "0"]


def loadgen_untraced(loadgen, n, path):
    out = subprocess.run([*PIN, loadgen, str(n), path], capture_output=True, text=True, check=True).stdout.split()
    return {"gen_seconds": float(out[1])}


class Loadgen:
    """A pinned load generator waiting for `go`; `pid` is what the tracers filter on."""

    def __init__(self, loadgen, n, path):
        self.p = subprocess.Popen([*PIN, loadgen, str(n), path, "--wait"], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True)
        self.pid = int(self.p.stdout.readline())

    def run(self):
        """Starts the calls and returns the generator's own seconds for them."""
        self.p.stdin.write("go\n")
        self.p.stdin.flush()
        out = self.p.stdout.readline().split()
        self.p.wait()
        return float(out[1])


def floor_run(reader, obj, loadgen, n, path, filtered_out=False):
    """The same object drained by a reader that only counts records. With
    filtered_out, the gadget filters on pid 1, so only the tracepoints fire."""
    gen = Loadgen(loadgen, n, path)
    r = subprocess.Popen([reader, obj, "1" if filtered_out else str(gen.pid), str(n)],  # stdin: see below
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    if r.stdout.readline().strip() != "ready":
        raise SystemExit(f"floor reader failed to start (exit {r.wait()})")
    seconds = gen.run()
    try:
        # Filtered out, nothing will arrive: closing stdin stops the reader now.
        records, lost, cpu = r.communicate(timeout=None if filtered_out else 60)[0].split()
    except subprocess.TimeoutExpired:
        r.kill()
        raise SystemExit("floor reader did not see every event within 60 s")
    return {"gen_seconds": seconds, "delivered": int(records), "lost": int(lost),
            "consumer_cpu": float(cpu), "seen": int(records)}


def json_reader_run(reader, obj, loadgen, n, path):
    """The same object loaded by libbpf and drained by bench/json-reader.c, which writes
    gadgetd's JSON line for each record to a pipe counted like `| wc -l`."""
    gen = Loadgen(loadgen, n, path)
    pipe_r, pipe_w = os.pipe()
    counter = subprocess.Popen(["wc", "-l"], stdin=pipe_r, stdout=subprocess.PIPE, text=True)
    r = subprocess.Popen([reader, obj, str(gen.pid), str(n)], stdin=subprocess.PIPE, stdout=pipe_w,
                         stderr=subprocess.PIPE, text=True)
    os.close(pipe_r)
    os.close(pipe_w)
    if r.stderr.readline().strip() != "ready":
        gen.p.kill()
        raise SystemExit(f"json-reader failed to start: {r.stderr.read()[:500]}")
    seconds = gen.run()
    try:
        # Its last stderr line: RECORDS LOST CPU_SECONDS.
        records, lost, cpu = r.communicate(timeout=60)[1].split()[-3:]
    except subprocess.TimeoutExpired:
        r.kill()
        raise SystemExit("json-reader did not see every event within 60 s")
    lines = int(counter.communicate()[0].strip())
    return {"gen_seconds": seconds, "delivered": lines, "lost": int(lost),
            "consumer_cpu": float(cpu), "seen": int(records)}


def build_json_reader(work):
    """Compiles bench/json-reader.c against Debian's libbpf (libbpf-dev); returns its path."""
    out = os.path.join(work, "json-reader")
    src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bench", "json-reader.c")
    built = subprocess.run(["cc", "-O2", "-o", out, src, "-lbpf"], capture_output=True, text=True)
    if built.returncode != 0:
        raise SystemExit(f"building bench/json-reader.c failed (libbpf-dev missing? `.ci/install-deps bench`, "
                         f"or pass --no-c-reader):\n{built.stderr[-2000:]}")
    return out


def bpftrace_run(script, loadgen, n, path):
    """bpftrace doing trace_open's work; its output read (and its lines counted) like a pipe to wc -l."""
    gen = Loadgen(loadgen, n, path)
    bt = subprocess.Popen(["bpftrace", "-B", "full", script, str(gen.pid)], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, bufsize=0, env=dict(os.environ, BPFTRACE_STRLEN="200"))
    if not bt.stdout.readline().startswith(b"Attaching"):
        gen.p.kill()
        raise SystemExit(f"bpftrace failed to start: {bt.stderr.read().decode(errors='replace')[:500]}")
    lines = [0]

    def count():
        # Event lines end in `}`; bpftrace adds blank lines when it exits.
        prev = b""
        while chunk := bt.stdout.read(1 << 16):
            lines[0] += (prev + chunk).count(b"}\n") - prev.count(b"}\n")
            prev = chunk[-1:]

    counter = threading.Thread(target=count, daemon=True)
    counter.start()
    cpu0 = cpu_seconds(bt.pid)
    seconds = gen.run()
    # bpftrace flushes its perf buffers as it reads them: wait until the count stops moving.
    last, still = -1, 0
    while lines[0] < n and still < 20:
        still = still + 1 if lines[0] == last else 0
        last = lines[0]
        time.sleep(0.1)
    cpu = cpu_seconds(bt.pid) - cpu0
    # SIGINT is how bpftrace stops (it runs END); it has been seen to miss it
    # under load, so ask again, then end it.
    for sig in (signal.SIGINT, signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
        bt.send_signal(sig)
        try:
            bt.wait(timeout=5)
            break
        except subprocess.TimeoutExpired:
            pass
    counter.join()
    lost = 0
    for line in bt.stderr.read().decode(errors="replace").splitlines():
        if line.startswith("Lost ") and line.split()[1].isdigit():
            lost += int(line.split()[1])
    return {"gen_seconds": seconds, "delivered": lines[0], "lost": lost, "consumer_cpu": cpu, "seen": lines[0]}


def traced_run(bin_dir, sock, obj, loadgen, n, path, agent_pid, direct=True):
    """gadgetd in full; `direct` False: the stream path (GADGETCTL_NO_DIRECT=1)."""
    gen = Loadgen(loadgen, n, path)
    env = dict(os.environ)
    if direct:
        env.pop("GADGETCTL_NO_DIRECT", None)
    else:
        env["GADGETCTL_NO_DIRECT"] = "1"
    # The client's stderr (one line per loss report: many in a long flood)
    # goes to a file: a pipe read only at the end would fill and stall it.
    client_err = tempfile.TemporaryFile()
    client = subprocess.Popen([f"{bin_dir}/gadgetctl", "--address", sock, "run", obj, "-o", "json",
                               "-p", f"targ_pid={gen.pid}"], stdout=subprocess.PIPE, stderr=client_err, env=env)
    counter = subprocess.Popen(["wc", "-l"], stdin=client.stdout, stdout=subprocess.PIPE, text=True)
    client.stdout.close()
    run = wait_running(bin_dir, sock)
    rss_loaded = status_kib(agent_pid, "VmRSS")
    anon_loaded, bpf_loaded = rss_breakdown_kib(agent_pid)
    code_loaded = code_rss_kib(agent_pid)
    cpu0 = cpu_seconds(agent_pid)
    switches0 = context_switches(agent_pid)
    client_cpu0 = cpu_seconds(client.pid)
    sampler = PeakSampler(agent_pid)
    t0 = time.monotonic()
    gen_seconds = gen.run()
    # Let the agent drain what the kernel still holds.
    deadline = time.time() + 30
    while time.time() < deadline:
        runs = json.loads(ctl(bin_dir, sock, "list", "-o", "json").stdout.splitlines()[0])
        if runs["events_seen"] + runs["events_lost"] >= n:
            break
        time.sleep(0.05)
    elapsed = time.monotonic() - t0
    peak = sampler.finish()
    cpu1 = cpu_seconds(agent_pid)
    switches = [b - a for a, b in zip(switches0, context_switches(agent_pid))]
    client_cpu = cpu_seconds(client.pid) - client_cpu0
    ctl(bin_dir, sock, "stop", run["id"])
    client.wait()
    lines = int(counter.communicate()[0].strip())
    return {
        "gen_seconds": gen_seconds,
        "delivered": lines,
        "seen": runs["events_seen"],
        "lost": runs["events_lost"],
        "agent_cpu": cpu1 - cpu0,
        "agent_switches": switches,
        "consumer_cpu": cpu1 - cpu0,
        "client_cpu": client_cpu,
        "elapsed": elapsed,
        "rss_loaded_kib": rss_loaded,
        "anon_loaded_kib": anon_loaded,
        "bpf_loaded_kib": bpf_loaded,
        "code_loaded_kib": code_loaded,
        "rss_peak_kib": status_kib(agent_pid, "VmHWM"),
        "flood_peak": peak,
        "client_stderr": client_stderr(client_err),
    }


def client_stderr(f):
    """The last lines of what the client wrote on stderr (its loss reports)."""
    f.seek(0)
    lines = f.read().decode(errors="replace").strip().splitlines()
    f.close()
    return "\n".join(lines[-3:])


def median_run(runs):
    """The run with the median workload time (its other figures come with it)."""
    return sorted(runs, key=lambda r: r["gen_seconds"])[len(runs) // 2]


def print_floor(n, reps, results):
    untraced = statistics.median(r["gen_seconds"] for r in results["untraced"])
    print()
    print(f"floor: {n} openat+close on CPU 0, median of {reps} interleaved runs, ratio to untraced")
    print(f"{'':34}{'seconds':>8}{'calls/s':>9}{'ratio':>8}{'min-max ratio':>15}{'delivered':>10}{'lost':>6}"
          f"{'reader us/ev':>13}")
    for key, label in (("untraced", "untraced"),
                       ("filtered", "trace_open, all filtered (pid 1)"),
                       ("floor", "trace_open, counting reader"),
                       ("cjson", "C reader (libbpf), same JSON"),
                       ("bpftrace", "bpftrace, map + printf"),
                       ("gadgetd", "gadgetd, gadgetctl -o json"),
                       ("stream", "gadgetd, stream path (no direct)")):
        runs = results.get(key)
        if not runs:
            continue
        secs = [r["gen_seconds"] for r in runs]
        m = median_run(runs)
        s = statistics.median(secs)
        line = (f"{label:34}{s:8.3f}{n / s:9.0f}{s / untraced:7.2f}x"
                f"{min(secs) / untraced:8.2f}-{max(secs) / untraced:.2f}x")
        if "delivered" in m and key != "filtered":
            per = m["consumer_cpu"] * 1e6 / max(m["seen"], 1)
            line += f"{m['delivered']:10}{m['lost']:6}{per:13.3f}"
        print(line)
    if results.get("floor") and results.get("gadgetd"):
        f = statistics.median(r["gen_seconds"] for r in results["floor"])
        g = statistics.median(r["gen_seconds"] for r in results["gadgetd"])
        print(f"gadgetd vs the counting reader    {g / f:.2f}x  (the floor is what the kernel side costs)")
        if results.get("stream"):
            st = statistics.median(r["gen_seconds"] for r in results["stream"])
            print(f"stream path vs the counting reader {st / f:.2f}x")
    if results.get("cjson") and results.get("gadgetd"):
        per = [statistics.median(r["consumer_cpu"] * 1e6 / max(r["seen"], 1) for r in results[k])
               for k in ("cjson", "gadgetd")]
        print(f"agent vs the C JSON reader        {per[1] / per[0]:.2f}x  CPU per event, medians "
              f"{per[1]:.3f} / {per[0]:.3f} us (the C reader is what the same JSON costs)")
        # Each round runs the C reader and gadgetd minutes apart at most: their
        # ratio within a round shares the host's load of that moment, which
        # moves the absolute figures by more than the two differ.
        paired = sorted(g["consumer_cpu"] / max(g["seen"], 1) / (c["consumer_cpu"] / max(c["seen"], 1))
                        for c, g in zip(results["cjson"], results["gadgetd"]) if c["consumer_cpu"] > 0)
        if paired:
            print(f"agent vs the C JSON reader, paired {statistics.median(paired):.2f}x  median of "
                  f"{len(paired)} rounds' ratios (min {paired[0]:.2f}, max {paired[-1]:.2f})")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bin_dir")
    ap.add_argument("object")
    ap.add_argument("--events", type=int, default=2_000_000)
    ap.add_argument("--runs", type=int, default=7, help="time-to-first-event samples")
    ap.add_argument("--reps", type=int, default=5, help="workload runs per tracer (median of these)")
    ap.add_argument("--floor-reader", help="benches' floor-reader binary (default: BIN_DIR/floor-reader)")
    ap.add_argument("--no-bpftrace", action="store_true", help="leave out the bpftrace column")
    ap.add_argument("--no-stream-path", action="store_true",
                    help="leave out the gadgetd column with GADGETCTL_NO_DIRECT=1 (events through gadgetctl)")
    ap.add_argument("--no-c-reader", action="store_true",
                    help="leave out the C reader column (bench/json-reader.c, needs libbpf-dev)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root: the benchmark loads eBPF programs")
    obj = os.path.abspath(args.object)
    reader = args.floor_reader or os.path.join(args.bin_dir, "floor-reader")
    if not os.access(reader, os.X_OK):
        raise SystemExit(f"no floor reader at {reader}: build it with "
                         "`cargo build --release -p gadgetd-benches --bin floor-reader`")
    use_bpftrace = not args.no_bpftrace
    if use_bpftrace and shutil.which("bpftrace") is None:
        raise SystemExit("bpftrace is not installed: `.ci/install-deps bench`, or pass --no-bpftrace")
    bt_script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bench_trace_open.bt")
    work = tempfile.mkdtemp(prefix="gadgetd-bench-")
    loadgen = os.path.join(work, "loadgen")
    subprocess.run(["cc", "-O2", "-o", loadgen, os.path.join(os.path.dirname(__file__), "..", "bench", "loadgen.c")], check=True)
    target = os.path.join(work, "probe-file")
    open(target, "w").close()
    agent, sock = start_agent(args.bin_dir, work)
    n = args.events
    json_reader = None if args.no_c_reader else build_json_reader(work)
    results = {k: [] for k in ("untraced", "filtered", "floor", "cjson", "bpftrace", "gadgetd", "stream")}
    try:
        rss_idle = status_kib(agent.pid, "VmRSS")
        ctl(args.bin_dir, sock, "run", obj, "--timeout", "300ms")  # warm: page cache, first-use allocations
        ttfe = time_to_first_event(args.bin_dir, sock, obj, args.runs)
        # The peak so far comes from loading alone (no event flood yet).
        peak_loads = status_kib(agent.pid, "VmHWM")
        for _ in range(args.reps):
            results["untraced"].append(loadgen_untraced(loadgen, n, target))
            results["filtered"].append(floor_run(reader, obj, loadgen, n, target, filtered_out=True))
            results["floor"].append(floor_run(reader, obj, loadgen, n, target))
            if json_reader:
                results["cjson"].append(json_reader_run(json_reader, obj, loadgen, n, target))
            if use_bpftrace:
                results["bpftrace"].append(bpftrace_run(bt_script, loadgen, n, target))
            results["gadgetd"].append(traced_run(args.bin_dir, sock, obj, loadgen, n, target, agent.pid))
            if not args.no_stream_path:
                results["stream"].append(traced_run(args.bin_dir, sock, obj, loadgen, n, target, agent.pid,
                                                    direct=False))
    finally:
        agent.terminate()
        agent.wait()
        shutil.rmtree(work, ignore_errors=True)
    r = median_run(results["gadgetd"])
    untraced = statistics.median(x["gen_seconds"] for x in results["untraced"])
    peak = max(x["rss_peak_kib"] for x in results["gadgetd"])
    print(f"machine                     {machine()}")
    print(f"events generated            {n}")
    print(f"events delivered (client)   {r['delivered']}")
    print(f"events lost in the kernel   {r['lost']}  (reported by the agent)")
    print(f"events missing at client    {n - r['delivered']}  (kernel losses + slow-client drops)")
    print(f"events/s delivered          {r['delivered'] / r['elapsed']:.0f}")
    print(f"agent CPU per event         {r['agent_cpu'] * 1e6 / max(r['seen'], 1):.3f} us  ({r['agent_cpu']:.2f} s CPU)")
    vol, invol = r["agent_switches"]
    print(f"agent context switches      {(vol + invol) * 1000 / max(r['seen'], 1):.2f} per 1000 events  "
          f"(voluntary {vol}, involuntary {invol})")
    print(f"client CPU per event        {r['client_cpu'] * 1e6 / max(r['seen'], 1):.3f} us  (gadgetctl -o json)")
    if results["stream"]:
        st = median_run(results["stream"])
        vol, invol = st["agent_switches"]
        print(f"stream path (no direct)     agent {st['agent_cpu'] * 1e6 / max(st['seen'], 1):.3f} us, "
              f"client {st['client_cpu'] * 1e6 / max(st['seen'], 1):.3f} us per event, "
              f"{(vol + invol) * 1000 / max(st['seen'], 1):.2f} agent switches per 1000, "
              f"workload {st['gen_seconds'] / untraced:.2f}x, {st['lost']} lost in the kernel, "
              f"{st['delivered']} delivered")
    print(f"workload untraced           {untraced:.3f} s  ({n / untraced:.0f} calls/s)")
    print(f"workload traced             {r['gen_seconds']:.3f} s  ({n / r['gen_seconds']:.0f} calls/s)")
    print(f"traced-workload slowdown    {r['gen_seconds'] / untraced:.2f}x")
    print(f"time to first event         median {ttfe[0]:.1f} ms (min {ttfe[1]:.1f}, max {ttfe[2]:.1f}, {args.runs} runs)")
    print(f"agent RSS idle              {rss_idle / 1024:.1f} MiB")
    print(f"agent RSS, 1 gadget loaded  {r['rss_loaded_kib'] / 1024:.1f} MiB (peak during runs {peak / 1024:.1f} MiB, "
          f"after {args.runs + 1} loads and no flood {peak_loads / 1024:.1f} MiB)")
    print(f"  of which heap/stacks      {r['anon_loaded_kib'] / 1024:.1f} MiB, "
          f"BPF ring buffer mapping {r['bpf_loaded_kib'] / 1024:.1f} MiB, "
          f"code (binary and libraries) {r['code_loaded_kib'] / 1024:.1f} MiB")
    fp = max((x["flood_peak"] for x in results["gadgetd"]), key=lambda p: p["rss"])
    print(f"  highest sample in a flood {fp['rss'] / 1024:.1f} MiB: heap/stacks {fp['anon'] / 1024:.1f} MiB, "
          f"ring {r['bpf_loaded_kib'] / 1024:.1f} MiB, files {(fp['rss'] - fp['anon'] - r['bpf_loaded_kib']) / 1024:.1f} MiB"
          f"  (10 ms samples)")
    print_floor(n, args.reps, results)
    for i, x in enumerate(results["gadgetd"]):
        if x["client_stderr"]:
            # gadgetctl reports each slow-reader loss; its last line has the total.
            print(f"gadgetd run {i + 1}, client said: {x['client_stderr'].splitlines()[-1]}", file=sys.stderr)


if __name__ == "__main__":
    main()
