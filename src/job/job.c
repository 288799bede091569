#include "job/job.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log.h"
#include "core/util.h"
#include "core/worker.h"
#include "docker/docker_attach.h"
#include "docker/docker_stream.h"

// User-visible texts: the exact strings INGInious's agent sends, so students
// and admins see what they know (spec BACKEND_PROTOCOL §4.3, CONTAINER §5.1).
#define TXT_ENV_UNAVAILABLE                                                                        \
    "This environment is not available in this agent. Please contact your course administrator."
#define TXT_TASK_UNAVAILABLE                                                                       \
    "Task unavailable on agent. Please retry later, the agents should synchronize soon. If the "   \
    "error persists, please contact your course administrator."
#define TXT_BAD_PARAMS "The agent is unable to parse the parameters"
#define TXT_CANNOT_CREATE "Cannot create container."
#define TXT_CANNOT_START "Cannot start container"
#define TXT_UNKNOWN_ERROR                                                                          \
    "An unknown error occurred in the agent. Please contact your course administrator."
#define TXT_UNREADABLE "The grader did not return a readable output : "
#define TXT_SSH_STUDENT                                                                            \
    "ssh for student requires to allow ssh and internet access in the task environment "           \
    "configuration tab!"
#define TXT_SSH_FOREIGN "Trying to connect with ssh to a non-children student container !"

// After the container died, its attach stream normally ends at once; do not
// wait for it forever if Docker keeps it open.
#define STREAM_GRACE_MS 3000
#define CPU_POLL_MS 500
#define STDERR_LOG_MAX 4096
#define JOB_BAD_MSG_LOGS 3
#define JOB_WAIT_RETRIES 10

enum job_reason {
    REASON_NONE,
    REASON_KILLED,
    REASON_TIMEOUT,
    REASON_OVERFLOW,
    REASON_CRASH, /* crash_text says why */
};

struct student {
    struct job *job;
    struct student *next;
    char *socket_id;
    char *container_id;
    char *link; /* J/links/<n>.sock: the requester's socket, bound as /__parent.sock */
    struct policy_student_limits limits;
    uint16_t ssh_port;           /* 0 = none */
    struct docker_req *req;      /* create/start/inspect/remove in flight */
    struct docker_req *wait_req; /* death notification */
    struct docker_req *cpu_req;  /* stats stream when cgroups are not readable */
    struct docker_req *kill_req;
    uint64_t wall_timer, cpu_timer;
    enum job_reason reason;
    bool exited, inspected, replied, removing;
    int exit_code;
};

struct job {
    struct agent *agent;
    struct job *next;
    char *id;
    char *course_id, *task_id; /* NULL for a taskless job */
    char *envtype, *envname;
    enum backend_debug debug;
    struct value inputdata;
    char *prev_state;
    struct env env; /* copy: discovery may replace the agent's table meanwhile */
    struct policy_limits limits;
    struct policy_hardening hard;
    char *run_cmd;
    uint16_t ports_host[POLICY_MAX_PORTS];
    uint16_t ports_cont[POLICY_MAX_PORTS];
    size_t nports;
    char *dir;                    /* job directory on the host */
    struct worker_task *dir_task; /* filling it, on the worker thread */

    char *container_id;
    struct docker_req *req;      /* create/start/inspect in flight */
    struct docker_req *wait_req; /* death notification */
    struct docker_req *cpu_req;
    struct docker_req *kill_req;
    struct docker_attach *attach;
    struct msg_framer framer;
    uint64_t wall_timer, cpu_timer, grace_timer, retry_timer;
    unsigned wait_retries;
    uint64_t started_ms; /* BackendNewJob received */
    /* phase timings (ms since started_ms, 0 = not reached), logged at the end */
    uint64_t t_created, t_attached, t_running, t_exited;
    size_t output_bytes, stderr_logged;
    uint64_t bad_msgs; /* malformed container messages skipped */

    struct value result; /* last `result` the container sent (NIL = none) */
    bool has_result;
    bool ssh_sent;
    enum job_reason reason;
    char *crash_text;
    bool started, exited, stream_closed, oom_checked, reported, abandoned, cleaning;
    size_t pending_removals;
    struct student *students;
    size_t students_started;  /* student containers asked of Docker so far */
    size_t students_refused;  /* requests over a cap */
    unsigned refusals_logged; /* bit per enum student_refusal already logged */
};

static void job_step(struct job *j);
static void student_step(struct student *s);

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

/* ---- small helpers -------------------------------------------------------- */

static void job_set_reason(struct job *j, enum job_reason r, const char *text)
{
    // The first reason wins: a kill after a timeout is still a timeout.
    if (j->reason != REASON_NONE)
        return;
    j->reason = r;
    if (r == REASON_CRASH)
        j->crash_text = xstrdup(text ? text : TXT_UNKNOWN_ERROR);
}

static void on_killed(int status, const char *err, void *data)
{
    struct job *j = data;
    j->kill_req = NULL;
    // 404/409: the container is already gone or not running; that is fine.
    if (status && status != 404 && status != 409)
        log_warn(LOG_JOB, "job %s: kill of %.12s failed: %s", j->id, j->container_id,
                 err ? err : strerror(-status));
}

static void job_kill_container(struct job *j)
{
    if (!j->container_id || j->exited || j->kill_req)
        return;
    j->kill_req = docker_container_kill(j->agent->docker, j->container_id, "SIGKILL", on_killed, j);
}

/** Ends the job with a reason and stops its container. */
static void job_fail(struct job *j, enum job_reason r, const char *text)
{
    job_set_reason(j, r, text);
    job_kill_container(j);
    job_step(j);
}

static bool id_is_safe(const char *s)
{
    // Upstream refuses absolute paths, "..", and surrounding whitespace.
    size_t n = strlen(s);
    return n && s[0] != '/' && !strstr(s, "..") && !isspace((unsigned char)s[0]) &&
           !isspace((unsigned char)s[n - 1]);
}

static bool socket_id_is_safe(const char *s)
{
    if (!*s || strlen(s) > 64)
        return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '_' && *s != '-' && *s != '.')
            return false;
    return true;
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

static bool truthy(const struct value *v)
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
    req->network_grading = truthy(value_map_get(params, "network_grading"));
    const struct value *cmd = value_map_get(params, "run_cmd");
    if (!ret && cmd && cmd->type == VALUE_STR && cmd->u.s.len)
        j->run_cmd = xstrdup(cmd->u.s.ptr);
    else if (!ret && cmd && cmd->type != VALUE_NIL && cmd->type != VALUE_STR)
        ret = -EINVAL;
    return ret;
}

