// Unit tests for the runtime's own codecs: msgpack (the agent wire, checked
// against fixed encodings and fed one byte at a time through the framer) and
// JSON (the files shared with INGInious's Python API, checked against
// strings produced by Python's json.dumps).

#include "rt_common.h"
#include "rt_value.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #cond);               \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            failures++;                                                                            \
            return;                                                                                \
        }                                                                                          \
    } while (0)

static char *hex(const struct rt_buf *b)
{
    static char out[4096];
    out[0] = '\0';
    for (size_t i = 0; i < b->len && i < 2000; i++)
        snprintf(out + 2 * i, 3, "%02x", (unsigned char)b->data[i]);
    return out;
}

static struct rt_value *sample_tree(void)
{
    static char big[70000];
    memset(big, 'x', sizeof(big));
    struct rt_value *m = rt_new_map();
    rt_map_set(m, "type", rt_new_str("start"));
    rt_map_set(m, "nil", rt_new_nil());
    rt_map_set(m, "t", rt_new_bool(true));
    rt_map_set(m, "f", rt_new_bool(false));
    struct rt_value *ints = rt_new_array();
    const int64_t iv[] = {0,      127,    128,        255,        256,       65535,
                          65536,  -1,     -32,        -33,        -128,      -129,
                          -32768, -32769, 4294967295, 4294967296, INT64_MAX, INT64_MIN};
    for (size_t i = 0; i < sizeof(iv) / sizeof(iv[0]); i++)
        rt_array_push(ints, rt_new_int(iv[i]));
    rt_map_set(m, "ints", ints);
    rt_map_set(m, "grade", rt_new_float(66.67));
    const size_t lens[] = {0, 31, 32, 255, 256, 65535, 65536};
    struct rt_value *strs = rt_new_array();
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        rt_array_push(strs, rt_new_strn(big, lens[i]));
        rt_array_push(strs, rt_new_bin(big, lens[i]));
    }
    rt_map_set(m, "strs", strs);
    struct rt_value *nested = rt_new_map();
    for (int i = 0; i < 20; i++) {
        char k[8];
        snprintf(k, sizeof(k), "k%d", i);
        rt_map_set(nested, k, rt_new_int(i));
    }
    rt_map_set(m, "nested", nested);
    return m;
}

static void test_msgpack_fixed_encodings(void)
{
    struct {
        struct rt_value *v;
        const char *hex;
    } cases[] = {
        {rt_new_int(128), "cc80"},
        {rt_new_int(-33), "d0df"},
        {rt_new_int(-1), "ff"},
        {rt_new_int(65536), "ce00010000"},
        {rt_new_float(1.5), "cb3ff8000000000000"},
        {rt_new_str(""), "a0"},
        {rt_new_bin("ab", 2), "c4026162"},
        {rt_new_nil(), "c0"},
        {rt_new_bool(true), "c3"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct rt_buf b = {0};
        CHECK(rt_msgpack_pack(cases[i].v, &b) == 0, "pack %zu", i);
        CHECK(!strcmp(hex(&b), cases[i].hex), "case %zu: got %s want %s", i, hex(&b), cases[i].hex);
        rt_buf_deinit(&b);
        rt_value_free(cases[i].v);
    }
    struct rt_value *m = rt_new_map();
    rt_map_set(m, "type", rt_new_str("start"));
    struct rt_buf b = {0};
    CHECK(rt_msgpack_pack(m, &b) == 0, "pack map");
    CHECK(!strcmp(hex(&b), "81a474797065a57374617274"), "map: %s", hex(&b));
    rt_buf_deinit(&b);
    rt_value_free(m);
}

static void test_msgpack_round_trip_and_truncation(void)
{
    struct rt_value *m = sample_tree(), *back = NULL;
    struct rt_buf b = {0};
    size_t used = 0;
    CHECK(rt_msgpack_pack(m, &b) == 0, "pack");
    CHECK(rt_msgpack_unpack(b.data, b.len, &used, &back) == 0, "unpack");
    CHECK(used == b.len, "used %zu of %zu", used, b.len);
    CHECK(rt_value_equal(m, back), "round trip differs");
    CHECK(rt_map_get(back, "grade")->type == RT_FLOAT, "grade stays a float");
    CHECK(rt_map_get(back, "strs")->u.arr.items[1]->type == RT_BIN, "bin stays bin");
    rt_value_free(back);
    // Every strict prefix is "need more", never an error or a partial value.
    for (size_t cut = 0; cut < b.len; cut += cut < 300 ? 1 : 997) {
        struct rt_value *v = NULL;
        int ret = rt_msgpack_unpack(b.data, cut, &used, &v);
        CHECK(ret == -EAGAIN && !v, "prefix %zu gave %d", cut, ret);
    }
    rt_buf_deinit(&b);
    rt_value_free(m);
}

static void test_msgpack_rejects(void)
{
    const char *bad[] = {"\xc1", "\xd4\x01\x00", "\xc7\x01\x01\x00", "\x81\x01\x02",
                         "\xcf\xff\xff\xff\xff\xff\xff\xff\xff"};
    const size_t len[] = {1, 3, 4, 3, 9};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct rt_value *v = NULL;
        size_t used;
        CHECK(rt_msgpack_unpack(bad[i], len[i], &used, &v) == -EINVAL, "bad input %zu accepted", i);
    }
    // Nesting beyond the depth limit is refused rather than recursing on.
    char deep[200];
    memset(deep, 0x91, sizeof(deep));
    struct rt_value *v = NULL;
    size_t used;
    CHECK(rt_msgpack_unpack(deep, sizeof(deep), &used, &v) == -EINVAL, "deep nesting accepted");
}

