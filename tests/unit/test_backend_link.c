// Unit tests of backend_link against an in-process ROUTER standing in for
// the backend: it injects what the real backend never sends on demand
// (garbage, unknown types, multipart frames, a vanished peer) and lets us
// check routing ids, the Ping->Pong reflex, the send queue and the silence
// rule. The real backend is exercised by tests/integration/test_backend_link.py.

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <zmq.h>

#include "check.h"
#include "backend/backend_link.h"
#include "backend/backend_proto.h"
#include "core/loop.h"
#include "core/util.h"

#define MAX_RX 64

// What the fake backend received: routing id + decoded payload.
struct rx {
    char id[256];
    size_t idlen;
    struct value msg;
};

struct fake {
    void *ctx;
    void *router;
    int fd;
    char endpoint[64];
    struct rx rx[MAX_RX];
    size_t nrx;
    size_t npong; /* all Pongs, including those past MAX_RX */
    int bad;      /* payloads backend_check_agent_msg refused */
};

struct agent {
    struct backend_link *link;
    int new_jobs, kills, silences, disconnects, connects;
    char last_job[64];
};

struct wait {
    struct loop *loop;
    struct fake *fake;
    struct agent *agent;
    bool (*pred)(struct wait *w);
    size_t want;
    bool met;
    uint64_t deadline;
};

static struct loop *loop;

static void fake_reset_rx(struct fake *f)
{
    for (size_t i = 0; i < f->nrx; i++)
        value_deinit(&f->rx[i].msg);
    f->nrx = 0;
}

static void fake_drain(struct fake *f)
{
    for (;;) {
        int events = 0;
        size_t sz = sizeof events;
        if (zmq_getsockopt(f->router, ZMQ_EVENTS, &events, &sz) < 0 || !(events & ZMQ_POLLIN))
            return;
        zmq_msg_t id, payload;
        zmq_msg_init(&id);
        zmq_msg_init(&payload);
        if (zmq_msg_recv(&id, f->router, ZMQ_DONTWAIT) < 0 ||
            zmq_msg_recv(&payload, f->router, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&id);
            zmq_msg_close(&payload);
            return;
        }
        CHECK(!zmq_msg_more(&payload), "agent sent more than one frame");
        if (f->nrx == MAX_RX) {
            // Only count from here on.
            fake_reset_rx(f);
        }
        {
            struct rx *r = &f->rx[f->nrx];
            char err[160] = "";
            r->idlen = zmq_msg_size(&id) < sizeof r->id ? zmq_msg_size(&id) : sizeof r->id;
            memcpy(r->id, zmq_msg_data(&id), r->idlen);
            if (backend_check_agent_msg(zmq_msg_data(&payload), zmq_msg_size(&payload), &r->msg,
                                        err, sizeof err)) {
                f->bad++;
                fprintf(stderr, "agent sent an invalid message: %s\n", err);
            } else {
                f->npong += value_is_str(value_map_get(&r->msg, "@type"), "Pong");
                f->nrx++;
            }
        }
        zmq_msg_close(&id);
        zmq_msg_close(&payload);
    }
}

static void fake_on_fd(struct loop *l, int fd, unsigned events, void *data)
{
    PROCTOR_UNUSED(l);
    PROCTOR_UNUSED(fd);
    PROCTOR_UNUSED(events);
    fake_drain(data);
}

static void fake_bind(struct fake *f)
{
    f->router = zmq_socket(f->ctx, ZMQ_ROUTER);
    REQUIRE_OR_EXIT(f->router);
    int zero = 0;
    zmq_setsockopt(f->router, ZMQ_LINGER, &zero, sizeof zero);
    if (!f->endpoint[0]) {
        REQUIRE_OR_EXIT(zmq_bind(f->router, "tcp://127.0.0.1:*") == 0);
        size_t sz = sizeof f->endpoint;
        REQUIRE_OR_EXIT(zmq_getsockopt(f->router, ZMQ_LAST_ENDPOINT, f->endpoint, &sz) == 0);
    } else {
        REQUIRE_OR_EXIT(zmq_bind(f->router, f->endpoint) == 0);
    }
    size_t sz = sizeof f->fd;
    REQUIRE_OR_EXIT(zmq_getsockopt(f->router, ZMQ_FD, &f->fd, &sz) == 0);
    REQUIRE_OR_EXIT(loop_fd_add(loop, f->fd, LOOP_READ, fake_on_fd, f) == 0);
}

