// Unit tests for the attach-stream parsers: Docker multiplexing and the
// application length-prefix framing, fed in every way a socket can split or
// coalesce bytes.

#include "docker/docker_cgroup.h"
#include "docker/docker_stream.h"

#include "../check.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

// xorshift64: deterministic, so a failing split pattern can be reproduced.
static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static void put_docker_frame(struct buf *b, uint8_t stream, const void *p, size_t n)
{
    uint8_t hdr[8] = {stream,    0, 0, 0, (uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8),
                      (uint8_t)n};
    REQUIRE_OR_EXIT(buf_append(b, hdr, 8, 0) == 0);
    REQUIRE_OR_EXIT(buf_append(b, p, n, 0) == 0);
}

// Per-stream reassembly of what the demuxer hands out.
struct demux_out {
    struct buf s[3];
    size_t pieces;
    int result; // last non-FRAME result
};

static void demux_out_deinit(struct demux_out *o)
{
    for (int i = 0; i < 3; i++)
        buf_deinit(&o->s[i]);
}

// Feeds `data` to d in chunks chosen by `chunk` (0 = random 1..64).
static int demux_run(struct docker_demux *d, const uint8_t *data, size_t len, size_t chunk,
                     struct demux_out *o)
{
    size_t off = 0;
    while (off < len) {
        size_t n = chunk ? chunk : 1 + rng() % 64;
        if (n > len - off)
            n = len - off;
        if (docker_demux_feed(d, data + off, n) != 0)
            return -1;
        off += n;
        for (;;) {
            int stream = -1;
            const void *p = NULL;
            size_t plen = 0;
            enum framer_result r = docker_demux_next(d, &stream, &p, &plen);
            if (r != FRAMER_FRAME) {
                o->result = (int)r;
                if (r == FRAMER_ERROR)
                    return 0;
                break;
            }
            if (stream < 0 || stream > 2 || plen == 0)
                return -2;
            o->pieces++;
            REQUIRE_OR_EXIT(buf_append(&o->s[stream], p, plen, 0) == 0);
        }
    }
    return 0;
}

static void build_sample(struct buf *wire, struct buf *want_out, struct buf *want_err)
{
    static const char big_char = 'x';
    put_docker_frame(wire, 1, "hello ", 6);
    put_docker_frame(wire, 2, "warning\n", 8);
    put_docker_frame(wire, 1, "", 0);
    put_docker_frame(wire, 1, "world", 5);
    put_docker_frame(wire, 0, "", 0);
    REQUIRE_OR_EXIT(buf_append(want_out, "hello world", 11, 0) == 0);
    REQUIRE_OR_EXIT(buf_append(want_err, "warning\n", 8, 0) == 0);
    struct buf big = {0};
    for (int i = 0; i < 3000; i++)
        REQUIRE_OR_EXIT(buf_append(&big, &big_char, 1, 0) == 0);
    put_docker_frame(wire, 1, big.data, big.len);
    REQUIRE_OR_EXIT(buf_append(want_out, big.data, big.len, 0) == 0);
    put_docker_frame(wire, 2, "", 0);
    buf_deinit(&big);
}

static void test_demux_splits(void)
{
    struct buf wire = {0}, want_out = {0}, want_err = {0};
    build_sample(&wire, &want_out, &want_err);
    // chunk sizes: 1 byte at a time, header-splitting sizes, everything at once, random.
    size_t chunks[] = {1, 3, 7, 8, 9, 13, wire.len, 0, 0, 0};
    for (size_t ci = 0; ci < ARRAY_SIZE(chunks); ci++) {
        struct docker_demux d;
        struct demux_out o = {0};
        docker_demux_init(&d, 1 << 20);
        int rc = demux_run(&d, (const uint8_t *)wire.data, wire.len, chunks[ci], &o);
        bool ok = rc == 0 && o.result == FRAMER_NEED_MORE && o.s[1].len == want_out.len &&
                  !memcmp(o.s[1].data, want_out.data, want_out.len) && o.s[2].len == want_err.len &&
                  !memcmp(o.s[2].data, want_err.data, want_err.len) && o.s[0].len == 0 &&
                  d.frames == 7 && d.empty_frames == 3 && docker_demux_at_boundary(&d);
        demux_out_deinit(&o);
        if (!ok) {
            buf_deinit(&wire);
            buf_deinit(&want_out);
            buf_deinit(&want_err);
        }
        REQUIRE(ok, "chunk size %zu: rc %d result %d frames %llu empty %llu", chunks[ci], rc,
                o.result, (unsigned long long)d.frames, (unsigned long long)d.empty_frames);
    }
    // Split the input in two at every possible position.
    for (size_t cut = 1; cut < wire.len; cut++) {
        struct docker_demux d;
        struct demux_out o = {0};
        docker_demux_init(&d, 1 << 20);
        int rc = demux_run(&d, (const uint8_t *)wire.data, cut, cut, &o);
        if (rc == 0)
            rc = demux_run(&d, (const uint8_t *)wire.data + cut, wire.len - cut, 0, &o);
        bool ok = rc == 0 && o.s[1].len == want_out.len &&
                  !memcmp(o.s[1].data, want_out.data, want_out.len) && o.s[2].len == want_err.len;
        demux_out_deinit(&o);
        if (!ok) {
            buf_deinit(&wire);
            buf_deinit(&want_out);
            buf_deinit(&want_err);
        }
        REQUIRE(ok, "cut at %zu", cut);
    }
    buf_deinit(&wire);
    buf_deinit(&want_out);
    buf_deinit(&want_err);
}

