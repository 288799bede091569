#include "job/container.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/metrics.h"
#include "core/util.h"
#include "job/job_host.h"

// After the container died, its attach stream normally ends at once; do not
// wait for it forever if Docker keeps it open.
#define STREAM_GRACE_MS 3000
#define CPU_POLL_MS 500
// A lost wait long-poll (the engine restarting?) is asked again this many
// times, a second apart, before the container counts as lost.
#define WAIT_RETRIES 10
#define WAIT_RETRY_MS 1000

static const char *const phase_names[] = {
    [CT_NEW] = "new",         [CT_CREATING] = "creating", [CT_ATTACHING] = "attaching",
    [CT_READY] = "ready",     [CT_STARTING] = "starting", [CT_PARKED] = "parked",
    [CT_RUNNING] = "running", [CT_DRAINING] = "draining", [CT_INSPECTING] = "inspecting",
    [CT_ENDED] = "ended",     [CT_REMOVING] = "removing", [CT_GONE] = "gone",
};

const char *ct_phase_name(enum ct_phase p)
{
    return p <= CT_GONE ? phase_names[p] : "?";
}

static uint64_t ct_now(const struct container *c)
{
    uint64_t t = util_now_ms() - c->t0;
    return t ? t : 1; /* 0 means "not reached" */
}

static const char *errtext(int status, const char *err)
{
    return err ? err : strerror(status < 0 ? -status : EIO);
}

void ct_init(struct container *c, const struct job_host *host, const char *name, uint64_t t0,
             const struct ct_ops *ops, void *data)
{
    memset(c, 0, sizeof *c);
    c->host = host;
    c->log_name = xstrdup(name);
    c->t0 = t0;
    c->ops = ops;
    c->data = data;
    c->cpu_ns = -1;
}

/** Drops every timer and everything in flight but c->req; the record stays valid. */
static void ct_release(struct container *c)
{
    struct loop *loop = c->host->loop;
    loop_timer_del(loop, c->wall_timer);
    loop_timer_del(loop, c->cpu_timer);
    loop_timer_del(loop, c->grace_timer);
    loop_timer_del(loop, c->retry_timer);
    loop_timer_del(loop, c->notify_timer);
    c->wall_timer = c->cpu_timer = c->grace_timer = c->retry_timer = c->notify_timer = 0;
    docker_req_cancel(c->wait_req);
    docker_req_cancel(c->cpu_req);
    docker_req_cancel(c->kill_req);
    c->wait_req = c->cpu_req = c->kill_req = NULL;
    if (c->attach) {
        docker_attach_free(c->attach);
        c->attach = NULL;
    }
}

void ct_deinit(struct container *c)
{
    if (!c->host)
        return;
    ct_release(c);
    docker_req_cancel(c->req);
    c->req = NULL;
    free(c->id);
    free(c->log_name);
    free(c->image);
    free(c->job_id);
    c->id = c->log_name = c->image = c->job_id = NULL;
}

/** Records the first cause of the end. */
static void ct_cause(struct container *c, enum ct_outcome why, enum ct_error err)
{
    if (c->outcome != CT_OUT_NONE)
        return;
    c->outcome = why;
    c->error = err;
}

/* ---- ending ---------------------------------------------------------------- */

static void on_killed(int status, const char *err, void *data)
{
    struct container *c = data;
    c->kill_req = NULL;
    // 404/409: the container is already gone or not running; that is fine.
    if (status && status != 404 && status != 409)
        log_warn(LOG_JOB, "%s: kill of %.12s failed: %s", c->log_name, c->id, errtext(status, err));
}

static void ct_kill(struct container *c)
{
    if (c->kill_req || c->exited || !c->id)
        return;
    c->kill_req = docker_container_kill(c->host->docker, c->id, "SIGKILL", on_killed, c);
}

/** -> ENDED, and tells the owner. Callers return right after: the owner may free c. */
static void ct_end(struct container *c)
{
    ct_release(c);
    c->exited = true;
    c->phase = CT_ENDED;
    if (c->outcome == CT_OUT_NONE)
        ct_cause(c, CT_OUT_ERROR, CT_ERR_WAIT);
    c->ops->ended(c, c->data);
}

static long on_notify(struct loop *loop, uint64_t id, void *data)
{
    PROCTOR_UNUSED(loop);
    PROCTOR_UNUSED(id);
    struct container *c = data;
    c->notify_timer = 0;
    ct_end(c);
    return LOOP_NOMORE;
}

