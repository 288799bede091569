--[[ pool.lua: how many warm grading containers the agent keeps per environment (beyond INGInious).

A warm container is created, attached and started before its job arrives, and waits for it
at no CPU cost; a job that takes one skips most of Docker's start-up (README: "Warm pool").
Each costs memory while it waits (about 15 MB: its cgroup, its shim, its overlay), so the
pool warms only the environments that jobs actually use, and lets idle ones go.

What it decides
  size_pool(req)  how many containers should wait, per environment

Input
  req.environments  list of tables, one per environment jobs asked for in the last hour:
    .key           string   "<envtype>/<name>", the key of the answer, e.g. "docker/default"
    .envtype       string   e.g. "docker"
    .name          string   the environment name (image label), e.g. "default"
    .waiting       integer  warm containers it has now
    .arrivals_1m   integer  jobs for it in the last minute
    .arrivals_10m  integer  jobs for it in the last ten minutes
    .idle_s        integer  seconds since its last job
    .memory_mib    integer  the memory limit of its last job (warm containers are made with it)
    .available     boolean  the agent offers it (its image is there)
  req.slots            integer  the agent's job slots (--concurrency)
  req.slots_in_use     integer  jobs running now
  req.host_memory_mib  integer  the host's memory
Output
  { sizes = { ["<envtype>/<name>"] = integer >= 0, ... } }   a missing environment gets 0
The agent caps each size at min(2 * slots, 8) and the total at 16. This hook never refuses; a
broken answer is replaced by this file's, and if this file fails, the pool empties.

To turn the pool off: `return extend("pool", { defaults = { enabled = false } })`, or start
proctord with --no-pool.

Test it:  busted tests/policies/pool_spec.lua   (from the repository root)
]]

-- extend("pool", { defaults = {...} }) replaces entries of this table (policies/README.md).
local defaults = schema.with_overrides({
    enabled = true,          -- false: no warm container at all
    per_env = 1,             -- warm containers of an environment in use
    busy_per_env = 2,        -- ... when it is busy (see busy_arrivals_1m)
    busy_arrivals_1m = 20,   -- jobs in the last minute from which an environment is busy
    idle_after_s = 600,      -- no job for this long: its warm containers are removed
    max_memory_share = 0.05, -- the pool may hold at most this share of the host's memory
    waiting_cost_mib = 16,   -- memory one warm container costs while it waits (measured)
}, ..., "pool.lua defaults")
schema.check_keys(defaults, {
    "enabled", "per_env", "busy_per_env", "busy_arrivals_1m", "idle_after_s", "max_memory_share",
    "waiting_cost_mib",
}, "pool.lua defaults")

local function size_pool(req)
    local sizes = {}
    if not defaults.enabled then
        return { sizes = sizes }
    end
    -- The memory budget, in warm containers (the pool's memory limit counts only once a
    -- job runs in it, and then it counts against the job's slot, not the pool).
    local budget = math.floor(req.host_memory_mib * defaults.max_memory_share
                              / defaults.waiting_cost_mib)
    for _, env in ipairs(req.environments) do
        local n = 0
        if env.available and env.idle_s < defaults.idle_after_s then
            n = defaults.per_env
            if env.arrivals_1m >= defaults.busy_arrivals_1m then
                n = defaults.busy_per_env
            end
        end
        n = math.min(n, budget)
        budget = budget - n
        sizes[env.key] = n
    end
    return { sizes = sizes }
end

local function env(key, idle_s, arrivals_1m, available)
    local envtype, name = key:match("^([^/]+)/(.+)$")
    return { key = key, envtype = envtype, name = name, waiting = 0, arrivals_1m = arrivals_1m,
             arrivals_10m = arrivals_1m, idle_s = idle_s, memory_mib = 256,
             available = available ~= false }
end

-- The example's expected sizes, in terms of `defaults` (editing a value keeps the check
-- meaningful): the memory budget is spent in the order of the request.
local function expected(host_memory_mib, wanted)
    local budget = math.floor(host_memory_mib * defaults.max_memory_share / defaults.waiting_cost_mib)
    local sizes = {}
    for _, kv in ipairs(wanted) do
        local n = defaults.enabled and math.min(kv[2], budget) or 0
        budget = budget - n
        sizes[kv[1]] = n
    end
    return { sizes = sizes }
end

return {
    size_pool = size_pool,
    examples = {
        size_pool = {
            -- An environment used a minute ago gets one, a busy one two, one idle for an
            -- hour none, and one whose image is gone none.
            { input = { slots = 4, slots_in_use = 1, host_memory_mib = 16384,
                        environments = { env("docker/default", 60, 1),
                                         env("docker/python", 5, 30),
                                         env("docker/old", 3600, 0),
                                         env("docker/gone", 5, 3, false) } },
              output = expected(16384, { { "docker/default", defaults.per_env },
                                         { "docker/python", defaults.busy_per_env },
                                         { "docker/old", 0 }, { "docker/gone", 0 } }) },
        },
    },
}
