/**
 * @file fake_engine.h
 * A scripted fake Docker engine for fault tests of the job layer: a unix
 * socket served from the same loop as the agent, speaking the Engine API
 * subset proctord uses (HTTP/1.1, one request per connection, `Connection:
 * close`), with a table of the containers it created.
 *
 * Replies are followed by a half-close; a connection counts as pending until
 * the agent has closed its end too.
 *
 * Served: /_ping, /version, /info (runtime runc, cgroup v2), /images/json (one
 * grading image, environment FAKE_ENGINE_ENV, agent_version 3),
 * /containers/json (the containers not removed), /events (a stream that
 * carries die and oom), and per container create, attach (HTTP upgrade, then
 * multiplexed stdout frames to the agent and raw stdin from it), start, wait
 * (condition not-running), json (inspect, with State.OOMKilled), kill, DELETE
 * and stats?stream=1.
 *
 * Scripting: each (role, step) answers normally (FAKE_OK), with HTTP 500 and
 * Docker's {"message":...} (FAKE_ERROR), not at all until the test releases
 * it (FAKE_STALL; a request whose client hangs up meanwhile is dropped and
 * has no effect), or with its reply cut after the engine did the work
 * (FAKE_CUT: mid-body, or mid status line for a reply without a body; an
 * attach is upgraded, then cut inside a frame).
 *
 * The grading container's program is the test: it gets every frame the agent
 * writes on stdin (4-byte big-endian length + msgpack, delivered once the
 * container runs) through hooks.on_stdin, and answers with
 * fake_engine_send(), fake_engine_exit() and friends. Student containers run
 * the script of fake_engine_student() as soon as they start.
 *
 * Engine-wide steps (FAKE_INFO, FAKE_IMAGES, FAKE_LIST, FAKE_EVENTS) are
 * scripted under FAKE_GRADING. Everything runs on the loop; hooks may call any
 * fake_engine_* function, and the agent's functions.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct loop;
struct fake_engine;
struct fake_container;

/** The environment name of the one grading image (environment type: docker). */
#define FAKE_ENGINE_ENV "fake"

enum fake_role { FAKE_GRADING, FAKE_STUDENT, FAKE_ROLES };

#define FAKE_STEPS(X)                                                                              \
    X(CREATE, "create")                                                                            \
    X(ATTACH, "attach")                                                                            \
    X(START, "start")                                                                              \
    X(WAIT, "wait")                                                                                \
    X(INSPECT, "inspect")                                                                          \
    X(KILL, "kill")                                                                                \
    X(DELETE, "delete")                                                                            \
    X(STATS, "stats")                                                                              \
    X(INFO, "info")                                                                                \
    X(IMAGES, "images")                                                                            \
    X(LIST, "list")                                                                                \
    X(EVENTS, "events")                                                                            \
    X(OTHER, "other")

enum fake_step {
#define X(name, str) FAKE_##name,
    FAKE_STEPS(X)
#undef X
        FAKE_NSTEPS
};

enum fake_action { FAKE_OK, FAKE_ERROR, FAKE_STALL, FAKE_CUT };

enum fake_state { FAKE_CREATED, FAKE_RUNNING, FAKE_EXITED };

/** What a student container does once started. */
enum fake_student_mode {
    FAKE_STUDENT_EXIT, /* exits at once with the given code */
    FAKE_STUDENT_OOM,  /* killed for memory: oom event, exit 137, State.OOMKilled */
    FAKE_STUDENT_HANG, /* runs until killed or removed */
};

struct fake_engine_hooks {
    /**
     * A request arrived and was handled as scripted (held: stalled), or a
     * stalled one was released and answered (held false). c is the container
     * it is about (the new one for a create; NULL for engine-wide steps, an
     * unknown id or a create not done yet: then role says whose it is).
     */
    void (*on_request)(struct fake_engine *f, enum fake_step step, enum fake_role role,
                       struct fake_container *c, bool held, void *data);
    /**
     * The agent closed its end of an answered connection: it read the reply
     * and its callback for the request has run (the Docker client calls it
     * before going back to the loop), or it gave the request up.
     */
    void (*on_reply_read)(struct fake_engine *f, enum fake_step step, enum fake_role role,
                          struct fake_container *c, void *data);
    /** One frame's payload (msgpack) written by the agent on c's stdin while c runs. */
    void (*on_stdin)(struct fake_engine *f, struct fake_container *c, const void *p, size_t n,
                     void *data);
    void *data;
};

