#!/usr/bin/env bash
# Benchmark: `bocker build` beside `buildah bud` on the same Dockerfile, context and busybox base, in one
# hyperfine run: a cold build (every step run: --no-cache for both) and a rebuild with nothing changed
# (bocker's step cache; buildah's --layers cache). Prints hyperfine's markdown table; figures go to
# docs/benchmarks.md.
#
# Needs root, a release build (cargo build --release), and: apt-get install buildah crun hyperfine
# busybox-static. buildah keeps its images in a storage of its own under the work directory (overlay, or
# STORAGE=vfs), runs RUN steps with crun, and both run them with no network (--network none), so neither
# pays for a bridge the other doesn't. The base is the same busybox rootfs: imported and named for bocker,
# committed from scratch for buildah.
set -euo pipefail
RUNS=${RUNS:-20}
STORAGE=${STORAGE:-overlay}
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/bench/common.sh"
bocker=$here/target/release/bocker
[ -x "$bocker" ] || { echo "build first: cargo build --release" >&2; exit 1; }
for tool in buildah crun hyperfine busybox; do command -v $tool >/dev/null || { echo "missing: $tool" >&2; exit 1; }; done

work=$(mktemp -d /tmp/bocker-bench.XXXXXX)
daemon_pid=""
bh() { buildah --root "$work/buildah/root" --runroot "$work/buildah/run" --storage-driver "$STORAGE" "$@"; }
cleanup() {
    bh rm --all >/dev/null 2>&1 || true
    bh rmi --all --force >/dev/null 2>&1 || true
    umount -R "$work/buildah/root" 2>/dev/null || true
    stop_bench_daemon "$work" bkbuild
    rm -rf "$work"
}
trap cleanup EXIT

rootfs=$work/rootfs
mkdir -p "$work/mnt" "$work/ctx/app"
busybox_rootfs "$rootfs"
for i in $(seq 20); do head -c 4096 /dev/urandom | base64 > "$work/ctx/app/file$i.txt"; done
cat > "$work/ctx/Dockerfile" <<'DF'
FROM busybox-base
ENV APP=/app
RUN echo building > /built && mkdir -p /app
COPY app/ /app/
RUN cat /app/*.txt | wc -c > /app/size
WORKDIR /app
CMD ["cat", "/app/size"]
DF

"$bocker" daemon --root "$work/root" --mount "$work/mnt" --store-size 4G \
    --bridge bkbuild --subnet 10.215.0.0/24 2>"$work/daemon.log" &
daemon_pid=$!
for _ in $(seq 100); do [ -e "$work/mnt/README" ] && break; sleep 0.05; done
export BOCKER_MOUNT=$work/mnt
img=$("$bocker" init "$rootfs" | cut -d' ' -f2)
"$bocker" tag "$img" busybox-base

ctr=$(bh from scratch)
bh copy "$ctr" "$rootfs" / >/dev/null
bh commit -q "$ctr" busybox-base >/dev/null
bh rm "$ctr" >/dev/null
export BUILDAH_RUNTIME=$(command -v crun)

bud="buildah --root $work/buildah/root --runroot $work/buildah/run --storage-driver $STORAGE bud -q --layers --network none --isolation oci -t bench-app"
# crun refuses hybrid cgroups ("drop all controllers from cgroupv2"): as in run-to-exit.sh, on a hybrid host
# both tools run in a private mount namespace whose /sys/fs/cgroup holds only v1 hierarchies (cpu, cpuacct,
# memory, pids, devices, freezer, blkio). Nothing on the host's mounts changes.
unshare -m --propagation private bash -c '
    set -e
    if ! grep -q "^cgroup2 /sys/fs/cgroup " /proc/mounts; then
        mount -t tmpfs tmpfs /sys/fs/cgroup
        for c in cpu cpuacct memory pids devices freezer blkio; do mkdir /sys/fs/cgroup/$c; mount -t cgroup -o $c cgroup /sys/fs/cgroup/$c; done
    fi
    # Warm both caches for the rebuilds.
    '"$bocker"' build -q --network none '"$work"'/ctx >/dev/null
    '"$bud"' '"$work"'/ctx >/dev/null
    hyperfine -N --warmup 2 --runs '"$RUNS"' --export-markdown '"$work"'/table.md \
        -n "buildah bud, cold (--no-cache)" "'"$bud"' --no-cache '"$work"'/ctx" \
        -n "bocker build, cold (--no-cache)" "'"$bocker"' build -q --no-cache --network none '"$work"'/ctx" \
        -n "buildah bud, no change (--layers)" "'"$bud"' '"$work"'/ctx" \
        -n "bocker build, no change" "'"$bocker"' build -q --network none '"$work"'/ctx" >&2
'
cat "$work/table.md"
for c in cpu cpuacct memory pids devices freezer blkio; do rmdir /sys/fs/cgroup/$c/bocker 2>/dev/null || true; done