static void frame(struct rt_buf *out, const struct rt_value *v)
{
    struct rt_buf body = {0};
    rt_msgpack_pack(v, &body);
    unsigned char h[4] = {(unsigned char)(body.len >> 24), (unsigned char)(body.len >> 16),
                          (unsigned char)(body.len >> 8), (unsigned char)body.len};
    rt_buf_add(out, h, 4);
    rt_buf_add(out, body.data, body.len);
    rt_buf_deinit(&body);
}

static void test_framer_byte_at_a_time(void)
{
    struct rt_value *msgs[3] = {sample_tree(), rt_new_map(), rt_new_map()};
    rt_map_set(msgs[1], "type", rt_new_str("run_student_started"));
    rt_map_set(msgs[2], "type", rt_new_str("run_student_retval"));
    rt_map_set(msgs[2], "retval", rt_new_int(253));
    struct rt_buf stream = {0};
    for (int i = 0; i < 3; i++)
        frame(&stream, msgs[i]);
    // Fed one byte at a time, then in uneven chunks: same three frames.
    const size_t steps[] = {1, 7, 4096};
    for (size_t s = 0; s < 3; s++) {
        struct rt_framer fr = {0};
        int seen = 0;
        for (size_t off = 0; off < stream.len; off += steps[s]) {
            size_t n = stream.len - off < steps[s] ? stream.len - off : steps[s];
            CHECK(rt_framer_feed(&fr, stream.data + off, n) == 0, "feed");
            struct rt_value *v = NULL;
            int got;
            while ((got = rt_framer_next(&fr, &v)) == 1) {
                CHECK(seen < 3 && rt_value_equal(v, msgs[seen]), "frame %d differs", seen);
                seen++;
                rt_value_free(v);
            }
            CHECK(got == 0, "framer error %d at %zu", got, off);
        }
        CHECK(seen == 3, "step %zu: %d frames", steps[s], seen);
        rt_framer_deinit(&fr);
    }
    rt_buf_deinit(&stream);
    for (int i = 0; i < 3; i++)
        rt_value_free(msgs[i]);
}

static void test_framer_errors(void)
{
    struct rt_framer fr = {0};
    struct rt_value *v = NULL;
    // A zero-length body is not a msgpack object.
    rt_framer_feed(&fr, "\0\0\0\0", 4);
    CHECK(rt_framer_next(&fr, &v) == -EINVAL, "empty body accepted");
    rt_framer_deinit(&fr);
    // Trailing bytes inside a frame: two objects in one frame.
    rt_framer_feed(&fr, "\0\0\0\2\xc0\xc0", 6);
    CHECK(rt_framer_next(&fr, &v) == -EINVAL, "two objects in one frame accepted");
    rt_framer_deinit(&fr);
    // A length over the cap is refused before any allocation.
    rt_framer_feed(&fr, "\x7f\xff\xff\xff", 4);
    CHECK(rt_framer_next(&fr, &v) == -EMSGSIZE, "huge frame accepted");
    rt_framer_deinit(&fr);
    // A header alone is just "need more".
    rt_framer_feed(&fr, "\0\0\0\1", 4);
    CHECK(rt_framer_next(&fr, &v) == 0, "header alone");
    rt_framer_deinit(&fr);
}

