"""The benchmark driver: proctord (cold and warm) vs the Python agent vs the raw Docker floor.

For every workload it grades the same jobs four ways, one system at a time:
  proctord  - build/proctord without its warm pool (--no-pool) behind a fresh real
              inginious-backend, jobs submitted with the real INGInious Python client;
  warm      - the same proctord with its warm pool (--warm docker/default);
  python    - inginious-agent-docker (PyPI, pinned) in the same setting;
  floor     - no agent, no backend: the bare Docker API sequence (floor.py).
Each (workload, system) pair gets its own backend and agent process, so peak
memory and CPU belong to that workload only. Closed-loop workloads keep exactly
`concurrency` jobs in flight and give the agent that many slots, so latency
(submit to result) never includes queueing in the backend; the open-loop one
submits at Poisson arrival times (the same schedule for every system) and
measures from each job's scheduled arrival.

Writes <out>/results.json (raw figures, every latency), then report.md and
chart.png through report.py. Exit status: 0 when every job graded as expected
and every metric was measured; 1 otherwise. Targets never affect it.
"""
import argparse
import asyncio
import json
import logging
import os
import platform
import queue
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
sys.path.insert(0, HERE)
import floor  # noqa: E402
import harness  # noqa: E402
import report  # noqa: E402

TASKS = os.path.join(HERE, "courses")
COURSE = "bench"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
SYSTEMS = ("proctord", "warm", "python", "floor", "baseline")
DEFAULT_SYSTEMS = ("proctord", "warm", "python", "floor")
# The systems that are a proctord (the others take their part of a workload's
# "systems" when it names "proctord").
PROCTORDS = ("proctord", "warm", "baseline")
HOSTILE_IMAGE = "proctor/bench-hostile"
BASE_INPUT = {"@username": "student", "@lang": "en", "@state": "", "@attempts": "1"}


def workloads(smoke, jobs, open_rate=1.0, open_jobs=None, student_jobs=None):
    """(name, task, jobs, concurrency, inputdata, debug, memory MiB, expected stdout bytes;
    systems: the ones it runs on when not all; open_rate: open-loop arrivals per second)."""
    n = jobs or (5 if smoke else 200)
    mb = 1 if smoke else 50
    frames = 1 if smoke else 16
    return [
        {"name": "trivial-c1", "task": "trivial", "jobs": n, "concurrency": 1},
        {"name": "trivial-c4", "task": "trivial", "jobs": n, "concurrency": 4},
        # Open loop: Poisson arrivals below capacity, as students submit; 4 agent
        # slots (the floor: one thread per arrival).
        {"name": "trivial-open", "task": "trivial", "jobs": open_jobs or (5 if smoke else 120),
         "concurrency": 4, "open_rate": open_rate},
        {"name": "output-%dmb" % mb, "task": "output", "jobs": 1, "concurrency": 1,
         "input": {"mb": str(mb)}, "debug": True, "memory": 512, "stdout_bytes": mb << 20},
        {"name": "student", "task": "student", "jobs": student_jobs or (2 if smoke else 20),
         "concurrency": 1},
        # The same at Poisson arrival times below capacity (0.5 jobs/s, 4 slots): where the
        # pool's student containers (README, "Warm pool") can be ready for the next job.
        {"name": "student-open", "task": "student", "jobs": 2 if smoke else 40,
         "concurrency": 4, "open_rate": 0.5},
        # The grading container sends frames built to cost the agent memory
        # (bench/images/hostile). No floor: it has no agent to attack.
        {"name": "hostile-%dmb" % frames, "task": "hostile", "jobs": 1 if smoke else 2,
         "concurrency": 1, "input": {"frames": "frames%d" % frames}, "frame_mib": frames,
         "systems": ["proctord", "python"]},  # and the other proctords
    ]


def build_hostile_image():
    """Builds proctor/bench-hostile (FROM scratch: the host's static busybox and
    bench/images/hostile/hostile.sh). The agents discover images at start, so
    this runs before any of them."""
    src = os.path.join(HERE, "images", "hostile")
    ctx = tempfile.mkdtemp(prefix="proctor-bench-img-")
    try:
        for name in ("Dockerfile", "hostile.sh"):
            shutil.copy(os.path.join(src, name), ctx)
        shutil.copy(shutil.which("busybox") or "/bin/busybox", os.path.join(ctx, "busybox"))
        subprocess.run(["docker", "build", "-q", "-t", HOSTILE_IMAGE, ctx], check=True,
                       capture_output=True)
    finally:
        shutil.rmtree(ctx, ignore_errors=True)


# ---- process accounting ------------------------------------------------------

