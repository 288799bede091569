// The agent wire's msgpack codec for the runtime's value tree: libc only,
// so that the static runtime needs no msgpack-c (tests/runtime/
// test_rt_msgpack.c cross-checks it against msgpack-c).
#include "rt_msgpack.h"

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
    const uint8_t *at;
    uint64_t x = 0;
    int ret = depth > RT_VALUE_MAX_DEPTH ? -EINVAL : mp_take(c, 1, &at);
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
