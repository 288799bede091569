#!/usr/bin/env bash
# Builds INGInious's own grading image from Debian packages only, offline but for
# the Debian mirror this machine's apt already uses. Usage:
#   tests/upstream/build.sh [CACHE_DIR]
# Result: proctor/upstream-<inginious version> (also tagged proctor/upstream),
# environment "upstream", and proctor/upstream-student, environment
# "upstream-student" (the same image under another name, for
# `run_student --container upstream-student`).
#
# The container API (bin/ and inginious_container_api/) is copied at build time
# from the pinned inginious package installed in ${PROCTOR_VENV:-/opt/proctor-venv}
# by tools/setup.sh; nothing of INGInious is kept in this repository. The layout
# follows that package's base-containers/base/Dockerfile, translated from Rocky
# Linux 8 + python3.8 to a Debian minbase root filesystem.
#
# The root filesystem (debootstrap) is cached as a tarball in CACHE_DIR (default
# ${XDG_CACHE_HOME:-$HOME/.cache}/proctor/upstream), keyed by suite, architecture
# and package list; the Docker layers on top of it are cached by Docker. Needs
# root (debootstrap, chroot) for a cold build. Quiet unless it fails.
# PROCTOR_DEBIAN_MIRROR / PROCTOR_DEBIAN_SUITE override the mirror and suite read
# from apt's sources.
set -euo pipefail

prog=tests/upstream/build.sh
die() {
    echo "$prog: $*" >&2
    exit 1
}

