"""The floor: the minimal Docker Engine API sequence that grades one job, with no agent.

For each job it does what any agent must do, and nothing else: prepare the job
directory, create the grading container (same image, binds, limits and
hardening shape as proctord's job_create_container), attach to it (raw HTTP
hijack), send the runner its `start` frame, start the container, read the
attach stream until EOF (keeping the last `result` frame), wait for the exit
code, then remove the container and the job directory. A `run_student` frame is
served the same minimal way: create the student container, tell the runner,
start it, wait, send the exit code, remove it.

There is no backend, no client, no policy, no time limit watch, no events
stream, no OOM check: this is the cost of Docker itself, the bound an agent can
approach but not beat. The HTTP client is a few lines over AF_UNIX (no
docker-py) so that the client's own overhead stays small.
"""
import http.client
import json
import os
import queue
import shutil
import socket
import struct
import tempfile
import threading
import time
import urllib.parse

import msgpack

DOCKER_SOCK = "/var/run/docker.sock"
LABEL_ROLE = "org.proctor.bench.floor"
# proctord's built-in hardening (policy_default_hardening), for a job without network.
CAP_DROP = ["NET_RAW", "MKNOD", "SETPCAP", "SETFCAP", "SYS_CHROOT", "NET_BIND_SERVICE",
            "AUDIT_WRITE"]
PIDS_LIMIT = 1024
NOFILE = 1024


class FloorError(RuntimeError):
    pass


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path=DOCKER_SOCK, timeout=300):
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self._path)


class Docker:
    """One keep-alive connection to the engine (one per thread)."""

    def __init__(self, path=DOCKER_SOCK):
        self.path = path
        self.conn = UnixHTTPConnection(path)

    def call(self, method, url, body=None, ok=(200, 201, 204)):
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if data is not None else {}
        for attempt in (0, 1):
            try:
                self.conn.request(method, url, body=data, headers=headers)
                resp = self.conn.getresponse()
                raw = resp.read()
                break
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                # The engine closed an idle keep-alive connection: reconnect once.
                self.conn.close()
                self.conn = UnixHTTPConnection(self.path)
                if attempt:
                    raise
        if resp.status not in ok:
            raise FloorError("%s %s: %d %s" % (method, url, resp.status, raw[:300]))
        return json.loads(raw) if raw and resp.getheader("Content-Type", "").startswith(
            "application/json") else None

    def close(self):
        self.conn.close()


