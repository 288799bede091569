// The attach stream parsers (src/docker/docker_stream.h): Docker's stream
// demultiplexer, then the application framer on the stdout bytes, wired as
// the job code wires them.
// Properties: the input fed whole and the same input cut at fuzzer-chosen
// points give the same pieces (per stream, in order), the same messages and
// the same end state; both agree with a straightforward reference parser of
// the whole input; re-encoding the messages with msg_frame_encode gives back
// the stdout bytes they came from.
#include "docker/docker_stream.h"
#include "fuzz_common.h"

#define MAX_SPLITS 32

struct run {
    int stream;
    struct buf bytes;
};

struct transcript {
    struct run *runs; // pieces, adjacent pieces of one stream merged
    size_t nruns, cap;
    struct buf stdout_all; // what reached the framer
    struct buf msgs;       // each message: 4-byte length + body (msg_frame_encode)
    size_t nmsgs;
    bool demux_failed, at_boundary;
    bool framer_failed;
    size_t framer_pending;
};

static const size_t max_frames[] = {16, 300, 1u << 16, 1u << 30};
static const size_t max_msgs[] = {8, 100, 1u << 16, 1u << 24};

static void add_piece(struct transcript *t, int stream, const void *p, size_t n)
{
    FUZZ_CHECK(n > 0, "empty piece");
    FUZZ_CHECK(stream >= 0 && stream <= 2, "stream id %d", stream);
    if (t->nruns == 0 || t->runs[t->nruns - 1].stream != stream) {
        if (t->nruns == t->cap) {
            t->cap = t->cap ? 2 * t->cap : 16;
            t->runs = xrealloc(t->runs, t->cap * sizeof(*t->runs));
        }
        t->runs[t->nruns++] = (struct run){.stream = stream};
    }
    PROCTOR_REQUIRE(buf_append(&t->runs[t->nruns - 1].bytes, p, n, 0) == 0);
}

static void add_stdout(struct transcript *t, struct msg_framer *f, const void *p, size_t n)
{
    PROCTOR_REQUIRE(buf_append(&t->stdout_all, p, n, 0) == 0);
    if (t->framer_failed)
        return;
    FUZZ_CHECK(msg_framer_feed(f, p, n) == 0, "framer refused a feed after NEED_MORE");
    for (;;) {
        const void *msg;
        size_t len;
        enum framer_result r = msg_framer_next(f, &msg, &len);
        if (r == FRAMER_NEED_MORE)
            break;
        if (r == FRAMER_ERROR) {
            FUZZ_CHECK(msg_framer_error(f)[0] != '\0', "framer error without text");
            t->framer_failed = true;
            break;
        }
        FUZZ_CHECK(len > 0 && len <= f->max_msg, "message of %zu bytes (max %zu)", len, f->max_msg);
        PROCTOR_REQUIRE(msg_frame_encode(&t->msgs, msg, len) == 0);
        t->nmsgs++;
    }
}

