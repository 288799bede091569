--[[ hardening.lua (JVM profile): room for the JVM's threads and open files.

A JVM starts dozens of threads (GC, JIT, one per core) and each counts against pids_limit;
build tools (Maven, Gradle) open thousands of jar files.

Test it:  busted tests/policies/examples_jvm_spec.lua   (from the repository root)
]]

return extend("hardening", {
    defaults = {
        pids_limit = 4096,                 -- processes and threads per container
        cap_drop = { "NET_RAW", "MKNOD", "SETPCAP", "SETFCAP" }, -- capabilities removed
        nofile = 8192,                     -- open files, soft and hard
        max_output_bytes = MiB_bytes(256), -- all a job's container may send (build logs are long)
    },
    examples = {
        harden = {
            { input = { environment = "java", student = false, memory_mib = 1024, network = false },
              output = { pids_limit = 4096, no_new_privileges = true,
                         cap_drop = { "NET_RAW", "MKNOD", "SETPCAP", "SETFCAP" },
                         nofile_soft = 8192, nofile_hard = 8192, max_output_bytes = 268435456,
                         max_frame_bytes = 134217728, max_students = 8, max_students_total = 512 } },
        },
    },
})
