#include "core/value.h"

#include <errno.h>
#include <string.h>

#include "core/util.h"

static const char *const type_names[] = {
#define X(name, str) str,
    VALUE_TYPES(X)
#undef X
};

const char *value_type_name(enum value_type t)
{
    return (size_t)t < ARRAY_SIZE(type_names) ? type_names[t] : "?";
}

void value_deinit(struct value *v)
{
    if (!v)
        return;
    switch (v->type) {
    case VALUE_STR:
    case VALUE_BIN:
        free(v->u.s.ptr);
        break;
    case VALUE_ARRAY:
        for (size_t i = 0; i < v->u.a.len; i++)
            value_deinit(&v->u.a.items[i]);
        free(v->u.a.items);
        break;
    case VALUE_MAP:
        for (size_t i = 0; i < v->u.m.len; i++) {
            value_deinit(&v->u.m.items[i].key);
            value_deinit(&v->u.m.items[i].val);
        }
        free(v->u.m.items);
        break;
    default:
        break;
    }
    memset(v, 0, sizeof *v);
    v->type = VALUE_NIL;
}

void value_copy(struct value *dst, const struct value *src)
{
    switch (src->type) {
    case VALUE_STR:
        value_set_strn(dst, src->u.s.ptr, src->u.s.len);
        break;
    case VALUE_BIN:
        value_set_bin(dst, src->u.s.ptr, src->u.s.len);
        break;
    case VALUE_ARRAY:
        value_set_array(dst);
        for (size_t i = 0; i < src->u.a.len; i++)
            value_copy(value_array_push(dst), &src->u.a.items[i]);
        break;
    case VALUE_MAP:
        value_set_map(dst);
        dst->u.m.items = xcalloc(src->u.m.len ? src->u.m.len : 1, sizeof *dst->u.m.items);
        dst->u.m.cap = src->u.m.len ? src->u.m.len : 1;
        for (size_t i = 0; i < src->u.m.len; i++) {
            value_copy(&dst->u.m.items[i].key, &src->u.m.items[i].key);
            value_copy(&dst->u.m.items[i].val, &src->u.m.items[i].val);
        }
        dst->u.m.len = src->u.m.len;
        break;
    default:
        *dst = *src;
        break;
    }
}

void value_set_nil(struct value *v)
{
    memset(v, 0, sizeof *v);
    v->type = VALUE_NIL;
}

void value_set_bool(struct value *v, bool b)
{
    value_set_nil(v);
    v->type = VALUE_BOOL;
    v->u.b = b;
}

void value_set_int(struct value *v, int64_t i)
{
    value_set_nil(v);
    v->type = VALUE_INT;
    v->u.i = i;
}

void value_set_float(struct value *v, double f)
{
    value_set_nil(v);
    v->type = VALUE_FLOAT;
    v->u.f = f;
}

void value_set_strn(struct value *v, const char *s, size_t n)
{
    value_set_nil(v);
    v->type = VALUE_STR;
    v->u.s.ptr = xstrndup(s, n);
    v->u.s.len = n;
}

void value_set_str(struct value *v, const char *s)
{
    value_set_strn(v, s, strlen(s));
}

void value_set_bin(struct value *v, const void *p, size_t n)
{
    value_set_strn(v, p, n);
    v->type = VALUE_BIN;
}

void value_take_bin(struct value *v, char *p, size_t n)
{
    value_set_nil(v);
    v->type = VALUE_BIN;
    p[n] = '\0';
    v->u.s.ptr = p;
    v->u.s.len = n;
}

void value_set_array(struct value *v)
{
    value_set_nil(v);
    v->type = VALUE_ARRAY;
}

void value_set_map(struct value *v)
{
    value_set_nil(v);
    v->type = VALUE_MAP;
}

struct value *value_array_push(struct value *arr)
{
    PROCTOR_REQUIRE(arr->type == VALUE_ARRAY);
    if (arr->u.a.len == arr->u.a.cap) {
        arr->u.a.cap = arr->u.a.cap ? arr->u.a.cap * 2 : 4;
        arr->u.a.items = xrealloc(arr->u.a.items, arr->u.a.cap * sizeof *arr->u.a.items);
    }
    struct value *slot = &arr->u.a.items[arr->u.a.len++];
    value_set_nil(slot);
    return slot;
}

