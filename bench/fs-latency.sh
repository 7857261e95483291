#!/usr/bin/env bash
# Benchmark: how long reads of the control tree take, beside the same reads of a tmpfs tree of the same
# shape in the same run (the floor: the kernel's cost of the system calls with no daemon behind them).
# Prints a markdown table; figures go to docs/benchmarks.md.
#
# Needs root, a release build (cargo build --release), gcc and bindfs. BOCKER=PATH times another build (an
# older one, for a before/after).
#
# A peer runs beside both: bindfs (libfuse, its default options) mounted over the tmpfs tree, the same
# reads through another FUSE server that does no work of its own: what FUSE's round trips cost here.
#
# - "cat status": one open + read + close of containers/NAME/status, timed around the three system calls
#   in a loop of a small C program compiled here (no process spawn), N times after 1,000 warm-up rounds,
#   first with one container, then with CONTAINERS (1,000) made with mkdir. p50/p90/p99 in microseconds.
# - "stat status": one fstatat of it, the same way; "stat errors": one of `errors`, whose attributes the
#   kernel never keeps, so each is one round trip to the daemon (the floor of anything that asks it).
# - "ls -l containers/" and "ls -l containers/*/": the real ls, spawned LS_RUNS (LS_DIRS_RUNS) times with
#   its output to /dev/null; the first (cold) run is shown apart, the percentiles are of the runs after it.
#
# The daemon gets a root, mount point, bridge and subnet of its own (bkfslat, 10.215.0.0/24), removed after.
set -euo pipefail
N=${N:-20000}
CONTAINERS=${CONTAINERS:-1000}
LS_RUNS=${LS_RUNS:-30}
LS_DIRS_RUNS=${LS_DIRS_RUNS:-5}
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/bench/common.sh"
bocker=${BOCKER:-$here/target/release/bocker}
[ -x "$bocker" ] || { echo "build first: cargo build --release" >&2; exit 1; }
command -v gcc >/dev/null || { echo "missing: gcc" >&2; exit 1; }
command -v bindfs >/dev/null || { echo "missing: bindfs (apt install bindfs)" >&2; exit 1; }

work=$(mktemp -d /tmp/bocker-fslat.XXXXXX)
daemon_pid=""
cleanup() {
    stop_bench_daemon "$work" bkfslat
    umount -l "$work/bindfs" 2>/dev/null || true
    umount "$work/tmpfs" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

cat >"$work/lat.c" <<'C'
/* lat cat|stat PATH N: open+read+close (or fstatat) of PATH N times, after 1000 rounds of warm-up;
 * prints p50 p90 p99 in microseconds.  lat run N CMD...: spawns CMD N times, stdout to /dev/null;
 * prints the first run, then p50 p90 p99 of the others, in milliseconds. */
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
extern char **environ;
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec * 1e9 + t.tv_nsec; }
static int cmp(const void *a, const void *b) { double x = *(double *)a, y = *(double *)b; return (x > y) - (x < y); }
static double pct(double *v, int n, double p) { int i = (int)(p * (n - 1) + 0.5); return v[i]; }
int main(int argc, char **argv) {
    if (argc < 4) return 2;
    int n = atoi(argv[argc > 3 && strcmp(argv[1], "run") == 0 ? 2 : 3]);
    double *v = malloc(sizeof(double) * (n + 1));
    char buf[65536];
    if (strcmp(argv[1], "run") == 0) {
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
        for (int i = 0; i <= n; i++) {
            pid_t pid; int st;
            double t0 = now();
            if (posix_spawnp(&pid, argv[3], &fa, NULL, argv + 3, environ) != 0) { perror("spawn"); return 1; }
            waitpid(pid, &st, 0);
            if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) { fprintf(stderr, "%s failed\n", argv[3]); return 1; }
            v[i] = (now() - t0) / 1e6;
        }
        qsort(v + 1, n, sizeof(double), cmp);
        printf("%.1f %.1f %.1f %.1f\n", v[0], pct(v + 1, n, 0.5), pct(v + 1, n, 0.9), pct(v + 1, n, 0.99));
        return 0;
    }
    int stat_only = strcmp(argv[1], "stat") == 0;
    const char *path = argv[2];
    for (int i = -1000; i < n; i++) {
        double t0 = now();
        if (stat_only) {
            struct stat s;
            if (fstatat(AT_FDCWD, path, &s, 0) != 0) { perror(path); return 1; }
        } else {
            int fd = open(path, O_RDONLY);
            if (fd < 0 || read(fd, buf, sizeof buf) <= 0) { perror(path); return 1; }
            close(fd);
        }
        if (i >= 0) v[i] = (now() - t0) / 1e3;
    }
    qsort(v, n, sizeof(double), cmp);
    printf("%.1f %.1f %.1f\n", pct(v, n, 0.5), pct(v, n, 0.9), pct(v, n, 0.99));
    return 0;
}
C
gcc -O2 -o "$work/lat" "$work/lat.c"
lat=$work/lat

