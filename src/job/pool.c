#include "job/pool.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>

#include "core/log.h"
#include "core/metrics.h"
#include "core/util.h"
#include "docker/docker_stream.h"
#include "job/agent.h"
#include "job/job_host.h"
#include "job/job_internal.h"

#define POOL_RING 64           /* arrival times kept per environment */
#define POOL_FORGET_MS 3600000 /* an environment unused this long is forgotten */
#define POOL_STUDENT_MS 600000 /* student parts while such a task came in the last 10 min */

/** An environment jobs asked for: its recent arrivals and last limits. */
struct pool_env {
    char *envtype, *envname;
    uint64_t arrivals[POOL_RING]; /* ms, a ring */
    size_t narrivals;             /* in all (the ring holds the last POOL_RING) */
    int64_t memory_mib;           /* the last job's: new containers get it */
    int64_t target;               /* the policy's last answer, capped */
    char *student_env;            /* the student environment its tasks asked for lately */
    int64_t student_memory_mib;   /* and the memory they got */
    uint64_t student_ms;          /* when (a job of such a task arrived) */
};

enum entry_state {
    ENTRY_DIR,     /* the worker lays its directory out */
    ENTRY_MAKING,  /* created, attached, started: not parked yet */
    ENTRY_WAITING, /* parked: may be taken */
    ENTRY_DYING,   /* being removed */
    ENTRY_TAKEN,   /* a job's now */
};

struct pool_entry {
    struct pool *pool;
    struct pool_entry *next;
    enum entry_state state;
    struct container ct;
    char *dir;
    char *label; /* org.proctor.job: "pool-<run>-<n>" */
    char *envtype, *envname, *image_id, *runtime;
    int64_t memory_mib;
    struct policy_hardening hard;
    struct worker_task *dir_task;
    /* A student container started ahead in the same directory (job_student.c), made
       with the grading container; it goes with the grading one to its job. */
    struct student *part;
    bool part_making; /* counted in pool->making until parked */
    bool ct_gone;     /* DYING: the grading container is gone (the part may not be) */
};

struct pool {
    const struct job_host *host;
    int64_t slots;
    bool enabled, draining;
    struct pool_entry *entries; /* every entry not taken */
    struct pool_env *envs;
    size_t nenvs;
    uint64_t plan_timer;
    uint64_t serial;
    uint32_t run;  /* drawn at start: labels differ from a previous run's leftovers */
    size_t making; /* containers being made (at most POOL_MAX_MAKING at a time) */
};

static void pool_plan_soon(struct pool *p);

/* ---- records ------------------------------------------------------------------ */

static void entry_unlink(struct pool *p, struct pool_entry *e)
{
    for (struct pool_entry **it = &p->entries; *it; it = &(*it)->next) {
        if (*it == e) {
            *it = e->next;
            e->next = NULL;
            return;
        }
    }
}

static int rmtree_work(void *arg)
{
    return util_rmtree(arg);
}

static void entry_free(struct pool_entry *e)
{
    student_part_free(e->part);
    ct_deinit(&e->ct);
    free(e->dir);
    free(e->label);
    free(e->envtype);
    free(e->envname);
    free(e->image_id);
    free(e->runtime);
    free(e);
}

/** Frees an entry of the pool's own, and its directory (on the worker). */
static void entry_destroy(struct pool *p, struct pool_entry *e)
{
    entry_unlink(p, e);
    worker_cancel(e->dir_task);
    if (e->dir) {
        worker_submit(p->host->worker, rmtree_work, e->dir, free, NULL, NULL);
        e->dir = NULL;
    }
    entry_free(e);
    if (p->draining && !p->entries)
        agent_pool_empty(p->host->agent);
}

/** A DYING entry whose containers are both gone: the record goes. */
static void entry_maybe_destroy(struct pool *p, struct pool_entry *e)
{
    if (e->state == ENTRY_DYING && e->ct_gone && !e->part) {
        entry_destroy(p, e);
        pool_plan_soon(p);
    }
}

