"""From the README to an installed, running, scraped proctord service (issue 14).

Runs the README's "Installing" blocks (those marked `<!-- service-test: NAME -->`) on this
machine, with the three example values replaced by this test's backend, tasks and metrics
address. There is no systemd as PID 1 here, so the `systemctl` lines are played: `sudo` and
`systemctl` are shell functions that record what was asked, and this test then does what
systemd does with the installed unit file and /etc/default/proctord. Needs root (apt-get);
fails loudly when a proctor package is already installed.
"""
import fcntl
import os
import re
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import urllib.request

import harness

README = os.path.join(harness.ROOT, "README.md")
UNIT = "/usr/lib/systemd/system/proctord.service"
STATE_DIR = "/var/lib/proctord"
# The README's example values, replaced by this test's.
EXAMPLE_BACKEND = "tcp://inginious.example.org:2001"
EXAMPLE_TASKS = "/var/lib/inginious/tasks"
EXAMPLE_METRICS = "127.0.0.1:9464"
SYSTEMD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# `sudo` runs its command (this test is root; the machine may have no sudo), `systemctl` records
# its arguments and answers `is-active` from the service this test runs.
SHIMS = r'''
sudo() { "$@"; }
systemctl() {
    echo "$*" >>"$SERVICE_TEST_CALLS"
    if [ "$1" = is-active ]; then cat "$SERVICE_TEST_STATE"; [ "$(cat "$SERVICE_TEST_STATE")" = active ]; fi
}
'''


def readme_blocks():
    """{name: the shell text of the block after `<!-- service-test: name -->`}."""
    with open(README) as f:
        text = f.read()
    blocks = dict(re.findall(r"<!-- service-test: (\w+) -->\n```sh\n(.*?)```", text, re.S))
    assert set(blocks) == {"install", "configure", "start", "check", "reload", "remove"}, blocks
    return blocks


class Shell:
    """Runs README blocks in bash with the shims, recording the systemctl calls."""

    def __init__(self, tmp, substitutions):
        self.calls_path = os.path.join(tmp, "systemctl-calls")
        self.state_path = os.path.join(tmp, "state")
        self.subs = substitutions
        open(self.calls_path, "w").close()
        self.set_state("inactive")

    def set_state(self, state):
        with open(self.state_path, "w") as f:
            f.write(state + "\n")

    def run(self, block):
        for old, new in self.subs.items():
            block = block.replace(old, new)
        open(self.calls_path, "w").close()
        env = dict(os.environ, SERVICE_TEST_CALLS=self.calls_path,
                   SERVICE_TEST_STATE=self.state_path)
        p = subprocess.run(["bash", "-euo", "pipefail", "-c", SHIMS + block], cwd=harness.ROOT,
                           env=env, capture_output=True, text=True, timeout=1500)
        assert p.returncode == 0, "block failed (%d):\n%s\n%s\n%s" % (p.returncode, block, p.stdout,
                                                                      p.stderr[-4000:])
        with open(self.calls_path) as f:
            return p.stdout, f.read().splitlines()


def parse_unit(path):
    """The [Service] settings of a unit file: {key: [values in order]}."""
    out, section = {}, None
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line[0] in "#;":
                continue
            if line.startswith("["):
                section = line
                continue
            if section == "[Service]":
                k, _, v = line.partition("=")
                out.setdefault(k.strip(), []).append(v.strip())
    return out


def parse_env_file(path):
    """systemd's EnvironmentFile: KEY=VALUE lines, comments, one level of quotes."""
    env = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line[0] in "#;":
                continue
            k, _, v = line.partition("=")
            v = v.strip()
            if len(v) >= 2 and v[0] == v[-1] and v[0] in "\"'":
                v = v[1:-1]
            env[k.strip()] = v
    return env


