#!/usr/bin/env bash
# Installs what proctor needs on a fresh Debian machine (idempotent, quiet when
# everything is already there): the build dependencies from Debian, and the real
# INGInious (pinned, from PyPI) in a venv for the interoperability tests, the
# demo and the benchmark. Prints the venv's python path on its last line.
#   tools/setup.sh [--debs-only]    (--debs-only: the Debian packages, nothing else;
#                                    what a machine that only builds and runs proctor needs)
set -euo pipefail
DEBS_ONLY=false
[ "${1:-}" = --debs-only ] && DEBS_ONLY=true

DEBS=(build-essential cmake pkg-config libzmq3-dev libmsgpack-dev libcurl4-openssl-dev
      liblua5.4-dev lua5.4 libcjson-dev libyaml-dev lua-busted busybox-static clang-format python3-venv file lua-check
      clang libclang-rt-14-dev)  # clang + libFuzzer/ASan runtimes: tools/fuzz.sh (ctest fuzz.smoke)
DEBS+=(debootstrap)  # tests/upstream/build.sh: INGInious's own grading image
DEBS+=(openssh-client util-linux)  # the SSH debug test logs in with a real ssh (and setsid)
DEBS+=(groff-base man-db)  # install.layout renders the man pages
DEBS+=(libsystemd-dev)  # proctord: sd_notify (Type=notify, watchdog)
DEBS+=(libmicrohttpd-dev)  # proctord --metrics
DEBS+=(iproute2)  # test_scale.py, tools/cluster.sh: hosts as network namespaces (ip, ss)
INGINIOUS_VERSION=0.9.2
PROMETHEUS_CLIENT_VERSION=0.26.0
VENV=${PROCTOR_VENV:-/opt/proctor-venv}

missing=()
for p in "${DEBS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "setup: installing Debian packages: ${missing[*]}" >&2
    SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
    $SUDO apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >&2
fi
if $DEBS_ONLY; then
    exit 0
fi

if ! "$VENV/bin/python" -c "import inginious, pytest, yaml" 2>/dev/null ||
   [ "$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("INGInious"))' 2>/dev/null)" != "$INGINIOUS_VERSION" ]; then
    echo "setup: creating $VENV with inginious==$INGINIOUS_VERSION" >&2
    python3 -m venv "$VENV" >&2
    "$VENV/bin/pip" install -q --disable-pip-version-check "inginious==$INGINIOUS_VERSION" pytest >&2
fi

# The metrics test reads proctord's output with Prometheus' own text parser.
if ! "$VENV/bin/python" -c "import prometheus_client" 2>/dev/null; then
    "$VENV/bin/pip" install -q --disable-pip-version-check "prometheus_client==$PROMETHEUS_CLIENT_VERSION" >&2
fi

if ! docker info >/dev/null 2>&1; then
    echo "setup: the Docker engine is not reachable (docker info failed); proctor needs it" >&2
    exit 1
fi
echo "$VENV/bin/python"