static int base64_decode(const char *in, size_t n, char **out, size_t *outlen)
{
    static const signed char map[256] = {
        ['A'] = 1,  ['B'] = 2,  ['C'] = 3,  ['D'] = 4,  ['E'] = 5,  ['F'] = 6,  ['G'] = 7,
        ['H'] = 8,  ['I'] = 9,  ['J'] = 10, ['K'] = 11, ['L'] = 12, ['M'] = 13, ['N'] = 14,
        ['O'] = 15, ['P'] = 16, ['Q'] = 17, ['R'] = 18, ['S'] = 19, ['T'] = 20, ['U'] = 21,
        ['V'] = 22, ['W'] = 23, ['X'] = 24, ['Y'] = 25, ['Z'] = 26, ['a'] = 27, ['b'] = 28,
        ['c'] = 29, ['d'] = 30, ['e'] = 31, ['f'] = 32, ['g'] = 33, ['h'] = 34, ['i'] = 35,
        ['j'] = 36, ['k'] = 37, ['l'] = 38, ['m'] = 39, ['n'] = 40, ['o'] = 41, ['p'] = 42,
        ['q'] = 43, ['r'] = 44, ['s'] = 45, ['t'] = 46, ['u'] = 47, ['v'] = 48, ['w'] = 49,
        ['x'] = 50, ['y'] = 51, ['z'] = 52, ['0'] = 53, ['1'] = 54, ['2'] = 55, ['3'] = 56,
        ['4'] = 57, ['5'] = 58, ['6'] = 59, ['7'] = 60, ['8'] = 61, ['9'] = 62, ['+'] = 63,
        ['/'] = 64,
    }; /* value + 1; 0 = not in the alphabet */
    char *p = try_malloc(n / 4 * 3 + 4);
    if (!p)
        return -ENOMEM;
    size_t o = 0, q = 0, pad = 0;
    uint32_t acc = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c == '\n' || c == '\r')
            continue;
        if (c == '=') {
            pad++;
            continue;
        }
        if (pad || !map[c]) {
            free(p);
            return -EINVAL;
        }
        acc = acc << 6 | (uint32_t)(map[c] - 1);
        if (++q == 4) {
            p[o++] = (char)(acc >> 16);
            p[o++] = (char)(acc >> 8);
            p[o++] = (char)acc;
            q = 0;
            acc = 0;
        }
    }
    if (q == 1 || pad > 2 || (q && q + pad != 4 && pad)) {
        free(p);
        return -EINVAL;
    }
    if (q == 2) {
        p[o++] = (char)(acc >> 4);
    } else if (q == 3) {
        p[o++] = (char)(acc >> 10);
        p[o++] = (char)(acc >> 2);
    }
    *out = p;
    *outlen = o;
    return 0;
}

/* ---- reporting ------------------------------------------------------------ */

static void report_plain(struct job *j, const char *result, const char *text, bool with_streams)
{
    struct backend_job_done d = {
        .job_id = j->id,
        .result = result,
        .text = text,
        .grade = 0.0,
        .state = j->prev_state,
        .stdout_text = with_streams ? "" : NULL,
        .stderr_text = with_streams ? "" : NULL,
    };
    j->agent->sink.job_done(j->agent->sink.data, &d);
}

/** Takes a STR value's buffer (caller frees) and leaves `true` in its place. */
static char *take_str(struct value *v)
{
    char *p = v->u.s.ptr;
    v->u.s.ptr = NULL;
    value_set_bool(v, true);
    return p;
}

static void report_result(struct job *j)
{
    char reason[POLICY_REASON_MAX] = "";
    // The job ends here: work on its result in place, so that a large
    // output is never held twice.
    struct value *raw = &j->result;
    AUTO_FREE char *archive = NULL;
    size_t archive_len = 0;
    bool archive_bad = false;
    AUTO_FREE char *out_text = NULL, *err_text = NULL;
    if (raw->type == VALUE_MAP) {
        // The C side decodes and bounds these itself; the policy sees `true`.
        struct value *a = (struct value *)value_map_get(raw, "archive");
        if (a && a->type == VALUE_STR) {
            archive_bad = base64_decode(a->u.s.ptr, a->u.s.len, &archive, &archive_len) != 0;
            value_deinit(a);
            value_set_bool(a, true);
        }
        struct value *o = (struct value *)value_map_get(raw, "stdout");
        if (o && o->type == VALUE_STR)
            out_text = take_str(o);
        struct value *e = (struct value *)value_map_get(raw, "stderr");
        if (e && e->type == VALUE_STR)
            err_text = take_str(e);
    }
    struct policy_result pr = {0};
    int ret = policy_results(j->agent->policy, raw, j->prev_state, &pr, reason, sizeof reason);
    if (!ret && raw->type == VALUE_MAP) {
        // Lua tables have no order: give the backend the grader's.
        value_map_order_like(&pr.problems, value_map_get(raw, "problems"));
        value_map_order_like(&pr.tests, value_map_get(raw, "tests"));
        value_map_order_like(&pr.custom, value_map_get(raw, "custom"));
    }
    value_deinit(raw);
    if (ret) {
        AUTO_FREE char *text = xasprintf(TXT_UNREADABLE "%s", reason);
        log_info(LOG_JOB, "job %s: result rejected: %s", j->id, reason);
        report_plain(j, "crash", text, true);
        return;
    }
    AUTO_FREE char *bad = archive_bad ? xasprintf(TXT_UNREADABLE "invalid base64 archive") : NULL;
    struct backend_job_done d = {
        .job_id = j->id,
        .result = archive_bad ? "crash" : pr.result,
        .text = archive_bad ? bad : pr.text,
        .grade = pr.grade,
        .problems = &pr.problems,
        .tests = &pr.tests,
        .custom = &pr.custom,
        .state = pr.state,
        .archive = archive_bad ? NULL : archive,
        .archive_len = archive_len,
        // Upstream always gives the grader's streams, "" when not in debug.
        .stdout_text = out_text ? out_text : "",
        .stderr_text = err_text ? err_text : "",
    };
    log_info(LOG_JOB, "job %s: %s, grade %.2f", j->id, d.result, d.grade);
    j->agent->sink.job_done(j->agent->sink.data, &d);
    policy_result_deinit(&pr);
}

static void job_report(struct job *j)
{
    if (j->reported)
        return;
    j->reported = true;
    // One line per job with where its time went (ms from BackendNewJob).
    log_info(LOG_JOB,
             "job %s: timings created %llu, attached %llu, running %llu, exited %llu, "
             "reported %llu ms",
             j->id, (unsigned long long)j->t_created, (unsigned long long)j->t_attached,
             (unsigned long long)j->t_running, (unsigned long long)j->t_exited,
             (unsigned long long)(util_now_ms() - j->started_ms));
    if (j->bad_msgs > JOB_BAD_MSG_LOGS)
        log_warn(LOG_JOB, "job %s: %llu incorrect messages from the container skipped in all",
                 j->id, (unsigned long long)j->bad_msgs);
    if (j->students_refused)
        log_info(LOG_JOB, "job %s: %zu run_student request(s) refused over its caps in all", j->id,
                 j->students_refused);
    if (j->abandoned)
        return;
    switch (j->reason) {
    case REASON_KILLED:
        log_info(LOG_JOB, "job %s: killed", j->id);
        report_plain(j, "killed", "", true);
        break;
    case REASON_TIMEOUT:
        log_info(LOG_JOB, "job %s: timeout", j->id);
        report_plain(j, "timeout", "", true);
        break;
    case REASON_OVERFLOW:
        log_info(LOG_JOB, "job %s: overflow (memory)", j->id);
        report_plain(j, "overflow", "", true);
        break;
    case REASON_CRASH:
        log_info(LOG_JOB, "job %s: crash: %s", j->id, j->crash_text);
        report_plain(j, "crash", j->crash_text, j->started);
        break;
    case REASON_NONE:
        if (!j->has_result) {
            report_plain(j, "crash", TXT_UNREADABLE "the grading container exited without a result",
                         true);
            log_info(LOG_JOB, "job %s: container exited without a result", j->id);
        } else {
            report_result(j);
        }
        break;
    }
}

/* ---- cleanup -------------------------------------------------------------- */

static void job_release_loop(struct job *j)
{
    struct loop *loop = j->agent->loop;
    loop_timer_del(loop, j->wall_timer);
    loop_timer_del(loop, j->cpu_timer);
    loop_timer_del(loop, j->grace_timer);
    loop_timer_del(loop, j->retry_timer);
    j->wall_timer = j->cpu_timer = j->grace_timer = j->retry_timer = 0;
    docker_req_cancel(j->cpu_req);
    j->cpu_req = NULL;
    if (j->attach) {
        docker_attach_free(j->attach);
        j->attach = NULL;
    }
}

