-- sandbox.lua: the environment policy files run in (embedded in proctord).
--
-- The host opens only the base, string, table, math and utf8 libraries, then
-- builds one frozen "base" table from this allow-list. Each policy file gets
-- its own _ENV whose reads fall through to the base and whose writes raise
-- "policy tried to set global X", so a policy keeps no state in globals.
-- Names that are left out on purpose raise "blocked function: NAME" when used,
-- which tells an admin why instead of "attempt to call a nil value".

local API_VERSION = 1

local M = { API_VERSION = API_VERSION }

-- Base functions a policy may call as they are.
M.ALLOWED = {
    "assert", "error", "getmetatable", "ipairs", "next", "pairs", "pcall", "rawequal",
    "rawget", "rawlen", "select", "tonumber", "tostring", "type", "xpcall", "_VERSION",
}

-- Libraries copied member by member, minus the members listed in BLOCKED_MEMBERS.
M.LIBRARIES = { "string", "table", "math", "utf8" }

-- string.dump produces bytecode; math.randomseed changes state shared by all calls.
M.BLOCKED_MEMBERS = { string = { dump = true }, math = { randomseed = true } }

-- Left out: they reach files, processes, the loader or the collector, or let a
-- policy write through the _ENV protection (rawset).
M.BLOCKED = {
    "collectgarbage", "dofile", "load", "loadfile", "loadstring", "module", "rawset",
    "require", "setfenv", "getfenv", "newproxy", "io", "os", "package", "debug", "coroutine",
}

local function blocked(name)
    return function() error("blocked function: " .. name, 2) end
end

-- A read-only view of `t`: reads and pairs() go to t, writes raise.
function M.readonly(t, name)
    return setmetatable({}, {
        __index = t,
        __newindex = function(_, k)
            error(string.format("%s is read-only (tried to set %s)", name, tostring(k)), 2)
        end,
        __pairs = function() return next, t, nil end,
        __len = function() return #t end,
        __metatable = false,
    })
end

-- A blocked library: every member raises "blocked function: lib.member".
local function blocked_library(name)
    return setmetatable({}, {
        __index = function(_, k) return blocked(name .. "." .. tostring(k)) end,
        __newindex = function() error(name .. " is blocked", 2) end,
        __metatable = false,
    })
end

-- setmetatable minus __gc: a finaliser would run later, outside the call that
-- created it and outside its instruction budget.
local function make_setmetatable(real_setmetatable, real_rawget)
    return function(t, mt)
        if type(mt) == "table" and real_rawget(mt, "__gc") ~= nil then
            error("blocked function: __gc metamethods are not allowed in policies", 2)
        end
        return real_setmetatable(t, mt)
    end
end

-- Builds the frozen base from the globals table `G` (the host's _G).
-- opts.print: what `print` does (the daemon logs; busted may collect lines).
-- opts.units, opts.schema: the helper modules exported to policies.
function M.new_base(G, opts)
    opts = opts or {}
    local base = {}
    for _, name in ipairs(M.ALLOWED) do
        base[name] = G[name]
    end
    base.setmetatable = make_setmetatable(G.setmetatable, G.rawget)
    base.print = opts.print or function() end
    for _, lib in ipairs(M.LIBRARIES) do
        local copy = {}
        for k, v in pairs(G[lib]) do
            copy[k] = (M.BLOCKED_MEMBERS[lib] or {})[k] and blocked(lib .. "." .. k) or v
        end
        base[lib] = M.readonly(copy, lib)
    end
    for _, name in ipairs(M.BLOCKED) do
        if name == "io" or name == "os" or name == "package" or name == "debug" or name == "coroutine" then
            base[name] = blocked_library(name)
        else
            base[name] = blocked(name)
        end
    end
    if opts.units then
        for _, name in ipairs(opts.units.EXPORTS) do
            base[name] = opts.units[name]
        end
    end
    if opts.schema then
        base.schema = M.readonly(opts.schema, "schema")
    end
    return M.readonly(base, "the sandbox")
end

-- One _ENV per policy file: globals read from `base`, never written.
function M.new_env(base)
    return setmetatable({}, {
        __index = base,
        __newindex = function(_, k)
            error("policy tried to set global " .. tostring(k), 2)
        end,
        __metatable = false,
    })
end

-- Hides the string metatable (whose __index is the real string library,
-- shared by every file in the state) from getmetatable("").
function M.protect_string_metatable(G)
    local mt = G.getmetatable("")
    if type(mt) == "table" then
        mt.__metatable = false
    end
end

return M
