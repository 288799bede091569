// Fault tests of the job layer, through the agent's public API only, on the
// scripted fake engine (tests/helpers/fake_engine.h): an engine error at each
// step, an engine that stalls, an attach stream cut mid-frame, a kill at every
// phase, a student request at every phase of its parent. Each scenario runs
// one job until the agent has no job left and the engine no request pending
// (or a hard deadline), then checks that the job was answered exactly once,
// with the expected result, and that every container created was removed.
//
// Usage: test_job_faults SCENARIO (one ctest per scenario: job_faults.<name>);
// test_job_faults --registered NAME... checks that list against the table.

#include <errno.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "check.h"
#include "core/loop.h"
#include "core/util.h"
#include "core/value.h"
#include "helpers/fake_engine.h"
#include "job/agent.h"

#define JOB_ID "j1"
#define SOCKET_ID "s1"
#define NOT_CHECKED INT64_MIN

struct t;

struct scenario {
    const char *name;
    /** Before the job: scripts the engine. */
    void (*setup)(struct t *t);
    /** Right after agent_new_job returned. */
    void (*after_new_job)(struct t *t);
    /** The grading program once it read `start` and the agent waits on it (default: result, exit
     * 0). */
    void (*run)(struct t *t);
    /** Every request the engine handled (see fake_engine_hooks.on_request). */
    void (*request)(struct t *t, enum fake_step step, enum fake_role role, struct fake_container *c,
                    bool held);
    /** The agent read the engine's reply to a request (its callback ran). */
    void (*reply_read)(struct t *t, enum fake_step step, enum fake_role role,
                       struct fake_container *c);
    /** The program got run_student_retval (default: result, exit 0). */
    void (*retval)(struct t *t);
    /** Inside the sink's job_done. */
    void (*done)(struct t *t);
    /** Extra checks at the end. */
    void (*check)(struct t *t);
    const char *result; /* NULL: no job_done at all */
    const char *text;   /* a substring of the text, or NULL */
    int grading, students;
    /*
     * Every DELETE of the job fails: its containers are left, and the orphan
     * sweep of the next discovery must remove them.
     */
    bool delete_fails;
    long timeout_ms;  /* docker_timeout_ms; 0 = 2000 */
    long deadline_ms; /* 0 = 20000 */
    int64_t time_limit;
    int64_t want_retval; /* 0 = none, NOT_CHECKED, else the run_student_retval expected */
    int want_started;    /* run_student_started messages */
};

struct t {
    struct loop *loop;
    struct fake_engine *f;
    struct agent *a;
    const struct scenario *sc;
    char *top;
    bool submitted, deadline_hit, discovered;
    int n_started, n_done, n_idle;
    char *result, *text;
    struct fake_container *grading;
    bool got_start, running, acted;
    int n_student_started, n_retval;
    int64_t retval;
};

/* ---- the grading program ----------------------------------------------------- */

static void pack_str(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

static void send_packed(struct t *t, msgpack_sbuffer *sb)
{
    REQUIRE_OR_EXIT(t->grading, "no grading container to send from");
    fake_engine_send(t->f, t->grading, sb->data, sb->size);
    msgpack_sbuffer_destroy(sb);
}

static void send_result(struct t *t)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    pack_str(&pk, "type");
    pack_str(&pk, "result");
    pack_str(&pk, "result");
    msgpack_pack_map(&pk, 4);
    pack_str(&pk, "result");
    pack_str(&pk, "success");
    pack_str(&pk, "text");
    pack_str(&pk, "well done");
    pack_str(&pk, "grade");
    msgpack_pack_double(&pk, 100.0);
    pack_str(&pk, "state");
    pack_str(&pk, "next");
    send_packed(t, &sb);
}

/** The runner's socket for the request, then the request itself. */
static void send_run_student(struct t *t)
{
    int ret = fake_engine_make_socket(t->f, t->grading, SOCKET_ID);
    REQUIRE_OR_EXIT(ret == 0, "socket for run_student: %s", strerror(-ret));
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 9);
    pack_str(&pk, "type");
    pack_str(&pk, "run_student");
    pack_str(&pk, "environment");
    msgpack_pack_nil(&pk);
    pack_str(&pk, "time_limit");
    msgpack_pack_int(&pk, 0);
    pack_str(&pk, "hard_time_limit");
    msgpack_pack_int(&pk, 0);
    pack_str(&pk, "memory_limit");
    msgpack_pack_int(&pk, 0);
    pack_str(&pk, "share_network");
    msgpack_pack_false(&pk);
    pack_str(&pk, "socket_id");
    pack_str(&pk, SOCKET_ID);
    pack_str(&pk, "ssh");
    msgpack_pack_false(&pk);
    pack_str(&pk, "run_as_root");
    msgpack_pack_false(&pk);
    send_packed(t, &sb);
}

static void result_and_exit(struct t *t)
{
    send_result(t);
    fake_engine_exit(t->f, t->grading, 0);
}

static void kill_job(struct t *t)
{
    struct backend_kill_job k = {.job_id = JOB_ID, .state = "killed-state"};
    agent_kill_job(t->a, &k);
}

