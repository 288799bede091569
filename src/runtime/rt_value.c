#include "rt_value.h"

#include "common/utf8.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

_Noreturn void rt_oom(void)
{
    fputs("proctor-runtime: out of memory\n", stderr);
    abort();
}

void *rt_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        rt_oom();
    return p;
}

char *rt_xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    return memcpy(rt_xmalloc(n), s, n);
}

void rt_buf_puts(struct buf *b, const char *s)
{
    if (buf_add(b, s, strlen(s)) < 0)
        rt_oom();
}

static struct rt_value *new_node(enum rt_type t)
{
    struct rt_value *v = rt_xmalloc(sizeof(*v));
    memset(v, 0, sizeof(*v));
    v->type = t;
    return v;
}

struct rt_value *rt_new_nil(void)
{
    return new_node(RT_NIL);
}

struct rt_value *rt_new_bool(bool b)
{
    struct rt_value *v = new_node(RT_BOOL);
    v->u.b = b;
    return v;
}

struct rt_value *rt_new_int(int64_t i)
{
    struct rt_value *v = new_node(RT_INT);
    v->u.i = i;
    return v;
}

struct rt_value *rt_new_float(double f)
{
    struct rt_value *v = new_node(RT_FLOAT);
    v->u.f = f;
    return v;
}

static struct rt_value *new_bytes(enum rt_type t, const void *p, size_t n)
{
    // Sizes here come from the wire or from files: checked allocation.
    char *copy = n < SIZE_MAX ? malloc(n + 1) : NULL;
    if (!copy)
        return NULL;
    if (n)
        memcpy(copy, p, n);
    copy[n] = '\0';
    struct rt_value *v = new_node(t);
    v->u.str.p = copy;
    v->u.str.n = n;
    return v;
}

struct rt_value *rt_new_strn(const char *p, size_t n)
{
    return new_bytes(RT_STR, p, n);
}

struct rt_value *rt_new_str(const char *s)
{
    return new_bytes(RT_STR, s, strlen(s));
}

struct rt_value *rt_new_bin(const void *p, size_t n)
{
    return new_bytes(RT_BIN, p, n);
}

struct rt_value *rt_new_array(void)
{
    return new_node(RT_ARRAY);
}

struct rt_value *rt_new_map(void)
{
    return new_node(RT_MAP);
}

void rt_value_free(struct rt_value *v)
{
    if (!v)
        return;
    switch (v->type) {
    case RT_STR:
    case RT_BIN:
        free(v->u.str.p);
        break;
    case RT_ARRAY:
        for (size_t i = 0; i < v->u.arr.n; i++)
            rt_value_free(v->u.arr.items[i]);
        free(v->u.arr.items);
        break;
    case RT_MAP:
        for (size_t i = 0; i < v->u.map.n; i++) {
            free(v->u.map.kv[i].key);
            rt_value_free(v->u.map.kv[i].val);
        }
        free(v->u.map.kv);
        free(v->u.map.index);
        break;
    default:
        break;
    }
    free(v);
}

struct rt_value *rt_value_dup(const struct rt_value *v)
{
    struct rt_value *c = NULL;
    switch (v->type) {
    case RT_STR:
    case RT_BIN:
        c = new_bytes(v->type, v->u.str.p, v->u.str.n);
        if (!c)
            rt_oom(); // same policy as the x-allocators
        break;
    case RT_ARRAY:
        c = rt_new_array();
        for (size_t i = 0; i < v->u.arr.n; i++)
            rt_array_push(c, rt_value_dup(v->u.arr.items[i]));
        break;
    case RT_MAP:
        c = rt_new_map();
        for (size_t i = 0; i < v->u.map.n; i++)
            rt_map_add(c, rt_xstrdup(v->u.map.kv[i].key), rt_value_dup(v->u.map.kv[i].val));
        break;
    default:
        c = new_node(v->type);
        c->u = v->u;
        break;
    }
    return c;
}

