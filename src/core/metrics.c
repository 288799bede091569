#include "core/metrics.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"

enum metric_type { COUNTER, GAUGE, HISTOGRAM };

struct family {
    const char *name, *help, *label; /* label: the one label's name, or NULL */
    enum metric_type type;
};

static const struct family families[METRIC_COUNT] = {
#define X(id, name, type, help, label) [METRIC_##id] = {name, help, label, type},
    METRICS_FAMILIES(X)
#undef X
};

// Seconds: a trivial job takes ~0.3 s, a student container ~0.8 s, a long
// grader minutes.
static const double buckets[] = {0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300};
#define NBUCKETS ARRAY_SIZE(buckets)

struct series {
    char *label; /* NULL: the family has no label */
    double value;
    /* histograms */
    unsigned long long counts[NBUCKETS]; /* per bucket, not cumulative */
    unsigned long long count;
    double sum;
};

static struct {
    struct series *s;
    size_t n;
} reg[METRIC_COUNT];

static struct series *series(enum metric_id id, const char *label)
{
    if (id >= METRIC_COUNT)
        return NULL;
    if (!families[id].label)
        label = NULL;
    else if (!label)
        label = "";
    for (size_t i = 0; i < reg[id].n; i++) {
        const char *l = reg[id].s[i].label;
        if ((!l && !label) || (l && label && !strcmp(l, label)))
            return &reg[id].s[i];
    }
    // Bounded: past the cap, "other" takes every new label value.
    if (label && reg[id].n >= METRICS_MAX_SERIES - 1 && strcmp(label, "other"))
        return series(id, "other");
    reg[id].s = xrealloc(reg[id].s, (reg[id].n + 1) * sizeof *reg[id].s);
    struct series *s = &reg[id].s[reg[id].n++];
    memset(s, 0, sizeof *s);
    s->label = label ? xstrdup(label) : NULL;
    return s;
}

void metric_add(enum metric_id id, const char *label, double v)
{
    struct series *s = series(id, label);
    if (s && families[id].type != HISTOGRAM)
        s->value += v;
}

// Two label values are kept as one string, "value1\x1fvalue2" (US cannot be in
// either: it is replaced by a space).
void metric_add2(enum metric_id id, const char *l1, const char *l2, double v)
{
    char a[128], b[128], key[256];
    snprintf(a, sizeof a, "%s", l1 ? l1 : "");
    snprintf(b, sizeof b, "%s", l2 ? l2 : "");
    for (char *p = a; (p = strchr(p, '\x1f'));)
        *p = ' ';
    for (char *p = b; (p = strchr(p, '\x1f'));)
        *p = ' ';
    snprintf(key, sizeof key, "%s\x1f%s", a, b);
    metric_add(id, key, v);
}

void metric_set(enum metric_id id, const char *label, double v)
{
    struct series *s = series(id, label);
    if (s && families[id].type == GAUGE)
        s->value = v;
}

void metric_observe(enum metric_id id, const char *label, double v)
{
    struct series *s = series(id, label);
    if (!s || families[id].type != HISTOGRAM || !isfinite(v))
        return;
    size_t b = 0;
    while (b < NBUCKETS && v > buckets[b])
        b++;
    if (b < NBUCKETS)
        s->counts[b]++;
    s->count++;
    s->sum += v;
}

double metric_get(enum metric_id id, const char *label)
{
    if (id >= METRIC_COUNT)
        return 0;
    if (!families[id].label)
        label = NULL;
    for (size_t i = 0; i < reg[id].n; i++) {
        const char *l = reg[id].s[i].label;
        if ((!l && !label) || (l && label && !strcmp(l, label)))
            return reg[id].s[i].value;
    }
    return 0;
}

void metrics_reset(void)
{
    for (size_t id = 0; id < METRIC_COUNT; id++) {
        for (size_t i = 0; i < reg[id].n; i++)
            free(reg[id].s[i].label);
        free(reg[id].s);
        reg[id].s = NULL;
        reg[id].n = 0;
    }
}

/* ---- text format 0.0.4 ------------------------------------------------------ */

