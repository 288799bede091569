/**
 * @file container.h
 * One container's life, for the grading container and student containers
 * alike: create, attach (grading only), start, wait, wall-clock and CPU
 * limits, kill, out-of-memory detection, removal.
 *
 * Phases, and the only transitions there are ("on event -> phase"):
 *
 *   NEW        ct_create ok -> CREATING
 *   CREATING   created: stop asked -> ENDED(never ran) | attach ? ATTACHING : READY
 *              create failed -> ENDED(ERROR; nothing to remove)
 *   ATTACHING  attach ready -> READY;  stream closed / stop asked -> ENDED(never ran)
 *   READY      ct_start -> STARTING;   stream closed / stop asked -> ENDED(never ran)
 *   STARTING   started -> park ? PARKED : RUNNING (stop asked meanwhile: kill at once)
 *              start failed -> ENDED(never ran, ERROR)
 *   PARKED     (a pooled container: started, waiting for its input, no limit armed)
 *              ct_claim -> RUNNING (the limits count from here)
 *              wait answered / `die` event -> as RUNNING (it died waiting: never claim it)
 *   RUNNING    wait answered / `die` event -> attach stream open ? DRAINING : next
 *              wall timer, CPU over the limit, `oom` event, ct_stop -> kill (stays RUNNING)
 *              ct_answered -> ENDED (from the loop; the process may still run: ct_remove
 *              kills it)
 *   DRAINING   stream closed / grace timer -> next
 *   next:      outcome EXIT (it ended by itself) ? INSPECTING : ENDED
 *   INSPECTING inspect answered -> ENDED (OOMKilled: outcome OVERFLOW)
 *   ENDED      `ended` told to the owner; ct_remove -> REMOVING
 *   REMOVING   delete answered -> GONE (`gone` told)
 *
 * ct_remove may also be called in any earlier phase: the owner no longer
 * wants the outcome (no `ended` will come); whatever is in flight is
 * dropped, a container being created is deleted once Docker has made it.
 *
 * Contract with the owner: no ct_* call ever calls the owner back from
 * inside itself (callbacks come from the loop). After ct_create returned 0
 * the owner hears, in order: `ready` at most once, `ended` exactly once
 * unless it called ct_remove first, and `gone` exactly once when ct_remove
 * returned false (or when the create failed). A callback is always the last
 * thing the supervisor does with the container, so the owner may free it there.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "docker/docker_attach.h"
#include "docker/docker_client.h"
#include "policy/policy.h"

struct job_host;

enum ct_phase {
    CT_NEW,
    CT_CREATING,
    CT_ATTACHING,
    CT_READY,
    CT_STARTING,
    CT_PARKED,
    CT_RUNNING,
    CT_DRAINING,
    CT_INSPECTING,
    CT_ENDED,
    CT_REMOVING,
    CT_GONE,
};

/** How the container ended. The first cause wins: a kill after a timeout is a timeout. */
enum ct_outcome {
    CT_OUT_NONE,     /* not ended yet */
    CT_OUT_EXIT,     /* its process exited by itself: exit_code */
    CT_OUT_STOPPED,  /* the owner stopped it (ct_stop) */
    CT_OUT_TIMEOUT,  /* CPU or wall-clock limit */
    CT_OUT_OVERFLOW, /* the kernel killed it for memory */
    CT_OUT_ERROR,    /* Docker failed it: error says which step */
    CT_OUT_ANSWERED, /* it gave its final answer, within its limits (ct_answered) */
};

/** What went wrong, for CT_OUT_ERROR. */
enum ct_error {
    CT_ERR_NONE,
    CT_ERR_CREATE, /* could not be created */
    CT_ERR_START,  /* created but never ran (start or attach failed) */
    CT_ERR_WAIT,   /* ran, but Docker could not say how it ended */
};

struct container;

struct ct_ops {
    /** Created (and attached): the owner sends its input, then calls ct_start. */
    void (*ready)(struct container *c, void *data);
    /** Optional: a parked container (ct_spec.park) is started and waits for ct_claim. */
    void (*parked)(struct container *c, void *data);
    /** Optional: a container that is not parked is started (its limits count). */
    void (*running)(struct container *c, void *data);
    /** Attach stream data (attached containers only). */
    void (*data)(struct container *c, int stream, const void *p, size_t n, void *data);
    /** The outcome is known (see ct_outcome etc.). */
    void (*ended)(struct container *c, void *data);
    /** Removed, or never made: the owner may free it. */
    void (*gone)(struct container *c, void *data);
};

/** What to create. Every pointer is borrowed for the ct_create call only. */
struct ct_spec {
    const char *image;
    const char *runtime;
    const char *const *cmd; /* NULL = the image's */
    const char *role;       /* org.proctor.role: "grading", "student" */
    const char *job_id;     /* org.proctor.job */
    int64_t memory_mib;
    int64_t time_s;      /* CPU seconds */
    int64_t hard_time_s; /* wall seconds, from start */
    const struct policy_hardening *hard;
    const char *network_mode;
    const char *const *binds;
    const struct docker_port_binding *ports;
    size_t nports;
    bool attach; /* open the attach stream before start (the grading container) */
    bool park;   /* start it without limits and let it wait for ct_claim (the warm pool) */
};

