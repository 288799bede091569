#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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
 *
 * Students ahead: a task that asked for student containers in its last job
 * will likely ask again. When the student environment's image carries
 * proctor's runtime (org.proctor.runtime), whose intern can wait for its
 * parent's socket at /__parent.d (an empty, read-only, agent-owned
 * directory) instead of finding it at /__parent.sock, one such container is
 * created and started (parked) while the grading container runs, or with a
 * pooled grading container (pool.c, its student part). A plain request (no
 * ssh, no shared network) whose environment, memory and hardening are the
 * ones it was made with takes it: the agent links the requester's socket
 * into that directory (the intern connects), claims it (its limits count
 * from then on) and answers run_student_started. Anything else goes cold, as
 * before; so does a request whose container died before it was claimed.
 * INGInious's own intern connects to /__parent.sock as it starts, a path
 * the request alone names: for its images nothing can be started ahead.
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
        log_warn(LOG_JOB, "%s: cannot remove %s: %s", s->job ? s->job->id : "pool", s->link,
                 strerror(errno));
    free(s->link);
    free(s->socket_id);
    free(s->rdv);
    free(s->envname);
    free(s->image_id);
    free(s->runtime);
    free(s);
}

static void student_unlink(struct job *j, struct student *s)
{
    for (struct student **pp = &j->students; *pp; pp = &(*pp)->next) {
        if (*pp == s) {
            *pp = s->next;
            return;
        }
    }
}

/** Unlinks and frees s; the job may be finished then (the caller returns right after). */
static void student_drop(struct student *s)
{
    struct job *j = s->job;
    student_unlink(j, s);
    student_free(s);
    student_ahead(j); /* room again for one ahead, if the task asks for more */
    job_maybe_finished(j);
}

/* ---- the container's life (container.h calls these) ------------------------- */

static void on_ready(struct container *c, void *data)
{
    struct student *s = data;
    if (!s->ahead)
        student_send(s, WIRE_MSG_RUN_STUDENT_STARTED, "container_id", c->id, 0);
    ct_start(c); /* ahead: parks once started (ct_spec.park) */
}

static void ahead_claim(struct student *s);
static void ahead_fallback(struct student *s);
static int student_create(struct student *s, const struct env *env, const char *envname, bool ssh,
                          bool share_network);

static void on_parked(struct container *c, void *data)
{
    PROCTOR_UNUSED(c);
    struct student *s = data;
    if (s->claim_on_park) {
        s->claim_on_park = false;
        ahead_claim(s);
    }
}

static void on_ended(struct container *c, void *data)
{
    struct student *s = data;
    if (s->ahead && (!s->taken || s->claim_on_park)) {
        // Ended before any claim (it died, or never started): never handed out.
        log_info(LOG_JOB, "job %s: a student container started ahead ended unused (%s)", s->job->id,
                 c->ran ? "it died" : "it never started");
        if (s->taken)
            ahead_fallback(s);
        else
            s->job->ahead_off = true; /* no loop of containers that die waiting */
        s->replied = true;            /* its request, if any, is another record's now */
        if (ct_remove(c))
            student_drop(s);
        return;
    }
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

static const struct ct_ops student_ops = {
    .ready = on_ready, .parked = on_parked, .ended = on_ended, .gone = on_gone};

/* ---- students ahead ------------------------------------------------------------- */

#define STUDENT_MEMORY_MAX 256 /* tasks remembered (the least recently seen goes) */

/** Per task: its last plain request (environment, memory), and how many its last job made. */
struct student_seen {
    char *course, *task, *envname;
    int64_t memory_mib; /* as the limits policy answered */
    size_t calls;
    uint64_t seen_ms;
};

struct student_memory {
    struct student_seen seen[STUDENT_MEMORY_MAX];
    size_t n;
};

struct student_memory *student_memory_new(void)
{
    return xcalloc(1, sizeof(struct student_memory));
}

void student_memory_free(struct student_memory *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->n; i++) {
        free(m->seen[i].course);
        free(m->seen[i].task);
        free(m->seen[i].envname);
    }
    free(m);
}

static struct student_seen *memory_find(struct student_memory *m, const char *course,
                                        const char *task)
{
    for (size_t i = 0; i < m->n; i++)
        if (!strcmp(m->seen[i].course, course) && !strcmp(m->seen[i].task, task))
            return &m->seen[i];
    return NULL;
}