// exact: floats by their bits and maps in the same order (rt_value_identical).
static bool equal(const struct rt_value *a, const struct rt_value *b, bool exact)
{
    if (a->type != b->type)
        return false;
    switch (a->type) {
    case RT_NIL:
        return true;
    case RT_BOOL:
        return a->u.b == b->u.b;
    case RT_INT:
        return a->u.i == b->u.i;
    case RT_FLOAT:
        return exact ? !memcmp(&a->u.f, &b->u.f, sizeof a->u.f) : a->u.f == b->u.f;
    case RT_STR:
    case RT_BIN:
        return a->u.str.n == b->u.str.n && !memcmp(a->u.str.p, b->u.str.p, a->u.str.n);
    case RT_ARRAY:
        if (a->u.arr.n != b->u.arr.n)
            return false;
        for (size_t i = 0; i < a->u.arr.n; i++)
            if (!equal(a->u.arr.items[i], b->u.arr.items[i], exact))
                return false;
        return true;
    case RT_MAP:
        if (a->u.map.n != b->u.map.n)
            return false;
        for (size_t i = 0; i < a->u.map.n; i++) {
            const char *key = a->u.map.kv[i].key;
            const struct rt_value *o =
                exact ? (strcmp(key, b->u.map.kv[i].key) ? NULL : b->u.map.kv[i].val)
                      : rt_map_get(b, key);
            if (!o || !equal(a->u.map.kv[i].val, o, exact))
                return false;
        }
        return true;
    }
    return false;
}

bool rt_value_equal(const struct rt_value *a, const struct rt_value *b)
{
    return equal(a, b, false);
}

bool rt_value_identical(const struct rt_value *a, const struct rt_value *b)
{
    return equal(a, b, true);
}

/* ------------------------------------------------------------- map index */

// Maps keep their entries in insertion order (the order is visible in the
// feedback JSON) and, once they hold MAP_INDEX_MIN slots, a hash index beside
// them: open addressing with linear probing, at least twice as many slots as
// entries. Without it, building an n-key map costs n^2/2 key comparisons.
#define MAP_INDEX_MIN 32

struct rt_map_index {
    size_t mask;   // slot count - 1; the count is a power of two
    size_t slot[]; // 1 + position in kv, or 0 for an empty slot
};

static void sip_round(uint64_t v[4])
{
    v[0] += v[1];
    v[1] = (v[1] << 13 | v[1] >> 51) ^ v[0];
    v[0] = v[0] << 32 | v[0] >> 32;
    v[2] += v[3];
    v[3] = (v[3] << 16 | v[3] >> 48) ^ v[2];
    v[0] += v[3];
    v[3] = (v[3] << 21 | v[3] >> 43) ^ v[0];
    v[2] += v[1];
    v[1] = (v[1] << 17 | v[1] >> 47) ^ v[2];
    v[2] = v[2] << 32 | v[2] >> 32;
}

// SipHash-1-3 under a per-process random key, as Python hashes its dict
// keys: keys come from the task's files and the grading container, and with
// a fixed hash they could be chosen to collide and make the index quadratic.
static uint64_t key_hash(const char *key)
{
    static uint64_t k[2];
    static bool seeded;
    if (!seeded) {
        if (getrandom(k, sizeof(k), GRND_NONBLOCK) != (ssize_t)sizeof(k)) {
            // No entropy yet: collisions would cost time, not correctness.
            k[0] = (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)&k;
            k[1] = (uint64_t)getpid() * 0x9e3779b97f4a7c15u;
        }
        seeded = true;
    }
    const unsigned char *p = (const unsigned char *)key;
    size_t len = strlen(key), i = 0;
    uint64_t v[4] = {k[0] ^ 0x736f6d6570736575u, k[1] ^ 0x646f72616e646f6du,
                     k[0] ^ 0x6c7967656e657261u, k[1] ^ 0x7465646279746573u};
    for (; len - i >= 8; i += 8) {
        uint64_t w = 0;
        for (int j = 0; j < 8; j++)
            w |= (uint64_t)p[i + j] << (8 * j);
        v[3] ^= w;
        sip_round(v);
        v[0] ^= w;
    }
    uint64_t last = (uint64_t)len << 56;
    for (int j = 0; i + (size_t)j < len; j++)
        last |= (uint64_t)p[i + (size_t)j] << (8 * j);
    v[3] ^= last;
    sip_round(v);
    v[0] ^= last;
    v[2] ^= 0xff;
    for (int r = 0; r < 3; r++)
        sip_round(v);
    return v[0] ^ v[1] ^ v[2] ^ v[3];
}

