/*
 * The public API of policy.h, on the agent's side: lifecycle of the policy
 * host, and each decision asked of the policy worker (policy_worker.c) with
 * the built-in default (the shipped files, policy_builtin.c) when the admin's
 * policy does not decide, then C's checks and hard caps on whatever answered.
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "core/log.h"
#include "core/util.h"
#include "core/value.h"
#include "policy/policy.h"
#include "policy/policy_builtin.h"
#include "policy/policy_internal.h"
#include "policy/policy_wire.h"
#include "policy/policy_worker.h"

static bool take_results(struct wire_rd *rd, struct policy_result *out);
static int result_keys_check(const struct policy_result *r, char *reason, size_t reasonlen);

/* ---- public: lifecycle ---------------------------------------------------- */

struct policy_host *policy_host_new(const char *dir, const struct policy_config *cfg, char *err,
                                    size_t errlen)
{
    struct policy_builtin *builtin = policy_builtin_new(cfg, err, errlen);
    if (!builtin)
        return NULL;
    struct policy_gen *gen = policy_worker_gen_new(dir, cfg, err, errlen);
    if (!gen) {
        policy_builtin_free(builtin);
        return NULL;
    }
    struct policy_host *host = xcalloc(1, sizeof *host);
    host->dir = dir ? xstrdup(dir) : NULL;
    host->builtin = builtin;
    host->cfg = *cfg;
    host->gen = gen;
    host->generation = 1;
    log_info(LOG_POLICY, "policies loaded from %s (generation 1)", dir ? dir : "(built-in)");
    return host;
}

void policy_host_free(struct policy_host *host)
{
    if (!host)
        return;
    policy_worker_gen_free(host->gen);
    policy_builtin_free(host->builtin);
    free(host->dir);
    free(host);
}

int policy_host_reload(struct policy_host *host, char *err, size_t errlen)
{
    char why[POLICY_REASON_MAX + POLICY_LOCATION_MAX];
    struct policy_gen *gen = policy_worker_gen_new(host->dir, &host->cfg, why, sizeof why);
    if (!gen) {
        log_error(LOG_POLICY, "policy reload failed, generation %" PRIu64 " stays: %s",
                  host->generation, why);
        util_err(err, errlen, "%s", why);
        return -EINVAL;
    }
    policy_worker_gen_free(host->gen);
    host->gen = gen;
    host->generation++;
    log_info(LOG_POLICY, "policies reloaded from %s (generation %" PRIu64 ")",
             host->dir ? host->dir : "(built-in)", host->generation);
    return 0;
}

int policy_check_dir(const char *dir, char *err, size_t errlen)
{
    if (PROCTOR_FAILS(dir != NULL)) {
        util_err(err, errlen, "no policy directory given");
        return -EINVAL;
    }
    struct policy_config cfg = {.concurrency = 1};
    struct policy_gen *gen = policy_worker_gen_new(dir, &cfg, err, errlen);
    if (!gen)
        return -EINVAL;
    policy_worker_gen_free(gen);
    return 0;
}

uint64_t policy_host_generation(const struct policy_host *host)
{
    return host->generation;
}

uint64_t policy_host_failures(const struct policy_host *host)
{
    return host->failures + policy_builtin_failures(host->builtin);
}

/* ---- public: decisions ------------------------------------------------------ */

int policy_limits(struct policy_host *host, const struct policy_limits_req *req,
                  struct policy_limits *out, char *reason, size_t reasonlen)
{
    struct buf b = {0};
    struct policy_reply rep = {0};
    struct policy_limits_req copy = *req;
    copy.environment_type = copy.environment = NULL; // pointers mean nothing to the worker
    policy_worker_request_start(&b, POLICY_HOOK_LIMITS);
    wire_raw(&b, &copy, sizeof copy);
    wire_str(&b, req->environment_type);
    wire_str(&b, req->environment);
    int ret = 0;
    if (policy_worker_call(host, POLICY_HOOK_LIMITS, &b, reason, reasonlen, &rep)) {
        ret = rep.verdict;
        if (!ret)
            wire_get_raw(&rep.rd, out, sizeof *out);
    } else {
        ret = policy_builtin_limits(host->builtin, req, out, reason, reasonlen);
    }
    if (!ret)
        policy_cap_limits(&host->cfg, out);
    policy_worker_reply_done(&rep);
    free(b.data);
    return ret;
}