static ssize_t map_find(const struct value *map, const char *key)
{
    if (!map || map->type != VALUE_MAP)
        return -1;
    size_t klen = strlen(key);
    for (size_t i = 0; i < map->u.m.len; i++) {
        const struct value *k = &map->u.m.items[i].key;
        if (k->type == VALUE_STR && k->u.s.len == klen && !memcmp(k->u.s.ptr, key, klen))
            return (ssize_t)i;
    }
    return -1;
}

struct value *value_map_put(struct value *map, const char *key)
{
    PROCTOR_REQUIRE(map->type == VALUE_MAP);
    ssize_t i = map_find(map, key);
    if (i >= 0)
        return &map->u.m.items[i].val;
    if (map->u.m.len == map->u.m.cap) {
        map->u.m.cap = map->u.m.cap ? map->u.m.cap * 2 : 8;
        map->u.m.items = xrealloc(map->u.m.items, map->u.m.cap * sizeof *map->u.m.items);
    }
    struct value_pair *p = &map->u.m.items[map->u.m.len++];
    value_set_str(&p->key, key);
    value_set_nil(&p->val);
    return &p->val;
}

const struct value *value_map_get(const struct value *map, const char *key)
{
    ssize_t i = map_find(map, key);
    return i >= 0 ? &map->u.m.items[i].val : NULL;
}

bool value_map_del(struct value *map, const char *key)
{
    ssize_t i = map_find(map, key);
    if (i < 0)
        return false;
    value_deinit(&map->u.m.items[i].key);
    value_deinit(&map->u.m.items[i].val);
    memmove(&map->u.m.items[i], &map->u.m.items[i + 1],
            (map->u.m.len - (size_t)i - 1) * sizeof *map->u.m.items);
    map->u.m.len--;
    return true;
}

bool value_is_str(const struct value *v, const char *s)
{
    return v && v->type == VALUE_STR && strlen(s) == v->u.s.len &&
           !memcmp(v->u.s.ptr, s, v->u.s.len);
}

static int from_msgpack(const msgpack_object *o, struct value *out, int depth)
{
    int ret = 0;
    value_set_nil(out);
    if (depth > VALUE_MAX_DEPTH)
        return -EBADMSG;
    switch (o->type) {
    case MSGPACK_OBJECT_NIL:
        break;
    case MSGPACK_OBJECT_BOOLEAN:
        value_set_bool(out, o->via.boolean);
        break;
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        if (o->via.u64 > INT64_MAX) {
            out->type = VALUE_UINT;
            out->u.u = o->via.u64;
        } else {
            value_set_int(out, (int64_t)o->via.u64);
        }
        break;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        value_set_int(out, o->via.i64);
        break;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        value_set_float(out, o->via.f64);
        break;
    case MSGPACK_OBJECT_STR:
    case MSGPACK_OBJECT_BIN: {
        // Sizes here come from the peer: checked allocation.
        size_t n = o->type == MSGPACK_OBJECT_STR ? o->via.str.size : o->via.bin.size;
        const char *p = o->type == MSGPACK_OBJECT_STR ? o->via.str.ptr : o->via.bin.ptr;
        char *copy = try_malloc(n + 1);
        if (!copy)
            return -ENOMEM;
        if (n)
            memcpy(copy, p, n);
        value_take_bin(out, copy, n);
        if (o->type == MSGPACK_OBJECT_STR)
            out->type = VALUE_STR;
        break;
    }
    case MSGPACK_OBJECT_ARRAY:
        value_set_array(out);
        if (o->via.array.size) {
            out->u.a.items = try_malloc(o->via.array.size * sizeof *out->u.a.items);
            if (!out->u.a.items)
                return -ENOMEM;
            out->u.a.cap = o->via.array.size;
        }
        for (uint32_t i = 0; !ret && i < o->via.array.size; i++) {
            ret = from_msgpack(&o->via.array.ptr[i], &out->u.a.items[i], depth + 1);
            out->u.a.len = i + 1;
        }
        break;
    case MSGPACK_OBJECT_MAP:
        value_set_map(out);
        if (o->via.map.size) {
            out->u.m.items = try_malloc(o->via.map.size * sizeof *out->u.m.items);
            if (!out->u.m.items)
                return -ENOMEM;
            out->u.m.cap = o->via.map.size;
        }
        for (uint32_t i = 0; !ret && i < o->via.map.size; i++) {
            struct value_pair *p = &out->u.m.items[i];
            value_set_nil(&p->val);
            ret = from_msgpack(&o->via.map.ptr[i].key, &p->key, depth + 1);
            if (!ret)
                ret = from_msgpack(&o->via.map.ptr[i].val, &p->val, depth + 1);
            out->u.m.len = i + 1;
        }
        break;
    default:
        // ext types are never part of the protocol.
        ret = -EBADMSG;
        break;
    }
    if (ret)
        value_deinit(out);
    return ret;
}

