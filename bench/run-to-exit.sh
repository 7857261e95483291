#!/usr/bin/env bash
# Benchmark: run-to-exit of /bin/true through the bocker mount, side by side with `crun run` on the same
# busybox rootfs, in one hyperfine run. Prints hyperfine's markdown table; figures go to docs/benchmarks.md.
#
# Needs root, a release build (cargo build --release), and: apt-get install crun hyperfine busybox-static.
# Both make a cgroup per container with the same limits (bocker's defaults: cpu shares 512, 512 MB).
# crun refuses hybrid cgroups ("drop all controllers from cgroupv2"): on a hybrid host both commands run
# in a private mount namespace whose /sys/fs/cgroup holds only the v1 cpu, cpuacct, memory and pids
# hierarchies (mounting one again attaches to the host's), so crun sees pure v1 and manages its groups
# under bocker/ there. Nothing on the host's mounts changes.
#
# Networking: `bocker run` (one write to containers/run) gets the default network, bridge: a veth pair on
# a bridge, an address, a default route. crun gets its default network namespace, loopback only. The
# daemon gets a bridge and subnet of its own (bkbench, 10.214.0.0/24), removed after. Every run keeps its
# container (and its address) until the end, so 2 x (ROUNDS + 3) must stay under 253.
#
# The two are timed interleaved (bench/interleave.py: one run of each in turn), twice: back to back, and
# spaced GAP apart (50 ms), as containers start in real use. On v1 cgroups joining fresh groups is cheap
# only within ~15 ms of the previous migration on the host (the kernel's rcu_sync on the migration lock);
# on v2 bocker's process is born in its group (clone3 CLONE_INTO_CGROUP) and no migration happens.
set -euo pipefail
ROUNDS=${ROUNDS:-40}
GAP=${GAP:-0.05}
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/bench/common.sh"
bocker=$here/target/release/bocker
[ -x "$bocker" ] || { echo "build first: cargo build --release" >&2; exit 1; }
for tool in crun busybox python3; do command -v $tool >/dev/null || { echo "missing: $tool" >&2; exit 1; }; done

work=$(mktemp -d /tmp/bocker-bench.XXXXXX)
daemon_pid=""
cleanup() {
    # Removing the containers through the mount removes their cgroups too.
    for c in "$work"/mnt/containers/ps_*; do [ -d "$c" ] && rmdir "$c"; done 2>/dev/null || true
    stop_bench_daemon "$work" bkbench
    rm -rf "$work"
}
trap cleanup EXIT

rootfs=$work/bundle/rootfs
mkdir -p "$work/mnt"
busybox_rootfs "$rootfs"
(cd "$work/bundle" && crun spec && python3 - <<'PY'
import json
c = json.load(open("config.json"))
c["process"]["args"] = ["/bin/true"]
c["process"]["terminal"] = False
c["root"]["readonly"] = False
c["linux"]["cgroupsPath"] = "/bocker/bench-crun"
c["linux"]["resources"] = {"memory": {"limit": 512 << 20}, "cpu": {"shares": 512}}
json.dump(c, open("config.json", "w"), indent=1)
PY
)

"$bocker" daemon --root "$work/root" --mount "$work/mnt" --store-size 2G \
    --bridge bkbench --subnet 10.214.0.0/24 2>"$work/daemon.log" &
daemon_pid=$!
for _ in $(seq 100); do [ -e "$work/mnt/README" ] && break; sleep 0.05; done
export BOCKER_MOUNT=$work/mnt
img=$("$bocker" init "$rootfs" | cut -d' ' -f2)

layout="v1 (the host is hybrid: both see its v1 hierarchies only)"
grep -q "^cgroup2 /sys/fs/cgroup " /proc/mounts && layout="v2"
in_v1_view '
    for gap in 0 '"$GAP"'; do
        python3 '"$here"'/bench/interleave.py --rounds '"$ROUNDS"' --gap $gap --title "run-to-exit, gap ${gap} s, kernel $(uname -r), cgroups '"$layout"'" \
            "crun run /bin/true (cgroups)" "crun --cgroup-manager=cgroupfs run --bundle '"$work"'/bundle bench-'"$$"'" \
            "bocker run /bin/true (network bridge, the default)" "'"$bocker"' run '"$img"' /bin/true"
        echo
    done
'
# crun removes its group after each run; its bocker/ parent goes if nothing else is in it.
for c in cpu cpuacct memory pids; do rmdir /sys/fs/cgroup/$c/bocker 2>/dev/null || true; done
