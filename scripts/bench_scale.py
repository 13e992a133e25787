#!/usr/bin/env python3
"""Scale benchmark: the agent with many runs and many clients (issue 19 items 4 and 5).

Usage: scripts/bench_scale.py BIN_DIR GADGETS_DIR [--counts 1,10,50] [--attachers 20]
                              [--events N] [--runs R]

Starts a release gadgetd on a private p2p socket and measures:
  * agent RSS idle, and with 1, 10 and 50 concurrent runs of trace_open (each with its
    own `gadgetctl run -o json` client writing to /dev/null): total, anonymous (heap and
    stacks) and BPF map mappings (ring buffers: a ring of B bytes is mapped twice, so
    it counts 2*B), and the peak (VmHWM);
  * the same with 1, 10 and 50 concurrent runs of different gadgets (every long-running
    gadget in GADGETS_DIR in turn; snapshots end by themselves and are left out);
  * time to first event of one more trace_open run with those runs live (median of R);
  * agent CPU per event with N openat calls by the load generator (CPU 0), traced by
    one trace_open run: alone, beside the 50 runs of different gadgets, and with 20
    attachers to the one run (`gadgetctl attach`): per event read from the kernel and
    per event delivered to a client;
  * what the CPU beside the 50 runs is made of (unless --no-parts): the measured run
    beside 49 idle runs (trace_mount: live rings, tasks and timers, no records), and
    beside each group of the 50 (gadgets on every syscall, which also run on each of
    the agent's own syscalls; gadgets on the workload's opens; the rest): the agent
    CPU and records each group adds to the measured run's, summed as "the sum of the
    parts", which is what flat means for a mix (the 50 together costing more per
    record than the sum is scaling); and the measured run alone with the workload
    held to the rate it ran at beside the 50 or a group (fewer records per wake-up).
Needs root (loads eBPF).
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import PIN, Loadgen, cpu_seconds, ctl, machine, rss_breakdown_kib, start_agent, status_kib  # noqa: E402
from bench import time_to_first_event as ttfe  # noqa: E402

# Gadgets that end by themselves (snapshots) do not stay live.
ONE_SHOT = ("snapshot_",)


def runs_json(bin_dir, sock):
    out = ctl(bin_dir, sock, "list", "-o", "json").stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


class Runs:
    """Runs started with their own `gadgetctl run` clients, output discarded."""

    def __init__(self, bin_dir, sock):
        self.bin_dir, self.sock = bin_dir, sock
        self.clients = []

    def start(self, obj, name, *extra):
        p = subprocess.Popen([f"{self.bin_dir}/gadgetctl", "--address", self.sock, "run", obj, "-o", "json",
                              "--name", name, *extra],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.clients.append((name, p))
        return p

    def wait_live(self, count, timeout=60):
        """Waits until `count` runs are listed; returns the names of clients that died."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            if len(runs_json(self.bin_dir, self.sock)) >= count:
                break
            if all(p.poll() is not None for _, p in self.clients):
                break
            time.sleep(0.05)
        return [(n, p.stderr.read().decode().strip()) for n, p in self.clients if p.poll() is not None]

    def stop_all(self):
        for name, _ in self.clients:
            ctl(self.bin_dir, self.sock, "rm", "-f", name)
        for _, p in self.clients:
            p.wait()
        self.clients = []


def memory(agent_pid):
    anon, bpf = rss_breakdown_kib(agent_pid)
    return {"rss": status_kib(agent_pid, "VmRSS"), "anon": anon, "bpf": bpf, "hwm": status_kib(agent_pid, "VmHWM")}


def fmt_mem(m):
    return (f"RSS {m['rss'] / 1024:6.1f} MiB (heap/stacks {m['anon'] / 1024:5.1f}, BPF maps {m['bpf'] / 1024:6.1f}; "
            f"peak {m['hwm'] / 1024:6.1f})")


def idle_cpu_ms_per_s(agent_pid, seconds=3.0):
    """Agent CPU per second with the runs live and no workload of ours: their
    timers, and whatever the machine's other processes make them trace."""
    cpu0 = cpu_seconds(agent_pid)
    time.sleep(seconds)
    return (cpu_seconds(agent_pid) - cpu0) * 1000 / seconds


