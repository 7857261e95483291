#!/bin/sh
# One write runs a container; then stop a long-running one and remove everything this script made.
# Usage: 03-run-and-clean-up.sh IMAGE
set -eu
M=${BOCKER_MOUNT:-/mnt/bocker}
IMG=$1

exec 3<>"$M/containers/run"
echo "$IMG sh -c 'echo one shot'" >&3
ID=$(cat <&3)
exec 3>&-
cat "$M/containers/$ID/wait" > /dev/null       # blocks until it has exited
echo "$ID said: $(cat "$M/containers/$ID/logs")"

mkdir "$M/containers/service"
echo "$IMG" > "$M/containers/service/image"
echo "sleep 1000" > "$M/containers/service/cmd"
echo start > "$M/containers/service/ctl"
echo "service is $(cat "$M/containers/service/status")"
# rmdir of a running container is refused (EBUSY); stop it first.
rmdir "$M/containers/service" 2>/dev/null && echo "unexpected: removed while running"
echo "stop 1" > "$M/containers/service/ctl"
echo "service is $(cat "$M/containers/service/status")"

rmdir "$M/containers/service" "$M/containers/$ID"
# The image stays for the next examples. `rmdir "$M/images/$IMG"` would remove it even now: containers
# made from it keep their own rootfs and what they need of its config, and go on running and starting.
ls "$M/containers"
