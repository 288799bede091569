/*
 * The built-in defaults (policy_builtin.h): the shipped policies/<name>.lua,
 * embedded by cmake/policy.cmake, loaded once into a Lua state of the agent's
 * own process and called through the same code as an admin's files in the
 * policy worker (policy_host.c, policy_calls.c): same input tables, same
 * checks of the answers.
 *
 * In the agent rather than in the worker: they are trusted code shipped in
 * the binary, and a call costs a few microseconds instead of a round trip to
 * another process; they decide even when the worker is dead. The state keeps
 * a wall-clock bound per call (a bug must not freeze the agent) but no heap
 * cap and no instruction budget: their input is already bounded by the
 * agent's caps (a result of --max-message-mib), and today's decisions must
 * not depend on the size of a result.
 */
#include "policy/policy_builtin.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "core/log.h"
#include "core/metrics.h"
#include "core/util.h"
#include "policy/policy_host.h"
#include "policy/policy_internal.h"
#include "policy/policy_shipped_embedded.h"

#define BUILTIN_CALL_TICKS (LONG_MAX / 2) /* no instruction budget */
#define BUILTIN_DEADLINE_MS 10000         /* only a bug of the shipped files gets there */
#define BUILTIN_RUNTIMES_MAX 256

struct policy_builtin {
    struct policy_state *st;
    struct policy_shared sh; /* where the budget hook notes the file:line */
    uint64_t failures;
    char last_source[POLICY_LOCATION_MAX]; /* the hook of the last call, for --explain */
    int last_line;
};

struct policy_builtin *policy_builtin_new(const struct policy_config *cfg, char *err, size_t errlen)
{
    struct policy_builtin *b = xcalloc(1, sizeof *b);
    struct policy_state *st = xcalloc(1, sizeof *st);
    st->cfg = *cfg;
    st->sh = &b->sh;
    struct policy_setup s = {.st = st,
                             .examples = true,
                             .quiet = true,
                             .mem_cap = SIZE_MAX,
                             .call_ticks = BUILTIN_CALL_TICKS,
                             .call_deadline_ms = BUILTIN_DEADLINE_MS,
                             .in_agent = true};
    char paths[POLICY_FILE_COUNT][64];
    for (size_t i = 0; i < POLICY_FILE_COUNT; i++) {
        for (size_t k = 0; k < ARRAY_SIZE(policy_shipped_files); k++) {
            const struct policy_shipped_file *f = &policy_shipped_files[k];
            if (strcmp(f->name, policy_files[i]) != 0)
                continue;
            snprintf(paths[i], sizeof paths[i], POLICY_BUILTIN_PREFIX "%s.lua", f->name);
            s.paths[i] = paths[i];
            s.texts[i] = (const char *)f->text;
            s.lens[i] = f->len;
        }
    }
    b->st = policy_state_new(&s, err, errlen);
    for (size_t h = 0; b->st && h < POLICY_HOOK_COUNT; h++) {
        if (!b->st->has_hook[h]) {
            util_err(err, errlen, POLICY_BUILTIN_PREFIX "%s.lua defines no %s()",
                     policy_hooks[h].file, policy_hooks[h].fn);
            policy_state_free(b->st);
            b->st = NULL;
        }
    }
    if (!b->st) {
        free(b);
        return NULL;
    }
    return b;
}

const char *policy_builtin_last(const struct policy_builtin *b, int *line)
{
    *line = b->last_line;
    return b->last_source;
}

uint64_t policy_builtin_failures(const struct policy_builtin *b)
{
    return b->failures;
}

void policy_builtin_free(struct policy_builtin *b)
{
    if (!b)
        return;
    policy_state_free(b->st);
    free(b);
}

// One call: 0, -EPERM (the shipped file refused, or failed: reason says which).
static int builtin_call(struct policy_builtin *b, struct policy_call *c)
{
    bool decided = policy_state_call(b->st, c);
    int ret = c->verdict;
    util_strlcpy(b->last_source, c->source, sizeof b->last_source);
    b->last_line = c->line;
    if (!decided) {
        b->failures++;
        metric_add2(METRIC_POLICY_FAILURES, policy_hooks[c->hook].fn, "builtin", 1);
        char file[64];
        snprintf(file, sizeof file, POLICY_BUILTIN_PREFIX "%s.lua", policy_hooks[c->hook].file);
        log_error_event(LOG_POLICY, "policy_failure",
                        LOG_FIELDS(LOG_STR("hook", policy_hooks[c->hook].fn),
                                   LOG_STR("kind", "builtin"), LOG_STR("file", file),
                                   LOG_STR("error", c->msg)),
                        "the built-in %s() failed (a bug of the shipped policies): %s",
                        policy_hooks[c->hook].fn, c->msg);
        if (c->trace)
            log_debug(LOG_POLICY, "%s", c->trace);
        util_err(c->reason, c->reasonlen,
                 "The agent's built-in policy %s() failed. Please contact your course "
                 "administrator.",
                 policy_hooks[c->hook].fn);
        ret = -EPERM;
    }
    policy_state_call_done(b->st, c);
    return ret;
}