static void student_release(struct student *s)
{
    struct loop *loop = s->job->agent->loop;
    loop_timer_del(loop, s->wall_timer);
    loop_timer_del(loop, s->cpu_timer);
    s->wall_timer = s->cpu_timer = 0;
    docker_req_cancel(s->req);
    docker_req_cancel(s->wait_req);
    docker_req_cancel(s->cpu_req);
    docker_req_cancel(s->kill_req);
    s->req = s->wait_req = s->cpu_req = s->kill_req = NULL;
}

static void student_free(struct student *s)
{
    student_release(s);
    if (s->ssh_port)
        agent_ports_give(s->job->agent, &s->ssh_port, 1);
    if (s->link && unlink(s->link) < 0 && errno != ENOENT)
        log_warn(LOG_JOB, "job %s: cannot remove %s: %s", s->job->id, s->link, strerror(errno));
    free(s->link);
    free(s->socket_id);
    free(s->container_id);
    free(s);
}

static int rmtree_work(void *p)
{
    return util_rmtree(p);
}

void job_free(struct job *j)
{
    if (!j)
        return;
    job_release_loop(j);
    docker_req_cancel(j->req);
    docker_req_cancel(j->wait_req);
    docker_req_cancel(j->kill_req);
    while (j->students) {
        struct student *s = j->students;
        j->students = s->next;
        student_free(s);
    }
    if (j->nports)
        agent_ports_give(j->agent, j->ports_host, j->nports);
    worker_cancel(j->dir_task);
    if (j->dir) {
        // Removed on the worker thread, after any copy still queued there.
        worker_submit(j->agent->worker, rmtree_work, j->dir, free, NULL, NULL);
        j->dir = NULL;
    }
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
    free(j->container_id);
    free(j->dir);
    free(j);
}

static void on_removed(int status, const char *err, void *data)
{
    struct job *j = data;
    if (status && status != 404)
        log_warn(LOG_JOB, "job %s: removing a container failed: %s", j->id,
                 err ? err : strerror(-status));
    if (--j->pending_removals == 0)
        agent_job_finished(j->agent, j);
}

static void job_remove_container(struct job *j, const char *id)
{
    j->pending_removals++;
    if (!docker_container_remove(j->agent->docker, id, true, true, on_removed, j))
        j->pending_removals--;
}

/** Report first (the student waits), then remove containers and the job dir. */
static void job_cleanup(struct job *j)
{
    if (j->cleaning)
        return;
    j->cleaning = true;
    job_report(j);
    job_release_loop(j);
    docker_req_cancel(j->req);
    docker_req_cancel(j->wait_req);
    docker_req_cancel(j->kill_req);
    j->req = j->wait_req = j->kill_req = NULL;
    // Keep the list walk simple: the pending counter guards the free.
    j->pending_removals++;
    for (struct student *s = j->students; s; s = s->next) {
        if (!s->container_id && s->req && !s->removing) {
            // Being created: Docker will finish creating it whatever we do,
            // so keep the request and remove the container when it answers.
            j->pending_removals++;
            continue;
        }
        student_release(s);
        if (s->container_id)
            job_remove_container(j, s->container_id);
    }
    if (j->container_id)
        job_remove_container(j, j->container_id);
    if (--j->pending_removals == 0)
        agent_job_finished(j->agent, j);
}

/* ---- container life ------------------------------------------------------ */

static void on_inspected(int status, const char *err, const struct docker_container_state *st,
                         void *data)
{
    struct job *j = data;
    j->req = NULL;
    j->oom_checked = true;
    if (status)
        log_warn(LOG_JOB, "job %s: inspect failed: %s", j->id, err ? err : strerror(-status));
    else if (st->oom_killed)
        job_set_reason(j, REASON_OVERFLOW, NULL);
    job_step(j);
}

static long on_grace(struct loop *loop, uint64_t id, void *data)
{
    PROCTOR_UNUSED(loop);
    PROCTOR_UNUSED(id);
    struct job *j = data;
    j->grace_timer = 0;
    log_warn(LOG_JOB, "job %s: attach stream still open after the container died; closing it",
             j->id);
    j->stream_closed = true;
    job_step(j);
    return LOOP_NOMORE;
}

/**
 * Advances the job once something happened. The job ends when its container
 * is gone (or never existed) and its output has been read.
 */
static void job_step(struct job *j)
{
    if (j->cleaning)
        return;
    if (j->dir_task || (j->req && !j->container_id))
        return; /* preparing or creating: that callback steps again */
    if (j->container_id) {
        if (!j->exited)
            return;
        if (!j->stream_closed && j->attach) {
            if (!j->grace_timer)
                j->grace_timer = loop_timer_add(j->agent->loop, STREAM_GRACE_MS, on_grace, j);
            return;
        }
        if (j->req)
            return; /* an inspect is in flight */
        if (j->started && j->reason == REASON_NONE && !j->oom_checked && !j->abandoned) {
            j->req = docker_container_inspect(j->agent->docker, j->container_id, on_inspected, j);
            if (j->req)
                return;
        }
    }
    job_cleanup(j);
}

static void on_wait(int status, const char *err, int exit_code, void *data);

static long on_wait_retry(struct loop *loop, uint64_t id, void *data)
{
    PROCTOR_UNUSED(loop);
    PROCTOR_UNUSED(id);
    struct job *j = data;
    j->retry_timer = 0;
    j->wait_req = docker_container_wait(j->agent->docker, j->container_id, on_wait, j);
    if (!j->wait_req)
        on_wait(-EIO, "cannot ask the Docker engine", -1, j);
    return LOOP_NOMORE;
}

static void on_wait(int status, const char *err, int exit_code, void *data)
{
    struct job *j = data;
    j->wait_req = NULL;
    if (status) {
        log_warn(LOG_JOB, "job %s: waiting for the container failed: %s", j->id,
                 err ? err : strerror(-status));
        // Lost the long poll (the engine restarting?): ask again a few times,
        // a second apart, then give up so the job still gets its one result.
        if (status != 404 && j->wait_retries++ < JOB_WAIT_RETRIES) {
            j->retry_timer = loop_timer_add(j->agent->loop, 1000, on_wait_retry, j);
            return;
        }
        j->exited = true;
        job_set_reason(j, REASON_CRASH, TXT_UNKNOWN_ERROR);
        job_step(j);
        return;
    }
    log_debug(LOG_JOB, "job %s: container %.12s exited with %d", j->id, j->container_id, exit_code);
    j->t_exited = util_now_ms() - j->started_ms;
    j->exited = true;
    job_step(j);
}

void job_on_event(struct job *j, const struct docker_event *ev)
{
    bool ours = j->container_id && !strcmp(ev->id, j->container_id);
    if (!strcmp(ev->action, "oom")) {
        if (ours) {
            job_fail(j, REASON_OVERFLOW, NULL);
            return;
        }
        for (struct student *s = j->students; s; s = s->next) {
            if (s->container_id && !strcmp(ev->id, s->container_id) && !s->reason) {
                s->reason = REASON_OVERFLOW;
                student_step(s);
            }
        }
    } else if (!strcmp(ev->action, "die") && ours && !j->exited) {
        // The wait long-poll normally tells first; the event is the backup.
        j->t_exited = util_now_ms() - j->started_ms;
        j->exited = true;
        docker_req_cancel(j->wait_req);
        j->wait_req = NULL;
        job_step(j);
    }
}

static long on_wall(struct loop *loop, uint64_t id, void *data)
{
    PROCTOR_UNUSED(loop);
    PROCTOR_UNUSED(id);
    struct job *j = data;
    j->wall_timer = 0;
    log_info(LOG_JOB, "job %s: wall time limit (%lld s) reached", j->id,
             (long long)j->limits.hard_time_s);
    job_fail(j, REASON_TIMEOUT, NULL);
    return LOOP_NOMORE;
}