/** The n-th plain request of a job of course/task (n from 1) got envname, memory_mib. */
static void memory_note(struct student_memory *m, const char *course, const char *task,
                        const char *envname, int64_t memory_mib, size_t n)
{
    struct student_seen *e = memory_find(m, course, task);
    if (!e) {
        if (m->n < STUDENT_MEMORY_MAX) {
            e = &m->seen[m->n++];
        } else {
            e = &m->seen[0];
            for (size_t i = 1; i < m->n; i++)
                if (m->seen[i].seen_ms < e->seen_ms)
                    e = &m->seen[i];
            free(e->course);
            free(e->task);
            free(e->envname);
        }
        *e = (struct student_seen){.course = xstrdup(course), .task = xstrdup(task)};
    }
    if (!e->envname || strcmp(e->envname, envname)) {
        free(e->envname);
        e->envname = xstrdup(envname);
    }
    e->memory_mib = memory_mib;
    e->calls = n > e->calls ? n : e->calls; /* students_job_done sets the job's own count */
    e->seen_ms = util_now_ms();
}

const char *student_memory_recall(struct student_memory *m, const char *course, const char *task,
                                  size_t *calls, int64_t *memory_mib)
{
    const struct student_seen *e = m && course && task ? memory_find(m, course, task) : NULL;
    *calls = e ? e->calls : 0;
    *memory_mib = e ? e->memory_mib : 0;
    return e ? e->envname : NULL;
}

/** Hardening of a student container of envname with this memory. 0 or -errno. */
static int student_hardening(const struct job_host *h, const char *envname, int64_t memory_mib,
                             bool network, struct policy_hardening *out, char *reason,
                             size_t reasonlen)
{
    struct policy_hardening_req hreq = {
        .environment = envname, .student = true, .memory_mib = memory_mib, .network = network};
    return policy_hardening(h->policy, &hreq, out, reason, reasonlen);
}

static unsigned ahead_serial; /* J/links/ahead-<n>: unique in the process */

/**
 * Creates a student container ahead of its request, parked (it waits for its
 * socket at /__parent.d): in job directory `dir`, labelled `label` and `role`, for
 * envtype/envname (image `env`) with `memory_mib`. The record is ct_init'ed
 * with ops/data. 0, or -errno (nothing to remove).
 */
static int ahead_create(struct student *s, const struct job_host *h, const char *dir,
                        const char *label, const char *role, const char *envtype,
                        const char *envname, const struct env *env, int64_t memory_mib,
                        const char *name, const struct ct_ops *ops, void *data)
{
    char reason[POLICY_REASON_MAX] = "";
    s->ahead = true;
    s->envname = xstrdup(envname);
    s->image_id = xstrdup(env->image_id);
    s->runtime = xstrdup(env->runtime);
    s->limits.memory_mib = memory_mib;
    ct_init(&s->ct, h, name, util_now_ms(), ops, data);
    if (!env->ahead_ok || memory_mib <= 0 ||
        student_hardening(h, envname, memory_mib, false, &s->hard, reason, sizeof reason))
        return -EPERM;
    s->rdv = xasprintf("%s/links/ahead-%u", dir, ++ahead_serial);
    // chmod: mkdir's mode goes through the umask.
    if (mkdir(s->rdv, 0755) < 0 || chmod(s->rdv, 0755) < 0) {
        int err = -errno;
        log_warn(LOG_JOB, "%s: cannot make %s: %s", name, s->rdv, strerror(errno));
        return err;
    }
    const char *cmd[] = {"_run_student_intern", NULL, NULL, NULL};
    if (env->agent_version == 3) {
        cmd[1] = env->runtime;
        cmd[2] = envtype;
    }
    char **binds = job_dir_student_binds(dir, s->rdv, true);
    struct ct_spec spec = {
        .image = env->image_id,
        .runtime = env->runtime,
        .cmd = cmd,
        .role = role,
        .job_id = label,
        .memory_mib = memory_mib,
        .hard = &s->hard,
        .network_mode = "none",
        .binds = (const char *const *)binds,
        .park = true,
    };
    int ret = ct_create(&s->ct, &spec);
    job_dir_binds_free(binds);
    return ret;
}

