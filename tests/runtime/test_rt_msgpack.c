// Cross-checks the runtime's own msgpack codec (src/runtime/rt_msgpack.c,
// libc only, so that the static runtime needs no msgpack-c) against
// msgpack-c, which the daemon uses, on generated values: nested maps and
// arrays, every integer width and sign, floats (-0.0, infinities, NaN,
// subnormals, float32), str and bin of every length class, ext (refused).
//
//  - runtime pack -> msgpack-c unpack gives the same tree, and msgpack-c
//    packs that tree back to the very same bytes (the runtime writes the
//    canonical, smallest forms);
//  - msgpack-c pack, with randomly chosen non-canonical widths (fixed-width
//    ints, float32, raw str16/32 for short strings, bin map keys) -> runtime
//    unpack gives the same tree, consuming every byte.
//
// Deterministic: the seed is fixed and printed; PROCTOR_SEED overrides it.

#include <errno.h>
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <msgpack.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "rt_common.h"

#define TREES 3000
#define MAX_DEPTH 5

static uint64_t rng_state;

// xorshift64*: the same sequence on every machine.
static uint64_t rng(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1DULL;
}

static size_t pick(size_t n)
{
    return (size_t)(rng() % n);
}

/* ---- generation ---------------------------------------------------------- */

static const int64_t int_edges[] = {
    0,         1,          127,           128,       255,          256,    65535,
    65536,     4294967295, 4294967296,    INT64_MAX, -1,           -31,    -32,
    -33,       -127,       -128,          -129,      -32767,       -32768, -32769,
    INT32_MAX, INT32_MIN,  -2147483649LL, INT64_MIN, INT64_MIN + 1};

static int64_t gen_int(void)
{
    switch (pick(4)) {
    case 0:
        return int_edges[pick(sizeof int_edges / sizeof int_edges[0])];
    case 1:
        return (int64_t)pick(256) - 128;
    case 2: {
        int shift = (int)pick(63); // a magnitude of each width class
        int64_t v = (int64_t)(rng() >> (63 - shift) >> 1);
        return pick(2) ? v : -v - 1;
    }
    default:
        return (int64_t)rng();
    }
}

static double gen_float(void)
{
    static const double edges[] = {0.0, 1.0, 0.5, 1e300, DBL_MIN, DBL_MAX, 5e-324, 66.67};
    switch (pick(6)) {
    case 0:
        return -0.0;
    case 1:
        return pick(2) ? INFINITY : -INFINITY;
    case 2:
        return pick(2) ? NAN : -NAN;
    case 3:
        return (pick(2) ? 1 : -1) * edges[pick(sizeof edges / sizeof edges[0])];
    case 4:
        return (double)(float)((double)gen_int() / 1024.0); // float32-representable
    default: {
        uint64_t bits = rng();
        double d;
        memcpy(&d, &bits, sizeof d);
        return d;
    }
    }
}

// A length from each encoding class: fix, 8-bit, 16-bit, and rarely 32-bit.
static size_t gen_len(bool is_str)
{
    static const size_t edges[] = {0, 1, 31, 32, 255, 256, 65535, 65536};
    size_t r = pick(100);
    if (r < 70)
        return pick(40);
    if (r < 97)
        return edges[pick(6)] + (is_str ? 0 : pick(2));
    return edges[6 + pick(2)];
}

static void gen_bytes(char *p, size_t n, bool text)
{
    for (size_t i = 0; i < n; i++)
        p[i] = text ? (char)('a' + pick(26)) : (char)rng();
    if (text && n >= 3 && pick(4) == 0)
        memcpy(p + pick(n - 2), "\xc3\xa9", 2); // some non-ASCII text too
}

static struct rt_value *gen_value(int depth);

