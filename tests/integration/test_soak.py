"""Soak: many mixed jobs through the real backend and one proctord; nothing grows.

Jobs of tests/integration/courses/scale go in batches of 25 (trivial, run_student,
1 MiB of feedback and of stdout, wall-clock timeouts, kills from the client once
the job's container started). After each batch, once every job is answered and
the agent has removed every container, the agent is sampled: its RSS, its open
fds (/proc/PID/fd), its threads (/proc/PID/status), and the RSS of its policy
worker (the shipped policies are given as files, so every decision goes through
it). After the warm-up (the first quarter of the jobs, at least 50), each
series' least-squares slope must stay within a stated bound (SHORT_BOUNDS,
LONG_BOUNDS). Every job must be
answered exactly once (to the client, and on the agent's wire: one AgentJobDone
per job in the backend's log), with the answer its kind calls for, and no
container may be left.

    tests: soak.short (150 jobs, default run), soak.long (2,000 jobs, label soak)
    by hand: tools/soak.sh [--jobs N] [--build DIR]  (prints the samples and slopes)
"""
import argparse
import collections
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import harness

HERE = os.path.dirname(os.path.abspath(__file__))
BATCH = 25
CONCURRENCY = 4
# One batch: (task, how many, the answer it must get). "linger" is killed by the
# client once its container started; the others end on their own.
MIX = [
    ("quick", 10, ("success", "quick")),
    ("student", 5, ("success", "student said 42")),
    ("bigout", 4, ("success", "x" * 1048576)),
    ("timeout", 3, ("timeout", "")),
    ("linger", 3, ("killed", "")),
]
# Bounds on the slopes after warm-up, per 1,000 jobs. Samples are taken at quiet
# points, yet the heap's top moves by a few MiB between them (glibc keeps or
# trims it), so a short run can only see gross growth: its bounds catch leaking
# a job's output buffers or a few KiB per job, a fd per 20 jobs or a thread per
# 50. The long run (61 samples over 1,500 jobs) catches 1 KiB, one fd per 200
# jobs and one thread per 500. Each holds under ASan, whose quarantine of freed
# memory is capped for the agent (below): it would otherwise hold 256 MiB of
# freed blocks, growing RSS by design until full.
# Under ASan (a proctord linked with libasan), RSS also holds the sanitizer's own
# books (the stack trace of every allocation site, shadow memory), which keep
# growing slowly for thousands of jobs: the long run's RSS bounds are 4 MiB there.
SHORT_BOUNDS = {"rss_kib": 32768.0, "fds": 50.0, "threads": 20.0, "worker_rss_kib": 32768.0}
LONG_BOUNDS = {"rss_kib": 1024.0, "fds": 5.0, "threads": 2.0, "worker_rss_kib": 1024.0}
LONG_BOUNDS_ASAN = dict(LONG_BOUNDS, rss_kib=4096.0, worker_rss_kib=4096.0)
LONG_RUN = 1000  # jobs from which the long bounds apply


def bounds(jobs, asan):
    if jobs < LONG_RUN:
        return SHORT_BOUNDS
    return LONG_BOUNDS_ASAN if asan else LONG_BOUNDS


def built_with_asan(proctord):
    out = subprocess.run(["ldd", proctord], capture_output=True, text=True).stdout
    return "libasan" in out


SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                     "invariant broken")


class LogTail:
    """Reads a growing log from where it stopped; collects the ids of started jobs."""

    STARTED = re.compile(r"job (\S+): container \w+ started")

    def __init__(self, path):
        self.path, self.offset, self.rest, self.started = path, 0, "", set()

    def poll(self):
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            data = f.read()
        self.offset += len(data)
        lines = (self.rest + data.decode("utf-8", "replace")).split("\n")
        self.rest = lines.pop()
        for line in lines:
            m = self.STARTED.search(line)
            if m:
                self.started.add(m.group(1))
        return self.started


def proc_status(pid):
    fields = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            fields[k] = v.split()
    return fields


def children(pid):
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


def sample(pid, jobs):
    st = proc_status(pid)
    worker = 0
    for child in children(pid):
        try:
            worker += int(proc_status(child)["VmRSS"][0])
        except (OSError, KeyError):
            pass  # it just ended (a new one starts on the next call)
    return {"jobs": jobs, "rss_kib": int(st["VmRSS"][0]), "threads": int(st["Threads"][0]),
            "fds": len(os.listdir("/proc/%d/fd" % pid)), "worker_rss_kib": worker}


def slope(points):
    """Least-squares slope of [(x, y)]."""
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / sxx if sxx else 0.0


def batch_plan(n):
    """The tasks of a batch of n jobs, in the proportions of MIX, interleaved."""
    total = sum(k for _, k, _ in MIX)
    plan = []
    for task, k, want in MIX:
        plan += [(task, want)] * max(1, round(k * n / total))
    plan = plan[:n]
    # Interleave, so that the kinds run side by side rather than kind after kind.
    return [plan[i] for i in sorted(range(len(plan)), key=lambda i: (i * 7) % len(plan))]