static void test_demux_boundary_and_busy(void)
{
    struct docker_demux d;
    docker_demux_init(&d, 100);
    int stream;
    const void *p;
    size_t n;
    const uint8_t part[] = {1, 0, 0, 0, 0, 0};
    REQUIRE(docker_demux_at_boundary(&d), "fresh parser is at a boundary");
    REQUIRE(docker_demux_feed(&d, part, sizeof(part)) == 0, "feed");
    REQUIRE(docker_demux_feed(&d, part, sizeof(part)) == -EBUSY, "second feed before next");
    REQUIRE(docker_demux_next(&d, &stream, &p, &n) == FRAMER_NEED_MORE, "partial header");
    REQUIRE(!docker_demux_at_boundary(&d), "inside a header");
    const uint8_t rest[] = {0, 4, 'a', 'b'};
    REQUIRE(docker_demux_feed(&d, rest, sizeof(rest)) == 0, "feed rest");
    REQUIRE(docker_demux_next(&d, &stream, &p, &n) == FRAMER_FRAME, "payload piece");
    REQUIRE(stream == 1 && n == 2 && !memcmp(p, "ab", 2), "piece content");
    REQUIRE(docker_demux_next(&d, &stream, &p, &n) == FRAMER_NEED_MORE, "need more");
    REQUIRE(!docker_demux_at_boundary(&d), "inside a payload");
    REQUIRE(docker_demux_feed(&d, "cd", 2) == 0, "feed tail");
    REQUIRE(docker_demux_next(&d, &stream, &p, &n) == FRAMER_FRAME, "tail piece");
    REQUIRE(stream == 1 && n == 2 && !memcmp(p, "cd", 2), "tail content");
    REQUIRE(docker_demux_next(&d, &stream, &p, &n) == FRAMER_NEED_MORE, "drained");
    REQUIRE(docker_demux_at_boundary(&d), "frame done");
    REQUIRE(docker_demux_error(&d)[0] == '\0', "no error text");
}

static void expect_demux_error(const uint8_t *hdr, size_t max_frame, const char *what)
{
    struct docker_demux d;
    docker_demux_init(&d, max_frame);
    int stream;
    const void *p;
    size_t n;
    REQUIRE(docker_demux_feed(&d, hdr, 8) == 0, "%s: feed", what);
    REQUIRE(docker_demux_next(&d, &stream, &p, &n) == FRAMER_ERROR, "%s: error", what);
    REQUIRE(docker_demux_error(&d)[0] != '\0', "%s: error text", what);
    // Sticky: valid input afterwards is still refused.
    const uint8_t ok[] = {1, 0, 0, 0, 0, 0, 0, 1, 'z'};
    REQUIRE(docker_demux_feed(&d, ok, sizeof(ok)) == 0, "%s: feed after error", what);
    REQUIRE(docker_demux_next(&d, &stream, &p, &n) == FRAMER_ERROR, "%s: sticky", what);
}

