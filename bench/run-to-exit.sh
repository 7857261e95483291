#!/usr/bin/env bash
# Benchmark: run-to-exit of /bin/true through the bocker mount, side by side with `crun run` on the same
# busybox rootfs, in one hyperfine run. Prints hyperfine's markdown table; figures go to docs/benchmarks.md.
#
# Needs root, a release build (cargo build --release), and: apt-get install crun hyperfine busybox-static.
# crun refuses hybrid cgroups ("drop all controllers from cgroupv2"), so both commands run in a private
# mount namespace where /sys/fs/cgroup is the plain cgroup2 hierarchy, and crun uses no cgroup manager:
# bocker makes no cgroups yet either (that is a later issue). Nothing on the host's mounts changes.
set -euo pipefail
RUNS=${RUNS:-50}
here=$(cd "$(dirname "$0")/.." && pwd)
bocker=$here/target/release/bocker
[ -x "$bocker" ] || { echo "build first: cargo build --release" >&2; exit 1; }
for tool in crun hyperfine busybox; do command -v $tool >/dev/null || { echo "missing: $tool" >&2; exit 1; }; done

work=$(mktemp -d /tmp/bocker-bench.XXXXXX)
daemon_pid=""
cleanup() {
    # Removing the containers through the mount removes their cgroups too.
    for c in "$work"/mnt/containers/ps_*; do [ -d "$c" ] && rmdir "$c"; done 2>/dev/null || true
    [ -n "$daemon_pid" ] && kill "$daemon_pid" 2>/dev/null && wait "$daemon_pid" 2>/dev/null || true
    umount -l "$work/mnt" 2>/dev/null || true
    umount -l "$work/root/store" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

rootfs=$work/bundle/rootfs
mkdir -p "$rootfs/bin" "$work/mnt"
cp "$(command -v busybox)" "$rootfs/bin/busybox"
for a in $(busybox --list | grep -v '^busybox$'); do ln -s busybox "$rootfs/bin/$a"; done
(cd "$work/bundle" && crun spec && python3 - <<'PY'
import json
c = json.load(open("config.json"))
c["process"]["args"] = ["/bin/true"]
c["process"]["terminal"] = False
c["root"]["readonly"] = False
json.dump(c, open("config.json", "w"), indent=1)
PY
)

"$bocker" daemon --root "$work/root" --mount "$work/mnt" --store-size 2G 2>"$work/daemon.log" &
daemon_pid=$!
for _ in $(seq 100); do [ -e "$work/mnt/README" ] && break; sleep 0.05; done
export BOCKER_MOUNT=$work/mnt
img=$("$bocker" init "$rootfs" | cut -d' ' -f2)

unshare -m --propagation private bash -c '
    set -e
    if ! grep -q "^cgroup2 /sys/fs/cgroup " /proc/mounts; then mount -t cgroup2 cgroup2 /sys/fs/cgroup; fi
    hyperfine -N --warmup 5 --runs '"$RUNS"' --export-markdown '"$work"'/table.md \
        -n "crun run /bin/true" "crun --cgroup-manager=disabled run --bundle '"$work"'/bundle bench-'"$$"'" \
        -n "bocker run /bin/true (through the mount)" "'"$bocker"' run '"$img"' /bin/true" >&2
'
cat "$work/table.md"
