#!/bin/sh
# Builds every example grading image with `docker build`, from local files
# only (nothing is pulled): Debian's static busybox + proctor-runtime, FROM
# scratch. Usage: examples/environments/build.sh [BUILD_DIR]
# PROCTOR_AGENT_VERSION=4 labels the images for INGInious's development head
# (org.inginious.grading.agent_version=4) instead of 0.9.x (3, the default);
# the runtime speaks both container protocols.
# BUILD_DIR is a CMake build directory (default: <repo>/build); the runtime
# is (re)built there first, configuring the directory if it is new.
# Installed (share/proctor/environments/build.sh, the runtime next to it in
# share/proctor), or with PROCTOR_RUNTIME=<path of a built proctor-runtime>,
# it builds nothing and works in a temporary directory.
# PROCTOR_IMAGE_PREFIX names the images (default proctor/env-).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
prefix=${PROCTOR_IMAGE_PREFIX:-proctor/env-}
runtime=${PROCTOR_RUNTIME:-}
if [ -z "$runtime" ] && [ -x "$here/../proctor-runtime" ] && [ ! -f "$here/../../CMakeLists.txt" ]; then
    runtime="$here/../proctor-runtime" # the installed layout
fi
busybox=${BUSYBOX:-/bin/busybox}
version=${PROCTOR_AGENT_VERSION:-3}
case "$version" in
3 | 4) ;;
*)
    echo "build.sh: PROCTOR_AGENT_VERSION must be 3 or 4, not $version" >&2
    exit 2
    ;;
esac

# Tools the runtime implements; each is a link to the one binary.
tools="INGInious _run_student_intern run_student getinput feedback feedback-result
feedback-grade feedback-msg feedback-custom feedback-state tag tag-set archive
parsetemplate rst-code rst-msgblock rst-indent rst-image"

if [ -n "$runtime" ]; then
    build=$(mktemp -d)
    trap 'rm -rf "$build"' EXIT
else
    top=$(cd "$here/../.." && pwd)
    build=$(mkdir -p "${1:-$top/build}" && cd "${1:-$top/build}" && pwd)
    if [ ! -f "$build/CMakeCache.txt" ]; then
        cmake -S "$top" -B "$build" >/dev/null
    fi
    cmake --build "$build" --target proctor-runtime >/dev/null
    runtime="$build/proctor-runtime"
fi
if ! file "$busybox" 2>/dev/null | grep -q 'statically linked'; then
    echo "build.sh: $busybox is not a static busybox (install busybox-static)" >&2
    exit 1
fi

# One root filesystem shared by all images.
ctx="$build/images"
rootfs="$ctx/rootfs"
rm -rf "$ctx"
mkdir -p "$rootfs/bin" "$rootfs/etc" "$rootfs/task" "$rootfs/tmp" "$rootfs/root"
cp "$busybox" "$rootfs/bin/busybox"
for applet in $("$busybox" --list); do
    [ "$applet" = busybox ] || ln -s busybox "$rootfs/bin/$applet"
done
install -m 0755 "$runtime" "$rootfs/bin/proctor-runtime"
strip "$rootfs/bin/proctor-runtime" 2>/dev/null || true
for t in $tools; do
    rm -f "$rootfs/bin/$t"
    ln -s proctor-runtime "$rootfs/bin/$t"
done
printf 'root:x:0:0:root:/root:/bin/sh\nworker:x:4242:4242:worker:/task:/bin/sh\n' >"$rootfs/etc/passwd"
printf 'root:x:0:\nworker:x:4242:\n' >"$rootfs/etc/group"
chmod 1777 "$rootfs/tmp"
chmod 0755 "$rootfs/task" "$rootfs/root"

for env in "$here"/*/; do
    name=$(basename "$env")
    [ -f "$env/Dockerfile" ] || continue
    mkdir -p "$ctx/$name"
    cp -a "$rootfs" "$ctx/$name/rootfs"
    cp "$env/Dockerfile" "$ctx/$name/Dockerfile"
    echo "building $prefix$name"
    # Quiet unless it fails: the legacy builder prints a deprecation notice.
    # org.proctor.runtime: the image's _run_student_intern is proctor's (proctord may
    # start its student containers before their request: README "Warm pool").
    if ! out=$(docker build -q --label org.proctor.example-image=1 \
               --label org.proctor.runtime=1 \
               --label org.inginious.grading.agent_version="$version" -t "$prefix$name" \
               "$ctx/$name" 2>&1); then
        echo "$out" >&2
        exit 1
    fi
done
# Untagged images left by a previous run of this script (and only those).
docker image prune -f --filter label=org.proctor.example-image=1 >/dev/null
