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
#include "job/job.h"

// Image labels INGInious reads (spec CONTAINER_PROTOCOL §3).
#define LABEL_NAME "org.inginious.grading.name"
#define LABEL_VERSION "org.inginious.grading.agent_version"
#define LABEL_PORTS "org.inginious.grading.ports"
#define LABEL_NEED_ROOT "org.inginious.grading.need_root"
#define LABEL_NEED_GPU "org.inginious.grading.need_gpu"
#define LABEL_ADVERTISE "org.inginious.grading.advertise"

static void env_deinit(struct env *e)
{
    free(e->envtype);
    free(e->name);
    free(e->image_id);
    free(e->runtime);
    memset(e, 0, sizeof *e);
}

static void envs_clear(struct agent *a)
{
    for (size_t i = 0; i < a->nenvs; i++)
        env_deinit(&a->envs[i]);
    free(a->envs);
    a->envs = NULL;
    a->nenvs = 0;
    value_deinit(&a->hello_envs);
}

const struct env *agent_env_find(const struct agent *a, const char *envtype, const char *name)
{
    for (size_t i = 0; i < a->nenvs; i++)
        if (!strcmp(a->envs[i].envtype, envtype) && !strcmp(a->envs[i].name, name))
            return &a->envs[i];
    return NULL;
}

static int64_t host_memory_mib(void)
{
    long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGE_SIZE);
    if (pages <= 0 || size <= 0)
        return 0;
    return (int64_t)pages * size / (1024 * 1024);
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
    return a;
fail:
    agent_free(a);
    return NULL;
}

static long close_wait(struct loop *loop, uint64_t id, void *data)
{
    PROCTOR_UNUSED(id);
    struct agent *a = data;
    if (!a->jobs || util_now_ms() > a->close_deadline_ms) {
        loop_stop(loop);
        return LOOP_NOMORE;
    }
    return 50;
}

void agent_free(struct agent *a)
{
    if (!a)
        return;
    // Jobs still here are abandoned; run the loop a little longer so their
    // containers are killed and removed rather than leaked.
    a->closing = true;
    if (a->jobs) {
        log_info(LOG_JOB, "stopping %zu job(s) and removing their containers", a->njobs);
        agent_abandon_jobs(a);
        a->close_deadline_ms = util_now_ms() + AGENT_CLOSE_MS;
        loop_timer_add(a->loop, 0, close_wait, a);
        loop_run(a->loop);
    }
    while (a->jobs) {
        struct job *j = a->jobs;
        log_warn(LOG_JOB, "job %s: still not cleaned up at exit", job_id(j));
        a->jobs = job_next(j);
        job_free(j);
    }
    // Runs the job directory removals still queued, then joins the thread.
    worker_free(a->worker);
    docker_req_cancel(a->disc_req);
    docker_events_stop(a->events);
    docker_client_free(a->docker);
    policy_host_free(a->policy);
    envs_clear(a);
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

/* ---- discovery ---------------------------------------------------------- */

static const char *label_get(const struct docker_image *img, const char *key)
{
    for (size_t i = 0; i < img->n_labels; i++)
        if (!strcmp(img->labels[i].key, key))
            return img->labels[i].value;
    return NULL;
}

static int parse_ports(const char *s, uint16_t *out, size_t *n)
{
    *n = 0;
    if (!s || !*s)
        return 0;
    AUTO_FREE char *copy = xstrdup(s);
    char *save = NULL;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ')
            tok++;
        char *end;
        long p = strtol(tok, &end, 10);
        while (*end == ' ')
            end++;
        if (end == tok || *end || p < 1 || p > 65535 || *n >= JOB_MAX_ENV_PORTS)
            return -EINVAL;
        out[(*n)++] = (uint16_t)p;
    }
    return 0;
}

