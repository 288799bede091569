#include "core/log.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common/utf8.h"

// Repetition of one warning or error (one format string) is limited: at most
// LOG_BURST lines of it per LOG_WINDOW_S seconds; the first line after a
// window in which some were dropped says how many.
#define LOG_BURST 10
#define LOG_WINDOW_S 10
#define LOG_KINDS 64
#define LOG_LINE_MAX 4096

static enum log_level min_level = LOG_LEVEL_INFO;
static enum log_format format = LOG_FORMAT_TEXT;
static bool env_done;
static time_t clock_offset; /* tests: log_advance_clock */

struct log_kind {
    const char *fmt; /* identity of the kind: its format string, */
    uint64_t hash;   /* and its text without the job id */
    time_t window;   /* start of its current window */
    unsigned lines;  /* written in the window */
    unsigned long dropped;
};
static struct log_kind kinds[LOG_KINDS];
// The filesystem worker thread logs too.
static pthread_mutex_t kinds_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *const group_names[] = {
#define X(name, str) str,
    LOG_GROUPS(X)
#undef X
};

static const char *const level_names[] = {"debug", "info", "warn", "error"};

static void from_env(void)
{
    env_done = true;
    const char *e = getenv("PROCTOR_LOG");
    for (size_t i = 0; e && i < ARRAY_SIZE(level_names); i++)
        if (!strcmp(e, level_names[i]))
            min_level = (enum log_level)i;
    e = getenv("PROCTOR_LOG_FORMAT");
    if (e && !strcmp(e, "json"))
        format = LOG_FORMAT_JSON;
}

void log_set_level(enum log_level level)
{
    if (!env_done)
        from_env();
    min_level = level;
}

void log_set_format(enum log_format f)
{
    if (!env_done)
        from_env();
    format = f;
}

enum log_format log_get_format(void)
{
    if (!env_done)
        from_env();
    return format;
}

int log_format_parse(const char *s, enum log_format *out)
{
    if (!strcmp(s, "text"))
        *out = LOG_FORMAT_TEXT;
    else if (!strcmp(s, "json"))
        *out = LOG_FORMAT_JSON;
    else
        return -1;
    return 0;
}

bool log_enabled(enum log_level level)
{
    if (!env_done)
        from_env();
    return level >= min_level;
}

void log_advance_clock(int seconds)
{
    clock_offset += seconds;
}

void log_reset_repeats(void)
{
    pthread_mutex_lock(&kinds_lock);
    memset(kinds, 0, sizeof kinds);
    pthread_mutex_unlock(&kinds_lock);
}

/**
 * Whether a line of this kind may be written now; *dropped gets how many of
 * it were dropped since the last one written.
 */
static bool kind_allows(const char *fmt, uint64_t hash, time_t now, unsigned long *dropped)
{
    *dropped = 0;
    struct log_kind *k = NULL, *oldest = &kinds[0];
    for (size_t i = 0; i < LOG_KINDS; i++) {
        if (kinds[i].fmt == fmt && kinds[i].hash == hash) {
            k = &kinds[i];
            break;
        }
        if (kinds[i].window < oldest->window)
            oldest = &kinds[i];
    }
    if (!k) {
        // A new kind takes the slot used longest ago (what it had dropped is lost:
        // 64 kinds flooding at once is not a case worth more memory).
        k = oldest;
        *k = (struct log_kind){.fmt = fmt, .hash = hash, .window = now};
    }
    if (now - k->window >= LOG_WINDOW_S) {
        k->window = now;
        k->lines = 0;
    }
    if (k->lines >= LOG_BURST) {
        k->dropped++;
        return false;
    }
    k->lines++;
    *dropped = k->dropped;
    k->dropped = 0;
    return true;
}

/** A bounded output line: appends never overflow; `full` once something did not fit. */
struct out {
    char *p;
    size_t len, cap; /* cap keeps room for the closing "}\n" */
    bool full;
};

static void out_raw(struct out *o, const char *s, size_t n)
{
    if (o->full || n > o->cap - o->len) {
        o->full = true;
        return;
    }
    memcpy(o->p + o->len, s, n);
    o->len += n;
}

/** Appends s[0..n) (valid UTF-8) as a JSON string, quotes included; cut at a character. */
static void out_json_str(struct out *o, const char *s, size_t n)
{
    out_raw(o, "\"", 1);
    for (size_t i = 0; i < n && !o->full; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            out_raw(o, esc, 2);
        } else if (c < 0x20 || c == 0x7f) {
            snprintf(esc, sizeof esc, "\\u%04x", c);
            out_raw(o, esc, 6);
        } else {
            // Copy a whole character or nothing, so that a cut line stays UTF-8.
            size_t k = c < 0x80 ? 1 : c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
            k = k < n - i ? k : n - i;
            out_raw(o, s + i, k);
            i += k - 1;
        }
    }
    o->full = false; /* the closing quote always fits: room was kept for it */
    o->cap += 1;
    out_raw(o, "\"", 1);
    o->cap -= 1;
}

