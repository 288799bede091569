// Unit tests of backend_proto: every message and field of
// BACKEND_PROTOCOL.md §3.1/§3.2, the exact bytes of §2.1, the msgpack forms
// the backend may use, strict construction (§2.2) and UTF-8 sanitising.

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "backend/backend_proto.h"
#include "core/util.h"

#include "../check.h"

static void hex(const void *p, size_t n, char *out, size_t outlen)
{
    size_t o = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n && o + 3 < outlen; i++)
        o += (size_t)snprintf(out + o, outlen - o, "%02x", ((const unsigned char *)p)[i]);
}

static bool bytes_eq(const msgpack_sbuffer *sb, const char *want, size_t wantlen)
{
    return sb->size == wantlen && !memcmp(sb->data, want, wantlen);
}

#define CHECK_BYTES(sb, lit)                                                                       \
    do {                                                                                           \
        char h_[512];                                                                              \
        hex((sb)->data, (sb)->size, h_, sizeof h_);                                                \
        CHECK(bytes_eq((sb), lit, sizeof(lit) - 1), "got %s", h_);                                 \
    } while (0)

/* ---- raw msgpack writers (to choose encodings the packer would not) ---- */

static void raw(msgpack_sbuffer *sb, const void *p, size_t n)
{
    REQUIRE_OR_EXIT(msgpack_sbuffer_write(sb, p, n) == 0);
}

static void raw_byte(msgpack_sbuffer *sb, unsigned b)
{
    unsigned char c = (unsigned char)b;
    raw(sb, &c, 1);
}

static void raw_be(msgpack_sbuffer *sb, uint64_t v, int bytes)
{
    for (int i = bytes - 1; i >= 0; i--)
        raw_byte(sb, (unsigned)(v >> (8 * i)) & 0xff);
}

// width: 0 = fixstr, 8, 16, 32.
static void raw_str(msgpack_sbuffer *sb, const char *s, int width)
{
    size_t n = strlen(s);
    switch (width) {
    case 0:
        raw_byte(sb, 0xa0 | (unsigned)n);
        break;
    case 8:
        raw_byte(sb, 0xd9);
        raw_be(sb, n, 1);
        break;
    case 16:
        raw_byte(sb, 0xda);
        raw_be(sb, n, 2);
        break;
    default:
        raw_byte(sb, 0xdb);
        raw_be(sb, n, 4);
        break;
    }
    raw(sb, s, n);
}

static void raw_key(msgpack_sbuffer *sb, const char *s)
{
    raw_str(sb, s, 0);
}

/* ---- building backend messages ----------------------------------------- */

// A BackendNewJob as a value map, fields in declaration order, @type last.
static void new_job_value(struct value *m)
{
    value_set_map(m);
    value_set_str(value_map_put(m, "job_id"), "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0");
    value_set_str(value_map_put(m, "course_id"), "LSINF1101");
    value_set_str(value_map_put(m, "task_id"), "hello");
    struct value *tp = value_map_put(m, "task_problems");
    value_set_map(tp);
    struct value *q1 = value_map_put(tp, "q1");
    value_set_map(q1);
    value_set_str(value_map_put(q1, "type"), "code");
    value_set_str(value_map_put(q1, "language"), "python");
    struct value *in = value_map_put(m, "inputdata");
    value_set_map(in);
    value_set_str(value_map_put(in, "q1"), "print('hi')");
    value_set_str(value_map_put(in, "@username"), "student");
    value_set_str(value_map_put(in, "@state"), "prev-state");
    struct value *rnd = value_map_put(in, "@random");
    value_set_array(rnd);
    value_set_float(value_array_push(rnd), 0.25);
    struct value *up = value_map_put(in, "upload");
    value_set_map(up);
    value_set_str(value_map_put(up, "filename"), "a.zip");
    value_set_bin(value_map_put(up, "value"), "PK\x03\x04\xff\x00", 6);
    value_set_str(value_map_put(m, "environment_type"), "docker");
    value_set_str(value_map_put(m, "environment"), "default");
    struct value *ep = value_map_put(m, "environment_parameters");
    value_set_map(ep);
    value_set_nil(value_map_put(ep, "run_cmd"));
    value_set_bool(value_map_put(ep, "network_grading"), false);
    struct value *lim = value_map_put(ep, "limits");
    value_set_map(lim);
    value_set_int(value_map_put(lim, "time"), 30);
    value_set_int(value_map_put(lim, "memory"), 200);
    value_set_int(value_map_put(lim, "disk"), 100);
    value_set_bool(value_map_put(m, "debug"), false);
    value_set_str(value_map_put(m, "@type"), "BackendNewJob");
}

static void pack(const struct value *v, msgpack_sbuffer *sb)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    REQUIRE_OR_EXIT(value_pack(&pk, v) == 0);
}

static int decode_value(const struct value *v, struct backend_msg *m, char *err, size_t errlen)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    pack(v, &sb);
    int ret = backend_decode(sb.data, sb.size, m, err, errlen);
    msgpack_sbuffer_destroy(&sb);
    return ret;
}

// Expects the decoding of v to fail with -EBADMSG and err to mention `about`.
static void expect_bad(const struct value *v, const char *about, const char *what)
{
    struct backend_msg m;
    char err[200] = "";
    int ret = decode_value(v, &m, err, sizeof err);
    CHECK(ret == -EBADMSG, "%s: ret %d", what, ret);
    CHECK(m.type == BACKEND_MSG_NONE, "%s: type %d left", what, m.type);
    CHECK(strstr(err, about) != NULL, "%s: err \"%s\" lacks \"%s\"", what, err, about);
}

/* ---- tests: exact bytes (§2.1) ----------------------------------------- */

