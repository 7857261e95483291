#!/bin/sh
# Make an image of a directory, configure a container by hand, start it, wait for its end, read its output.
# Usage: 01-import-and-run.sh ROOTFS_DIR   (BOCKER_MOUNT: the mount, default /mnt/bocker)
set -eu
M=${BOCKER_MOUNT:-/mnt/bocker}
ROOTFS=$1

# A write to images/import makes the image; a read on the same open file gives its id.
exec 3<>"$M/images/import"
echo "$ROOTFS" >&3
IMG=$(cat <&3)
exec 3>&-
echo "image: $IMG from $(cat "$M/images/$IMG/source")"

mkdir "$M/containers/hello"
echo "$IMG" > "$M/containers/hello/image"
echo "sh -c 'echo hello from \$(hostname); exit 7'" > "$M/containers/hello/cmd"
echo start > "$M/containers/hello/ctl"
# A read of wait blocks until the container is not running, then gives its exit code.
CODE=$(cat "$M/containers/hello/wait")

echo "status: $(cat "$M/containers/hello/status")"
echo "exit_code: $CODE"
echo "logs:"
cat "$M/containers/hello/logs"
