#!/bin/sh
# List every image and container with what the tree says of them.
set -eu
M=${BOCKER_MOUNT:-/mnt/bocker}

for img in $(ls "$M/images"); do
    [ -d "$M/images/$img" ] || continue            # skip the import file
    echo "image $img: source=$(cat "$M/images/$img/source") size=$(cat "$M/images/$img/size")"
done
for c in $(ls "$M/containers"); do
    [ -d "$M/containers/$c" ] || continue          # skip the run file
    echo "container $c: $(cat "$M/containers/$c/status") exit=$(cat "$M/containers/$c/exit_code") cmd=$(cat "$M/containers/$c/cmd")"
done