/** The program runs once it read `start` and the agent waits on its container. */
static void program_maybe_run(struct t *t)
{
    if (!t->got_start || !t->running || t->acted)
        return;
    t->acted = true;
    if (t->sc->run)
        t->sc->run(t);
    else
        result_and_exit(t);
}

static bool is_student_container(struct t *t, const char *id)
{
    for (size_t i = 0; i < fake_engine_ncontainers(t->f); i++) {
        struct fake_container *c = fake_engine_container(t->f, i);
        if (fake_container_role(c) == FAKE_STUDENT && !strcmp(fake_container_id(c), id))
            return true;
    }
    return false;
}

static void on_stdin(struct fake_engine *f, struct fake_container *c, const void *p, size_t n,
                     void *data)
{
    PROCTOR_UNUSED(f);
    struct t *t = data;
    char err[256];
    struct value m;
    CHECK(c == t->grading, "stdin of a container that is not the grading one");
    if (value_unpack(p, n, &m, err, sizeof err)) {
        CHECK(false, "the agent wrote an unreadable message: %s", err);
        return;
    }
    const struct value *type = value_map_get(&m, "type");
    const struct value *sid = value_map_get(&m, "socket_id");
    if (value_is_str(type, "start")) {
        CHECK(!t->got_start, "a second start message");
        const struct value *input = value_map_get(&m, "input");
        CHECK(input && input->type == VALUE_MAP &&
                  value_is_str(value_map_get(input, "@state"), "prev-state"),
              "start carries the job's input");
        t->got_start = true;
        program_maybe_run(t);
    } else if (value_is_str(type, "run_student_started")) {
        const struct value *cid = value_map_get(&m, "container_id");
        t->n_student_started++;
        CHECK(value_is_str(sid, SOCKET_ID));
        CHECK(cid && cid->type == VALUE_STR && is_student_container(t, cid->u.s.ptr),
              "run_student_started names the student container");
    } else if (value_is_str(type, "run_student_retval")) {
        const struct value *rv = value_map_get(&m, "retval");
        t->n_retval++;
        CHECK(value_is_str(sid, SOCKET_ID));
        CHECK(rv && rv->type == VALUE_INT, "retval is an integer");
        t->retval = rv && rv->type == VALUE_INT ? rv->u.i : -1;
        if (t->sc->retval)
            t->sc->retval(t);
        else
            result_and_exit(t);
    } else {
        CHECK(false, "unexpected message on stdin");
    }
    value_deinit(&m);
}

static void on_request(struct fake_engine *f, enum fake_step step, enum fake_role role,
                       struct fake_container *c, bool held, void *data)
{
    PROCTOR_UNUSED(f);
    struct t *t = data;
    if (step == FAKE_CREATE && role == FAKE_GRADING && c)
        t->grading = c;
    if (step == FAKE_WAIT && role == FAKE_GRADING && c == t->grading && !held && !t->running) {
        t->running = true;
        program_maybe_run(t);
    }
    if (t->sc->request)
        t->sc->request(t, step, role, c, held);
}

static void on_reply_read(struct fake_engine *f, enum fake_step step, enum fake_role role,
                          struct fake_container *c, void *data)
{
    PROCTOR_UNUSED(f);
    struct t *t = data;
    if (t->sc->reply_read)
        t->sc->reply_read(t, step, role, c);
}

/* ---- the agent's sink ---------------------------------------------------------- */

static void sink_started(void *data, const char *job_id)
{
    struct t *t = data;
    CHECK_STR_EQ(job_id, JOB_ID);
    t->n_started++;
}

static void sink_done(void *data, const struct backend_job_done *d)
{
    struct t *t = data;
    CHECK_STR_EQ(d->job_id, JOB_ID);
    t->n_done++;
    free(t->result);
    free(t->text);
    t->result = xstrdup(d->result);
    t->text = xstrdup(d->text ? d->text : "");
    if (t->sc->done)
        t->sc->done(t);
}

static void sink_idle(void *data)
{
    struct t *t = data;
    CHECK_INT_EQ(agent_job_count(t->a), 0);
    t->n_idle++;
}

static void sink_ssh(void *data, const char *job_id, const char *host, int port, const char *user,
                     const char *password)
{
    PROCTOR_UNUSED(data);
    PROCTOR_UNUSED(job_id);
    PROCTOR_UNUSED(host);
    PROCTOR_UNUSED(port);
    PROCTOR_UNUSED(user);
    PROCTOR_UNUSED(password);
    CHECK(false, "no job here asks for SSH");
}

/* ---- scenarios ------------------------------------------------------------------ */

static void script(struct t *t, enum fake_role role, enum fake_step step, enum fake_action a,
                   int times)
{
    fake_engine_script(t->f, role, step, a, times);
}

static void setup_create_error(struct t *t)
{
    script(t, FAKE_GRADING, FAKE_CREATE, FAKE_ERROR, 1);
}

static void setup_attach_refused(struct t *t)
{
    script(t, FAKE_GRADING, FAKE_ATTACH, FAKE_ERROR, 1);
}

static void run_cut_mid_frame(struct t *t)
{
    fake_engine_cut_attach(t->f, t->grading);
    fake_engine_exit(t->f, t->grading, 0);
}