static void test_exact_bytes(void)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    CHECK(backend_encode_pong(&sb) == 0, "pong");
    CHECK_BYTES(&sb, "\x81\xa5@type\xa4Pong");

    msgpack_sbuffer_clear(&sb);
    CHECK(backend_encode_job_started(&sb, "ab") == 0, "started");
    CHECK_BYTES(&sb, "\x82\xa6job_id\xa2"
                     "ab\xa5@type\xaf"
                     "AgentJobStarted");

    // grade 100.0 as float64, in the third place of AgentJobDone.
    msgpack_sbuffer_clear(&sb);
    struct backend_job_done d = {.job_id = "j", .result = "success", .text = "", .grade = 100.0};
    CHECK(backend_encode_job_done(&sb, &d) == 0, "done");
    static const char head[] = "\x8b\xa6job_id\xa1j\xa6result\x92\xa7success\xa0\xa5grade"
                               "\xcb\x40\x59\x00\x00\x00\x00\x00\x00\xa8problems\x80";
    CHECK(sb.size > sizeof head - 1 && !memcmp(sb.data, head, sizeof head - 1), "job done prefix");

    // Ping, as the backend sends it.
    struct backend_msg m;
    char err[128] = "";
    static const char ping[] = "\x81\xa5@type\xa4Ping";
    CHECK(backend_decode(ping, sizeof ping - 1, &m, err, sizeof err) == 0, "ping: %s", err);
    CHECK(m.type == BACKEND_MSG_PING, "ping type %d", m.type);
    backend_msg_deinit(&m);
    msgpack_sbuffer_destroy(&sb);
}

/* ---- tests: decoding backend -> agent ---------------------------------- */

static void test_new_job_round_trip(void)
{
    struct value v;
    new_job_value(&v);
    struct backend_msg m;
    char err[128] = "";
    CHECK(decode_value(&v, &m, err, sizeof err) == 0, "new job: %s", err);
    CHECK(m.type == BACKEND_MSG_NEW_JOB, "type %d", m.type);
    CHECK(!strcmp(backend_msg_type_name(m.type), "BackendNewJob"), "name");
    struct backend_new_job *j = &m.new_job;
    CHECK(j->job_id && !strcmp(j->job_id, "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0"), "job_id");
    CHECK(j->course_id && !strcmp(j->course_id, "LSINF1101"), "course_id");
    CHECK(j->task_id && !strcmp(j->task_id, "hello"), "task_id");
    CHECK(j->environment_type && !strcmp(j->environment_type, "docker"), "environment_type");
    CHECK(j->environment && !strcmp(j->environment, "default"), "environment");
    CHECK(j->debug == BACKEND_DEBUG_OFF, "debug %d", j->debug);
    const struct value *q1 = value_map_get(&j->task_problems, "q1");
    CHECK(q1 && value_is_str(value_map_get(q1, "language"), "python"), "task_problems");
    CHECK(value_is_str(value_map_get(&j->inputdata, "q1"), "print('hi')"), "inputdata q1");
    CHECK(value_is_str(value_map_get(&j->inputdata, "@state"), "prev-state"), "@state");
    const struct value *rnd = value_map_get(&j->inputdata, "@random");
    CHECK(rnd && rnd->type == VALUE_ARRAY && rnd->u.a.len == 1 &&
              rnd->u.a.items[0].type == VALUE_FLOAT && rnd->u.a.items[0].u.f == 0.25,
          "@random");
    const struct value *up = value_map_get(&j->inputdata, "upload");
    const struct value *bin = up ? value_map_get(up, "value") : NULL;
    CHECK(bin && bin->type == VALUE_BIN && bin->u.s.len == 6 &&
              !memcmp(bin->u.s.ptr, "PK\x03\x04\xff\x00", 6),
          "upload bin");
    const struct value *lim = value_map_get(&j->environment_parameters, "limits");
    const struct value *t = lim ? value_map_get(lim, "time") : NULL;
    CHECK(t && t->type == VALUE_INT && t->u.i == 30, "limits.time");
    const struct value *rc = value_map_get(&j->environment_parameters, "run_cmd");
    CHECK(rc && rc->type == VALUE_NIL, "run_cmd nil");
    backend_msg_deinit(&m);
    CHECK(m.type == BACKEND_MSG_NONE && m.new_job.job_id == NULL, "deinit resets");
    backend_msg_deinit(&m); // twice is harmless
    backend_msg_deinit(NULL);

    // debug: true and "ssh" too.
    value_set_bool(value_map_put(&v, "debug"), true);
    CHECK(decode_value(&v, &m, err, sizeof err) == 0 && m.new_job.debug == BACKEND_DEBUG_ON,
          "debug true: %s", err);
    backend_msg_deinit(&m);
    value_deinit(value_map_put(&v, "debug"));
    value_set_str(value_map_put(&v, "debug"), "ssh");
    CHECK(decode_value(&v, &m, err, sizeof err) == 0 && m.new_job.debug == BACKEND_DEBUG_SSH,
          "debug ssh: %s", err);
    CHECK(!strcmp(backend_debug_name(m.new_job.debug), "ssh"), "debug name");
    backend_msg_deinit(&m);

    // Key order is irrelevant to the receiver: @type first works too.
    struct value w;
    value_set_map(&w);
    value_set_str(value_map_put(&w, "@type"), "BackendNewJob");
    for (size_t i = 0; i + 1 < v.u.m.len; i++)
        value_copy(value_map_put(&w, v.u.m.items[i].key.u.s.ptr), &v.u.m.items[i].val);
    CHECK(decode_value(&w, &m, err, sizeof err) == 0, "@type first: %s", err);
    backend_msg_deinit(&m);
    value_deinit(&w);
    value_deinit(&v);
}

static void test_taskless_job(void)
{
    struct value v;
    new_job_value(&v);
    value_deinit(value_map_put(&v, "course_id"));
    value_deinit(value_map_put(&v, "task_id"));
    struct backend_msg m;
    char err[128] = "";
    // Replacing an existing slot keeps its value: release and refill explicitly.
    struct value *tp = value_map_put(&v, "task_problems");
    value_deinit(tp);
    value_set_map(tp);
    CHECK(decode_value(&v, &m, err, sizeof err) == 0, "taskless: %s", err);
    CHECK(m.new_job.course_id == NULL && m.new_job.task_id == NULL, "nil course/task");
    CHECK(m.new_job.task_problems.type == VALUE_MAP && m.new_job.task_problems.u.m.len == 0,
          "empty problems");
    backend_msg_deinit(&m);

    // Only one of them nil: refused.
    value_set_str(value_map_put(&v, "course_id"), "c");
    expect_bad(&v, "both nil", "course without task");
    value_deinit(value_map_put(&v, "course_id"));
    value_set_str(value_map_put(&v, "task_id"), "t");
    expect_bad(&v, "both nil", "task without course");
    value_deinit(&v);
}

