"""The same images grade the same way under INGInious's own Python agent and
under proctord: the demo course goes through both, behind a real backend each,
and the outcomes are compared field by field."""
import pytest

import harness

CASES = [
    ("hello", harness.DEMO_INPUTS["hello"]),
    ("hello", {"script": "echo hello"}),
    ("upload", harness.DEMO_INPUTS["upload"]),
    ("multi", harness.DEMO_INPUTS["multi_partial"]),
    ("multi", harness.DEMO_INPUTS["multi"]),
    ("student", harness.DEMO_INPUTS["student"]),
    ("memory", harness.DEMO_INPUTS["memory"]),
    ("cpu", harness.DEMO_INPUTS["cpu"]),
    ("sleep", harness.DEMO_INPUTS["sleep"]),
]


def grade_all(agent):
    name = "compat-%s" % agent
    with harness.Cluster(agent=agent, concurrency=2, friendly_name=name) as c:
        jobs = [c.submit("demo", task, dict(data, **{"@state": "prev"})) for task, data in CASES]
        results = [j.wait(300) for j in jobs]
    if agent == "proctord":
        assert not harness.containers(c.agent_label())
    harness.cleanup_dir(c.workdir)
    return results


@pytest.fixture(scope="module")
def outcomes():
    harness.require_docker()
    return grade_all("python"), grade_all("proctord")


@pytest.mark.parametrize("index", range(len(CASES)))
def test_same_outcome(outcomes, index):
    python, proctord = outcomes[0][index], outcomes[1][index]
    task = CASES[index][0]
    for field in ("result", "grade", "problems", "tests", "custom", "state"):
        assert proctord[field] == python[field], (task, field, python[field], proctord[field])
    assert (proctord["archive"] is None) == (python["archive"] is None), task
