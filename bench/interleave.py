#!/usr/bin/env python3
"""Times commands interleaved (one run of each in turn, ROUNDS rounds), so that a shared machine's drift
falls on all of them alike, and prints a markdown table of medians and ratios to the first command.

    interleave.py [--rounds N] [--warmup N] [--gap SECONDS] [--title TEXT] [--prepare CMD ...]
                  NAME COMMAND [NAME COMMAND ...]

Each COMMAND is run by /bin/sh -c (the same cost for every command: dash execs a simple command in place);
a run that fails ends the benchmark with its output. --gap sleeps that long before each run; --prepare,
given once per command in their order, is run (untimed) before each run of its command.
"""

import argparse
import os
import statistics
import subprocess
import sys
import time


def run(cmd):
    t0 = time.perf_counter_ns()
    p = subprocess.run(["/bin/sh", "-c", cmd], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    took = (time.perf_counter_ns() - t0) / 1e6
    if p.returncode != 0:
        sys.exit(f"failed ({p.returncode}): {cmd}\n{p.stderr.decode(errors='replace')}")
    return took


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--gap", type=float, default=0.0)
    ap.add_argument("--title", default="")
    ap.add_argument("--prepare", action="append", default=[])
    ap.add_argument("pairs", nargs="+")
    a = ap.parse_args()
    if len(a.pairs) % 2:
        sys.exit("NAME COMMAND pairs wanted")
    cmds = list(zip(a.pairs[0::2], a.pairs[1::2]))
    if a.prepare and len(a.prepare) != len(cmds):
        sys.exit("one --prepare per command wanted")
    prepare = dict(zip((n for n, _ in cmds), a.prepare))

    def one(n, c):
        if n in prepare:
            run(prepare[n])
        if a.gap:
            time.sleep(a.gap)
        return run(c)

    for _ in range(a.warmup):
        for n, c in cmds:
            one(n, c)
    times = {n: [] for n, _ in cmds}
    for _ in range(a.rounds):
        for n, c in cmds:
            times[n].append(one(n, c))
    base = statistics.median(times[cmds[0][0]])
    if a.title:
        print(f"{a.title}\n")
    print("| Command | Median [ms] | p10 [ms] | p90 [ms] | Min [ms] | Median / first |")
    print("|:---|---:|---:|---:|---:|---:|")
    for n, _ in cmds:
        t = sorted(times[n])
        q = statistics.quantiles(t, n=10) if len(t) > 1 else [t[0]] * 9
        med = statistics.median(t)
        print(f"| `{n}` | {med:.1f} | {q[0]:.1f} | {q[8]:.1f} | {t[0]:.1f} | {med / base:.2f} |")
    print(f"\n{a.rounds} rounds, interleaved, after {a.warmup} warm-up rounds, gap {a.gap * 1000:.0f} ms.")


if __name__ == "__main__":
    main()