int policy_student_limits(struct policy_host *host, const struct policy_student_req *req,
                          struct policy_student_limits *out, char *reason, size_t reasonlen)
{
    struct buf b = {0};
    struct policy_reply rep = {0};
    struct policy_student_req copy = *req;
    copy.environment = NULL;
    policy_worker_request_start(&b, POLICY_HOOK_STUDENT);
    wire_raw(&b, &copy, sizeof copy);
    wire_str(&b, req->environment);
    int ret = 0;
    if (policy_worker_call(host, POLICY_HOOK_STUDENT, &b, reason, reasonlen, &rep)) {
        ret = rep.verdict;
        if (!ret)
            wire_get_raw(&rep.rd, out, sizeof *out);
    } else {
        ret = policy_builtin_student(host->builtin, req, out, reason, reasonlen);
    }
    if (!ret)
        policy_cap_student(req, out);
    policy_worker_reply_done(&rep);
    free(b.data);
    return ret;
}

int policy_ports(struct policy_host *host, const struct policy_ports_req *req, uint16_t *chosen,
                 char *reason, size_t reasonlen)
{
    if (PROCTOR_FAILS(req->count <= POLICY_MAX_PORTS)) {
        util_err(reason, reasonlen, "%s", POLICY_TEXT_NO_PORTS);
        return -EPERM;
    }
    struct buf b = {0};
    struct policy_reply rep = {0};
    policy_worker_request_start(&b, POLICY_HOOK_PORTS);
    wire_str(&b, req->job_id);
    wire_i64(&b, (int64_t)req->count);
    wire_i64(&b, (int64_t)req->nfree);
    wire_raw(&b, req->free, req->nfree * sizeof *req->free);
    int ret = 0;
    bool decided = policy_worker_call(host, POLICY_HOOK_PORTS, &b, reason, reasonlen, &rep);
    if (decided && rep.verdict == 0) {
        char why[128];
        wire_get_raw(&rep.rd, chosen, req->count * sizeof *chosen);
        // The worker checked the choice; the pool is ours, so check it again.
        if (rep.rd.bad || !policy_ports_valid(req, chosen, why, sizeof why)) {
            policy_worker_report_failure(host, POLICY_HOOK_PORTS, POLICY_FAILURE_WORKER,
                                         "the policy worker answered ports outside the pool", NULL);
            decided = false;
        }
    }
    if (decided)
        ret = rep.verdict;
    else
        ret = policy_builtin_ports(host->builtin, req, chosen, reason, reasonlen);
    policy_worker_reply_done(&rep);
    free(b.data);
    return ret;
}

int policy_runtimes(struct policy_host *host, const char *const *names, size_t nnames, bool ssh,
                    struct policy_runtime *out, size_t max, size_t *nout)
{
    struct buf b = {0};
    struct policy_reply rep = {0};
    char refusal[POLICY_REASON_MAX];
    size_t wmax = max < 256 ? max : 256; // the worker's bound on this answer
    policy_worker_request_start(&b, POLICY_HOOK_RUNTIMES);
    wire_u8(&b, ssh);
    wire_i64(&b, (int64_t)wmax);
    wire_i64(&b, (int64_t)nnames);
    for (size_t i = 0; i < nnames; i++)
        wire_str(&b, names[i] ? names[i] : "");
    *nout = 0;
    bool decided =
        policy_worker_call(host, POLICY_HOOK_RUNTIMES, &b, refusal, sizeof refusal, &rep);
    if (decided && rep.verdict == 0) {
        int64_t n = wire_get_i64(&rep.rd);
        bool ok = !rep.rd.bad && n >= 0 && (size_t)n <= wmax;
        for (int64_t i = 0; ok && i < n; i++) {
            wire_get_raw(&rep.rd, &out[i], sizeof out[i]);
            out[i].runtime[sizeof out[i].runtime - 1] = '\0';
            out[i].envtype[sizeof out[i].envtype - 1] = '\0';
            ok = !rep.rd.bad && policy_envtype_valid(out[i].envtype);
        }
        if (ok) {
            *nout = (size_t)n;
        } else {
            policy_worker_report_failure(host, POLICY_HOOK_RUNTIMES, POLICY_FAILURE_WORKER,
                                         "the policy worker answered a malformed runtime list",
                                         NULL);
            decided = false;
        }
    } else if (decided) { // this hook never refuses: a refusal is a broken answer
        log_warn(LOG_POLICY, "map_runtimes() refused (%s); using the built-in default", refusal);
        decided = false;
    }
    if (!decided)
        policy_builtin_runtimes(host->builtin, names, nnames, ssh, out, max, nout);
    policy_worker_reply_done(&rep);
    free(b.data);
    return 0;
}

