/*
 * The policy worker's request loop: requests in, answers out. Runs in the
 * worker process (policy_worker.c is the agent's side); the Lua work is
 * policy_host.c's.
 *
 * Messages (policy_wire.h framing): an op byte, then one map of named fields
 * (policy_fields.h), checked by name on arrival.
 *   LOAD  {config, log_level, examples, quiet, files = {limits = {path, text}, ...}}
 *     ->  {ok, error, hooks = {clamp_limits = true, ...}}
 *   CALL  {hook = "clamp_limits", request = {the hook's request}}
 *     ->  {decided, verdict, reason, failure, message, trace, source, line,
 *          answer = {the hook's answer} (decided with verdict 0 only)}
 */
#include <errno.h>
#include <string.h>

#include "core/log.h"
#include "core/util.h"
#include "core/value.h"
#include "policy/policy.h"
#include "policy/policy_fields.h"
#include "policy/policy_host.h"
#include "policy/policy_internal.h"
#include "policy/policy_wire.h"

/* A request larger than this is refused by the worker (results are bounded by
 * the agent's frame cap before they get here). */
#define REQUEST_MAX ((size_t)1 << 30)
#define MAX_RUNTIMES 256 /* entries map_runtimes may answer */

static int serve_call(struct policy_state *st, struct wire_rd *r, struct buf *b);
static struct policy_state *serve_load(struct wire_rd *r, struct policy_shared *sh, char *err,
                                       size_t errlen);

int policy_worker_serve(int sock, struct policy_shared *sh)
{
    struct policy_state *st = NULL;
    struct buf b = {0};
    char *msg = NULL;
    size_t len = 0;
    int ret = wire_recv(sock, &msg, &len, REQUEST_MAX, NULL);
    if (!ret) {
        char err[POLICY_REASON_MAX + POLICY_LOCATION_MAX] = "";
        struct wire_rd r;
        wire_rd_init(&r, msg, len);
        if (wire_get_u8(&r) == POLICY_OP_LOAD)
            st = serve_load(&r, sh, err, sizeof err);
        else
            util_err(err, sizeof err, "the first request must be a load");
        sh->deadline_ms = 0; // nothing budgeted runs until the next call
        struct value rep;
        value_set_map(&rep); // {ok, error, hooks = {fn = true}}
        value_set_bool(value_map_put(&rep, "ok"), st != NULL);
        value_set_str(value_map_put(&rep, "error"), err);
        struct value *hooks = value_map_put(&rep, "hooks");
        value_set_map(hooks);
        for (size_t h = 0; st && h < POLICY_HOOK_COUNT; h++)
            value_set_bool(value_map_put(hooks, policy_hooks[h].fn), st->has_hook[h]);
        wire_value(&b, &rep);
        value_deinit(&rep);
        ret = wire_send(sock, &b, NULL);
    }
    // A generation that failed to load is done: the agent drops this worker.
    while (!ret && st) {
        free(msg);
        msg = NULL;
        b.len = 0;
        ret = wire_recv(sock, &msg, &len, REQUEST_MAX, NULL);
        struct wire_rd r;
        wire_rd_init(&r, msg, len);
        if (!ret && wire_get_u8(&r) != POLICY_OP_CALL)
            ret = -EINVAL;
        if (!ret)
            ret = serve_call(st, &r, &b);
        sh->deadline_ms = 0;
        if (!ret)
            ret = wire_send(sock, &b, NULL);
    }
    free(msg);
    free(b.data);
    policy_state_free(st);
    // The agent closing the socket is the normal end.
    return ret && ret != -EPIPE ? 1 : 0;
}

// The reply to a CALL, a map of named fields: decided, verdict, reason (refused),
// failure, message and trace (not decided), source and line (the hook that ran).
// The caller adds the answer.
static void put_verdict(struct value *rep, bool decided, const struct policy_call *c)
{
    value_set_map(rep);
    value_set_bool(value_map_put(rep, "decided"), decided);
    value_set_int(value_map_put(rep, "verdict"), c->verdict);
    if (decided && c->verdict == -EPERM)
        value_set_str(value_map_put(rep, "reason"), c->reason);
    if (!decided) {
        value_set_str(value_map_put(rep, "failure"), policy_failure_names[c->kind]);
        value_set_str(value_map_put(rep, "message"), c->msg);
        if (c->trace)
            value_set_str(value_map_put(rep, "trace"), c->trace);
    }
    value_set_str(value_map_put(rep, "source"), c->source);
    value_set_int(value_map_put(rep, "line"), c->line);
}