def run_soak(jobs, build_dir=None, out=print):
    """Runs `jobs` mixed jobs; returns (samples, slopes per 1,000 jobs, stats)."""
    harness.require_docker()
    tasks = tempfile.mkdtemp(prefix="proctor-tasks-")
    os.symlink(os.path.join(HERE, "courses", "scale"), os.path.join(tasks, "scale"))
    # The shipped policies as an admin's files: every decision goes through the
    # policy worker process, which is sampled too.
    policies = os.path.join(tasks, "policies")
    shutil.copytree(os.path.join(harness.ROOT, "policies"), policies)
    env = dict(os.environ)
    if "quarantine_size_mb" not in env.get("ASAN_OPTIONS", ""):
        env["ASAN_OPTIONS"] = (env.get("ASAN_OPTIONS", "") + ":quarantine_size_mb=16").lstrip(":")
    # glibc's dynamic thresholds keep up to twice the largest freed block (a job's
    # 1 MiB output) at the heap's top, so that RSS at a quiet point jumps between
    # two levels 2 MiB apart from batch to batch; fixed ones make a quiet point
    # quiet (blocks of 128 KiB and more are mapped and unmapped; the top is trimmed).
    env.setdefault("MALLOC_MMAP_THRESHOLD_", "131072")
    env.setdefault("MALLOC_TRIM_THRESHOLD_", "131072")
    c = harness.Cluster(tasks=tasks, concurrency=CONCURRENCY, build_dir=build_dir,
                        policies=policies, friendly_name="soak-%d" % os.getpid())
    c.agent_env = env
    samples, answered, started_at = [], [], time.monotonic()
    try:
        with c:
            pid = c.agent.popen.pid
            label = c.agent_label()
            tail = LogTail(c.agent.logpath)
            samples.append(sample(pid, 0))
            done = 0
            while done < jobs:
                plan = batch_plan(min(BATCH, jobs - done))
                batch = [(c.submit("scale", task), want) for task, want in plan]
                to_kill = [r for (r, want) in batch if want[0] == "killed"]
                while to_kill:
                    harness.wait_for(lambda: tail.poll() & {r.job_id for r in to_kill}, 120,
                                     "a job to kill to start")
                    for r in [r for r in to_kill if r.job_id in tail.started]:
                        c.kill(r)
                        to_kill.remove(r)
                deadline = time.monotonic() + 300
                for r, want in batch:
                    a = r.wait(max(1, deadline - time.monotonic()))
                    assert a["result"] == want, (r.job_id, a["result"][0], a["result"][1][:200])
                    answered.append(r)
                done += len(batch)
                # Quiet point: every container of the agent removed (but the warm ones).
                harness.wait_for(lambda: not harness.job_containers(label, c.agent.log()), 60,
                                 "the agent's containers to be removed")
                s = sample(pid, done)
                samples.append(s)
                out("jobs %5d  rss %7d KiB  fds %4d  threads %3d  policy worker rss %7d KiB  "
                    "(%.0f s)" % (s["jobs"], s["rss_kib"], s["fds"], s["threads"],
                                  s["worker_rss_kib"], time.monotonic() - started_at))
            assert c.agent.stop() == 0, "proctord exited with %s" % c.agent.popen.returncode
            agent_log = c.agent.log()
            backend_log = c.backend.log()
            assert not harness.containers(label), "containers left behind"
    finally:
        shutil.rmtree(tasks, ignore_errors=True)
    for marker in SANITIZER_MARKERS:
        assert marker not in agent_log, agent_log[-6000:]
    # Exactly once, to the client and on the agent's wire.
    assert all(r.event.is_set() for r in answered) and len(answered) == jobs
    finished = collections.Counter(re.findall(r"Job (\S+) finished on agent", backend_log))
    once = [r.job_id for r in answered if finished[r.job_id] != 1]
    assert not once, "jobs not answered exactly once by the agent: %s" % once[:10]
    assert "was not running" not in backend_log and "non-registered agent" not in backend_log
    warm = max(50, jobs // 4)
    slopes = {}
    for key in LONG_BOUNDS:
        pts = [(s["jobs"], s[key]) for s in samples if s["jobs"] >= warm]
        slopes[key] = 1000.0 * slope(pts) if len(pts) >= 2 else 0.0
    stats = {"jobs": jobs, "seconds": time.monotonic() - started_at, "warmup_jobs": warm,
             "asan": built_with_asan(c.agent_argv()[0]),
             "samples_after_warmup": sum(1 for s in samples if s["jobs"] >= warm)}
    harness.cleanup_dir(c.workdir)
    return samples, slopes, stats


def report(slopes, stats, out=print):
    out("%(jobs)d jobs in %(seconds).0f s; slopes per 1,000 jobs after %(warmup_jobs)d jobs of "
        "warm-up (%(samples_after_warmup)d samples):" % stats)
    if stats["samples_after_warmup"] < 3:
        out("  (too few samples after warm-up for a slope: give --jobs 150 or more)")
    if stats["asan"]:
        out("  (proctord built with ASan)")
    for key, bound in bounds(stats["jobs"], stats["asan"]).items():
        out("  %-15s %+10.2f  (bound +-%g)" % (key, slopes[key], bound))


def check(slopes, stats):
    b = bounds(stats["jobs"], stats["asan"])
    bad = {k: v for k, v in slopes.items() if abs(v) > b[k]}
    assert not bad, "slopes past their bounds (per 1,000 jobs): %s" % bad


def test_soak_short():
    _, slopes, stats = run_soak(150)
    report(slopes, stats)
    check(slopes, stats)


def test_soak_long():
    _, slopes, stats = run_soak(2000)
    report(slopes, stats)
    check(slopes, stats)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--jobs", type=int, default=2000)
    ap.add_argument("--build", default=None, help="build directory holding proctord")
    args = ap.parse_args()
    _, slopes, stats = run_soak(args.jobs, args.build, out=lambda s: print(s, flush=True))
    report(slopes, stats)
    check(slopes, stats)


if __name__ == "__main__":
    sys.exit(main())
