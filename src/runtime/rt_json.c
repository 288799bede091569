// The JSON codec of the files shared with INGInious's Python API
// (__inputdata.json, __feedback.json), in Python's json module's dialect.
#include "rt_json.h"

#include "common/utf8.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void rt_float_repr(double f, char *dst, size_t size)
{
    if (isnan(f)) {
        snprintf(dst, size, "NaN");
        return;
    }
    if (isinf(f)) {
        snprintf(dst, size, f < 0 ? "-Infinity" : "Infinity");
        return;
    }
    // Shortest digit count that round-trips, then Python's layout rule:
    // positional when -4 <= exponent < 16, scientific otherwise.
    char tmp[40];
    int prec = 1;
    for (; prec < 17; prec++) {
        snprintf(tmp, sizeof(tmp), "%.*e", prec - 1, f);
        if (strtod(tmp, NULL) == f)
            break;
    }
    snprintf(tmp, sizeof(tmp), "%.*e", prec - 1, f);
    int exp10 = atoi(strchr(tmp, 'e') + 1);
    if (exp10 >= -4 && exp10 < 16) {
        int decimals = prec - 1 - exp10;
        snprintf(dst, size, "%.*f", decimals > 0 ? decimals : 0, f);
        if (!strchr(dst, '.'))
            strncat(dst, ".0", size - strlen(dst) - 1);
    } else {
        snprintf(dst, size, "%s", tmp);
    }
}

static int json_str(const char *p, size_t n, struct buf *out)
{
    int ret = buf_add(out, "\"", 1);
    const unsigned char *s = (const unsigned char *)p;
    for (size_t i = 0; !ret && i < n;) {
        char esc[16];
        uint32_t cp = 0xfffd;
        bool ok;
        // An ill-formed subpart becomes one U+FFFD, as Python's "replace".
        i += utf8_next(s + i, n - i, &ok, &cp);
        switch (cp) {
        case '"':
            ret = buf_add(out, "\\\"", 2);
            continue;
        case '\\':
            ret = buf_add(out, "\\\\", 2);
            continue;
        case '\n':
            ret = buf_add(out, "\\n", 2);
            continue;
        case '\r':
            ret = buf_add(out, "\\r", 2);
            continue;
        case '\t':
            ret = buf_add(out, "\\t", 2);
            continue;
        case '\b':
            ret = buf_add(out, "\\b", 2);
            continue;
        case '\f':
            ret = buf_add(out, "\\f", 2);
            continue;
        default:
            break;
        }
        if (cp >= 0x20 && cp < 0x7f) {
            esc[0] = (char)cp;
            ret = buf_add(out, esc, 1);
        } else if (cp < 0x10000) {
            snprintf(esc, sizeof(esc), "\\u%04x", (unsigned)cp);
            ret = buf_add(out, esc, 6);
        } else {
            cp -= 0x10000;
            snprintf(esc, sizeof(esc), "\\u%04x\\u%04x", (unsigned)(0xd800 | (cp >> 10)),
                     (unsigned)(0xdc00 | (cp & 0x3ff)));
            ret = buf_add(out, esc, 12);
        }
    }
    return ret ? ret : buf_add(out, "\"", 1);
}

