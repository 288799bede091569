-- Specs of policies/results.lua. Input values are shaped as the agent converts
-- msgpack: floats are Lua floats, ints are Lua integers, nil is proctor.null,
-- an empty array is proctor.empty_array.
local BAD = "Feedback file is badly formatted: "

describe("results.validate_result", function()
    local validate = proctor.load("results").validate_result
    local function run(result, prev_state)
        return validate({ result = result, prev_state = prev_state or "previous" })
    end
    local function verdict(t)
        local v = { result = "error", text = "", grade = 0.0, problems = {}, tests = {}, custom = {}, state = "" }
        for k, x in pairs(t) do v[k] = x end
        return v
    end

    context("defaults #inginious", function()
        it("an empty map is an error graded 0", function()
            assert.same(verdict({}), run({}))
        end)
        it("success without grade gets 100.0", function()
            local out = run({ result = "success" })
            assert.equal(100.0, out.grade)
            assert.equal("float", math.type(out.grade))
        end)
        it("failed without grade gets 0.0", function()
            assert.equal(0.0, run({ result = "failed" }).grade)
        end)
        it("an absent state erases the previous one", function()
            assert.equal("", run({ result = "success" }, "keep me?").state)
        end)
        it("a given state is kept", function()
            assert.equal("s2", run({ state = "s2" }).state)
        end)
    end)

    context("grade", function()
        local rounding = {
            { 66.666, 66.67 }, { 12.345, 12.35 }, { 0.125, 0.12 }, { 2.675, 2.67 }, { -1.005, -1.0 },
            { 150.0, 150.0 }, { -3.0, -3.0 }, { 1e300, 1e300 },
        }
        for _, c in ipairs(rounding) do
            it(string.format("%.17g rounds like Python to %s", c[1], tostring(c[2])), function()
                assert.equal(c[2], run({ result = "success", grade = c[1] }).grade)
            end)
        end
        local refused = {
            { "an integer #inginious", 50, "'grade' must be a float, got integer" },
            { "a boolean #inginious", true, "'grade' must be a float, got boolean" },
            { "a string", "50.0", "'grade' must be a float, got string" },
            { "null", proctor.null, "'grade' must be a float, got null" },
            { "nan", 0 / 0, "'grade' is not a finite number" },
            { "infinity", math.huge, "'grade' is not a finite number" },
        }
        for _, c in ipairs(refused) do
            it("refuses " .. c[1], function()
                local out, reason = run({ grade = c[2] })
                assert.is_nil(out)
                assert.equal(BAD .. c[3], reason)
            end)
        end
    end)

    context("keys and types #inginious", function()
        local refused = {
            { "an unknown key", { foo = 1 }, 'unknown key "foo"' },
            { "a non-string key", { [2] = "x" }, "unknown key 2" },
            { "result as a number", { result = 1 }, "'result' must be a string, got integer" },
            { "text as null", { text = proctor.null }, "'text' must be a string, got null" },
            { "state as a table", { state = {} }, "'state' must be a string, got map" },
            { "problems as an array", { problems = { "a" } }, "'problems' must be a map, got array" },
            { "problems as an empty array", { problems = proctor.empty_array }, "'problems' must be a map, got array" },
            { "custom as a string", { custom = "x" }, "'custom' must be a map, got string" },
            { "an archive the agent did not decode", { archive = 5 }, "'archive' must be a string, got integer" },
            { "stdout as null", { stdout = proctor.null }, "'stdout' must be a string, got null" },
        }
        for _, c in ipairs(refused) do
            it("refuses " .. c[1], function()
                local out, reason = run(c[2])
                assert.is_nil(out)
                assert.equal(BAD .. c[3], reason)
            end)
        end
        it("accepts archive, stdout and stderr the agent decoded", function()
            assert.is_table(run({ archive = true, stdout = true, stderr = true }))
        end)
        for _, bad in ipairs({ "hello", 42, proctor.null, proctor.empty_array, { 1, 2 } }) do
            it("refuses a result that is not a map: " .. proctor.schema.dump(bad), function()
                local out, reason = run(bad)
                assert.is_nil(out)
                assert.matches("^" .. BAD .. "the result must be a map, got ", reason)
            end)
        end
        it("refuses a missing result", function()
            assert.is_nil(validate({ prev_state = "" }))
        end)
    end)

    context("problems", function()
        it("a string becomes { job result, text }", function()
            assert.same({ q1 = { "failed", "no" } }, run({ result = "failed", problems = { q1 = "no" } }).problems)
        end)
        it("[result, text] is kept", function()
            assert.same({ q1 = { "success", "yes" } },
                run({ result = "failed", problems = { q1 = { "success", "yes" } } }).problems)
        end)
        local ids = { "q1", "a.b-c_D", "0", string.rep("x", 200) }
        for _, id in ipairs(ids) do
            it("accepts the id " .. id:sub(1, 20), function()
                assert.is_table(run({ problems = { [id] = "x" } }))
            end)
        end
        local bad_ids = { "", "a b", "a*", "é", "q1\n", "a/b" }
        for _, id in ipairs(bad_ids) do
            it("refuses the id " .. string.format("%q", id), function()
                local out, reason = run({ problems = { [id] = "x" } })
                assert.is_nil(out)
                assert.matches("invalid id", reason)
            end)
        end
        local bad_values = {
            { "a map #inginious", { a = 1 }, "must not be a map" },
            { "a number", 5, "must be a string or" },
            { "a 3-element array", { "a", "b", "c" }, "must be a string or" },
            { "an array of numbers", { 1, 2 }, "must be a string or" },
            { "null", proctor.null, "must be a string or" },
        }
        for _, c in ipairs(bad_values) do
            it("refuses " .. c[1], function()
                local out, reason = run({ problems = { q1 = c[2] } })
                assert.is_nil(out)
                assert.matches(c[3], reason, 1, true)
            end)
        end
        it("refuses a non-string key", function()
            local out, reason = run({ problems = { [5] = "x", q = "y" } })
            assert.is_nil(out)
            assert.matches("is not a string", reason)
        end)
    end)

    context("tests and custom", function()
        it("test ids may hold '*' #inginious", function()
            assert.same({ ["tag*"] = true }, run({ tests = { ["tag*"] = true } }).tests)
        end)
        it("test values must not be maps", function()
            assert.is_nil(run({ tests = { t = { x = 1 } } }))
        end)
        it("test values may be arrays and sentinels", function()
            local tests = { a = { 1, 2 }, b = proctor.null, c = proctor.empty_array }
            assert.same(tests, run({ tests = tests }).tests)
        end)
        it("custom holds anything", function()
            local custom = { [1] = "int key", nested = { deep = { deeper = proctor.null } }, ["with space"] = 1.5 }
            assert.same(custom, run({ custom = custom }).custom)
        end)
    end)

    context("result values", function()
        for _, r in ipairs({ "success", "failed", "error", "crash", "timeout", "overflow", "killed" }) do
            it("keeps " .. r, function()
                assert.equal(r, run({ result = r }).result)
            end)
        end
        for _, r in ipairs({ "", "SUCCESS", "passed" }) do
            it("turns " .. string.format("%q", r) .. " into error", function()
                local out = run({ result = r, text = "kept" })
                assert.equal("error", out.result)
                assert.equal("kept", out.text)
                assert.equal(0.0, out.grade)
            end)
        end
    end)

    it("a full result", function()
        assert.same(verdict({ result = "success", text = "ok", grade = 75.5, problems = { q = { "success", "fine" } },
                              tests = { t = "auto" }, custom = { score = 3 }, state = "s" }),
            run({ result = "success", text = "ok", grade = 75.5, problems = { q = "fine" }, tests = { t = "auto" },
                  custom = { score = 3 }, state = "s", archive = true }))
    end)
end)