static struct rt_value *gen_container(int depth, bool map)
{
    struct rt_value *v = map ? rt_new_map() : rt_new_array();
    size_t n = pick(8) == 0 ? 16 + pick(8) : pick(6); // fix and 16-bit counts
    for (size_t i = 0; i < n; i++) {
        struct rt_value *item = gen_value(depth + 1);
        if (map) {
            char key[40];
            snprintf(key, sizeof key, "k%zu%c", i, (char)('a' + pick(26)));
            rt_map_set(v, key, item);
        } else {
            rt_array_push(v, item);
        }
    }
    return v;
}

static struct rt_value *gen_value(int depth)
{
    size_t kinds = depth < MAX_DEPTH ? 9 : 7;
    switch (pick(kinds)) {
    case 0:
        return rt_new_nil();
    case 1:
        return rt_new_bool(pick(2));
    case 2:
    case 3:
        return rt_new_int(gen_int());
    case 4:
        return rt_new_float(gen_float());
    case 5:
    case 6: {
        bool text = pick(2);
        size_t n = gen_len(text);
        char *p = malloc(n + 1);
        REQUIRE_OR_EXIT(p);
        gen_bytes(p, n, text);
        struct rt_value *v = text ? rt_new_strn(p, n) : rt_new_bin(p, n);
        free(p);
        REQUIRE_OR_EXIT(v);
        return v;
    }
    case 7:
        return gen_container(depth, false);
    default:
        return gen_container(depth, true);
    }
}

/* ---- comparison ---------------------------------------------------------- */

static bool same_float(double a, double b)
{
    return isnan(a) ? isnan(b) : !memcmp(&a, &b, sizeof a);
}

static bool same_bytes(const char *p, size_t n, const char *q, size_t m)
{
    return n == m && (!n || !memcmp(p, q, n));
}

// Does msgpack-c's object o hold the same value as v?
static bool equal_obj(const struct rt_value *v, const msgpack_object *o)
{
    switch (v->type) {
    case RT_NIL:
        return o->type == MSGPACK_OBJECT_NIL;
    case RT_BOOL:
        return o->type == MSGPACK_OBJECT_BOOLEAN && o->via.boolean == v->u.b;
    case RT_INT:
        if (v->u.i >= 0)
            return o->type == MSGPACK_OBJECT_POSITIVE_INTEGER && o->via.u64 == (uint64_t)v->u.i;
        return o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER && o->via.i64 == v->u.i;
    case RT_FLOAT:
        return o->type == MSGPACK_OBJECT_FLOAT64 && same_float(o->via.f64, v->u.f);
    case RT_STR:
        return o->type == MSGPACK_OBJECT_STR &&
               same_bytes(o->via.str.ptr, o->via.str.size, v->u.str.p, v->u.str.n);
    case RT_BIN:
        return o->type == MSGPACK_OBJECT_BIN &&
               same_bytes(o->via.bin.ptr, o->via.bin.size, v->u.str.p, v->u.str.n);
    case RT_ARRAY:
        if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size != v->u.arr.n)
            return false;
        for (size_t i = 0; i < v->u.arr.n; i++)
            if (!equal_obj(v->u.arr.items[i], &o->via.array.ptr[i]))
                return false;
        return true;
    case RT_MAP:
        if (o->type != MSGPACK_OBJECT_MAP || o->via.map.size != v->u.map.n)
            return false;
        for (size_t i = 0; i < v->u.map.n; i++) {
            const msgpack_object_kv *kv = &o->via.map.ptr[i];
            const char *key = v->u.map.kv[i].key;
            if (kv->key.type != MSGPACK_OBJECT_STR ||
                !same_bytes(kv->key.via.str.ptr, kv->key.via.str.size, key, strlen(key)) ||
                !equal_obj(v->u.map.kv[i].val, &kv->val))
                return false;
        }
        return true;
    }
    return false;
}

/* ---- msgpack-c packing, with non-canonical choices ------------------------- */

