#!/usr/bin/env bash
# Runs the whole test suite again inside a pure cgroup-v2 Debian 12 guest (QEMU, no network device
# at all), whatever cgroups the host has: issue 18, "Pure v2 in CI".
#
#   tests/vm/run.sh [CARGO TEST ARGS...] [-- TEST BINARY ARGS...]
#
# 1. On the host, `cargo test --no-run --message-format=json` builds the test binaries (lib, bins,
#    integration tests; not the doctests, which need rustc in the guest).
# 2. tests/vm/build-image.sh gives the guest (cached in /var/cache/bockerfs-vm/, rebuilt only when
#    its package list or scripts change).
# 3. The guest boots its stock kernel with systemd (unified hierarchy only) from a throwaway qcow2
#    overlay of the cached root disk; the checkout (and the target directory, if elsewhere) is
#    shared read-write by 9p at the same absolute path as on the host, so the paths compiled into
#    the test binaries (CARGO_BIN_EXE_*, CARGO_MANIFEST_DIR) hold. A unit with Delegate=yes runs
#    the test binaries as root, BOCKERFS_VM_JOBS at a time, as cargo test would run each (cwd the
#    package root), then powers off.
# 4. Prints each binary's result and the totals, the failing binaries' output, and exits non-zero
#    if any binary failed (or the guest did not finish).
#
# Environment: BOCKERFS_VM_ACCEL=kvm|tcg (default: KVM if a probe shows a guest kernel really boots
# under it, else TCG), BOCKERFS_VM_MEM (8G), BOCKERFS_VM_CPUS (2), BOCKERFS_VM_TIMEOUT (seconds from
# this script's start to the end of the guest run, 3600), BOCKERFS_VM_TEST_TIMEOUT (per binary,
# 1800), BOCKERFS_VM_JOBS (test binaries at once in the guest, 2; the slowest of the last whole run
# first), BOCKERFS_VM_BOOT_WAIT (seconds for the guest to say it is up before it is booted again, at
# most 3 boots; 240), BOCKERFS_VM_TESTS (a file of "NAME<TAB>CWD<TAB>EXE" lines to run instead of
# building: binaries built already), BOCKERFS_VM_LOGS (a directory to keep the failing binaries' whole
# output in), RUST_TEST_THREADS and RUST_BACKTRACE are passed on. Needs root (QEMU shares the tree as
# root).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
CHECKOUT="$(cd "$HERE/../.." && pwd)"
log() { echo "vm: $*" >&2; }
[ "$(id -u)" -eq 0 ] || { log "run as root"; exit 1; }