// The index slot holding key, or the empty slot where it would go.
static size_t *index_slot(const struct rt_value *m, const char *key)
{
    struct rt_map_index *x = m->u.map.index;
    size_t i = (size_t)key_hash(key) & x->mask;
    while (x->slot[i] && strcmp(m->u.map.kv[x->slot[i] - 1].key, key))
        i = (i + 1) & x->mask;
    return &x->slot[i];
}

static void index_put(struct rt_value *m, size_t pos)
{
    size_t *slot = index_slot(m, m->u.map.kv[pos].key);
    // A duplicate appended by rt_map_add stays behind the first entry with
    // that key, exactly as a front-to-back scan would find it.
    if (!*slot)
        *slot = pos + 1;
}

// Sized for the map's capacity, so it is rebuilt only when kv grows: O(n)
// in total. Without memory for it the map keeps working by scanning.
static void index_rebuild(struct rt_value *m)
{
    free(m->u.map.index);
    m->u.map.index = NULL;
    size_t slots = MAP_INDEX_MIN;
    while (slots < 2 * m->u.map.cap && slots <= SIZE_MAX / 4 / sizeof(size_t))
        slots *= 2;
    if (m->u.map.cap < MAP_INDEX_MIN || slots < 2 * m->u.map.cap)
        return;
    struct rt_map_index *x = calloc(1, sizeof(*x) + slots * sizeof(size_t));
    if (!x)
        return;
    x->mask = slots - 1;
    m->u.map.index = x;
    for (size_t i = 0; i < m->u.map.n; i++)
        index_put(m, i);
}

// Position of the first entry with key, or m->u.map.n when there is none.
static size_t map_find(const struct rt_value *m, const char *key)
{
    if (m->u.map.index) {
        size_t at = *index_slot(m, key);
        return at ? at - 1 : m->u.map.n;
    }
    size_t i = 0;
    while (i < m->u.map.n && strcmp(m->u.map.kv[i].key, key))
        i++;
    return i;
}

struct rt_value *rt_map_get(const struct rt_value *m, const char *key)
{
    if (!m || m->type != RT_MAP)
        return NULL;
    size_t i = map_find(m, key);
    return i < m->u.map.n ? m->u.map.kv[i].val : NULL;
}

const char *rt_map_str(const struct rt_value *m, const char *key)
{
    const struct rt_value *v = rt_map_get(m, key);
    return v && v->type == RT_STR ? v->u.str.p : NULL;
}

void rt_map_add(struct rt_value *m, char *key_owned, struct rt_value *val)
{
    if (m->u.map.n == m->u.map.cap) {
        size_t cap = m->u.map.cap ? m->u.map.cap * 2 : 8;
        struct rt_kv *kv =
            cap <= SIZE_MAX / sizeof(*kv) ? realloc(m->u.map.kv, cap * sizeof(*kv)) : NULL;
        if (!kv)
            rt_oom();
        m->u.map.kv = kv;
        m->u.map.cap = cap;
        index_rebuild(m);
    }
    m->u.map.kv[m->u.map.n].key = key_owned;
    m->u.map.kv[m->u.map.n].val = val;
    m->u.map.n++;
    if (m->u.map.index)
        index_put(m, m->u.map.n - 1);
}

void rt_map_set(struct rt_value *m, const char *key, struct rt_value *val)
{
    size_t i = map_find(m, key);
    if (i < m->u.map.n) {
        rt_value_free(m->u.map.kv[i].val);
        m->u.map.kv[i].val = val;
        return;
    }
    rt_map_add(m, rt_xstrdup(key), val);
}

void rt_array_push(struct rt_value *a, struct rt_value *val)
{
    if (a->u.arr.n == a->u.arr.cap) {
        size_t cap = a->u.arr.cap ? a->u.arr.cap * 2 : 8;
        struct rt_value **items = realloc(a->u.arr.items, cap * sizeof(*items));
        if (!items)
            rt_oom();
        a->u.arr.items = items;
        a->u.arr.cap = cap;
    }
    a->u.arr.items[a->u.arr.n++] = val;
}

struct rt_value *rt_new_str_utf8(const char *p, size_t n)
{
    size_t m = utf8_repair_len(p, n);
    char *copy = m < SIZE_MAX ? malloc(m + 1) : NULL;
    if (!copy)
        return NULL;
    copy[utf8_repair(p, n, copy)] = '\0';
    struct rt_value *v = new_node(RT_STR);
    v->u.str.p = copy;
    v->u.str.n = m;
    return v;
}
