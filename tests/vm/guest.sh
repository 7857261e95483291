#!/bin/sh
# Runs inside the guest (tests/vm/run.sh puts it in the run's 9p share, the image's
# bockerfs-vm-boot runs it from bockerfs-vm.service, Delegate=yes, as root).
#
# The share ($J) holds what the host wrote: mounts ("TAG PATH": 9p shares to mount at the same
# absolute path as on the host), tests ("NAME<TAB>CWD<TAB>EXE"), env (sourced: the environment the
# host passes on, and ARGS for every test binary). Writes back: progress (one line per event),
# results ("NAME RC SECONDS"), logs/NAME.log (each binary's output), system (what the guest is) and
# exit (0 when every binary passed), then the unit powers the machine off.
J=/run/bockerfs-vm
# bash for `wait -n` (the image's /bin/sh is dash).
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
set -u
say() { echo "$*" >>"$J/progress"; echo "bockerfs-vm: $*" >/dev/console 2>/dev/null || true; }
say "up $(cut -d' ' -f1 /proc/uptime)s after boot"

while read -r tag path; do
    [ -n "$tag" ] || continue
    mkdir -p "$path"
    mount -t 9p -o trans=virtio,version=9p2000.L,msize=524288,cache=loose "$tag" "$path" ||
        { say "cannot mount $tag at $path"; echo 1 >"$J/exit"; exit 1; }
done <"$J/mounts"

ARGS=""
# shellcheck disable=SC1091
. "$J/env"
export HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

{
    echo "kernel: $(uname -r)"
    echo "cgroup mounts: $(grep cgroup /proc/mounts | tr '\n' ';')"
    echo "root controllers: $(cat /sys/fs/cgroup/cgroup.controllers)"
    echo "our cgroup: $(cat /proc/self/cgroup)"
    echo "our controllers: $(cat "/sys/fs/cgroup$(cut -d: -f3 /proc/self/cgroup)/cgroup.controllers")"
    echo "cpus: $(nproc), memory: $(grep MemTotal /proc/meminfo)"
    echo "disk: $(df -h / /tmp | tail -n +2 | tr '\n' ';')"
} >"$J/system" 2>&1
say "$(grep 'our controllers' "$J/system")"

mkdir -p "$J/logs"
: >"$J/results"
TAB="$(printf '\t')"
# One test binary, as cargo test runs it: from the package root, with cargo's runtime variables.
run_one() {
    local name=$1 cwd=$2 exe=$3 start rc secs
    say "run $name"
    start=$(date +%s)
    # shellcheck disable=SC2086
    (cd "$cwd" && CARGO_MANIFEST_DIR="$cwd" exec timeout -k 10 "${TEST_TIMEOUT:-1800}" "$exe" $ARGS) \
        >"$J/logs/$name.log" 2>&1 </dev/null
    rc=$?
    secs=$(($(date +%s) - start))
    echo "$name $rc $secs" >>"$J/results"
    say "$name rc=$rc ${secs}s $(grep '^test result:' "$J/logs/$name.log" | tail -n 1)"
}
# JOBS binaries at once (each runs its tests on its own threads too): under emulation much of a test's
# time is waiting, and the tests are apart from each other across processes as within one (own names,
# roots, cgroups, bridges and subnets reserved machine-wide).
running=0
while IFS="$TAB" read -r name cwd exe; do
    [ -n "$name" ] || continue
    if [ "$running" -ge "${JOBS:-2}" ]; then
        wait -n
        running=$((running - 1))
    fi
    run_one "$name" "$cwd" "$exe" </dev/null &
    running=$((running + 1))
done <"$J/tests"
wait
failed=0
while read -r _ rc _; do [ "$rc" -eq 0 ] || failed=1; done <"$J/results"

df -h / >>"$J/system" 2>&1
echo "$failed" >"$J/exit"
say "done"
sync
# Off at once: what matters is on the 9p share already (synced), the root disk is a throwaway overlay.
echo 1 >/proc/sys/kernel/sysrq
echo o >/proc/sysrq-trigger
exit 0
