#!/usr/bin/env bash
# Benchmark: user-defined networks and their DNS (issue 17), bockerfs beside Podman (netavark and
# aardvark-dns) in one run, on the same busybox root filesystem. Figures go to docs/benchmarks.md.
#
# 1. Name lookups from inside a container: a container on network 1 asks the network's DNS server (on its
#    gateway, from its /etc/resolv.conf) for the A record of another container on it, `srv`:
#    - dnsq: bench/dnsq.c, built static here and copied into the root filesystem: one query at a time over
#      UDP for SECS seconds, no process per query; it prints queries answered per second and latencies;
#    - nslookup: busybox `nslookup -type=a srv` in a shell loop for SECS seconds, counted: a process per
#      lookup, as a shell script or a health check asks.
#    Only names the network owns are asked: nothing goes to an upstream.
# 2. What each extra network costs a start: hyperfine on `run IMAGE /bin/true` on the default network,
#    then on one, two and three user networks (each adds an interface, an address and a DNS entry).
#    `srv` keeps running on network 1 on both sides, so each network's DNS server is up (aardvark-dns
#    runs while a container is on one of Podman's networks; bockerfs's servers run with the network).
#    Every bocker row gives --network (`bridge` for the default), so all four take the CLI's mkdir / write
#    files / start path (a plain `bocker run` takes the one-write containers/run path, faster by the
#    record's writes: docs/benchmarks.md, run-to-exit).
#
# Needs root, a release build (cargo build --release) and: apt-get install podman crun hyperfine
# busybox-static gcc libc6-dev (podman brings netavark and aardvark-dns: Debian 12's 1.4.0).
#
# Addresses: the bench's daemon gets its own bridge (bkbnet, SUBNET, default 10.216.0.0/24), its networks
# come from 10.216.128.0/17 (bridges bkbnet-0, -1, -2) and its DNS forwards to 127.0.0.1:9 (nothing listens
# there); Podman's default network is 10.215.10.0/24 and its networks 10.215.11-13.0/24, given explicitly.
# Every subnet is refused if the host routes anything overlapping it. Podman runs in a private mount
# namespace (as buildah in build.sh) whose /sys/fs/cgroup holds only v1 hierarchies (crun refuses hybrid
# cgroups), whose /run is a directory of the work dir (netavark's IPAM database, aardvark-dns's
# configuration, the network namespaces, crun's state), and whose /etc/resolv.conf names only 127.0.0.1
# (aardvark-dns's upstream). Its storage, configuration (CONTAINERS_CONF) and networks' files are under the
# work dir too. Podman's client containers get --dns <network 1's gateway>: else Podman adds 8.8.8.8 and
# 8.8.4.4 to their resolv.conf after aardvark's (the host's only resolver being loopback there).
#
# Cleanup, on failure too: Podman's containers, networks and image (in its namespace), then anything left:
# aardvark-dns, podman0..3, netavark's iptables chains (and their tables if the host had none), bocker's
# containers and networks, its daemon, bridges (bkbnet, bkbnet-N) and nftables tables, the work dir.
set -euo pipefail
SECS=${SECS:-10}
RUNS=${RUNS:-20}
SUBNET=${SUBNET:-10.216.0.0/24}
POOL=10.216.128.0/17
P_DEFAULT=10.215.10.0/24
P_NETS=(10.215.11.0/24 10.215.12.0/24 10.215.13.0/24)
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/bench/common.sh"
bocker=$here/target/release/bocker

# pm ARGS: podman on the bench's storage.
pm() { podman --root "$work/podman/root" --runroot "$work/podman/run" --storage-driver overlay "$@"; }