/** "job <id>: ..." messages name their job: its id, or NULL. */
static const char *job_of(const char *msg, size_t *idlen)
{
    if (strncmp(msg, "job ", 4))
        return NULL;
    const char *id = msg + 4;
    size_t n = strcspn(id, ": ");
    if (!n || id[n] != ':')
        return NULL;
    *idlen = n;
    return id;
}

/** A field key or event name: [a-z0-9_], 1 to LOG_FIELD_KEY_MAX bytes. */
static bool name_ok(const char *k)
{
    size_t n = 0;
    for (; k && k[n]; n++)
        if (n >= LOG_FIELD_KEY_MAX ||
            !((k[n] >= 'a' && k[n] <= 'z') || (k[n] >= '0' && k[n] <= '9') || k[n] == '_'))
            return false;
    return n > 0;
}

/** Appends a field's value: a string made valid UTF-8 and cut at LOG_FIELD_STR_MAX bytes. */
static void out_field_value(struct out *o, const struct log_field *f)
{
    char num[64];
    int n = 0;
    switch (f->type) {
    case LOG_FIELD_STR: {
        if (!f->v.s) {
            out_raw(o, "null", 4);
            return;
        }
        // Read no further than the cap: a container's text may be long.
        size_t len = strnlen(f->v.s, LOG_FIELD_STR_MAX);
        char fixed[LOG_FIELD_STR_MAX * 3];
        size_t flen = utf8_repair(f->v.s, len, fixed);
        if (flen > LOG_FIELD_STR_MAX) {
            flen = LOG_FIELD_STR_MAX;
            while (flen && ((unsigned char)fixed[flen] & 0xc0) == 0x80)
                flen--; /* cut before a character, never inside one */
        }
        // Escaped apart, then copied whole or not at all (out_json_str would cut it).
        char esc[LOG_FIELD_STR_MAX * 6 + 8];
        struct out e = {.p = esc, .cap = sizeof esc - 1};
        out_json_str(&e, fixed, flen);
        out_raw(o, e.p, e.len);
        return;
    }
    case LOG_FIELD_INT:
        n = snprintf(num, sizeof num, "%lld", f->v.i);
        break;
    case LOG_FIELD_UINT:
        n = snprintf(num, sizeof num, "%llu", f->v.u);
        break;
    case LOG_FIELD_DOUBLE:
        n = isfinite(f->v.d) ? snprintf(num, sizeof num, "%.15g", f->v.d)
                             : snprintf(num, sizeof num, "null");
        break;
    case LOG_FIELD_BOOL:
        n = snprintf(num, sizeof num, "%s", f->v.b ? "true" : "false");
        break;
    default:
        n = snprintf(num, sizeof num, "null");
        break;
    }
    out_raw(o, num, n > 0 ? (size_t)n : 0);
}

/**
 * Writes the fields object ({"k":v,...}) into o, each field whole or not at
 * all; true when some were left out (bad key, no room, over LOG_FIELDS_MAX).
 */
static bool out_fields(struct out *o, const struct log_field *fields, size_t n)
{
    bool dropped = n > LOG_FIELDS_MAX;
    size_t written = 0;
    out_raw(o, "{", 1);
    for (size_t i = 0; i < n && i < LOG_FIELDS_MAX; i++) {
        const struct log_field *f = &fields[i];
        if (!name_ok(f->key)) {
            dropped = true;
            continue;
        }
        size_t mark = o->len;
        if (written)
            out_raw(o, ",", 1);
        out_raw(o, "\"", 1);
        out_raw(o, f->key, strlen(f->key));
        out_raw(o, "\":", 2);
        out_field_value(o, f);
        if (o->full) {
            o->len = mark;
            o->full = false;
            dropped = true;
            break;
        }
        written++;
    }
    o->cap += 1; /* room was kept for the closing brace */
    out_raw(o, "}", 1);
    return dropped;
}