static void test_kill_job(void)
{
    struct value v;
    value_set_map(&v);
    value_set_str(value_map_put(&v, "job_id"), "job-1");
    value_set_str(value_map_put(&v, "state"), "");
    value_set_str(value_map_put(&v, "@type"), "BackendKillJob");
    struct backend_msg m;
    char err[128] = "";
    CHECK(decode_value(&v, &m, err, sizeof err) == 0, "kill: %s", err);
    CHECK(m.type == BACKEND_MSG_KILL_JOB, "type");
    CHECK(!strcmp(m.kill_job.job_id, "job-1") && !strcmp(m.kill_job.state, ""), "fields");
    backend_msg_deinit(&m);

    value_deinit(value_map_put(&v, "state"));
    expect_bad(&v, "state", "kill with nil state");
    value_map_del(&v, "state");
    expect_bad(&v, "missing field state", "kill without state");
    value_deinit(&v);
}

// Every field of BackendNewJob: missing, and with a wrong type.
static void test_strict_construction(void)
{
    static const char *const fields[] = {
        "job_id",    "course_id",        "task_id",     "task_problems",
        "inputdata", "environment_type", "environment", "environment_parameters",
        "debug"};
    for (size_t i = 0; i < ARRAY_SIZE(fields); i++) {
        struct value v;
        char what[96];
        new_job_value(&v);
        value_map_del(&v, fields[i]);
        snprintf(what, sizeof what, "missing %s", fields[i]);
        expect_bad(&v, "missing field", what);
        value_deinit(&v);

        new_job_value(&v);
        struct value *slot = value_map_put(&v, fields[i]);
        value_deinit(slot);
        value_set_int(slot, 7);
        snprintf(what, sizeof what, "int %s", fields[i]);
        expect_bad(&v, fields[i], what);
        value_deinit(&v);

        // An array where a str or a map is expected.
        new_job_value(&v);
        slot = value_map_put(&v, fields[i]);
        value_deinit(slot);
        value_set_array(slot);
        snprintf(what, sizeof what, "array %s", fields[i]);
        expect_bad(&v, fields[i], what);
        value_deinit(&v);
    }

    struct value v;
    new_job_value(&v);
    value_set_str(value_map_put(&v, "launcher"), "extra");
    expect_bad(&v, "unexpected field \"launcher\"", "extra field");
    value_deinit(&v);

    new_job_value(&v);
    value_deinit(value_map_put(&v, "job_id"));
    expect_bad(&v, "job_id", "nil job_id");
    value_deinit(&v);

    // debug as another str or as an int.
    new_job_value(&v);
    struct value *dbg = value_map_put(&v, "debug");
    value_set_str(dbg, "on");
    expect_bad(&v, "debug", "debug \"on\"");
    value_deinit(&v);

    new_job_value(&v);
    value_map_del(&v, "@type");
    expect_bad(&v, "no @type", "missing @type");
    value_set_int(value_map_put(&v, "@type"), 3);
    expect_bad(&v, "@type is a int", "int @type");
    value_deinit(&v);

    new_job_value(&v);
    struct value *t = value_map_put(&v, "@type");
    value_deinit(t);
    value_set_str(t, "BackendJobDone");
    expect_bad(&v, "unknown message type", "unknown @type");
    value_deinit(&v);

    // Types the backend would only send to clients, or agents send.
    value_set_map(&v);
    value_set_str(value_map_put(&v, "@type"), "Pong");
    expect_bad(&v, "unknown message type", "Pong to an agent");
    value_deinit(&v);

    value_set_map(&v);
    value_set_str(value_map_put(&v, "@type"), "Ping");
    value_set_int(value_map_put(&v, "seq"), 1);
    expect_bad(&v, "unexpected field", "Ping with a field");
    value_deinit(&v);
}

