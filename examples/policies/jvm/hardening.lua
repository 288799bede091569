--[[ hardening.lua (JVM profile): room for the JVM's threads and open files.

What it decides, input and output: as policies/hardening.lua (see policies/README.md).
  harden(req)  { pids_limit, no_new_privileges, cap_drop, nofile_soft, nofile_hard,
                 max_output_bytes, max_frame_bytes }
A JVM starts dozens of threads (GC, JIT, one per core) and each counts against pids_limit;
build tools (Maven, Gradle) open thousands of jar files.

Test it:  busted tests/policies/examples_jvm_spec.lua   (from the repository root)
]]

local defaults = {
    pids_limit = 4096,                 -- processes and threads per container
    no_new_privileges = true,          -- setuid binaries cannot gain privileges (secure default)
    cap_drop = { "NET_RAW", "MKNOD", "SETPCAP", "SETFCAP" }, -- capabilities removed (secure default)
    nofile = 8192,                     -- open files, soft and hard
    max_output_bytes = MiB_bytes(256), -- all a job's container may send (build logs are long)
    max_frame_bytes = MiB_bytes(128),  -- one message from the container
}
schema.check_keys(defaults, {
    "pids_limit", "no_new_privileges", "cap_drop", "nofile", "max_output_bytes", "max_frame_bytes",
}, "jvm hardening.lua defaults")

local function harden(_)
    local caps = {}
    for i, cap in ipairs(defaults.cap_drop) do caps[i] = cap end
    return {
        pids_limit = defaults.pids_limit,
        no_new_privileges = defaults.no_new_privileges,
        cap_drop = caps,
        nofile_soft = defaults.nofile,
        nofile_hard = defaults.nofile,
        max_output_bytes = defaults.max_output_bytes,
        max_frame_bytes = defaults.max_frame_bytes,
    }
end

return {
    harden = harden,
    examples = {
        harden = {
            { input = { environment = "java", student = false, memory_mib = 1024, network = false },
              output = { pids_limit = 4096, no_new_privileges = true,
                         cap_drop = { "NET_RAW", "MKNOD", "SETPCAP", "SETFCAP" },
                         nofile_soft = 8192, nofile_hard = 8192, max_output_bytes = 268435456,
                         max_frame_bytes = 134217728 } },
        },
    },
}
