-- Specs of policies/hardening.lua.
describe("hardening.harden", function()
    local harden = proctor.load("hardening").harden
    local function contains(list, x)
        for _, v in ipairs(list) do if v == x then return true end end
        return false
    end

    it("grading containers without a network drop sshd's capabilities too", function()
        local out = harden({ environment = "default", student = false, memory_mib = 200, network = false })
        assert.same({ "NET_RAW", "MKNOD", "SETPCAP", "SETFCAP", "SYS_CHROOT", "NET_BIND_SERVICE", "AUDIT_WRITE" },
            out.cap_drop)
    end)

    it("containers with a network keep what sshd needs", function()
        local out = harden({ environment = "default", student = true, memory_mib = 200, network = true })
        for _, cap in ipairs({ "SYS_CHROOT", "NET_BIND_SERVICE", "AUDIT_WRITE" }) do
            assert.is_false(contains(out.cap_drop, cap))
        end
    end)

    for _, network in ipairs({ false, true }) do
        it("keeps what the runner needs (network = " .. tostring(network) .. ")", function()
            local out = harden({ environment = "default", student = false, memory_mib = 200, network = network })
            for _, cap in ipairs({ "CHOWN", "SETUID", "SETGID", "FOWNER", "DAC_OVERRIDE", "KILL" }) do
                assert.is_false(contains(out.cap_drop, cap))
            end
        end)
    end

    it("secure defaults that keep the demo tasks working", function()
        local out = harden({ environment = "default", student = false, memory_mib = 200, network = false })
        assert.is_true(out.no_new_privileges)
        assert.is_true(out.pids_limit >= 512)
        assert.equal(1024, out.nofile_soft)
        assert.equal(1024, out.nofile_hard)
        -- the benchmark sends 50 MB of output in one job
        assert.is_true(out.max_output_bytes >= 50 * 1000 * 1000)
        assert.is_true(out.max_frame_bytes >= 50 * 1000 * 1000)
    end)

    it("answers integers for every size and count", function()
        local out = harden({ environment = "x", student = false, memory_mib = 1, network = false })
        for _, key in ipairs({ "pids_limit", "nofile_soft", "nofile_hard", "max_output_bytes", "max_frame_bytes" }) do
            assert.equal("integer", math.type(out[key]))
        end
    end)

    it("does not depend on missing input keys", function()
        assert.is_table(harden({}))
    end)
end)