static void entry_gone(struct container *c, void *data)
{
    PROCTOR_UNUSED(c);
    struct pool_entry *e = data;
    e->ct_gone = true;
    entry_maybe_destroy(e->pool, e);
}

static void entry_remove(struct pool *p, struct pool_entry *e, const char *why);
static struct pool_env *env_find(struct pool *p, const char *envtype, const char *envname);

static void part_done_making(struct pool *p, struct pool_entry *e)
{
    if (e->part_making) {
        e->part_making = false;
        p->making--;
        pool_plan_soon(p);
    }
}

/** Removes an entry: its containers first, then the record (entry_maybe_destroy). */
static void entry_remove(struct pool *p, struct pool_entry *e, const char *why)
{
    if (e->state == ENTRY_DYING)
        return;
    log_debug(LOG_JOB, "pool %s: removed (%s)", e->label, why);
    bool was_making = e->state == ENTRY_MAKING || e->state == ENTRY_DIR;
    e->state = ENTRY_DYING;
    if (was_making)
        p->making--;
    part_done_making(p, e);
    if (e->part && ct_remove(student_part_container(e->part))) {
        student_part_free(e->part);
        e->part = NULL;
    }
    e->ct_gone = ct_remove(&e->ct);
    entry_maybe_destroy(p, e);
    if (was_making)
        pool_plan_soon(p);
}

/* ---- a pooled container's life while it waits ---------------------------------- */

static void entry_ready(struct container *c, void *data)
{
    PROCTOR_UNUSED(data);
    ct_start(c); /* no `start` message: the runner waits for it */
}

static void entry_data(struct container *c, int stream, const void *b, size_t n, void *data)
{
    PROCTOR_UNUSED(c);
    PROCTOR_UNUSED(b);
    struct pool_entry *e = data;
    // The runner says nothing before `start`: a container that does cannot
    // be trusted to frame its first message for a job.
    if (e->state == ENTRY_DYING)
        return;
    log_warn(LOG_JOB, "pool %s: %zu bytes on %s before any job; removing it", e->label, n,
             stream == DOCKER_STDERR ? "stderr" : "stdout");
    entry_remove(e->pool, e, "spoke while waiting");
}

static void entry_ended(struct container *c, void *data)
{
    struct pool_entry *e = data;
    log_info(LOG_JOB, "pool %s: container %.12s ended while waiting (%s); replacing it", e->label,
             c->id ? c->id : "-", c->ran ? "it died" : "it never started");
    entry_remove(e->pool, e, "ended while waiting");
}

/* ---- its student part (job_student.c makes it; it waits like the grading one) ------ */

static void part_ready(struct container *c, void *data)
{
    PROCTOR_UNUSED(data);
    ct_start(c); /* parks once started */
}

static void part_parked(struct container *c, void *data)
{
    struct pool_entry *e = data;
    log_info(LOG_JOB, "pool %s: student container %.12s waiting too", e->label, c->id);
    part_done_making(e->pool, e);
}

static void part_ended(struct container *c, void *data)
{
    struct pool_entry *e = data;
    struct pool *p = e->pool;
    log_info(LOG_JOB, "pool %s: student container %.12s ended while waiting (%s); replacing both",
             e->label, c->id ? c->id : "-", c->ran ? "it died" : "it never started");
    // Pair no more for this environment until a task that uses students comes again.
    struct pool_env *pe = env_find(p, e->envtype, e->envname);
    if (pe) {
        free(pe->student_env);
        pe->student_env = NULL;
    }
    entry_remove(p, e, "its student container ended while waiting");
}

static void part_gone(struct container *c, void *data)
{
    PROCTOR_UNUSED(c);
    struct pool_entry *e = data;
    student_part_free(e->part);
    e->part = NULL;
    entry_maybe_destroy(e->pool, e);
}

static const struct ct_ops part_ops = {
    .ready = part_ready, .parked = part_parked, .ended = part_ended, .gone = part_gone};

/**
 * Makes the entry's student part if the environment's tasks use one: with its
 * grading container (made together, one unit of POOL_MAX_MAKING), or later for
 * one waiting without (`counted`: a unit of its own).
 */
