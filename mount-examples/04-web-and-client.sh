#!/bin/sh
# Two containers on the bridge: a web server with a host port forwarded to it, and a client that fetches
# its page by the server's address and through the forward. Then both are removed.
# Usage: 04-web-and-client.sh IMAGE HOSTPORT
set -eu
M=${BOCKER_MOUNT:-/mnt/bocker}
IMG=$1
PORT=$2

mkdir "$M/containers/web"
echo "$IMG" > "$M/containers/web/image"
echo "sh -c 'mkdir -p /www && echo hello from web > /www/index.html && exec httpd -f -p 80 -h /www'" \
    > "$M/containers/web/cmd"
echo "$PORT:80" > "$M/containers/web/ports"
echo start > "$M/containers/web/ctl"
WEB=$(cat "$M/containers/web/ip")
echo "web is $(cat "$M/containers/web/status") at $WEB, forwarding $(cat "$M/containers/web/ports")"

# The bridge's address is the containers' gateway: the first of the subnet.
GATEWAY=${WEB%.*}.1
mkdir "$M/containers/client"
echo "$IMG" > "$M/containers/client/image"
echo "sh -c 'sleep 0.3; wget -q -O- http://$WEB/; wget -q -O- http://$GATEWAY:$PORT/'" > "$M/containers/client/cmd"
echo start > "$M/containers/client/ctl"
cat "$M/containers/client/wait" > /dev/null    # blocks until the client has exited
cat "$M/containers/client/logs"

echo "stop 1" > "$M/containers/web/ctl"
rmdir "$M/containers/web" "$M/containers/client"
