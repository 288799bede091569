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
    harness.require_default_image()


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
        # With the warm pool, as proctord runs by default: each start of the agent
        # draws its own pool labels (pool-<run>-<n>) and its part of the one log
        # (run_log) says which of the containers are its own warm ones.
        super().__init__(tasks=tasks, concurrency=concurrency, friendly_name=name,
                         extra_args=list(extra_args))
        self.log_start = 0
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
        path = os.path.join(self.workdir, "agent.log")
        self.log_start = os.path.getsize(path) if os.path.exists(path) else 0
        return super().start_agent()

    def run_log(self):
        """What the agent's current run has logged (the log is appended to by each start)."""
        with open(self.agent.logpath, "rb") as f:
            f.seek(self.log_start)
            return f.read().decode("utf-8", "replace")

    def labelled(self):
        """{container id (12): org.proctor.job label} of every container of the agent."""
        out = harness.subprocess.run(
            ["docker", "ps", "-a", "--filter", "label=" + self.agent_label(), "--format",
             "{{.ID}} {{.Label \"org.proctor.job\"}}"], capture_output=True, text=True,
            check=True).stdout
        return dict(line.split()[:2] for line in out.splitlines() if len(line.split()) >= 2)

    def own_warm(self, log=None):
        """The current run's warm containers that no job took (waiting or being made):
        what the agent keeps between jobs. A killed run's warm containers are not."""
        log = self.run_log() if log is None else log
        m = re.search(r"warm pool: containers labelled (pool-[0-9a-f]{8})-", log)
        claimed = set(re.findall(r"warm container (\w{12})", log))
        claimed |= set(re.findall(r"container (\w{12}) from the pool", log))  # student parts
        if not m:
            return set()
        return {cid for cid, job in self.labelled().items()
                if job.startswith(m.group(1) + "-") and cid not in claimed}

    def claimed_by(self, log=None):
        """{container id (12): job id} of the warm containers the current run handed out."""
        log = self.run_log() if log is None else log
        pairs = re.findall(r"job (\S+): warm container (\w{12})", log)
        pairs += re.findall(r"job (\S+): student \(ahead\): container (\w{12}) from the pool", log)
        return {cid: job for job, cid in pairs}

    def leftovers(self):
        """The agent's containers but its current run's own warm ones."""
        log = self.run_log()
        own = self.own_warm(log)
        return {cid: job for cid, job in self.labelled().items() if cid not in own}

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
    """No container of the agent is left but the warm ones its current run keeps."""
    try:
        harness.wait_for(lambda: not c.leftovers(), timeout,
                         "no container labelled %s but the current run's warm ones"
                         % c.agent_label())
    except TimeoutError:
        left = c.leftovers()
        out = harness.subprocess.run(
            ["docker", "ps", "-a", "--filter", "label=" + c.agent_label(), "--format",
             "{{.ID}} {{.Status}} {{.Label \"org.proctor.job\"}} {{.Label \"org.proctor.role\"}}"],
            capture_output=True, text=True).stdout
        keys = set(left) | set(left.values())
        about = [line for line in c.agent.log().splitlines()
                 if any(k in line for k in keys) or re.search(
                     r"leftover|stray|said hello|events stream|removing|warm pool", line)]
        about += ["engine: %s %s -> %s" % (r.method, r.path[:90], r.reply_status)
                  for r in c.proxy.seen if any(k in (r.body or b"").decode("latin-1") + r.path
                                               for k in keys)]
        raise AssertionError("left behind: %s\n%s\nagent log about them:\n%s"
                             % (left, out, "\n".join(about[-80:])))


def assert_no_orphans(c, timeout=60):
    """Under load: every container of the agent whose job is answered (or was
    never submitted here, or a killed run's warm one) is removed; the running jobs'
    containers and the current run's warm ones may stay."""
    running = {r.job_id for r in c.jobs if not r.event.is_set()}
    log = c.run_log()
    own = c.own_warm(log)
    claimed = c.claimed_by(log)
    suspects = [cid for cid, job in c.labelled().items()
                if cid not in own and claimed.get(cid, job) not in running]
    harness.wait_for(lambda: not [i for i in suspects if i in c.labelled()],
                     timeout, "the containers of answered jobs (%s) to be removed" % suspects)


def still_grades(c):
    res = c.submit("demo", "hello", HELLO)
    r = res.wait(120)
    assert r["result"][0] == "success", r


