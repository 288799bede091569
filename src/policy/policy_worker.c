/*
 * The agent's side of the policy worker process (policy_worker.h); the public
 * API of policy.h is built on it in policy_api.c.
 *
 * Policies run in a policy worker process, never in the agent's event loop:
 * the Lua budget (instructions, wall clock) only runs between Lua
 * instructions, so a C library function that never returns
 * (`string.rep("", math.maxinteger)`, a backtracking pattern) would freeze
 * every job and the backend link. The agent calls the worker synchronously
 * (callers of policy.h see no difference) with a deadline; past it the worker
 * is killed, its memory goes with it, the call gets the built-in default and
 * the admin gets the file:line the worker last recorded. The next call starts
 * a new worker with the same texts (a restart does not read the disk again nor
 * run the examples again).
 *
 * The worker is this very binary, started again through /proc/self/exe with
 * PROCTOR_POLICY_WORKER in its environment: worker_entry() (a constructor)
 * then serves the socket on fd 3 and exits before main() runs. A fresh
 * executable rather than fork(): the agent has threads and descriptors
 * (Docker connections, the backend socket) that a forked copy would hold.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/log.h"
#include "core/metrics.h"
#include "core/util.h"
#include "core/value.h"
#include "policy/policy.h"
#include "policy/policy_fields.h"
#include "policy/policy_internal.h"
#include "policy/policy_wire.h"
#include "policy/policy_worker.h"

#define WORKER_ENV "PROCTOR_POLICY_WORKER" /* value: the agent's pid */
#define WORKER_ID 65534 /* nobody: the worker's uid and gid when the agent runs as root */
#define WORKER_SOCK_FD 3
#define WORKER_SHM_FD 4
#define POLICY_FILE_MAX ((size_t)1 << 20) /* a policy file larger than this is refused */
/* An answer is at most 32 MiB of strings and 2^18 values (policy_conv.h). */
#define RESPONSE_MAX ((size_t)64 << 20)
/* Time a call may spend before the policy starts (decoding and pushing a large
 * request): a call ends at most this much after its POLICY_CALL_KILL_MS. */
#define CALL_SETUP_MS 1000
/* A restart (after a kill) runs the top level of files that loaded before, without their
 * examples: it gets this long in all, so that a slow top level cannot make every call slow. */
#define RESTART_DEADLINE_MS 2000
/* After a restart failed, calls use the defaults for this long before trying again. */
#define RESTART_BACKOFF_MS 10000
/* A worker asked to stop (reload, exit) gets this long to exit before SIGKILL. */
#define STOP_WAIT_MS 2000
/* Address space of the worker (not under AddressSanitizer, which reserves terabytes):
 * the Lua heap is capped at 32 MiB, requests at the agent's frame cap. */
#define WORKER_AS_LIMIT ((rlim_t)2 << 30)

#if defined(__SANITIZE_ADDRESS__)
#define WORKER_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define WORKER_SANITIZED 1
#endif
#endif

const struct policy_hook_info policy_hooks[POLICY_HOOK_COUNT] = {
    {"clamp_limits", "limits"},   {"clamp_student", "limits"},    {"choose_ports", "ports"},
    {"map_runtimes", "runtimes"}, {"validate_result", "results"}, {"harden", "hardening"},
    {"size_pool", "pool"},
};

const char *const policy_files[POLICY_FILE_COUNT] = {"limits",  "ports",     "runtimes",
                                                     "results", "hardening", "pool"};

const char *const policy_failure_names[POLICY_FAILURE_COUNT] = {
#define X(name, text) #name,
    POLICY_FAILURES(X)
#undef X
};

const char *const policy_failure_texts[POLICY_FAILURE_COUNT] = {
#define X(name, text) text,
    POLICY_FAILURES(X)
#undef X
};

/** A running policy worker process. */
struct policy_worker {
    pid_t pid;
    int fd;                   /* our end of its socket */
    struct policy_shared *sh; /* mapped shared page */
};

static struct policy_worker *gen_worker(struct policy_host *host, enum policy_hook hook);
static int gen_start(struct policy_gen *gen, const struct policy_config *cfg, bool first, char *err,
                     size_t errlen);