CARGO_ARGS=()
TEST_ARGS=()
while [ $# -gt 0 ]; do
    if [ "$1" = "--" ]; then shift; TEST_ARGS=("$@"); break; fi
    CARGO_ARGS+=("$1"); shift
done

T0=$(date +%s)
RUN="$(mktemp -d "${TMPDIR:-/var/tmp}/bockerfs-vm-run.XXXXXX")"
J="$RUN/job"
mkdir -p "$J"
QEMU_PID=""
TAIL_PID=""
cleanup() {
    if [ -n "$QEMU_PID" ] && kill -0 "$QEMU_PID" 2>/dev/null; then
        kill "$QEMU_PID" 2>/dev/null || true
        sleep 1
        kill -9 "$QEMU_PID" 2>/dev/null || true
    fi
    if [ -n "$TAIL_PID" ]; then kill "$TAIL_PID" 2>/dev/null || true; fi
    rm -rf "$RUN"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# 1. The test binaries.
if [ -n "${BOCKERFS_VM_TESTS:-}" ]; then
    cp "$BOCKERFS_VM_TESTS" "$J/tests"
else
    log "building the test binaries (cargo test --no-run)"
    (cd "$CHECKOUT" && cargo test --no-run --message-format=json "${CARGO_ARGS[@]}") >"$RUN/build.json"
    python3 - "$RUN/build.json" >"$J/tests" <<'EOF'
import json, os, sys
seen, rows = set(), []
for line in open(sys.argv[1]):
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") != "compiler-artifact" or not m.get("profile", {}).get("test") or not m.get("executable"):
        continue
    t = m["target"]
    kind = t["kind"][0]
    name = ("lib-" if kind == "lib" else "bin-" if kind == "bin" else "") + t["name"]
    if name in seen:
        continue
    seen.add(name)
    order = {"lib": 0, "bin": 1}.get(kind, 2)
    rows.append((order, name, os.path.dirname(m["manifest_path"]), m["executable"]))
for _, name, cwd, exe in sorted(rows):
    print(f"{name}\t{cwd}\t{exe}")
EOF
fi
# The slowest first (as the last run here timed them), so the JOBS at once end together.
DURATIONS="${BOCKERFS_VM_CACHE:-/var/cache/bockerfs-vm}/durations"
if [ -s "$DURATIONS" ]; then
    awk -F'\t' 'NR == FNR { split($0, d, " "); secs[d[1]] = d[2]; next } { print (($1 in secs) ? secs[$1] : 100000) "\t" $0 }' \
        "$DURATIONS" "$J/tests" | sort -t"$(printf '\t')" -k1,1nr | cut -f2- >"$J/tests.sorted"
    mv "$J/tests.sorted" "$J/tests"
fi
NBIN=$(grep -c . "$J/tests" || true)
[ "$NBIN" -gt 0 ] || { log "no test binaries"; exit 1; }

# The shares: the checkout, and every directory a test binary or its package lives in that is not
# under it (a CARGO_TARGET_DIR elsewhere: its root, three levels above target/debug/deps/X).
{
    cut -f2 "$J/tests"
    cut -f3 "$J/tests" | while read -r exe; do dirname "$(dirname "$(dirname "$exe")")"; done
} | sort -u | awk 'NR == 1 || index($0, last "/") != 1 { print; last = $0 }' >"$RUN/paths"
: >"$J/mounts"
VIRTFS=()
i=0
while read -r p; do
    VIRTFS+=(-virtfs "local,path=$p,mount_tag=src$i,security_model=passthrough")
    echo "src$i $p" >>"$J/mounts"
    i=$((i + 1))
done <"$RUN/paths"

{
    [ -n "${RUST_TEST_THREADS:-}" ] && printf 'export RUST_TEST_THREADS=%q\n' "$RUST_TEST_THREADS"
    [ -n "${RUST_BACKTRACE:-}" ] && printf 'export RUST_BACKTRACE=%q\n' "$RUST_BACKTRACE"
    printf 'TEST_TIMEOUT=%q\n' "${BOCKERFS_VM_TEST_TIMEOUT:-1800}"
    printf 'JOBS=%q\n' "${BOCKERFS_VM_JOBS:-2}"
    printf 'ARGS=%q\n' "${TEST_ARGS[*]:-}"
} >"$J/env"
cp "$HERE/guest.sh" "$J/guest.sh"

# 2. The guest.
IMG="$("$HERE/build-image.sh")"

# 3. KVM only if a guest kernel really boots under it (on a PVM host QEMU with -cpu host aborts on
# an MSR and without it a stock kernel never leaves its decompressor): the kernel alone, no root,
# must reach its "cannot mount root" panic within seconds.
probe_kvm() {
    [ -w /dev/kvm ] || return 1
    local out="$RUN/kvm-probe.log"
    (timeout 15 qemu-system-x86_64 -accel kvm -cpu host -m 512M -nodefaults -nic none -display none \
        -no-reboot -serial "file:$out" -kernel "$IMG/vmlinuz" -append "console=ttyS0 panic=-1" \
        </dev/null >/dev/null 2>&1; true) 2>/dev/null
    grep -q "Kernel panic" "$out" 2>/dev/null
}
case "${BOCKERFS_VM_ACCEL:-}" in
    kvm) ACCEL=(-accel kvm -cpu host) ;;
    tcg) ACCEL=(-accel tcg,thread=multi -cpu max) ;;
    "") if probe_kvm; then ACCEL=(-accel kvm -cpu host); else ACCEL=(-accel tcg,thread=multi -cpu max); fi ;;
    *) log "BOCKERFS_VM_ACCEL: kvm or tcg"; exit 1 ;;