int rt_json_encode(const struct rt_value *v, struct buf *out)
{
    char num[48];
    int ret = 0;
    switch (v->type) {
    case RT_NIL:
        return buf_add(out, "null", 4);
    case RT_BOOL:
        return v->u.b ? buf_add(out, "true", 4) : buf_add(out, "false", 5);
    case RT_INT:
        snprintf(num, sizeof(num), "%lld", (long long)v->u.i);
        return buf_add(out, num, strlen(num));
    case RT_FLOAT:
        rt_float_repr(v->u.f, num, sizeof(num));
        return buf_add(out, num, strlen(num));
    case RT_STR:
        return json_str(v->u.str.p, v->u.str.n, out);
    case RT_BIN:
        return -EINVAL;
    case RT_ARRAY:
        ret = buf_add(out, "[", 1);
        for (size_t i = 0; !ret && i < v->u.arr.n; i++) {
            if (i)
                ret = buf_add(out, ", ", 2);
            if (!ret)
                ret = rt_json_encode(v->u.arr.items[i], out);
        }
        return ret ? ret : buf_add(out, "]", 1);
    case RT_MAP:
        ret = buf_add(out, "{", 1);
        for (size_t i = 0; !ret && i < v->u.map.n; i++) {
            if (i)
                ret = buf_add(out, ", ", 2);
            if (!ret)
                ret = json_str(v->u.map.kv[i].key, strlen(v->u.map.kv[i].key), out);
            if (!ret)
                ret = buf_add(out, ": ", 2);
            if (!ret)
                ret = rt_json_encode(v->u.map.kv[i].val, out);
        }
        return ret ? ret : buf_add(out, "}", 1);
    }
    return -EINVAL;
}

struct js_cursor {
    const char *p;
    size_t n, pos;
};

static void js_ws(struct js_cursor *c)
{
    while (c->pos < c->n && strchr(" \t\r\n", c->p[c->pos]) && c->p[c->pos])
        c->pos++;
}

static bool js_lit(struct js_cursor *c, const char *lit)
{
    size_t k = strlen(lit);
    if (c->n - c->pos >= k && !memcmp(c->p + c->pos, lit, k)) {
        c->pos += k;
        return true;
    }
    return false;
}

static int js_hex4(struct js_cursor *c, uint32_t *x)
{
    *x = 0;
    if (c->n - c->pos < 4)
        return -EINVAL;
    for (int i = 0; i < 4; i++) {
        char h = c->p[c->pos++];
        int d = h >= '0' && h <= '9'   ? h - '0'
                : h >= 'a' && h <= 'f' ? h - 'a' + 10
                : h >= 'A' && h <= 'F' ? h - 'A' + 10
                                       : -1;
        if (d < 0)
            return -EINVAL;
        *x = (*x << 4) | (uint32_t)d;
    }
    return 0;
}

int rt_utf8_put(struct buf *b, uint32_t cp)
{
    char u[4];
    return buf_add(b, u, utf8_encode(cp, u));
}

// Parses a string body after the opening quote into out (NUL-terminated).
static int js_string(struct js_cursor *c, struct buf *out)
{
    int ret = buf_add(out, "", 0);
    while (!ret) {
        if (c->pos >= c->n)
            return -EINVAL;
        unsigned char ch = (unsigned char)c->p[c->pos++];
        if (ch == '"')
            break;
        if (ch < 0x20)
            return -EINVAL; // Python's strict mode refuses raw control characters
        if (ch != '\\') {
            ret = buf_add(out, &ch, 1);
            continue;
        }
        if (c->pos >= c->n)
            return -EINVAL;
        char e = c->p[c->pos++];
        const char *from = "\"\\/bfnrt", *to = "\"\\/\b\f\n\r\t";
        const char *hit = strchr(from, e);
        if (hit && e) {
            ret = buf_add(out, to + (hit - from), 1);
        } else if (e == 'u') {
            uint32_t cp, lo;
            ret = js_hex4(c, &cp);
            if (!ret && cp >= 0xd800 && cp < 0xdc00 && js_lit(c, "\\u")) {
                ret = js_hex4(c, &lo);
                if (!ret && lo >= 0xdc00 && lo < 0xe000)
                    cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                else if (!ret)
                    ret = rt_utf8_put(out, 0xfffd), cp = lo;
            }
            if (!ret)
                ret = rt_utf8_put(out, cp >= 0xd800 && cp < 0xe000 ? 0xfffd : cp);
        } else {
            return -EINVAL;
        }
    }
    return ret;
}

