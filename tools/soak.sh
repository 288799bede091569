#!/usr/bin/env bash
# The soak (README "Reliability"): N mixed jobs (default 2,000: trivial, run_student,
# 1 MiB outputs, timeouts, kills from the client) through the real INGInious backend
# and one proctord; prints the agent's RSS, open fds, threads and its policy worker's
# RSS after every 25 jobs, then the least-squares slopes after warm-up, and fails if
# one is past its bound, if a job is not answered exactly once or a container is left.
# Uses a Release build (ASan inflates RSS): build-release/, made here unless --build.
#   tools/soak.sh [--jobs N] [--build DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=$(tools/setup.sh | tail -n 1)
build=
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
    case ${args[i]} in
    --build) build=${args[i + 1]:-} ;;
    --build=*) build=${args[i]#--build=} ;;
    esac
done
if [ -z "$build" ]; then
    build=build-release
    cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DPROCTOR_PYTHON="$PY" >/dev/null
    cmake --build "$build" -j"$(nproc)" --target proctord >/dev/null
    args+=(--build "$build")
fi
# The example grading images, only if they are missing (others may be using them).
if [ -z "$(docker images -q --filter label=org.inginious.grading.name=default)" ]; then
    examples/environments/build.sh "$build"
fi
exec "$PY" tests/integration/test_soak.py "${args[@]}"
