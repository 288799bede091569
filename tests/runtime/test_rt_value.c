// Unit tests for the runtime's own codecs: msgpack (the agent wire, checked
// against fixed encodings and fed one byte at a time through the framer) and
// JSON (the files shared with INGInious's Python API, checked against
// strings produced by Python's json.dumps).

#include "rt_common.h"
#include "rt_value.h"
#include "check.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *hex(const struct buf *b)
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
        struct buf b = {0};
        REQUIRE(rt_msgpack_pack(cases[i].v, &b) == 0, "pack %zu", i);
        REQUIRE(!strcmp(hex(&b), cases[i].hex), "case %zu: got %s want %s", i, hex(&b),
                cases[i].hex);
        buf_deinit(&b);
        rt_value_free(cases[i].v);
    }
    struct rt_value *m = rt_new_map();
    rt_map_set(m, "type", rt_new_str("start"));
    struct buf b = {0};
    REQUIRE(rt_msgpack_pack(m, &b) == 0, "pack map");
    REQUIRE(!strcmp(hex(&b), "81a474797065a57374617274"), "map: %s", hex(&b));
    buf_deinit(&b);
    rt_value_free(m);
}

static void test_msgpack_round_trip_and_truncation(void)
{
    struct rt_value *m = sample_tree(), *back = NULL;
    struct buf b = {0};
    size_t used = 0;
    REQUIRE(rt_msgpack_pack(m, &b) == 0, "pack");
    REQUIRE(rt_msgpack_unpack(b.data, b.len, &used, &back) == 0, "unpack");
    REQUIRE(used == b.len, "used %zu of %zu", used, b.len);
    REQUIRE(rt_value_equal(m, back), "round trip differs");
    REQUIRE(rt_map_get(back, "grade")->type == RT_FLOAT, "grade stays a float");
    REQUIRE(rt_map_get(back, "strs")->u.arr.items[1]->type == RT_BIN, "bin stays bin");
    rt_value_free(back);
    // Every strict prefix is "need more", never an error or a partial value.
    for (size_t cut = 0; cut < b.len; cut += cut < 300 ? 1 : 997) {
        struct rt_value *v = NULL;
        int ret = rt_msgpack_unpack(b.data, cut, &used, &v);
        REQUIRE(ret == -EAGAIN && !v, "prefix %zu gave %d", cut, ret);
    }
    buf_deinit(&b);
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
        REQUIRE(rt_msgpack_unpack(bad[i], len[i], &used, &v) == -EINVAL, "bad input %zu accepted",
                i);
    }
    // Nesting beyond the depth limit is refused rather than recursing on.
    char deep[200];
    memset(deep, 0x91, sizeof(deep));
    struct rt_value *v = NULL;
    size_t used;
    REQUIRE(rt_msgpack_unpack(deep, sizeof(deep), &used, &v) == -EINVAL, "deep nesting accepted");
}

static void frame(struct buf *out, const struct rt_value *v)
{
    struct buf body = {0};
    rt_msgpack_pack(v, &body);
    unsigned char h[4] = {(unsigned char)(body.len >> 24), (unsigned char)(body.len >> 16),
                          (unsigned char)(body.len >> 8), (unsigned char)body.len};
    buf_add(out, h, 4);
    buf_add(out, body.data, body.len);
    buf_deinit(&body);
}

