# Shared by the benchmarks (sourced): what each one's daemon leaves to undo, and the busybox root
# filesystem they run.

# stop_bench_daemon WORK [BRIDGE]: ends the daemon $daemon_pid, unmounts its tree and store under WORK,
# and removes its bridge and the daemon's nftables tables for it, when it had one of its own.
stop_bench_daemon() {
    [ -n "${daemon_pid:-}" ] && kill "$daemon_pid" 2>/dev/null && wait "$daemon_pid" 2>/dev/null || true
    umount -l "$1/mnt" 2>/dev/null || true
    umount -l "$1/root/store" 2>/dev/null || true
    if [ -n "${2:-}" ]; then
        ip link del "$2" 2>/dev/null || true
        nft delete table ip "bocker_$2" 2>/dev/null || true
        nft delete table bridge "bocker_$2" 2>/dev/null || true
    fi
}

# busybox_rootfs DIR: DIR/bin holds the host's busybox and a link per applet.
busybox_rootfs() {
    mkdir -p "$1/bin"
    cp "$(command -v busybox)" "$1/bin/busybox"
    for a in $(busybox --list | grep -v '^busybox$'); do ln -s busybox "$1/bin/$a"; done
}

# in_v1_view SCRIPT: runs bash SCRIPT in a private mount namespace whose /sys/fs/cgroup holds only the
# v1 cpu, cpuacct, memory and pids hierarchies when the host is hybrid (crun refuses hybrid cgroups;
# mounting a hierarchy again attaches to the host's, whose mounts stay untouched). On pure v2 it runs
# SCRIPT in the private namespace as it is.
in_v1_view() {
    unshare -m --propagation private bash -c '
        set -e
        if ! grep -q "^cgroup2 /sys/fs/cgroup " /proc/mounts; then
            mount -t tmpfs tmpfs /sys/fs/cgroup
            for c in cpu cpuacct memory pids; do mkdir /sys/fs/cgroup/$c; mount -t cgroup -o $c cgroup /sys/fs/cgroup/$c; done
        fi
        '"$1"
}
