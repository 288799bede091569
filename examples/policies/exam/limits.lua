--[[ limits.lua (exam profile): short, strict limits for graded exams.

What it decides, input and output: as policies/limits.lua (see policies/README.md).
  clamp_limits(req)   { time_s, hard_time_s, memory_mib, network } or nil, reason
  clamp_student(req)  { time_s, hard_time_s, memory_mib }
Differences from the shipped file: smaller defaults, a ceiling on what a task may ask
(refused with a clear text instead of silently cut), no network for grading containers.

Test it:  busted tests/policies/examples_exam_spec.lua   (from the repository root)
]]

local defaults = {
    time_s = seconds(10),          -- CPU time when the task sets none
    hard_time_factor = 2,          -- wall time = this × CPU time when the task sets none
    memory_mib = MiB(128),         -- memory when the task sets none
    min_memory_mib = MiB(20),      -- smaller requests are raised to this (as INGInious)
    max_time_s = seconds(60),      -- tasks asking for more CPU time are refused
    max_hard_time_s = minutes(3),  -- tasks asking for more wall time are refused
    max_memory_mib = MiB(512),     -- tasks asking for more memory are refused (secure default)
}
schema.check_keys(defaults, {
    "time_s", "hard_time_factor", "memory_mib", "min_memory_mib", "max_time_s", "max_hard_time_s",
    "max_memory_mib",
}, "exam limits.lua defaults")

local TOO_LONG = "This task asks for more time than exams allow (%d s). Please contact your course administrator."
local TOO_BIG = "Not enough memory on agent (available: %dMB). Please contact your course administrator."

local function optional_int(req, key)
    local v = req[key]
    if v ~= nil and math.type(v) ~= "integer" then
        error(string.format("req.%s must be an integer or nil, got %s", key, schema.dump(v)), 2)
    end
    return v
end

local function times(req)
    local time = optional_int(req, "time_s") or defaults.time_s
    local hard = optional_int(req, "hard_time_s")
    if hard == nil or hard == 0 then
        hard = math.min(math.max(time, 1), defaults.max_time_s) * defaults.hard_time_factor
    end
    if time > defaults.max_time_s then
        return nil, string.format(TOO_LONG, defaults.max_time_s)
    end
    if hard > defaults.max_hard_time_s then
        return nil, string.format(TOO_LONG, defaults.max_hard_time_s)
    end
    return math.max(time, 1), math.max(hard, 1)
end

local function memory(req)
    local mem = math.max(optional_int(req, "memory_mib") or defaults.memory_mib, defaults.min_memory_mib)
    local ceiling = math.min(defaults.max_memory_mib, req.max_memory_mib)
    if mem > ceiling then
        return nil, string.format(TOO_BIG, ceiling)
    end
    return mem
end

local function clamp_limits(req)
    local mem, refusal = memory(req)
    if not mem then return nil, refusal end
    local time, hard = times(req)
    if not time then return nil, hard end
    -- No network during exams, and no published ports: ports.lua refuses those jobs.
    return { time_s = time, hard_time_s = hard, memory_mib = mem, network = false }
end

local function inherit(asked, parent)
    if asked == nil or asked <= 0 then return parent end
    return math.min(asked, parent)
end

local function clamp_student(req)
    return {
        time_s = inherit(req.time_s, req.parent_time_s),
        hard_time_s = inherit(req.hard_time_s, req.parent_hard_time_s),
        memory_mib = math.max(inherit(req.memory_mib, req.parent_memory_mib),
            math.min(defaults.min_memory_mib, req.parent_memory_mib)),
    }
end

return {
    clamp_limits = clamp_limits,
    clamp_student = clamp_student,
    examples = {
        clamp_limits = {
            { input = { max_memory_mib = 1024 },
              output = { time_s = 10, hard_time_s = 20, memory_mib = 128, network = false } },
            { input = { time_s = 120, max_memory_mib = 1024 }, refuse = string.format(TOO_LONG, 60) },
        },
    },
}
