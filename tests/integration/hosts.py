"""Several hosts on one machine: network namespaces joined by a bridge.

The scale-out test (test_scale.py) and tools/cluster.sh put the real INGInious
backend and several proctord agents each on a "host" of its own: a network
namespace with its own address, linked by a veth pair to a bridge that lives in
a namespace of its own (the "switch"), so nothing is added to the machine's own
network and Docker's firewall rules never see the traffic. Cutting a host's
cable is `ip link set <port> down` on the switch side: its packets are lost,
silently, as when a cable is pulled. The Docker engine is shared: its unix
socket is a file, and network namespaces do not isolate files.

Everything made here is named after one tag (unique per run) and removed by
Network.close(), which deletes the namespaces (and with them the bridge and
every veth).
"""
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import tempfile

import harness

SUBNET = "10.77.0"  # inside the namespaces only: it collides with nothing outside them
BACKEND_PORT = 2001


def ip(*args):
    """Runs `ip ARGS`, raising with its stderr when it fails."""
    out = subprocess.run(["ip"] + list(args), capture_output=True, text=True, timeout=30)
    if out.returncode != 0:
        raise RuntimeError("ip %s: %s" % (" ".join(args), out.stderr.strip()))
    return out.stdout


def require_netns():
    """These tests make network namespaces: root and iproute2 are needed, and fail loudly."""
    if os.geteuid() != 0:
        raise SystemExit("the scale-out tests need root (network namespaces)")
    try:
        ip("netns", "list")
    except (OSError, RuntimeError) as e:
        raise SystemExit("the scale-out tests need iproute2's ip (tools/setup.sh): %s" % e)


class Host:
    """One network namespace with one address; `argv()` runs a command on it."""

    def __init__(self, name, netns, addr, port):
        self.name, self.netns, self.addr = name, netns, addr
        self.port = port  # its cable's end on the switch

    def argv(self, argv):
        # Only the network namespace changes (ip netns exec would also make a
        # mount namespace): job directories stay where the engine sees them.
        return ["nsenter", "--net=/run/netns/" + self.netns, "--"] + list(argv)


class Network:
    """A switch (a bridge in its own namespace) and hosts cabled to it."""

    def __init__(self, tag=None):
        # The creator's pid in the name: sweep_stale() knows a run that died.
        self.tag = tag or "proctor-%d-%s" % (os.getpid(), secrets.token_hex(2))
        self.switch = self.tag + "-switch"
        self.hosts = {}
        self.netns = []
        try:
            self._add_netns(self.switch)
            ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
            ip("-n", self.switch, "link", "set", "br0", "up")
        except BaseException:
            self.close()
            raise

    def _add_netns(self, name):
        ip("netns", "add", name)
        self.netns.append(name)

    def add_host(self, name):
        index = len(self.hosts) + 1
        host = Host(name, "%s-%s" % (self.tag, name), "%s.%d" % (SUBNET, index), "p%d" % index)
        self._add_netns(host.netns)
        ip("link", "add", "eth0", "netns", host.netns, "type", "veth", "peer", "name", host.port,
           "netns", self.switch)
        ip("-n", self.switch, "link", "set", host.port, "master", "br0", "up")
        ip("-n", host.netns, "addr", "add", host.addr + "/24", "dev", "eth0")
        ip("-n", host.netns, "link", "set", "eth0", "up")
        ip("-n", host.netns, "link", "set", "lo", "up")
        self.hosts[name] = host
        return host

    def cut(self, host):
        """Pulls the host's cable out of the switch: its packets are lost from now on."""
        ip("-n", self.switch, "link", "set", host.port, "down")

    def restore(self, host):
        ip("-n", self.switch, "link", "set", host.port, "up")

    def connections(self, host, port):
        return connections(host, port)

    def close(self):
        """Deletes every namespace made (and so the bridge and the veths); idempotent."""
        errors = []
        for name in reversed(self.netns):
            try:
                ip("netns", "del", name)
            except RuntimeError as e:
                if "No such file" not in str(e):
                    errors.append(str(e))
        self.netns = []
        if errors:
            raise RuntimeError("; ".join(errors))