static void test_json_python_style(void)
{
    struct rt_value *m = rt_new_map();
    rt_map_set(m, "grade", rt_new_float(50.0));
    rt_map_set(m, "text", rt_new_str("a\"b\\\n\xc3\xa9\xf0\x9f\x98\x80\x01\x7f"));
    struct rt_value *n = rt_new_array();
    const double fl[] = {0.1, 1e-05, 1e16, 1e15, 66.67, 3.0, -0.5, 123456789.125, 1.5e-7};
    rt_array_push(n, rt_new_int(1));
    rt_array_push(n, rt_new_int(-2));
    for (size_t i = 0; i < sizeof(fl) / sizeof(fl[0]); i++)
        rt_array_push(n, rt_new_float(fl[i]));
    rt_array_push(n, rt_new_bool(true));
    rt_array_push(n, rt_new_bool(false));
    rt_array_push(n, rt_new_nil());
    rt_map_set(m, "n", n);
    // Produced by Python 3: json.dumps() of the same dict.
    const char *want = "{\"grade\": 50.0, \"text\": \"a\\\"b\\\\\\n\\u00e9\\ud83d\\ude00\\u0001"
                       "\\u007f\", \"n\": [1, -2, 0.1, 1e-05, 1e+16, 1000000000000000.0, 66.67, "
                       "3.0, -0.5, 123456789.125, 1.5e-07, true, false, null]}";
    struct rt_buf b = {0};
    CHECK(rt_json_encode(m, &b) == 0, "encode");
    CHECK(!strcmp(b.data, want), "got  %s\nwant %s", b.data, want);
    struct rt_value *back = NULL;
    CHECK(rt_json_decode(b.data, b.len, &back) == 0, "decode own output");
    CHECK(rt_value_equal(m, back), "JSON round trip differs");
    CHECK(rt_map_get(back, "grade")->type == RT_FLOAT, "50.0 decodes as a float");
    CHECK(rt_map_get(back, "n")->u.arr.items[0]->type == RT_INT, "1 decodes as an int");
    rt_value_free(back);
    rt_buf_deinit(&b);
    // Binary values have no JSON form.
    rt_map_set(m, "bin", rt_new_bin("x", 1));
    CHECK(rt_json_encode(m, &b) == -EINVAL, "bin encoded");
    rt_buf_deinit(&b);
    rt_value_free(m);
}

static void test_json_decode_cases(void)
{
    struct rt_value *v = NULL;
    const char *ok = " { \"a\" : [ 1 , 2.5e3 , \"\\u00e9\\/\\t\" , {} , [] ] , \"a\": \"last\" } ";
    CHECK(rt_json_decode(ok, strlen(ok), &v) == 0, "valid document");
    CHECK(v->u.map.n == 1 && !strcmp(rt_map_str(v, "a"), "last"), "duplicate key: last wins");
    rt_value_free(v);
    const char *esc = "[\"\\u00e9\\ud83d\\ude00\", NaN, -Infinity, 12345678901234567890]";
    CHECK(rt_json_decode(esc, strlen(esc), &v) == 0, "escapes and Python extensions");
    CHECK(!strcmp(v->u.arr.items[0]->u.str.p, "\xc3\xa9\xf0\x9f\x98\x80"), "surrogate pair");
    CHECK(isnan(v->u.arr.items[1]->u.f) && isinf(v->u.arr.items[2]->u.f), "NaN/-Infinity");
    CHECK(v->u.arr.items[3]->type == RT_FLOAT, "out-of-range int degrades to float");
    rt_value_free(v);
    const char *bad[] = {"",      "{",   "[1,]",      "{\"a\":1,}", "{'a':1}", "\"raw\ncontrol\"",
                         "[1] x", "tru", "{\"a\" 1}", "\"\\q\""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        v = NULL;
        CHECK(rt_json_decode(bad[i], strlen(bad[i]), &v) == -EINVAL && !v, "accepted: %s", bad[i]);
    }
}

static void test_utf8_lossy(void)
{
    struct rt_value *v = rt_new_str_utf8("ok\xff\xc3\xa9\xe2\x82", 7);
    CHECK(!strcmp(v->u.str.p, "ok\xef\xbf\xbd\xc3\xa9\xef\xbf\xbd\xef\xbf\xbd"), "got %s",
          v->u.str.p);
    rt_value_free(v);
}

int main(void)
{
    test_msgpack_fixed_encodings();
    test_msgpack_round_trip_and_truncation();
    test_msgpack_rejects();
    test_framer_byte_at_a_time();
    test_framer_errors();
    test_json_python_style();
    test_json_decode_cases();
    test_utf8_lossy();
    if (failures)
        fprintf(stderr, "%d check(s) failed\n", failures);
    else
        printf("test_rt_value: all checks passed\n");
    return failures ? 1 : 0;
}