static void pack_int(msgpack_packer *pk, int64_t i)
{
    // Any width that holds the value, as another packer could choose.
    int w = (int)pick(5);
    if (i >= 0) {
        uint64_t u = (uint64_t)i;
        if (w == 1 && u <= UINT8_MAX)
            msgpack_pack_fix_uint8(pk, (uint8_t)u);
        else if (w == 2 && u <= UINT16_MAX)
            msgpack_pack_fix_uint16(pk, (uint16_t)u);
        else if (w == 3 && u <= UINT32_MAX)
            msgpack_pack_fix_uint32(pk, (uint32_t)u);
        else if (w == 4)
            msgpack_pack_fix_uint64(pk, u);
        else
            msgpack_pack_int64(pk, i);
        return;
    }
    if (w == 1 && i >= INT8_MIN)
        msgpack_pack_fix_int8(pk, (int8_t)i);
    else if (w == 2 && i >= INT16_MIN)
        msgpack_pack_fix_int16(pk, (int16_t)i);
    else if (w == 3 && i >= INT32_MIN)
        msgpack_pack_fix_int32(pk, (int32_t)i);
    else if (w == 4)
        msgpack_pack_fix_int64(pk, i);
    else
        msgpack_pack_int64(pk, i);
}

static void pack_str(msgpack_packer *pk, const char *p, size_t n, bool as_bin)
{
    if (as_bin) {
        msgpack_pack_bin(pk, n);
        msgpack_pack_bin_body(pk, p, n);
    } else if (pick(4) == 0) {
        msgpack_pack_v4raw(pk, n); // the old raw: no str8, so str16 for 32..255
        msgpack_pack_v4raw_body(pk, p, n);
    } else {
        msgpack_pack_str(pk, n);
        msgpack_pack_str_body(pk, p, n);
    }
}

static void pack_c(msgpack_packer *pk, const struct rt_value *v)
{
    switch (v->type) {
    case RT_NIL:
        msgpack_pack_nil(pk);
        break;
    case RT_BOOL:
        v->u.b ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
        break;
    case RT_INT:
        pack_int(pk, v->u.i);
        break;
    case RT_FLOAT: {
        double d = v->u.f;
        float f = (float)d;
        // float32 when it holds the value exactly (NaN's payload may not survive).
        if (!isnan(d) && (double)f == d && signbit(f) == signbit(d) && pick(2))
            msgpack_pack_float(pk, f);
        else
            msgpack_pack_double(pk, d);
        break;
    }
    case RT_STR:
        pack_str(pk, v->u.str.p, v->u.str.n, false);
        break;
    case RT_BIN:
        pack_str(pk, v->u.str.p, v->u.str.n, true);
        break;
    case RT_ARRAY:
        msgpack_pack_array(pk, v->u.arr.n);
        for (size_t i = 0; i < v->u.arr.n; i++)
            pack_c(pk, v->u.arr.items[i]);
        break;
    case RT_MAP:
        msgpack_pack_map(pk, v->u.map.n);
        for (size_t i = 0; i < v->u.map.n; i++) {
            const char *key = v->u.map.kv[i].key;
            pack_str(pk, key, strlen(key), pick(8) == 0); // bin keys read as str
            pack_c(pk, v->u.map.kv[i].val);
        }
        break;
    }
}

/* ---- the two directions -------------------------------------------------- */

// Runtime pack -> msgpack-c unpack: same tree; msgpack-c repacks the same bytes.
static bool check_rt_to_c(const struct rt_value *v, size_t tree)
{
    struct buf b = {0};
    REQUIRE_OR_EXIT(rt_msgpack_pack(v, &b) == 0, "tree %zu: pack", tree);
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    bool ok = msgpack_unpack_next(&u, b.data, b.len, &off) == MSGPACK_UNPACK_SUCCESS;
    CHECK(ok && off == b.len, "tree %zu: msgpack-c cannot read the runtime's %zu bytes", tree,
          b.len);
    if (ok) {
        ok = equal_obj(v, &u.data);
        CHECK(ok, "tree %zu: msgpack-c reads another value", tree);
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_object(&pk, u.data);
        bool same = same_bytes(sb.data, sb.size, b.data, b.len);
        CHECK(same, "tree %zu: not msgpack-c's canonical bytes (%zu vs %zu)", tree, b.len, sb.size);
        ok = ok && same;
        msgpack_sbuffer_destroy(&sb);
    }
    msgpack_unpacked_destroy(&u);
    buf_deinit(&b);
    return ok;
}

