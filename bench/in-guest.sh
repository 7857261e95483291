#!/usr/bin/env bash
# The benchmarks inside the pure cgroup-v2 guest of tests/vm/ (run there as if it were a test binary):
#
#   cargo build --release
#   printf 'bench\t%s\t%s\n' "$PWD" "$PWD/bench/in-guest.sh" >/tmp/bench.tsv
#   BOCKERFS_VM_TESTS=/tmp/bench.tsv tests/vm/run.sh -- [run-to-exit parallel-starts mkdir pull]
#
# Runs the named benchmarks (all four by default) one after the other and writes what they print to
# target/bench-guest.md in the checkout (shared with the host), as well as to its output. The guest's
# image has crun, skopeo, umoci and podman for them (tests/vm/build-image.sh). Under TCG emulation
# every figure is several times the host's: read the ratios, taken within one run.
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
out=$here/target/bench-guest.md
benches=("$@")
[ ${#benches[@]} -gt 0 ] || benches=(run-to-exit parallel-starts mkdir pull)
{
    echo "# In the guest: kernel $(uname -r), $(nproc) CPUs, cgroup $(stat -fc %T /sys/fs/cgroup), $(date -u +%F)"
    echo
} >"$out"
rc=0
for b in "${benches[@]}"; do
    echo "## $b" >>"$out"
    echo >>"$out"
    # Fewer rounds than on the host: under emulation each takes several times as long.
    case $b in
        run-to-exit) rounds=20 ;;
        *) rounds=3 ;;
    esac
    ROUNDS=$rounds "$here/bench/$b.sh" >>"$out" 2>"$out.$b.err" ||
        { rc=1; echo "(failed: $(tail -n 3 "$out.$b.err"))" >>"$out"; }
    echo >>"$out"
done
cat "$out"
exit $rc
