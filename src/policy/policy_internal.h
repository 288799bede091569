/**
 * @file policy_internal.h
 * What the policy files share, without Lua: the checks and hard caps C
 * applies after any answer (policy_checks.c), whether an admin's file or the
 * built-in defaults (the shipped policies/<name>.lua, embedded: policy_builtin.h)
 * gave it, and what the agent and its policy worker share.
 * Nothing outside src/policy includes this header.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "policy/policy.h"

/** INGInious's user-visible texts (must match upstream byte for byte). */
#define POLICY_TEXT_NO_PORTS "No ports are available right now. Please retry later."

/** Chunk names of the embedded shipped files: "@(built-in)/limits.lua". */
#define POLICY_BUILTIN_PREFIX "(built-in)/"

/** Docker refuses memory limits below 6 MiB. */
#define POLICY_MIN_MEMORY_MIB 6
/** Largest time a policy may answer (about 68 years; keeps ms arithmetic in range). */
#define POLICY_MAX_SECONDS INT64_C(2147483647)
/** Upper bound of a pids limit (the kernel's pid_max ceiling). */
#define POLICY_MAX_PIDS INT64_C(4194304)
/** Upper bound of nofile (the kernel's nr_open ceiling). */
#define POLICY_MAX_NOFILE INT64_C(1073741816)

/** What policy_set_cli_runtimes() set (borrowed; *n may be 0). */
const struct policy_runtime *policy_cli_runtimes(size_t *n);

/** max_per_slot of INGInious: host RAM MiB / concurrency (at least 1 slot). */
int64_t policy_max_memory_per_slot(const struct policy_config *cfg);

/**
 * max_students / max_students_total of a hardening answer that leaves them out
 * (8 and 512, as policies/hardening.lua; 0 and 0 for a student container).
 */
void policy_missing_student_caps(const struct policy_hardening_req *req,
                                 struct policy_hardening *out);

/* ---- checks and caps applied after every answer ------------------------ */

/** Lowers the limits to the agent's hard caps (time, wall time, memory per slot). */
void policy_cap_limits(const struct policy_config *cfg, struct policy_limits *out);
/** Lowers a student container's limits to its parent's. */
void policy_cap_student(const struct policy_student_req *req, struct policy_student_limits *out);
/**
 * Lowers the byte limits to the agent's configuration and the student-container
 * counts to POLICY_MAX_STUDENTS / POLICY_MAX_STUDENTS_TOTAL (0 for a student container).
 */
void policy_cap_hardening(const struct policy_config *cfg, const struct policy_hardening_req *req,
                          struct policy_hardening *out);
/**
 * True when chosen[0..count) are distinct members of req->free; otherwise
 * false with the reason in err.
 */
bool policy_ports_valid(const struct policy_ports_req *req, const uint16_t *chosen, char *err,
                        size_t errlen);
/** True for a capability name Docker accepts ("NET_RAW", "CAP_NET_RAW", "ALL"). */
bool policy_cap_name_valid(const char *name);
/** True for one of success failed error crash timeout overflow killed. */
bool policy_result_name_valid(const char *name);
/** True for an environment type made of [A-Za-z0-9_.-], 1..POLICY_NAME_MAX-1 bytes. */
bool policy_envtype_valid(const char *name);
/** Rounds to 2 decimals as Python's round(x, 2) (and results.lua) do; non-finite values unchanged.
 */
double policy_round2(double x);
/** True for INGInious's problem id rule ([A-Za-z0-9_.-]+), with '*' too when `tests`. */
bool policy_id_valid(const char *s, size_t len, bool tests);

/* ---- the policy worker process ------------------------------------------
 * Policies run in a worker process (policy_serve.c, policy_host.c,
 * policy_calls.c, policy_conv.c: the Lua side, which serves requests;
 * policy_worker.c and policy_api.c: the agent's side, which spawns it, calls
 * it with a deadline and kills it past the deadline). What both sides share: */

/** Bounds of one policy generation (enforced in the worker). */
#define POLICY_STATE_MEMORY_CAP ((size_t)32 << 20) /* bytes of Lua heap per generation */
#define POLICY_CALL_DEADLINE_MS 500                /* wall clock of one call, in the worker */
#define POLICY_LOAD_DEADLINE_MS 5000 /* wall clock of one file's load, examples included */
/**
 * What a stuck call costs the agent at most: the call's deadline, plus a grace
 * for the worker's own budget hook to answer first when it can (then the
 * admin gets the normal "time budget exhausted" message). Past it the agent
 * kills the worker: this is what bounds a policy stuck inside a C library
 * function (a backtracking pattern, string.rep of an empty string).
 */
#define POLICY_WORKER_GRACE_MS 100
#define POLICY_CALL_KILL_MS (POLICY_CALL_DEADLINE_MS + POLICY_WORKER_GRACE_MS)
#define POLICY_LOCATION_MAX 512

enum policy_hook {
    POLICY_HOOK_LIMITS,
    POLICY_HOOK_STUDENT,
    POLICY_HOOK_PORTS,
    POLICY_HOOK_RUNTIMES,
    POLICY_HOOK_RESULTS,
    POLICY_HOOK_HARDENING,
    POLICY_HOOK_POOL,
    POLICY_HOOK_COUNT
};

struct policy_hook_info {
    const char *fn;   /* function name in the policy file */
    const char *file; /* policy file, without ".lua" */
};
extern const struct policy_hook_info policy_hooks[POLICY_HOOK_COUNT];

#define POLICY_FILE_COUNT 6
/** Load order: limits ports runtimes results hardening pool. */
extern const char *const policy_files[POLICY_FILE_COUNT];

#define POLICY_FAILURES(X)                                                                         \
    X(ERROR, "raised an error")                                                                    \
    X(BUDGET, "ran out of its instruction budget")                                                 \
    X(MEMORY, "ran out of memory")                                                                 \
    X(ANSWER, "gave an answer the agent rejects")                                                  \
    X(DEADLINE, "did not return within its deadline (the policy worker was killed)")               \
    X(WORKER, "could not run (the policy worker failed)")

enum policy_failure {
#define X(name, text) POLICY_FAILURE_##name,
    POLICY_FAILURES(X)
#undef X
        POLICY_FAILURE_COUNT
};
extern const char *const policy_failure_texts[POLICY_FAILURE_COUNT];
/** The kinds' names ("ERROR", ...): on the worker's socket and in the metrics. */
extern const char *const policy_failure_names[POLICY_FAILURE_COUNT];
/** The kind named `name` into *kind; false for an unknown name (or NULL). */
bool policy_failure_by_name(const char *name, enum policy_failure *kind);

/** Requests on the worker's socket. */
enum policy_op { POLICY_OP_LOAD = 1, POLICY_OP_CALL = 2 };

/**
 * A page the worker writes and the agent reads after killing it: where the
 * policy was (file:line, kept by the budget hook, also at every call of a C
 * function), and until when its current budgeted phase may run.
 */
struct policy_shared {
    volatile uint64_t deadline_ms; /* util_now_ms clock */
    char where[POLICY_LOCATION_MAX];
};

/**
 * The worker's side: serves the agent on `sock` until it closes it (see
 * policy_serve.c for the messages). Returns the process exit status.
 */
int policy_worker_serve(int sock, struct policy_shared *shared);
