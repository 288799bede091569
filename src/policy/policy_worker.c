/*
 * The agent's side of the policy host: the public API of policy.h.
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
#include "core/util.h"
#include "core/value.h"
#include "policy/policy.h"
#include "policy/policy_internal.h"
#include "policy/policy_wire.h"

#define WORKER_ENV "PROCTOR_POLICY_WORKER" /* value: the agent's pid */
#define WORKER_ID 65534 /* nobody: the worker's uid and gid when the agent runs as root */
#define WORKER_SOCK_FD 3
#define WORKER_SHM_FD 4
#define POLICY_FILE_MAX ((size_t)1 << 20) /* a policy file larger than this is refused */
/* An answer is at most 32 MiB of strings and 2^18 values (policy_host.c). */
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
};

const char *const policy_files[POLICY_FILE_COUNT] = {"limits", "ports", "runtimes", "results",
                                                     "hardening"};

const char *const policy_failure_texts[POLICY_FAILURE_COUNT] = {
#define X(name, text) text,
    POLICY_FAILURES(X)
#undef X
};

/** A running policy worker process. */
struct worker {
    pid_t pid;
    int fd;                   /* our end of its socket */
    struct policy_shared *sh; /* mapped shared page */
};

/** One generation: the texts its workers load, and its worker. */
struct generation {
    char *paths[POLICY_FILE_COUNT]; /* NULL: no such file */
    char *texts[POLICY_FILE_COUNT];
    size_t lens[POLICY_FILE_COUNT];
    bool has_hook[POLICY_HOOK_COUNT];
    unsigned logged[POLICY_HOOK_COUNT]; /* failure kinds already logged */
    struct worker *w;     /* NULL: not running (killed: started again at the next call) */
    uint64_t retry_at_ms; /* after a failed restart, no new one before */
};

struct policy_host {
    char *dir; /* NULL: built-in defaults only */
    struct policy_config cfg;
    struct generation *gen;
    uint64_t generation;
    uint64_t failures;
};

/** The answer of one call, decided (its header is read; rd is at the answer). */
struct reply {
    char *msg;
    struct wire_rd rd;
    int verdict;
};

static struct generation *gen_new(const char *dir, const struct policy_config *cfg, char *err,
                                  size_t errlen);
static void gen_free(struct generation *gen);
static bool host_call(struct policy_host *host, enum policy_hook hook, const struct buf *req,
                      char *reason, size_t reasonlen, struct reply *rep);
static void reply_done(struct reply *rep);
static void report_failure(struct policy_host *host, enum policy_hook hook,
                           enum policy_failure kind, const char *msg, const char *trace);
static void request_start(struct buf *b, enum policy_hook hook);

/* ---- public: lifecycle ---------------------------------------------------- */

struct policy_host *policy_host_new(const char *dir, const struct policy_config *cfg, char *err,
                                    size_t errlen)
{
    struct generation *gen = gen_new(dir, cfg, err, errlen);
    if (!gen)
        return NULL;
    struct policy_host *host = xcalloc(1, sizeof *host);
    host->dir = dir ? xstrdup(dir) : NULL;
    host->cfg = *cfg;
    host->gen = gen;
    host->generation = 1;
    log_info(LOG_POLICY, "policies loaded from %s (generation 1)", dir ? dir : "(built-in)");
    return host;
}

void policy_host_free(struct policy_host *host)
{
    if (!host)
        return;
    gen_free(host->gen);
    free(host->dir);
    free(host);
}

int policy_host_reload(struct policy_host *host, char *err, size_t errlen)
{
    char why[POLICY_REASON_MAX + POLICY_LOCATION_MAX];
    struct generation *gen = gen_new(host->dir, &host->cfg, why, sizeof why);
    if (!gen) {
        log_error(LOG_POLICY, "policy reload failed, generation %" PRIu64 " stays: %s",
                  host->generation, why);
        util_err(err, errlen, "%s", why);
        return -EINVAL;
    }
    gen_free(host->gen);
    host->gen = gen;
    host->generation++;
    log_info(LOG_POLICY, "policies reloaded from %s (generation %" PRIu64 ")",
             host->dir ? host->dir : "(built-in)", host->generation);
    return 0;
}

int policy_check_dir(const char *dir, char *err, size_t errlen)
{
    if (PROCTOR_FAILS(dir != NULL)) {
        util_err(err, errlen, "no policy directory given");
        return -EINVAL;
    }
    struct policy_config cfg = {.concurrency = 1};
    struct generation *gen = gen_new(dir, &cfg, err, errlen);
    if (!gen)
        return -EINVAL;
    gen_free(gen);
    return 0;
}

