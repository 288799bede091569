-- preload.lua: busted helper (see .busted). Builds the same sandbox the daemon
-- builds, from the same files (lua/agent/*.lua, which proctord embeds), and
-- exposes it to the specs as the global `proctor`.
--
-- Specs load policies with proctor.load(name[, dir]) and call the returned
-- functions exactly as the agent does: one plain table in, one out.

local root = os.getenv("PROCTOR_ROOT") or "."

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

-- Loads <dir>/<name>.lua (dir defaults to the shipped policies/) and returns
-- its hook functions, keyed by hook name.
function P.load(name, dir)
    local path = (dir or (root .. "/policies")) .. "/" .. name .. ".lua"
    return loader.load_policy(name, read(path), "@" .. path, P.new_base()).functions
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