static void setup_start_error(struct t *t)
{
    script(t, FAKE_GRADING, FAKE_START, FAKE_ERROR, 1);
}

static void setup_wait_error(struct t *t)
{
    script(t, FAKE_GRADING, FAKE_WAIT, FAKE_ERROR, 2);
}

static void setup_wait_error_always(struct t *t)
{
    script(t, FAKE_GRADING, FAKE_WAIT, FAKE_ERROR, -1);
}

static void run_result_only(struct t *t)
{
    send_result(t); // and never exits: the agent gives up waiting
}

static void setup_inspect_error(struct t *t)
{
    script(t, FAKE_GRADING, FAKE_INSPECT, FAKE_ERROR, 1);
}

static void setup_delete_error(struct t *t)
{
    script(t, FAKE_GRADING, FAKE_DELETE, FAKE_ERROR, -1);
}

static void setup_stats_error(struct t *t)
{
    script(t, FAKE_GRADING, FAKE_STATS, FAKE_ERROR, -1);
}

static void setup_kill_error(struct t *t)
{
    script(t, FAKE_GRADING, FAKE_KILL, FAKE_ERROR, 1);
}

static void request_kill_error(struct t *t, enum fake_step step, enum fake_role role,
                               struct fake_container *c, bool held)
{
    PROCTOR_UNUSED(c);
    PROCTOR_UNUSED(held);
    // The engine refused the kill; the program ends by itself later.
    if (step == FAKE_KILL && role == FAKE_GRADING)
        fake_engine_exit(t->f, t->grading, 0);
}

static void setup_inspect_stalls(struct t *t)
{
    script(t, FAKE_GRADING, FAKE_INSPECT, FAKE_STALL, -1);
}

static void setup_delete_stalls(struct t *t)
{
    script(t, FAKE_GRADING, FAKE_DELETE, FAKE_STALL, -1);
}

static void check_delete_abandoned(struct t *t)
{
    CHECK_INT_EQ(fake_engine_abandoned(t->f, FAKE_GRADING, FAKE_DELETE), 1);
}

static void setup_create_stalls(struct t *t)
{
    script(t, FAKE_GRADING, FAKE_CREATE, FAKE_STALL, -1);
}

static void check_create_abandoned(struct t *t)
{
    CHECK_INT_EQ(fake_engine_abandoned(t->f, FAKE_GRADING, FAKE_CREATE), 1);
}

static void setup_start_stalls(struct t *t)
{
    script(t, FAKE_GRADING, FAKE_START, FAKE_STALL, -1);
}

static void check_start_abandoned(struct t *t)
{
    CHECK_INT_EQ(fake_engine_abandoned(t->f, FAKE_GRADING, FAKE_START), 1);
}

static void check_nothing_created(struct t *t)
{
    CHECK_INT_EQ(fake_engine_requests(t->f, FAKE_GRADING, FAKE_CREATE), 0);
}

static void check_never_started(struct t *t)
{
    CHECK_INT_EQ(fake_engine_requests(t->f, FAKE_GRADING, FAKE_START), 0);
}

static void setup_stall_create_once(struct t *t)
{
    script(t, FAKE_GRADING, FAKE_CREATE, FAKE_STALL, 1);
}

static void request_kill_while_creating(struct t *t, enum fake_step step, enum fake_role role,
                                        struct fake_container *c, bool held)
{
    PROCTOR_UNUSED(c);
    if (step == FAKE_CREATE && role == FAKE_GRADING && held) {
        kill_job(t);
        fake_engine_release(t->f, FAKE_GRADING, FAKE_CREATE);
    }
}

static void setup_stall_attach_once(struct t *t)
{
    script(t, FAKE_GRADING, FAKE_ATTACH, FAKE_STALL, 1);
}

static void request_kill_while_attaching(struct t *t, enum fake_step step, enum fake_role role,
                                         struct fake_container *c, bool held)
{
    PROCTOR_UNUSED(c);
    if (step == FAKE_ATTACH && role == FAKE_GRADING && held)
        kill_job(t);
}

/** The agent has the engine's answer to its kill ("not running"): the attach completes now. */
static void reply_release_attach(struct t *t, enum fake_step step, enum fake_role role,
                                 struct fake_container *c)
{
    PROCTOR_UNUSED(c);
    if (step == FAKE_KILL && role == FAKE_GRADING)
        fake_engine_release(t->f, FAKE_GRADING, FAKE_ATTACH);
}

static void setup_stall_start_and_kill(struct t *t)
{
    script(t, FAKE_GRADING, FAKE_START, FAKE_STALL, 1);
    script(t, FAKE_GRADING, FAKE_KILL, FAKE_STALL, 1);
}

static void request_kill_while_starting(struct t *t, enum fake_step step, enum fake_role role,
                                        struct fake_container *c, bool held)
{
    PROCTOR_UNUSED(c);
    if (role != FAKE_GRADING)
        return;
    // Kill asked while the start is in flight; the engine starts the
    // container, then executes the kill.
    if (step == FAKE_START && held)
        kill_job(t);
    else if (step == FAKE_KILL && held)
        fake_engine_release(t->f, FAKE_GRADING, FAKE_START);
    else if (step == FAKE_START && !held)
        fake_engine_release(t->f, FAKE_GRADING, FAKE_KILL);
}

