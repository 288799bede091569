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

    it("caps the student containers of a grading container: 8 at once, 512 in all", function()
        local out = harden({ environment = "default", student = false, memory_mib = 200, network = false })
        assert.equal(8, out.max_students)
        assert.equal(512, out.max_students_total)
        assert.equal("integer", math.type(out.max_students))
        assert.equal("integer", math.type(out.max_students_total))
        -- within the agent's hard caps (64 at once, the runner's client limit; 4096 in all)
        assert.is_true(out.max_students >= 1 and out.max_students <= 64)
        assert.is_true(out.max_students_total >= out.max_students and out.max_students_total <= 4096)
    end)

    it("gives no student counts for a student container (they would mean nothing)", function()
        local out = harden({ environment = "default", student = true, memory_mib = 200, network = false })
        assert.is_nil(out.max_students)
        assert.is_nil(out.max_students_total)
    end)

    it("refuses a misspelt student cap in its defaults", function()
        local text = proctor.read(proctor.root .. "/policies/hardening.lua")
        local typo, n = text:gsub("max_students_total = 512", "max_student_total = 512")
        assert.equal(1, n)
        local ok, err = pcall(proctor.load_text, "hardening", typo)
        assert.is_false(ok)
        assert.truthy(tostring(err):find("^hardening%.lua:%d+: hardening%.lua defaults: unknown key "
            .. "'max_student_total'"), err)
    end)

    it("does not depend on missing input keys", function()
        assert.is_table(harden({}))
    end)
end)