static void entry_make_part(struct pool *p, struct pool_entry *e, bool counted)
{
    const struct pool_env *pe = env_find(p, e->envtype, e->envname);
    if (!pe || !pe->student_env || util_now_ms() - pe->student_ms > POOL_STUDENT_MS)
        return;
    const struct env *env = agent_env_find(p->host->agent, e->envtype, pe->student_env);
    if (!env || !env->ahead_ok)
        return;
    e->part = student_part_new(p->host, e->dir, e->label, e->envtype, pe->student_env, env,
                               pe->student_memory_mib, &part_ops, e);
    if (e->part && counted) {
        e->part_making = true;
        p->making++;
    }
}

static void entry_parked(struct container *c, void *data)
{
    struct pool_entry *e = data;
    if (e->state != ENTRY_MAKING)
        return;
    e->state = ENTRY_WAITING;
    e->pool->making--;
    log_info(LOG_JOB, "pool %s: container %.12s waiting for a job (%s/%s)", e->label, c->id,
             e->envtype, e->envname);
    pool_plan_soon(e->pool);
}

static const struct ct_ops entry_ops = {.ready = entry_ready,
                                        .parked = entry_parked,
                                        .data = entry_data,
                                        .ended = entry_ended,
                                        .gone = entry_gone};

/* ---- making one ----------------------------------------------------------------- */

static int layout_work(void *arg)
{
    return job_dir_layout(arg);
}

static void on_entry_dir(int ret, void *data)
{
    struct pool_entry *e = data;
    struct pool *p = e->pool;
    e->dir_task = NULL;
    if (e->state != ENTRY_DIR)
        return;
    if (ret) {
        log_error(LOG_JOB, "pool %s: cannot lay out %s: %s", e->label, e->dir, strerror(-ret));
        entry_remove(p, e, "directory");
        return;
    }
    char **binds = job_dir_grading_binds(e->dir);
    struct ct_spec spec = {
        .image = e->image_id,
        .runtime = e->runtime,
        .role = "pool",
        .job_id = e->label,
        .memory_mib = e->memory_mib,
        .hard = &e->hard,
        .network_mode = "none",
        .binds = (const char *const *)binds,
        .attach = true,
        .park = true,
    };
    int err = ct_create(&e->ct, &spec);
    job_dir_binds_free(binds);
    if (err) {
        entry_remove(p, e, "create");
        return;
    }
    e->state = ENTRY_MAKING;
    entry_make_part(p, e, false);
}

/** Hardening for a pooled container of this environment and memory (as a job would get it). */
static int entry_hardening(struct pool *p, const char *envname, int64_t memory_mib,
                           struct policy_hardening *out)
{
    char reason[POLICY_REASON_MAX];
    struct policy_hardening_req req = {
        .environment = envname, .memory_mib = memory_mib, .network = false};
    return policy_hardening(p->host->policy, &req, out, reason, sizeof reason);
}

static void entry_make(struct pool *p, const struct pool_env *pe, const struct env *env)
{
    const struct job_host *h = p->host;
    struct pool_entry *e = xcalloc(1, sizeof *e);
    e->pool = p;
    e->label = xasprintf("pool-%08x-%llu", p->run, (unsigned long long)++p->serial);
    e->envtype = xstrdup(pe->envtype);
    e->envname = xstrdup(pe->envname);
    e->image_id = xstrdup(env->image_id);
    e->runtime = xstrdup(env->runtime);
    e->memory_mib = pe->memory_mib;
    if (!e->memory_mib) {
        // Warmed before any job (--warm): the limits a job without limits would get.
        char reason[POLICY_REASON_MAX];
        struct policy_limits lim;
        struct policy_limits_req lreq = {.environment_type = pe->envtype,
                                         .environment = pe->envname};
        e->memory_mib =
            policy_limits(h->policy, &lreq, &lim, reason, sizeof reason) ? 0 : lim.memory_mib;
    }
    AUTO_FREE char *name = xasprintf("pool %s", e->label);
    ct_init(&e->ct, h, name, util_now_ms(), &entry_ops, e);
    if (!e->memory_mib || entry_hardening(p, e->envname, e->memory_mib, &e->hard)) {
        entry_free(e); /* the hardening policy refuses this environment: no pool for it */
        return;
    }
    AUTO_FREE char *tmpl = xasprintf("%s/pool-XXXXXX", h->tmp_dir);
    if (!mkdtemp(tmpl)) {
        log_error(LOG_JOB, "pool: cannot create a directory in %s: %s", h->tmp_dir,
                  strerror(errno));
        entry_free(e);
        return;
    }
    e->dir = xstrdup(tmpl);
    e->state = ENTRY_DIR;
    e->next = p->entries;
    p->entries = e;
    p->making++;
    e->dir_task = worker_submit(h->worker, layout_work, xstrdup(e->dir), free, on_entry_dir, e);
}