int value_from_msgpack(const msgpack_object *o, struct value *out)
{
    return from_msgpack(o, out, 0);
}

// msgpack-c's unpacker parses with a fixed stack of its own (32 levels), so
// hostile nesting is refused there; the copy checks VALUE_MAX_DEPTH again
// for trees that come from elsewhere.
int value_unpack(const char *buf, size_t len, struct value *out, char *err, size_t errlen)
{
    int ret = 0;
    msgpack_unpacked u;
    size_t off = 0;
    value_set_nil(out);
    msgpack_unpacked_init(&u);
    msgpack_unpack_return r = msgpack_unpack_next(&u, buf, len, &off);
    switch (r) {
    case MSGPACK_UNPACK_SUCCESS:
        if (off != len) {
            util_err(err, errlen, "%zu trailing bytes after the msgpack object", len - off);
            ret = -EBADMSG;
            break;
        }
        ret = value_from_msgpack(&u.data, out);
        if (ret == -EBADMSG)
            util_err(err, errlen, "msgpack object nested too deeply or uses ext types");
        else if (ret)
            util_err(err, errlen, "out of memory decoding msgpack");
        break;
    case MSGPACK_UNPACK_CONTINUE:
        util_err(err, errlen, "truncated msgpack object");
        ret = -EBADMSG;
        break;
    case MSGPACK_UNPACK_NOMEM_ERROR:
        // msgpack-c reports nesting beyond its fixed parse stack (32 levels)
        // this way too; both mean the input is refused.
        util_err(err, errlen, "msgpack object too deeply nested (or out of memory)");
        ret = -EBADMSG;
        break;
    default:
        util_err(err, errlen, "malformed msgpack");
        ret = -EBADMSG;
        break;
    }
    msgpack_unpacked_destroy(&u);
    return ret;
}

int value_pack(msgpack_packer *pk, const struct value *v)
{
    int r = 0;
    switch (v->type) {
    case VALUE_NIL:
        r = msgpack_pack_nil(pk);
        break;
    case VALUE_BOOL:
        r = v->u.b ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
        break;
    case VALUE_INT:
        r = msgpack_pack_int64(pk, v->u.i);
        break;
    case VALUE_UINT:
        r = msgpack_pack_uint64(pk, v->u.u);
        break;
    case VALUE_FLOAT:
        r = msgpack_pack_double(pk, v->u.f);
        break;
    case VALUE_STR:
        r = msgpack_pack_str_with_body(pk, v->u.s.ptr, v->u.s.len);
        break;
    case VALUE_BIN:
        r = msgpack_pack_bin_with_body(pk, v->u.s.ptr, v->u.s.len);
        break;
    case VALUE_ARRAY:
        r = msgpack_pack_array(pk, v->u.a.len);
        for (size_t i = 0; !r && i < v->u.a.len; i++)
            r = value_pack(pk, &v->u.a.items[i]);
        break;
    case VALUE_MAP:
        r = msgpack_pack_map(pk, v->u.m.len);
        for (size_t i = 0; !r && i < v->u.m.len; i++) {
            r = value_pack(pk, &v->u.m.items[i].key);
            if (!r)
                r = value_pack(pk, &v->u.m.items[i].val);
        }
        break;
    }
    return r ? -ENOMEM : 0;
}
