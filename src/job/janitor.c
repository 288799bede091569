#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/util.h"
#include "job/agent_internal.h"

/*
 * The janitor: containers of ours that a job could not remove (the engine
 * failed or was away), and jobs that may have left one whose id they never
 * learnt (a create whose answer was lost). It asks the engine again, one
 * request at a time, with a backoff, long after the job has answered: a
 * container must not outlive an engine that failed for a while.
 */

#define JANITOR_FIRST_MS 1000L
#define JANITOR_MAX_MS 8000L
// About five minutes of failures per entry; then the next start's sweep (or a
// backend reconnection's discovery) is what removes it.
#define JANITOR_TRIES 40

struct stray {
    struct stray *next;
    char *id;  /* a container to remove, or */
    char *job; /* a job whose containers are removed once it is over */
    unsigned tries;
};

static void janitor_schedule(struct agent *a, long delay_ms);

static void stray_free(struct stray *s)
{
    free(s->id);
    free(s->job);
    free(s);
}

static void janitor_push(struct agent *a, struct stray *s)
{
    struct stray **p = &a->strays;
    while (*p)
        p = &(*p)->next;
    s->next = NULL;
    *p = s;
    a->nstrays++;
}

static struct stray *janitor_pop(struct agent *a)
{
    struct stray *s = a->strays;
    if (s) {
        a->strays = s->next;
        a->nstrays--;
    }
    return s;
}

/** The entry in flight is done (ok) or goes to the back of the queue. */
static void janitor_done(struct agent *a, bool ok, const char *what, const char *err)
{
    struct stray *s = a->stray_cur;
    a->stray_cur = NULL;
    a->stray_req = NULL;
    if (ok || ++s->tries >= JANITOR_TRIES) {
        if (!ok)
            log_warn(LOG_JOB, "giving up on %s %.12s: %s; the next start removes it", what,
                     s->id ? s->id : s->job, err ? err : "?");
        stray_free(s);
        a->stray_delay = JANITOR_FIRST_MS;
        janitor_schedule(a, 0);
        return;
    }
    janitor_push(a, s);
    janitor_schedule(a, a->stray_delay);
    a->stray_delay = a->stray_delay * 2 > JANITOR_MAX_MS ? JANITOR_MAX_MS : a->stray_delay * 2;
}

static void on_stray_removed(int status, const char *err, void *data)
{
    struct agent *a = data;
    bool ok = status == 0 || status == 404;
    if (ok)
        log_info(LOG_JOB, "removed container %.12s", a->stray_cur->id);
    janitor_done(a, ok, "removing container", err);
}

static void on_stray_list(int status, const char *err, const struct docker_container_summary *list,
                          size_t n, void *data)
{
    struct agent *a = data;
    for (size_t i = 0; !status && i < n; i++) {
        bool ours = false;
        for (size_t l = 0; l < list[i].n_labels; l++)
            ours |= !strcmp(list[i].labels[l].key, JOB_LABEL_AGENT) &&
                    !strcmp(list[i].labels[l].value, a->agent_id);
        if (ours)
            agent_remove_later(a, list[i].id);
    }
    janitor_done(a, status == 0, "listing the containers of job", err);
}

static bool job_live(const struct agent *a, const char *id)
{
    for (struct job *j = a->jobs; j; j = job_next(j))
        if (!strcmp(job_id(j), id))
            return true;
    return false;
}

static long on_janitor(struct loop *loop, uint64_t id, void *data)
{
    PROCTOR_UNUSED(loop);
    PROCTOR_UNUSED(id);
    struct agent *a = data;
    a->stray_timer = 0;
    if (a->stray_req)
        return LOOP_NOMORE;
    // A job still running keeps its place; the first entry that can go, goes.
    for (size_t k = a->nstrays; k > 0; k--) {
        struct stray *s = janitor_pop(a);
        if (s->job && job_live(a, s->job)) {
            janitor_push(a, s);
            continue;
        }
        a->stray_cur = s;
        if (s->id) {
            a->stray_req =
                docker_container_remove(a->docker, s->id, true, true, on_stray_removed, a);
        } else {
            AUTO_FREE char *label = xasprintf("%s=%s", JOB_LABEL_JOB, s->job);
            a->stray_req =
                docker_containers_list_by_label(a->docker, label, true, on_stray_list, a);
        }
        if (!a->stray_req)
            janitor_done(a, false, "asking the engine about", "no request");
        return LOOP_NOMORE;
    }
    if (a->strays)
        janitor_schedule(a, JANITOR_FIRST_MS); /* only running jobs: look again later */
    return LOOP_NOMORE;
}

static void janitor_schedule(struct agent *a, long delay_ms)
{
    if (!a->strays || a->stray_timer || a->stray_req || a->closing)
        return;
    a->stray_timer = loop_timer_add(a->loop, delay_ms, on_janitor, a);
}

void agent_remove_later(struct agent *a, const char *container_id)
{
    for (struct stray *s = a->strays; s; s = s->next)
        if (s->id && !strcmp(s->id, container_id))
            return;
    if (a->stray_cur && a->stray_cur->id && !strcmp(a->stray_cur->id, container_id))
        return;
    struct stray *s = xcalloc(1, sizeof *s);
    s->id = xstrdup(container_id);
    janitor_push(a, s);
    if (!a->stray_delay)
        a->stray_delay = JANITOR_FIRST_MS;
    janitor_schedule(a, a->stray_delay);
}

void agent_sweep_job_later(struct agent *a, const char *job)
{
    for (struct stray *s = a->strays; s; s = s->next)
        if (s->job && !strcmp(s->job, job))
            return;
    struct stray *s = xcalloc(1, sizeof *s);
    s->job = xstrdup(job);
    janitor_push(a, s);
    if (!a->stray_delay)
        a->stray_delay = JANITOR_FIRST_MS;
    janitor_schedule(a, a->stray_delay);
}

void agent_janitor_free(struct agent *a)
{
    docker_req_cancel(a->stray_req);
    a->stray_req = NULL;
    loop_timer_del(a->loop, a->stray_timer);
    a->stray_timer = 0;
    if (a->stray_cur)
        stray_free(a->stray_cur);
    a->stray_cur = NULL;
    struct stray *s;
    while ((s = janitor_pop(a)))
        stray_free(s);
}

size_t agent_janitor_pending(const struct agent *a)
{
    return a->nstrays + (a->stray_cur ? 1 : 0);
}
