// proctord: process setup, option parsing and wiring between the backend link
// and the agent. Everything that decides anything lives in src/job/.

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend/backend_link.h"
#include "backend/backend_proto.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/util.h"
#include "core/metrics.h"
#include "job/agent.h"
#include "metrics_http.h"
#include "service.h"
#include "policy/policy.h"

#define DISCOVERY_RETRY_MS 5000
#define DRAIN_TIMEOUT_DEFAULT_S 120
// After a second signal: how long removing the containers of abandoned jobs may take.
#define STOP_NOW_MS 20000
#define TXT_DRAIN_EXPIRED                                                                          \
    "The grading agent was shut down before this job could finish. Please submit it again."

struct daemon {
    struct loop *loop;
    struct agent *agent;
    struct backend_link *link;
    const char *friendly_name;
    int64_t concurrency;
    struct value environments; /* last discovery, sent in every hello */
    bool need_hello;           /* the current connection has not had its hello yet */
    bool rediscovering;
    uint64_t retry_timer; /* discovery after a failure */
    bool draining, stopping;
    bool failed;  /* a start-up check failed: exit 1 */
    long running; /* jobs started and not answered yet: the slots in use */
    struct metrics_http *metrics;
    long drain_timeout_s;
    msgpack_sbuffer sb;
};

/** A job took or gave back a slot: systemd's status line and the metrics. */
static void slots_changed(struct daemon *d, long delta)
{
    d->running += delta;
    service_status(d->running, (long)d->concurrency);
    metric_set(METRIC_SLOTS_USED, NULL, (double)d->running);
}

static void send_sb(struct daemon *d)
{
    if (backend_link_send(d->link, &d->sb))
        log_error(LOG_MAIN, "could not queue a message for the backend (queue full?)");
    msgpack_sbuffer_clear(&d->sb);
}

static void sink_started(void *data, const char *job_id)
{
    struct daemon *d = data;
    if (!backend_encode_job_started(&d->sb, job_id))
        send_sb(d);
    msgpack_sbuffer_clear(&d->sb);
    slots_changed(d, +1);
}

static void sink_done(void *data, const struct backend_job_done *done)
{
    struct daemon *d = data;
    int ret = backend_encode_job_done(&d->sb, done);
    if (ret) {
        // Never leave the backend waiting: fall back to a minimal crash report.
        log_error(LOG_MAIN, "job %s: result could not be encoded (%s); reporting a crash",
                  done->job_id, strerror(-ret));
        msgpack_sbuffer_clear(&d->sb);
        struct backend_job_done crash = {
            .job_id = done->job_id,
            .result = "crash",
            .text = "The agent could not encode the result of this job.",
            .state = done->state,
        };
        ret = backend_encode_job_done(&d->sb, &crash);
    }
    if (!ret) {
        // Results can be large: hand the encoded buffer over, no copy.
        size_t len = d->sb.size;
        char *buf = msgpack_sbuffer_release(&d->sb);
        if (backend_link_send_take(d->link, buf, len))
            log_error(LOG_MAIN, "job %s: could not queue the result for the backend", done->job_id);
    }
    msgpack_sbuffer_clear(&d->sb);
    slots_changed(d, -1);
    metric_add(METRIC_JOBS, done->result, 1);
}

static void sink_ssh(void *data, const char *job_id, const char *host, int port, const char *user,
                     const char *password)
{
    struct daemon *d = data;
    if (!backend_encode_ssh_debug(&d->sb, job_id, host, port, user, password))
        send_sb(d);
    msgpack_sbuffer_clear(&d->sb);
}

static void say_hello(struct daemon *d)
{
    int ret = backend_encode_hello(&d->sb, d->friendly_name, d->concurrency, &d->environments);
    if (ret) {
        log_error(LOG_MAIN, "cannot encode the hello: %s", strerror(-ret));
        msgpack_sbuffer_clear(&d->sb);
        return;
    }
    send_sb(d);
    d->need_hello = false;
    log_info(LOG_MAIN, "said hello to the backend (%lld slots)", (long long)d->concurrency);
    if (!d->draining && !d->stopping)
        service_ready(d->running, (long)d->concurrency);
}

