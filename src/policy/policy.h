/**
 * @file policy.h
 * The narrow interface between the agent and its decisions.
 *
 * The job code asks these questions and nothing else; it never sees Lua.
 * Every answer is a plain C struct, already checked against a schema, with C's
 * hard caps applied after the policy (a policy narrows, never widens).
 * When a policy raises, loops, runs out of memory or answers nonsense, the
 * built-in safe default of that hook is used (logged once per generation and
 * failure kind, then counted), so the caller always gets an answer.
 *
 * Return convention of the decision calls:
 *   0         decided; *out is filled;
 *   -EPERM    the policy refused deliberately (`return nil, "reason"` in Lua,
 *             or the built-in default refuses): `reason` holds text for the
 *             student/admin (e.g. INGInious's "Not enough memory on agent ...").
 * No other value is returned: a broken policy falls back to the default.
 *
 * Policies run in a policy worker process that the host starts (this very
 * binary, through /proc/self/exe, before main() runs: see policy_worker.c).
 * Every call is synchronous and bounded: at most POLICY_CALL_KILL_MS (600 ms,
 * policy_internal.h) after the policy starts, even when it is stuck inside a
 * C library function; past it the worker is killed, the built-in default is
 * used and a new worker is started at the next call. Loading is bounded the
 * same way (5 s per file). The host reaps its own children with waitpid(pid):
 * callers must not reap all children (waitpid(-1)).
 *
 * A `struct policy_host` is not thread-safe; it lives on the agent's loop.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/value.h"

#define POLICY_REASON_MAX 512
#define POLICY_NAME_MAX 128
#define POLICY_MAX_PORTS 16
#define POLICY_MAX_CAPS 48
/** Hard cap on the student containers one job may have alive at once (also the runner's limit
 * of clients on its socket). A policy may answer less, never more. */
#define POLICY_MAX_STUDENTS 64
/** Hard cap on the student containers one job may start in all. */
#define POLICY_MAX_STUDENTS_TOTAL 4096

struct policy_host;

/** Agent-wide facts and hard caps that the host applies after every policy. */
struct policy_config {
    int64_t concurrency;      /* job slots */
    int64_t host_memory_mib;  /* total RAM of the host */
    int64_t max_time_s;       /* hard cap on CPU time (0 = none) */
    int64_t max_hard_time_s;  /* hard cap on wall time (0 = none) */
    int64_t max_result_bytes; /* hard cap on one container message */
    int64_t max_output_bytes; /* hard cap on everything one job may send */
};

/**
 * Loads every policy file of `dir` (limits.lua, ports.lua, runtimes.lua,
 * results.lua, hardening.lua; a missing file means the built-in default for
 * its hooks) into a fresh sandboxed state and validates it.
 * Returns NULL and fills err with "file:line: message" on failure.
 * Caller frees with policy_host_free(). `cfg` is copied.
 */
struct policy_host *policy_host_new(const char *dir, const struct policy_config *cfg, char *err,
                                    size_t errlen);
/** NULL is a no-op. */
void policy_host_free(struct policy_host *host);
/**
 * Build, validate, swap: loads `dir` again into a new state; on success the
 * new state replaces the old one (generation + 1), otherwise the old one stays
 * and err holds "file:line: message". 0 or -EINVAL.
 */
int policy_host_reload(struct policy_host *host, char *err, size_t errlen);
/**
 * Offline validation of a policy directory (for `--check-policies`), in a
 * worker of its own that is gone on return. 0 or -EINVAL.
 */
int policy_check_dir(const char *dir, char *err, size_t errlen);
/**
 * Writes what `proctor test-policies` runs busted with into dir (an existing,
 * empty directory): dir/lua/agent/<module>.lua (the host Lua embedded in this
 * binary), dir/policies/<name>.lua (the shipped policies embedded in it: the
 * built-in defaults) and dir/preload.lua (the busted helper that loads policies
 * through that loader and sandbox). 0, or -errno with err.
 */