static void test_demux_errors(void)
{
    const uint8_t bad_id[] = {3, 0, 0, 0, 0, 0, 0, 1};
    const uint8_t bad_id2[] = {0xff, 0, 0, 0, 0, 0, 0, 1};
    const uint8_t reserved[] = {1, 0, 1, 0, 0, 0, 0, 1};
    const uint8_t too_big[] = {1, 0, 0, 0, 0, 0, 0x10, 0x01}; // 4097
    const uint8_t huge[] = {2, 0, 0, 0, 0xff, 0xff, 0xff, 0xff};
    expect_demux_error(bad_id, 100, "stream id 3");
    expect_demux_error(bad_id2, 100, "stream id 255");
    expect_demux_error(reserved, 100, "reserved bytes");
    expect_demux_error(too_big, 4096, "over max_frame");
    expect_demux_error(huge, 1u << 30, "4 GiB frame");

    // Exactly max_frame is accepted.
    struct docker_demux d;
    docker_demux_init(&d, 4097);
    int stream;
    const void *p;
    size_t n;
    REQUIRE(docker_demux_feed(&d, too_big, 8) == 0, "feed");
    REQUIRE(docker_demux_next(&d, &stream, &p, &n) == FRAMER_NEED_MORE, "limit accepted");
}

// A 50 MB frame goes through in pieces with no buffering in the parser.
static void test_demux_large_frame(void)
{
    const size_t total = 50u * 1000 * 1000;
    static uint8_t chunk[65536];
    memset(chunk, 'q', sizeof(chunk));
    struct docker_demux d;
    docker_demux_init(&d, 64u << 20);
    const uint8_t hdr[] = {1,
                           0,
                           0,
                           0,
                           (uint8_t)(total >> 24),
                           (uint8_t)(total >> 16),
                           (uint8_t)(total >> 8),
                           (uint8_t)total};
    int stream;
    const void *p;
    size_t n, got = 0, pieces = 0;
    REQUIRE(docker_demux_feed(&d, hdr, sizeof(hdr)) == 0, "feed header");
    REQUIRE(docker_demux_next(&d, &stream, &p, &n) == FRAMER_NEED_MORE, "header only");
    while (got < total) {
        size_t want = total - got < sizeof(chunk) ? total - got : sizeof(chunk);
        REQUIRE(docker_demux_feed(&d, chunk, want) == 0, "feed payload");
        enum framer_result r;
        while ((r = docker_demux_next(&d, &stream, &p, &n)) == FRAMER_FRAME) {
            REQUIRE(stream == 1 && p >= (const void *)chunk &&
                        (const uint8_t *)p + n <= chunk + sizeof(chunk),
                    "piece points into the fed buffer");
            got += n;
            pieces++;
        }
        REQUIRE(r == FRAMER_NEED_MORE, "result %d", (int)r);
    }
    REQUIRE(got == total && docker_demux_at_boundary(&d), "got %zu of %zu", got, total);
    REQUIRE(pieces == (total + sizeof(chunk) - 1) / sizeof(chunk), "%zu pieces", pieces);
}

struct msgs {
    char *items[64];
    size_t lens[64];
    size_t n;
};

static void msgs_deinit(struct msgs *m)
{
    for (size_t i = 0; i < m->n; i++)
        free(m->items[i]);
    m->n = 0;
}

// Drains f into m; returns the final result.
static enum framer_result framer_drain(struct msg_framer *f, struct msgs *m)
{
    for (;;) {
        const void *p;
        size_t n;
        enum framer_result r = msg_framer_next(f, &p, &n);
        if (r != FRAMER_FRAME)
            return r;
        REQUIRE_OR_EXIT(m->n < ARRAY_SIZE(m->items));
        m->items[m->n] = xmalloc(n);
        memcpy(m->items[m->n], p, n);
        m->lens[m->n++] = n;
    }
}

static const char *const sample_msgs[] = {"a", "\x81\xa4type\xa5start", "0123456789abcdef",
                                          "\x00\x01\x02", "last message"};
static const size_t sample_lens[] = {1, 12, 16, 3, 12};

static void build_app_stream(struct buf *b)
{
    for (size_t i = 0; i < ARRAY_SIZE(sample_msgs); i++)
        REQUIRE_OR_EXIT(msg_frame_encode(b, sample_msgs[i], sample_lens[i]) == 0);
}

static bool msgs_match(const struct msgs *m)
{
    if (m->n != ARRAY_SIZE(sample_msgs))
        return false;
    for (size_t i = 0; i < m->n; i++)
        if (m->lens[i] != sample_lens[i] || memcmp(m->items[i], sample_msgs[i], m->lens[i]))
            return false;
    return true;
}

