#include "rt_value.h"

#include "common/utf8.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

// Deep enough for any real input map, shallow enough that a hostile frame
// cannot exhaust the stack of a process whose memory is the container's.
#define RT_MAX_DEPTH 64

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

bool rt_value_equal(const struct rt_value *a, const struct rt_value *b)
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
        return a->u.f == b->u.f;
    case RT_STR:
    case RT_BIN:
        return a->u.str.n == b->u.str.n && !memcmp(a->u.str.p, b->u.str.p, a->u.str.n);
    case RT_ARRAY:
        if (a->u.arr.n != b->u.arr.n)
            return false;
        for (size_t i = 0; i < a->u.arr.n; i++)
            if (!rt_value_equal(a->u.arr.items[i], b->u.arr.items[i]))
                return false;
        return true;
    case RT_MAP:
        if (a->u.map.n != b->u.map.n)
            return false;
        for (size_t i = 0; i < a->u.map.n; i++) {
            const struct rt_value *o = rt_map_get(b, a->u.map.kv[i].key);
            if (!o || !rt_value_equal(a->u.map.kv[i].val, o))
                return false;
        }
        return true;
    }
    return false;
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

/* ---------------------------------------------------------------- msgpack */

static int put_be(struct buf *out, uint8_t tag, uint64_t x, int bytes)
{
    uint8_t b[9];
    b[0] = tag;
    for (int i = 0; i < bytes; i++)
        b[1 + i] = (uint8_t)(x >> (8 * (bytes - 1 - i)));
    return buf_add(out, b, (size_t)bytes + 1);
}

static int pack_len(struct buf *out, size_t n, uint8_t fix, size_t fixmax, const uint8_t tags[3])
{
    if (n <= fixmax && fix)
        return put_be(out, (uint8_t)(fix | n), 0, 0);
    if (n <= 0xff && tags[0])
        return put_be(out, tags[0], n, 1);
    if (n <= 0xffff)
        return put_be(out, tags[1], n, 2);
    if (n <= 0xffffffffu)
        return put_be(out, tags[2], n, 4);
    return -EMSGSIZE;
}

int rt_msgpack_pack(const struct rt_value *v, struct buf *out)
{
    static const uint8_t str_tags[3] = {0xd9, 0xda, 0xdb};
    static const uint8_t bin_tags[3] = {0xc4, 0xc5, 0xc6};
    static const uint8_t arr_tags[3] = {0, 0xdc, 0xdd};
    static const uint8_t map_tags[3] = {0, 0xde, 0xdf};
    int ret = 0;
    switch (v->type) {
    case RT_NIL:
        return put_be(out, 0xc0, 0, 0);
    case RT_BOOL:
        return put_be(out, v->u.b ? 0xc3 : 0xc2, 0, 0);
    case RT_INT: {
        int64_t i = v->u.i;
        if (i >= 0 && i <= 0x7f)
            return put_be(out, (uint8_t)i, 0, 0);
        if (i < 0 && i >= -32)
            return put_be(out, (uint8_t)(0xe0 | (i + 32)), 0, 0);
        if (i >= 0)
            return i <= 0xff           ? put_be(out, 0xcc, (uint64_t)i, 1)
                   : i <= 0xffff       ? put_be(out, 0xcd, (uint64_t)i, 2)
                   : i <= 0xffffffffLL ? put_be(out, 0xce, (uint64_t)i, 4)
                                       : put_be(out, 0xcf, (uint64_t)i, 8);
        return i >= INT8_MIN    ? put_be(out, 0xd0, (uint64_t)i & 0xff, 1)
               : i >= INT16_MIN ? put_be(out, 0xd1, (uint64_t)i & 0xffff, 2)
               : i >= INT32_MIN ? put_be(out, 0xd2, (uint64_t)i & 0xffffffffu, 4)
                                : put_be(out, 0xd3, (uint64_t)i, 8);
    }
    case RT_FLOAT: {
        uint64_t bits;
        memcpy(&bits, &v->u.f, sizeof(bits));
        return put_be(out, 0xcb, bits, 8);
    }
    case RT_STR:
        ret = pack_len(out, v->u.str.n, 0xa0, 31, str_tags);
        return ret ? ret : buf_add(out, v->u.str.p, v->u.str.n);
    case RT_BIN:
        ret = pack_len(out, v->u.str.n, 0, 0, bin_tags);
        return ret ? ret : buf_add(out, v->u.str.p, v->u.str.n);
    case RT_ARRAY:
        ret = pack_len(out, v->u.arr.n, 0x90, 15, arr_tags);
        for (size_t i = 0; !ret && i < v->u.arr.n; i++)
            ret = rt_msgpack_pack(v->u.arr.items[i], out);
        return ret;
    case RT_MAP:
        ret = pack_len(out, v->u.map.n, 0x80, 15, map_tags);
        for (size_t i = 0; !ret && i < v->u.map.n; i++) {
            struct rt_value key = {.type = RT_STR};
            key.u.str.p = v->u.map.kv[i].key;
            key.u.str.n = strlen(key.u.str.p);
            ret = rt_msgpack_pack(&key, out);
            if (!ret)
                ret = rt_msgpack_pack(v->u.map.kv[i].val, out);
        }
        return ret;
    }
    return -EINVAL;
}