static void env_add(struct agent *a, const struct policy_runtime *rt,
                    const struct docker_image *img, const char *name, int version,
                    const uint16_t *ports, size_t nports, bool advertised)
{
    for (size_t i = 0; i < a->nenvs; i++) {
        struct env *e = &a->envs[i];
        if (strcmp(e->envtype, rt->envtype) || strcmp(e->name, name))
            continue;
        // Several images share a name: the newest wins, as upstream.
        if (e->created >= img->created)
            return;
        env_deinit(e);
        goto fill;
    }
    a->envs = xrealloc(a->envs, (a->nenvs + 1) * sizeof *a->envs);
    a->nenvs++;
fill:;
    struct env *e = &a->envs[a->nenvs - 1];
    for (size_t i = 0; i < a->nenvs; i++)
        if (!a->envs[i].envtype)
            e = &a->envs[i];
    e->envtype = xstrdup(rt->envtype);
    e->name = xstrdup(name);
    e->image_id = xstrdup(img->id);
    e->runtime = xstrdup(rt->runtime);
    e->created = img->created;
    memcpy(e->ports, ports, nports * sizeof *ports);
    e->nports = nports;
    e->run_as_root = rt->run_as_root;
    e->advertised = advertised;
    e->agent_version = version;
}

static void build_hello_envs(struct agent *a)
{
    value_deinit(&a->hello_envs);
    value_set_map(&a->hello_envs);
    for (size_t i = 0; i < a->nenvs; i++) {
        const struct env *e = &a->envs[i];
        struct value *type = value_map_put(&a->hello_envs, e->envtype);
        if (type->type != VALUE_MAP)
            value_set_map(type);
        struct value *info = value_map_put(type, e->name);
        value_set_map(info);
        value_set_str(value_map_put(info, "id"), e->image_id);
        value_set_str(value_map_put(info, "title"), e->name);
        value_set_int(value_map_put(info, "created"), e->created);
        struct value *ports = value_map_put(info, "ports");
        value_set_array(ports);
        for (size_t p = 0; p < e->nports; p++)
            value_set_int(value_array_push(ports), e->ports[p]);
        value_set_str(value_map_put(info, "runtime"), e->runtime);
        value_set_bool(value_map_put(info, "advertised"), e->advertised);
    }
}

static void disc_finish(struct agent *a, const char *err)
{
    agent_ready_fn ready = a->disc_ready;
    void *data = a->disc_data;
    a->disc_ready = NULL;
    a->disc_req = NULL;
    if (ready)
        ready(a, err ? NULL : &a->hello_envs, err, data);
}

static void on_images(int status, const char *err, const struct docker_image *images, size_t n,
                      void *data)
{
    struct agent *a = data;
    a->disc_req = NULL;
    if (status) {
        char msg[512];
        snprintf(msg, sizeof msg, "listing images failed: %s", err ? err : strerror(-status));
        disc_finish(a, msg);
        return;
    }
    envs_clear(a);
    for (size_t i = 0; i < n; i++) {
        const struct docker_image *img = &images[i];
        const char *name = label_get(img, LABEL_NAME);
        const char *version = label_get(img, LABEL_VERSION);
        if (!name || !*name)
            continue;
        // proctord speaks both protocol generations: 3 (0.7-0.9.x) and 4 (HEAD).
        if (!version || (strcmp(version, "3") && strcmp(version, "4"))) {
            log_warn(LOG_JOB, "image %s (%s): agent_version %s not supported, skipped", img->id,
                     name, version ? version : "missing");
            continue;
        }
        uint16_t ports[JOB_MAX_ENV_PORTS];
        size_t nports;
        if (parse_ports(label_get(img, LABEL_PORTS), ports, &nports)) {
            log_warn(LOG_JOB, "image %s (%s): malformed %s label, skipped", img->id, name,
                     LABEL_PORTS);
            continue;
        }
        const char *adv = label_get(img, LABEL_ADVERTISE);
        bool advertised = !adv || !strcmp(adv, "true");
        bool need_root = label_get(img, LABEL_NEED_ROOT) != NULL;
        bool need_gpu = label_get(img, LABEL_NEED_GPU) != NULL;
        for (size_t r = 0; r < a->disc_nrts; r++) {
            const struct policy_runtime *rt = &a->disc_rts[r];
            if ((need_root && !rt->run_as_root) || (need_gpu && !rt->enables_gpu))
                continue;
            env_add(a, rt, img, name, atoi(version), ports, nports, advertised);
        }
    }
    build_hello_envs(a);
    log_info(LOG_JOB, "discovered %zu environment(s) from %zu image(s)", a->nenvs, n);
    for (size_t i = 0; i < a->nenvs; i++)
        log_info(LOG_JOB, "  %s/%s -> %.19s (runtime %s)", a->envs[i].envtype, a->envs[i].name,
                 a->envs[i].image_id, a->envs[i].runtime);
    disc_finish(a, NULL);
}

