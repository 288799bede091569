#include "job/job.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/wire.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/util.h"
#include "docker/docker_stream.h"
#include "job/job_internal.h"

#define STDERR_LOG_MAX 4096

const char *job_id(const struct job *j)
{
    return j->id;
}

struct job *job_next(struct job *j)
{
    return j->next;
}

void job_set_next(struct job *j, struct job *next)
{
    j->next = next;
}

/* ---- ending ------------------------------------------------------------------ */

static void job_set_reason(struct job *j, enum job_reason r, const char *text)
{
    // The first reason wins: a kill after a timeout is still a timeout.
    if (j->reason != REASON_NONE)
        return;
    j->reason = r;
    if (r == REASON_CRASH)
        j->crash_text = xstrdup(text ? text : TXT_UNKNOWN_ERROR);
}

void job_free(struct job *j)
{
    if (!j)
        return;
    docker_req_cancel(j->update_req);
    ct_deinit(&j->cold);
    pool_entry_free(j->pooled); /* its container is gone (or left to the next start) */
    free(j->pooled_label);
    students_free(j);
    if (j->nports)
        agent_ports_give(j->host->agent, j->ports_host, j->nports);
    job_dir_remove(j);
    msg_framer_deinit(&j->framer);
    value_deinit(&j->inputdata);
    value_deinit(&j->result);
    free(j->env.envtype);
    free(j->env.name);
    free(j->env.image_id);
    free(j->env.runtime);
    free(j->id);
    free(j->course_id);
    free(j->task_id);
    free(j->envtype);
    free(j->envname);
    free(j->prev_state);
    free(j->run_cmd);
    free(j->crash_text);
    free(j);
}

void job_maybe_finished(struct job *j)
{
    if (j->phase == JOB_CLEANING && j->grading->phase == CT_GONE && !j->students)
        agent_job_finished(j->host->agent, j);
}

/** -> CLEANING: report first (the student waits), then remove every container. */
static void job_end(struct job *j)
{
    if (j->phase == JOB_CLEANING)
        return;
    j->phase = JOB_CLEANING;
    job_report(j);
    students_job_done(j);
    students_remove_all(j);
    ct_remove(j->grading);
    job_maybe_finished(j);
}

void job_fail(struct job *j, enum job_reason r, const char *text)
{
    job_set_reason(j, r, text);
    if (j->phase == JOB_RUNNING)
        ct_stop(j->grading, CT_OUT_STOPPED);
}

/* ---- parameters ----------------------------------------------------------------- */

static bool id_is_safe(const char *s)
{
    // Upstream refuses absolute paths, "..", and surrounding whitespace.
    size_t n = strlen(s);
    return n && s[0] != '/' && !strstr(s, "..") && !isspace((unsigned char)s[0]) &&
           !isspace((unsigned char)s[n - 1]);
}

/** Python's int() for the values the frontend may send. */
static int param_int(const struct value *v, bool *has, int64_t *out)
{
    *has = false;
    if (!v || v->type == VALUE_NIL)
        return 0;
    switch (v->type) {
    case VALUE_INT:
        *out = v->u.i;
        break;
    case VALUE_BOOL:
        *out = v->u.b;
        break;
    case VALUE_FLOAT:
        if (!isfinite(v->u.f) || fabs(v->u.f) > 9e15)
            return -EINVAL;
        *out = (int64_t)v->u.f;
        break;
    case VALUE_STR: {
        const char *s = v->u.s.ptr;
        while (isspace((unsigned char)*s))
            s++;
        if (!*s)
            return -EINVAL;
        char *end;
        errno = 0;
        long long x = strtoll(s, &end, 10);
        while (isspace((unsigned char)*end))
            end++;
        if (errno || end == s || *end)
            return -EINVAL;
        *out = x;
        break;
    }
    default:
        return -EINVAL;
    }
    *has = true;
    return 0;
}

