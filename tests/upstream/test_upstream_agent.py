"""proctord grades with INGInious's own grading image (tests/upstream/build.sh):
INGInious's runner, feedback tools, Python API, run_student library and
intern, and its SSH server; then the same course under INGInious's Python
agent and under proctord, compared field by field (issue 9)."""
import io
import os
import subprocess
import tarfile
import tempfile

import pytest

import harness

HERE = os.path.dirname(os.path.abspath(__file__))
COURSE = "up"
STUDENT_TEXT = ("out=hello from the student echo=0 stdin=piped in seven=7 cpu=253 mem=252 "
                "err=254")
CASES = [
    ("bash_grader", {"answer": "forty-two"}, True),
    ("ipython_grader", {"answer": "forty-two"}, False),
    ("ipython_grader", {"answer": "nine"}, True),
    ("student", {}, False),
    ("upload", {"report": {"filename": "r.txt", "value": b"one\ntwo\n"}}, False),
    ("cpu", {}, False),
    ("wall", {}, False),
    ("memory", {}, False),
    ("network", {}, False),
    ("flood", {}, True),
]


@pytest.fixture(scope="module", autouse=True)
def upstream_image():
    harness.require_docker()
    # Cached after the first build (upstream.image builds it cold).
    subprocess.run([os.path.join(HERE, "build.sh")], check=True)


@pytest.fixture(scope="module")
def tasks_dir():
    d = tempfile.mkdtemp(prefix="proctor-up-tasks-")
    os.symlink(os.path.join(HERE, "courses", COURSE), os.path.join(d, COURSE))
    yield d
    harness.cleanup_dir(d)


def archive_files(blob):
    """{name: content} of an archive's regular files."""
    if blob is None:
        return None
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
        return {m.name.lstrip("./"): tar.extractfile(m).read() for m in tar if m.isfile()}


def grade_all(agent, tasks_dir):
    c = harness.Cluster(agent=agent, tasks=tasks_dir, concurrency=2,
                        friendly_name="up-%s" % agent)
    with c:
        c.wait_environment("docker", "upstream")
        c.wait_environment("docker", "upstream-student")
        jobs = [c.submit(COURSE, task, data, debug=debug) for task, data, debug in CASES]
        results = [j.wait(300) for j in jobs]
    if agent == "proctord":
        assert not harness.containers(c.agent_label())
    harness.cleanup_dir(c.workdir)
    return results


@pytest.fixture(scope="module")
def outcomes(tasks_dir):
    return grade_all("python", tasks_dir), grade_all("proctord", tasks_dir)


def test_proctord_grades_with_inginious_s_image(outcomes):
    bash, py_ok, py_failed, student, upload, cpu, wall, memory, network, flood = outcomes[1]
    assert bash["result"] == ("failed", "answer=forty-two user=student"), bash
    assert bash["grade"] == 42.5
    assert list(bash["problems"]) == ["q3", "q1", "q2"]
    assert bash["problems"]["q1"] == ("success", "q1 fine")
    assert bash["state"] == "seen:forty-two"
    assert archive_files(bash["archive"]) == {"out/answer.txt": b"forty-two\n",
                                              "two.txt": b"two\n"}
    assert "to stdout: forty-two" in bash["stdout"] and "to stderr: student" in bash["stderr"]
    assert py_ok["result"] == ("success", "python grader: forty-two"), py_ok
    assert py_ok["grade"] == 100.0 and py_ok["state"] == "py:forty-two"
    assert py_ok["problems"] == {"q1": ("success", "q1 from python")}
    assert py_ok["custom"] == {"lang": "en"}
    assert py_failed["result"] == ("failed", "python grader: nine"), py_failed
    assert py_failed["grade"] == 12.5 and "python sees nine" in py_failed["stdout"]
    # INGInious's own run_student library and intern, through proctord.
    assert student["result"] == ("success", STUDENT_TEXT), student
    assert upload["result"] == ("success", "got r.txt with 2 lines"), upload
    assert cpu["result"] == ("timeout", ""), cpu
    assert wall["result"] == ("timeout", ""), wall
    assert memory["result"] == ("overflow", ""), memory
    assert network["result"] == ("success", "share-network: same; default: different"), network
    assert flood["result"] == ("success", "flooded") and flood["stdout"] == "x" * (2 << 20)