/** `name="value"` with the value escaped (backslash, quote, newline), up to `end`. */
static void put_pair(struct buf *b, const char *name, size_t nlen, const char *value,
                     const char *end)
{
    PROCTOR_REQUIRE(buf_add(b, name, nlen) == 0 && buf_add(b, "=\"", 2) == 0);
    for (const char *p = value; p < end; p++) {
        const char *esc = *p == '\\' ? "\\\\" : *p == '"' ? "\\\"" : *p == '\n' ? "\\n" : NULL;
        PROCTOR_REQUIRE(esc ? buf_add(b, esc, 2) == 0 : buf_add(b, p, 1) == 0);
    }
    PROCTOR_REQUIRE(buf_add(b, "\"", 1) == 0);
}

/** `{name="value"` or `{n1="v1",n2="v2"` (names "n1,n2", values "v1\x1fv2"); no closing brace. */
static void put_label(struct buf *b, const char *names, const char *value)
{
    PROCTOR_REQUIRE(buf_add(b, "{", 1) == 0);
    const char *comma = strchr(names, ',');
    const char *us = strchr(value, '\x1f');
    if (!comma || !us) {
        put_pair(b, names, comma ? (size_t)(comma - names) : strlen(names), value,
                 value + strlen(value));
        return;
    }
    put_pair(b, names, (size_t)(comma - names), value, us);
    PROCTOR_REQUIRE(buf_add(b, ",", 1) == 0);
    put_pair(b, comma + 1, strlen(comma + 1), us + 1, us + 1 + strlen(us + 1));
}

PROCTOR_PRINTF(2, 3) static void put(struct buf *b, const char *fmt, ...)
{
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    PROCTOR_REQUIRE(n >= 0 && (size_t)n < sizeof tmp && buf_add(b, tmp, (size_t)n) == 0);
}

static void put_value(struct buf *b, double v)
{
    if (isnan(v))
        put(b, " NaN\n");
    else if (isinf(v))
        put(b, v > 0 ? " +Inf\n" : " -Inf\n");
    else
        put(b, " %.17g\n", v);
}

/** name{label="..."[,le="x"]} */
static void put_name(struct buf *b, const char *name, const char *suffix, const struct family *f,
                     const struct series *s, const char *le)
{
    put(b, "%s%s", name, suffix);
    if (f->label && s->label) {
        put_label(b, f->label, s->label);
        if (le)
            put(b, ",le=\"%s\"", le);
        put(b, "}");
    } else if (le) {
        put(b, "{le=\"%s\"}", le);
    }
}

char *metrics_render(size_t *len)
{
    struct buf b = {0};
    static const char *const types[] = {"counter", "gauge", "histogram"};
    for (size_t id = 0; id < METRIC_COUNT; id++) {
        const struct family *f = &families[id];
        put(&b, "# HELP %s %s\n# TYPE %s %s\n", f->name, f->help, f->name, types[f->type]);
        // A family without a label shows 0 before its first use.
        if (!reg[id].n && !f->label)
            series((enum metric_id)id, NULL);
        for (size_t i = 0; i < reg[id].n; i++) {
            const struct series *s = &reg[id].s[i];
            if (f->type != HISTOGRAM) {
                put_name(&b, f->name, "", f, s, NULL);
                put_value(&b, s->value);
                continue;
            }
            unsigned long long cum = 0;
            for (size_t k = 0; k < NBUCKETS; k++) {
                cum += s->counts[k];
                char le[32];
                snprintf(le, sizeof le, "%g", buckets[k]);
                put_name(&b, f->name, "_bucket", f, s, le);
                put(&b, " %llu\n", cum);
            }
            put_name(&b, f->name, "_bucket", f, s, "+Inf");
            put(&b, " %llu\n", s->count);
            put_name(&b, f->name, "_sum", f, s, NULL);
            put_value(&b, s->sum);
            put_name(&b, f->name, "_count", f, s, NULL);
            put(&b, " %llu\n", s->count);
        }
    }
    *len = b.len;
    return b.data; /* NUL-terminated (common/buf.h) */
}