int policy_results(struct policy_host *host, const struct value *raw, const char *prev_state,
                   struct policy_result *out, char *reason, size_t reasonlen)
{
    struct buf b = {0};
    struct policy_reply rep = {0};
    policy_worker_request_start(&b, POLICY_HOOK_RESULTS);
    wire_u8(&b, raw != NULL);
    if (raw)
        wire_value(&b, raw);
    wire_str(&b, prev_state);
    memset(out, 0, sizeof *out);
    int ret = 0;
    bool decided = false;
    // A result larger than the policies' heap cannot be handed to them: the
    // default decides without copying it to the worker.
    if (b.len > POLICY_STATE_MEMORY_CAP && host->gen->has_hook[POLICY_HOOK_RESULTS]) {
        char text[128];
        util_err(text, sizeof text, "results.lua: a result of %zu bytes does not fit in %zu MiB",
                 b.len, POLICY_STATE_MEMORY_CAP >> 20);
        policy_worker_report_failure(host, POLICY_HOOK_RESULTS, POLICY_FAILURE_MEMORY, text, NULL);
    } else {
        decided = policy_worker_call(host, POLICY_HOOK_RESULTS, &b, reason, reasonlen, &rep);
    }
    if (decided && rep.verdict == 0 && !take_results(&rep.rd, out)) {
        policy_worker_report_failure(host, POLICY_HOOK_RESULTS, POLICY_FAILURE_WORKER,
                                     "the policy worker answered a malformed result", NULL);
        decided = false;
    }
    if (decided) {
        ret = rep.verdict;
        if (ret)
            policy_result_deinit(out);
    } else {
        policy_result_deinit(out); // what a rejected answer left behind
        ret = policy_builtin_results(host->builtin, raw, prev_state, out, reason, reasonlen);
    }
    if (!ret) {
        ret = result_keys_check(out, reason, reasonlen);
        if (ret)
            policy_result_deinit(out);
    }
    policy_worker_reply_done(&rep);
    free(b.data);
    return ret;
}

int policy_hardening(struct policy_host *host, const struct policy_hardening_req *req,
                     struct policy_hardening *out, char *reason, size_t reasonlen)
{
    struct buf b = {0};
    struct policy_reply rep = {0};
    struct policy_hardening_req copy = *req;
    copy.environment = NULL;
    policy_worker_request_start(&b, POLICY_HOOK_HARDENING);
    wire_raw(&b, &copy, sizeof copy);
    wire_str(&b, req->environment);
    int ret = 0;
    bool decided = policy_worker_call(host, POLICY_HOOK_HARDENING, &b, reason, reasonlen, &rep);
    if (decided && rep.verdict == 0) {
        wire_get_raw(&rep.rd, out, sizeof *out);
        bool ok = !rep.rd.bad && out->ncap_drop <= POLICY_MAX_CAPS;
        for (size_t i = 0; ok && i < out->ncap_drop; i++) {
            out->cap_drop[i][sizeof out->cap_drop[i] - 1] = '\0';
            ok = policy_cap_name_valid(out->cap_drop[i]);
        }
        if (!ok) {
            policy_worker_report_failure(host, POLICY_HOOK_HARDENING, POLICY_FAILURE_WORKER,
                                         "the policy worker answered malformed hardening", NULL);
            decided = false;
        }
    }
    if (decided)
        ret = rep.verdict;
    else
        ret = policy_builtin_hardening(host->builtin, req, out, reason, reasonlen);
    if (!ret)
        policy_cap_hardening(&host->cfg, req, out);
    policy_worker_reply_done(&rep);
    free(b.data);
    return ret;
}