@pytest.fixture
def fc(request, tasks_dir):
    name = "faults-" + request.node.name.replace("test_", "").replace("_", "-")[:40]
    # A job answered at its result is never inspected (README "When a job is answered"):
    # the inspect step's faults are met where it happens, at the exit.
    step = getattr(getattr(request.node, "callspec", None), "params", {}).get("step")
    c = FaultCluster(tasks_dir, name,
                     extra_args=["--answer-at-exit"] if step == "GET /containers/{id}/json" else [])
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
        if r.endpoint == "POST /containers/create":
            return r.labels().get("org.proctor.role") == role
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


def reach_phase(c, phase, jobs, own=True):
    """Brings the jobs to `phase` and keeps them there (or returns when they are in it).

    Returns what must be released once the agent is dead."""
    if phase in HELD_STEP:
        # Creating, attaching, or attached with the start asked for and not answered.
        # With the warm pool the first job takes the waiting container and runs; the
        # pool's refill and the other jobs, cold, stop at this step: the agent dies
        # with a job and a warm container half made.
        ep = HELD_STEP[phase]
        rule = hold_rule(c, ep)
        c.proxy.wait_held(endpoint_is(ep), count=len(jobs))
        if own:
            c.proxy.wait_held(lambda r: r.endpoint == ep and role_is(c, "grading")(r))
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
        if not own:
            # Under load the backend may not even hand this job out while the
            # results stay in the pump: any result on the wire will do.
            harness.wait_for(lambda: b"AgentJobDone" in c.pump.held(), 60,
                             "a result to be held in the pump")
            jobs = []
        # Its AgentJobStarted names the job too: the result is the second message
        # that does.
        for res in jobs:
            harness.wait_for(lambda: c.pump.held().count(res.job_id.encode()) >= 2, 60,
                             "the result of %s to be held in the pump" % res.job_id)
    else:
        raise ValueError(phase)
    return rule


HELD_STEP = {"creating": "POST /containers/create",
             "attaching": "POST /containers/{id}/attach",
             "attached": "POST /containers/{id}/start"}


PHASE_TASKS = {
    "creating": ("it", "sleep_long", {"seconds": "2"}),
    "attaching": ("it", "sleep_long", {"seconds": "2"}),
    "attached": ("it", "sleep_long", {"seconds": "2"}),
    "running": ("it", "sleep_long", {"seconds": "30"}),
    "student_starting": ("demo", "student", harness.DEMO_INPUTS["student"]),
    "reporting": ("demo", "hello", HELLO),
}


def kill_in_phase(c, phase, n=2, own=True):
    course, task, inputs = PHASE_TASKS[phase]
    if phase == "reporting":
        # From now on, what proctord sends stays in the pump (a warm job never asks
        # the engine for a start).
        c.pump.hold_up()
    jobs = [c.submit(course, task, inputs) for _ in range(n)]
    rule = reach_phase(c, phase, jobs, own)
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
            kill_in_phase(c, phases[i % len(phases)], n=1, own=False)
            assert_no_orphans(c)
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


# == 2. Docker engine faults through the proxy ==========================================

def once(c, endpoint, action, pred=None):
    """A rule that acts on the first request to `endpoint` (that `pred` accepts)."""
    fired = []

    def rule(r):
        if not fired and r.endpoint == endpoint and (pred is None or pred(r)):
            fired.append(r)
            return action
        return None
    c.proxy.add_rule(rule)
    return fired


def after_fault(c, jobs, timeout=180):
    """No hang: every job answered once; the engine's side: nothing left; and the
    agent goes on grading."""
    for res in jobs:
        res.wait(timeout)
    assert_answered_once(c, timeout)
    assert_nothing_left(c)
    still_grades(c)
    assert_answered_once(c)
    assert c.agent.alive()


ENGINE_STEPS = ["POST /containers/create", "POST /containers/{id}/attach",
                "POST /containers/{id}/start", "POST /containers/{id}/wait",
                "GET /containers/{id}/json", "DELETE /containers/{id}"]


STEP_IDS = {"POST /containers/create": "create", "POST /containers/{id}/attach": "attach",
            "POST /containers/{id}/start": "start", "POST /containers/{id}/wait": "wait",
            "GET /containers/{id}/json": "inspect", "DELETE /containers/{id}": "remove"}


def step_id(ep):
    return STEP_IDS[ep]


