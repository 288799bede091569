"""Scale-out across hosts: the real backend and three proctord, each on its own host.

hosts.py makes the hosts (network namespaces cabled to a bridge, each with its
own address); the Docker engine is shared. Jobs of tests/integration/courses/scale
are submitted through the real INGInious client faster than one agent could take
them. Then one agent's cable is pulled mid-job. What INGInious defines for that
(inginious/backend/backend.py, 0.9.2): the backend pings every agent every
second; an agent that has not answered 6 pings in a row is removed, and each of
the jobs it was running is answered to the client with ("crash", "Agent
restarted"); the jobs still waiting go to the other agents. proctord, on its
side, hears nothing from the backend for 10 s: it abandons its jobs (removes
their containers, answers nothing: the backend already did), reconnects and
says hello again, which gets through once the cable is back.
"""
import collections
import os
import re
import shutil
import tempfile
import time

import pytest

import harness
import hosts

HERE = os.path.dirname(os.path.abspath(__file__))
CRASH_LOST_AGENT = ("crash", "Agent restarted")  # the backend's own text (_recover_jobs)
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                     "invariant broken")


@pytest.fixture(scope="module", autouse=True)
def docker_and_netns():
    harness.require_docker()
    hosts.require_netns()
    harness.require_default_image()


@pytest.fixture
def tasks_dir():
    d = tempfile.mkdtemp(prefix="proctor-tasks-")
    os.symlink(os.path.join(HERE, "courses", "scale"), os.path.join(d, "scale"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


def work(c, n, seconds):
    return [c.submit("scale", "work", {"seconds": str(seconds)}) for _ in range(n)]


def wait_all(results, timeout):
    deadline = time.monotonic() + timeout
    return [r.wait(max(1, deadline - time.monotonic())) for r in results]


def spread(c, results):
    """How many of `results` each agent ran, by friendly name (from the agents' logs)."""
    owners = collections.Counter()
    for r in results:
        a = c.agent_of(r.job_id)
        assert a is not None, "job %s was run by no agent, or by several" % r.job_id
        owners[a.name] += 1
    return owners


def hellos(c, agent):
    return len(re.findall(r"Agent .* \(%s\) said hello" % re.escape(agent.name), c.backend.log()))


def drops(c):
    """How many times the backend gave up on each agent."""
    log = c.backend.log()
    return {a.name: log.count("(%s) does not respond" % a.name) for a in c.agents}


def cut_one(c, victim, per_agent):
    """A wave of jobs on every agent; the victim's cable is pulled mid-job, then put back."""
    others = [a for a in c.agents if a is not victim]
    # One long job per agent first (all are idle: the backend gives one to each),
    # longer than proctord's 10 s of silence, so the victim still has it then;
    # short ones queued behind, for the agents left to grade during the cut.
    wave = work(c, len(c.agents), 15) + work(c, (per_agent - 1) * len(c.agents), 2)
    ids = {r.job_id for r in wave}
    # Every agent has one of this wave's jobs running (one slot each).
    harness.wait_for(lambda: all(a.started() & ids for a in c.agents), 60,
                     "every agent to be running a job of the wave")
    answered = {r.job_id for r in wave if r.event.is_set()}
    inflight = (victim.jobs() & ids) - answered
    assert inflight, "the victim should be running a job when its cable is pulled"
    hello_count = hellos(c, victim)
    abandoned = r"backend silent for more than \d+ s: abandoning [1-9]\d* job"
    drops_before = drops(c)
    abandoned_count = len(re.findall(abandoned, victim.proc.log()))
    c.net.cut(victim.host)
    cut_at = time.monotonic()
    try:
        answers = wait_all(wave, 120)
        # The backend failed exactly the jobs the lost agent was running, with its
        # own answer, once its heartbeat gave up on that agent (and on no other).
        for r, a in zip(wave, answers):
            if r.job_id in inflight:
                assert a["result"] == CRASH_LOST_AGENT, (r.job_id, a)
            else:
                assert a["result"] == ("success", "worked"), (r.job_id, a)
                assert c.agent_of(r.job_id) in others, "%s ran on the lost agent" % r.job_id
        assert drops(c) == dict(drops_before, **{victim.name: drops_before[victim.name] + 1})
        # The others kept grading: the wave's other jobs (queued behind the cut
        # ones) were graded after the cable was pulled.
        after = [r for r in wave if r.job_id not in inflight and r.done_at > cut_at]
        assert len(after) >= len(wave) - len(inflight) - len(others), spread(c, after)
        # The lost agent, hearing nothing, abandoned its job and removed its container,
        # though it still cannot reach the backend.
        victim.proc.wait_log(abandoned, 60, count=abandoned_count + 1)
        harness.wait_for(lambda: not harness.job_containers(victim.label(), victim.proc.log()),
                         60, "the lost agent's containers to be removed")
        assert victim.proc.alive()
    finally:
        c.net.restore(victim.host)
    # The cable is back: the agent registers again, from its own address.
    harness.wait_for(lambda: hellos(c, victim) > hello_count, 90,
                     "%s to say hello again" % victim.name)
    harness.wait_for(lambda: victim.host.addr in c.net.connections(c.backend_host,
                                                                   hosts.BACKEND_PORT),
                     30, "the backend to see %s's connection" % victim.host.addr)
    assert not harness.job_containers(victim.label(), victim.proc.log())
    return wave, inflight


def scenario(tasks_dir, per_agent, victims):
    c = hosts.HostCluster(agents=3, concurrency=1, tasks=tasks_dir)
    tag = None
    all_jobs, crashed = [], set()
    lost_by = collections.defaultdict(set)
    with c:
        tag = c.net.tag
        try:
            # Three hosts, three addresses: the backend sees one connection from each.
            want = sorted(a.host.addr for a in c.agents)
            harness.wait_for(lambda: c.net.connections(c.backend_host, hosts.BACKEND_PORT) == want,
                             30, "one connection from each agent's address %s" % want)

            # More jobs than one agent could take at once: every agent gets some.
            first = work(c, per_agent * 3, 2)
            for a in wait_all(first, 180):
                assert a["result"] == ("success", "worked"), a
            ran = spread(c, first)
            assert set(ran) == {a.name for a in c.agents}, ran
            all_jobs += first

            for v in victims:
                wave, lost = cut_one(c, c.agents[v], per_agent)
                all_jobs += wave
                crashed |= lost
                lost_by[v] |= lost
                # Back in the pool: a new wave reaches every agent, the victim too.
                again = work(c, 3, 1)
                for a in wait_all(again, 120):
                    assert a["result"] == ("success", "worked"), a
                assert set(spread(c, again)) == {a.name for a in c.agents}, spread(c, again)
                all_jobs += again
        finally:
            for a in c.agents:
                print("---- %s (%s) log, last lines ----\n%s" % (
                    a.name, a.host.addr, "\n".join(a.proc.log().splitlines()[-30:])))
        for a in c.agents:
            assert a.proc.stop() == 0, "%s exited with %s" % (a.name, a.proc.popen.returncode)
        # The lost agent stopped its job when it gave the backend up (the 15 s job
        # would have ended in success since): the job ended (its timings line) and
        # got no result of its own, which the backend would have refused anyway.
        for v in victims:
            for job in lost_by[v]:
                log = c.agents[v].proc.log()
                assert "job %s: timings" % job in log, job
                assert not re.search(r"job %s: (success|failed|killed|timeout|crash)" % job, log), \
                    "job %s of the lost agent ran to its end instead of being abandoned" % job
        backend_log = c.backend.log()
    # Every job answered once to the client, and once on the agents' wire: each
    # graded job's AgentJobDone reached the backend exactly once; the lost jobs'
    # none (a result still on the pulled cable may arrive later, from an agent the
    # backend no longer knows, and is dropped: counted, not asserted away).
    assert all(r.calls == 1 for r in all_jobs), [(r.job_id, r.calls) for r in all_jobs]
    for r in all_jobs:
        done = backend_log.count("Job %s finished on agent" % r.job_id)
        assert done == (0 if r.job_id in crashed else 1), (r.job_id, done)
    assert "was not running" not in backend_log
    late = len(re.findall(r"from non-registered agent", backend_log))
    print("jobs %d, lost with their agent %d, late results from a forgotten agent %d"
          % (len(all_jobs), len(crashed), late))
    for a in c.agents:
        log = a.proc.log()
        for marker in SANITIZER_MARKERS:
            assert marker not in log, "%s: %s" % (a.name, log[-4000:])
        assert not harness.containers(a.label()), "containers of %s left behind" % a.name
    assert not hosts.leftover_netns(tag), "network namespaces left behind"
    harness.cleanup_dir(c.workdir)


def test_three_agents_across_hosts(tasks_dir):
    """Jobs spread over three hosts; one cable pulled mid-job and put back."""
    scenario(tasks_dir, per_agent=3, victims=[2])


def test_three_agents_across_hosts_long(tasks_dir):
    """The soak variant: more jobs, and each agent's cable pulled in turn."""
    scenario(tasks_dir, per_agent=6, victims=[0, 1, 2, 0])
