--[[ results.lua: validates and normalises the result a grading container sends.

What it decides
  validate_result(req)  the job's verdict, or the reason the result is unreadable

Input
  req.result      what the container sent as `result` (any type). When it is a map:
                    result, text, state: strings     grade: a float (Lua float subtype)
                    problems, tests, custom: maps    archive, stdout, stderr: `true` when the
                    container sent a string (the agent decodes and bounds those itself)
                  msgpack nil is schema.null; an empty array is schema.empty_array.
  req.prev_state  string   the job's previous state (inputdata "@state")
Output
  { result = one of success failed error crash timeout overflow killed,
    text = string, grade = number (rounded to 2 decimals),
    problems = { id = { result, text } }, tests = { id = value }, custom = { key = value },
    state = string }
  or nil, "reason": the job ends as crash "The grader did not return a readable output : reason".

Rules (INGInious 0.9): any key other than the ones above is refused; grade must be a float
(an integer or a boolean is refused) and defaults to 100.0 for success, 0.0 otherwise;
problem ids match [A-Za-z0-9_.-]+ and test ids may also hold '*'; their values must not be maps.
Beyond INGInious: a problem given as a plain string becomes { result, text }; results outside
the known list become "error"; a grade that is not finite (nan, inf) is refused.

Test it:  busted tests/policies/results_spec.lua   (from the repository root)
]]

-- extend("results", { defaults = {...} }) replaces entries of this table (policies/README.md).
local defaults = schema.with_overrides({
    result = "error",             -- result when the grader sets none (INGInious: "error")
    text = "",                    -- feedback when the grader sets none
    success_grade = 100.0,        -- grade of a "success" without grade, in percent (INGInious: 100.0)
    other_grade = 0.0,            -- grade of any other result without grade, in percent (INGInious: 0.0)
    unknown_result = "error",     -- what a result outside KNOWN_RESULTS becomes (the frontend shows it as an error)
    keep_state_when_absent = false, -- INGInious erases the task state when the grader sets none;
                                    -- true keeps req.prev_state instead
}, ..., "results.lua defaults")
schema.check_keys(defaults, {
    "result", "text", "success_grade", "other_grade", "unknown_result", "keep_state_when_absent",
}, "results.lua defaults")

local KNOWN_RESULTS = {
    success = true, failed = true, error = true, crash = true, timeout = true, overflow = true, killed = true,
}

-- Accepted top-level keys and the check of each value.
local FIELDS = {
    result = "string", text = "string", state = "string", grade = "float",
    problems = "map", tests = "map", custom = "map",
    archive = "decoded", stdout = "decoded", stderr = "decoded",
}

local BAD = "Feedback file is badly formatted: "

local function type_ok(kind, v)
    if kind == "float" then return math.type(v) == "float" end
    if kind == "map" then return schema.is_map(v) end
    if kind == "decoded" then return v == true end
    return type(v) == kind
end

local function describe(v)
    if math.type(v) then return math.type(v) end
    if schema.is_null(v) then return "null" end
    if schema.is_array(v) then return "array" end
    if schema.is_map(v) then return "map" end
    return type(v)
end

local function check_fields(res)
    for key, value in pairs(res) do
        local kind = FIELDS[key]
        if kind == nil then
            return BAD .. "unknown key " .. schema.dump(key)
        end
        if not type_ok(kind, value) then
            local want = kind == "decoded" and "string" or kind
            return string.format("%s'%s' must be a %s, got %s", BAD, key, want, describe(value))
        end
    end
end

-- Python's round(x, 2): "%.2f" rounds the exact binary value, ties to even.
local function round2(x)
    return tonumber(string.format("%.2f", x))
end

local function id_ok(map_name, id)
    if map_name == "tests" then return schema.is_test_id(id) end
    return schema.is_id(id)
end

-- problems and tests: ids checked, values not maps.
local function check_ids(map_name, map)
    for id, value in pairs(map) do
        if type(id) ~= "string" then
            return string.format("%s%s: key %s is not a string", BAD, map_name, schema.dump(id))
        end
        if not id_ok(map_name, id) then
            return string.format("%s%s: invalid id %s", BAD, map_name, schema.dump(id))
        end
        if schema.is_map(value) then
            return string.format("%s%s.%s must not be a map", BAD, map_name, id)
        end
    end
end

-- A problem's feedback becomes { result, text }.
local function normalise_problems(problems, result)
    local out = {}
    for id, value in pairs(problems) do
        if type(value) == "string" then
            out[id] = { result, value }
        elseif schema.is_array(value) and #value == 2 and type(value[1]) == "string"
            and type(value[2]) == "string" then
            out[id] = { value[1], value[2] }
        else
            return nil, string.format("%sproblems.%s must be a string or [result, text]", BAD, id)
        end
    end
    return out
end

local function final_grade(res, result)
    local grade = res.grade
    if grade == nil then
        return result == "success" and defaults.success_grade or defaults.other_grade
    end
    if grade ~= grade or grade == math.huge or grade == -math.huge then
        return nil, BAD .. "'grade' is not a finite number"
    end
    return round2(grade)
end

local function validate_result(req)
    local res = req.result
    if not schema.is_map(res) then
        return nil, BAD .. "the result must be a map, got " .. describe(res)
    end
    local why = check_fields(res) or check_ids("problems", res.problems or {})
        or check_ids("tests", res.tests or {})
    if why then return nil, why end
    local result = res.result or defaults.result
    if not KNOWN_RESULTS[result] then result = defaults.unknown_result end
    local grade, bad_grade = final_grade(res, result)
    if not grade then return nil, bad_grade end
    local problems, bad_problem = normalise_problems(res.problems or {}, result)
    if not problems then return nil, bad_problem end
    local state = res.state
    if state == nil then
        state = defaults.keep_state_when_absent and req.prev_state or ""
        if type(state) ~= "string" then state = "" end
    end
    return {
        result = result, text = res.text or defaults.text, grade = grade, problems = problems,
        tests = res.tests or {}, custom = res.custom or {}, state = state,
    }
end

return {
    validate_result = validate_result,
    examples = {
        validate_result = {
            { input = { result = { result = "success" }, prev_state = "" },
              output = { result = "success", text = "", grade = 100.0, problems = {}, tests = {}, custom = {},
                         state = "" } },
            { input = { result = { grade = 50 }, prev_state = "" },
              refuse = BAD .. "'grade' must be a float, got integer" },
        },
    },
}