/* ---- planning ------------------------------------------------------------------- */

static struct pool_env *env_find(struct pool *p, const char *envtype, const char *envname)
{
    for (size_t i = 0; i < p->nenvs; i++)
        if (!strcmp(p->envs[i].envtype, envtype) && !strcmp(p->envs[i].envname, envname))
            return &p->envs[i];
    return NULL;
}

static size_t env_count(const struct pool *p, const struct pool_env *pe, bool waiting_only)
{
    size_t n = 0;
    for (const struct pool_entry *e = p->entries; e; e = e->next)
        if (e->state != ENTRY_DYING && (!waiting_only || e->state == ENTRY_WAITING) &&
            !strcmp(e->envtype, pe->envtype) && !strcmp(e->envname, pe->envname))
            n++;
    return n;
}

static int64_t arrivals_since(const struct pool_env *pe, uint64_t now, uint64_t window_ms)
{
    int64_t n = 0;
    size_t kept = pe->narrivals < POOL_RING ? pe->narrivals : POOL_RING;
    for (size_t i = 0; i < kept; i++)
        n += now - pe->arrivals[i] <= window_ms;
    return n;
}

static void env_forget(struct pool *p, size_t i)
{
    free(p->envs[i].envtype);
    free(p->envs[i].envname);
    free(p->envs[i].student_env);
    p->envs[i] = p->envs[--p->nenvs];
}