/** The requested ones alive; *ahead: the one waiting for a request, if any. */
static size_t students_alive(const struct job *j, struct student **ahead)
{
    size_t alive = 0;
    *ahead = NULL;
    for (struct student *o = j->students; o; o = o->next) {
        if (o->socket_id)
            alive++;
        else if (!*ahead && !o->dropped)
            *ahead = o;
    }
    return alive;
}

void students_job_done(struct job *j)
{
    struct student_seen *e = j->host->students_seen && j->course_id && j->task_id
                                 ? memory_find(j->host->students_seen, j->course_id, j->task_id)
                                 : NULL;
    if (e && j->students_started)
        e->calls = j->students_started; /* how many the last job that asked any asked */
}

void student_ahead(struct job *j)
{
    const struct job_host *h = j->host;
    size_t calls;
    int64_t memory_mib;
    struct student *waiting;
    const char *envname =
        student_memory_recall(h->students_seen, j->course_id, j->task_id, &calls, &memory_mib);
    size_t alive = students_alive(j, &waiting);
    if (!envname || waiting || j->ahead_off || calls <= j->students_started || j->reason ||
        j->phase != JOB_RUNNING || j->grading->exited || (int64_t)alive >= j->hard.max_students ||
        (int64_t)j->students_started >= j->hard.max_students_total)
        return;
    const struct env *env = agent_env_find(h->agent, j->envtype, envname);
    if (!env || !env->ahead_ok)
        return;
    struct student *s = xcalloc(1, sizeof *s);
    s->job = j;
    AUTO_FREE char *name = xasprintf("job %s: student (ahead)", j->id);
    if (ahead_create(s, h, j->dir, j->id, "student", j->envtype, envname, env, memory_mib, name,
                     &student_ops, s)) {
        student_free(s);
        return;
    }
    s->next = j->students;
    j->students = s;
}

void students_ahead_drop(struct job *j)
{
    struct student **pp = &j->students;
    while (*pp) {
        struct student *s = *pp;
        if (s->ahead && !s->taken && !s->dropped && ct_remove(&s->ct)) {
            *pp = s->next;
            student_free(s);
        } else {
            s->dropped |= s->ahead && !s->taken;
            pp = &s->next;
        }
    }
}

/** A taken ahead container: its limits count from now, the requester hears of it. */
static void ahead_claim(struct student *s)
{
    if (ct_claim(&s->ct, s->limits.time_s, s->limits.hard_time_s)) {
        s->claim_on_park = true; /* it ended meanwhile: on_ended falls back */
        return;
    }
    log_info(LOG_JOB, "job %s: student container %s: %.12s started (ahead)", s->job->id,
             s->socket_id, s->ct.id);
    student_send(s, WIRE_MSG_RUN_STUDENT_STARTED, "container_id", s->ct.id, 0);
}

/** A taken ahead container ended before its claim: the request gets a cold one. */
static void ahead_fallback(struct student *a)
{
    struct job *j = a->job;
    const struct env *env = agent_env_find(j->host->agent, j->envtype, a->envname);
    struct student *s = xcalloc(1, sizeof *s);
    s->job = j;
    s->socket_id = xstrdup(a->socket_id);
    s->limits = a->limits;
    a->claim_on_park = false;
    if (j->reason || j->phase != JOB_RUNNING || !env ||
        student_create(s, env, a->envname, false, false)) {
        student_reply(s, WIRE_RET_ERROR);
        student_free(s);
        return;
    }
    log_info(LOG_JOB, "job %s: student container %s: starting cold", j->id, s->socket_id);
    s->next = j->students;
    j->students = s;
}

/**
 * Gives request s the job's waiting ahead container when it fits: true when
 * it did (s is freed then). A waiting one that does not fit is removed.
 */
