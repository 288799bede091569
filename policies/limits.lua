--[[ limits.lua: the time and memory limits of grading and student containers.

What it decides
  clamp_limits(req)   the limits of a job's grading container, or a refusal
  clamp_student(req)  the limits of a student container (run_student)

clamp_limits input (every value is set by the agent; *_s are seconds, *_mib MiB)
  req.time_s           integer or nil   limits.time of the task (CPU time)
  req.hard_time_s      integer or nil   limits.hard_time (wall time); nil when absent, null or ""
  req.memory_mib       integer or nil   limits.memory
  req.network_grading  boolean          environment_parameters.network_grading
  req.needs_ports      boolean          the image publishes ports, or this is an ssh debug job
  req.environment_type string           e.g. "docker"
  req.environment      string           e.g. "default"
  req.max_memory_mib   integer          host RAM / job slots (INGInious's "max per slot")
  req.host_memory_mib  integer          host RAM
  req.concurrency      integer          job slots
clamp_limits output
  { time_s = int > 0, hard_time_s = int > 0, memory_mib = int >= 6, network = boolean }
  or nil, "text for the student" to refuse the job (it ends as a crash with that text).

clamp_student input
  req.parent_time_s, req.parent_hard_time_s, req.parent_memory_mib  integers, the grading container's
  req.time_s, req.hard_time_s, req.memory_mib  integers as run_student asked; 0 means "inherit"
  req.environment      string
clamp_student output
  { time_s = int > 0, hard_time_s = int > 0, memory_mib = int >= 6 }

After this file, the agent still applies its hard caps (proctord's --max-time and
--max-hard-time, memory per slot, and the parent's limits for student containers): a policy can
narrow them, never widen them.

Test it:  busted tests/policies/limits_spec.lua   (from the repository root)
Check it: proctord --check-policies DIR
]]

-- extend("limits", { defaults = {...} }) replaces entries of this table (policies/README.md).
local defaults = schema.with_overrides({
    time_s = seconds(30),           -- CPU time when the task sets none (INGInious: 30 s)
    hard_time_factor = 3,           -- wall time = this × CPU time when the task sets none (INGInious: 3)
    memory_mib = MiB(200),          -- memory when the task sets none (INGInious: 200 MiB)
    min_memory_mib = MiB(20),       -- smaller requests are raised to this (INGInious: 20 MiB)
    min_time_s = seconds(1),        -- zero or negative times become this: the job times out at once,
                                    -- as in INGInious, but the container still gets a valid limit
    max_time_s = seconds(2147483647), -- about 68 years: only stops 3 × time from wrapping around
    ports_time_s = minutes(30),     -- jobs publishing ports (ssh debug) get this CPU and wall time
                                    -- (INGInious: 1800 s, so a debugging student is not cut off)
    allow_network_grading = true,   -- false: no grading container gets a network unless it publishes
                                    -- ports (secure, but tasks using network_grading then run offline)
    -- Optional ceilings (false: none). A task asking for more is refused with a clear text
    -- rather than silently cut, e.g. max_task_time_s = hours(1).
    max_task_time_s = false,        -- CPU time a task may ask for (limits.time)
    max_task_hard_time_s = false,   -- wall time a task may ask for (given, or factor × time)
    max_task_memory_mib = false,    -- memory a task may ask for (refused with INGInious's memory text)
    too_much_time = "This task asks for more time than this agent allows (%d s). "
        .. "Please contact your course administrator.", -- refusal of the two time ceilings
}, ..., "limits.lua defaults")
schema.check_keys(defaults, {
    "time_s", "hard_time_factor", "memory_mib", "min_memory_mib", "min_time_s", "max_time_s",
    "ports_time_s", "allow_network_grading", "max_task_time_s", "max_task_hard_time_s",
    "max_task_memory_mib", "too_much_time",
}, "limits.lua defaults")

-- INGInious's text, shown to the student as is.
local NOT_ENOUGH_MEMORY =
    "Not enough memory on agent (available: %dMB). Please contact your course administrator."

local function optional_int(req, key)
    local v = req[key]
    if v ~= nil and math.type(v) ~= "integer" then
        error(string.format("req.%s must be an integer or nil, got %s", key, schema.dump(v)), 2)
    end
    return v
end

local function between(v, lo, hi)
    return math.max(lo, math.min(v, hi))
end

local function too_long(ceiling)
    return nil, string.format(defaults.too_much_time, ceiling)
end

-- CPU and wall time: defaults, then 3 × time for a missing or zero hard_time; the optional
-- ceilings refuse.
local function task_times(req)
    local time = optional_int(req, "time_s") or defaults.time_s
    if defaults.max_task_time_s and time > defaults.max_task_time_s then
        return too_long(defaults.max_task_time_s)
    end
    time = between(time, defaults.min_time_s, defaults.max_time_s)
    local hard = optional_int(req, "hard_time_s")
    if hard == nil or hard == 0 then
        hard = between(time, 0, defaults.max_time_s // defaults.hard_time_factor) * defaults.hard_time_factor
    end
    if defaults.max_task_hard_time_s and hard > defaults.max_task_hard_time_s then
        return too_long(defaults.max_task_hard_time_s)
    end
    hard = between(hard, defaults.min_time_s, defaults.max_time_s)
    return time, hard
end

-- Memory: default, floor, then refuse above what one slot (or the optional ceiling) allows.
local function task_memory(req)
    local mem = optional_int(req, "memory_mib") or defaults.memory_mib
    if mem < defaults.min_memory_mib then
        return defaults.min_memory_mib
    end
    local ceiling = req.max_memory_mib
    if defaults.max_task_memory_mib then
        ceiling = math.min(ceiling, defaults.max_task_memory_mib)
    end
    if mem > ceiling then
        return nil, string.format(NOT_ENOUGH_MEMORY, ceiling)
    end
    return mem
end

local function clamp_limits(req)
    local memory, refusal = task_memory(req)
    if not memory then
        return nil, refusal
    end
    local time, hard = task_times(req)
    if not time then
        return nil, hard
    end
    if req.needs_ports then
        time, hard = defaults.ports_time_s, defaults.ports_time_s
    end
    local network = req.needs_ports == true
        or (defaults.allow_network_grading and req.network_grading == true)
    return { time_s = time, hard_time_s = hard, memory_mib = memory, network = network }
end

-- 0 (or less) inherits the parent's value; more than the parent's is cut to it.
local function inherit(req, key, parent)
    local asked = optional_int(req, key)
    if asked == nil or asked <= 0 then
        return parent
    end
    return math.min(asked, parent)
end

local function clamp_student(req)
    local memory = inherit(req, "memory_mib", req.parent_memory_mib)
    -- The floor never lifts a student container above its parent.
    memory = math.max(memory, math.min(defaults.min_memory_mib, req.parent_memory_mib))
    return {
        time_s = inherit(req, "time_s", req.parent_time_s),
        hard_time_s = inherit(req, "hard_time_s", req.parent_hard_time_s),
        memory_mib = memory,
    }
end

local base_req = { network_grading = false, needs_ports = false, environment_type = "docker",
                   environment = "default", max_memory_mib = 1024, host_memory_mib = 4096, concurrency = 4 }
local function req(t)
    local r = {}
    for k, v in pairs(base_req) do r[k] = v end
    for k, v in pairs(t) do r[k] = v end
    return r
end

return {
    clamp_limits = clamp_limits,
    clamp_student = clamp_student,
    -- Self-checks run when the file is loaded: a broken edit is refused before it is used.
    examples = {
        clamp_limits = {
            -- Written in terms of `defaults`, so editing a default keeps this check meaningful.
            { input = req({}), output = { time_s = defaults.time_s,
                                          hard_time_s = defaults.time_s * defaults.hard_time_factor,
                                          memory_mib = defaults.memory_mib, network = false } },
            { input = req({ memory_mib = 2048 }),
              refuse = string.format(NOT_ENOUGH_MEMORY, 1024) },
        },
        clamp_student = {
            { input = { parent_time_s = 30, parent_hard_time_s = 90, parent_memory_mib = 200,
                        time_s = 0, hard_time_s = 500, memory_mib = 100, environment = "default" },
              output = { time_s = 30, hard_time_s = 90, memory_mib = 100 } },
        },
    },
}
