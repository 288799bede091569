--[[ limits.lua (JVM profile): generous defaults for Java, Scala and Kotlin courses.

The shipped policies/limits.lua with other defaults: a JVM needs a heap, JIT time and a slower
start, so the defaults are larger and the memory floor is high enough for `java -version`.

Test it:  busted tests/policies/examples_jvm_spec.lua   (from the repository root)
]]

return extend("limits", {
    defaults = {
        time_s = seconds(60),      -- CPU time when the task sets none (JIT and class loading)
        hard_time_factor = 4,      -- wall time = this × CPU time when the task sets none
        memory_mib = GiB(1),       -- memory when the task sets none (heap + metaspace + threads)
        min_memory_mib = MiB(256), -- smaller requests are raised to this: a JVM below it rarely starts
    },
    examples = {
        clamp_limits = {
            { input = { max_memory_mib = 4096 },
              output = { time_s = 60, hard_time_s = 240, memory_mib = 1024, network = false } },
            { input = { memory_mib = 64, max_memory_mib = 4096 },
              output = { time_s = 60, hard_time_s = 240, memory_mib = 256, network = false } },
        },
    },
})