static int js_number(struct js_cursor *c, struct rt_value **out)
{
    size_t start = c->pos;
    bool is_float = false;
    if (c->pos < c->n && c->p[c->pos] == '-')
        c->pos++;
    if (js_lit(c, "Infinity")) {
        *out = rt_new_float(c->p[start] == '-' ? -INFINITY : INFINITY);
        return 0;
    }
    size_t digits = c->pos;
    while (c->pos < c->n && strchr("0123456789.eE+-", c->p[c->pos]) && c->p[c->pos]) {
        if (strchr(".eE", c->p[c->pos]))
            is_float = true;
        c->pos++;
    }
    if (c->pos == digits || c->pos - start > 400)
        return -EINVAL;
    char tmp[401];
    memcpy(tmp, c->p + start, c->pos - start);
    tmp[c->pos - start] = '\0';
    char *end;
    errno = 0;
    if (is_float) {
        double d = strtod(tmp, &end);
        if (*end)
            return -EINVAL;
        *out = rt_new_float(d);
    } else {
        long long i = strtoll(tmp, &end, 10);
        if (*end)
            return -EINVAL;
        // Python has bignums; out of int64 range degrades to a float.
        *out = errno == ERANGE ? rt_new_float(strtod(tmp, NULL)) : rt_new_int(i);
    }
    return 0;
}

static int js_value(struct js_cursor *c, int depth, struct rt_value **out)
{
    struct buf s = {0};
    int ret = 0;
    js_ws(c);
    if (depth > RT_VALUE_MAX_DEPTH * 4 || c->pos >= c->n)
        return -EINVAL;
    char ch = c->p[c->pos];
    if (ch == '{') {
        struct rt_value *m = rt_new_map();
        c->pos++;
        js_ws(c);
        bool first = true;
        while (!ret && !js_lit(c, "}")) {
            struct rt_value *val = NULL;
            if (!first && !js_lit(c, ","))
                ret = -EINVAL;
            js_ws(c);
            if (!ret && !js_lit(c, "\""))
                ret = -EINVAL;
            s.len = 0;
            if (!ret)
                ret = js_string(c, &s);
            js_ws(c);
            if (!ret && !js_lit(c, ":"))
                ret = -EINVAL;
            if (!ret)
                ret = js_value(c, depth + 1, &val);
            if (!ret)
                rt_map_set(m, s.data, val); // duplicate keys: the last one wins
            js_ws(c);
            first = false;
        }
        if (ret)
            rt_value_free(m);
        else
            *out = m;
    } else if (ch == '[') {
        struct rt_value *a = rt_new_array();
        c->pos++;
        js_ws(c);
        bool first = true;
        while (!ret && !js_lit(c, "]")) {
            struct rt_value *val = NULL;
            if (!first && !js_lit(c, ","))
                ret = -EINVAL;
            if (!ret)
                ret = js_value(c, depth + 1, &val);
            if (!ret)
                rt_array_push(a, val);
            js_ws(c);
            first = false;
        }
        if (ret)
            rt_value_free(a);
        else
            *out = a;
    } else if (ch == '"') {
        c->pos++;
        ret = js_string(c, &s);
        if (!ret) {
            *out = rt_new_strn(s.data, s.len);
            if (!*out)
                ret = -ENOMEM;
        }
    } else if (js_lit(c, "true")) {
        *out = rt_new_bool(true);
    } else if (js_lit(c, "false")) {
        *out = rt_new_bool(false);
    } else if (js_lit(c, "null")) {
        *out = rt_new_nil();
    } else if (js_lit(c, "NaN")) {
        *out = rt_new_float(NAN);
    } else {
        ret = js_number(c, out);
    }
    buf_deinit(&s);
    return ret;
}

int rt_json_decode(const char *p, size_t n, struct rt_value **out)
{
    struct js_cursor c = {.p = p, .n = n, .pos = 0};
    struct rt_value *v = NULL;
    int ret = js_value(&c, 0, &v);
    js_ws(&c);
    if (!ret && c.pos != c.n) {
        rt_value_free(v);
        ret = -EINVAL;
    }
    if (!ret)
        *out = v;
    return ret;
}
