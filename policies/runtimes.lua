--[[ runtimes.lua: which environment types the agent offers, from the Docker runtimes it finds.

What it decides
  map_runtimes(req)  one entry per environment type, each naming the Docker runtime that runs it

Input
  req.runtimes  list of strings  the runtime names of the engine's /info, in the engine's order
                                 (e.g. "io.containerd.runc.v2", "io.containerd.runtime.v1.linux", "runc")
  req.ssh       boolean          the agent was started with --ssh: add the "-ssh" types too
  req.forced    list or nil      the runtimes given on proctord's command line, as
                                 inginious-agent-docker's `--runtime RUNTIME ENVTYPE [root] [shared]`:
                                 { { runtime =, envtype =, run_as_root =, enables_gpu = false,
                                     shared_kernel = }, ... }; absent when none was given
Output
  { runtimes = { { runtime = "runc", envtype = "docker", run_as_root = false,
                   enables_gpu = false, shared_kernel = true }, ... } }
  `runtime` must be one of req.runtimes and every `envtype` must be distinct.
  run_as_root: the grader runs as root in the container (only safe without a shared kernel);
  shared_kernel: containers share the host's kernel (false for VM-backed runtimes).
This hook never refuses: an answer the agent cannot accept is replaced by the built-in
default (the same table as below).

Test it:  busted tests/policies/runtimes_spec.lua   (from the repository root)
]]

-- extend("runtimes", { defaults = {...} }) replaces entries of this table (policies/README.md).
local defaults = schema.with_overrides({
    -- Tried in order on every runtime name: the first runtime that yields a type keeps it.
    rules = {
        -- substring of the runtime name -> environment type and its properties
        { match = "runc", envtype = "docker", run_as_root = false, enables_gpu = false, shared_kernel = true },
        { match = "crun", envtype = "docker", run_as_root = false, enables_gpu = false, shared_kernel = true },
        -- VM-isolated: the grader may run as root (INGInious 0.9: "kata")
        { match = "kata", envtype = "kata", run_as_root = true, enables_gpu = false, shared_kernel = false },
        -- gVisor: a user-space kernel, so root inside is not root on the host
        { match = "runsc", envtype = "gvisor", run_as_root = true, enables_gpu = false, shared_kernel = false },
        { match = "nvidia", envtype = "nvidia", run_as_root = false, enables_gpu = true, shared_kernel = true },
        -- To offer crun under its own type instead of "docker", give `rules` with this entry
        -- in place of the crun one above:
        -- { match = "crun", envtype = "crun", run_as_root = false, enables_gpu = false, shared_kernel = true },
    },
    ssh_suffix = "-ssh",  -- with --ssh every type is offered again as "<type>-ssh" (INGInious 0.9)
    -- proctord --runtime (as inginious-agent-docker's): the runtimes given there are offered
    -- instead of the rules above, and no "-ssh" types are added (as upstream). false: ignore it.
    cli_runtimes = true,
}, ..., "runtimes.lua defaults")
schema.check_keys(defaults, { "rules", "ssh_suffix", "cli_runtimes" }, "runtimes.lua defaults")
for i, rule in ipairs(defaults.rules) do
    schema.check_keys(rule, { "match", "envtype", "run_as_root", "enables_gpu", "shared_kernel" },
        "runtimes.lua defaults.rules[" .. i .. "]")
end

local function entry(name, rule, envtype)
    return { runtime = name, envtype = envtype, run_as_root = rule.run_as_root,
             enables_gpu = rule.enables_gpu, shared_kernel = rule.shared_kernel }
end

-- The types one matching runtime produces: the plain one, and the ssh one with --ssh.
local function envtypes_of(rule, ssh)
    if ssh then
        return { rule.envtype, rule.envtype .. defaults.ssh_suffix }
    end
    return { rule.envtype }
end

-- --runtime given to proctord: those entries, in order (a later one for the same type
-- replaces the earlier, as upstream's); one the engine does not have is left out.
local function forced_runtimes(req)
    local known, out, at = {}, {}, {}
    for _, name in ipairs(req.runtimes) do known[name] = true end
    for _, f in ipairs(req.forced) do
        if not known[f.runtime] then
            print("runtimes.lua: --runtime " .. f.runtime .. " " .. f.envtype
                .. ": the engine has no runtime " .. f.runtime .. "; left out")
        else
            local e = entry(f.runtime, f, f.envtype)
            if at[f.envtype] then
                out[at[f.envtype]] = e
            else
                out[#out + 1] = e
                at[f.envtype] = #out
            end
        end
    end
    return { runtimes = out }
end

local function map_runtimes(req)
    if type(req.runtimes) ~= "table" then
        error("req.runtimes must be a list of names, got " .. schema.dump(req.runtimes), 2)
    end
    if defaults.cli_runtimes and type(req.forced) == "table" and #req.forced > 0 then
        return forced_runtimes(req)
    end
    local out, taken = {}, {}
    for _, name in ipairs(req.runtimes) do
        for _, rule in ipairs(defaults.rules) do
            if type(name) == "string" and name:find(rule.match, 1, true) then
                for _, envtype in ipairs(envtypes_of(rule, req.ssh == true)) do
                    if not taken[envtype] then
                        taken[envtype] = true
                        out[#out + 1] = entry(name, rule, envtype)
                    end
                end
            end
        end
    end
    return { runtimes = out }
end

return {
    map_runtimes = map_runtimes,
    examples = {
        map_runtimes = {
            { input = { runtimes = { "io.containerd.runc.v2", "io.containerd.runtime.v1.linux", "runc" }, ssh = false },
              output = { runtimes = { { runtime = "io.containerd.runc.v2", envtype = "docker", run_as_root = false,
                                        enables_gpu = false, shared_kernel = true } } } },
            -- proctord --runtime runc mydocker shared
            { input = { runtimes = { "runc" }, ssh = true,
                        forced = { { runtime = "runc", envtype = "mydocker", run_as_root = false,
                                     enables_gpu = false, shared_kernel = true } } },
              output = { runtimes = { { runtime = "runc", envtype = "mydocker", run_as_root = false,
                                        enables_gpu = false, shared_kernel = true } } } },
        },
    },
}