/** Asks the policy how many should wait per environment, then makes or removes one. */
static void pool_plan(struct pool *p)
{
    if (!p->enabled || p->draining)
        return;
    uint64_t now = util_now_ms();
    const struct job_host *h = p->host;
    for (size_t i = 0; i < p->nenvs;) {
        struct pool_env *pe = &p->envs[i];
        uint64_t last = pe->arrivals[(pe->narrivals - 1) % POOL_RING];
        if (now - last > POOL_FORGET_MS && !env_count(p, pe, false))
            env_forget(p, i);
        else
            i++;
    }
    if (!p->nenvs)
        return;
    struct policy_pool_env *req_envs = xcalloc(p->nenvs, sizeof *req_envs);
    int64_t *sizes = xcalloc(p->nenvs, sizeof *sizes);
    for (size_t i = 0; i < p->nenvs; i++) {
        struct pool_env *pe = &p->envs[i];
        uint64_t last = pe->arrivals[(pe->narrivals - 1) % POOL_RING];
        req_envs[i] = (struct policy_pool_env){
            .envtype = pe->envtype,
            .name = pe->envname,
            .waiting = (int64_t)env_count(p, pe, true),
            .arrivals_1m = arrivals_since(pe, now, 60000),
            .arrivals_10m = arrivals_since(pe, now, 600000),
            .idle_s = (int64_t)((now - last) / 1000),
            .memory_mib = pe->memory_mib,
            .available = agent_env_find(h->agent, pe->envtype, pe->envname) != NULL,
        };
    }
    struct policy_pool_req req = {
        .envs = req_envs,
        .nenvs = p->nenvs,
        .slots = p->slots,
        .slots_in_use = (int64_t)agent_job_count(h->agent),
    };
    policy_pool(h->policy, &req, sizes);
    free(req_envs);
    // The hard caps: per environment, in all.
    int64_t total = 0;
    for (size_t i = 0; i < p->nenvs; i++) {
        int64_t n = sizes[i];
        // Twice the slots: back-to-back jobs drain a slot's warm container faster than a
        // refill comes (README "Warm pool").
        int64_t cap = 2 * p->slots < POOL_MAX_PER_ENV ? 2 * p->slots : POOL_MAX_PER_ENV;
        n = n < 0 ? 0 : n > cap ? cap : n;
        if (total + n > POOL_MAX_TOTAL)
            n = POOL_MAX_TOTAL - total;
        total += n;
        p->envs[i].target = n;
    }
    free(sizes);
    // Too many: remove the extra waiting ones (never one being made: it is cheap to let it be).
    for (size_t i = 0; i < p->nenvs; i++) {
        struct pool_env *pe = &p->envs[i];
        size_t have = env_count(p, pe, false);
        for (struct pool_entry *e = p->entries, *next; e && have > (size_t)pe->target; e = next) {
            next = e->next;
            if (e->state == ENTRY_WAITING && !strcmp(e->envtype, pe->envtype) &&
                !strcmp(e->envname, pe->envname)) {
                entry_remove(p, e, "more than the policy wants");
                have--;
            }
        }
    }
    // Too few: make them, POOL_MAX_MAKING at a time (the next when one is parked).
    for (size_t i = 0; i < p->nenvs && p->making < POOL_MAX_MAKING; i++) {
        struct pool_env *pe = &p->envs[i];
        const struct env *env = agent_env_find(h->agent, pe->envtype, pe->envname);
        while (env && p->making < POOL_MAX_MAKING && env_count(p, pe, false) < (size_t)pe->target) {
            size_t before = env_count(p, pe, false);
            entry_make(p, pe, env);
            if (env_count(p, pe, false) == before)
                break; /* refused (hardening, memory, directory): the next plan tries again */
        }
    }
    // Student parts for the waiting ones of environments whose tasks use students.
    for (struct pool_entry *e = p->entries; e && p->making < POOL_MAX_MAKING; e = e->next)
        if (e->state == ENTRY_WAITING && !e->part)
            entry_make_part(p, e, true);
}

static long on_plan(struct loop *loop, uint64_t id, void *data)
{
    PROCTOR_UNUSED(loop);
    PROCTOR_UNUSED(id);
    struct pool *p = data;
    p->plan_timer = 0;
    pool_plan(p);
    if (p->nenvs && !p->draining) {
        p->plan_timer = loop_timer_add(p->host->loop, POOL_PLAN_MS, on_plan, p);
    }
    return LOOP_NOMORE;
}

static void pool_plan_soon(struct pool *p)
{
    if (!p->enabled || p->draining)
        return;
    loop_timer_del(p->host->loop, p->plan_timer);
    p->plan_timer = loop_timer_add(p->host->loop, 0, on_plan, p);
}

/* ---- the interface ----------------------------------------------------------------- */

struct pool *pool_new(const struct job_host *host, int64_t slots, bool enabled)
{
    struct pool *p = xcalloc(1, sizeof *p);
    p->host = host;
    p->slots = slots > 0 ? slots : 1;
    p->enabled = enabled;
    // A restarted agent's sweep spares the labels of its own pool: they must not be
    // those of what the previous run left.
    if (getrandom(&p->run, sizeof p->run, 0) != sizeof p->run)
        p->run = (uint32_t)util_now_ns();
    log_info(LOG_JOB, "warm pool: containers labelled pool-%08x-<n> (sized by the policy)", p->run);
    return p;
}

void pool_free(struct pool *p)
{
    if (!p)
        return;
    loop_timer_del(p->host->loop, p->plan_timer);
    while (p->entries) {
        struct pool_entry *e = p->entries;
        p->entries = e->next;
        worker_cancel(e->dir_task);
        entry_free(e);
    }
    for (size_t i = 0; i < p->nenvs; i++) {
        free(p->envs[i].envtype);
        free(p->envs[i].envname);
        free(p->envs[i].student_env);
    }
    free(p->envs);
    free(p);
}

