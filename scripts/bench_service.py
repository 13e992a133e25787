#!/usr/bin/env python3
"""Benchmark of gadgetd's service path: detached runs into journald, and restore after kill -9.

Usage: scripts/bench_service.py BIN_DIR OBJECT [--events N] [--rate R]

Starts a namespaced systemd-journald and gadgetd on a private p2p socket, then:
  * starts trace_open detached (filtered on a C load generator's pid, log rate R/s),
    runs N openat calls, and measures events/s that reach journald, events lost
    (journald refusals + rate limit, as reported), agent CPU per event;
  * kill -9 the agent, starts it again and measures the time until it is ready
    with the run restored (median of 5);
  * the size of state.db.
Needs root. Prints one line per figure.
"""
import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def ctl(bin_dir, sock, *args):
    return subprocess.run([f"{bin_dir}/gadgetctl", "--address", sock, *args], capture_output=True, text=True, check=True)


def run_state(bin_dir, sock, run_id):
    for line in ctl(bin_dir, sock, "list", "-a", "-o", "json").stdout.splitlines():
        r = json.loads(line)
        if r["id"] == run_id:
            return r
    return None


def start_agent(bin_dir, sock, state, ns, rate, log):
    return subprocess.Popen([f"{bin_dir}/gadgetd", "--no-bus", "--listen", sock, "--state-dir", state,
                             "--journal-namespace", ns, "--log-rate", str(rate), "--log-burst", str(rate)],
                            stderr=open(log, "w"), env={**os.environ, "NO_COLOR": "1"})


def wait_log(path, text, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        with open(path) as f:
            if text in f.read():
                return
        time.sleep(0.002)
    raise SystemExit(f"timed out waiting for {text!r} in {path}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bin_dir")
    ap.add_argument("object")
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--rate", type=int, default=1_000_000, help="--log-rate/--log-burst of the agent")
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root: the benchmark loads eBPF programs")
    obj = os.path.abspath(args.object)
    work = tempfile.mkdtemp(prefix="gadgetd-bench-svc-")
    os.chmod(work, 0o755)
    ns = "gadgetdbench" + os.urandom(4).hex()
    # As under the unit (LogRateLimitIntervalSec=0): gadgetd limits itself, journald must not drop silently.
    conf = f"/etc/systemd/journald@{ns}.conf"
    with open(conf, "w") as f:
        f.write("[Journal]\nRateLimitIntervalSec=0\n")
    journald = subprocess.Popen(["/lib/systemd/systemd-journald", ns], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    agent = None
    try:
        jdir = f"/run/systemd/journal.{ns}"
        while not os.path.exists(f"{jdir}/stdout"):
            time.sleep(0.01)
        keepalive = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)  # a namespaced journald exits when idle
        keepalive.connect(f"{jdir}/stdout")
        keepalive.send(b"bench\n\n6\n0\n0\n0\n0\n")
        loadgen = os.path.join(work, "loadgen")
        subprocess.run(["cc", "-O2", "-o", loadgen, os.path.join(os.path.dirname(__file__), "..", "bench", "loadgen.c")], check=True)
        target = os.path.join(work, "probe-file")
        open(target, "w").close()
        sock, state = os.path.join(work, "gadgetd.sock"), os.path.join(work, "state")
        log = os.path.join(work, "agent.log")
        agent = start_agent(args.bin_dir, sock, state, ns, args.rate, log)
        wait_log(log, " ready")

        gen = subprocess.Popen([loadgen, str(args.events), target, "--wait"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        gen_pid = int(gen.stdout.readline())
        run_id = ctl(args.bin_dir, sock, "run", obj, "--detach", "-p", f"targ_pid={gen_pid}").stdout.strip()
        cpu0, t0 = cpu_seconds(agent.pid), time.monotonic()
        gen.stdin.write("go\n")
        gen.stdin.flush()
        gen.stdout.readline()
        gen.wait()
        deadline = time.time() + 120
        while time.time() < deadline:
            r = run_state(args.bin_dir, sock, run_id)
            if r["events_seen"] + r["events_lost"] >= args.events:
                break
            time.sleep(0.05)
        # Let the log writer finish (counters settle).
        last = None
        while last != (r["events_seen"], r["events_lost"]):
            last = (r["events_seen"], r["events_lost"])
            time.sleep(0.5)
            r = run_state(args.bin_dir, sock, run_id)
        elapsed, cpu = time.monotonic() - t0 - 0.5, cpu_seconds(agent.pid) - cpu0
        suppressed = subprocess.run(f"journalctl --namespace={ns} -o cat | grep -c Suppressed",
                                    shell=True, capture_output=True, text=True).stdout.strip()
        entries, prev = -1, -2
        while entries != prev:  # journald may still hold datagrams
            prev = entries
            time.sleep(0.5)
            entries = int(subprocess.run(f"journalctl --namespace={ns} -o cat GADGET_RUN_ID={run_id} | grep -vc '^{{\"gadgetd\"'",
                                         shell=True, capture_output=True, text=True).stdout.strip())

        restore_ms = []
        for _ in range(5):
            agent.kill()
            agent.wait()
            t = time.monotonic()
            agent = start_agent(args.bin_dir, sock, state, ns, args.rate, log)
            wait_log(log, " ready")
            restore_ms.append((time.monotonic() - t) * 1000)
            with open(log) as f:
                if "restored=1" not in f.read():
                    raise SystemExit("the run was not restored")
        ctl(args.bin_dir, sock, "stop", run_id)
        db = sum(os.path.getsize(os.path.join(state, f)) for f in os.listdir(state) if f.startswith("state.db"))
    finally:
        if agent:
            agent.terminate()
            agent.wait()
        journald.terminate()
        journald.wait()
        os.unlink(conf)
        shutil.rmtree(jdir, ignore_errors=True)
        mid = open("/etc/machine-id").read().strip()
        for base in ("/var/log/journal", "/run/log/journal"):
            shutil.rmtree(f"{base}/{mid}.{ns}", ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)
    print(f"events generated              {args.events}")
    print(f"events seen by the run        {r['events_seen']}")
    print(f"event entries in journald     {entries}")
    print(f"events lost (reported)        {r['events_lost']}")
    print(f"journald 'Suppressed' notes   {suppressed}")
    print(f"entries sent to journald/s    {entries / elapsed:.0f}  (until the run's counters settled)")
    print(f"agent CPU per event           {cpu * 1e6 / max(r['events_seen'], 1):.2f} us  ({cpu:.2f} s CPU)")
    print(f"kill -9 -> ready, restored    median {statistics.median(restore_ms):.0f} ms (min {min(restore_ms):.0f}, max {max(restore_ms):.0f}, 5 restarts)")
    print(f"state.db (+wal) size          {db / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