static bool ahead_take(struct job *j, struct student *s, const struct env *env, const char *envname)
{
    struct student *a;
    students_alive(j, &a);
    if (!a)
        return false;
    char reason[POLICY_REASON_MAX];
    struct policy_hardening hard;
    bool fits = !a->ct.exited && a->ct.outcome == CT_OUT_NONE && a->ct.phase >= CT_CREATING &&
                a->ct.phase <= CT_PARKED && !strcmp(a->envname, envname) &&
                !strcmp(a->image_id, env->image_id) && !strcmp(a->runtime, env->runtime) &&
                a->limits.memory_mib == s->limits.memory_mib &&
                !student_hardening(j->host, envname, s->limits.memory_mib, false, &hard, reason,
                                   sizeof reason) &&
                pool_same_hardening(&hard, &a->hard) && hard.pids_limit == a->hard.pids_limit;
    if (!fits) {
        log_info(LOG_JOB, "job %s: the student container started ahead does not fit the request",
                 j->id);
        a->dropped = true;
        if (ct_remove(&a->ct)) {
            student_unlink(j, a);
            student_free(a);
        }
        return false;
    }
    char *link = xasprintf("%s/parent.sock", a->rdv);
    if (job_dir_link_socket_at(j->dir, s->socket_id, link)) {
        free(link);
        return false; /* the cold way says why */
    }
    a->link = link;
    a->taken = true;
    a->socket_id = s->socket_id;
    s->socket_id = NULL;
    a->limits = s->limits;
    student_free(s);
    AUTO_FREE char *name = xasprintf("job %s: student %s", j->id, a->socket_id);
    ct_adopt(&a->ct, "student", name, a->ct.t0, &student_ops, a);
    if (a->ct.phase == CT_PARKED)
        ahead_claim(a);
    else
        a->claim_on_park = true;
    return true;
}

void student_part_adopt(struct job *j, struct student *s)
{
    size_t calls;
    int64_t memory_mib;
    const char *envname = student_memory_recall(j->host->students_seen, j->course_id, j->task_id,
                                                &calls, &memory_mib);
    s->job = j;
    AUTO_FREE char *name = xasprintf("job %s: student (ahead)", j->id);
    ct_adopt(&s->ct, "student", name, j->started_ms, &student_ops, s);
    log_info(LOG_JOB, "%s: container %.12s from the pool", name, s->ct.id ? s->ct.id : "-");
    s->next = j->students;
    j->students = s;
    // Made for the environment's tasks that used students: this one may not.
    if (!envname || strcmp(envname, s->envname) || s->limits.memory_mib != memory_mib)
        students_ahead_drop(j);
}

struct student *student_part_new(const struct job_host *h, const char *dir, const char *label,
                                 const char *envtype, const char *envname, const struct env *env,
                                 int64_t memory_mib, const struct ct_ops *ops, void *data)
{
    struct student *s = xcalloc(1, sizeof *s);
    AUTO_FREE char *name = xasprintf("pool %s: student", label);
    // Labelled as the pool's (org.proctor.role=pool) like the container it goes with.
    if (ahead_create(s, h, dir, label, "pool", envtype, envname, env, memory_mib, name, ops,
                     data)) {
        student_free(s);
        return NULL;
    }
    return s;
}

struct container *student_part_container(struct student *s)
{
    return &s->ct;
}

const char *student_part_envname(const struct student *s)
{
    return s->envname;
}

bool student_part_is(const struct student *s, const struct env *env)
{
    return !strcmp(s->image_id, env->image_id) && !strcmp(s->runtime, env->runtime);
}

void student_part_free(struct student *s)
{
    if (s)
        student_free(s);
}

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
        if (!o->socket_id)
            continue; /* started ahead, not taken: the agent's, not the grader's */
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
    int ret = job_dir_link_socket(j, s->socket_id, ++j->links_made, &s->link);
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
    char **binds = job_dir_student_binds(j->dir, s->link, false);
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
    bool share = job_truthy(value_map_get(m, "share_network"));
    if (!ret) {
        j->students_started++;
        if (h->students_seen && !ssh && !share) {
            if (j->course_id && j->task_id)
                memory_note(h->students_seen, j->course_id, j->task_id, envname,
                            s->limits.memory_mib, j->students_started);
            if (h->pool && env->ahead_ok && !j->nports && !j->limits.network)
                pool_note_student(h->pool, j->envtype, j->envname, envname, s->limits.memory_mib);
            if (ahead_take(j, s, env, envname)) {
                student_ahead(j); /* for the next request */
                return;
            }
        }
        ret = student_create(s, env, envname, ssh, share);
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
