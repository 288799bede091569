#!/bin/sh
# install.layout: `cmake --install` into a throwaway prefix gives the layout
# cmake/install.cmake promises, the installed binaries run, the man pages
# render without a warning, the shipped policies pass --check-policies, and the
# installed image script assembles its images from the installed runtime.
# Usage: test_install.sh BUILD_DIR
set -eu
build=$1
prefix=$(mktemp -d /tmp/proctor-install-XXXXXX)
trap 'rm -rf "$prefix"' EXIT
fail() {
    echo "install.layout: $*" >&2
    exit 1
}

cmake --install "$build" --prefix "$prefix" >/dev/null

for f in bin/proctord bin/proctor share/proctor/proctor-runtime share/proctor/environments/build.sh; do
    [ -x "$prefix/$f" ] || fail "$f missing or not executable"
done
for f in share/proctor/environments/default/Dockerfile share/proctor/environments/student/Dockerfile \
    share/proctor/environments/README.md share/proctor/policies/README.md \
    share/proctor/policies/limits.lua share/proctor/policies/hardening.lua \
    share/proctor/policies/ports.lua share/proctor/policies/results.lua \
    share/proctor/policies/runtimes.lua share/man/man8/proctord.8 share/man/man1/proctor.1; do
    [ -f "$prefix/$f" ] || fail "$f missing"
done
[ -d "$prefix/etc/proctor/policies" ] || fail "etc/proctor/policies missing"
[ -z "$(ls -A "$prefix/etc/proctor/policies")" ] || fail "etc/proctor/policies is not empty"
file "$prefix/share/proctor/proctor-runtime" | grep -q 'statically linked' ||
    fail "the installed runtime is not static"

v=$("$prefix/bin/proctord" --version)
echo "$v" | grep -Eq '^proctord [0-9]+\.[0-9]+\.[0-9]+$' || fail "proctord --version said: $v"
v=$("$prefix/bin/proctor" --version)
echo "$v" | grep -Eq '^proctor [0-9]+\.[0-9]+\.[0-9]+$' || fail "proctor --version said: $v"

"$prefix/bin/proctord" --check-policies "$prefix/share/proctor/policies" >/dev/null ||
    fail "the installed shipped policies were refused"
"$prefix/bin/proctord" --check-policies "$prefix/etc/proctor/policies" >/dev/null ||
    fail "the installed (empty) admin policy directory was refused"

# proctor test-policies from the installed tree: a shipped spec copied into an
# admin's directory passes on the (empty) directory, fails once the policy differs.
admin="$prefix/admin-policies"
mkdir -p "$admin/spec"
cp "$prefix/share/proctor/policies/spec/limits_spec.lua" "$admin/spec/" ||
    fail "share/proctor/policies/spec/limits_spec.lua missing"
out=$(cd / && "$prefix/bin/proctor" test-policies "$admin" 2>&1) ||
    fail "test-policies with the installed shipped spec: $out"
echo 'return extend("limits", { defaults = { memory_mib = MiB(512) } })' >"$admin/limits.lua"
if out=$(cd / && "$prefix/bin/proctor" test-policies "$admin" 2>&1); then
    fail "test-policies passed a policy its spec contradicts: $out"
fi
echo "$out" | grep -q "limits_spec.lua:[0-9]*: Expected objects to be the same" ||
    fail "test-policies failure unreadable: $out"

for page in share/man/man8/proctord.8 share/man/man1/proctor.1; do
    warnings=$(groff -man -Tutf8 -ww -z "$prefix/$page" 2>&1)
    [ -z "$warnings" ] || fail "$page: $warnings"
    MANWIDTH=80 man -l "$prefix/$page" 2>/dev/null | grep -q '^NAME' || fail "$page does not render"
done

# The systemd unit: well-formed for systemd itself, pointing at the installed
# proctord (moved to this prefix for the check), with its settings file.
unit="$prefix/lib/systemd/system/proctord.service"
[ -f "$unit" ] && [ -f "$prefix/etc/default/proctord" ] || fail "the unit or its settings are missing"
grep -q '^ExecStart=/usr/local/bin/proctord \$PROCTORD_OPTS \$PROCTORD_BACKEND$' "$unit" ||
    grep -q '^ExecStart=/.*/proctord \$PROCTORD_OPTS \$PROCTORD_BACKEND$' "$unit" ||
    fail "ExecStart: $(grep ExecStart "$unit")"
for line in Type=notify WatchdogSec=30 'ExecReload=/bin/kill -HUP $MAINPID' TimeoutStopSec=180; do
    grep -qxF "$line" "$unit" || fail "the unit lacks $line"
done
mkdir -p "$prefix/verify"
sed "s|^ExecStart=[^ ]*|ExecStart=$prefix/bin/proctord|" "$unit" >"$prefix/verify/proctord.service"
out=$(systemd-analyze verify --man=no "$prefix/verify/proctord.service" 2>&1) ||
    fail "systemd-analyze verify: $out"
[ -z "$out" ] || fail "systemd-analyze verify: $out"

# The installed build.sh must use the installed runtime and build nothing.
# Real images would be discovered by the agents of tests running meanwhile,
# so `docker` is a recorder here: it keeps each build context it is given.
shim="$prefix/shim"
mkdir -p "$shim" "$prefix/contexts"
cat >"$shim/docker" <<SHIM
#!/bin/sh
if [ "\$1" = build ]; then
    for last; do :; done
    cp -a "\$last" "$prefix/contexts/\$(basename "\$last")"
    echo sha256:0000
fi
exit 0
SHIM
chmod +x "$shim/docker"
PATH="$shim:$PATH" PROCTOR_IMAGE_PREFIX=proctor-install-test/env- \
    "$prefix/share/proctor/environments/build.sh" >"$prefix/build.log" 2>&1 ||
    fail "installed build.sh failed: $(cat "$prefix/build.log")"
for env in default student; do
    ctx="$prefix/contexts/$env"
    [ -f "$ctx/Dockerfile" ] || fail "no build context for $env: $(cat "$prefix/build.log")"
    # build.sh strips the copy it puts in the image (when strip is there).
    strip -o "$prefix/stripped" "$prefix/share/proctor/proctor-runtime" 2>/dev/null ||
        cp "$prefix/share/proctor/proctor-runtime" "$prefix/stripped"
    if ! cmp -s "$ctx/rootfs/bin/proctor-runtime" "$prefix/share/proctor/proctor-runtime" &&
        ! cmp -s "$ctx/rootfs/bin/proctor-runtime" "$prefix/stripped"; then
        fail "the $env image does not carry the installed runtime"
    fi
    [ -L "$ctx/rootfs/bin/run_student" ] || fail "the $env image lacks the tool links"
done
grep -q 'building proctor-install-test/env-default' "$prefix/build.log" ||
    fail "PROCTOR_IMAGE_PREFIX ignored: $(cat "$prefix/build.log")"
echo "install.layout: ok"
