"""Faults (issue 13): proctord killed at every phase, a Docker engine that fails in
every way a proxy on its socket can make it fail, and a backend that sends garbage.

Real parts throughout: the INGInious backend and client, the Docker engine. The
faults come from faultproxy.EngineProxy (on the engine socket: hold, reset, 5xx,
delay, gone, Docker 29 events), faultproxy.BackendPump (holds what the agent sends
to the backend) and, for bad backend input, a hand-made ROUTER (FakeBackend).

What every test asserts: each job submitted through the client gets exactly one
answer (counted per job id on the client's socket), proctord does not hang or
crash, and once the engine is reachable no container labelled with the agent's id
remains. Run one with `ctest -R faults.<name>`; the long kill loop is the `soak`
label (see cmake/faults_tests.cmake).
"""
import collections
import os
import re
import resource
import shutil
import signal
import tempfile
import threading
import time

import msgpack
import pytest
import zmq

import harness
from faultproxy import BackendPump, EngineProxy

HERE = os.path.dirname(os.path.abspath(__file__))
HELLO = harness.DEMO_INPUTS["hello"]

# -- answers, counted where the client receives them ----------------------------

ANSWERS = collections.Counter()


def _count_answers():
    """Every BackendJobDone the client's socket receives, per job id, duplicates
    included (the 0.9.2 client would only log a second one)."""
    import inginious.client._zeromq_client as zc
    from inginious.common.messages import BackendJobDone, ZMQUtils

    class Counting(ZMQUtils):
        @classmethod
        async def recv(cls, socket, skip_first=False):
            msg = await ZMQUtils.recv(socket, skip_first)
            if isinstance(msg, BackendJobDone):
                ANSWERS[msg.job_id] += 1
            return msg
    if zc.ZMQUtils is ZMQUtils:
        zc.ZMQUtils = Counting


_count_answers()


@pytest.fixture(scope="session", autouse=True)
def docker_and_images():
    harness.require_docker()
    out = harness.subprocess.run(["docker", "images", "-q", "--filter",
                                  "label=org.inginious.grading.name=default"],
                                 check=True, capture_output=True, text=True).stdout
    assert out.strip(), "the default grading image is missing: run examples/environments/build.sh"