uint64_t policy_host_generation(const struct policy_host *host)
{
    return host->generation;
}

uint64_t policy_host_failures(const struct policy_host *host)
{
    return host->failures;
}

/* ---- public: decisions ------------------------------------------------------ */

int policy_limits(struct policy_host *host, const struct policy_limits_req *req,
                  struct policy_limits *out, char *reason, size_t reasonlen)
{
    struct buf b = {0};
    struct reply rep = {0};
    struct policy_limits_req copy = *req;
    copy.environment_type = copy.environment = NULL; // pointers mean nothing to the worker
    request_start(&b, POLICY_HOOK_LIMITS);
    wire_raw(&b, &copy, sizeof copy);
    wire_str(&b, req->environment_type);
    wire_str(&b, req->environment);
    int ret = 0;
    if (host_call(host, POLICY_HOOK_LIMITS, &b, reason, reasonlen, &rep)) {
        ret = rep.verdict;
        if (!ret)
            wire_get_raw(&rep.rd, out, sizeof *out);
    } else {
        ret = policy_default_limits(&host->cfg, req, out, reason, reasonlen);
    }
    if (!ret)
        policy_cap_limits(&host->cfg, out);
    reply_done(&rep);
    free(b.data);
    return ret;
}

int policy_student_limits(struct policy_host *host, const struct policy_student_req *req,
                          struct policy_student_limits *out, char *reason, size_t reasonlen)
{
    struct buf b = {0};
    struct reply rep = {0};
    struct policy_student_req copy = *req;
    copy.environment = NULL;
    request_start(&b, POLICY_HOOK_STUDENT);
    wire_raw(&b, &copy, sizeof copy);
    wire_str(&b, req->environment);
    int ret = 0;
    if (host_call(host, POLICY_HOOK_STUDENT, &b, reason, reasonlen, &rep)) {
        ret = rep.verdict;
        if (!ret)
            wire_get_raw(&rep.rd, out, sizeof *out);
    } else {
        ret = policy_default_student(req, out);
    }
    if (!ret)
        policy_cap_student(req, out);
    reply_done(&rep);
    free(b.data);
    return ret;
}

int policy_ports(struct policy_host *host, const struct policy_ports_req *req, uint16_t *chosen,
                 char *reason, size_t reasonlen)
{
    if (PROCTOR_FAILS(req->count <= POLICY_MAX_PORTS)) {
        util_err(reason, reasonlen, "%s", POLICY_TEXT_NO_PORTS);
        return -EPERM;
    }
    struct buf b = {0};
    struct reply rep = {0};
    request_start(&b, POLICY_HOOK_PORTS);
    wire_str(&b, req->job_id);
    wire_i64(&b, (int64_t)req->count);
    wire_i64(&b, (int64_t)req->nfree);
    wire_raw(&b, req->free, req->nfree * sizeof *req->free);
    int ret = 0;
    bool decided = host_call(host, POLICY_HOOK_PORTS, &b, reason, reasonlen, &rep);
    if (decided && rep.verdict == 0) {
        char why[128];
        wire_get_raw(&rep.rd, chosen, req->count * sizeof *chosen);
        // The worker checked the choice; the pool is ours, so check it again.
        if (rep.rd.bad || !policy_ports_valid(req, chosen, why, sizeof why)) {
            report_failure(host, POLICY_HOOK_PORTS, POLICY_FAILURE_WORKER,
                           "the policy worker answered ports outside the pool", NULL);
            decided = false;
        }
    }
    if (decided)
        ret = rep.verdict;
    else
        ret = policy_default_ports(req, chosen, reason, reasonlen);
    reply_done(&rep);
    free(b.data);
    return ret;
}