int policy_export_embedded(const char *dir, char *err, size_t errlen);
/** Removes what policy_export_embedded wrote, and dir itself when it is then empty. */
void policy_export_remove(const char *dir);
/**
 * Decisions you can see: fn(data, line) gets one line per hook call of every
 * policy host of this process (which hook, the file:line that answered, its
 * input, what the job got, and whether the shipped file answered because the
 * admin's was missing or failed); NULL stops it. Without a callback, the
 * lines are logged at debug level. For `proctor run --explain`.
 */
typedef void (*policy_explain_fn)(void *data, const char *line);
void policy_explain_set(policy_explain_fn fn, void *data);
/** Number of successful loads so far (1 after policy_host_new). */
uint64_t policy_host_generation(const struct policy_host *host);
/** How many times a hook failed and its default was used, since start. */
uint64_t policy_host_failures(const struct policy_host *host);

/* ---- limits: grading container ---------------------------------------- */

/**
 * The limits as the backend sent them (environment_parameters), already
 * converted to integers by the job code (conversion errors never get here).
 */
struct policy_limits_req {
    bool has_time;       /* limits.time present and not nil */
    int64_t time_s;      /* CPU seconds */
    bool has_hard_time;  /* limits.hard_time present, not nil, not "" */
    int64_t hard_time_s; /* wall seconds */
    bool has_memory;
    int64_t memory_mib;
    bool network_grading;         /* truthy environment_parameters.network_grading */
    bool needs_ports;             /* image ports label or debug == "ssh" */
    const char *environment_type; /* borrowed */
    const char *environment;      /* borrowed */
};

struct policy_limits {
    int64_t time_s;      /* > 0 */
    int64_t hard_time_s; /* > 0 */
    int64_t memory_mib;  /* > 0 */
    bool network;        /* bridge network for the grading container */
};

int policy_limits(struct policy_host *host, const struct policy_limits_req *req,
                  struct policy_limits *out, char *reason, size_t reasonlen);

/* ---- limits: student containers --------------------------------------- */

struct policy_student_req {
    int64_t parent_time_s, parent_hard_time_s, parent_memory_mib;
    int64_t time_s, hard_time_s, memory_mib; /* as requested; 0 = inherit */
    const char *environment;                 /* borrowed */
};

struct policy_student_limits {
    int64_t time_s, hard_time_s, memory_mib; /* > 0 */
};

int policy_student_limits(struct policy_host *host, const struct policy_student_req *req,
                          struct policy_student_limits *out, char *reason, size_t reasonlen);

/* ---- ports ------------------------------------------------------------- */

struct policy_ports_req {
    const char *job_id;   /* borrowed */
    size_t count;         /* ports needed, <= POLICY_MAX_PORTS */
    const uint16_t *free; /* the pool's free ports (C owns the pool) */
    size_t nfree;
};

/**
 * Chooses req->count distinct ports among req->free into chosen[0..count).
 * C checks the choice (distinct, all in `free`) and commits it.
 * -EPERM with INGInious's "No ports are available right now. Please retry later."
 * when the pool is too small.
 */
int policy_ports(struct policy_host *host, const struct policy_ports_req *req, uint16_t *chosen,
                 char *reason, size_t reasonlen);

/* ---- runtimes ---------------------------------------------------------- */

struct policy_runtime {
    char runtime[POLICY_NAME_MAX]; /* Docker runtime name, e.g. "runc" */
    char envtype[POLICY_NAME_MAX]; /* environment type, e.g. "docker" */
    bool run_as_root;
    bool enables_gpu;
    bool shared_kernel;
};

/**
 * Maps the runtime names Docker reports (`/info` Runtimes keys, in order) to
 * environment types. `ssh` adds the "-ssh" variants. Writes at most `max`
 * entries to out and their number to *nout. Never fails (default: runc/crun
 * -> docker, nvidia -> nvidia, first runtime per envtype wins).
 */
int policy_runtimes(struct policy_host *host, const char *const *names, size_t nnames, bool ssh,
                    struct policy_runtime *out, size_t max, size_t *nout);

