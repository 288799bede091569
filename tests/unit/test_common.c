// Unit tests of src/common: UTF-8 validation and repair, buffers, the
// application framer, base64 and the privilege-drop set-up.

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "common/base64.h"
#include "common/buf.h"
#include "common/framer.h"
#include "common/mp_head.h"
#include "common/privdrop.h"
#include "common/utf8.h"
#include "common/wire.h"

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

/* ---- UTF-8 ------------------------------------------------------------- */

static void hex(const char *s, size_t n, char *dst, size_t size)
{
    size_t o = 0;
    dst[0] = '\0';
    for (size_t i = 0; i < n && o + 3 < size; i++)
        o += (size_t)snprintf(dst + o, size - o, "%02x", (unsigned char)s[i]);
}

static void test_utf8_repair(void)
{
    static const struct {
        const char *in;
        size_t n;
        const char *out; // Python: in.decode("utf-8", "replace").encode()
        size_t outn;
    } cases[] = {
        {"abc", 3, "abc", 3},
        {"\xff", 1, "\xef\xbf\xbd", 3},
        {"a\xc3", 2, "a\xef\xbf\xbd", 4},
        {"\xe0\x80\x80", 3, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd", 9},
        {"\xe0\x80", 2, "\xef\xbf\xbd\xef\xbf\xbd", 6},
        {"\xed\xa0\x80", 3, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd", 9},
        {"\xf4\x90\x80\x80", 4, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd", 12},
        {"\xf0\x9f\x98", 3, "\xef\xbf\xbd", 3},
        {"\xf0\x9f\x98"
         "A",
         4,
         "\xef\xbf\xbd"
         "A",
         4},
        {"\xef\xbf"
         "q",
         3,
         "\xef\xbf\xbd"
         "q",
         4},
        {"\xc0\xaf", 2, "\xef\xbf\xbd\xef\xbf\xbd", 6},
        {"\xe2\x82\xacx\xe2\x82", 6, "\xe2\x82\xacx\xef\xbf\xbd", 7},
        {"\xf0\x9f\x98\x80\x80", 5, "\xf0\x9f\x98\x80\xef\xbf\xbd", 7},
        {"ok\xff\xc3\xa9\xe2\x82", 7, "ok\xef\xbf\xbd\xc3\xa9\xef\xbf\xbd", 10},
        {"", 0, "", 0},
        {"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9, "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9},
        {"nul\0ok", 6, "nul\0ok", 6},
        {"\xf5\x80", 2, "\xef\xbf\xbd\xef\xbf\xbd", 6},
    };
    for (size_t i = 0; i < N_OF(cases); i++) {
        size_t n = 0;
        char *s = utf8_repair_dup(cases[i].in, cases[i].n, &n);
        char got[128];
        hex(s ? s : "", s ? n : 0, got, sizeof got);
        REQUIRE(s, "case %zu: allocation", i);
        CHECK(n == cases[i].outn && !memcmp(s, cases[i].out, n) && s[n] == '\0', "case %zu: %s", i,
              got);
        CHECK_INT_EQ(utf8_repair_len(cases[i].in, cases[i].n), cases[i].outn);
        CHECK(utf8_valid(s, n), "case %zu: output valid", i);
        bool in_ok = n == cases[i].n && !memcmp(s, cases[i].in, n);
        CHECK(utf8_valid(cases[i].in, cases[i].n) == in_ok, "case %zu: validity", i);
        free(s);
    }
}

// Every code point encodes, and utf8_next reads it back whole; surrogates
// encode (CESU-style) but are not well-formed.
static void test_utf8_encode_next(void)
{
    int bad = 0;
    for (uint32_t cp = 0; cp <= 0x10FFFF && bad < 5; cp++) {
        char u[4];
        size_t n = utf8_encode(cp, u);
        bool ok;
        uint32_t back = 0;
        size_t m = utf8_next((const unsigned char *)u, n, &ok, &back);
        bool surrogate = cp >= 0xD800 && cp <= 0xDFFF;
        size_t want = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
        if (n != want || ok == surrogate || (ok && (m != n || back != cp))) {
            bad++;
            CHECK(0, "cp %#x: len %zu ok %d next %zu back %#x", (unsigned)cp, n, ok, m,
                  (unsigned)back);
        }
        // Every proper prefix of a multi-byte character is one ill-formed subpart.
        for (size_t k = 1; !surrogate && k < n; k++) {
            m = utf8_next((const unsigned char *)u, k, &ok, NULL);
            if (ok || m != k) {
                bad++;
                CHECK(0, "cp %#x prefix %zu: ok %d len %zu", (unsigned)cp, k, ok, m);
            }
        }
    }
    char u[4];
    CHECK(utf8_encode(0x110000, u) == 3 && !memcmp(u, UTF8_REPLACEMENT, 3), "past U+10FFFF");
}

// Two bytes, all 65536 pairs: the input is valid exactly when repair keeps
// it, and the repair is always valid and never longer than 3 bytes per byte.
static void test_utf8_pairs(void)
{
    int bad = 0;
    for (unsigned a = 0; a < 256 && bad < 5; a++) {
        for (unsigned b = 0; b < 256 && bad < 5; b++) {
            char in[2] = {(char)a, (char)b}, out[6];
            size_t n = utf8_repair_len(in, 2);
            if (n > sizeof out) {
                bad++;
                CHECK(0, "%02x %02x: repaired length %zu", a, b, n);
                continue;
            }
            size_t m = utf8_repair(in, 2, out);
            bool same = m == 2 && !memcmp(in, out, 2);
            if (m != n || !utf8_valid(out, m) || same != utf8_valid(in, 2)) {
                bad++;
                CHECK(0, "%02x %02x: len %zu/%zu same %d", a, b, m, n, same);
            }
        }
    }
}

/* ---- buf ---------------------------------------------------------------- */

static void test_buf(void)
{
    struct buf b = {0};
    CHECK(buf_add(&b, "", 0) == 0 && b.data && b.data[0] == '\0' && b.len == 0, "empty add");
    // Growth keeps the content and the NUL, one byte at a time past several doublings.
    for (int i = 0; i < 5000; i++)
        REQUIRE(buf_add(&b, &"0123456789"[i % 10], 1) == 0, "add %d", i);
    CHECK(b.len == 5000 && b.cap > 5000 && b.data[5000] == '\0', "len %zu cap %zu", b.len, b.cap);
    bool same = true;
    for (int i = 0; i < 5000; i++)
        same = same && b.data[i] == "0123456789"[i % 10];
    CHECK(same, "content after growth");
    // A limit refuses what would pass it and leaves the buffer as it was.
    CHECK(buf_append(&b, "abc", 3, 5002) == -ENOMEM && b.len == 5000, "over the limit");
    CHECK(buf_append(&b, "ab", 2, 5002) == 0 && b.len == 5002, "up to the limit");
    CHECK(buf_append(&b, "x", SIZE_MAX, 0) == -ENOMEM && b.len == 5002, "size overflow");
    buf_consume(&b, 4990);
    CHECK(b.len == 12 && !strcmp(b.data, "0123456789ab"), "consume: %s", b.data);
    buf_consume(&b, 100);
    CHECK(b.len == 0 && b.data[0] == '\0', "consume all");
    buf_deinit(&b);
    CHECK(!b.data && !b.len && !b.cap, "deinit");
    // reserve is exact and keeps a fresh buffer a C string.
    CHECK(buf_reserve(&b, 100) == 0 && b.cap == 101 && b.data[0] == '\0', "reserve");
    CHECK(buf_reserve(&b, SIZE_MAX) == -ENOMEM, "reserve SIZE_MAX");
    buf_add(&b, "hi", 2);
    buf_reset(&b);
    CHECK(b.len == 0 && b.cap == 101 && b.data[0] == '\0', "reset keeps storage");
    buf_deinit(&b);
}

/* ---- framer ------------------------------------------------------------- */

// Feeds `in` split at `cut` (and, when cut2 > cut, again at cut2) and
// collects every frame body into `out` as "<len>:<body>;".
static enum framer_result frame_split(const char *in, size_t n, size_t cut, size_t cut2, size_t max,
                                      struct buf *out)
{
    struct msg_framer f;
    msg_framer_init(&f, max);
    size_t cuts[] = {0, cut, cut2 > cut ? cut2 : cut, n};
    enum framer_result r = FRAMER_NEED_MORE;
    for (int i = 0; i < 3 && r != FRAMER_ERROR; i++) {
        REQUIRE_OR_EXIT(msg_framer_feed(&f, in + cuts[i], cuts[i + 1] - cuts[i]) == 0);
        const void *p;
        size_t len;
        while ((r = msg_framer_next(&f, &p, &len)) == FRAMER_FRAME) {
            char hdr[32];
            snprintf(hdr, sizeof hdr, "%zu:", len);
            REQUIRE_OR_EXIT(buf_add(out, hdr, strlen(hdr)) == 0 && buf_add(out, p, len) == 0 &&
                            buf_add(out, ";", 1) == 0);
        }
    }
    if (r == FRAMER_NEED_MORE && msg_framer_pending(&f))
        buf_add(out, "+pending", 8);
    msg_framer_deinit(&f);
    return r;
}

static void test_framer_every_split(void)
{
    struct buf in = {0}, want = {0};
    const char *bodies[] = {"a", "hello", "0123456789abcdef", "x"};
    for (size_t i = 0; i < 4; i++)
        REQUIRE(msg_frame_encode(&in, bodies[i], strlen(bodies[i])) == 0);
    REQUIRE(frame_split(in.data, in.len, 0, 0, 16, &want) == FRAMER_NEED_MORE);
    CHECK_STR_EQ(want.data, "1:a;5:hello;16:0123456789abcdef;1:x;");
    int bad = 0;
    for (size_t c1 = 0; c1 <= in.len && bad < 3; c1++) {
        for (size_t c2 = c1; c2 <= in.len && bad < 3; c2++) {
            struct buf got = {0};
            enum framer_result r = frame_split(in.data, in.len, c1, c2, 16, &got);
            if (r != FRAMER_NEED_MORE || got.len != want.len ||
                memcmp(got.data, want.data, got.len)) {
                bad++;
                CHECK(0, "cuts %zu,%zu: %s", c1, c2, got.data ? got.data : "");
            }
            buf_deinit(&got);
        }
    }
    // A stream that stops inside a frame leaves it pending, at every cut.
    for (size_t end = 1; end < 4 + 5; end++) {
        struct buf got = {0};
        frame_split(in.data + 5, end, 0, 0, 16, &got);
        CHECK(got.data && strstr(got.data, "+pending"), "cut at %zu: %s", end,
              got.data ? got.data : "");
        buf_deinit(&got);
    }
    buf_deinit(&in);
    buf_deinit(&want);
}

static void test_framer_errors_and_encode(void)
{
    struct buf got = {0};
    struct msg_framer f;
    const void *p;
    size_t n;
    msg_framer_init(&f, 4);
    msg_framer_feed(&f, "\0\0\0\0", 4);
    CHECK(msg_framer_next(&f, &p, &n) == FRAMER_ERROR && f.errnum == -EINVAL, "length 0");
    msg_framer_deinit(&f);
    msg_framer_init(&f, 4);
    msg_framer_feed(&f, "\0\0\0\5", 4);
    CHECK(msg_framer_next(&f, &p, &n) == FRAMER_ERROR && f.errnum == -EMSGSIZE, "over max");
    CHECK(strstr(msg_framer_error(&f), "too large") != NULL, "%s", msg_framer_error(&f));
    msg_framer_deinit(&f);
    // feed before next() said NEED_MORE is refused, nothing lost.
    msg_framer_init(&f, 4);
    CHECK(msg_framer_feed(&f, "\0\0\0\1a\0\0\0\1b", 10) == 0, "feed");
    CHECK(msg_framer_next(&f, &p, &n) == FRAMER_FRAME && n == 1 && *(const char *)p == 'a', "a");
    CHECK(msg_framer_feed(&f, "zz", 2) == -EBUSY, "busy");
    CHECK(msg_framer_next(&f, &p, &n) == FRAMER_FRAME && n == 1 && *(const char *)p == 'b', "b");
    CHECK(msg_framer_next(&f, &p, &n) == FRAMER_NEED_MORE, "drained");
    CHECK(f.msgs == 2, "counted %llu", (unsigned long long)f.msgs);
    msg_framer_deinit(&f);
    // encode: big-endian length; a failure leaves no half frame.
    CHECK(msg_frame_encode(&got, "abc", 3) == 0 && got.len == 7 &&
              !memcmp(got.data, "\0\0\0\3abc", 7),
          "encode");
    CHECK(framer_be32((const uint8_t *)"\x01\x02\x03\x04") == 0x01020304u, "be32");
    buf_deinit(&got);
}

/* ---- msgpack heads ------------------------------------------------------ */

static void test_mp_head(void)
{
    static const struct {
        const char *in;
        size_t n;
        enum mp_kind kind;
        size_t len;
        uint64_t u;
        int64_t i;
        double f;
    } cases[] = {
        {"\x00", 1, MP_UINT, 1, 0, 0, 0},
        {"\x7f", 1, MP_UINT, 1, 127, 0, 0},
        {"\xe0", 1, MP_INT, 1, 0, -32, 0},
        {"\xff", 1, MP_INT, 1, 0, -1, 0},
        {"\x8f", 1, MP_MAP, 1, 15, 0, 0},
        {"\x90", 1, MP_ARRAY, 1, 0, 0, 0},
        {"\xbf", 1, MP_STR, 1, 31, 0, 0},
        {"\xc0", 1, MP_NIL, 1, 0, 0, 0},
        {"\xc3", 1, MP_BOOL, 1, 1, 0, 0},
        {"\xc4\x05", 2, MP_BIN, 2, 5, 0, 0},
        {"\xc6\x00\x01\x00\x00", 5, MP_BIN, 5, 65536, 0, 0},
        {"\xca\x3f\xc0\x00\x00", 5, MP_FLOAT, 5, 0, 0, 1.5},
        {"\xcb\xc0\x04\x00\x00\x00\x00\x00\x00", 9, MP_FLOAT, 9, 0, 0, -2.5},
        {"\xcd\x01\x00", 3, MP_UINT, 3, 256, 0, 0},
        {"\xcf\xff\xff\xff\xff\xff\xff\xff\xff", 9, MP_UINT, 9, UINT64_MAX, 0, 0},
        {"\xd0\x80", 2, MP_INT, 2, 0, -128, 0},
        {"\xd1\x7f\xff", 3, MP_INT, 3, 0, 32767, 0},
        {"\xd2\x80\x00\x00\x00", 5, MP_INT, 5, 0, INT32_MIN, 0},
        {"\xd3\x80\x00\x00\x00\x00\x00\x00\x00", 9, MP_INT, 9, 0, INT64_MIN, 0},
        {"\xd9\x20", 2, MP_STR, 2, 32, 0, 0},
        {"\xda\x01\x00", 3, MP_STR, 3, 256, 0, 0},
        {"\xdd\x00\x01\x00\x00", 5, MP_ARRAY, 5, 65536, 0, 0},
        {"\xde\x00\x10", 3, MP_MAP, 3, 16, 0, 0},
    };
    for (size_t i = 0; i < N_OF(cases); i++) {
        struct mp_head h;
        int ret = mp_head_read(cases[i].in, cases[i].n, &h);
        CHECK(ret == 0 && h.kind == cases[i].kind && h.len == cases[i].len, "case %zu: %d", i, ret);
        if (h.kind == MP_INT)
            CHECK(h.i == cases[i].i, "case %zu: %lld", i, (long long)h.i);
        else if (h.kind == MP_FLOAT)
            CHECK(h.f == cases[i].f, "case %zu: %g", i, h.f);
        else
            CHECK(h.n == cases[i].u, "case %zu: %llu", i, (unsigned long long)h.n);
        // Every strict prefix of a head is "need more".
        for (size_t k = 0; k < cases[i].len; k++)
            CHECK(mp_head_read(cases[i].in, k, &h) == -EAGAIN, "case %zu prefix %zu", i, k);
    }
    // Exactly 0xc1 and the ext types are refused, from the type byte alone.
    for (unsigned t = 0; t < 256; t++) {
        unsigned char b = (unsigned char)t;
        struct mp_head h;
        bool refused = t == 0xc1 || (t >= 0xc7 && t <= 0xc9) || (t >= 0xd4 && t <= 0xd8);
        int ret = mp_head_read(&b, 1, &h);
        CHECK(refused ? ret == -EINVAL : ret == 0 || ret == -EAGAIN, "type %#x: %d", t, ret);
    }
}

/* ---- base64 ------------------------------------------------------------- */

static void test_base64(void)
{
    static const struct {
        const char *plain, *coded;
    } rfc[] = {{"", ""},
               {"f", "Zg=="},
               {"fo", "Zm8="},
               {"foo", "Zm9v"},
               {"foob", "Zm9vYg=="},
               {"fooba", "Zm9vYmE="},
               {"foobar", "Zm9vYmFy"}};
    for (size_t i = 0; i < N_OF(rfc); i++) {
        struct buf b = {0};
        CHECK(base64_encode(rfc[i].plain, strlen(rfc[i].plain), &b) == 0, "encode %zu", i);
        CHECK_STR_EQ(b.data ? b.data : "", rfc[i].coded);
        char *out = NULL;
        size_t n = 0;
        CHECK(base64_decode(rfc[i].coded, strlen(rfc[i].coded), &out, &n) == 0 &&
                  n == strlen(rfc[i].plain) && !memcmp(out, rfc[i].plain, n),
              "decode %zu", i);
        free(out);
        buf_deinit(&b);
    }
    // Every byte value, every length mod 3, through both directions.
    unsigned char all[256 + 2];
    for (size_t i = 0; i < sizeof all; i++)
        all[i] = (unsigned char)(i * 7 + 3);
    for (size_t len = 250; len <= sizeof all; len++) {
        struct buf b = {0};
        REQUIRE(base64_encode(all, len, &b) == 0);
        char *out = NULL;
        size_t n = 0;
        CHECK(b.len == (len + 2) / 3 * 4 && base64_decode(b.data, b.len, &out, &n) == 0 &&
                  n == len && !memcmp(out, all, len),
              "round trip of %zu bytes", len);
        free(out);
        buf_deinit(&b);
    }
    // The daemon's archive decoder: line breaks skipped, padding optional but exact.
    static const struct {
        const char *in;
        int ret;
        const char *out;
    } dec[] = {
        {"Zm9v\nYmFy\r\n", 0, "foobar"},
        {"Zm8", 0, "fo"},
        {"Zg", 0, "f"},
        {"Zm9vYg", 0, "foob"},
        {"Z", -EINVAL, NULL},
        {"Zg=", -EINVAL, NULL},
        {"Zg===", -EINVAL, NULL},
        {"Zg==Zg==", -EINVAL, NULL},
        {"Zm9v YmFy", -EINVAL, NULL},
        {"Zm9v*", -EINVAL, NULL},
        {"Zm-_", -EINVAL, NULL},
        {"\n\r", 0, ""},
    };
    for (size_t i = 0; i < N_OF(dec); i++) {
        char *out = NULL;
        size_t n = 0;
        int ret = base64_decode(dec[i].in, strlen(dec[i].in), &out, &n);
        CHECK(ret == dec[i].ret, "case %zu: %d", i, ret);
        if (!ret && dec[i].out)
            CHECK(n == strlen(dec[i].out) && !memcmp(out, dec[i].out, n), "case %zu", i);
        free(out);
    }
}

/* ---- privdrop ----------------------------------------------------------- */

// In a child (privdrop changes the process for good): as_root keeps the
// user, sets HOME and the process limit, and resets the signal state.
static void test_privdrop_prepare(void)
{
    pid_t pid = fork();
    REQUIRE(pid >= 0, "fork");
    if (pid == 0) {
        signal(SIGPIPE, SIG_IGN);
        sigset_t block;
        sigemptyset(&block);
        sigaddset(&block, SIGUSR1);
        sigprocmask(SIG_BLOCK, &block, NULL);
        privdrop_reset_signals();
        sigset_t now;
        sigprocmask(SIG_BLOCK, NULL, &now);
        struct sigaction sa;
        sigaction(SIGPIPE, NULL, &sa);
        bool ok = !sigismember(&now, SIGUSR1) && sa.sa_handler == SIG_DFL;
        uid_t uid = getuid();
        ok = ok && privdrop_prepare(WIRE_WORKER_ID, true, 321, WIRE_WORKER_HOME) == 0;
        struct rlimit lim;
        ok = ok && getrlimit(RLIMIT_NPROC, &lim) == 0 && lim.rlim_cur == 321 &&
             lim.rlim_max == 321 && getuid() == uid && !strcmp(getenv("HOME"), "/task");
        _exit(ok ? 0 : 1);
    }
    int status = 0;
    REQUIRE(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %d", status);
    if (geteuid() != 0) {
        // Without root, becoming another user fails with the errno kept.
        CHECK(privdrop_to(WIRE_WORKER_ID, false) == -EPERM, "privdrop_to as a user");
        return;
    }
    // As root: worker's uid and gid, worker's group alone, no_new_privs.
    pid = fork();
    REQUIRE(pid >= 0, "fork");
    if (pid == 0) {
        gid_t groups[8];
        bool ok = privdrop_to(WIRE_WORKER_ID, true) == 0 && getuid() == WIRE_WORKER_ID &&
                  geteuid() == WIRE_WORKER_ID && getgid() == WIRE_WORKER_ID &&
                  getgroups(8, groups) == 1 && groups[0] == WIRE_WORKER_ID &&
                  prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) == 1 && setuid(0) < 0;
        _exit(ok ? 0 : 1);
    }
    REQUIRE(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "root child status %d", status);
}

int main(void)
{
    test_utf8_repair();
    test_utf8_encode_next();
    test_utf8_pairs();
    test_buf();
    test_framer_every_split();
    test_framer_errors_and_encode();
    test_mp_head();
    test_base64();
    test_privdrop_prepare();
    return check_finish("common");
}
