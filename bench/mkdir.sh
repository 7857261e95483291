#!/usr/bin/env bash
# Benchmark: `mkdir` of 1,000 containers in one process (`mkdir containers/m1 ... m1000`: each mkdir
# returns once the container's record is durable), beside the same on the root's own filesystem: 1,000
# directories each with a record of the same size written the usual durable way (temp file, fsync,
# rename), and 1,000 bare mkdirs (the floor). With BOCKER_OLD=PATH (another build, e.g. one from before
# the records' log) a second daemon is timed too. Interleaved ROUNDS times; each batch is removed
# (rmdir, timed too) before the next. Prints markdown; figures go to docs/benchmarks.md.
#
# Needs root, a release build (cargo build --release), python3.
set -euo pipefail
N=${N:-1000}
ROUNDS=${ROUNDS:-5}
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/bench/common.sh"
bocker=$here/target/release/bocker
[ -x "$bocker" ] || { echo "build first: cargo build --release" >&2; exit 1; }

work=$(mktemp -d /tmp/bocker-bench-mkdir.XXXXXX)
daemon_pid="" old_pid=""
cleanup() {
    stop_bench_daemon "$work" bkbench
    if [ -n "$old_pid" ]; then
        daemon_pid=$old_pid stop_bench_daemon "$work/old" bkbench2
    fi
    rm -rf "$work"
}
trap cleanup EXIT

mkdir -p "$work/mnt"
"$bocker" daemon --root "$work/root" --mount "$work/mnt" --store-size 1G \
    --bridge bkbench --subnet 10.214.0.0/24 2>"$work/daemon.log" &
daemon_pid=$!
mounts=("$work/mnt")
if [ -n "${BOCKER_OLD:-}" ]; then
    mkdir -p "$work/old/mnt"
    "$BOCKER_OLD" daemon --root "$work/old/root" --mount "$work/old/mnt" --store-size 1G \
        --bridge bkbench2 --subnet 10.214.1.0/24 2>"$work/old/daemon.log" &
    old_pid=$!
    mounts+=("$work/old/mnt")
fi
for m in "${mounts[@]}"; do
    for _ in $(seq 200); do [ -e "$m/README" ] && break; sleep 0.05; done
    [ -e "$m/README" ] || { echo "a daemon did not mount $m" >&2; cat "$work/daemon.log" >&2; exit 1; }
done
# A record's size, for the peer's: one container's, as the daemon writes it.
mkdir "$work/mnt/containers/probe"
size=$(stat -c %s "$work/root/state/containers/probe/record.json")
rmdir "$work/mnt/containers/probe"

N=$N ROUNDS=$ROUNDS SIZE=$size PLAIN=$work/plain NEW=$work/mnt OLD="${mounts[1]:-}" python3 - <<'PY'
import os, statistics, subprocess, time

n, rounds, size = int(os.environ["N"]), int(os.environ["ROUNDS"]), int(os.environ["SIZE"])
plain = os.environ["PLAIN"]
os.mkdir(plain)
names = [f"m{i}" for i in range(1, n + 1)]

def timed(f):
    t0 = time.perf_counter()
    f()
    return time.perf_counter() - t0

def mount_batch(mnt):
    d = f"{mnt}/containers"
    make = timed(lambda: subprocess.run(["mkdir"] + [f"{d}/{x}" for x in names], check=True))
    gone = timed(lambda: subprocess.run(["rmdir"] + [f"{d}/{x}" for x in names], check=True))
    return make, gone

def durable_batch():
    record = b"x" * size
    def make():
        for x in names:
            os.mkdir(f"{plain}/{x}")
            fd = os.open(f"{plain}/{x}/record.json.tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.write(fd, record)
            os.fsync(fd)
            os.close(fd)
            os.rename(f"{plain}/{x}/record.json.tmp", f"{plain}/{x}/record.json")
    def gone():
        for x in names:
            os.unlink(f"{plain}/{x}/record.json")
            os.rmdir(f"{plain}/{x}")
    return timed(make), timed(gone)

def bare_batch():
    make = timed(lambda: subprocess.run(["mkdir"] + [f"{plain}/{x}" for x in names], check=True))
    gone = timed(lambda: subprocess.run(["rmdir"] + [f"{plain}/{x}" for x in names], check=True))
    return make, gone

rows = [("bocker: mkdir containers/NAME (this build)", lambda: mount_batch(os.environ["NEW"]))]
if os.environ["OLD"]:
    rows.append(("bocker: mkdir containers/NAME (BOCKER_OLD)", lambda: mount_batch(os.environ["OLD"])))
rows.append((f"ext4: mkdir + {size}-byte record, fsync, rename", durable_batch))
rows.append(("ext4: bare mkdir (not durable)", bare_batch))
times = {r[0]: [] for r in rows}
for _ in range(rounds):
    for name, f in rows:
        times[name].append(f())
print(f"| {n} in one process | mkdir, median [s] | min [s] | max [s] | per mkdir [ms] | removal, median [s] |")
print("|:---|---:|---:|---:|---:|---:|")
for name, _ in rows:
    make = [t[0] for t in times[name]]
    gone = [t[1] for t in times[name]]
    m = statistics.median(make)
    print(f"| {name} | {m:.3f} | {min(make):.3f} | {max(make):.3f} | {m * 1000 / n:.2f} | {statistics.median(gone):.3f} |")
print(f"\n{rounds} rounds, interleaved; records of {size} bytes.")
PY
