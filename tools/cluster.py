"""A cluster to try by hand: the real INGInious backend and proctord agents, each on a host.

tools/cluster.sh runs this. The hosts are network namespaces cabled to a bridge
(tests/integration/hosts.py, as in the scale-out test); the processes outlive
`up` and are found again by `status`, `submit` and `down` in the state file
($PROCTOR_CLUSTER_DIR, default /run/proctor-cluster).
"""
import argparse
import collections
import json
import os
import re
import secrets
import shutil
import signal
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import harness  # noqa: E402
import hosts  # noqa: E402

STATE_DIR = os.environ.get("PROCTOR_CLUSTER_DIR", "/run/proctor-cluster")
STATE = os.path.join(STATE_DIR, "state.json")


def load():
    try:
        with open(STATE) as f:
            return json.load(f)
    except FileNotFoundError:
        return None


def alive(pid):
    return os.path.exists("/proc/%d" % pid)


def up(args):
    hosts.require_netns()
    harness.require_docker()
    if load():
        sys.exit("a cluster is already up (%s): tools/cluster.sh down first" % STATE)
    build = os.path.abspath(args.build)
    if not os.access(os.path.join(build, "proctord"), os.X_OK):
        sys.exit("no proctord in %s (build it, or give --build DIR)" % build)
    os.makedirs(STATE_DIR, exist_ok=True)
    c = hosts.HostCluster(agents=args.agents, concurrency=args.concurrency,
                          tasks=os.path.abspath(args.tasks), build_dir=build,
                          workdir=tempfile.mkdtemp(prefix="proctor-cluster-"),
                          tag="proctor-cluster-" + secrets.token_hex(2))
    c.start(client=False)  # raises (and cleans up) if an agent does not register
    state = c.state()
    state["tasks"] = c.tasks
    hosts.save_state(STATE, state)
    print("backend  %s  agents at %s, clients at %s\n         log %s" % (
        state["backend"]["netns"], c.agent_addr, state["client"], state["backend"]["log"]))
    for a in state["agents"]:
        print("agent    %s  %s (%s), pid %d\n         log %s" % (a["netns"], a["name"], a["addr"],
                                                             a["pid"], a["log"]))
    print("""
Submit the demo course through the real INGInious client (each result, and the agent
that graded it):
    tools/cluster.sh submit [--rounds N]
Pull agent 3's cable, then put it back (the backend fails its jobs after 6 missed pings;
the agent, after 10 s of silence, abandons them and registers again once it can):
    ip -n %(switch)s link set %(port)s down
    ip -n %(switch)s link set %(port)s up
    tools/cluster.sh status
Stop everything (the agents drain; the namespaces are deleted):
    tools/cluster.sh down""" % {"switch": state["switch"], "port": state["agents"][-1]["port"]})


def status(_args):
    st = load()
    if not st:
        print("no cluster is up")
        return 1
    backend_log = open(st["backend"]["log"], errors="replace").read()
    b = st["backend"]
    print("backend  %s  pid %d %s" % (b["addr"], b["pid"], "running" if alive(b["pid"]) else "GONE"))
    peers = []
    if alive(b["pid"]):
        peers = hosts.connections(hosts.Host("backend", b["netns"], b["addr"], None),
                                  hosts.BACKEND_PORT)
    for a in st["agents"]:
        link = hosts.ip("-n", st["switch"], "-br", "link", "show", a["port"]).split()[1]
        hello = len(re.findall(r"\(%s\) said hello" % re.escape(a["name"]), backend_log))
        lost = len(re.findall(r"\(%s\) does not respond" % re.escape(a["name"]), backend_log))
        try:
            with open(os.path.join(a["tmpdir"], ".agent-id")) as f:
                label = "%s=%s" % (harness.AGENT_LABEL, f.read().strip())
            cont = len(harness.containers(label))
        except OSError:
            cont = 0
        jobs = len(set(re.findall(r"job (\S+): [^\s/]+/\S+ on ",
                                  open(a["log"], errors="replace").read())))
        print("agent    %s %-22s pid %d %-7s cable %-4s backend tcp %-3s hellos %d, dropped %d, "
              "jobs %d, containers %d" % (a["addr"], a["name"], a["pid"],
                                          "running" if alive(a["pid"]) else "GONE", link,
                                          "yes" if a["addr"] in peers else "no", hello, lost,
                                          jobs, cont))
    return 0


def submit(args):
    st = load()
    if not st:
        sys.exit("no cluster is up: tools/cluster.sh up")
    c = harness.Cluster(tasks=st["tasks"], workdir=st["workdir"])
    c.client_addr = st["client"]
    try:
        c.start_client()
        c.wait_environment()
        jobs = []
        for _ in range(args.rounds):
            for name, data in harness.DEMO_INPUTS.items():
                task = name.split("_")[0]  # multi_partial: the multi task, half right
                jobs.append((name, c.submit("demo", task, data)))
        per_agent = collections.Counter()
        logs = {a["name"]: a["log"] for a in st["agents"]}
        for task, res in jobs:
            r = res.wait(300)
            ran = [n for n, p in logs.items() if res.job_id in open(p, errors="replace").read()]
            agent = ran[0] if ran else "-"
            per_agent[agent] += 1
            print("demo/%-14s %-8s %-22s %s" % (task, r["result"][0], agent,
                                                 r["result"][1].strip().replace("\n", " ")[:50]),
                  flush=True)
        print("jobs per agent: %s" % dict(per_agent))
    finally:
        c.close()


def down(_args):
    st = load()
    if not st:
        print("no cluster is up")
        return 0
    for a in st["agents"]:
        hosts.stop_pid(a["pid"], "proctord", signal.SIGTERM, timeout=150)
    hosts.stop_pid(st["backend"]["pid"], "inginious-backend", signal.SIGTERM, timeout=20)
    for name in reversed(st["netns"]):
        try:
            hosts.ip("netns", "del", name)
        except RuntimeError as e:
            print("cluster: %s" % e, file=sys.stderr)
    left = []
    for a in st["agents"]:
        try:
            with open(os.path.join(a["tmpdir"], ".agent-id")) as f:
                left += harness.containers("%s=%s" % (harness.AGENT_LABEL, f.read().strip()))
        except OSError:
            pass
    shutil.rmtree(st["workdir"], ignore_errors=True)
    os.unlink(STATE)
    if left:
        print("cluster: containers left: %s" % " ".join(left), file=sys.stderr)
        return 1
    print("cluster down: agents drained, backend stopped, namespaces %s deleted"
          % ", ".join(st["netns"]))
    return 0


def main():
    ap = argparse.ArgumentParser(prog="tools/cluster.sh", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("up", help="start the backend and the agents, each on its own host")
    p.add_argument("--agents", type=int, default=3)
    p.add_argument("--concurrency", type=int, default=1, help="job slots per agent")
    p.add_argument("--build", default=os.path.join(ROOT, "build"))
    p.add_argument("--tasks", default=harness.DEFAULT_TASKS)
    p.set_defaults(fn=up)
    sub.add_parser("status", help="processes, cables, registrations, containers").set_defaults(
        fn=status)
    p = sub.add_parser("submit", help="grade the demo course through the real client")
    p.add_argument("--rounds", type=int, default=1)
    p.set_defaults(fn=submit)
    sub.add_parser("down", help="stop everything and delete the namespaces").set_defaults(fn=down)
    args = ap.parse_args()
    return args.fn(args) or 0


if __name__ == "__main__":
    sys.exit(main())