bool job_truthy(const struct value *v)
{
    if (!v)
        return false;
    switch (v->type) {
    case VALUE_BOOL:
        return v->u.b;
    case VALUE_INT:
        return v->u.i != 0;
    case VALUE_UINT:
        return true;
    case VALUE_FLOAT:
        return v->u.f != 0;
    case VALUE_STR:
    case VALUE_BIN:
        return v->u.s.len != 0;
    case VALUE_ARRAY:
        return v->u.a.len != 0;
    case VALUE_MAP:
        return v->u.m.len != 0;
    default:
        return false;
    }
}

static int parse_params(struct job *j, const struct value *params, struct policy_limits_req *req)
{
    int ret = 0;
    const struct value *limits = value_map_get(params, "limits");
    if (limits && limits->type != VALUE_MAP && limits->type != VALUE_NIL)
        return -EINVAL;
    if (!ret)
        ret = param_int(value_map_get(limits, "time"), &req->has_time, &req->time_s);
    if (!ret)
        ret = param_int(value_map_get(limits, "memory"), &req->has_memory, &req->memory_mib);
    const struct value *hard = value_map_get(limits, "hard_time");
    // Upstream: missing, null, 0 or "" all mean "3 x time".
    if (!ret && !(hard && hard->type == VALUE_STR && hard->u.s.len == 0))
        ret = param_int(hard, &req->has_hard_time, &req->hard_time_s);
    if (!ret && req->has_hard_time && req->hard_time_s == 0)
        req->has_hard_time = false;
    req->network_grading = job_truthy(value_map_get(params, "network_grading"));
    const struct value *cmd = value_map_get(params, "run_cmd");
    if (!ret && cmd && cmd->type == VALUE_STR && cmd->u.s.len)
        j->run_cmd = xstrdup(cmd->u.s.ptr);
    else if (!ret && cmd && cmd->type != VALUE_NIL && cmd->type != VALUE_STR)
        ret = -EINVAL;
    return ret;
}

/* ---- messages to and from the grading container ---------------------------------- */

int job_send(struct job *j, const struct value *msg)
{
    int ret = 0;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    struct buf frame = {0};
    ret = value_pack(&pk, msg);
    if (!ret)
        ret = msg_frame_encode(&frame, sb.data, sb.size);
    if (!ret)
        ret = ct_write(j->grading, frame.data, frame.len);
    buf_deinit(&frame);
    msgpack_sbuffer_destroy(&sb);
    return ret;
}

static int job_send_start(struct job *j)
{
    struct value msg;
    value_set_map(&msg);
    value_set_str(value_map_put(&msg, "type"), WIRE_MSG_START);
    value_copy(value_map_put(&msg, "input"), &j->inputdata);
    struct value *debug = value_map_put(&msg, "debug");
    if (j->debug == BACKEND_DEBUG_SSH)
        value_set_str(debug, "ssh");
    else
        value_set_bool(debug, j->debug == BACKEND_DEBUG_ON);
    struct value *types = value_map_put(&msg, "envtypes");
    if (j->host->envtypes)
        value_copy(types, j->host->envtypes);
    else
        value_set_map(types);
    if (j->run_cmd)
        value_set_str(value_map_put(&msg, "run_cmd"), j->run_cmd);
    value_set_bool(value_map_put(&msg, "run_as_root"), j->env.run_as_root);
    value_set_bool(value_map_put(&msg, "shared_kernel"), true);
    int ret = job_send(j, &msg);
    value_deinit(&msg);
    return ret;
}

static const char *msg_str(const struct value *m, const char *key)
{
    const struct value *v = value_map_get(m, key);
    return v && v->type == VALUE_STR ? v->u.s.ptr : NULL;
}

