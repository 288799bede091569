"""proctord end to end: the real INGInious backend and client, the real Docker engine.

Each test starts its own backend, proctord and client (a Cluster), drives real
tasks from examples/courses/demo and tests/integration/courses/it, and checks
what the client receives. After each test no container of that agent remains.
"""
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time

import msgpack
import pytest
import zmq

import harness

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture(scope="session", autouse=True)
def docker_and_images():
    harness.require_docker()
    # The environment images come from examples/environments/build.sh (run by
    # the test command); the "noresult" image is this suite's own.
    # tests/integration/images/* are this suite's own hostile or broken images.
    for name in sorted(os.listdir(os.path.join(HERE, "images"))):
        ctx = tempfile.mkdtemp(prefix="proctor-img-")
        try:
            shutil.copy(os.path.join(HERE, "images", name, "Dockerfile"), ctx)
            shutil.copy(shutil.which("busybox") or "/bin/busybox", os.path.join(ctx, "busybox"))
            subprocess.run(["docker", "build", "-q", "-t", "proctor/test-" + name, ctx],
                           check=True, capture_output=True)
        finally:
            shutil.rmtree(ctx, ignore_errors=True)
    harness.require_default_image()


@pytest.fixture
def tasks_dir():
    d = tempfile.mkdtemp(prefix="proctor-tasks-")
    os.symlink(os.path.join(harness.DEFAULT_TASKS, "demo"), os.path.join(d, "demo"))
    os.symlink(os.path.join(HERE, "courses", "it"), os.path.join(d, "it"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def cluster(request, tasks_dir):
    name = "it-" + request.node.name.replace("test_", "").replace("_", "-")[:40]
    c = harness.Cluster(tasks=tasks_dir, concurrency=2, friendly_name=name)
    with c:
        try:
            yield c
        finally:
            # Shown by pytest only when the test failed.
            print("---- agent log (last lines) ----\n" + "\n".join(c.agent.log().splitlines()[-40:]))
        agent_log = c.agent.log()
    assert "invariant broken" not in agent_log
    for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
        assert marker not in agent_log, agent_log[-6000:]
    assert c.agent.popen.returncode == 0, "proctord exited with %s" % c.agent.popen.returncode
    left = harness.containers(c.agent_label())
    assert not left, "containers left behind: %s" % left
    harness.cleanup_dir(c.workdir)


def test_success(cluster):
    r = cluster.grade("demo", "hello", harness.DEMO_INPUTS["hello"])
    assert r["result"][0] == "success", r
    assert r["grade"] == 100.0 and isinstance(r["grade"], float)


def test_failed_with_problems_and_state(cluster):
    r = cluster.grade("it", "failed", {"q1": "x"})
    assert r["result"] == ("failed", "Not quite"), r
    assert r["grade"] == 25.5
    assert r["problems"] == {"q1": ("failed", "q1 is wrong")}
    assert r["state"] == "attempt-2"


def test_partial_grade_multi(cluster):
    r = cluster.grade("demo", "multi", harness.DEMO_INPUTS["multi_partial"])
    assert r["result"] == ("failed", "2 answer(s) out of 3 are correct."), r
    assert r["grade"] == 66.67, r
    assert r["problems"] == {"sum": ("success", "Correct."),
                             "capital": ("failed", "No, it is Brussels."),
                             "upper": ("success", "Your filter works.")}
    r = cluster.grade("demo", "multi", harness.DEMO_INPUTS["multi"])
    assert r["result"] == ("success", "All three answers are correct."), r
    assert r["grade"] == 100.0


def test_envelope_input_custom_tags_archive(cluster):
    r = cluster.grade("it", "envelope", {"answer": "forty-two", "@state": "old"})
    assert r["result"] == ("success", "answer=forty-two user=student"), r
    assert r["custom"] == {"score": 42}
    assert r["tests"] == {"checked": True}
    assert r["state"] == "seen:forty-two"
    assert isinstance(r["archive"], bytes) and r["archive"][:2] == b"\x1f\x8b"


def test_upload(cluster):
    r = cluster.grade("demo", "upload", harness.DEMO_INPUTS["upload"])
    assert r["result"] == ("success", "Received ``report.txt`` (2 lines); it mentions proctor."), r
    assert isinstance(r["archive"], bytes)


def test_error_default(cluster):
    r = cluster.grade("it", "error_default", {})
    assert r["result"] == ("error", "I forgot to set a result"), r
    assert r["grade"] == 0.0


def test_invalid_result_is_a_crash(cluster):
    r = cluster.grade("it", "invalid_result", {"@state": "keep-me"})
    assert r["result"][0] == "crash", r
    assert r["result"][1].startswith("The grader did not return a readable output : ")
    assert "bad id" in r["result"][1]
    assert r["grade"] == 0.0 and r["state"] == "keep-me"


def test_runner_without_result(cluster):
    cluster.wait_environment("docker", "noresult")
    r = cluster.grade("it", "noresult_task", {})
    assert r["result"][0] == "crash", r
    assert r["result"][1].startswith("The grader did not return a readable output")


def test_timeout_cpu(cluster):
    r = cluster.grade("demo", "cpu", {"@state": "s0"}, timeout=120)
    assert r["result"] == ("timeout", ""), r
    assert r["grade"] == 0.0 and r["state"] == "s0"


def test_timeout_wall(cluster):
    r = cluster.grade("demo", "sleep", {}, timeout=120)
    assert r["result"] == ("timeout", ""), r


def test_overflow_memory(cluster):
    r = cluster.grade("demo", "memory", {}, timeout=120)
    assert r["result"] == ("overflow", ""), r


def test_answered_at_its_result(cluster):
    """The first result answers the job at once; the container, still running, is removed."""
    cluster.wait_environment("docker", "linger")
    res = cluster.submit("it", "answer_first", {"@state": "s1"})
    # Its runner sends a second result, then sleeps 600 s (hard_time 20): judged at the
    # exit, this would be a timeout.
    r = res.wait(60)
    assert r["result"] == ("success", "first answer"), r
    assert r["grade"] == 100.0
    m = re.search(r"job %s: timings .* answered (\d+), exited (\d+)," % re.escape(res.job_id),
                  cluster.agent.log())
    assert m and int(m.group(1)) > 0 and int(m.group(2)) == 0, m
    harness.wait_for(lambda: not harness.containers("org.proctor.job=%s" % res.job_id), 30,
                     "the answered container removed")


def test_the_first_result_is_final(cluster):
    """A second result is ignored, as INGInious ignores it."""
    cluster.wait_environment("docker", "tworesults")
    r = cluster.grade("it", "answer_twice", {})
    assert r["result"] == ("success", "first answer"), r


def test_overflow_before_the_result(cluster):
    """A process killed for memory before the result makes the job `overflow`, whatever
    the result says (read from the cgroup when the result arrives)."""
    r = cluster.grade("it", "oom_then_result", {}, timeout=120)
    assert r["result"] == ("overflow", ""), r


def test_answer_at_exit(tasks_dir):
    """--answer-at-exit: the job is judged when its container exits, as INGInious does;
    the first result is still the one that counts."""
    c = harness.Cluster(tasks=tasks_dir, concurrency=2, friendly_name="it-at-exit",
                        extra_args=["--answer-at-exit"])
    with c:
        c.wait_environment("docker", "linger")
        c.wait_environment("docker", "tworesults")
        r = c.grade("it", "answer_twice", {})
        assert r["result"] == ("success", "first answer"), r
        r = c.grade("it", "answer_first", {}, timeout=120)
        assert r["result"] == ("timeout", ""), r
        r = c.grade("it", "oom_then_result", {}, timeout=120)
        assert r["result"] == ("overflow", ""), r
        assert not re.search(r"timings .* answered [1-9]", c.agent.log())
    assert not harness.containers(c.agent_label())
    harness.cleanup_dir(c.workdir)


def test_run_student(cluster):
    r = cluster.grade("demo", "student", harness.DEMO_INPUTS["student"], timeout=120)
    assert r["result"][0] == "success", r
    assert r["grade"] == 100.0


def test_run_student_return_codes(cluster):
    r = cluster.grade("it", "student_limits", timeout=180)
    assert r["result"] == ("success", "cpu=253 wall=253 mem=252 err=254 seven=7 limit=%d"
                           % (64 << 20)), r


def test_kill_from_client(cluster):
    res = cluster.submit("demo", "sleep", {"@state": "before-kill"})
    cluster.agent.wait_log(r"job %s: container \w+ started" % res.job_id, 60)
    cluster.kill(res)
    r = res.wait(60)
    assert r["result"] == ("killed", ""), r
    assert r["state"] == "before-kill"


def test_kill_removes_student_containers(cluster):
    res = cluster.submit("it", "student_forever", {"@state": "st"})
    # Both the grading and the student container exist (the student one labelled with the job;
    # the grading one too unless it came from the warm pool).
    harness.wait_for(lambda: harness.containers("org.proctor.job=%s" % res.job_id) and
                     harness.containers("org.proctor.role=student") and
                     harness.grading_container(cluster, res.job_id), 60,
                     "the student container to start")
    grading = harness.grading_container(cluster, res.job_id)
    assert harness.exists(grading)
    cluster.kill(res)
    assert res.wait(60)["result"] == ("killed", "")
    harness.wait_for(lambda: not harness.containers("org.proctor.job=" + res.job_id) and
                     not harness.exists(grading), 30, "the job's containers to be removed")


def test_sigterm_drains_running_jobs(cluster):
    res = cluster.submit("demo", "sleep", harness.DEMO_INPUTS["sleep"])
    cluster.agent.wait_log(r"job %s: container \w+ started" % res.job_id, 60)
    cluster.agent.popen.send_signal(signal.SIGTERM)
    cluster.agent.wait_log(r"SIGTERM: draining 1 running job", 10)
    # The running job ends on its own terms (its wall-clock limit), is
    # reported, and only then does proctord exit, cleanly.
    assert res.wait(60)["result"] == ("timeout", "")
    assert cluster.agent.popen.wait(30) == 0
    assert "proctord stopped" in cluster.agent.log()


def test_several_jobs_at_once(cluster):
    jobs = [cluster.submit("demo", "hello", harness.DEMO_INPUTS["hello"]) for _ in range(6)]
    results = [j.wait(180) for j in jobs]
    assert [r["result"][0] for r in results] == ["success"] * 6
    # Two slots: the agent never ran more than two at once, yet all six ran.
    assert cluster.agent.log().count("container") >= 6


def test_backend_restart_says_hello_again(cluster):
    first = cluster.agent.log().count("said hello")
    running = cluster.submit("demo", "sleep", harness.DEMO_INPUTS["sleep"])
    cluster.agent.wait_log(r"job %s: container \w+ started" % running.job_id, 60)
    cluster.restart_backend()
    cluster.agent.wait_log(r"said hello", 40, count=first + 1)
    # The new backend knows nothing of the running job: it was abandoned and
    # its container removed, nothing runs for nobody.
    harness.wait_for(lambda: not harness.containers("org.proctor.job=" + running.job_id), 30,
                     "the abandoned job's container to be removed")
    # The client reconnects to the new backend by itself (its own 10 s rule).
    cluster.wait_environment(timeout=60)
    r = cluster.grade("demo", "hello", harness.DEMO_INPUTS["hello"], timeout=120)
    assert r["result"][0] == "success", r


def test_hostile_runner_flooding_garbage(cluster):
    cluster.wait_environment("docker", "flood")
    r = cluster.grade("it", "flood_task", {"@state": "s"})
    assert r["result"][0] == "crash", r
    assert r["result"][1].startswith(
        "The grader did not return a readable output : application frame too large"), r
    assert r["state"] == "s"
    # The agent is still there for the next student.
    assert cluster.grade("demo", "hello", harness.DEMO_INPUTS["hello"])["result"][0] == "success"


def test_ssh_debug_reaches_the_client(cluster):
    cluster.wait_environment("docker", "sshdebug")
    got = []
    res = harness.Result()
    task = harness.Task(cluster.tasks, "it", "ssh_task")
    res.job_id = cluster.client.new_job(0, task, {"@state": ""}, res, "proctor-tests", "ssh",
                                        lambda *a: got.append(a))
    r = res.wait(60)
    assert r["result"] == ("success", "ssh session over"), r
    host, port, user, password = got[0]
    assert (host, user, password) == ("127.0.0.1", "worker", "s3cret")
    assert 64120 <= port <= 64130


def test_docker_engine_late(tasks_dir):
    """The engine is unreachable when proctord starts: it retries discovery
    and registers its environments once the engine answers."""
    sock = os.path.join(tempfile.mkdtemp(prefix="proctor-sock-"), "docker.sock")
    c = harness.Cluster(tasks=tasks_dir, concurrency=1, friendly_name="it-late")
    c.agent_env = dict(os.environ, DOCKER_HOST="unix://" + sock)
    proxy = None
    try:
        c.start_backend()
        c.start_agent()
        c.start_client()
        c.agent.wait_log(r"environment discovery failed: .*retrying", 30)
        proxy = harness.SocketProxy(sock)
        c.wait_environment(timeout=60)
        r = c.grade("demo", "hello", harness.DEMO_INPUTS["hello"])
        assert r["result"][0] == "success", r
    finally:
        c.close()
        if proxy:
            proxy.close()
    assert not harness.containers(c.agent_label())


def capped_policies(max_output, max_frame):
    pol = tempfile.mkdtemp(prefix="proctor-pol-")
    shutil.copytree(os.path.join(harness.ROOT, "policies"), pol, dirs_exist_ok=True)
    path = os.path.join(pol, "hardening.lua")
    text = open(path).read()
    for key, value in (("max_output_bytes", max_output), ("max_frame_bytes", max_frame)):
        text, n = re.subn(r"%s = MiB_bytes\(\d+\)" % key, "%s = %d" % (key, value), text)
        assert n == 1, key
    open(path, "w").write(text)
    return pol


def test_output_caps_from_policy(tasks_dir):
    pol = capped_policies(max_output=200000, max_frame=65536)
    c = harness.Cluster(tasks=tasks_dir, concurrency=2, policies=pol, friendly_name="it-caps")
    with c:
        c.wait_environment("docker", "chatter")
        big, chatter = c.submit("it", "bigresult"), c.submit("it", "chatter_task")
        r = big.wait(60)
        assert r["result"][0] == "crash", r
        assert re.fullmatch(r"The grader did not return a readable output : application frame "
                            r"too large \(3\d{5} bytes, limit 65536\)", r["result"][1]), r
        r = chatter.wait(60)
        assert r["result"] == ("crash", "The grading container sent more than 200000 bytes; "
                               "it was stopped."), r
        assert c.grade("demo", "hello", harness.DEMO_INPUTS["hello"])["result"][0] == "success"
        assert c.agent.log().count("skipped") <= 5, "one line per bad message floods the log"
    shutil.rmtree(pol, ignore_errors=True)
    assert not harness.containers(c.agent_label())


def test_policy_reload_on_sighup(tasks_dir):
    pol = tempfile.mkdtemp(prefix="proctor-pol-")
    shutil.copytree(os.path.join(harness.ROOT, "policies"), pol, dirs_exist_ok=True)
    limits = os.path.join(pol, "limits.lua")
    original = open(limits).read()
    assert "memory_mib = MiB(200)" in original
    c = harness.Cluster(tasks=tasks_dir, concurrency=1, policies=pol, friendly_name="it-reload")
    with c:
        assert c.grade("it", "memlimit")["result"] == ("success", str(200 << 20))
        # The admin changes the memory default in one file and sends SIGHUP.
        open(limits, "w").write(original.replace("memory_mib = MiB(200)", "memory_mib = MiB(150)"))
        c.agent.popen.send_signal(signal.SIGHUP)
        c.agent.wait_log(r"policies reloaded \(generation 2\)", 30)
        assert c.grade("it", "memlimit")["result"] == ("success", str(150 << 20))
        # A broken file is refused with its file:line; the old policies go on.
        open(limits, "w").write(original + "\nthis is not lua\n")
        c.agent.popen.send_signal(signal.SIGHUP)
        c.agent.wait_log(r"policy reload refused, keeping generation 2: .*limits\.lua:\d+", 30)
        assert c.grade("it", "memlimit")["result"] == ("success", str(150 << 20))
        assert c.agent.alive()
    shutil.rmtree(pol, ignore_errors=True)
    assert not harness.containers(c.agent_label())


# -- faults the real backend cannot produce: a hand-made ROUTER ------------------

class FakeBackend:
    """A ROUTER speaking the backend side of the protocol, to inject what the
    real backend never sends (malformed frames, unknown environments)."""

    def __init__(self):
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.ROUTER)
        port = self.sock.bind_to_random_port("tcp://127.0.0.1")
        self.addr = "tcp://127.0.0.1:%d" % port
        self.peer = None

    def recv(self, timeout=30):
        if not self.sock.poll(timeout * 1000):
            raise TimeoutError("nothing from the agent in %ss" % timeout)
        peer, payload = self.sock.recv_multipart()
        self.peer = peer
        return msgpack.unpackb(payload, raw=False)

    def recv_type(self, wanted, timeout=30):
        deadline = time.monotonic() + timeout
        while True:
            msg = self.recv(max(1, int(deadline - time.monotonic())))
            if msg["@type"] == wanted:
                return msg
            if time.monotonic() > deadline:
                raise TimeoutError(wanted)

    def send_raw(self, payload):
        self.sock.send_multipart([self.peer, payload])

    def send(self, msg):
        self.send_raw(msgpack.packb(msg, use_bin_type=True))

    def close(self):
        self.sock.close(0)
        self.ctx.term()


@pytest.fixture
def fake(tasks_dir):
    fb = FakeBackend()
    c = harness.Cluster(tasks=tasks_dir, concurrency=1, friendly_name="it-fake-%d" % os.getpid())
    c.agent_addr = fb.addr
    c.start_agent()
    try:
        yield fb, c
    finally:
        c.agent.stop()
        fb.close()
        assert not harness.containers(c.agent_label())
        harness.cleanup_dir(c.workdir)


def new_job(job_id, envtype="docker", env="default", course="demo", task="hello"):
    return {"job_id": job_id, "course_id": course, "task_id": task, "task_problems": {},
            "inputdata": {"q1": "x", "@state": "st"}, "environment_type": envtype,
            "environment": env, "environment_parameters": {"limits": {"time": 10}},
            "debug": False, "@type": "BackendNewJob"}


def test_unknown_environment_and_malformed_messages(fake):
    fb, c = fake
    hello = fb.recv_type("AgentHello")
    assert hello["available_job_slots"] == 1
    assert hello["available_environments"]["docker"]["default"]["advertised"] is True
    # Garbage and unexpected messages are logged and dropped, never a crash.
    for junk in (b"", b"\xc1", msgpack.packb([1, 2]), msgpack.packb({"@type": "Nope"}),
                 msgpack.packb({"@type": "BackendNewJob"}),
                 msgpack.packb({"@type": "Ping", "extra": 1})):
        fb.send_raw(junk)
    fb.send({"@type": "Ping"})
    assert fb.recv_type("Pong")["@type"] == "Pong"
    fb.send(new_job("j-unknown-env", env="does-not-exist"))
    assert fb.recv_type("AgentJobStarted")["job_id"] == "j-unknown-env"
    done = fb.recv_type("AgentJobDone")
    assert done["job_id"] == "j-unknown-env"
    assert done["result"] == ["crash", "This environment is not available in this agent. "
                              "Please contact your course administrator."]
    assert done["state"] == "st" and done["grade"] == 0.0
    fb.send(new_job("j-no-task", task="missing-task"))
    fb.recv_type("AgentJobStarted")
    done = fb.recv_type("AgentJobDone")
    assert done["result"][0] == "crash" and done["result"][1].startswith("Task unavailable")
    # A kill for a job nobody knows: nothing is sent back, the agent lives on.
    fb.send({"job_id": "nobody", "state": "", "@type": "BackendKillJob"})
    fb.send({"@type": "Ping"})
    assert fb.recv_type("Pong")["@type"] == "Pong"
    assert c.agent.alive()


def _tree_state(path):
    """Every entry under path with its mode and content: what must not change."""
    state = {}
    for root, dirs, files in os.walk(path):
        for name in [""] + dirs + files:
            p = os.path.join(root, name)
            st = os.lstat(p)
            content = None
            if name in files and os.path.isfile(p):
                with open(p, "rb") as f:
                    content = f.read()
            state[os.path.relpath(p, path)] = (st.st_mode, st.st_uid, content)
    return state


def test_hostile_grader_cannot_reach_the_host(cluster, tasks_dir):
    """A grader swaps every shared path for symlinks to the host (issue 8.1)."""
    import socket
    import threading
    token = "host-secret-%d" % os.getpid()
    hostdir = tempfile.mkdtemp(prefix="proctor-sentinel-")
    os.chmod(hostdir, 0o755)
    os.mkdir(os.path.join(hostdir, "scripts"), 0o755)
    for name in ("secret.txt", "scripts/secret.txt", "hosts"):
        with open(os.path.join(hostdir, name), "w") as f:
            f.write(token + "\n")
    before = _tree_state(hostdir)
    # A host socket: anything that connects to it reached the host.
    sockdir = tempfile.mkdtemp(prefix="proctor-sentinel-sock-")
    hostsock = os.path.join(sockdir, "host.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(hostsock)
    os.chmod(hostsock, 0o777)
    listener.listen(16)
    connections = []

    def accept():
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            connections.append(conn)
    threading.Thread(target=accept, daemon=True).start()

    course = os.path.join(tasks_dir, "sec")
    task = os.path.join(course, "escape")
    shutil.copytree(os.path.join(HERE, "courses", "it", "escape"), task)
    shutil.copy(os.path.join(cluster.build_dir, "test_swapper"), os.path.join(task, "swapper"))
    try:
        r = cluster.grade("sec", "escape", {"hostdir": hostdir, "hostsock": hostsock,
                                            "rounds": "25"}, timeout=240)
        text = r["result"][1]
        seen = repr(r).find(token)
        assert seen < 0, "host file content reached the job: ...%s..." % repr(r)[seen - 300:seen]
        assert not connections, "a container connected to the host socket"
        assert _tree_state(hostdir) == before, "the host directory was changed"
        assert r["result"][0] == "success", r
        # The student containers ran (the race did not just break run_student).
        assert text.count("end") >= 1, r
    finally:
        listener.close()
        for conn in connections:
            conn.close()
        shutil.rmtree(hostdir, ignore_errors=True)
        shutil.rmtree(sockdir, ignore_errors=True)


def test_student_container_caps(tasks_dir):
    """Far more run_student requests than the caps allow (issue 8.2)."""
    import threading
    pol = capped_policies(max_output=1 << 30, max_frame=128 << 20)
    path = os.path.join(pol, "hardening.lua")
    text = open(path).read()
    for key, value in (("max_students", 3), ("max_students_total", 10)):
        text, n = re.subn(r"\b%s = \d+," % key, "%s = %d," % (key, value), text)
        assert n == 1, key
    open(path, "w").write(text)
    c = harness.Cluster(tasks=tasks_dir, concurrency=2, policies=pol, friendly_name="it-students")
    samples = []
    with c:
        res = c.submit("it", "student_flood", {"waves": "4", "per_wave": "12", "serial": "10"})
        done = threading.Event()

        def sample():
            while not done.is_set():
                samples.append(len(harness.containers("org.proctor.job=%s" % res.job_id)) - 1)
        t = threading.Thread(target=sample, daemon=True)
        t.start()
        try:
            r = res.wait(180)
        finally:
            done.set()
            t.join(30)
        log = c.agent.log()
    shutil.rmtree(pol, ignore_errors=True)
    assert r["result"][0] == "success", r
    m = re.fullmatch(r"ok=(\d+) refused=(\d+) answered=(\d+) serial_ok=(\d+) serial_refused=(\d+)",
                     r["result"][1])
    assert m, r
    ok, refused, answered, serial_ok, serial_refused = map(int, m.groups())
    # Every requester got an answer (none hung), some ran, the rest were refused.
    assert answered == 4 * 12 and ok + refused == answered, r
    assert 1 <= ok <= 10, r
    # One at a time, the requests run until the job's total (10) is reached,
    # then each is refused: whatever the waves started, at least one is.
    assert serial_ok + serial_refused == 10 and serial_refused >= 1, r
    assert ok + serial_ok <= 10, r
    # The grading container is one of the job's containers; the rest are students.
    assert samples and max(samples) <= 3, "more student containers alive than the cap: %s" % (
        max(samples),)
    assert "too many student containers at once" in log
    assert "too many student containers for one job" in log
    assert log.count("run_student refused:") <= 10, "one line per refused request floods the log"
    assert not harness.containers(c.agent_label())


def test_two_agents_on_one_engine_leave_each_other_alone(tasks_dir):
    """Same friendly name, default ids; one restarted mid-job (issue 15.1)."""
    a = harness.Cluster(tasks=tasks_dir, concurrency=1, friendly_name="it-same")
    b = harness.Cluster(tasks=tasks_dir, concurrency=1, friendly_name="it-same")
    with a, b:
        assert a.agent_id() != b.agent_id()
        ra = a.submit("it", "sleep_long", {"seconds": "12"})
        rb = b.submit("it", "sleep_long", {"seconds": "30"})
        a.agent.wait_log(r"job %s: container \w+ started" % ra.job_id, 60)
        b.agent.wait_log(r"job %s: container \w+ started" % rb.job_id, 60)
        # B dies mid-job and comes back with the same work directory: it keeps
        # its id, and removes what it left, and only that.
        b_id = b.agent_id()
        b_grading = harness.grading_container(b, rb.job_id)
        a_grading = harness.grading_container(a, ra.job_id)
        b.agent.stop(signal.SIGKILL)
        assert harness.exists(b_grading), "B's container should be left"
        b.start_agent()
        b.agent.wait_log(r"removing leftover container", 60)
        assert b.agent_id() == b_id
        harness.wait_for(lambda: not harness.exists(b_grading), 60,
                         "B's leftover container to be removed")
        assert harness.exists(a_grading)
        assert ra.wait(90)["result"] == ("success", "slept")
        assert "removing leftover" not in a.agent.log()
    for c in (a, b):
        assert not harness.containers(c.agent_label())
        harness.cleanup_dir(c.workdir)


def test_a_work_directory_has_one_agent(cluster):
    """A second proctord on the same --tmpdir is refused before it touches anything."""
    tmp = os.path.join(cluster.workdir, "agent_tmp")
    res = cluster.submit("it", "sleep_long", {"seconds": "3"})
    cluster.agent.wait_log(r"job %s: container \w+ started" % res.job_id, 60)
    out = subprocess.run([os.path.join(cluster.build_dir, "proctord"), "--tmpdir", tmp,
                          "--tasks", cluster.tasks, "tcp://127.0.0.1:1"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode != 0
    assert "another agent (pid %d) is using the work directory" % cluster.agent.popen.pid \
        in out.stderr, out.stderr
    # The running job's directory was left alone.
    assert res.wait(60)["result"] == ("success", "slept")


def test_cli_runs_leave_each_other_alone(tasks_dir):
    """`proctor envs` and a second `proctor run` during a `proctor run` (issue 15.1)."""
    build = os.environ.get("PROCTOR_BUILD", os.path.join(harness.ROOT, "build"))
    proctor = os.path.join(build, "proctor")
    first = subprocess.Popen([proctor, "run", "--tasks", tasks_dir, "it", "sleep_long",
                              "--input", "seconds=10"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        harness.wait_for(lambda: harness.containers("org.proctor.job=local-%d" % first.pid), 60,
                         "the first run's container")
        envs = subprocess.run([proctor, "envs"], capture_output=True, text=True, timeout=60)
        assert envs.returncode == 0, envs.stderr
        second = subprocess.run([proctor, "run", "--tasks", tasks_dir, "demo", "hello", "--input",
                                 "script=echo 'Hello, world!'"], capture_output=True, text=True,
                                timeout=120)
        assert second.returncode == 0, second.stdout + second.stderr
        out, err = first.communicate(timeout=90)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 0, out + err
    assert '"slept"' in out, out
    assert not harness.containers("org.proctor.job=local-%d" % first.pid)


def test_drain_has_a_deadline(tasks_dir):
    """SIGTERM drains for --drain-timeout at most, then stops and reports (issue 15.3)."""
    c = harness.Cluster(tasks=tasks_dir, concurrency=1, friendly_name="it-drain",
                        extra_args=["--drain-timeout", "2"])
    with c:
        res = c.submit("it", "sleep_long", {"seconds": "60", "@state": "kept"})
        c.agent.wait_log(r"job %s: container \w+ started" % res.job_id, 60)
        c.agent.popen.send_signal(signal.SIGTERM)
        c.agent.wait_log(r"SIGTERM: draining 1 running job\(s\) for at most 2 s", 10)
        r = res.wait(60)
        assert r["result"] == ("crash", "The grading agent was shut down before this job could "
                               "finish. Please submit it again."), r
        assert r["state"] == "kept"
        assert c.agent.popen.wait(30) == 0
        assert "drain deadline (2 s) reached: stopping 1 job(s)" in c.agent.log()
    assert not harness.containers(c.agent_label())
    harness.cleanup_dir(c.workdir)


def test_time_caps_are_hard(tasks_dir):
    """--max-hard-time caps what the task and the policies ask for (issue 15.2)."""
    c = harness.Cluster(tasks=tasks_dir, concurrency=1, friendly_name="it-timecap",
                        extra_args=["--max-hard-time", "2"])
    with c:
        # The task asks for 60 s of wall time and sleeps 30 s.
        r = c.grade("it", "sleep_long", {"seconds": "30"}, timeout=60)
        assert r["result"] == ("timeout", ""), r
        assert re.search(r"wall time limit \(2 s\) reached", c.agent.log())
    assert not harness.containers(c.agent_label())
    harness.cleanup_dir(c.workdir)


def test_intern_arguments_follow_the_image_protocol(tasks_dir):
    """0.9.x images (agent_version 3) get `<runtime> <envtype>`, HEAD's (4) none (issue 9)."""
    ctx = tempfile.mkdtemp(prefix="proctor-img-v4-")
    try:
        with open(os.path.join(ctx, "Dockerfile"), "w") as f:
            f.write("FROM proctor/env-student\n"
                    "LABEL org.inginious.grading.name=\"student-v4\" "
                    "org.inginious.grading.agent_version=\"4\"\n")
        subprocess.run(["docker", "build", "-q", "-t", "proctor/test-student-v4", ctx],
                       check=True, capture_output=True)
    finally:
        shutil.rmtree(ctx, ignore_errors=True)
    c = harness.Cluster(tasks=tasks_dir, concurrency=1, friendly_name="it-intern")
    with c:
        c.wait_environment("docker", "student-v4")
        r3 = c.grade("it", "intern_args", {"env": "student"})
        r4 = c.grade("it", "intern_args", {"env": "student-v4"})
    # The runtime is the student environment's (as discovery logged it).
    runtime = re.search(r"docker/student -> \S+ \(runtime (\S+)\)", c.agent.log()).group(1)
    assert r3["result"] == ("success", "rc=0 cmdline=_run_student_intern %s docker" % runtime), r3
    assert r4["result"] == ("success", "rc=0 cmdline=_run_student_intern"), r4
    assert not harness.containers(c.agent_label())
    harness.cleanup_dir(c.workdir)
    subprocess.run(["docker", "rmi", "-f", "proctor/test-student-v4"], capture_output=True)


def test_result_key_order(tasks_dir):
    """problems, tests and custom reach the backend in the grader's order (issue 9)."""
    # The shipped Lua policies (results.lua builds its answer in Lua tables).
    c = harness.Cluster(tasks=tasks_dir, concurrency=1, friendly_name="it-order",
                        policies=os.path.join(harness.ROOT, "policies"))
    with c:
        results = [c.grade("it", "key_order", {}) for _ in range(3)]
    assert not harness.containers(c.agent_label())
    harness.cleanup_dir(c.workdir)
    for r in results:
        assert r["result"][0] == "success", r
        assert list(r["problems"]) == ["q3", "q1", "q10", "q2", "zz", "a7", "m", "b", "q11", "x",
                                       "c4", "k"], r
        assert list(r["custom"]) == ["zeta", "alpha", "nested", "mid"], r
        assert list(r["custom"]["nested"]) == ["z", "b", "m"], r
        assert list(r["custom"]["nested"]["m"]) == ["y", "c"], r
        assert list(r["tests"]) == ["t9", "t1"], r


def test_json_logs(tasks_dir):
    """--log-format json: one JSON object per line, the job's lines carry its id (issue 14)."""
    import json
    c = harness.Cluster(tasks=tasks_dir, concurrency=1, friendly_name="it-jsonlog",
                        extra_args=["--log-format", "json"])
    with c:
        res = c.submit("it", "failed", {"q1": "\x01\"x\\"})
        r = res.wait(120)
        log = c.agent.log()
    assert r["result"][0] == "failed", r
    lines = [json.loads(line) for line in log.splitlines() if line.strip()]
    assert lines and all({"time", "level", "area", "msg"} <= set(o) for o in lines), log[:2000]
    mine = [o for o in lines if o.get("job") == res.job_id]
    assert any("container" in o["msg"] and "started" in o["msg"] for o in mine), mine
    assert any(o["level"] == "info" and o["area"] == "job" and "timings" in o["msg"]
               for o in mine), mine
    assert not harness.containers(c.agent_label())


def test_systemd_notify(tasks_dir):
    """Type=notify: READY once registered, STATUS with the slots in use, the
    watchdog pinged from the loop, RELOADING/READY on SIGHUP, STOPPING on
    SIGTERM (issue 14, the systemd unit). A datagram socket stands in for systemd."""
    import socket
    import threading
    sock_dir = tempfile.mkdtemp(prefix="proctor-notify-")
    path = os.path.join(sock_dir, "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    got, cond = [], threading.Condition()

    def reader():
        while True:
            try:
                data = sock.recv(4096)
            except OSError:
                return
            with cond:
                got.append(data.decode())
                cond.notify_all()
    threading.Thread(target=reader, daemon=True).start()

    def wait_for(pred, what, timeout=30):
        with cond:
            assert cond.wait_for(lambda: pred(list(got)), timeout), "%s: %s" % (what, got)

    c = harness.Cluster(tasks=tasks_dir, concurrency=2, friendly_name="it-notify")
    c.agent_env = dict(os.environ, NOTIFY_SOCKET=path, WATCHDOG_USEC="200000")
    try:
        with c:
            wait_for(lambda g: any(m.startswith("READY=1\nSTATUS=0 of 2 job slot(s) in use")
                                   for m in g), "READY")
            r = c.grade("demo", "hello", harness.DEMO_INPUTS["hello"])
            assert r["result"][0] == "success", r
            wait_for(lambda g: "STATUS=1 of 2 job slot(s) in use" in g and
                     g.index("STATUS=1 of 2 job slot(s) in use") <
                     max(i for i, m in enumerate(g) if m == "STATUS=0 of 2 job slot(s) in use"),
                     "STATUS up then down")
            # At 200 ms, pings every 100 ms: count a few more from now on.
            with cond:
                before = got.count("WATCHDOG=1")
            wait_for(lambda g: g.count("WATCHDOG=1") >= before + 3, "WATCHDOG pings")
            c.agent.popen.send_signal(signal.SIGHUP)
            wait_for(lambda g: "RELOADING=1" in g and any(
                m.startswith("READY=1") for m in g[g.index("RELOADING=1"):]), "RELOADING, READY")
            c.agent.popen.send_signal(signal.SIGTERM)
            wait_for(lambda g: "STOPPING=1\nSTATUS=stopping" in g, "STOPPING")
    finally:
        sock.close()
        shutil.rmtree(sock_dir, ignore_errors=True)
    assert not harness.containers(c.agent_label())


def test_metrics(tasks_dir):
    """--metrics: Prometheus text served from the loop, read with prometheus_client's own
    parser while a job runs and after it (issue 14, metrics)."""
    import urllib.error
    import urllib.request
    from prometheus_client.parser import text_string_to_metric_families
    port = harness.free_port()
    # An admin's limits.lua whose hook raises: each job falls back to the shipped
    # hook, and the failure is counted by hook and kind.
    pol = tempfile.mkdtemp(prefix="proctor-it-metrics-pol-")
    with open(os.path.join(pol, "limits.lua"), "w") as f:
        f.write("return { clamp_limits = function(req) error('broken on purpose') end }\n")
    c = harness.Cluster(tasks=tasks_dir, concurrency=2, friendly_name="it-metrics", policies=pol,
                        extra_args=["--metrics", "127.0.0.1:%d" % port])
    url = "http://127.0.0.1:%d/metrics" % port

    def scrape():
        with urllib.request.urlopen(url, timeout=10) as r:
            assert r.status == 200
            assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            text = r.read().decode()
        out = {}
        for fam in text_string_to_metric_families(text):
            for s in fam.samples:
                out[(s.name, tuple(sorted(s.labels.items())))] = s.value
        return out

    with c:
        res = c.submit("demo", "sleep", {})
        c.agent.wait_log(r"job %s: container \w+ started" % res.job_id, 60)
        m = scrape()
        assert m[("proctord_job_slots", ())] == 2, m
        assert m[("proctord_job_slots_in_use", ())] == 1, m
        assert m[("proctord_containers", (("role", "grading"),))] == 1, m
        assert m[("proctord_backend_connected", ())] == 1, m
        c.kill(res)
        assert res.wait(60)["result"][0] == "killed"
        r = c.grade("demo", "hello", harness.DEMO_INPUTS["hello"])
        assert r["result"][0] == "success", r
        harness.wait_for(lambda: scrape()[("proctord_containers", (("role", "grading"),))] == 0,
                         30, "the containers to be counted as removed")
        m = scrape()
        assert m[("proctord_jobs_total", (("result", "success"),))] == 1, m
        assert m[("proctord_jobs_total", (("result", "killed"),))] == 1, m
        assert m[("proctord_job_slots_in_use", ())] == 0, m
        assert m[("proctord_job_duration_seconds_count", ())] == 2, m
        assert m[("proctord_job_duration_seconds_bucket", (("le", "+Inf"),))] == 2, m
        for phase in ("create", "attach", "start", "run", "report"):
            assert m[("proctord_job_phase_seconds_count", (("phase", phase),))] >= 1, (phase, m)
        assert m[("proctord_container_bytes_received_total", ())] > 0, m
        # One per job, and one when the pool warmed the environment before its first job
        # (--warm: the limits of a job without limits).
        assert m[("proctord_policy_failures_total",
                  (("hook", "clamp_limits"), ("kind", "ERROR")))] == 2 + c.pool_warmed(), m
        # Only GET /metrics.
        try:
            urllib.request.urlopen(url.replace("/metrics", "/other"), timeout=10)
            assert False, "404 expected"
        except urllib.error.HTTPError as e:
            assert e.code == 404
        try:
            urllib.request.urlopen(urllib.request.Request(url, data=b"x", method="POST"),
                                   timeout=10)
            assert False, "405 expected"
        except urllib.error.HTTPError as e:
            assert e.code == 405
    shutil.rmtree(pol, ignore_errors=True)
    assert not harness.containers(c.agent_label())


DEPLOY_TAG = "proctor-it/proctord"


def deploy_image():
    """examples/deploy/build.sh: proctord in a FROM-scratch image, from this build."""
    build = os.environ.get("PROCTOR_BUILD", os.path.join(harness.ROOT, "build"))
    subprocess.run([os.path.join(harness.ROOT, "examples", "deploy", "build.sh"), build,
                    DEPLOY_TAG], check=True, capture_output=True, timeout=300)
    return DEPLOY_TAG


class DeployCluster(harness.Cluster):
    """The agent is the deploy image, run as INGInious's compose runs its agent service:
    BACKEND in the environment, the Docker socket and the work directory mounted (at the
    same path), the tasks read-only."""

    def agent_argv(self):
        tmp = os.path.join(self.workdir, "agent_tmp")
        os.makedirs(tmp, exist_ok=True)
        self.container = "proctor-it-deploy-%d" % os.getpid()
        return ["docker", "run", "--rm", "--name", self.container, "--network", "host",
                "-e", "ASAN_OPTIONS=detect_leaks=0",  # LeakSanitizer needs ptrace
                "-e", "BACKEND=" + self.agent_addr, "-e", "PROCTORD_TMPDIR=" + tmp,
                "-e", "PROCTORD_TASKS=" + self.tasks,
                "-e", "PROCTORD_OPTS=--concurrency 2 --friendly-name it-deploy",
                "-v", "/var/run/docker.sock:/var/run/docker.sock", "-v", "%s:%s" % (tmp, tmp),
                "-v", "%s:%s:ro" % (self.tasks, self.tasks), DEPLOY_TAG]


def test_deploy_image_grades_the_demo_course():
    """The deploy image in place of INGInious's agent service grades the demo course
    through the real backend and client (issue 14, container deployment)."""
    deploy_image()
    c = DeployCluster(tasks=harness.DEFAULT_TASKS, friendly_name="it-deploy")
    try:
        with c:
            for task, inputs in (("hello", harness.DEMO_INPUTS["hello"]),
                                 ("multi", harness.DEMO_INPUTS["multi"])):
                r = c.grade("demo", task, inputs)
                assert r["result"][0] == "success", (task, r)
            log = c.agent.log()
        assert "the same path on the Docker host" in log, log
        assert not harness.containers(c.agent_label())
    finally:
        subprocess.run(["docker", "rm", "-f", getattr(c, "container", "none")],
                       capture_output=True)


def test_deploy_image_refuses_a_work_dir_elsewhere():
    """A work directory mounted at another path than the host's: a clear error, status 1."""
    deploy_image()
    host = tempfile.mkdtemp(prefix="proctor-it-elsewhere-")
    try:
        p = subprocess.run(["docker", "run", "--rm", "-e", "ASAN_OPTIONS=detect_leaks=0",
                            "-e", "BACKEND=tcp://127.0.0.1:1", "-v",
                            "/var/run/docker.sock:/var/run/docker.sock", "-v",
                            "%s:/var/lib/proctord" % host, DEPLOY_TAG],
                           capture_output=True, text=True, timeout=120)
    finally:
        shutil.rmtree(host, ignore_errors=True)
    assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
    want = ("the work directory /var/lib/proctord is %s on the Docker host, and the engine binds "
            "job directories by their host path: mount it at the same path (-v %s:%s)"
            % (host, host, host))
    assert want in p.stdout + p.stderr, p.stdout + p.stderr
