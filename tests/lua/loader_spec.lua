-- Specs of lua/agent/loader.lua: loading and validating one policy file.
local function load_error(name, text)
    local ok, err = pcall(proctor.load_text, name, text, "@/etc/proctor/policies/" .. name .. ".lua")
    assert.is_false(ok, "the file must not load")
    return err
end

describe("loader.load_policy", function()
    it("returns the functions and the missing hooks", function()
        local p = proctor.load_text("limits", "return { clamp_limits = function() end }")
        assert.is_function(p.functions.clamp_limits)
        assert.same({ "clamp_student" }, p.missing)
    end)

    it("an empty table means the built-in defaults for every hook", function()
        assert.same({ "choose_ports" }, proctor.load_text("ports", "return {}").missing)
    end)

    local errors = {
        { "a syntax error", "limits", "local x =\n\nreturn {", "/etc/proctor/policies/limits.lua:3:" },
        { "a binary chunk", "limits", "\27Lua", "/etc/proctor/policies/limits.lua:1: attempt to load a binary chunk" },
        { "an error at load", "ports", "\nerror('no')", "/etc/proctor/policies/ports.lua:2: no" },
        { "no table returned", "ports", "local x = 1\nreturn x", "ports.lua:2: a policy file must return a table" },
        { "nothing returned", "ports", "local x = 1", "a policy file must return a table of functions, got nil" },
        { "a typo in a hook name", "limits", "return {\n clamp_limit = print }", "limits.lua:1: unknown entry 'clamp_limit'" },
        { "a hook that is not a function", "results", "return { validate_result = 1 }", "validate_result must be a function" },
        { "examples of another hook", "ports", "return { examples = { harden = {} } }", "examples.harden: no such function" },
        { "a global at load", "hardening", "x = 1\nreturn {}", "hardening.lua:1: policy tried to set global x" },
    }
    for _, c in ipairs(errors) do
        it("refuses " .. c[1] .. " with file:line", function()
            assert.matches(c[4], load_error(c[2], c[3]), 1, true)
        end)
    end

    it("refuses an unknown policy file", function()
        assert.matches("unknown policy file", load_error("nosuch", "return {}"), 1, true)
    end)

    context("examples", function()
        local head = "local function choose_ports(req) return { ports = { req.free[1] } } end\n"
        it("run at load and pass", function()
            assert.is_table(proctor.load_text("ports", head .. [[
return { choose_ports = choose_ports, examples = { choose_ports = {
  { input = { count = 1, free = { 7 } }, output = { ports = { 7 } } } } } }]]))
        end)
        it("a wrong output refuses the file", function()
            local err = load_error("ports", head .. [[
return { choose_ports = choose_ports, examples = { choose_ports = {
  { input = { count = 1, free = { 7 } }, output = { ports = { 8 } } } } } }]])
            assert.matches("ports.lua:2: examples.choose_ports[1]: expected {ports = {8}}, got {ports = {7}}", err, 1, true)
        end)
        it("an expected refusal that does not happen refuses the file", function()
            local err = load_error("ports", head .. [[
return { choose_ports = choose_ports, examples = { choose_ports = {
  { input = { count = 1, free = { 7 } }, refuse = "no" } } } }]])
            assert.matches("expected refusal", err, 1, true)
        end)
        it("a malformed case refuses the file", function()
            local err = load_error("ports", head .. [[
return { choose_ports = choose_ports, examples = { choose_ports = { { input = {} } } } }]])
            assert.matches("needs `input` and exactly one of `output` or `refuse`", err, 1, true)
        end)
        it("do not run again when the agent restarts a generation (skip_examples)", function()
            local text = head .. [[
return { choose_ports = choose_ports, examples = { choose_ports = {
  { input = { count = 1, free = { 7 } }, output = { ports = { 8 } } } } } }]]
            local p = proctor.loader.load_policy("ports", text, "@ports.lua", proctor.new_base(), true)
            assert.is_function(p.functions.choose_ports)
            assert.has_error(function()
                proctor.loader.load_policy("ports", text, "@ports.lua", proctor.new_base(), false)
            end)
        end)
        it("the examples get a copy of their input", function()
            assert.is_table(proctor.load_text("ports", [[
local function choose_ports(req) req.free[1] = 99 return { ports = { 1 } } end
local input = { count = 1, free = { 1 } }
return { choose_ports = choose_ports, examples = { choose_ports = {
  { input = input, output = { ports = { 1 } } }, { input = input, output = { ports = { 1 } } } } } }]]))
        end)
    end)

    context("extend", function()
        it("overrides defaults of a shipped file", function()
            local p = proctor.load_text("limits", 'return extend("limits", { defaults = { memory_mib = MiB(512) } })')
            assert.same({}, p.missing)
            local out = p.functions.clamp_limits({ max_memory_mib = 1024 })
            assert.same({ time_s = 30, hard_time_s = 90, memory_mib = 512, network = false }, out)
            local shipped = proctor.load("limits").clamp_limits({ max_memory_mib = 1024 })
            assert.equal(200, shipped.memory_mib, "the shipped file keeps its own defaults")
        end)
        it("wraps one hook, which gets the shipped one; the others stay shipped", function()
            local p = proctor.load_text("limits", [[
return extend("limits", {
    clamp_limits = function(shipped, req)
        local out, refusal = shipped(req)
        if out then out.network = false end
        return out, refusal
    end,
})]])
            assert.is_false(p.functions.clamp_limits({ max_memory_mib = 1024, network_grading = true }).network)
            local out, refusal = p.functions.clamp_limits({ max_memory_mib = 10, memory_mib = 100 })
            assert.is_nil(out)
            assert.matches("available: 10MB", refusal, 1, true)
            assert.same({ time_s = 5, hard_time_s = 5, memory_mib = 100 }, p.functions.clamp_student({
                parent_time_s = 5, parent_hard_time_s = 5, parent_memory_mib = 100, time_s = 0,
                hard_time_s = 0, memory_mib = 0 }))
        end)
        it("runs the file's own examples", function()
            local err = load_error("ports", [[
return extend("ports", { defaults = { order = "highest" }, examples = { choose_ports = {
    { input = { count = 1, free = { 1, 2 } }, output = { ports = { 1 } } } } } })]])
            assert.matches("ports.lua:1: examples.choose_ports[1]: expected {ports = {1}}, got {ports = {2}}", err, 1, true)
        end)
        local extend_errors = {
            { "a typo in a default", "limits", "\nreturn extend('limits', { defaults = { memry_mib = 512 } })",
              "/etc/proctor/policies/limits.lua:2: limits.lua defaults: unknown key 'memry_mib'" },
            { "a default of another kind", "limits", "return extend('limits', {\n defaults = { memory_mib = '512' } })",
              "/etc/proctor/policies/limits.lua:1: limits.lua defaults: 'memory_mib' must be a integer, got string" },
            { "a typo at the line of a call that is not a tail call", "limits",
              "\nlocal p = extend('limits', { defaults = { memry_mib = 512 } })\n\nreturn p",
              "/etc/proctor/policies/limits.lua:2: limits.lua defaults: unknown key 'memry_mib'" },
            { "a typo in a hook name", "limits", "return extend('limits', { clamp_limit = print })",
              "limits.lua:1: extend(\"limits\"): unknown key 'clamp_limit'" },
            { "a hook that is not a function", "ports", "return extend('ports', { choose_ports = 1 })",
              "ports.lua:1: extend: choose_ports must be a function(shipped, req), got number" },
            { "an unknown shipped file", "ports", "return extend('port', {})",
              "ports.lua:1: extend: no shipped policy file named \"port\"" },
        }
        for _, c in ipairs(extend_errors) do
            it("refuses " .. c[1] .. " with file:line", function()
                assert.matches(c[4], load_error(c[2], c[3]), 1, true)
            end)
        end
        it("only while the file loads", function()
            local p = proctor.load_text("ports", [[
return { choose_ports = function() return extend("ports", {}) end }]])
            assert.has_error(function() p.functions.choose_ports({}) end,
                "extend() can only be called while a policy file loads")
        end)
    end)

    it("every shipped policy file loads and defines all its hooks", function()
        for _, name in ipairs(proctor.loader.FILES) do
            local path = proctor.root .. "/policies/" .. name .. ".lua"
            local p = proctor.loader.load_policy(name, proctor.read(path), "@" .. path, proctor.new_base())
            assert.same({}, p.missing)
        end
    end)
end)
