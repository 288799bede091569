/**
 * @file policy_host.h
 * The Lua side of the policy worker process: one bounded lua_State per
 * generation (policy_host.c), the hooks' input tables and answer checks
 * (policy_calls.c, through policy_conv.h), and what the worker's request loop
 * (policy_serve.c) hands them.
 *
 * The files that include lua.h are policy_host.c, policy_conv.c and
 * policy_calls.c, all through this header or policy_conv.h; nothing outside
 * src/policy includes either.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <lua.h>

#include "core/value.h"
#include "policy/policy.h"
#include "policy/policy_conv.h"
#include "policy/policy_internal.h"

/** One loaded generation of policies. */
struct policy_state {
    lua_State *L;
    struct policy_config cfg;
    size_t mem_used, mem_cap;
    long ticks_left;
    long budget_ticks;
    uint64_t deadline_ms;
    bool exhausted;           /* the current call ran out of instructions */
    struct policy_shared *sh; /* where (file:line) and deadline, also read by the agent */
    const char *where_src;    /* what sh->where holds: source and line */
    int where_line;
    char budget_msg[POLICY_LOCATION_MAX + 96];
    long call_ticks;           /* instruction budget of one call, in ticks of 100 */
    uint64_t call_deadline_ms; /* wall clock of one call */
    bool in_agent;             /* the built-in state, in the agent's process */
    int hooks_ref;             /* registry: { fn name = function } */
    int wrappers_ref;          /* registry: loader.wrappers { extend()'s hook = admin's fn } */
    struct policy_conv conv;
    bool has_hook[POLICY_HOOK_COUNT];
};

struct policy_call;

/** Pushes the input table of a hook (may raise: runs protected). */
typedef void (*policy_push_fn)(lua_State *L, struct policy_call *c);
/** Checks the answer table at t into c->out: 0, or -EINVAL with c->err. Never raises. */
typedef int (*policy_take_fn)(lua_State *L, int t, struct policy_call *c);

/** One policy call: what policy_state_call() needs, and what it found. */
struct policy_call {
    enum policy_hook hook;
    struct policy_state *st;
    const void *req; /* the hook's request (below for those that are more than one struct) */
    void *out;       /* the hook's answer */
    char *reason;
    size_t reasonlen;
    /* filled during the call */
    int verdict; /* 0 decided, -EPERM refused, -EINVAL rejected answer */
    char source[POLICY_LOCATION_MAX];
    int line;
    char err[POLICY_REASON_MAX];
    /* when the call failed */
    enum policy_failure kind;
    char msg[POLICY_REASON_MAX + POLICY_LOCATION_MAX];
    const char *trace; /* borrowed from the Lua stack until policy_state_call_done() */
};

// Requests of the hooks that are more than one C struct of policy.h.
struct policy_limits_call {
    const struct policy_config *cfg;
    const struct policy_limits_req *req;
};

struct policy_runtimes_call {
    const char *const *names;
    size_t nnames;
    bool ssh;
    struct policy_runtime *out;
    size_t max, *nout;
    const struct policy_runtime *forced; /* proctord --runtime (req.forced), may be NULL */
    size_t nforced;
};

struct policy_results_call {
    const struct value *raw; /* NULL: the container sent no result */
    const char *prev_state;
};

/** How each hook's input is built and its answer taken (policy_calls.c). */
struct policy_call_fns {
    policy_push_fn push;
    policy_take_fn take;
};
extern const struct policy_call_fns policy_calls[POLICY_HOOK_COUNT];

/** What the agent sent to load a generation (all borrowed from its message). */
struct policy_setup {
    struct policy_state *st;
    bool examples; /* run the files' examples (not when restarting a known-good generation) */
    bool quiet;    /* do not log what the first load already logged */
    /* 0 for each: the policy worker's bounds (POLICY_STATE_MEMORY_CAP, 5 M instructions and
     * POLICY_CALL_DEADLINE_MS per call); the built-in state sets its own (policy_builtin.c). */
    size_t mem_cap;
    long call_ticks;
    uint64_t call_deadline_ms;
    bool in_agent; /* the built-in state (policy_builtin.c), not the policy worker */
    const char *paths[POLICY_FILE_COUNT]; /* NULL: no such file */
    const char *texts[POLICY_FILE_COUNT];
    size_t lens[POLICY_FILE_COUNT];
};

/**
 * Builds s->st (allocated by the caller, with cfg and sh set; this takes
 * ownership) from the texts in s: returns it, or NULL with "file:line:
 * message" in err (s->st is then freed). Caller frees with policy_state_free.
 */
struct policy_state *policy_state_new(struct policy_setup *s, char *err, size_t errlen);
/** NULL is a no-op. */
void policy_state_free(struct policy_state *st);
/**
 * Calls hook c->hook (which st has) with c->req. True when the policy decided
 * (c->verdict 0 with c->out filled, or -EPERM with c->reason); false when the
 * agent must use the built-in default (c->kind and c->msg say why). The Lua
 * stack keeps the answer (and c->trace) until policy_state_call_done().
 */
bool policy_state_call(struct policy_state *st, struct policy_call *c);
void policy_state_call_done(struct policy_state *st, struct policy_call *c);
