-- loader.lua: loads one policy file into the sandbox and validates it
-- (embedded in proctord; busted uses the very same code through
-- tests/helpers/preload.lua).
--
-- A policy file is text (never bytecode) run once in its own _ENV. It must
-- return a table whose entries are the hook functions of that file, plus an
-- optional `examples` table of self-checks run at load time:
--   examples = { clamp_limits = { { input = {...}, output = {...} },
--                                 { input = {...}, refuse = "reason" } } }
-- A hook the file does not define falls back to the agent's built-in default,
-- which is the shipped file of the same name (policies/<name>.lua, embedded).
-- A file may also take a shipped file and change only what it names:
--   return extend("limits", { defaults = { memory_mib = MiB(512) },
--                             clamp_student = function(shipped, req) ... end })
-- Every failure raises "file:line: message" (line 0 is never used: when no
-- better line is known, the line of the file's final `return` is given).

local API_VERSION = 1

local M = { API_VERSION = API_VERSION }

-- Policy file (without .lua) -> the hook functions it may define.
M.HOOKS = {
    limits = { "clamp_limits", "clamp_student" },
    ports = { "choose_ports" },
    runtimes = { "map_runtimes" },
    results = { "validate_result" },
    hardening = { "harden" },
    pool = { "size_pool" },
}

-- Load order, which is also the order of the report of --check-policies.
M.FILES = { "limits", "ports", "runtimes", "results", "hardening", "pool" }

-- Hook made by extend() -> the admin's function it calls: the agent names the
-- admin's file:line, not this file's, when it rejects such a hook's answer.
M.wrappers = setmetatable({}, { __mode = "k" })

local schema, sandbox -- set by M.init
-- name -> { text = ..., chunkname = ... }: the shipped files extend() starts from.
local shipped_files = {}
-- The file being loaded: its sandbox base (extend() runs the shipped file in
-- it), its chunk name and the line of its final `return`.
local loading_base, loading_chunkname, loading_line

function M.init(schema_module, sandbox_module, shipped)
    schema, sandbox = schema_module, sandbox_module
    shipped_files = shipped or {}
end

-- "@/etc/proctor/policies/limits.lua" -> "/etc/proctor/policies/limits.lua"
local function display_name(chunkname)
    return (chunkname:gsub("^[@=]", ""))
end

-- Line of the last top-level `return`, the best location for errors about
-- the returned table as a whole.
local function return_line(text)
    local line, last = 0, 1
    for l in (text .. "\n"):gmatch("([^\n]*)\n") do
        line = line + 1
        if l:find("^return[%s{(]") or l == "return" then last = line end
    end
    return last
end

local function fail(where, line, fmt, ...)
    error(string.format("%s:%d: " .. fmt, display_name(where), line, ...), 0)
end

local function deep_copy(v)
    if type(v) ~= "table" or schema.is_null(v) or rawequal(v, schema.empty_array) then return v end
    local out = {}
    for k, x in pairs(v) do out[k] = deep_copy(x) end
    return out
end

-- Runs the examples of one hook; raises on the first mismatch.
local function run_examples(chunkname, line, hook, fn, cases)
    if type(cases) ~= "table" then
        fail(chunkname, line, "examples.%s must be a list of cases", hook)
    end
    for i, case in ipairs(cases) do
        if type(case) ~= "table" or type(case.input) ~= "table" or (case.output == nil) == (case.refuse == nil) then
            fail(chunkname, line, "examples.%s[%d] needs `input` and exactly one of `output` or `refuse`", hook, i)
        end
        local out, reason = fn(deep_copy(case.input))
        if case.refuse ~= nil then
            if out ~= nil or reason ~= case.refuse then
                fail(chunkname, line, "examples.%s[%d]: expected refusal %q, got %s, %s", hook, i,
                    tostring(case.refuse), schema.dump(out), schema.dump(reason))
            end
        elseif not schema.same(out, case.output) then
            fail(chunkname, line, "examples.%s[%d]: expected %s, got %s%s", hook, i, schema.dump(case.output),
                schema.dump(out), reason ~= nil and (" (" .. tostring(reason) .. ")") or "")
        end
    end
end

-- Checks the returned table of file `name`: known hooks only, functions only.
local function check_returned(name, chunkname, line, ret)
    if type(ret) ~= "table" then
        fail(chunkname, line, "a policy file must return a table of functions, got %s", type(ret))
    end
    local allowed = { examples = true }
    for _, hook in ipairs(M.HOOKS[name]) do allowed[hook] = true end
    for k, v in pairs(ret) do
        if not allowed[k] then
            fail(chunkname, line, "unknown entry '%s' in the returned table (expected %s)", tostring(k),
                table.concat(M.HOOKS[name], ", ") .. " or examples")
        end
        if k ~= "examples" and type(v) ~= "function" then
            fail(chunkname, line, "%s must be a function, got %s", k, type(v))
        end
    end
end

-- extend(name, spec): the table the shipped file `name` returns, with
--   spec.defaults   entries of its `defaults` table replaced (an unknown key or a value of
--                   another type is refused at the line of the extend() call);
--   spec.<hook>     function(shipped, req): called instead of the shipped hook, with the
--                   shipped hook as its first argument (call it, adjust its answer);
--   spec.examples   the file's own examples (the shipped file's examples are not run:
--                   they describe the shipped defaults).
-- Only while a file loads (at its top level).
-- Raises "file:line: message" at the admin's extend() call: the line of the
-- call when Lua still knows it, else (`return extend(...)` is a tail call, which
-- leaves no trace of its caller) the line of the file's final `return`.
local function extend_error(fmt, ...)
    local _, where = pcall(error, "", 4) -- pcall, extend_error, extend, the caller
    local file = display_name(loading_chunkname)
    if type(where) ~= "string" or where:sub(1, #file + 1) ~= file .. ":" then
        where = string.format("%s:%d: ", file, loading_line)
    end
    error(where .. string.format(fmt, ...), 0)
end

local function extend(name, spec)
    if not loading_base then
        error("extend() can only be called while a policy file loads", 2)
    end
    local hooks = M.HOOKS[name]
    local shipped = shipped_files[name]
    if not hooks or not shipped then
        extend_error("extend: no shipped policy file named %s", schema.dump(name))
    end
    spec = spec or {}
    if type(spec) ~= "table" then
        extend_error("extend: the second argument must be a table, got %s", type(spec))
    end
    local allowed = { "defaults", "examples" }
    for _, hook in ipairs(hooks) do allowed[#allowed + 1] = hook end
    local ok, why = pcall(schema.check_keys, spec, allowed, "extend(\"" .. name .. "\")")
    if not ok then extend_error("%s", (tostring(why):gsub("^[^\n]-:%d+: ", ""))) end
    if spec.defaults ~= nil and type(spec.defaults) ~= "table" then
        extend_error("extend: defaults must be a table, got %s", type(spec.defaults))
    end
    for _, hook in ipairs(hooks) do
        if spec[hook] ~= nil and type(spec[hook]) ~= "function" then
            extend_error("extend: %s must be a function(shipped, req), got %s", hook, type(spec[hook]))
        end
    end
    local chunk = assert(load(shipped.text, shipped.chunkname, "t", sandbox.new_env(loading_base)))
    -- The shipped file receives the overrides as its chunk argument (`...`).
    local loaded, ret = pcall(chunk, spec.defaults or {})
    if not loaded then
        if type(ret) == "table" and ret.override_error then extend_error("%s", ret.override_error) end
        error(ret, 0)
    end
    local out = { examples = spec.examples }
    for _, hook in ipairs(hooks) do
        local wrapper, inner = spec[hook], ret[hook]
        if wrapper then
            out[hook] = function(req) return wrapper(inner, req) end
            M.wrappers[out[hook]] = wrapper
        else
            out[hook] = inner
        end
    end
    return out
end
M.extend = extend

-- Loads policy `name` from `text`. `chunkname` is "@<path>", `base` comes from
-- sandbox.new_base. Returns { name, functions = {hook = fn}, missing = {hook...} }.
-- `skip_examples`: the agent restarting a generation whose examples already
-- passed (its policy worker was killed) does not run them again.
function M.load_policy(name, text, chunkname, base, skip_examples)
    if not M.HOOKS[name] then
        error("unknown policy file " .. tostring(name), 0)
    end
    local env = sandbox.new_env(base)
    local chunk, err = load(text, chunkname, "t", env)
    loading_base, loading_chunkname, loading_line = base, chunkname, return_line(text)
    if not chunk then
        if not err:find("^[^\n]-:%d+:") then
            err = display_name(chunkname) .. ":1: " .. err
        end
        error(err, 0)
    end
    local ret = chunk()
    loading_base = nil
    local line = loading_line
    check_returned(name, chunkname, line, ret)
    local policy = { name = name, functions = {}, missing = {} }
    for _, hook in ipairs(M.HOOKS[name]) do
        if ret[hook] then
            policy.functions[hook] = ret[hook]
        else
            policy.missing[#policy.missing + 1] = hook
        end
    end
    local examples = ret.examples
    if examples ~= nil and not skip_examples then
        if type(examples) ~= "table" then
            fail(chunkname, line, "examples must be a table keyed by hook name")
        end
        for hook, cases in pairs(examples) do
            if not policy.functions[hook] then
                fail(chunkname, line, "examples.%s: no such function in this file", tostring(hook))
            end
            run_examples(chunkname, line, hook, policy.functions[hook], cases)
        end
    end
    return policy
end

return M