// Runs the parsers over data cut into the given chunk sizes (the rest last).
static void run_parsers(struct transcript *t, const uint8_t *data, size_t size,
                        const size_t *splits, size_t nsplits, size_t max_frame, size_t max_msg)
{
    struct docker_demux d;
    struct msg_framer f;
    docker_demux_init(&d, max_frame);
    msg_framer_init(&f, max_msg);
    size_t off = 0;
    for (size_t c = 0; c <= nsplits && !t->demux_failed; c++) {
        size_t n = c < nsplits ? splits[c] : size - off;
        if (n > size - off)
            n = size - off;
        FUZZ_CHECK(docker_demux_feed(&d, data + off, n) == 0, "demux refused a feed");
        off += n;
        for (;;) {
            int stream;
            const void *p;
            size_t len;
            enum framer_result r = docker_demux_next(&d, &stream, &p, &len);
            if (r == FRAMER_NEED_MORE)
                break;
            if (r == FRAMER_ERROR) {
                FUZZ_CHECK(docker_demux_error(&d)[0] != '\0', "demux error without text");
                t->demux_failed = true;
                break;
            }
            add_piece(t, stream, p, len);
            if (stream == DOCKER_STDOUT)
                add_stdout(t, &f, p, len);
        }
    }
    t->at_boundary = !t->demux_failed && docker_demux_at_boundary(&d);
    t->framer_pending = t->framer_failed ? 0 : msg_framer_pending(&f);
    msg_framer_deinit(&f);
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

// The reference: the wire format read directly from the whole input.
static void reference(struct transcript *t, const uint8_t *data, size_t size, size_t max_frame,
                      size_t max_msg)
{
    size_t off = 0;
    t->at_boundary = true;
    while (off < size) {
        if (size - off < DOCKER_DEMUX_HEADER_LEN) {
            t->at_boundary = false;
            break;
        }
        const uint8_t *h = data + off;
        uint32_t len = be32(h + 4);
        if (h[0] > 2 || h[1] || h[2] || h[3] || len > max_frame) {
            t->demux_failed = true;
            t->at_boundary = false;
            break;
        }
        off += DOCKER_DEMUX_HEADER_LEN;
        size_t n = len < size - off ? len : size - off;
        if (n > 0) {
            add_piece(t, h[0], data + off, n);
            if (h[0] == DOCKER_STDOUT)
                PROCTOR_REQUIRE(buf_append(&t->stdout_all, data + off, n, 0) == 0);
        }
        off += n;
        if (n < len)
            t->at_boundary = false;
    }
    const uint8_t *s = (const uint8_t *)t->stdout_all.data;
    size_t so = 0, sn = t->stdout_all.len;
    while (sn - so >= MSG_FRAME_HEADER_LEN) {
        uint32_t len = be32(s + so);
        if (len == 0 || len > max_msg) {
            t->framer_failed = true;
            break;
        }
        if (sn - so - MSG_FRAME_HEADER_LEN < len)
            break;
        PROCTOR_REQUIRE(buf_append(&t->msgs, s + so, MSG_FRAME_HEADER_LEN + len, 0) == 0);
        t->nmsgs++;
        so += MSG_FRAME_HEADER_LEN + len;
    }
    t->framer_pending = t->framer_failed ? 0 : sn - so;
}

static bool same_buf(const struct buf *a, const struct buf *b)
{
    return a->len == b->len && (a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
}

static void compare(const struct transcript *a, const struct transcript *b, const char *what)
{
    FUZZ_CHECK(a->nruns == b->nruns, "%s: %zu vs %zu runs of pieces", what, a->nruns, b->nruns);
    for (size_t i = 0; i < a->nruns; i++)
        FUZZ_CHECK(a->runs[i].stream == b->runs[i].stream &&
                       same_buf(&a->runs[i].bytes, &b->runs[i].bytes),
                   "%s: run %zu differs", what, i);
    FUZZ_CHECK(a->nmsgs == b->nmsgs && same_buf(&a->msgs, &b->msgs),
               "%s: messages differ (%zu vs %zu)", what, a->nmsgs, b->nmsgs);
    FUZZ_CHECK(a->demux_failed == b->demux_failed, "%s: demux error differs", what);
    FUZZ_CHECK(a->at_boundary == b->at_boundary, "%s: end at boundary differs", what);
    FUZZ_CHECK(a->framer_failed == b->framer_failed, "%s: framer error differs", what);
    FUZZ_CHECK(a->framer_pending == b->framer_pending, "%s: pending %zu vs %zu", what,
               a->framer_pending, b->framer_pending);
}

static void transcript_free(struct transcript *t)
{
    for (size_t i = 0; i < t->nruns; i++)
        buf_deinit(&t->runs[i].bytes);
    free(t->runs);
    buf_deinit(&t->stdout_all);
    buf_deinit(&t->msgs);
    free(t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_in in = {data, size};
    uint8_t mode = fuzz_u8(&in);
    size_t max_frame = max_frames[mode & 3], max_msg = max_msgs[(mode >> 2) & 3];
    size_t splits[MAX_SPLITS];
    size_t nsplits = fuzz_splits(&in, splits, MAX_SPLITS);

    struct transcript *whole = xcalloc(1, sizeof(*whole));
    struct transcript *cut = xcalloc(1, sizeof(*cut));
    struct transcript *ref = xcalloc(1, sizeof(*ref));
    run_parsers(whole, in.p, in.n, NULL, 0, max_frame, max_msg);
    run_parsers(cut, in.p, in.n, splits, nsplits, max_frame, max_msg);
    reference(ref, in.p, in.n, max_frame, max_msg);
    compare(whole, cut, "whole vs cut");
    compare(whole, ref, "parsers vs reference");
    // Re-encoding the messages gives back the stdout bytes they were read from.
    FUZZ_CHECK(whole->msgs.len <= whole->stdout_all.len &&
                   (whole->msgs.len == 0 ||
                    memcmp(whole->msgs.data, whole->stdout_all.data, whole->msgs.len) == 0),
               "re-encoded messages are not a prefix of stdout");
    transcript_free(whole);
    transcript_free(cut);
    transcript_free(ref);
    return 0;
}