static bool same_value(const struct value *x, const struct value *y)
{
    msgpack_sbuffer a, b;
    msgpack_sbuffer_init(&a);
    msgpack_sbuffer_init(&b);
    msgpack_packer pa, pb;
    msgpack_packer_init(&pa, &a, msgpack_sbuffer_write);
    msgpack_packer_init(&pb, &b, msgpack_sbuffer_write);
    bool same = !value_pack(&pa, x) && !value_pack(&pb, y) && a.size == b.size &&
                !memcmp(a.data, b.data, a.size);
    msgpack_sbuffer_destroy(&a);
    msgpack_sbuffer_destroy(&b);
    return same;
}

static void rediscover(struct daemon *d);

static long on_rediscover_timer(struct loop *loop, uint64_t id, void *data)
{
    PROCTOR_UNUSED(loop);
    PROCTOR_UNUSED(id);
    struct daemon *d = data;
    d->retry_timer = 0;
    rediscover(d);
    return LOOP_NOMORE;
}

static void on_discovered(struct agent *a, const struct value *envs, const char *err, void *data)
{
    struct daemon *d = data;
    d->rediscovering = false;
    bool changed = false;
    if (!envs) {
        // The engine may come back: look again later. Meanwhile the old list
        // (if any) stands, and jobs routed to us crash with a clear text.
        log_error(LOG_MAIN, "environment discovery failed: %s; retrying in %d s", err ? err : "?",
                  DISCOVERY_RETRY_MS / 1000);
        if (!d->retry_timer)
            d->retry_timer = loop_timer_add(d->loop, DISCOVERY_RETRY_MS, on_rediscover_timer, d);
    } else {
        changed = !same_value(&d->environments, envs);
        value_deinit(&d->environments);
        value_copy(&d->environments, envs);
    }
    // A new hello is how the backend learns new environments, but it also
    // fails our running jobs: only send one when no job would be lost.
    if (d->need_hello || (changed && agent_job_count(a) == 0))
        say_hello(d);
}

static void rediscover(struct daemon *d)
{
    if (d->rediscovering)
        return;
    d->rediscovering = true;
    if (agent_discover(d->agent, on_discovered, d)) {
        d->rediscovering = false;
        if (d->need_hello)
            say_hello(d);
    }
}

/** A new connection (start, or the backend forgot us): discover, then register. */
static void rediscover_and_hello(struct daemon *d)
{
    d->need_hello = true;
    rediscover(d);
}

static void on_work_dir_checked(struct agent *a, const char *err, void *data)
{
    PROCTOR_UNUSED(a);
    struct daemon *d = data;
    if (err) {
        log_error(LOG_MAIN, "%s", err);
        d->failed = true;
        loop_stop(d->loop);
        return;
    }
    rediscover_and_hello(d);
}

static void on_message(struct backend_link *link, const struct backend_msg *m, void *data)
{
    PROCTOR_UNUSED(link);
    struct daemon *d = data;
    // Ping never gets here: the link answers it itself.
    switch (m->type) {
    case BACKEND_MSG_NEW_JOB:
        agent_new_job(d->agent, &m->new_job);
        break;
    case BACKEND_MSG_KILL_JOB:
        agent_kill_job(d->agent, &m->kill_job);
        break;
    default:
        log_warn(LOG_MAIN, "ignoring unexpected backend message %s",
                 backend_msg_type_name(m->type));
        break;
    }
}

static void on_silence(struct backend_link *link, void *data)
{
    struct daemon *d = data;
    // The backend has forgotten us (restart, or it dropped us): it already
    // failed our jobs, so stop them without reporting, then register anew.
    log_warn(LOG_MAIN, "backend silent for more than %d s: abandoning %zu job(s), reconnecting",
             BACKEND_LINK_SILENCE_MS / 1000, agent_job_count(d->agent));
    agent_abandon_jobs(d->agent);
    backend_link_reconnect(link);
    rediscover_and_hello(d);
}

static void on_sighup(struct loop *loop, int signo, void *data)
{
    PROCTOR_UNUSED(loop);
    PROCTOR_UNUSED(signo);
    struct daemon *d = data;
    log_info(LOG_MAIN, "SIGHUP: reloading policies");
    service_reloading();
    agent_reload_policies(d->agent);
    service_ready(d->running, (long)d->concurrency);
}

static void sink_idle(void *data)
{
    struct daemon *d = data;
    // The last job is answered and its containers removed.
    if (d->draining || d->stopping)
        loop_stop(d->loop);
}