static void job_cpu_sample(struct job *j, int64_t ns)
{
    if (ns > j->limits.time_s * 1000000000ll && !j->exited) {
        log_info(LOG_JOB, "job %s: CPU time limit (%lld s) reached", j->id,
                 (long long)j->limits.time_s);
        job_fail(j, REASON_TIMEOUT, NULL);
    }
}

static long on_cpu_poll(struct loop *loop, uint64_t id, void *data)
{
    PROCTOR_UNUSED(loop);
    PROCTOR_UNUSED(id);
    struct job *j = data;
    uint64_t ns;
    if (j->exited || docker_cpu_read_cgroup(j->container_id, &ns))
        return j->exited ? (j->cpu_timer = 0, LOOP_NOMORE) : CPU_POLL_MS;
    job_cpu_sample(j, (int64_t)ns);
    if (j->cleaning || j->reason) {
        j->cpu_timer = 0;
        return LOOP_NOMORE;
    }
    return CPU_POLL_MS;
}

static void on_cpu_stat(int status, const char *err, int64_t total_ns, void *data)
{
    struct job *j = data;
    if (status) {
        // The stats stream ended (container gone) or failed: the wall-clock
        // limit still stands.
        j->cpu_req = NULL;
        if (!j->exited)
            log_warn(LOG_JOB, "job %s: CPU stats stream ended: %s", j->id,
                     err ? err : strerror(-status));
        return;
    }
    job_cpu_sample(j, total_ns);
}

/** Arms the time limits on a started container. */
static void job_watch_time(struct job *j)
{
    struct agent *a = j->agent;
    j->wall_timer = loop_timer_add(a->loop, (long)(j->limits.hard_time_s * 1000), on_wall, j);
    uint64_t ns;
    if (docker_cpu_read_cgroup(j->container_id, &ns) == 0)
        j->cpu_timer = loop_timer_add(a->loop, CPU_POLL_MS, on_cpu_poll, j);
    else
        j->cpu_req = docker_cpu_watch(a->docker, j->container_id, on_cpu_stat, j);
}

/* ---- messages to and from the container ----------------------------------- */

static int job_send(struct job *j, const struct value *msg)
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
        ret = j->attach ? docker_attach_write(j->attach, frame.data, frame.len) : -EPIPE;
    buf_deinit(&frame);
    msgpack_sbuffer_destroy(&sb);
    return ret;
}

static void student_reply_retval(struct student *s, int retval)
{
    if (s->replied)
        return;
    s->replied = true;
    struct value msg;
    value_set_map(&msg);
    value_set_str(value_map_put(&msg, "type"), "run_student_retval");
    value_set_str(value_map_put(&msg, "socket_id"), s->socket_id);
    value_set_int(value_map_put(&msg, "retval"), retval);
    if (job_send(s->job, &msg))
        log_debug(LOG_JOB, "job %s: could not send run_student_retval", s->job->id);
    value_deinit(&msg);
    log_info(LOG_JOB, "job %s: student container %s returned %d", s->job->id, s->socket_id, retval);
}

static void student_unlink(struct student *s)
{
    struct job *j = s->job;
    for (struct student **pp = &j->students; *pp; pp = &(*pp)->next) {
        if (*pp == s) {
            *pp = s->next;
            break;
        }
    }
    student_free(s);
}

static void on_student_removed(int status, const char *err, void *data)
{
    struct student *s = data;
    s->req = NULL;
    if (status && status != 404)
        log_warn(LOG_JOB, "job %s: removing student container failed: %s", s->job->id,
                 err ? err : strerror(-status));
    student_unlink(s);
}

static void on_student_inspected(int status, const char *err,
                                 const struct docker_container_state *st, void *data)
{
    PROCTOR_UNUSED(err);
    struct student *s = data;
    s->req = NULL;
    if (!status && st->oom_killed && !s->reason)
        s->reason = REASON_OVERFLOW;
    student_step(s);
}

static void on_student_killed(int status, const char *err, void *data)
{
    struct student *s = data;
    s->kill_req = NULL;
    if (status && status != 404 && status != 409)
        log_warn(LOG_JOB, "job %s: kill of student container failed: %s", s->job->id,
                 err ? err : strerror(-status));
}

/** Advances a student container: kill it if over a limit, reply once it died, remove it. */
static void student_step(struct student *s)
{
    struct job *j = s->job;
    if (s->reason && !s->exited && s->container_id && !s->kill_req)
        s->kill_req = docker_container_kill(j->agent->docker, s->container_id, "SIGKILL",
                                            on_student_killed, s);
    if (!s->exited || s->req || s->removing)
        return;
    if (!s->inspected && !s->reason && s->container_id) {
        // Learn whether the kernel killed it for memory before replying.
        s->inspected = true;
        s->req =
            docker_container_inspect(j->agent->docker, s->container_id, on_student_inspected, s);
        if (s->req)
            return;
    }
    int retval = s->reason == REASON_OVERFLOW  ? 252
                 : s->reason == REASON_TIMEOUT ? 253
                 : s->reason == REASON_CRASH   ? 254
                                               : s->exit_code;
    student_reply_retval(s, retval);
    student_release(s);
    s->removing = true;
    if (!s->container_id) {
        student_unlink(s);
        return;
    }
    s->req = docker_container_remove(j->agent->docker, s->container_id, true, true,
                                     on_student_removed, s);
    if (!s->req)
        student_unlink(s);
}

static void on_student_wait(int status, const char *err, int exit_code, void *data)
{
    struct student *s = data;
    s->wait_req = NULL;
    if (status) {
        log_warn(LOG_JOB, "job %s: waiting for student container failed: %s", s->job->id,
                 err ? err : strerror(-status));
        if (!s->reason)
            s->reason = REASON_CRASH;
        exit_code = 254;
    }
    s->exited = true;
    s->exit_code = exit_code;
    student_step(s);
}

static long on_student_wall(struct loop *loop, uint64_t id, void *data)
{
    PROCTOR_UNUSED(loop);
    PROCTOR_UNUSED(id);
    struct student *s = data;
    s->wall_timer = 0;
    if (!s->reason)
        s->reason = REASON_TIMEOUT;
    student_step(s);
    return LOOP_NOMORE;
}

static void student_cpu_sample(struct student *s, int64_t ns)
{
    if (!s->exited && !s->reason && ns > s->limits.time_s * 1000000000ll) {
        s->reason = REASON_TIMEOUT;
        student_step(s);
    }
}

static long on_student_cpu_poll(struct loop *loop, uint64_t id, void *data)
{
    PROCTOR_UNUSED(loop);
    PROCTOR_UNUSED(id);
    struct student *s = data;
    uint64_t ns;
    if (s->exited || s->reason) {
        s->cpu_timer = 0;
        return LOOP_NOMORE;
    }
    if (!docker_cpu_read_cgroup(s->container_id, &ns))
        student_cpu_sample(s, (int64_t)ns);
    return CPU_POLL_MS;
}

static void on_student_cpu(int status, const char *err, int64_t ns, void *data)
{
    PROCTOR_UNUSED(err);
    struct student *s = data;
    if (status) {
        s->cpu_req = NULL;
        return;
    }
    student_cpu_sample(s, ns);
}

static void on_student_started(int status, const char *err, void *data)
{
    struct student *s = data;
    struct job *j = s->job;
    s->req = NULL;
    if (status) {
        log_warn(LOG_JOB, "job %s: student container did not start: %s", j->id,
                 err ? err : strerror(-status));
        s->reason = REASON_CRASH;
        s->exited = true;
        s->exit_code = 254;
        student_step(s);
        return;
    }
    s->wall_timer =
        loop_timer_add(j->agent->loop, (long)(s->limits.hard_time_s * 1000), on_student_wall, s);
    uint64_t ns;
    if (docker_cpu_read_cgroup(s->container_id, &ns) == 0)
        s->cpu_timer = loop_timer_add(j->agent->loop, CPU_POLL_MS, on_student_cpu_poll, s);
    else
        s->cpu_req = docker_cpu_watch(j->agent->docker, s->container_id, on_student_cpu, s);
    s->wait_req = docker_container_wait(j->agent->docker, s->container_id, on_student_wait, s);
    if (!s->wait_req) {
        s->reason = REASON_CRASH;
        s->exited = true;
        student_step(s);
    }
}