static void setup_stall_start_once(struct t *t)
{
    script(t, FAKE_GRADING, FAKE_START, FAKE_STALL, 1);
}

static void request_kill_on_held_start(struct t *t, enum fake_step step, enum fake_role role,
                                       struct fake_container *c, bool held)
{
    PROCTOR_UNUSED(c);
    if (step == FAKE_START && role == FAKE_GRADING && held)
        kill_job(t);
}

/** The kill was refused (not running yet) and the agent knows it: the start completes now. */
static void reply_release_start(struct t *t, enum fake_step step, enum fake_role role,
                                struct fake_container *c)
{
    PROCTOR_UNUSED(c);
    if (step == FAKE_KILL && role == FAKE_GRADING)
        fake_engine_release(t->f, FAKE_GRADING, FAKE_START);
}

static void setup_start_cut(struct t *t)
{
    script(t, FAKE_GRADING, FAKE_START, FAKE_CUT, 1);
}

static void setup_wait_cut(struct t *t)
{
    script(t, FAKE_GRADING, FAKE_WAIT, FAKE_CUT, 1);
}

static void setup_stall_inspect_once(struct t *t)
{
    script(t, FAKE_GRADING, FAKE_INSPECT, FAKE_STALL, 1);
}

static void setup_stall_delete_once(struct t *t)
{
    script(t, FAKE_GRADING, FAKE_DELETE, FAKE_STALL, 1);
}

/** The kill arrives while `step` is stalled; then the engine answers it. */
static void kill_during(struct t *t, enum fake_step want, enum fake_step step, enum fake_role role,
                        bool held)
{
    if (step == want && role == FAKE_GRADING && held) {
        kill_job(t);
        fake_engine_release(t->f, FAKE_GRADING, want);
    }
}

static void request_kill_while_inspecting(struct t *t, enum fake_step step, enum fake_role role,
                                          struct fake_container *c, bool held)
{
    PROCTOR_UNUSED(c);
    kill_during(t, FAKE_INSPECT, step, role, held);
}

static void request_kill_while_removing(struct t *t, enum fake_step step, enum fake_role role,
                                        struct fake_container *c, bool held)
{
    PROCTOR_UNUSED(c);
    kill_during(t, FAKE_DELETE, step, role, held);
}

static void run_kill(struct t *t)
{
    kill_job(t);
}

static void run_result_then_kill(struct t *t)
{
    send_result(t);
    kill_job(t);
}

static void run_stop_jobs(struct t *t)
{
    agent_stop_jobs(t->a, "The agent is draining.");
}

static void run_abandon(struct t *t)
{
    agent_abandon_jobs(t->a);
}

static void run_stats_end(struct t *t)
{
    fake_engine_end_stats(t->f, t->grading);
    result_and_exit(t);
}

static void run_cpu_over(struct t *t)
{
    fake_engine_cpu(t->f, t->grading, 2000000000);
}

static void run_oom_event(struct t *t)
{
    fake_engine_oom(t->f, t->grading, true);
}

static void run_oom_inspect(struct t *t)
{
    send_result(t);
    fake_engine_oom(t->f, t->grading, false);
}

static void setup_student_exit3(struct t *t)
{
    fake_engine_student(t->f, FAKE_STUDENT_EXIT, 3);
}

static void setup_student_create_error(struct t *t)
{
    script(t, FAKE_STUDENT, FAKE_CREATE, FAKE_ERROR, 1);
}

static void setup_student_oom(struct t *t)
{
    fake_engine_student(t->f, FAKE_STUDENT_OOM, 0);
}

static void setup_student_hang(struct t *t)
{
    fake_engine_student(t->f, FAKE_STUDENT_HANG, 0);
}

static void request_kill_when_student_runs(struct t *t, enum fake_step step, enum fake_role role,
                                           struct fake_container *c, bool held)
{
    PROCTOR_UNUSED(c);
    if (step == FAKE_WAIT && role == FAKE_STUDENT && !held)
        kill_job(t);
}

static void request_student_stats_end(struct t *t, enum fake_step step, enum fake_role role,
                                      struct fake_container *c, bool held)
{
    // The student runs: its stats stream ends (engine restart), then the
    // parent is killed, which stops the student too.
    if (step == FAKE_WAIT && role == FAKE_STUDENT && !held) {
        fake_engine_end_stats(t->f, c);
        kill_job(t);
    }
}

static void request_exit_when_student_runs(struct t *t, enum fake_step step, enum fake_role role,
                                           struct fake_container *c, bool held)
{
    PROCTOR_UNUSED(c);
    if (step == FAKE_WAIT && role == FAKE_STUDENT && !held)
        result_and_exit(t);
}

static void setup_student_start_error(struct t *t)
{
    setup_student_exit3(t);
    script(t, FAKE_STUDENT, FAKE_START, FAKE_ERROR, 1);
}

