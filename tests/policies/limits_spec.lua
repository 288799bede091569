-- Specs of policies/limits.lua, loaded through the daemon's loader and sandbox.
local NOT_ENOUGH = "Not enough memory on agent (available: %dMB). Please contact your course administrator."

local function req(t)
    local r = { network_grading = false, needs_ports = false, environment_type = "docker",
                environment = "default", max_memory_mib = 1000, host_memory_mib = 3000, concurrency = 3 }
    for k, v in pairs(t or {}) do r[k] = v end
    return r
end

describe("limits.clamp_limits", function()
    local clamp = proctor.load("limits").clamp_limits

    context("INGInious's defaults #inginious", function()
        local cases = {
            { "no limits at all", {}, { 30, 90, 200 } },
            { "time only", { time_s = 10 }, { 10, 30, 200 } },
            { "hard_time 0 means 3 x time", { time_s = 10, hard_time_s = 0 }, { 10, 30, 200 } },
            { "explicit hard_time", { time_s = 10, hard_time_s = 15 }, { 10, 15, 200 } },
            { "hard_time below time is kept", { time_s = 10, hard_time_s = 5 }, { 10, 5, 200 } },
            { "memory given", { memory_mib = 512 }, { 30, 90, 512 } },
            { "memory at the slot maximum", { memory_mib = 1000 }, { 30, 90, 1000 } },
        }
        for _, c in ipairs(cases) do
            it(c[1], function()
                assert.same({ time_s = c[3][1], hard_time_s = c[3][2], memory_mib = c[3][3], network = false },
                    clamp(req(c[2])))
            end)
        end
    end)

    context("memory edges", function()
        local cases = {
            { "below 20 MiB is raised", 19, 20 },
            { "zero is raised", 0, 20 },
            { "negative is raised", -500, 20 },
            { "smallest integer is raised", math.mininteger, 20 },
        }
        for _, c in ipairs(cases) do
            it(c[1], function()
                assert.equal(c[3], clamp(req({ memory_mib = c[2] })).memory_mib)
            end)
        end

        for _, mem in ipairs({ 1001, 1 << 40, math.maxinteger }) do
            it("refuses " .. mem .. " MiB with INGInious's text", function()
                local out, reason = clamp(req({ memory_mib = mem }))
                assert.is_nil(out)
                assert.equal(string.format(NOT_ENOUGH, 1000), reason)
            end)
        end
    end)

    context("time edges", function()
        local cases = {
            { "zero time times out at once", { time_s = 0 }, 1, 3 },
            { "negative time", { time_s = -10, hard_time_s = -1 }, 1, 1 },
            { "huge time does not wrap around", { time_s = math.maxinteger }, 2147483647, 2147483646 },
            { "huge hard_time", { time_s = 1, hard_time_s = math.maxinteger }, 1, 2147483647 },
        }
        for _, c in ipairs(cases) do
            it(c[1], function()
                local out = clamp(req(c[2]))
                assert.equal(c[3], out.time_s)
                assert.equal(c[4], out.hard_time_s)
                assert.is_true(out.time_s > 0 and out.hard_time_s > 0)
            end)
        end
    end)

    context("network and ports", function()
        it("network_grading gives a network", function()
            assert.is_true(clamp(req({ network_grading = true })).network)
        end)
        it("jobs with ports get 30 minutes and a network #inginious", function()
            assert.same({ time_s = 1800, hard_time_s = 1800, memory_mib = 200, network = true },
                clamp(req({ needs_ports = true, time_s = 5, hard_time_s = 6 })))
        end)
        it("memory is still checked for jobs with ports", function()
            assert.is_nil(clamp(req({ needs_ports = true, memory_mib = 5000 })))
        end)
    end)

    context("wrong input types", function()
        for _, key in ipairs({ "time_s", "hard_time_s", "memory_mib" }) do
            for _, bad in ipairs({ "30", 1.5, true, {} }) do
                it(key .. " = " .. proctor.schema.dump(bad) .. " raises (the agent then uses its default)", function()
                    assert.has_error(function() clamp(req({ [key] = bad })) end)
                end)
            end
        end
    end)
end)

describe("limits.clamp_student", function()
    local clamp = proctor.load("limits").clamp_student
    local function sreq(t)
        local r = { parent_time_s = 30, parent_hard_time_s = 90, parent_memory_mib = 200,
                    time_s = 0, hard_time_s = 0, memory_mib = 0, environment = "default" }
        for k, v in pairs(t) do r[k] = v end
        return r
    end
    local cases = {
        { "0 inherits everything", {}, { 30, 90, 200 } },
        { "smaller values are kept", { time_s = 5, hard_time_s = 10, memory_mib = 100 }, { 5, 10, 100 } },
        { "larger values are cut to the parent's", { time_s = 50, hard_time_s = 500, memory_mib = 1000 }, { 30, 90, 200 } },
        { "negative values inherit", { time_s = -1, hard_time_s = -1, memory_mib = -1 }, { 30, 90, 200 } },
        { "memory floor of 20 MiB", { memory_mib = 5 }, { 30, 90, 20 } },
        { "the floor never exceeds the parent", { parent_memory_mib = 10, memory_mib = 5 }, { 30, 90, 10 } },
        { "huge values", { time_s = math.maxinteger, memory_mib = math.maxinteger }, { 30, 90, 200 } },
    }
    for _, c in ipairs(cases) do
        it(c[1], function()
            assert.same({ time_s = c[3][1], hard_time_s = c[3][2], memory_mib = c[3][3] }, clamp(sreq(c[2])))
        end)
    end
end)
