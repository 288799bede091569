#!/usr/bin/env bash
# The demo, on a fresh machine: installs dependencies, builds proctor and the
# example grading images, starts the real INGInious backend and proctord, and
# grades the demo course's submissions end to end on the real Docker engine,
# printing each result.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=$(tools/setup.sh | tail -n 1)
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPROCTOR_PYTHON="$PY" >/dev/null
cmake --build build -j"$(nproc)"
examples/environments/build.sh build
exec "$PY" tools/demo.py build
