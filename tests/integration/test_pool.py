"""The warm pool (src/job/pool.c, policies/pool.lua) end to end.

The real INGInious backend and client, proctord and the real Docker engine. A
pooled container is started before its job exists; these tests check that a
job served from it gets exactly its own limits, and that no pooled container
outlives what it is for (kill, new image, policy reload, SIGTERM, SIGKILL and
restart) or is ever handed out once it died.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

import harness

HERE = os.path.dirname(os.path.abspath(__file__))
ROLE = "org.proctor.role"

TASKS = {
    # Reports the limits its container has: memory (cgroup v1 or v2), pids, open files.
    "report": ("""
mem=$(cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max)
pids=$(cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max)
feedback-result success
feedback-msg -m "mem=$mem pids=$pids nofile=$(ulimit -n) marker=$(cat /marker 2>/dev/null)"
""", {"time": 10, "memory": 48}),
    # Holds 40 MB in the shell: more than 32 MiB allows, well within 256 MiB.
    "hog32": ("""
s=$(head -c 40000000 /dev/zero | tr '\\0' a)
feedback-result success
feedback-msg -m "held ${#s}"
""", {"time": 20, "hard_time": 60, "memory": 32}),
    "hog256": ("""
s=$(head -c 40000000 /dev/zero | tr '\\0' a)
feedback-result success
feedback-msg -m "held ${#s}"
""", {"time": 20, "hard_time": 60, "memory": 256}),
    # Burns CPU: its 2 s of CPU count from the claim.
    "burn": ("""
feedback-result failed
while :; do :; done
""", {"time": 2, "hard_time": 30, "memory": 48}),
    # Sleeps 2 s with a 4 s wall limit: fine if the wall clock counts from the claim.
    "nap": ("""
sleep 2
feedback-result success
feedback-msg -m "rested"
""", {"time": 2, "hard_time": 4, "memory": 48}),
    "long": ("""
sleep 60
feedback-result success
""", {"time": 10, "hard_time": 120, "memory": 48}),
    # Two student containers, one after the other.
    "stu2": ("""
a=$(run_student --container student --memory 40 echo one) || exit 1
b=$(run_student --container student --memory 40 echo two) || exit 1
feedback-result success
feedback-msg -m "$a $b"
""", {"time": 10, "hard_time": 60, "memory": 64}),
    # Asks for its student container after 3 s: that container's 2 s wall limit
    # counts from the request, not from when it was started ahead.
    "stu_nap": ("""
sleep 3
printf 'sleep 1\\necho awake\\n' >/task/student/nap.sh
out=$(run_student --container student --memory 40 --time 1 --hard-time 2 sh /task/student/nap.sh)
feedback-result success
feedback-msg -m "rc=$? $out"
""", {"time": 10, "hard_time": 60, "memory": 64}),
    # A student container of 32 MiB holding 40 MB: 252.
    "stu_hog": ("""
