#include "core/value.h"

#include <errno.h>
#include <string.h>

#include "common/mp_head.h"
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

struct ranked_key {
    const struct value *key;
    size_t pos;
};

static int ranked_key_cmp(const void *pa, const void *pb)
{
    const struct ranked_key *a = pa, *b = pb;
    size_t n = a->key->u.s.len < b->key->u.s.len ? a->key->u.s.len : b->key->u.s.len;
    int c = memcmp(a->key->u.s.ptr, b->key->u.s.ptr, n);
    if (c)
        return c;
    if (a->key->u.s.len != b->key->u.s.len)
        return a->key->u.s.len < b->key->u.s.len ? -1 : 1;
    return a->pos < b->pos ? -1 : a->pos > b->pos;
}

/** Position of key in ref's sorted keys (its first occurrence), or SIZE_MAX. */
static size_t ranked_find(const struct ranked_key *sorted, size_t n, const struct value *key)
{
    struct ranked_key probe = {.key = key, .pos = 0};
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ranked_key_cmp(&sorted[mid], &probe) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < n && sorted[lo].key->u.s.len == key->u.s.len &&
        !memcmp(sorted[lo].key->u.s.ptr, key->u.s.ptr, key->u.s.len))
        return sorted[lo].pos;
    return SIZE_MAX;
}

struct ranked_pair {
    size_t rank, pos;
    const struct value *ref_val;
};

static int ranked_pair_cmp(const void *pa, const void *pb)
{
    const struct ranked_pair *a = pa, *b = pb;
    if (a->rank != b->rank)
        return a->rank < b->rank ? -1 : 1;
    return a->pos < b->pos ? -1 : a->pos > b->pos;
}

static void map_order_like(struct value *m, const struct value *ref, int depth)
{
    if (!m || !ref || m->type != VALUE_MAP || ref->type != VALUE_MAP || depth > VALUE_MAX_DEPTH)
        return;
    size_t n = m->u.m.len, nref = 0;
    if (n == 0)
        return; // and m->u.m.items may be NULL
    // Sizes come from containers: checked allocations, and no reorder without them.
    struct ranked_key *sorted = malloc((ref->u.m.len + 1) * sizeof *sorted);
    struct ranked_pair *order = malloc((n + 1) * sizeof *order);
    struct value_pair *items = malloc((n + 1) * sizeof *items);
    if (!sorted || !order || !items)
        goto out;
    for (size_t i = 0; i < ref->u.m.len; i++)
        if (ref->u.m.items[i].key.type == VALUE_STR)
            sorted[nref++] = (struct ranked_key){&ref->u.m.items[i].key, i};
    qsort(sorted, nref, sizeof *sorted, ranked_key_cmp);
    for (size_t i = 0; i < n; i++) {
        const struct value *k = &m->u.m.items[i].key;
        size_t rank = k->type == VALUE_STR ? ranked_find(sorted, nref, k) : SIZE_MAX;
        order[i] =
            (struct ranked_pair){rank, i, rank == SIZE_MAX ? NULL : &ref->u.m.items[rank].val};
    }
    qsort(order, n, sizeof *order, ranked_pair_cmp);
    for (size_t i = 0; i < n; i++)
        items[i] = m->u.m.items[order[i].pos];
    memcpy(m->u.m.items, items, n * sizeof *items);
    for (size_t i = 0; i < n; i++)
        map_order_like(&m->u.m.items[i].val, order[i].ref_val, depth + 1);
out:
    free(sorted);
    free(order);
    free(items);
}

void value_map_order_like(struct value *m, const struct value *ref)
{
    map_order_like(m, ref, 0);
}

bool value_is_str(const struct value *v, const char *s)
{
    return v && v->type == VALUE_STR && strlen(s) == v->u.s.len &&
           !memcmp(v->u.s.ptr, s, v->u.s.len);
}

/* ---- msgpack decoding ---------------------------------------------------
 *
 * A direct decoder, msgpack bytes -> struct value: no intermediate objects.
 * Every count the peer declares is checked before anything is reserved for
 * it: against the bytes left (every element takes at least one byte, every
 * map entry two) and against the message's object budget
 * (VALUE_MAX_OBJECTS). Objects are counted when their slots are reserved
 * (the root, then each container's declared children), so the budget bounds
 * every allocation, not just the finished tree.
 */

struct decoder {
    const unsigned char *start, *p, *end;
    size_t objects, max_objects;
    const char *why; /* static text for -EBADMSG */
};

static int dec_fail(struct decoder *d, const char *why)
{
    d->why = why;
    return -EBADMSG;
}

static bool dec_has(const struct decoder *d, size_t n)
{
    return (size_t)(d->end - d->p) >= n;
}