/** The record of an environment, made on its first arrival; NULL past the bound. */
static struct pool_env *env_get(struct pool *p, const char *envtype, const char *envname)
{
    struct pool_env *pe = env_find(p, envtype, envname);
    if (pe)
        return pe;
    if (p->nenvs >= POLICY_MAX_POOL_ENVS)
        return NULL; /* the backend names environments: bound what it can make us keep */
    p->envs = xrealloc(p->envs, (p->nenvs + 1) * sizeof *p->envs);
    pe = &p->envs[p->nenvs++];
    *pe = (struct pool_env){.envtype = xstrdup(envtype), .envname = xstrdup(envname)};
    return pe;
}

/** Its tasks use student containers of student_env with this memory (as of now). */
static void env_note_student(struct pool_env *pe, const char *student_env, int64_t memory_mib)
{
    if (!pe->student_env || strcmp(pe->student_env, student_env)) {
        free(pe->student_env);
        pe->student_env = xstrdup(student_env);
    }
    pe->student_memory_mib = memory_mib;
    pe->student_ms = util_now_ms();
}

void pool_note_arrival(struct pool *p, const struct pool_want *w)
{
    if (!p->enabled || p->draining)
        return;
    struct pool_env *pe = env_get(p, w->envtype, w->envname);
    if (!pe)
        return;
    pe->arrivals[pe->narrivals++ % POOL_RING] = util_now_ms();
    if (w->plain)
        pe->memory_mib = w->memory_mib;
    if (w->plain && w->student_env)
        env_note_student(pe, w->student_env, w->student_memory_mib);
    pool_plan_soon(p);
}

void pool_note_student(struct pool *p, const char *envtype, const char *envname,
                       const char *student_env, int64_t memory_mib)
{
    if (!p->enabled || p->draining)
        return;
    struct pool_env *pe = env_find(p, envtype, envname);
    if (!pe)
        return; /* not warmed: nothing to pair */
    env_note_student(pe, student_env, memory_mib);
    pool_plan_soon(p);
}

void pool_prewarm(struct pool *p, const char *envtype, const char *envname)
{
    if (!p->enabled || p->draining)
        return;
    struct pool_env *pe = env_get(p, envtype, envname);
    if (!pe)
        return;
    pe->arrivals[pe->narrivals++ % POOL_RING] = util_now_ms();
    pool_plan_soon(p);
}

bool pool_same_hardening(const struct policy_hardening *a, const struct policy_hardening *b)
{
    if (a->no_new_privileges != b->no_new_privileges || a->nofile_soft != b->nofile_soft ||
        a->nofile_hard != b->nofile_hard || a->ncap_drop != b->ncap_drop)
        return false;
    for (size_t i = 0; i < a->ncap_drop; i++)
        if (strcmp(a->cap_drop[i], b->cap_drop[i]))
            return false;
    return true;
}

static bool entry_fits(const struct pool_entry *e, const struct pool_want *w)
{
    return e->state == ENTRY_WAITING && e->ct.phase == CT_PARKED && !e->ct.exited &&
           e->ct.outcome == CT_OUT_NONE && !e->ct.stream_closed &&
           !strcmp(e->envtype, w->envtype) && !strcmp(e->envname, w->envname) &&
           !strcmp(e->image_id, w->env->image_id) && !strcmp(e->runtime, w->env->runtime) &&
           pool_same_hardening(&e->hard, w->hard) &&
           // pids: the engine's update can set a limit, not lift one
           (w->hard->pids_limit > 0 || e->hard.pids_limit == w->hard->pids_limit);
}

struct pool_entry *pool_take(struct pool *p, const struct pool_want *w)
{
    if (!p->enabled || p->draining || !w->plain)
        return NULL;
    struct pool_entry *best = NULL;
    for (struct pool_entry *e = p->entries; e; e = e->next)
        if (entry_fits(e, w))
            best = e; /* the list is newest first: the last one fitting waited longest */
    if (!best) {
        metric_add(METRIC_POOL_CLAIMS, "miss", 1);
        return NULL;
    }
    entry_unlink(p, best);
    best->state = ENTRY_TAKEN;
    metric_add(METRIC_POOL_CLAIMS, "hit", 1);
    pool_plan_soon(p);
    return best;
}