static void job_ssh_message(struct job *j, const struct value *m, const char *type)
{
    const struct job_host *h = j->host;
    const char *user = msg_str(m, "ssh_user"), *key = msg_str(m, "ssh_key");
    uint16_t port = 0;
    if (!strcmp(type, WIRE_MSG_SSH_DEBUG)) {
        for (size_t i = 0; i < j->nports; i++)
            if (j->ports_cont[i] == 22)
                port = j->ports_host[i];
    } else {
        struct student *s = student_by_container(j, msg_str(m, "container_id"));
        if (!s) {
            job_fail(j, REASON_CRASH, TXT_SSH_FOREIGN);
            return;
        }
        port = s->ssh_port;
    }
    if (!j->ssh_sent && user && key && port && h->debug_host) {
        j->ssh_sent = true;
        h->sink.ssh_debug(h->sink.data, j->id, h->debug_host, port, user, key);
    }
}

static void job_on_message(struct job *j, const void *p, size_t n)
{
    char err[256];
    struct value m;
    if (value_unpack(p, n, &m, err, sizeof err)) {
        // A hostile container can send these forever: log a few, count all.
        if (j->bad_msgs++ < JOB_BAD_MSG_LOGS)
            log_warn(LOG_JOB, "job %s: incorrect message from the container skipped: %s", j->id,
                     err);
        return;
    }
    const char *type = msg_str(&m, "type");
    if (m.type != VALUE_MAP || !type) {
        if (j->bad_msgs++ < JOB_BAD_MSG_LOGS)
            log_warn(LOG_JOB, "job %s: container message without a type skipped", j->id);
    } else if (!strcmp(type, WIRE_MSG_RESULT)) {
        // The first result is the container's last word (INGInious reads nothing
        // after it). Moved, not copied: it may carry megabytes of output.
        struct value *r = (struct value *)value_map_get(&m, "result");
        if (r) {
            j->result = *r;
            value_set_nil(r);
        }
        j->has_result = true;
        // Judged now, from the cgroup, rather than at the exit (README "When a job
        // is answered"); where the cgroup is not readable, the exit decides.
        if (!j->host->answer_at_exit && j->phase == JOB_RUNNING)
            ct_answered(j->grading);
    } else if (!strcmp(type, WIRE_MSG_RUN_STUDENT)) {
        student_request(j, &m);
    } else if (!strcmp(type, WIRE_MSG_SSH_DEBUG) || !strcmp(type, WIRE_MSG_SSH_STUDENT)) {
        job_ssh_message(j, &m, type);
    } else {
        log_debug(LOG_JOB, "job %s: container message %s ignored", j->id, type);
    }
    value_deinit(&m);
}

/* ---- the grading container's life (container.h calls these) ------------------------ */

static void grading_ready(struct container *c, void *data)
{
    struct job *j = data;
    // The runner only speaks after `start`: writing it before the container
    // starts is safe and saves a round trip.
    if (job_send_start(j)) {
        job_fail(j, REASON_CRASH, TXT_UNKNOWN_ERROR);
        return;
    }
    ct_start(c);
}

static void grading_data(struct container *c, int stream, const void *p, size_t n, void *data)
{
    PROCTOR_UNUSED(c);
    struct job *j = data;
    if (j->reason == REASON_CRASH || j->has_result)
        return; /* nothing is read after the result (INGInious closes the stream) */
    metric_add(METRIC_CONTAINER_BYTES, NULL, (double)n);
    j->output_bytes += n;
    if (j->hard.max_output_bytes > 0 && j->output_bytes > (size_t)j->hard.max_output_bytes) {
        AUTO_FREE char *t = xasprintf("The grading container sent more than %lld bytes; it was "
                                      "stopped.",
                                      (long long)j->hard.max_output_bytes);
        job_fail(j, REASON_CRASH, t);
        return;
    }
    if (stream == DOCKER_STDERR) {
        // The runner logs there; keep a bounded excerpt for the admin.
        if (j->stderr_logged < STDERR_LOG_MAX) {
            size_t k =
                n < STDERR_LOG_MAX - j->stderr_logged ? n : STDERR_LOG_MAX - j->stderr_logged;
            j->stderr_logged += k;
            log_debug(LOG_JOB, "job %s: container stderr: %.*s", j->id, (int)k, (const char *)p);
        }
        return;
    }
    if (stream != DOCKER_STDOUT)
        return;
    msg_framer_feed(&j->framer, p, n);
    for (;;) {
        const void *msg;
        size_t len;
        enum framer_result r = msg_framer_next(&j->framer, &msg, &len);
        if (r == FRAMER_NEED_MORE)
            break;
        if (r == FRAMER_ERROR) {
            AUTO_FREE char *t = xasprintf(TXT_UNREADABLE "%s", msg_framer_error(&j->framer));
            job_fail(j, REASON_CRASH, t);
            return;
        }
        job_on_message(j, msg, len);
        if (j->reason == REASON_CRASH || j->has_result)
            return;
    }
}

