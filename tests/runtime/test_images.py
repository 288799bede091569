#!/opt/proctor-venv/bin/python
"""Integration test of the example images and the container runtime.

Builds the images with examples/environments/build.sh, then plays the
agent's part by hand: `docker run -i` of a grading image with the job
directory bind-mounted as the agent does, one `start` frame on stdin, the
`result` frame decoded from stdout. `run_student` requests are served by
creating real student containers (socket bind-mounted as /__parent.sock),
so fd passing, exit codes and signal forwarding are exercised for real.
Needs the Docker engine: fails (never skips) without it.
"""
import argparse
import base64
import io
import os
import shutil
import struct
import subprocess
import sys
import tarfile
import tempfile
import threading

import msgpack

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DEMO = os.path.join(TOP, "examples", "courses", "demo")
FAILURES = []


def docker(*args, check=True):
    out = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=120)
    if check and out.returncode != 0:
        raise RuntimeError("docker %s: %s" % (" ".join(args), out.stderr.strip()))
    return out.stdout.strip()


def frame(msg):
    body = msgpack.packb(msg, use_bin_type=True)
    return struct.pack(">I", len(body)) + body


class Job:
    """One grading container driven the way the agent drives it."""

    def __init__(self, task_dir=None, image="proctor/env-default", memory=64):
        self.dir = tempfile.mkdtemp(prefix="proctor-rt-test-")
        os.chmod(self.dir, 0o777)
        self.task = os.path.join(self.dir, "task")
        if task_dir:
            shutil.copytree(task_dir, self.task)
        else:
            os.mkdir(self.task)
        for sub in ("task/student", "sockets", "course/common/student"):
            os.makedirs(os.path.join(self.dir, sub), exist_ok=True)
        for sub in ("task", "task/student", "sockets"):
            os.chmod(os.path.join(self.dir, sub), 0o777)
        self.image, self.memory = image, memory
        self.students = []
        self.lock = threading.Lock()

    def write(self, name, text, mode=0o755):
        path = os.path.join(self.task, name)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, mode)

    def send(self, msg):
        with self.lock:
            self.proc.stdin.write(frame(msg))
            self.proc.stdin.flush()

    def serve_student(self, req):
        sid = req["socket_id"]
        mem = req["memory_limit"] or self.memory
        cid = docker("create", "--network", "none", "-m", "%dm" % mem, "--memory-swap", "%dm" % mem,
                     "-v", "%s/task/student:/task/student" % self.dir,
                     "-v", "%s/sockets/%s.sock:/__parent.sock" % (self.dir, sid),
                     req["environment"] and "proctor/env-" + req["environment"] or self.image,
                     "_run_student_intern")
        self.students.append(cid)
        self.send({"type": "run_student_started", "socket_id": sid, "container_id": cid})
        docker("start", cid)
        code = int(docker("wait", cid))
        self.send({"type": "run_student_retval", "socket_id": sid, "retval": code})

    def run(self, inputs, debug=False, run_cmd=None, timeout=60):
        cmd = ["docker", "run", "-i", "--rm", "--network", "none",
               "-m", "%dm" % self.memory, "--memory-swap", "%dm" % self.memory,
               "-v", "%s/task:/task" % self.dir, "-v", "%s/sockets:/sockets" % self.dir,
               "-v", "%s/course/common:/course/common:ro" % self.dir, self.image]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        start = {"type": "start", "input": inputs, "debug": debug,
                 "envtypes": {"docker": True}, "run_as_root": False, "shared_kernel": True}
        if run_cmd is not None:
            start["run_cmd"] = run_cmd
        self.send(start)
        unpacker = msgpack.Unpacker(raw=False)
        buf, results, threads = b"", [], []
        timer = threading.Timer(timeout, self.proc.kill)
        timer.start()
        try:
            while True:
                chunk = self.proc.stdout.read1(65536)
                if not chunk:
                    break
                buf += chunk
                while len(buf) >= 4 and len(buf) >= 4 + struct.unpack(">I", buf[:4])[0]:
                    n = struct.unpack(">I", buf[:4])[0]
                    msg = msgpack.unpackb(buf[4:4 + n], raw=False)
                    buf = buf[4 + n:]
                    if msg["type"] == "result":
                        results.append(msg["result"])
                    elif msg["type"] == "run_student":
                        t = threading.Thread(target=self.serve_student, args=(msg,), daemon=True)
                        t.start()
                        threads.append(t)
        finally:
            timer.cancel()
            self.proc.wait()
            for cid in self.students:
                docker("rm", "-f", cid, check=False)
        self.stderr = self.proc.stderr.read().decode(errors="replace")
        self.leftover = buf
        return results

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def check(name, cond, detail=""):
    print(("ok   " if cond else "FAIL ") + name + ("" if cond else ": " + str(detail)))
    if not cond:
        FAILURES.append(name)