// Moves r's maps into the answer (a result may be large: no copy).
static void put_results(struct value *ans, struct policy_result *r)
{
    struct policy_result_view v = {r->result, r->text, r->state, r->grade};
    policy_fields_put(ans, &policy_fields_result, &v);
    *value_map_put(ans, "problems") = r->problems;
    value_set_nil(&r->problems);
    *value_map_put(ans, "tests") = r->tests;
    value_set_nil(&r->tests);
    *value_map_put(ans, "custom") = r->custom;
    value_set_nil(&r->custom);
}

static void put_hardening(struct value *ans, const struct policy_hardening *h)
{
    policy_fields_put(ans, &policy_fields_hardening, h);
    struct value *caps = value_map_put(ans, "cap_drop");
    value_set_array(caps);
    for (size_t i = 0; i < h->ncap_drop; i++)
        value_set_str(value_array_push(caps), h->cap_drop[i]);
}

// A list of at most max port numbers (1..65535) into a new array (caller
// frees). NULL with err when it is not.
static uint16_t *get_ports(const struct value *list, size_t max, size_t *n, char *err,
                           size_t errlen)
{
    if (!list || list->type != VALUE_ARRAY || list->u.a.len > max) {
        util_err(err, errlen, "ports request: field 'free' must be a list of ports");
        return NULL;
    }
    uint16_t *v = xcalloc(list->u.a.len + 1, sizeof *v);
    for (size_t i = 0; i < list->u.a.len; i++) {
        const struct value *p = &list->u.a.items[i];
        if (p->type != VALUE_INT || p->u.i < 1 || p->u.i > 65535) {
            util_err(err, errlen, "ports request: free[%zu] is not a port", i + 1);
            free(v);
            return NULL;
        }
        v[i] = (uint16_t)p->u.i;
    }
    *n = list->u.a.len;
    return v;
}

// The hook named `fn`; POLICY_HOOK_COUNT when there is none.
static enum policy_hook hook_by_name(const char *fn)
{
    size_t h = 0;
    while (fn && h < POLICY_HOOK_COUNT && strcmp(policy_hooks[h].fn, fn))
        h++;
    return fn ? (enum policy_hook)h : POLICY_HOOK_COUNT;
}