static void grading_ended(struct container *c, void *data)
{
    struct job *j = data;
    if (j->pooled && j->phase == JOB_PREPARING) {
        // A pooled container that died before its claim: the claim's end decides.
        j->pooled_lost = true;
        return;
    }
    switch (c->outcome) {
    case CT_OUT_TIMEOUT:
        job_set_reason(j, REASON_TIMEOUT, NULL);
        break;
    case CT_OUT_OVERFLOW:
        job_set_reason(j, REASON_OVERFLOW, NULL);
        break;
    case CT_OUT_ERROR:
        job_set_reason(j, REASON_CRASH,
                       c->error == CT_ERR_CREATE  ? TXT_CANNOT_CREATE
                       : c->error == CT_ERR_START ? TXT_CANNOT_START
                                                  : TXT_UNKNOWN_ERROR);
        break;
    default:
        // EXIT, ANSWERED: the grader's result decides; STOPPED: whoever stopped it gave
        // the reason.
        break;
    }
    job_end(j);
}

/** Started (cold): a student container the task will likely ask for is made now, after
 * the grading container's start (not beside it: the engine would start both more slowly). */
static void grading_running(struct container *c, void *data)
{
    PROCTOR_UNUSED(c);
    student_ahead(data);
}

static void grading_gone(struct container *c, void *data)
{
    PROCTOR_UNUSED(c);
    job_maybe_finished(data);
}

static const struct ct_ops grading_ops = {.ready = grading_ready,
                                          .running = grading_running,
                                          .data = grading_data,
                                          .ended = grading_ended,
                                          .gone = grading_gone};

static int job_create_grading(struct job *j)
{
    struct docker_port_binding pb[POLICY_MAX_PORTS];
    for (size_t i = 0; i < j->nports; i++)
        pb[i] = (struct docker_port_binding){.container_port = j->ports_cont[i],
                                             .host_port = j->ports_host[i]};
    char **binds = job_dir_grading_binds(j->dir);
    struct ct_spec spec = {
        .image = j->env.image_id,
        .runtime = j->env.runtime,
        .role = "grading",
        .job_id = j->id,
        .memory_mib = j->limits.memory_mib,
        .time_s = j->limits.time_s,
        .hard_time_s = j->limits.hard_time_s,
        .hard = &j->hard,
        .network_mode = j->limits.network || j->nports ? "bridge" : "none",
        .binds = (const char *const *)binds,
        .ports = pb,
        .nports = j->nports,
        .attach = true,
    };
    int ret = ct_create(j->grading, &spec);
    job_dir_binds_free(binds);
    return ret;
}

static void on_dir_ready(int ret, void *data)
{
    struct job *j = data;
    j->dir_task = NULL;
    if (ret) {
        log_error(LOG_JOB, "job %s: preparing %s failed: %s", j->id, j->dir, strerror(-ret));
        job_set_reason(j, REASON_CRASH, TXT_UNKNOWN_ERROR);
    } else if (!j->reason && job_create_grading(j)) {
        job_set_reason(j, REASON_CRASH, TXT_CANNOT_CREATE);
    }
    if (j->grading->phase == CT_NEW) {
        job_end(j);
        return;
    }
    j->phase = JOB_RUNNING;
}

/* ---- a warm start (pool.h) ------------------------------------------------------------ */