static void on_student_created(int status, const char *err, const char *id, void *data)
{
    struct student *s = data;
    struct job *j = s->job;
    s->req = NULL;
    if (j->cleaning) {
        // The job ended while this container was being created.
        if (!status)
            job_remove_container(j, id);
        if (--j->pending_removals == 0)
            agent_job_finished(j->agent, j);
        return;
    }
    if (status) {
        log_warn(LOG_JOB, "job %s: cannot create student container: %s", j->id,
                 err ? err : strerror(-status));
        s->exited = true;
        s->reason = REASON_CRASH;
        student_step(s);
        return;
    }
    s->container_id = xstrdup(id);
    struct value msg;
    value_set_map(&msg);
    value_set_str(value_map_put(&msg, "type"), "run_student_started");
    value_set_str(value_map_put(&msg, "socket_id"), s->socket_id);
    value_set_str(value_map_put(&msg, "container_id"), id);
    job_send(j, &msg);
    value_deinit(&msg);
    s->req = docker_container_start(j->agent->docker, id, on_student_started, s);
    if (!s->req)
        on_student_started(-EIO, "cannot start", s);
}

/**
 * Gives the requester's socket, /sockets/<socket_id>.sock in the grading
 * container, a name of the agent's own: a hard link in J/links, made without
 * following a symlink (linkat without AT_SYMLINK_FOLLOW links the entry
 * itself) and then checked to be a socket. The grading container can swap
 * J/sockets/<id>.sock at will, but not the link: Docker gets a path none of
 * whose components a container can create, rename or replace.
 * 0, or -errno (-EPERM: not a socket; also what fs.protected_hardlinks
 * answers an agent that is neither root nor the socket's owner).
 */
static int student_link_socket(struct student *s)
{
    struct job *j = s->job;
    AUTO_FREE char *src = xasprintf("%s/sockets/%s.sock", j->dir, s->socket_id);
    AUTO_FREE char *link = xasprintf("%s/links/%zu.sock", j->dir, j->students_started);
    struct stat st;
    if (linkat(AT_FDCWD, src, AT_FDCWD, link, 0) < 0)
        return -errno;
    if (lstat(link, &st) < 0 || !S_ISSOCK(st.st_mode)) {
        unlink(link);
        return -EPERM;
    }
    s->link = link;
    link = NULL;
    return 0;
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

/** Creates the student container for a request that passed every check. 0 or -errno. */
static int student_create(struct student *s, const struct env *env, const char *envname, bool ssh,
                          bool share_network)
{
    struct job *j = s->job;
    struct agent *a = j->agent;
    char reason[POLICY_REASON_MAX] = "";
    int ret = student_link_socket(s);
    if (ret) {
        log_warn(LOG_JOB, "job %s: run_student refused: /sockets/%s.sock is not a socket (%s)%s",
                 j->id, s->socket_id, strerror(-ret),
                 ret == -EPERM && geteuid() != 0 ? "; proctord must run as root to link it" : "");
        return ret;
    }
    // Every source is agent-owned (see dir_work_fill); the destinations are upstream's.
    AUTO_FREE char *b1 = xasprintf("%s/student:/task/student:rw", j->dir);
    AUTO_FREE char *b2 = xasprintf("%s/scripts:/task/student/scripts:rw", j->dir);
    AUTO_FREE char *b3 = xasprintf("%s:/__parent.sock:rw", s->link);
    AUTO_FREE char *b4 = xasprintf("%s/systemfiles:/task/systemfiles:ro", j->dir);
    AUTO_FREE char *b5 = xasprintf("%s/course/common/student:/course/common/student:ro", j->dir);
    const char *binds[] = {b1, b2, b3, b4, b5, NULL};
    struct policy_hardening hard = {0};
    struct policy_hardening_req hreq = {.environment = envname,
                                        .student = true,
                                        .memory_mib = s->limits.memory_mib,
                                        .network = ssh};
    if (policy_hardening(a->policy, &hreq, &hard, reason, sizeof reason)) {
        log_info(LOG_JOB, "job %s: run_student refused by policy: %s", j->id, reason);
        return -EPERM;
    }
    const char *caps[POLICY_MAX_CAPS + 1] = {0};
    for (size_t i = 0; i < hard.ncap_drop; i++)
        caps[i] = hard.cap_drop[i];
    const char *secopt[] = {"no-new-privileges", NULL};
    struct docker_ulimit ul = {"nofile", hard.nofile_soft, hard.nofile_hard};
    AUTO_FREE char *netmode = ssh             ? xstrdup("bridge")
                              : share_network ? xasprintf("container:%s", j->container_id)
                                              : xstrdup("none");
    // 0.9.x's intern (agent_version 3) needs its runtime and its parent's
    // environment type to choose its mode; HEAD's takes no argument.
    const char *cmd[] = {"_run_student_intern", NULL, NULL, NULL};
    if (env->agent_version == 3) {
        cmd[1] = env->runtime;
        cmd[2] = j->envtype;
    }
    struct docker_kv labels[] = {
        {JOB_LABEL_AGENT, a->agent_id}, {JOB_LABEL_JOB, j->id}, {JOB_LABEL_ROLE, "student"}};
    struct docker_port_binding pb = {.container_port = 22, .host_port = s->ssh_port};
    struct docker_create_spec spec = {
        .image = env->image_id,
        .cmd = cmd,
        .labels = labels,
        .n_labels = ARRAY_SIZE(labels),
        .memory = s->limits.memory_mib << 20,
        .memory_swap = s->limits.memory_mib << 20,
        .memory_swappiness = a->cgroup_version == 1 ? 0 : -1,
        .pids_limit = hard.pids_limit,
        .network_mode = netmode,
        .runtime = env->runtime,
        // The agent reads everything through the attach stream; Docker's
        // own json log would write every byte to disk a second time.
        .log_driver = "none",
        .binds = binds,
        .ports = ssh ? &pb : NULL,
        .n_ports = ssh ? 1 : 0,
        .ulimits = hard.nofile_soft ? &ul : NULL,
        .n_ulimits = hard.nofile_soft ? 1 : 0,
        .cap_drop = hard.ncap_drop ? caps : NULL,
        .security_opt = hard.no_new_privileges ? secopt : NULL,
        .open_stdin = true,
        .stdin_once = true,
        .attach_stdin = true,
        .attach_stdout = true,
        .attach_stderr = true,
    };
    s->req = docker_container_create(a->docker, &spec, on_student_created, s);
    return s->req ? 0 : -EIO;
}

enum student_refusal {
    REFUSE_NONE,
    REFUSE_DUPLICATE,
    REFUSE_ENDING,
    REFUSE_AT_ONCE,
    REFUSE_TOTAL,
};

static const char *const student_refusal_text[] = {
    [REFUSE_NONE] = "",
    [REFUSE_DUPLICATE] = "its socket id is already in use",
    [REFUSE_ENDING] = "the job is ending",
    [REFUSE_AT_ONCE] = "too many student containers at once",
    [REFUSE_TOTAL] = "too many student containers for one job",
};

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
    if (j->reason || j->exited || j->cleaning)
        return REFUSE_ENDING;
    if ((int64_t)alive >= j->hard.max_students)
        return REFUSE_AT_ONCE;
    if ((int64_t)j->students_started >= j->hard.max_students_total)
        return REFUSE_TOTAL;
    return REFUSE_NONE;
}

