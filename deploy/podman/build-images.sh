#!/usr/bin/env bash
# Build the three images with podman on a machine that reaches no container registry:
# on the stand-in base that deploy/setup-host.sh makes, with the host's CA bundle mounted
# for pip during the build only (deploy/podman/pip.conf).
#
#   deploy/podman/build-images.sh [TAG]   ->  localhost/digitserve-{server,trainer,client}:TAG
#
# Elsewhere `docker compose build` (or podman-compose build) needs none of this.
set -euo pipefail
cd "$(dirname "$0")/../.."

tag="${1:-latest}"
base="${DIGITS_BASE_IMAGE:-localhost/digitserve-base:bookworm-2}"
ca="${DIGITS_BUILD_CA:-/etc/ssl/certs/ca-certificates.crt}"

for service in server trainer client; do
    folder=$([ "$service" = client ] && echo clients || echo "$service")
    podman build --quiet --file "$folder/Dockerfile" --build-arg "BASE_IMAGE=$base" \
        --volume "$ca:/run/digitserve-build/ca-certificates.crt:ro" \
        --volume "$PWD/deploy/podman/pip.conf:/etc/pip.conf:ro" \
        --tag "localhost/digitserve-$service:$tag" . >/dev/null
    echo "built localhost/digitserve-$service:$tag"
done