/** The pooled container cannot serve: the pool removes it, the job starts cold. */
static void job_pool_fallback(struct job *j)
{
    struct pool_entry *e = j->pooled;
    log_info(LOG_JOB, "job %s: the warm container could not be used; starting cold", j->id);
    j->pooled = NULL;
    j->grading = &j->cold;
    students_ahead_drop(j); /* the pool's student part: its mounts are in that directory */
    free(j->dir);           /* the pool removes the directory with its container */
    j->dir = NULL;
    pool_discard(j->host->pool, e);
    char reason[POLICY_REASON_MAX] = "";
    if (job_dir_make(j, on_dir_ready, reason, sizeof reason)) {
        job_set_reason(j, REASON_CRASH, *reason ? reason : TXT_UNKNOWN_ERROR);
        job_end(j);
    }
}

/** One step of the claim done (the directory filled, the limits updated). */
static void job_claim_step(struct job *j)
{
    if (--j->claim_pending)
        return;
    if (j->reason) {
        job_end(j); /* stopped meanwhile: the container is the job's, removed as usual */
        return;
    }
    if (j->claim_err || j->pooled_lost ||
        ct_claim(j->grading, j->limits.time_s, j->limits.hard_time_s)) {
        job_pool_fallback(j);
        return;
    }
    j->phase = JOB_RUNNING;
    log_info(LOG_JOB, "job %s: container %.12s started (warm)", j->id, j->grading->id);
    if (job_send_start(j)) {
        job_fail(j, REASON_CRASH, TXT_UNKNOWN_ERROR);
        return;
    }
    student_ahead(j);
}

static void on_pooled_dir(int ret, void *data)
{
    struct job *j = data;
    j->dir_task = NULL;
    if (ret) {
        log_warn(LOG_JOB, "job %s: filling the warm directory %s failed: %s", j->id, j->dir,
                 strerror(-ret));
        j->claim_err = ret;
    }
    job_claim_step(j);
}

static void on_pooled_update(int status, const char *err, void *data)
{
    struct job *j = data;
    j->update_req = NULL;
    if (status) {
        log_warn(LOG_JOB, "job %s: updating the warm container's limits failed: %s", j->id,
                 err ? err : strerror(status < 0 ? -status : EIO));
        j->claim_err = -EIO;
    }
    job_claim_step(j);
}

/** Takes a waiting container that fits, if any: true when the warm start is under way. */
static bool job_take_pooled(struct job *j, const struct pool_want *w)
{
    const struct job_host *h = j->host;
    struct pool_entry *e = pool_take(h->pool, w);
    if (!e)
        return false;
    j->pooled = e;
    j->pooled_label = xstrdup(pool_entry_label(e));
    j->grading = pool_entry_container(e);
    AUTO_FREE char *name = xasprintf("job %s", j->id);
    ct_adopt(j->grading, "grading", name, j->started_ms, &grading_ops, j);
    j->dir = xstrdup(pool_entry_dir(e));
    struct student *part = pool_entry_student(h->pool, e);
    if (part)
        student_part_adopt(j, part);
    // The pool made it (its container_created line has no job): this line ties it to the job.
    log_info_event(LOG_JOB, "container_claimed",
                   LOG_FIELDS(LOG_STR("role", "grading"), LOG_STR("container", j->grading->id),
                              LOG_STR("image", j->grading->image)),
                   "job %s: warm container %.12s", j->id, j->grading->id);
    struct docker_update u;
    j->claim_pending = 2;
    if (pool_entry_update(e, w, &u)) {
        j->update_req = docker_container_update(h->docker, j->grading->id, &u, on_pooled_update, j);
        if (!j->update_req) {
            j->claim_err = -EIO;
            j->claim_pending--;
        }
    } else {
        j->claim_pending--;
    }
    job_dir_fill(j, on_pooled_dir);
    return true;
}

bool job_owns_label(const struct job *j, const char *label)
{
    return !strcmp(j->id, label) || (j->pooled_label && !strcmp(j->pooled_label, label));
}

/* ---- start -------------------------------------------------------------------------- */

