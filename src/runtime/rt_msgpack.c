// The agent wire's msgpack codec for the runtime's value tree: libc only,
// so that the static runtime needs no msgpack-c (tests/runtime/
// test_rt_msgpack.c cross-checks it against msgpack-c).
#include "rt_msgpack.h"

#include "common/mp_head.h"

#include <errno.h>
#include <string.h>

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

static int mp_value(struct mp_cursor *c, int depth, struct rt_value **out);

static int mp_bytes(struct mp_cursor *c, enum rt_type t, uint64_t len, struct rt_value **out)
{
    const uint8_t *at;
    int ret = mp_take(c, len, &at);
    if (!ret) {
        *out = t == RT_STR ? rt_new_strn((const char *)at, len) : rt_new_bin(at, len);
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
    struct mp_head h;
    int ret = depth > RT_VALUE_MAX_DEPTH ? -EINVAL : mp_head_read(c->p + c->pos, c->n - c->pos, &h);
    if (ret)
        return ret;
    c->pos += h.len;
    switch (h.kind) {
    case MP_NIL:
        *out = rt_new_nil();
        break;
    case MP_BOOL:
        *out = rt_new_bool(h.n);
        break;
    case MP_UINT:
        if (h.n > INT64_MAX)
            return -EINVAL; // no uint64 beyond int64 on this wire
        *out = rt_new_int((int64_t)h.n);
        break;
    case MP_INT:
        *out = rt_new_int(h.i);
        break;
    case MP_FLOAT:
        *out = rt_new_float(h.f);
        break;
    case MP_STR:
    case MP_BIN:
        ret = mp_bytes(c, h.kind == MP_STR ? RT_STR : RT_BIN, h.n, out);
        break;
    case MP_ARRAY:
        ret = mp_array(c, h.n, depth, out);
        break;
    case MP_MAP:
        ret = mp_map(c, h.n, depth, out);
        break;
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
        struct mp_head h;
        int ret = mp_head_read(b + s->pos, n - s->pos, &h);
        if (ret)
            return ret;
        uint64_t payload = h.kind == MP_STR || h.kind == MP_BIN ? h.n : 0;
        uint64_t children = h.kind == MP_ARRAY ? h.n : h.kind == MP_MAP ? 2 * h.n : 0;
        if ((uint64_t)(n - s->pos - h.len) < payload)
            return -EAGAIN;
        // Counts are at most 2^33 per header: only an absurd input overflows.
        if (s->pending > UINT64_MAX / 2)
            return -EINVAL;
        s->pos += h.len + (size_t)payload;
        s->pending += children - 1;
    }
    return 0;
}
