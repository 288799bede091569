// value_unpack (src/core/value.h) on hostile bytes: what the agent decodes from
// every container message and every backend frame.
// Properties: a failure leaves NIL and a reason; a success packs back to bytes
// that decode to an equal tree, and packing that tree again gives the same
// bytes (the encoding is canonical); msgpack-c itself agrees with the tree.
#include <errno.h>

#include <msgpack/unpack_define.h>

#include "fuzz_common.h"

// STR and BIN: the bytes, then the NUL the tree promises after them.
static bool same_bytes(const struct value *v, const char *p, size_t n)
{
    return v->u.s.len == n && v->u.s.ptr && (n == 0 || memcmp(v->u.s.ptr, p, n) == 0) &&
           v->u.s.ptr[n] == '\0';
}

// Deep equality between an owned tree and msgpack-c's own reading of the same
// bytes: an independent decoder as the reference.
static bool same_as_msgpack(const struct value *v, const msgpack_object *o)
{
    switch (o->type) {
    case MSGPACK_OBJECT_NIL:
        return v->type == VALUE_NIL;
    case MSGPACK_OBJECT_BOOLEAN:
        return v->type == VALUE_BOOL && v->u.b == o->via.boolean;
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        if (o->via.u64 > (uint64_t)INT64_MAX)
            return v->type == VALUE_UINT && v->u.u == o->via.u64;
        return v->type == VALUE_INT && v->u.i == (int64_t)o->via.u64;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        return v->type == VALUE_INT && v->u.i == o->via.i64;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        return v->type == VALUE_FLOAT && memcmp(&v->u.f, &o->via.f64, sizeof(double)) == 0;
    case MSGPACK_OBJECT_STR:
        return v->type == VALUE_STR && same_bytes(v, o->via.str.ptr, o->via.str.size);
    case MSGPACK_OBJECT_BIN:
        return v->type == VALUE_BIN && same_bytes(v, o->via.bin.ptr, o->via.bin.size);
    case MSGPACK_OBJECT_ARRAY:
        if (v->type != VALUE_ARRAY || v->u.a.len != o->via.array.size)
            return false;
        for (size_t i = 0; i < v->u.a.len; i++)
            if (!same_as_msgpack(&v->u.a.items[i], &o->via.array.ptr[i]))
                return false;
        return true;
    case MSGPACK_OBJECT_MAP:
        if (v->type != VALUE_MAP || v->u.m.len != o->via.map.size)
            return false;
        for (size_t i = 0; i < v->u.m.len; i++)
            if (!same_as_msgpack(&v->u.m.items[i].key, &o->via.map.ptr[i].key) ||
                !same_as_msgpack(&v->u.m.items[i].val, &o->via.map.ptr[i].val))
                return false;
        return true;
    default:
        return false; // ext: value_unpack must have refused it
    }
}

static size_t depth(const struct value *v)
{
    size_t d = 0;
    if (v->type == VALUE_ARRAY)
        for (size_t i = 0; i < v->u.a.len; i++) {
            size_t k = depth(&v->u.a.items[i]);
            d = k > d ? k : d;
        }
    if (v->type == VALUE_MAP)
        for (size_t i = 0; i < v->u.m.len; i++) {
            size_t k = depth(&v->u.m.items[i].key), l = depth(&v->u.m.items[i].val);
            d = k > d ? k : d;
            d = l > d ? l : d;
        }
    return d + 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256] = "";
    struct value v;
    int ret = value_unpack((const char *)data, size, &v, err, sizeof err);
    if (ret) {
        FUZZ_CHECK(ret == -EBADMSG || ret == -ENOMEM, "unexpected error %d", ret);
        FUZZ_CHECK(v.type == VALUE_NIL, "failed decode left a %s", value_type_name(v.type));
        FUZZ_CHECK(err[0] != '\0', "failed decode (%d) without a reason", ret);
        return 0;
    }
    // Well-formed input within the decoder's caps: declared counts fit the
    // bytes, so the reference decoder can read it too, and must agree.
    msgpack_unpacked ref;
    msgpack_unpacked_init(&ref);
    size_t off = 0;
    msgpack_unpack_return r = msgpack_unpack_next(&ref, (const char *)data, size, &off);
    // msgpack-c stops at MSGPACK_EMBED_STACK_SIZE (32) levels; the agent allows more.
    if (depth(&v) < MSGPACK_EMBED_STACK_SIZE) {
        FUZZ_CHECK(r == MSGPACK_UNPACK_SUCCESS && off == size, "msgpack-c disagrees (%d, %zu/%zu)",
                   (int)r, off, size);
        FUZZ_CHECK(same_as_msgpack(&v, &ref.data), "tree differs from msgpack-c's reading");
    }
    msgpack_unpacked_destroy(&ref);

    msgpack_sbuffer once, twice;
    fuzz_pack(&v, &once);
    struct value w;
    ret = value_unpack(once.data, once.size, &w, err, sizeof err);
    FUZZ_CHECK(ret == 0, "re-encoded tree does not decode: %s", err);
    FUZZ_CHECK(fuzz_value_equal(&v, &w), "decode(encode(decode(x))) != decode(x)");
    fuzz_pack(&w, &twice);
    FUZZ_CHECK(once.size == twice.size && memcmp(once.data, twice.data, once.size) == 0,
               "encoding is not canonical (%zu vs %zu bytes)", once.size, twice.size);
    msgpack_sbuffer_destroy(&once);
    msgpack_sbuffer_destroy(&twice);
    value_deinit(&w);
    value_deinit(&v);
    return 0;
}
