"""--log-format json: the events an admin queries carry their values as "fields" (issue 14).

One proctord with the real INGInious backend and client and the real Docker engine: a job
with student containers (job_received, container_created/removed for both roles,
job_finished), an admin policy that raises (policy_failure), an image that disappears
between discovery and the job (docker_error from the engine, and a crash), and the backend
connection (backend_connected). Every line must parse with Python's json.
"""
import json
import os
import shutil
import subprocess
import tempfile

import pytest

import harness

IMAGE = "proctor-test/ops14-gone"
ENV = "ops14-gone"


@pytest.fixture
def tasks_dir():
    harness.require_docker()
    d = tempfile.mkdtemp(prefix="proctor-tasks-")
    os.symlink(os.path.join(harness.DEFAULT_TASKS, "demo"), os.path.join(d, "demo"))
    # A task on an environment whose image the test removes before the job.
    task = os.path.join(d, "ops", "gone")
    os.makedirs(task)
    with open(os.path.join(task, "task.yaml"), "w") as f:
        f.write("environment_id: %s\nenvironment_type: docker\n"
                "environment_parameters:\n  limits: {time: 10, hard_time: 30, memory: 64}\n" % ENV)
    with open(os.path.join(task, "run"), "w") as f:
        f.write("#!/bin/sh\nfeedback-result success\n")
    os.chmod(os.path.join(task, "run"), 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def doomed_image():
    """The default image under another environment name (no layer of its own)."""
    ctx = tempfile.mkdtemp(prefix="proctor-img-")
    try:
        with open(os.path.join(ctx, "Dockerfile"), "w") as f:
            f.write("FROM proctor/env-default\nLABEL org.inginious.grading.name=%s\n" % ENV)
        subprocess.run(["docker", "build", "-q", "-t", IMAGE, ctx], check=True,
                       capture_output=True)
    finally:
        shutil.rmtree(ctx, ignore_errors=True)
    yield IMAGE
    subprocess.run(["docker", "rmi", "-f", IMAGE], capture_output=True)


def events(log, name, job=None):
    return [o for o in log if o.get("event") == name and (job is None or o.get("job") == job)]


def test_json_log_fields(tasks_dir, doomed_image):
    pol = tempfile.mkdtemp(prefix="proctor-it-jsonlog-pol-")
    limits_lua = os.path.join(pol, "limits.lua")
    with open(limits_lua, "w") as f:
        f.write("return { clamp_limits = function(req) error('broken on purpose') end }\n")
    c = harness.Cluster(tasks=tasks_dir, concurrency=1, friendly_name="it-jsonfields",
                        policies=pol, extra_args=["--log-format", "json"])
    try:
        with c:
            c.wait_environment("docker", ENV)
            ok = c.submit("demo", "student", harness.DEMO_INPUTS["student"])
            r = ok.wait(120)
            assert r["result"][0] == "success", r
            subprocess.run(["docker", "rmi", "-f", IMAGE], check=True, capture_output=True)
            gone = c.submit("ops", "gone", {})
            r2 = gone.wait(120)
            assert r2["result"] == ("crash", "Cannot create container."), r2
            # The student containers are removed after the result: wait for their lines.
            c.agent.wait_log(r'"event":"container_removed"', 60, count=4)
            text = c.agent.log()
    finally:
        shutil.rmtree(pol, ignore_errors=True)
    assert not harness.containers(c.agent_label())
    harness.cleanup_dir(c.workdir)

    log = [json.loads(line) for line in text.splitlines() if line.strip()]
    for o in log:
        assert {"time", "level", "area", "msg"} <= set(o), o
        if "event" in o:
            assert isinstance(o["fields"], dict), o

    conn = events(log, "backend_connected")
    assert conn and conn[0]["fields"]["address"] == c.agent_addr, conn

    rec = events(log, "job_received", ok.job_id)
    assert len(rec) == 1, rec
    assert rec[0]["fields"] == {"course": "demo", "task": "student", "environment_type": "docker",
                                "environment": "default", "debug": "off", "time_s": 20,
                                "hard_time_s": 60, "memory_mib": 64}, rec

    # A grading container from the warm pool was created before its job: it is claimed by it.
    created = events(log, "container_created", ok.job_id) + \
        events(log, "container_claimed", ok.job_id)
    roles = sorted(o["fields"]["role"] for o in created)
    assert roles == ["grading", "student", "student", "student"], created
    for o in created:
        assert o["fields"]["image"].startswith("sha256:"), o
        assert len(o["fields"]["container"]) == 64, o
    removed = {o["fields"]["container"] for o in events(log, "container_removed", ok.job_id)}
    assert removed == {o["fields"]["container"] for o in created}, removed

    fin = events(log, "job_finished", ok.job_id)
    assert len(fin) == 1, fin
    f = fin[0]["fields"]
    assert fin[0]["level"] == "info" and fin[0]["area"] == "job", fin
    assert (f["result"], f["grade"], f["text"]) == ("success", 100, None), f
    assert (f["course"], f["task"], f["environment"]) == ("demo", "student", "default"), f
    grading = [o["fields"]["container"] for o in created if o["fields"]["role"] == "grading"]
    assert f["container"] == grading[0], (f, grading)
    assert f["student_containers"] == 3, f
    for k in ("create_ms", "attach_ms", "start_ms", "run_ms", "report_ms", "cpu_ms"):
        assert isinstance(f[k], int) and f[k] >= 0, (k, f)
    assert f["total_ms"] >= f["create_ms"] + f["attach_ms"] + f["start_ms"] + f["run_ms"], f
    # The shipped clamp_limits decided (the admin's raised): the task's limits, clamped.
    assert (f["time_s"], f["hard_time_s"], f["memory_mib"]) == (20, 60, 64), f
    assert f["output_bytes"] > 0, f

    pf = events(log, "policy_failure")
    assert pf, [o for o in log if o["area"] == "policy"]
    assert pf[0]["level"] == "warn" and pf[0]["fields"]["hook"] == "clamp_limits", pf
    assert pf[0]["fields"]["kind"] == "ERROR" and pf[0]["fields"]["file"] == limits_lua, pf
    assert "broken on purpose" in pf[0]["fields"]["error"], pf

    derr = [o for o in events(log, "docker_error")
            if o["fields"]["call"] == "POST /containers/create"]
    assert derr and derr[0]["fields"]["status"] == 404 and derr[0]["level"] == "warn", derr
    assert "No such image" in derr[0]["fields"]["error"], derr
    fin2 = events(log, "job_finished", gone.job_id)
    assert len(fin2) == 1, fin2
    f2 = fin2[0]["fields"]
    assert (f2["result"], f2["text"], f2["container"]) == \
        ("crash", "Cannot create container.", None), f2
    assert f2["create_ms"] == -1 and f2["cpu_ms"] == -1, f2