/** Most runtimes proctord's command line may give (--runtime, repeatable). */
#define POLICY_MAX_CLI_RUNTIMES 32
/**
 * The runtimes given on proctord's command line (`--runtime RUNTIME ENVTYPE
 * [root] [shared]`, as inginious-agent-docker's): every map_runtimes() call of
 * this process gets them as req.forced (the shipped runtimes.lua then offers
 * exactly them instead of its rules). Copied; n <= POLICY_MAX_CLI_RUNTIMES
 * (else -EINVAL); n == 0 clears them.
 */
int policy_set_cli_runtimes(const struct policy_runtime *rts, size_t n);

/* ---- results ----------------------------------------------------------- */

struct policy_result {
    char *result; /* one of success failed error crash timeout overflow killed */
    char *text;
    double grade;          /* rounded to 2 decimals */
    struct value problems; /* MAP: id -> [result, text] (str values are normalised) */
    struct value tests;    /* MAP */
    struct value custom;   /* MAP */
    char *state;
};

/**
 * Validates and normalises the container's result map. `raw` is what the
 * container sent as `result` (any type); the caller has replaced the string
 * values of `archive`, `stdout` and `stderr` by the boolean true (it decodes
 * and bounds those itself). `prev_state` is the job's previous @state.
 * 0: *out filled (caller releases with policy_result_deinit).
 * -EPERM: rejected; reason says why (the job becomes crash
 * "The grader did not return a readable output : <reason>").
 */
int policy_results(struct policy_host *host, const struct value *raw, const char *prev_state,
                   struct policy_result *out, char *reason, size_t reasonlen);
void policy_result_deinit(struct policy_result *r);

/* ---- warm pool (beyond INGInious) --------------------------------------- */

/** One environment jobs asked for recently. */
struct policy_pool_env {
    const char *envtype, *name; /* borrowed */
    int64_t waiting;            /* warm containers now */
    int64_t arrivals_1m;        /* jobs for it in the last minute */
    int64_t arrivals_10m;       /* ... in the last ten minutes */
    int64_t idle_s;             /* seconds since its last job */
    int64_t memory_mib;         /* the last job's memory limit */
    bool available;             /* the agent still offers it */
};

struct policy_pool_req {
    const struct policy_pool_env *envs;
    size_t nenvs;
    int64_t slots, slots_in_use;
};

/**
 * How many warm grading containers each environment should have: sizes[i]
 * for envs[i] (C caps them after: POOL_MAX_PER_ENV, POOL_MAX_TOTAL, the slots).
 * Never fails: a broken policy falls back to the shipped one; if even that
 * fails, every size is 0 (the pool empties; jobs start cold).
 */
int policy_pool(struct policy_host *host, const struct policy_pool_req *req, int64_t *sizes);
/** The largest size a policy may answer for one environment (C caps it further). */
#define POLICY_MAX_POOL 64
/** At most this many environments in one request (the pool bounds what it tracks). */
#define POLICY_MAX_POOL_ENVS 64

/* ---- hardening (beyond INGInious) -------------------------------------- */

struct policy_hardening_req {
    const char *environment; /* borrowed */
    bool student;            /* student container (run_student) */
    int64_t memory_mib;
    bool network;
};

struct policy_hardening {
    int64_t pids_limit; /* 0 = none */
    bool no_new_privileges;
    size_t ncap_drop;
    char cap_drop[POLICY_MAX_CAPS][32]; /* e.g. "NET_RAW", or "ALL" */
    int64_t nofile_soft, nofile_hard;   /* 0 = Docker's default */
    int64_t max_output_bytes;           /* cap on all a job's container may send */
    int64_t max_frame_bytes;            /* cap on one message from the container */
    /* Grading container only (0 for student containers): 1..POLICY_MAX_STUDENTS and
     * 1..POLICY_MAX_STUDENTS_TOTAL. A policy answer without them gets the built-in values. */
    int64_t max_students;       /* student containers alive at once for this job */
    int64_t max_students_total; /* student containers this job may start in all */
};

int policy_hardening(struct policy_host *host, const struct policy_hardening_req *req,
                     struct policy_hardening *out, char *reason, size_t reasonlen);
