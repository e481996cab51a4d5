#!/usr/bin/env bash
# Prepare this machine for digitserve's tests; `make test` and .ci/run both call it.
#
# Idempotent: it only does what is missing, so a second run takes a second.
#  - Debian packages: xvfb and xauth (the Tk client's tests); podman, runc, the dnsname
#    network plugin and debootstrap (the container tests). Installed with apt-get when run
#    as root; otherwise named, and the tests that need them skip (or fail, when
#    DIGITS_REQUIRE_DISPLAY=1 / DIGITS_REQUIRE_CONTAINERS=1 say they must run).
#  - podman's settings for machines without systemd or cgroups v2 (deploy/podman/containers.conf).
#  - A stand-in for the python:3.11-slim base image when no container registry is reachable:
#    Debian bookworm from debootstrap plus Debian's Python in a venv at /usr/local, so that
#    `python` and `pip` work as in the official image. Built once and kept in podman's storage.
set -euo pipefail
cd "$(dirname "$0")/.."

BASE_IMAGE="${DIGITS_BASE_IMAGE:-localhost/digitserve-base:bookworm-1}"
DEBIAN_MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
say() { echo "setup-host: $*" >&2; }

is_root() { [ "$(id -u)" = 0 ]; }

# ---------------------------------------------------------------- Debian packages
missing=()
command -v Xvfb >/dev/null || missing+=(xvfb)
command -v xauth >/dev/null || missing+=(xauth)
command -v podman >/dev/null || missing+=(podman)
command -v runc >/dev/null || missing+=(runc)
[ -x /usr/lib/cni/dnsname ] || missing+=(golang-github-containernetworking-plugin-dnsname)
command -v debootstrap >/dev/null || missing+=(debootstrap)

if [ ${#missing[@]} -gt 0 ]; then
    if is_root && command -v apt-get >/dev/null; then
        say "installing ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        # Other apt users on the machine hold the lock for a while: wait for it rather than fail.
        apt-get -o DPkg::Lock::Timeout=300 update -qq
        apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    else
        say "missing ${missing[*]} (not root: the tests that need them will skip)"
    fi
fi

command -v podman >/dev/null || exit 0

# ---------------------------------------------------------------- podman's settings
# crun fails on this kind of machine ("cgroups in hybrid mode not supported") and podman's
# default ulimits exceed its hard limits; without systemd, cgroupfs manages the cgroups.
if is_root && ! cmp -s deploy/podman/containers.conf /etc/containers/containers.conf; then
    mkdir -p /etc/containers
    if [ -e /etc/containers/containers.conf ]; then
        cp /etc/containers/containers.conf "/etc/containers/containers.conf.before-digitserve"
    fi
    install -m 644 deploy/podman/containers.conf /etc/containers/containers.conf
    say "wrote /etc/containers/containers.conf"
fi

# ---------------------------------------------------------------- the stand-in base image
if podman image exists "$BASE_IMAGE"; then
    exit 0
fi
if ! is_root || ! command -v debootstrap >/dev/null; then
    say "no base image $BASE_IMAGE and cannot build it (needs root and debootstrap)"
    exit 0
fi
root=$(mktemp -d /var/tmp/digitserve-base.XXXXXX)
trap 'rm -rf "$root"' EXIT
say "building the stand-in base image $BASE_IMAGE (debootstrap bookworm, a few minutes)"
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$root" "$DEBIAN_MIRROR" >/dev/null
# Debian's python3 refuses `pip install` outside a venv (PEP 668); a venv at /usr/local puts
# python, pip and the installed commands on the PATH exactly where the official image has them.
chroot "$root" python3 -m venv /usr/local
chroot "$root" apt-get clean
rm -rf "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/locale/* \
    "$root"/var/cache/debconf/*-old "$root"/var/log/*.log
tar -C "$root" -c . | podman import --quiet \
    --change 'ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["python3"]' \
    - "$BASE_IMAGE" >/dev/null
say "built $BASE_IMAGE"
