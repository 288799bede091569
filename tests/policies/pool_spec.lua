-- Specs of policies/pool.lua.
describe("pool.size_pool", function()
    local size_pool = proctor.load("pool").size_pool

    local function env(key, t)
        local envtype, name = key:match("^([^/]+)/(.+)$")
        local e = { key = key, envtype = envtype, name = name, waiting = 0, arrivals_1m = 1,
                    arrivals_10m = 1, idle_s = 5, memory_mib = 256, available = true }
        for k, v in pairs(t or {}) do e[k] = v end
        return e
    end
    local function req(envs, host_memory_mib)
        return { slots = 4, slots_in_use = 0, host_memory_mib = host_memory_mib or 16384,
                 environments = envs }
    end

    it("warms one container for an environment in use", function()
        assert.same({ sizes = { ["docker/default"] = 1 } }, size_pool(req({ env("docker/default") })))
    end)

    it("two for a busy one (20 jobs a minute)", function()
        local out = size_pool(req({ env("docker/default", { arrivals_1m = 20 }) }))
        assert.equal(2, out.sizes["docker/default"])
    end)

    it("none for one idle ten minutes, or whose image is gone", function()
        local out = size_pool(req({ env("docker/a", { idle_s = 600 }),
                                    env("docker/b", { available = false }) }))
        assert.same({ ["docker/a"] = 0, ["docker/b"] = 0 }, out.sizes)
    end)

    it("keeps within 5 % of the host's memory", function()
        -- 640 MiB: 32 MiB for the pool, two containers of 16 MiB.
        local envs = {}
        for i = 1, 5 do envs[i] = env("docker/e" .. i) end
        local total = 0
        for _, n in pairs(size_pool(req(envs, 640)).sizes) do total = total + n end
        assert.equal(2, total)
    end)

    it("answers an integer for every environment asked about, and nothing else", function()
        local out = size_pool(req({ env("docker/a"), env("kata/b", { idle_s = 9999 }) }))
        local keys = {}
        for k, n in pairs(out.sizes) do
            keys[#keys + 1] = k
            assert.equal("integer", math.type(n))
        end
        table.sort(keys)
        assert.same({ "docker/a", "kata/b" }, keys)
    end)

    it("can be turned off with extend()", function()
        local p = proctor.load_text("pool", 'return extend("pool", { defaults = { enabled = false } })')
        assert.same({ sizes = {} }, p.functions.size_pool(req({ env("docker/default") })))
    end)
end)