static void setup_student_wait_error(struct t *t)
{
    setup_student_exit3(t);
    script(t, FAKE_STUDENT, FAKE_WAIT, FAKE_ERROR, 1);
}

static void setup_events_error(struct t *t)
{
    script(t, FAKE_GRADING, FAKE_EVENTS, FAKE_ERROR, -1);
}

/** A request after the result is never read (INGInious reads nothing after it either). */
static void run_result_student_exit(struct t *t)
{
    send_result(t);
    send_run_student(t);
    fake_engine_exit(t->f, t->grading, 0);
}

static void setup_stall_parent_kill(struct t *t)
{
    script(t, FAKE_GRADING, FAKE_KILL, FAKE_STALL, 1);
}

static void request_student_during_kill(struct t *t, enum fake_step step, enum fake_role role,
                                        struct fake_container *c, bool held)
{
    PROCTOR_UNUSED(c);
    if (step == FAKE_KILL && role == FAKE_GRADING && held)
        send_run_student(t);
}

static void retval_release_kill(struct t *t)
{
    fake_engine_release(t->f, FAKE_GRADING, FAKE_KILL);
}

static void setup_stall_student_create(struct t *t)
{
    script(t, FAKE_STUDENT, FAKE_CREATE, FAKE_STALL, 1);
}

static void request_exit_during_student_create(struct t *t, enum fake_step step,
                                               enum fake_role role, struct fake_container *c,
                                               bool held)
{
    PROCTOR_UNUSED(c);
    if (step == FAKE_CREATE && role == FAKE_STUDENT && held) {
        send_result(t);
        fake_engine_exit(t->f, t->grading, 0);
    }
}

static void done_release_student_create(struct t *t)
{
    // The parent is gone and reported: only now does Docker finish the create.
    fake_engine_release(t->f, FAKE_STUDENT, FAKE_CREATE);
}

