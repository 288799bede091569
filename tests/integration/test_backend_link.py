#!/usr/bin/env python3
"""backend_link against the REAL INGInious backend and client.

usage: test_backend_link.py PATH/TO/test_backend_link   (run with the venv's python)

Starts `inginious-backend`, the C test agent (tests/integration/test_backend_link.c)
and the real Python client, then checks: the agent's encodings are byte-identical
to upstream's messages.dump(); the environment reaches the client; a job goes
through with every AgentJobDone field intact; a kill of a held job, a kill of a
job the agent forgot and a kill of an unknown id; pings are answered; after the
backend is killed and restarted the agent notices the silence, says hello again
within ~12 s, and a new job goes through; the backend never dies of a message.
Every wait is on an event or a log line with a timeout; every process is
stopped at the end whatever happens.
"""

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback

AGENT_BIN = None
ENV_TYPE = "docker"
ENV_NAME = "proctor-link-test"
FRIENDLY = "proctor-link-test-agent"

EXPECTED_PROBLEMS = {"q1": ("success", "Bien jou\u00e9"), "q2": ("failed", "bad \ufffd byte")}
EXPECTED_TESTS = {"passed": 3, "ratio": 0.75}
EXPECTED_CUSTOM = {"list": (-7, None, True)}
EXPECTED_ARCHIVE = b"\x1f\x8b\x08\x00\x00\xff"


class TestFailure(Exception):
    pass


def check(cond, what):
    if not cond:
        raise TestFailure(what)
    print("ok:", what, flush=True)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Proc:
    """A child process whose output lines are collected by reader threads."""

    def __init__(self, name, argv):
        self.name = name
        self.lines = []  # (stream, text)
        self.cond = threading.Condition()
        self.p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  stdin=subprocess.DEVNULL, text=True, errors="replace",
                                  start_new_session=True)
        for stream, pipe in (("out", self.p.stdout), ("err", self.p.stderr)):
            threading.Thread(target=self._read, args=(stream, pipe), daemon=True).start()

    def _read(self, stream, pipe):
        for line in pipe:
            with self.cond:
                self.lines.append((stream, line.rstrip("\n")))
                self.cond.notify_all()
        with self.cond:
            self.cond.notify_all()

    def mark(self):
        with self.cond:
            return len(self.lines)

    def find(self, pattern, start=0, stream=None):
        rx = re.compile(pattern)
        with self.cond:
            for i in range(start, len(self.lines)):
                s, text = self.lines[i]
                if (stream is None or s == stream) and rx.search(text):
                    return i, rx.search(text)
        return None

    def count(self, pattern, start=0, stream=None):
        rx = re.compile(pattern)
        with self.cond:
            return sum(1 for s, t in self.lines[start:]
                       if (stream is None or s == stream) and rx.search(t))

    def wait_for(self, pattern, timeout, start=0, stream=None):
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                found = self.find(pattern, start, stream)
                if found:
                    return found[1]
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TestFailure("%s: no line matching %r within %ss" % (self.name, pattern, timeout))
                self.cond.wait(left)

    def wait_count(self, pattern, n, timeout, start=0, stream=None):
        deadline = time.monotonic() + timeout
        with self.cond:
            while self.count(pattern, start, stream) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TestFailure("%s: fewer than %d lines matching %r within %ss"
                                      % (self.name, n, pattern, timeout))
                self.cond.wait(left)

    def alive(self):
        return self.p.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=10):
        if self.p.poll() is None:
            try:
                os.killpg(self.p.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.p.pid, signal.SIGKILL)
                self.p.wait(5)
        return self.p.returncode

    def dump(self):
        with self.cond:
            for s, t in self.lines[-80:]:
                print("  [%s %s] %s" % (self.name, s, t), file=sys.stderr)


def wait_until(pred, timeout, what):
    """Polls a condition owned by another thread (the client's loop)."""
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise TestFailure("timed out waiting for " + what)
        time.sleep(0.05)


def backend_argv(port_a, port_c):
    script = os.path.join(os.path.dirname(sys.executable), "inginious-backend")
    base = [script] if os.path.exists(script) else [sys.executable, "-m", "inginious.scripts.backend"]
    return base + ["-v", "tcp://127.0.0.1:%d" % port_a, "tcp://127.0.0.1:%d" % port_c]


class FakeTask:
    """The six methods the 0.9.x client reads from a task."""

    def get_course_id(self):
        return "course-link"

    def get_id(self):
        return "task-link"

    def get_environment_type(self):
        return ENV_TYPE

    def get_environment_id(self):
        return ENV_NAME

    def get_environment_parameters(self):
        return {"run_cmd": None, "network_grading": False,
                "limits": {"time": 30, "memory": 100, "disk": 100}}

    def get_problems_dict(self):
        return {"q1": {"type": "code", "language": "python"}}


