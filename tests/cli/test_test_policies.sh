#!/bin/sh
# cli.test_policies: `proctor test-policies DIR` runs an admin's busted specs,
# written in a directory outside the repository, against the admin's policy
# directory there: it passes when the policy does what the spec says, fails
# (non-zero, with busted's message naming the spec's file:line) when it does
# not, and a policy file that does not load is a failure naming its file:line.
# The shipped specs (the examples an admin copies) pass against an empty
# directory (every file is then the shipped one, as in proctord).
# Usage: test_test_policies.sh PROCTOR SHIPPED_SPECS_DIR
set -eu
proctor=$1
shipped_specs=$2
dir=$(mktemp -d /tmp/proctor-admin-policies-XXXXXX)
trap 'rm -rf "$dir"' EXIT
fail() {
    echo "cli.test_policies: $*" >&2
    exit 1
}
mkdir "$dir/spec" "$dir/tmp"
export TMPDIR="$dir/tmp" # what proctor writes for busted must be gone afterwards
cd "$dir"                # nowhere near the repository

cat >"$dir/limits.lua" <<'LUA'
-- The shipped limits, but 512 MiB by default.
return extend("limits", { defaults = { memory_mib = MiB(512) } })
LUA
cat >"$dir/spec/limits_spec.lua" <<'LUA'
local function req(t)
    local r = { network_grading = false, needs_ports = false, environment_type = "docker",
                environment = "default", max_memory_mib = 1000, host_memory_mib = 3000, concurrency = 3 }
    for k, v in pairs(t or {}) do r[k] = v end
    return r
end

describe("site limits", function()
    local limits = proctor.load("limits")
    it("gives 512 MiB by default", function()
        assert.same(512, limits.clamp_limits(req()).memory_mib)
    end)
    it("keeps the shipped student clamp", function()
        assert.same(100, limits.clamp_student({ parent_time_s = 10, parent_hard_time_s = 30,
            parent_memory_mib = 100, time_s = 0, hard_time_s = 0, memory_mib = 0 }).memory_mib)
    end)
    it("reads the file under test", function()
        assert.same(proctor.policies .. "/limits.lua", proctor.source("limits"))
    end)
end)
LUA

out=$("$proctor" test-policies "$dir" 2>&1) || fail "the specs of a right policy failed: $out"
printf '%s\n' "$out"
echo "$out" | grep -q '3 successes / 0 failures / 0 errors' || fail "not 3 successes: $out"
[ -z "$(ls -A "$dir/tmp")" ] || fail "proctor left files behind: $(ls -A "$dir/tmp")"

# The policy is wrong: the spec fails, readably.
sed -i 's/MiB(512)/MiB(256)/' "$dir/limits.lua"
if out=$("$proctor" test-policies "$dir" 2>&1); then
    fail "the specs of a wrong policy passed: $out"
fi
printf '%s\n' "$out"
echo "$out" | grep -q '2 successes / 1 failure' || fail "not 1 failure: $out"
echo "$out" | grep -q "spec/limits_spec.lua:11: Expected objects to be the same" ||
    fail "the failure does not name the spec's line: $out"
echo "$out" | grep -q "(number) 256" || fail "the failure does not show the answer: $out"
echo "$out" | grep -q "proctor: the specs against $dir failed" || fail "no closing line: $out"

# A policy file that does not load: an error naming its file:line, non-zero.
printf 'return extend("limits", { defaults = { memry_mib = 1 } })\n' >"$dir/limits.lua"
if out=$("$proctor" test-policies "$dir" "$dir/spec/limits_spec.lua" 2>&1); then
    fail "the specs of a policy that does not load passed: $out"
fi
echo "$out" | grep -q "$dir/limits.lua:1: .*unknown key 'memry_mib'" ||
    fail "the load error does not name the file:line: $out"

# The shipped specs, copied as an admin would, against an empty directory: all pass.
rm "$dir/limits.lua" "$dir/spec/limits_spec.lua"
cp "$shipped_specs"/limits_spec.lua "$shipped_specs"/ports_spec.lua \
    "$shipped_specs"/runtimes_spec.lua "$shipped_specs"/results_spec.lua \
    "$shipped_specs"/hardening_spec.lua "$dir/spec/"
out=$("$proctor" test-policies "$dir" 2>&1) || fail "the shipped specs failed on the shipped files: $out"
echo "$out" | grep -Eq '[1-9][0-9]* successes / 0 failures / 0 errors' || fail "$out"

# No spec at all: a usage error saying where specs go.
rm -r "$dir/spec"
if out=$("$proctor" test-policies "$dir" 2>&1); then
    fail "no specs passed: $out"
fi
echo "$out" | grep -q "no specs to run" || fail "no specs: $out"
[ -z "$(ls -A "$dir/tmp")" ] || fail "proctor left files behind: $(ls -A "$dir/tmp")"
echo "cli.test_policies: ok"