static void test_non_map_and_bad_keys(void)
{
    struct value v;
    value_set_array(&v);
    value_set_str(value_array_push(&v), "Ping");
    expect_bad(&v, "not a map", "array payload");
    value_deinit(&v);
    value_set_str(&v, "Ping");
    expect_bad(&v, "not a map", "str payload");
    value_deinit(&v);
    value_set_nil(&v);
    expect_bad(&v, "not a map", "nil payload");

    // {1: "x", "@type": "Ping"}: non-str key.
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    raw_byte(&sb, 0x82);
    raw_byte(&sb, 0x01);
    raw_str(&sb, "x", 0);
    raw_key(&sb, "@type");
    raw_str(&sb, "Ping", 0);
    struct backend_msg m;
    char err[128] = "";
    CHECK(backend_decode(sb.data, sb.size, &m, err, sizeof err) == -EBADMSG, "int key");
    CHECK(strstr(err, "key"), "err %s", err);

    // Duplicate key.
    msgpack_sbuffer_clear(&sb);
    raw_byte(&sb, 0x83);
    raw_key(&sb, "job_id");
    raw_str(&sb, "a", 0);
    raw_key(&sb, "job_id");
    raw_str(&sb, "b", 0);
    raw_key(&sb, "@type");
    raw_str(&sb, "BackendKillJob", 0);
    CHECK(backend_decode(sb.data, sb.size, &m, err, sizeof err) == -EBADMSG, "dup key");

    // Empty input, trailing bytes, ext type.
    CHECK(backend_decode("", 0, &m, err, sizeof err) == -EBADMSG, "empty frame");
    static const char ping2[] = "\x81\xa5@type\xa4Ping\xc0";
    CHECK(backend_decode(ping2, sizeof ping2 - 1, &m, err, sizeof err) == -EBADMSG, "trailing");
    static const char ext[] = "\x82\xa5@type\xa4Ping\xa1x\xd4\x01\x00";
    CHECK(backend_decode(ext, sizeof ext - 1, &m, err, sizeof err) == -EBADMSG, "ext");
    // A 0xc1 byte is never valid msgpack.
    CHECK(backend_decode("\xc1", 1, &m, err, sizeof err) == -EBADMSG, "c1");
    CHECK(backend_decode("\x81\xa5@type\xa4Ping", 12, &m, NULL, 0) == 0, "NULL err buffer");
    backend_msg_deinit(&m);
    // Declared sizes the frame cannot hold are refused before anything is
    // reserved for them (msgpack-c asked for 128 GiB for the first).
    static const char *const huge[] = {"\xdd\xff\xff\xff\xff", "\xdf\xff\xff\xff\xff",
                                       "\xdb\xff\xff\xff\xff", "\xc6\xff\xff\xff\xff"};
    for (size_t i = 0; i < ARRAY_SIZE(huge); i++) {
        CHECK(backend_decode(huge[i], 5, &m, err, sizeof err) == -EBADMSG, "huge %zu", i);
        struct value am;
        CHECK(backend_check_agent_msg(huge[i], 5, &am, err, sizeof err) == -EBADMSG, "huge %zu", i);
        CHECK(am.type == VALUE_NIL, "agent msg %zu left a tree", i);
    }
    // {"@type": "Ping", "x": [<more objects than VALUE_MAX_OBJECTS(bytes)>]}
    msgpack_sbuffer_clear(&sb);
    raw_byte(&sb, 0x82);
    raw_key(&sb, "@type");
    raw_str(&sb, "Ping", 0);
    raw_key(&sb, "x");
    size_t n = (size_t)VALUE_MIN_OBJECTS * 2;
    unsigned char hdr[] = {0xdd, (unsigned char)(n >> 24), (unsigned char)(n >> 16),
                           (unsigned char)(n >> 8), (unsigned char)n};
    msgpack_sbuffer_write(&sb, (const char *)hdr, sizeof hdr);
    for (size_t i = 0; i < n; i++)
        raw_byte(&sb, 0xc0);
    CHECK(backend_decode(sb.data, sb.size, &m, err, sizeof err) == -EBADMSG &&
              strstr(err, "objects"),
          "object budget: %s", err);
    msgpack_sbuffer_destroy(&sb);
}

static void test_truncated(void)
{
    struct value v;
    new_job_value(&v);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    pack(&v, &sb);
    int bad = 0;
    // Every strict prefix is an incomplete object.
    for (size_t n = 0; n < sb.size; n++) {
        struct backend_msg m;
        if (backend_decode(sb.data, n, &m, NULL, 0) != -EBADMSG || m.type != BACKEND_MSG_NONE)
            bad++;
    }
    CHECK(bad == 0, "%d prefixes decoded", bad);
    char err[128] = "";
    struct backend_msg m;
    CHECK(backend_decode(sb.data, sb.size / 2, &m, err, sizeof err) == -EBADMSG &&
              strstr(err, "truncated"),
          "err %s", err);
    msgpack_sbuffer_destroy(&sb);
    value_deinit(&v);
}

// str8/16/32 for the top-level str fields, every integer width and
// float32/float64 inside the trees.
static void test_msgpack_forms(void)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    raw_byte(&sb, 0x80 | 10);
    raw_key(&sb, "job_id");
    raw_str(&sb, "j16", 16);
    raw_key(&sb, "course_id");
    raw_str(&sb, "c32", 32);
    raw_key(&sb, "task_id");
    raw_str(&sb, "t8", 8);
    raw_key(&sb, "task_problems");
    raw_byte(&sb, 0xde); // map16 with 0 entries
    raw_be(&sb, 0, 2);
    raw_key(&sb, "inputdata");
    raw_byte(&sb, 0xdf); // map32
    raw_be(&sb, 12, 4);
    struct {
        const char *key;
        const char *bytes;
        size_t n;
        enum value_type type;
        int64_t i;
    } ints[] = {
        {"pfix", "\x05", 1, VALUE_INT, 5},
        {"u8", "\xcc\xc8", 2, VALUE_INT, 200},
        {"u16", "\xcd\xea\x60", 3, VALUE_INT, 60000},
        {"u32", "\xce\xee\x6b\x28\x00", 5, VALUE_INT, 4000000000},
        {"nfix", "\xfb", 1, VALUE_INT, -5},
        {"i8", "\xd0\x9c", 2, VALUE_INT, -100},
        {"i16", "\xd1\x8a\xd0", 3, VALUE_INT, -30000},
        {"i32", "\xd2\x88\xca\x6c\x00", 5, VALUE_INT, -2000000000},
        {"i64", "\xd3\xff\xff\xff\x00\x00\x00\x00\x00", 9, VALUE_INT, -1099511627776},
    };
    for (size_t i = 0; i < ARRAY_SIZE(ints); i++) {
        raw_key(&sb, ints[i].key);
        raw(&sb, ints[i].bytes, ints[i].n);
    }
    raw_key(&sb, "u64");
    raw(&sb, "\xcf\x80\x00\x00\x00\x00\x00\x00\x05", 9);
    raw_key(&sb, "f32");
    raw(&sb, "\xca\x3f\xc0\x00\x00", 5); // 1.5
    raw_key(&sb, "f64");
    raw(&sb, "\xcb\x3f\xb9\x99\x99\x99\x99\x99\x9a", 9); // 0.1
    raw_key(&sb, "environment_type");
    raw_str(&sb, "docker", 8);
    raw_key(&sb, "environment");
    raw_str(&sb, "default", 32);
    raw_key(&sb, "environment_parameters");
    raw_byte(&sb, 0x80);
    raw_key(&sb, "debug");
    raw_byte(&sb, 0xc3);
    raw_str(&sb, "@type", 8);
    raw_str(&sb, "BackendNewJob", 16);

    struct backend_msg m;
    char err[128] = "";
    CHECK(backend_decode(sb.data, sb.size, &m, err, sizeof err) == 0, "forms: %s", err);
    CHECK(m.type == BACKEND_MSG_NEW_JOB, "type %d", m.type);
    if (m.type == BACKEND_MSG_NEW_JOB) {
        CHECK(!strcmp(m.new_job.job_id, "j16"), "str16");
        CHECK(!strcmp(m.new_job.course_id, "c32"), "str32");
        CHECK(!strcmp(m.new_job.task_id, "t8"), "str8");
        CHECK(!strcmp(m.new_job.environment, "default"), "str32 env");
        CHECK(m.new_job.debug == BACKEND_DEBUG_ON, "debug true");
        const struct value *in = &m.new_job.inputdata;
        for (size_t i = 0; i < ARRAY_SIZE(ints); i++) {
            const struct value *x = value_map_get(in, ints[i].key);
            CHECK(x && x->type == ints[i].type && x->u.i == ints[i].i, "%s", ints[i].key);
        }
        const struct value *u64 = value_map_get(in, "u64");
        CHECK(u64 && u64->type == VALUE_UINT && u64->u.u == 0x8000000000000005ull, "u64");
        const struct value *f32 = value_map_get(in, "f32");
        CHECK(f32 && f32->type == VALUE_FLOAT && f32->u.f == 1.5, "f32");
        const struct value *f64 = value_map_get(in, "f64");
        CHECK(f64 && f64->type == VALUE_FLOAT && f64->u.f == 0.1, "f64");
    }
    backend_msg_deinit(&m);
    msgpack_sbuffer_destroy(&sb);
}

