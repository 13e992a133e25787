#!/usr/bin/env python3
"""Benchmark of gadget images: pull and run time, cached vs uncached, and store size.

Usage: scripts/bench-images.py BIN_DIR [--runs R]

Starts a private docker-registry on loopback and a gadgetd on a private p2p
socket (state in a temporary directory), builds trace_open (amd64+arm64) and
pushes it, then measures (median of R runs):
  * `gadgetctl pull`: uncached (image removed first) and cached (already local),
  * time from spawning `gadgetctl run IMAGE` to its first event: uncached
    (`--pull missing` pulls first) and cached (`--pull never`),
  * store size of one image (all blobs, both architectures) and the bytes
    `image rm` frees.
Needs root (loads eBPF), docker-registry and skopeo. Prints one line per figure.
"""
import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, timeout=10):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.01)
    sys.exit(f"registry did not listen on {port}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bin_dir")
    ap.add_argument("--runs", type=int, default=7)
    a = ap.parse_args()
    ctl = os.path.join(a.bin_dir, "gadgetctl")
    work = tempfile.mkdtemp(prefix="gadgetd-bench-images-")
    os.chmod(work, 0o755)
    port = free_port()
    with open(f"{work}/registry.yml", "w") as f:
        f.write(f"version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {work}/registry\n"
                f"  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n")
    procs = []
    try:
        procs.append(subprocess.Popen(["docker-registry", "serve", f"{work}/registry.yml"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_port(port)
        sock = f"{work}/gadgetd.sock"
        agent = subprocess.Popen([os.path.join(a.bin_dir, "gadgetd"), "--no-bus", "--listen", sock,
                                  "--state-dir", f"{work}/state", "--bundled-images", f"{work}/none"],
                                 stdout=subprocess.DEVNULL, stderr=open(f"{work}/gadgetd.log", "w"))
        procs.append(agent)
        for _ in range(500):
            if os.path.exists(sock):
                break
            time.sleep(0.01)

        def g(*args, check=True):
            r = subprocess.run([ctl, "--address", sock, *args], capture_output=True, text=True)
            if check and r.returncode != 0:
                sys.exit(f"gadgetctl {' '.join(args)} failed: {r.stderr}")
            return r.stdout

        ref = f"127.0.0.1:{port}/bench/trace_open:v1"
        g("build", "--include", f"{ROOT}/include", "-t", ref, f"{ROOT}/gadgets/trace_open")
        g("push", ref)
        size = json.loads(g("image", "list", "-o", "json").splitlines()[0])["size"]

        def timed(fn):
            t0 = time.monotonic()
            fn()
            return (time.monotonic() - t0) * 1000

        def rm():
            return g("image", "rm", ref)

        pull_uncached, pull_cached = [], []
        for _ in range(a.runs):
            rm()
            pull_uncached.append(timed(lambda: g("pull", ref)))
            pull_cached.append(timed(lambda: g("pull", ref)))

        stop = threading.Event()
        probe = tempfile.NamedTemporaryFile(prefix="gadgetd-bench-img-")

        def opener():
            while not stop.is_set():
                open(probe.name).close()
                time.sleep(0.001)

        threading.Thread(target=opener, daemon=True).start()

        def first_event(pull):
            t0 = time.monotonic()
            p = subprocess.Popen([ctl, "--address", sock, "run", ref, "--pull", pull, "-o", "json",
                                  "-p", f"targ_pid={os.getpid()}", "--timeout", "10s"],
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            line = p.stdout.readline()
            ms = (time.monotonic() - t0) * 1000
            p.terminate()
            p.wait()
            if not line:
                sys.exit("run produced no event")
            time.sleep(0.2)
            return ms

        run_uncached, run_cached = [], []
        for _ in range(a.runs):
            rm()
            run_uncached.append(first_event("missing"))
            run_cached.append(first_event("never"))
        stop.set()
        freed = int(subprocess.run([ctl, "--address", sock, "image", "rm", ref], capture_output=True,
                                   text=True).stderr.split()[1])
        med = statistics.median
        print(f"image store size (trace_open, amd64+arm64, all blobs): {size} bytes")
        print(f"bytes freed by image rm (garbage-collected blobs): {freed}")
        print(f"pull uncached (loopback registry): median {med(pull_uncached):.1f} ms over {a.runs}")
        print(f"pull cached (manifest check only): median {med(pull_cached):.1f} ms over {a.runs}")
        print(f"run to first event, uncached (--pull missing): median {med(run_uncached):.1f} ms over {a.runs}")
        print(f"run to first event, cached (--pull never): median {med(run_cached):.1f} ms over {a.runs}")
    finally:
        for p in reversed(procs):
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