static void fake_unbind(struct fake *f)
{
    loop_fd_del(loop, f->fd);
    zmq_close(f->router);
    f->router = NULL;
}

// Sends frames to the peer with routing id `to`; each frame is (bytes, len).
static void fake_send(struct fake *f, const struct rx *to, const char *const *frames,
                      const size_t *lens, size_t n)
{
    REQUIRE_OR_EXIT(zmq_send(f->router, to->id, to->idlen, ZMQ_SNDMORE) >= 0);
    for (size_t i = 0; i < n; i++)
        REQUIRE_OR_EXIT(zmq_send(f->router, frames[i], lens[i], i + 1 < n ? ZMQ_SNDMORE : 0) >= 0);
    fake_drain(f); // a send consumes the ZMQ_FD edge too
}

static void fake_send1(struct fake *f, const struct rx *to, const char *bytes, size_t len)
{
    fake_send(f, to, &bytes, &len, 1);
}

static const char *rx_type(const struct rx *r)
{
    const struct value *t = value_map_get(&r->msg, "@type");
    return t && t->type == VALUE_STR ? t->u.s.ptr : "?";
}

/* ---- agent callbacks --------------------------------------------------- */

static void on_message(struct backend_link *link, const struct backend_msg *m, void *data)
{
    PROCTOR_UNUSED(link);
    struct agent *a = data;
    CHECK(m->type == BACKEND_MSG_NEW_JOB || m->type == BACKEND_MSG_KILL_JOB, "delivered a %s",
          backend_msg_type_name(m->type));
    if (m->type == BACKEND_MSG_NEW_JOB) {
        a->new_jobs++;
        util_strlcpy(a->last_job, m->new_job.job_id, sizeof a->last_job);
    } else if (m->type == BACKEND_MSG_KILL_JOB) {
        a->kills++;
    }
}

static void on_silence(struct backend_link *link, void *data)
{
    PROCTOR_UNUSED(link);
    struct agent *a = data;
    a->silences++;
}

static void on_disconnect(struct backend_link *link, void *data)
{
    PROCTOR_UNUSED(link);
    struct agent *a = data;
    a->disconnects++;
}

static void on_connect(struct backend_link *link, void *data)
{
    PROCTOR_UNUSED(link);
    struct agent *a = data;
    a->connects++;
}

/* ---- waiting on events ------------------------------------------------- */

static long wait_tick(struct loop *l, uint64_t id, void *data)
{
    PROCTOR_UNUSED(id);
    struct wait *w = data;
    fake_drain(w->fake);
    if (w->pred(w)) {
        w->met = true;
        loop_stop(l);
        return LOOP_NOMORE;
    }
    if (util_now_ms() > w->deadline) {
        loop_stop(l);
        return LOOP_NOMORE;
    }
    return 5;
}

// Runs the loop until pred holds or timeout_ms pass; true if it held.
static bool run_until(struct fake *f, struct agent *a, bool (*pred)(struct wait *), size_t want,
                      long timeout_ms)
{
    struct wait w = {loop, f, a, pred, want, false, util_now_ms() + (uint64_t)timeout_ms};
    uint64_t t = loop_timer_add(loop, 0, wait_tick, &w);
    loop_run(loop);
    loop_timer_del(loop, t);
    return w.met;
}

static bool got_msgs(struct wait *w)
{
    return w->fake->nrx >= w->want;
}

static bool got_pongs(struct wait *w)
{
    return w->fake->npong >= w->want;
}

