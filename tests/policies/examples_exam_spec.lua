-- Specs of examples/policies/exam.
local dir = proctor.root .. "/examples/policies/exam"

local function req(t)
    local r = { network_grading = false, needs_ports = false, environment_type = "docker",
                environment = "default", max_memory_mib = 2048, host_memory_mib = 8192, concurrency = 4 }
    for k, v in pairs(t or {}) do r[k] = v end
    return r
end

describe("exam limits.clamp_limits", function()
    local clamp = proctor.load("limits", dir).clamp_limits
    local cases = {
        { "defaults", {}, { 10, 20, 128 } },
        { "task values inside the ceiling", { time_s = 30, hard_time_s = 60, memory_mib = 256 }, { 30, 60, 256 } },
        { "memory floor", { memory_mib = 1 }, { 10, 20, 20 } },
        { "zero time", { time_s = 0 }, { 1, 2, 128 } },
        { "negative times", { time_s = -4, hard_time_s = -4 }, { 1, 1, 128 } },
    }
    for _, c in ipairs(cases) do
        it(c[1], function()
            assert.same({ time_s = c[3][1], hard_time_s = c[3][2], memory_mib = c[3][3], network = false },
                clamp(req(c[2])))
        end)
    end
    local refused = {
        { "too much CPU time", { time_s = 61 }, "more time than exams allow (60 s)" },
        { "too much wall time", { time_s = 10, hard_time_s = 181 }, "more time than exams allow (180 s)" },
        { "huge time", { time_s = math.maxinteger }, "more time than exams allow" },
        { "more memory than exams allow", { memory_mib = 513 }, "available: 512MB" },
        { "more memory than the slot", { memory_mib = 300, max_memory_mib = 256 }, "available: 256MB" },
    }
    for _, c in ipairs(refused) do
        it("refuses " .. c[1], function()
            local out, reason = clamp(req(c[2]))
            assert.is_nil(out)
            assert.matches(c[3], reason, 1, true)
        end)
    end
    it("never gives a network", function()
        assert.is_false(clamp(req({ network_grading = true })).network)
    end)
    it("raises on a wrong type", function()
        assert.has_error(function() clamp(req({ time_s = "10" })) end)
    end)
end)

describe("exam limits.clamp_student", function()
    local clamp = proctor.load("limits", dir).clamp_student
    it("stays within the parent", function()
        assert.same({ time_s = 10, hard_time_s = 20, memory_mib = 128 },
            clamp({ parent_time_s = 10, parent_hard_time_s = 20, parent_memory_mib = 128,
                    time_s = 100, hard_time_s = 0, memory_mib = 4096, environment = "default" }))
    end)
end)

describe("exam ports.choose_ports", function()
    local choose = proctor.load("ports", dir).choose_ports
    it("refuses any port", function()
        local out, reason = choose({ job_id = "j", count = 1, free = { 64120, 64121 } })
        assert.is_nil(out)
        assert.matches("disabled during exams", reason)
    end)
    it("lets jobs without ports run", function()
        assert.same({ ports = {} }, choose({ job_id = "j", count = 0, free = {} }))
    end)
end)

describe("exam hardening.harden", function()
    local harden = proctor.load("hardening", dir).harden
    it("is stricter than the shipped policy", function()
        local shipped = proctor.load("hardening").harden({ network = false })
        local exam = harden({ network = false, student = false })
        assert.is_true(exam.pids_limit < shipped.pids_limit)
        assert.is_true(exam.nofile_hard < shipped.nofile_hard)
        assert.is_true(exam.max_output_bytes < shipped.max_output_bytes)
        assert.is_true(#exam.cap_drop > #shipped.cap_drop)
    end)
    it("gives student containers half the processes", function()
        assert.equal(128, harden({ student = true }).pids_limit)
    end)
    it("keeps what the runner needs", function()
        for _, cap in ipairs(harden({}).cap_drop) do
            assert.is_nil(({ CHOWN = 1, SETUID = 1, SETGID = 1, FOWNER = 1, DAC_OVERRIDE = 1, KILL = 1 })[cap])
        end
    end)
end)
