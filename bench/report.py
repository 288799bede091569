"""Turns a benchmark's results.json into report.md and chart.png.

Usage: report.py RESULTS_DIR   (bench.py calls write() itself at the end of a run;
running this again regenerates both files from the raw figures.)
"""
import json
import os
import sys

TARGETS_TEXT = {
    "latency": "proctord p50 latency <= 1.10 x floor",
    "throughput": "proctord throughput >= 2 x Python agent at concurrency 4",
    "rss": "proctord peak RSS <= 1/8 of the Python agent's",
    "cpu": "proctord CPU per job <= 1/20 of the Python agent's",
    "warm-open": "proctord (warm) p50 <= 0.35 x floor, open loop (issue 12)",
    "warm-c1": "proctord (warm) p50 <= 0.5 x floor, concurrency 1 (issue 12)",
    "warm-c1-tput": "proctord (warm) throughput >= 0.95 x floor, concurrency 1 (issue 12)",
    "warm-student": "proctord (warm) p50 <= 0.6 x floor, student (issue 12)",
}
# Issue 12's targets: (key, workload, metric, limit, "le" or "ge"), warm against the floor.
WARM_TARGETS = (("warm-open", "trivial-open", "p50_ms", 0.35, "le"),
                ("warm-c1", "trivial-c1", "p50_ms", 0.5, "le"),
                ("warm-c1-tput", "trivial-c1", "throughput", 0.95, "ge"),
                ("warm-student", "student", "p50_ms", 0.6, "le"))
LABELS = {"proctord": "proctord", "warm": "proctord (warm)", "python": "Python agent",
          "floor": "floor (no agent)", "baseline": "proctord (baseline build)"}
COLORS = {"proctord": "#2a7ab9", "warm": "#c0392b", "python": "#e3a21a", "floor": "#7f7f7f",
          "baseline": "#8fbfe0"}
PROCTORDS = ("proctord", "warm", "baseline")


def fmt(v, digits=1):
    if v is None:
        return "—"
    if isinstance(v, str):
        return v
    return "%.*f" % (digits, v)


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def metric(run, name):
    return run.get(name) if run else None


def wl_systems(doc, wl):
    """The systems a workload ran on (some skip the floor)."""
    allowed = list(wl.get("systems", doc["systems"]))
    if "proctord" in allowed:
        allowed += PROCTORDS
    return [s for s in doc["systems"] if s in allowed]


def targets(doc):
    """[(target key, workload, proctord value, reference value, ratio, limit, met)]."""
    runs = doc["runs"]
    rows = []
    for wl in doc["workloads"]:
        p = runs.get("%s/proctord" % wl["name"])
        py = runs.get("%s/python" % wl["name"])
        fl = runs.get("%s/floor" % wl["name"])
        # The hostile frames are built against proctord's decoder (its worst
        # accepted frame): a resilience figure, not one of issue 5's targets.
        if not p or "frame_mib" in wl:
            continue
        r = ratio(metric(p, "p50_ms"), metric(fl, "p50_ms"))
        if r is not None:
            rows.append(("latency", wl["name"], p["p50_ms"], fl["p50_ms"], r, 1.10, r <= 1.10))
        if wl["concurrency"] == 4 and "open_rate" not in wl:  # open loop: the arrival rate
            r = ratio(metric(p, "throughput"), metric(py, "throughput"))
            if r is not None:
                rows.append(("throughput", wl["name"], p["throughput"], py["throughput"], r, 2.0,
                             r >= 2.0))
        r = ratio(metric(p, "rss_mib"), metric(py, "rss_mib"))
        if r is not None:
            rows.append(("rss", wl["name"], p["rss_mib"], py["rss_mib"], r, 1 / 8, r <= 1 / 8))
        r = ratio(metric(p, "cpu_per_job_ms"), metric(py, "cpu_per_job_ms"))
        if r is not None:
            rows.append(("cpu", wl["name"], p["cpu_per_job_ms"], py["cpu_per_job_ms"], r, 1 / 20,
                         r <= 1 / 20))
    for key, wname, m, lim, how in WARM_TARGETS:
        w = runs.get("%s/warm" % wname)
        fl = runs.get("%s/floor" % wname)
        r = ratio(metric(w, m), metric(fl, m))
        if r is not None:
            rows.append((key, wname, w[m], fl[m], r, lim, r <= lim if how == "le" else r >= lim))
    return rows