struct container {
    enum ct_phase phase;
    enum ct_outcome outcome;
    enum ct_error error;
    int exit_code;  /* CT_OUT_EXIT */
    bool ran;       /* start succeeded */
    int64_t cpu_ns; /* last CPU time sample (cgroup or stats) since the claim, -1 = none yet */
    char *id;       /* NULL until created */
    /* ms since ct_init's t0 when each phase was reached (0 = not reached) */
    uint64_t t_created, t_attached, t_running, t_exited, t_answered;

    /* private */
    const struct job_host *host;
    const struct ct_ops *ops;
    void *data;
    char *log_name;   /* "job <id>" or "job <id>: student <sid>" */
    const char *role; /* ct_spec's (a literal) */
    char *image;      /* ct_spec's, for the log */
    uint64_t t0;
    int64_t time_s, hard_time_s;
    int64_t cpu_base_ns;         /* the cgroup's CPU time when it was claimed (parked containers) */
    uint64_t oom_base;           /* the cgroup's OOM kills then */
    struct docker_req *req;      /* create/start/inspect/delete in flight */
    struct docker_req *wait_req; /* death notification */
    struct docker_req *cpu_req;  /* stats stream when the cgroup is not readable */
    struct docker_req *kill_req;
    struct docker_attach *attach;
    uint64_t wall_timer, cpu_timer, grace_timer, retry_timer, notify_timer;
    char *job_id; /* for the janitor, should a create's answer be lost */
    unsigned wait_retries;
    /* exited: no limit to watch any more (its process died, or it answered) */
    bool want_attach, want_park, stream_closed, exited, stop_asked, remove_asked;
    bool answer_pending; /* ct_answered while STARTING: taken once the start is confirmed */
};

/** Prepares a container record; `name` labels its log lines (copied). */
void ct_init(struct container *c, const struct job_host *host, const char *name, uint64_t t0,
             const struct ct_ops *ops, void *data);
/** Asks Docker to create it: 0 (NEW -> CREATING) or -errno (still NEW, nothing to remove). */
int ct_create(struct container *c, const struct ct_spec *spec);
/** READY -> STARTING. */
void ct_start(struct container *c);
/**
 * Hands the container to a new owner (the job that takes a pooled one):
 * its callbacks, role (a literal, for the metrics), log name and clock (t0)
 * are the new owner's from now on.
 */
void ct_adopt(struct container *c, const char *role, const char *name, uint64_t t0,
              const struct ct_ops *ops, void *data);
/**
 * PARKED -> RUNNING with these limits: the wall clock and the CPU time count
 * from now. 0, or -EALREADY when it is not parked (it died meanwhile).
 */
int ct_claim(struct container *c, int64_t time_s, int64_t hard_time_s);
/** Writes to its stdin (attached containers): 0 or -errno. */
int ct_write(struct container *c, const void *p, size_t n);
/**
 * Ends it with `why` (CT_OUT_STOPPED, CT_OUT_TIMEOUT...) unless it already
 * has a cause: kills it if it runs; `ended` follows as usual.
 */
void ct_stop(struct container *c, enum ct_outcome why);
/**
 * RUNNING: its process has given its final answer (the grading container's
 * `result`), and it may still run. The outcome is decided now rather than at
 * the exit, from its cgroup: OVERFLOW if the kernel killed any of its processes
 * for memory since the claim, TIMEOUT if its CPU time is over the limit, else
 * ANSWERED. No limit is watched after this; `ended` follows from the loop, and
 * ct_remove kills it if it still runs. STARTING (its output can come before
 * Docker's answer to start): the same, once the start is confirmed. 0; -ENOENT
 * (nothing changed: the exit decides) when its cgroup cannot be read from here;
 * -EALREADY when it is not running or already has a cause.
 */
int ct_answered(struct container *c);
/** A Docker event about this container ("die" with its exit code, "oom"). */
void ct_on_event(struct container *c, const char *action, int exit_code);
/**
 * Removes it (killing it if needed): true when it is gone already (nothing
 * was made, or nothing can be asked of Docker), false when `gone` will follow.
 */
bool ct_remove(struct container *c);
/** Frees what the record holds (cancels whatever is in flight; no callback). */
void ct_deinit(struct container *c);
/** When its outcome became known by its answer or its exit (ms, 0 = not yet). */
static inline uint64_t ct_ended_at(const struct container *c)
{
    return c->t_answered ? c->t_answered : c->t_exited;
}
/** Name of a phase, for logs and tests. */
const char *ct_phase_name(enum ct_phase p);
