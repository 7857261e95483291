#!/usr/bin/env bash
# Benchmark: 100 containers started at once, bocker beside crun, and the daemon's memory meanwhile
# (bench/parallel.py: N parallel writes to containers/run, N parallel `crun run -d`, interleaved ROUNDS
# times, each batch removed before the next). Prints markdown; figures go to docs/benchmarks.md.
#
# Needs root, a release build (cargo build --release), and: apt-get install crun busybox-static python3.
# Both run `sleep 1000` in a busybox rootfs with a cgroup each (bocker's defaults: cpu weight 50 and
# 512 MB; crun the same in its bundle). bocker's containers get the default network, bridge (a veth pair
# each, on a bridge and subnet of the daemon's own: bkbench, 10.214.0.0/24); crun's a network namespace
# with loopback. On a hybrid host crun runs in a private mount namespace whose /sys/fs/cgroup holds only
# the v1 hierarchies (see run-to-exit.sh).
set -euo pipefail
N=${N:-100}
ROUNDS=${ROUNDS:-5}
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/bench/common.sh"
bocker=$here/target/release/bocker
[ -x "$bocker" ] || { echo "build first: cargo build --release" >&2; exit 1; }
for tool in crun busybox python3; do command -v $tool >/dev/null || { echo "missing: $tool" >&2; exit 1; }; done

work=$(mktemp -d /tmp/bocker-bench-par.XXXXXX)
daemon_pid=""
cleanup() {
    for c in "$work"/mnt/containers/*/ctl; do [ -e "$c" ] && echo remove >"$c"; done 2>/dev/null || true
    for i in $(seq 0 $((N - 1))); do crun delete -f "bench-par-$i" >/dev/null 2>&1 || true; done
    stop_bench_daemon "$work" bkbench
    for c in cpu cpuacct memory pids; do rmdir /sys/fs/cgroup/$c/bocker 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

rootfs=$work/rootfs
mkdir -p "$work/mnt" "$work/bundles"
busybox_rootfs "$rootfs"
# A bundle per container (crun's cgroupsPath is the bundle's), all on the one read-only rootfs.
(cd "$work/bundles" && crun spec && N=$N ROOTFS=$rootfs python3 - <<'PY'
import json, os
c = json.load(open("config.json"))
c["process"]["args"] = ["sleep", "1000"]
c["process"]["terminal"] = False
c["root"] = {"path": os.environ["ROOTFS"], "readonly": True}
c["linux"]["resources"] = {"memory": {"limit": 512 << 20}, "cpu": {"shares": 512}}
for i in range(int(os.environ["N"])):
    c["linux"]["cgroupsPath"] = f"/bocker/bench-par-{i}"
    os.mkdir(str(i))
    json.dump(c, open(f"{i}/config.json", "w"), indent=1)
PY
)

"$bocker" daemon --root "$work/root" --mount "$work/mnt" --store-size 2G \
    --bridge bkbench --subnet 10.214.0.0/24 2>"$work/daemon.log" &
daemon_pid=$!
for _ in $(seq 100); do [ -e "$work/mnt/README" ] && break; sleep 0.05; done
export BOCKER_MOUNT=$work/mnt
img=$("$bocker" init "$rootfs" | cut -d' ' -f2)

in_v1_view '
    python3 '"$here"'/bench/parallel.py '"$work/mnt $img $work/bundles $daemon_pid $N $ROUNDS"'
'