static void test_framer_byte_at_a_time(void)
{
    struct rt_value *msgs[3] = {sample_tree(), rt_new_map(), rt_new_map()};
    rt_map_set(msgs[1], "type", rt_new_str("run_student_started"));
    rt_map_set(msgs[2], "type", rt_new_str("run_student_retval"));
    rt_map_set(msgs[2], "retval", rt_new_int(253));
    struct buf stream = {0};
    for (int i = 0; i < 3; i++)
        frame(&stream, msgs[i]);
    // Fed one byte at a time, then in uneven chunks: same three frames.
    const size_t steps[] = {1, 7, 4096};
    for (size_t s = 0; s < 3; s++) {
        struct msg_framer fr;
        msg_framer_init(&fr, RT_FRAME_MAX);
        int seen = 0;
        for (size_t off = 0; off < stream.len; off += steps[s]) {
            size_t n = stream.len - off < steps[s] ? stream.len - off : steps[s];
            REQUIRE(msg_framer_feed(&fr, stream.data + off, n) == 0, "feed");
            struct rt_value *v = NULL;
            int got;
            while ((got = rt_frame_next(&fr, &v)) == 1) {
                REQUIRE(seen < 3 && rt_value_equal(v, msgs[seen]), "frame %d differs", seen);
                seen++;
                rt_value_free(v);
            }
            REQUIRE(got == 0, "framer error %d at %zu", got, off);
        }
        REQUIRE(seen == 3, "step %zu: %d frames", steps[s], seen);
        msg_framer_deinit(&fr);
    }
    buf_deinit(&stream);
    for (int i = 0; i < 3; i++)
        rt_value_free(msgs[i]);
}

// The boundary scan agrees with the decoder: on every tag followed by empty
// strings (0xa0, which also makes the lengths and counts of the wider types
// 160 or 41120), and on the sample tree cut at every byte, resumed step by
// step and with trailing bytes after it.
static void test_msgpack_scan(void)
{
    for (int t = 0; t < 256; t++) {
        unsigned char b[1024];
        memset(b, 0xa0, sizeof(b));
        b[0] = (unsigned char)t;
        struct rt_msgpack_scan sc = RT_MSGPACK_SCAN_INIT;
        struct rt_value *v = NULL;
        size_t used = 0;
        int dec = rt_msgpack_unpack(b, sizeof(b), &used, &v);
        int scn = rt_msgpack_scan(b, sizeof(b), &sc);
        rt_value_free(v);
        // The decoder also refuses values (non-string keys, uint64 past
        // int64) that the scan, which only finds the end, lets through.
        bool agree = dec == 0 ? scn == 0 && sc.pos == used : dec == -EINVAL || scn == dec;
        bool ext = t == 0xc1 || (t >= 0xc7 && t <= 0xc9) || (t >= 0xd4 && t <= 0xd8);
        REQUIRE(agree && (scn == -EINVAL) == ext, "tag %02x: decoder %d/%zu, scan %d/%zu", t, dec,
                used, scn, sc.pos);
    }
    struct rt_value *m = sample_tree();
    struct buf b = {0};
    REQUIRE(rt_msgpack_pack(m, &b) == 0, "pack");
    rt_value_free(m);
    size_t n = b.len;
    struct rt_msgpack_scan resumed = RT_MSGPACK_SCAN_INIT;
    for (size_t k = 0; k < n; k++) {
        struct rt_msgpack_scan fresh = RT_MSGPACK_SCAN_INIT;
        REQUIRE(rt_msgpack_scan(b.data, k, &fresh) == -EAGAIN, "complete at %zu of %zu", k, n);
        REQUIRE(rt_msgpack_scan(b.data, k, &resumed) == -EAGAIN, "resumed: complete at %zu", k);
    }
    REQUIRE(rt_msgpack_scan(b.data, n, &resumed) == 0 && resumed.pos == n,
            "resumed: end %zu of %zu", resumed.pos, n);
    rt_buf_puts(&b, "015---");
    struct rt_msgpack_scan whole = RT_MSGPACK_SCAN_INIT;
    REQUIRE(rt_msgpack_scan(b.data, b.len, &whole) == 0 && whole.pos == n, "end %zu of %zu",
            whole.pos, n);
    buf_deinit(&b);
}

// One frame into a new framer with the given cap; rt_frame_next's result.
static int frame_once(const char *bytes, size_t n, size_t max)
{
    struct msg_framer fr;
    struct rt_value *v = NULL;
    msg_framer_init(&fr, max);
    msg_framer_feed(&fr, bytes, n);
    int got = rt_frame_next(&fr, &v);
    rt_value_free(v);
    msg_framer_deinit(&fr);
    return got;
}

