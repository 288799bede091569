/**
 * @file log.h
 * Structured, levelled logging to stderr: `log_info(LOG_JOB, "job %s: ...", id)`.
 * Messages are lowercase and carry the job id ("job <id>: ...") and container
 * id when known. Each message is bounded (4 KiB).
 */
#pragma once

#include <stdbool.h>

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
 * one), "msg"}, valid UTF-8 whatever the message carried. Default TEXT;
 * PROCTOR_LOG_FORMAT=json in the env.
 */
enum log_format { LOG_FORMAT_TEXT, LOG_FORMAT_JSON };

/** Messages below this level are dropped (default INFO; PROCTOR_LOG=debug in the env). */
void log_set_level(enum log_level level);
void log_set_format(enum log_format format);
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

#define log_debug(g, ...)                                                                          \
    do {                                                                                           \
        if (log_enabled(LOG_LEVEL_DEBUG))                                                          \
            log_write(LOG_LEVEL_DEBUG, g, __VA_ARGS__);                                            \
    } while (0)
#define log_info(g, ...) log_write(LOG_LEVEL_INFO, g, __VA_ARGS__)
#define log_warn(g, ...) log_write(LOG_LEVEL_WARN, g, __VA_ARGS__)
#define log_error(g, ...) log_write(LOG_LEVEL_ERROR, g, __VA_ARGS__)
