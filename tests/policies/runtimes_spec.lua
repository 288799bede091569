-- Specs of policies/runtimes.lua.
local function docker(runtime, envtype)
    return { runtime = runtime, envtype = envtype, run_as_root = false, enables_gpu = false, shared_kernel = true }
end

describe("runtimes.map_runtimes", function()
    local map = proctor.load("runtimes").map_runtimes

    it("this host's engine: the first runc wins #inginious", function()
        assert.same({ runtimes = { docker("io.containerd.runc.v2", "docker") } },
            map({ runtimes = { "io.containerd.runc.v2", "io.containerd.runtime.v1.linux", "runc" }, ssh = false }))
    end)

    it("with --ssh each type comes twice", function()
        assert.same({ runtimes = { docker("runc", "docker"), docker("runc", "docker-ssh") } },
            map({ runtimes = { "runc" }, ssh = true }))
    end)

    local cases = {
        { "crun is docker", "crun", "docker", false, false, true },
        { "kata runs as root on its own kernel", "kata-runtime", "kata", true, false, false },
        { "gVisor runs as root on its own kernel", "runsc", "gvisor", true, false, false },
        { "nvidia enables the GPU", "nvidia", "nvidia", false, true, true },
    }
    for _, c in ipairs(cases) do
        it(c[1], function()
            assert.same({ runtimes = { { runtime = c[2], envtype = c[3], run_as_root = c[4], enables_gpu = c[5],
                                         shared_kernel = c[6] } } },
                map({ runtimes = { c[2] }, ssh = false }))
        end)
    end

    it("a runtime matching two rules gives both types", function()
        local out = map({ runtimes = { "nvidia-runc" }, ssh = false })
        assert.equal(2, #out.runtimes)
        assert.equal("docker", out.runtimes[1].envtype)
        assert.equal("nvidia", out.runtimes[2].envtype)
    end)

    it("unknown runtimes give nothing", function()
        assert.same({ runtimes = {} }, map({ runtimes = { "io.containerd.runtime.v1.linux", "youki" }, ssh = false }))
    end)

    it("no runtimes at all", function()
        assert.same({ runtimes = {} }, map({ runtimes = {}, ssh = true }))
    end)

    it("ignores non-string names", function()
        assert.same({ runtimes = { docker("runc", "docker") } }, map({ runtimes = { 42, "runc" } }))
    end)

    it("raises when runtimes is missing", function()
        assert.has_error(function() map({ ssh = false }) end)
    end)
end)