static void test_decode_utf8_and_nul(void)
{
    struct value v;
    new_job_value(&v);
    struct value *id = value_map_put(&v, "job_id");
    value_deinit(id);
    value_set_strn(id, "ab\xff", 3);
    expect_bad(&v, "UTF-8", "invalid UTF-8 job_id");
    value_deinit(id);
    value_set_strn(id, "a\0b", 3);
    expect_bad(&v, "NUL", "NUL in job_id");
    value_deinit(&v);

    // Deep inside inputdata too, as msgpack-python (raw=False) would refuse it.
    new_job_value(&v);
    struct value *in = value_map_put(&v, "inputdata");
    value_set_strn(value_map_put(in, "q2"), "\xc0\xaf", 2);
    expect_bad(&v, "UTF-8", "invalid UTF-8 in inputdata");
    value_deinit(&v);

    // bin stays bin, whatever its bytes.
    new_job_value(&v);
    in = value_map_put(&v, "inputdata");
    value_set_bin(value_map_put(in, "raw"), "\xff\xfe", 2);
    struct backend_msg m;
    char err[128] = "";
    CHECK(decode_value(&v, &m, err, sizeof err) == 0, "bin in inputdata: %s", err);
    backend_msg_deinit(&m);
    value_deinit(&v);
}

static void test_huge_and_deep(void)
{
    // 8 MiB file upload plus a 20,000-entry map.
    struct value v;
    new_job_value(&v);
    struct value *in = value_map_put(&v, "inputdata");
    size_t big = 8u << 20;
    char *blob = xmalloc(big + 1);
    for (size_t i = 0; i < big; i++)
        blob[i] = (char)(i * 131u);
    value_take_bin(value_map_put(in, "big"), blob, big);
    struct value *many = value_map_put(in, "many");
    value_set_map(many);
    for (int i = 0; i < 20000; i++) {
        char k[16];
        snprintf(k, sizeof k, "k%d", i);
        struct value *slot = value_map_put(many, k);
        value_set_int(slot, i);
    }
    struct backend_msg m;
    char err[128] = "";
    CHECK(decode_value(&v, &m, err, sizeof err) == 0, "huge: %s", err);
    const struct value *b = value_map_get(&m.new_job.inputdata, "big");
    CHECK(b && b->type == VALUE_BIN && b->u.s.len == big && (unsigned char)b->u.s.ptr[7] == 0x95,
          "big bin");
    const struct value *mm = value_map_get(&m.new_job.inputdata, "many");
    CHECK(mm && mm->type == VALUE_MAP && mm->u.m.len == 20000, "many");
    backend_msg_deinit(&m);
    value_deinit(&v);

    // Nesting beyond VALUE_MAX_DEPTH is refused, not recursed into.
    // msgpack-c's own unpacker stops at 32 levels first and calls that "out
    // of memory", hence -ENOMEM is accepted as well: what matters is a clean
    // refusal.
    new_job_value(&v);
    in = value_map_put(&v, "inputdata");
    struct value *cur = value_map_put(in, "deep");
    for (int i = 0; i < VALUE_MAX_DEPTH + 10; i++) {
        value_set_array(cur);
        cur = value_array_push(cur);
    }
    int ret = decode_value(&v, &m, err, sizeof err);
    CHECK((ret == -EBADMSG || ret == -ENOMEM) && m.type == BACKEND_MSG_NONE, "too deep: %d", ret);
    value_deinit(&v);
}

/* ---- tests: encoding agent -> backend ---------------------------------- */

static int check_msg(const msgpack_sbuffer *sb, struct value *out)
{
    char err[160] = "";
    int ret = backend_check_agent_msg(sb->data, sb->size, out, err, sizeof err);
    CHECK(ret == 0, "agent message refused: %s", err);
    return ret;
}

static bool is_sp(const struct value *v, const char *a, const char *b)
{
    return v && v->type == VALUE_ARRAY && v->u.a.len == 2 && value_is_str(&v->u.a.items[0], a) &&
           value_is_str(&v->u.a.items[1], b);
}

static void env_entry(struct value *envs, const char *type, const char *name, int advertised)
{
    struct value *t = value_map_put(envs, type);
    if (t->type != VALUE_MAP)
        value_set_map(t);
    struct value *info = value_map_put(t, name);
    value_set_map(info);
    value_set_str(value_map_put(info, "id"), "sha256:715c");
    value_set_str(value_map_put(info, "title"), name);
    value_set_int(value_map_put(info, "created"), 1700000000);
    if (advertised >= 0)
        value_set_bool(value_map_put(info, "advertised"), advertised);
    value_set_array(value_map_put(info, "ports"));
    value_set_int(value_array_push(value_map_put(info, "ports")), 22);
    value_set_str(value_map_put(info, "runtime"), "runc");
}