/** It will never run: -> ENDED, told from the loop (never from inside an owner's call). */
static void ct_end_soon(struct container *c)
{
    ct_release(c);
    c->exited = true;
    c->phase = CT_ENDED;
    c->notify_timer = loop_timer_add(c->host->loop, 0, on_notify, c);
}

static void on_inspected(int status, const char *err, const struct docker_container_state *st,
                         void *data)
{
    struct container *c = data;
    c->req = NULL;
    if (status)
        log_warn(LOG_JOB, "%s: inspect failed: %s", c->log_name, errtext(status, err));
    else if (st->oom_killed)
        c->outcome = CT_OUT_OVERFLOW;
    ct_end(c);
}

/** The process died and its stream is closed (or was never open): learn why, then end. */
static void ct_after_exit(struct container *c)
{
    loop_timer_del(c->host->loop, c->grace_timer);
    c->grace_timer = 0;
    if (c->outcome == CT_OUT_EXIT) {
        // It ended by itself: the kernel may have killed it for memory.
        c->phase = CT_INSPECTING;
        c->req = docker_container_inspect(c->host->docker, c->id, on_inspected, c);
        if (c->req)
            return;
    }
    ct_end(c);
}

static long on_grace(struct loop *loop, uint64_t id, void *data)
{
    PROCTOR_UNUSED(loop);
    PROCTOR_UNUSED(id);
    struct container *c = data;
    c->grace_timer = 0;
    log_warn(LOG_JOB, "%s: attach stream still open after the container died; closing it",
             c->log_name);
    c->stream_closed = true;
    ct_after_exit(c);
    return LOOP_NOMORE;
}

/** Nothing to watch any more: no wait, CPU or wall-clock watch. */
static void ct_unwatch(struct container *c)
{
    struct loop *loop = c->host->loop;
    docker_req_cancel(c->wait_req);
    docker_req_cancel(c->cpu_req);
    c->wait_req = c->cpu_req = NULL;
    loop_timer_del(loop, c->wall_timer);
    loop_timer_del(loop, c->cpu_timer);
    loop_timer_del(loop, c->retry_timer);
    c->wall_timer = c->cpu_timer = c->retry_timer = 0;
}

/** RUNNING: the process died (wait answer, `die` event, or lost: known false). */
static void ct_exited(struct container *c, int exit_code, bool known)
{
    if (c->exited)
        return;
    c->exited = true;
    c->t_exited = ct_now(c);
    c->exit_code = exit_code;
    if (known)
        ct_cause(c, CT_OUT_EXIT, CT_ERR_NONE);
    else
        ct_cause(c, CT_OUT_ERROR, CT_ERR_WAIT);
    log_debug(LOG_JOB, "%s: container %.12s exited with %d", c->log_name, c->id, exit_code);
    ct_unwatch(c);
    if (!c->stream_closed && c->attach) {
        c->phase = CT_DRAINING;
        c->grace_timer = loop_timer_add(c->host->loop, STREAM_GRACE_MS, on_grace, c);
        return;
    }
    ct_after_exit(c);
}

/* ---- running ---------------------------------------------------------------- */

static void on_wait(int status, const char *err, int exit_code, void *data);

static long on_wait_retry(struct loop *loop, uint64_t id, void *data)
{
    PROCTOR_UNUSED(loop);
    PROCTOR_UNUSED(id);
    struct container *c = data;
    c->retry_timer = 0;
    c->wait_req = docker_container_wait(c->host->docker, c->id, on_wait, c);
    if (!c->wait_req) {
        ct_kill(c);
        ct_exited(c, -1, false);
    }
    return LOOP_NOMORE;
}

static void on_wait(int status, const char *err, int exit_code, void *data)
{
    struct container *c = data;
    c->wait_req = NULL;
    if (!status) {
        ct_exited(c, exit_code, true);
        return;
    }
    log_warn(LOG_JOB, "%s: waiting for the container failed: %s", c->log_name,
             errtext(status, err));
    if (status != 404 && c->wait_retries++ < WAIT_RETRIES) {
        c->retry_timer = loop_timer_add(c->host->loop, WAIT_RETRY_MS, on_wait_retry, c);
        return;
    }
    // Kill it in case it still runs: its owner must get its one answer.
    ct_kill(c);
    ct_exited(c, -1, false);
}