esac
log "accelerator: ${ACCEL[1]}; $NBIN test binaries; shares: $(tr '\n' ' ' <"$RUN/paths")"

# BOCKERFS_VM_DEBUG=1: the kernel's and systemd's messages on the console, printed after.
KQUIET="quiet systemd.show_status=0"
[ -z "${BOCKERFS_VM_DEBUG:-}" ] || KQUIET="systemd.show_status=1 systemd.log_level=info"

TB=$(date +%s)
# Counted from this script's start: the build, the image and the probe are inside it.
DEADLINE=$((T0 + ${BOCKERFS_VM_TIMEOUT:-3600}))
# One boot: a fresh overlay of the cached root disk (removed after), the run's progress followed. Waits
# until the guest powers off, the deadline passes, or (returns 2) it never said "up" within BOOT_WAIT
# seconds: under TCG a guest kernel now and then wedges early (RCU stalls, a timer that never fires).
BOOT_WAIT=${BOCKERFS_VM_BOOT_WAIT:-240}
boot() {
    rm -f "$RUN/overlay.qcow2" "$J/exit" "$J/system"
    rm -rf "$J/logs"
    : >"$J/results"
    qemu-img create -q -f qcow2 -F qcow2 -b "$IMG/root.qcow2" "$RUN/overlay.qcow2" || return 1
    : >"$J/progress"
    : >"$RUN/console.log"
    local started up=""
    started=$(date +%s)
    qemu-system-x86_64 "${ACCEL[@]}" -machine q35 -m "${BOCKERFS_VM_MEM:-8G}" -smp "${BOCKERFS_VM_CPUS:-2}" \
        -nodefaults -nic none -display none -no-reboot -serial "file:$RUN/console.log" \
        -kernel "$IMG/vmlinuz" -initrd "$IMG/initrd.img" \
        -append "root=/dev/vda rw console=ttyS0 panic=-1 bockerfs.run $KQUIET" \
        -drive "file=$RUN/overlay.qcow2,format=qcow2,if=virtio,discard=unmap,cache=unsafe" \
        -device virtio-rng-pci \
        -virtfs "local,path=$J,mount_tag=job,security_model=passthrough" "${VIRTFS[@]}" \
        </dev/null >"$RUN/qemu.log" 2>&1 &
    QEMU_PID=$!
    tail -n +1 -f --pid="$QEMU_PID" "$J/progress" > >(sed -u 's/^/vm: /' >&2) &
    TAIL_PID=$!
    local rc=0
    while kill -0 "$QEMU_PID" 2>/dev/null; do
        if [ "$(date +%s)" -ge "$DEADLINE" ]; then
            log "the guest run took more than ${BOCKERFS_VM_TIMEOUT:-3600}s: stopping it"
            kill "$QEMU_PID" 2>/dev/null || true
            break
        fi
        if [ -z "$up" ] && grep -q '^up ' "$J/progress" 2>/dev/null; then up=1; fi
        if [ -z "$up" ] && [ $(($(date +%s) - started)) -ge "$BOOT_WAIT" ]; then
            log "the guest did not come up within ${BOOT_WAIT}s; its console's last lines:"
            tail -n 5 "$RUN/console.log" >&2 || true
            kill "$QEMU_PID" 2>/dev/null || true
            rc=2
            break
        fi
        sleep 2
    done
    wait "$QEMU_PID" 2>/dev/null || true
    QEMU_PID=""
    # tail ends by itself within a second of QEMU (--pid), after the last line.
    wait "$TAIL_PID" 2>/dev/null || true
    TAIL_PID=""
    return "$rc"
}
booted=""
for attempt in 1 2 3; do
    if boot; then booted=1; break; fi
    if [ "$attempt" -lt 3 ]; then log "booting again (attempt $((attempt + 1)) of 3)"; fi
