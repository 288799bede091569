-- Specs of lua/agent/sandbox.lua: what a policy file can and cannot reach.
-- Policies run through proctor.load_text, i.e. the daemon's loader and sandbox.
local function run(body)
    local text = "return { clamp_limits = function(req)\n" .. body .. "\nend }"
    local fn = proctor.load_text("limits", text).functions.clamp_limits
    return fn({})
end

describe("sandbox", function()
    context("blocked names", function()
        local blocked = {
            { "io.open('/etc/passwd')", "blocked function: io.open" },
            { "os.execute('true')", "blocked function: os.execute" },
            { "load('return 1')", "blocked function: load" },
            { "loadfile('x')", "blocked function: loadfile" },
            { "dofile('x')", "blocked function: dofile" },
            { "require('os')", "blocked function: require" },
            { "collectgarbage()", "blocked function: collectgarbage" },
            { "rawset({}, 1, 1)", "blocked function: rawset" },
            { "debug.getinfo(1)", "blocked function: debug.getinfo" },
            { "package.searchpath('x', '')", "blocked function: package.searchpath" },
            { "package.x = 1", "package is blocked" },
            { "coroutine.create(print)", "blocked function: coroutine.create" },
            { "string.dump(print)", "blocked function: string.dump" },
            { "math.randomseed(1)", "blocked function: math.randomseed" },
            { "setmetatable({}, { __gc = print })", "blocked function: __gc" },
        }
        for _, c in ipairs(blocked) do
            it(c[1], function()
                assert.has_error(function() run(c[1]) end)
                local ok, err = pcall(run, c[1])
                assert.is_false(ok)
                assert.matches(c[2], err, 1, true)
                assert.matches("^limits.lua:2:", err)
            end)
        end
    end)

    context("no globals", function()
        it("setting a global raises with file:line", function()
            local ok, err = pcall(run, "x = 1")
            assert.is_false(ok)
            assert.matches("limits.lua:2: policy tried to set global x", err, 1, true)
        end)
        it("_ENV's metatable is protected", function()
            assert.has_error(function() run("setmetatable(_ENV, nil)") end)
            assert.is_false(run("return getmetatable(_ENV)"))
        end)
        it("libraries are read-only", function()
            assert.has_error(function() run("string.rep = nil") end)
            assert.has_error(function() run("math.pi = 3") end)
        end)
        it("the string metatable is hidden", function()
            assert.is_false(run("return getmetatable('')"))
        end)
        -- pairs() of a read-only view must not hand out its writable backing table.
        for _, lib in ipairs({ "string", "table", "math", "utf8", "schema" }) do
            it("pairs(" .. lib .. ") gives no writable table", function()
                assert.is_true(run("local _, state = pairs(" .. lib .. ")\n"
                    .. "if type(state) == 'table' then pcall(function() state.x = 1 end) end\n"
                    .. "return rawequal(state, " .. lib .. ") and " .. lib .. ".x == nil"))
                assert.is_nil(run("for _, v in pairs(" .. lib .. ") do\n"
                    .. "if type(v) == 'table' then pcall(function() v.x = 1 end) end end\n"
                    .. "return " .. lib .. ".x"))
            end)
        end
        it("a write through pairs() cannot reach another file", function()
            local base = proctor.new_base()
            local a = proctor.loader.load_policy("limits",
                "return { clamp_limits = function() local _, s = pairs(string)\n"
                .. "pcall(function() s.rep = function() return 'pwned' end end) end }", "@a.lua", base)
            local b = proctor.loader.load_policy("ports",
                "return { choose_ports = function() return string.rep('x', 2) end }", "@b.lua", base)
            a.functions.clamp_limits()
            assert.equal("xx", b.functions.choose_ports())
        end)
        it("(''):dump is blocked like string.dump", function()
            local ok, err = pcall(run, "return (''):dump(print)")
            assert.is_false(ok)
            assert.matches("blocked function: string.dump", err, 1, true)
            ok, err = pcall(run, "return ('').dump(print)")
            assert.is_false(ok)
            assert.matches("blocked function: string.dump", err, 1, true)
        end)
        it("the string methods are a read-only view", function()
            assert.has_error(function() run("local s = ('').upper; ('').x = 1") end)
            assert.is_nil(run("pcall(function() ('').len = nil end) return nil"))
            assert.equal(3, run("return ('abc'):len()"))
        end)
        it("next and rawget see nothing behind a library", function()
            assert.is_nil(run("return next(string)"))
            assert.is_nil(run("return rawget(string, 'rep')"))
            assert.is_nil(run("return rawget(schema, 'is_id')"))
        end)
        it("each file has its own environment", function()
            local a = proctor.load_text("limits", "return { clamp_limits = function() return _ENV end }")
            local b = proctor.load_text("limits", "return { clamp_limits = function() return _ENV end }")
            assert.are_not.equal(a.functions.clamp_limits(), b.functions.clamp_limits())
        end)
    end)

    context("what policies may use", function()
        local allowed = {
            { "string.format('%d', 5)", "5" },
            { "('x'):rep(3)", "xxx" },
            { "table.concat({ 'a', 'b' }, ',')", "a,b" },
            { "math.max(1, 2)", 2 },
            { "utf8.char(233)", "é" },
            { "MiB(3)", 3 },
            { "minutes(2)", 120 },
            { "schema.is_id('q1')", true },
            { "select('#', 1, 2)", 2 },
            { "tostring(nil)", "nil" },
            { "pcall(error, 'x')", false },
            { "math.type(1)", "integer" },
            { "#string.format('%5s', 'a')", 5 },
        }
        for _, c in ipairs(allowed) do
            it(c[1], function()
                assert.equal(c[2], run("return " .. c[1]))
            end)
        end
        it("pairs walks a library", function()
            assert.is_true(run("local n = 0 for _ in pairs(math) do n = n + 1 end return n > 10"))
        end)
        it("print goes to the host's logger", function()
            local before = #proctor.printed
            run("print('hello', 1)")
            assert.equal("hello\t1", proctor.printed[before + 1])
        end)
    end)
end)
