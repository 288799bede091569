--[[ hardening.lua (exam profile): tighter than the shipped hardening.

What it decides, input and output: as policies/hardening.lua (see policies/README.md).
  harden(req)  { pids_limit, no_new_privileges, cap_drop, nofile_soft, nofile_hard,
                 max_output_bytes, max_frame_bytes }
Exams have no network (limits.lua) and no ssh (ports.lua), so sshd's capabilities go too.

Test it:  busted tests/policies/examples_exam_spec.lua   (from the repository root)
]]

local defaults = {
    pids_limit = 256,                 -- processes and threads per container (secure default)
    no_new_privileges = true,         -- setuid binaries cannot gain privileges (secure default)
    cap_drop = {                      -- the runner still needs CHOWN, SETUID, SETGID, FOWNER,
                                      -- DAC_OVERRIDE and KILL to drop to uid 4242
        "NET_RAW", "MKNOD", "SETPCAP", "SETFCAP", "SYS_CHROOT", "NET_BIND_SERVICE", "AUDIT_WRITE",
        "FSETID",
    },
    nofile = 256,                     -- open files, soft and hard
    max_output_bytes = MiB_bytes(16), -- all a job's container may send the agent
    max_frame_bytes = MiB_bytes(16),  -- one message from the container
}
schema.check_keys(defaults, {
    "pids_limit", "no_new_privileges", "cap_drop", "nofile", "max_output_bytes", "max_frame_bytes",
}, "exam hardening.lua defaults")

local function harden(req)
    local caps = {}
    for i, cap in ipairs(defaults.cap_drop) do caps[i] = cap end
    return {
        pids_limit = req.student and defaults.pids_limit // 2 or defaults.pids_limit,
        no_new_privileges = defaults.no_new_privileges,
        cap_drop = caps,
        nofile_soft = defaults.nofile,
        nofile_hard = defaults.nofile,
        max_output_bytes = defaults.max_output_bytes,
        max_frame_bytes = defaults.max_frame_bytes,
    }
end

return { harden = harden }