static void job_run_student(struct job *j, const struct value *m)
{
    struct agent *a = j->agent;
    const char *sid = msg_str(m, "socket_id");
    enum student_refusal over = sid ? student_over_cap(j, sid) : REFUSE_NONE;
    struct student *s = xcalloc(1, sizeof *s);
    s->job = j;
    s->socket_id = xstrdup(sid ? sid : "");
    s->next = j->students;
    j->students = s;
    char reason[POLICY_REASON_MAX] = "";
    const struct value *envv = value_map_get(m, "environment");
    const char *envname = envv && envv->type == VALUE_STR ? envv->u.s.ptr : j->envname;
    struct policy_student_req req = {.parent_time_s = j->limits.time_s,
                                     .parent_hard_time_s = j->limits.hard_time_s,
                                     .parent_memory_mib = j->limits.memory_mib,
                                     .environment = envname};
    bool ssh = truthy(value_map_get(m, "ssh"));
    bool root = truthy(value_map_get(m, "run_as_root"));
    const struct env *env = agent_env_find(a, j->envtype, envname);
    int ret = 0;
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
                     j->id, student_refusal_text[over], (long long)j->hard.max_students,
                     (long long)j->hard.max_students_total);
        j->refusals_logged |= 1u << over;
        ret = -EBUSY;
    } else if (ssh && !(j->limits.network && strstr(j->envtype, "ssh") && a->ssh)) {
        job_fail(j, REASON_CRASH, TXT_SSH_STUDENT);
        ret = -EPERM;
    } else if (root || !env) {
        log_info(LOG_JOB, "job %s: run_student refused (%s)", j->id,
                 root ? "run_as_root" : "unknown environment");
        ret = -EPERM;
    } else if (policy_student_limits(a->policy, &req, &s->limits, reason, sizeof reason)) {
        log_info(LOG_JOB, "job %s: run_student refused by policy: %s", j->id, reason);
        ret = -EPERM;
    } else if (ssh && agent_ports_take(a, j->id, 1, &s->ssh_port, reason, sizeof reason)) {
        ret = -EPERM;
    }
    if (!ret) {
        j->students_started++;
        ret = student_create(s, env, envname, ssh, truthy(value_map_get(m, "share_network")));
    }
    if (ret) {
        s->exited = true;
        s->reason = REASON_CRASH;
        student_step(s);
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
    } else if (!strcmp(type, "result")) {
        // The last result wins; the job is judged when the container dies.
        // Moved, not copied: it may carry megabytes of output.
        value_deinit(&j->result);
        struct value *r = (struct value *)value_map_get(&m, "result");
        if (r) {
            j->result = *r;
            value_set_nil(r);
        }
        j->has_result = true;
    } else if (!strcmp(type, "run_student")) {
        job_run_student(j, &m);
    } else if (!strcmp(type, "ssh_debug")) {
        const char *user = msg_str(&m, "ssh_user"), *key = msg_str(&m, "ssh_key");
        uint16_t port = 0;
        for (size_t i = 0; i < j->nports; i++)
            if (j->ports_cont[i] == 22)
                port = j->ports_host[i];
        if (!j->ssh_sent && user && key && port && j->agent->debug_host) {
            j->ssh_sent = true;
            j->agent->sink.ssh_debug(j->agent->sink.data, j->id, j->agent->debug_host, port, user,
                                     key);
        }
    } else if (!strcmp(type, "ssh_student")) {
        const char *user = msg_str(&m, "ssh_user"), *key = msg_str(&m, "ssh_key");
        const char *cid = msg_str(&m, "container_id");
        struct student *s = j->students;
        while (s && !(cid && s->container_id && !strcmp(s->container_id, cid)))
            s = s->next;
        if (!s) {
            job_fail(j, REASON_CRASH, TXT_SSH_FOREIGN);
        } else if (!j->ssh_sent && user && key && s->ssh_port && j->agent->debug_host) {
            j->ssh_sent = true;
            j->agent->sink.ssh_debug(j->agent->sink.data, j->id, j->agent->debug_host, s->ssh_port,
                                     user, key);
        }
    } else {
        log_debug(LOG_JOB, "job %s: container message %s ignored", j->id, type);
    }
    value_deinit(&m);
}

static void on_attach_data(struct docker_attach *at, int stream, const void *p, size_t n,
                           void *data)
{
    PROCTOR_UNUSED(at);
    struct job *j = data;
    if (j->cleaning || j->reason == REASON_CRASH)
        return;
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
        enum docker_stream_result r = msg_framer_next(&j->framer, &msg, &len);
        if (r == DOCKER_STREAM_NEED_MORE)
            break;
        if (r == DOCKER_STREAM_ERROR) {
            AUTO_FREE char *t = xasprintf(TXT_UNREADABLE "%s", msg_framer_error(&j->framer));
            job_fail(j, REASON_CRASH, t);
            return;
        }
        job_on_message(j, msg, len);
        if (j->cleaning)
            return;
    }
}

static void on_attach_close(struct docker_attach *at, int error, const char *errtext, void *data)
{
    PROCTOR_UNUSED(at);
    struct job *j = data;
    if (error)
        log_debug(LOG_JOB, "job %s: attach stream ended: %s", j->id,
                  errtext ? errtext : strerror(-error));
    j->stream_closed = true;
    loop_timer_del(j->agent->loop, j->grace_timer);
    j->grace_timer = 0;
    if (!j->started) {
        // The stream died before the container ran. If no start is in
        // flight, nothing will ever run: the container counts as exited.
        job_set_reason(j, REASON_CRASH, TXT_CANNOT_START);
        if (!j->req)
            j->exited = true;
        job_kill_container(j);
    }
    job_step(j);
}

static void on_started(int status, const char *err, void *data)
{
    struct job *j = data;
    j->req = NULL;
    if (status) {
        log_warn(LOG_JOB, "job %s: start failed: %s", j->id, err ? err : strerror(-status));
        j->exited = true; /* never ran */
        job_fail(j, REASON_CRASH, TXT_CANNOT_START);
        return;
    }
    j->started = true;
    j->t_running = util_now_ms() - j->started_ms;
    log_info(LOG_JOB, "job %s: container %.12s started", j->id, j->container_id);
    if (j->reason) {
        // Killed while starting: stop it now.
        job_kill_container(j);
    }
    job_watch_time(j);
    j->wait_req = docker_container_wait(j->agent->docker, j->container_id, on_wait, j);
    if (!j->wait_req)
        job_fail(j, REASON_CRASH, TXT_UNKNOWN_ERROR);
}

static int job_send_start(struct job *j)
{
    struct value msg;
    value_set_map(&msg);
    value_set_str(value_map_put(&msg, "type"), "start");
    value_copy(value_map_put(&msg, "input"), &j->inputdata);
    struct value *debug = value_map_put(&msg, "debug");
    if (j->debug == BACKEND_DEBUG_SSH)
        value_set_str(debug, "ssh");
    else
        value_set_bool(debug, j->debug == BACKEND_DEBUG_ON);
    struct value *types = value_map_put(&msg, "envtypes");
    value_set_map(types);
    for (size_t i = 0; i < j->agent->nenvs; i++)
        value_set_bool(value_map_put(types, j->agent->envs[i].envtype), true);
    if (j->run_cmd)
        value_set_str(value_map_put(&msg, "run_cmd"), j->run_cmd);
    value_set_bool(value_map_put(&msg, "run_as_root"), j->env.run_as_root);
    value_set_bool(value_map_put(&msg, "shared_kernel"), true);
    int ret = job_send(j, &msg);
    value_deinit(&msg);
    return ret;
}