if [ $# -ge 1 ]; then
    cache=$1
else
    xdg=${XDG_CACHE_HOME:-${HOME:+$HOME/.cache}}
    cache=${xdg:-/var/cache}/proctor/upstream
fi
venv=${PROCTOR_VENV:-/opt/proctor-venv}

# Bump when the steps that make the cached root filesystem change, so that an
# old tarball is not reused.
recipe=1
# What the container API runs or imports (bin/*, inginious_container_api/*.py):
# the runner's python3 modules, IPython for inginious-ipython, and for SSH
# (utils.start_ssh_server) /usr/sbin/sshd, /usr/bin/ssh-keygen, /usr/bin/openssl,
# chpasswd (passwd), script (bsdutils), ps (procps), bash. python3-cffi-backend
# is named because debootstrap does not resolve python3-zmq's virtual
# dependency on it. locales: the en_US.UTF-8 locale the Dockerfile sets.
pkgs=(bash bsdutils coreutils grep gzip ipython3 locales openssh-client openssh-server openssl
      passwd procps python3 python3-cffi-backend python3-ipython python3-jinja2 python3-msgpack
      python3-yaml python3-zmq tar)

command -v docker >/dev/null || die "docker is not installed"
docker info >/dev/null 2>&1 || die "the Docker engine is not reachable (docker info failed)"

# The pinned package: its version names the image, its Dockerfile gives the label.
py=$venv/bin/python
[ -x "$py" ] || die "no python in $venv: run tools/setup.sh (or set PROCTOR_VENV)"
read -r version purelib < <("$py" -c 'import importlib.metadata as m, sysconfig
print(m.version("INGInious"), sysconfig.get_paths()["purelib"])' 2>/dev/null) ||
    die "inginious is not installed in $venv: run tools/setup.sh"
base=$purelib/base-containers/base
for f in Dockerfile bin/INGInious bin/_run_student_intern inginious_container_api/__init__.py; do
    [ -e "$base/$f" ] || die "$base/$f is missing: is inginious $version complete?"
done
agent_version=$(sed -n 's/^LABEL[[:space:]]\{1,\}org\.inginious\.grading\.agent_version=\([0-9]\{1,\}\).*/\1/p' \
    "$base/Dockerfile" | head -n 1)
[ -n "$agent_version" ] || die "no org.inginious.grading.agent_version label in $base/Dockerfile"

# The mirror and suite apt uses: the first enabled `deb` source whose suite is a
# release (not -security, -updates, -backports), deb822 first, then one-line.
apt_source() {
    local f
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        awk '
            function flush(   i, j, nu, ns, u, s) {
                if (types ~ /(^| )deb( |$)/ && enabled != "no") {
                    nu = split(uris, u, " "); ns = split(suites, s, " ")
                    for (i = 1; i <= nu; i++)
                        for (j = 1; j <= ns; j++)
                            if (s[j] !~ /-(security|updates|backports)$/ && s[j] !~ /\//) {
                                print u[i], s[j]; found = 1; exit
                            }
                }
                types = uris = suites = enabled = ""
            }
            /^[ \t]*#/ { next }
            /^[ \t]*$/ { flush(); next }
            { key = tolower($1); sub(/^[^:]*:[ \t]*/, "") }
            key == "types:" { types = $0 } key == "uris:" { uris = $0 }
            key == "suites:" { suites = $0 } key == "enabled:" { enabled = tolower($0) }
            END { if (!found) flush() }' "$f" | head -n 1 | grep . && return 0
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] || continue
        sed -e 's/#.*//' -e 's/\[[^]]*\]//' "$f" |
            awk '$1 == "deb" && $3 !~ /-(security|updates|backports)$/ { print $2, $3; exit }' |
            grep . && return 0
    done
    return 1
}
if [ -n "${PROCTOR_DEBIAN_MIRROR:-}" ] && [ -n "${PROCTOR_DEBIAN_SUITE:-}" ]; then
    mirror=$PROCTOR_DEBIAN_MIRROR suite=$PROCTOR_DEBIAN_SUITE
else
    read -r mirror suite < <(apt_source) ||
        die "no Debian release source in /etc/apt/sources.list{,.d/} (set PROCTOR_DEBIAN_MIRROR and PROCTOR_DEBIAN_SUITE)"
    mirror=${PROCTOR_DEBIAN_MIRROR:-$mirror} suite=${PROCTOR_DEBIAN_SUITE:-$suite}
fi
arch=$(dpkg --print-architecture 2>/dev/null || echo amd64)
key=$(printf '%s\n' "$recipe" "$suite" "$arch" "${pkgs[@]}" | sha256sum | cut -c1-16)
tarball=$cache/rootfs-$suite-$arch-$key.tar.gz

mkdir -p "$cache" || die "cannot create the cache directory $cache"
# One build at a time per cache (ctest runs this under a resource lock, but a
# developer may run it by hand meanwhile).
exec 9>"$cache/.lock"
flock 9

work=
cleanup() {
    [ -n "$work" ] || return 0
    # debootstrap mounts /proc and /sys in the target; never delete through a
    # mount, even when debootstrap died half-way.
    local m
    for m in $(findmnt -rn -o TARGET | grep -F "$work/" | sort -r); do umount -l "$m" || true; done
    rm -rf --one-file-system "$work"
}
trap cleanup EXIT
work=$(mktemp -d "$cache/work.XXXXXX")

rootfs_image=proctor/upstream-rootfs:$key
# Docker's copy of the root filesystem is as good as the tarball.
have_rootfs_image=false
docker image inspect "$rootfs_image" >/dev/null 2>&1 && have_rootfs_image=true

if ! $have_rootfs_image && [ ! -f "$tarball" ]; then
    [ "$(id -u)" = 0 ] || die "the root filesystem is not cached yet and debootstrap needs root"
    command -v debootstrap >/dev/null || die "debootstrap is not installed (tools/setup.sh installs it)"
    root=$work/root
    if ! debootstrap --variant=minbase --arch="$arch" --components=main \
        --include="$(IFS=,; echo "${pkgs[*]}")" "$suite" "$root" "$mirror" >"$work/log" 2>&1; then
        echo "$prog: debootstrap $suite from $mirror failed:" >&2
        tail -n 20 "$work/log" >&2
        if [ -f "$root/debootstrap/debootstrap.log" ]; then
            echo "--- $root/debootstrap/debootstrap.log (end):" >&2
            tail -n 40 "$root/debootstrap/debootstrap.log" >&2
        fi
        exit 1
    fi
    # The Dockerfile's `glibc-langpack-en`: the locale its ENV names.
    chroot "$root" localedef -i en_US -c -f UTF-8 -A /usr/share/locale/locale.alias en_US.UTF-8 ||
        die "localedef en_US.UTF-8 failed in the new root filesystem"
    # openssh-server's postinst made host keys: they would be shared by every
    # container of the image. The runner makes them (ssh-keygen -A) when needed.
    rm -f "$root"/etc/ssh/ssh_host_*
    # The host's files and the download cache have no place in the image (Docker
    # provides hostname, hosts and resolv.conf at run time).
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/var/log/*.log
    rm -f "$root/etc/hostname" "$root/etc/resolv.conf"
    tar --numeric-owner -C "$root" -czf "$work/rootfs.tar.gz" . || die "cannot write the root filesystem tarball"
    mv "$work/rootfs.tar.gz" "$tarball"
    # Tarballs of other keys (an older recipe or package list) are dead weight.
    find "$cache" -maxdepth 1 -name 'rootfs-*.tar.gz' ! -path "$tarball" -delete
fi

if ! $have_rootfs_image; then
    out=$(docker import --message "debootstrap $suite $arch (tests/upstream/build.sh)" \
        "$tarball" "$rootfs_image" 2>&1) || die "docker import of $tarball failed (delete it to build it again): $out"
fi

# The build context: only what the package's Dockerfile uses.
ctx=$work/context
mkdir -p "$ctx/bin" "$ctx/inginious_container_api"
cp "$base"/bin/* "$ctx/bin/"
cp "$base"/inginious_container_api/*.py "$ctx/inginious_container_api/"
# Debian's python3 site directory plays the part of Rocky's
# /usr/lib/python3.8/site-packages. The shebangs (#!/bin/python3 and
# #! /usr/bin/python3) need no change: Debian's /bin is /usr/bin.
site=/usr/lib/python3/dist-packages
cat >"$ctx/Dockerfile" <<EOF
FROM $rootfs_image

ENV LANG=en_US.UTF-8 LANGUAGE=en_US:en LC_ALL=en_US.UTF-8

LABEL org.inginious.grading.agent_version=$agent_version \\
      org.inginious.grading.name=upstream \\
      org.proctor.upstream-image=$version

COPY bin/ /INGInious/bin/
COPY inginious_container_api/ /INGInious/inginious_container_api/
# The package's RUN steps in one (each step costs seconds on a cold build).
# Debian's useradd makes no home and gives /bin/sh unless asked; Rocky's makes
# it and gives bash. printf: Debian's /bin/sh has no echo -e. /run/sshd:
# Debian's sshd wants its privilege separation directory, which its init
# scripts make at boot; the runner starts sshd directly.
RUN set -e; \\
    : Allow to run commands; \\
    chmod -R 755 /INGInious/bin; \\
    chmod 700 /INGInious/bin/INGInious; \\
    mv /INGInious/bin/* /bin; \\
    : Install everything needed to allow INGInious python libs to be loaded; \\
    chmod -R 644 /INGInious/inginious_container_api; \\
    mkdir -p $site/inginious_container_api; \\
    cp -R /INGInious/inginious_container_api/*.py $site/inginious_container_api; \\
    echo "inginious_container_api" > $site/inginious_container_api.pth; \\
    : This maintains backward compatibility; \\
    mkdir -p $site/inginious; \\
    cp -R /INGInious/inginious_container_api/*.py $site/inginious; \\
    echo "inginious" > $site/inginious.pth; \\
    rm -R /INGInious; \\
    : Create worker user; \\
    groupadd --gid 4242 worker; \\
    useradd --uid 4242 --gid 4242 worker --home-dir /task --create-home --shell /bin/bash; \\
    : Set locale params for SSH debug; \\
    printf 'LANG=en_US.UTF-8\\nLANGUAGE=en_US:en\\nLC_ALL=en_US.UTF-8\\n' >> /etc/environment; \\
    sed -i.bak '/^AcceptEnv/ d' /etc/ssh/sshd_config; \\
    mkdir -p -m 0755 /run/sshd

CMD ["INGInious"]
EOF

image=proctor/upstream-$version
out=$(docker build -q -t "$image" -t proctor/upstream "$ctx" 2>&1) ||
    die "docker build of $image failed:
$out"
mkdir "$work/student"
printf 'FROM %s\nLABEL org.inginious.grading.name=upstream-student\n' "$image" >"$work/student/Dockerfile"
out=$(docker build -q -t proctor/upstream-student "$work/student" 2>&1) ||
    die "docker build of proctor/upstream-student failed:
$out"

# What earlier runs left: images no tag points to any more, and root
# filesystem images of other keys.
docker image prune -f --filter label=org.proctor.upstream-image >/dev/null 2>&1 || true
for old in $(docker image ls --format '{{.Repository}}:{{.Tag}}' proctor/upstream-rootfs); do
    [ "$old" = "$rootfs_image" ] || docker rmi "$old" >/dev/null 2>&1 || true
done