static long on_wall(struct loop *loop, uint64_t id, void *data)
{
    PROCTOR_UNUSED(loop);
    PROCTOR_UNUSED(id);
    struct container *c = data;
    c->wall_timer = 0;
    log_info(LOG_JOB, "%s: wall time limit (%lld s) reached", c->log_name,
             (long long)c->hard_time_s);
    ct_stop(c, CT_OUT_TIMEOUT);
    return LOOP_NOMORE;
}

static void ct_cpu_sample(struct container *c, int64_t ns)
{
    ns = ns > c->cpu_base_ns ? ns - c->cpu_base_ns : 0;
    c->cpu_ns = ns;
    if (c->exited || c->outcome != CT_OUT_NONE || ns <= c->time_s * 1000000000ll)
        return;
    log_info(LOG_JOB, "%s: CPU time limit (%lld s) reached", c->log_name, (long long)c->time_s);
    ct_stop(c, CT_OUT_TIMEOUT);
}

static long on_cpu_poll(struct loop *loop, uint64_t id, void *data)
{
    PROCTOR_UNUSED(loop);
    PROCTOR_UNUSED(id);
    struct container *c = data;
    uint64_t ns;
    if (!c->exited && c->outcome == CT_OUT_NONE && docker_cpu_read_cgroup(c->id, &ns) == 0)
        ct_cpu_sample(c, (int64_t)ns);
    if (c->exited || c->outcome != CT_OUT_NONE) {
        c->cpu_timer = 0;
        return LOOP_NOMORE;
    }
    return CPU_POLL_MS;
}

static void on_cpu_stat(int status, const char *err, int64_t total_ns, void *data)
{
    struct container *c = data;
    if (status || total_ns < 0) {
        // The stats stream failed, or ended (total_ns -1: the container is
        // gone): the request is over; the wall-clock limit still stands.
        c->cpu_req = NULL;
        if (!c->exited)
            log_warn(LOG_JOB, "%s: CPU stats stream ended: %s", c->log_name, errtext(status, err));
        return;
    }
    ct_cpu_sample(c, total_ns);
}

/** -> RUNNING: the limits count from now. */
static void ct_run(struct container *c)
{
    struct loop *loop = c->host->loop;
    c->phase = CT_RUNNING;
    c->t_running = ct_now(c);
    c->wall_timer = loop_timer_add(loop, (long)(c->hard_time_s * 1000), on_wall, c);
    // A parked container's wait does not count; a cold one counts from its start
    // (its process may have run, even answered, before Docker confirmed the start).
    uint64_t ns, kills;
    if (c->want_park && docker_oom_read_cgroup(c->id, &kills) == 0)
        c->oom_base = kills;
    if (docker_cpu_read_cgroup(c->id, &ns) == 0) {
        c->cpu_base_ns = c->want_park ? (int64_t)ns : 0;
        c->cpu_timer = loop_timer_add(loop, CPU_POLL_MS, on_cpu_poll, c);
    } else {
        // The stats stream counts from the container's start: a parked one's
        // wait (the runner's start-up, a few ms) counts too.
        c->cpu_req = docker_cpu_watch(c->host->docker, c->id, on_cpu_stat, c);
    }
}

static void on_started(int status, const char *err, void *data)
{
    struct container *c = data;
    c->req = NULL;
    if (status) {
        log_warn(LOG_JOB, "%s: start failed: %s", c->log_name, errtext(status, err));
        ct_cause(c, CT_OUT_ERROR, CT_ERR_START);
        ct_end(c); /* never ran */
        return;
    }
    c->ran = true;
    log_info(LOG_JOB, "%s: container %.12s started", c->log_name, c->id);
    if (c->want_park)
        c->phase = CT_PARKED;
    else
        ct_run(c);
    bool answered = c->answer_pending && !c->stop_asked && ct_answered(c) == 0;
    c->answer_pending = false;
    if (answered)
        return; /* it answered before Docker confirmed its start: `ended` follows */
    c->wait_req = docker_container_wait(c->host->docker, c->id, on_wait, c);
    if (!c->wait_req)
        ct_cause(c, CT_OUT_ERROR, CT_ERR_WAIT); /* the `die` event ends it */
    if (c->stop_asked || c->outcome != CT_OUT_NONE)
        ct_kill(c); /* stopped while starting */
    else if (c->phase == CT_PARKED && c->ops->parked)
        c->ops->parked(c, c->data);
    else if (c->phase == CT_RUNNING && c->ops->running)
        c->ops->running(c, c->data);
}

