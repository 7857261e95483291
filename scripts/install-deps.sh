#!/bin/sh
# Installs the Debian 12 packages bockerfs needs to run and to be tested:
#   btrfs-progs     mkfs.btrfs for the embedded store (the tests also use the btrfs command to check it)
#   fuse3           fusermount3, to unmount by hand after a crash
#   busybox-static  the root filesystem the tests and the Quick start import
#   docker-registry the OCI registry the pull tests start on loopback (never as a service)
#   apache2-utils   htpasswd, for the registry behind basic auth
#   nftables        nft, which the daemon runs to write its NAT and port-forward table
#   iproute2        ip, which the network tests use to look at links and addresses
#   gcc libc6-dev   cc and a static libc, for the small probe programs the security tests build and run
#   util-linux      setpriv, for the tests that drive the tree as an unprivileged host user
#   vim python3 sed the editors and savers the value-file tests save with (vim's :w, tempfile + os.replace, sed -i)
#   tini            tini-static, the init a container with `init` true runs as its pid 1 (docker run --init)
#   tmux            the real terminals the interactive tests drive bocker run -it, exec -it and attach in
set -eu
PACKAGES="btrfs-progs fuse3 busybox-static docker-registry apache2-utils nftables iproute2 gcc libc6-dev util-linux vim python3 sed tini tmux"
if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: run as root (apt-get install $PACKAGES)" >&2
    exit 1
fi
missing=""
for p in $PACKAGES; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq $missing >/dev/null
fi
# The package's own service is not wanted: the tests start registries of their own on free ports.
if command -v systemctl >/dev/null && systemctl is-active -q docker-registry 2>/dev/null; then
    systemctl disable --now -q docker-registry || true
fi
for m in fuse btrfs loop veth bridge nf_tables nft_chain_nat nft_fib_ipv4; do modprobe -q "$m" 2>/dev/null || true; done
