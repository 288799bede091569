"""The best a warm pool can do on this engine, closed loop at concurrency 1 (issue 12).

No backend, no agent, no policy: a client grades trivial jobs back to back, each
taking a container that was created, attached and started before it arrived (its
job directory already filled, nothing to update), and each answered as soon as the
runner's result frame arrives. Refill threads start a new container as soon as one
is taken; removal runs off the critical path. This is an *ideal* pool: every step an
agent adds (the backend's round trip, filling the job directory at the claim, the
limits update, validating the result) is left out, so no agent can beat its figures.

Configurations (each run back to back with the floor, in the same process):
  size    containers kept waiting or being made (1, 2, 3)
  making  refills in parallel (1, 2)
  miss    what a job does when none is waiting: "cold" (makes its own, as proctord)
          or "wait" (takes the next one being made)

The floor is bench/floor.py's sequence (create, attach, start, run to EOF, wait),
one job at a time: the denominator of issue 12's targets.

usage: python bench/pool_bound.py [--jobs N] [--out FILE.json]
"""
import argparse
import collections
import json
import os
import queue
import shutil
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import floor  # noqa: E402

TASKS = os.path.join(HERE, "courses")
COURSE, TASK = "bench", "trivial"
INPUT = {"@username": "student", "@lang": "en", "@state": "", "@attempts": "1"}
LABEL = "org.proctor.bench.bound"


