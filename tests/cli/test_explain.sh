#!/bin/sh
# cli.explain: `proctor run --explain` prints one line per policy decision on
# stderr (the hook, the file:line that answered, its input and what the job
# got, and a fallback when the admin's hook failed or is missing), while the
# JSON result on stdout is what it is without --explain.
# Usage: test_explain.sh PROCTOR PYTHON   (from the repository root: the demo course)
set -eu
proctor=$1
python=$2
dir=$(mktemp -d /tmp/proctor-explain-XXXXXX)
trap 'rm -rf "$dir"' EXIT
fail() {
    echo "cli.explain: $*" >&2
    exit 1
}
run() { # run OUT ERR [options]: the hello task of the demo course
    out=$1 err=$2
    shift 2
    "$proctor" run "$@" --tasks examples/courses demo hello \
        --input "script=echo 'Hello, world!'" >"$out" 2>"$err" || true
}
json_ok() { # the result on stdout is the JSON of a success, nothing else
    "$python" -c "import json, sys; d = json.load(open(sys.argv[1])); sys.exit(d['result'][0] != 'success')" "$1" ||
        fail "stdout is not the JSON of a success: $(cat "$1")"
}

# No policy directory: the shipped files decide, no fallback.
run "$dir/out0" "$dir/err0"
json_ok "$dir/out0"
grep -q explain "$dir/err0" && fail "explain lines without --explain: $(cat "$dir/err0")"
run "$dir/out1" "$dir/err1" --explain
cat "$dir/err1"
json_ok "$dir/out1"
# The result is the same with and without --explain (but for its timings).
"$python" -c "import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:])
for d in (a, b):
    d.pop('stdout', None); d.pop('stderr', None)
sys.exit(a != b)" "$dir/out0" "$dir/out1" || fail "the result differs with --explain"
grep -q explain "$dir/out1" && fail "explain lines on stdout"
for hook in map_runtimes clamp_limits harden validate_result; do
    grep -Eq "^explain: $hook\(\) by \(built-in\)/[a-z]+\.lua:[0-9]+ in \{.*\} -> out \{.*\}$" "$dir/err1" ||
        fail "no line for $hook() with its file:line, input and output"
done
grep -q "fallback" "$dir/err1" && fail "a fallback without a policy directory"
grep -Eq '^explain: clamp_limits\(\) .* in \{"time_s":10,"hard_time_s":30,"memory_mib":64,.*"max_memory_mib":[0-9]+' "$dir/err1" ||
    fail "clamp_limits' input is not the task's limits"

# An admin's clamp_limits that decides: its file:line and its answer.
mkdir "$dir/pol"
cat >"$dir/pol/limits.lua" <<'LUA'
return {
    clamp_limits = function(req)
        return { time_s = req.time_s, hard_time_s = req.hard_time_s, memory_mib = 99, network = false }
    end,
}
LUA
run "$dir/out2" "$dir/err2" --explain --policies "$dir/pol"
cat "$dir/err2"
json_ok "$dir/out2"
grep -Eq "^explain: clamp_limits\(\) by $dir/pol/limits.lua:2 in .* -> out \{\"time_s\":10,\"hard_time_s\":30,\"memory_mib\":99,\"network\":false\}$" "$dir/err2" ||
    fail "the admin's clamp_limits is not named with its answer"
grep -Eq "^explain: harden\(\) by \(built-in\)/hardening.lua:[0-9]+ \(fallback: $dir/pol/hardening.lua: no such file\)" "$dir/err2" ||
    fail "a missing file is not shown as a fallback"

# The admin's hook errors: the shipped one answers, and the line says why.
cat >"$dir/pol/limits.lua" <<'LUA'
return {
    clamp_limits = function(req)
        error("no limits today")
    end,
}
LUA
run "$dir/out3" "$dir/err3" --explain --policies "$dir/pol"
cat "$dir/err3"
json_ok "$dir/out3"
grep -Eq "^explain: clamp_limits\(\) by \(built-in\)/limits.lua:[0-9]+ \(fallback: $dir/pol/limits.lua:3: no limits today\) in .* -> out \{\"time_s\":10,\"hard_time_s\":30,\"memory_mib\":64" "$dir/err3" ||
    fail "the fallback after an error is not shown"
echo "cli.explain: ok"