static void test_hello(void)
{
    struct value envs, out;
    value_set_map(&envs);
    env_entry(&envs, "docker", "default", -1);
    env_entry(&envs, "docker", "hidden", 0);
    env_entry(&envs, "docker-ssh", "default", 1);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    CHECK(backend_encode_hello(&sb, "proctor-1", 4, &envs) == 0, "hello");
    if (!check_msg(&sb, &out)) {
        CHECK(value_is_str(value_map_get(&out, "friendly_name"), "proctor-1"), "name");
        const struct value *slots = value_map_get(&out, "available_job_slots");
        CHECK(slots && slots->type == VALUE_INT && slots->u.i == 4, "slots");
        const struct value *ae = value_map_get(&out, "available_environments");
        const struct value *docker = ae ? value_map_get(ae, "docker") : NULL;
        CHECK(docker && docker->u.m.len == 2, "docker names");
        for (size_t i = 0; docker && i < docker->u.m.len; i++) {
            const struct value *info = &docker->u.m.items[i].val;
            const struct value *adv = value_map_get(info, "advertised");
            CHECK(adv && adv->type == VALUE_BOOL && adv->u.b, "advertised forced true");
            // "advertised" is written last, other keys keep their order.
            CHECK(value_is_str(&info->u.m.items[info->u.m.len - 1].key, "advertised"), "last");
            CHECK(value_is_str(&info->u.m.items[0].key, "id"), "id first");
            const struct value *ports = value_map_get(info, "ports");
            CHECK(ports && ports->type == VALUE_ARRAY && ports->u.a.len == 1 &&
                      ports->u.a.items[0].u.i == 22,
                  "ports");
            CHECK(value_is_str(value_map_get(info, "runtime"), "runc"), "runtime");
        }
        const struct value *ssh = ae ? value_map_get(ae, "docker-ssh") : NULL;
        CHECK(ssh && ssh->u.m.len == 1, "docker-ssh");
        value_deinit(&out);
    }
    // Slots as the smallest int encoding, like msgpack-python: positive fixint 4.
    static const char head[] = "\x84\xad"
                               "friendly_name\xa9proctor-1\xb3"
                               "available_job_slots\x04";
    CHECK(sb.size > sizeof head && !memcmp(sb.data, head, sizeof head - 1), "hello prefix");

    // No environments, 0 slots, empty name.
    msgpack_sbuffer_clear(&sb);
    CHECK(backend_encode_hello(&sb, "", 0, NULL) == 0, "empty hello");
    if (!check_msg(&sb, &out)) {
        const struct value *ae = value_map_get(&out, "available_environments");
        CHECK(ae && ae->type == VALUE_MAP && ae->u.m.len == 0, "no envs");
        value_deinit(&out);
    }

    // Shapes the backend cannot digest are refused.
    struct value bad;
    value_set_map(&bad);
    env_entry(&bad, "docker", "x", 1);
    struct value *info = value_map_put(value_map_put(&bad, "docker"), "x");
    value_map_del(info, "id");
    msgpack_sbuffer_clear(&sb);
    CHECK(backend_encode_hello(&sb, "n", 1, &bad) == -EINVAL, "no id");
    value_set_str(value_map_put(info, "id"), "sha256:1");
    value_set_float(value_map_put(info, "created"), 1.5);
    msgpack_sbuffer_clear(&sb);
    CHECK(backend_encode_hello(&sb, "n", 1, &bad) == -EINVAL, "float created");
    value_deinit(&bad);
    value_set_array(&bad);
    msgpack_sbuffer_clear(&sb);
    CHECK(backend_encode_hello(&sb, "n", 1, &bad) == -EINVAL, "array envs");
    value_deinit(&bad);
    msgpack_sbuffer_clear(&sb);
    CHECK(backend_encode_hello(&sb, "n", -1, NULL) == -EINVAL, "negative slots");

    // Invalid UTF-8 in the friendly name and in an environment title.
    msgpack_sbuffer_clear(&sb);
    struct value envs2;
    value_set_map(&envs2);
    env_entry(&envs2, "docker", "d\xff", 1);
    CHECK(backend_encode_hello(&sb, "bad\xfe", 1, &envs2) == 0, "sanitised hello");
    if (!check_msg(&sb, &out)) {
        CHECK(value_is_str(value_map_get(&out, "friendly_name"), "bad\xef\xbf\xbd"), "name fixed");
        const struct value *d =
            value_map_get(value_map_get(&out, "available_environments"), "docker");
        CHECK(d && value_is_str(&d->u.m.items[0].key, "d\xef\xbf\xbd"), "env name fixed");
        value_deinit(&out);
    }
    value_deinit(&envs2);
    value_deinit(&envs);
    msgpack_sbuffer_destroy(&sb);
}