def conc_text(wl):
    """The concurrency column: closed-loop slots, or the open loop's rate and slots."""
    if "open_rate" in wl:
        return "open %.2g/s (%d slots)" % (wl["open_rate"], wl["concurrency"])
    return "%d" % wl["concurrency"]


def missing_metrics(doc):
    need = {"proctord": ("p50_ms", "p95_ms", "max_ms", "throughput", "rss_mib", "cpu_per_job_ms"),
            "python": ("p50_ms", "p95_ms", "max_ms", "throughput", "rss_mib", "cpu_per_job_ms"),
            "floor": ("p50_ms", "p95_ms", "max_ms", "throughput")}
    need["baseline"] = need["proctord"]
    need["warm"] = need["proctord"] + ("warm_jobs", "pool_containers", "pool_cgroup_mib")
    out = []
    for wl in doc["workloads"]:
        for system in wl_systems(doc, wl):
            run = doc["runs"].get("%s/%s" % (wl["name"], system))
            for m in need[system]:
                if run is None or run.get(m) is None:
                    out.append("%s/%s %s" % (wl["name"], system, m))
    return out


def markdown(doc):
    m = doc["machine"]
    lines = [
        "# proctor benchmark%s" % (" (smoke)" if doc["smoke"] else ""),
        "",
        "Date: %s. Machine: %d CPUs (%s), %.1f GiB RAM, Linux %s, Docker %s." % (
            doc["date"], m["cpus"], m["cpu_model"] or "unknown CPU", m["mem_gib"], m["kernel"],
            m["docker"]),
        "",
        "Latency is client submit to result (floor: first API call to exit code read); "
        "throughput is jobs / (last result - first submit); jobs are submitted closed-loop "
        "with exactly *concurrency* jobs in flight, except for the open-loop workload, "
        "submitted at seeded Poisson arrival times (the same for every system) to an agent "
        "with 4 slots (the floor: one thread per arrival), whose latency counts from each "
        "job's scheduled arrival. proctord runs without its warm pool (`--no-pool`), "
        "proctord (warm) with it (`--warm docker/default`). Peak RSS is the sum of VmHWM over the "
        "agent's processes; CPU/job is the agent's utime+stime during the measured window "
        "divided by the jobs; engine CPU/job is dockerd+containerd over the same window. "
        "Each workload is split into %d round(s) per system (fresh backend and agent each), "
        "the systems taking turns in a rotating order so that changes in the machine's load "
        "weigh on all of them alike; figures pool the rounds (peaks: the largest). One "
        "unmeasured trivial warm-up job precedes each round." % doc.get("rounds", 1),
        "",
        "## Results",
        "",
        "| workload | system | jobs | conc | p50 ms | p95 ms | max ms | jobs/s | peak RSS MiB "
        "| peak anon MiB | CPU/job ms | engine CPU/job ms | agent CPU total s | load 1m | errors |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for wl in doc["workloads"]:
        for system in wl_systems(doc, wl):
            r = doc["runs"].get("%s/%s" % (wl["name"], system)) or {"errors": ["not run"]}
            life = r.get("lifetime") or {}
            load = r.get("loadavg_1m")
            lines.append("| %s | %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s "
                         "| %d |" % (
                             wl["name"], LABELS[system], wl["jobs"], conc_text(wl),
                             fmt(r.get("p50_ms")), fmt(r.get("p95_ms")), fmt(r.get("max_ms")),
                             fmt(r.get("throughput"), 2), fmt(r.get("rss_mib")),
                             fmt(r.get("anon_mib")), fmt(r.get("cpu_per_job_ms"), 2),
                             fmt(r.get("engine_cpu_per_job_ms")), fmt(life.get("cpu_s"), 2),
                             "%.1f→%.1f" % tuple(load) if load else "—",
                             len(r.get("errors", []))))
    lines += ["", "## Ratios", "",
              "| workload | p50 proctord/Python | p50 proctord/floor | jobs/s proctord/Python "
              "| jobs/s proctord/floor | RSS proctord/Python | CPU/job proctord/Python "
              "| engine CPU/job proctord/Python |",
              "|---|--:|--:|--:|--:|--:|--:|--:|"]
    for wl in doc["workloads"]:
        g = lambda s, k: metric(doc["runs"].get("%s/%s" % (wl["name"], s)), k)  # noqa: E731
        lines.append("| %s | %s | %s | %s | %s | %s | %s | %s |" % (
            wl["name"], fmt(ratio(g("proctord", "p50_ms"), g("python", "p50_ms")), 3),
            fmt(ratio(g("proctord", "p50_ms"), g("floor", "p50_ms")), 3),
            fmt(ratio(g("proctord", "throughput"), g("python", "throughput")), 3),
            fmt(ratio(g("proctord", "throughput"), g("floor", "throughput")), 3),
            fmt(ratio(g("proctord", "rss_mib"), g("python", "rss_mib")), 3),
            fmt(ratio(g("proctord", "cpu_per_job_ms"), g("python", "cpu_per_job_ms")), 3),
            fmt(ratio(g("proctord", "engine_cpu_per_job_ms"),
                      g("python", "engine_cpu_per_job_ms")), 3)))
    if "warm" in doc["systems"]:
        lines += warm_section(doc)
    if "baseline" in doc["systems"]:
        lines += ["", "## This build against the baseline build", "",
                  "Both are proctord, run in the same rounds (--baseline): a ratio below 1 means "
                  "this build is faster or lighter.", "",
                  "| workload | p50 this/baseline | p95 this/baseline | CPU/job this/baseline "
                  "| CPU/job ms this, baseline | peak RSS this/baseline | engine CPU/job "
                  "this/baseline |",
                  "|---|--:|--:|--:|--:|--:|--:|"]
        for wl in doc["workloads"]:
            g = lambda s, k: metric(doc["runs"].get("%s/%s" % (wl["name"], s)), k)  # noqa: E731
            if g("baseline", "p50_ms") is None:
                continue
            lines.append("| %s | %s | %s | %s | %s, %s | %s | %s |" % (
                wl["name"], fmt(ratio(g("proctord", "p50_ms"), g("baseline", "p50_ms")), 3),
                fmt(ratio(g("proctord", "p95_ms"), g("baseline", "p95_ms")), 3),
                fmt(ratio(g("proctord", "cpu_per_job_ms"), g("baseline", "cpu_per_job_ms")), 3),
                fmt(g("proctord", "cpu_per_job_ms"), 2), fmt(g("baseline", "cpu_per_job_ms"), 2),
                fmt(ratio(g("proctord", "rss_mib"), g("baseline", "rss_mib")), 3),
                fmt(ratio(g("proctord", "engine_cpu_per_job_ms"),
                          g("baseline", "engine_cpu_per_job_ms")), 3)))
    lines += ["", "## Targets", "",
              "Issue 5's targets hold proctord (cold) to the floor and the Python agent; issue "
              "12's hold proctord (warm) to the floor.", "",
              "| target | workload | value | reference | ratio | limit | |",
              "|---|---|--:|--:|--:|--:|---|"]
    for key, wname, pv, rv, r, lim, met in targets(doc):
        lines.append("| %s | %s | %s | %s | %.3f | %.3f | %s |" % (
            TARGETS_TEXT[key], wname, fmt(pv, 2), fmt(rv, 2), r, lim,
            "met" if met else "**missed**"))
    lines += hostile_section(doc)
    lines += ["", "## Where the time goes", "",
              "Mean duration of each step in ms (means, so that the steps add up). proctord's "
              "steps come from the timings line it logs for each job; "
              "\"outside the agent\" is the client-measured latency minus proctord's own "
              "received-to-result time: the client, the backend and ZeroMQ. A warm job's "
              "container was created, attached and started before it arrived: its create and "
              "attach marks are when it took the container, its start mark the end of the "
              "claim (job directory filled, limits updated); the means mix warm and cold "
              "jobs.", ""]
    for wl in doc["workloads"]:
        ps = [(s, doc["runs"].get("%s/%s" % (wl["name"], s)) or {}) for s in ("proctord", "warm")]
        fl = doc["runs"].get("%s/floor" % wl["name"]) or {}
        if not any(p.get("phases_ms") for _, p in ps) and not fl.get("phases_ms"):
            continue
        row = ["**%s**" % wl["name"]]
        for system, p in ps:
            if not p.get("phases_ms"):
                continue
            steps = ", ".join("%s %.1f" % kv for kv in p["phases_ms"].items())
            if p.get("internal_ms") and p.get("latencies_ms"):
                n = len(p["internal_ms"])
                outside = (sum(p["latencies_ms"]) - sum(p["internal_ms"])) / n
                steps += "; agent total %.1f, outside the agent %.1f" % (
                    sum(p["internal_ms"]) / n, outside)
            row.append("%s: %s" % (LABELS[system], steps))
        if fl.get("phases_ms"):
            row.append("floor: " + ", ".join("%s %.1f" % kv for kv in fl["phases_ms"].items())
                       + "; total %.1f" % (sum(fl["latencies_ms"]) / len(fl["latencies_ms"])))
        lines.append("- " + "<br>".join(row))
    errs = [(k, e) for k, r in sorted(doc["runs"].items()) for e in r.get("errors", [])]
    if errs:
        lines += ["", "## Errors", ""] + ["- %s: %s" % (k, e) for k, e in errs[:50]]
    lines += ["", "![chart](chart.png)", ""]
    return "\n".join(lines)


def warm_section(doc):
    """proctord (warm) against the floor and cold proctord, and what its pool held."""
    out = ["", "## The warm pool", "",
           "proctord (warm) against the floor and against proctord without its pool (cold), in "
           "the same rounds: a ratio below 1 means warm is faster or lighter (jobs/s: above 1, "
           "more jobs per second).", "",
           "| workload | p50 warm/floor | p95 warm/floor | jobs/s warm/floor | p50 warm/cold "
           "| p95 warm/cold | jobs/s warm/cold | CPU/job warm/cold | engine CPU/job warm/cold |",
           "|---|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for wl in doc["workloads"]:
        g = lambda s, k: metric(doc["runs"].get("%s/%s" % (wl["name"], s)), k)  # noqa: E731
        if g("warm", "p50_ms") is None:
            continue
        out.append("| %s | %s |" % (wl["name"], " | ".join(
            fmt(ratio(g("warm", k), g(ref, k)), 3) for ref, k in (
                ("floor", "p50_ms"), ("floor", "p95_ms"), ("floor", "throughput"),
                ("proctord", "p50_ms"), ("proctord", "p95_ms"), ("proctord", "throughput"),
                ("proctord", "cpu_per_job_ms"), ("proctord", "engine_cpu_per_job_ms")))))
    out += ["", "Served warm: the measured jobs that took a waiting container and ran in it "
            "(proctord logs `job <id>: warm container <id>`, then `container <id> started "
            "(warm)`); the others started cold: the pool was empty or refilling, the job's "
            "spec did not fit, or (\"fell back\") the container it took could not be used. "
            "Students ahead: the run_student requests of the window that took a student "
            "container started before the request (README, \"Warm pool\"). "
            "Memory held: the pool's waiting containers after the window, once its refill "
            "finished (at most 10 s): their number, the sum of their memory cgroups' usage "
            "(memory.current, or memory.usage_in_bytes on cgroup v1: page cache included), "
            "and the RSS (and anonymous part) of their containerd-shim processes (RSS counts "
            "the pages shims share). The largest of the rounds. The agent's own memory is in "
            "the results table.", "",
            "| workload | jobs | served warm | fell back | students ahead | containers waiting "
            "| their cgroups MiB | their shims' RSS MiB | shims' anon MiB |",
            "|---|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for wl in doc["workloads"]:
        r = doc["runs"].get("%s/warm" % wl["name"])
        if not r or "warm_jobs" not in r:
            continue
        out.append("| %s | %d | %d | %s | %s | %s | %s | %s | %s |" % (
            wl["name"], wl["jobs"], r["warm_jobs"], fmt(r.get("warm_fallbacks"), 0),
            fmt(r.get("students_ahead"), 0),
            fmt(r.get("pool_containers"), 0), fmt(r.get("pool_cgroup_mib")),
            fmt(r.get("pool_shim_rss_mib")), fmt(r.get("pool_shim_anon_mib"))))
    return out


def hostile_section(doc):
    """Peak memory while the grading container sends hostile frames."""
    out = []
    for wl in doc["workloads"]:
        if "frame_mib" not in wl:
            continue
        if not out:
            out = ["", "## Hostile frames", "",
                   "The grading container (bench/images/hostile) sends, per job, frames of "
                   "*F* MiB: one array of one-byte integers, the worst frame proctord's decoder "
                   "accepts (65536 + F Mi/16 objects, each a one-byte empty string, then one "
                   "long string), a valid result, then 5-byte frames declaring 2^32-1 "
                   "elements. proctord refuses the first by its object budget before "
                   "allocating, and a decoded frame takes at most 5 x F MiB + 4 MiB, "
                   "besides the frame itself.", "",
                   "| workload | frame MiB | system | peak RSS MiB | peak anon MiB "
                   "| peak RSS / frame |", "|---|--:|---|--:|--:|--:|"]
        for system in wl_systems(doc, wl):
            r = doc["runs"].get("%s/%s" % (wl["name"], system)) or {}
            rss = r.get("rss_mib")
            out.append("| %s | %d | %s | %s | %s | %s |" % (
                wl["name"], wl["frame_mib"], LABELS[system], fmt(rss), fmt(r.get("anon_mib")),
                fmt(ratio(rss, wl["frame_mib"]), 2)))
    return out


def chart(doc, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("p50_ms", "p50 latency (ms)"), ("throughput", "throughput (jobs/s)"),
              ("rss_mib", "agent peak RSS (MiB)"), ("cpu_per_job_ms", "agent CPU per job (ms)")]
    names = [w["name"] for w in doc["workloads"]]
    fig, axes = plt.subplots(2, 2, figsize=(12, 8))
    width = 0.8 / max(1, len(doc["systems"]))
    for ax, (key, title) in zip(axes.flat, panels):
        for k, system in enumerate(doc["systems"]):
            vals = [metric(doc["runs"].get("%s/%s" % (n, system)), key) for n in names]
            xs = [i + (k - (len(doc["systems"]) - 1) / 2) * width for i in range(len(names))]
            bars = ax.bar(xs, [v or 0 for v in vals], width, label=LABELS[system],
                          color=COLORS[system])
            for b, v in zip(bars, vals):
                if v is not None:
                    ax.annotate("%.3g" % v, (b.get_x() + b.get_width() / 2, b.get_height()),
                                ha="center", va="bottom", fontsize=7)
        ax.set_title(title)
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels(names, fontsize=8)
        if key in ("rss_mib", "cpu_per_job_ms"):
            ax.set_yscale("log")
    axes.flat[0].legend(fontsize=8)
    fig.suptitle("proctor benchmark %s%s" % (doc["date"], " (smoke)" if doc["smoke"] else ""))
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write(out_dir):
    """Writes report.md and chart.png; returns the list of missing metrics."""
    with open(os.path.join(out_dir, "results.json")) as f:
        doc = json.load(f)
    missing = missing_metrics(doc)
    with open(os.path.join(out_dir, "report.md"), "w") as f:
        f.write(markdown(doc))
    try:
        chart(doc, os.path.join(out_dir, "chart.png"))
    except ImportError as e:
        missing.append("chart.png (%s)" % e)
    return missing


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: report.py RESULTS_DIR")
    miss = write(sys.argv[1])
    if miss:
        sys.exit("metrics missing: " + ", ".join(miss))