/** Everything that can refuse a job before Docker is involved. */
static int job_prepare(struct job *j, const struct backend_new_job *msg, char *reason,
                       size_t reasonlen)
{
    const struct job_host *h = j->host;
    const struct env *env = agent_env_find(h->agent, msg->environment_type, msg->environment);
    if (!env) {
        util_err(reason, reasonlen, "%s", TXT_ENV_UNAVAILABLE);
        return -ENOENT;
    }
    j->env = *env;
    j->env.envtype = xstrdup(env->envtype);
    j->env.name = xstrdup(env->name);
    j->env.image_id = xstrdup(env->image_id);
    j->env.runtime = xstrdup(env->runtime);
    if (msg->course_id) {
        struct stat st;
        AUTO_FREE char *dir = xasprintf("%s/%s/%s", h->tasks_dir, msg->course_id, msg->task_id);
        if (!id_is_safe(msg->course_id) || !id_is_safe(msg->task_id) || stat(dir, &st) < 0 ||
            !S_ISDIR(st.st_mode)) {
            util_err(reason, reasonlen, "%s", TXT_TASK_UNAVAILABLE);
            return -ENOENT;
        }
    }
    struct policy_limits_req lreq = {.environment_type = msg->environment_type,
                                     .environment = msg->environment};
    if (parse_params(j, &msg->environment_parameters, &lreq)) {
        util_err(reason, reasonlen, "%s", TXT_BAD_PARAMS);
        return -EINVAL;
    }
    // Container ports: the image's, plus 22 for an SSH debug session.
    for (size_t i = 0; i < env->nports && j->nports < POLICY_MAX_PORTS; i++)
        j->ports_cont[j->nports++] = env->ports[i];
    if (msg->debug == BACKEND_DEBUG_SSH && j->nports < POLICY_MAX_PORTS)
        j->ports_cont[j->nports++] = 22;
    lreq.needs_ports = j->nports > 0;
    if (policy_limits(h->policy, &lreq, &j->limits, reason, reasonlen))
        return -EPERM;
    if (j->nports) {
        size_t n = j->nports;
        j->nports = 0; /* nothing taken yet */
        if (agent_ports_take(h->agent, j->id, n, j->ports_host, reason, reasonlen))
            return -EPERM;
        j->nports = n;
    }
    struct policy_hardening_req hreq = {.environment = msg->environment,
                                        .memory_mib = j->limits.memory_mib,
                                        .network = j->limits.network};
    if (policy_hardening(h->policy, &hreq, &j->hard, reason, reasonlen))
        return -EPERM;
    msg_framer_deinit(&j->framer);
    msg_framer_init(&j->framer, j->hard.max_frame_bytes > 0 ? (size_t)j->hard.max_frame_bytes
                                                            : (size_t)64 << 20);
    if (h->pool) {
        // The task asked for student containers before: the pool pairs them (job_student.c).
        size_t calls;
        int64_t student_mib;
        const char *student_env =
            student_memory_recall(h->students_seen, j->course_id, j->task_id, &calls, &student_mib);
        const struct env *senv =
            student_env ? agent_env_find(h->agent, j->envtype, student_env) : NULL;
        struct pool_want w = {.env = &j->env,
                              .envtype = j->envtype,
                              .envname = j->envname,
                              .memory_mib = j->limits.memory_mib,
                              .hard = &j->hard,
                              .plain = !j->nports && !j->limits.network,
                              .student_env = senv && senv->ahead_ok ? student_env : NULL,
                              .student_memory_mib = student_mib};
        pool_note_arrival(h->pool, &w);
        if (job_take_pooled(j, &w))
            return 0;
    }
    return job_dir_make(j, on_dir_ready, reason, reasonlen);
}

