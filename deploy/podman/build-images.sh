#!/usr/bin/env bash
# Build the three images with podman on a machine that reaches no container registry:
# on the stand-in base that deploy/setup-host.sh makes, with the host's CA bundle mounted
# for pip during the build only (deploy/podman/pip.conf).
#
#   deploy/podman/build-images.sh [TAG]   ->  localhost/digitserve-{server,trainer,client}:TAG
#
# Each image's build stage is tagged too (localhost/digitserve-SERVICE-build:TAG): it is the
# build cache. The images both tags named before are removed once a build replaces them;
# untagged, each build would leave about a gigabyte behind.
#
# Elsewhere `docker compose build` (or podman-compose build) needs none of this.
set -euo pipefail
cd "$(dirname "$0")/../.."

tag="${1:-latest}"
base="${DIGITS_BASE_IMAGE:-$(cat deploy/podman/stand-in-base)}"
ca="${DIGITS_BUILD_CA:-/etc/ssl/certs/ca-certificates.crt}"

image_id() { podman image inspect --format '{{.Id}}' "$1" 2>/dev/null || true; }
build() {
    podman build --quiet --build-arg "BASE_IMAGE=$base" \
        --volume "$ca:/run/digitserve-build/ca-certificates.crt:ro" \
        --volume "$PWD/deploy/podman/pip.conf:/etc/pip.conf:ro" "$@" . >/dev/null
}

for service in server trainer client; do
    image="localhost/digitserve-$service:$tag"
    stage="localhost/digitserve-$service-build:$tag"
    before=("$(image_id "$image")" "$(image_id "$stage")")
    build --target "$service-build" --tag "$stage"
    build --target "$service" --tag "$image"  # its build stage comes from the layer cache
    for old in "${before[@]}"; do
        [ -n "$old" ] || continue
        if [ "$(podman image inspect --format '{{len .RepoTags}}' "$old")" = 0 ]; then
            # A container still running the old image keeps it: that is not this build's failure.
            podman rmi "$old" >/dev/null 2>&1 || echo "kept the replaced image ${old:0:12}: a container still uses it" >&2
        fi
    done
    echo "built $image"
done