static void test_job_done_full(void)
{
    struct value problems, tests, custom;
    value_set_map(&problems);
    struct value *p = value_map_put(&problems, "q1");
    value_set_array(p);
    value_set_str(value_array_push(p), "success");
    value_set_str(value_array_push(p), "Well done \xc3\xa9");
    p = value_map_put(&problems, "q2");
    value_set_array(p);
    value_set_str(value_array_push(p), "failed");
    value_set_strn(value_array_push(p), "bad \xff byte", 10);
    value_set_map(&tests);
    value_set_int(value_map_put(&tests, "passed"), 3);
    value_set_float(value_map_put(&tests, "ratio"), 0.75);
    value_set_strn(value_map_put(&tests, "k\xfe"), "v", 1);
    value_set_map(&custom);
    struct value *c = value_map_put(&custom, "list");
    value_set_array(c);
    value_set_int(value_array_push(c), -1);
    value_set_nil(value_array_push(c));
    value_set_bool(value_array_push(c), true);
    value_set_bin(value_array_push(c), "\xff\x00", 2);
    value_set_strn(value_array_push(c), "\xe2\x82", 2);

    struct backend_job_done d = {
        .job_id = "job-42",
        .result = "failed",
        .text = "Main \xf0\x9f\x98 text",
        .grade = 87.25,
        .problems = &problems,
        .tests = &tests,
        .custom = &custom,
        .state = "st\xc0",
        .archive = "\x1f\x8b\x08\x00\xff",
        .archive_len = 5,
        .stdout_text = "out\xff",
        .stderr_text = "err",
    };
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    CHECK(backend_encode_job_done(&sb, &d) == 0, "done");
    struct value out;
    if (!check_msg(&sb, &out)) {
        CHECK(value_is_str(value_map_get(&out, "job_id"), "job-42"), "job_id");
        CHECK(is_sp(value_map_get(&out, "result"), "failed", "Main \xef\xbf\xbd text"), "result");
        const struct value *g = value_map_get(&out, "grade");
        CHECK(g && g->type == VALUE_FLOAT && g->u.f == 87.25, "grade");
        const struct value *pr = value_map_get(&out, "problems");
        CHECK(is_sp(value_map_get(pr, "q1"), "success", "Well done \xc3\xa9"), "q1");
        CHECK(is_sp(value_map_get(pr, "q2"), "failed", "bad \xef\xbf\xbd byte"), "q2 sanitised");
        const struct value *t = value_map_get(&out, "tests");
        const struct value *passed = value_map_get(t, "passed");
        CHECK(passed && passed->type == VALUE_INT && passed->u.i == 3, "tests.passed");
        const struct value *ratio = value_map_get(t, "ratio");
        CHECK(ratio && ratio->type == VALUE_FLOAT && ratio->u.f == 0.75, "tests.ratio");
        CHECK(value_map_get(t, "k\xef\xbf\xbd") != NULL, "key sanitised");
        const struct value *l = value_map_get(value_map_get(&out, "custom"), "list");
        CHECK(l && l->type == VALUE_ARRAY && l->u.a.len == 5, "custom.list");
        if (l && l->u.a.len == 5) {
            CHECK(l->u.a.items[0].type == VALUE_INT && l->u.a.items[0].u.i == -1, "int");
            CHECK(l->u.a.items[1].type == VALUE_NIL, "nil");
            CHECK(l->u.a.items[2].type == VALUE_BOOL && l->u.a.items[2].u.b, "bool");
            CHECK(l->u.a.items[3].type == VALUE_BIN && l->u.a.items[3].u.s.len == 2 &&
                      !memcmp(l->u.a.items[3].u.s.ptr, "\xff\x00", 2),
                  "bin untouched");
            CHECK(value_is_str(&l->u.a.items[4], "\xef\xbf\xbd"), "nested str sanitised");
        }
        CHECK(value_is_str(value_map_get(&out, "state"), "st\xef\xbf\xbd"), "state");
        const struct value *a = value_map_get(&out, "archive");
        CHECK(a && a->type == VALUE_BIN && a->u.s.len == 5 &&
                  !memcmp(a->u.s.ptr, "\x1f\x8b\x08\x00\xff", 5),
              "archive");
        CHECK(value_is_str(value_map_get(&out, "stdout"), "out\xef\xbf\xbd"), "stdout");
        CHECK(value_is_str(value_map_get(&out, "stderr"), "err"), "stderr");
        value_deinit(&out);
    }

    // Defaults: NULL/NIL maps are {}, NULL state is "", NULL archive/stdout/stderr are nil.
    struct value nil;
    value_set_nil(&nil);
    struct backend_job_done e = {.job_id = "j", .result = "crash", .grade = 0.0, .tests = &nil};
    msgpack_sbuffer_clear(&sb);
    CHECK(backend_encode_job_done(&sb, &e) == 0, "defaults");
    if (!check_msg(&sb, &out)) {
        CHECK(is_sp(value_map_get(&out, "result"), "crash", ""), "empty text");
        static const char *const maps[] = {"problems", "tests", "custom"};
        for (size_t i = 0; i < ARRAY_SIZE(maps); i++) {
            const struct value *m = value_map_get(&out, maps[i]);
            CHECK(m && m->type == VALUE_MAP && m->u.m.len == 0, "%s empty", maps[i]);
        }
        CHECK(value_is_str(value_map_get(&out, "state"), ""), "state \"\"");
        static const char *const nils[] = {"archive", "stdout", "stderr"};
        for (size_t i = 0; i < ARRAY_SIZE(nils); i++) {
            const struct value *m = value_map_get(&out, nils[i]);
            CHECK(m && m->type == VALUE_NIL, "%s nil", nils[i]);
        }
        const struct value *g = value_map_get(&out, "grade");
        CHECK(g && g->type == VALUE_FLOAT && g->u.f == 0.0, "grade 0.0 stays a float");
        value_deinit(&out);
    }

    // Empty archive is an empty bin, not nil; empty stdout is "".
    e.archive = "";
    e.archive_len = 0;
    e.stdout_text = "";
    msgpack_sbuffer_clear(&sb);
    CHECK(backend_encode_job_done(&sb, &e) == 0, "empty archive");
    if (!check_msg(&sb, &out)) {
        const struct value *a = value_map_get(&out, "archive");
        CHECK(a && a->type == VALUE_BIN && a->u.s.len == 0, "empty bin");
        CHECK(value_is_str(value_map_get(&out, "stdout"), ""), "empty stdout");
        value_deinit(&out);
    }

    // Refused: problems not a map, a problem that is not [str, str], non-str keys.
    struct value bad;
    value_set_array(&bad);
    e.problems = &bad;
    msgpack_sbuffer_clear(&sb);
    CHECK(backend_encode_job_done(&sb, &e) == -EINVAL, "array problems");
    value_deinit(&bad);
    value_set_map(&bad);
    value_set_str(value_map_put(&bad, "q"), "success");
    msgpack_sbuffer_clear(&sb);
    CHECK(backend_encode_job_done(&sb, &e) == -EINVAL, "problem not a pair");
    e.problems = NULL;
    e.custom = &bad; // a str value in custom is fine
    msgpack_sbuffer_clear(&sb);
    CHECK(backend_encode_job_done(&sb, &e) == 0, "custom str value");
    value_deinit(&bad);
    msgpack_sbuffer_clear(&sb);
    CHECK(backend_encode_job_done(&sb, &(struct backend_job_done){.result = "x"}) == -EINVAL,
          "no job id");

    // grade: special values still go out as float64.
    e.custom = NULL;
    e.grade = NAN;
    msgpack_sbuffer_clear(&sb);
    CHECK(backend_encode_job_done(&sb, &e) == 0, "nan grade");

    value_deinit(&problems);
    value_deinit(&tests);
    value_deinit(&custom);
    msgpack_sbuffer_destroy(&sb);
}

