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

-- A read-only view of `t`: reads and pairs() go to t, writes raise. Nothing
-- hands out `t` itself: pairs() returns a closure over it and the proxy as
-- its state (`next, t` would give every policy the writable backing table).
function M.readonly(t, name)
    local proxy = {}
    local function walk(_, k) return next(t, k) end
    return setmetatable(proxy, {
        __index = t,
        __newindex = function(_, k)
            error(string.format("%s is read-only (tried to set %s)", name, tostring(k)), 2)
        end,
        __pairs = function() return walk, proxy, nil end,
        __len = function() return #t end,
        __metatable = false,
    })
end

-- A read-only copy of library `lib` of G, blocked members replaced.
local function library_view(G, lib)
    local copy = {}
    for k, v in pairs(G[lib]) do
        copy[k] = (M.BLOCKED_MEMBERS[lib] or {})[k] and blocked(lib .. "." .. k) or v
    end
    return M.readonly(copy, lib)
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
-- opts.extend: the loader's extend(name, spec), exported as is.
function M.new_base(G, opts)
    opts = opts or {}
    local base = {}
    for _, name in ipairs(M.ALLOWED) do
        base[name] = G[name]
    end
    base.setmetatable = make_setmetatable(G.setmetatable, G.rawget)
    base.print = opts.print or function() end
    for _, lib in ipairs(M.LIBRARIES) do
        base[lib] = library_view(G, lib)
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
    base.extend = opts.extend
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

-- Hides the string metatable from getmetatable(""), and makes its __index
-- (the real string library, shared by every file in the state) a read-only
-- view without the blocked members: otherwise ("").dump is string.dump and
-- pairs(getmetatable("").__index) the writable library.
function M.protect_string_metatable(G)
    local mt = G.getmetatable("")
    if type(mt) == "table" then
        mt.__index = library_view(G, "string")
        mt.__metatable = false
    end
end

return M
