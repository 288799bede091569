"""The README demo: real submissions graded by proctord through the real
INGInious backend, submitted with the real INGInious Python client."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "integration"))
import harness  # noqa: E402

I = harness.DEMO_INPUTS
SUBMISSIONS = [
    ("hello", I["hello"], "a shell hello world"),
    ("hello", {"script": "echo hello"}, "the same, with a wrong answer"),
    ("upload", I["upload"], "reads an uploaded file"),
    ("multi", I["multi_partial"], "several problems, partial grade"),
    ("student", I["student"], "run_student: feeds stdin to a student container"),
    ("memory", I["memory"], "exceeds its memory limit"),
    ("cpu", I["cpu"], "spins past its CPU time limit"),
    ("sleep", I["sleep"], "sleeps past its wall-clock limit"),
]


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else os.path.join(harness.ROOT, "build")
    cluster = harness.Cluster(agent="proctord", concurrency=2, build_dir=build,
                              friendly_name="demo")
    print("starting inginious-backend %s and proctord..." % cluster.agent_addr, flush=True)
    with cluster:
        print("proctord registered; submitting %d jobs through the INGInious client\n"
              % len(SUBMISSIONS), flush=True)
        jobs = [(task, why, cluster.submit("demo", task, data)) for task, data, why in SUBMISSIONS]
        for task, why, res in jobs:
            r = res.wait(300)
            result, text = r["result"]
            print("demo/%-8s %-48s -> %-8s grade %6.2f  %s" % (
                task, "(" + why + ")", result, r["grade"], text.strip().replace("\n", " ")[:60]),
                flush=True)
            for pid, (presult, ptext) in sorted(r["problems"].items()):
                print("%60s problem %s: %s %s" % ("", pid, presult, ptext.strip()[:40]))
    print("\nagent log: %s" % cluster.agent.logpath)


if __name__ == "__main__":
    main()
