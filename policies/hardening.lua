--[[ hardening.lua: container hardening beyond INGInious (which sets none of this).

What it decides
  harden(req)  process, capability, file and output limits of one container

Input
  req.environment  string    the environment name (image label), e.g. "default"
  req.student      boolean   a student container (run_student) rather than the grading one
  req.memory_mib   integer   the container's memory limit, as decided by limits.lua
  req.network      boolean   the container has a network (ssh debug and ssh students need one)
Output
  { pids_limit = int >= 0 (0: none),
    no_new_privileges = boolean,
    cap_drop = { "NET_RAW", ... },          capability names as Docker spells them, or "ALL"
    nofile_soft = int >= 0, nofile_hard = int >= 0   (0: Docker's default; soft <= hard),
    max_output_bytes = int > 0,             everything one job's container may send the agent
    max_frame_bytes = int > 0,              one message from the container
    max_students = int >= 1,                grading container only: student containers alive
                                            at once for this job
    max_students_total = int >= 1 }         grading container only: student containers this
                                            job may start in all
  or nil, "reason" to refuse to start the container.
The agent caps the two byte limits with its own configuration after this file, and the two
student counts with its hard caps (64 at once, 4096 in all); it ignores them for a student
container, and uses 8 and 512 when a grading container's answer leaves them out.

Secure defaults, chosen so that every task of examples/courses still works: the grader runs
as root until it drops to uid 4242, so CHOWN, SETUID, SETGID, FOWNER, DAC_OVERRIDE and KILL
stay; containers with a network may run sshd, so they also keep NET_BIND_SERVICE (port 22),
SYS_CHROOT (privilege separation) and AUDIT_WRITE (login records).

Test it:  busted tests/policies/hardening_spec.lua   (from the repository root)
]]

-- extend("hardening", { defaults = {...} }) replaces entries of this table (policies/README.md).
local defaults = schema.with_overrides({
    pids_limit = 1024,              -- processes and threads per container (secure default;
                                    -- INGInious: none, so a fork bomb starves the host)
    no_new_privileges = true,       -- setuid binaries cannot gain privileges (secure default)
    cap_drop = {                    -- capabilities removed from every container (secure default)
        "NET_RAW", "MKNOD", "SETPCAP", "SETFCAP", "SYS_CHROOT", "NET_BIND_SERVICE", "AUDIT_WRITE",
    },
    keep_with_network = {           -- ... except these when the container has a network (sshd)
        "SYS_CHROOT", "NET_BIND_SERVICE", "AUDIT_WRITE",
    },
    nofile = 1024,                  -- open files, soft and hard (INGInious: agent limit / slots)
    max_output_bytes = MiB_bytes(128), -- all a job's container may send (result, archive, output);
                                       -- a job of the benchmark writes 50 MB of output
    max_frame_bytes = MiB_bytes(128),  -- one message from the container (the archive travels in one)
    max_students = 8,               -- student containers one job may have alive at once
                                    -- (each may use its parent's memory; agent cap: 64)
    max_students_total = 512,       -- student containers one job may start in all (agent cap: 4096)
    student_pids_limit = false,     -- optional: processes of a student container (false: pids_limit),
                                    -- e.g. 256 for stricter student containers
}, ..., "hardening.lua defaults")
schema.check_keys(defaults, {
    "pids_limit", "no_new_privileges", "cap_drop", "keep_with_network", "nofile", "max_output_bytes",
    "max_frame_bytes", "max_students", "max_students_total", "student_pids_limit",
}, "hardening.lua defaults")

local function caps_to_drop(network)
    local keep = {}
    if network then
        for _, cap in ipairs(defaults.keep_with_network) do keep[cap] = true end
    end
    local out = {}
    for _, cap in ipairs(defaults.cap_drop) do
        if not keep[cap] then out[#out + 1] = cap end
    end
    return out
end

local function pids_limit(req)
    if req.student and defaults.student_pids_limit then
        return defaults.student_pids_limit
    end
    return defaults.pids_limit
end

local function harden(req)
    local out = {
        pids_limit = pids_limit(req),
        no_new_privileges = defaults.no_new_privileges,
        cap_drop = caps_to_drop(req.network == true),
        nofile_soft = defaults.nofile,
        nofile_hard = defaults.nofile,
        max_output_bytes = defaults.max_output_bytes,
        max_frame_bytes = defaults.max_frame_bytes,
    }
    if not req.student then -- only a grading container starts student containers
        out.max_students = defaults.max_students
        out.max_students_total = defaults.max_students_total
    end
    return out
end

return {
    harden = harden,
    examples = {
        harden = {
            { input = { environment = "default", student = false, memory_mib = 200, network = true },
              -- In terms of `defaults`: editing a value keeps this check meaningful; it
              -- checks that a networked container keeps what sshd needs.
              output = { pids_limit = defaults.pids_limit,
                         no_new_privileges = defaults.no_new_privileges,
                         cap_drop = caps_to_drop(true),
                         nofile_soft = defaults.nofile, nofile_hard = defaults.nofile,
                         max_output_bytes = defaults.max_output_bytes,
                         max_frame_bytes = defaults.max_frame_bytes,
                         max_students = defaults.max_students,
                         max_students_total = defaults.max_students_total } },
        },
    },
}
