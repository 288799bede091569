// The container runtime's JSON codec (src/runtime/rt_value.h): it reads the
// job's input file and the feedback file, both writable by the task's code.
// Properties: a decoded document encodes (Python json.dumps style, ASCII
// only) to text that decodes to an equal tree, and encoding that again gives
// the same text; the tree also survives a msgpack round trip (what the runner
// sends the agent). Strings are kept as the bytes the file held, and the
// encoder writes invalid UTF-8 as U+FFFD (Python's "replace"): for a document
// with such strings the round trip holds from the first re-encoding on, and
// the text is canonical from the second.
#include <errno.h>
#include <stdint.h>

#include "rt_fuzz_common.h"

// The encoder's own reading of a string: what utf8 "replace" would keep.
static bool text_valid(const char *p, size_t n)
{
    struct rt_value *s = rt_new_str_utf8(p, n);
    bool same = s && s->u.str.n == n && memcmp(s->u.str.p, p, n) == 0;
    rt_value_free(s);
    return same;
}

static bool tree_valid(const struct rt_value *v)
{
    switch (v->type) {
    case RT_STR:
        return text_valid(v->u.str.p, v->u.str.n);
    case RT_ARRAY:
        for (size_t i = 0; i < v->u.arr.n; i++)
            if (!tree_valid(v->u.arr.items[i]))
                return false;
        return true;
    case RT_MAP:
        for (size_t i = 0; i < v->u.map.n; i++)
            if (!text_valid(v->u.map.kv[i].key, strlen(v->u.map.kv[i].key)) ||
                !tree_valid(v->u.map.kv[i].val))
                return false;
        return true;
    default:
        return true;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct rt_value *v = NULL;
    int ret = rt_json_decode((const char *)data, size, &v);
    if (ret) {
        FUZZ_CHECK(ret == -EINVAL || ret == -ENOMEM, "error %d", ret);
        return 0;
    }
    FUZZ_CHECK(v != NULL, "decode returned no tree");
    struct buf once = {0}, twice = {0};
    ret = rt_json_encode(v, &once);
    FUZZ_CHECK(ret == 0, "a decoded document does not encode (%d)", ret);
    for (size_t i = 0; i < once.len; i++)
        FUZZ_CHECK((unsigned char)once.data[i] < 0x80, "non-ASCII byte at %zu", i);
    struct rt_value *w = NULL;
    ret = rt_json_decode(once.data, once.len, &w);
    FUZZ_CHECK(ret == 0, "re-encoded document refused (%d): %.200s", ret, once.data);
    if (tree_valid(v))
        FUZZ_CHECK(rt_value_identical(v, w), "decode(encode(decode(x))) != decode(x): %.200s",
                   once.data);
    FUZZ_CHECK(tree_valid(w), "re-decoded document still has invalid UTF-8");
    FUZZ_CHECK(rt_json_encode(w, &twice) == 0, "encode failed");
    if (tree_valid(v)) {
        FUZZ_CHECK(once.len == twice.len && memcmp(once.data, twice.data, once.len) == 0,
                   "encoding not canonical");
    } else {
        // Two keys that differ only in invalid bytes are written alike, and
        // re-reading keeps the last: canonical from the second encoding on.
        struct rt_value *x = NULL;
        struct buf thrice = {0};
        FUZZ_CHECK(rt_json_decode(twice.data, twice.len, &x) == 0 &&
                       rt_json_encode(x, &thrice) == 0,
                   "second re-encoding refused");
        FUZZ_CHECK(thrice.len == twice.len && memcmp(thrice.data, twice.data, twice.len) == 0,
                   "encoding not canonical after normalisation");
        rt_value_free(x);
        buf_deinit(&thrice);
    }

    struct buf mp = {0};
    FUZZ_CHECK(rt_msgpack_pack(v, &mp) == 0, "msgpack pack failed");
    size_t used = 0;
    struct rt_value *m = NULL;
    ret = rt_msgpack_unpack(mp.data, mp.len, &used, &m);
    FUZZ_CHECK(ret == 0 && used == mp.len, "msgpack of a JSON tree: %d", ret);
    FUZZ_CHECK(rt_value_identical(v, m), "msgpack round trip differs");
    rt_value_free(m);
    buf_deinit(&mp);
    buf_deinit(&once);
    buf_deinit(&twice);
    rt_value_free(w);
    rt_value_free(v);
    return 0;
}