static int read_policy_files(const char *dir, struct policy_gen *gen, char *err, size_t errlen);
static void worker_stop(struct policy_worker *w);
static void worker_kill(struct policy_worker *w, char *where, size_t wherelen);

/* ---- generations and calls ------------------------------------------------ */

struct policy_gen *policy_worker_gen_new(const char *dir, const struct policy_config *cfg,
                                         char *err, size_t errlen)
{
    struct policy_gen *gen = xcalloc(1, sizeof *gen);
    int ret = dir ? read_policy_files(dir, gen, err, errlen) : 0;
    bool any = false;
    for (size_t i = 0; i < POLICY_FILE_COUNT; i++)
        any = any || gen->paths[i];
    if (!ret && any)
        ret = gen_start(gen, cfg, true, err, errlen);
    if (ret) {
        policy_worker_gen_free(gen);
        gen = NULL;
    }
    return gen;
}

void policy_worker_gen_free(struct policy_gen *gen)
{
    if (!gen)
        return;
    worker_stop(gen->w);
    for (size_t i = 0; i < POLICY_FILE_COUNT; i++) {
        free(gen->paths[i]);
        free(gen->texts[i]);
    }
    free(gen);
}

void policy_worker_request_start(struct buf *b, enum policy_hook hook)
{
    wire_u8(b, POLICY_OP_CALL);
    wire_map(b, 2);
    wire_key(b, "hook");
    wire_key(b, policy_hooks[hook].fn);
    wire_key(b, "request"); // the caller appends the request's map
}

void policy_worker_reply_done(struct policy_reply *rep)
{
    value_deinit(&rep->v);
    free(rep->msg);
    rep->msg = NULL;
}

bool policy_failure_by_name(const char *name, enum policy_failure *kind)
{
    for (size_t k = 0; name && k < POLICY_FAILURE_COUNT; k++) {
        if (!strcmp(name, policy_failure_names[k])) {
            *kind = (enum policy_failure)k;
            return true;
        }
    }
    return false;
}

void policy_worker_report_failure(struct policy_host *host, enum policy_hook hook,
                                  enum policy_failure kind, const char *msg, const char *trace)
{
    struct policy_gen *gen = host->gen;
    host->failures++;
    util_strlcpy(host->last_failure, msg ? msg : "", sizeof host->last_failure);
    metric_add2(METRIC_POLICY_FAILURES, policy_hooks[hook].fn, policy_failure_names[kind], 1);
    if (gen->logged[hook] & (1u << kind))
        return;
    gen->logged[hook] |= 1u << kind;
    // The file the hook comes from: the admin's (its path), or else the shipped one.
    const char *file = NULL;
    for (size_t i = 0; i < POLICY_FILE_COUNT; i++)
        if (!strcmp(policy_files[i], policy_hooks[hook].file))
            file = gen->paths[i];
    char builtin[64];
    if (!file) {
        snprintf(builtin, sizeof builtin, POLICY_BUILTIN_PREFIX "%s.lua", policy_hooks[hook].file);
        file = builtin;
    }
    log_warn_event(LOG_POLICY, "policy_failure",
                   LOG_FIELDS(LOG_STR("hook", policy_hooks[hook].fn),
                              LOG_STR("kind", policy_failure_names[kind]), LOG_STR("file", file),
                              LOG_UINT("generation", host->generation), LOG_STR("error", msg)),
                   "policy generation %" PRIu64 ": %s() %s, using the built-in default "
                   "(logged once per generation): %s",
                   host->generation, policy_hooks[hook].fn, policy_failure_texts[kind], msg);
    if (trace && trace[0])
        log_debug(LOG_POLICY, "%s", trace);
}