static void test_framer_splits(void)
{
    struct buf app = {0};
    build_app_stream(&app);
    size_t chunks[] = {1, 2, 3, 4, 5, 17, app.len, 0, 0, 0};
    for (size_t ci = 0; ci < ARRAY_SIZE(chunks); ci++) {
        struct msg_framer f;
        struct msgs m = {0};
        msg_framer_init(&f, 16);
        enum framer_result r = FRAMER_NEED_MORE;
        for (size_t off = 0; off < app.len && r == FRAMER_NEED_MORE;) {
            size_t n = chunks[ci] ? chunks[ci] : 1 + rng() % 20;
            if (n > app.len - off)
                n = app.len - off;
            REQUIRE_OR_EXIT(msg_framer_feed(&f, app.data + off, n) == 0);
            off += n;
            r = framer_drain(&f, &m);
        }
        bool ok = r == FRAMER_NEED_MORE && msgs_match(&m) && msg_framer_pending(&f) == 0;
        msgs_deinit(&m);
        msg_framer_deinit(&f);
        if (!ok)
            buf_deinit(&app);
        REQUIRE(ok, "chunk size %zu: result %d", chunks[ci], (int)r);
    }
    buf_deinit(&app);
}

static void test_framer_errors(void)
{
    struct msg_framer f;
    struct msgs m = {0};
    const void *p;
    size_t n;

    msg_framer_init(&f, 8);
    const uint8_t zero[] = {0, 0, 0, 0, 'x'};
    REQUIRE(msg_framer_feed(&f, zero, sizeof(zero)) == 0, "feed");
    REQUIRE(msg_framer_next(&f, &p, &n) == FRAMER_ERROR, "N == 0 is an error");
    REQUIRE(strstr(msg_framer_error(&f), "empty") != NULL, "text: %s", msg_framer_error(&f));
    msg_framer_deinit(&f);

    // Over the limit, header split over two feeds.
    msg_framer_init(&f, 8);
    const uint8_t big[] = {0, 0, 0, 9};
    REQUIRE(msg_framer_feed(&f, big, 2) == 0, "feed");
    REQUIRE(msg_framer_next(&f, &p, &n) == FRAMER_NEED_MORE, "half header");
    REQUIRE(msg_framer_pending(&f) == 2, "pending %zu", msg_framer_pending(&f));
    REQUIRE(msg_framer_feed(&f, big + 2, 2) == 0, "feed");
    REQUIRE(msg_framer_next(&f, &p, &n) == FRAMER_ERROR, "N > max is an error");
    REQUIRE(strstr(msg_framer_error(&f), "too large") != NULL, "text: %s", msg_framer_error(&f));
    REQUIRE(msg_framer_feed(&f, "\0\0\0\1x", 5) == 0, "feed after error");
    REQUIRE(msg_framer_next(&f, &p, &n) == FRAMER_ERROR, "sticky");
    msg_framer_deinit(&f);

    // A 4 GiB declaration fails at once, without allocating.
    msg_framer_init(&f, 1u << 20);
    REQUIRE(msg_framer_feed(&f, "\xff\xff\xff\xff", 4) == 0, "feed");
    REQUIRE(msg_framer_next(&f, &p, &n) == FRAMER_ERROR, "huge declaration");
    msg_framer_deinit(&f);

    // Exactly max_msg is accepted, also when collected byte by byte.
    msg_framer_init(&f, 8);
    const uint8_t exact[] = {0, 0, 0, 8, '1', '2', '3', '4', '5', '6', '7', '8'};
    enum framer_result r = FRAMER_NEED_MORE;
    for (size_t i = 0; i < sizeof(exact); i++) {
        REQUIRE_OR_EXIT(msg_framer_feed(&f, exact + i, 1) == 0);
        r = framer_drain(&f, &m);
    }
    bool ok =
        r == FRAMER_NEED_MORE && m.n == 1 && m.lens[0] == 8 && !memcmp(m.items[0], "12345678", 8);
    msgs_deinit(&m);
    msg_framer_deinit(&f);
    REQUIRE(ok, "max-size message");
}

