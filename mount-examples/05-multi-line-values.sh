#!/bin/sh
# Set multi-line values the ways a shell user writes any file: a heredoc, a block of echos, `>>`, `sed -i`.
# Each sets the whole value of the file (one open file is one value); then the container shows them.
# Usage: 05-multi-line-values.sh IMAGE
set -eu
M=${BOCKER_MOUNT:-/mnt/bocker}
IMG=$1
C=$M/containers/conf

mkdir "$C" "$M/volumes/conf-a" "$M/volumes/conf-b"
echo "$IMG" > "$C/image"
cat > "$C/env" <<EOF
GREETING=hello
TARGET=world
EOF
{ echo MODE=test; echo LEVEL=1; } >> "$C/env"
sed -i 's/^LEVEL=1$/LEVEL=2/' "$C/env"
{
    echo conf-a:/a
    echo conf-b:/b:ro
} > "$C/volumes"
echo "sh -c 'echo \$GREETING \$TARGET \$MODE \$LEVEL; touch /a/x && ls /a; touch /b/y 2>/dev/null || echo /b is read-only'" \
    > "$C/cmd"
echo "env: $(grep -c = "$C/env") lines, volumes: $(wc -l < "$C/volumes") lines"
echo start > "$C/ctl"
cat "$C/wait" > /dev/null                        # blocks until it has exited
cat "$C/logs"

rmdir "$C" "$M/volumes/conf-a" "$M/volumes/conf-b"