static bool got_jobs(struct wait *w)
{
    return (size_t)w->agent->new_jobs >= w->want;
}

static bool got_silences(struct wait *w)
{
    return (size_t)w->agent->silences >= w->want;
}

static bool got_disconnects(struct wait *w)
{
    return (size_t)w->agent->disconnects >= w->want;
}

static bool got_connects(struct wait *w)
{
    return (size_t)w->agent->connects >= w->want;
}

static bool queue_below(struct wait *w)
{
    return backend_link_queued(w->agent->link) < w->want;
}

/* ---- helpers ----------------------------------------------------------- */

static void send_hello(struct agent *a)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    REQUIRE_OR_EXIT(backend_encode_hello(&sb, "unit", 2, NULL) == 0);
    CHECK(backend_link_send(a->link, &sb) == 0, "send hello");
    msgpack_sbuffer_destroy(&sb);
}

static void pack_value(const struct value *v, msgpack_sbuffer *sb)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    REQUIRE_OR_EXIT(value_pack(&pk, v) == 0);
}

static void new_job_bytes(const char *job_id, msgpack_sbuffer *sb)
{
    struct value v;
    value_set_map(&v);
    value_set_str(value_map_put(&v, "job_id"), job_id);
    value_set_str(value_map_put(&v, "course_id"), "c");
    value_set_str(value_map_put(&v, "task_id"), "t");
    value_set_map(value_map_put(&v, "task_problems"));
    value_set_map(value_map_put(&v, "inputdata"));
    value_set_str(value_map_put(&v, "environment_type"), "docker");
    value_set_str(value_map_put(&v, "environment"), "default");
    value_set_map(value_map_put(&v, "environment_parameters"));
    value_set_bool(value_map_put(&v, "debug"), false);
    value_set_str(value_map_put(&v, "@type"), "BackendNewJob");
    pack_value(&v, sb);
    value_deinit(&v);
}

static const char ping[] = "\x81\xa5@type\xa4Ping";

/* ---- tests ------------------------------------------------------------- */

static void test_exchange(struct fake *f, struct agent *a)
{
    send_hello(a);
    CHECK(run_until(f, a, got_msgs, 1, 5000), "no hello received");
    CHECK(f->nrx >= 1 && !strcmp(rx_type(&f->rx[0]), "AgentHello"), "first is %s",
          f->nrx ? rx_type(&f->rx[0]) : "-");
    struct rx peer = f->rx[0];
    value_set_nil(&peer.msg); // keep only the routing id
    CHECK(peer.idlen == 5 && peer.id[0] == 0, "routing id assigned by the ROUTER (len %zu)",
          peer.idlen);

    // Ping -> Pong, answered by the link itself.
    fake_send1(f, &peer, ping, sizeof ping - 1);
    CHECK(run_until(f, a, got_pongs, 1, 5000), "no pong");
    CHECK(f->nrx >= 2 && f->rx[1].idlen == peer.idlen && !memcmp(f->rx[1].id, peer.id, peer.idlen),
          "pong from the same peer");

    // A job is delivered.
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    new_job_bytes("job-1", &sb);
    fake_send1(f, &peer, sb.data, sb.size);
    CHECK(run_until(f, a, got_jobs, 1, 5000), "no job delivered");
    CHECK(!strcmp(a->last_job, "job-1"), "job id %s", a->last_job);

    // Garbage of every kind is dropped; the link keeps answering.
    static const char *const junk[] = {
        "",                               // empty frame
        "\xc1",                           // invalid msgpack
        "\x91\xa4Ping",                   // not a map
        "\x81\xa5@type\xa7Unknown",       // unknown type
        "\x81\xa5@type\xa4Pong",          // agent-side type
        "\x82\xa5@type\xa4Ping\xa1x\xc0", // extra field
        "\x82\xa6job_id\xa1j\xa5@type\xae"
        "BackendKillJob",      // missing state
        "\x81\xa5@type\xa4Pi", // truncated
    };
    for (size_t i = 0; i < ARRAY_SIZE(junk); i++)
        fake_send1(f, &peer, junk[i], strlen(junk[i]));
    // Multipart: only frame 0 counts (a job), the rest is ignored.
    msgpack_sbuffer_clear(&sb);
    new_job_bytes("job-2", &sb);
    const char *frames[] = {sb.data, "trailing"};
    size_t lens[] = {sb.size, 8};
    fake_send(f, &peer, frames, lens, 2);
    fake_send1(f, &peer, ping, sizeof ping - 1);
    CHECK(run_until(f, a, got_pongs, 2, 5000), "no pong after junk");
    CHECK(a->new_jobs == 2 && !strcmp(a->last_job, "job-2"), "multipart job (%d, %s)", a->new_jobs,
          a->last_job);
    CHECK(a->kills == 0, "kills %d", a->kills);

    // A burst larger than one drain budget is fully handled.
    for (int i = 0; i < 600; i++)
        fake_send1(f, &peer, ping, sizeof ping - 1);
    CHECK(run_until(f, a, got_pongs, 602, 10000), "burst: %zu pongs", f->npong);
    msgpack_sbuffer_destroy(&sb);
    CHECK(f->bad == 0, "%d invalid agent messages", f->bad);
}

