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
#include "policy/policy_explain.h"
#include "policy/policy_fields.h"
#include "policy/policy_internal.h"
#include "policy/policy_wire.h"
#include "policy/policy_worker.h"

static void explain(struct policy_host *host, enum policy_hook hook, bool by_worker,
                    const struct policy_reply *rep, const struct value *in, int ret,
                    const struct value *out, const char *reason);
static void put_int(struct buf *b, int64_t i);
static void put_fields(struct buf *b, const struct policy_fieldset *set, const void *s);
static bool take_fields(struct policy_host *host, enum policy_hook hook,
                        const struct policy_reply *rep, const struct policy_fieldset *set,
                        void *out);
static bool take_results(struct value *answer, struct policy_result *out, char *err, size_t errlen);
static int result_keys_check(const struct policy_result *r, char *reason, size_t reasonlen);

static struct policy_runtime cli_runtimes[POLICY_MAX_CLI_RUNTIMES];
static size_t n_cli_runtimes;

/* ---- public: lifecycle ---------------------------------------------------- */

int policy_set_cli_runtimes(const struct policy_runtime *rts, size_t n)
{
    if (n > POLICY_MAX_CLI_RUNTIMES)
        return -EINVAL;
    memcpy(cli_runtimes, rts, n * sizeof *rts);
    n_cli_runtimes = n;
    return 0;
}

const struct policy_runtime *policy_cli_runtimes(size_t *n)
{
    *n = n_cli_runtimes;
    return cli_runtimes;
}

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
    policy_worker_request_start(&b, POLICY_HOOK_LIMITS);
    put_fields(&b, &policy_fields_limits_req, req);
    host->last_failure[0] = '\0';
    int ret = 0;
    bool decided = policy_worker_call(host, POLICY_HOOK_LIMITS, &b, reason, reasonlen, &rep);
    if (decided && rep.verdict == 0)
        decided = take_fields(host, POLICY_HOOK_LIMITS, &rep, &policy_fields_limits, out);
    if (decided)
        ret = rep.verdict;
    else
        ret = policy_builtin_limits(host->builtin, req, out, reason, reasonlen);
    if (!ret)
        policy_cap_limits(&host->cfg, out);
    if (policy_explaining()) {
        struct value in, o;
        value_set_map(&in);
        policy_fields_put(&in, &policy_fields_limits_req, req);
        value_set_int(value_map_put(&in, "max_memory_mib"), policy_max_memory_per_slot(&host->cfg));
        value_set_int(value_map_put(&in, "host_memory_mib"), host->cfg.host_memory_mib);
        value_set_int(value_map_put(&in, "concurrency"), host->cfg.concurrency);
        value_set_map(&o);
        if (!ret)
            policy_fields_put(&o, &policy_fields_limits, out);
        explain(host, POLICY_HOOK_LIMITS, decided, &rep, &in, ret, &o, reason);
        value_deinit(&in);
        value_deinit(&o);
    }
    policy_worker_reply_done(&rep);
    free(b.data);
    return ret;
}