class Job:
    def __init__(self):
        self.done = threading.Event()
        self.values = None
        self.calls = 0
        self.id = None

    def callback(self, *args):
        self.calls += 1
        self.values = args
        self.done.set()


def submit(client, inputdata):
    import inspect
    job = Job()
    params = list(inspect.signature(client.new_job).parameters)
    if params[1] == "task":
        job.id = client.new_job(0, FakeTask(), inputdata, job.callback, "proctor-test")
    else:  # INGInious HEAD: job_info dict
        class Course:
            def get_id(self):
                return "course-link"
        info = {"environment_type": ENV_TYPE, "environment": ENV_NAME,
                "course": Course(), "task": FakeTask()}
        job.id = client.new_job(0, info, inputdata, job.callback, "proctor-test")
    check(job.id is not None, "client accepted the job")
    return job


def check_known_result(job, prev_state):
    check(job.done.wait(20), "job %s finished" % job.id)
    result, grade, problems, tests, custom, state, archive, stdout, stderr = job.values
    check(tuple(result) == ("failed", "Main feedback \u2713"), "result %r" % (result,))
    check(isinstance(grade, float) and grade == 87.5, "grade %r is the float 87.5" % (grade,))
    check(problems == EXPECTED_PROBLEMS, "problems %r (tuples, invalid UTF-8 replaced)" % (problems,))
    check(all(isinstance(v, tuple) for v in problems.values()), "problem values are tuples")
    check(tests == EXPECTED_TESTS, "tests %r" % (tests,))
    check(custom == EXPECTED_CUSTOM, "custom %r" % (custom,))
    check(state == prev_state + "+next", "state %r" % (state,))
    check(isinstance(archive, bytes) and archive == EXPECTED_ARCHIVE, "archive %r" % (archive,))
    check(stdout == "out\n" and stderr is None, "stdout %r stderr %r" % (stdout, stderr))


def check_dump():
    """The C encoders produce exactly the bytes upstream's dump() produces."""
    from inginious.common import messages as m
    out = subprocess.run([AGENT_BIN, "--dump"], check=True, capture_output=True, text=True,
                         timeout=30).stdout.split()
    envs = {ENV_TYPE: {ENV_NAME: {"id": "sha256:0123456789abcdef", "title": ENV_NAME,
                                  "created": 1700000000, "ports": [], "runtime": "runc",
                                  "advertised": True}}}
    want = [
        m.AgentHello("dump", 3, envs),
        m.AgentJobStarted("job-1"),
        m.AgentJobDone("job-1", ("failed", "Main feedback \u2713"), 87.5,
                       {"q1": ("success", "Bien jou\u00e9"), "q2": ("failed", "bad \ufffd byte")},
                       {"passed": 3, "ratio": 0.75}, {"list": (-7, None, True)}, "st+next",
                       EXPECTED_ARCHIVE, "out\n", None),
        m.AgentJobSSHDebug("job-1", "192.0.2.1", 64120, "worker", "pw"),
        m.Pong(),
    ]
    check(len(out) == len(want), "dump printed %d messages" % len(out))
    for got, msg in zip(out, want):
        check(got == m.dump(msg).hex(), "%s byte-identical to upstream" % type(msg).__name__)
        # And upstream's own loader accepts it.
        check(type(m.load(bytes.fromhex(got))) is type(msg), "%s loads" % type(msg).__name__)


