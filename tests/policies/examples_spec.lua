-- Every file of every set in examples/policies loads through the daemon's
-- loader (its `examples` self-checks included), so the examples cannot rot.
local lfs = require("lfs")

describe("examples/policies", function()
    local root = proctor.root .. "/examples/policies"
    local sets = {}
    for entry in lfs.dir(root) do
        if entry:sub(1, 1) ~= "." and lfs.attributes(root .. "/" .. entry, "mode") == "directory" then
            sets[#sets + 1] = entry
        end
    end
    table.sort(sets)

    it("holds at least two alternative sets", function()
        assert.is_true(#sets >= 2)
    end)

    for _, set in ipairs(sets) do
        local dir = root .. "/" .. set
        for _, name in ipairs(proctor.policy_files(dir)) do
            it(set .. "/" .. name .. ".lua loads and defines every hook of its file", function()
                assert.is_table(proctor.loader.HOOKS[name], "not a policy file name: " .. name)
                local path = dir .. "/" .. name .. ".lua"
                local p = proctor.loader.load_policy(name, proctor.read(path), "@" .. path, proctor.new_base())
                assert.same({}, p.missing)
            end)
        end
    end
end)
