/*
 * Decisions you can see (policy_explain.h): rendering and emitting one line
 * per hook call.
 */
#include "policy/policy_explain.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/log.h"
#include "core/util.h"
#include "policy/policy.h"

#define STR_MAX 80 /* bytes of one string shown */

static policy_explain_fn explain_fn;
static void *explain_data;

void policy_explain_set(policy_explain_fn fn, void *data)
{
    explain_fn = fn;
    explain_data = data;
}

bool policy_explaining(void)
{
    return explain_fn || log_enabled(LOG_LEVEL_DEBUG);
}

struct out {
    char *p;
    size_t len, used;
    bool full;
};

static void put(struct out *o, const char *s, size_t n)
{
    // Room for "..." and the NUL is kept until the end.
    if (o->full)
        return;
    if (o->used + n + 4 > o->len) {
        size_t room = o->len > o->used + 4 ? o->len - o->used - 4 : 0;
        while (room > 0 && room < n && ((unsigned char)s[room] & 0xC0) == 0x80)
            room--; // not inside a UTF-8 sequence
        memcpy(o->p + o->used, s, room);
        o->used += room;
        memcpy(o->p + o->used, "...", 3);
        o->used += 3;
        o->full = true;
        return;
    }
    memcpy(o->p + o->used, s, n);
    o->used += n;
}

static void puts_(struct out *o, const char *s)
{
    put(o, s, strlen(s));
}

static void put_str(struct out *o, const char *s, size_t n)
{
    char esc[8];
    puts_(o, "\"");
    size_t shown = n > STR_MAX ? STR_MAX : n;
    while (shown > 0 && shown < n && ((unsigned char)s[shown] & 0xC0) == 0x80)
        shown--; // not inside a UTF-8 sequence
    for (size_t i = 0; i < shown && !o->full; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\') {
            esc[0] = '\\';
            esc[1] = (char)ch;
            put(o, esc, 2);
        } else if (ch < 0x20 || ch == 0x7f) {
            snprintf(esc, sizeof esc, "\\u%04x", ch);
            puts_(o, esc);
        } else {
            // A UTF-8 sequence goes out whole or not at all (see put()).
            size_t seq = ch >= 0xF0 ? 4 : ch >= 0xE0 ? 3 : ch >= 0xC0 ? 2 : 1;
            seq = seq > shown - i ? shown - i : seq;
            put(o, &s[i], seq);
            i += seq - 1;
        }
    }
    puts_(o, n > shown ? "...\"" : "\"");
}

static void render(struct out *o, const struct value *v, int depth)
{
    char num[48];
    if (o->full)
        return;
    switch (v->type) {
    case VALUE_NIL:
        puts_(o, "null");
        break;
    case VALUE_BOOL:
        puts_(o, v->u.b ? "true" : "false");
        break;
    case VALUE_INT:
        snprintf(num, sizeof num, "%" PRId64, v->u.i);
        puts_(o, num);
        break;
    case VALUE_UINT:
        snprintf(num, sizeof num, "%" PRIu64, v->u.u);
        puts_(o, num);
        break;
    case VALUE_FLOAT:
        if (isfinite(v->u.f))
            snprintf(num, sizeof num, "%.17g", v->u.f);
        else
            snprintf(num, sizeof num, "\"%g\"", v->u.f);
        puts_(o, num);
        break;
    case VALUE_STR:
        put_str(o, v->u.s.ptr, v->u.s.len);
        break;
    case VALUE_BIN:
        snprintf(num, sizeof num, "\"<%zu bytes>\"", v->u.s.len);
        puts_(o, num);
        break;
    case VALUE_ARRAY:
        if (depth >= 8) {
            puts_(o, "[...]");
            break;
        }
        puts_(o, "[");
        for (size_t i = 0; i < v->u.a.len && !o->full; i++) {
            if (i)
                puts_(o, ",");
            render(o, &v->u.a.items[i], depth + 1);
        }
        puts_(o, "]");
        break;
    case VALUE_MAP:
        if (depth >= 8) {
            puts_(o, "{...}");
            break;
        }
        puts_(o, "{");
        for (size_t i = 0; i < v->u.m.len && !o->full; i++) {
            if (i)
                puts_(o, ",");
            const struct value *k = &v->u.m.items[i].key;
            if (k->type == VALUE_STR)
                put_str(o, k->u.s.ptr, k->u.s.len);
            else
                render(o, k, depth + 1);
            puts_(o, ":");
            render(o, &v->u.m.items[i].val, depth + 1);
        }
        puts_(o, "}");
        break;
    }
}

void policy_explain_render(const struct value *v, char *buf, size_t len)
{
    if (len < 8) {
        if (len)
            buf[0] = '\0';
        return;
    }
    struct out o = {buf, len, 0, false};
    render(&o, v, 0);
    buf[o.used] = '\0';
}

void policy_explain_emit(enum policy_hook hook, const struct policy_explain_who *who,
                         const struct value *in, int ret, const struct value *out,
                         const char *reason)
{
    char in_text[POLICY_EXPLAIN_VALUE_MAX], out_text[POLICY_EXPLAIN_VALUE_MAX];
    char line[3 * POLICY_EXPLAIN_VALUE_MAX + 2 * POLICY_LOCATION_MAX];
    policy_explain_render(in, in_text, sizeof in_text);
    if (ret == 0) {
        policy_explain_render(out, out_text, sizeof out_text);
    } else {
        struct value r;
        value_set_str(&r, reason ? reason : "");
        policy_explain_render(&r, out_text, sizeof out_text);
        value_deinit(&r);
    }
    char where[POLICY_LOCATION_MAX + 16];
    if (who->line > 0)
        snprintf(where, sizeof where, "%s:%d", who->source, who->line);
    else
        snprintf(where, sizeof where, "%s", who->source);
    snprintf(line, sizeof line, "%s() by %s%s%s%s in %s -> %s %s", policy_hooks[hook].fn, where,
             who->fallback ? " (fallback: " : "",
             who->fallback ? (who->why && who->why[0] ? who->why : "the admin's did not answer")
                           : "",
             who->fallback ? ")" : "", in_text, ret == 0 ? "out" : "refused", out_text);
    if (explain_fn)
        explain_fn(explain_data, line);
    else
        log_debug(LOG_POLICY, "decision: %s", line);
}