static const struct scenario scenarios[] = {
    {.name = "success", .result = "success", .text = "well done", .grading = 1},
    {.name = "create_error",
     .setup = setup_create_error,
     .result = "crash",
     .text = "Cannot create container.",
     .grading = 0},
    {.name = "attach_refused",
     .setup = setup_attach_refused,
     .check = check_never_started,
     .result = "crash",
     .text = "Cannot start container",
     .grading = 1},
    {.name = "attach_cut_mid_frame",
     .run = run_cut_mid_frame,
     .result = "crash",
     .text = "without a result",
     .grading = 1},
    {.name = "start_error",
     .setup = setup_start_error,
     .result = "crash",
     .text = "Cannot start container",
     .grading = 1},
    {.name = "wait_error", .setup = setup_wait_error, .result = "success", .grading = 1},
    {.name = "wait_error_always",
     .setup = setup_wait_error_always,
     .run = run_result_only,
     .result = "crash",
     .text = "An unknown error occurred",
     .grading = 1,
     .deadline_ms = 30000},
    {.name = "inspect_error", .setup = setup_inspect_error, .result = "success", .grading = 1},
    {.name = "delete_error",
     .setup = setup_delete_error,
     .result = "success",
     .grading = 1,
     .delete_fails = true},
    {.name = "events_error", .setup = setup_events_error, .result = "success", .grading = 1},
    {.name = "stats_error", .setup = setup_stats_error, .result = "success", .grading = 1},
    {.name = "stats_stream_ends", .run = run_stats_end, .result = "success", .grading = 1},
    {.name = "kill_error",
     .setup = setup_kill_error,
     .run = run_kill,
     .request = request_kill_error,
     .result = "killed",
     .grading = 1},
    {.name = "create_stalls",
     .setup = setup_create_stalls,
     .check = check_create_abandoned,
     .result = "crash",
     .text = "Cannot create container.",
     .grading = 0,
     .timeout_ms = 300},
    {.name = "start_stalls",
     .setup = setup_start_stalls,
     .check = check_start_abandoned,
     .result = "crash",
     .text = "Cannot start container",
     .grading = 1,
     .timeout_ms = 300},
    {.name = "inspect_stalls",
     .setup = setup_inspect_stalls,
     .result = "success",
     .grading = 1,
     .timeout_ms = 300},
    {.name = "delete_stalls",
     .setup = setup_delete_stalls,
     .check = check_delete_abandoned,
     .result = "success",
     .grading = 1,
     .delete_fails = true,
     .timeout_ms = 300},
    {.name = "kill_while_preparing",
     .after_new_job = kill_job,
     .check = check_nothing_created,
     .result = "killed",
     .grading = 0},
    {.name = "kill_while_creating",
     .setup = setup_stall_create_once,
     .request = request_kill_while_creating,
     .check = check_never_started,
     .result = "killed",
     .grading = 1},
    {.name = "kill_while_attaching",
     .setup = setup_stall_attach_once,
     .request = request_kill_while_attaching,
     .reply_read = reply_release_attach,
     .result = "killed",
     .grading = 1},
    {.name = "kill_while_starting",
     .setup = setup_stall_start_and_kill,
     .request = request_kill_while_starting,
     .result = "killed",
     .grading = 1},
    {.name = "kill_while_starting_refused",
     .setup = setup_stall_start_once,
     .request = request_kill_on_held_start,
     .reply_read = reply_release_start,
     .result = "killed",
     .grading = 1},
    {.name = "kill_while_inspecting",
     .setup = setup_stall_inspect_once,
     .request = request_kill_while_inspecting,
     .result = "killed",
     .grading = 1},
    {.name = "kill_while_removing",
     .setup = setup_stall_delete_once,
     .request = request_kill_while_removing,
     .result = "success",
     .grading = 1},
    {.name = "start_cut",
     .setup = setup_start_cut,
     .result = "crash",
     .text = "Cannot start container",
     .grading = 1},
    {.name = "wait_cut", .setup = setup_wait_cut, .result = "success", .grading = 1},
    {.name = "kill_while_running", .run = run_kill, .result = "killed", .grading = 1},
    {.name = "kill_after_result", .run = run_result_then_kill, .result = "killed", .grading = 1},
    {.name = "timeout_cpu",
     .run = run_cpu_over,
     .result = "timeout",
     .grading = 1,
     .time_limit = 1},
    {.name = "overflow_oom_event", .run = run_oom_event, .result = "overflow", .grading = 1},
    {.name = "overflow_inspect", .run = run_oom_inspect, .result = "overflow", .grading = 1},
    {.name = "stop_jobs_while_running",
     .run = run_stop_jobs,
     .result = "crash",
     .text = "The agent is draining.",
     .grading = 1},
    {.name = "abandon_while_running", .run = run_abandon, .result = NULL, .grading = 1},
    {.name = "student_run",
     .setup = setup_student_exit3,
     .run = send_run_student,
     .result = "success",
     .grading = 1,
     .students = 1,
     .want_retval = 3,
     .want_started = 1},
    {.name = "student_create_error",
     .setup = setup_student_create_error,
     .run = send_run_student,
     .result = "success",
     .grading = 1,
     .students = 0,
     .want_retval = 254,
     .want_started = 0},
    {.name = "student_oom",
     .setup = setup_student_oom,
     .run = send_run_student,
     .result = "success",
     .grading = 1,
     .students = 1,
     .want_retval = 252,
     .want_started = 1},
    {.name = "student_hangs_parent_killed",
     .setup = setup_student_hang,
     .run = send_run_student,
     .request = request_kill_when_student_runs,
     .result = "killed",
     .grading = 1,
     .students = 1,
     .want_retval = NOT_CHECKED,
     .want_started = 1},
    {.name = "student_stats_stream_ends",
     .setup = setup_student_hang,
     .run = send_run_student,
     .request = request_student_stats_end,
     .result = "killed",
     .grading = 1,
     .students = 1,
     .want_retval = NOT_CHECKED,
     .want_started = 1},
    {.name = "student_hangs_parent_exits",
     .setup = setup_student_hang,
     .run = send_run_student,
     .request = request_exit_when_student_runs,
     .result = "success",
     .grading = 1,
     .students = 1,
     .want_retval = NOT_CHECKED,
     .want_started = 1},
    {.name = "student_start_error",
     .setup = setup_student_start_error,
     .run = send_run_student,
     .result = "success",
     .grading = 1,
     .students = 1,
     .want_retval = 254,
     .want_started = 1},
    // One supervisor for both roles: a lost wait is asked again, as for the
    // grading container (it was 254 at once before), so the real code comes back.
    {.name = "student_wait_error",
     .setup = setup_student_wait_error,
     .run = send_run_student,
     .result = "success",
     .grading = 1,
     .students = 1,
     .want_retval = 3,
     .want_started = 1},
    // Not read: no student container, no answer to it; the exit decides (no cgroup here).
    {.name = "student_after_result",
     .setup = setup_student_exit3,
     .run = run_result_student_exit,
     .result = "success",
     .grading = 1,
     .students = 0,
     .want_started = 0},
    {.name = "student_while_parent_killed",
     .setup = setup_stall_parent_kill,
     .run = run_kill,
     .request = request_student_during_kill,
     .retval = retval_release_kill,
     .result = "killed",
     .grading = 1,
     .students = 0,
     .want_retval = 254,
     .want_started = 0},
    {.name = "student_parent_exits_during_create",
     .setup = setup_stall_student_create,
     .run = send_run_student,
     .request = request_exit_during_student_create,
     .done = done_release_student_create,
     .result = "success",
     .grading = 1,
     .students = 1,
     .want_started = 0},
};

/* ---- the run ---------------------------------------------------------------- */

static long on_deadline(struct loop *loop, uint64_t id, void *data)
{
    PROCTOR_UNUSED(id);
    struct t *t = data;
    t->deadline_hit = true;
    fprintf(stderr, "deadline: %zu job(s) left, %zu engine connection(s) pending\n",
            t->a ? agent_job_count(t->a) : 0, fake_engine_pending(t->f));
    fake_engine_dump(t->f, stderr);
    loop_stop(loop);
    return LOOP_NOMORE;
}

static void until_settled(struct loop *loop, void *data)
{
    struct t *t = data;
    if (t->submitted && agent_job_count(t->a) == 0 && fake_engine_pending(t->f) == 0)
        loop_stop(loop);
}