int policy_pool(struct policy_host *host, const struct policy_pool_req *req, int64_t *sizes)
{
    struct buf b = {0};
    struct policy_reply rep = {0};
    char refusal[POLICY_REASON_MAX];
    size_t n = req->nenvs < POLICY_MAX_POOL_ENVS ? req->nenvs : POLICY_MAX_POOL_ENVS;
    for (size_t i = 0; i < req->nenvs; i++)
        sizes[i] = 0;
    policy_worker_request_start(&b, POLICY_HOOK_POOL);
    wire_i64(&b, req->slots);
    wire_i64(&b, req->slots_in_use);
    wire_i64(&b, (int64_t)n);
    for (size_t i = 0; i < n; i++) {
        const struct policy_pool_env *e = &req->envs[i];
        wire_str(&b, e->envtype);
        wire_str(&b, e->name);
        wire_i64(&b, e->waiting);
        wire_i64(&b, e->arrivals_1m);
        wire_i64(&b, e->arrivals_10m);
        wire_i64(&b, e->idle_s);
        wire_i64(&b, e->memory_mib);
        wire_u8(&b, e->available);
    }
    bool decided = policy_worker_call(host, POLICY_HOOK_POOL, &b, refusal, sizeof refusal, &rep);
    if (decided && rep.verdict == 0) {
        int64_t got = wire_get_i64(&rep.rd);
        bool ok = !rep.rd.bad && got == (int64_t)n;
        for (size_t i = 0; ok && i < n; i++) {
            sizes[i] = wire_get_i64(&rep.rd);
            ok = !rep.rd.bad && sizes[i] >= 0 && sizes[i] <= POLICY_MAX_POOL;
        }
        if (!ok) {
            policy_worker_report_failure(host, POLICY_HOOK_POOL, POLICY_FAILURE_WORKER,
                                         "the policy worker answered malformed pool sizes", NULL);
            decided = false;
        }
    } else if (decided) { // this hook never refuses: a refusal is a broken answer
        log_warn(LOG_POLICY, "size_pool() refused (%s); using the built-in default", refusal);
        decided = false;
    }
    if (!decided) {
        struct policy_pool_req r = *req;
        r.nenvs = n;
        policy_builtin_pool(host->builtin, &r, sizes);
    }
    policy_worker_reply_done(&rep);
    free(b.data);
    return 0;
}

/* ---- helpers ------------------------------------------------------------- */

static bool take_results(struct wire_rd *rd, struct policy_result *out)
{
    const char *result = wire_get_str(rd, NULL), *text = wire_get_str(rd, NULL);
    const char *state = wire_get_str(rd, NULL);
    out->grade = wire_get_f64(rd);
    if (rd->bad || !result || !text || !state || !policy_result_name_valid(result))
        return false;
    out->result = xstrdup(result);
    out->text = xstrdup(text);
    out->state = xstrdup(state);
    // Each is valid (a nil value) even when the message ends early.
    wire_get_value(rd, &out->problems);
    wire_get_value(rd, &out->tests);
    wire_get_value(rd, &out->custom);
    return !rd->bad && out->problems.type == VALUE_MAP && out->tests.type == VALUE_MAP &&
           out->custom.type == VALUE_MAP;
}

/*
 * What every accepted result must be for the backend, whoever decided it:
 * problems, tests and custom keyed by strings (a container can send msgpack
 * maps with integer keys, which the backend cannot take). 0 or -EPERM.
 */
static int result_keys_check(const struct policy_result *r, char *reason, size_t reasonlen)
{
    const struct {
        const char *name;
        const struct value *map;
    } maps[] = {{"problems", &r->problems}, {"tests", &r->tests}, {"custom", &r->custom}};
    for (size_t m = 0; m < ARRAY_SIZE(maps); m++) {
        const struct value *v = maps[m].map;
        for (size_t i = 0; v->type == VALUE_MAP && i < v->u.m.len; i++) {
            if (v->u.m.items[i].key.type != VALUE_STR) {
                util_err(reason, reasonlen, "%s: a key of type %s is not a string", maps[m].name,
                         value_type_name(v->u.m.items[i].key.type));
                return -EPERM;
            }
        }
    }
    return 0;
}