int ct_answered(struct container *c)
{
    if (c->phase == CT_STARTING && !c->want_park && c->outcome == CT_OUT_NONE) {
        c->answer_pending = true; /* its output can come before Docker's answer to start */
        return 0;
    }
    if (c->phase != CT_RUNNING || c->exited || c->outcome != CT_OUT_NONE)
        return -EALREADY;
    uint64_t kills, ns;
    int ret = docker_oom_read_cgroup(c->id, &kills);
    if (!ret)
        ret = docker_cpu_read_cgroup(c->id, &ns);
    if (ret) {
        log_debug(LOG_JOB, "%s: cgroup of %.12s not readable (%s): its exit decides", c->log_name,
                  c->id, strerror(-ret));
        return -ENOENT;
    }
    int64_t cpu = (int64_t)ns > c->cpu_base_ns ? (int64_t)ns - c->cpu_base_ns : 0;
    c->cpu_ns = cpu;
    c->t_answered = ct_now(c);
    if (kills > c->oom_base) {
        log_info(LOG_JOB,
                 "%s: the kernel killed %llu of its processes for memory before its answer",
                 c->log_name, (unsigned long long)(kills - c->oom_base));
        ct_cause(c, CT_OUT_OVERFLOW, CT_ERR_NONE);
    } else if (cpu > c->time_s * 1000000000ll) {
        log_info(LOG_JOB, "%s: CPU time limit (%lld s) reached before its answer", c->log_name,
                 (long long)c->time_s);
        ct_cause(c, CT_OUT_TIMEOUT, CT_ERR_NONE);
    } else {
        ct_cause(c, CT_OUT_ANSWERED, CT_ERR_NONE);
    }
    log_debug(LOG_JOB, "%s: container %.12s answered", c->log_name, c->id);
    // No limit to watch any more; what its process does next changes nothing. The
    // owner hears it from the loop (this runs inside its stream's callback).
    c->exited = true;
    ct_unwatch(c);
    c->notify_timer = loop_timer_add(c->host->loop, 0, on_notify, c);
    return 0;
}

int ct_claim(struct container *c, int64_t time_s, int64_t hard_time_s)
{
    if (c->phase != CT_PARKED || c->exited || c->outcome != CT_OUT_NONE)
        return -EALREADY;
    c->time_s = time_s;
    c->hard_time_s = hard_time_s;
    ct_run(c);
    return 0;
}

void ct_adopt(struct container *c, const char *role, const char *name, uint64_t t0,
              const struct ct_ops *ops, void *data)
{
    if (c->id && c->phase != CT_GONE && strcmp(c->role, role)) {
        metric_add(METRIC_CONTAINERS, c->role, -1);
        metric_add(METRIC_CONTAINERS, role, 1);
    }
    c->role = role;
    free(c->log_name);
    c->log_name = xstrdup(name);
    c->ops = ops;
    c->data = data;
    // The milestones so far happened before this owner's clock: reached at once.
    c->t0 = t0;
    uint64_t now = ct_now(c);
    c->t_created = c->t_created ? now : 0;
    c->t_attached = c->t_attached ? now : 0;
}

void ct_start(struct container *c)
{
    if (c->phase != CT_READY)
        return;
    c->phase = CT_STARTING;
    c->req = docker_container_start(c->host->docker, c->id, on_started, c);
    if (!c->req) {
        ct_cause(c, CT_OUT_ERROR, CT_ERR_START);
        ct_end_soon(c);
    }
}

int ct_write(struct container *c, const void *p, size_t n)
{
    return c->attach ? docker_attach_write(c->attach, p, n) : -EPIPE;
}

/* ---- creating and attaching ------------------------------------------------- */

static void on_attach_ready(struct docker_attach *at, void *data)
{
    PROCTOR_UNUSED(at);
    struct container *c = data;
    if (c->phase != CT_ATTACHING)
        return;
    c->phase = CT_READY;
    c->t_attached = ct_now(c);
    c->ops->ready(c, c->data);
}

static void on_attach_data(struct docker_attach *at, int stream, const void *p, size_t n,
                           void *data)
{
    PROCTOR_UNUSED(at);
    struct container *c = data;
    if (c->ops->data)
        c->ops->data(c, stream, p, n, c->data);
}

