-- Specs of examples/policies/jvm.
local dir = proctor.root .. "/examples/policies/jvm"

local function req(t)
    local r = { network_grading = false, needs_ports = false, environment_type = "docker",
                environment = "java", max_memory_mib = 4096, host_memory_mib = 16384, concurrency = 4 }
    for k, v in pairs(t or {}) do r[k] = v end
    return r
end

describe("jvm limits.clamp_limits", function()
    local clamp = proctor.load("limits", dir).clamp_limits
    local cases = {
        { "defaults", {}, { 60, 240, 1024 }, false },
        { "small memory raised for the JVM", { memory_mib = 100 }, { 60, 240, 256 }, false },
        { "negative memory", { memory_mib = -1 }, { 60, 240, 256 }, false },
        { "task values kept", { time_s = 5, hard_time_s = 7, memory_mib = 2048 }, { 5, 7, 2048 }, false },
        { "hard_time 0 means 4 x time", { time_s = 5, hard_time_s = 0 }, { 5, 20, 1024 }, false },
        { "ports: 30 minutes #inginious", { needs_ports = true }, { 1800, 1800, 1024 }, true },
        { "network_grading", { network_grading = true }, { 60, 240, 1024 }, true },
        { "huge time does not wrap", { time_s = math.maxinteger }, { 2147483647, 2147483644, 1024 }, false },
    }
    for _, c in ipairs(cases) do
        it(c[1], function()
            assert.same({ time_s = c[3][1], hard_time_s = c[3][2], memory_mib = c[3][3], network = c[4] },
                clamp(req(c[2])))
        end)
    end
    it("refuses more than a slot with INGInious's text", function()
        local out, reason = clamp(req({ memory_mib = 4097 }))
        assert.is_nil(out)
        assert.equal("Not enough memory on agent (available: 4096MB). Please contact your course administrator.", reason)
    end)
    it("refuses even the default on a small agent", function()
        assert.is_nil(clamp(req({ max_memory_mib = 512 })))
    end)
end)

describe("jvm limits.clamp_student", function()
    local clamp = proctor.load("limits", dir).clamp_student
    local function sreq(t)
        local r = { parent_time_s = 60, parent_hard_time_s = 240, parent_memory_mib = 1024,
                    time_s = 0, hard_time_s = 0, memory_mib = 0, environment = "java" }
        for k, v in pairs(t) do r[k] = v end
        return r
    end
    it("inherits", function()
        assert.same({ time_s = 60, hard_time_s = 240, memory_mib = 1024 }, clamp(sreq({})))
    end)
    it("raises a tiny student JVM to the floor", function()
        assert.equal(256, clamp(sreq({ memory_mib = 32 })).memory_mib)
    end)
    it("never above the parent", function()
        assert.equal(128, clamp(sreq({ parent_memory_mib = 128, memory_mib = 32 })).memory_mib)
    end)
end)

describe("jvm hardening.harden", function()
    local harden = proctor.load("hardening", dir).harden
    it("leaves room for JVM threads and jars", function()
        local out = harden({ environment = "java", student = false, memory_mib = 1024, network = false })
        assert.is_true(out.pids_limit >= 4096)
        assert.is_true(out.nofile_soft >= 4096 and out.nofile_soft <= out.nofile_hard)
        assert.is_true(out.no_new_privileges)
    end)
end)