// Decodes one CALL request, runs it and writes its answer into b.
// -EINVAL: a malformed request (the agent and the worker disagree: give up).
static int serve_call(struct policy_state *st, struct wire_rd *r, struct buf *b)
{
    int ret = 0;
    char reason[POLICY_REASON_MAX] = "", err[POLICY_REASON_MAX] = "";
    struct policy_call c = {.reason = reason, .reasonlen = sizeof reason};
    union {
        struct policy_limits limits;
        struct policy_student_limits student;
        struct policy_hardening hardening;
        struct policy_result results;
    } out;
    memset(&out, 0, sizeof out);
    struct policy_limits_req lreq = {0};
    struct policy_limits_call lc = {&st->cfg, &lreq};
    struct policy_student_req sreq = {0};
    struct policy_hardening_req hreq = {0};
    struct policy_ports_req preq = {0};
    uint16_t *free_ports = NULL, chosen[POLICY_MAX_PORTS];
    struct policy_runtimes_call rc = {0};
    const char **names = NULL;
    struct policy_runtime *runtimes = NULL, forced[POLICY_MAX_CLI_RUNTIMES];
    size_t nruntimes = 0;
    memset(forced, 0, sizeof forced);
    struct policy_results_call resc = {NULL, NULL};
    struct policy_pool_req poolreq = {0};
    struct policy_pool_env *poolenvs = NULL;
    int64_t poolsizes[POLICY_MAX_POOL_ENVS];
    struct value msg, rep;
    const struct value *req = NULL;
    bool decided = false;
    value_set_nil(&msg);
    value_set_nil(&rep);

    // {hook = fn name, request = {...}}
    if (wire_get_value(r, &msg) || r->off != r->len || msg.type != VALUE_MAP) {
        util_err(err, sizeof err, "malformed call");
        ret = -EINVAL;
        goto out;
    }
    c.hook = hook_by_name(policy_fields_str(&msg, "hook"));
    req = value_map_get(&msg, "request");
    if (c.hook == POLICY_HOOK_COUNT || !req || req->type != VALUE_MAP) {
        util_err(err, sizeof err, "a call names no known hook, or has no request map");
        ret = -EINVAL;
        goto out;
    }
    switch (c.hook) {
    case POLICY_HOOK_LIMITS:
        ret = policy_fields_get(req, &policy_fields_limits_req, &lreq, err, sizeof err);
        c.req = &lc;
        c.out = &out.limits;
        break;
    case POLICY_HOOK_STUDENT:
        ret = policy_fields_get(req, &policy_fields_student_req, &sreq, err, sizeof err);
        c.req = &sreq;
        c.out = &out.student;
        break;
    case POLICY_HOOK_HARDENING:
        ret = policy_fields_get(req, &policy_fields_hardening_req, &hreq, err, sizeof err);
        c.req = &hreq;
        c.out = &out.hardening;
        break;
    case POLICY_HOOK_PORTS: {
        preq.job_id = policy_fields_str(req, "job_id");
        int64_t count = policy_fields_int(req, "count", -1);
        free_ports = get_ports(value_map_get(req, "free"), 65536, &preq.nfree, err, sizeof err);
        if (!free_ports || !preq.job_id || count < 0 || count > POLICY_MAX_PORTS) {
            if (free_ports)
                util_err(err, sizeof err, "ports request: a field is missing or mistyped");
            ret = -EINVAL;
            break;
        }
        preq.count = (size_t)count;
        preq.free = free_ports;
        c.req = &preq;
        c.out = chosen;
        break;
    }
    case POLICY_HOOK_RUNTIMES: {
        const struct value *list = value_map_get(req, "runtimes");
        int64_t max = policy_fields_int(req, "max", -1);
        if (max < 0 || max > MAX_RUNTIMES || !list || list->type != VALUE_ARRAY) {
            util_err(err, sizeof err, "runtimes request: field 'max' or 'runtimes' is wrong");
            ret = -EINVAL;
            break;
        }
        names = xcalloc(list->u.a.len + 1, sizeof *names);
        for (size_t i = 0; i < list->u.a.len; i++)
            names[i] = list->u.a.items[i].type == VALUE_STR ? list->u.a.items[i].u.s.ptr : "";
        runtimes = xcalloc((size_t)max + 1, sizeof *runtimes);
        const struct value *fl = value_map_get(req, "forced");
        if (fl && (fl->type != VALUE_ARRAY || fl->u.a.len > POLICY_MAX_CLI_RUNTIMES)) {
            util_err(err, sizeof err, "runtimes request: field 'forced' must be a short list");
            ret = -EINVAL;
            break;
        }
        for (size_t i = 0; !ret && fl && i < fl->u.a.len; i++)
            ret = policy_fields_get(&fl->u.a.items[i], &policy_fields_runtime, &forced[i], err,
                                    sizeof err);
        if (ret)
            break;
        rc.forced = forced;
        rc.nforced = fl ? fl->u.a.len : 0;
        rc.ssh = policy_fields_bool(req, "ssh", false);
        rc.names = names;
        rc.nnames = list->u.a.len;
        rc.out = runtimes;
        rc.max = (size_t)max;
        rc.nout = &nruntimes;
        c.req = &rc;
        c.out = runtimes;
        break;
    }
    case POLICY_HOOK_POOL: {
        const struct value *list = value_map_get(req, "environments");
        poolreq.slots = policy_fields_int(req, "slots", 1);
        poolreq.slots_in_use = policy_fields_int(req, "slots_in_use", 0);
        if (!list || list->type != VALUE_ARRAY || list->u.a.len > POLICY_MAX_POOL_ENVS) {
            util_err(err, sizeof err, "pool request: field 'environments' must be a short list");
            ret = -EINVAL;
            break;
        }
        poolenvs = xcalloc(list->u.a.len + 1, sizeof *poolenvs);
        for (size_t i = 0; !ret && i < list->u.a.len; i++)
            ret = policy_fields_get(&list->u.a.items[i], &policy_fields_pool_env, &poolenvs[i], err,
                                    sizeof err);
        poolreq.envs = poolenvs;
        poolreq.nenvs = list->u.a.len;
        c.req = &poolreq;
        c.out = poolsizes;
        break;
    }
    case POLICY_HOOK_RESULTS:
        resc.raw = value_map_get(req, "result");
        resc.prev_state = policy_fields_str(req, "prev_state");
        c.req = &resc;
        c.out = &out.results;
        break;
    case POLICY_HOOK_COUNT:
        break;
    }
    if (!ret && !st->has_hook[c.hook]) {
        util_err(err, sizeof err, "no hook %s()", policy_hooks[c.hook].fn);
        ret = -EINVAL;
    }
    if (ret)
        goto out;
    decided = policy_state_call(st, &c);
    put_verdict(&rep, decided, &c);
    if (decided && c.verdict == 0) {
        struct value *ans = value_map_put(&rep, "answer");
        value_set_map(ans);
        switch (c.hook) {
        case POLICY_HOOK_LIMITS:
            policy_fields_put(ans, &policy_fields_limits, &out.limits);
            break;
        case POLICY_HOOK_STUDENT:
            policy_fields_put(ans, &policy_fields_student, &out.student);
            break;
        case POLICY_HOOK_HARDENING:
            put_hardening(ans, &out.hardening);
            break;
        case POLICY_HOOK_PORTS: {
            struct value *ports = value_map_put(ans, "ports");
            value_set_array(ports);
            for (size_t i = 0; i < preq.count; i++)
                value_set_int(value_array_push(ports), chosen[i]);
            break;
        }
        case POLICY_HOOK_RUNTIMES: {
            struct value *list = value_map_put(ans, "runtimes");
            value_set_array(list);
            for (size_t i = 0; i < nruntimes; i++) {
                struct value *e = value_array_push(list);
                value_set_map(e);
                policy_fields_put(e, &policy_fields_runtime, &runtimes[i]);
            }
            break;
        }
        case POLICY_HOOK_RESULTS:
            put_results(ans, &out.results);
            break;
        case POLICY_HOOK_POOL: {
            struct value *list = value_map_put(ans, "sizes");
            value_set_array(list);
            for (size_t i = 0; i < poolreq.nenvs; i++)
                value_set_int(value_array_push(list), poolsizes[i]);
            break;
        }
        case POLICY_HOOK_COUNT:
            break;
        }
    }
    policy_state_call_done(st, &c);
    wire_value(b, &rep);
out:
    if (ret)
        log_error(LOG_POLICY, "policy worker: %s", err);
    if (c.hook == POLICY_HOOK_RESULTS)
        policy_result_deinit(&out.results);
    value_deinit(&rep);
    value_deinit(&msg);
    free(free_ports);
    free(names);
    free(runtimes);
    free(poolenvs);
    return ret;
}