bool policy_worker_call(struct policy_host *host, enum policy_hook hook, const struct buf *req,
                        char *reason, size_t reasonlen, struct policy_reply *rep)
{
    struct policy_gen *gen = host->gen;
    if (!gen->has_hook[hook])
        return false;
    struct policy_worker *w = gen_worker(host, hook);
    if (!w)
        return false;
    size_t len = 0;
    uint64_t now = util_now_ms();
    struct wire_deadline dl = {now + POLICY_CALL_KILL_MS, &w->sh->deadline_ms,
                               POLICY_WORKER_GRACE_MS, now + POLICY_CALL_KILL_MS + CALL_SETUP_MS};
    int ret = wire_send(w->fd, req, &dl);
    if (!ret)
        ret = wire_recv(w->fd, &rep->msg, &len, RESPONSE_MAX, &dl);
    struct wire_rd rd;
    wire_rd_init(&rd, rep->msg, len);
    value_set_nil(&rep->v);
    if (!ret && (wire_get_value(&rd, &rep->v) || rd.off != rd.len || rep->v.type != VALUE_MAP))
        ret = -EPROTO;
    // The reply, by name: decided, verdict, reason (refused), failure, message and trace
    // (not decided), source and line (who answered), answer (decided with verdict 0).
    bool decided = policy_fields_bool(&rep->v, "decided", false);
    rep->verdict = (int)policy_fields_int(&rep->v, "verdict", -EPROTO);
    const char *refusal = policy_fields_str(&rep->v, "reason");
    enum policy_failure kind = POLICY_FAILURE_WORKER;
    bool kind_ok = policy_failure_by_name(policy_fields_str(&rep->v, "failure"), &kind);
    const char *msg = policy_fields_str(&rep->v, "message");
    const char *trace = policy_fields_str(&rep->v, "trace");
    rep->source = policy_fields_str(&rep->v, "source");
    rep->line = (int)policy_fields_int(&rep->v, "line", 0);
    // Ours to take apart (a result's maps are moved out of it, not copied).
    rep->answer = (struct value *)value_map_get(&rep->v, "answer");
    if (!ret &&
        ((decided && rep->verdict != 0 && rep->verdict != -EPERM) ||
         (decided && rep->verdict == -EPERM && !refusal) ||
         (decided && rep->verdict == 0 && (!rep->answer || rep->answer->type != VALUE_MAP)) ||
         (!decided && (!kind_ok || !msg))))
        ret = -EPROTO;
    if (ret) {
        char where[POLICY_LOCATION_MAX], text[POLICY_REASON_MAX + POLICY_LOCATION_MAX];
        worker_kill(w, where, sizeof where);
        gen->w = NULL;
        if (ret == -ETIMEDOUT) {
            util_err(text, sizeof text,
                     "%s: no answer within %d ms (stuck in a library function?); the policy "
                     "worker was killed",
                     where[0] ? where : policy_hooks[hook].file, POLICY_CALL_KILL_MS);
            policy_worker_report_failure(host, hook, POLICY_FAILURE_DEADLINE, text, NULL);
        } else {
            util_err(text, sizeof text, "%s: the policy worker failed (%s)",
                     where[0] ? where : policy_hooks[hook].file, strerror(-ret));
            policy_worker_report_failure(host, hook, POLICY_FAILURE_WORKER, text, NULL);
        }
        return false;
    }
    if (!decided) {
        policy_worker_report_failure(host, hook, kind, msg, trace);
        return false;
    }
    if (rep->verdict == -EPERM)
        util_strlcpy(reason, refusal, reasonlen);
    return true;
}

/* ---- worker processes ------------------------------------------------------ */

// The worker's side of the spawn: runs before main() of whatever binary this
// is (proctord, proctor, a test) when the agent started it as its worker.
__attribute__((constructor)) static void worker_entry(void)
{
    const char *e = getenv(WORKER_ENV);
    if (!e)
        return;
    pid_t agent = (pid_t)strtol(e, NULL, 10);
    unsetenv(WORKER_ENV);
    // The worker needs nothing the agent holds but its socket and shared page.
    close_range(WORKER_SHM_FD + 1, ~0U, 0);
    // Nor the agent's privileges: it reads no file and starts no process, so a
    // policy that broke out of the sandbox would be nobody, with no way back up.
    if (geteuid() == 0 && (setgroups(0, NULL) != 0 || setresgid(WORKER_ID, WORKER_ID, WORKER_ID) ||
                           setresuid(WORKER_ID, WORKER_ID, WORKER_ID)))
        _exit(1);
    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
    prctl(PR_SET_NAME, "proctor-policy", 0, 0, 0); // in ps and top, rather than "exe"
    prctl(PR_SET_DUMPABLE, 1, 0, 0, 0); // a change of uid clears it; the sanitizers need it
    // Dies with the agent (set after the change of uid, which clears it);
    // ignores the terminal's and the admin's signals (the agent stops it by
    // closing its socket, or kills it).
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != agent)
        _exit(1);
    signal(SIGINT, SIG_IGN);
    signal(SIGTERM, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    signal(SIGPIPE, SIG_IGN);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    struct rlimit no_core = {0, 0};
    setrlimit(RLIMIT_CORE, &no_core);
#ifndef WORKER_SANITIZED
    struct rlimit as = {WORKER_AS_LIMIT, WORKER_AS_LIMIT};
    setrlimit(RLIMIT_AS, &as);
#endif
    struct policy_shared *sh =
        mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED, WORKER_SHM_FD, 0);
    int status = sh == MAP_FAILED ? 1 : policy_worker_serve(WORKER_SOCK_FD, sh);
    exit(status);
}

