// Test agent for tests/integration/test_backend_link.py: the real loop and
// backend_link, talking to the real INGInious backend. It says hello with one
// fake environment and answers jobs with fixed, known results (the grading
// itself is test code here, not the job layer). Every event is printed as one
// line on stdout for the driver to wait on.
//
// usage: test_backend_link ADDR FRIENDLY_NAME
//        test_backend_link --dump      (hex of reference encodings, one a line)
//
// inputdata keys steering a job:
//   "@hold": any   -> AgentJobStarted only; the result comes with BackendKillJob
//   "@forget": any -> AgentJobStarted only, and the job is forgotten, so that a
//                     later BackendKillJob is for a job this agent does not know

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "backend/backend_link.h"
#include "backend/backend_proto.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/util.h"

#define ENV_TYPE "docker"
#define ENV_NAME "proctor-link-test"
#define MAX_HELD 16
#define SLOTS 3

struct agent {
    struct loop *loop;
    struct backend_link *link;
    const char *name;
    struct value envs;
    int hellos;
    char *held[MAX_HELD]; /* jobs waiting for a kill */
    char *held_state[MAX_HELD];
};

static void event(const char *fmt, ...) PROCTOR_PRINTF(1, 2);
static void event(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
}

static void send_sb(struct agent *a, msgpack_sbuffer *sb, int ret, const char *what)
{
    if (!ret)
        ret = backend_link_send(a->link, sb);
    if (ret)
        event("ERROR %s %d", what, ret);
    msgpack_sbuffer_destroy(sb);
}

static void say_hello(struct agent *a)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    send_sb(a, &sb, backend_encode_hello(&sb, a->name, SLOTS, &a->envs), "hello");
    a->hellos++;
    event("HELLO %d", a->hellos);
}

static void build_envs(struct value *envs)
{
    value_set_map(envs);
    struct value *t = value_map_put(envs, ENV_TYPE);
    value_set_map(t);
    struct value *info = value_map_put(t, ENV_NAME);
    value_set_map(info);
    value_set_str(value_map_put(info, "id"), "sha256:0123456789abcdef");
    value_set_str(value_map_put(info, "title"), ENV_NAME);
    value_set_int(value_map_put(info, "created"), 1700000000);
    value_set_array(value_map_put(info, "ports"));
    value_set_str(value_map_put(info, "runtime"), "runc");
}

// The known result the driver checks, field by field.
static int encode_result(msgpack_sbuffer *sb, const char *job_id, const char *prev_state)
{
    struct value problems, tests, custom;
    value_set_map(&problems);
    struct value *p = value_map_put(&problems, "q1");
    value_set_array(p);
    value_set_str(value_array_push(p), "success");
    value_set_str(value_array_push(p), "Bien jou\xc3\xa9");
    p = value_map_put(&problems, "q2");
    value_set_array(p);
    value_set_str(value_array_push(p), "failed");
    value_set_strn(value_array_push(p), "bad \xff byte", 10); // sanitised on the way out
    value_set_map(&tests);
    value_set_int(value_map_put(&tests, "passed"), 3);
    value_set_float(value_map_put(&tests, "ratio"), 0.75);
    value_set_map(&custom);
    struct value *l = value_map_put(&custom, "list");
    value_set_array(l);
    value_set_int(value_array_push(l), -7);
    value_set_nil(value_array_push(l));
    value_set_bool(value_array_push(l), true);
    char state[256];
    snprintf(state, sizeof state, "%s+next", prev_state);
    struct backend_job_done d = {
        .job_id = job_id,
        .result = "failed",
        .text = "Main feedback \xe2\x9c\x93",
        .grade = 87.5,
        .problems = &problems,
        .tests = &tests,
        .custom = &custom,
        .state = state,
        .archive = "\x1f\x8b\x08\x00\x00\xff",
        .archive_len = 6,
        .stdout_text = "out\n",
        .stderr_text = NULL,
    };
    int ret = backend_encode_job_done(sb, &d);
    value_deinit(&problems);
    value_deinit(&tests);
    value_deinit(&custom);
    return ret;
}

static const char *input_str(const struct value *in, const char *key, const char *dflt)
{
    const struct value *v = value_map_get(in, key);
    return v && v->type == VALUE_STR ? v->u.s.ptr : dflt;
}

static void on_new_job(struct agent *a, const struct backend_new_job *j)
{
    event("JOB %s %s %s/%s debug=%s", j->job_id, j->environment, j->course_id ? j->course_id : "-",
          j->task_id ? j->task_id : "-", backend_debug_name(j->debug));
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    send_sb(a, &sb, backend_encode_job_started(&sb, j->job_id), "started");

    if (value_map_get(&j->inputdata, "@forget")) {
        event("FORGOT %s", j->job_id);
        return;
    }
    if (value_map_get(&j->inputdata, "@hold")) {
        for (size_t i = 0; i < MAX_HELD; i++) {
            if (!a->held[i]) {
                a->held[i] = xstrdup(j->job_id);
                event("HELD %s", j->job_id);
                return;
            }
        }
        event("ERROR too many held jobs");
        return;
    }
    msgpack_sbuffer_init(&sb);
    send_sb(a, &sb, encode_result(&sb, j->job_id, input_str(&j->inputdata, "@state", "")), "done");
    event("DONE %s", j->job_id);
}