def connections(host, port):
    """Peer addresses of the TCP connections established to host:port."""
    out = subprocess.run(host.argv(["ss", "-tnH", "state", "established",
                                    "( sport = :%d )" % port]),
                         capture_output=True, text=True, timeout=30, check=True).stdout
    # Recv-Q Send-Q Local:Port Peer:Port; IPv4 may come mapped: [::ffff:10.77.0.2]:39008
    peers = {line.split()[3].rsplit(":", 1)[0].strip("[]") for line in out.splitlines()
             if len(line.split()) >= 4}
    return sorted(p[len("::ffff:"):] if p.startswith("::ffff:") else p for p in peers)


def leftover_netns(prefix="proctor-"):
    return [line.split()[0] for line in ip("netns", "list").splitlines()
            if line.startswith(prefix)]


def sweep_stale():
    """Removes the namespaces of a test run that died (killed by a timeout: no finally).

    Only names proctor-<pid>-<hex>-* whose pid is gone; their processes are killed
    first. tools/cluster.sh's (proctor-cluster-*) outlive their creator on purpose.
    """
    for name in leftover_netns():
        m = re.match(r"proctor-(\d+)-[0-9a-f]+-", name)
        if not m or os.path.exists("/proc/" + m.group(1)):
            continue
        for pid in ip("netns", "pids", name).split():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (OSError, ValueError):
                pass
        try:
            ip("netns", "del", name)
        except RuntimeError:
            pass


