#!/usr/bin/env python3
"""N containers started at once, bocker beside crun, interleaved ROUNDS times; and the daemon's memory.

    parallel.py MOUNT IMAGE BUNDLES DAEMON_PID [N] [ROUNDS]

bocker: N threads each write "IMAGE sleep 1000" to MOUNT/containers/run (the write answers once the
container runs; the id is read back on the same open file), all released at once. crun: N threads each
run `crun run -d --bundle BUNDLES/I ID` (it returns once the container runs). The batch's time is from the
release to the last answer. After each bocker batch the daemon's RSS is read (VmRSS, and VmHWM: its peak
since it started), then every container is removed (`remove` to ctl, then rmdir). Prints markdown.
"""

import os
import statistics
import subprocess
import sys
import threading
import time


def batch(n, one):
    gate = threading.Barrier(n + 1)
    errors = []

    def worker(i):
        gate.wait()
        try:
            one(i)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(f"{i}: {e}")

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    gate.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    took = time.perf_counter() - t0
    if errors:
        sys.exit("failed: " + "; ".join(errors[:5]))
    return took


def kib(pid, key):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def main():
    mount, image, bundles, daemon = sys.argv[1:5]
    n = int(sys.argv[5]) if len(sys.argv) > 5 else 100
    rounds = int(sys.argv[6]) if len(sys.argv) > 6 else 5
    ids = []
    lock = threading.Lock()

    def bocker_one(_):
        with open(f"{mount}/containers/run", "r+b", buffering=0) as f:
            f.write(f"{image} sleep 1000".encode())
            name = f.read().decode().strip()
        with lock:
            ids.append(name)

    def crun_one(i):
        # No pipe: the detached container keeps its stdio open, and a pipe would never reach EOF.
        subprocess.run(["crun", "--cgroup-manager=cgroupfs", "run", "-d", "--bundle", f"{bundles}/{i}", f"bench-par-{i}"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def crun_clean():
        for i in range(n):
            subprocess.run(["crun", "delete", "-f", f"bench-par-{i}"], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)

    def bocker_clean():
        for name in ids:
            with open(f"{mount}/containers/{name}/ctl", "w") as f:
                f.write("remove")
        ids.clear()

    idle_rss = kib(daemon, "VmRSS")
    crun_t, bocker_t, rss = [], [], []
    for _ in range(rounds):
        crun_t.append(batch(n, crun_one))
        crun_clean()
        bocker_t.append(batch(n, bocker_one))
        rss.append(kib(daemon, "VmRSS"))
        bocker_clean()
    c, b = statistics.median(crun_t), statistics.median(bocker_t)
    print(f"| {n} started at once | median [s] | min [s] | max [s] | median / crun's |")
    print("|:---|---:|---:|---:|---:|")
    print(f"| `crun run -d` | {c:.3f} | {min(crun_t):.3f} | {max(crun_t):.3f} | 1.00 |")
    print(f"| `containers/run` | {b:.3f} | {min(bocker_t):.3f} | {max(bocker_t):.3f} | {b / c:.2f} |")
    running = statistics.median(rss)
    print(f"\n{rounds} rounds, interleaved. The daemon: {idle_rss / 1024:.1f} MiB resident idle, "
          f"{running / 1024:.1f} MiB with {n} running ({(running - idle_rss) / n:.0f} KiB each), "
          f"peak {kib(daemon, 'VmHWM') / 1024:.1f} MiB (VmHWM, since its start).")


if __name__ == "__main__":
    main()