def one_result(name, job, results):
    check(name + ": exactly one result frame, nothing else on stdout",
          len(results) == 1 and job.leftover == b"", (results, job.leftover, job.stderr))
    return results[0] if results else {}


def grade(name, task, inputs, **kw):
    job = Job(os.path.join(DEMO, task) if task else None)
    try:
        return one_result(name, job, job.run(inputs, **kw))
    finally:
        job.cleanup()


def test_labels():
    for env in ("default", "student"):
        labels = docker("image", "inspect", "-f", "{{json .Config.Labels}}", "proctor/env-" + env)
        check("labels of proctor/env-" + env,
              '"org.inginious.grading.name":"%s"' % env in labels
              and '"org.inginious.grading.agent_version":"3"' in labels, labels)


def test_hello():
    r = grade("hello ok", "hello", {"script": "echo 'Hello, world!'", "@lang": "en"})
    check("hello ok: success, float grade", r.get("result") == "success"
          and isinstance(r.get("grade"), float) and r["grade"] == 100.0, r)
    check("hello ok: no debug output unless asked", "stdout" not in r, r)
    check("hello ok: archive is a base64 tgz", tarfile.open(
        fileobj=io.BytesIO(base64.b64decode(r.get("archive", "")))) is not None, r)
    r = grade("hello ko", "hello", {"script": "echo 'Bye'; echo noise >&2"}, debug=True)
    check("hello ko: failed with the output quoted", r.get("result") == "failed"
          and "    Bye" in r.get("text", "") and "noise" in r.get("text", ""), r)
    check("hello ko: debug adds stdout/stderr", "stdout" in r and "stderr" in r, r)


def test_multi():
    r = grade("multi", "multi", {"sum": "5", "capital": "Paris", "upper": "tr a-z A-Z"})
    check("multi: partial grade 66.67", r.get("grade") == 66.67, r)
    p = r.get("problems", {})
    check("multi: per-problem results", p.get("sum", [None])[0] == "success"
          and p.get("capital", [None])[0] == "failed" and p.get("upper", [None])[0] == "success"
          and "Brussels" in p.get("capital", ["", ""])[1], p)


def test_upload():
    data = b"A report about proctor.\nSecond line\n\xff\x00 binary tail\n"
    r = grade("upload", "upload", {"report": {"filename": "my report.txt", "value": data}})
    check("upload: success, name and line count", r.get("result") == "success"
          and "my report.txt" in r.get("text", "") and "(3 lines)" in r.get("text", ""), r)
    tgz = tarfile.open(fileobj=io.BytesIO(base64.b64decode(r.get("archive", ""))))
    names = tgz.getnames()
    check("upload: archived file round-trips", "report.txt" in names
          and tgz.extractfile("report.txt").read() == data, names)


def test_runner_crashes():
    job = Job()
    try:
        r = one_result("no run file", job, job.run({}))
        check("no run file: crash", r == {"result": "crash", "text": "'/task/run' could not be found"}, r)
        job.write("run", "#!/bin/sh\necho 'to stdout'; seq 1 20000; echo err >&2\n")
        r = one_result("no feedback", job, job.run({}))
        check("no feedback: crash", r.get("result") == "crash"
              and r.get("text") == "No feedback was given !" and r.get("problems") == {}, r)
        job.write("run", "#!/bin/sh\necho '{oops' > /.__output/__feedback.json\n")
        r = one_result("broken feedback", job, job.run({}))
        check("broken feedback: crash", r.get("text") == "Feedback file has been modified by user !", r)
        job.write("run", "#!/bin/sh\nfeedback-result success\nid -u > /task/uid\n"
                  "touch /etc/forbidden 2>/dev/null && echo yes > /task/root\n")
        r = one_result("runs as worker", job, job.run({}))
        uid = open(os.path.join(job.task, "uid")).read().strip()
        check("runs as worker: uid 4242, no root rights", uid == "4242"
              and not os.path.exists(os.path.join(job.task, "root")), uid)
        job.write("notexec", "#!/bin/sh\nfeedback-result success\n", mode=0o644)
        r = one_result("run_cmd", job, job.run({}, run_cmd="/bin/sh notexec"))
        check("run_cmd: split on spaces and run", r.get("result") == "success", r)
        r = one_result("run_cmd missing", job, job.run({}, run_cmd="/nonexistent/x"))
        check("run_cmd missing: launch crash", r.get("result") == "crash"
              and "An error occured while running the grading script" in r.get("text", ""), r)
    finally:
        job.cleanup()