# The part run in Podman's mount namespace (this script again, with --inner).
inner() {
    if ! grep -q "^cgroup2 /sys/fs/cgroup " /proc/mounts; then
        mount -t tmpfs tmpfs /sys/fs/cgroup
        for c in cpu cpuacct cpuset memory pids devices freezer blkio; do
            mkdir /sys/fs/cgroup/$c
            mount -t cgroup -o $c cgroup /sys/fs/cgroup/$c
        done
    fi
    mount --bind "$work/podman/sysrun" /run
    mount --bind "$work/podman/resolv.conf" /etc/resolv.conf
    inner_cleanup() {
        pm rm -af -t 0 >/dev/null 2>&1 || true
        pm network rm -f pn1 pn2 pn3 >/dev/null 2>&1 || true
        pm rmi -af >/dev/null 2>&1 || true
        for c in cpu cpuacct cpuset memory pids devices freezer blkio; do rmdir /sys/fs/cgroup/$c/libpod_parent 2>/dev/null || true; done
    }
    trap inner_cleanup EXIT
    tar -C "$work/rootfs" -c . | pm import -q - bench-busybox >/dev/null
    for i in 1 2 3; do pm network create --subnet "${P_NETS[i - 1]}" "pn$i" >/dev/null; done
    local pgw=${P_NETS[0]%.0/24}.1
    loop='sleep '"$SECS"' & s=$!; n=0; f=0
        while kill -0 $s 2>/dev/null; do if nslookup -type=a srv >/dev/null 2>&1; then n=$((n+1)); else f=$((f+1)); fi; done
        echo "lookups=$n failed=$f per_s=$((n / '"$SECS"'))"'

    pm run -d --name srv --network pn1 bench-busybox sleep 3600 >/dev/null
    "$bocker" run -d --name srv --network bn1 "$img" sleep 3600 >/dev/null
    echo "== resolv.conf: podman, bocker" >&2
    pm run --rm --network pn1 --dns "$pgw" bench-busybox cat /etc/resolv.conf >&2
    "$bocker" run --network bn1 "$img" cat /etc/resolv.conf >&2
    # Each figure with the packets network 1's bridge received meanwhile (the queries, and a few ARP).
    local pbr bbr
    pbr=$(pm network inspect pn1 --format '{{.NetworkInterface}}')
    bbr=$(cat "$work/mnt/networks/bn1/bridge")
    rx() { cat "/sys/class/net/$1/statistics/rx_packets"; }
    counted() { # counted BRIDGE COMMAND...: its output, and the bridge's packets received during it
        local before out
        before=$(rx "$1")
        out=$("${@:2}")
        echo "$out rx_packets=$(($(rx "$1") - before))"
    }
    {
        echo "podman dnsq: $(counted "$pbr" pm run --rm --network pn1 --dns "$pgw" bench-busybox /bin/dnsq srv "$SECS")"
        echo "bocker dnsq: $(counted "$bbr" "$bocker" run --network bn1 "$img" /bin/dnsq srv "$SECS")"
        echo "podman nslookup: $(counted "$pbr" pm run --rm --network pn1 --dns "$pgw" bench-busybox sh -c "$loop")"
        echo "bocker nslookup: $(counted "$bbr" "$bocker" run --network bn1 "$img" sh -c "$loop")"
    } | tee "$work/dns.txt" >&2

    local p="podman --root $work/podman/root --runroot $work/podman/run --storage-driver overlay run"
    hyperfine -N --warmup 3 --runs "$RUNS" --export-markdown "$work/table.md" --export-json "$work/table.json" \
        -n "podman run, default network" "$p bench-busybox /bin/true" \
        -n "podman run, 1 network" "$p --network pn1 bench-busybox /bin/true" \
        -n "podman run, 2 networks" "$p --network pn1 --network pn2 bench-busybox /bin/true" \
        -n "podman run, 3 networks" "$p --network pn1 --network pn2 --network pn3 bench-busybox /bin/true" \
        -n "bocker run, default network" "$bocker run --network bridge $img /bin/true" \
        -n "bocker run, 1 network" "$bocker run --network bn1 $img /bin/true" \
        -n "bocker run, 2 networks" "$bocker run --network bn1 --network bn2 $img /bin/true" \
        -n "bocker run, 3 networks" "$bocker run --network bn1 --network bn2 --network bn3 $img /bin/true" >&2
}

if [ "${1:-}" = --inner ]; then
    set -euo pipefail
    inner
    exit
fi

[ -x "$bocker" ] || { echo "build first: cargo build --release" >&2; exit 1; }
for tool in podman crun hyperfine busybox gcc python3; do command -v $tool >/dev/null || { echo "missing: $tool" >&2; exit 1; }; done
for tool in netavark aardvark-dns; do [ -x /usr/lib/podman/$tool ] || { echo "missing: /usr/lib/podman/$tool" >&2; exit 1; }; done
# overlaps NET: a route of the host (but the default one) inside or around NET.
overlaps() { ip -4 route show root "$1" | grep -q . || ip -4 route show match "$1" | grep -vq '^default'; }
for net in "$SUBNET" "$POOL" "$P_DEFAULT" "${P_NETS[@]}"; do
    if overlaps "$net"; then echo "the host already routes into $net: pick another (SUBNET=...)" >&2; exit 1; fi
done
for l in bkbnet podman0 podman1 podman2 podman3; do
    if ip link show "$l" >/dev/null 2>&1; then echo "$l exists already" >&2; exit 1; fi
done

work=$(mktemp -d /tmp/bocker-bench.XXXXXX)
daemon_pid=""
had_nat=$(nft list table ip nat >/dev/null 2>&1 && echo 1 || echo 0)
had_filter=$(nft list table ip filter >/dev/null 2>&1 && echo 1 || echo 0)
ip_forward=$(sysctl -n net.ipv4.ip_forward)
export work
export CONTAINERS_CONF=$work/podman/containers.conf