struct job *job_start(const struct job_host *h, const struct backend_new_job *msg)
{
    // Upstream acknowledges first, before any check.
    h->sink.job_started(h->sink.data, msg->job_id);
    struct job *j = xcalloc(1, sizeof *j);
    j->host = h;
    j->phase = JOB_PREPARING;
    j->id = xstrdup(msg->job_id);
    j->started_ms = util_now_ms();
    if (msg->course_id) {
        j->course_id = xstrdup(msg->course_id);
        j->task_id = xstrdup(msg->task_id);
    }
    j->envtype = xstrdup(msg->environment_type);
    j->envname = xstrdup(msg->environment);
    j->debug = msg->debug;
    value_copy(&j->inputdata, &msg->inputdata);
    const struct value *st = value_map_get(&msg->inputdata, "@state");
    j->prev_state = xstrdup(st && st->type == VALUE_STR ? st->u.s.ptr : "");
    msg_framer_init(&j->framer, (size_t)64 << 20);
    AUTO_FREE char *name = xasprintf("job %s", j->id);
    j->grading = &j->cold;
    ct_init(j->grading, h, name, j->started_ms, &grading_ops, j);
    log_info_event(LOG_JOB, "job_received",
                   LOG_FIELDS(LOG_STR("course", msg->course_id), LOG_STR("task", msg->task_id),
                              LOG_STR("environment_type", msg->environment_type),
                              LOG_STR("environment", msg->environment),
                              LOG_STR("debug", backend_debug_name(msg->debug)),
                              LOG_INT("time_s", backend_new_job_limit(msg, "time")),
                              LOG_INT("hard_time_s", backend_new_job_limit(msg, "hard_time")),
                              LOG_INT("memory_mib", backend_new_job_limit(msg, "memory"))),
                   "job %s: %s/%s on %s/%s", j->id, msg->course_id ? msg->course_id : "-",
                   msg->task_id ? msg->task_id : "-", msg->environment_type, msg->environment);

    char reason[POLICY_REASON_MAX] = "";
    if (job_prepare(j, msg, reason, sizeof reason)) {
        job_set_reason(j, REASON_CRASH, *reason ? reason : TXT_CANNOT_CREATE);
        j->reported = true;
        job_log_finished(j, "crash", 0.0, j->crash_text, "job %s: crash: %s", j->id, j->crash_text);
        job_report_plain(j, "crash", j->crash_text, false);
        job_free(j);
        return NULL;
    }
    return j;
}

void job_kill(struct job *j, const char *state)
{
    if (j->phase == JOB_CLEANING)
        return;
    log_info(LOG_JOB, "job %s: kill requested by the backend", j->id);
    free(j->prev_state);
    j->prev_state = xstrdup(state ? state : "");
    job_fail(j, REASON_KILLED, NULL);
}

void job_stop(struct job *j, const char *text)
{
    if (j->phase == JOB_CLEANING)
        return;
    log_info(LOG_JOB, "job %s: stopped by the agent: %s", j->id, text);
    job_fail(j, REASON_CRASH, text);
}

void job_abandon(struct job *j)
{
    j->abandoned = true;
    if (j->phase == JOB_CLEANING)
        return;
    job_fail(j, REASON_KILLED, NULL);
}

int job_status(const struct job *j, struct agent_job_status *st)
{
    const struct container *c = j->grading;
    *st = (struct agent_job_status){
        .phase = j->phase == JOB_PREPARING  ? "preparing"
                 : j->phase == JOB_CLEANING ? "reporting"
                                            : ct_phase_name(c->phase),
        .cpu_s = c->cpu_ns >= 0 ? (double)c->cpu_ns / 1e9 : -1,
        .wall_s = !c->t_running ? 0
                  : c->t_exited ? (double)(c->t_exited - c->t_running) / 1000
                                : (double)(util_now_ms() - j->started_ms - c->t_running) / 1000,
        .time_s = j->limits.time_s,
        .hard_time_s = j->limits.hard_time_s,
    };
    return 0;
}

void job_on_event(struct job *j, const struct docker_event *ev)
{
    if (j->grading->id && !strcmp(ev->id, j->grading->id)) {
        ct_on_event(j->grading, ev->action, ev->exit_code);
        return;
    }
    struct student *s = student_by_container(j, ev->id);
    if (s)
        ct_on_event(&s->ct, ev->action, ev->exit_code);
}