static void worker_free(struct policy_worker *w)
{
    if (w->fd >= 0)
        close(w->fd);
    if (w->sh && w->sh != MAP_FAILED)
        munmap(w->sh, sizeof *w->sh);
    free(w);
}

static void worker_reap(struct policy_worker *w, bool kill_now)
{
    if (w->pid <= 0)
        return;
    if (kill_now)
        kill(w->pid, SIGKILL);
    while (waitpid(w->pid, NULL, 0) < 0 && errno == EINTR)
        ;
    w->pid = 0;
}

// Stops a worker: closing our side of the socket is its normal end; one that
// does not exit within STOP_WAIT_MS is killed. NULL is a no-op.
static void worker_stop(struct policy_worker *w)
{
    if (!w)
        return;
    bool exited = false;
    if (w->pid > 0 && shutdown(w->fd, SHUT_WR) == 0) {
        uint64_t deadline = util_now_ms() + STOP_WAIT_MS;
        char sink[256];
        for (;;) {
            uint64_t now = util_now_ms();
            struct pollfd p = {.fd = w->fd, .events = POLLIN};
            if (now >= deadline || poll(&p, 1, (int)(deadline - now)) == 0)
                break;
            ssize_t n = read(w->fd, sink, sizeof sink);
            if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) {
                exited = true; // its end closed: it is exiting
                break;
            }
        }
    }
    worker_reap(w, !exited);
    worker_free(w);
}

// Kills a worker at once (stuck, dead or confused) and gives the last file:line
// it recorded in where (NULL is a no-op).
static void worker_kill(struct policy_worker *w, char *where, size_t wherelen)
{
    if (where)
        where[0] = '\0';
    if (!w)
        return;
    worker_reap(w, true);
    if (where && w->sh) {
        // Bounded by the page: the worker may have died in the middle of writing it.
        size_t n = strnlen(w->sh->where, sizeof w->sh->where);
        if (n >= wherelen)
            n = wherelen - 1;
        memcpy(where, w->sh->where, n);
        where[n] = '\0';
    }
    worker_free(w);
}

