-- luacheck configuration (Debian package lua-check): `luacheck lua policies examples/policies tests`.
std = "lua54"
max_line_length = 120

-- What the sandbox (lua/agent/sandbox.lua) gives every policy file, read-only.
local sandbox_globals = {
    "MiB", "GiB", "bytes", "KiB_bytes", "MiB_bytes", "GiB_bytes", "seconds", "minutes", "hours",
    "schema", "extend",
}
-- What it blocks ("blocked function: NAME" at run time).
local sandbox_blocked = {
    "io", "os", "package", "debug", "coroutine", "load", "loadfile", "dofile", "require",
    "collectgarbage", "rawset",
}

files["policies"] = { read_globals = sandbox_globals, not_globals = sandbox_blocked }
files["examples/policies"] = { read_globals = sandbox_globals, not_globals = sandbox_blocked }
files["tests"] = { std = "+busted", read_globals = { "proctor" }, max_line_length = 150 }
files["tests/helpers/preload.lua"] = { globals = { "proctor" } }
