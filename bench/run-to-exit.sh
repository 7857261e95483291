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
# Networking: plain `bocker run` (one write to containers/run; the default network, bridge: a veth pair on
# a bridge, an address, a default route) is the figure beside crun. Then BOCKER_NETWORK=none (its own
# network namespace, loopback only, as crun's default) and BOCKER_NETWORK=bridge, both through the CLI's
# mkdir / write / start path, measure what bridge networking adds. The daemon gets a bridge and subnet of
# its own (bkbench, 10.214.0.0/24), removed after. Every run keeps its container (and its address) until
# the end, so RUNS + PAIRS + warm-ups must stay under the subnet's 253 addresses.
#
# GAP=SECONDS sleeps that long before each run (hyperfine --prepare). Joining fresh v1 cgroups is cheap
# only within ~15 ms of the previous cgroup migration on the host (the kernel's rcu_sync on the migration
# lock); back-to-back runs of a fast tool stay inside that window, spaced runs (as in real use) don't.
set -euo pipefail
RUNS=${RUNS:-50}
GAP=${GAP:-0}
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/bench/common.sh"
bocker=$here/target/release/bocker
[ -x "$bocker" ] || { echo "build first: cargo build --release" >&2; exit 1; }
for tool in crun hyperfine busybox; do command -v $tool >/dev/null || { echo "missing: $tool" >&2; exit 1; }; done

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

unshare -m --propagation private bash -c '
    set -e
    if ! grep -q "^cgroup2 /sys/fs/cgroup " /proc/mounts; then
        mount -t tmpfs tmpfs /sys/fs/cgroup
        for c in cpu cpuacct memory pids; do mkdir /sys/fs/cgroup/$c; mount -t cgroup -o $c cgroup /sys/fs/cgroup/$c; done
    fi
    hyperfine -N --warmup 5 --runs '"$RUNS"' --prepare "sleep '"$GAP"'" --export-markdown '"$work"'/table.md \
        -n "crun run /bin/true (cgroups)" "crun --cgroup-manager=cgroupfs run --bundle '"$work"'/bundle bench-'"$$"'" \
        -n "bocker run /bin/true (containers/run: network bridge, the default)" "'"$bocker"' run '"$img"' /bin/true" \
        -n "bocker run /bin/true (network none)" "env BOCKER_NETWORK=none '"$bocker"' run '"$img"' /bin/true" \
        -n "bocker run /bin/true (network bridge)" "env BOCKER_NETWORK=bridge '"$bocker"' run '"$img"' /bin/true" >&2
'
cat "$work/table.md"

# What bridge networking adds, robust to the machine's drift: none and bridge runs interleaved (hyperfine
# runs all of one command, then all of the other), GAP apart, compared by median.
PAIRS=${PAIRS:-40}
for _ in $(seq "$PAIRS"); do
    for net in none bridge; do
        sleep "$GAP"
        t0=$(date +%s%N)
        BOCKER_NETWORK=$net "$bocker" run "$img" /bin/true
        echo "$net $(( ($(date +%s%N) - t0) / 1000 ))" >>"$work/pairs"
    done
done
median() { grep "^$1 " "$work/pairs" | cut -d' ' -f2 | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
none_us=$(median none)
bridge_us=$(median bridge)
echo
awk -v p="$PAIRS" -v n="$none_us" -v b="$bridge_us" 'BEGIN { printf "Interleaved, %d pairs: median network none %.1f ms, bridge %.1f ms: bridge adds %.1f ms\n", p, n / 1000, b / 1000, (b - n) / 1000 }'
# crun removes its group after each run; its bocker/ parent goes if nothing else is in it.
for c in cpu cpuacct memory pids; do rmdir /sys/fs/cgroup/$c/bocker 2>/dev/null || true; done