class CountedResult(harness.Result):
    """A job's answer, and how many times the client delivered one."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def __call__(self, *args):
        self.calls += 1
        super().__call__(*args)


class Agent:
    """One proctord on its host."""

    def __init__(self, host, proc, tmpdir, friendly_name):
        self.host, self.proc, self.tmpdir, self.name = host, proc, tmpdir, friendly_name

    def agent_id(self):
        with open(os.path.join(self.tmpdir, ".agent-id")) as f:
            return f.read().strip()

    def label(self):
        return "%s=%s" % (harness.AGENT_LABEL, self.agent_id())

    def jobs(self):
        """Ids of the jobs this agent received (its log's `job ID: course/task on ...`)."""
        return set(re.findall(r"job (\S+): [^\s/]+/\S+ on ", self.proc.log()))

    def started(self):
        """Ids of its jobs whose grading container started."""
        return set(re.findall(r"job (\S+): container \w+ started", self.proc.log()))


class HostCluster:
    """The real backend on one host and `agents` proctord, each on a host of its own.

    The client (real INGInious client, in this process) reaches the backend
    through an ipc:// socket: a file, like the engine's. With detach=True
    (tools/cluster.sh), the processes outlive this object: close() is then up to
    `down`, which finds them in the state file.
    """

    def __init__(self, agents=3, concurrency=1, tasks=harness.DEFAULT_TASKS, build_dir=None,
                 workdir=None, tag=None, agent_env=None, extra_args=()):
        self.n_agents = agents
        self.concurrency = concurrency
        self.tasks = tasks
        self.build_dir = build_dir or os.environ.get("PROCTOR_BUILD",
                                                     os.path.join(harness.ROOT, "build"))
        self.workdir = workdir or tempfile.mkdtemp(prefix="proctor-scale-")
        self.tag = tag
        self.agent_env = agent_env
        self.extra_args = list(extra_args)
        self.client_addr = "ipc://" + os.path.join(self.workdir, "client.sock")
        self.net = None
        self.backend = None
        self.backend_host = None
        self.agents = []
        self.client = None
        self._harness = None  # a harness.Cluster used only for its client and job helpers

    @property
    def agent_addr(self):
        return "tcp://%s:%d" % (self.backend_host.addr, BACKEND_PORT)

    def start(self, client=True):
        sweep_stale()
        try:
            self.net = Network(self.tag)
            self.backend_host = self.net.add_host("backend")
            hosts = [self.net.add_host("agent%d" % (i + 1)) for i in range(self.n_agents)]
            py_bin = os.path.dirname(sys.executable)
            self.backend = harness.Proc(
                "backend", self.backend_host.argv([os.path.join(py_bin, "inginious-backend"),
                                                   "-v", self.agent_addr, self.client_addr]),
                self.workdir)
            self.backend.wait_log(r"Backend started", 30)
            for i, host in enumerate(hosts):
                self.start_agent(host, "%s-agent%d" % (self.net.tag, i + 1))
            for a in self.agents:
                self.backend.wait_log(r"Agent .* \(%s\) said hello" % re.escape(a.name), 60)
            if client:
                self.start_client()
        except BaseException:
            self.close()
            raise
        return self

    def start_agent(self, host, name):
        tmpdir = os.path.join(self.workdir, host.name)
        argv = [os.path.join(self.build_dir, "proctord"), "--concurrency", str(self.concurrency),
                "--friendly-name", name, "--tasks", self.tasks, "--tmpdir", tmpdir,
                "--debug-host", host.addr] + self.extra_args + [self.agent_addr]
        agent = Agent(host, harness.Proc(host.name, host.argv(argv), self.workdir,
                                         env=self.agent_env), tmpdir, name)
        self.agents.append(agent)
        return agent

    def start_client(self):
        # harness.Cluster knows how to run and stop the 0.9.2 client and to
        # submit a task; only those parts of it are used.
        c = harness.Cluster(tasks=self.tasks, workdir=self.workdir)
        c.client_addr = self.client_addr
        c.start_client()
        c.wait_environment()
        self._harness = c
        self.client = c.client

    def submit(self, course, task, inputdata=None):
        """Submits through the real client; the answer comes to a CountedResult."""
        res = CountedResult()
        data = {"@username": "student", "@lang": "en", "@state": "", "@attempts": "1"}
        data.update(inputdata or {})
        res.job_id = self.client.new_job(0, harness.Task(self.tasks, course, task), data, res,
                                         "proctor-scale", False)
        if res.job_id is None:
            raise RuntimeError("the client refused the job")
        return res

    def kill(self, res):
        self._harness.kill(res)

    def agent_of(self, job_id):
        owners = [a for a in self.agents if job_id in a.jobs()]
        return owners[0] if len(owners) == 1 else None

    def close(self):
        """Stops the client, the agents (SIGTERM: they drain) and the backend; deletes the network."""
        if self._harness is not None:
            self._harness.close()  # the client only: it has no agent or backend
            self._harness = None
        for p in [a.proc for a in self.agents] + [self.backend]:
            if p is not None:
                p.stop()
        if self.net is not None:
            self.net.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()

    # -- tools/cluster.sh: the state of a detached cluster --------------------------------
    def state(self):
        return {"tag": self.net.tag, "workdir": self.workdir, "client": self.client_addr,
                "backend": {"pid": self.backend.popen.pid, "netns": self.backend_host.netns,
                            "addr": self.backend_host.addr, "log": self.backend.logpath},
                "netns": list(self.net.netns), "switch": self.net.switch,
                "agents": [{"name": a.name, "pid": a.proc.popen.pid, "netns": a.host.netns,
                            "addr": a.host.addr, "port": a.host.port, "log": a.proc.logpath,
                            "tmpdir": a.tmpdir} for a in self.agents]}


def stop_pid(pid, comm, sig=signal.SIGTERM, timeout=60):
    """Signals pid if it is still `comm` (not a reused pid), and waits for it to go."""
    try:
        with open("/proc/%d/comm" % pid) as f:
            if f.read().strip() != comm[:15]:
                return
        os.kill(pid, sig)
    except (OSError, ValueError):
        return
    try:
        harness.wait_for(lambda: not os.path.exists("/proc/%d" % pid), timeout,
                         "%s (pid %d) to exit" % (comm, pid))
    except TimeoutError:
        os.kill(pid, signal.SIGKILL)


def save_state(path, state):
    with open(path, "w") as f:
        json.dump(state, f, indent=1)