static void on_ready(struct agent *a, const struct value *envs, const char *err, void *data)
{
    PROCTOR_UNUSED(a);
    struct t *t = data;
    CHECK(envs != NULL, "discovery failed: %s", err ? err : "?");
    const struct value *docker = envs ? value_map_get(envs, "docker") : NULL;
    const struct value *env = docker ? value_map_get(docker, FAKE_ENGINE_ENV) : NULL;
    CHECK(env && env->type == VALUE_MAP, "the fake image is offered as docker/" FAKE_ENGINE_ENV);
    t->discovered = envs != NULL;
    loop_stop(t->loop);
}

static void make_task(const char *top)
{
    AUTO_FREE char *task = xasprintf("%s/tasks/course/task", top);
    AUTO_FREE char *run = xasprintf("%s/run", task);
    REQUIRE_OR_EXIT(util_mkdirs(task, 0755) == 0, "mkdir %s: %s", task, strerror(errno));
    FILE *fp = fopen(run, "w");
    REQUIRE_OR_EXIT(fp && fputs("#!/bin/sh\n", fp) >= 0 && fclose(fp) == 0, "write %s", run);
}

static void new_job(struct t *t)
{
    struct backend_new_job msg = {
        .job_id = xstrdup(JOB_ID),
        .course_id = xstrdup("course"),
        .task_id = xstrdup("task"),
        .environment_type = xstrdup("docker"),
        .environment = xstrdup(FAKE_ENGINE_ENV),
        .debug = BACKEND_DEBUG_OFF,
    };
    value_set_map(&msg.task_problems);
    value_set_map(&msg.inputdata);
    value_set_str(value_map_put(&msg.inputdata, "@state"), "prev-state");
    value_set_map(&msg.environment_parameters);
    struct value *limits = value_map_put(&msg.environment_parameters, "limits");
    value_set_map(limits);
    value_set_int(value_map_put(limits, "time"), t->sc->time_limit ? t->sc->time_limit : 30);
    value_set_int(value_map_put(limits, "memory"), 100);
    t->submitted = true;
    agent_new_job(t->a, &msg);
    free(msg.job_id);
    free(msg.course_id);
    free(msg.task_id);
    free(msg.environment_type);
    free(msg.environment);
    value_deinit(&msg.task_problems);
    value_deinit(&msg.inputdata);
    value_deinit(&msg.environment_parameters);
    if (t->sc->after_new_job)
        t->sc->after_new_job(t);
}

static void check_outcome(struct t *t)
{
    const struct scenario *sc = t->sc;
    CHECK(!t->deadline_hit, "the job did not settle before the deadline");
    CHECK_INT_EQ(t->n_started, 1);
    CHECK_INT_EQ(t->n_idle, t->deadline_hit ? 0 : 1);
    if (sc->result) {
        CHECK_INT_EQ(t->n_done, 1);
        CHECK_STR_EQ(t->result, sc->result);
        if (sc->text)
            CHECK(t->text && strstr(t->text, sc->text), "text \"%s\" lacks \"%s\"",
                  t->text ? t->text : "(none)", sc->text);
    } else {
        CHECK_INT_EQ(t->n_done, 0);
    }
    CHECK_INT_EQ(fake_engine_created(t->f, FAKE_GRADING), sc->grading);
    CHECK_INT_EQ(fake_engine_created(t->f, FAKE_STUDENT), sc->students);
    for (size_t i = 0; i < fake_engine_ncontainers(t->f); i++) {
        struct fake_container *c = fake_engine_container(t->f, i);
        CHECK(fake_container_deletes(c) >= 1, "container %.16s was never deleted",
              fake_container_id(c));
        CHECK(fake_container_removed(c) == !sc->delete_fails, "container %.16s: removed %d",
              fake_container_id(c), fake_container_removed(c));
        CHECK_STR_EQ(fake_container_job(c), JOB_ID);
    }
    CHECK_INT_EQ(fake_engine_pending(t->f), 0);
    CHECK_INT_EQ(fake_engine_unexpected(t->f), 0);
    CHECK_INT_EQ(t->n_student_started, sc->want_started);
    if (sc->want_retval == 0) {
        CHECK_INT_EQ(t->n_retval, 0);
    } else if (sc->want_retval != NOT_CHECKED) {
        CHECK_INT_EQ(t->n_retval, 1);
        CHECK_INT_EQ(t->retval, sc->want_retval);
    }
    if (sc->check)
        sc->check(t);
}

