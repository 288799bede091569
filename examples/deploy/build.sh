#!/bin/sh
# Builds the image proctor/proctord (FROM scratch, from local files only:
# nothing is pulled): proctord from BUILD_DIR, the shared libraries it links
# (as ldd finds them on this host), Debian's static busybox for the entry
# point. It runs in place of INGInious's agent service (docker-compose.yml).
# Usage: examples/deploy/build.sh BUILD_DIR [TAG]   (TAG: proctor/proctord)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "${1:?usage: build.sh BUILD_DIR [TAG]}" && pwd)
tag=${2:-proctor/proctord}
busybox=${BUSYBOX:-/bin/busybox}
[ -x "$build/proctord" ] || { echo "build.sh: no $build/proctord (build it first)" >&2; exit 1; }
file "$busybox" 2>/dev/null | grep -q 'statically linked' ||
    { echo "build.sh: $busybox is not a static busybox (install busybox-static)" >&2; exit 1; }

ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
root="$ctx/rootfs"
mkdir -p "$root/usr/bin" "$root/bin" "$root/tmp" "$root/etc" "$root/usr/share/proctor" \
    "$root/var/lib/proctord" "$root/inginious/tasks"
chmod 1777 "$root/tmp"
install -m 0755 "$build/proctord" "$root/usr/bin/proctord"
cp "$busybox" "$root/bin/busybox"
ln -s busybox "$root/bin/sh"
# Every library the binary needs, at the path the dynamic loader looks for it.
ldd "$build/proctord" | awk '/=> \// { print $3 } /^[[:space:]]*\// { print $1 }' | sort -u |
    while read -r lib; do
        mkdir -p "$root$(dirname "$lib")"
        cp -L "$lib" "$root$lib"
    done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' \
    >"$root/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
install -m 0755 "$here/entrypoint.sh" "$root/usr/share/proctor/entrypoint.sh"
cp "$here/Dockerfile" "$ctx/Dockerfile"
echo "building $tag"
if ! out=$(docker build -q --label org.proctor.deploy-image=1 -t "$tag" "$ctx" 2>&1); then
    echo "$out" >&2
    exit 1
fi