// LOAD {config, log_level, examples, quiet, files = {name = {path, text}}}: builds the
// generation. NULL (and the reason in err) when it fails.
static struct policy_state *serve_load(struct wire_rd *r, struct policy_shared *sh, char *err,
                                       size_t errlen)
{
    struct policy_setup s = {0};
    struct value msg;
    value_set_nil(&msg);
    struct policy_state *st = xcalloc(1, sizeof *st);
    st->sh = sh;
    int ret = wire_get_value(r, &msg) || r->off != r->len || msg.type != VALUE_MAP ? -EINVAL : 0;
    const struct value *cfg = value_map_get(&msg, "config");
    if (!ret)
        ret = policy_fields_get(cfg ? cfg : &msg, &policy_fields_config, &st->cfg, err, errlen);
    int64_t level = policy_fields_int(&msg, "log_level", -1);
    s.examples = policy_fields_bool(&msg, "examples", false);
    s.quiet = policy_fields_bool(&msg, "quiet", false);
    const struct value *files = value_map_get(&msg, "files");
    for (size_t i = 0; !ret && files && i < POLICY_FILE_COUNT; i++) {
        const struct value *f = value_map_get(files, policy_files[i]);
        if (!f)
            continue;
        const struct value *text = value_map_get(f, "text");
        s.paths[i] = policy_fields_str(f, "path");
        if (!s.paths[i] || !text || (text->type != VALUE_STR && text->type != VALUE_BIN))
            ret = -EINVAL;
        else
            s.texts[i] = text->u.s.ptr, s.lens[i] = text->u.s.len;
    }
    if (ret || !files || level < 0 || level > LOG_LEVEL_ERROR) {
        if (!ret)
            util_err(err, errlen, "malformed load request");
        free(st);
        value_deinit(&msg);
        return NULL;
    }
    log_set_level((enum log_level)level);
    s.st = st;
    st = policy_state_new(&s, err, errlen);
    value_deinit(&msg);
    return st;
}
