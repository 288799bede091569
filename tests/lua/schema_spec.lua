-- Specs of lua/agent/schema.lua (embedded in proctord).
describe("schema", function()
    local schema = proctor.schema

    context("sentinels", function()
        it("null and empty_array are read-only", function()
            assert.has_error(function() schema.null.x = 1 end)
            assert.has_error(function() schema.empty_array[1] = 1 end)
        end)
        it("hide their metatable", function()
            assert.is_false(getmetatable(schema.null))
        end)
    end)

    context("shapes", function()
        local cases = {
            { "{}", {}, false, true },
            { "a sequence", { 1, 2 }, true, false },
            { "empty_array", schema.empty_array, true, false },
            { "null", schema.null, false, false },
            { "a map", { a = 1 }, false, true },
            { "a sparse table", { [1] = 1, [3] = 3 }, false, true },
            { "a mixed table", { 1, a = 2 }, false, true },
            { "a string", "x", false, false },
        }
        for _, c in ipairs(cases) do
            it(c[1], function()
                assert.equal(c[3], schema.is_array(c[2]))
                assert.equal(c[4], schema.is_map(c[2]))
            end)
        end
    end)

    context("ids", function()
        local cases = {
            { "q1", true, true }, { "a.b-c_D", true, true }, { "t*", false, true }, { "", false, false },
            { "a b", false, false }, { "q\n", false, false }, { "é", false, false }, { 5, false, false },
        }
        for _, c in ipairs(cases) do
            it(string.format("%q", tostring(c[1])), function()
                assert.equal(c[2], schema.is_id(c[1]))
                assert.equal(c[3], schema.is_test_id(c[1]))
            end)
        end
    end)

    context("check_keys", function()
        it("accepts known keys", function()
            assert.same({ a = 1 }, schema.check_keys({ a = 1 }, { "a", "b" }, "t"))
        end)
        it("names the typo and the known keys", function()
            assert.has_error(function() schema.check_keys({ tme = 1 }, { "time", "memory" }, "defaults") end,
                "defaults: unknown key 'tme' (known: memory, time)")
        end)
    end)

    context("with_overrides", function()
        local shipped = { time_s = 30, factor = 3.0, name = "x", on = true, knob = false, list = { 1 } }
        it("without overrides is the table itself", function()
            assert.equal(shipped, schema.with_overrides(shipped, nil, "t"))
        end)
        it("replaces what it names in a copy", function()
            local out = schema.with_overrides(shipped, { time_s = 10, knob = 256, list = {} }, "t")
            assert.same({ time_s = 10, factor = 3.0, name = "x", on = true, knob = 256, list = {} }, out)
            assert.equal(30, shipped.time_s)
        end)
        local bad = {
            { "an unknown key", { tme = 1 }, "t: unknown key 'tme' (known: factor, knob, list, name, on, time_s)" },
            { "a float for an integer", { time_s = 10.0 }, "t: 'time_s' must be a integer, got float" },
            { "a string for a boolean", { on = "yes" }, "t: 'on' must be a boolean, got string" },
        }
        for _, c in ipairs(bad) do
            it("refuses " .. c[1], function()
                local ok, err = pcall(schema.with_overrides, shipped, c[2], "t")
                assert.is_false(ok)
                assert.same({ override_error = c[3] }, err)
            end)
        end
    end)

    context("same", function()
        it("tells integers from floats", function()
            assert.is_false(schema.same(1, 1.0))
            assert.is_true(schema.same({ a = { 1.0 } }, { a = { 1.0 } }))
        end)
        it("tells sentinels from empty tables", function()
            assert.is_false(schema.same(schema.null, {}))
            assert.is_false(schema.same({}, schema.empty_array))
            assert.is_true(schema.same(schema.null, schema.null))
        end)
        it("compares keys both ways", function()
            assert.is_false(schema.same({ a = 1 }, { a = 1, b = 2 }))
        end)
    end)

    it("dump is deterministic", function()
        assert.equal('{[1] = true, a = 1, b = "x"}', schema.dump({ b = "x", a = 1, [1] = true }))
        assert.equal('{1, "two", {3}}', schema.dump({ 1, "two", { 3 } }))
        assert.equal("null", schema.dump(schema.null))
    end)
end)
