#!/usr/bin/env bash
# A/B of two bocker builds: `bocker run --rm IMAGE /bin/true` through each one's own daemon, timed
# interleaved (bench/interleave.py), back to back and spaced GAP apart. For a change to the start's path:
# build the old and the new binary (cargo build --release, copied aside), then
#
#     bench/ab.sh OLD_BINARY NEW_BINARY
#
# Needs root, busybox and python3. Each daemon gets its own root, mount, bridge and subnet (bkab1
# 10.215.1.0/24, bkab2 10.215.2.0/24), all removed after; `--rm` keeps no container between runs.
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: $0 OLD_BINARY NEW_BINARY" >&2; exit 2; }
ROUNDS=${ROUNDS:-40}
GAP=${GAP:-0.05}
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/bench/common.sh"
bins=("$(realpath "$1")" "$(realpath "$2")")
for b in "${bins[@]}"; do [ -x "$b" ] || { echo "not a binary: $b" >&2; exit 1; }; done

work=$(mktemp -d /tmp/bocker-ab.XXXXXX)
pids=()
cleanup() {
    for i in 1 2; do
        daemon_pid=${pids[$((i - 1))]:-}
        stop_bench_daemon "$work/$i" "bkab$i"
    done
    rm -rf "$work"
}
trap cleanup EXIT

busybox_rootfs "$work/rootfs"
imgs=()
for i in 1 2; do
    mkdir -p "$work/$i/mnt"
    "${bins[$((i - 1))]}" daemon --root "$work/$i/root" --mount "$work/$i/mnt" --store-size 2G \
        --bridge "bkab$i" --subnet "10.215.$i.0/24" 2>"$work/$i/daemon.log" &
    pids+=($!)
    for _ in $(seq 100); do [ -e "$work/$i/mnt/README" ] && break; sleep 0.05; done
    imgs+=("$(BOCKER_MOUNT=$work/$i/mnt "${bins[$((i - 1))]}" init "$work/rootfs" | cut -d' ' -f2)")
done
cmd() { echo "BOCKER_MOUNT=$work/$1/mnt ${bins[$(($1 - 1))]} run --rm ${imgs[$(($1 - 1))]} /bin/true"; }
for gap in 0 "$GAP"; do
    python3 "$here/bench/interleave.py" --rounds "$ROUNDS" --gap "$gap" \
        --title "run --rm /bin/true, gap $gap s: A $1, B $2" "A" "$(cmd 1)" "B" "$(cmd 2)"
    echo
done