static int dec_bytes(struct decoder *d, size_t n, enum value_type type, struct value *out)
{
    if (!dec_has(d, n))
        return dec_fail(d, "truncated msgpack object (string longer than the message)");
    // Sizes here come from the peer: checked allocation.
    char *copy = try_malloc(n + 1);
    if (!copy)
        return -ENOMEM;
    if (n)
        memcpy(copy, d->p, n);
    d->p += n;
    value_take_bin(out, copy, n);
    out->type = type;
    return 0;
}

// Reserves the slots of n children, each taking at least `per` bytes of the
// message and `per` objects of the budget.
static int dec_reserve(struct decoder *d, size_t n, size_t per, size_t size, void **items)
{
    if (n > (size_t)(d->end - d->p) / per)
        return dec_fail(d, "truncated msgpack object (more elements declared than bytes left)");
    if (n * per > d->max_objects - d->objects)
        return dec_fail(d, "msgpack message has more objects than its size allows");
    d->objects += n * per;
    *items = NULL;
    if (n && !(*items = try_malloc(n * size)))
        return -ENOMEM;
    return 0;
}

static int dec_value(struct decoder *d, struct value *out, int depth);

static int dec_array(struct decoder *d, size_t n, struct value *out, int depth)
{
    void *items;
    value_set_array(out);
    int ret = dec_reserve(d, n, 1, sizeof *out->u.a.items, &items);
    if (ret)
        return ret;
    out->u.a.items = items;
    out->u.a.cap = n;
    for (size_t i = 0; !ret && i < n; i++) {
        ret = dec_value(d, &out->u.a.items[i], depth + 1);
        out->u.a.len = i + 1; /* a failed slot is still a valid (partial) tree */
    }
    return ret;
}

static int dec_map(struct decoder *d, size_t n, struct value *out, int depth)
{
    void *items;
    value_set_map(out);
    int ret = dec_reserve(d, n, 2, sizeof *out->u.m.items, &items);
    if (ret)
        return ret;
    out->u.m.items = items;
    out->u.m.cap = n;
    for (size_t i = 0; !ret && i < n; i++) {
        struct value_pair *p = &out->u.m.items[i];
        value_set_nil(&p->val);
        ret = dec_value(d, &p->key, depth + 1);
        if (!ret)
            ret = dec_value(d, &p->val, depth + 1);
        out->u.m.len = i + 1;
    }
    return ret;
}

// Decodes one object into *out (always left valid: NIL or a partial tree
// that value_deinit() releases).
static int dec_value(struct decoder *d, struct value *out, int depth)
{
    value_set_nil(out);
    if (depth > VALUE_MAX_DEPTH)
        return dec_fail(d, "msgpack object nested too deeply");
    if (!dec_has(d, 1))
        return dec_fail(d, "truncated msgpack object");
    struct mp_head h;
    int ret = mp_head_read(d->p, (size_t)(d->end - d->p), &h);
    if (ret) {
        d->p++; // errors are reported after the type byte
        // 0xc1 is never used; ext types are never part of the protocol.
        return dec_fail(d, ret == -EAGAIN ? "truncated msgpack object"
                                          : "msgpack ext type or reserved byte");
    }
    d->p += h.len;
    switch (h.kind) {
    case MP_NIL:
        break;
    case MP_BOOL:
        value_set_bool(out, h.n);
        break;
    case MP_UINT:
        if (h.n > INT64_MAX) {
            out->type = VALUE_UINT;
            out->u.u = h.n;
        } else {
            value_set_int(out, (int64_t)h.n);
        }
        break;
    case MP_INT:
        value_set_int(out, h.i);
        break;
    case MP_FLOAT:
        value_set_float(out, h.f);
        break;
    case MP_STR:
    case MP_BIN:
        ret = dec_bytes(d, (size_t)h.n, h.kind == MP_STR ? VALUE_STR : VALUE_BIN, out);
        break;
    case MP_ARRAY:
        ret = dec_array(d, (size_t)h.n, out, depth);
        break;
    case MP_MAP:
        ret = dec_map(d, (size_t)h.n, out, depth);
        break;
    }
    return ret;
}

int value_unpack(const char *buf, size_t len, struct value *out, char *err, size_t errlen)
{
    struct decoder d = {
        .start = (const unsigned char *)buf,
        .p = (const unsigned char *)buf,
        .end = (const unsigned char *)buf + len,
        .objects = 1, /* the root */
        .max_objects = VALUE_MAX_OBJECTS(len),
    };
    int ret = dec_value(&d, out, 0);
    if (!ret && d.p != d.end)
        ret = dec_fail(&d, "trailing bytes after the msgpack object");
    if (ret == -ENOMEM)
        util_err(err, errlen, "out of memory decoding msgpack (%zu bytes)", len);
    else if (ret)
        util_err(err, errlen, "%s (at byte %zu of %zu)", d.why, (size_t)(d.p - d.start), len);
    if (ret)
        value_deinit(out);
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