/**
 * Listens on the unix socket `path` (replaced if present) on loop. Hooks are
 * copied (may be NULL). Exits the process on a set-up failure. Caller frees
 * with fake_engine_free(), after the agent is gone.
 */
struct fake_engine *fake_engine_new(struct loop *loop, const char *path,
                                    const struct fake_engine_hooks *hooks);
/** Closes every connection and the socket, frees the containers. NULL is a no-op. */
void fake_engine_free(struct fake_engine *f);
/** "unix://<path>", for agent_config.docker_host. Borrowed. */
const char *fake_engine_host(const struct fake_engine *f);

/**
 * What the next `times` requests of (role, step) get (times < 0: all of them);
 * after those, FAKE_OK again.
 */
void fake_engine_script(struct fake_engine *f, enum fake_role role, enum fake_step step,
                        enum fake_action action, int times);
/** Answers every stalled request of (role, step) normally, now. Returns how many. */
size_t fake_engine_release(struct fake_engine *f, enum fake_role role, enum fake_step step);
/** Student containers started from now on behave as told (default: exit 0). */
void fake_engine_student(struct fake_engine *f, enum fake_student_mode mode, int exit_code);

/* ---- the grading program's side --------------------------------------------- */

/** Sends one message (payload: msgpack) to the agent as the runner does: framed, on stdout. */
void fake_engine_send(struct fake_engine *f, struct fake_container *c, const void *p, size_t n);
/** Cuts c's attach stream inside a Docker frame (header sent, payload short), then closes it. */
void fake_engine_cut_attach(struct fake_engine *f, struct fake_container *c);
/** c's process exits with code: waits answered, attach stream ended, die event. */
void fake_engine_exit(struct fake_engine *f, struct fake_container *c, int code);
/** c is killed for memory: State.OOMKilled, an oom event when `event`, exit 137. */
void fake_engine_oom(struct fake_engine *f, struct fake_container *c, bool event);
/** Sends one stats sample with cumulative CPU nanoseconds on c's stats streams. */
void fake_engine_cpu(struct fake_engine *f, struct fake_container *c, int64_t total_ns);
/** Ends c's stats streams cleanly (as an engine restarting does). */
void fake_engine_end_stats(struct fake_engine *f, struct fake_container *c);
/**
 * Creates a listening-less unix socket at <job dir>/sockets/<socket_id>.sock,
 * as the runner does before asking for a student container (c: the grading
 * container, whose create named the job dir). 0 or -errno.
 */
int fake_engine_make_socket(struct fake_engine *f, struct fake_container *c, const char *socket_id);

/* ---- what the engine saw ---------------------------------------------------- */

size_t fake_engine_ncontainers(const struct fake_engine *f);
/** The i-th container created (creation order). Borrowed, valid until fake_engine_free(). */
struct fake_container *fake_engine_container(const struct fake_engine *f, size_t i);
/** Containers of `role` created so far. */
size_t fake_engine_created(const struct fake_engine *f, enum fake_role role);
/** Requests of (role, step) received so far (whatever their answer). */
size_t fake_engine_requests(const struct fake_engine *f, enum fake_role role, enum fake_step step);
/** Stalled requests the client gave up on (timeout, cancel) before a release. */
size_t fake_engine_abandoned(const struct fake_engine *f, enum fake_role role, enum fake_step step);
/** Requests the fake does not serve (wrong path, method or API prefix). */
size_t fake_engine_unexpected(const struct fake_engine *f);
/**
 * Connections still open that are not an events stream: requests unanswered
 * (stalled, a wait on a running container), streams and attach connections.
 */
size_t fake_engine_pending(const struct fake_engine *f);
/** Prints the pending connections and the container table (diagnostics). */
void fake_engine_dump(const struct fake_engine *f, FILE *out);
const char *fake_step_name(enum fake_step step);

const char *fake_container_id(const struct fake_container *c);
enum fake_role fake_container_role(const struct fake_container *c);
enum fake_state fake_container_state(const struct fake_container *c);
/** The value of its org.proctor.job label ("" if none). */
const char *fake_container_job(const struct fake_container *c);
bool fake_container_removed(const struct fake_container *c);
/** DELETE requests received for it (whatever their answer). */
unsigned fake_container_deletes(const struct fake_container *c);
