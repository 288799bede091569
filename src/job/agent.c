#include "job/agent.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log.h"
#include "core/util.h"
#include "job/agent_internal.h"
#include "job/pool.h"

static int64_t host_memory_mib(void)
{
    long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGE_SIZE);
    if (pages <= 0 || size <= 0)
        return 0;
    return (int64_t)pages * size / (1024 * 1024);
}

static void on_stray_removed(int status, const char *err, void *data)
{
    PROCTOR_UNUSED(data);
    if (status && status != 404)
        log_warn(LOG_JOB, "removing a stray container failed: %s", err ? err : "?");
}

static void on_event(const struct docker_event *ev, void *data)
{
    struct agent *a = data;
    const char *job = NULL;
    for (size_t i = 0; i < ev->n_attributes; i++)
        if (!strcmp(ev->attributes[i].key, JOB_LABEL_JOB))
            job = ev->attributes[i].value;
    if (!job)
        return;
    for (struct job *j = a->jobs; j; j = job_next(j)) {
        if (!strcmp(job_id(j), job)) {
            job_on_event(j, ev);
            return;
        }
    }
    if (a->pool && pool_on_event(a->pool, ev))
        return;
    if (strcmp(ev->action, "create")) {
        // A container taken from the pool keeps the pool's label: its job knows it by id.
        for (struct job *j = a->jobs; j; j = job_next(j))
            job_on_event(j, ev);
        return;
    }
    // The pool's own, before the engine answered its create.
    if (a->pool && pool_owns(a->pool, job))
        return;
    // Created with our id for a job we do not run: a create that an earlier
    // run of this agent asked for, which the engine finished after the sweep
    // at start (or a job's create answered after the job ended). Nobody will
    // ever remove it but us.
    log_info(LOG_JOB, "removing stray container %.12s of job %s", ev->id, job);
    docker_container_remove(a->docker, ev->id, true, true, on_stray_removed, NULL);
}

/*
 * Identity. Several agents may share one Docker engine (one per slot group,
 * compose replicas, `proctor run` next to proctord), and each removes the
 * containers labelled with its own id that no job of its own owns. So the id
 * must be unique per agent, yet stable across restarts so that a restarted
 * agent finds what it left: it is drawn at random once and kept in the work
 * directory, which one agent owns alone (a lock held for its lifetime says so).
 */
#define AGENT_ID_FILE ".agent-id"
#define AGENT_LOCK_FILE ".agent.lock"

/** Takes the work directory's lock; returns its fd, or -1 with err filled. */
static int tmpdir_lock(const char *dir, char *err, size_t errlen)
{
    AUTO_FREE char *path = xasprintf("%s/" AGENT_LOCK_FILE, dir);
    int fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0) {
        util_err(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        char pid[32] = "";
        ssize_t n = pread(fd, pid, sizeof pid - 1, 0);
        pid[n > 0 ? n : 0] = '\0';
        pid[strcspn(pid, "\n")] = '\0';
        util_err(err, errlen,
                 "another agent (pid %s) is using the work directory %s: give each agent its "
                 "own --tmpdir",
                 *pid ? pid : "?", dir);
        close(fd);
        return -1;
    }
    char pid[32];
    int len = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) < 0 || pwrite(fd, pid, (size_t)len, 0) != len)
        log_warn(LOG_JOB, "cannot write the pid to %s: %s", path, strerror(errno));
    return fd;
}

static bool agent_id_valid(const char *id, const char *prefix)
{
    size_t n = strlen(prefix);
    if (strncmp(id, prefix, n) || id[n] != '-' || !id[n + 1] || strlen(id) > 64)
        return false;
    for (const char *p = id + n + 1; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return false;
    return true;
}

/**
 * The id kept in the work directory, or a new random one written there
 * (atomically). Caller frees. NULL with err filled when none can be had.
 */
static char *tmpdir_agent_id(const char *dir, const char *prefix, char *err, size_t errlen)
{
    AUTO_FREE char *path = xasprintf("%s/" AGENT_ID_FILE, dir);
    AUTO_FREE char *tmp = xasprintf("%s/" AGENT_ID_FILE ".new", dir);
    char buf[80] = "";
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t n = read(fd, buf, sizeof buf - 1);
        close(fd);
        buf[n > 0 ? n : 0] = '\0';
        buf[strcspn(buf, "\n")] = '\0';
        if (agent_id_valid(buf, prefix))
            return xstrdup(buf);
    }
    unsigned char rnd[8];
    if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) {
        util_err(err, errlen, "cannot draw a random agent id: %s", strerror(errno));
        return NULL;
    }
    int len = snprintf(buf, sizeof buf, "%s-", prefix);
    for (size_t i = 0; i < sizeof rnd; i++)
        len += snprintf(buf + len, sizeof buf - (size_t)len, "%02x", rnd[i]);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
    bool ok = fd >= 0 && write(fd, buf, (size_t)len) == len && write(fd, "\n", 1) == 1;
    if (fd >= 0 && close(fd) < 0)
        ok = false;
    if (!ok || rename(tmp, path) < 0) {
        util_err(err, errlen, "cannot write the agent id to %s: %s", path, strerror(errno));
        unlink(tmp);
        return NULL;
    }
    return xstrdup(buf);
}

