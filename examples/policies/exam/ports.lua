--[[ ports.lua (exam profile): no published ports, hence no ssh debugging, during exams.

The shipped policies/ports.lua for jobs that need no port; every job that needs one is
refused with the text below.

Test it:  busted tests/policies/examples_exam_spec.lua   (from the repository root)
]]

local REFUSAL = "SSH debugging and network services are disabled during exams."

return extend("ports", {
    choose_ports = function(shipped, req)
        if req.count > 0 then
            return nil, REFUSAL
        end
        return shipped(req)
    end,
    examples = {
        choose_ports = {
            { input = { job_id = "j", count = 0, free = { 64120 } }, output = { ports = {} } },
            { input = { job_id = "j", count = 1, free = { 64120 } }, refuse = REFUSAL },
        },
    },
})
