/**
 * @file log.h
 * Structured, levelled logging to stderr: `log_info(LOG_JOB, "job %s: ...", id)`.
 * Messages are lowercase and carry the job id and container id when known.
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

/** Messages below this level are dropped (default INFO; PROCTOR_LOG=debug in the env). */
void log_set_level(enum log_level level);
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