@pytest.mark.parametrize("whose", ["job", "pool"])
@pytest.mark.parametrize("step", ENGINE_STEPS, ids=step_id)
@pytest.mark.parametrize("action", ["reset", "reset_after", ("status", 500)],
                         ids=["reset", "answer_lost", "http500"])
def test_engine_fault(fc, step, action, whose):
    """The first request of `step` about a job's own (cold) container, or about a
    container of the warm pool (one being made, waiting, or taken by a job), fails:
    the engine never sees it (reset), does it but its answer is lost (answer_lost),
    or answers 500."""
    fired = once(fc, step, action, role_is(fc, "grading" if whose == "job" else "pool"))
    # A grading container that exits by itself (inspect follows) then a plain one: the
    # first takes the warm container, the second starts cold while the pool refills.
    jobs = [fc.submit("demo", "hello", HELLO), fc.submit("it", "sleep_long", {"seconds": "1"})]
    for res in jobs:
        res.wait(180)
    # Each further pair makes more containers of either kind (the first of two takes the
    # warm container, the second starts cold): until the fault is met.
    for _ in range(4):
        if fired:
            break
        pair = [fc.submit("it", "sleep_long", {"seconds": "1"}) for _ in range(2)]
        jobs += pair
        for res in pair:
            res.wait(180)
    after_fault(fc, jobs)
    assert fired, "the fault was never injected: %s" % fc.proxy.seen


def test_engine_reset_mid_attach_stream(fc):
    """The attach stream (which carries the result) is cut while the job runs."""
    res = fc.submit("it", "sleep_long", {"seconds": "20"})
    fc.agent.wait_log(r"job %s: container \w+ started" % res.job_id, 60)
    cut = fc.proxy.cut(endpoint_is("POST /containers/{id}/attach"))
    assert cut
    r = res.wait(120)
    assert r["result"][0] == "crash", r
    after_fault(fc, [res])


def job_of(c, r):
    """The org.proctor.job label of the container a request is about."""
    if r.endpoint == "POST /containers/create":
        return r.labels().get("org.proctor.job")
    cid = r.container()
    labels = c.proxy.ids.get(cid) or next(
        (v for k, v in list(c.proxy.ids.items()) if cid and k.startswith(cid)), {})
    return labels.get("org.proctor.job")


def test_engine_delay_past_timeouts(tasks_dir):
    """Every answer of the engine held for longer than the agent waits (its Docker
    timeout set to 3 s): a job's create, attach and start (that job crashes, the
    others are graded), and a removal, each in turn."""
    c = FaultCluster(tasks_dir, "faults-delay", extra_args=["--docker-timeout", "3"])
    with c:
        for step in ["POST /containers/create", "POST /containers/{id}/attach",
                     "POST /containers/{id}/start", "DELETE /containers/{id}"]:
            removal = step == "DELETE /containers/{id}"
            fired = once(c, step, "hold", None if removal else role_is(c, "grading"))
            # The first job takes the warm container; the next ones start cold.
            jobs = []
            while not fired and len(jobs) < 6:
                jobs += [c.submit("demo", "hello", HELLO), c.submit("demo", "hello", HELLO)]
                for res in jobs[-2:]:
                    try:
                        res.wait(120)
                    except TimeoutError:
                        raise AssertionError("no answer with %s held" % step)
            assert fired, step
            held = job_of(c, fired[0])
            for res in jobs:
                r = res.values
                if res.job_id == held and not removal:
                    assert r["result"][0] == "crash", (step, r)
                else:
                    assert r["result"][0] == "success", (step, res.job_id, held, r)
            c.proxy.release()
        after_fault(c, list(c.jobs))
        check_agent_log(c)
    assert not harness.containers(c.agent_label())
    harness.cleanup_dir(c.workdir)


def test_engine_gone_30s(fc):
    """The engine goes away for 30 s (connections cut, new ones refused) while jobs
    run and arrive, then comes back."""
    running = fc.submit("it", "sleep_long", {"seconds": "20"})
    fc.agent.wait_log(r"job %s: container \w+ started" % running.job_id, 60)
    fc.proxy.go_away()
    gone_at = time.monotonic()
    during = fc.submit("demo", "hello", HELLO)
    # Both answered while the engine is away: nobody waits for it.
    for res in (running, during):
        r = res.wait(120)
        assert r["result"][0] == "crash", r
    harness.wait_for(lambda: time.monotonic() - gone_at >= 30, 60, "30 s without an engine")
    fc.proxy.come_back()
    after_fault(fc, [running, during])