int policy_runtimes(struct policy_host *host, const char *const *names, size_t nnames, bool ssh,
                    struct policy_runtime *out, size_t max, size_t *nout)
{
    struct buf b = {0};
    struct reply rep = {0};
    char refusal[POLICY_REASON_MAX];
    size_t wmax = max < 256 ? max : 256; // the worker's bound on this answer
    request_start(&b, POLICY_HOOK_RUNTIMES);
    wire_u8(&b, ssh);
    wire_i64(&b, (int64_t)wmax);
    wire_i64(&b, (int64_t)nnames);
    for (size_t i = 0; i < nnames; i++)
        wire_str(&b, names[i] ? names[i] : "");
    *nout = 0;
    bool decided = host_call(host, POLICY_HOOK_RUNTIMES, &b, refusal, sizeof refusal, &rep);
    if (decided && rep.verdict == 0) {
        int64_t n = wire_get_i64(&rep.rd);
        bool ok = !rep.rd.bad && n >= 0 && (size_t)n <= wmax;
        for (int64_t i = 0; ok && i < n; i++) {
            wire_get_raw(&rep.rd, &out[i], sizeof out[i]);
            out[i].runtime[sizeof out[i].runtime - 1] = '\0';
            out[i].envtype[sizeof out[i].envtype - 1] = '\0';
            ok = !rep.rd.bad && policy_envtype_valid(out[i].envtype);
        }
        if (ok) {
            *nout = (size_t)n;
        } else {
            report_failure(host, POLICY_HOOK_RUNTIMES, POLICY_FAILURE_WORKER,
                           "the policy worker answered a malformed runtime list", NULL);
            decided = false;
        }
    } else if (decided) { // this hook never refuses: a refusal is a broken answer
        log_warn(LOG_POLICY, "map_runtimes() refused (%s); using the built-in default", refusal);
        decided = false;
    }
    if (!decided)
        policy_default_runtimes(names, nnames, ssh, out, max, nout);
    reply_done(&rep);
    free(b.data);
    return 0;
}

static bool take_results(struct wire_rd *rd, struct policy_result *out)
{
    const char *result = wire_get_str(rd, NULL), *text = wire_get_str(rd, NULL);
    const char *state = wire_get_str(rd, NULL);
    out->grade = wire_get_f64(rd);
    if (rd->bad || !result || !text || !state || !policy_result_name_valid(result))
        return false;
    out->result = xstrdup(result);
    out->text = xstrdup(text);
    out->state = xstrdup(state);
    // Each is valid (a nil value) even when the message ends early.
    wire_get_value(rd, &out->problems);
    wire_get_value(rd, &out->tests);
    wire_get_value(rd, &out->custom);
    return !rd->bad && out->problems.type == VALUE_MAP && out->tests.type == VALUE_MAP &&
           out->custom.type == VALUE_MAP;
}

/**
 * What every accepted result must be for the backend, whoever decided it:
 * problems, tests and custom keyed by strings (a container can send msgpack
 * maps with integer keys, which the backend cannot take). 0 or -EPERM.
 */
static int result_keys_check(const struct policy_result *r, char *reason, size_t reasonlen)
{
    const struct {
        const char *name;
        const struct value *map;
    } maps[] = {{"problems", &r->problems}, {"tests", &r->tests}, {"custom", &r->custom}};
    for (size_t m = 0; m < ARRAY_SIZE(maps); m++) {
        const struct value *v = maps[m].map;
        for (size_t i = 0; v->type == VALUE_MAP && i < v->u.m.len; i++) {
            if (v->u.m.items[i].key.type != VALUE_STR) {
                util_err(reason, reasonlen, "%s: a key of type %s is not a string", maps[m].name,
                         value_type_name(v->u.m.items[i].key.type));
                return -EPERM;
            }
        }
    }
    return 0;
}

int policy_results(struct policy_host *host, const struct value *raw, const char *prev_state,
                   struct policy_result *out, char *reason, size_t reasonlen)
{
    struct buf b = {0};
    struct reply rep = {0};
    request_start(&b, POLICY_HOOK_RESULTS);
    wire_u8(&b, raw != NULL);
    if (raw)
        wire_value(&b, raw);
    wire_str(&b, prev_state);
    memset(out, 0, sizeof *out);
    int ret = 0;
    bool decided = false;
    // A result larger than the policies' heap cannot be handed to them: the
    // default decides without copying it to the worker.
    if (b.len > POLICY_STATE_MEMORY_CAP && host->gen->has_hook[POLICY_HOOK_RESULTS]) {
        char text[128];
        util_err(text, sizeof text, "results.lua: a result of %zu bytes does not fit in %zu MiB",
                 b.len, POLICY_STATE_MEMORY_CAP >> 20);
        report_failure(host, POLICY_HOOK_RESULTS, POLICY_FAILURE_MEMORY, text, NULL);
    } else {
        decided = host_call(host, POLICY_HOOK_RESULTS, &b, reason, reasonlen, &rep);
    }
    if (decided && rep.verdict == 0 && !take_results(&rep.rd, out)) {
        report_failure(host, POLICY_HOOK_RESULTS, POLICY_FAILURE_WORKER,
                       "the policy worker answered a malformed result", NULL);
        decided = false;
    }
    if (decided) {
        ret = rep.verdict;
        if (ret)
            policy_result_deinit(out);
    } else {
        policy_result_deinit(out); // what a rejected answer left behind
        ret = policy_default_results(raw, prev_state, out, reason, reasonlen);
    }
    if (!ret) {
        ret = result_keys_check(out, reason, reasonlen);
        if (ret)
            policy_result_deinit(out);
    }
    reply_done(&rep);
    free(b.data);
    return ret;
}

