#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/wire.h"
#include "core/log.h"
#include "core/util.h"
#include "job/job_internal.h"

/*
 * run_student: the grading container asks, through the runner's socket, for
 * a student container of its own (spec CONTAINER_PROTOCOL §5.3). Every
 * request gets exactly one run_student_retval: the container's exit code,
 * 252 (memory), 253 (time) or 254 (refused, or Docker failed it); a request
 * that got a container also gets run_student_started first.
 */

static const char *const refusal_text[] = {
    [REFUSE_NONE] = "",
    [REFUSE_DUPLICATE] = "its socket id is already in use",
    [REFUSE_ENDING] = "the job is ending",
    [REFUSE_AT_ONCE] = "too many student containers at once",
    [REFUSE_TOTAL] = "too many student containers for one job",
};

static bool socket_id_is_safe(const char *s)
{
    if (!*s || strlen(s) > 64)
        return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '_' && *s != '-' && *s != '.')
            return false;
    return true;
}

static const char *msg_str(const struct value *m, const char *key)
{
    const struct value *v = value_map_get(m, key);
    return v && v->type == VALUE_STR ? v->u.s.ptr : NULL;
}

static int msg_int(const struct value *m, const char *key, int64_t *out)
{
    const struct value *v = value_map_get(m, key);
    if (!v || v->type == VALUE_NIL) {
        *out = 0;
        return 0;
    }
    if (v->type != VALUE_INT)
        return -EINVAL;
    *out = v->u.i;
    return 0;
}

static void student_send(struct student *s, const char *type, const char *key, const char *str,
                         int64_t num)
{
    struct value msg;
    value_set_map(&msg);
    value_set_str(value_map_put(&msg, "type"), type);
    value_set_str(value_map_put(&msg, "socket_id"), s->socket_id);
    if (str)
        value_set_str(value_map_put(&msg, key), str);
    else
        value_set_int(value_map_put(&msg, key), num);
    if (job_send(s->job, &msg))
        log_debug(LOG_JOB, "job %s: could not send %s", s->job->id, type);
    value_deinit(&msg);
}

static void student_reply(struct student *s, int retval)
{
    if (s->replied)
        return;
    s->replied = true;
    student_send(s, WIRE_MSG_RUN_STUDENT_RETVAL, "retval", NULL, retval);
    log_info(LOG_JOB, "job %s: student container %s returned %d", s->job->id, s->socket_id, retval);
}

static void student_free(struct student *s)
{
    ct_deinit(&s->ct);
    if (s->ssh_port)
        agent_ports_give(s->job->host->agent, &s->ssh_port, 1);
    if (s->link && unlink(s->link) < 0 && errno != ENOENT)
        log_warn(LOG_JOB, "job %s: cannot remove %s: %s", s->job->id, s->link, strerror(errno));
    free(s->link);
    free(s->socket_id);
    free(s);
}

/** Unlinks and frees s; the job may be finished then (the caller returns right after). */
static void student_drop(struct student *s)
{
    struct job *j = s->job;
    for (struct student **pp = &j->students; *pp; pp = &(*pp)->next) {
        if (*pp == s) {
            *pp = s->next;
            break;
        }
    }
    student_free(s);
    job_maybe_finished(j);
}

/* ---- the container's life (container.h calls these) ------------------------- */

static void on_ready(struct container *c, void *data)
{
    struct student *s = data;
    student_send(s, WIRE_MSG_RUN_STUDENT_STARTED, "container_id", c->id, 0);
    ct_start(c);
}

static void on_ended(struct container *c, void *data)
{
    struct student *s = data;
    int retval;
    switch (c->outcome) {
    case CT_OUT_EXIT:
        retval = c->exit_code;
        break;
    case CT_OUT_OVERFLOW:
        retval = WIRE_RET_MEMORY;
        break;
    case CT_OUT_TIMEOUT:
        retval = WIRE_RET_TIMEOUT;
        break;
    default:
        retval = WIRE_RET_ERROR;
        break;
    }
    student_reply(s, retval);
    if (ct_remove(c))
        student_drop(s);
}