@pytest.fixture
def tasks_dir():
    d = tempfile.mkdtemp(prefix="proctor-faults-tasks-")
    os.symlink(os.path.join(harness.DEFAULT_TASKS, "demo"), os.path.join(d, "demo"))
    os.symlink(os.path.join(HERE, "courses", "it"), os.path.join(d, "it"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


class FaultCluster(harness.Cluster):
    """A Cluster whose agent reaches the engine through an EngineProxy, and the
    backend through a BackendPump."""

    def __init__(self, tasks, name, concurrency=2, extra_args=()):
        super().__init__(tasks=tasks, concurrency=concurrency, friendly_name=name,
                         extra_args=extra_args)
        self.sockdir = tempfile.mkdtemp(prefix="proctor-faults-sock-")
        self.proxy = EngineProxy(os.path.join(self.sockdir, "docker.sock"))
        self.agent_env = dict(os.environ, DOCKER_HOST="unix://" + self.proxy.path)
        self.pump = None
        self.jobs = []
        self.starts = 0
        self.kills = 0

    def start_backend(self):
        super().start_backend()
        if self.pump is None:
            self.pump = BackendPump(self.agent_addr)

    def agent_argv(self):
        argv = super().agent_argv()
        argv[-1] = self.pump.addr
        return argv

    def start_agent(self):
        self.starts += 1
        return super().start_agent()

    def submit(self, course, task, inputdata=None, **kw):
        res = super().submit(course, task, inputdata, **kw)
        self.jobs.append(res)
        return res

    def hellos(self):
        return self.agent.log().count("said hello")

    def restart_agent(self):
        """SIGKILL, then the same work directory (the same agent id) again."""
        before = self.hellos()
        agent_id = self.agent_id()
        self.agent.stop(signal.SIGKILL)
        self.start_agent()
        self.agent.wait_log(r"said hello", 60, count=before + 1)
        assert self.agent_id() == agent_id

    def close(self):
        super().close()
        if self.pump:
            self.pump.close()
        self.proxy.close()
        shutil.rmtree(self.sockdir, ignore_errors=True)


def check_agent_log(c):
    log = c.agent.log()
    assert "invariant broken" not in log, log[-6000:]
    for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
        assert marker not in log, log[-6000:]
    return log


def assert_answered_once(c, timeout=120):
    """Every job the test submitted got its answer, and exactly one."""
    for res in c.jobs:
        res.wait(timeout)
    # The backend's own view: a second (or late) result from an agent is logged.
    for res in c.jobs:
        assert ANSWERS[res.job_id] == 1, (res.job_id, ANSWERS[res.job_id], res.values)
    blog = c.backend.log()
    late = re.findall(r"Job result (\S+) from (?:non-registered )?agent", blog)
    assert not late, "results the backend did not expect: %s" % late


def assert_nothing_left(c, timeout=60):
    label = c.agent_label()
    harness.wait_for(lambda: not harness.containers(label), timeout,
                     "no container labelled %s" % label)


def still_grades(c):
    res = c.submit("demo", "hello", HELLO)
    r = res.wait(120)
    assert r["result"][0] == "success", r


@pytest.fixture
def fc(request, tasks_dir):
    name = "faults-" + request.node.name.replace("test_", "").replace("_", "-")[:40]
    c = FaultCluster(tasks_dir, name)
    with c:
        try:
            yield c
        finally:
            print("---- agent log (last lines) ----\n" + "\n".join(c.agent.log().splitlines()[-60:]))
            print("---- engine requests ----\n%s" % c.proxy.seen[-60:])
        check_agent_log(c)
    assert c.agent.popen.returncode == 0, "proctord exited with %s" % c.agent.popen.returncode
    assert not harness.containers(c.agent_label()), "containers left behind"
    harness.cleanup_dir(c.workdir)


# == 1. proctord SIGKILLed at every phase ==========================================

def endpoint_is(ep):
    return lambda r: r.endpoint == ep


def role_is(c, role):
    def pred(r):
        cid = r.container()
        labels = c.proxy.ids.get(cid)
        if labels is None:
            labels = next((v for k, v in list(c.proxy.ids.items()) if cid and k.startswith(cid)),
                          {})
        return labels.get("org.proctor.role") == role
    return pred


def hold_rule(c, ep, extra=None):
    def rule(r):
        if r.endpoint == ep and (extra is None or extra(r)):
            return "hold"
        return None
    return c.proxy.add_rule(rule)


def reach_phase(c, phase, jobs):
    """Brings the jobs to `phase` and keeps them there (or returns when they are in it).

    Returns what must be released once the agent is dead."""
    if phase == "creating":
        rule = hold_rule(c, "POST /containers/create")
        c.proxy.wait_held(endpoint_is("POST /containers/create"), count=len(jobs))
    elif phase == "attaching":
        rule = hold_rule(c, "POST /containers/{id}/attach")
        c.proxy.wait_held(endpoint_is("POST /containers/{id}/attach"), count=len(jobs))
    elif phase == "attached":
        # Attached, the start asked for and not answered.
        rule = hold_rule(c, "POST /containers/{id}/start")
        c.proxy.wait_held(endpoint_is("POST /containers/{id}/start"), count=len(jobs))
    elif phase == "running":
        rule = None
        for res in jobs:
            c.agent.wait_log(r"job %s: container \w+ started" % res.job_id, 60)
    elif phase == "student_starting":
        rule = hold_rule(c, "POST /containers/{id}/start", role_is(c, "student"))
        c.proxy.wait_held(role_is(c, "student"), count=len(jobs))
    elif phase == "reporting":
        # The results leave proctord and stay in the pump: the agent is killed
        # with its answers on the wire.
        rule = None
        for res in jobs:
            c.agent.wait_log(r"job %s: container \w+ started" % res.job_id, 60)
        c.pump.hold_up()
        for res in jobs:
            harness.wait_for(lambda: res.job_id.encode() in c.pump.held(), 60,
                             "the result of %s to be held in the pump" % res.job_id)
    else:
        raise ValueError(phase)
    return rule


PHASE_TASKS = {
    "creating": ("it", "sleep_long", {"seconds": "2"}),
    "attaching": ("it", "sleep_long", {"seconds": "2"}),
    "attached": ("it", "sleep_long", {"seconds": "2"}),
    "running": ("it", "sleep_long", {"seconds": "30"}),
    "student_starting": ("demo", "student", harness.DEMO_INPUTS["student"]),
    "reporting": ("demo", "hello", HELLO),
}


def kill_in_phase(c, phase, n=2):
    course, task, inputs = PHASE_TASKS[phase]
    jobs = [c.submit(course, task, inputs) for _ in range(n)]
    rule = reach_phase(c, phase, jobs)
    c.restart_agent()
    if rule:
        c.proxy.remove_rule(rule)
    # What the dead agent asked of the engine happens now, after the new agent
    # has swept: a create that completes late, a start, an attach.
    c.proxy.release()
    if phase == "reporting":
        c.pump.flush_up()
    # The backend forgets the dead agent on its own (six unanswered pings) and
    # fails what it still ran there; until then it may hand it new jobs.
    c.kills += 1
    c.backend.wait_log(r"does not respond: removing from list", 60, count=c.kills)
    return jobs


@pytest.mark.parametrize("phase", list(PHASE_TASKS))
def test_sigkill_at_phase(fc, phase):
    jobs = kill_in_phase(fc, phase)
    for res in jobs:
        r = res.wait(120)
        if phase == "reporting":
            # The results were on the wire: they arrive, once.
            assert r["result"][0] == "success", r
        else:
            assert r["result"] == ("crash", "Agent restarted"), r
    assert_answered_once(fc)
    assert_nothing_left(fc)
    still_grades(fc)
    assert_answered_once(fc)


def kill_loop(c, kills):
    """Continuous load (a feeder keeps jobs queued) and `kills` SIGKILLs, each in
    the next phase of PHASE_TASKS."""
    stop = threading.Event()
    errors = []

    def feed():
        while not stop.is_set():
            try:
                if sum(1 for r in c.jobs if not r.event.is_set()) < 4:
                    c.submit("demo", "hello", HELLO)
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(e)
                return
            stop.wait(0.2)
    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    phases = list(PHASE_TASKS)
    try:
        for i in range(kills):
            kill_in_phase(c, phases[i % len(phases)], n=1)
            assert_nothing_left(c, 60)
    finally:
        stop.set()
        feeder.join(30)
    assert not errors, errors
    assert_answered_once(c, timeout=180)
    assert_nothing_left(c)
    still_grades(c)
    return len(c.jobs)


def test_sigkill_loop(fc):
    n = int(os.environ.get("FAULTS_KILLS", "3"))
    total = kill_loop(fc, n)
    assert fc.starts == n + 1
    print("%d kills, %d jobs, each answered once" % (n, total))