/** Empties the work directory but for the identity and the lock. */
static void tmpdir_empty(const char *dir)
{
    DIR *d = opendir(dir);
    for (struct dirent *e; d && (e = readdir(d));) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") ||
            !strcmp(e->d_name, AGENT_ID_FILE) || !strcmp(e->d_name, AGENT_LOCK_FILE))
            continue;
        AUTO_FREE char *p = xasprintf("%s/%s", dir, e->d_name);
        int ret = util_rmtree(p);
        if (ret)
            log_warn(LOG_JOB, "cannot remove %s: %s", p, strerror(-ret));
    }
    if (d)
        closedir(d);
}

struct agent *agent_new(struct loop *loop, const struct agent_config *cfg,
                        const struct agent_sink *sink, char *err, size_t errlen)
{
    char path[PATH_MAX];
    char *label = NULL;
    struct policy_config pcfg = {0};
    struct agent *a = xcalloc(1, sizeof *a);
    a->loop = loop;
    a->sink = *sink;
    a->lock_fd = -1;
    a->friendly_name = xstrdup(cfg->friendly_name ? cfg->friendly_name : "");
    a->concurrency = cfg->concurrency > 0 ? cfg->concurrency : 1;
    a->ssh = cfg->ssh;
    a->host_memory_mib = host_memory_mib();
    value_set_map(&a->hello_envs);
    value_set_map(&a->envtypes);

    // Docker bind-mounts job directories by path: they must be absolute.
    if (util_mkdirs(cfg->tmp_dir, 0755)) {
        util_err(err, errlen, "cannot create the work directory %s: %s", cfg->tmp_dir,
                 strerror(errno));
        goto fail;
    }
    if (!realpath(cfg->tmp_dir, path)) {
        util_err(err, errlen, "cannot resolve %s: %s", cfg->tmp_dir, strerror(errno));
        goto fail;
    }
    a->tmp_dir = xstrdup(path);
    // The work directory is ours alone (locked before anything in it is
    // touched); like the Python agent, start it empty.
    a->lock_fd = tmpdir_lock(a->tmp_dir, err, errlen);
    if (a->lock_fd < 0)
        goto fail;
    a->agent_id = cfg->agent_id
                      ? xstrdup(cfg->agent_id)
                      : tmpdir_agent_id(a->tmp_dir, cfg->id_prefix ? cfg->id_prefix : "proctord",
                                        err, errlen);
    if (!a->agent_id)
        goto fail;
    tmpdir_empty(a->tmp_dir);
    log_info(LOG_JOB, "agent id %s (work directory %s)", a->agent_id, a->tmp_dir);
    a->tasks_dir = xstrdup(realpath(cfg->tasks_dir, path) ? path : cfg->tasks_dir);
    if (cfg->debug_host) {
        a->debug_host = xstrdup(cfg->debug_host);
        a->ports_enabled = true;
        size_t n = (size_t)cfg->debug_port_max - cfg->debug_port_min + 1;
        a->ports_free = xcalloc(n, sizeof *a->ports_free);
        for (size_t i = 0; i < n; i++)
            a->ports_free[a->nports_free++] = (uint16_t)(cfg->debug_port_min + i);
    }
    if (cfg->docker_host)
        a->docker_host = xstrdup(cfg->docker_host);

    pcfg = (struct policy_config){
        .concurrency = a->concurrency,
        .host_memory_mib = a->host_memory_mib,
        .max_time_s = cfg->max_time_s > 0 ? cfg->max_time_s : AGENT_DEFAULT_MAX_TIME_S,
        .max_hard_time_s =
            cfg->max_hard_time_s > 0 ? cfg->max_hard_time_s : AGENT_DEFAULT_MAX_HARD_TIME_S,
        .max_result_bytes =
            cfg->max_frame_bytes > 0 ? cfg->max_frame_bytes : AGENT_DEFAULT_MAX_FRAME_BYTES,
        .max_output_bytes =
            cfg->max_output_bytes > 0 ? cfg->max_output_bytes : AGENT_DEFAULT_MAX_OUTPUT_BYTES,
    };
    a->policy = policy_host_new(cfg->policies_dir, &pcfg, err, errlen);
    if (!a->policy)
        goto fail;
    a->worker = worker_new(loop);
    if (!a->worker) {
        util_err(err, errlen, "cannot start the filesystem worker thread");
        goto fail;
    }
    a->docker = docker_client_new(loop, a->docker_host);
    if (a->docker && cfg->docker_timeout_ms > 0)
        docker_client_set_limits(a->docker, DOCKER_DEFAULT_MAX_BODY, cfg->docker_timeout_ms);
    if (!a->docker) {
        util_err(err, errlen, "cannot set up the Docker client (DOCKER_HOST=%s)",
                 a->docker_host          ? a->docker_host
                 : getenv("DOCKER_HOST") ? getenv("DOCKER_HOST")
                                         : "default");
        goto fail;
    }
    label = xasprintf("%s=%s", JOB_LABEL_AGENT, a->agent_id);
    a->events = docker_events_watch(a->docker, label, on_event, a);
    free(label);
    if (!a->events) {
        util_err(err, errlen, "cannot watch Docker events");
        goto fail;
    }
    a->host = (struct job_host){
        .loop = a->loop,
        .docker = a->docker,
        .worker = a->worker,
        .policy = a->policy,
        .sink = a->sink,
        .agent_id = a->agent_id,
        .tasks_dir = a->tasks_dir,
        .tmp_dir = a->tmp_dir,
        .debug_host = a->debug_host,
        .ssh = a->ssh,
        .answer_at_exit = cfg->answer_at_exit,
        .envtypes = &a->envtypes,
        .agent = a,
    };
    if (cfg->pool) {
        a->pool = pool_new(&a->host, a->concurrency, true);
        a->host.pool = a->pool;
        a->host.students_seen = student_memory_new();
        for (size_t i = 0; i < cfg->nwarm; i++) {
            const char *slash = strchr(cfg->warm[i], '/');
            if (!slash || slash == cfg->warm[i] || !slash[1]) {
                util_err(err, errlen, "--warm takes ENVTYPE/NAME (e.g. docker/default), not '%s'",
                         cfg->warm[i]);
                goto fail;
            }
            AUTO_FREE char *envtype = xstrndup(cfg->warm[i], (size_t)(slash - cfg->warm[i]));
            pool_prewarm(a->pool, envtype, slash + 1);
        }
    }
    return a;
fail:
    agent_free(a);
    return NULL;
}