// msgpack-c pack (any widths) -> runtime unpack: same tree, every byte used.
static bool check_c_to_rt(const struct rt_value *v, size_t tree)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    pack_c(&pk, v);
    struct rt_value *back = NULL;
    size_t used = 0;
    int ret = rt_msgpack_unpack(sb.data, sb.size, &used, &back);
    bool ok = ret == 0 && used == sb.size && rt_value_identical(v, back);
    CHECK(ok, "tree %zu: runtime unpack of msgpack-c's %zu bytes: %d, used %zu", tree, sb.size, ret,
          used);
    rt_value_free(back);
    msgpack_sbuffer_destroy(&sb);
    return ok;
}

static void test_random_trees(void)
{
    int bad = 0;
    for (size_t t = 0; t < TREES && bad < 5; t++) {
        struct rt_value *v = gen_value(0);
        bad += !check_rt_to_c(v, t);
        bad += !check_c_to_rt(v, t);
        rt_value_free(v);
    }
}

// The 32-bit count classes, too big to draw at random.
static void test_large_counts(void)
{
    struct rt_value *a = rt_new_array(), *m = rt_new_map();
    for (size_t i = 0; i < 65536 + 3; i++) {
        char key[24];
        snprintf(key, sizeof key, "%zu", i);
        rt_array_push(a, rt_new_int((int64_t)i));
        rt_map_set(m, key, rt_new_nil());
    }
    CHECK(check_rt_to_c(a, 0) && check_c_to_rt(a, 0), "array32");
    CHECK(check_rt_to_c(m, 1) && check_c_to_rt(m, 1), "map32");
    rt_value_free(a);
    rt_value_free(m);
}

// What the runtime refuses although msgpack-c reads it: ext types, 0xc1 and
// uint64 beyond int64 (none of these travels on the container wire).
static void test_refused(void)
{
    static const size_t ext_lens[] = {1, 2, 4, 8, 16, 0, 3, 300, 70000};
    for (size_t i = 0; i < sizeof ext_lens / sizeof ext_lens[0]; i++) {
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        char *body = calloc(1, ext_lens[i] + 1);
        REQUIRE_OR_EXIT(body);
        msgpack_pack_array(&pk, 1);
        msgpack_pack_ext(&pk, ext_lens[i], 7);
        msgpack_pack_ext_body(&pk, body, ext_lens[i]);
        struct rt_value *v = NULL;
        size_t used = 0;
        CHECK(rt_msgpack_unpack(sb.data, sb.size, &used, &v) == -EINVAL && !v,
              "ext of %zu bytes accepted", ext_lens[i]);
        free(body);
        msgpack_sbuffer_destroy(&sb);
    }
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_uint64(&pk, (uint64_t)INT64_MAX + 1);
    struct rt_value *v = NULL;
    size_t used = 0;
    CHECK(rt_msgpack_unpack(sb.data, sb.size, &used, &v) == -EINVAL && !v, "uint64 accepted");
    msgpack_sbuffer_destroy(&sb);
    CHECK(rt_msgpack_unpack("\xc1", 1, &used, &v) == -EINVAL && !v, "0xc1 accepted");
}

int main(void)
{
    const char *seed = getenv("PROCTOR_SEED");
    rng_state = seed && *seed ? strtoull(seed, NULL, 0) : 0x5eed0fc0ffee1234ULL;
    if (!rng_state)
        rng_state = 1;
    printf("test_rt_msgpack: seed 0x%" PRIx64 " (PROCTOR_SEED=... to change)\n", rng_state);
    test_random_trees();
    test_large_counts();
    test_refused();
    return check_finish("test_rt_msgpack");
}