def percentile(values, p):
    s = sorted(values)
    k = (len(s) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


class Made:
    """A started container whose runner waits for `start`."""

    def __init__(self, cid, att, jdir):
        self.cid, self.att, self.jdir = cid, att, jdir


class IdealPool:
    def __init__(self, tmpdir, size, making):
        self.tmpdir = tmpdir
        self.size = size
        self.facts = floor.engine_facts()
        self.ready = collections.deque()
        self.in_flight = 0
        self.cv = threading.Condition()
        self.stopping = False
        self.removals = queue.Queue()
        self.errors = []
        self.threads = [threading.Thread(target=self._refill, daemon=True) for _ in range(making)]
        self.threads.append(threading.Thread(target=self._remove, daemon=True))
        for t in self.threads:
            t.start()

    def make(self, d):
        """Create, attach, start one container (the job directory filled): a Made."""
        jdir = floor.make_job_dir(self.tmpdir, os.path.join(TASKS, COURSE, TASK),
                                  os.path.join(TASKS, COURSE, "$common"))
        binds = ["%s/task:/task:rw" % jdir, "%s/sockets:/sockets:rw" % jdir,
                 "%s/course/common:/course/common:ro" % jdir,
                 "%s/course/common/student:/course/common/student:ro" % jdir]
        body = floor.create_body(self.facts, {LABEL: "1"}, floor.host_config(self.facts, binds, 64))
        cid = d.call("POST", "/containers/create", body)["Id"]
        try:
            att = floor.Attach(cid)
            d.call("POST", "/containers/%s/start" % cid)
        except Exception:
            d.call("DELETE", "/containers/%s?force=1&v=1" % cid)
            shutil.rmtree(jdir, ignore_errors=True)
            raise
        return Made(cid, att, jdir)

    def _refill(self):
        d = floor.Docker()
        while True:
            with self.cv:
                while not self.stopping and len(self.ready) + self.in_flight >= self.size:
                    self.cv.wait()
                if self.stopping:
                    break
                self.in_flight += 1
            try:
                m = self.make(d)
            except Exception as e:  # noqa: BLE001 - reported at the end
                self.errors.append("refill: %s" % e)
                m = None
            with self.cv:
                self.in_flight -= 1
                if m:
                    self.ready.append(m)
                self.cv.notify_all()
        d.close()

    def _remove(self):
        d = floor.Docker()
        while True:
            m = self.removals.get()
            if m is None:
                break
            try:
                m.att.close()
                d.call("DELETE", "/containers/%s?force=1&v=1" % m.cid)
            except Exception as e:  # noqa: BLE001
                self.errors.append("remove: %s" % e)
            shutil.rmtree(m.jdir, ignore_errors=True)
        d.close()

    def take(self, wait):
        with self.cv:
            while wait and not self.ready and not self.stopping:
                self.cv.wait()
            m = self.ready.popleft() if self.ready else None
            self.cv.notify_all()
            return m

    def close(self):
        with self.cv:
            self.stopping = True
            self.cv.notify_all()
        # A refill under way still lands in `ready`: collect once they are all back.
        for t in self.threads[:-1]:
            t.join()
        with self.cv:
            left = list(self.ready)
            self.ready.clear()
        for m in left:
            self.removals.put(m)
        self.removals.put(None)
        self.threads[-1].join()


def answer(m):
    """Sends `start`, reads until the result frame: the result map."""
    m.att.send_msg({"type": "start", "input": INPUT, "debug": False, "envtypes": {"docker": True},
                    "run_as_root": False, "shared_kernel": True})
    for msg in m.att.messages():
        if msg.get("type") == "result":
            return msg.get("result")
    raise floor.FloorError("no result frame")


def run_pool(tmpdir, jobs, size, making, miss):
    pool = IdealPool(tmpdir, size, making)
    d = floor.Docker()
    lat, warm = [], 0
    try:
        # Let the pool fill, as a pool that waited for its first job would be.
        with pool.cv:
            while len(pool.ready) < size:
                pool.cv.wait()
        t_start = time.monotonic()
        for _ in range(jobs):
            t0 = time.monotonic()
            m = pool.take(wait=(miss == "wait"))
            if m:
                warm += 1
            else:
                m = pool.make(d)
            r = answer(m)
            lat.append(time.monotonic() - t0)
            if not isinstance(r, dict) or r.get("result") != "success":
                pool.errors.append("result %r" % r)
            pool.removals.put(m)
        wall = time.monotonic() - t_start
    finally:
        d.close()
        pool.close()
    return {"p50_ms": percentile(lat, 50) * 1000, "p95_ms": percentile(lat, 95) * 1000,
            "throughput": jobs / wall, "warm": warm, "jobs": jobs, "errors": pool.errors[:5]}


def run_floor(tmpdir, jobs):
    fl = floor.Floor(TASKS, tmpdir)
    lat = []
    t_start = time.monotonic()
    for _ in range(jobs):
        r, latency = fl.grade(COURSE, TASK, dict(INPUT))
        lat.append(latency)
    wall = time.monotonic() - t_start
    fl.close()
    return {"p50_ms": percentile(lat, 50) * 1000, "p95_ms": percentile(lat, 95) * 1000,
            "throughput": jobs / wall, "jobs": jobs, "errors": fl.errors[:5]}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--jobs", type=int, default=100)
    ap.add_argument("--out", help="write the figures as JSON here")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="proctor-bound-")
    os.chmod(tmp, 0o755)
    out = []
    configs = [(s, m, miss) for s in (1, 2, 3) for m in (1, 2) if m <= s
               for miss in ("cold", "wait")]
    try:
        floor_fig = run_floor(tmp, 10)  # warm-up
        for size, making, miss in configs:
            floor_fig = run_floor(tmp, args.jobs // 2)
            r = run_pool(tmp, args.jobs, size, making, miss)
            r.update({"size": size, "making": making, "miss": miss,
                      "floor_p50_ms": floor_fig["p50_ms"],
                      "floor_throughput": floor_fig["throughput"]})
            r["p50_ratio"] = r["p50_ms"] / floor_fig["p50_ms"]
            r["throughput_ratio"] = r["throughput"] / floor_fig["throughput"]
            out.append(r)
            print("size %d making %d miss %-4s: p50 %6.1f ms (%.3f x floor %.1f ms), p95 %6.1f, "
                  "%.2f jobs/s (%.2f x floor), %d/%d warm%s" % (
                      size, making, miss, r["p50_ms"], r["p50_ratio"], floor_fig["p50_ms"],
                      r["p95_ms"], r["throughput"], r["throughput_ratio"], r["warm"], r["jobs"],
                      ", errors: %s" % r["errors"] if r["errors"] else ""), flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(out, f, indent=1)
    best = min(out, key=lambda r: r["p50_ratio"])
    print("best p50: %.3f x floor (size %d, making %d, miss %s)" % (
        best["p50_ratio"], best["size"], best["making"], best["miss"]))


if __name__ == "__main__":
    main()
