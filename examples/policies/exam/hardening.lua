--[[ hardening.lua (exam profile): the shipped hardening, tighter.

Exams have no network (limits.lua) and no ssh (ports.lua), so sshd's capabilities go too.

Test it:  busted tests/policies/examples_exam_spec.lua   (from the repository root)
]]

return extend("hardening", {
    defaults = {
        pids_limit = 256,                 -- processes and threads per container
        student_pids_limit = 128,         -- ... and per student container
        cap_drop = {                      -- the runner still needs CHOWN, SETUID, SETGID, FOWNER,
                                          -- DAC_OVERRIDE and KILL to drop to uid 4242
            "NET_RAW", "MKNOD", "SETPCAP", "SETFCAP", "SYS_CHROOT", "NET_BIND_SERVICE", "AUDIT_WRITE",
            "FSETID",
        },
        keep_with_network = {},           -- no sshd during exams
        nofile = 256,                     -- open files, soft and hard
        max_output_bytes = MiB_bytes(16), -- all a job's container may send the agent
        max_frame_bytes = MiB_bytes(16),  -- one message from the container
    },
})
