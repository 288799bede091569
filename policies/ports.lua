--[[ ports.lua: which host ports a job publishes (ssh debug, images with a ports label).

What it decides
  choose_ports(req)  `req.count` distinct ports among the free ones, or a refusal

Input
  req.job_id  string             the backend's job id
  req.count   integer >= 0       how many ports the job needs
  req.free    list of integers   the free ports of the agent's pool, in ascending order
Output
  { ports = { p1, p2, ... } }    exactly `count` distinct ports taken from `req.free`
  or nil, "text for the student" (the job ends as a crash with that text).

The agent owns the pool: it checks the choice (count, distinct, all free) and commits it.
A choice it cannot accept is replaced by the built-in default (lowest free ports first).

Test it:  busted tests/policies/ports_spec.lua   (from the repository root)
]]

-- extend("ports", { defaults = {...} }) replaces entries of this table (policies/README.md).
local defaults = schema.with_overrides({
    order = "lowest",  -- "lowest": lowest free ports first (predictable, easy to firewall);
                       -- "highest": highest first (keeps the low end of the pool for other uses)
}, ..., "ports.lua defaults")
schema.check_keys(defaults, { "order" }, "ports.lua defaults")

-- INGInious's text, shown to the student as is.
local NO_PORTS = "No ports are available right now. Please retry later."

local function check_req(req)
    if math.type(req.count) ~= "integer" or req.count < 0 then
        error("req.count must be a non-negative integer, got " .. schema.dump(req.count), 2)
    end
    if type(req.free) ~= "table" then
        error("req.free must be a list of ports, got " .. schema.dump(req.free), 2)
    end
end

local function choose_ports(req)
    check_req(req)
    local free = req.free
    if req.count > #free then
        return nil, NO_PORTS
    end
    local chosen = {}
    for i = 1, req.count do
        chosen[i] = defaults.order == "highest" and free[#free - i + 1] or free[i]
    end
    return { ports = chosen }
end

return {
    choose_ports = choose_ports,
    examples = {
        choose_ports = {
            { input = { job_id = "j", count = 1, free = { 64120, 64121 } }, output = { ports = { 64120 } } },
            { input = { job_id = "j", count = 2, free = { 64120 } }, refuse = NO_PORTS },
        },
    },
}