static void on_info(int status, const char *err, const struct docker_info *info, void *data)
{
    struct agent *a = data;
    a->disc_req = NULL;
    if (status) {
        char msg[512];
        snprintf(msg, sizeof msg, "Docker engine info failed: %s", err ? err : strerror(-status));
        disc_finish(a, msg);
        return;
    }
    a->cgroup_version = info->cgroup_version;
    policy_runtimes(a->policy, info->runtimes, info->n_runtimes, a->ssh, a->disc_rts,
                    ARRAY_SIZE(a->disc_rts), &a->disc_nrts);
    for (size_t i = 0; i < a->disc_nrts; i++)
        log_debug(LOG_JOB, "runtime %s -> %s%s", a->disc_rts[i].runtime, a->disc_rts[i].envtype,
                  a->disc_rts[i].run_as_root ? " (root)" : "");
    a->disc_req = docker_images_list(a->docker, on_images, a);
    if (!a->disc_req)
        disc_finish(a, "cannot list images");
}

static void start_info(struct agent *a)
{
    a->disc_req = docker_info(a->docker, on_info, a);
    if (!a->disc_req)
        disc_finish(a, "cannot query the Docker engine");
}

static void on_orphan_removed(int status, const char *err, void *data)
{
    struct agent *a = data;
    if (status && status != 404)
        log_warn(LOG_JOB, "removing a leftover container failed: %s", err ? err : "?");
    if (--a->disc_pending_removals == 0)
        start_info(a);
}

static void on_orphans(int status, const char *err, const struct docker_container_summary *list,
                       size_t n, void *data)
{
    struct agent *a = data;
    a->disc_req = NULL;
    if (status) {
        char msg[512];
        snprintf(msg, sizeof msg, "listing containers failed: %s", err ? err : strerror(-status));
        disc_finish(a, msg);
        return;
    }
    // Containers of ours that no job of this process knows: a previous run
    // died and left them behind. Nobody waits for them any more.
    for (size_t i = 0; i < n; i++) {
        bool known = false;
        for (size_t l = 0; l < list[i].n_labels; l++) {
            if (strcmp(list[i].labels[l].key, JOB_LABEL_JOB))
                continue;
            for (struct job *j = a->jobs; j; j = job_next(j))
                known |= !strcmp(job_id(j), list[i].labels[l].value);
        }
        if (known)
            continue;
        log_info(LOG_JOB, "removing leftover container %.12s", list[i].id);
        a->disc_pending_removals++;
        if (!docker_container_remove(a->docker, list[i].id, true, true, on_orphan_removed, a))
            a->disc_pending_removals--;
    }
    if (a->disc_pending_removals == 0)
        start_info(a);
}

int agent_discover(struct agent *a, agent_ready_fn ready, void *data)
{
    if (a->disc_ready)
        return -EBUSY;
    a->disc_ready = ready;
    a->disc_data = data;
    AUTO_FREE char *label = xasprintf("%s=%s", JOB_LABEL_AGENT, a->agent_id);
    a->disc_req = docker_containers_list_by_label(a->docker, label, true, on_orphans, a);
    if (!a->disc_req) {
        a->disc_ready = NULL;
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
    struct job *j = job_start(a, msg);
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
    return ret;
}