// Starts /proc/self/exe as a policy worker. NULL with err on failure.
static struct policy_worker *worker_spawn(char *err, size_t errlen)
{
    extern char **environ;
    struct policy_worker *w = xcalloc(1, sizeof *w);
    int sv[2] = {-1, -1}, shm = -1, child_sock = -1, child_shm = -1, ret = 0;
    posix_spawn_file_actions_t fa;
    bool fa_ready = false;
    char **envp = NULL;
    w->fd = -1;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        ret = -errno;
    if (!ret && (shm = memfd_create("proctor-policy", MFD_CLOEXEC)) < 0)
        ret = -errno;
    if (!ret && ftruncate(shm, sizeof *w->sh) != 0)
        ret = -errno;
    if (!ret) {
        w->sh = mmap(NULL, sizeof *w->sh, PROT_READ | PROT_WRITE, MAP_SHARED, shm, 0);
        if (w->sh == MAP_FAILED) {
            w->sh = NULL;
            ret = -errno;
        }
    }
    // Above the numbers the child gets, so that its dup2 always clears close-on-exec.
    if (!ret && ((child_sock = fcntl(sv[1], F_DUPFD_CLOEXEC, 10)) < 0 ||
                 (child_shm = fcntl(shm, F_DUPFD_CLOEXEC, 10)) < 0))
        ret = -errno;
    if (!ret) {
        fa_ready = posix_spawn_file_actions_init(&fa) == 0;
        if (!fa_ready || posix_spawn_file_actions_adddup2(&fa, child_sock, WORKER_SOCK_FD) ||
            posix_spawn_file_actions_adddup2(&fa, child_shm, WORKER_SHM_FD))
            ret = -ENOMEM;
    }
    if (!ret) {
        size_t n = 0;
        while (environ && environ[n])
            n++;
        envp = xcalloc(n + 3, sizeof *envp);
        size_t k = 0;
        for (size_t i = 0; i < n; i++)
            if (strncmp(environ[i], WORKER_ENV "=", sizeof WORKER_ENV) &&
                strncmp(environ[i], "PROCTOR_LOG_FORMAT=", 19))
                envp[k++] = environ[i];
        // The worker writes to the agent's stderr: in the agent's format (--log-format).
        envp[k++] = log_get_format() == LOG_FORMAT_JSON ? "PROCTOR_LOG_FORMAT=json"
                                                        : "PROCTOR_LOG_FORMAT=text";
        envp[k] = xasprintf("%s=%ld", WORKER_ENV, (long)getpid());
        char *argv[] = {"proctor-policy-worker", NULL};
        pid_t pid;
        int rc = posix_spawn(&pid, "/proc/self/exe", &fa, NULL, argv, envp);
        if (rc)
            ret = -rc;
        else
            w->pid = pid;
        free(envp[k]);
        free(envp);
    }
    if (fa_ready)
        posix_spawn_file_actions_destroy(&fa);
    int close_fds[] = {sv[1], shm, child_sock, child_shm};
    for (size_t i = 0; i < ARRAY_SIZE(close_fds); i++)
        if (close_fds[i] >= 0)
            close(close_fds[i]);
    w->fd = sv[0];
    if (ret) {
        util_err(err, errlen, "cannot start the policy worker: %s", strerror(-ret));
        worker_kill(w, NULL, 0);
        w = NULL;
    }
    return w;
}

static enum log_level current_log_level(void)
{
    enum log_level l = LOG_LEVEL_DEBUG;
    while (l < LOG_LEVEL_ERROR && !log_enabled(l))
        l++;
    return l;
}

// Starts gen's worker and loads gen's texts into it: 0, or -EINVAL with err.
// A load that takes longer than the worker's budget for it (plus a grace)
// is stopped by killing the worker, and err names the last file:line.
static int gen_start(struct policy_gen *gen, const struct policy_config *cfg, bool first, char *err,
                     size_t errlen)
{
    struct buf b = {0};
    char *msg = NULL;
    size_t len = 0;
    struct policy_worker *w = worker_spawn(err, errlen);
    if (!w)
        return -EINVAL;
    struct value load, rep;
    value_set_map(&load);
    value_set_nil(&rep);
    struct value *config = value_map_put(&load, "config");
    value_set_map(config);
    policy_fields_put(config, &policy_fields_config, cfg);
    value_set_int(value_map_put(&load, "log_level"), (int64_t)current_log_level());
    value_set_bool(value_map_put(&load, "examples"), first);
    value_set_bool(value_map_put(&load, "quiet"), !first);
    struct value *files = value_map_put(&load, "files");
    value_set_map(files);
    for (size_t i = 0; i < POLICY_FILE_COUNT; i++) {
        if (!gen->paths[i])
            continue;
        struct value *f = value_map_put(files, policy_files[i]);
        value_set_map(f);
        value_set_str(value_map_put(f, "path"), gen->paths[i]);
        value_set_strn(value_map_put(f, "text"), gen->texts[i], gen->lens[i]);
    }
    wire_u8(&b, POLICY_OP_LOAD);
    wire_value(&b, &load);
    value_deinit(&load);
    // Each file's load moves sh->deadline_ms; starting the process is bounded too,
    // and so is the whole load whatever the worker writes in its page.
    uint64_t now = util_now_ms(), per_file = POLICY_LOAD_DEADLINE_MS + POLICY_WORKER_GRACE_MS;
    struct wire_deadline dl = {now + per_file, &w->sh->deadline_ms, POLICY_WORKER_GRACE_MS,
                               now + (POLICY_FILE_COUNT + 1) * per_file};
    if (!first)
        dl = (struct wire_deadline){now + RESTART_DEADLINE_MS, NULL, 0, 0};
    int ret = wire_send(w->fd, &b, &dl);
    if (!ret)
        ret = wire_recv(w->fd, &msg, &len, RESPONSE_MAX, &dl);
    struct wire_rd r;
    wire_rd_init(&r, msg, len);
    if (!ret && (wire_get_value(&r, &rep) || r.off != r.len || rep.type != VALUE_MAP))
        ret = -EPROTO;
    // {ok, error, hooks = {fn = true}}
    bool ok = policy_fields_bool(&rep, "ok", false);
    const char *why = policy_fields_str(&rep, "error");
    const struct value *hooks = value_map_get(&rep, "hooks");
    for (size_t h = 0; !ret && h < POLICY_HOOK_COUNT; h++)
        gen->has_hook[h] = hooks && policy_fields_bool(hooks, policy_hooks[h].fn, false);
    if (!ret && !why)
        ret = -EPROTO;
    if (ret) {
        char where[POLICY_LOCATION_MAX];
        worker_kill(w, where, sizeof where);
        if (ret == -ETIMEDOUT && !first)
            util_err(err, errlen,
                     "%s: restarting the policy worker took more than %d ms (it was killed)",
                     where[0] ? where : "policies", RESTART_DEADLINE_MS);
        else if (ret == -ETIMEDOUT)
            util_err(err, errlen,
                     "%s: loading did not finish within its deadline (%d ms per file; the policy "
                     "worker was killed)",
                     where[0] ? where : "policies", POLICY_LOAD_DEADLINE_MS);
        else
            util_err(err, errlen, "%s: the policy worker failed while loading (%s)",
                     where[0] ? where : "policies", strerror(-ret));
        w = NULL;
    } else if (!ok) {
        util_err(err, errlen, "%s", why);
        worker_stop(w);
        w = NULL;
        ret = -EINVAL;
    }
    gen->w = w;
    value_deinit(&rep);
    free(msg);
    free(b.data);
    return ret ? -EINVAL : 0;
}

