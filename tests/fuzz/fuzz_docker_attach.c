// The attach connection (src/docker/docker_attach.c): its HTTP upgrade
// response parser, the refused-attach error body, and the demultiplexed
// stream after the upgrade. The parser is static and works on a socket, so
// the harness attaches through the public API to a scripted engine
// (fake_engine.h) whose whole response is the fuzzer's input.
// Properties: on_close exactly once, never data before on_ready nor after
// on_close; when the head is an upgrade (101/200), what on_data delivers is
// exactly the reference demultiplexing of the bytes after the head, and the
// close is clean (0) exactly when that reference ends at a frame boundary;
// a refused attach reports the HTTP status with a text.
#include "docker/docker_attach.h"
#include "docker/docker_client.h"
#include "docker/docker_stream.h"
#include "fake_engine.h"

#include "core/log.h"

static struct {
    struct loop *loop;
    struct docker_client *c;
    struct fake_engine engine;
} g;

struct outcome {
    bool ready;
    int closes;
    int err;
    struct buf streams[3];
};

static void on_ready(struct docker_attach *a, void *data)
{
    PROCTOR_UNUSED(a);
    struct outcome *o = data;
    FUZZ_CHECK(!o->ready && o->closes == 0, "on_ready twice or after on_close");
    o->ready = true;
}

static void on_data(struct docker_attach *a, int stream, const void *p, size_t n, void *data)
{
    PROCTOR_UNUSED(a);
    struct outcome *o = data;
    FUZZ_CHECK(o->ready && o->closes == 0, "data outside ready..close");
    FUZZ_CHECK(stream >= 0 && stream <= 2 && n > 0, "piece of stream %d, %zu bytes", stream, n);
    PROCTOR_REQUIRE(buf_append(&o->streams[stream], p, n, 0) == 0);
}

static void on_close(struct docker_attach *a, int err, const char *text, void *data)
{
    PROCTOR_UNUSED(a);
    struct outcome *o = data;
    FUZZ_CHECK(text != NULL, "close without text");
    o->closes++;
    o->err = err;
    loop_stop(g.loop);
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

// Docker's multiplexing read directly; true when it ends at a frame boundary.
static bool reference(const uint8_t *p, size_t n, size_t max_frame, struct buf streams[3])
{
    size_t off = 0;
    while (off < n) {
        if (n - off < DOCKER_DEMUX_HEADER_LEN)
            return false;
        const uint8_t *h = p + off;
        uint32_t len = be32(h + 4);
        if (h[0] > 2 || h[1] || h[2] || h[3] || len > max_frame)
            return false;
        off += DOCKER_DEMUX_HEADER_LEN;
        size_t k = len < n - off ? len : n - off;
        PROCTOR_REQUIRE(buf_append(&streams[h[0]], p + off, k, 0) == 0);
        off += k;
        if (k < len)
            return false;
    }
    return true;
}

static bool same_buf(const struct buf *a, const struct buf *b)
{
    return a->len == b->len && (a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    PROCTOR_UNUSED(argc);
    PROCTOR_UNUSED(argv);
    log_set_level(LOG_LEVEL_ERROR);
    g.loop = loop_new();
    PROCTOR_REQUIRE(g.loop);
    fake_engine_start(&g.engine, g.loop);
    char host[160];
    snprintf(host, sizeof(host), "unix://%s", g.engine.path);
    g.c = docker_client_new(g.loop, host);
    PROCTOR_REQUIRE(g.c);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_in in = {data, size};
    uint8_t mode = fuzz_u8(&in);
    struct docker_attach_opts opts = {
        .flags = (mode & 1) ? DOCKER_ATTACH_STDOUT | DOCKER_ATTACH_STDERR | DOCKER_ATTACH_TTY : 0,
        .max_frame = (mode & 2) ? 64 : 0,
    };
    size_t max_frame = opts.max_frame ? opts.max_frame : DOCKER_ATTACH_DEFAULT_MAX_FRAME;
    fake_engine_expect(&g.engine, in.p, in.n);
    struct outcome o = {0};
    const struct docker_attach_cbs cbs = {on_ready, on_data, on_close};
    struct docker_attach *a = docker_attach_new(g.c, "c1", &opts, &cbs, &o);
    FUZZ_CHECK(a != NULL, "attach not started");
    uint64_t deadline = loop_timer_add(g.loop, 10000, fake_engine_on_deadline, "10 s");
    loop_run(g.loop);
    loop_timer_del(g.loop, deadline);
    FUZZ_CHECK(o.closes == 1, "%d closes", o.closes);

    const char *end = memmem(in.p, in.n, "\r\n\r\n", 4);
    if (o.ready) {
        FUZZ_CHECK(end != NULL, "ready without a complete head");
        const uint8_t *body = (const uint8_t *)end + 4;
        size_t n = in.n - (size_t)(body - in.p);
        struct buf ref[3] = {{0}, {0}, {0}};
        bool clean;
        if (opts.flags & DOCKER_ATTACH_TTY) {
            clean = true; // a TTY stream is raw stdout
            PROCTOR_REQUIRE(buf_append(&ref[DOCKER_STDOUT], body, n, 0) == 0);
        } else {
            clean = reference(body, n, max_frame, ref);
        }
        for (int s = 0; s < 3; s++) {
            FUZZ_CHECK(same_buf(&ref[s], &o.streams[s]), "stream %d: %zu bytes, reference %zu", s,
                       o.streams[s].len, ref[s].len);
            buf_deinit(&ref[s]);
        }
        FUZZ_CHECK(clean == (o.err == 0), "close %d, reference clean %d", o.err, (int)clean);
    } else {
        FUZZ_CHECK(o.err != 0, "closed cleanly without an upgrade");
    }
    for (int s = 0; s < 3; s++)
        buf_deinit(&o.streams[s]);
    docker_attach_free(a);
    return 0;
}