void agent_free(struct agent *a)
{
    if (!a)
        return;
    a->closing = true;
    if (a->jobs)
        // The caller did not wait for them (agent_abandon_jobs, then the
        // sink's `idle`): their containers stay for the next start, whose
        // discovery removes what carries this agent's id.
        log_warn(LOG_JOB,
                 "%zu job(s) still running at exit: their containers are left to the "
                 "next start's clean-up",
                 a->njobs);
    while (a->jobs) {
        struct job *j = a->jobs;
        a->jobs = job_next(j);
        job_free(j);
    }
    if (a->pool && !pool_empty(a->pool))
        log_warn(LOG_JOB, "warm containers still there at exit: left to the next start's clean-up");
    pool_free(a->pool);
    student_memory_free(a->host.students_seen);
    // Runs the job directory removals still queued, then joins the thread.
    worker_free(a->worker);
    agent_janitor_free(a);
    docker_req_cancel(a->disc_req);
    docker_req_cancel(a->check_req);
    loop_timer_del(a->loop, a->check_timer);
    docker_events_stop(a->events);
    docker_client_free(a->docker);
    policy_host_free(a->policy);
    agent_envs_clear(a);
    value_deinit(&a->envtypes);
    free(a->ports_free);
    free(a->friendly_name);
    free(a->agent_id);
    if (a->lock_fd >= 0)
        close(a->lock_fd);
    free(a->tasks_dir);
    free(a->tmp_dir);
    free(a->debug_host);
    free(a->docker_host);
    free(a);
}

/* ---- the work directory, seen from the engine ------------------------------- */

/**
 * This process' Docker container id, from the bind mounts Docker makes from
 * its own per-container directory (/etc/hostname, /etc/hosts...): 0 and id
 * filled, or -ENOENT when this is not a Docker container.
 */