static void on_gone(struct container *c, void *data)
{
    PROCTOR_UNUSED(c);
    student_drop(data);
}

static const struct ct_ops student_ops = {.ready = on_ready, .ended = on_ended, .gone = on_gone};

/* ---- requests ------------------------------------------------------------------ */

/**
 * Why a well-formed request cannot have a container now (REFUSE_NONE: it can):
 * the job's caps (chosen by hardening.lua within the C caps), a socket id
 * already in use, or a job that is ending. Counted before the request joins
 * j->students.
 */
static enum student_refusal student_over_cap(const struct job *j, const char *sid)
{
    size_t alive = 0;
    for (const struct student *o = j->students; o; o = o->next) {
        // Until Docker confirms its removal, a container counts as alive.
        alive++;
        if (!o->replied && !strcmp(o->socket_id, sid))
            return REFUSE_DUPLICATE;
    }
    if (j->reason || j->phase != JOB_RUNNING || j->grading->exited)
        return REFUSE_ENDING;
    if ((int64_t)alive >= j->hard.max_students)
        return REFUSE_AT_ONCE;
    if ((int64_t)j->students_started >= j->hard.max_students_total)
        return REFUSE_TOTAL;
    return REFUSE_NONE;
}

/** Creates the student container for a request that passed every check. 0 or -errno. */
static int student_create(struct student *s, const struct env *env, const char *envname, bool ssh,
                          bool share_network)
{
    struct job *j = s->job;
    const struct job_host *h = j->host;
    char reason[POLICY_REASON_MAX] = "";
    int ret = job_dir_link_socket(j, s->socket_id, j->students_started, &s->link);
    if (ret) {
        log_warn(LOG_JOB, "job %s: run_student refused: /sockets/%s.sock is not a socket (%s)%s",
                 j->id, s->socket_id, strerror(-ret),
                 ret == -EPERM && geteuid() != 0 ? "; proctord must run as root to link it" : "");
        return ret;
    }
    struct policy_hardening hard = {0};
    struct policy_hardening_req hreq = {.environment = envname,
                                        .student = true,
                                        .memory_mib = s->limits.memory_mib,
                                        .network = ssh};
    if (policy_hardening(h->policy, &hreq, &hard, reason, sizeof reason)) {
        log_info(LOG_JOB, "job %s: run_student refused by policy: %s", j->id, reason);
        return -EPERM;
    }
    AUTO_FREE char *netmode = ssh             ? xstrdup("bridge")
                              : share_network ? xasprintf("container:%s", j->grading->id)
                                              : xstrdup("none");
    // 0.9.x's intern (agent_version 3) needs its runtime and its parent's
    // environment type to choose its mode; HEAD's takes no argument.
    const char *cmd[] = {"_run_student_intern", NULL, NULL, NULL};
    if (env->agent_version == 3) {
        cmd[1] = env->runtime;
        cmd[2] = j->envtype;
    }
    struct docker_port_binding pb = {.container_port = 22, .host_port = s->ssh_port};
    char **binds = job_dir_student_binds(j, s->link);
    AUTO_FREE char *name = xasprintf("job %s: student %s", j->id, s->socket_id);
    ct_init(&s->ct, h, name, j->started_ms, &student_ops, s);
    struct ct_spec spec = {
        .image = env->image_id,
        .runtime = env->runtime,
        .cmd = cmd,
        .role = "student",
        .job_id = j->id,
        .memory_mib = s->limits.memory_mib,
        .time_s = s->limits.time_s,
        .hard_time_s = s->limits.hard_time_s,
        .hard = &hard,
        .network_mode = netmode,
        .binds = (const char *const *)binds,
        .ports = ssh ? &pb : NULL,
        .nports = ssh ? 1 : 0,
    };
    ret = ct_create(&s->ct, &spec);
    job_dir_binds_free(binds);
    return ret;
}