class Attach:
    """A hijacked attach stream: raw bytes in, docker-multiplexed frames out."""

    def __init__(self, container_id, path=DOCKER_SOCK):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(300)
        self.sock.connect(path)
        req = ("POST /containers/%s/attach?stream=1&stdin=1&stdout=1&stderr=1&logs=0 HTTP/1.1\r\n"
               "Host: docker\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: 0\r\n\r\n"
               % container_id)
        self.sock.sendall(req.encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise FloorError("attach: connection closed during the handshake")
            head += chunk
        head, self.rest = head.split(b"\r\n\r\n", 1)
        status = head.split(b"\r\n", 1)[0]
        if b" 101 " not in status + b" " and b" 200 " not in status + b" ":
            raise FloorError("attach: %r" % status)

    def send_msg(self, msg):
        body = msgpack.packb(msg, use_bin_type=True)
        self.sock.sendall(struct.pack(">I", len(body)) + body)

    def messages(self):
        """Yields each application message of the stdout stream until EOF."""
        buf = bytearray(self.rest)
        app = bytearray()
        while True:
            while len(buf) >= 8:
                stream, n = buf[0], struct.unpack(">I", buf[4:8])[0]
                if len(buf) < 8 + n:
                    break
                if stream == 1:
                    app += buf[8:8 + n]
                del buf[:8 + n]
                while len(app) >= 4:
                    m = struct.unpack(">I", app[:4])[0]
                    if len(app) < 4 + m:
                        break
                    yield msgpack.unpackb(bytes(app[4:4 + m]), raw=False)
                    del app[:4 + m]
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                return
            buf += chunk

    def close(self):
        self.sock.close()


def engine_facts(path=DOCKER_SOCK):
    """The image of environment `default` (newest, by label), the runtime and cgroup version."""
    d = Docker(path)
    try:
        info = d.call("GET", "/info")
        flt = urllib.parse.quote(json.dumps({"label": ["org.inginious.grading.name=default"]}))
        images = d.call("GET", "/images/json?filters=" + flt)
        if not images:
            raise FloorError("no image labelled org.inginious.grading.name=default")
        image = max(images, key=lambda i: i["Created"])["Id"]
        return {"image": image, "runtime": info.get("DefaultRuntime", "runc"),
                "cgroup_v1": str(info.get("CgroupVersion", "1")) == "1"}
    finally:
        d.close()


def host_config(facts, binds, memory_mib, network="none"):
    hc = {"Memory": memory_mib << 20, "MemorySwap": memory_mib << 20, "PidsLimit": PIDS_LIMIT,
          "NetworkMode": network, "Runtime": facts["runtime"], "Binds": binds,
          "CapDrop": CAP_DROP, "SecurityOpt": ["no-new-privileges"],
          "Ulimits": [{"Name": "nofile", "Soft": NOFILE, "Hard": NOFILE}],
          # As proctord: output travels on the attach stream, not in Docker's log.
          "LogConfig": {"Type": "none"}}
    if facts["cgroup_v1"]:
        hc["MemorySwappiness"] = 0
    return hc


def create_body(facts, labels, hc, cmd=None):
    body = {"Image": facts["image"], "Tty": False, "OpenStdin": True, "StdinOnce": True,
            "AttachStdin": True, "AttachStdout": True, "AttachStderr": True, "Labels": labels,
            "HostConfig": hc}
    if cmd:
        body["Cmd"] = cmd
    return body


def make_job_dir(tmpdir, task_src, common_src):
    j = tempfile.mkdtemp(prefix="job-", dir=tmpdir)
    os.chmod(j, 0o777)
    shutil.copytree(task_src, os.path.join(j, "task"), symlinks=True)
    os.chmod(os.path.join(j, "task"), 0o777)
    os.makedirs(os.path.join(j, "task", "student"), 0o777, exist_ok=True)
    os.chmod(os.path.join(j, "task", "student"), 0o777)
    os.mkdir(os.path.join(j, "sockets"), 0o777)
    os.chmod(os.path.join(j, "sockets"), 0o777)
    os.mkdir(os.path.join(j, "course"))
    common = os.path.join(j, "course", "common")
    if os.path.isdir(common_src):
        shutil.copytree(common_src, common, symlinks=True)
    else:
        os.mkdir(common)
    os.makedirs(os.path.join(common, "student"), exist_ok=True)
    return j


class Floor:
    """Grades jobs with the bare sequence; one instance per workload."""

    def __init__(self, tasks_dir, tmpdir, path=DOCKER_SOCK):
        self.tasks_dir = tasks_dir
        self.tmpdir = tmpdir
        self.path = path
        self.facts = engine_facts(path)
        self.local = threading.local()
        self.removals = queue.Queue()
        self.remover = threading.Thread(target=self._remove_loop, daemon=True)
        self.remover.start()
        self.errors = []

    def _docker(self):
        if not hasattr(self.local, "docker"):
            self.local.docker = Docker(self.path)
        return self.local.docker

    def _remove_loop(self):
        # Removal runs off the critical path, as in the agents (they report the
        # result first, then remove).
        d = Docker(self.path)
        while True:
            item = self.removals.get()
            if item is None:
                break
            ids, jdir = item
            try:
                for cid in ids:
                    d.call("DELETE", "/containers/%s?force=1&v=1" % cid)
            except Exception as e:  # noqa: BLE001 - reported at the end
                self.errors.append("remove: %s" % e)
            shutil.rmtree(jdir, ignore_errors=True)
            self.removals.task_done()
        d.close()

    def _student(self, d, att, jdir, msg, job_label, memory_mib, students):
        sid = msg["socket_id"]
        if "/" in sid:
            raise FloorError("bad socket_id %r" % sid)
        student = os.path.join(jdir, "task", "student")
        scripts = os.path.join(student, "scripts")
        sysfiles = os.path.join(jdir, "task", "systemfiles")
        os.makedirs(scripts, exist_ok=True)
        os.makedirs(sysfiles, exist_ok=True)
        binds = ["%s:/task/student:rw" % student, "%s:/task/student/scripts:rw" % scripts,
                 "%s/sockets/%s.sock:/__parent.sock:rw" % (jdir, sid),
                 "%s:/task/systemfiles:ro" % sysfiles,
                 "%s/course/common/student:/course/common/student:ro" % jdir]
        body = create_body(self.facts, {LABEL_ROLE: "student", "org.proctor.bench.job": job_label},
                           host_config(self.facts, binds, memory_mib), ["_run_student_intern"])
        cid = d.call("POST", "/containers/create", body)["Id"]
        students.append(cid)
        att.send_msg({"type": "run_student_started", "socket_id": sid, "container_id": cid})
        d.call("POST", "/containers/%s/start" % cid)
        code = d.call("POST", "/containers/%s/wait" % cid)["StatusCode"]
        att.send_msg({"type": "run_student_retval", "socket_id": sid, "retval": code})

    def grade(self, course, task, inputdata, debug=False, memory_mib=64, phases=None):
        """Grades one job; returns (result map, latency seconds). When `phases` is
        a dict, it receives the duration in seconds of each step."""
        d = self._docker()
        t0 = time.monotonic()
        marks = [t0]
        jdir = make_job_dir(self.tmpdir, os.path.join(self.tasks_dir, course, task),
                            os.path.join(self.tasks_dir, course, "$common"))
        job_label = os.path.basename(jdir)
        binds = ["%s/task:/task:rw" % jdir, "%s/sockets:/sockets:rw" % jdir,
                 "%s/course/common:/course/common:ro" % jdir,
                 "%s/course/common/student:/course/common/student:ro" % jdir]
        body = create_body(self.facts, {LABEL_ROLE: "grading", "org.proctor.bench.job": job_label},
                           host_config(self.facts, binds, memory_mib))
        marks.append(time.monotonic())
        cid = d.call("POST", "/containers/create", body)["Id"]
        marks.append(time.monotonic())
        students = []
        result = None
        try:
            att = Attach(cid, self.path)
            marks.append(time.monotonic())
            try:
                # The runner reads only after it starts: sending first saves a
                # round trip, as proctord does.
                att.send_msg({"type": "start", "input": inputdata, "debug": debug,
                              "envtypes": {"docker": True}, "run_as_root": False,
                              "shared_kernel": True})
                d.call("POST", "/containers/%s/start" % cid)
                marks.append(time.monotonic())
                for msg in att.messages():
                    kind = msg.get("type")
                    if kind == "result":
                        result = msg.get("result")
                    elif kind == "run_student":
                        self._student(d, att, jdir, msg, job_label, memory_mib, students)
            finally:
                att.close()
            marks.append(time.monotonic())
            d.call("POST", "/containers/%s/wait" % cid)
            marks.append(time.monotonic())
            latency = marks[-1] - t0
            if phases is not None:
                names = ("job dir", "create", "attach", "start", "run to EOF", "wait")
                phases.update({n: b - a for n, a, b in zip(names, marks, marks[1:])})
        finally:
            self.removals.put((students + [cid], jdir))
        if not isinstance(result, dict):
            raise FloorError("no result frame from the runner")
        return result, latency

    def close_thread(self):
        """Closes the calling thread's engine connection."""
        if hasattr(self.local, "docker"):
            self.local.docker.close()
            del self.local.docker

    def close(self):
        self.removals.join()
        self.removals.put(None)
        self.remover.join()
        self.close_thread()