def test_kill_on_inginious_s_image(tasks_dir):
    c = harness.Cluster(tasks=tasks_dir, concurrency=1, friendly_name="up-kill")
    with c:
        c.wait_environment("docker", "upstream")
        res = c.submit(COURSE, "wall", {"@state": "kept"})
        c.agent.wait_log(r"job %s: container \w+ started" % res.job_id, 60)
        c.kill(res)
        r = res.wait(60)
    assert r["result"] == ("killed", ""), r
    assert r["state"] == "kept"
    assert not harness.containers(c.agent_label())
    harness.cleanup_dir(c.workdir)


@pytest.mark.parametrize("index", range(len(CASES)))
def test_same_outcome_as_the_python_agent(outcomes, index):
    python, proctord = outcomes[0][index], outcomes[1][index]
    task = CASES[index][0]
    for field in ("result", "grade", "problems", "tests", "custom", "state"):
        assert proctord[field] == python[field], (task, field, python[field], proctord[field])
    # Key order too: the backend keeps what the agent sends.
    for field in ("problems", "tests", "custom"):
        assert list(proctord[field]) == list(python[field]), (task, field)
    assert archive_files(proctord["archive"]) == archive_files(python["archive"]), task
    for field in ("stdout", "stderr"):
        # Debian's pyzmq warns on the runner's stderr; both agents pass it on alike.
        assert proctord[field] == python[field], (task, field, python[field], proctord[field])


def ssh_login(host, port, user, password):
    """Logs in with a real OpenSSH client and the password, stays a few seconds
    (the runner's login poll runs once a second), runs `id -u`; its output."""
    with tempfile.TemporaryDirectory() as d:
        askpass = os.path.join(d, "askpass")
        with open(askpass, "w") as f:
            f.write("#!/bin/sh\necho '%s'\n" % password.replace("'", "'\\''"))
        os.chmod(askpass, 0o700)
        env = dict(os.environ, SSH_ASKPASS=askpass, SSH_ASKPASS_REQUIRE="force", DISPLAY="none")
        out = subprocess.run(
            ["setsid", "-w", "ssh", "-tt", "-p", str(port), "-o", "StrictHostKeyChecking=no",
             "-o", "UserKnownHostsFile=/dev/null", "-o", "ConnectTimeout=20",
             "%s@%s" % (user, host)],
            input="sleep 3; echo in-as-$(id -u); exit\n", capture_output=True, text=True,
            env=env, timeout=120)
    return out.stdout + out.stderr


def test_ssh_student_with_a_real_ssh_client(tasks_dir):
    c = harness.Cluster(tasks=tasks_dir, concurrency=1, friendly_name="up-sshstudent",
                        extra_args=["--ssh"])
    got = []
    with c:
        c.wait_environment("docker-ssh", "upstream")
        res = harness.Result()
        task = harness.Task(c.tasks, COURSE, "ssh_student")
        res.job_id = c.client.new_job(0, task, {"@state": "", "@username": "student",
                                                "@lang": "en"}, res, "proctor-tests", False,
                                      lambda *a: got.append(a))
        harness.wait_for(lambda: got, 120, "the student container's ssh information")
        host, port, user, password = got[0]
        assert host == "127.0.0.1" and 64120 <= port <= 64130
        assert "in-as-4242" in ssh_login(host, port, user, password)
        r = res.wait(120)
        assert r["result"] == ("success", "ssh_student returned 0"), r
    assert not harness.containers(c.agent_label())
    harness.cleanup_dir(c.workdir)


def test_ssh_debug_with_a_real_ssh_client(tasks_dir):
    c = harness.Cluster(tasks=tasks_dir, concurrency=1, friendly_name="up-ssh")
    got = []
    with c:
        c.wait_environment("docker", "upstream")
        res = harness.Result()
        task = harness.Task(c.tasks, COURSE, "ssh_debug")
        res.job_id = c.client.new_job(0, task, {"@state": "", "@username": "student",
                                                "@lang": "en"}, res, "proctor-tests", "ssh",
                                      lambda *a: got.append(a))
        harness.wait_for(lambda: got, 120, "the ssh debug information")
        host, port, user, password = got[0]
        assert host == "127.0.0.1" and user == "worker" and 64120 <= port <= 64130
        assert "in-as-4242" in ssh_login(host, port, user, password)
        # The runner never runs the task in this mode: as under the Python agent.
        r = res.wait(120)
        assert r["result"] == ("crash", "No feedback was given !"), r
    assert not harness.containers(c.agent_label())
    harness.cleanup_dir(c.workdir)
