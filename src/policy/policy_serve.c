/*
 * The policy worker's request loop: requests in, answers out. Runs in the
 * worker process (policy_worker.c is the agent's side); the Lua work is
 * policy_host.c's.
 *
 * Messages (policy_wire.h framing):
 *   LOAD  config, log level, examples?, quiet?, then per file: present?, path, text
 *     ->  ok?, error text, has_hook[POLICY_HOOK_COUNT]
 *   CALL  hook, the request of that hook
 *     ->  decided?, verdict, reason, failure kind, message, trace, then the answer
 *         (decided with verdict 0 only)
 */
#include <errno.h>
#include <string.h>

#include "core/log.h"
#include "core/util.h"
#include "core/value.h"
#include "policy/policy.h"
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
        wire_u8(&b, st != NULL);
        wire_str(&b, err);
        for (size_t h = 0; h < POLICY_HOOK_COUNT; h++)
            wire_u8(&b, st && st->has_hook[h]);
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

// The header every CALL answer starts with.
static void put_verdict(struct buf *b, bool decided, const struct policy_call *c)
{
    wire_u8(b, decided);
    wire_i64(b, c->verdict);
    wire_str(b, decided && c->verdict == -EPERM ? c->reason : NULL);
    wire_u8(b, decided ? 0 : (uint8_t)c->kind);
    wire_str(b, decided ? NULL : c->msg);
    wire_str(b, decided ? NULL : c->trace);
}

static void put_results(struct buf *b, const struct policy_result *r)
{
    wire_str(b, r->result);
    wire_str(b, r->text);
    wire_str(b, r->state);
    wire_f64(b, r->grade);
    wire_value(b, &r->problems);
    wire_value(b, &r->tests);
    wire_value(b, &r->custom);
}

