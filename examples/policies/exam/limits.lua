--[[ limits.lua (exam profile): short, strict limits for graded exams.

The shipped policies/limits.lua with other defaults: less time and memory by default, a
ceiling on what a task may ask (refused with a clear text instead of silently cut), and no
network for grading containers, not even for jobs publishing ports (ports.lua refuses those).

Test it:  busted tests/policies/examples_exam_spec.lua   (from the repository root)
]]

local TOO_LONG = "This task asks for more time than exams allow (%d s). Please contact your course administrator."

return extend("limits", {
    defaults = {
        time_s = seconds(10),              -- CPU time when the task sets none
        hard_time_factor = 2,              -- wall time = this × CPU time when the task sets none
        memory_mib = MiB(128),             -- memory when the task sets none
        max_task_time_s = seconds(60),     -- tasks asking for more CPU time are refused
        max_task_hard_time_s = minutes(3), -- tasks asking for more wall time are refused
        max_task_memory_mib = MiB(512),    -- tasks asking for more memory are refused
        too_much_time = TOO_LONG,
        allow_network_grading = false,
    },
    clamp_limits = function(shipped, req)
        local out, refusal = shipped(req)
        if out then out.network = false end
        return out, refusal
    end,
    examples = {
        clamp_limits = {
            { input = { max_memory_mib = 1024, needs_ports = true },
              output = { time_s = 1800, hard_time_s = 1800, memory_mib = 128, network = false } },
            { input = { time_s = 120, max_memory_mib = 1024 }, refuse = string.format(TOO_LONG, 60) },
        },
    },
})