def context_switches(pid):
    """Voluntary context switches of every thread of `pid` (its wake-ups)."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                for line in f:
                    if line.startswith("voluntary_ctxt_switches:"):
                        total += int(line.split()[1])
        except FileNotFoundError:
            pass
    return total


def cpu_ns(pid):
    """CPU time of the live threads of `pid`, ns (schedstat: finer than the
    10 ms ticks of /proc/PID/stat; threads that exit take theirs along)."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        except FileNotFoundError:
            pass
    return total


class RateLoadgen(Loadgen):
    """bench.Loadgen, at most `rate` calls per second if given."""

    def __init__(self, loadgen, n, path, rate=None):
        if rate is None:
            super().__init__(loadgen, n, path)
            return
        self.p = subprocess.Popen([*PIN, loadgen, str(n), path, "--wait", "--rate", f"{rate:.0f}"],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.pid = int(self.p.stdout.readline())


def cpu_per_event(bin_dir, sock, obj, loadgen, n, path, agent_pid, attachers=0, rate=None):
    """One trace_open run filtered on the load generator (at most `rate` opens
    per second if given), `attachers` more clients attached to it."""
    gen = RateLoadgen(loadgen, n, path, rate)
    name = f"cpu-{os.getpid()}-{attachers}"
    client = subprocess.Popen([f"{bin_dir}/gadgetctl", "--address", sock, "run", obj, "-o", "json", "--name", name,
                               "-p", f"targ_pid={gen.pid}"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    counters = [subprocess.Popen(["wc", "-l"], stdin=client.stdout, stdout=subprocess.PIPE, text=True)]
    client.stdout.close()
    deadline = time.time() + 30
    while not any(r.get("name") == name for r in runs_json(bin_dir, sock)):
        if time.time() > deadline:
            raise SystemExit("the measured run never started")
        time.sleep(0.02)
    extra = []
    for _ in range(attachers):
        a = subprocess.Popen([f"{bin_dir}/gadgetctl", "--address", sock, "attach", name, "-o", "json"],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        counters.append(subprocess.Popen(["wc", "-l"], stdin=a.stdout, stdout=subprocess.PIPE, text=True))
        a.stdout.close()
        extra.append(a)
    time.sleep(0.5 if attachers else 0.1)
    all_seen0 = sum(r["events_seen"] for r in runs_json(bin_dir, sock))
    cpu0 = cpu_ns(agent_pid)
    cs0 = context_switches(agent_pid)
    gen_seconds = gen.run()
    deadline = time.time() + 60
    seen = 0
    while time.time() < deadline:
        run = next(r for r in runs_json(bin_dir, sock) if r.get("name") == name)
        seen = run["events_seen"] + run["events_lost"]
        if seen >= n:
            break
        time.sleep(0.05)
    time.sleep(0.3)  # let the clients' queues drain
    cpu = (cpu_ns(agent_pid) - cpu0) / 1e9
    wakeups = context_switches(agent_pid) - cs0
    all_seen = sum(r["events_seen"] for r in runs_json(bin_dir, sock)) - all_seen0
    ctl(bin_dir, sock, "rm", "-f", name)
    client.wait()
    for a in extra:
        a.wait()
    delivered = sum(int(c.communicate()[0].strip() or 0) for c in counters)
    return {"cpu": cpu, "seen": run["events_seen"], "lost": run["events_lost"], "delivered": delivered,
            "all_seen": all_seen, "wakeups": wakeups, "rate": n / gen_seconds}


def median_cpu(measure, reps):
    """The measurement with the median agent CPU of `reps` (its other figures come with it)."""
    runs = sorted((measure() for _ in range(reps)), key=lambda r: r["cpu"])
    return runs[len(runs) // 2]


def fmt_cpu(label, r):
    return (f"  {label:44} {r['cpu']:6.3f} s  {r['cpu'] * 1e6 / max(r['all_seen'], 1):6.3f} us/record  "
            f"{r['wakeups'] * 1e6 / max(r['all_seen'], 1) / 1e3:6.3f} wake-ups/1k records  "
            f"(records {r['all_seen']}, lost {r['lost']}, workload {r['rate'] / 1e3:4.0f}k opens/s)")


def kind_group(obj):
    """Which part of the mix a gadget is, by what its programs attach to: every
    syscall (raw sys_enter/sys_exit: they also run on each of the agent's own
    syscalls), the workload's openat calls, or neither."""
    with open(obj, "rb") as f:
        data = f.read()
    if b"raw_tracepoint/sys_enter" in data or b"raw_tracepoint/sys_exit" in data:
        return "every syscall"
    if b"sys_enter_openat" in data or b"sys_exit_openat" in data:
        return "the workload's opens"
    return "other events"


def cpu_parts(bin_dir, sock, trace_open, kinds, count, loadgen, n, path, pid, reps, together):
    """What the CPU beside `count` runs of `kinds` is made of (see the module doc)."""
    def measure(rate=None):
        return median_cpu(lambda: cpu_per_event(bin_dir, sock, trace_open, loadgen, n, path, pid, rate=rate), reps)

    def beside(objs, rate=None):
        runs = Runs(bin_dir, sock)
        for i, obj in enumerate(objs):
            runs.start(obj, f"part-{i}")
        runs.wait_live(len(objs))
        time.sleep(1.0)
        r = measure(rate)
        runs.stop_all()
        time.sleep(0.5)
        return r

    print()
    print(f"what the agent CPU beside {count} runs is made of: {n} openat per figure, median of {reps} "
          "by agent CPU; us per record read by every run")
    alone = measure()
    print(fmt_cpu("trace_open alone", alone))
    mount = os.path.join(os.path.dirname(trace_open), "trace_mount.o")
    print(fmt_cpu(f"beside {count - 1} idle runs (trace_mount)", beside([mount] * (count - 1))))
    groups = {}
    for i in range(count):
        groups.setdefault(kind_group(kinds[i % len(kinds)]), []).append(kinds[i % len(kinds)])
    total_cpu, total_records = alone["cpu"], alone["all_seen"]
    for name, objs in sorted(groups.items()):
        r = beside(objs)
        names = sorted({os.path.basename(o)[:-2] for o in objs})
        print(fmt_cpu(f"beside the {len(objs)} runs of {name}", r) + f"  [{', '.join(names)}]")
        total_cpu += r["cpu"] - alone["cpu"]
        total_records += r["all_seen"] - alone["all_seen"]
        if name == "every syscall":
            print(fmt_cpu("  trace_open alone at that workload rate", measure(r["rate"])))
    print(f"  {'sum of the parts':44} {total_cpu:6.3f} s  {total_cpu * 1e6 / max(total_records, 1):6.3f} us/record  "
          f"(records {total_records})")
    if together is not None:
        print(fmt_cpu(f"together (beside {count} runs of different gadgets)", together))
        print(fmt_cpu("  trace_open alone at that workload rate", measure(together["rate"])))
        per = lambda cpu, records: cpu / max(records, 1)  # noqa: E731
        print(f"  together / sum of the parts, per record: "
              f"{per(together['cpu'], together['all_seen']) / per(total_cpu, total_records):.2f}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bin_dir")
    ap.add_argument("gadgets_dir")
    ap.add_argument("--counts", default="1,10,50", help="concurrent runs to measure at")
    ap.add_argument("--attachers", type=int, default=20)
    ap.add_argument("--events", type=int, default=500_000, help="openat calls for the CPU-per-event runs")
    ap.add_argument("--runs", type=int, default=5, help="time-to-first-event samples")
    ap.add_argument("--no-parts", action="store_true", help="skip what the CPU beside the runs is made of")
    ap.add_argument("--parts-only", action="store_true",
                    help="only that: the largest count of different gadgets, then the parts")
    ap.add_argument("--first-event-only", action="store_true",
                    help="only time to first event: with no runs, then with each count of different gadgets live "
                         "(no trace_open runs, no CPU figures; for A/B comparisons of builds)")
    ap.add_argument("--reps", type=int, default=3, help="CPU measurements per figure (the median is kept)")
    ap.add_argument("--parts-events", type=int, default=200_000, help="openat calls per figure of --parts")
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root: the benchmark loads eBPF programs")
    counts = [int(c) for c in args.counts.split(",")]
    trace_open = os.path.abspath(os.path.join(args.gadgets_dir, "trace_open.o"))
    kinds = sorted(os.path.abspath(os.path.join(args.gadgets_dir, f)) for f in os.listdir(args.gadgets_dir)
                   if f.endswith(".o") and not f.startswith(ONE_SHOT))
    work = tempfile.mkdtemp(prefix="gadgetd-bench-scale-")
    loadgen = os.path.join(work, "loadgen")
    subprocess.run(["cc", "-O2", "-o", loadgen,
                    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bench", "loadgen.c")], check=True)
    target = os.path.join(work, "probe-file")
    open(target, "w").close()
    agent, sock = start_agent(args.bin_dir, work)
    pid = agent.pid
    try:
        time.sleep(0.3)
        print(f"machine                          {machine()}")
        print(f"agent idle                       {fmt_mem(memory(pid))}")
        ctl(args.bin_dir, sock, "run", trace_open, "--timeout", "300ms")  # warm the page cache
        t = ttfe(args.bin_dir, sock, trace_open, args.runs)
        print(f"time to first event, no runs     median {t[0]:6.1f} ms (min {t[1]:.1f}, max {t[2]:.1f})")
        sections = (("trace_open", [trace_open]), ("different gadgets", kinds))
        if args.parts_only:
            sections, counts = sections[1:], [max(counts)]
        elif args.first_event_only:
            sections = sections[1:]
        busy = None
        for label, objs in sections:
            for k in counts:
                runs = Runs(args.bin_dir, sock)
                for i in range(k):
                    obj = objs[i % len(objs)]
                    runs.start(obj, f"scale-{i}")
                failed = runs.wait_live(k)
                time.sleep(1.0)
                live = len(runs_json(args.bin_dir, sock))
                mem = memory(pid)
                idle = None if args.first_event_only else idle_cpu_ms_per_s(pid)
                t = ttfe(args.bin_dir, sock, trace_open, args.runs)
                print(f"{k:3} runs of {label:18} live {live:3}  {fmt_mem(mem)}  first event median {t[0]:6.1f} ms "
                      f"(min {t[1]:.1f}, max {t[2]:.1f})"
                      + ("" if idle is None else f"  agent CPU with no workload {idle:5.1f} ms/s"))
                for name, err in failed:
                    print(f"    {name} ended: {err.splitlines()[-1] if err else '(no message)'}", file=sys.stderr)
                if label == "different gadgets" and k == max(counts) and not args.first_event_only:
                    busy = median_cpu(lambda: cpu_per_event(args.bin_dir, sock, trace_open, loadgen, args.events,
                                                            target, pid), args.reps)
                runs.stop_all()
                time.sleep(0.5)
        if args.first_event_only:
            return
        if not args.no_parts or args.parts_only:
            cpu_parts(args.bin_dir, sock, trace_open, kinds, max(counts), loadgen, args.parts_events, target, pid,
                      args.reps, busy)
        if args.parts_only:
            return
        alone = cpu_per_event(args.bin_dir, sock, trace_open, loadgen, args.events, target, pid)
        many = cpu_per_event(args.bin_dir, sock, trace_open, loadgen, args.events, target, pid,
                             attachers=args.attachers)
        print(f"agent after the runs ended       {fmt_mem(memory(pid))}")
        print()
        print(f"agent CPU, {args.events} openat traced by one trace_open run: per event read from the kernel by "
          "every live run (tracers' records), per event line delivered to a client")
        for label, r in (("alone, 1 client", alone),
                         (f"beside {max(counts)} runs of different gadgets", busy),
                         (f"1 client + {args.attachers} attachers", many)):
            print(f"  {label:40} {r['cpu']:6.2f} s  {r['cpu'] * 1e6 / max(r['all_seen'], 1):6.3f} us/event read  "
                  f"{r['cpu'] * 1e6 / max(r['delivered'], 1):6.3f} us/event delivered  "
                  f"(read {r['seen']} by this run, {r['all_seen']} by all runs, lost {r['lost']}, "
                  f"delivered {r['delivered']})")
    finally:
        agent.terminate()
        agent.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
