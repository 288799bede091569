#!/bin/sh
# agent.runtime_option: proctord --runtime RUNTIME ENVTYPE [root] [shared], as
# inginious-agent-docker's, feeds the runtimes policy: the shipped
# runtimes.lua then offers exactly the runtimes given (here runc as type
# "mydocker", and runc as "rooted" with root), not the ones its rules find
# ("docker"); the decision line says it came in as req.forced.
# Usage: test_runtime_option.sh PROCTORD
set -eu
proctord=$1
dir=$(mktemp -d /tmp/proctor-runtime-opt-XXXXXX)
pid=
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    rm -rf "$dir"
}
trap cleanup EXIT
fail() {
    echo "agent.runtime_option: $*" >&2
    exit 1
}
mkdir "$dir/tmp"
# The backend address first, as upstream's argparse needs it (nargs='+' would take it).
"$proctord" -v --tmpdir "$dir/tmp" tcp://127.0.0.1:1 --runtime runc mydocker shared \
    --runtime runc rooted root >"$dir/log" 2>&1 &
pid=$!
i=0
while ! grep -q "discovered [0-9]* environment" "$dir/log"; do
    i=$((i + 1))
    [ $i -le 300 ] || fail "no discovery: $(cat "$dir/log")"
    sleep 0.1
done
grep -E "decision: map_runtimes|environment|->" "$dir/log" | cut -c1-300
grep -q 'decision: map_runtimes() by (built-in)/runtimes.lua:[0-9]* in {.*"forced":\[{"runtime":"runc","envtype":"mydocker","run_as_root":false,"enables_gpu":false,"shared_kernel":true},{"runtime":"runc","envtype":"rooted","run_as_root":true,"enables_gpu":false,"shared_kernel":false}\]} -> out {"runtimes":\[{"runtime":"runc","envtype":"mydocker"' "$dir/log" ||
    fail "map_runtimes() did not get --runtime as req.forced"
grep -Eq '^[^ ]+ info  job +mydocker/default -> [^ ]+ \(runtime runc\)$' "$dir/log" ||
    fail "docker/default is not offered as mydocker/default"
grep -Eq '^[^ ]+ info  job +rooted/default -> ' "$dir/log" || fail "no rooted/default"
grep -Eq ' docker/default -> ' "$dir/log" && fail "the rules' docker type is offered too"
echo "agent.runtime_option: ok"