done
[ -n "$booted" ] || log "the guest never came up in 3 boots"
touch "$J/results"

# 4. The results.
echo
echo "== guest: $(head -n 4 "$J/system" 2>/dev/null | tr '\n' ' ')"
pass=0 fail=0 tests_passed=0 tests_failed=0 tests_ignored=0
FAILED=()
while read -r name rc secs; do
    res=$(grep '^test result:' "$J/logs/$name.log" 2>/dev/null | tail -n 1 || true)
    # Sum every "test result:" line: N passed; M failed; K ignored.
    read -r p f g < <(awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i; if ($(i+1) ~ /^ignored/) g += $i } } END { print p+0, f+0, g+0 }' "$J/logs/$name.log" 2>/dev/null || echo "0 0 0")
    tests_passed=$((tests_passed + p)); tests_failed=$((tests_failed + f)); tests_ignored=$((tests_ignored + g))
    if [ "$rc" -eq 0 ]; then
        pass=$((pass + 1)); printf 'PASS %-28s %5ss  %s\n' "$name" "$secs" "$res"
    else
        fail=$((fail + 1)); FAILED+=("$name"); printf 'FAIL %-28s %5ss  rc=%s %s\n' "$name" "$secs" "$rc" "$res"
    fi
done <"$J/results"
ran=$(grep -c . "$J/results" || true)
# This run's durations, over the last ones' (those of binaries it did not run are kept).
if [ "$ran" -eq "$NBIN" ] && [ ${#TEST_ARGS[@]} -eq 0 ] && mkdir -p "$(dirname "$DURATIONS")"; then
    { awk '{ print $1, $3 }' "$J/results"; cat "$DURATIONS" 2>/dev/null; } | awk '!seen[$1]++' >"$DURATIONS.new" &&
        mv "$DURATIONS.new" "$DURATIONS" || true
fi
for name in "${FAILED[@]}"; do
    echo
    echo "== $name: output (from its failures)"
    if grep -q '^failures:' "$J/logs/$name.log"; then
        # Each failed test's first lines (its panic, the start of its backtrace and of the logs the
        # test prints), then libtest's list of the failures.
        sed -n '/^failures:/,$p' "$J/logs/$name.log" |
            awk '/^---- / { n = 0 } /^failures:$/ { list++ } list > 1 || n++ < 60 { print }' | cut -c1-400
    else
        tail -n 200 "$J/logs/$name.log" | cut -c1-400
    fi
    if [ -n "${BOCKERFS_VM_LOGS:-}" ]; then
        mkdir -p "$BOCKERFS_VM_LOGS" && cp "$J/logs/$name.log" "$BOCKERFS_VM_LOGS/"
        echo "(all of it: $BOCKERFS_VM_LOGS/$name.log)"
    fi
done
TE=$(date +%s)
echo
echo "== guest suite: $pass of $NBIN binaries passed, $fail failed; tests: $tests_passed passed, $tests_failed failed, $tests_ignored ignored; guest $((TE - TB))s, all $((TE - T0))s"
[ -z "${BOCKERFS_VM_DEBUG:-}" ] || { echo "== console"; cat "$RUN/console.log"; }
if [ "$ran" -lt "$NBIN" ] || [ ! -s "$J/exit" ]; then
    echo "== the guest did not finish ($ran of $NBIN binaries ran); its console:"
    tail -n 60 "$RUN/console.log" 2>/dev/null || true
    tail -n 20 "$RUN/qemu.log" 2>/dev/null || true
    exit 1
fi
[ "$fail" -eq 0 ] && [ "$(cat "$J/exit")" = 0 ]
