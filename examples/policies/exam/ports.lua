--[[ ports.lua (exam profile): no published ports, hence no ssh debugging, during exams.

What it decides, input and output: as policies/ports.lua (see policies/README.md).
  choose_ports(req)  { ports = {...} } or nil, reason
Every job that needs a port is refused with the text below; jobs needing none run.

Test it:  busted tests/policies/examples_exam_spec.lua   (from the repository root)
]]

local defaults = {
    refusal = "SSH debugging and network services are disabled during exams.", -- shown to the student
}
schema.check_keys(defaults, { "refusal" }, "exam ports.lua defaults")

local function choose_ports(req)
    if req.count == 0 then
        return { ports = {} }
    end
    return nil, defaults.refusal
end

return {
    choose_ports = choose_ports,
    examples = {
        choose_ports = {
            { input = { job_id = "j", count = 0, free = { 64120 } }, output = { ports = {} } },
            { input = { job_id = "j", count = 1, free = { 64120 } }, refuse = defaults.refusal },
        },
    },
}