static long on_drain_deadline(struct loop *loop, uint64_t id, void *data)
{
    PROCTOR_UNUSED(loop);
    PROCTOR_UNUSED(id);
    struct daemon *d = data;
    // Jobs that outlive the drain (an SSH debug session lasts 30 min) are
    // stopped and reported; their containers are removed as usual, and the
    // sink's `idle` ends the loop.
    log_warn(LOG_MAIN, "drain deadline (%ld s) reached: stopping %zu job(s)", d->drain_timeout_s,
             agent_job_count(d->agent));
    agent_stop_jobs(d->agent, TXT_DRAIN_EXPIRED);
    return LOOP_NOMORE;
}

static long on_stop_deadline(struct loop *loop, uint64_t id, void *data)
{
    PROCTOR_UNUSED(id);
    struct daemon *d = data;
    log_warn(LOG_MAIN,
             "containers of %zu job(s) not removed within %d s; leaving them to the "
             "next start",
             agent_job_count(d->agent), STOP_NOW_MS / 1000);
    loop_stop(loop);
    return LOOP_NOMORE;
}

/** Second signal, or an interactive ^C: abandon every job, remove its containers, exit. */
static void stop_now(struct daemon *d)
{
    if (d->stopping) {
        loop_stop(d->loop); /* a third signal: exit at once */
        return;
    }
    d->stopping = true;
    service_stopping();
    log_info(LOG_MAIN, "stopping now: removing the containers of %zu job(s)",
             agent_job_count(d->agent));
    agent_abandon_jobs(d->agent);
    agent_close(d->agent); /* and the warm pool's containers */
    if (agent_idle(d->agent)) {
        loop_stop(d->loop);
        return;
    }
    loop_timer_add(d->loop, STOP_NOW_MS, on_stop_deadline, d);
}

static void on_sigterm(struct loop *loop, int signo, void *data)
{
    PROCTOR_UNUSED(loop);
    struct daemon *d = data;
    if (d->draining || signo == SIGINT) {
        stop_now(d);
        return;
    }
    d->draining = true;
    service_stopping();
    agent_close(d->agent);
    log_info(LOG_MAIN,
             "SIGTERM: draining %zu running job(s) for at most %ld s; send it again to stop now",
             agent_job_count(d->agent), d->drain_timeout_s);
    if (agent_idle(d->agent)) {
        loop_stop(d->loop);
        return;
    }
    loop_timer_add(d->loop, d->drain_timeout_s * 1000, on_drain_deadline, d);
}

static void usage(FILE *f)
{
    fprintf(f, "usage: proctord [options] BACKEND_ADDR\n"
               "       proctord --check-policies DIR\n"
               "\n"
               "INGInious grading agent for Docker, with Lua policies.\n"
               "\n"
               "  BACKEND_ADDR             the backend's agent address, e.g. tcp://127.0.0.1:2001\n"
               "  --friendly-name NAME     name shown by the backend (default \"\")\n"
               "  --concurrency N          job slots (default: number of CPUs)\n"
               "  --tasks DIR              directory holding the courses (default ./tasks)\n"
               "  --tmpdir DIR             work directory, locked and emptied at start (default\n"
               "                           ./agent_data)\n"
               "  --policies DIR           Lua policy directory (default: built-in defaults)\n"
               "  --check-policies DIR     validate a policy directory and exit\n"
               "  --debug-host HOST        host announced for SSH debug (default: SSH debug off)\n"
               "  --debug-ports A-B        host ports for SSH debug (default 64120-64130)\n"
               "  --ssh                    also offer the -ssh environment types\n"
               "  --no-pool                no warm grading containers (default: as many as\n"
               "                           policies/pool.lua says)\n"
               "  --answer-at-exit         answer a job once its grading container has exited,\n"
               "                           as INGInious does (default: as soon as its result\n"
               "                           has arrived; README \"When a job is answered\")\n"
               "  --warm ENVTYPE/NAME      warm this environment from the start, as if a job\n"
               "                           had just used it (repeatable, up to 16)\n"
               "  --runtime RUNTIME ENVTYPE [root] [shared]\n"
               "                           offer Docker runtime RUNTIME as environment type\n"
               "                           ENVTYPE (repeatable; as inginious-agent-docker's:\n"
               "                           replaces the runtimes policy's rules, no -ssh types)\n"
               "  --agent-id ID            label value marking this agent's containers\n"
               "                           (default: proctord-<random>, drawn once and kept\n"
               "                           in --tmpdir, which one agent locks for itself)\n"
               "  --max-time S             hard cap on a job's CPU time (default 1800)\n"
               "  --max-hard-time S        hard cap on a job's wall time (default 3600)\n"
               "  --max-message-mib N      hard cap on one message from a container (default 512)\n"
               "  --max-output-mib N       hard cap on all a job's container sends (default 1024)\n"
               "  --drain-timeout S        on SIGTERM, how long running jobs may go on before\n"
               "                           they are stopped and reported (default 120)\n"
               "  --docker-timeout S       how long one Docker engine call may take (streams,\n"
               "                           waits and attach streams aside; default 300)\n"
               "  --disable-autorestart    accepted for compatibility (proctord never restarts)\n"
               "  --metrics ADDR:PORT      serve Prometheus metrics at http://ADDR:PORT/metrics\n"
               "  --log-format text|json   log lines on stderr (default text; json: one object\n"
               "                           per line with time, level, area, job, msg, and\n"
               "                           event and fields for the events admins query)\n"
               "  -v, --verbose            debug logs\n"
               "  -h, --help               this text\n"
               "  --version                the version, then exit\n"
               "\n"
               "Signals: SIGHUP reloads the policies; SIGTERM drains running jobs then exits.\n");
}