int policy_builtin_limits(struct policy_builtin *b, const struct policy_limits_req *req,
                          struct policy_limits *out, char *reason, size_t reasonlen)
{
    struct policy_limits_call lc = {&b->st->cfg, req};
    struct policy_call c = {.hook = POLICY_HOOK_LIMITS,
                            .req = &lc,
                            .out = out,
                            .reason = reason,
                            .reasonlen = reasonlen};
    return builtin_call(b, &c);
}

int policy_builtin_student(struct policy_builtin *b, const struct policy_student_req *req,
                           struct policy_student_limits *out, char *reason, size_t reasonlen)
{
    struct policy_call c = {.hook = POLICY_HOOK_STUDENT,
                            .req = req,
                            .out = out,
                            .reason = reason,
                            .reasonlen = reasonlen};
    return builtin_call(b, &c);
}

int policy_builtin_ports(struct policy_builtin *b, const struct policy_ports_req *req,
                         uint16_t *chosen, char *reason, size_t reasonlen)
{
    struct policy_call c = {.hook = POLICY_HOOK_PORTS,
                            .req = req,
                            .out = chosen,
                            .reason = reason,
                            .reasonlen = reasonlen};
    return builtin_call(b, &c);
}

void policy_builtin_runtimes(struct policy_builtin *b, const char *const *names, size_t nnames,
                             bool ssh, struct policy_runtime *out, size_t max, size_t *nout)
{
    // The shipped file answers every type it finds; the caller keeps the first `max`.
    struct policy_runtime all[BUILTIN_RUNTIMES_MAX];
    memset(all, 0, sizeof all); // the bytes past each name too, as the worker's answer has them
    size_t n = 0;
    char refusal[POLICY_REASON_MAX];
    struct policy_runtimes_call rc = {names, nnames, ssh, all, ARRAY_SIZE(all), &n, NULL, 0};
    rc.forced = policy_cli_runtimes(&rc.nforced);
    struct policy_call c = {.hook = POLICY_HOOK_RUNTIMES,
                            .req = &rc,
                            .out = all,
                            .reason = refusal,
                            .reasonlen = sizeof refusal};
    if (builtin_call(b, &c) != 0)
        n = 0; // logged; this hook never refuses
    *nout = n < max ? n : max;
    memcpy(out, all, *nout * sizeof *out);
}

int policy_builtin_results(struct policy_builtin *b, const struct value *raw,
                           const char *prev_state, struct policy_result *out, char *reason,
                           size_t reasonlen)
{
    struct policy_results_call rc = {raw, prev_state};
    struct policy_call c = {.hook = POLICY_HOOK_RESULTS,
                            .req = &rc,
                            .out = out,
                            .reason = reason,
                            .reasonlen = reasonlen};
    memset(out, 0, sizeof *out);
    int ret = builtin_call(b, &c);
    if (ret)
        policy_result_deinit(out); // what a refused or rejected answer left behind
    return ret;
}

int policy_builtin_hardening(struct policy_builtin *b, const struct policy_hardening_req *req,
                             struct policy_hardening *out, char *reason, size_t reasonlen)
{
    struct policy_call c = {.hook = POLICY_HOOK_HARDENING,
                            .req = req,
                            .out = out,
                            .reason = reason,
                            .reasonlen = reasonlen};
    return builtin_call(b, &c);
}

void policy_builtin_pool(struct policy_builtin *b, const struct policy_pool_req *req,
                         int64_t *sizes)
{
    char refusal[POLICY_REASON_MAX];
    struct policy_call c = {.hook = POLICY_HOOK_POOL,
                            .req = req,
                            .out = sizes,
                            .reason = refusal,
                            .reasonlen = sizeof refusal};
    if (builtin_call(b, &c) != 0) // logged; this hook never refuses
        for (size_t i = 0; i < req->nenvs; i++)
            sizes[i] = 0;
}
