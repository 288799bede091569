-- Specs of policies/ports.lua.
local NO_PORTS = "No ports are available right now. Please retry later."

describe("ports.choose_ports", function()
    local choose = proctor.load("ports").choose_ports
    local cases = {
        { "one port, lowest first", 1, { 64120, 64121, 64122 }, { 64120 } },
        { "two ports", 2, { 64120, 64125 }, { 64120, 64125 } },
        { "no port needed", 0, {}, {} },
        { "the whole pool", 3, { 1, 2, 3 }, { 1, 2, 3 } },
    }
    for _, c in ipairs(cases) do
        it(c[1], function()
            assert.same({ ports = c[4] }, choose({ job_id = "job", count = c[2], free = c[3] }))
        end)
    end

    it("refuses with INGInious's text when the pool is too small #inginious", function()
        local out, reason = choose({ job_id = "job", count = 2, free = { 64120 } })
        assert.is_nil(out)
        assert.equal(NO_PORTS, reason)
    end)

    it("refuses on an empty pool", function()
        local out, reason = choose({ job_id = "job", count = 1, free = {} })
        assert.is_nil(out)
        assert.equal(NO_PORTS, reason)
    end)

    it("returns distinct ports from the pool", function()
        local free = {}
        for p = 64120, 64130 do free[#free + 1] = p end
        local out = choose({ job_id = "job", count = 5, free = free })
        local seen = {}
        for _, p in ipairs(out.ports) do
            assert.is_nil(seen[p])
            seen[p] = true
            assert.is_true(p >= 64120 and p <= 64130)
        end
    end)

    for _, bad in ipairs({ { count = -1, free = {} }, { count = "1", free = { 1 } }, { count = 1 },
                           { count = 1.5, free = { 1, 2 } } }) do
        it("raises on a bad request " .. proctor.schema.dump(bad), function()
            assert.has_error(function() choose(bad) end)
        end)
    end
end)