static void test_framer_errors(void)
{
    // A zero-length body is not a msgpack object.
    REQUIRE(frame_once("\0\0\0\0", 4, RT_FRAME_MAX) == -EINVAL, "empty body accepted");
    // Trailing bytes inside a frame: two objects in one frame.
    REQUIRE(frame_once("\0\0\0\2\xc0\xc0", 6, RT_FRAME_MAX) == -EINVAL,
            "two objects in one frame accepted");
    // A length over the cap is refused before any allocation.
    REQUIRE(frame_once("\x7f\xff\xff\xff", 4, RT_FRAME_MAX) == -EMSGSIZE, "huge frame accepted");
    // A header alone is just "need more".
    REQUIRE(frame_once("\0\0\0\1", 4, RT_FRAME_MAX) == 0, "header alone");
    // A framer's own cap: up to it is "need more", one byte over is refused.
    REQUIRE(frame_once("\0\0\0\x10", 4, 16) == 0, "a body of exactly the cap");
    REQUIRE(frame_once("\0\0\0\x11", 4, 16) == -EMSGSIZE, "a body over the cap");
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
    struct buf b = {0};
    REQUIRE(rt_json_encode(m, &b) == 0, "encode");
    REQUIRE(!strcmp(b.data, want), "got  %s\nwant %s", b.data, want);
    struct rt_value *back = NULL;
    REQUIRE(rt_json_decode(b.data, b.len, &back) == 0, "decode own output");
    REQUIRE(rt_value_equal(m, back), "JSON round trip differs");
    REQUIRE(rt_map_get(back, "grade")->type == RT_FLOAT, "50.0 decodes as a float");
    REQUIRE(rt_map_get(back, "n")->u.arr.items[0]->type == RT_INT, "1 decodes as an int");
    rt_value_free(back);
    buf_deinit(&b);
    // Binary values have no JSON form.
    rt_map_set(m, "bin", rt_new_bin("x", 1));
    REQUIRE(rt_json_encode(m, &b) == -EINVAL, "bin encoded");
    buf_deinit(&b);
    rt_value_free(m);
}

static void test_json_decode_cases(void)
{
    struct rt_value *v = NULL;
    const char *ok = " { \"a\" : [ 1 , 2.5e3 , \"\\u00e9\\/\\t\" , {} , [] ] , \"a\": \"last\" } ";
    REQUIRE(rt_json_decode(ok, strlen(ok), &v) == 0, "valid document");
    REQUIRE(v->u.map.n == 1 && !strcmp(rt_map_str(v, "a"), "last"), "duplicate key: last wins");
    rt_value_free(v);
    const char *esc = "[\"\\u00e9\\ud83d\\ude00\", NaN, -Infinity, 12345678901234567890]";
    REQUIRE(rt_json_decode(esc, strlen(esc), &v) == 0, "escapes and Python extensions");
    REQUIRE(!strcmp(v->u.arr.items[0]->u.str.p, "\xc3\xa9\xf0\x9f\x98\x80"), "surrogate pair");
    REQUIRE(isnan(v->u.arr.items[1]->u.f) && isinf(v->u.arr.items[2]->u.f), "NaN/-Infinity");
    REQUIRE(v->u.arr.items[3]->type == RT_FLOAT, "out-of-range int degrades to float");
    rt_value_free(v);
    const char *bad[] = {"",      "{",   "[1,]",      "{\"a\":1,}", "{'a':1}", "\"raw\ncontrol\"",
                         "[1] x", "tru", "{\"a\" 1}", "\"\\q\""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        v = NULL;
        REQUIRE(rt_json_decode(bad[i], strlen(bad[i]), &v) == -EINVAL && !v, "accepted: %s",
                bad[i]);
    }
}

