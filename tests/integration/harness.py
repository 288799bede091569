"""Drive real INGInious parts around an agent: backend, agent process, Python client.

Used by the integration tests, the README demo and the benchmark. Everything here
talks to the real `inginious` package (PyPI, pinned) and the real Docker engine;
nothing is faked. Processes are always stopped on exit, whatever happened.
"""
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_TASKS = os.path.join(ROOT, "examples", "courses")
AGENT_LABEL = "org.proctor.agent"

# Answers for the demo course (examples/courses/demo): correct ones, so that a
# task's outcome depends on the agent, not on the student.
DEMO_INPUTS = {
    "hello": {"script": "echo 'Hello, world!'"},
    "upload": {"report": {"filename": "report.txt",
                          "value": b"This report was graded by proctor.\nSecond line.\n"}},
    "multi": {"sum": "5", "capital": "Brussels", "upper": "tr a-z A-Z"},
    "multi_partial": {"sum": "5", "capital": "Paris", "upper": "tr a-z A-Z"},
    "student": {"sum": "read a b; echo $((a + b))"},
    "memory": {"note": "x"},
    "cpu": {"note": "x"},
    "sleep": {"note": "x"},
}


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout, what):
    """Polls predicate until it is true; raises with `what` on timeout.

    This waits for an observable state (a log line, a message), never a fixed delay.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError("timed out after %ss waiting for %s" % (timeout, what))
        time.sleep(0.02)


class Proc:
    """A child process whose combined output goes to a log file we can search."""

    def __init__(self, name, argv, logdir, env=None, cwd=None):
        self.name = name
        self.argv = argv
        self.logpath = os.path.join(logdir, name + ".log")
        self._log = open(self.logpath, "ab")
        self.popen = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, env=env, cwd=cwd,
                                      start_new_session=True)

    def log(self):
        with open(self.logpath, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def wait_log(self, pattern, timeout=30, count=1):
        rx = re.compile(pattern)

        def seen():
            if self.popen.poll() is not None and len(rx.findall(self.log())) < count:
                raise RuntimeError("%s exited (%s) before logging %r:\n%s" %
                                   (self.name, self.popen.returncode, pattern, self.log()[-4000:]))
            return len(rx.findall(self.log())) >= count
        wait_for(seen, timeout, "%s to log %r" % (self.name, pattern))

    def alive(self):
        return self.popen.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=20):
        if self.popen.poll() is None:
            try:
                os.killpg(self.popen.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait()
        self._log.close()
        return self.popen.returncode


class Task:
    """Duck-typed task for the 0.9.x client API, read from a real task.yaml."""

    def __init__(self, tasks_dir, course, task):
        with open(os.path.join(tasks_dir, course, task, "task.yaml")) as f:
            desc = yaml.safe_load(f) or {}
        self._course, self._task, self._desc = course, task, desc

    def get_course_id(self):
        return self._course

    def get_id(self):
        return self._task

    def get_environment_type(self):
        return self._desc.get("environment_type", "docker")

    def get_environment_id(self):
        return self._desc.get("environment_id", "default")

    def get_environment_parameters(self):
        # The frontend normalises limits like this before sending (spec §12).
        params = dict(self._desc.get("environment_parameters", {}) or {})
        limits = dict(params.get("limits", {}) or {})
        if limits:
            limits = {k: int(v) for k, v in limits.items() if v not in (None, "")}
            limits.setdefault("hard_time", 3 * limits.get("time", 30))
            params["limits"] = limits
        if params.get("run_cmd") == "":
            params["run_cmd"] = None
        return params

    def get_problems_dict(self):
        return self._desc.get("problems", {}) or {}


class Result:
    FIELDS = ("result", "grade", "problems", "tests", "custom", "state", "archive", "stdout",
              "stderr")

    def __init__(self):
        self.event = threading.Event()
        self.values = None
        self.submitted = time.monotonic()
        self.done_at = None

    def __call__(self, *args):
        self.values = dict(zip(self.FIELDS, args))
        self.done_at = time.monotonic()
        self.event.set()

    def wait(self, timeout=120):
        if not self.event.wait(timeout):
            raise TimeoutError("no result after %ss" % timeout)
        return self.values

    @property
    def latency(self):
        return self.done_at - self.submitted


class Cluster:
    """A real backend, one agent and a real Python client, stopped on exit."""

    def __init__(self, agent="proctord", tasks=DEFAULT_TASKS, concurrency=2, policies=None,
                 extra_args=(), build_dir=None, workdir=None, friendly_name=None):
        self.agent_kind = agent
        self.tasks = tasks
        self.concurrency = concurrency
        self.policies = policies
        self.extra_args = list(extra_args)
        self.build_dir = build_dir or os.environ.get("PROCTOR_BUILD", os.path.join(ROOT, "build"))
        self.workdir = workdir or tempfile.mkdtemp(prefix="proctor-it-")
        self.friendly_name = friendly_name or "it-%d" % os.getpid()
        self.agent_addr = "tcp://127.0.0.1:%d" % free_port()
        self.client_addr = "tcp://127.0.0.1:%d" % free_port()
        self.backend = None
        self.agent = None
        self.client = None
        self._backend_starts = 0
        self.agent_env = None  # environment of the agent process (None: inherit)

    # -- processes ---------------------------------------------------------
    def bin(self, name):
        return os.path.join(os.path.dirname(sys.executable), name)

    def start_backend(self):
        self._backend_starts += 1
        self.backend = Proc("backend%d" % self._backend_starts,
                            [self.bin("inginious-backend"), "-v", self.agent_addr,
                             self.client_addr], self.workdir)
        self.backend.wait_log(r"Backend started", 30)

    def agent_argv(self):
        tmp = os.path.join(self.workdir, "agent_tmp")
        if self.agent_kind == "proctord":
            argv = [os.path.join(self.build_dir, "proctord"), "--concurrency",
                    str(self.concurrency), "--friendly-name", self.friendly_name, "--tasks",
                    self.tasks, "--tmpdir", tmp, "--debug-host", "127.0.0.1"]
            if self.policies:
                argv += ["--policies", self.policies]
            # The suite runs with the warm pool (the default), its default environment warm
            # before the first job, and in CI once more without a pool (PROCTOR_TEST_POOL=off).
            if "--no-pool" not in self.extra_args:
                if os.environ.get("PROCTOR_TEST_POOL") == "off":
                    argv += ["--no-pool"]
                else:
                    argv += ["--warm", "docker/default"]
        else:
            argv = [self.bin("inginious-agent-docker"), "--concurrency", str(self.concurrency),
                    "--friendly-name", self.friendly_name, "--tasks", self.tasks, "--tmpdir", tmp,
                    "--debug-host", "127.0.0.1", "--disable-autorestart"]
        return argv + self.extra_args + [self.agent_addr]

    def agent_id(self):
        """proctord's agent id: drawn at its first start, kept in its work directory."""
        with open(os.path.join(self.workdir, "agent_tmp", ".agent-id")) as f:
            return f.read().strip()

    def agent_label(self):
        return "%s=%s" % (AGENT_LABEL, self.agent_id())

    def start_agent(self):
        self.agent = Proc("agent", self.agent_argv(), self.workdir, env=self.agent_env)
        return self.agent

    def start_client(self):
        from inginious.client.client import Client
        from inginious.frontend.arch_helper import start_asyncio_and_zmq
        context, _thread = start_asyncio_and_zmq()
        self.client = Client(context, self.client_addr)
        self.client.start()

    def wait_environment(self, envtype="docker", name="default", timeout=60):
        def ready():
            envs = self.client.get_available_environments() or {}
            return name in envs.get(envtype, ())
        wait_for(ready, timeout, "environment %s/%s to be advertised" % (envtype, name))

    def pool_warmed(self):
        """Whether this cluster's agent is proctord with its default environment warmed."""
        argv = getattr(self.agent, "argv", None) or self.agent_argv()
        return self.agent_kind == "proctord" and "--warm" in argv

    def wait_warm(self, timeout=60):
        """With --warm: waits for the first warm container, so the first job is a warm one."""
        # (A cluster whose agent is started otherwise, e.g. a systemd unit, has no such Proc.)
        if isinstance(self.agent, Proc) and self.pool_warmed():
            self.agent.wait_log(r"pool pool-\S+: container \w+ waiting for a job", timeout)

    def __enter__(self):
        try:
            self.start_backend()
            self.start_agent()
            self.start_client()
            self.wait_environment()
            self.wait_warm()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        if self.client is not None:
            with contextlib.suppress(Exception):
                self.client.close()
            self._stop_client_loop()
        for p in (self.agent, self.backend):
            if p is not None:
                p.stop()

    def _stop_client_loop(self):
        # The 0.9.2 client's close() does nothing: its loop would keep polling a
        # dead backend next to the clusters that follow. Cancel its tasks, then
        # stop the loop (a loop stopped under running tasks spins at exit).
        import asyncio
        loop = getattr(self.client, "_loop", None)
        if loop is None or not loop.is_running():
            return

        async def quiesce():
            me = asyncio.current_task()
            tasks = [t for t in asyncio.all_tasks() if t is not me]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        try:
            asyncio.run_coroutine_threadsafe(quiesce(), loop).result(timeout=10)
        except Exception:  # noqa: BLE001 - only noise would remain
            return
        loop.call_soon_threadsafe(loop.stop)

    def restart_backend(self):
        self.backend.stop(signal.SIGKILL)
        self.start_backend()

    # -- jobs --------------------------------------------------------------
    def submit(self, course, task, inputdata=None, debug=False, priority=0):
        res = Result()
        t = Task(self.tasks, course, task)
        data = {"@username": "student", "@lang": "en", "@state": "", "@attempts": "1"}
        data.update(inputdata or {})
        res.job_id = self.client.new_job(priority, t, data, res, "proctor-tests", debug)
        if res.job_id is None:
            raise RuntimeError("the client refused the job: %r" % (res.values,))
        return res

    def grade(self, course, task, inputdata=None, timeout=120, **kw):
        return self.submit(course, task, inputdata, **kw).wait(timeout)

    def kill(self, res):
        self.client.kill_job(res.job_id)


