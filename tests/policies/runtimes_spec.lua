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

    context("--runtime given to proctord (req.forced) #inginious", function()
        local function rt(runtime, envtype, root, shared)
            return { runtime = runtime, envtype = envtype, run_as_root = root, enables_gpu = false,
                     shared_kernel = shared }
        end
        it("offers exactly the runtimes given, without -ssh types", function()
            assert.same({ runtimes = { rt("runc", "mydocker", false, true), rt("kata-runtime", "kata", true, false) } },
                map({ runtimes = { "runc", "kata-runtime", "crun" }, ssh = true,
                      forced = { rt("runc", "mydocker", false, true), rt("kata-runtime", "kata", true, false) } }))
        end)
        it("a later entry for the same type replaces the earlier", function()
            assert.same({ runtimes = { rt("crun", "docker", false, true) } },
                map({ runtimes = { "runc", "crun" }, forced = { rt("runc", "docker", false, true),
                                                                 rt("crun", "docker", false, true) } }))
        end)
        it("leaves out a runtime the engine does not have, and says so", function()
            local before = #proctor.printed
            assert.same({ runtimes = { rt("runc", "docker", false, true) } },
                map({ runtimes = { "runc" }, forced = { rt("youki", "youki", false, true), rt("runc", "docker", false, true) } }))
            assert.truthy(proctor.printed[before + 1]:find("the engine has no runtime youki", 1, true))
        end)
        it("an empty list is no --runtime: the rules decide", function()
            assert.same({ runtimes = { docker("runc", "docker") } }, map({ runtimes = { "runc" }, forced = {} }))
        end)
        it("extend() can turn it off", function()
            local off = proctor.load_text("runtimes",
                'return extend("runtimes", { defaults = { cli_runtimes = false } })').functions.map_runtimes
            assert.same({ runtimes = { docker("runc", "docker") } },
                off({ runtimes = { "runc" }, forced = { rt("runc", "mine", false, true) } }))
        end)
    end)

    it("raises when runtimes is missing", function()
        assert.has_error(function() map({ ssh = false }) end)
    end)
end)
