/**
 * @file policy_worker.h
 * The agent's side of the policy worker process (policy_worker.c): the
 * generations of policy texts, the worker that runs each, and one call to it
 * with a deadline. policy_api.c builds the public API of policy.h on it.
 * Nothing outside src/policy includes this header.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/util.h"
#include "policy/policy.h"
#include "policy/policy_internal.h"
#include "policy/policy_wire.h"

/** A running policy worker process (private to policy_worker.c). */
struct policy_worker;

/** One generation: the texts its workers load, and its worker. */
struct policy_gen {
    char *paths[POLICY_FILE_COUNT]; /* NULL: no such file */
    char *texts[POLICY_FILE_COUNT];
    size_t lens[POLICY_FILE_COUNT];
    bool has_hook[POLICY_HOOK_COUNT];
    unsigned logged[POLICY_HOOK_COUNT]; /* failure kinds already logged */
    struct policy_worker *w; /* NULL: not running (killed: started again at the next call) */
    uint64_t retry_at_ms;    /* after a failed restart, no new one before */
};

struct policy_builtin;

struct policy_host {
    char *dir;                      /* NULL: built-in defaults only */
    struct policy_builtin *builtin; /* the shipped files, in this process (policy_builtin.h) */
    struct policy_config cfg;
    struct policy_gen *gen;
    uint64_t generation;
    uint64_t failures;
    char last_failure[POLICY_REASON_MAX + POLICY_LOCATION_MAX]; /* of the current call (explain) */
};

/** The answer of one call (a map of named fields, see policy_serve.c). */
struct policy_reply {
    char *msg;      /* owned: release with policy_worker_reply_done */
    struct value v; /* the reply map, owned */
    int verdict;
    struct value *answer; /* in v: the answer map (decided, verdict 0); its parts may be moved */
    const char *source;   /* borrowed from v: the file that answered, or NULL */
    int line;             /* and its line (0: unknown) */
};

/**
 * A generation from dir (NULL: no Lua at all, built-in defaults only), loaded
 * and validated in a new worker (`cfg` is copied to it). NULL with err on
 * failure. Caller frees with policy_worker_gen_free.
 */
struct policy_gen *policy_worker_gen_new(const char *dir, const struct policy_config *cfg,
                                         char *err, size_t errlen);
/** Stops the generation's worker and frees it. NULL is a no-op. */
void policy_worker_gen_free(struct policy_gen *gen);

/**
 * Starts a CALL request for `hook` in b, the map {hook = fn name, request = ...}:
 * the caller appends the request's value (a map of named fields).
 */
void policy_worker_request_start(struct buf *b, enum policy_hook hook);
/**
 * Sends req to the current generation's worker (started again when the last
 * one was killed) and waits for its answer, at most the call's deadline (plus
 * the grace). True when the policy decided (rep->verdict 0 with rep->rd at the
 * answer, or -EPERM with the text in reason); false when the caller must use
 * the built-in default (no such hook, or a failure, which is counted and
 * logged once per generation and kind). Release rep with
 * policy_worker_reply_done in either case.
 */
bool policy_worker_call(struct policy_host *host, enum policy_hook hook, const struct buf *req,
                        char *reason, size_t reasonlen, struct policy_reply *rep);
void policy_worker_reply_done(struct policy_reply *rep);
/**
 * Counts a failure of `hook`; logs it once per generation and kind (`trace`,
 * which may be NULL, at debug level).
 */
void policy_worker_report_failure(struct policy_host *host, enum policy_hook hook,
                                  enum policy_failure kind, const char *msg, const char *trace);