// Decodes one CALL request, runs it and writes its answer into b.
// -EINVAL: a malformed request (the agent and the worker disagree: give up).
static int serve_call(struct policy_state *st, struct wire_rd *r, struct buf *b)
{
    int ret = 0;
    char reason[POLICY_REASON_MAX] = "";
    struct policy_call c = {.reason = reason, .reasonlen = sizeof reason};
    union {
        struct policy_limits limits;
        struct policy_student_limits student;
        struct policy_hardening hardening;
        struct policy_result results;
    } out;
    memset(&out, 0, sizeof out);
    struct policy_limits_req lreq;
    struct policy_limits_call lc = {&st->cfg, &lreq};
    struct policy_student_req sreq;
    struct policy_hardening_req hreq;
    struct policy_ports_req preq = {0};
    uint16_t *free_ports = NULL, chosen[POLICY_MAX_PORTS];
    struct policy_runtimes_call rc = {0};
    const char **names = NULL;
    struct policy_runtime *runtimes = NULL;
    size_t nruntimes = 0;
    struct value raw;
    struct policy_results_call resc = {NULL, NULL};
    struct policy_pool_req poolreq = {0};
    struct policy_pool_env *poolenvs = NULL;
    int64_t poolsizes[POLICY_MAX_POOL_ENVS];
    bool decided = false;
    value_set_nil(&raw);

    c.hook = (enum policy_hook)wire_get_u8(r);
    switch (c.hook) {
    case POLICY_HOOK_LIMITS:
        wire_get_raw(r, &lreq, sizeof lreq);
        lreq.environment_type = wire_get_str(r, NULL);
        lreq.environment = wire_get_str(r, NULL);
        c.req = &lc;
        c.out = &out.limits;
        break;
    case POLICY_HOOK_STUDENT:
        wire_get_raw(r, &sreq, sizeof sreq);
        sreq.environment = wire_get_str(r, NULL);
        c.req = &sreq;
        c.out = &out.student;
        break;
    case POLICY_HOOK_HARDENING:
        wire_get_raw(r, &hreq, sizeof hreq);
        hreq.environment = wire_get_str(r, NULL);
        c.req = &hreq;
        c.out = &out.hardening;
        break;
    case POLICY_HOOK_PORTS: {
        preq.job_id = wire_get_str(r, NULL);
        preq.count = (size_t)wire_get_i64(r);
        int64_t nfree = wire_get_i64(r);
        if (nfree < 0 || nfree > 65536 || preq.count > POLICY_MAX_PORTS) {
            r->bad = true;
            break;
        }
        preq.nfree = (size_t)nfree;
        free_ports = xcalloc(preq.nfree + 1, sizeof *free_ports);
        wire_get_raw(r, free_ports, preq.nfree * sizeof *free_ports);
        preq.free = free_ports;
        c.req = &preq;
        c.out = chosen;
        break;
    }
    case POLICY_HOOK_RUNTIMES: {
        rc.ssh = wire_get_u8(r);
        int64_t max = wire_get_i64(r), n = wire_get_i64(r);
        if (max < 0 || max > MAX_RUNTIMES || n < 0 || (uint64_t)n > r->len - r->off) {
            r->bad = true;
            break;
        }
        names = xcalloc((size_t)n + 1, sizeof *names);
        for (int64_t i = 0; i < n; i++)
            names[i] = wire_get_str(r, NULL);
        runtimes = xcalloc((size_t)max + 1, sizeof *runtimes);
        rc.names = names;
        rc.nnames = (size_t)n;
        rc.out = runtimes;
        rc.max = (size_t)max;
        rc.nout = &nruntimes;
        c.req = &rc;
        c.out = runtimes;
        break;
    }
    case POLICY_HOOK_POOL: {
        poolreq.slots = wire_get_i64(r);
        poolreq.slots_in_use = wire_get_i64(r);
        int64_t n = wire_get_i64(r);
        if (n < 0 || n > POLICY_MAX_POOL_ENVS) {
            r->bad = true;
            break;
        }
        poolenvs = xcalloc((size_t)n + 1, sizeof *poolenvs);
        for (int64_t i = 0; i < n; i++) {
            struct policy_pool_env *e = &poolenvs[i];
            e->envtype = wire_get_str(r, NULL);
            e->name = wire_get_str(r, NULL);
            e->waiting = wire_get_i64(r);
            e->arrivals_1m = wire_get_i64(r);
            e->arrivals_10m = wire_get_i64(r);
            e->idle_s = wire_get_i64(r);
            e->memory_mib = wire_get_i64(r);
            e->available = wire_get_u8(r);
            if (!e->envtype || !e->name)
                r->bad = true;
        }
        poolreq.envs = poolenvs;
        poolreq.nenvs = (size_t)n;
        c.req = &poolreq;
        c.out = poolsizes;
        break;
    }
    case POLICY_HOOK_RESULTS:
        if (wire_get_u8(r)) {
            wire_get_value(r, &raw);
            resc.raw = &raw;
        }
        resc.prev_state = wire_get_str(r, NULL);
        c.req = &resc;
        c.out = &out.results;
        break;
    default:
        r->bad = true;
    }
    if (r->bad || !st->has_hook[c.hook]) {
        ret = -EINVAL;
        goto out;
    }
    decided = policy_state_call(st, &c);
    put_verdict(b, decided, &c);
    if (decided && c.verdict == 0) {
        switch (c.hook) {
        case POLICY_HOOK_LIMITS:
            wire_raw(b, &out.limits, sizeof out.limits);
            break;
        case POLICY_HOOK_STUDENT:
            wire_raw(b, &out.student, sizeof out.student);
            break;
        case POLICY_HOOK_HARDENING:
            wire_raw(b, &out.hardening, sizeof out.hardening);
            break;
        case POLICY_HOOK_PORTS:
            wire_raw(b, chosen, preq.count * sizeof *chosen);
            break;
        case POLICY_HOOK_RUNTIMES:
            wire_i64(b, (int64_t)nruntimes);
            wire_raw(b, runtimes, nruntimes * sizeof *runtimes);
            break;
        case POLICY_HOOK_RESULTS:
            put_results(b, &out.results);
            break;
        case POLICY_HOOK_POOL:
            wire_i64(b, (int64_t)poolreq.nenvs);
            for (size_t i = 0; i < poolreq.nenvs; i++)
                wire_i64(b, poolsizes[i]);
            break;
        case POLICY_HOOK_COUNT:
            break;
        }
    }
    policy_state_call_done(st, &c);
out:
    if (c.hook == POLICY_HOOK_RESULTS)
        policy_result_deinit(&out.results);
    value_deinit(&raw);
    free(free_ports);
    free(names);
    free(runtimes);
    free(poolenvs);
    return ret;
}

// LOAD: builds the generation. NULL (and the reason in err) when it fails.
static struct policy_state *serve_load(struct wire_rd *r, struct policy_shared *sh, char *err,
                                       size_t errlen)
{
    struct policy_setup s = {0};
    struct policy_state *st = xcalloc(1, sizeof *st);
    st->sh = sh;
    wire_get_raw(r, &st->cfg, sizeof st->cfg);
    int level = wire_get_u8(r);
    s.examples = wire_get_u8(r);
    s.quiet = wire_get_u8(r);
    for (size_t i = 0; i < POLICY_FILE_COUNT; i++) {
        if (!wire_get_u8(r))
            continue;
        s.paths[i] = wire_get_str(r, NULL);
        s.texts[i] = wire_get_str(r, &s.lens[i]);
        if (!s.paths[i] || !s.texts[i])
            r->bad = true;
    }
    if (r->bad || level > LOG_LEVEL_ERROR) {
        util_err(err, errlen, "malformed load request");
        free(st);
        return NULL;
    }
    log_set_level((enum log_level)level);
    s.st = st;
    return policy_state_new(&s, err, errlen);
}
