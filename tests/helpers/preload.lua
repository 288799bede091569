-- preload.lua: busted helper (see .busted). Builds the same sandbox the daemon
-- builds, from the same files (lua/agent/*.lua, which proctord embeds), and
-- exposes it to the specs as the global `proctor`.
--
-- Specs load policies with proctor.load(name[, dir]) and call the returned
-- functions exactly as the agent does: one plain table in, one out.
--
-- `proctor test-policies DIR` runs an admin's specs with this same helper
-- (embedded in the binary, written out with lua/agent/*.lua and the shipped
-- policies/*.lua to PROCTOR_ROOT): PROCTOR_POLICIES is then DIR, and
-- proctor.load(name) loads DIR/<name>.lua, as proctord would.

local root = os.getenv("PROCTOR_ROOT") or "."
-- The policy directory under test (proctor test-policies DIR); nil: the shipped files.
local policies_dir = os.getenv("PROCTOR_POLICIES")

local function module(name)
    return dofile(root .. "/lua/agent/" .. name .. ".lua")
end

local units = module("units")
local schema = module("schema")
local sandbox = module("sandbox")
local loader = module("loader")

local function read(path)
    local f = assert(io.open(path, "rb"))
    local text = f:read("a")
    f:close()
    return text
end

-- The shipped files that extend() starts from (proctord embeds the same files).
local shipped = {}
for _, name in ipairs(loader.FILES) do
    local path = root .. "/policies/" .. name .. ".lua"
    shipped[name] = { text = read(path), chunkname = "@" .. path }
end
loader.init(schema, sandbox, shipped)

local printed = {}

local P = {
    root = root,
    -- The policy directory under test (proctor test-policies DIR), or nil.
    policies = policies_dir,
    units = units,
    schema = schema,
    sandbox = sandbox,
    loader = loader,
    null = schema.null,
    empty_array = schema.empty_array,
    -- Lines the policies printed (the daemon logs them instead).
    printed = printed,
}

-- A fresh base, as the daemon builds one per policy generation.
function P.new_base()
    return sandbox.new_base(_G, {
        print = function(...)
            local parts = table.pack(...)
            for i = 1, parts.n do parts[i] = tostring(parts[i]) end
            printed[#printed + 1] = table.concat(parts, "\t", 1, parts.n)
        end,
        units = units,
        schema = schema,
        extend = loader.extend,
    })
end

-- Loads policy `name` from text; chunkname defaults to "@<name>.lua".
function P.load_text(name, text, chunkname)
    return loader.load_policy(name, text, chunkname or ("@" .. name .. ".lua"), P.new_base())
end

local function exists(path)
    local f = io.open(path, "rb")
    if f then f:close() end
    return f ~= nil
end

-- The file proctord would read for policy `name` in dir (default: the
-- directory under test, else the shipped policies/): dir/<name>.lua, or the
-- shipped file when dir has none.
function P.source(name, dir)
    local shipped_path = root .. "/policies/" .. name .. ".lua"
    dir = dir or policies_dir
    if not dir then return shipped_path end
    -- A directory that is not there is a mistake, not "every file is the shipped one".
    assert(exists(dir .. "/."), "no policy directory " .. dir)
    local path = dir .. "/" .. name .. ".lua"
    return exists(path) and path or shipped_path
end

-- Loads policy `name` as proctord does from dir (see P.source), through the
-- daemon's loader and sandbox, and returns its hook functions keyed by hook
-- name; a hook the file does not define is the shipped file's, as in proctord.
function P.load(name, dir)
    local path = P.source(name, dir)
    local functions = loader.load_policy(name, read(path), "@" .. path, P.new_base()).functions
    local shipped_path = root .. "/policies/" .. name .. ".lua"
    if path ~= shipped_path then
        local builtin = loader.load_policy(name, shipped[name].text, shipped[name].chunkname, P.new_base())
        for hook, fn in pairs(builtin.functions) do
            if not functions[hook] then functions[hook] = fn end
        end
    end
    return functions
end

-- Every *.lua file of a directory, as a sorted list of names without ".lua".
function P.policy_files(dir)
    local lfs = require("lfs")
    local names = {}
    for entry in lfs.dir(dir) do
        local name = entry:match("^(.+)%.lua$")
        if name then names[#names + 1] = name end
    end
    table.sort(names)
    return names
end

P.read = read

-- Same check as in the daemon: no string metatable for policies.
sandbox.protect_string_metatable(_G)

_G.proctor = P