def test_engine_events_stream_cut(fc):
    """The wait long-poll never answers, so the `die` event is how the agent learns
    the end; the events stream is cut twice while the job runs."""
    fc.proxy.add_rule(lambda r: "hold" if r.endpoint == "POST /containers/{id}/wait" else None)
    res = fc.submit("it", "sleep_long", {"seconds": "3"})
    fc.agent.wait_log(r"job %s: container \w+ started" % res.job_id, 60)
    for _ in range(2):
        before = fc.proxy.count("GET /events")
        assert fc.proxy.cut(endpoint_is("GET /events"))
        harness.wait_for(lambda: fc.proxy.count("GET /events") > before, 30,
                         "the events stream to be reopened")
    r = res.wait(120)
    assert r["result"] == ("success", "slept"), r
    fc.proxy.rules.clear()
    fc.proxy.release()
    after_fault(fc, [res])


def test_engine_docker29_events(fc):
    """Docker 29's events (no `status`, `id`, `from`): the `die` event alone ends a
    job whose wait never answers."""
    fc.proxy.docker29 = True
    fc.proxy.cut(endpoint_is("GET /events"))  # reopened in the new format
    fc.proxy.add_rule(lambda r: "hold" if r.endpoint == "POST /containers/{id}/wait" else None)
    res = fc.submit("it", "sleep_long", {"seconds": "1"})
    r = res.wait(120)
    assert r["result"] == ("success", "slept"), r
    fc.proxy.rules.clear()
    fc.proxy.release()
    after_fault(fc, [res])


def test_engine_oom_event_lost(fc):
    """The `oom` event never reaches the agent: a job whose process was killed for
    memory before its result is `overflow` all the same (its cgroup's count, read when
    the result arrives), not the result the script gave after the kill."""
    fc.proxy.drop_events = {"oom"}
    fc.proxy.cut(endpoint_is("GET /events"))  # reopened, filtered
    res = fc.submit("it", "oom_then_result", {})
    r = res.wait(120)
    assert r["result"] == ("overflow", ""), r
    assert re.search(r"job %s: the kernel killed \d+ of its processes for memory before its "
                     r"answer" % re.escape(res.job_id), fc.agent.log())
    fc.proxy.drop_events = set()
    after_fault(fc, [res])


# == 5. Bad backend input: a hand-made ROUTER ==============================================

class FakeBackend:
    """The backend side of the protocol on a ROUTER we control, to send what the
    real backend never sends and to stop reading."""

    def __init__(self, rcvhwm=None):
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.ROUTER)
        if rcvhwm is not None:
            self.sock.setsockopt(zmq.RCVHWM, rcvhwm)
            self.sock.setsockopt(zmq.RCVBUF, 4096)
        self.sock.setsockopt(zmq.SNDHWM, 0)
        port = self.sock.bind_to_random_port("tcp://127.0.0.1")
        self.addr = "tcp://127.0.0.1:%d" % port
        self.peer = None
        self.got = collections.Counter()  # (type, job_id) -> count

    def recv(self, timeout=30):
        if not self.sock.poll(timeout * 1000):
            raise TimeoutError("nothing from the agent in %ss" % timeout)
        peer, payload = self.sock.recv_multipart()
        self.peer = peer
        msg = msgpack.unpackb(payload, raw=False)
        self.got[(msg.get("@type"), msg.get("job_id"))] += 1
        return msg

    def recv_type(self, wanted, timeout=60, job_id=None):
        deadline = time.monotonic() + timeout
        while True:
            msg = self.recv(max(1, int(deadline - time.monotonic())))
            if msg["@type"] == wanted and (job_id is None or msg.get("job_id") == job_id):
                return msg
            if time.monotonic() > deadline:
                raise TimeoutError(wanted)

    def send_raw(self, payload):
        self.sock.send_multipart([self.peer, payload])

    def send(self, msg):
        self.send_raw(msgpack.packb(msg, use_bin_type=True))

    def ping_pong(self):
        """A round trip: everything sent before the Ping has been read by the agent."""
        before = self.got[("Pong", None)]
        self.send({"@type": "Ping"})

        def ponged():
            # An agent that heard nothing for 10 s (this side was busy reading) reconnects:
            # the Ping went to the connection it left, so ask the new one.
            if self.recv(30)["@type"] == "AgentHello":
                self.send({"@type": "Ping"})
            return self.got[("Pong", None)] > before
        harness.wait_for(ponged, 60, "a Pong")

    def close(self):
        self.sock.close(0)
        self.ctx.term()


