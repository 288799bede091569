#!/usr/bin/env bash
# The benchmark (bench/README.md): proctord (cold, and warm with its pool) vs
# inginious-agent-docker vs the raw Docker floor, on this machine. Installs what
# it needs, builds proctord (Release) and the example grading images, then runs
# bench/bench.py, which writes results/<timestamp>/{report.md,chart.png,results.json}.
#
# usage: tools/bench.sh [--smoke] [--jobs N] [--open-rate R] [other bench/bench.py options]
#   --smoke   a few jobs per workload (CI); fails only if the benchmark broke
#             (a job did not grade, a metric is missing), never on a target.
#   --systems proctord,warm,python,floor (the default; baseline with --baseline DIR)
# PROCTOR_BENCH_BUILD=DIR builds in DIR (default build-release);
# PROCTOR_BENCH_IMAGES=keep skips rebuilding the example grading images.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=$(tools/setup.sh | tail -n 1)
if ! "$PY" -c "import matplotlib" 2>/dev/null; then
    echo "bench: installing matplotlib into $(dirname "$(dirname "$PY")")" >&2
    "$(dirname "$PY")/pip" install -q --disable-pip-version-check matplotlib >&2
fi
BUILD=${PROCTOR_BENCH_BUILD:-build-release}
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DPROCTOR_PYTHON="$PY" >/dev/null
cmake --build "$BUILD" -j"$(nproc)" --target proctord proctor-runtime >/dev/null
# PROCTOR_BENCH_IMAGES=keep uses the grading images as they are: on an engine
# where others run tests, rebuilding them changes the image under their agents.
if [ "${PROCTOR_BENCH_IMAGES:-build}" != keep ]; then
    examples/environments/build.sh "$BUILD"
fi
exec "$PY" bench/bench.py --build "$BUILD" "$@"