static void on_attach_close(struct docker_attach *at, int error, const char *errtext_, void *data)
{
    PROCTOR_UNUSED(at);
    struct container *c = data;
    if (error)
        log_debug(LOG_JOB, "%s: attach stream ended: %s", c->log_name,
                  errtext_ ? errtext_ : strerror(-error));
    c->stream_closed = true;
    switch (c->phase) {
    case CT_ATTACHING:
    case CT_READY:
        // The stream died before the container ran: nothing will ever run.
        ct_cause(c, CT_OUT_ERROR, CT_ERR_START);
        ct_end_soon(c);
        break;
    case CT_STARTING:
        // Let the start answer come; without its stream the container
        // cannot be supervised, so it is stopped as soon as it runs.
        ct_cause(c, CT_OUT_ERROR, CT_ERR_START);
        c->stop_asked = true;
        break;
    case CT_PARKED:
        // Waiting for a job, now deaf: it can never be handed out.
        ct_cause(c, CT_OUT_ERROR, CT_ERR_START);
        ct_kill(c);
        break;
    case CT_DRAINING:
        ct_after_exit(c);
        break;
    default:
        // RUNNING: Docker may close the stream a moment before the wait
        // answer comes; the process' end decides, not the stream's.
        break;
    }
}

/** -> GONE; a container that existed leaves the count of the living. */
static void ct_gone(struct container *c)
{
    if (c->id && c->phase != CT_GONE)
        metric_add(METRIC_CONTAINERS, c->role, -1);
    c->phase = CT_GONE;
}

static void on_removed(int status, const char *err, void *data)
{
    struct container *c = data;
    c->req = NULL;
    if (status && status != 404) {
        log_warn(LOG_JOB, "%s: removing container %.12s failed: %s; trying again later",
                 c->log_name, c->id, errtext(status, err));
        agent_remove_later(c->host->agent, c->id);
    } else {
        log_info_event(LOG_JOB, "container_removed",
                       LOG_FIELDS(LOG_STR("role", c->role), LOG_STR("container", c->id),
                                  LOG_STR("image", c->image)),
                       "%s: container %.12s removed", c->log_name, c->id);
    }
    ct_gone(c);
    c->ops->gone(c, c->data);
}

/** -> REMOVING; false when nothing could be asked of Docker. */
static bool ct_delete(struct container *c)
{
    c->phase = CT_REMOVING;
    c->req = docker_container_remove(c->host->docker, c->id, true, true, on_removed, c);
    if (c->req)
        return true;
    log_warn(LOG_JOB, "%s: cannot ask the Docker engine to remove %.12s", c->log_name, c->id);
    agent_remove_later(c->host->agent, c->id);
    ct_gone(c);
    return false;
}

static void on_created(int status, const char *err, const char *id, void *data)
{
    struct container *c = data;
    c->req = NULL;
    if (status) {
        log_warn(LOG_JOB, "%s: create failed: %s", c->log_name, errtext(status, err));
        // No HTTP answer (reset, timeout): the engine may have created it anyway.
        if (status < 0 && c->job_id)
            agent_sweep_job_later(c->host->agent, c->job_id);
        ct_cause(c, CT_OUT_ERROR, CT_ERR_CREATE);
        if (c->remove_asked) {
            c->phase = CT_GONE;
            c->ops->gone(c, c->data);
        } else {
            ct_end(c);
        }
        return;
    }
    c->id = xstrdup(id);
    c->t_created = ct_now(c);
    metric_add(METRIC_CONTAINERS, c->role, 1);
    log_info_event(
        LOG_JOB, "container_created",
        LOG_FIELDS(LOG_STR("role", c->role), LOG_STR("container", id), LOG_STR("image", c->image)),
        "%s: container %.12s created", c->log_name, id);
    if (c->remove_asked) {
        if (!ct_delete(c))
            c->ops->gone(c, c->data);
        return;
    }
    if (c->stop_asked) {
        ct_end(c); /* never started */
        return;
    }
    if (!c->want_attach) {
        c->phase = CT_READY;
        c->ops->ready(c, c->data);
        return;
    }
    static const struct docker_attach_cbs cb = {
        .on_ready = on_attach_ready, .on_data = on_attach_data, .on_close = on_attach_close};
    c->phase = CT_ATTACHING;
    c->attach = docker_attach_new(c->host->docker, id, NULL, &cb, c);
    if (!c->attach) {
        ct_cause(c, CT_OUT_ERROR, CT_ERR_START);
        ct_end(c);
    }
}