def new_job(job_id, course="demo", task="hello", inputdata=None, env="default"):
    return {"job_id": job_id, "course_id": course, "task_id": task, "task_problems": {},
            "inputdata": inputdata if inputdata is not None else dict(HELLO, **{"@state": "st"}),
            "environment_type": "docker", "environment": env,
            "environment_parameters": {"limits": {"time": 10}}, "debug": False,
            "@type": "BackendNewJob"}


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for %d" % pid)


@pytest.fixture
def fake(request, tasks_dir):
    fb = FakeBackend(**getattr(request, "param", {}))
    c = harness.Cluster(tasks=tasks_dir, concurrency=2, friendly_name="faults-fake-%d" % os.getpid())
    c.agent_addr = fb.addr
    # ASan keeps freed blocks in quarantine (256 MiB by default): a small one, so
    # that RSS says what proctord keeps.
    c.agent_env = dict(os.environ, ASAN_OPTIONS=os.environ.get("ASAN_OPTIONS", "") +
                       ":quarantine_size_mb=8:allocator_release_to_os_interval_ms=100")
    c.start_agent()
    try:
        fb.recv_type("AgentHello")
        yield fb, c
    finally:
        print("---- agent log (last lines) ----\n" + "\n".join(c.agent.log().splitlines()[-40:]))
        c.agent.stop()
        fb.close()
    log = check_agent_log(c)
    assert c.agent.popen.returncode == 0, (c.agent.popen.returncode, log[-3000:])
    assert not harness.containers(c.agent_label())
    harness.cleanup_dir(c.workdir)


def grade_through(fb, job_id):
    fb.send(new_job(job_id))
    done = fb.recv_type("AgentJobDone", 120, job_id=job_id)
    assert done["result"][0] == "success", done
    return done


BIG = 8 << 20