def read_stat(pid):
    """(session id, utime+stime+cutime+cstime seconds) of one process, or None if gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            raw = f.read()
    except OSError:
        return None
    # The command name may hold spaces or parentheses: split after the last ')'.
    fields = raw[raw.rindex(")") + 2:].split()
    session = int(fields[3])
    ticks = sum(int(x) for x in fields[11:15])
    return session, ticks / CLK_TCK


def read_mem_kib(pid):
    """(VmHWM, RssAnon) in KiB, or None if the process is gone."""
    hwm = anon = None
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    hwm = int(line.split()[1])
                elif line.startswith("RssAnon:"):
                    anon = int(line.split()[1])
    except OSError:
        return None
    return (hwm, anon) if hwm is not None and anon is not None else None


def session_pids(sid):
    """Every process of the agent's session: the agent and any child it spawned
    (the harness starts the agent with start_new_session)."""
    pids = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = read_stat(int(name))
            if st and st[0] == sid:
                pids.append(int(name))
    return pids


def tree_cpu(sid):
    """CPU seconds of the live session, children already reaped included."""
    total = 0.0
    for pid in session_pids(sid):
        st = read_stat(pid)
        if st:
            total += st[1]
    return total


def tree_cpu_precise(sid):
    """(seconds, thread ids) from each live thread's schedstat (nanoseconds): far
    finer than the 10 ms ticks of /proc/<pid>/stat, but blind to threads that
    exit, so callers compare the thread sets and fall back to tree_cpu()."""
    total, tids = 0, set()
    for pid in session_pids(sid):
        try:
            for tid in os.listdir("/proc/%d/task" % pid):
                with open("/proc/%d/task/%s/schedstat" % (pid, tid)) as f:
                    total += int(f.read().split()[0])
                tids.add(int(tid))
        except OSError:
            continue
    return total / 1e9, tids


def engine_pids():
    """dockerd and containerd: the engine work an agent causes."""
    pids = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/comm" % name) as f:
                comm = f.read().strip()
        except OSError:
            continue
        if comm in ("dockerd", "containerd"):
            pids.append(int(name))
    return pids


def engine_cpu(pids):
    return sum((read_stat(p) or (0, 0.0))[1] for p in pids)


class MemSampler:
    """Samples VmHWM of every process of a session; the peak is the sum of each
    process's own high-water mark (an upper bound when children come and go).
    Also tracks the largest sampled RssAnon sum: the memory that is the agent's
    own, without the shared libraries and executable pages RSS counts."""

    def __init__(self, sid, period=0.05):
        self.sid, self.period = sid, period
        self.hwm = {}
        self.anon_mib = 0.0
        self.nprocs = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self):
        pids = session_pids(self.sid)
        self.nprocs = max(self.nprocs, len(pids))
        anon = 0
        for pid in pids:
            mem = read_mem_kib(pid)
            if mem is not None:
                self.hwm[pid] = max(self.hwm.get(pid, 0), mem[0])
                anon += mem[1]
        self.anon_mib = max(self.anon_mib, anon / 1024.0)

    def _run(self):
        while not self._stop.wait(self.period):
            self.sample()

    def start(self):
        self.sample()
        self._thread.start()

    def stop(self):
        self._stop.set()
        self._thread.join()
        self.sample()
        return sum(self.hwm.values()) / 1024.0


def stop_with_rusage(proc, timeout=60):
    """SIGTERM to the agent's process group, then wait4: lifetime CPU and maxrss."""
    pid = proc.popen.pid
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + timeout
    while True:
        wpid, status, ru = os.wait4(pid, os.WNOHANG)
        if wpid == pid:
            break
        if time.monotonic() > deadline:
            os.killpg(pid, signal.SIGKILL)
            wpid, status, ru = os.wait4(pid, 0)
            break
        time.sleep(0.02)
    # Tell subprocess the child is reaped, so the harness does not wait again.
    proc.popen.returncode = os.waitstatus_to_exitcode(status)
    return {"cpu_s": ru.ru_utime + ru.ru_stime + 0.0, "maxrss_mib": ru.ru_maxrss / 1024.0,
            "exit": proc.popen.returncode}


# ---- proctord's log: where its time goes -------------------------------------

# proctord logs one line per job with its phase marks, in ms since BackendNewJob
# (0 = not reached); "answered" is when its result arrived and decided the job (0 when
# its exit decided it, --answer-at-exit), "reported" when it handed the result to the
# backend.
TIMINGS_RX = re.compile(r"job (\S+): timings created (\d+), attached (\d+), running (\d+), "
                        r"(?:answered (\d+), )?exited (\d+), reported (\d+) ms$")
PROCTORD_PHASES = (("job dir + create", 0), ("attach", 1), ("start", 2),
                   ("run to answer or exit", 3), ("to the report", 4))