static void test_large_stdout(void)
{
    // 4 MiB of stdout with an invalid byte every 4 KiB.
    size_t n = 4u << 20;
    char *s = xmalloc(n + 1);
    for (size_t i = 0; i < n; i++)
        s[i] = (i % 4096 == 4095) ? '\xff' : (char)('a' + i % 26);
    s[n] = '\0';
    struct backend_job_done d = {
        .job_id = "j", .result = "success", .grade = 100.0, .stdout_text = s};
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    CHECK(backend_encode_job_done(&sb, &d) == 0, "large stdout");
    struct value out;
    if (!check_msg(&sb, &out)) {
        const struct value *o = value_map_get(&out, "stdout");
        CHECK(o && o->type == VALUE_STR && o->u.s.len == n + 2 * (n / 4096), "len %zu",
              o ? o->u.s.len : 0);
        value_deinit(&out);
    }
    free(s);
    msgpack_sbuffer_destroy(&sb);
}

static void test_ssh_and_pong(void)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    CHECK(backend_encode_ssh_debug(&sb, "job-7", "192.0.2.1", 64120, "worker", "s3cr\xe9t") == 0,
          "ssh");
    struct value out;
    if (!check_msg(&sb, &out)) {
        CHECK(value_is_str(value_map_get(&out, "job_id"), "job-7"), "job_id");
        CHECK(value_is_str(value_map_get(&out, "host"), "192.0.2.1"), "host");
        const struct value *port = value_map_get(&out, "port");
        CHECK(port && port->type == VALUE_INT && port->u.i == 64120, "port");
        CHECK(value_is_str(value_map_get(&out, "user"), "worker"), "user");
        CHECK(value_is_str(value_map_get(&out, "password"), "s3cr\xef\xbf\xbdt"), "password");
        CHECK(value_is_str(value_map_get(&out, "@type"), "AgentJobSSHDebug"), "type");
        value_deinit(&out);
    }
    // port as uint16 (cd fa 78), like msgpack-python.
    static const char port_bytes[] = "\xa4port\xcd\xfa\x78";
    CHECK(memmem(sb.data, sb.size, port_bytes, sizeof port_bytes - 1) != NULL, "port bytes");
    msgpack_sbuffer_clear(&sb);
    CHECK(backend_encode_ssh_debug(&sb, "j", "h", 70000, "u", "p") == -EINVAL, "port range");

    msgpack_sbuffer_clear(&sb);
    CHECK(backend_encode_pong(&sb) == 0, "pong");
    if (!check_msg(&sb, &out)) {
        CHECK(out.u.m.len == 1, "pong has only @type");
        value_deinit(&out);
    }
    msgpack_sbuffer_clear(&sb);
    CHECK(backend_encode_job_started(&sb, "x") == 0, "started");
    if (!check_msg(&sb, &out)) {
        CHECK(value_is_str(value_map_get(&out, "job_id"), "x"), "started job_id");
        value_deinit(&out);
    }
    msgpack_sbuffer_destroy(&sb);
}

// The checker itself must catch what would kill the backend.
static void test_agent_checker(void)
{
    char err[160];
    struct value out;
    static const char *const bad[] = {
        "\x81\xa5@type\xa4Ping",          // not an agent message
        "\x81\xa5@type\xa7Unknown",       // idem
        "\x82\xa5@type\xa4Pong\xa1x\x01", // @type not last, extra field
        "\x82\xa6job_id\x01\xa5@type\xaf"
        "AgentJobStarted", // int job_id
        "\x82\xa6job_id\xa1\xff\xa5@type\xaf"
        "AgentJobStarted", // invalid UTF-8
        "\x91\xa4Pong",    // not a map
    };
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        err[0] = '\0';
        int ret = backend_check_agent_msg(bad[i], strlen(bad[i]), &out, err, sizeof err);
        CHECK(ret == -EBADMSG, "bad %zu accepted", i);
        CHECK(out.type == VALUE_NIL, "bad %zu: out left", i);
    }
    // grade as int: forwarded by the backend but not what we promise.
    struct value v;
    value_set_map(&v);
    value_set_str(value_map_put(&v, "job_id"), "j");
    struct value *r = value_map_put(&v, "result");
    value_set_array(r);
    value_set_str(value_array_push(r), "success");
    value_set_str(value_array_push(r), "");
    value_set_int(value_map_put(&v, "grade"), 100);
    value_set_map(value_map_put(&v, "problems"));
    value_set_map(value_map_put(&v, "tests"));
    value_set_map(value_map_put(&v, "custom"));
    value_set_str(value_map_put(&v, "state"), "");
    value_set_nil(value_map_put(&v, "archive"));
    value_set_nil(value_map_put(&v, "stdout"));
    value_set_nil(value_map_put(&v, "stderr"));
    value_set_str(value_map_put(&v, "@type"), "AgentJobDone");
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    pack(&v, &sb);
    CHECK(backend_check_agent_msg(sb.data, sb.size, &out, err, sizeof err) == -EBADMSG,
          "int grade accepted");
    struct value *g = value_map_put(&v, "grade");
    value_set_float(g, 100.0);
    msgpack_sbuffer_clear(&sb);
    pack(&v, &sb);
    CHECK(backend_check_agent_msg(sb.data, sb.size, &out, err, sizeof err) == 0, "float grade: %s",
          err);
    value_deinit(&out);
    msgpack_sbuffer_destroy(&sb);
    value_deinit(&v);
}

int main(void)
{
    test_exact_bytes();
    test_new_job_round_trip();
    test_taskless_job();
    test_kill_job();
    test_strict_construction();
    test_non_map_and_bad_keys();
    test_truncated();
    test_msgpack_forms();
    test_decode_utf8_and_nul();
    test_huge_and_deep();
    test_hello();
    test_job_done_full();
    test_large_stdout();
    test_ssh_and_pong();
    test_agent_checker();
    return check_finish("test_backend_proto");
}
