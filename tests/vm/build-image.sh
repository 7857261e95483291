#!/usr/bin/env bash
# Builds (or finds in its cache) the Debian 12 guest the test suite also runs in: a pure cgroup-v2
# machine (bookworm's stock kernel and systemd, unified hierarchy only), whatever the host has.
#
# Everything comes from Debian's packages (mmdebstrap from the Debian mirror), nothing from elsewhere.
# The result is cached in $BOCKERFS_VM_CACHE (default /var/cache/bockerfs-vm/<key>/), keyed by a hash
# of this script (the package list is in it) and the guest's boot files, and rebuilt only when these
# change; older keys are removed. The root disk is a qcow2 image the runs only read: each run writes
# to an overlay of its own (tests/vm/run.sh).
#
# Prints the cache directory (vmlinuz, initrd.img, root.qcow2) on stdout. Needs root.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
CACHE="${BOCKERFS_VM_CACHE:-/var/cache/bockerfs-vm}"
MIRROR="${BOCKERFS_VM_MIRROR:-http://deb.debian.org/debian}"

# What the guest needs: the kernel and an init (systemd, udev, kmod), and what the tests run
# (scripts/install-deps.sh's list) plus the few tools they call that a minimal system lacks, and
# ca-certificates: without any CA certificate the daemon's registry client does not even start; and the
# benchmarks' peers (crun, skopeo, umoci, podman), for bench/in-guest.sh.
PACKAGES="linux-image-amd64 systemd systemd-sysv udev kmod e2fsprogs procps
  btrfs-progs fuse3 busybox-static docker-registry apache2-utils nftables iproute2 gcc libc6-dev
  util-linux vim python3 sed tini tmux bsdextrautils findutils coreutils bash ca-certificates
  crun skopeo umoci podman"

log() { echo "build-image: $*" >&2; }

[ "$(id -u)" -eq 0 ] || { log "run as root"; exit 1; }

# The host's tools: QEMU (bookworm-backports' 10.x installs beside the image's qemu-utils 10.x,
# bookworm's 7.2 does not) and mmdebstrap.
host_deps() {
    local missing=""
    command -v qemu-system-x86_64 >/dev/null || missing="$missing qemu-system-x86"
    command -v mmdebstrap >/dev/null || missing="$missing mmdebstrap"
    command -v qemu-img >/dev/null || missing="$missing qemu-utils"
    [ -n "$missing" ] || return 0
    export DEBIAN_FRONTEND=noninteractive
    if ! grep -rqs bookworm-backports /etc/apt/sources.list /etc/apt/sources.list.d/; then
        log "adding bookworm-backports to apt's sources"
        cat >/etc/apt/sources.list.d/bookworm-backports.sources <<EOF
Types: deb
URIs: $MIRROR
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    fi
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends -t bookworm-backports $missing >/dev/null
}
host_deps

KEY="$(cat "$0" "$HERE/guest-boot.sh" | sha256sum | cut -c1-16)"
OUT="$CACHE/$KEY"
mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"
flock 9
if [ -e "$OUT/ok" ]; then
    echo "$OUT"
    exit 0
fi

log "building the guest image $OUT (Debian 12 from $MIRROR; a few minutes)"
WORK="$(mktemp -d "${TMPDIR:-/var/tmp}/bockerfs-vm-build.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
ROOT="$WORK/root"

# shellcheck disable=SC2086
mmdebstrap --quiet --variant=apt --mode=root \
    --aptopt='APT::Install-Recommends "false"' \
    --include="$(echo $PACKAGES | tr ' ' ',')" \
    --customize-hook='echo bockerfs-vm >"$1/etc/hostname"' \
    --customize-hook='printf "127.0.0.1 localhost\n127.0.1.1 bockerfs-vm\n::1 localhost\n" >"$1/etc/hosts"' \
    --customize-hook='printf "/dev/vda / ext4 rw,discard,errors=remount-ro 0 1\n" >"$1/etc/fstab"' \
    --customize-hook="install -m 0755 '$HERE/guest-boot.sh' \"\$1/usr/local/sbin/bockerfs-vm-boot\"" \
    --customize-hook='printf "%s\n" fuse btrfs loop veth bridge nf_tables nft_chain_nat nft_fib_ipv4 9p 9pnet_virtio >"$1/etc/modules-load.d/bockerfs.conf"' \
    --customize-hook='cat >"$1/etc/systemd/system/bockerfs-vm.service" <<EOF
[Unit]
Description=bockerfs test suite (tests/vm)
ConditionKernelCommandLine=bockerfs.run
After=multi-user.target systemd-modules-load.service
[Service]
Type=oneshot
# Delegate: the cgroup subtree is ours with every controller (cpu and cpuset too, not only the
# io memory pids systemd enables at the root otherwise), as a daemon started by systemd would get.
Delegate=yes
ExecStart=/usr/local/sbin/bockerfs-vm-boot
StandardOutput=journal+console
StandardError=journal+console
TimeoutStartSec=infinity
SuccessAction=poweroff-force
FailureAction=poweroff-force
[Install]
WantedBy=multi-user.target
EOF' \
    --customize-hook='chroot "$1" systemctl enable -q bockerfs-vm.service' \
    --customize-hook='chroot "$1" systemctl disable -q docker-registry.service apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer e2scrub_reap.service fstrim.timer 2>/dev/null || true' \
    --customize-hook='chroot "$1" systemctl mask -q serial-getty@ttyS0.service getty@tty1.service systemd-timesyncd.service 2>/dev/null || true' \
    --customize-hook='passwd --root "$1" -d root >/dev/null' \
    --customize-hook='rm -rf "$1"/var/cache/apt/archives/*.deb "$1"/var/lib/apt/lists/*_Packages' \
    --customize-hook="cp \"\$1\"/boot/vmlinuz-* '$WORK/vmlinuz'; cp \"\$1\"/boot/initrd.img-* '$WORK/initrd.img'" \
    bookworm "$ROOT" "$MIRROR"

# The root disk without a loop device: mkfs.ext4 -d fills it from the directory. 24G sparse: the tests
# make 1 GiB sparse btrfs images under /tmp (the guest's /tmp is on this disk, not a tmpfs).
truncate -s 24G "$WORK/root.img"
mkfs.ext4 -q -L root -E lazy_itable_init=0 -d "$ROOT" "$WORK/root.img"
rm -rf "$ROOT"
qemu-img convert -O qcow2 "$WORK/root.img" "$WORK/root.qcow2"
rm -f "$WORK/root.img"

mkdir -p "$OUT.tmp"
mv "$WORK/vmlinuz" "$WORK/initrd.img" "$WORK/root.qcow2" "$OUT.tmp/"
touch "$OUT.tmp/ok"
# Only the newest image is kept.
find "$CACHE" -mindepth 1 -maxdepth 1 -type d ! -name "$KEY.tmp" -exec rm -rf {} +
mv "$OUT.tmp" "$OUT"
log "built $(du -sh "$OUT" | cut -f1) in $OUT"
echo "$OUT"