def proctord_profile(logpath):
    """Each measured job's agent-internal time (BackendNewJob to result sent) and
    the mean duration (ms) of each phase, from proctord's log."""
    marks = []
    with open(logpath, errors="replace") as f:
        for line in f:
            m = TIMINGS_RX.search(line.rstrip("\n"))
            if m:
                created, attached, running, answered, exited, reported = m.groups()[1:]
                ended = int(answered) if answered and int(answered) else int(exited)
                marks.append([int(created), int(attached), int(running), ended, int(reported)])
    measured = marks[1:]  # the first job is the warm-up
    phases = {}
    full = [m for m in measured if all(m)]
    if full and len(full) == len(measured):
        for name, i in PROCTORD_PHASES:
            phases[name] = sum(m[i] - (m[i - 1] if i else 0) for m in full) / len(full)
    return [m[4] for m in measured], phases


# ---- statistics --------------------------------------------------------------

def percentile(values, p):
    """Linear interpolation between closest ranks (numpy's default)."""
    s = sorted(values)
    if not s:
        return None
    k = (len(s) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def summarise(latencies, wall):
    return {"p50_ms": percentile(latencies, 50) * 1000, "p95_ms": percentile(latencies, 95) * 1000,
            "max_ms": max(latencies) * 1000, "mean_ms": sum(latencies) / len(latencies) * 1000,
            "throughput": len(latencies) / wall if wall > 0 else None, "wall_s": wall}


def check_result(wl, values):
    """None when the job graded as expected, else why not."""
    result = values.get("result")
    if isinstance(result, (list, tuple)):
        result = result[0]
    if result != "success":
        return "result %r: %r" % (values.get("result"), str(values.get("text", ""))[:200])
    want = wl.get("stdout_bytes")
    if want is not None:
        got = len(values.get("stdout") or "")
        if got != want:
            return "stdout has %d bytes, expected %d" % (got, want)
    return None


# ---- the warm pool: what it served, what it holds ----------------------------

POOL_ROLE = "org.proctor.role=pool"
# proctord's log lines about warm containers (src/job/pool.c, src/job/job.c).
WAITING_RX = re.compile(r"pool \S+: container (\w{12}) waiting for a job")
ENDED_RX = re.compile(r"pool \S+: container (\w{12}) ended while waiting")
TAKEN_RX = re.compile(r"job \S+: warm container (\w{12})")
SERVED_RX = re.compile(r"job \S+: container \w{12} started \(warm\)")
FALLBACK_RX = re.compile(r"job \S+: the warm container could not be used; starting cold")
# src/job/job_student.c: a run_student request that took a student container started ahead.
AHEAD_RX = re.compile(r"job \S+: student container \S+: \w{12} started \(ahead\)")


def pool_waiting(log):
    """Ids (12 digits) of the warm containers proctord's log shows waiting, unclaimed."""
    return (set(WAITING_RX.findall(log)) - set(TAKEN_RX.findall(log))
            - set(ENDED_RX.findall(log)))


def cgroup_memory(pid, cid):
    """Bytes charged to a container's memory cgroup, from its init process's
    /proc/<pid>/cgroup (v2: memory.current; v1: memory.usage_in_bytes), or a
    search of /sys/fs/cgroup for the container id; None if not found."""
    candidates = []
    try:
        with open("/proc/%d/cgroup" % pid) as f:
            for line in f:
                _, controllers, path = line.rstrip("\n").split(":", 2)
                if controllers == "":
                    candidates.append(os.path.join("/sys/fs/cgroup", path.lstrip("/"),
                                                   "memory.current"))
                elif "memory" in controllers.split(","):
                    candidates.append(os.path.join("/sys/fs/cgroup", controllers,
                                                   path.lstrip("/"), "memory.usage_in_bytes"))
    except (OSError, ValueError):
        pass
    # The paths seen from a cgroup namespace are relative to its root: look for
    # the id itself (systemd driver: docker-<id>.scope; cgroupfs: .../<id>).
    for pattern in ("/sys/fs/cgroup/system.slice/docker-%s.scope/memory.current",
                    "/sys/fs/cgroup/memory/system.slice/docker-%s.scope/memory.usage_in_bytes",
                    "/sys/fs/cgroup/docker/%s/memory.current",
                    "/sys/fs/cgroup/memory/docker/%s/memory.usage_in_bytes"):
        candidates.append(pattern % cid)
    for path in candidates:
        try:
            with open(path) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            continue
    return None


def shim_rss_kib(pid):
    """(VmRSS, RssAnon) in KiB of the containerd-shim that is the parent of a
    container's init process, or None if it is not one (or not visible)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        with open("/proc/%d/comm" % ppid) as f:
            if not f.read().startswith("containerd-shim"):
                return None
        rss = anon = None
        with open("/proc/%d/status" % ppid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
                elif line.startswith("RssAnon:"):
                    anon = int(line.split()[1])
        return (rss, anon) if rss is not None and anon is not None else None
    except (OSError, ValueError, IndexError):
        return None


def pool_footprint(agent_id, settle=10.0):
    """Memory held by an agent's warm containers once its pool stopped changing
    (none being created, the same running set twice in a row, or `settle`
    seconds): their number, the sum of their cgroups' memory, and of their
    shims' RSS and anonymous memory (None when a figure could not be read)."""
    deadline = time.monotonic() + settle
    prev = None
    while True:
        ps = subprocess.run(["docker", "ps", "-a", "--no-trunc", "--format", "{{.ID}} {{.State}}",
                             "--filter", "label=%s=%s" % (harness.AGENT_LABEL, agent_id),
                             "--filter", "label=" + POOL_ROLE],
                            capture_output=True, text=True).stdout.split("\n")
        states = dict(line.split(" ", 1) for line in ps if " " in line)
        running = sorted(c for c, st in states.items() if st == "running")
        busy = any(st == "created" for st in states.values())
        if (running and not busy and running == prev) or time.monotonic() > deadline:
            break
        prev = running
        time.sleep(0.25)
    out = {"pool_containers": len(running), "pool_cgroup_mib": 0.0, "pool_shim_rss_mib": 0.0,
           "pool_shim_anon_mib": 0.0}
    for cid in running:
        pid = subprocess.run(["docker", "inspect", "-f", "{{.State.Pid}}", cid],
                             capture_output=True, text=True).stdout.strip()
        pid = int(pid) if pid.isdigit() else 0
        mem = cgroup_memory(pid, cid) if pid else None
        if mem is None:
            out["pool_cgroup_mib"] = None
        elif out["pool_cgroup_mib"] is not None:
            out["pool_cgroup_mib"] += mem / 2**20
        shim = shim_rss_kib(pid) if pid else None
        if shim is None:
            out["pool_shim_rss_mib"] = out["pool_shim_anon_mib"] = None
        elif out["pool_shim_rss_mib"] is not None:
            out["pool_shim_rss_mib"] += shim[0] / 1024.0
            out["pool_shim_anon_mib"] += shim[1] / 1024.0
    return out


# ---- drivers -------------------------------------------------------------------

# Fixed agent ids, so that leftover_containers() knows each proctord's label.
AGENT_IDS = {"proctord": "proctord-bench-proctord", "warm": "proctord-bench-warm",
             "baseline": "proctord-bench-baseline"}


def arrivals(n, rate, seed):
    """Open-loop submit times (seconds from the start): a Poisson process of
    `rate` jobs/s drawn from a seeded generator, so every system gets the same."""
    rng = random.Random(seed)
    t, out = 0.0, []
    for _ in range(n):
        t += rng.expovariate(rate)
        out.append(t)
    return out


def proctord_help(build_dir):
    """proctord's --help text (to see which options an older build knows)."""
    r = subprocess.run([os.path.join(build_dir, "proctord"), "--help"], capture_output=True,
                       text=True)
    return r.stdout + r.stderr


class BenchCluster(harness.Cluster):
    """harness.Cluster (which already takes an environment for the agent and
    stops the client's loop on close), named for the benchmark's logs. The
    benchmark decides the pool flags itself: the harness's (a warm default
    environment, or PROCTOR_TEST_POOL=off) are dropped."""

    def __init__(self, *a, pool_args=(), **kw):
        super().__init__(*a, **kw)
        self.pool_args = list(pool_args)

    def agent_argv(self):
        argv = super().agent_argv()
        if self.agent_kind != "proctord":
            return argv
        n_own = len(self.extra_args) + 1  # the benchmark's own arguments and the address
        head, tail = argv[:-n_own], argv[-n_own:]
        kept = []
        i = 0
        while i < len(head):
            if head[i] == "--no-pool":
                i += 1
            elif head[i] == "--warm":
                i += 2
            else:
                kept.append(head[i])
                i += 1
        return kept + self.pool_args + tail


def run_agent(system, wl, args, workdir):
    task = harness.Task(TASKS, COURSE, wl["task"])
    warm = harness.Task(TASKS, COURSE, "trivial")
    conc, n = wl["concurrency"], wl["jobs"]
    data = dict(BASE_INPUT, **wl.get("input", {}))
    # "proctord" runs cold, "warm" with its pool; "baseline" is proctord too,
    # built from another tree (--baseline DIR), cold if that build has a pool.
    is_proctord = system in PROCTORDS
    extra, pool_args = [], []
    if is_proctord:
        extra = ["--agent-id", AGENT_IDS[system]]
        if system == "warm":
            pool_args = ["--warm", "docker/default"]
        elif system == "proctord" or args.baseline_has_pool:
            pool_args = ["--no-pool"]
    pooled = system == "warm"
    cluster = BenchCluster(agent="proctord" if is_proctord else system, tasks=TASKS,
                           concurrency=conc,
                           build_dir=args.baseline if system == "baseline" else args.build,
                           workdir=workdir, friendly_name="bench-%s" % system, extra_args=extra,
                           pool_args=pool_args)
    env = dict(os.environ)
    if is_proctord and args.proctor_log:
        env["PROCTOR_LOG"] = args.proctor_log
    cluster.agent_env = env
    out = {"errors": []}
    with cluster:
        pid = cluster.agent.popen.pid
        sampler = MemSampler(pid)
        sampler.start()
        done = queue.Queue()

        def submit(i, t, inputdata, debug, at=None):
            rec = {"i": i}

            def callback(*values):
                rec["t_done"] = time.monotonic()
                rec["values"] = dict(zip(harness.Result.FIELDS, values))
                done.put(rec)
            # Open loop: latency counts from the scheduled arrival, however late
            # the submission itself was.
            rec["t_submit"] = at if at is not None else time.monotonic()
            job_id = cluster.client.new_job(0, t, inputdata, callback, "proctor-bench", debug)
            if job_id is None:
                raise RuntimeError("the client refused job %d" % i)

        # Warm-up: one trivial job, not counted, so that the first measured job
        # does not pay for cold caches in the agent, the backend or the engine.
        submit(-1, warm, dict(BASE_INPUT), False)
        rec = done.get(timeout=300)
        err = check_result({}, rec["values"])
        if err:
            out["errors"].append("warm-up: " + err)
        if pooled:
            # The warm-up took the warm container: every system starts the
            # window idle, so this one with its pool refilled.
            try:
                harness.wait_for(lambda: pool_waiting(cluster.agent.log()), 60,
                                 "a warm container after the warm-up")
            except TimeoutError as e:
                out["errors"].append(str(e))

        log_at = len(cluster.agent.log())
        eng = engine_pids()
        cpu0, eng0 = tree_cpu(pid), engine_cpu(eng)
        fine0, tids0 = tree_cpu_precise(pid)
        t0 = time.monotonic()
        recs, submitted = [], 0
        if "schedule" in wl:
            for i, at in enumerate(wl["schedule"]):
                delay = t0 + at - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                submit(i, task, dict(data), wl.get("debug", False), at=t0 + at)
            while len(recs) < n:
                recs.append(done.get(timeout=wl.get("timeout", 900)))
        else:
            while submitted < min(conc, n):
                submit(submitted, task, dict(data), wl.get("debug", False))
                submitted += 1
            while len(recs) < n:
                rec = done.get(timeout=wl.get("timeout", 900))
                recs.append(rec)
                if submitted < n:
                    submit(submitted, task, dict(data), wl.get("debug", False))
                    submitted += 1
        t1 = time.monotonic()
        cpu1, eng1 = tree_cpu(pid), engine_cpu(eng)
        fine1, tids1 = tree_cpu_precise(pid)
        out["rss_mib"] = sampler.stop()
        out["anon_mib"] = sampler.anon_mib
        out["nprocs"] = sampler.nprocs
        if is_proctord:
            window_log = cluster.agent.log()[log_at:]
            # Taken, then claimed: served warm. Taken but unusable: fell back cold.
            out["warm_jobs"] = len(SERVED_RX.findall(window_log))
            out["warm_fallbacks"] = len(FALLBACK_RX.findall(window_log))
            out["students_ahead"] = len(AHEAD_RX.findall(window_log))
        if pooled:
            out.update(pool_footprint(AGENT_IDS[system]))
        out["lifetime"] = stop_with_rusage(cluster.agent)
    for rec in recs:
        err = check_result(wl, rec["values"])
        if err:
            out["errors"].append("job %d: %s" % (rec["i"], err))
        rec.pop("values")
    lat = [r["t_done"] - r["t_submit"] for r in recs]
    out.update(summarise(lat, max(r["t_done"] for r in recs) - t0))
    out["latencies_ms"] = [x * 1000 for x in lat]
    if tids0 <= tids1:
        out["cpu_per_job_ms"] = (fine1 - fine0) / n * 1000
        out["cpu_source"] = "schedstat"
    else:
        # A thread exited during the window: only the coarse counters saw it.
        out["cpu_per_job_ms"] = (cpu1 - cpu0) / n * 1000
        out["cpu_source"] = "stat ticks"
    out["threads"] = [len(tids0), len(tids1)]
    out["engine_cpu_per_job_ms"] = (eng1 - eng0) / n * 1000
    out["window_s"] = t1 - t0
    out["agent_log"] = cluster.agent.logpath
    if is_proctord:
        internal, phases = proctord_profile(cluster.agent.logpath)
        if len(internal) == n:
            out["internal_ms"] = internal
            out["internal_p50_ms"] = percentile(internal, 50)
            out["phases_ms"] = phases
        else:
            out["errors"].append("proctord's log shows %d finished jobs, expected %d"
                                 % (len(internal), n))
    return out


def run_floor(wl, args, workdir):
    conc, n = wl["concurrency"], wl["jobs"]
    data = dict(BASE_INPUT, **wl.get("input", {}))
    tmp = os.path.join(workdir, "floor_tmp")
    os.makedirs(tmp, exist_ok=True)
    fl = floor.Floor(TASKS, tmp)
    out = {"errors": []}
    mem = wl.get("memory", 64)
    # Warm-up, as for the agents.
    try:
        r, _ = fl.grade(COURSE, "trivial", dict(BASE_INPUT))
        err = check_result({}, r)
        if err:
            out["errors"].append("warm-up: " + err)
    except Exception as e:  # noqa: BLE001 - recorded, the run goes on
        out["errors"].append("warm-up: %s" % e)
    lock = threading.Lock()
    state = {"next": 0}
    recs = []

    def grade_one(i, at=None):
        """Grades job i; `at`: its scheduled arrival (open loop), which its
        latency then counts from (up to the exit code read, as grade's own)."""
        t_submit = time.monotonic()
        ph = {}
        try:
            result, latency = fl.grade(COURSE, wl["task"], dict(data),
                                       debug=wl.get("debug", False), memory_mib=mem, phases=ph)
            err = check_result(wl, result)
        except Exception as e:  # noqa: BLE001 - recorded, the run goes on
            latency, err = time.monotonic() - t_submit, "floor: %s" % e
        if at is not None:
            latency += t_submit - at
        with lock:
            recs.append({"i": i, "latency": latency, "t_done": time.monotonic(), "phases": ph})
            if err:
                out["errors"].append("job %d: %s" % (i, err))

    def worker():
        try:
            while True:
                with lock:
                    i = state["next"]
                    if i >= n:
                        return
                    state["next"] += 1
                grade_one(i)
        finally:
            fl.close_thread()

    def arrival(i, at):
        try:
            grade_one(i, at)
        finally:
            fl.close_thread()

    eng = engine_pids()
    eng0, self0 = engine_cpu(eng), os.times()
    t0 = time.monotonic()
    if "schedule" in wl:
        # Open loop: one thread per arrival, started at its scheduled time.
        threads = []
        for i, at in enumerate(wl["schedule"]):
            delay = t0 + at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            threads.append(threading.Thread(target=arrival, args=(i, t0 + at)))
            threads[-1].start()
    else:
        threads = [threading.Thread(target=worker) for _ in range(conc)]
        for t in threads:
            t.start()
    for t in threads:
        t.join()
    t1 = time.monotonic()
    eng1, self1 = engine_cpu(eng), os.times()
    fl.close()
    out["errors"] += fl.errors
    lat = [r["latency"] for r in recs]
    out.update(summarise(lat, max(r["t_done"] for r in recs) - t0))
    out["latencies_ms"] = [x * 1000 for x in lat]
    out["engine_cpu_per_job_ms"] = (eng1 - eng0) / n * 1000
    # Not an agent: the driver's own CPU, for reference only.
    out["driver_cpu_per_job_ms"] = ((self1.user + self1.system) - (self0.user + self0.system)) / n * 1000
    out["window_s"] = t1 - t0
    full = [r["phases"] for r in recs if r["phases"]]
    if full:
        out["phases_ms"] = {k: sum(p[k] for p in full) / len(full) * 1000 for k in full[0]}
    return out


def leftover_containers(systems):
    """Containers this benchmark left behind: the floor's, and each proctord's
    (which labels its containers, warm ones included, with its agent id). The
    Python agent labels nothing."""
    labels = [floor.LABEL_ROLE]
    labels += ["%s=%s" % (harness.AGENT_LABEL, AGENT_IDS[s]) for s in systems if s in AGENT_IDS]
    out = []
    for label in labels:
        out += subprocess.run(["docker", "ps", "-aq", "--filter", "label=" + label],
                              capture_output=True, text=True).stdout.split()
    return sorted(set(out))


def machine():
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    with open("/proc/meminfo") as f:
        mem_kib = int(f.readline().split()[1])
    docker = subprocess.run(["docker", "version", "-f", "{{.Server.Version}}"],
                            capture_output=True, text=True).stdout.strip()
    return {"cpus": os.cpu_count(), "cpu_model": model, "mem_gib": round(mem_kib / 2**20, 1),
            "kernel": platform.release(), "docker": docker, "python": platform.python_version()}


def run_part(system, wl, args, work, rnd, rounds):
    key = "%s/%s" % (wl["name"], system)
    wdir = os.path.join(work, "%s-%s-%d" % (wl["name"], system, rnd))
    os.makedirs(wdir)
    how = ("open loop at %.2f/s" % wl["open_rate"] if "open_rate" in wl
           else "at concurrency %d" % wl["concurrency"])
    print("bench: %-22s round %d/%d: %d jobs %s ..." % (key, rnd + 1, rounds, wl["jobs"], how),
          end="", flush=True)
    load0 = os.getloadavg()[0]
    try:
        if system == "floor":
            r = run_floor(wl, args, wdir)
        else:
            r = run_agent(system, wl, args, wdir)
    except Exception as e:  # noqa: BLE001 - one broken run must not hide the others
        r = {"errors": ["run failed: %s: %s" % (type(e).__name__, e)]}
    r["jobs"] = wl["jobs"]
    r["loadavg_1m"] = [load0, os.getloadavg()[0]]
    if r["errors"]:
        print(" BROKEN: %s" % "; ".join(r["errors"][:3]), flush=True)
    else:
        print(" p50 %.0f ms, %.2f jobs/s%s" % (
            r["p50_ms"], r["throughput"],
            ", %d served warm" % r["warm_jobs"] if system == "warm" else ""), flush=True)
    return r


def merge(parts):
    """One system's rounds of a workload, as if they were one run: latencies
    pooled, throughput over the summed busy time, peaks the largest, CPU per
    job over all jobs."""
    out = {"errors": [e for p in parts for e in p["errors"]], "rounds": len(parts)}
    if any("latencies_ms" not in p for p in parts):
        return out
    n = sum(p["jobs"] for p in parts)
    lat = [x / 1000 for p in parts for x in p["latencies_ms"]]
    out.update(summarise(lat, sum(p["wall_s"] for p in parts)))
    out["latencies_ms"] = [x * 1000 for x in lat]
    out["jobs"] = n
    out["round_p50_ms"] = [p["p50_ms"] for p in parts]
    out["loadavg_1m"] = [min(p["loadavg_1m"][0] for p in parts),
                         max(p["loadavg_1m"][1] for p in parts)]
    for k in ("rss_mib", "anon_mib", "nprocs"):
        if all(k in p for p in parts):
            out[k] = max(p[k] for p in parts)
    for k in ("cpu_per_job_ms", "engine_cpu_per_job_ms", "driver_cpu_per_job_ms"):
        if all(k in p for p in parts):
            out[k] = sum(p[k] * p["jobs"] for p in parts) / n
    for k in ("warm_jobs", "warm_fallbacks", "students_ahead"):
        if all(k in p for p in parts):
            out[k] = sum(p[k] for p in parts)
    # What the pool holds at the end of each round: the largest.
    for k in ("pool_containers", "pool_cgroup_mib", "pool_shim_rss_mib", "pool_shim_anon_mib"):
        if all(p.get(k) is not None for p in parts):
            out[k] = max(p[k] for p in parts)
        elif all(k in p for p in parts):
            out[k] = None
    if all("lifetime" in p for p in parts):
        out["lifetime"] = {"cpu_s": sum(p["lifetime"]["cpu_s"] for p in parts),
                           "maxrss_mib": max(p["lifetime"]["maxrss_mib"] for p in parts)}
    if all("cpu_source" in p for p in parts):
        out["cpu_source"] = ",".join(sorted({p["cpu_source"] for p in parts}))
    if all("internal_ms" in p for p in parts):
        out["internal_ms"] = [x for p in parts for x in p["internal_ms"]]
        out["internal_p50_ms"] = percentile(out["internal_ms"], 50)
    if all(p.get("phases_ms") for p in parts):
        keys = set.intersection(*(set(p["phases_ms"]) for p in parts))
        out["phases_ms"] = {k: sum(p["phases_ms"][k] * p["jobs"] for p in parts) / n
                            for k in parts[0]["phases_ms"] if k in keys}
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--smoke", action="store_true", help="a few jobs per workload (CI)")
    ap.add_argument("--jobs", type=int, help="trivial jobs per concurrency (default 200, smoke 5)")
    ap.add_argument("--build", default=os.path.join(ROOT, "build"),
                    help="CMake build directory holding proctord")
    ap.add_argument("--out", help="results folder (default results/<timestamp>)")
    ap.add_argument("--systems", default=",".join(DEFAULT_SYSTEMS),
                    help="subset of %s, comma-separated" % ",".join(SYSTEMS))
    ap.add_argument("--baseline", metavar="DIR",
                    help="a build directory of another proctord (e.g. the previous commit's), run "
                         "as the system 'baseline' in the same rounds: an A/B of two builds")
    ap.add_argument("--workloads", help="subset of workload names, comma-separated")
    ap.add_argument("--proctor-log", default="", help="PROCTOR_LOG for proctord (e.g. debug)")
    ap.add_argument("--open-rate", type=float, default=1.0, metavar="R",
                    help="arrivals per second of the open-loop workload (default 1)")
    ap.add_argument("--student-jobs", type=int, metavar="N",
                    help="jobs of the closed-loop student workload (default 20, smoke 2)")
    ap.add_argument("--open-jobs", type=int, metavar="N",
                    help="jobs of the open-loop workload (default 120, smoke 5)")
    ap.add_argument("--open-seed", type=int, default=12,
                    help="seed of the open-loop arrival times (the same for every system)")
    ap.add_argument("--rounds", type=int,
                    help="split each workload into this many turns per system (default 4, smoke 1)")
    args = ap.parse_args()
    if args.rounds is None:
        args.rounds = 1 if args.smoke else 4
    # The client logs its reconnection attempts after each backend stops: noise here.
    logging.getLogger("inginious").setLevel(logging.ERROR)

    systems = [s for s in args.systems.split(",") if s]
    for s in systems:
        if s not in SYSTEMS:
            ap.error("unknown system %r" % s)
    if args.baseline and "baseline" not in systems:
        systems.append("baseline")
    if "baseline" in systems and not args.baseline:
        ap.error("the system 'baseline' needs --baseline DIR")
    if args.open_rate <= 0:
        ap.error("--open-rate must be positive")
    wls = workloads(args.smoke, args.jobs, args.open_rate, args.open_jobs, args.student_jobs)
    if args.workloads:
        keep = set(args.workloads.split(","))
        wls = [w for w in wls if w["name"] in keep or w["task"] in keep]
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out_dir = args.out or os.path.join(ROOT, "results", stamp)
    os.makedirs(out_dir, exist_ok=True)
    harness.require_docker()
    if any(w["task"] == "hostile" for w in wls):
        build_hostile_image()
    if (set(systems) & {"proctord", "warm"}
            and not os.access(os.path.join(args.build, "proctord"), os.X_OK)):
        sys.exit("bench: %s/proctord is missing (build it first)" % args.build)
    if args.baseline and not os.access(os.path.join(args.baseline, "proctord"), os.X_OK):
        sys.exit("bench: %s/proctord is missing (build the baseline first)" % args.baseline)
    # The baseline runs cold; a build from before the pool has no --no-pool.
    args.baseline_has_pool = bool(args.baseline) and "--no-pool" in proctord_help(args.baseline)
    if "warm" in systems and "--warm " not in proctord_help(args.build):
        sys.exit("bench: %s/proctord has no --warm (no warm pool in that build)" % args.build)

    for wl in wls:
        if "open_rate" in wl:
            wl["seed"] = args.open_seed
    doc = {"date": time.strftime("%Y-%m-%d %H:%M:%S %z"), "smoke": args.smoke,
           "machine": machine(), "workloads": wls, "systems": systems, "rounds": args.rounds, "runs": {}}
    failed = False
    work = tempfile.mkdtemp(prefix="proctor-bench-")
    for wl in wls:
        rounds = max(1, min(args.rounds, wl["jobs"]))
        allowed = wl.get("systems", SYSTEMS)
        if "proctord" in allowed:
            allowed = list(allowed) + list(PROCTORDS)
        wsys = [s for s in systems if s in allowed]
        if not wsys:
            continue
        parts = {system: [] for system in wsys}
        for rnd in range(rounds):
            # Systems take turns, in a rotating order, so that a change in the
            # machine's load during the run weighs on all of them alike.
            order = wsys[rnd % len(wsys):] + wsys[:rnd % len(wsys)]
            share = wl["jobs"] // rounds + (1 if rnd < wl["jobs"] % rounds else 0)
            part_wl = dict(wl, jobs=share)
            if "open_rate" in wl:
                # The same arrival times for every system of the round.
                part_wl["schedule"] = arrivals(share, wl["open_rate"], wl["seed"] + rnd)
            for system in order:
                part = run_part(system, part_wl, args, work, rnd, rounds)
                parts[system].append(part)
                left = leftover_containers(systems)
                if left:
                    part["errors"].append("containers left behind: %s" % " ".join(left))
                    subprocess.run(["docker", "rm", "-f"] + left, capture_output=True)
        for system in wsys:
            r = merge(parts[system]) if len(parts[system]) > 1 else parts[system][0]
            doc["runs"]["%s/%s" % (wl["name"], system)] = r
            if r["errors"]:
                failed = True
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump(doc, f, indent=1)
    missing = report.write(out_dir)
    if missing:
        failed = True
        print("bench: metrics missing: %s" % ", ".join(missing))
    print("bench: report in %s/report.md (agent logs and job dirs under %s)" % (out_dir, work))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