struct student *pool_entry_student(struct pool *p, struct pool_entry *e)
{
    struct student *s = e->part;
    part_done_making(p, e);
    e->part = NULL;
    return s;
}

struct container *pool_entry_container(struct pool_entry *e)
{
    return &e->ct;
}

const char *pool_entry_dir(const struct pool_entry *e)
{
    return e->dir;
}

const char *pool_entry_label(const struct pool_entry *e)
{
    return e->label;
}

bool pool_entry_update(const struct pool_entry *e, const struct pool_want *w,
                       struct docker_update *u)
{
    *u = (struct docker_update){0};
    if (w->memory_mib != e->memory_mib)
        u->memory = w->memory_mib << 20;
    if (w->hard->pids_limit != e->hard.pids_limit)
        u->pids_limit = w->hard->pids_limit;
    return u->memory || u->pids_limit;
}

void pool_entry_free(struct pool_entry *e)
{
    if (e)
        entry_free(e);
}

void pool_discard(struct pool *p, struct pool_entry *e)
{
    AUTO_FREE char *name = xasprintf("pool %s", e->label);
    ct_adopt(&e->ct, "pool", name, e->ct.t0, &entry_ops, e);
    e->state = ENTRY_WAITING; /* not DYING yet: entry_remove does it */
    e->next = p->entries;
    p->entries = e;
    entry_remove(p, e, "its job could not use it");
}

bool pool_on_event(struct pool *p, const struct docker_event *ev)
{
    for (struct pool_entry *e = p->entries; e; e = e->next) {
        if (e->ct.id && !strcmp(e->ct.id, ev->id)) {
            ct_on_event(&e->ct, ev->action, ev->exit_code);
            return true;
        }
    }
    return false;
}

bool pool_owns(const struct pool *p, const char *label)
{
    for (const struct pool_entry *e = p->entries; e; e = e->next)
        if (!strcmp(e->label, label))
            return true;
    return false;
}

void pool_envs_changed(struct pool *p)
{
    for (struct pool_entry *e = p->entries, *next; e; e = next) {
        next = e->next;
        const struct env *env = agent_env_find(p->host->agent, e->envtype, e->envname);
        const struct env *senv =
            e->part ? agent_env_find(p->host->agent, e->envtype, student_part_envname(e->part))
                    : NULL;
        if (!env || strcmp(env->image_id, e->image_id) || strcmp(env->runtime, e->runtime) ||
            (e->part && (!senv || !senv->ahead_ok || !student_part_is(e->part, senv))))
            entry_remove(p, e, "its environment changed");
    }
    pool_plan_soon(p);
}

void pool_policy_reloaded(struct pool *p)
{
    for (struct pool_entry *e = p->entries, *next; e; e = next) {
        next = e->next;
        struct policy_hardening h;
        if (e->state == ENTRY_DYING)
            continue;
        if (e->part || entry_hardening(p, e->envname, e->memory_mib, &h) ||
            !pool_same_hardening(&h, &e->hard) || h.pids_limit != e->hard.pids_limit)
            entry_remove(p, e, "the policies changed");
    }
    pool_plan_soon(p);
}

void pool_drain(struct pool *p)
{
    if (p->draining)
        return;
    p->draining = true;
    loop_timer_del(p->host->loop, p->plan_timer);
    p->plan_timer = 0;
    for (struct pool_entry *e = p->entries, *next; e; e = next) {
        next = e->next;
        entry_remove(p, e, "draining");
    }
}

bool pool_empty(const struct pool *p)
{
    return !p->entries;
}

size_t pool_waiting(const struct pool *p)
{
    size_t n = 0;
    for (const struct pool_entry *e = p->entries; e; e = e->next)
        n += e->state == ENTRY_WAITING;
    return n;
}