def test_student():
    r = grade("student ok", "student", {"sum": "read a b; echo $((a + b))"})
    check("student ok: all cases", r.get("result") == "success" and r.get("grade") == 100.0, r)
    r = grade("student ko", "student", {"sum": "read a b; echo $((a * b))"})
    check("student ko: wrong sums reported", r.get("result") == "failed"
          and "expected 5, got ``6``" in r.get("text", ""), r)


def test_run_student_protocol():
    job = Job()
    try:
        job.write("run", """#!/bin/sh
exec 2>/task/err.log
echo "hello" | run_student cat > /task/out1 ; echo $? > /task/rc1
run_student sh -c "'echo to-stderr >&2; exit 7'" 2> /task/err2 ; echo $? > /task/rc2
run_student sh -c "'kill -TERM \$\$'" ; echo $? > /task/rc3
run_student --time abc ls 2>/dev/null ; echo $? > /task/rc4
run_student --run-as-root id ; echo $? > /task/rc5
run_student sleep 30 &
pid=$!
sleep 2
kill -TERM $pid
wait $pid ; echo $? > /task/rc6
run_student --container student sh -c "'id -u; pwd'" > /task/out7 ; echo $? > /task/rc7
run_student echo "a  b" 'c d' > /task/out8
feedback-result success
""")
        r = one_result("run_student protocol", job, job.run({}, timeout=120))

        def get(name):
            try:
                return open(os.path.join(job.task, name)).read()
            except OSError as e:
                return str(e)
        check("run_student: stdin and stdout lent", get("out1") == "hello\n" and get("rc1") == "0\n",
              (get("out1"), get("rc1"), get("err.log")))
        check("run_student: exit code and stderr", get("rc2") == "7\n" and get("err2") == "to-stderr\n",
              (get("rc2"), get("err2")))
        check("run_student: killed by signal N gives 256-N", get("rc3") == "241\n", get("rc3"))
        check("run_student: bad usage exits 2", get("rc4") == "2\n", get("rc4"))
        check("run_student: root refused with 251", get("rc5") == "251\n", get("rc5"))
        check("run_student: SIGTERM forwarded to the student", get("rc6") == "241\n", get("rc6"))
        check("run_student: other environment, worker, same cwd", get("rc7") == "0\n"
              and get("out7") == "4242\n/task\n", (get("rc7"), get("out7")))
        # Words are joined with spaces and split again with shell rules, as
        # upstream does: quoting meant for the student side must be nested.
        check("run_student: shell-like word splitting", get("out8") == "a b c d\n", get("out8"))
        check("run_student: sockets cleaned up", os.listdir(os.path.join(job.dir, "sockets")) ==
              ["main.sock"], os.listdir(os.path.join(job.dir, "sockets")))
        check("run_student protocol: result", r.get("result") == "success", r)
    finally:
        job.cleanup()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", default=os.path.join(TOP, "build"))
    args = ap.parse_args()
    try:
        docker("info", "--format", "{{.ServerVersion}}")
    except Exception as e:  # no engine: this test must fail loudly, not skip
        print("FAIL Docker engine unavailable: %s" % e)
        return 1
    subprocess.run([os.path.join(TOP, "examples", "environments", "build.sh"), args.build_dir],
                   check=True)
    for t in (test_labels, test_hello, test_multi, test_upload, test_runner_crashes,
              test_student, test_run_student_protocol):
        try:
            t()
        except Exception as e:
            check(t.__name__, False, repr(e))
    print("%d failure(s)" % len(FAILURES) if FAILURES else "all checks passed")
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