/*
 * --runtime RUNTIME ENVTYPE [root] [shared], as inginious-agent-docker's: the
 * words after RUNTIME are taken from argv (ENVTYPE, then the flags), or from
 * RUNTIME itself when it holds spaces (--runtime "runc docker shared"), up to
 * the next option or the backend address (a word with "://", which upstream's
 * argparse would swallow). As upstream: `shared` wins over `root`; no GPU.
 * 0, or -EINVAL with the message printed.
 */
static int parse_runtime(int argc, char **argv, const char *first, struct policy_runtime *rt)
{
    char words[4][POLICY_NAME_MAX];
    size_t n = 0;
    AUTO_FREE char *copy = xstrdup(first);
    char *save = NULL;
    for (char *w = strtok_r(copy, " \t", &save); w; w = strtok_r(NULL, " \t", &save)) {
        if (n == ARRAY_SIZE(words) || strlen(w) >= POLICY_NAME_MAX) {
            fprintf(stderr, "proctord: --runtime %s: RUNTIME ENVTYPE [root] [shared]\n", first);
            return -EINVAL;
        }
        util_strlcpy(words[n++], w, sizeof words[n - 1]);
    }
    // The envtype, then the flags, from the next words of argv.
    while (n < ARRAY_SIZE(words) && optind < argc && argv[optind][0] != '-' &&
           !strstr(argv[optind], "://")) {
        if (strlen(argv[optind]) >= POLICY_NAME_MAX)
            break;
        util_strlcpy(words[n++], argv[optind++], sizeof words[0]);
    }
    if (n < 2) {
        fprintf(stderr, "proctord: --runtime needs at least 2 arguments: RUNTIME ENVTYPE "
                        "[root] [shared] (e.g. --runtime runc docker shared)\n");
        return -EINVAL;
    }
    memset(rt, 0, sizeof *rt);
    util_strlcpy(rt->runtime, words[0], sizeof rt->runtime);
    util_strlcpy(rt->envtype, words[1], sizeof rt->envtype);
    for (size_t i = 2; i < n; i++) {
        if (!strcmp(words[i], "root")) {
            rt->run_as_root = true;
        } else if (!strcmp(words[i], "shared")) {
            rt->shared_kernel = true;
        } else {
            fprintf(stderr, "proctord: --runtime: unknown flag %s (root or shared)\n", words[i]);
            return -EINVAL;
        }
    }
    if (rt->shared_kernel)
        rt->run_as_root = false; // as upstream: root on a shared kernel is forbidden
    return 0;
}

static int parse_int(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return -EINVAL;
    *out = v;
    return 0;
}