static int read_policy_files(const char *dir, struct policy_gen *gen, char *err, size_t errlen)
{
    int ret = 0;
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        util_err(err, errlen, "%s: not a readable directory", dir);
        return -EINVAL;
    }
    // Absolute chunk names, so every file:line the admin reads is unambiguous.
    char *real = realpath(dir, NULL);
    if (real)
        dir = real;
    for (size_t i = 0; i < POLICY_FILE_COUNT; i++) {
        char *path = xasprintf("%s/%s.lua", dir, policy_files[i]);
        ret = util_read_file(path, POLICY_FILE_MAX, &gen->texts[i], &gen->lens[i]);
        if (ret == -ENOENT) {
            ret = 0;
            log_info(LOG_POLICY, "%s: absent, the shipped file (built in) decides its hooks", path);
            free(path);
            continue;
        }
        if (ret) {
            util_err(err, errlen, "%s: %s", path,
                     ret == -ENOMEM ? "larger than 1 MiB" : strerror(-ret));
            free(path);
            break;
        }
        gen->paths[i] = path;
    }
    free(real);
    return ret ? -EINVAL : 0;
}

// A worker of the current generation, started again when the last one was
// killed (at most once per RESTART_BACKOFF_MS while restarts fail).
static struct policy_worker *gen_worker(struct policy_host *host, enum policy_hook hook)
{
    struct policy_gen *gen = host->gen;
    if (gen->w)
        return gen->w;
    char err[POLICY_REASON_MAX + POLICY_LOCATION_MAX];
    if (util_now_ms() < gen->retry_at_ms) {
        policy_worker_report_failure(host, hook, POLICY_FAILURE_WORKER,
                                     "the policy worker could not be restarted; trying again later",
                                     NULL);
        return NULL;
    }
    if (gen_start(gen, &host->cfg, false, err, sizeof err)) {
        gen->retry_at_ms = util_now_ms() + RESTART_BACKOFF_MS;
        policy_worker_report_failure(host, hook, POLICY_FAILURE_WORKER, err, NULL);
        return NULL;
    }
    log_info(LOG_POLICY, "policy worker of generation %" PRIu64 " restarted", host->generation);
    return gen->w;
}
