#!/usr/bin/env bash
# Prepare this machine for digitserve's tests; `make test` and .ci/run both call it.
#
# Idempotent: it only does what is missing, so a second run takes a second.
#  - Debian packages: xvfb and xauth (the Tk client's tests); podman, runc, the dnsname
#    network plugin and debootstrap (the container tests). Installed with apt-get when run
#    as root; otherwise named, and the tests that need them skip (or fail, when
#    DIGITS_REQUIRE_DISPLAY=1 / DIGITS_REQUIRE_CONTAINERS=1 say they must run).
#  - podman's settings for machines without systemd or cgroups v2 (deploy/podman/containers.conf).
#  - A stand-in for the python:3.11-slim base image when no container registry is reachable,
#    laid out as the official image is (see below). Built once and kept in podman's storage.
set -euo pipefail
cd "$(dirname "$0")/.."

# The stand-in's tag is kept in one file, read by the scripts, the container test and its bench.
BASE_IMAGE="${DIGITS_BASE_IMAGE:-$(cat deploy/podman/stand-in-base)}"
PYTHON="${PYTHON:-python3}"
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
# The official image is Debian bookworm with CPython 3.11 built as a shared library and installed at
# /usr/local: no venv, pip in the interpreter's own site-packages, libpython found through the loader's
# cache, Tk's C module kept without Tk's libraries. This machine's own CPython, when it is built the same
# way (pyenv's and python.org's are), goes there; Debian's python3 is no shared build, so without one
# Debian's Python in a venv at /usr/local stands in, which puts python and pip in the same places.
prefix=$("$PYTHON" -c 'import sys, sysconfig
if sys.version_info[:2] == (3, 11) and sysconfig.get_config_var("Py_ENABLE_SHARED"): print(sys.base_prefix)' 2>/dev/null || true)
# The libraries the official image keeps for the standard library's C modules (but Tk's).
libraries=libbz2-1.0,libdb5.3,libexpat1,libffi8,libgdbm6,liblzma5,libncursesw6,libnsl2,libreadline8,libsqlite3-0,libssl3,libtirpc3,libuuid1,zlib1g
say "building the stand-in base image $BASE_IMAGE (debootstrap bookworm, a minute or more; Python: ${prefix:-Debian python3 in a venv})"
if [ -n "$prefix" ]; then
    debootstrap --variant=minbase --include="ca-certificates,netbase,tzdata,$libraries" bookworm "$root" \
        "$DEBIAN_MIRROR" >/dev/null
    usr_local="$root/usr/local"
    mkdir -p "$usr_local/bin" "$usr_local/lib" "$usr_local/include"
    cp -a "$prefix"/lib/libpython3* "$usr_local/lib/"
    cp -a "$prefix/include/python3.11" "$usr_local/include/"
    # The standard library as the official image has it: without tests, bytecode and static library.
    tar -C "$prefix/lib" -c --exclude=python3.11/site-packages --exclude=__pycache__ --exclude='*.a' \
        --exclude=test --exclude=tests --exclude=idle_test python3.11 | tar -C "$usr_local/lib" -x
    mkdir "$usr_local/lib/python3.11/site-packages"
    cp "$prefix/bin/python3.11" "$usr_local/bin/"
    for script in idle3.11 pydoc3.11 2to3-3.11 python3.11-config; do  # their first line names the interpreter
        sed "1s|^#!.*|#!/usr/local/bin/python3.11|" "$prefix/bin/$script" > "$usr_local/bin/$script"
        chmod 755 "$usr_local/bin/$script"
    done
    for link in python3:python3.11 python:python3 idle3:idle3.11 pydoc3:pydoc3.11 2to3:2to3-3.11 \
            python3-config:python3.11-config; do
        ln -s "${link#*:}" "$usr_local/bin/${link%%:*}"
    done
    # Built with --strip-all there: the sizes of the images on this base come close to theirs.
    if command -v strip >/dev/null; then
        find "$usr_local" -name '*.so*' -type f -exec strip --strip-unneeded {} +
    fi
    chroot "$root" ldconfig
    chroot "$root" /usr/local/bin/python3.11 -m ensurepip --default-pip >/dev/null  # (pip warns about root: harmless in a fresh image)
    # Every C module but Tk's must find its libraries, as in the official image.
    missing=$(chroot "$root" sh -c 'for module in /usr/local/lib/python3.11/lib-dynload/*.so; do
        case "$module" in *_tkinter*) continue;; esac
        ldd "$module" | grep "not found" | sed "s|^|$module:|"; done')
    if [ -n "$missing" ]; then
        say "the stand-in base's Python misses libraries: $missing"
        exit 1
    fi
else
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$root" \
        "$DEBIAN_MIRROR" >/dev/null
    # Debian's python3 refuses `pip install` outside a venv (PEP 668).
    chroot "$root" python3 -m venv /usr/local
fi
chroot "$root" apt-get clean
rm -rf "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/locale/* \
    "$root"/var/cache/debconf/*-old "$root"/var/log/*.log
tar -C "$root" -c . | podman import --quiet \
    --change 'ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["python3"]' \
    - "$BASE_IMAGE" >/dev/null
say "built $BASE_IMAGE"