struct mp_cursor {
    const uint8_t *p;
    size_t n, pos;
};

static int mp_take(struct mp_cursor *c, size_t k, const uint8_t **at)
{
    if (c->n - c->pos < k)
        return -EAGAIN;
    *at = c->p + c->pos;
    c->pos += k;
    return 0;
}

static int mp_uint(struct mp_cursor *c, int bytes, uint64_t *x)
{
    const uint8_t *at;
    int ret = mp_take(c, (size_t)bytes, &at);
    *x = 0;
    for (int i = 0; !ret && i < bytes; i++)
        *x = (*x << 8) | at[i];
    return ret;
}

static int mp_value(struct mp_cursor *c, int depth, struct rt_value **out);

static int mp_bytes(struct mp_cursor *c, enum rt_type t, uint64_t len, struct rt_value **out)
{
    const uint8_t *at;
    int ret = mp_take(c, len, &at);
    if (!ret) {
        *out = new_bytes(t, at, len);
        if (!*out)
            ret = -ENOMEM;
    }
    return ret;
}

static int mp_array(struct mp_cursor *c, uint64_t count, int depth, struct rt_value **out)
{
    int ret = 0;
    struct rt_value *a = rt_new_array();
    // Never trust the declared count for preallocation: push one by one.
    for (uint64_t i = 0; !ret && i < count; i++) {
        struct rt_value *item = NULL;
        ret = mp_value(c, depth + 1, &item);
        if (!ret)
            rt_array_push(a, item);
    }
    if (ret)
        rt_value_free(a);
    else
        *out = a;
    return ret;
}

static int mp_map(struct mp_cursor *c, uint64_t count, int depth, struct rt_value **out)
{
    int ret = 0;
    struct rt_value *m = rt_new_map();
    for (uint64_t i = 0; !ret && i < count; i++) {
        struct rt_value *key = NULL, *val = NULL;
        ret = mp_value(c, depth + 1, &key);
        if (!ret && key->type != RT_STR && key->type != RT_BIN)
            ret = -EINVAL;
        if (!ret)
            ret = mp_value(c, depth + 1, &val);
        if (!ret)
            rt_map_set(m, key->u.str.p, val);
        rt_value_free(key);
    }
    if (ret)
        rt_value_free(m);
    else
        *out = m;
    return ret;
}

