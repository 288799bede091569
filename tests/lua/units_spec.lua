-- Specs of lua/agent/units.lua (embedded in proctord).
describe("units", function()
    local units = proctor.units
    local cases = {
        { "MiB", 512, 512 }, { "GiB", 2, 2048 }, { "bytes", 7, 7 }, { "KiB_bytes", 2, 2048 },
        { "MiB_bytes", 128, 134217728 }, { "GiB_bytes", 1, 1073741824 }, { "seconds", 30, 30 },
        { "minutes", 30, 1800 }, { "hours", 2, 7200 }, { "MiB", 3.0, 3 },
    }
    for _, c in ipairs(cases) do
        it(c[1] .. "(" .. c[2] .. ") = " .. c[3], function()
            local v = units[c[1]](c[2])
            assert.equal(c[3], v)
            assert.equal("integer", math.type(v))
        end)
    end
    it("refuses fractions", function()
        assert.has_error(function() units.MiB(1.5) end)
    end)
    it("refuses non-numbers", function()
        assert.has_error(function() units.seconds("30") end)
    end)
    it("refuses overflow instead of wrapping around", function()
        assert.has_error(function() units.GiB_bytes(math.maxinteger // 2) end)
        assert.has_error(function() units.hours(math.mininteger) end)
    end)
    it("exports every helper it names", function()
        for _, name in ipairs(units.EXPORTS) do
            assert.is_function(units[name])
        end
    end)
end)