static void on_kill_job(struct agent *a, const struct backend_kill_job *k)
{
    for (size_t i = 0; i < MAX_HELD; i++) {
        if (a->held[i] && !strcmp(a->held[i], k->job_id)) {
            struct backend_job_done d = {
                .job_id = k->job_id, .result = "killed", .grade = 0.0, .state = k->state};
            msgpack_sbuffer sb;
            msgpack_sbuffer_init(&sb);
            send_sb(a, &sb, backend_encode_job_done(&sb, &d), "killed");
            free(a->held[i]);
            a->held[i] = NULL;
            event("KILLED %s", k->job_id);
            return;
        }
    }
    // Unknown job: nothing to report (spec §4.5).
    event("KILL-UNKNOWN %s", k->job_id);
}

static void on_message(struct backend_link *link, const struct backend_msg *m, void *data)
{
    PROCTOR_UNUSED(link);
    struct agent *a = data;
    if (m->type == BACKEND_MSG_NEW_JOB)
        on_new_job(a, &m->new_job);
    else if (m->type == BACKEND_MSG_KILL_JOB)
        on_kill_job(a, &m->kill_job);
}

static void on_silence(struct backend_link *link, void *data)
{
    struct agent *a = data;
    event("SILENCE");
    // What the job layer does: drop its jobs, new socket, new hello.
    for (size_t i = 0; i < MAX_HELD; i++) {
        free(a->held[i]);
        a->held[i] = NULL;
    }
    if (backend_link_reconnect(link) == 0)
        say_hello(a);
    else
        event("ERROR reconnect");
}

static void on_disconnect(struct backend_link *link, void *data)
{
    PROCTOR_UNUSED(link);
    PROCTOR_UNUSED(data);
    event("DISCONNECTED");
}

static void on_connect(struct backend_link *link, void *data)
{
    PROCTOR_UNUSED(link);
    PROCTOR_UNUSED(data);
    event("CONNECTED");
}

static void on_signal(struct loop *loop, int signo, void *data)
{
    PROCTOR_UNUSED(data);
    event("SIGNAL %d", signo);
    loop_stop(loop);
}

static void dump_hex(const msgpack_sbuffer *sb)
{
    for (size_t i = 0; i < sb->size; i++)
        printf("%02x", (unsigned char)sb->data[i]);
    putchar('\n');
}

// Reference encodings the driver compares with upstream's messages.dump().
static int dump(void)
{
    struct value envs;
    build_envs(&envs);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    int ret = backend_encode_hello(&sb, "dump", SLOTS, &envs);
    dump_hex(&sb);
    msgpack_sbuffer_clear(&sb);
    if (!ret)
        ret = backend_encode_job_started(&sb, "job-1");
    dump_hex(&sb);
    msgpack_sbuffer_clear(&sb);
    if (!ret)
        ret = encode_result(&sb, "job-1", "st");
    dump_hex(&sb);
    msgpack_sbuffer_clear(&sb);
    if (!ret)
        ret = backend_encode_ssh_debug(&sb, "job-1", "192.0.2.1", 64120, "worker", "pw");
    dump_hex(&sb);
    msgpack_sbuffer_clear(&sb);
    if (!ret)
        ret = backend_encode_pong(&sb);
    dump_hex(&sb);
    msgpack_sbuffer_destroy(&sb);
    value_deinit(&envs);
    return ret ? 1 : 0;
}

int main(int argc, char **argv)
{
    if (argc == 2 && !strcmp(argv[1], "--dump"))
        return dump();
    if (argc != 3) {
        fprintf(stderr, "usage: %s ADDR FRIENDLY_NAME | --dump\n", argv[0]);
        return 2;
    }
    log_set_level(LOG_LEVEL_DEBUG);
    struct agent a = {.name = argv[2]};
    build_envs(&a.envs);
    a.loop = loop_new();
    PROCTOR_REQUIRE(a.loop);
    loop_signal_watch(a.loop, SIGTERM, on_signal, &a);
    loop_signal_watch(a.loop, SIGINT, on_signal, &a);
    struct backend_link_cb cb = {.on_message = on_message,
                                 .on_silence = on_silence,
                                 .on_disconnect = on_disconnect,
                                 .on_connect = on_connect};
    a.link = backend_link_new(a.loop, argv[1], &cb, &a);
    int ret = a.link ? 0 : 1;
    if (!ret) {
        say_hello(&a);
        ret = loop_run(a.loop) ? 1 : 0;
    }
    backend_link_free(a.link);
    for (size_t i = 0; i < MAX_HELD; i++)
        free(a.held[i]);
    value_deinit(&a.envs);
    loop_free(a.loop);
    event("EXIT %d", ret);
    return ret;
}