int ct_create(struct container *c, const struct ct_spec *s)
{
    if (c->phase != CT_NEW)
        return -EALREADY;
    const struct policy_hardening *h = s->hard;
    const char *caps[POLICY_MAX_CAPS + 1] = {0};
    for (size_t i = 0; i < h->ncap_drop; i++)
        caps[i] = h->cap_drop[i];
    const char *secopt[] = {"no-new-privileges", NULL};
    struct docker_ulimit ul = {"nofile", h->nofile_soft, h->nofile_hard};
    struct docker_kv labels[] = {{JOB_LABEL_AGENT, c->host->agent_id},
                                 {JOB_LABEL_JOB, s->job_id},
                                 {JOB_LABEL_ROLE, s->role}};
    struct docker_create_spec spec = {
        .image = s->image,
        .cmd = s->cmd,
        .labels = labels,
        .n_labels = ARRAY_SIZE(labels),
        .memory = s->memory_mib << 20,
        .memory_swap = s->memory_mib << 20,
        .memory_swappiness = c->host->cgroup_version == 1 ? 0 : -1,
        .pids_limit = h->pids_limit,
        .network_mode = s->network_mode,
        .runtime = s->runtime,
        // The agent reads everything through the attach stream or a socket;
        // Docker's own json log would write every byte to disk a second time.
        .log_driver = "none",
        .binds = s->binds,
        .ports = s->nports ? s->ports : NULL,
        .n_ports = s->nports,
        .ulimits = h->nofile_soft ? &ul : NULL,
        .n_ulimits = h->nofile_soft ? 1 : 0,
        .cap_drop = h->ncap_drop ? caps : NULL,
        .security_opt = h->no_new_privileges ? secopt : NULL,
        .open_stdin = true,
        .stdin_once = true,
        .attach_stdin = true,
        .attach_stdout = true,
        .attach_stderr = true,
    };
    c->time_s = s->time_s;
    free(c->image);
    c->image = s->image ? xstrdup(s->image) : NULL;
    c->hard_time_s = s->hard_time_s;
    c->role = s->role;
    c->want_attach = s->attach;
    c->want_park = s->park;
    free(c->job_id);
    c->job_id = xstrdup(s->job_id);
    c->req = docker_container_create(c->host->docker, &spec, on_created, c);
    if (!c->req)
        return -EIO;
    c->phase = CT_CREATING;
    return 0;
}

/* ---- stopping and removing ---------------------------------------------------- */

void ct_stop(struct container *c, enum ct_outcome why)
{
    ct_cause(c, why, CT_ERR_NONE);
    c->stop_asked = true;
    switch (c->phase) {
    case CT_ATTACHING:
    case CT_READY:
        ct_end_soon(c); /* never ran */
        break;
    case CT_PARKED:
    case CT_RUNNING:
        ct_kill(c);
        break;
    default:
        // CREATING/STARTING: acted on when Docker answers. Later: nothing to stop.
        break;
    }
}

void ct_on_event(struct container *c, const char *action, int exit_code)
{
    bool alive = c->phase == CT_PARKED || c->phase == CT_RUNNING || c->phase == CT_DRAINING ||
                 c->phase == CT_INSPECTING;
    if (!strcmp(action, "oom") && alive) {
        // Even after the exit: the kernel's verdict is why it ended.
        if (c->outcome == CT_OUT_NONE || c->outcome == CT_OUT_EXIT) {
            c->outcome = CT_OUT_OVERFLOW;
            c->error = CT_ERR_NONE;
        }
        if (c->phase == CT_RUNNING || c->phase == CT_PARKED)
            ct_kill(c);
    } else if (!strcmp(action, "die") && (c->phase == CT_RUNNING || c->phase == CT_PARKED) &&
               !c->exited) {
        // The wait long-poll normally tells first; the event is the backup.
        ct_exited(c, exit_code, true);
    }
}

bool ct_remove(struct container *c)
{
    switch (c->phase) {
    case CT_NEW:
    case CT_GONE:
        c->phase = CT_GONE;
        return true;
    case CT_REMOVING:
        return false;
    case CT_CREATING:
        // Docker finishes creating it whatever we do: delete it when it answers.
        c->remove_asked = true;
        return false;
    default:
        break;
    }
    c->remove_asked = true;
    ct_release(c);
    docker_req_cancel(c->req);
    c->req = NULL;
    if (!c->id) {
        c->phase = CT_GONE;
        return true;
    }
    return !ct_delete(c);
}
