#!/bin/sh
# agent.explain_debug_log: proctord at debug level logs one line per policy
# decision, with the same content as `proctor run --explain` (here the
# map_runtimes() of its discovery, which needs no backend), and none at the
# default level.
# Usage: test_explain_debug_log.sh PROCTORD
set -eu
proctord=$1
dir=$(mktemp -d /tmp/proctor-explain-log-XXXXXX)
pid=
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    rm -rf "$dir"
}
trap cleanup EXIT
fail() {
    echo "agent.explain_debug_log: $*" >&2
    exit 1
}
mkdir "$dir/pol" "$dir/tmp"
printf 'return {\n    map_runtimes = function(req)\n        error("not today")\n    end,\n}\n' \
    >"$dir/pol/runtimes.lua"
# Wait (with a deadline) until `pattern` is in the log of the proctord started with "$@".
watch() {
    pattern=$1
    shift
    "$proctord" "$@" --policies "$dir/pol" --tmpdir "$dir/tmp" tcp://127.0.0.1:1 >"$dir/log" 2>&1 &
    pid=$!
    i=0
    while ! grep -q "$pattern" "$dir/log"; do
        i=$((i + 1))
        [ $i -le 300 ] || return 1
        sleep 0.1
    done
}
watch "decision: map_runtimes() by (built-in)/runtimes.lua:[0-9]* (fallback: $dir/pol/runtimes.lua:3: not today) in {\"runtimes\":\[.*\],\"ssh\":false} -> out {\"runtimes\":\[" -v ||
    fail "no decision line at debug level: $(cat "$dir/log")"
grep "decision:" "$dir/log"
kill "$pid"
wait "$pid" || true
# At the default level: the failure is logged (a warning), the decision is not
# (the discovery that made it is over once its environments are listed).
watch "discovered [0-9]* environment" || fail "no discovery: $(cat "$dir/log")"
grep -q "map_runtimes() raised an error" "$dir/log" || fail "no warning: $(cat "$dir/log")"
grep -q "decision:" "$dir/log" && fail "a decision line at the default level"
echo "agent.explain_debug_log: ok"
