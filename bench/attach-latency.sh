#!/usr/bin/env bash
# Benchmark: an interactive round trip, a keystroke's echo, through a container's attach socket (client ->
# monitor -> the container's terminal -> busybox sh's line editor -> the terminal -> monitor -> client),
# side by side in one run with `script` running the same busybox sh on a terminal (one relay process over
# a pty pair, as the monitor is), and with a plain pty and no relay (the floor). Prints a markdown table
# of p50 / p90 / p99 in microseconds; figures go to docs/benchmarks.md.
#
# Needs root, a release build (cargo build --release), python3, busybox and script (util-linux).
# KEYS=N keystrokes per row (default 2000). The daemon uses its own bridge (bkattach, 10.215.0.0/24);
# the container runs with network none. Everything is removed at the end, also on failure.
set -euo pipefail
KEYS=${KEYS:-2000}
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/bench/common.sh"
bocker=$here/target/release/bocker
[ -x "$bocker" ] || { echo "build first: cargo build --release" >&2; exit 1; }
for tool in busybox script python3; do command -v $tool >/dev/null || { echo "missing: $tool" >&2; exit 1; }; done

work=$(mktemp -d /tmp/bocker-attach-bench.XXXXXX)
daemon_pid=""
cleanup() {
    echo kill > "$work/mnt/containers/keys/ctl" 2>/dev/null || true
    for _ in $(seq 50); do grep -q exited "$work/mnt/containers/keys/status" 2>/dev/null && break; sleep 0.1; done
    rmdir "$work/mnt/containers/keys" 2>/dev/null || true
    stop_bench_daemon "$work" bkattach
    rm -rf "$work"
}
trap cleanup EXIT

rootfs=$work/rootfs
mkdir -p "$work/mnt"
busybox_rootfs "$rootfs"

"$bocker" daemon --root "$work/root" --mount "$work/mnt" --store-size 1G \
    --bridge bkattach --subnet 10.215.0.0/24 2>"$work/daemon.log" &
daemon_pid=$!
for _ in $(seq 100); do [ -e "$work/mnt/README" ] && break; sleep 0.05; done
export BOCKER_MOUNT=$work/mnt
img=$("$bocker" init "$rootfs" | cut -d' ' -f2)
c=$work/mnt/containers/keys
mkdir "$c"
echo "$img" > "$c/image"
echo sh > "$c/cmd"
echo none > "$c/network"
echo true > "$c/tty"
echo true > "$c/interactive"
echo start > "$c/ctl"

KEYS=$KEYS python3 - "$c/attach" <<'PY'
import os, pty, select, socket, statistics, sys, time

KEYS = int(os.environ["KEYS"])

def stats(name, samples):
    samples.sort()
    q = lambda p: samples[min(len(samples) - 1, int(p * len(samples)))] * 1e6
    print(f"| {name} | {len(samples)} | {q(0.5):.0f} | {q(0.9):.0f} | {q(0.99):.0f} |")

def rounds(send, wait_echo, reset):
    out = []
    for i in range(KEYS):
        if i % 50 == 49:
            reset()
        t0 = time.perf_counter()
        send(b"x")
        wait_echo()
        out.append(time.perf_counter() - t0)
    return out

# Through the attach socket.
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.connect(sys.argv[1])
s.send(b"h\x03")
s.send(b"w" + (24).to_bytes(2, "little") + (80).to_bytes(2, "little"))
def sock_wait(token=b"x"):
    while True:
        p = s.recv(65536)
        if p[:1] == b"o" and token in p[1:]:
            return
def sock_reset():
    s.send(b"i\x15")  # ^U: the line typed so far goes
    time.sleep(0.005)
    s.setblocking(False)
    try:
        while s.recv(65536):
            pass
    except BlockingIOError:
        pass
    s.setblocking(True)
s.send(b"iecho ready\n")
sock_wait(b"ready")
time.sleep(0.2)
sock_reset()
attach = rounds(lambda b: s.send(b"i" + b), sock_wait, sock_reset)

def pty_rows(argv):
    pid, fd = pty.fork()
    if pid == 0:
        os.execvp(argv[0], argv)
    def wait_echo(token=b"x"):
        buf = b""
        while token not in buf:
            select.select([fd], [], [])
            buf += os.read(fd, 65536)
    def reset():
        os.write(fd, b"\x15")
        time.sleep(0.005)
        while select.select([fd], [], [], 0)[0]:
            os.read(fd, 65536)
    os.write(fd, b"echo ready\n")
    wait_echo(b"ready")
    time.sleep(0.2)
    reset()
    out = rounds(lambda b: os.write(fd, b), wait_echo, reset)
    os.write(fd, b"\x15exit\n")
    os.waitpid(pid, 0)
    return out

relay = pty_rows(["script", "-q", "-c", "busybox sh", "/dev/null"])
plain = pty_rows(["busybox", "sh"])
print("| keystroke echo, busybox sh | keys | p50 us | p90 us | p99 us |")
print("|---|---|---|---|---|")
stats("bocker attach (socket, monitor, container's pty)", attach)
stats("script (one relay process over a pty pair)", relay)
stats("plain pty, no relay (floor)", plain)
PY