# The floor: a tmpfs tree of the same shape, a status file in each container's directory.
mkdir -p "$work/tmpfs" "$work/mnt" "$work/bindfs"
mount -t tmpfs -o size=64M tmpfs "$work/tmpfs"
bindfs "$work/tmpfs" "$work/bindfs"
files=$(printf '%s\n' cap_add cmd commit cpu.max cpu.usage_usec cpu.weight ctl env error events exec exit_code \
    finished_at image ip logs memory.current memory.max memory.peak network pid pids.current pids.max ports \
    privileged started_at status volumes volumes-from)
floor_container() {
    mkdir -p "$work/tmpfs/containers/$1/execs"
    for f in $files; do : >"$work/tmpfs/containers/$1/$f"; done
    echo created >"$work/tmpfs/containers/$1/status"
}

"$bocker" daemon --root "$work/root" --mount "$work/mnt" --store-size 2G \
    --bridge bkfslat --subnet 10.215.0.0/24 2>"$work/daemon.log" &
daemon_pid=$!
for _ in $(seq 200); do [ -e "$work/mnt/README" ] && break; sleep 0.05; done
[ -e "$work/mnt/README" ] || { cat "$work/daemon.log" >&2; exit 1; }

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
rows=()
row() { rows+=("| $1 | $2 | $3 | $4 |"); }
us() { read -r p50 p90 p99 <<<"$1"; echo "$p50 / $p90 / $p99"; }
ms() { read -r first p50 p90 p99 <<<"$1"; echo "$first; $p50 / $p90 / $p99"; }
# One row of a cat or stat of containers/c0000/status on the three trees: LABEL cat|stat.
status_row() {
    local t cells=()
    for t in mnt bindfs tmpfs; do cells+=("$(us "$($lat "$2" "$work/$t/containers/c0000/status" "$N")")"); done
    row "$1" "${cells[@]}"
}

mkdir "$work/mnt/containers/c0000"
floor_container c0000
status_row "cat status, 1 container" cat
status_row "stat status, 1 container" stat
# `errors` keeps no attributes in the kernel: each stat is one GETATTR, the cost of one round trip.
row "stat errors (one round trip)" "$(us "$($lat stat "$work/mnt/errors" "$N")")" "-" "-"

t0=$(date +%s%N)
for i in $(seq 1 $((CONTAINERS - 1))); do mkdir "$work/mnt/containers/$(printf c%04d "$i")"; done
made_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
for i in $(seq 1 $((CONTAINERS - 1))); do floor_container "$(printf c%04d "$i")"; done

status_row "cat status, $CONTAINERS containers" cat
status_row "stat status, $CONTAINERS containers" stat
row "ls -l containers/ ($CONTAINERS)" "$(ms "$($lat run "$LS_RUNS" ls -l "$work/mnt/containers/")")" \
    "$(ms "$($lat run "$LS_RUNS" ls -l "$work/bindfs/containers/")")" \
    "$(ms "$($lat run "$LS_RUNS" ls -l "$work/tmpfs/containers/")")"
row "ls -l containers/*/ ($CONTAINERS x 31)" \
    "$(ms "$($lat run "$LS_DIRS_RUNS" sh -c "ls -l $work/mnt/containers/*/")")" \
    "$(ms "$($lat run "$LS_DIRS_RUNS" sh -c "ls -l $work/bindfs/containers/*/")")" \
    "$(ms "$($lat run "$LS_DIRS_RUNS" sh -c "ls -l $work/tmpfs/containers/*/")")"

echo "$bocker: $CONTAINERS containers made with mkdir in $made_ms ms; load average $load_before before, $(cut -d' ' -f1-3 /proc/loadavg) after"
echo
echo "| read | bocker tree | bindfs over tmpfs (FUSE peer) | tmpfs (floor) |"
echo "|:---|---:|---:|---:|"
printf '%s\n' "${rows[@]}"
echo
echo "cat and stat: p50 / p90 / p99 in us over $N rounds. ls: the first (cold) run; p50 / p90 / p99 in ms of the runs after it."
