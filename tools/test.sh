#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs dependencies, builds with
# -Werror under ASan+UBSan, builds the example images, and runs every test
# (C unit tests, busted specs, lint, integration tests on the real Docker
# engine with the real INGInious backend and client) through ctest.
#   tools/test.sh [ctest arguments...]
# The long runs (label soak: the 2,000-job soak, the long scale-out) are left
# out unless the arguments choose tests themselves: tools/test.sh -L soak.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=$(tools/setup.sh | tail -n 1)
BUILD=${PROCTOR_TEST_BUILD:-build-test}
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Debug -DPROCTOR_WERROR=ON \
      -DPROCTOR_SANITIZE=address,undefined -DPROCTOR_PYTHON="$PY" >/dev/null
cmake --build "$BUILD" -j"$(nproc)"
examples/environments/build.sh "$BUILD"
# ASan's leak checker cannot run under ptrace-less sandboxes reliably; keep it
# on (it is what finds leaks) and make any sanitizer report fatal.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
args=(-LE soak)
for a in "$@"; do
    case $a in -L* | -R* | --label-* | --tests-regex) args=() ;; esac
done
ctest --test-dir "$BUILD" --output-on-failure "${args[@]}" "$@"