def junk_round(fb, n):
    """One round of malformed frames (and one legitimate but large job)."""
    valid = msgpack.packb(new_job("trunc"), use_bin_type=True)
    for cut in range(1, len(valid), max(1, len(valid) // 40)):
        fb.send_raw(valid[:cut])
    for head in (b"\xdf", b"\xdd", b"\xdb", b"\xc6", b"\xc7", b"\xc9"):
        fb.send_raw(head + b"\xff\xff\xff\xff")
    fb.send_raw(b"\x91" * 100000 + b"\xc0")              # nested 100,000 deep
    fb.send_raw(b"\xdd\x00\x10\x00\x00" + b"\xc0" * (1 << 20))  # a million nils
    fb.send_raw(msgpack.packb({"@type": "BackendNewJob", "job_id": "x" * BIG}))
    # A large job for an environment that does not exist: answered at once.
    fb.send(new_job("big-%d" % n, env="nope", inputdata={"blob": b"\x00" * BIG, "@state": ""}))
    fb.recv_type("AgentJobDone", 60, job_id="big-%d" % n)
    fb.ping_pong()


def test_backend_oversized_and_truncated_msgpack(fake):
    fb, c = fake
    junk_round(fb, 0)
    grade_through(fb, "warm")
    warm = rss_kib(c.agent.popen.pid)
    rounds = 15
    for n in range(1, rounds + 1):
        junk_round(fb, n)
    after = rss_kib(c.agent.popen.pid)
    print("proctord RSS after warm-up %d KiB, after %d more rounds %d KiB" % (warm, rounds, after))
    # Each round sends about 30 MiB: kept, 15 rounds would be 450 MiB.
    assert after - warm < 48 * 1024, (warm, after)
    # Larger than the agent takes at all (256 MiB): libzmq drops the connection,
    # the agent connects again and says hello.
    fb.send_raw(b"\xc6" + (257 << 20).to_bytes(4, "big") + b"\x00" * (257 << 20))
    fb.recv_type("AgentHello", 120)
    grade_through(fb, "after")
    assert c.agent.alive()
    for key, n in fb.got.items():
        if key[0] == "AgentJobDone":
            assert n == 1, (key, n)


def test_backend_unknown_message_types(fake):
    fb, c = fake
    for msg in ({"@type": "BackendNewJobs"}, {"@type": 7}, {"@type": None}, {"@type": ""},
                {"@type": "AgentHello", "friendly_name": "me"}, {"@type": "Pong"},
                {"@type": "ClientNewJob", "job_id": "c1"}, {"@type": "BackendJobDone"},
                {"@type": "BackendKillJob"}, {"@type": "BackendKillJob", "job_id": 5},
                {"@type": "BackendNewJob", "job_id": ["x"]}, {"@type": "é" * 1000},
                {"type": "Ping"}, [1, 2, 3], "Ping", 42):
        fb.send_raw(msgpack.packb(msg, use_bin_type=True))
    fb.ping_pong()
    grade_through(fb, "after-unknown")
    assert c.agent.alive()
    assert not [k for k in fb.got if k[0] == "AgentJobDone" and k[1] != "after-unknown"], fb.got


def test_backend_same_job_twice(fake):
    fb, c = fake
    job = new_job("twice", course="it", task="sleep_long", inputdata={"seconds": "3"})
    fb.send(job)
    fb.recv_type("AgentJobStarted", 60, job_id="twice")
    fb.send(job)  # while it runs
    done = fb.recv_type("AgentJobDone", 120, job_id="twice")
    assert done["result"] == ["success", "slept"], done
    # After the round trip and another whole job, no second answer came.
    fb.ping_pong()
    grade_through(fb, "next")
    assert fb.got[("AgentJobDone", "twice")] == 1, fb.got
    assert fb.got[("AgentJobStarted", "twice")] == 1, fb.got
    # Answered at its result, its container is removed just after (a warm job can be
    # quicker than that removal).
    harness.wait_for(lambda: not harness.containers("org.proctor.job=twice"), 30,
                     "the job's container removed")


def test_backend_kill_of_unknown_jobs(fake):
    fb, c = fake
    for i in range(1000):
        fb.send({"job_id": "ghost-%d" % i, "state": "", "@type": "BackendKillJob"})
    fb.ping_pong()
    done = grade_through(fb, "real")
    # A kill for a job that is over, and two for a running one: one answer each.
    fb.send({"job_id": "real", "state": "", "@type": "BackendKillJob"})
    fb.send(new_job("long", course="it", task="sleep_long", inputdata={"seconds": "60"}))
    fb.recv_type("AgentJobStarted", 60, job_id="long")
    c.agent.wait_log(r"job long: container \w+ started", 60)
    for _ in range(2):
        fb.send({"job_id": "long", "state": "kept", "@type": "BackendKillJob"})
    done = fb.recv_type("AgentJobDone", 60, job_id="long")
    assert done["result"][0] == "killed", done
    fb.ping_pong()
    grade_through(fb, "last")
    assert c.agent.alive()
    assert fb.got[("AgentJobDone", "real")] == 1 and fb.got[("AgentJobDone", "long")] == 1, fb.got
    assert not [k for k in fb.got if k[1] and k[1].startswith("ghost")], fb.got


@pytest.mark.parametrize("fake", [{"rcvhwm": 1}], indirect=True)
def test_backend_stops_reading(fake):
    """The backend stops reading while it keeps sending Pings (its high-water mark
    fills, then the agent's): the agent's memory stays bounded, and the result of
    the job that ran meanwhile is not lost."""
    fb, c = fake
    fb.send(new_job("unread", course="it", task="sleep_long", inputdata={"seconds": "2"}))
    fb.recv_type("AgentJobStarted", 60, job_id="unread")
    # From here on, nothing is read.
    base = rss_kib(c.agent.popen.pid)
    pings = msgpack.packb({"@type": "Ping"})
    sent = 0
    while "job unread: success" not in c.agent.log() or sent < 60000:
        for _ in range(1000):
            fb.send_raw(pings)
        sent += 1000
        assert sent < 2000000, "the job never ended"
    peak = rss_kib(c.agent.popen.pid)
    print("proctord RSS %d KiB before, %d KiB after %d unread pings" % (base, peak, sent))
    assert peak - base < 64 * 1024, (base, peak)
    # Reading again: the result is there, once.
    done = fb.recv_type("AgentJobDone", 120, job_id="unread")
    assert done["result"] == ["success", "slept"], done
    fb.ping_pong()
    grade_through(fb, "reading-again")
    assert fb.got[("AgentJobDone", "unread")] == 1