int main(int argc, char **argv)
{
    enum {
        OPT_FRIENDLY = 256,
        OPT_CONC,
        OPT_TASKS,
        OPT_TMP,
        OPT_POL,
        OPT_CHECK,
        OPT_DHOST,
        OPT_DPORTS,
        OPT_SSH,
        OPT_NOPOOL,
        OPT_ANSWER_AT_EXIT,
        OPT_WARM,
        OPT_ID,
        OPT_NOAUTO,
        OPT_MAXTIME,
        OPT_MAXHARD,
        OPT_MAXMSG,
        OPT_MAXOUT,
        OPT_DRAIN,
        OPT_DTIMEOUT,
        OPT_LOGFMT,
        OPT_VERSION,
        OPT_METRICS,
        OPT_FS,
        OPT_FSHELP,
        OPT_DEBUGMODE,
        OPT_RUNTIME,
        OPT_DEBUGGER
    };
    static const struct option opts[] = {
        {"friendly-name", required_argument, NULL, OPT_FRIENDLY},
        {"concurrency", required_argument, NULL, OPT_CONC},
        {"tasks", required_argument, NULL, OPT_TASKS},
        {"tmpdir", required_argument, NULL, OPT_TMP},
        {"policies", required_argument, NULL, OPT_POL},
        {"check-policies", required_argument, NULL, OPT_CHECK},
        {"debug-host", required_argument, NULL, OPT_DHOST},
        {"debug-ports", required_argument, NULL, OPT_DPORTS},
        {"ssh", no_argument, NULL, OPT_SSH},
        {"no-pool", no_argument, NULL, OPT_NOPOOL},
        {"answer-at-exit", no_argument, NULL, OPT_ANSWER_AT_EXIT},
        {"warm", required_argument, NULL, OPT_WARM},
        {"agent-id", required_argument, NULL, OPT_ID},
        {"disable-autorestart", no_argument, NULL, OPT_NOAUTO},
        {"max-time", required_argument, NULL, OPT_MAXTIME},
        {"max-hard-time", required_argument, NULL, OPT_MAXHARD},
        {"max-message-mib", required_argument, NULL, OPT_MAXMSG},
        {"max-output-mib", required_argument, NULL, OPT_MAXOUT},
        {"drain-timeout", required_argument, NULL, OPT_DRAIN},
        {"docker-timeout", required_argument, NULL, OPT_DTIMEOUT},
        {"log-format", required_argument, NULL, OPT_LOGFMT},
        {"version", no_argument, NULL, OPT_VERSION},
        {"metrics", required_argument, NULL, OPT_METRICS},
        // inginious-agent-docker's other options: the same meaning, or a clear message.
        {"fs", required_argument, NULL, OPT_FS},
        {"fs-help", no_argument, NULL, OPT_FSHELP},
        // Upstream's `--fs local --fs-location DIR` is `--tasks DIR`.
        {"fs-location", required_argument, NULL, OPT_TASKS},
        {"debugmode", no_argument, NULL, OPT_DEBUGMODE},
        {"runtime", required_argument, NULL, OPT_RUNTIME},
        {"debugger", no_argument, NULL, OPT_DEBUGGER},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    struct agent_config cfg = {
        .friendly_name = "",
        .concurrency = sysconf(_SC_NPROCESSORS_ONLN) > 0 ? sysconf(_SC_NPROCESSORS_ONLN) : 1,
        .tasks_dir = "./tasks",
        .tmp_dir = "./agent_data",
        .debug_port_min = 64120,
        .debug_port_max = 64130,
        .pool = true,
    };
    const char *check_dir = NULL;
    const char *warm[16];
    size_t nwarm = 0;
    struct policy_runtime runtimes[POLICY_MAX_CLI_RUNTIMES];
    size_t n_runtimes = 0;
    char *agent_id = NULL;
    const char *metrics_addr = NULL;
    long drain_timeout_s = DRAIN_TIMEOUT_DEFAULT_S;
    int c;
    while ((c = getopt_long(argc, argv, "vh", opts, NULL)) != -1) {
        long v;
        switch (c) {
        case OPT_FRIENDLY:
            cfg.friendly_name = optarg;
            break;
        case OPT_CONC:
            if (parse_int(optarg, 1, 4096, &v)) {
                fprintf(stderr, "proctord: --concurrency must be an integer from 1 to 4096\n");
                return 2;
            }
            cfg.concurrency = v;
            break;
        case OPT_TASKS:
            cfg.tasks_dir = optarg;
            break;
        case OPT_TMP:
            cfg.tmp_dir = optarg;
            break;
        case OPT_POL:
            cfg.policies_dir = optarg;
            break;
        case OPT_CHECK:
            check_dir = optarg;
            break;
        case OPT_DHOST:
            cfg.debug_host = optarg;
            break;
        case OPT_DPORTS: {
            long a, b;
            char *dash = strchr(optarg, '-');
            if (!dash) {
                fprintf(stderr, "proctord: --debug-ports takes a range A-B\n");
                return 2;
            }
            *dash = '\0';
            if (parse_int(optarg, 1, 65535, &a) || parse_int(dash + 1, 1, 65535, &b) || a > b) {
                fprintf(stderr, "proctord: --debug-ports takes a range A-B of ports, A <= B\n");
                return 2;
            }
            cfg.debug_port_min = (uint16_t)a;
            cfg.debug_port_max = (uint16_t)b;
            break;
        }
        case OPT_SSH:
            cfg.ssh = true;
            break;
        case OPT_NOPOOL:
            cfg.pool = false;
            break;
        case OPT_ANSWER_AT_EXIT:
            cfg.answer_at_exit = true;
            break;
        case OPT_WARM:
            if (nwarm < ARRAY_SIZE(warm))
                warm[nwarm++] = optarg;
            break;
        case OPT_ID:
            agent_id = xstrdup(optarg);
            break;
        case OPT_NOAUTO:
            break;
        case OPT_MAXTIME:
        case OPT_MAXHARD:
            if (parse_int(optarg, 1, 7 * 86400, &v)) {
                fprintf(stderr, "proctord: --%s takes seconds from 1 to 604800\n",
                        c == OPT_MAXTIME ? "max-time" : "max-hard-time");
                return 2;
            }
            *(c == OPT_MAXTIME ? &cfg.max_time_s : &cfg.max_hard_time_s) = v;
            break;
        case OPT_MAXMSG:
        case OPT_MAXOUT:
            if (parse_int(optarg, 1, 1 << 20, &v)) {
                fprintf(stderr, "proctord: --%s takes MiB from 1 to 1048576\n",
                        c == OPT_MAXMSG ? "max-message-mib" : "max-output-mib");
                return 2;
            }
            *(c == OPT_MAXMSG ? &cfg.max_frame_bytes : &cfg.max_output_bytes) = (int64_t)v << 20;
            break;
        case OPT_DRAIN:
            if (parse_int(optarg, 0, 7 * 86400, &drain_timeout_s)) {
                fprintf(stderr, "proctord: --drain-timeout takes seconds from 0 to 604800\n");
                return 2;
            }
            break;
        case OPT_DTIMEOUT:
            if (parse_int(optarg, 1, 86400, &v)) {
                fprintf(stderr, "proctord: --docker-timeout takes seconds from 1 to 86400\n");
                return 2;
            }
            cfg.docker_timeout_ms = v * 1000;
            break;
        case OPT_LOGFMT: {
            enum log_format f;
            if (log_format_parse(optarg, &f)) {
                fprintf(stderr, "proctord: --log-format takes text or json\n");
                return 2;
            }
            log_set_format(f);
            break;
        }
        case 'v':
            log_set_level(LOG_LEVEL_DEBUG);
            break;
        case 'h':
            usage(stdout);
            return 0;
        case OPT_METRICS:
            metrics_addr = optarg;
            break;
        case OPT_FS:
            if (strcmp(optarg, "local")) {
                fprintf(stderr,
                        "proctord: --fs %s: proctord reads tasks from the local "
                        "filesystem only (--fs local, the default; --tasks DIR)\n",
                        optarg);
                return 2;
            }
            break;
        case OPT_FSHELP:
            printf("proctord reads tasks from the local filesystem only: --fs local (the "
                   "default), with --tasks DIR.\n");
            return 0;
        case OPT_DEBUGMODE:
            // The Python agent's asyncio debug mode: nothing of the kind here.
            fprintf(stderr, "proctord: --debugmode (the Python agent's asyncio debug mode) has "
                            "no equivalent; ignored (-v gives debug logs)\n");
            break;
        case OPT_RUNTIME:
            if (n_runtimes == ARRAY_SIZE(runtimes)) {
                fprintf(stderr, "proctord: at most %d --runtime\n", POLICY_MAX_CLI_RUNTIMES);
                return 2;
            }
            if (parse_runtime(argc, argv, optarg, &runtimes[n_runtimes]))
                return 2;
            n_runtimes++;
            break;
        case OPT_DEBUGGER:
            fprintf(stderr, "proctord: --debugger (INGInious HEAD) is not supported: give the "
                            "task network and longer limits through policies/limits.lua\n");
            return 2;
        case OPT_VERSION:
            printf("proctord %s\n", PROCTOR_VERSION);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }

    if (check_dir) {
        char err[1024] = "";
        if (policy_check_dir(check_dir, err, sizeof err)) {
            fprintf(stderr, "proctord: policies in %s refused: %s\n", check_dir, err);
            return 1;
        }
        printf("policies in %s: ok\n", check_dir);
        return 0;
    }
    if (optind != argc - 1) {
        usage(stderr);
        return 2;
    }
    const char *backend_addr = argv[optind];
    policy_set_cli_runtimes(runtimes, n_runtimes); // map_runtimes() gets them as req.forced
    cfg.agent_id = agent_id;                       /* NULL: the one kept in --tmpdir */

    int ret = 1;
    char err[1024] = "";
    struct daemon d = {.friendly_name = cfg.friendly_name,
                       .concurrency = cfg.concurrency,
                       .drain_timeout_s = drain_timeout_s};
    struct agent_sink sink = {
        .job_started = sink_started,
        .job_done = sink_done,
        .ssh_debug = sink_ssh,
        .idle = sink_idle,
        .data = &d,
    };
    msgpack_sbuffer_init(&d.sb);
    value_set_map(&d.environments);
    // A peer closing a socket must not kill the daemon.
    signal(SIGPIPE, SIG_IGN);
    d.loop = loop_new();
    if (!d.loop) {
        fprintf(stderr, "proctord: cannot create the event loop\n");
        goto out;
    }
    cfg.warm = warm;
    cfg.nwarm = nwarm;
    d.agent = agent_new(d.loop, &cfg, &sink, err, sizeof err);
    if (!d.agent) {
        fprintf(stderr, "proctord: %s\n", err);
        goto out;
    }
    if (service_init(d.loop))
        log_warn(LOG_MAIN, "systemd asked for a watchdog but it could not be armed");
    metric_set(METRIC_SLOTS, NULL, (double)cfg.concurrency);
    if (metrics_addr) {
        d.metrics = metrics_http_start(d.loop, metrics_addr, err, sizeof err);
        if (!d.metrics) {
            fprintf(stderr, "proctord: %s\n", err);
            goto out;
        }
    }
    static const struct backend_link_cb link_cb = {.on_message = on_message,
                                                   .on_silence = on_silence};
    d.link = backend_link_new(d.loop, backend_addr, &link_cb, &d);
    if (!d.link) {
        fprintf(stderr, "proctord: cannot connect a ZeroMQ socket to %s\n", backend_addr);
        goto out;
    }
    if (loop_signal_watch(d.loop, SIGHUP, on_sighup, &d) ||
        loop_signal_watch(d.loop, SIGTERM, on_sigterm, &d) ||
        loop_signal_watch(d.loop, SIGINT, on_sigterm, &d)) {
        fprintf(stderr, "proctord: cannot watch signals\n");
        goto out;
    }
    log_info(LOG_MAIN, "proctord starting: backend %s, %lld slot(s), tasks %s", backend_addr,
             (long long)cfg.concurrency, cfg.tasks_dir);
    // In a container, the work directory must be the host's at the same path;
    // then discover and register.
    if (agent_check_work_dir(d.agent, on_work_dir_checked, &d)) {
        fprintf(stderr, "proctord: cannot ask the Docker engine about this agent's container\n");
        goto out;
    }
    ret = loop_run(d.loop) || d.failed ? 1 : 0;
    log_info(LOG_MAIN, "proctord stopped");
out:
    metrics_http_stop(d.metrics);
    metrics_reset();
    // Jobs first (they may still queue results), then the link flushes them.
    agent_free(d.agent);
    backend_link_free(d.link);
    loop_free(d.loop);
    value_deinit(&d.environments);
    msgpack_sbuffer_destroy(&d.sb);
    free(agent_id);
    return ret;
}