// Application frames spanning Docker frames, interleaved with stderr and empty
// frames, and the wire fed in random pieces.
static void test_layers(void)
{
    struct buf app = {0}, wire = {0};
    build_app_stream(&app);
    for (size_t off = 0; off < app.len;) {
        size_t n = 1 + rng() % 9;
        if (n > app.len - off)
            n = app.len - off;
        put_docker_frame(&wire, 1, app.data + off, n);
        off += n;
        if (rng() % 3 == 0)
            put_docker_frame(&wire, 2, "noise", 5);
        if (rng() % 4 == 0)
            put_docker_frame(&wire, 1, "", 0);
    }
    for (int round = 0; round < 50; round++) {
        struct docker_demux d;
        struct msg_framer f;
        struct msgs m = {0};
        docker_demux_init(&d, 64);
        msg_framer_init(&f, 16);
        bool ok = true;
        for (size_t off = 0; off < wire.len && ok;) {
            size_t n = 1 + rng() % 23;
            if (n > wire.len - off)
                n = wire.len - off;
            REQUIRE_OR_EXIT(docker_demux_feed(&d, wire.data + off, n) == 0);
            off += n;
            int stream;
            const void *p;
            size_t plen;
            enum framer_result r;
            while ((r = docker_demux_next(&d, &stream, &p, &plen)) == FRAMER_FRAME) {
                if (stream != 1)
                    continue;
                REQUIRE_OR_EXIT(msg_framer_feed(&f, p, plen) == 0);
                ok = ok && framer_drain(&f, &m) == FRAMER_NEED_MORE;
            }
            ok = ok && r == FRAMER_NEED_MORE;
        }
        ok = ok && msgs_match(&m) && docker_demux_at_boundary(&d) && msg_framer_pending(&f) == 0;
        msgs_deinit(&m);
        msg_framer_deinit(&f);
        if (!ok) {
            buf_deinit(&app);
            buf_deinit(&wire);
        }
        REQUIRE(ok, "round %d", round);
    }
    buf_deinit(&app);
    buf_deinit(&wire);
}

static void test_encode(void)
{
    struct buf b = {0};
    REQUIRE(msg_frame_encode(&b, "abc", 3) == 0, "encode");
    bool ok = b.len == 7 && !memcmp(b.data, "\0\0\0\3abc", 7);
    // 0x01020304 bytes would take 16 MiB; check the byte order on a 258-byte message.
    static char body[258];
    ok = ok && msg_frame_encode(&b, body, sizeof(body)) == 0 && b.len == 7 + 4 + 258 &&
         (uint8_t)b.data[7] == 0 && (uint8_t)b.data[8] == 0 && (uint8_t)b.data[9] == 1 &&
         (uint8_t)b.data[10] == 2;
    buf_deinit(&b);
    REQUIRE(ok, "big-endian header");
}

/** The key-value files of cgroups: v1 memory.oom_control, v2 memory.events and cpu.stat. */
static void test_cgroup_kv(void)
{
    uint64_t v = 7;
    CHECK(docker_cgroup_kv("oom_kill_disable 0\nunder_oom 0\noom_kill 3\n", "oom_kill", &v) == 0 &&
              v == 3,
          "v1 oom_control: %llu", (unsigned long long)v);
    CHECK(docker_cgroup_kv("low 0\nhigh 0\nmax 5\noom 2\noom_kill 1\noom_group_kill 0\n",
                           "oom_kill", &v) == 0 &&
              v == 1,
          "v2 memory.events: %llu", (unsigned long long)v);
    CHECK(docker_cgroup_kv("oom_group_kill 4\noom_kill 0", "oom_kill", &v) == 0 && v == 0,
          "a longer key with the same start is not the key, last line without newline");
    CHECK(docker_cgroup_kv("usage_usec 1234\nuser_usec 1000\n", "usage_usec", &v) == 0 && v == 1234,
          "cpu.stat");
    CHECK(docker_cgroup_kv("oom_kill_disable 0\nunder_oom 0\n", "oom_kill", &v) == -EIO,
          "an old kernel without the line");
    CHECK(docker_cgroup_kv("oom_kill x\n", "oom_kill", &v) == -EIO, "not a number");
    CHECK(docker_cgroup_kv("oom_kill -1\n", "oom_kill", &v) == -EIO, "negative");
    CHECK(docker_cgroup_kv("oom_kill 2x\n", "oom_kill", &v) == -EIO, "trailing junk");
    CHECK(docker_cgroup_kv("oom_kill 99999999999999999999999\n", "oom_kill", &v) == -EIO,
          "overflow");
    CHECK(docker_cgroup_kv("", "oom_kill", &v) == -EIO, "empty");
}

int main(void)
{
    test_demux_splits();
    test_demux_boundary_and_busy();
    test_demux_errors();
    test_demux_large_frame();
    test_framer_splits();
    test_framer_errors();
    test_layers();
    test_encode();
    test_cgroup_kv();
    return check_finish("test_docker_stream");
}