cleanup() {
    set +e
    # What Podman's namespace left: aardvark-dns (its pid file is ours), the bridges, netavark's chains.
    local pidfile=$work/podman/sysrun/containers/networks/aardvark-dns/aardvark.pid
    if [ -s "$pidfile" ] && grep -q aardvark "/proc/$(cat "$pidfile")/cmdline" 2>/dev/null; then kill "$(cat "$pidfile")"; fi
    umount -R "$work/podman/root" 2>/dev/null
    for l in podman0 podman1 podman2 podman3; do ip link del "$l" 2>/dev/null; done
    for t in nat filter; do
        for chain in $(iptables -t $t -S 2>/dev/null | awk '$1 == "-N" && $2 ~ /^NETAVARK/ {print $2}'); do
            iptables -t $t -S 2>/dev/null | grep -- "-j $chain\b" | grep '^-A' | sed 's/^-A/-D/' |
                while read -r rule; do eval iptables -t $t "$rule"; done
        done
        for chain in $(iptables -t $t -S 2>/dev/null | awk '$1 == "-N" && $2 ~ /^NETAVARK/ {print $2}'); do iptables -t $t -F "$chain"; done
        for chain in $(iptables -t $t -S 2>/dev/null | awk '$1 == "-N" && $2 ~ /^NETAVARK/ {print $2}'); do iptables -t $t -X "$chain"; done
    done
    [ "$had_nat" = 0 ] && nft delete table ip nat 2>/dev/null
    [ "$had_filter" = 0 ] && nft delete table ip filter 2>/dev/null
    sysctl -qw net.ipv4.ip_forward="$ip_forward"
    # bocker's containers (stopped, then removed) and networks (their bridges and tables go with them).
    if [ -e "$work/mnt/README" ]; then
        for c in "$work"/mnt/containers/*/; do
            [ -e "$c/ctl" ] || continue
            grep -qE 'running|paused' "$c/status" 2>/dev/null && echo 'stop 0' >"$c/ctl"
            rmdir "$c"
        done 2>/dev/null
        for n in bn1 bn2 bn3; do rmdir "$work/mnt/networks/$n" 2>/dev/null; done
    fi
    stop_bench_daemon "$work" bkbnet
    for i in 0 1 2 3; do
        ip link del "bkbnet-$i" 2>/dev/null
        nft delete table ip "bocker_bkbnet-$i" 2>/dev/null
        nft delete table bridge "bocker_bkbnet-$i" 2>/dev/null
    done
    rm -rf "$work"
}
trap cleanup EXIT

mkdir -p "$work/mnt" "$work/podman/sysrun"
busybox_rootfs "$work/rootfs"
gcc -O2 -static -o "$work/rootfs/bin/dnsq" "$here/bench/dnsq.c"
echo "nameserver 127.0.0.1" >"$work/podman/resolv.conf"
# Podman's limits: its defaults (nofile 1048576, nproc 4194304) can't be set without CAP_SYS_RESOURCE.
cat >"$CONTAINERS_CONF" <<EOF
[containers]
default_ulimits = ["nofile=$(ulimit -Hn):$(ulimit -Hn)", "nproc=32768:32768"]
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
tmp_dir = "$work/podman/tmp"
[network]
network_backend = "netavark"
network_config_dir = "$work/podman/networks"
default_subnet = "$P_DEFAULT"
EOF

"$bocker" daemon --root "$work/root" --mount "$work/mnt" --store-size 2G \
    --bridge bkbnet --subnet "$SUBNET" --network-pool "$POOL" --dns-upstream 127.0.0.1:9 2>"$work/daemon.log" &
daemon_pid=$!
for _ in $(seq 100); do [ -e "$work/mnt/README" ] && break; sleep 0.05; done
export BOCKER_MOUNT=$work/mnt
img=$("$bocker" init "$work/rootfs" | cut -d' ' -f2)
export img bocker SECS RUNS
for n in bn1 bn2 bn3; do mkdir "$work/mnt/networks/$n"; done
for n in bn1 bn2 bn3; do echo "bocker $n: $(cat "$work/mnt/networks/$n/subnet") on $(cat "$work/mnt/networks/$n/bridge")" >&2; done

unshare -m --propagation private "$0" --inner
echo
cat "$work/dns.txt"
echo
cat "$work/table.md"
echo
python3 - "$work/table.json" <<'PY'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
for side in ("podman", "bocker"):
    base = r[f"{side} run, default network"]["median"]
    one = r[f"{side} run, 1 network"]["median"]
    three = r[f"{side} run, 3 networks"]["median"]
    print(f"{side}: medians, 1 network - default {1000 * (one - base):+.1f} ms, each network after the first "
          f"{1000 * (three - one) / 2:+.1f} ms")
PY
