#include "core/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static enum log_level min_level = LOG_LEVEL_INFO;
static bool level_from_env_done;

static const char *const group_names[] = {
#define X(name, str) str,
    LOG_GROUPS(X)
#undef X
};

static const char *const level_names[] = {"debug", "info", "warn", "error"};

static void level_from_env(void)
{
    level_from_env_done = true;
    const char *e = getenv("PROCTOR_LOG");
    if (!e)
        return;
    for (size_t i = 0; i < ARRAY_SIZE(level_names); i++)
        if (!strcmp(e, level_names[i]))
            min_level = (enum log_level)i;
}

void log_set_level(enum log_level level)
{
    level_from_env_done = true;
    min_level = level;
}

bool log_enabled(enum log_level level)
{
    if (!level_from_env_done)
        level_from_env();
    return level >= min_level;
}

void log_write(enum log_level level, enum log_group group, const char *fmt, ...)
{
    if (!log_enabled(level))
        return;
    char line[4096];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s %-7s ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     ts.tv_nsec / 1000000, level_names[level], group_names[group]);
    va_list ap;
    va_start(ap, fmt);
    if (n > 0 && (size_t)n < sizeof line)
        vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    // One write per line keeps lines whole when several processes share stderr.
    size_t len = strnlen(line, sizeof line - 2);
    line[len++] = '\n';
    fwrite(line, 1, len, stderr);
    fflush(stderr);
}