void student_request(struct job *j, const struct value *m)
{
    const struct job_host *h = j->host;
    const char *sid = msg_str(m, "socket_id");
    enum student_refusal over = sid ? student_over_cap(j, sid) : REFUSE_NONE;
    struct student *s = xcalloc(1, sizeof *s);
    s->job = j;
    s->socket_id = xstrdup(sid ? sid : "");
    char reason[POLICY_REASON_MAX] = "";
    const struct value *envv = value_map_get(m, "environment");
    const char *envname = envv && envv->type == VALUE_STR ? envv->u.s.ptr : j->envname;
    struct policy_student_req req = {.parent_time_s = j->limits.time_s,
                                     .parent_hard_time_s = j->limits.hard_time_s,
                                     .parent_memory_mib = j->limits.memory_mib,
                                     .environment = envname};
    bool ssh = job_truthy(value_map_get(m, "ssh"));
    bool root = job_truthy(value_map_get(m, "run_as_root"));
    const struct env *env = agent_env_find(h->agent, j->envtype, envname);
    int ret = 0;
    bool crash_job = false;
    // Upstream hangs the requester on a malformed request; we answer 254.
    if (!sid || !socket_id_is_safe(sid) || msg_int(m, "time_limit", &req.time_s) ||
        msg_int(m, "hard_time_limit", &req.hard_time_s) ||
        msg_int(m, "memory_limit", &req.memory_mib)) {
        log_warn(LOG_JOB, "job %s: malformed run_student request", j->id);
        ret = -EINVAL;
    } else if (over) {
        // A hostile grader can repeat this for ever: log each kind once, count all.
        j->students_refused++;
        if (!(j->refusals_logged & (1u << over)))
            log_warn(LOG_JOB,
                     "job %s: run_student refused: %s (at most %lld at once, %lld in all); "
                     "further refusals of this kind are only counted",
                     j->id, refusal_text[over], (long long)j->hard.max_students,
                     (long long)j->hard.max_students_total);
        j->refusals_logged |= 1u << over;
        ret = -EBUSY;
    } else if (ssh && !(j->limits.network && strstr(j->envtype, "ssh") && h->ssh)) {
        crash_job = true;
        ret = -EPERM;
    } else if (root || !env) {
        log_info(LOG_JOB, "job %s: run_student refused (%s)", j->id,
                 root ? "run_as_root" : "unknown environment");
        ret = -EPERM;
    } else if (policy_student_limits(h->policy, &req, &s->limits, reason, sizeof reason)) {
        log_info(LOG_JOB, "job %s: run_student refused by policy: %s", j->id, reason);
        ret = -EPERM;
    } else if (ssh && agent_ports_take(h->agent, j->id, 1, &s->ssh_port, reason, sizeof reason)) {
        ret = -EPERM;
    }
    if (!ret) {
        j->students_started++;
        ret = student_create(s, env, envname, ssh, job_truthy(value_map_get(m, "share_network")));
    }
    if (ret) {
        student_reply(s, WIRE_RET_ERROR);
        student_free(s);
        if (crash_job)
            job_fail(j, REASON_CRASH, TXT_SSH_STUDENT);
        return;
    }
    s->next = j->students;
    j->students = s;
}

struct student *student_by_container(struct job *j, const char *id)
{
    for (struct student *s = j->students; s; s = s->next)
        if (s->ct.id && id && !strcmp(s->ct.id, id))
            return s;
    return NULL;
}

void students_remove_all(struct job *j)
{
    struct student **pp = &j->students;
    while (*pp) {
        struct student *s = *pp;
        if (ct_remove(&s->ct)) {
            *pp = s->next;
            student_free(s);
        } else {
            pp = &s->next;
        }
    }
}

void students_free(struct job *j)
{
    while (j->students) {
        struct student *s = j->students;
        j->students = s->next;
        student_free(s);
    }
}