def main():
    global AGENT_BIN
    AGENT_BIN = os.path.abspath(sys.argv[1])
    import logging
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    from inginious.frontend.arch_helper import start_asyncio_and_zmq
    from inginious.client.client import Client

    check_dump()

    port_a, port_c = free_port(), free_port()
    procs = []
    try:
        backend = Proc("backend", backend_argv(port_a, port_c))
        procs.append(backend)
        backend.wait_for(r"Backend started", 30)

        agent = Proc("agent", [AGENT_BIN, "tcp://127.0.0.1:%d" % port_a, FRIENDLY])
        procs.append(agent)
        agent.wait_for(r"^HELLO 1$", 10, stream="out")
        backend.wait_for(r"Agent .* \(%s\) said hello" % FRIENDLY, 10)
        check(True, "backend registered the agent")

        context, _thread = start_asyncio_and_zmq()
        client = Client(context, "tcp://127.0.0.1:%d" % port_c)
        client.start()
        wait_until(lambda: ENV_NAME in client.get_available_environments().get(ENV_TYPE, ()), 20,
                   "the environment in the client")
        check(True, "environment %s/%s visible in the client" % (ENV_TYPE, ENV_NAME))

        # 1. A job with known results.
        job = submit(client, {"q1": "print(1)", "@state": "prev"})
        m = agent.wait_for(r"^JOB (\S+) (\S+) (\S+) debug=(\S+)$", 20, stream="out")
        check(m.group(1) == job.id and m.group(2) == ENV_NAME and
              m.group(3) == "course-link/task-link" and m.group(4) == "off",
              "BackendNewJob fields reached the agent (%s)" % m.group(0))
        check_known_result(job, "prev")
        check(job.calls == 1, "callback called once")

        # 2. A held job killed through the client: BackendKillJob -> "killed".
        held = submit(client, {"q1": "x", "@hold": True, "@state": "s-held"})
        agent.wait_for(r"^HELD %s$" % re.escape(held.id), 20, stream="out")
        client.kill_job(held.id)
        agent.wait_for(r"^KILLED %s$" % re.escape(held.id), 20, stream="out")
        check(held.done.wait(20), "killed job answered")
        result, grade, _p, _t, _c, state, archive, _o, _e = held.values
        check(tuple(result) == ("killed", "") and grade == 0.0 and state == "s-held" and archive is None,
              "kill result %r grade %r state %r" % (result, grade, state))

        # 3. A kill for a job the agent does not know, and one for an id nobody knows.
        forgotten = submit(client, {"q1": "x", "@forget": True})
        agent.wait_for(r"^FORGOT %s$" % re.escape(forgotten.id), 20, stream="out")
        client.kill_job(forgotten.id)
        agent.wait_for(r"^KILL-UNKNOWN %s$" % re.escape(forgotten.id), 20, stream="out")
        client.kill_job("no-such-job")
        backend.wait_for(r"attempted to kill unknown job no-such-job", 10)
        again = submit(client, {"q1": "y", "@state": "again"})
        check_known_result(again, "again")
        check(not forgotten.done.is_set(), "the forgotten job got no result from the agent")

        # 4. Pings are answered: the backend keeps the agent past its ~7 s deadline.
        agent.wait_count(r"received Ping", 9, 30, stream="err")
        check(backend.find(r"does not respond") is None, "agent never dropped for missing pongs")
        check(backend.find(r"Closing due to exception") is None and backend.alive(),
              "backend alive, no 'Closing due to exception'")
        check(agent.find(r"^ERROR", stream="out") is None, "agent reported no error")

        # 5. Backend killed and restarted on the same ports.
        mark = agent.mark()
        backend.stop(signal.SIGKILL)
        agent.wait_for(r"^DISCONNECTED$", 10, start=mark, stream="out")
        restarted = time.monotonic()
        backend2 = Proc("backend2", backend_argv(port_a, port_c))
        procs.append(backend2)
        backend2.wait_for(r"Backend started", 30)
        agent.wait_for(r"^SILENCE$", 15, start=mark, stream="out")
        agent.wait_for(r"^HELLO 2$", 15, start=mark, stream="out")
        backend2.wait_for(r"Agent .* \(%s\) said hello" % FRIENDLY, 15)
        elapsed = time.monotonic() - restarted
        check(elapsed < 14, "agent said hello to the new backend %.1f s after the restart" % elapsed)
        check(forgotten.done.wait(30) and forgotten.values[0][0] == "crash",
              "the client failed the job lost with the old backend")

        wait_until(lambda: ENV_NAME in client.get_available_environments().get(ENV_TYPE, ()), 30,
                   "the environment after the restart")
        after = submit(client, {"q1": "z", "@state": "after"})
        check_known_result(after, "after")
        check(backend2.find(r"Closing due to exception") is None and backend2.alive(),
              "restarted backend alive, no 'Closing due to exception'")
        check(agent.find(r"^ERROR", stream="out") is None, "agent reported no error")

        # 6. Clean stop: SIGTERM -> loop stops -> link freed with linger.
        rc = agent.stop(signal.SIGTERM, timeout=10)
        check(rc == 0, "agent exited with status 0 (%r)" % rc)
        # Its last line may still be in the pipe when the exit status is known: wait for it.
        agent.wait_for(r"^EXIT 0$", 10, stream="out")
        print("PASS", flush=True)
        return 0
    except Exception:
        traceback.print_exc()
        for p in procs:
            p.dump()
        print("FAIL", flush=True)
        return 1
    finally:
        for p in procs:
            p.stop(signal.SIGTERM, timeout=5)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    # The client's loop thread is a daemon; exit without waiting on it.
    code = main()
    sys.stdout.flush()
    os._exit(code)