static void write_json(const char *when, enum log_level level, enum log_group group,
                       const char *event, const struct log_field *fields, size_t nfields,
                       const char *msg, size_t len)
{
    // Fields first, into their own bounded buffer: a long message cannot crowd them out.
    char fbuf[LOG_FIELDS_BYTES + 2];
    struct out fo = {.p = fbuf, .cap = LOG_FIELDS_BYTES - 1};
    bool fields_cut = false;
    if (fields)
        fields_cut = out_fields(&fo, fields, nfields);
    // Container and task text reaches the log: make it valid UTF-8 first.
    char fixed[LOG_LINE_MAX * 3 + 1];
    size_t flen = utf8_repair_len(msg, len) < sizeof fixed ? utf8_repair(msg, len, fixed) : 0;
    fixed[flen] = '\0';
    char buf[LOG_LINE_MAX * 2 + LOG_FIELDS_BYTES + 256];
    // Room kept for the fields, the truncation flag and the closing "}\n".
    struct out o = {.p = buf, .cap = sizeof buf - fo.len - 64};
    char head[128];
    int h = snprintf(head, sizeof head, "{\"time\":\"%s\",\"level\":\"%s\",\"area\":\"%s\"", when,
                     level_names[level], group_names[group]);
    out_raw(&o, head, h > 0 ? (size_t)h : 0);
    size_t idlen = 0;
    const char *id = job_of(fixed, &idlen);
    if (id) {
        out_raw(&o, ",\"job\":", 7);
        out_json_str(&o, id, idlen);
    }
    if (event && name_ok(event)) {
        out_raw(&o, ",\"event\":\"", 10);
        out_raw(&o, event, strlen(event));
        out_raw(&o, "\"", 1);
    }
    out_raw(&o, ",\"msg\":", 7);
    out_json_str(&o, fixed, flen);
    o.cap = sizeof buf;
    o.full = false;
    if (fields) {
        out_raw(&o, ",\"fields\":", 10);
        out_raw(&o, fo.p, fo.len);
        if (fields_cut)
            out_raw(&o, ",\"fields_truncated\":true", 24);
    }
    out_raw(&o, "}\n", 2);
    fwrite(o.p, 1, o.len, stderr);
}

/** FNV-1a of the message without its "job <id>: " prefix: the same warning for every job is one
 * kind. */
static uint64_t kind_hash(const char *msg, size_t len)
{
    size_t idlen = 0;
    if (job_of(msg, &idlen)) {
        size_t skip = 4 + idlen + 1;
        msg += skip;
        len -= skip;
    }
    uint64_t h = 14695981039346656037ull;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)msg[i]) * 1099511628211ull;
    return h;
}

static void log_vwrite(enum log_level level, enum log_group group, const char *event,
                       const struct log_field *fields, size_t nfields, const char *fmt, va_list ap)
{
    char msg[LOG_LINE_MAX];
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    size_t len = n < 0 ? 0 : (size_t)n < sizeof msg ? (size_t)n : sizeof msg - 1;
    msg[len] = '\0';
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    unsigned long dropped = 0;
    if (level >= LOG_LEVEL_WARN) {
        uint64_t hash = kind_hash(msg, len);
        pthread_mutex_lock(&kinds_lock);
        bool ok = kind_allows(fmt, hash, ts.tv_sec + clock_offset, &dropped);
        pthread_mutex_unlock(&kinds_lock);
        if (!ok)
            return;
    }
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[64];
    snprintf(when, sizeof when, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
    if (dropped) {
        int k = snprintf(msg + len, sizeof msg - len, " (%lu more like this dropped)", dropped);
        len = k < 0 ? len : len + (size_t)k < sizeof msg ? len + (size_t)k : sizeof msg - 1;
    }
    if (format == LOG_FORMAT_JSON) {
        write_json(when, level, group, event, fields, nfields, msg, len);
    } else {
        // One write per line keeps lines whole when several processes share stderr.
        char line[LOG_LINE_MAX + 64];
        int h = snprintf(line, sizeof line, "%s %-5s %-7s ", when, level_names[level],
                         group_names[group]);
        size_t o = h < 0 ? 0 : (size_t)h;
        size_t k = len < sizeof line - o - 1 ? len : sizeof line - o - 1;
        memcpy(line + o, msg, k);
        o += k;
        line[o++] = '\n';
        fwrite(line, 1, o, stderr);
    }
    fflush(stderr);
}

void log_write(enum log_level level, enum log_group group, const char *fmt, ...)
{
    if (!log_enabled(level))
        return;
    va_list ap;
    va_start(ap, fmt);
    log_vwrite(level, group, NULL, NULL, 0, fmt, ap);
    va_end(ap);
}

void log_vwrite_event(enum log_level level, enum log_group group, const char *event,
                      const struct log_field *fields, size_t nfields, const char *fmt, va_list ap)
{
    if (!log_enabled(level))
        return;
    // An empty set of fields is still written ({}): the line is an event.
    static const struct log_field none[1];
    log_vwrite(level, group, event, fields ? fields : none, fields ? nfields : 0, fmt, ap);
}

void log_write_event(enum log_level level, enum log_group group, const char *event,
                     const struct log_field *fields, size_t nfields, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vwrite_event(level, group, event, fields, nfields, fmt, ap);
    va_end(ap);
}