static int mp_value(struct mp_cursor *c, int depth, struct rt_value **out)
{
    const uint8_t *at;
    uint64_t x = 0;
    int ret = depth > RT_MAX_DEPTH ? -EINVAL : mp_take(c, 1, &at);
    if (ret)
        return ret;
    uint8_t tag = *at;
    if (tag <= 0x7f) {
        *out = rt_new_int(tag);
    } else if (tag >= 0xe0) {
        *out = rt_new_int((int8_t)tag);
    } else if ((tag & 0xe0) == 0xa0) {
        ret = mp_bytes(c, RT_STR, tag & 0x1f, out);
    } else if ((tag & 0xf0) == 0x90) {
        ret = mp_array(c, tag & 0x0f, depth, out);
    } else if ((tag & 0xf0) == 0x80) {
        ret = mp_map(c, tag & 0x0f, depth, out);
    } else {
        switch (tag) {
        case 0xc0:
            *out = rt_new_nil();
            break;
        case 0xc2:
        case 0xc3:
            *out = rt_new_bool(tag == 0xc3);
            break;
        case 0xc4:
        case 0xc5:
        case 0xc6:
            ret = mp_uint(c, 1 << (tag - 0xc4), &x);
            if (!ret)
                ret = mp_bytes(c, RT_BIN, x, out);
            break;
        case 0xca: {
            ret = mp_uint(c, 4, &x);
            uint32_t b32 = (uint32_t)x;
            float f;
            memcpy(&f, &b32, sizeof(f));
            if (!ret)
                *out = rt_new_float(f);
            break;
        }
        case 0xcb: {
            ret = mp_uint(c, 8, &x);
            double d;
            memcpy(&d, &x, sizeof(d));
            if (!ret)
                *out = rt_new_float(d);
            break;
        }
        case 0xcc:
        case 0xcd:
        case 0xce:
        case 0xcf:
            ret = mp_uint(c, 1 << (tag - 0xcc), &x);
            if (!ret && x > INT64_MAX)
                ret = -EINVAL; // no uint64 beyond int64 on this wire
            if (!ret)
                *out = rt_new_int((int64_t)x);
            break;
        case 0xd0:
        case 0xd1:
        case 0xd2:
        case 0xd3: {
            int bytes = 1 << (tag - 0xd0);
            ret = mp_uint(c, bytes, &x);
            if (!ret && bytes < 8 && (x >> (bytes * 8 - 1)))
                x |= ~(uint64_t)0 << (bytes * 8); // sign-extend
            if (!ret)
                *out = rt_new_int((int64_t)x);
            break;
        }
        case 0xd9:
        case 0xda:
        case 0xdb:
            ret = mp_uint(c, 1 << (tag - 0xd9), &x);
            if (!ret)
                ret = mp_bytes(c, RT_STR, x, out);
            break;
        case 0xdc:
        case 0xdd:
            ret = mp_uint(c, tag == 0xdc ? 2 : 4, &x);
            if (!ret)
                ret = mp_array(c, x, depth, out);
            break;
        case 0xde:
        case 0xdf:
            ret = mp_uint(c, tag == 0xde ? 2 : 4, &x);
            if (!ret)
                ret = mp_map(c, x, depth, out);
            break;
        default:
            ret = -EINVAL; // ext types and the never-used 0xc1
            break;
        }
    }
    return ret;
}

int rt_msgpack_unpack(const void *p, size_t n, size_t *used, struct rt_value **out)
{
    struct mp_cursor c = {.p = p, .n = n, .pos = 0};
    struct rt_value *v = NULL;
    int ret = mp_value(&c, 0, &v);
    if (!ret) {
        *out = v;
        *used = c.pos;
    }
    return ret;
}

int rt_msgpack_scan(const void *p, size_t n, struct rt_msgpack_scan *s)
{
    const uint8_t *b = p;
    while (s->pending) {
        if (s->pos >= n)
            return -EAGAIN;
        uint8_t t = b[s->pos];
        size_t head = 1, lb = 0; // header bytes; bytes of the length or count after the tag
        uint64_t x = 0;          // payload bytes, or child count
        enum { LEAF, BYTES, ARRAY, MAP } kind = LEAF;
        if (t <= 0x7f || t >= 0xe0 || t == 0xc0 || t == 0xc2 || t == 0xc3)
            kind = LEAF;
        else if (t <= 0x8f)
            kind = MAP, x = t & 0x0f;
        else if (t <= 0x9f)
            kind = ARRAY, x = t & 0x0f;
        else if (t <= 0xbf)
            kind = BYTES, x = t & 0x1f;
        else if (t >= 0xc4 && t <= 0xc6)
            kind = BYTES, lb = (size_t)1 << (t - 0xc4);
        else if (t == 0xca || t == 0xcb)
            head = t == 0xca ? 5 : 9;
        else if (t >= 0xcc && t <= 0xd3)
            head = 1 + ((size_t)1 << ((t - 0xcc) & 3));
        else if (t >= 0xd9 && t <= 0xdb)
            kind = BYTES, lb = (size_t)1 << (t - 0xd9);
        else if (t == 0xdc || t == 0xdd)
            kind = ARRAY, lb = t == 0xdc ? 2 : 4;
        else if (t == 0xde || t == 0xdf)
            kind = MAP, lb = t == 0xde ? 2 : 4;
        else
            return -EINVAL; // 0xc1 and the ext types
        head += lb;
        if (n - s->pos < head)
            return -EAGAIN;
        for (size_t i = 1; i <= lb; i++)
            x = x << 8 | b[s->pos + i];
        uint64_t payload = kind == BYTES ? x : 0;
        uint64_t children = kind == ARRAY ? x : kind == MAP ? 2 * x : 0;
        if ((uint64_t)(n - s->pos - head) < payload)
            return -EAGAIN;
        // Counts are at most 2^33 per header: only an absurd input overflows.
        if (s->pending > UINT64_MAX / 2)
            return -EINVAL;
        s->pos += head + (size_t)payload;
        s->pending += children - 1;
    }
    return 0;
}

/* ------------------------------------------------------------------- JSON */

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
    if (depth > RT_MAX_DEPTH * 4 || c->pos >= c->n)
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