static int own_container_id(char id[65])
{
    FILE *f = fopen("/proc/self/mountinfo", "re");
    if (!f)
        return -ENOENT;
    char line[4096];
    int ret = -ENOENT;
    while (ret && fgets(line, sizeof line, f)) {
        const char *p = strstr(line, "/containers/");
        if (!p)
            continue;
        p += strlen("/containers/");
        size_t n = strspn(p, "0123456789abcdef");
        if (n == 64 && p[64] == '/') {
            memcpy(id, p, 64);
            id[64] = '\0';
            ret = 0;
        }
    }
    fclose(f);
    return ret;
}

static void check_finish(struct agent *a, const char *err)
{
    agent_check_fn done = a->check_done;
    a->check_done = NULL;
    a->check_req = NULL;
    if (done)
        done(a, err, a->check_data);
}

static long on_check_timer(struct loop *loop, uint64_t id, void *data)
{
    PROCTOR_UNUSED(loop);
    PROCTOR_UNUSED(id);
    struct agent *a = data;
    a->check_timer = 0;
    check_finish(a, NULL);
    return LOOP_NOMORE;
}

static void on_own_inspect(int status, const char *err, const struct docker_container_state *st,
                           void *data)
{
    struct agent *a = data;
    a->check_req = NULL;
    char msg[1024];
    if (status) {
        snprintf(msg, sizeof msg, "cannot inspect this agent's own container: %s",
                 err ? err : strerror(-status));
        check_finish(a, msg);
        return;
    }
    // The mount that holds the work directory: the longest destination above it.
    const struct docker_mount *best = NULL;
    size_t best_len = 0, tl = strlen(a->tmp_dir);
    for (size_t i = 0; i < st->n_mounts; i++) {
        const char *d = st->mounts[i].destination;
        size_t n = strlen(d);
        while (n > 1 && d[n - 1] == '/')
            n--;
        bool above = n <= tl && !strncmp(d, a->tmp_dir, n) &&
                     (a->tmp_dir[n] == '/' || !a->tmp_dir[n] || n == 1);
        if (above && n >= best_len) {
            best = &st->mounts[i];
            best_len = n;
        }
    }
    if (!best) {
        snprintf(msg, sizeof msg,
                 "the work directory %s exists only inside this container, but the Docker "
                 "engine binds job directories by their host path: mount a host directory at "
                 "the same path (e.g. -v %s:%s) and keep --tmpdir %s",
                 a->tmp_dir, a->tmp_dir, a->tmp_dir, a->tmp_dir);
        check_finish(a, msg);
        return;
    }
    AUTO_FREE char *host =
        xasprintf("%s%s", best->source, a->tmp_dir + (best_len > 1 ? best_len : 0));
    if (strcmp(host, a->tmp_dir)) {
        snprintf(msg, sizeof msg,
                 "the work directory %s is %s on the Docker host, and the engine binds job "
                 "directories by their host path: mount it at the same path (-v %s:%s) and give "
                 "--tmpdir %s",
                 a->tmp_dir, host, host, host, host);
        check_finish(a, msg);
        return;
    }
    log_info(LOG_JOB, "work directory %s: the same path on the Docker host", a->tmp_dir);
    check_finish(a, NULL);
}

int agent_check_work_dir(struct agent *a, agent_check_fn done, void *data)
{
    if (a->check_done)
        return -EBUSY;
    a->check_done = done;
    a->check_data = data;
    char id[65];
    if (own_container_id(id)) {
        // Not in a container: the paths are the host's.
        a->check_timer = loop_timer_add(a->loop, 0, on_check_timer, a);
        return 0;
    }
    a->check_req = docker_container_inspect(a->docker, id, on_own_inspect, a);
    if (!a->check_req) {
        a->check_done = NULL;
        return -EIO;
    }
    return 0;
}

/* ---- ports ---------------------------------------------------------------- */

int agent_ports_take(struct agent *a, const char *job, size_t n, uint16_t *out, char *reason,
                     size_t reasonlen)
{
    if (!a->ports_enabled) {
        util_err(reason, reasonlen,
                 "An unknown error occurred in the agent. Please contact your course "
                 "administrator.");
        log_warn(LOG_JOB, "job %s needs ports but SSH debug is off (no --debug-host)", job);
        return -EPERM;
    }
    struct policy_ports_req req = {
        .job_id = job, .count = n, .free = a->ports_free, .nfree = a->nports_free};
    int ret = policy_ports(a->policy, &req, out, reason, reasonlen);
    if (ret)
        return ret;
    // C owns the pool: commit the choice (the host already checked it). The
    // pool stays in ascending order, as ports.lua is promised.
    for (size_t i = 0; i < n; i++) {
        for (size_t k = 0; k < a->nports_free; k++) {
            if (a->ports_free[k] == out[i]) {
                memmove(&a->ports_free[k], &a->ports_free[k + 1],
                        (a->nports_free - k - 1) * sizeof *a->ports_free);
                a->nports_free--;
                break;
            }
        }
    }
    return 0;
}