static void test_reconnect(struct fake *f, struct agent *a)
{
    fake_reset_rx(f);
    send_hello(a);
    CHECK(run_until(f, a, got_msgs, 1, 5000), "hello before reconnect");
    struct rx old = f->rx[0];
    value_set_nil(&old.msg);
    fake_reset_rx(f);

    CHECK(backend_link_reconnect(a->link) == 0, "reconnect");
    send_hello(a);
    CHECK(run_until(f, a, got_msgs, 1, 5000), "hello after reconnect");
    CHECK(f->nrx >= 1 && (f->rx[0].idlen != old.idlen || memcmp(f->rx[0].id, old.id, old.idlen)),
          "new routing id after reconnect");
    CHECK(f->nrx >= 1 && !strcmp(rx_type(&f->rx[0]), "AgentHello"), "hello first");

    // The old routing id is gone: a ping to it is lost and no pong comes back,
    // while the new one still answers.
    struct rx cur = f->rx[0];
    value_set_nil(&cur.msg);
    size_t pongs = f->npong;
    fake_send1(f, &cur, ping, sizeof ping - 1);
    CHECK(run_until(f, a, got_pongs, pongs + 1, 5000), "pong on the new id");
}

static void test_silence(struct fake *f, struct agent *a)
{
    // Nothing from the backend for longer than the threshold.
    backend_link_set_silence_ms(a->link, 200);
    int before = a->silences;
    uint64_t t0 = util_now_ms();
    CHECK(run_until(f, a, got_silences, (size_t)before + 1, 5000), "no silence reported");
    uint64_t dt = util_now_ms() - t0;
    CHECK(dt >= 200, "silence reported after %llu ms", (unsigned long long)dt);
    // Traffic keeps it quiet: answer pings for a while, no new report.
    fake_reset_rx(f);
    send_hello(a);
    CHECK(run_until(f, a, got_msgs, 1, 5000), "hello");
    struct rx peer = f->rx[0];
    value_set_nil(&peer.msg);
    backend_link_set_silence_ms(a->link, 1500);
    int now = a->silences;
    size_t pongs = f->npong;
    for (int i = 0; i < 4; i++) {
        fake_send1(f, &peer, ping, sizeof ping - 1);
        CHECK(run_until(f, a, got_pongs, pongs + (size_t)i + 1, 5000), "pong %d", i);
        // Let most of a check period pass between pings, driven by the loop.
        uint64_t until = util_now_ms() + 600;
        while (util_now_ms() < until)
            run_until(f, a, got_silences, (size_t)now + 1, (long)(until - util_now_ms()));
    }
    CHECK(a->silences == now, "silence reported while pinged (%d -> %d)", now, a->silences);
    backend_link_set_silence_ms(a->link, BACKEND_LINK_SILENCE_MS);
}

