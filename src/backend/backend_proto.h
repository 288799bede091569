/**
 * @file backend_proto.h
 * The INGInious agent <-> backend wire format (msgpack), without any I/O.
 *
 * Each ZeroMQ frame carries exactly one msgpack map: the message's fields
 * plus "@type" (spec BACKEND_PROTOCOL.md §2). This module turns one frame
 * from the backend into a typed `struct backend_msg`, and builds the five
 * messages an agent may send into a msgpack_sbuffer, byte-compatible with
 * what the Python agent emits (field order of the spec, "@type" last, grade
 * as float64, result as a 2-array, archive as bin).
 *
 * The backend dies on any malformed agent message, including a str that is
 * not valid UTF-8, so every encoder here sanitises every str it writes
 * (invalid sequences become U+FFFD) and refuses shapes the backend cannot
 * digest.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "core/value.h"

/** Messages the backend sends to an agent, with their "@type" names. */
#define BACKEND_MSG_TYPES(X)                                                                       \
    X(NEW_JOB, "BackendNewJob")                                                                    \
    X(KILL_JOB, "BackendKillJob")                                                                  \
    X(PING, "Ping")

enum backend_msg_type {
    BACKEND_MSG_NONE = 0, /* a zeroed or deinit'ed message */
#define X(name, str) BACKEND_MSG_##name,
    BACKEND_MSG_TYPES(X)
#undef X
};

/** "BackendNewJob", ... ; "none" for BACKEND_MSG_NONE, "?" out of range. Static string. */
const char *backend_msg_type_name(enum backend_msg_type t);

/** BackendNewJob.debug: false, true, or the string "ssh". */
#define BACKEND_DEBUG_MODES(X)                                                                     \
    X(OFF, "off")                                                                                  \
    X(ON, "on")                                                                                    \
    X(SSH, "ssh")

enum backend_debug {
#define X(name, str) BACKEND_DEBUG_##name,
    BACKEND_DEBUG_MODES(X)
#undef X
};

/** "off", "on", "ssh". Static string. */
const char *backend_debug_name(enum backend_debug d);

/** BackendNewJob. Every pointer is owned by the message (freed by backend_msg_deinit). */
struct backend_new_job {
    char *job_id;
    /* Both NULL for a taskless job (INGInious HEAD), otherwise both set. */
    char *course_id;
    char *task_id;
    struct value task_problems; /* MAP */
    struct value inputdata;     /* MAP */
    char *environment_type;
    char *environment;
    struct value environment_parameters; /* MAP */
    enum backend_debug debug;
};

/** BackendKillJob. Owned by the message. */
struct backend_kill_job {
    char *job_id;
    char *state; /* the job's previous state, "" if none */
};

/**
 * One decoded backend message. `type` selects the union member; Ping has no
 * fields. str fields are NUL-free valid UTF-8.
 */
struct backend_msg {
    enum backend_msg_type type;
    union {
        struct backend_new_job new_job;
        struct backend_kill_job kill_job;
    };
};

/**
 * What a BackendNewJob asks in environment_parameters.limits[key] ("time",
 * "hard_time", "memory"), for the log: an integer (a float truncated, clamped
 * to int64), or -1 when absent or of another type. The job's own parsing
 * (and the limits policy) decide what the job gets.
 */
int64_t backend_new_job_limit(const struct backend_new_job *m, const char *key);

/**
 * Decodes one frame received from the backend. Validation is that of the
 * upstream "strict construction" (a missing or extra field, a non-str key,
 * a missing or unknown "@type" are errors) plus types: str fields must be
 * str (course_id/task_id may be nil, but only together), maps must be maps,
 * debug must be a bool or "ssh"; every str anywhere must be valid UTF-8, and
 * the str fields exposed as C strings must not contain NUL. Every msgpack
 * integer width, str8/16/32 and float32/64 are accepted inside the trees.
 *
 * buf is borrowed. On success *out is filled (caller releases it with
 * backend_msg_deinit). On failure *out is BACKEND_MSG_NONE, err (may be NULL)
 * says why, and the result is -EBADMSG (the caller logs and drops the frame)
 * or -ENOMEM.
 */
int backend_decode(const char *buf, size_t len, struct backend_msg *out, char *err, size_t errlen);

/** Releases what m owns and resets it to BACKEND_MSG_NONE. NULL is a no-op. */
void backend_msg_deinit(struct backend_msg *m);

/*
 * Encoders. Each appends exactly one message to sb (which the caller owns
 * and may reuse after msgpack_sbuffer_clear). String arguments are borrowed
 * and must not be NULL unless stated. They return 0, -ENOMEM, or -EINVAL for
 * an argument the backend could not digest (nothing usable is left in sb
 * then: clear it).
 */

/**
 * AgentHello. environments (borrowed, NIL = none) is
 * {type: {name: info}} where info is a map holding at least "id" (str) and
 * "created" (int); other keys ("title", "ports", "runtime", ...) are copied
 * as they are, except "advertised", which is always written as true, last.
 * slots must be >= 0.
 */
int backend_encode_hello(msgpack_sbuffer *sb, const char *friendly_name, int64_t slots,
                         const struct value *environments);

/** AgentJobStarted. */
int backend_encode_job_started(msgpack_sbuffer *sb, const char *job_id);

/** Everything AgentJobDone carries. All pointers borrowed by the encoder. */
struct backend_job_done {
    const char *job_id;
    const char *result; /* "success", "failed", "error", "crash", "timeout", "overflow", "killed" */
    const char *text;   /* main feedback; NULL = "" */
    double grade;       /* written as float64 whatever its value */
    /* MAP or NIL (NIL = empty map). problems: id -> [result, text] arrays. */
    const struct value *problems;
    const struct value *tests;
    const struct value *custom;
    const char *state;   /* NULL = "" */
    const void *archive; /* tgz bytes, NULL = nil */
    size_t archive_len;
    const char *stdout_text; /* NULL = nil */
    const char *stderr_text; /* NULL = nil */
};

/** AgentJobDone. d->problems/tests/custom may be NULL pointers too (= empty map). */
int backend_encode_job_done(msgpack_sbuffer *sb, const struct backend_job_done *d);

/** AgentJobSSHDebug. port must be in 0..65535. */
int backend_encode_ssh_debug(msgpack_sbuffer *sb, const char *job_id, const char *host, int port,
                             const char *user, const char *password);

/** Pong. */
int backend_encode_pong(msgpack_sbuffer *sb);

/**
 * Backend-side check of an agent message, for tests and fault-injection
 * backends: decodes buf (borrowed) into *out (caller releases it with
 * value_deinit) and verifies what the real backend needs and what the spec
 * promises: a map, a known agent "@type" (AgentHello, AgentJobStarted,
 * AgentJobDone, AgentJobSSHDebug, Pong), exactly the fields of the spec in
 * their declaration order with "@type" last, their types (grade float,
 * result and problem values [str, str], archive bin or nil, ...), and valid
 * UTF-8 in every str. 0, -EBADMSG (err says why) or -ENOMEM.
 */
int backend_check_agent_msg(const char *buf, size_t len, struct value *out, char *err,
                            size_t errlen);