static void run_scenario(const struct scenario *sc)
{
    struct t t = {.sc = sc};
    char tmpl[] = "/tmp/proctor-job-faults-XXXXXX";
    REQUIRE_OR_EXIT(mkdtemp(tmpl), "mkdtemp: %s", strerror(errno));
    t.top = xstrdup(tmpl);
    make_task(t.top);
    t.loop = loop_new();
    REQUIRE_OR_EXIT(t.loop, "loop");
    AUTO_FREE char *sock = xasprintf("%s/engine.sock", t.top);
    struct fake_engine_hooks hooks = {
        .on_request = on_request, .on_reply_read = on_reply_read, .on_stdin = on_stdin, .data = &t};
    t.f = fake_engine_new(t.loop, sock, &hooks);
    if (sc->setup)
        sc->setup(&t);

    AUTO_FREE char *tasks = xasprintf("%s/tasks", t.top);
    AUTO_FREE char *work = xasprintf("%s/work", t.top);
    struct agent_config cfg = {
        .friendly_name = "faults",
        .agent_id = "proctord-faults",
        .concurrency = 1,
        .tasks_dir = tasks,
        .tmp_dir = work,
        .docker_host = fake_engine_host(t.f),
        .docker_timeout_ms = sc->timeout_ms ? sc->timeout_ms : 2000,
    };
    struct agent_sink sink = {.job_started = sink_started,
                              .job_done = sink_done,
                              .ssh_debug = sink_ssh,
                              .idle = sink_idle,
                              .data = &t};
    char err[512] = "";
    t.a = agent_new(t.loop, &cfg, &sink, err, sizeof err);
    REQUIRE_OR_EXIT(t.a, "agent_new: %s", err);

    uint64_t deadline =
        loop_timer_add(t.loop, sc->deadline_ms ? sc->deadline_ms : 20000, on_deadline, &t);
    REQUIRE_OR_EXIT(agent_discover(t.a, on_ready, &t) == 0, "agent_discover");
    loop_run(t.loop);
    if (t.discovered && !t.deadline_hit) {
        new_job(&t);
        loop_hook_add(t.loop, until_settled, &t);
        loop_run(t.loop);
        loop_hook_del(t.loop, until_settled, &t);
    }
    loop_timer_del(t.loop, deadline);
    check_outcome(&t);
    if (sc->delete_fails && !t.deadline_hit) {
        // The engine works again: discovery sweeps what the job could not remove.
        script(&t, FAKE_GRADING, FAKE_DELETE, FAKE_OK, 0);
        script(&t, FAKE_STUDENT, FAKE_DELETE, FAKE_OK, 0);
        t.discovered = false;
        deadline = loop_timer_add(t.loop, 20000, on_deadline, &t);
        REQUIRE_OR_EXIT(agent_discover(t.a, on_ready, &t) == 0, "agent_discover again");
        loop_run(t.loop);
        loop_timer_del(t.loop, deadline);
        CHECK(t.discovered && !t.deadline_hit, "the second discovery did not finish");
    }
    if (agent_job_count(t.a)) {
        // Stuck: what proctord does at exit, abandon the job and let the loop
        // remove its containers (bounded).
        agent_abandon_jobs(t.a);
        t.deadline_hit = false;
        deadline = loop_timer_add(t.loop, 10000, on_deadline, &t);
        loop_hook_add(t.loop, until_settled, &t);
        loop_run(t.loop);
        loop_hook_del(t.loop, until_settled, &t);
        loop_timer_del(t.loop, deadline);
        CHECK(!t.deadline_hit, "even abandoned, the job did not settle");
    }
    int done_before_free = t.n_done;

    agent_free(t.a);
    t.a = NULL;
    CHECK_INT_EQ(t.n_done, done_before_free);
    // Whatever happened, no container is left behind.
    for (size_t i = 0; i < fake_engine_ncontainers(t.f); i++) {
        struct fake_container *c = fake_engine_container(t.f, i);
        CHECK(fake_container_removed(c), "after agent_free: container %.16s not removed",
              fake_container_id(c));
    }
    fake_engine_free(t.f);
    loop_free(t.loop);
    util_rmtree(t.top);
    free(t.top);
    free(t.result);
    free(t.text);
}

/** `--registered NAME...`: the ctest list names every scenario, and nothing else. */
static int check_registered(int argc, char **argv)
{
    for (size_t i = 0; i < ARRAY_SIZE(scenarios); i++) {
        bool found = false;
        for (int a = 0; a < argc; a++)
            found |= !strcmp(argv[a], scenarios[i].name);
        CHECK(found, "scenario %s has no ctest (cmake/job_tests.cmake)", scenarios[i].name);
    }
    for (int a = 0; a < argc; a++) {
        bool found = false;
        for (size_t i = 0; i < ARRAY_SIZE(scenarios); i++)
            found |= !strcmp(argv[a], scenarios[i].name);
        CHECK(found, "ctest job_faults.%s names no scenario", argv[a]);
    }
    return check_finish("job_faults.all_registered");
}

int main(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "--registered"))
        return check_registered(argc - 2, argv + 2);
    if (argc != 2) {
        fprintf(stderr, "usage: %s SCENARIO\nscenarios:", argv[0]);
        for (size_t i = 0; i < ARRAY_SIZE(scenarios); i++)
            fprintf(stderr, " %s", scenarios[i].name);
        fputc('\n', stderr);
        return 2;
    }
    for (size_t i = 0; i < ARRAY_SIZE(scenarios); i++) {
        if (!strcmp(argv[1], scenarios[i].name)) {
            run_scenario(&scenarios[i]);
            AUTO_FREE char *name = xasprintf("job_faults.%s", argv[1]);
            return check_finish(name);
        }
    }
    fprintf(stderr, "unknown scenario %s\n", argv[1]);
    return 2;
}