static void on_attach_ready(struct docker_attach *at, void *data)
{
    PROCTOR_UNUSED(at);
    struct job *j = data;
    if (j->reason) {
        job_step(j);
        return;
    }
    j->t_attached = util_now_ms() - j->started_ms;
    // The runner only speaks after `start`: writing it before the container
    // starts is safe and saves a round trip.
    if (job_send_start(j)) {
        job_fail(j, REASON_CRASH, TXT_UNKNOWN_ERROR);
        return;
    }
    j->req = docker_container_start(j->agent->docker, j->container_id, on_started, j);
    if (!j->req) {
        j->exited = true;
        job_fail(j, REASON_CRASH, TXT_CANNOT_START);
    }
}

static void on_created(int status, const char *err, const char *id, void *data)
{
    struct job *j = data;
    j->req = NULL;
    if (status) {
        log_warn(LOG_JOB, "job %s: create failed: %s", j->id, err ? err : strerror(-status));
        job_set_reason(j, REASON_CRASH, TXT_CANNOT_CREATE);
        job_step(j);
        return;
    }
    j->container_id = xstrdup(id);
    j->t_created = util_now_ms() - j->started_ms;
    log_debug(LOG_JOB, "job %s: container %.12s created", j->id, id);
    if (j->reason) {
        // Killed (or abandoned) while being created: never start it.
        j->exited = true;
        job_step(j);
        return;
    }
    static const struct docker_attach_cbs cb = {
        .on_ready = on_attach_ready, .on_data = on_attach_data, .on_close = on_attach_close};
    j->attach = docker_attach_new(j->agent->docker, id, NULL, &cb, j);
    if (!j->attach) {
        j->exited = true;
        job_fail(j, REASON_CRASH, TXT_CANNOT_START);
    }
}

/* ---- job directory -------------------------------------------------------- */

/** Copies src to dst, or makes dst empty when src is absent (dst's parent exists). */
static int copy_optional(const char *src, const char *dst, const char *root)
{
    struct stat st;
    if (stat(src, &st) < 0 || !S_ISDIR(st.st_mode))
        return mkdir(dst, 0755) < 0 && errno != EEXIST ? -errno : 0;
    return util_copytree(src, dst, root);
}

/** What the worker thread needs to fill a job directory: copies, owned by it. */
struct dir_work {
    char *dir;      /* the job directory, already created */
    char *task_src; /* NULL for a taskless job */
    char *common_src;
    char *common_student_src;
    char *root; /* the course directory: links to directories are followed only inside it */
};

static void dir_work_free(void *p)
{
    struct dir_work *w = p;
    free(w->dir);
    free(w->task_src);
    free(w->common_src);
    free(w->common_student_src);
    free(w->root);
    free(w);
}

/*
 * The job directory J, and the security invariant it keeps: no path the agent
 * hands to Docker, opens, chmods or removes has a component that a container
 * can create, rename or replace.
 *
 *   J/               0755  agent only (no container sees J itself)
 *   J/task/          0777  /task (grading, rw): the task's copy
 *   J/student/       0777  /task/student (grading and student containers, rw)
 *   J/scripts/       0777  /task/student/scripts (grading and students, rw)
 *   J/systemfiles/   0755  /task/systemfiles (grading rw, students ro)
 *   J/sockets/       0777  /sockets (grading, rw): the runner's and run_student's sockets
 *   J/links/         0700  agent only: a hard link to each student's socket
 *   J/course/common[/student]  /course/common[/student] (ro everywhere)
 *
 * Upstream shares J/task/student, J/task/student/scripts, J/task/systemfiles
 * and J/sockets/<id>.sock with student containers: paths under trees the
 * grading container writes, which it can swap for symlinks that Docker then
 * follows on the host. Here each shared directory is a mount of its own in
 * the grading container too (a mount point cannot be renamed or removed:
 * EBUSY), and a student's socket is reached through a hard link the agent
 * makes, without following symlinks, in J/links. The container-side paths
 * are upstream's, so INGInious's own images keep working.
 */

/**
 * Worker thread, before any container exists: moves J/task/<name> (as copied
 * from the task) to `dst`, or creates `dst` empty when the task has no such
 * directory (anything but a directory there is dropped), and leaves an empty
 * mount point in its place.
 */
static int split_out(const char *parent, const char *name, const char *dst, mode_t mode)
{
    AUTO_FREE char *src = xasprintf("%s/%s", parent, name);
    struct stat st;
    int ret = 0;
    if (lstat(src, &st) < 0)
        ret = errno == ENOENT ? 0 : -errno;
    else if (S_ISDIR(st.st_mode))
        ret = rename(src, dst) < 0 ? -errno : 1;
    else if (unlink(src) < 0)
        ret = -errno;
    if (ret == 0 && mkdir(dst, mode) < 0)
        ret = -errno;
    if (ret >= 0 && chmod(dst, mode) < 0)
        ret = -errno;
    if (ret >= 0 && mkdir(src, 0755) < 0)
        ret = -errno;
    return ret < 0 ? ret : 0;
}

/** Runs on the worker thread: copies the task (spec CONTAINER_PROTOCOL §5.2, layout above). */
static int dir_work_fill(void *p)
{
    struct dir_work *w = p;
    AUTO_FREE char *task = xasprintf("%s/task", w->dir);
    AUTO_FREE char *student = xasprintf("%s/student", w->dir);
    AUTO_FREE char *scripts = xasprintf("%s/scripts", w->dir);
    AUTO_FREE char *sysfiles = xasprintf("%s/systemfiles", w->dir);
    AUTO_FREE char *sockets = xasprintf("%s/sockets", w->dir);
    AUTO_FREE char *links = xasprintf("%s/links", w->dir);
    AUTO_FREE char *course = xasprintf("%s/course", w->dir);
    AUTO_FREE char *common = xasprintf("%s/course/common", w->dir);
    AUTO_FREE char *common_student = xasprintf("%s/course/common/student", w->dir);
    int ret = chmod(w->dir, 0755) < 0 ? -errno : 0;
    if (!ret && w->task_src) {
        ret = util_copytree(w->task_src, task, w->root);
        if (!ret && mkdir(course, 0755) < 0)
            ret = -errno;
        if (!ret)
            ret = copy_optional(w->common_src, common, w->root);
        if (!ret)
            ret = copy_optional(w->common_student_src, common_student, w->root);
    } else if (!ret) {
        // Taskless job: nothing to copy, only the mount points.
        if (mkdir(task, 0777) < 0 || mkdir(course, 0755) < 0 || mkdir(common, 0755) < 0 ||
            mkdir(common_student, 0755) < 0)
            ret = -errno;
    }
    if (!ret && chmod(task, 0777) < 0)
        ret = -errno;
    if (!ret)
        ret = split_out(task, "student", student, 0777);
    if (!ret)
        ret = split_out(student, "scripts", scripts, 0777);
    if (!ret)
        ret = split_out(task, "systemfiles", sysfiles, 0755);
    if (!ret && (mkdir(sockets, 0777) < 0 || chmod(sockets, 0777) < 0))
        ret = -errno;
    if (!ret && mkdir(links, 0700) < 0)
        ret = -errno;
    return ret;
}

static int job_create_container(struct job *j);

static void on_dir_ready(int ret, void *data)
{
    struct job *j = data;
    j->dir_task = NULL;
    if (ret) {
        log_error(LOG_JOB, "job %s: preparing %s failed: %s", j->id, j->dir, strerror(-ret));
        job_set_reason(j, REASON_CRASH, TXT_UNKNOWN_ERROR);
    } else if (!j->reason && job_create_container(j)) {
        job_set_reason(j, REASON_CRASH, TXT_CANNOT_CREATE);
    }
    job_step(j);
}