int policy_student_limits(struct policy_host *host, const struct policy_student_req *req,
                          struct policy_student_limits *out, char *reason, size_t reasonlen)
{
    struct buf b = {0};
    struct policy_reply rep = {0};
    policy_worker_request_start(&b, POLICY_HOOK_STUDENT);
    put_fields(&b, &policy_fields_student_req, req);
    host->last_failure[0] = '\0';
    int ret = 0;
    bool decided = policy_worker_call(host, POLICY_HOOK_STUDENT, &b, reason, reasonlen, &rep);
    if (decided && rep.verdict == 0)
        decided = take_fields(host, POLICY_HOOK_STUDENT, &rep, &policy_fields_student, out);
    if (decided)
        ret = rep.verdict;
    else
        ret = policy_builtin_student(host->builtin, req, out, reason, reasonlen);
    if (!ret)
        policy_cap_student(req, out);
    if (policy_explaining()) {
        struct value in, o;
        value_set_map(&in);
        policy_fields_put(&in, &policy_fields_student_req, req);
        value_set_map(&o);
        if (!ret)
            policy_fields_put(&o, &policy_fields_student, out);
        explain(host, POLICY_HOOK_STUDENT, decided, &rep, &in, ret, &o, reason);
        value_deinit(&in);
        value_deinit(&o);
    }
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
    wire_map(&b, 3); // {job_id, count, free = {port...}}
    wire_key(&b, "job_id");
    wire_key(&b, req->job_id ? req->job_id : "");
    wire_key(&b, "count");
    put_int(&b, (int64_t)req->count);
    wire_key(&b, "free");
    struct value list;
    value_set_array(&list);
    for (size_t i = 0; i < req->nfree; i++)
        value_set_int(value_array_push(&list), req->free[i]);
    wire_value(&b, &list);
    host->last_failure[0] = '\0';
    int ret = 0;
    bool decided = policy_worker_call(host, POLICY_HOOK_PORTS, &b, reason, reasonlen, &rep);
    if (decided && rep.verdict == 0) {
        char why[POLICY_REASON_MAX] = "";
        const struct value *ports = value_map_get(rep.answer, "ports");
        bool ok = ports && ports->type == VALUE_ARRAY && ports->u.a.len == req->count;
        for (size_t i = 0; ok && i < req->count; i++) {
            const struct value *p = &ports->u.a.items[i];
            ok = p->type == VALUE_INT && p->u.i >= 1 && p->u.i <= 65535;
            chosen[i] = ok ? (uint16_t)p->u.i : 0;
        }
        // The worker checked the choice; the pool is ours, so check it again.
        if (!ok || !policy_ports_valid(req, chosen, why, sizeof why)) {
            char text[POLICY_REASON_MAX + 64];
            util_err(text, sizeof text, "the policy worker answered ports outside the pool%s%s",
                     why[0] ? ": " : "", why);
            policy_worker_report_failure(host, POLICY_HOOK_PORTS, POLICY_FAILURE_WORKER, text,
                                         NULL);
            decided = false;
        }
    }
    if (decided)
        ret = rep.verdict;
    else
        ret = policy_builtin_ports(host->builtin, req, chosen, reason, reasonlen);
    if (policy_explaining()) {
        struct value in, o;
        value_set_map(&in);
        value_set_str(value_map_put(&in, "job_id"), req->job_id ? req->job_id : "");
        value_set_int(value_map_put(&in, "count"), (int64_t)req->count);
        *value_map_put(&in, "free") = list; // moved: freed with in
        value_set_nil(&list);
        value_set_map(&o);
        struct value *ports = value_map_put(&o, "ports");
        value_set_array(ports);
        for (size_t i = 0; !ret && i < req->count; i++)
            value_set_int(value_array_push(ports), chosen[i]);
        explain(host, POLICY_HOOK_PORTS, decided, &rep, &in, ret, &o, reason);
        value_deinit(&in);
        value_deinit(&o);
    }
    value_deinit(&list);
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
    wire_map(&b, n_cli_runtimes ? 4 : 3); // {ssh, max, runtimes = {name...}, forced = {...}}
    wire_key(&b, "ssh");
    struct value v;
    value_set_bool(&v, ssh);
    wire_value(&b, &v);
    wire_key(&b, "max");
    put_int(&b, (int64_t)wmax);
    wire_key(&b, "runtimes");
    value_set_array(&v);
    for (size_t i = 0; i < nnames; i++)
        value_set_str(value_array_push(&v), names[i] ? names[i] : "");
    wire_value(&b, &v);
    struct value forced;
    value_set_array(&forced);
    for (size_t i = 0; i < n_cli_runtimes; i++) {
        struct value *e = value_array_push(&forced);
        value_set_map(e);
        policy_fields_put(e, &policy_fields_runtime, &cli_runtimes[i]);
    }
    if (n_cli_runtimes) {
        wire_key(&b, "forced");
        wire_value(&b, &forced);
    }
    host->last_failure[0] = '\0';
    *nout = 0;
    bool decided =
        policy_worker_call(host, POLICY_HOOK_RUNTIMES, &b, refusal, sizeof refusal, &rep);
    if (decided && rep.verdict == 0) {
        char why[POLICY_REASON_MAX] = "";
        const struct value *list = value_map_get(rep.answer, "runtimes");
        bool ok = list && list->type == VALUE_ARRAY && list->u.a.len <= wmax;
        for (size_t i = 0; ok && i < list->u.a.len; i++) {
            memset(&out[i], 0, sizeof out[i]);
            ok = !policy_fields_get(&list->u.a.items[i], &policy_fields_runtime, &out[i], why,
                                    sizeof why) &&
                 policy_envtype_valid(out[i].envtype);
        }
        if (ok) {
            *nout = list->u.a.len;
        } else {
            char text[POLICY_REASON_MAX + 64];
            util_err(text, sizeof text, "the policy worker answered a malformed runtime list%s%s",
                     why[0] ? ": " : "", why);
            policy_worker_report_failure(host, POLICY_HOOK_RUNTIMES, POLICY_FAILURE_WORKER, text,
                                         NULL);
            decided = false;
        }
    } else if (decided) { // this hook never refuses: a refusal is a broken answer
        log_warn(LOG_POLICY, "map_runtimes() refused (%s); using the built-in default", refusal);
        decided = false;
    }
    if (!decided)
        policy_builtin_runtimes(host->builtin, names, nnames, ssh, out, max, nout);
    if (policy_explaining()) {
        struct value in, o;
        value_set_map(&in);
        *value_map_put(&in, "runtimes") = v; // moved: freed with in
        value_set_nil(&v);
        value_set_bool(value_map_put(&in, "ssh"), ssh);
        if (n_cli_runtimes) {
            *value_map_put(&in, "forced") = forced; // moved too
            value_set_nil(&forced);
        }
        value_set_map(&o);
        struct value *list = value_map_put(&o, "runtimes");
        value_set_array(list);
        for (size_t i = 0; i < *nout; i++) {
            struct value *e = value_array_push(list);
            value_set_map(e);
            policy_fields_put(e, &policy_fields_runtime, &out[i]);
        }
        explain(host, POLICY_HOOK_RUNTIMES, decided, &rep, &in, 0, &o, NULL);
        value_deinit(&in);
        value_deinit(&o);
    }
    value_deinit(&v);
    value_deinit(&forced);
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
    wire_map(&b, raw ? 2 : 1); // {result = raw (absent: none sent), prev_state}
    if (raw) {
        wire_key(&b, "result");
        wire_value(&b, raw);
    }
    wire_key(&b, "prev_state");
    wire_key(&b, prev_state ? prev_state : "");
    memset(out, 0, sizeof *out);
    host->last_failure[0] = '\0';
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
    char why[POLICY_REASON_MAX] = "";
    if (decided && rep.verdict == 0 && !take_results(rep.answer, out, why, sizeof why)) {
        char text[POLICY_REASON_MAX + 64];
        util_err(text, sizeof text, "the policy worker answered a malformed result: %s", why);
        policy_worker_report_failure(host, POLICY_HOOK_RESULTS, POLICY_FAILURE_WORKER, text, NULL);
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
    if (policy_explaining()) {
        // A result may be large: its trees are lent to the maps (shallow), not copied.
        static const char *const lent[] = {"result", "problems", "tests", "custom"};
        struct value in, o;
        value_set_map(&in);
        value_set_str(value_map_put(&in, "prev_state"), prev_state ? prev_state : "");
        if (raw)
            *value_map_put(&in, "result") = *raw;
        value_set_map(&o);
        if (!ret) {
            struct policy_result_view view = {out->result, out->text, out->state, out->grade};
            policy_fields_put(&o, &policy_fields_result, &view);
            *value_map_put(&o, "problems") = out->problems;
            *value_map_put(&o, "tests") = out->tests;
            *value_map_put(&o, "custom") = out->custom;
        }
        explain(host, POLICY_HOOK_RESULTS, decided, &rep, &in, ret, &o, reason);
        for (size_t i = 0; i < ARRAY_SIZE(lent); i++) { // given back before the maps are freed
            struct value *v = (struct value *)value_map_get(i ? &o : &in, lent[i]);
            if (v)
                value_set_nil(v);
        }
        value_deinit(&in);
        value_deinit(&o);
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
    policy_worker_request_start(&b, POLICY_HOOK_HARDENING);
    put_fields(&b, &policy_fields_hardening_req, req);
    host->last_failure[0] = '\0';
    int ret = 0;
    bool decided = policy_worker_call(host, POLICY_HOOK_HARDENING, &b, reason, reasonlen, &rep);
    if (decided && rep.verdict == 0) {
        memset(out, 0, sizeof *out);
        decided = take_fields(host, POLICY_HOOK_HARDENING, &rep, &policy_fields_hardening, out);
        const struct value *caps = decided ? value_map_get(rep.answer, "cap_drop") : NULL;
        bool ok = caps && caps->type == VALUE_ARRAY && caps->u.a.len <= POLICY_MAX_CAPS;
        for (size_t i = 0; ok && i < caps->u.a.len; i++) {
            const struct value *c = &caps->u.a.items[i];
            ok = c->type == VALUE_STR && c->u.s.len < sizeof out->cap_drop[0] &&
                 policy_cap_name_valid(c->u.s.ptr);
            if (ok)
                util_strlcpy(out->cap_drop[out->ncap_drop++], c->u.s.ptr, sizeof out->cap_drop[0]);
        }
        if (decided && !ok) {
            policy_worker_report_failure(host, POLICY_HOOK_HARDENING, POLICY_FAILURE_WORKER,
                                         "the policy worker answered a malformed cap_drop", NULL);
            decided = false;
        }
    }
    if (decided)
        ret = rep.verdict;
    else
        ret = policy_builtin_hardening(host->builtin, req, out, reason, reasonlen);
    if (!ret)
        policy_cap_hardening(&host->cfg, req, out);
    if (policy_explaining()) {
        struct value in, o;
        value_set_map(&in);
        policy_fields_put(&in, &policy_fields_hardening_req, req);
        value_set_map(&o);
        if (!ret) {
            policy_fields_put(&o, &policy_fields_hardening, out);
            struct value *caps = value_map_put(&o, "cap_drop");
            value_set_array(caps);
            for (size_t i = 0; i < out->ncap_drop; i++)
                value_set_str(value_array_push(caps), out->cap_drop[i]);
        }
        explain(host, POLICY_HOOK_HARDENING, decided, &rep, &in, ret, &o, reason);
        value_deinit(&in);
        value_deinit(&o);
    }
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
    // {slots, slots_in_use, environments = {{envtype, name, waiting, ...}, ...}}
    struct value in;
    value_set_map(&in);
    value_set_int(value_map_put(&in, "slots"), req->slots);
    value_set_int(value_map_put(&in, "slots_in_use"), req->slots_in_use);
    struct value *envs = value_map_put(&in, "environments");
    value_set_array(envs);
    for (size_t i = 0; i < n; i++) {
        struct value *e = value_array_push(envs);
        value_set_map(e);
        policy_fields_put(e, &policy_fields_pool_env, &req->envs[i]);
    }
    policy_worker_request_start(&b, POLICY_HOOK_POOL);
    wire_value(&b, &in);
    host->last_failure[0] = '\0';
    bool decided = policy_worker_call(host, POLICY_HOOK_POOL, &b, refusal, sizeof refusal, &rep);
    if (decided && rep.verdict == 0) {
        const struct value *list = value_map_get(rep.answer, "sizes");
        bool ok = list && list->type == VALUE_ARRAY && list->u.a.len == n;
        for (size_t i = 0; ok && i < n; i++) {
            const struct value *v = &list->u.a.items[i];
            ok = v->type == VALUE_INT && v->u.i >= 0 && v->u.i <= POLICY_MAX_POOL;
            sizes[i] = ok ? v->u.i : 0;
        }
        if (!ok) {
            policy_worker_report_failure(host, POLICY_HOOK_POOL, POLICY_FAILURE_WORKER,
                                         "the policy worker's answer is malformed: 'sizes' is not "
                                         "one size per environment",
                                         NULL);
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
    if (policy_explaining()) {
        struct value o;
        value_set_map(&o);
        struct value *list = value_map_put(&o, "sizes");
        value_set_array(list);
        for (size_t i = 0; i < n; i++)
            value_set_int(value_array_push(list), sizes[i]);
        explain(host, POLICY_HOOK_POOL, decided, &rep, &in, 0, &o, "");
        value_deinit(&o);
    }
    value_deinit(&in);
    policy_worker_reply_done(&rep);
    free(b.data);
    return 0;
}

/* ---- helpers ------------------------------------------------------------- */

// One line of --explain (or of the debug log): by_worker says whether the
// admin's hook answered; otherwise the shipped one did, and why is said.
static void explain(struct policy_host *host, enum policy_hook hook, bool by_worker,
                    const struct policy_reply *rep, const struct value *in, int ret,
                    const struct value *out, const char *reason)
{
    struct policy_explain_who who = {0};
    char why[POLICY_LOCATION_MAX + 64] = "";
    char src[2 * POLICY_LOCATION_MAX + 64];
    if (by_worker) {
        who.source = rep->source ? rep->source : policy_hooks[hook].file;
        who.line = rep->line;
        // extend() without a wrapper: the shipped hook, with the admin's defaults.
        if (!strncmp(who.source, POLICY_BUILTIN_PREFIX, strlen(POLICY_BUILTIN_PREFIX))) {
            snprintf(src, sizeof src, "%s/%s.lua (extend() of %s:%d)", host->dir ? host->dir : "",
                     policy_hooks[hook].file, who.source, who.line);
            who.source = src;
            who.line = 0;
        }
    } else {
        who.source = policy_builtin_last(host->builtin, &who.line);
        who.fallback = host->dir != NULL;
        size_t f = 0;
        while (f < POLICY_FILE_COUNT && strcmp(policy_files[f], policy_hooks[hook].file))
            f++;
        if (host->last_failure[0])
            who.why = host->last_failure;
        else if (host->dir && f < POLICY_FILE_COUNT && !host->gen->paths[f])
            util_err(why, sizeof why, "%s/%s.lua: no such file", host->dir,
                     policy_hooks[hook].file);
        else if (host->dir)
            util_err(why, sizeof why, "%s/%s.lua defines no %s()", host->dir,
                     policy_hooks[hook].file, policy_hooks[hook].fn);
        if (!who.why)
            who.why = why;
    }
    policy_explain_emit(hook, &who, in, ret, out, reason);
}

static void put_int(struct buf *b, int64_t i)
{
    struct value v;
    value_set_int(&v, i);
    wire_value(b, &v);
}

// The map of s's named fields.
static void put_fields(struct buf *b, const struct policy_fieldset *set, const void *s)
{
    struct value map;
    value_set_map(&map);
    policy_fields_put(&map, set, s);
    wire_value(b, &map);
    value_deinit(&map);
}

// The worker's answer into out, checked field by field; false (counted, logged)
// when it is not what `set` says.
static bool take_fields(struct policy_host *host, enum policy_hook hook,
                        const struct policy_reply *rep, const struct policy_fieldset *set,
                        void *out)
{
    char why[POLICY_REASON_MAX], text[POLICY_REASON_MAX + 64];
    if (!policy_fields_get(rep->answer, set, out, why, sizeof why))
        return true;
    util_err(text, sizeof text, "the policy worker's answer is malformed: %s", why);
    policy_worker_report_failure(host, hook, POLICY_FAILURE_WORKER, text, NULL);
    return false;
}

// Moves the answer's maps into out (a result may be large: no copy).
static bool take_results(struct value *answer, struct policy_result *out, char *err, size_t errlen)
{
    static const char *const names[] = {"problems", "tests", "custom"};
    struct value *dst[] = {&out->problems, &out->tests, &out->custom};
    struct policy_result_view v = {0};
    if (policy_fields_get(answer, &policy_fields_result, &v, err, errlen))
        return false;
    if (!policy_result_name_valid(v.result)) {
        util_err(err, errlen, "'result' = '%.64s' is not a known result", v.result);
        return false;
    }
    for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
        if (value_map_get(answer, names[i])->type != VALUE_MAP) {
            util_err(err, errlen, "field '%s' must be a map", names[i]);
            return false;
        }
    }
    out->result = xstrdup(v.result);
    out->text = xstrdup(v.text);
    out->state = xstrdup(v.state);
    out->grade = v.grade;
    for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
        struct value *m = (struct value *)value_map_get(answer, names[i]);
        *dst[i] = *m;
        value_set_nil(m);
    }
    return true;
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