int policy_hardening(struct policy_host *host, const struct policy_hardening_req *req,
                     struct policy_hardening *out, char *reason, size_t reasonlen)
{
    struct buf b = {0};
    struct reply rep = {0};
    struct policy_hardening_req copy = *req;
    copy.environment = NULL;
    request_start(&b, POLICY_HOOK_HARDENING);
    wire_raw(&b, &copy, sizeof copy);
    wire_str(&b, req->environment);
    int ret = 0;
    bool decided = host_call(host, POLICY_HOOK_HARDENING, &b, reason, reasonlen, &rep);
    if (decided && rep.verdict == 0) {
        wire_get_raw(&rep.rd, out, sizeof *out);
        bool ok = !rep.rd.bad && out->ncap_drop <= POLICY_MAX_CAPS;
        for (size_t i = 0; ok && i < out->ncap_drop; i++) {
            out->cap_drop[i][sizeof out->cap_drop[i] - 1] = '\0';
            ok = policy_cap_name_valid(out->cap_drop[i]);
        }
        if (!ok) {
            report_failure(host, POLICY_HOOK_HARDENING, POLICY_FAILURE_WORKER,
                           "the policy worker answered malformed hardening", NULL);
            decided = false;
        }
    }
    if (decided)
        ret = rep.verdict;
    else
        policy_default_hardening(req, out);
    if (!ret)
        policy_cap_hardening(&host->cfg, req, out);
    reply_done(&rep);
    free(b.data);
    return ret;
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

static void worker_free(struct worker *w)
{
    if (w->fd >= 0)
        close(w->fd);
    if (w->sh && w->sh != MAP_FAILED)
        munmap(w->sh, sizeof *w->sh);
    free(w);
}

static void worker_reap(struct worker *w, bool kill_now)
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
static void worker_stop(struct worker *w)
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
static void worker_kill(struct worker *w, char *where, size_t wherelen)
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
static struct worker *worker_spawn(char *err, size_t errlen)
{
    extern char **environ;
    struct worker *w = xcalloc(1, sizeof *w);
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
        envp = xcalloc(n + 2, sizeof *envp);
        size_t k = 0;
        for (size_t i = 0; i < n; i++)
            if (strncmp(environ[i], WORKER_ENV "=", sizeof WORKER_ENV))
                envp[k++] = environ[i];
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
static int gen_start(struct generation *gen, const struct policy_config *cfg, bool first, char *err,
                     size_t errlen)
{
    struct buf b = {0};
    char *msg = NULL;
    size_t len = 0;
    struct worker *w = worker_spawn(err, errlen);
    if (!w)
        return -EINVAL;
    wire_u8(&b, POLICY_OP_LOAD);
    wire_raw(&b, cfg, sizeof *cfg);
    wire_u8(&b, (uint8_t)current_log_level());
    wire_u8(&b, first);  // examples
    wire_u8(&b, !first); // quiet
    for (size_t i = 0; i < POLICY_FILE_COUNT; i++) {
        wire_u8(&b, gen->paths[i] != NULL);
        if (gen->paths[i]) {
            wire_str(&b, gen->paths[i]);
            wire_strn(&b, gen->texts[i], gen->lens[i]);
        }
    }
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
    bool ok = !ret && wire_get_u8(&r);
    const char *why = ret ? NULL : wire_get_str(&r, NULL);
    for (size_t h = 0; !ret && h < POLICY_HOOK_COUNT; h++)
        gen->has_hook[h] = wire_get_u8(&r);
    if (!ret && (r.bad || !why))
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
    free(msg);
    free(b.data);
    return ret ? -EINVAL : 0;
}

static int read_policy_files(const char *dir, struct generation *gen, char *err, size_t errlen)
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
            log_info(LOG_POLICY, "%s: absent, the built-in defaults of its hooks are used", path);
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

// A generation from dir (NULL: no Lua at all, built-in defaults only),
// loaded and validated in a new worker. NULL with err on failure.
static struct generation *gen_new(const char *dir, const struct policy_config *cfg, char *err,
                                  size_t errlen)
{
    struct generation *gen = xcalloc(1, sizeof *gen);
    int ret = dir ? read_policy_files(dir, gen, err, errlen) : 0;
    bool any = false;
    for (size_t i = 0; i < POLICY_FILE_COUNT; i++)
        any = any || gen->paths[i];
    if (!ret && any)
        ret = gen_start(gen, cfg, true, err, errlen);
    if (ret) {
        gen_free(gen);
        gen = NULL;
    }
    return gen;
}

static void gen_free(struct generation *gen)
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

/* ---- calls ------------------------------------------------------------------- */

static void request_start(struct buf *b, enum policy_hook hook)
{
    wire_u8(b, POLICY_OP_CALL);
    wire_u8(b, (uint8_t)hook);
}

static void reply_done(struct reply *rep)
{
    free(rep->msg);
    rep->msg = NULL;
}

static void report_failure(struct policy_host *host, enum policy_hook hook,
                           enum policy_failure kind, const char *msg, const char *trace)
{
    struct generation *gen = host->gen;
    host->failures++;
    if (gen->logged[hook] & (1u << kind))
        return;
    gen->logged[hook] |= 1u << kind;
    log_warn(LOG_POLICY,
             "policy generation %" PRIu64 ": %s() %s, using the built-in default "
             "(logged once per generation): %s",
             host->generation, policy_hooks[hook].fn, policy_failure_texts[kind], msg);
    if (trace && trace[0])
        log_debug(LOG_POLICY, "%s", trace);
}

// A worker of the current generation, started again when the last one was
// killed (at most once per RESTART_BACKOFF_MS while restarts fail).
static struct worker *gen_worker(struct policy_host *host, enum policy_hook hook)
{
    struct generation *gen = host->gen;
    if (gen->w)
        return gen->w;
    char err[POLICY_REASON_MAX + POLICY_LOCATION_MAX];
    if (util_now_ms() < gen->retry_at_ms) {
        report_failure(host, hook, POLICY_FAILURE_WORKER,
                       "the policy worker could not be restarted; trying again later", NULL);
        return NULL;
    }
    if (gen_start(gen, &host->cfg, false, err, sizeof err)) {
        gen->retry_at_ms = util_now_ms() + RESTART_BACKOFF_MS;
        report_failure(host, hook, POLICY_FAILURE_WORKER, err, NULL);
        return NULL;
    }
    log_info(LOG_POLICY, "policy worker of generation %" PRIu64 " restarted", host->generation);
    return gen->w;
}

/**
 * Sends req to the worker and waits for its answer, at most the call's
 * deadline (plus the grace). True when the policy decided (rep->verdict 0
 * with rep->rd at the answer, or -EPERM with the text in reason); false when
 * the caller must use the built-in default (no such hook, or a failure, which
 * is counted and logged once per generation and kind).
 */
static bool host_call(struct policy_host *host, enum policy_hook hook, const struct buf *req,
                      char *reason, size_t reasonlen, struct reply *rep)
{
    struct generation *gen = host->gen;
    if (!gen->has_hook[hook])
        return false;
    struct worker *w = gen_worker(host, hook);
    if (!w)
        return false;
    size_t len = 0;
    uint64_t now = util_now_ms();
    struct wire_deadline dl = {now + POLICY_CALL_KILL_MS, &w->sh->deadline_ms,
                               POLICY_WORKER_GRACE_MS, now + POLICY_CALL_KILL_MS + CALL_SETUP_MS};
    int ret = wire_send(w->fd, req, &dl);
    if (!ret)
        ret = wire_recv(w->fd, &rep->msg, &len, RESPONSE_MAX, &dl);
    wire_rd_init(&rep->rd, rep->msg, len);
    bool decided = !ret && wire_get_u8(&rep->rd);
    rep->verdict = (int)wire_get_i64(&rep->rd);
    const char *refusal = wire_get_str(&rep->rd, NULL);
    enum policy_failure kind = (enum policy_failure)wire_get_u8(&rep->rd);
    const char *msg = wire_get_str(&rep->rd, NULL), *trace = wire_get_str(&rep->rd, NULL);
    if (!ret && (rep->rd.bad || (decided && rep->verdict != 0 && rep->verdict != -EPERM) ||
                 (decided && rep->verdict == -EPERM && !refusal) ||
                 (!decided && (kind >= POLICY_FAILURE_COUNT || !msg))))
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
            report_failure(host, hook, POLICY_FAILURE_DEADLINE, text, NULL);
        } else {
            util_err(text, sizeof text, "%s: the policy worker failed (%s)",
                     where[0] ? where : policy_hooks[hook].file, strerror(-ret));
            report_failure(host, hook, POLICY_FAILURE_WORKER, text, NULL);
        }
        return false;
    }
    if (!decided) {
        report_failure(host, hook, kind, msg, trace);
        return false;
    }
    if (rep->verdict == -EPERM)
        util_strlcpy(reason, refusal, reasonlen);
    return true;
}