/** Creates the job directory and has the worker fill it (copying never blocks the loop). */
static int job_make_dir(struct job *j, char *reason, size_t reasonlen)
{
    struct agent *a = j->agent;
    AUTO_FREE char *tmpl = xasprintf("%s/job-XXXXXX", a->tmp_dir);
    if (!mkdtemp(tmpl)) {
        int err = errno;
        log_error(LOG_JOB, "job %s: cannot create a job directory in %s: %s", j->id, a->tmp_dir,
                  strerror(err));
        util_err(reason, reasonlen, "%s", TXT_UNKNOWN_ERROR);
        return -err;
    }
    j->dir = xstrdup(tmpl);
    struct dir_work *w = xcalloc(1, sizeof *w);
    w->dir = xstrdup(j->dir);
    if (j->course_id) {
        w->task_src = xasprintf("%s/%s/%s", a->tasks_dir, j->course_id, j->task_id);
        w->common_src = xasprintf("%s/%s/$common", a->tasks_dir, j->course_id);
        w->common_student_src = xasprintf("%s/%s/$common/student", a->tasks_dir, j->course_id);
        w->root = xasprintf("%s/%s", a->tasks_dir, j->course_id);
    }
    j->dir_task = worker_submit(a->worker, dir_work_fill, w, dir_work_free, on_dir_ready, j);
    return 0;
}

/* ---- start ------------------------------------------------------------------ */

static int job_create_container(struct job *j)
{
    struct agent *a = j->agent;
    // The layout and why: see dir_work_fill.
    AUTO_FREE char *b1 = xasprintf("%s/task:/task:rw", j->dir);
    AUTO_FREE char *b2 = xasprintf("%s/student:/task/student:rw", j->dir);
    AUTO_FREE char *b3 = xasprintf("%s/scripts:/task/student/scripts:rw", j->dir);
    AUTO_FREE char *b4 = xasprintf("%s/systemfiles:/task/systemfiles:rw", j->dir);
    AUTO_FREE char *b5 = xasprintf("%s/sockets:/sockets:rw", j->dir);
    AUTO_FREE char *b6 = xasprintf("%s/course/common:/course/common:ro", j->dir);
    AUTO_FREE char *b7 = xasprintf("%s/course/common/student:/course/common/student:ro", j->dir);
    const char *binds[] = {b1, b2, b3, b4, b5, b6, b7, NULL};
    const char *caps[POLICY_MAX_CAPS + 1] = {0};
    for (size_t i = 0; i < j->hard.ncap_drop; i++)
        caps[i] = j->hard.cap_drop[i];
    const char *secopt[] = {"no-new-privileges", NULL};
    struct docker_ulimit ul = {"nofile", j->hard.nofile_soft, j->hard.nofile_hard};
    struct docker_port_binding pb[POLICY_MAX_PORTS];
    for (size_t i = 0; i < j->nports; i++)
        pb[i] = (struct docker_port_binding){.container_port = j->ports_cont[i],
                                             .host_port = j->ports_host[i]};
    struct docker_kv labels[] = {
        {JOB_LABEL_AGENT, a->agent_id}, {JOB_LABEL_JOB, j->id}, {JOB_LABEL_ROLE, "grading"}};
    struct docker_create_spec spec = {
        .image = j->env.image_id,
        .labels = labels,
        .n_labels = ARRAY_SIZE(labels),
        .memory = j->limits.memory_mib << 20,
        .memory_swap = j->limits.memory_mib << 20,
        .memory_swappiness = a->cgroup_version == 1 ? 0 : -1,
        .pids_limit = j->hard.pids_limit,
        .network_mode = j->limits.network || j->nports ? "bridge" : "none",
        .runtime = j->env.runtime,
        .log_driver = "none", /* see the student containers */
        .binds = binds,
        .ports = j->nports ? pb : NULL,
        .n_ports = j->nports,
        .ulimits = j->hard.nofile_soft ? &ul : NULL,
        .n_ulimits = j->hard.nofile_soft ? 1 : 0,
        .cap_drop = j->hard.ncap_drop ? caps : NULL,
        .security_opt = j->hard.no_new_privileges ? secopt : NULL,
        .open_stdin = true,
        .stdin_once = true,
        .attach_stdin = true,
        .attach_stdout = true,
        .attach_stderr = true,
    };
    j->req = docker_container_create(a->docker, &spec, on_created, j);
    return j->req ? 0 : -EIO;
}

/** Everything that can refuse a job before Docker is involved. */
static int job_prepare(struct job *j, const struct backend_new_job *msg, char *reason,
                       size_t reasonlen)
{
    struct agent *a = j->agent;
    const struct env *env = agent_env_find(a, msg->environment_type, msg->environment);
    if (!env) {
        util_err(reason, reasonlen, "%s", TXT_ENV_UNAVAILABLE);
        return -ENOENT;
    }
    j->env.envtype = xstrdup(env->envtype);
    j->env.name = xstrdup(env->name);
    j->env.image_id = xstrdup(env->image_id);
    j->env.runtime = xstrdup(env->runtime);
    j->env.run_as_root = env->run_as_root;
    memcpy(j->env.ports, env->ports, sizeof env->ports);
    j->env.nports = env->nports;
    if (msg->course_id) {
        struct stat st;
        AUTO_FREE char *dir = xasprintf("%s/%s/%s", a->tasks_dir, msg->course_id, msg->task_id);
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
    if (policy_limits(a->policy, &lreq, &j->limits, reason, reasonlen))
        return -EPERM;
    if (j->nports) {
        size_t n = j->nports;
        j->nports = 0; /* nothing taken yet */
        if (agent_ports_take(a, j->id, n, j->ports_host, reason, reasonlen))
            return -EPERM;
        j->nports = n;
    }
    struct policy_hardening_req hreq = {.environment = msg->environment,
                                        .memory_mib = j->limits.memory_mib,
                                        .network = j->limits.network};
    if (policy_hardening(a->policy, &hreq, &j->hard, reason, reasonlen))
        return -EPERM;
    msg_framer_deinit(&j->framer);
    msg_framer_init(&j->framer, j->hard.max_frame_bytes > 0 ? (size_t)j->hard.max_frame_bytes
                                                            : (size_t)64 << 20);
    return job_make_dir(j, reason, reasonlen);
}

struct job *job_start(struct agent *a, const struct backend_new_job *msg)
{
    // Upstream acknowledges first, before any check.
    a->sink.job_started(a->sink.data, msg->job_id);
    struct job *j = xcalloc(1, sizeof *j);
    j->agent = a;
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
    log_info(LOG_JOB, "job %s: %s/%s on %s/%s", j->id, msg->course_id ? msg->course_id : "-",
             msg->task_id ? msg->task_id : "-", msg->environment_type, msg->environment);

    char reason[POLICY_REASON_MAX] = "";
    if (job_prepare(j, msg, reason, sizeof reason)) {
        job_set_reason(j, REASON_CRASH, *reason ? reason : TXT_CANNOT_CREATE);
        j->reported = true;
        log_info(LOG_JOB, "job %s: crash: %s", j->id, j->crash_text);
        report_plain(j, "crash", j->crash_text, false);
        job_free(j);
        return NULL;
    }
    return j;
}

void job_kill(struct job *j, const char *state)
{
    if (j->cleaning)
        return;
    log_info(LOG_JOB, "job %s: kill requested by the backend", j->id);
    free(j->prev_state);
    j->prev_state = xstrdup(state ? state : "");
    job_fail(j, REASON_KILLED, NULL);
}

void job_stop(struct job *j, const char *text)
{
    if (j->cleaning)
        return;
    log_info(LOG_JOB, "job %s: stopped by the agent: %s", j->id, text);
    job_fail(j, REASON_CRASH, text);
}

void job_abandon(struct job *j)
{
    j->abandoned = true;
    if (j->cleaning)
        return;
    job_fail(j, REASON_KILLED, NULL);
}