static void test_monitor(struct fake *f, struct agent *a)
{
    int disc = a->disconnects, conn = a->connects;
    fake_unbind(f);
    CHECK(run_until(f, a, got_disconnects, (size_t)disc + 1, 5000), "no disconnect event");
    fake_reset_rx(f);
    fake_bind(f);
    // libzmq reconnects the DEALER by itself; the link reports it.
    CHECK(run_until(f, a, got_connects, (size_t)conn + 1, 10000), "no connect event");
    send_hello(a);
    CHECK(run_until(f, a, got_msgs, 1, 5000), "hello to the new backend");
}

static void test_queue_bound(void)
{
    // Nobody listens there: libzmq takes up to its HWM, we keep the rest.
    struct agent a = {0};
    struct backend_link_cb cb = {.on_message = on_message, .on_silence = on_silence};
    a.link = backend_link_new(loop, "tcp://127.0.0.1:1", &cb, &a);
    CHECK(a.link != NULL, "link");
    if (!a.link)
        return;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    REQUIRE_OR_EXIT(backend_encode_pong(&sb) == 0);
    int ok = 0, full = 0;
    for (int i = 0; i < BACKEND_LINK_QUEUE_MAX_MSGS + 100; i++) {
        int r = backend_link_send(a.link, &sb);
        ok += r == 0;
        full += r == -ENOBUFS;
    }
    CHECK(ok == BACKEND_LINK_QUEUE_MAX_MSGS && full == 100, "ok %d full %d", ok, full);
    // Nothing is handed to libzmq outside the loop's before-sleep hook.
    CHECK(backend_link_queued(a.link) == BACKEND_LINK_QUEUE_MAX_MSGS, "queued %zu",
          backend_link_queued(a.link));
    msgpack_sbuffer_destroy(&sb);
    backend_link_free(a.link);
}

static void test_queue_flush(struct fake *f)
{
    struct agent a = {0};
    struct backend_link_cb cb = {.on_message = on_message, .on_silence = on_silence};
    a.link = backend_link_new(loop, "tcp://127.0.0.1:1", &cb, &a);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    REQUIRE_OR_EXIT(backend_encode_pong(&sb) == 0);
    for (int i = 0; i < 3000; i++)
        backend_link_send(a.link, &sb);
    CHECK(run_until(f, &a, queue_below, 3000, 5000), "hook never flushed");
    size_t q = backend_link_queued(a.link);
    // The DEALER's pipe holds its HWM (1000) while unconnected; the rest waits.
    CHECK(q > 0 && q < 3000, "queued %zu after a flush", q);
    CHECK(backend_link_reconnect(a.link) == 0 && backend_link_queued(a.link) == 0,
          "reconnect drops the queue");
    msgpack_sbuffer_destroy(&sb);
    backend_link_free(a.link);
}

int main(void)
{
    loop = loop_new();
    REQUIRE_OR_EXIT(loop);
    struct fake f = {0};
    f.ctx = zmq_ctx_new();
    fake_bind(&f);

    struct agent a = {0};
    struct backend_link_cb cb = {.on_message = on_message,
                                 .on_silence = on_silence,
                                 .on_disconnect = on_disconnect,
                                 .on_connect = on_connect};
    a.link = backend_link_new(loop, f.endpoint, &cb, &a);
    REQUIRE_OR_EXIT(a.link);

    test_exchange(&f, &a);
    test_reconnect(&f, &a);
    test_silence(&f, &a);
    test_monitor(&f, &a);
    backend_link_free(a.link);
    backend_link_free(NULL);

    test_queue_bound();
    test_queue_flush(&f);

    fake_reset_rx(&f);
    fake_unbind(&f);
    zmq_ctx_term(f.ctx);
    loop_free(loop);
    return check_finish("test_backend_link");
}
