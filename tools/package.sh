#!/usr/bin/env bash
# Builds the Debian package (CPack) in build-deb/ and, with --check, installs
# it on this machine with apt-get, checks what it installed (binaries, the
# admin's policy directory, the unit, the man pages), then purges it and checks
# that nothing is left. CI runs `tools/package.sh --check`.
#   tools/package.sh [--check]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${PROCTOR_DEB_BUILD:-build-deb}
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX=/usr \
      -DBUILD_TESTING=OFF >/dev/null
cmake --build "$BUILD" -j"$(nproc)" --target proctord proctor proctor-runtime >/dev/null
(cd "$BUILD" && rm -f proctor_*.deb && cpack -G DEB >/dev/null)
deb=$(ls "$BUILD"/proctor_*.deb)
echo "package: $deb"
[ "${1:-}" = --check ] || exit 0

fail() {
    echo "package: $*" >&2
    exit 1
}
SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo
# One install of the package at a time on this machine (this check, the test
# package.service_runs): the lock is held until this script exits.
exec 9>/run/lock/proctor-package.lock
flock 9
dpkg-deb -f "$deb" Depends | grep -q 'libc6' || fail "no shared-library dependencies: $(dpkg-deb -f "$deb" Depends)"
dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles | grep -qx /etc/default/proctord ||
    fail "/etc/default/proctord is not a conffile"
if dpkg -s proctor >/dev/null 2>&1; then
    fail "a proctor package is already installed here; remove it first"
fi
$SUDO apt-get install -y -q "./$deb" >/dev/null
trap '$SUDO apt-get purge -y -q proctor >/dev/null 2>&1 || true' EXIT
/usr/bin/proctord --version | grep -Eq '^proctord [0-9.]+$' || fail "proctord --version"
/usr/bin/proctor --version | grep -Eq '^proctor [0-9.]+$' || fail "proctor --version"
/usr/bin/proctor check-policies /etc/proctor/policies >/dev/null || fail "check-policies /etc/proctor/policies"
/usr/bin/proctor check-policies /usr/share/proctor/policies >/dev/null || fail "check-policies (shipped)"
out=$(systemd-analyze verify --man=no /usr/lib/systemd/system/proctord.service 2>&1) ||
    fail "systemd-analyze verify: $out"
[ -z "$out" ] || fail "systemd-analyze verify: $out"
man -w proctord >/dev/null && man -w proctor >/dev/null || fail "man pages not found by man"
file /usr/share/proctor/proctor-runtime | grep -q 'statically linked' || fail "runtime not static"
$SUDO apt-get purge -y -q proctor >/dev/null
trap - EXIT
for f in /usr/bin/proctord /usr/bin/proctor /usr/share/proctor /usr/lib/systemd/system/proctord.service \
    /etc/default/proctord /etc/proctor; do
    [ ! -e "$f" ] || fail "$f left after purge"
done
echo "package: installed, checked and purged cleanly"
