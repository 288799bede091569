--[[ limits.lua (JVM profile): generous defaults for Java, Scala and Kotlin courses.

What it decides, input and output: as policies/limits.lua (see policies/README.md).
  clamp_limits(req)   { time_s, hard_time_s, memory_mib, network } or nil, reason
  clamp_student(req)  { time_s, hard_time_s, memory_mib }
Differences from the shipped file: a JVM needs a heap, JIT time and a slower start, so the
defaults are larger and the memory floor is high enough for `java -version` to start.

Test it:  busted tests/policies/examples_jvm_spec.lua   (from the repository root)
]]

local defaults = {
    time_s = seconds(60),          -- CPU time when the task sets none (JIT and class loading)
    hard_time_factor = 4,          -- wall time = this × CPU time when the task sets none
    memory_mib = GiB(1),           -- memory when the task sets none (heap + metaspace + threads)
    min_memory_mib = MiB(256),     -- smaller requests are raised to this: a JVM below it rarely starts
    ports_time_s = minutes(30),    -- jobs publishing ports (ssh debug): CPU and wall time (INGInious)
    max_time_s = seconds(2147483647), -- only stops factor × time from wrapping around
}
schema.check_keys(defaults, {
    "time_s", "hard_time_factor", "memory_mib", "min_memory_mib", "ports_time_s", "max_time_s",
}, "jvm limits.lua defaults")

local NOT_ENOUGH_MEMORY =
    "Not enough memory on agent (available: %dMB). Please contact your course administrator."

local function optional_int(req, key)
    local v = req[key]
    if v ~= nil and math.type(v) ~= "integer" then
        error(string.format("req.%s must be an integer or nil, got %s", key, schema.dump(v)), 2)
    end
    return v
end

local function clamp(v, lo, hi) return math.max(lo, math.min(v, hi)) end

local function clamp_limits(req)
    local mem = math.max(optional_int(req, "memory_mib") or defaults.memory_mib, defaults.min_memory_mib)
    if mem > req.max_memory_mib then
        return nil, string.format(NOT_ENOUGH_MEMORY, req.max_memory_mib)
    end
    local time = clamp(optional_int(req, "time_s") or defaults.time_s, 1, defaults.max_time_s)
    local hard = optional_int(req, "hard_time_s")
    if hard == nil or hard == 0 then
        hard = clamp(time, 0, defaults.max_time_s // defaults.hard_time_factor) * defaults.hard_time_factor
    end
    hard = clamp(hard, 1, defaults.max_time_s)
    if req.needs_ports then
        time, hard = defaults.ports_time_s, defaults.ports_time_s
    end
    return { time_s = time, hard_time_s = hard, memory_mib = mem,
             network = req.needs_ports == true or req.network_grading == true }
end

local function inherit(asked, parent)
    if asked == nil or asked <= 0 then return parent end
    return math.min(asked, parent)
end

local function clamp_student(req)
    return {
        time_s = inherit(req.time_s, req.parent_time_s),
        hard_time_s = inherit(req.hard_time_s, req.parent_hard_time_s),
        -- A student JVM gets the floor too, but never more than its parent.
        memory_mib = math.max(inherit(req.memory_mib, req.parent_memory_mib),
            math.min(defaults.min_memory_mib, req.parent_memory_mib)),
    }
end

return {
    clamp_limits = clamp_limits,
    clamp_student = clamp_student,
    examples = {
        clamp_limits = {
            { input = { max_memory_mib = 4096 },
              output = { time_s = 60, hard_time_s = 240, memory_mib = 1024, network = false } },
            { input = { memory_mib = 64, max_memory_mib = 4096 },
              output = { time_s = 60, hard_time_s = 240, memory_mib = 256, network = false } },
        },
    },
}