def expand_exec(cmdline, env):
    """systemd's ExecStart expansion: `$VAR` alone is split at whitespace into words,
    `${VAR}` stays one word; then the words are split as systemd does (shell-like quotes)."""
    words = []
    for w in shlex.split(cmdline):
        m = re.fullmatch(r"\$(\w+)", w)
        if m:
            words += env.get(m.group(1), "").split()
            continue
        words.append(re.sub(r"\$\{(\w+)\}", lambda m: env.get(m.group(1), ""), w))
    return words


class Notify:
    """systemd's notify socket: datagrams, kept only from the main pid (NotifyAccess=main)."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.path, self.main_pid, self.all = path, None, []
        self.cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        while True:
            try:
                data, anc, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(12))
            except OSError:
                return
            pid = None
            for level, kind, cdata in anc:
                if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                    pid = struct.unpack("iII", cdata[:12])[0]
            with self.cond:
                self.all.append((pid, data.decode()))
                self.cond.notify_all()

    @property
    def got(self):
        """The messages systemd would act on: those of the main process."""
        return [m for pid, m in self.all if pid is not None and pid == self.main_pid]

    def wait_for(self, pred, what, timeout=60):
        with self.cond:
            assert self.cond.wait_for(lambda: pred(self.got), timeout), \
                "%s: %s (all: %s)" % (what, self.got, self.all)

    def close(self):
        self.sock.close()


class Service:
    """proctord started from the installed unit as systemd starts it."""

    def __init__(self, logdir, notify):
        self.unit = None  # read at start: the package is installed by then
        self.notify = notify
        self.logdir = logdir
        self.proc = None

    def start(self):
        u = self.unit = parse_unit(UNIT)
        assert u["Type"] == ["notify"] and u["NotifyAccess"] == ["main"], u
        env = {"PATH": SYSTEMD_PATH, "NOTIFY_SOCKET": self.notify.path}
        for f in u.get("EnvironmentFile", []):
            optional = f.startswith("-")
            f = f.lstrip("-")
            if os.path.exists(f) or not optional:
                env.update(parse_env_file(f))
        for e in u.get("Environment", []):
            for kv in shlex.split(e):
                k, _, v = kv.partition("=")
                env[k] = v
        wd = u.get("WatchdogSec", ["0"])[0]
        if wd != "0":
            env["WATCHDOG_USEC"] = str(int(wd) * 1000000)
        for d in u.get("StateDirectory", []):
            os.makedirs("/var/lib/" + d, mode=0o755, exist_ok=True)
        (cmd,) = u["ExecStart"]
        argv = expand_exec(cmd, env)
        cwd = u.get("WorkingDirectory", ["/"])[0]
        self.argv = argv
        self.proc = harness.Proc("proctord-service", argv, self.logdir, env=env, cwd=cwd)
        self.notify.main_pid = self.proc.popen.pid
        self.notify.wait_for(lambda g: any(m.startswith("READY=1") for m in g), "READY=1")

    def reload(self):
        (cmd,) = self.unit["ExecReload"]
        argv = expand_exec(cmd, {"MAINPID": str(self.proc.popen.pid)})
        subprocess.run(argv, check=True)

    def stop(self):
        # KillMode=mixed: SIGTERM to the main process; TimeoutStopSec bounds the wait.
        assert self.unit["KillMode"] == ["mixed"], self.unit
        self.proc.popen.send_signal(signal.SIGTERM)
        rc = self.proc.popen.wait(int(self.unit["TimeoutStopSec"][0]))
        self.proc.stop()
        return rc


def scrape(url):
    from prometheus_client.parser import text_string_to_metric_families
    with urllib.request.urlopen(url, timeout=10) as r:
        assert r.status == 200
        text = r.read().decode()
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_service_runs():
    assert os.geteuid() == 0, "package.service_runs installs a package: run it as root"
    harness.require_docker()
    blocks = readme_blocks()
    for ex in (EXAMPLE_BACKEND, EXAMPLE_TASKS, EXAMPLE_METRICS):
        assert ex in blocks["configure"], ex
    # One install of the package at a time on this machine (tools/package.sh --check too).
    lock = open("/run/lock/proctor-package.lock", "w")
    fcntl.flock(lock, fcntl.LOCK_EX)
    installed = subprocess.run(["dpkg", "-s", "proctor"], capture_output=True).returncode == 0
    assert not installed, "a proctor package is already installed here; remove it first"
    assert not os.path.exists(STATE_DIR), "%s exists: another proctord service here?" % STATE_DIR

    tmp = tempfile.mkdtemp(prefix="proctor-service-")
    os.chmod(tmp, 0o755)
    metrics = "127.0.0.1:%d" % harness.free_port()
    c = harness.Cluster(tasks=harness.DEFAULT_TASKS, friendly_name="it-service", workdir=tmp)
    sh = Shell(tmp, {EXAMPLE_BACKEND: c.agent_addr, EXAMPLE_TASKS: harness.DEFAULT_TASKS,
                     EXAMPLE_METRICS: metrics})
    notify = Notify(os.path.join(tmp, "notify"))
    service = Service(tmp, notify)
    c.start_agent = service.start  # the "agent" of this cluster is the unit's proctord
    purged = False
    try:
        out, _ = sh.run(blocks["install"])
        assert re.search(r"^proctord \d+\.\d+", out, re.M), out
        sh.run(blocks["configure"])
        _, calls = sh.run(blocks["start"])
        assert calls == ["enable --now proctord"], calls
        with c:  # the backend, then the service (READY=1), then the client
            service.proc.wait_log(r"said hello to the backend", 30)
            sh.set_state("active")
            out, calls = sh.run(blocks["check"])
            assert calls == ["is-active proctord"], calls
            assert re.search(r"^proctord_backend_connected 1", out, re.M), out
            r = c.grade("demo", "hello", harness.DEMO_INPUTS["hello"])
            assert r["result"][0] == "success", r
            m = scrape("http://%s/metrics" % metrics)
            assert m[("proctord_jobs_total", (("result", "success"),))] == 1, m
            assert m[("proctord_backend_connected", ())] == 1, m
            assert m[("proctord_job_duration_seconds_count", ())] == 1, m
            # The ExecStart systemd would run: the settings of /etc/default/proctord.
            assert service.argv[0] == "/usr/bin/proctord" and service.argv[-1] == c.agent_addr
            assert "--metrics" in service.argv and "/var/lib/proctord" in service.argv, service.argv
            _, calls = sh.run(blocks["reload"])
            assert calls == ["reload proctord"], calls
            n = len(notify.got)
            service.reload()
            notify.wait_for(lambda g: "RELOADING=1" in g[n:] and any(
                x.startswith("READY=1") for x in g[g.index("RELOADING=1", n):]), "RELOADING, READY")
            service.proc.wait_log(r"policies reloaded", 30)
            # The remove block: `disable --now` stops the service first, then the purge.
            remove = blocks["remove"].splitlines()
            assert remove[0].startswith("sudo systemctl disable --now proctord"), remove
            _, calls = sh.run(remove[0])
            assert calls == ["disable --now proctord"], calls
            rc = service.stop()
            sh.set_state("inactive")
            assert rc == 0, (rc, service.proc.log()[-3000:])
            notify.wait_for(lambda g: any(x.startswith("STOPPING=1") for x in g), "STOPPING=1")
        sh.run("\n".join(remove[1:]))
        purged = True
        for f in ("/usr/bin/proctord", "/usr/bin/proctor", "/usr/share/proctor", UNIT,
                  "/etc/default/proctord", "/etc/proctor"):
            assert not os.path.exists(f), "%s left after the purge" % f
        with open(os.path.join(STATE_DIR, ".agent-id")) as f:
            assert not harness.containers("%s=%s" % (harness.AGENT_LABEL, f.read().strip()))
    finally:
        if service.proc is not None and service.proc.alive():
            service.proc.stop(signal.SIGKILL)
        c.close()
        notify.close()
        if not purged:
            subprocess.run(["apt-get", "purge", "-y", "-q", "proctor"], capture_output=True)
        # What systemd's StateDirectory= leaves behind, made by this test.
        shutil.rmtree(STATE_DIR, ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)
        lock.close()