cat >/task/student/hog.sh <<'EOF'
s=$(head -c 40000000 /dev/zero | tr '\\0' a)
echo ${#s}
EOF
run_student --container student --memory 32 sh /task/student/hog.sh
rc=$?
feedback-result success
feedback-msg -m "rc=$rc"
""", {"time": 10, "hard_time": 60, "memory": 64}),
    # The memory its student container asks for comes from the input.
    "stu_mem": ("""
out=$(run_student --container student --memory "$(getinput mem)" echo fine)
feedback-result success
feedback-msg -m "rc=$? $out"
""", {"time": 10, "hard_time": 60, "memory": 128}),
    # The same, in an image that does not say its intern is proctor's.
    "stu_plain": ("""
out=$(run_student --container student-plain --memory 40 echo plain)
feedback-result success
feedback-msg -m "rc=$? $out"
""", {"time": 10, "hard_time": 60, "memory": 64}),
}


def write_course(root, envname="default"):
    course = os.path.join(root, "pool")
    os.makedirs(course)
    with open(os.path.join(course, "course.yaml"), "w") as f:
        f.write("accessible: true\nadmins: [admin]\nname: pool tests\n")
    for name, (script, limits) in TASKS.items():
        d = os.path.join(course, name)
        os.makedirs(d)
        with open(os.path.join(d, "task.yaml"), "w") as f:
            f.write("author: proctor tests\nname: %s\nenvironment_id: %s\n"
                    "environment_type: docker\nenvironment_parameters:\n  limits: %s\n"
                    "problems: {}\n" % (name, envname, json.dumps(limits)))
        with open(os.path.join(d, "run"), "w") as f:
            f.write("#!/bin/sh\n" + script)
        os.chmod(os.path.join(d, "run"), 0o755)


@pytest.fixture(scope="module", autouse=True)
def docker_ready():
    harness.require_docker()


@pytest.fixture
def tasks_dir():
    d = tempfile.mkdtemp(prefix="proctor-pool-")
    write_course(d)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def pool_containers(cluster, status="running"):
    """Short ids of the agent's pooled containers in this state, not claimed by a job."""
    out = subprocess.run(["docker", "ps", "-q", "--filter", "label=" + cluster.agent_label(),
                          "--filter", "label=%s=pool" % ROLE, "--filter", "status=" + status],
                         check=True, capture_output=True, text=True).stdout.split()
    claimed = set(re.findall(r"warm container (\w{12})", cluster.agent.log()))
    return [c[:12] for c in out if c[:12] not in claimed]


def waiting(cluster, env="docker/default"):
    """Pooled containers of env the agent says wait for a job, still running, not claimed."""
    ready = set(re.findall(r"container (\w{12}) waiting for a job \(%s\)" % re.escape(env),
                           cluster.agent.log()))
    return [c for c in pool_containers(cluster) if c in ready]


def wait_warm(cluster, n=1, timeout=60, env="docker/default"):
    harness.wait_for(lambda: len(waiting(cluster, env)) >= n, timeout,
                     "%d warm container(s) of %s" % (n, env))
    return waiting(cluster, env)


def served_warm(cluster, res):
    return re.search(r"job %s: warm container (\w{12})" % re.escape(res.job_id),
                     cluster.agent.log())


def all_containers(cluster):
    return [c[:12] for c in harness.containers(cluster.agent_label())]


@pytest.fixture
def cluster(request, tasks_dir):
    name = "pool-" + request.node.name.replace("test_", "").replace("_", "-")[:40]
    c = harness.Cluster(tasks=tasks_dir, concurrency=2, friendly_name=name, extra_args=["-v"])
    with c:
        yield c
        label = c.agent_label()
        c.agent.stop()
        assert not harness.containers(label), "containers left after SIGTERM"


def grade_warm(cluster, task, timeout=120, env="docker/default"):
    """Grades `task` once a warm container waits, and checks the job took it."""
    wait_warm(cluster, env=env)
    res = cluster.submit("pool", task)
    r = res.wait(timeout)
    assert served_warm(cluster, res), "job %s was not served warm" % res.job_id
    return r


def test_warm_job_gets_its_own_limits(cluster):
    # The first job is cold: it tells the pool which environment to warm.
    r = cluster.grade("pool", "report")
    assert r["result"][0] == "success", r
    assert "mem=%d " % (48 << 20) in r["result"][1], r
    # Memory: updated on the claim, and enforced (a hog over 32 MiB is killed,
    # the same hog under 256 MiB is not).
    r = grade_warm(cluster, "hog32")
    assert r["result"] == ("overflow", ""), r
    r = grade_warm(cluster, "hog256")
    assert r["result"] == ("success", "held 40000000"), r
    r = grade_warm(cluster, "report")
    assert re.search(r"mem=%d pids=1024 nofile=1024 " % (48 << 20), r["result"][1]), r
    # CPU time counts from the claim, and is enforced.
    r = grade_warm(cluster, "burn")
    assert r["result"] == ("timeout", ""), r
    # Wall time counts from the claim: this container waited longer than the job's 4 s
    # wall limit before its job came, and the job's 2 s nap still fits.
    ids = wait_warm(cluster)
    started = subprocess.run(["docker", "inspect", "-f", "{{.State.StartedAt}}", ids[0]],
                             check=True, capture_output=True, text=True).stdout.strip()
    assert started, ids
    t0 = time.time()
    harness.wait_for(lambda: time.time() - t0 > 5, 10, "the warm container to wait 5 s")
    r = grade_warm(cluster, "nap")
    assert r["result"] == ("success", "rested"), r


def test_kill_of_a_warm_job(cluster):
    cluster.grade("pool", "report")
    wait_warm(cluster)
    res = cluster.submit("pool", "long", {"@state": "before-kill"})
    cluster.agent.wait_log(r"job %s: warm container" % re.escape(res.job_id), 60)
    cluster.kill(res)
    r = res.wait(60)
    assert r["result"] == ("killed", ""), r
    assert r["state"] == "before-kill"
    m = served_warm(cluster, res)
    harness.wait_for(lambda: m.group(1) not in all_containers(cluster), 30,
                     "the killed job's container to be removed")


def test_warm_container_killed_while_waiting_is_never_handed_out(cluster):
    cluster.grade("pool", "report")
    for _ in range(3):
        victim = wait_warm(cluster)[0]
        subprocess.run(["docker", "kill", victim], check=True, capture_output=True)
        # At once: the job races the agent's news of the death. Whatever wins,
        # the job is graded, and never by the dead container.
        res = cluster.submit("pool", "report")
        r = res.wait(120)
        assert r["result"][0] == "success", r
        m = served_warm(cluster, res)
        assert not (m and m.group(1) == victim) or re.search(
            r"job %s: the warm container could not be used" % re.escape(res.job_id),
            cluster.agent.log()), r
        cluster.agent.wait_log(r"container %.12s ended while waiting|job %s: the warm container "
                               r"could not be used" % (victim, re.escape(res.job_id)), 30)


def build_env_image(tag, envname, marker):
    ctx = tempfile.mkdtemp(prefix="proctor-poolimg-")
    try:
        base = subprocess.run(["docker", "images", "-q", "--filter",
                               "label=org.inginious.grading.name=default"], check=True,
                              capture_output=True, text=True).stdout.split()[0]
        with open(os.path.join(ctx, "Dockerfile"), "w") as f:
            f.write("FROM %s\nLABEL org.inginious.grading.name=%s\n"
                    "RUN echo %s > /marker\n" % (base, envname, marker))
        subprocess.run(["docker", "build", "-q", "-t", tag, ctx], check=True,
                       capture_output=True)
    finally:
        shutil.rmtree(ctx, ignore_errors=True)


def test_new_image_replaces_warm_containers(tasks_dir):
    envname = "pooltest%d" % os.getpid()
    tag = "proctor-test/pool-%d" % os.getpid()
    shutil.rmtree(os.path.join(tasks_dir, "pool"))
    write_course(tasks_dir, envname)
    build_env_image(tag, envname, "first")
    try:
        with harness.Cluster(tasks=tasks_dir, concurrency=2, friendly_name="pool-image",
                             extra_args=["-v"]) as c:
            c.wait_environment(name=envname)
            r = c.grade("pool", "report")
            assert "marker=first" in r["result"][1], r
            old = wait_warm(c, env="docker/" + envname)
            build_env_image(tag, envname, "second")
            # The agent sees images at discovery, which a new registration runs.
            c.restart_backend()
            harness.wait_for(lambda: not set(old) & set(all_containers(c)), 60,
                             "the warm container of the old image to be removed")
            r = grade_warm(c, "report", env="docker/" + envname)
            assert "marker=second" in r["result"][1], r
            label = c.agent_label()
        assert not harness.containers(label)
    finally:
        subprocess.run(["docker", "rmi", "-f", tag], capture_output=True)


def test_policy_reload_replaces_warm_containers(tasks_dir):
    pol = tempfile.mkdtemp(prefix="proctor-poolpol-")
    hard = os.path.join(pol, "hardening.lua")
    with open(hard, "w") as f:
        f.write('return extend("hardening", { defaults = { nofile = 1000 } })\n')
    try:
        with harness.Cluster(tasks=tasks_dir, concurrency=2, friendly_name="pool-reload",
                             policies=pol, extra_args=["-v"]) as c:
            r = c.grade("pool", "report")
            assert "nofile=1000 " in r["result"][1], r
            old = wait_warm(c)
            with open(hard, "w") as f:
                f.write('return extend("hardening", { defaults = { nofile = 2000 } })\n')
            c.agent.popen.send_signal(signal.SIGHUP)
            c.agent.wait_log(r"policies reloaded \(generation 2\)", 30)
            harness.wait_for(lambda: not set(old) & set(all_containers(c)), 60,
                             "the warm container of the old policies to be removed")
            r = grade_warm(c, "report")
            assert "nofile=2000 " in r["result"][1], r
            # Turned off by policy: the pool empties, jobs go cold.
            with open(os.path.join(pol, "pool.lua"), "w") as f:
                f.write('return extend("pool", { defaults = { enabled = false } })\n')
            c.agent.popen.send_signal(signal.SIGHUP)
            c.agent.wait_log(r"policies reloaded \(generation 3\)", 30)
            harness.wait_for(lambda: not pool_containers(c), 60, "the pool to empty")
            res = c.submit("pool", "report")
            assert res.wait(60)["result"][0] == "success"
            assert not served_warm(c, res)
            label = c.agent_label()
        assert not harness.containers(label)
    finally:
        shutil.rmtree(pol, ignore_errors=True)


def test_sigkill_and_restart_leave_no_warm_container(tasks_dir):
    with harness.Cluster(tasks=tasks_dir, concurrency=2, friendly_name="pool-sigkill",
                         extra_args=["-v"]) as c:
        c.grade("pool", "report")
        wait_warm(c)
        label = c.agent_label()
        c.agent.stop(signal.SIGKILL)
        left = harness.containers(label)
        assert left, "SIGKILL should have left the warm container"
        c.start_agent()
        c.agent.wait_log(r"said hello to the backend", 60, count=2)  # the log is appended
        # The backend forgets the dead registration after missed pings (INGInious' rule);
        # a job sent before that could be routed to it.
        c.backend.wait_log(r"does not respond: removing from list", 60)
        # (The new agent warms its own container at once: only the old ones must go.)
        harness.wait_for(lambda: not set(left) & set(harness.containers(label)), 60,
                         "the restarted agent to remove what it left")
        r = c.grade("pool", "report")
        assert r["result"][0] == "success", r
    assert not harness.containers(label)


def test_no_pool_flag(tasks_dir):
    with harness.Cluster(tasks=tasks_dir, concurrency=2, friendly_name="pool-off",
                         extra_args=["-v", "--no-pool"]) as c:
        for _ in range(2):
            res = c.submit("pool", "report")
            assert res.wait(60)["result"][0] == "success"
            assert not served_warm(c, res)
        assert not pool_containers(c, "created") and not pool_containers(c)


# == Student containers started ahead (src/job/job_student.c) ==========================

def aheads(cluster, res):
    """The (socket id, container) of the job's student containers that were started ahead."""
    return re.findall(r"job %s: student container (\S+): (\w{12}) started \(ahead\)"
                      % re.escape(res.job_id), cluster.agent.log())


def ahead_made(cluster, res):
    """The id of the student container started ahead for the job (not from the pool)."""
    m = re.search(r"job %s: student \(ahead\): container (\w{12}) (?:created|started|from)"
                  % re.escape(res.job_id), cluster.agent.log())
    return m.group(1) if m else None


def test_students_started_ahead(cluster):
    # The first job tells the agent that this task asks for two student containers.
    res = cluster.submit("pool", "stu2")
    r = res.wait(120)
    assert r["result"] == ("success", "one two"), r
    assert not aheads(cluster, res), "nothing is known of the task before its first job"
    # The next ones get both ahead: the first with the warm container (the pool pairs a
    # student container with it) or while it starts, the second while the first runs.
    jobs = []
    for _ in range(2):
        res = cluster.submit("pool", "stu2")
        jobs.append(res)
        r = res.wait(120)
        assert r["result"] == ("success", "one two"), r
        assert len(aheads(cluster, res)) == 2, cluster.agent.log()[-4000:]
    # Nothing of the jobs stays: their student containers are removed with them.
    used = [cid for res in jobs for _, cid in aheads(cluster, res)]
    harness.wait_for(lambda: not [c for c in used if harness.exists(c)], 30,
                     "the student containers %s to be removed" % used)


def pool_students(cluster):
    """Student containers the pool keeps beside its warm ones, not handed to a job."""
    made = re.findall(r"pool (pool-\S+): student container (\w{12}) waiting too",
                      cluster.agent.log())
    taken = set(re.findall(r"student container \S+: (\w{12}) started \(ahead\)",
                           cluster.agent.log()))
    return [cid for _, cid in made if cid not in taken]


def test_pool_pairs_a_student_container(cluster):
    cluster.grade("pool", "stu2")
    # Warm containers made from now on carry a student container of their own.
    harness.wait_for(lambda: pool_students(cluster), 60, "a student container in the pool")
    part = pool_students(cluster)[0]
    res = cluster.submit("pool", "stu2")
    r = res.wait(120)
    assert r["result"] == ("success", "one two"), r
    assert served_warm(cluster, res), "the job did not take the warm container"
    assert part in [cid for _, cid in aheads(cluster, res)], (part, aheads(cluster, res))


def cold_then_ahead(cluster, task, want):
    """Grades `task` twice: the first teaches the agent, the second's student container is
    one started ahead. Both give `want`."""
    r = cluster.grade("pool", task)
    assert r["result"] == want, r
    res = cluster.submit("pool", task)
    r = res.wait(120)
    assert aheads(cluster, res), cluster.agent.log()[-4000:]
    assert r["result"] == want, r


def test_student_ahead_limits_count_from_the_request(cluster):
    # Started ahead at least 3 s before the request: with a 2 s wall limit counted
    # from its start it would have been killed (253).
    cold_then_ahead(cluster, "stu_nap", ("success", "rc=0 awake"))
    # Memory: the 32 MiB it was made with are enforced.
    cold_then_ahead(cluster, "stu_hog", ("success", "rc=252"))


def test_student_ahead_that_does_not_fit_goes_cold(cluster):
    r = cluster.grade("pool", "stu_mem", {"mem": "40"})
    assert r["result"] == ("success", "rc=0 fine"), r
    # Made with 40 MiB, as the task's last request got; this one asks for 64.
    res = cluster.submit("pool", "stu_mem", {"mem": "64"})
    r = res.wait(120)
    assert r["result"] == ("success", "rc=0 fine"), r
    assert not aheads(cluster, res)
    cluster.agent.wait_log(r"job %s: the student container started ahead does not fit"
                           % re.escape(res.job_id), 10)


def running(cid):
    out = subprocess.run(["docker", "inspect", "-f", "{{.State.Running}}", cid],
                         capture_output=True, text=True).stdout.strip()
    return out == "true"


def test_student_ahead_killed_while_waiting_is_never_handed_out(cluster):
    cluster.grade("pool", "stu_nap")
    for _ in range(3):
        # Its grader sleeps 3 s before the request: the container started ahead for it
        # (with the warm container, or while it starts) is killed meanwhile.
        res = cluster.submit("pool", "stu_nap")
        harness.wait_for(lambda: ahead_made(cluster, res) and running(ahead_made(cluster, res)),
                         60, "a student container started ahead for job %s" % res.job_id)
        victim = ahead_made(cluster, res)
        subprocess.run(["docker", "kill", victim], check=True, capture_output=True)
        r = res.wait(120)
        assert r["result"] == ("success", "rc=0 awake"), r
        assert victim not in [cid for _, cid in aheads(cluster, res)], r
        cluster.agent.wait_log(r"job %s: a student container started ahead ended unused"
                               % re.escape(res.job_id), 30)


def test_no_student_ahead_without_proctors_intern(tasks_dir):
    """An image not labelled org.proctor.runtime=1 (INGInious's own intern connects to
    /__parent.sock as it starts): its student containers are only made on request."""
    tag = "proctor-test/student-plain"
    subprocess.run(["docker", "build", "-q", "-t", tag, "-"],
                   input="FROM proctor/env-student\nLABEL org.proctor.runtime=0 "
                   "org.inginious.grading.name=student-plain\n", text=True, check=True,
                   capture_output=True)
    try:
        with harness.Cluster(tasks=tasks_dir, concurrency=2, friendly_name="pool-plain",
                             extra_args=["-v"]) as c:
            c.wait_environment(name="student-plain")
            for _ in range(3):
                res = c.submit("pool", "stu_plain")
                r = res.wait(120)
                assert r["result"] == ("success", "rc=0 plain"), r
                assert not aheads(c, res) and not ahead_made(c, res)
            assert "waiting too" not in c.agent.log()
            label = c.agent_label()
        assert not harness.containers(label)
    finally:
        subprocess.run(["docker", "rmi", "-f", tag], capture_output=True)
