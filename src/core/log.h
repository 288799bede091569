/**
 * @file log.h
 * Structured, levelled logging to stderr: `log_info(LOG_JOB, "job %s: ...", id)`.
 * Messages are lowercase and carry the job id ("job <id>: ...") and container
 * id when known. Each message is bounded (4 KiB).
 */
#pragma once

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/util.h"

#define LOG_GROUPS(X)                                                                              \
    X(MAIN, "main")                                                                                \
    X(LOOP, "loop")                                                                                \
    X(DOCKER, "docker")                                                                            \
    X(BACKEND, "backend")                                                                          \
    X(JOB, "job")                                                                                  \
    X(POLICY, "policy")                                                                            \
    X(CLI, "cli")

enum log_group {
#define X(name, str) LOG_##name,
    LOG_GROUPS(X)
#undef X
};

enum log_level { LOG_LEVEL_DEBUG, LOG_LEVEL_INFO, LOG_LEVEL_WARN, LOG_LEVEL_ERROR };

/**
 * Line format on stderr. TEXT: `<time> <level> <area> <message>`. JSON: one
 * object per line, {"time", "level", "area", "job" (when the message is about
 * one), "event" (lines written with log_*_event), "msg", "fields" (the same
 * lines)}, valid UTF-8 whatever the message carried. Default TEXT; PROCTOR_LOG_FORMAT=json in
 * the env.
 */
enum log_format { LOG_FORMAT_TEXT, LOG_FORMAT_JSON };

/** Messages below this level are dropped (default INFO; PROCTOR_LOG=debug in the env). */
void log_set_level(enum log_level level);
void log_set_format(enum log_format format);
/** The format in use (a child process that logs to the same stderr must use it too). */
enum log_format log_get_format(void);
/** "text" or "json": 0, or -1 for anything else. */
int log_format_parse(const char *s, enum log_format *out);
/**
 * Warnings and errors are rate-limited per kind (their format string): at
 * most 10 lines of a kind per 10 s; the next line written after a drop says
 * how many were dropped. This forgets what was counted (tests).
 */
void log_reset_repeats(void);
/** Tests: moves the rate limit's clock forward (the times written are not affected). */
void log_advance_clock(int seconds);
bool log_enabled(enum log_level level);
void log_write(enum log_level level, enum log_group group, const char *fmt, ...)
    PROCTOR_PRINTF(3, 4);

/** The type of a structured field's value (struct log_field). */
enum log_field_type {
    LOG_FIELD_STR,
    LOG_FIELD_INT,
    LOG_FIELD_UINT,
    LOG_FIELD_DOUBLE,
    LOG_FIELD_BOOL
};

/**
 * One structured field of a line. In JSON mode it is a member of the line's
 * "fields" object; text mode writes nothing of it (the message says it).
 * Borrows key and string: they need only live for the call. Bounds, whatever
 * the caller passes: keys are [a-z0-9_], at most LOG_FIELD_KEY_MAX bytes (a
 * field with another key is left out); a string is made valid UTF-8 and cut
 * to LOG_FIELD_STR_MAX bytes at a character, a NULL one is `null`; a line has
 * at most LOG_FIELDS_MAX fields and LOG_FIELDS_BYTES of them as JSON (what
 * does not fit is left out and the line says "fields_truncated":true); a
 * double that JSON cannot write (NaN, infinities) is `null`.
 */
struct log_field {
    const char *key;
    enum log_field_type type;
    union {
        const char *s;
        long long i;
        unsigned long long u;
        double d;
        bool b;
    } v;
};

#define LOG_FIELD_KEY_MAX 32
#define LOG_FIELD_STR_MAX 256
#define LOG_FIELDS_MAX 24
#define LOG_FIELDS_BYTES 4096

#define LOG_STR(k, x) ((struct log_field){.key = (k), .type = LOG_FIELD_STR, .v.s = (x)})
#define LOG_INT(k, x) ((struct log_field){.key = (k), .type = LOG_FIELD_INT, .v.i = (long long)(x)})
#define LOG_UINT(k, x)                                                                             \
    ((struct log_field){.key = (k), .type = LOG_FIELD_UINT, .v.u = (unsigned long long)(x)})
#define LOG_DOUBLE(k, x)                                                                           \
    ((struct log_field){.key = (k), .type = LOG_FIELD_DOUBLE, .v.d = (double)(x)})
#define LOG_BOOL(k, x) ((struct log_field){.key = (k), .type = LOG_FIELD_BOOL, .v.b = (x)})
/**
 * The fields of one line, as the two arguments (array, count) that
 * log_write_event takes: `LOG_FIELDS(LOG_STR("role", role), LOG_INT("status", st))`.
 * An array on the caller's stack, built only when the line is written (the
 * log_*_event macros test the level first): a filtered line costs nothing.
 */
#define LOG_FIELDS(...)                                                                            \
    (const struct log_field[]){__VA_ARGS__},                                                       \
        (sizeof((const struct log_field[]){__VA_ARGS__}) / sizeof(struct log_field))

/**
 * log_write with an event name ([a-z_], at most LOG_FIELD_KEY_MAX bytes, else
 * none is written; NULL for none) and structured fields (borrowed for the
 * call). Text mode writes exactly the line log_write would; rate limiting is
 * the same.
 */
void log_write_event(enum log_level level, enum log_group group, const char *event,
                     const struct log_field *fields, size_t nfields, const char *fmt, ...)
    PROCTOR_PRINTF(6, 7);

/** log_write_event with a va_list (for helpers that build their fields first). */
void log_vwrite_event(enum log_level level, enum log_group group, const char *event,
                      const struct log_field *fields, size_t nfields, const char *fmt, va_list ap)
    PROCTOR_PRINTF(6, 0);

/**
 * `log_info_event(LOG_JOB, "job_finished", LOG_FIELDS(...), "job %s: ...", id)`:
 * the fields are evaluated only when the level is enabled.
 */
#define log_event_at(level, g, event, ...)                                                         \
    do {                                                                                           \
        if (log_enabled(level))                                                                    \
            log_write_event(level, g, event, __VA_ARGS__);                                         \
    } while (0)
#define log_debug_event(g, event, ...) log_event_at(LOG_LEVEL_DEBUG, g, event, __VA_ARGS__)
#define log_info_event(g, event, ...) log_event_at(LOG_LEVEL_INFO, g, event, __VA_ARGS__)
#define log_warn_event(g, event, ...) log_event_at(LOG_LEVEL_WARN, g, event, __VA_ARGS__)
#define log_error_event(g, event, ...) log_event_at(LOG_LEVEL_ERROR, g, event, __VA_ARGS__)

#define log_debug(g, ...)                                                                          \
    do {                                                                                           \
        if (log_enabled(LOG_LEVEL_DEBUG))                                                          \
            log_write(LOG_LEVEL_DEBUG, g, __VA_ARGS__);                                            \
    } while (0)
#define log_info(g, ...) log_write(LOG_LEVEL_INFO, g, __VA_ARGS__)
#define log_warn(g, ...) log_write(LOG_LEVEL_WARN, g, __VA_ARGS__)
#define log_error(g, ...) log_write(LOG_LEVEL_ERROR, g, __VA_ARGS__)
