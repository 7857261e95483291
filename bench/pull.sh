#!/usr/bin/env bash
# Benchmark: pull and unpack a multi-layer image of about 100 MB from a registry on loopback, bocker beside
# `skopeo copy` + `umoci unpack` of the same image and `podman pull` into vfs storage (if podman is
# installed), interleaved (bench/interleave.py). Prints a markdown table; figures go to docs/benchmarks.md.
#
# Needs root, a release build (cargo build --release), and:
#   apt-get install docker-registry skopeo umoci busybox-static python3 [podman]
# Before each bocker run the image is removed (and with it its layers), so every run downloads and
# unpacks everything; before each skopeo run its OCI layout and bundle are removed, before each podman
# run its storage.
set -euo pipefail
ROUNDS=${ROUNDS:-5}
LAYER_MB=${LAYER_MB:-32}
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/bench/common.sh"
bocker=$here/target/release/bocker
[ -x "$bocker" ] || { echo "build first: cargo build --release" >&2; exit 1; }
for tool in docker-registry skopeo umoci busybox python3; do
    command -v $tool >/dev/null || { echo "missing: $tool" >&2; exit 1; }
done

work=$(mktemp -d /tmp/bocker-bench-pull.XXXXXX)
registry_pid="" daemon_pid=""
cleanup() {
    stop_bench_daemon "$work" bkbench
    [ -n "$registry_pid" ] && kill "$registry_pid" 2>/dev/null && wait "$registry_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p "$work/registry" "$work/mnt"
cat > "$work/registry.yml" <<YML
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $work/registry}}
http: {addr: 127.0.0.1:$port}
YML
docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
registry_pid=$!

# The image: a busybox base and three layers of incompressible data, gzip, made with umoci.
umoci init --layout "$work/oci"
umoci new --image "$work/oci:bench"
for layer in base 1 2 3; do
    umoci unpack --image "$work/oci:bench" "$work/b" >/dev/null
    if [ $layer = base ]; then
        busybox_rootfs "$work/b/rootfs"
    else
        mkdir -p "$work/b/rootfs/data"
        head -c "${LAYER_MB}M" /dev/urandom > "$work/b/rootfs/data/layer$layer"
    fi
    umoci repack --image "$work/oci:bench" "$work/b" >/dev/null
    rm -rf "$work/b"
done
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.05; done
skopeo copy -q --dest-tls-verify=false "oci:$work/oci:bench" "docker://127.0.0.1:$port/bench:v1"
size=$(du -sm "$work/registry" | cut -f1)

"$bocker" daemon --root "$work/root" --mount "$work/mnt" --store-size 4G \
    --bridge bkbench --subnet 10.214.0.0/24 2>"$work/daemon.log" &
daemon_pid=$!
for _ in $(seq 100); do [ -e "$work/mnt/README" ] && break; sleep 0.05; done
export BOCKER_MOUNT=$work/mnt

peers=()
prepares=()
if command -v podman >/dev/null; then
    podman="podman --root $work/podman --runroot $work/podman-run --storage-driver vfs"
    peers+=("podman pull (vfs)" "$podman pull -q --tls-verify=false 127.0.0.1:$port/bench:v1")
    prepares+=(--prepare "rm -rf $work/podman $work/podman-run")
fi
python3 "$here/bench/interleave.py" --rounds "$ROUNDS" --warmup 1 \
    --title "pull of 4 layers, ${size} MB in the registry" \
    --prepare "for d in $work/mnt/images/img_*; do [ -d \$d ] && rmdir \$d; done; true" \
    --prepare "rm -rf $work/skopeo $work/bundle" \
    "${prepares[@]}" \
    "bocker pull" "$bocker pull 127.0.0.1:$port/bench:v1" \
    "skopeo copy + umoci unpack" \
    "skopeo copy -q --src-tls-verify=false docker://127.0.0.1:$port/bench:v1 oci:$work/skopeo:bench && umoci unpack --image $work/skopeo:bench $work/bundle" \
    "${peers[@]}"