void agent_ports_give(struct agent *a, const uint16_t *ports, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        size_t k = a->nports_free;
        while (k > 0 && a->ports_free[k - 1] > ports[i]) {
            a->ports_free[k] = a->ports_free[k - 1];
            k--;
        }
        a->ports_free[k] = ports[i];
        a->nports_free++;
    }
}

/* ---- jobs --------------------------------------------------------------- */

void agent_new_job(struct agent *a, const struct backend_new_job *msg)
{
    if (a->closing) {
        // Shutting down: the backend cannot be told to stop sending, so
        // answer at once rather than leaving the student waiting.
        struct backend_job_done d = {.job_id = msg->job_id,
                                     .result = "crash",
                                     .text = "The grading agent is shutting down. Please retry "
                                             "later.",
                                     .state = ""};
        const struct value *st = value_map_get(&msg->inputdata, "@state");
        if (st && st->type == VALUE_STR)
            d.state = st->u.s.ptr;
        a->sink.job_started(a->sink.data, msg->job_id);
        a->sink.job_done(a->sink.data, &d);
        return;
    }
    for (struct job *j = a->jobs; j; j = job_next(j)) {
        if (!strcmp(job_id(j), msg->job_id)) {
            // The backend never reuses a running id; a duplicate is a bug
            // upstream. Report it for this message without touching the
            // running job (one AgentJobDone each).
            log_error(LOG_JOB, "job %s: duplicate job id from the backend", msg->job_id);
            return;
        }
    }
    struct job *j = job_start(&a->host, msg);
    if (j) {
        job_set_next(j, a->jobs);
        a->jobs = j;
        a->njobs++;
    }
}

void agent_kill_job(struct agent *a, const struct backend_kill_job *msg)
{
    for (struct job *j = a->jobs; j; j = job_next(j)) {
        if (!strcmp(job_id(j), msg->job_id)) {
            job_kill(j, msg->state);
            return;
        }
    }
    // Finished already, or never ours: the backend ignores an extra result,
    // but sending nothing is what the spec asks for.
    log_info(LOG_JOB, "kill for unknown job %s ignored", msg->job_id);
}

void agent_abandon_jobs(struct agent *a)
{
    struct job *j = a->jobs;
    while (j) {
        struct job *next = job_next(j);
        job_abandon(j);
        j = next;
    }
}

void agent_close(struct agent *a)
{
    a->closing = true;
    if (a->pool)
        pool_drain(a->pool);
}

bool agent_idle(const struct agent *a)
{
    return !a->jobs && (!a->pool || pool_empty(a->pool));
}

void agent_pool_empty(struct agent *a)
{
    if (agent_idle(a) && a->sink.idle)
        a->sink.idle(a->sink.data);
}

void agent_stop_jobs(struct agent *a, const char *text)
{
    struct job *j = a->jobs;
    while (j) {
        struct job *next = job_next(j);
        job_stop(j, text);
        j = next;
    }
}

size_t agent_job_count(const struct agent *a)
{
    return a->njobs;
}

void agent_job_finished(struct agent *a, struct job *j)
{
    // Unlink by walking (few jobs; a plain loop is clearer than a dlist).
    struct job *prev = NULL;
    for (struct job *it = a->jobs; it; prev = it, it = job_next(it)) {
        if (it != j)
            continue;
        if (prev)
            job_set_next(prev, job_next(it));
        else
            a->jobs = job_next(it);
        a->njobs--;
        break;
    }
    job_free(j);
    if (agent_idle(a) && a->sink.idle)
        a->sink.idle(a->sink.data);
}

const char *agent_id(const struct agent *a)
{
    return a->agent_id;
}

int agent_job_status(const struct agent *a, const char *id, struct agent_job_status *st)
{
    for (struct job *j = a->jobs; j; j = job_next(j))
        if (!strcmp(job_id(j), id))
            return job_status(j, st);
    return -ENOENT;
}

int agent_reload_policies(struct agent *a)
{
    char err[1024] = "";
    int ret = policy_host_reload(a->policy, err, sizeof err);
    if (ret)
        log_error(LOG_POLICY, "policy reload refused, keeping generation %llu: %s",
                  (unsigned long long)policy_host_generation(a->policy), err);
    else
        log_info(LOG_POLICY, "policies reloaded (generation %llu)",
                 (unsigned long long)policy_host_generation(a->policy));
    if (!ret && a->pool)
        pool_policy_reloaded(a->pool);
    return ret;
}