static void test_utf8_lossy(void)
{
    struct rt_value *v = rt_new_str_utf8("ok\xff\xc3\xa9\xe2\x82", 7);
    REQUIRE(!strcmp(v->u.str.p, "ok\xef\xbf\xbd\xc3\xa9\xef\xbf\xbd"), "got %s", v->u.str.p);
    rt_value_free(v);
    // One U+FFFD per maximal subpart, as CPython's decode("utf-8", "replace").
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"\xef\xbf"
         "q",
         "\xef\xbf\xbd"
         "q"},
        {"\xe0\x80", "\xef\xbf\xbd\xef\xbf\xbd"},
        {"\xf0\x9f\x98", "\xef\xbf\xbd"},
        {"\xf0\x9f\x98"
         "A",
         "\xef\xbf\xbd"
         "A"},
        {"\xc0\xaf", "\xef\xbf\xbd\xef\xbf\xbd"},
        {"\xed\xa0\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
        {"\xf4\x90\x80\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
        {"\xff"
         "A",
         "\xef\xbf\xbd"
         "A"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        v = rt_new_str_utf8(cases[i].in, strlen(cases[i].in));
        REQUIRE(v && !strcmp(v->u.str.p, cases[i].out), "case %zu: got %s", i, v ? v->u.str.p : "");
        rt_value_free(v);
    }
}

#define BIG_N 200000

static void big_key(char *dst, size_t size, size_t i)
{
    snprintf(dst, size, "key-%zu", i);
}

// Insertion order is a permutation of 0..BIG_N-1, so neither sorted nor
// reversed keys are what the map sees.
static size_t big_order(size_t i)
{
    return (i * 7919) % BIG_N;
}

// Builds the map: every key set once in big_order, then every third key (by
// insertion rank) set again to the string "new".
static struct rt_value *big_map(void)
{
    char k[32];
    struct rt_value *m = rt_new_map();
    for (size_t i = 0; i < BIG_N; i++) {
        big_key(k, sizeof(k), big_order(i));
        rt_map_set(m, k, rt_new_int((int64_t)big_order(i)));
    }
    for (size_t i = 0; i < BIG_N; i += 3) {
        big_key(k, sizeof(k), big_order(i));
        rt_map_set(m, k, rt_new_str("new"));
    }
    return m;
}

// Entry i holds the i-th key first inserted, with its replaced value.
static bool big_map_ok(const struct rt_value *m, size_t *bad_at)
{
    char k[32];
    *bad_at = m->u.map.n;
    if (m->type != RT_MAP || m->u.map.n != BIG_N)
        return false;
    for (size_t i = 0; i < BIG_N; i++) {
        const struct rt_value *v = m->u.map.kv[i].val;
        big_key(k, sizeof(k), big_order(i));
        bool ok = !strcmp(m->u.map.kv[i].key, k) && rt_map_get(m, k) == v &&
                  (i % 3 ? v->type == RT_INT && v->u.i == (int64_t)big_order(i)
                         : v->type == RT_STR && !strcmp(v->u.str.p, "new"));
        if (!ok) {
            *bad_at = i;
            return false;
        }
    }
    return true;
}

static void test_map_large(void)
{
    char k[32];
    size_t bad;
    struct rt_value *m = big_map();
    REQUIRE(big_map_ok(m, &bad), "entry %zu of %zu is wrong", bad, m->u.map.n);
    for (size_t i = BIG_N; i < BIG_N + 1000; i++) {
        big_key(k, sizeof(k), i);
        REQUIRE(!rt_map_get(m, k), "absent key %s found", k);
    }
    REQUIRE(!rt_map_get(m, "") && !rt_map_get(m, "key-"), "absent short keys found");
    // Deep copies and equality see the same entries.
    struct rt_value *c = rt_value_dup(m);
    REQUIRE(big_map_ok(c, &bad), "copy: entry %zu is wrong", bad);
    REQUIRE(rt_value_equal(m, c) && rt_value_equal(c, m), "copy differs");
    big_key(k, sizeof(k), 12345);
    rt_map_set(c, k, rt_new_nil());
    REQUIRE(!rt_value_equal(m, c), "changed copy still equal");
    rt_value_free(c);
    // rt_map_add does not replace: a duplicate is appended but lookups keep
    // finding the first entry, in large and small maps alike.
    big_key(k, sizeof(k), big_order(1));
    rt_map_add(m, rt_xstrdup(k), rt_new_str("shadow"));
    REQUIRE(m->u.map.n == BIG_N + 1 && rt_map_get(m, k) == m->u.map.kv[1].val,
            "large map: a duplicate from rt_map_add hides the first entry");
    struct rt_value *small = rt_new_map();
    rt_map_set(small, "a", rt_new_int(1));
    rt_map_add(small, rt_xstrdup("a"), rt_new_int(2));
    REQUIRE(small->u.map.n == 2 && rt_map_get(small, "a")->u.i == 1, "small map: first wins");
    rt_value_free(small);
    rt_value_free(m);
}

// Codecs over the big map: order kept both ways, and a duplicate key in the
// input replaces the value in place (Python's dict: the last value wins, the
// first position stays).
static void test_map_large_codecs(void)
{
    char k[32];
    size_t bad;
    struct rt_value *m = big_map(), *back = NULL;
    struct buf json = {0}, mp = {0};
    REQUIRE(rt_json_encode(m, &json) == 0, "JSON encode");
    REQUIRE(rt_json_decode(json.data, json.len, &back) == 0, "JSON decode");
    REQUIRE(big_map_ok(back, &bad), "JSON round trip: entry %zu is wrong", bad);
    rt_value_free(back);
    back = NULL;
    // The same text with every third key set to "new" once more at the end,
    // and every other key set again to its own value.
    json.len--; // the closing brace
    for (size_t i = 0; i < BIG_N; i += 2) {
        char extra[64];
        big_key(k, sizeof(k), big_order(i));
        if (i % 3)
            snprintf(extra, sizeof(extra), ", \"%s\": %zu", k, big_order(i));
        else
            snprintf(extra, sizeof(extra), ", \"%s\": \"new\"", k);
        rt_buf_puts(&json, extra);
    }
    rt_buf_puts(&json, "}");
    REQUIRE(rt_json_decode(json.data, json.len, &back) == 0, "JSON decode with duplicates");
    REQUIRE(big_map_ok(back, &bad), "JSON duplicates: entry %zu is wrong", bad);
    rt_value_free(back);
    back = NULL;

    size_t used = 0;
    REQUIRE(rt_msgpack_pack(m, &mp) == 0, "msgpack pack");
    REQUIRE(rt_msgpack_unpack(mp.data, mp.len, &used, &back) == 0 && used == mp.len,
            "msgpack unpack");
    REQUIRE(big_map_ok(back, &bad), "msgpack round trip: entry %zu is wrong", bad);
    rt_value_free(back);
    back = NULL;
    // map32 header (0xdf + count) with one more entry: key 0 again, "new".
    REQUIRE((unsigned char)mp.data[0] == 0xdf, "map32 header expected");
    uint32_t count = BIG_N + 1;
    for (int i = 0; i < 4; i++)
        mp.data[1 + i] = (char)(count >> (24 - 8 * i));
    struct rt_value *key = rt_new_str(m->u.map.kv[0].key), *val = rt_new_str("new");
    REQUIRE(rt_msgpack_pack(key, &mp) == 0 && rt_msgpack_pack(val, &mp) == 0, "pack extra entry");
    rt_value_free(key);
    rt_value_free(val);
    REQUIRE(rt_msgpack_unpack(mp.data, mp.len, &used, &back) == 0 && used == mp.len,
            "msgpack unpack with a duplicate");
    REQUIRE(big_map_ok(back, &bad), "msgpack duplicate: entry %zu is wrong", bad);
    rt_value_free(back);
    buf_deinit(&json);
    buf_deinit(&mp);
    rt_value_free(m);
}

int main(void)
{
    test_msgpack_fixed_encodings();
    test_msgpack_round_trip_and_truncation();
    test_msgpack_rejects();
    test_framer_byte_at_a_time();
    test_framer_errors();
    test_msgpack_scan();
    test_json_python_style();
    test_json_decode_cases();
    test_utf8_lossy();
    test_map_large();
    test_map_large_codecs();
    return check_finish("test_rt_value");
}