def containers(label_filter):
    out = subprocess.run(["docker", "ps", "-aq", "--filter", "label=" + label_filter],
                         check=True, capture_output=True, text=True).stdout.split()
    return out


def job_containers(label_filter, agent_log):
    """The containers of label_filter but the warm ones waiting for a job (README: "Warm
    pool"), which the agent keeps between jobs: those its log says wait and no job took."""
    waiting = set(re.findall(r"container (\w{12}) waiting for a job", agent_log))
    waiting -= set(re.findall(r"warm container (\w{12})", agent_log))
    # and the student containers the pool keeps beside them (README: "Student containers
    # started ahead") until a job takes them with its warm container
    waiting |= set(re.findall(r"student container (\w{12}) waiting too", agent_log))
    waiting -= set(re.findall(r"container (\w{12}) from the pool", agent_log))
    return [c for c in containers(label_filter) if c[:12] not in waiting]


def require_default_image():
    """The example images come from examples/environments/build.sh (run by the test command)."""
    out = subprocess.run(["docker", "images", "-q", "--filter",
                          "label=org.inginious.grading.name=default"],
                         check=True, capture_output=True, text=True).stdout
    assert out.strip(), "the default grading image is missing: run examples/environments/build.sh"


def exists(container_id):
    """Whether a container with this id (or id prefix) exists."""
    return bool(subprocess.run(["docker", "ps", "-aq", "--filter", "id=" + container_id],
                               check=True, capture_output=True, text=True).stdout.split())


def grading_container(cluster, job_id):
    """The id (12 digits) of a job's grading container, from proctord's log. A warm one
    (README: "Warm pool") keeps the label org.proctor.job=pool-<run>-<n> it was made with."""
    m = re.search(r"job %s: container (\w{12}) started" % re.escape(job_id), cluster.agent.log())
    return m.group(1) if m else None


def require_docker():
    try:
        subprocess.run(["docker", "info"], check=True, capture_output=True, timeout=30)
    except Exception as e:  # noqa: BLE001 - any failure means the same thing here
        raise SystemExit("these tests need a running Docker engine: %s" % e)


def cleanup_dir(path):
    shutil.rmtree(path, ignore_errors=True)


class SocketProxy:
    """Forwards a unix socket to another (the Docker engine's), byte for byte.

    A fault injector: the agent's engine can be made absent, then present.
    """

    def __init__(self, path, target="/var/run/docker.sock"):
        import threading
        self.path, self.target = path, target
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(path)
        self.listener.listen(64)
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        import threading
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            upstream.connect(self.target)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self):
        self.closed = True
        self.listener.close()
        try:
            os.unlink(self.path)
        except OSError:
            pass
