#include "backend/backend_link.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <zmq.h>

#include "core/log.h"
#include "core/metrics.h"
#include "core/util.h"

// Frames handled per pump before yielding to the rest of the loop, so that a
// flooding peer cannot starve jobs; a 0 ms timer brings us back at once.
#define DRAIN_BUDGET 256
#define HEX_PREFIX 32

// A queued frame is already a zmq_msg_t: large results are handed to libzmq
// without another copy (zmq_msg_init_data), and survive EAGAIN untouched.
struct link_msg {
    struct link_msg *next;
    size_t len;
    bool pong;
    zmq_msg_t msg;
};

struct backend_link {
    struct loop *loop;
    char *addr;
    struct backend_link_cb cb;
    void *data;
    void *ctx;
    void *sock; /* DEALER; NULL after a failed reconnect */
    int sock_fd;
    void *mon;                 /* PAIR reading the socket monitor; may be NULL */
    unsigned long connections; /* CONNECTED events so far */
    int mon_fd;
    unsigned gen; /* bumped whenever the socket is replaced */
    uint64_t last_rx_ms;
    uint64_t silence_ms;
    uint64_t check_timer;
    uint64_t yield_timer;
    bool hooked; /* on_hook registered on the loop */
    struct link_msg *head, *tail;
    size_t nq, qbytes;
    size_t pongs;     /* Pongs in the queue */
    bool blocked;     /* libzmq refused the head of the queue (HWM): the peer is not reading */
    bool full_logged; /* one warning per episode of a full queue */
    bool pumping;
};

static void pump(struct backend_link *l);

static void hex_prefix(const char *buf, size_t len, char *out, size_t outlen)
{
    size_t o = 0;
    out[0] = '\0';
    for (size_t i = 0; i < len && i < HEX_PREFIX && o + 3 < outlen; i++)
        o += (size_t)snprintf(out + o, outlen - o, "%02x", (unsigned char)buf[i]);
}

static void queue_clear(struct backend_link *l)
{
    struct link_msg *m = l->head;
    while (m) {
        struct link_msg *next = m->next;
        zmq_msg_close(&m->msg);
        free(m);
        m = next;
    }
    l->head = l->tail = NULL;
    l->nq = l->qbytes = l->pongs = 0;
    l->blocked = false;
    l->full_logged = false;
}

static void queue_pop(struct backend_link *l)
{
    struct link_msg *m = l->head;
    l->head = m->next;
    if (!l->head)
        l->tail = NULL;
    l->nq--;
    l->qbytes -= m->len;
    if (m->pong)
        l->pongs--;
    if (!l->nq)
        l->full_logged = false;
    zmq_msg_close(&m->msg);
    free(m);
}

static void free_data(void *data, void *hint)
{
    PROCTOR_UNUSED(hint);
    // Called by libzmq, possibly from its I/O thread, once the frame is out.
    free(data);
}

/**
 * Queues one frame. With `take`, data (malloc'd) is owned by the queue from
 * here on, whatever the result; otherwise it is copied.
 */
static int queue_push(struct backend_link *l, char *data, size_t len, bool take)
{
    int ret = 0;
    struct link_msg *m = NULL;
    if (l->nq >= BACKEND_LINK_QUEUE_MAX_MSGS || len > BACKEND_LINK_QUEUE_MAX_BYTES - l->qbytes) {
        if (!l->full_logged)
            log_warn(LOG_BACKEND, "send queue full (%zu messages, %zu bytes): dropping messages",
                     l->nq, l->qbytes);
        l->full_logged = true;
        ret = -ENOBUFS;
        goto out;
    }
    m = try_malloc(sizeof *m);
    if (!m) {
        ret = -ENOMEM;
        goto out;
    }
    if (take) {
        if (zmq_msg_init_data(&m->msg, data, len, free_data, NULL) < 0)
            ret = -ENOMEM;
        else
            data = NULL; /* libzmq frees it */
    } else if (zmq_msg_init_size(&m->msg, len) < 0) {
        // An AgentJobDone can carry a large archive: this can fail.
        ret = -ENOMEM;
    } else {
        memcpy(zmq_msg_data(&m->msg), data, len);
    }
    if (ret)
        goto out;
    m->next = NULL;
    m->len = len;
    m->pong = false;
    if (l->tail)
        l->tail->next = m;
    else
        l->head = m;
    l->tail = m;
    l->nq++;
    l->qbytes += len;
    m = NULL;
out:
    free(m);
    if (take)
        free(data);
    return ret;
}

// Hands queued frames to libzmq until it refuses one (HWM reached).
static void flush(struct backend_link *l)
{
    while (l->head && l->sock) {
        if (zmq_msg_send(&l->head->msg, l->sock, ZMQ_DONTWAIT) >= 0) {
            queue_pop(l);
            l->blocked = false;
            continue;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN) {
            l->blocked = true;
            break;
        }
        // Nothing else is transient on a DEALER: keeping it would wedge the queue.
        log_error(LOG_BACKEND, "zmq_send failed: %s; dropping a %zu-byte message",
                  zmq_strerror(errno), l->head->len);
        queue_pop(l);
    }
}

static int queue_encoded(struct backend_link *l, int (*encode)(msgpack_sbuffer *))
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    int ret = encode(&sb);
    if (!ret)
        ret = queue_push(l, sb.data, sb.size, false);
    msgpack_sbuffer_destroy(&sb);
    return ret;
}

static void handle_frame(struct backend_link *l, const char *buf, size_t len)
{
    char err[160];
    struct backend_msg m;
    int ret = backend_decode(buf, len, &m, err, sizeof err);
    if (ret) {
        char hex[2 * HEX_PREFIX + 1];
        hex_prefix(buf, len, hex, sizeof hex);
        log_warn(LOG_BACKEND, "dropping a malformed %zu-byte backend message: %s (starts %s)", len,
                 err, hex);
        return;
    }
    log_debug(LOG_BACKEND, "received %s", backend_msg_type_name(m.type));
    if (m.type == BACKEND_MSG_PING) {
        // While the backend does not read, a Pong still queued says all
        // another would: a backend that sends Pings but stops reading must
        // not fill the queue with them and push a job's result out.
        if (!l->blocked || l->pongs == 0) {
            ret = queue_encoded(l, backend_encode_pong);
            if (ret)
                log_error(LOG_BACKEND, "cannot queue a pong: %s", strerror(-ret));
            else {
                l->tail->pong = true;
                l->pongs++;
            }
        }
    } else {
        l->cb.on_message(l, &m, l->data);
    }
    backend_msg_deinit(&m);
}

// Reads everything the DEALER holds. ZMQ_FD is edge-triggered in disguise: it
// only signals a change, so we must loop on ZMQ_EVENTS until POLLIN is gone,
// otherwise frames sit unread until an unrelated wake-up. Returns false when
// the budget ran out with frames still waiting.
static bool drain(struct backend_link *l, size_t *budget)
{
    unsigned gen = l->gen;
    while (l->sock && l->gen == gen) {
        int events = 0;
        size_t sz = sizeof events;
        if (zmq_getsockopt(l->sock, ZMQ_EVENTS, &events, &sz) < 0) {
            if (errno == EINTR)
                continue;
            log_error(LOG_BACKEND, "zmq_getsockopt(ZMQ_EVENTS): %s", zmq_strerror(errno));
            break;
        }
        if (!(events & ZMQ_POLLIN))
            break;
        if (*budget == 0)
            return false;
        zmq_msg_t msg;
        zmq_msg_init(&msg);
        if (zmq_msg_recv(&msg, l->sock, ZMQ_DONTWAIT) < 0) {
            int e = errno;
            zmq_msg_close(&msg);
            if (e == EINTR || e == EAGAIN)
                continue;
            log_error(LOG_BACKEND, "zmq_msg_recv: %s", zmq_strerror(e));
            break;
        }
        (*budget)--;
        l->last_rx_ms = util_now_ms();
        // The backend sends one payload frame; like upstream, only frame 0 counts.
        bool more = zmq_msg_more(&msg);
        while (more) {
            zmq_msg_t extra;
            zmq_msg_init(&extra);
            if (zmq_msg_recv(&extra, l->sock, ZMQ_DONTWAIT) < 0)
                more = false;
            else
                more = zmq_msg_more(&extra);
            zmq_msg_close(&extra);
        }
        handle_frame(l, zmq_msg_data(&msg), zmq_msg_size(&msg));
        zmq_msg_close(&msg);
    }
    return true;
}

static void handle_monitor_event(struct backend_link *l, const char *buf, size_t len)
{
    uint16_t event;
    if (len < sizeof event + sizeof(uint32_t))
        return;
    memcpy(&event, buf, sizeof event);
    if (event == ZMQ_EVENT_DISCONNECTED) {
        metric_set(METRIC_BACKEND_CONNECTED, NULL, 0);
        log_warn_event(
            LOG_BACKEND, "backend_disconnected",
            LOG_FIELDS(LOG_STR("address", l->addr), LOG_UINT("connections", l->connections)),
            "connection to the backend at %s lost", l->addr);
        if (l->cb.on_disconnect)
            l->cb.on_disconnect(l, l->data);
    } else if (event == ZMQ_EVENT_CONNECTED) {
        metric_set(METRIC_BACKEND_CONNECTED, NULL, 1);
        if (l->connections++)
            metric_add(METRIC_BACKEND_RECONNECTS, NULL, 1);
        log_info_event(
            LOG_BACKEND, "backend_connected",
            LOG_FIELDS(LOG_STR("address", l->addr), LOG_UINT("connections", l->connections)),
            "connected to the backend at %s", l->addr);
        if (l->cb.on_connect)
            l->cb.on_connect(l, l->data);
    }
}

// Monitor messages are two frames: [u16 event, u32 value] then the endpoint.
static void drain_monitor(struct backend_link *l)
{
    unsigned gen = l->gen;
    while (l->mon && l->gen == gen) {
        int events = 0;
        size_t sz = sizeof events;
        if (zmq_getsockopt(l->mon, ZMQ_EVENTS, &events, &sz) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (!(events & ZMQ_POLLIN))
            break;
        zmq_msg_t head;
        zmq_msg_init(&head);
        if (zmq_msg_recv(&head, l->mon, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&head);
            if (errno == EINTR || errno == EAGAIN)
                continue;
            break;
        }
        bool more = zmq_msg_more(&head);
        while (more) {
            zmq_msg_t rest;
            zmq_msg_init(&rest);
            if (zmq_msg_recv(&rest, l->mon, ZMQ_DONTWAIT) < 0)
                more = false;
            else
                more = zmq_msg_more(&rest);
            zmq_msg_close(&rest);
        }
        handle_monitor_event(l, zmq_msg_data(&head), zmq_msg_size(&head));
        zmq_msg_close(&head);
    }
}

static long on_yield(struct loop *loop, uint64_t id, void *data)
{
    PROCTOR_UNUSED(loop);
    PROCTOR_UNUSED(id);
    struct backend_link *l = data;
    l->yield_timer = 0;
    pump(l);
    return LOOP_NOMORE;
}

// Flush, then read (a send consumes the ZMQ_FD edge too), until neither has
// anything left to do; replies queued by the reads are flushed in the next round.
static void pump(struct backend_link *l)
{
    if (l->pumping)
        return;
    l->pumping = true;
    size_t budget = DRAIN_BUDGET;
    bool done = false;
    while (!done) {
        flush(l);
        size_t unsent = l->nq;
        bool all_read = drain(l, &budget);
        drain_monitor(l);
        if (!all_read) {
            if (!l->yield_timer)
                l->yield_timer = loop_timer_add(l->loop, 0, on_yield, l);
            done = true;
        } else {
            // Another round only if the reads queued replies: what libzmq
            // refused just now waits for its next wake-up.
            done = l->nq <= unsent;
        }
    }
    l->pumping = false;
}

static void on_hook(struct loop *loop, void *data)
{
    PROCTOR_UNUSED(loop);
    pump(data);
}

static void on_fd(struct loop *loop, int fd, unsigned events, void *data)
{
    PROCTOR_UNUSED(loop);
    PROCTOR_UNUSED(fd);
    PROCTOR_UNUSED(events);
    pump(data);
}

static void close_socket(struct backend_link *l, int linger)
{
    if (l->sock) {
        loop_fd_del(l->loop, l->sock_fd);
        if (l->mon)
            zmq_socket_monitor(l->sock, NULL, 0);
        zmq_setsockopt(l->sock, ZMQ_LINGER, &linger, sizeof linger);
        zmq_close(l->sock);
        l->sock = NULL;
        l->sock_fd = -1;
    }
    if (l->mon) {
        int zero = 0;
        loop_fd_del(l->loop, l->mon_fd);
        zmq_setsockopt(l->mon, ZMQ_LINGER, &zero, sizeof zero);
        zmq_close(l->mon);
        l->mon = NULL;
        l->mon_fd = -1;
    }
}

// The monitor is a convenience (spec §4.9 "MAY"): failing to set it up is
// logged and the link works without it.
static void open_monitor(struct backend_link *l)
{
    char endpoint[96];
    snprintf(endpoint, sizeof endpoint, "inproc://proctor-backend-monitor-%p-%u", (void *)l,
             l->gen);
    if (zmq_socket_monitor(l->sock, endpoint, ZMQ_EVENT_CONNECTED | ZMQ_EVENT_DISCONNECTED) < 0) {
        log_warn(LOG_BACKEND, "zmq_socket_monitor: %s", zmq_strerror(errno));
        return;
    }
    int fd = -1;
    size_t sz = sizeof fd;
    void *mon = zmq_socket(l->ctx, ZMQ_PAIR);
    int ret = mon ? 0 : -1;
    if (!ret)
        ret = zmq_connect(mon, endpoint);
    if (!ret)
        ret = zmq_getsockopt(mon, ZMQ_FD, &fd, &sz);
    if (!ret)
        ret = loop_fd_add(l->loop, fd, LOOP_READ, on_fd, l) ? -1 : 0;
    if (ret) {
        log_warn(LOG_BACKEND, "cannot watch the backend socket: %s", zmq_strerror(errno));
        zmq_socket_monitor(l->sock, NULL, 0);
        if (mon)
            zmq_close(mon);
        return;
    }
    l->mon = mon;
    l->mon_fd = fd;
}

static int open_socket(struct backend_link *l)
{
    int one = 1, ret = 0, fd = -1;
    size_t sz = sizeof fd;
    l->gen++;
    l->last_rx_ms = util_now_ms();
    void *sock = zmq_socket(l->ctx, ZMQ_DEALER);
    if (!sock)
        ret = -errno;
    // Upstream sets ZMQ_IPV6 and nothing else: no routing id, default HWMs.
    if (!ret && zmq_setsockopt(sock, ZMQ_IPV6, &one, sizeof one) < 0)
        ret = -errno;
    // Bound what one inbound message may make us allocate (a job's input
    // with its uploads); libzmq drops the connection past it, and the
    // 10-second rule then registers us again.
    int64_t maxmsg = BACKEND_LINK_MAX_MSG_BYTES;
    if (!ret && zmq_setsockopt(sock, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg) < 0)
        ret = -errno;
    if (!ret && zmq_getsockopt(sock, ZMQ_FD, &fd, &sz) < 0)
        ret = -errno;
    if (!ret) {
        l->sock = sock;
        l->sock_fd = fd;
        // Before connecting, so the first CONNECTED event is seen.
        open_monitor(l);
        if (zmq_connect(sock, l->addr) < 0)
            ret = -errno;
    }
    if (!ret)
        ret = loop_fd_add(l->loop, fd, LOOP_READ, on_fd, l);
    if (ret) {
        log_error(LOG_BACKEND, "cannot connect to the backend at %s: %s", l->addr,
                  zmq_strerror(-ret));
        if (l->sock) {
            // Not registered yet: keep close_socket() from unregistering an fd
            // that may belong to someone else.
            l->sock_fd = -1;
            close_socket(l, 0);
        } else if (sock) {
            zmq_close(sock);
        }
    }
    return ret;
}

static long on_check(struct loop *loop, uint64_t id, void *data)
{
    PROCTOR_UNUSED(loop);
    PROCTOR_UNUSED(id);
    struct backend_link *l = data;
    uint64_t silent = backend_link_silence_ms(l);
    if (!l->sock || silent > l->silence_ms) {
        if (l->sock)
            log_warn(LOG_BACKEND, "backend silent for %" PRIu64 " ms", silent);
        // Re-arm so the caller hears about it once per silent period, even
        // if it chooses not to reconnect.
        l->last_rx_ms = util_now_ms();
        l->cb.on_silence(l, l->data);
    }
    return BACKEND_LINK_CHECK_MS;
}

struct backend_link *backend_link_new(struct loop *loop, const char *addr,
                                      const struct backend_link_cb *cb, void *data)
{
    if (PROCTOR_FAILS(loop && addr && cb && cb->on_message && cb->on_silence))
        return NULL;
    struct backend_link *l = xcalloc(1, sizeof *l);
    l->loop = loop;
    l->addr = xstrdup(addr);
    l->cb = *cb;
    l->data = data;
    l->sock_fd = l->mon_fd = -1;
    l->silence_ms = BACKEND_LINK_SILENCE_MS;
    l->ctx = zmq_ctx_new();
    int ret = l->ctx ? 0 : -errno;
    if (!ret)
        ret = open_socket(l);
    if (!ret) {
        ret = loop_hook_add(loop, on_hook, l);
        l->hooked = !ret;
    }
    if (!ret)
        l->check_timer = loop_timer_add(loop, BACKEND_LINK_CHECK_MS, on_check, l);
    if (ret) {
        backend_link_free(l);
        return NULL;
    }
    log_info(LOG_BACKEND, "connecting to the backend at %s", addr);
    return l;
}

int backend_link_send(struct backend_link *l, const msgpack_sbuffer *sb)
{
    if (PROCTOR_FAILS(l && sb && sb->size > 0))
        return -EINVAL;
    return queue_push(l, sb->data, sb->size, false);
}

int backend_link_send_take(struct backend_link *l, char *data, size_t len)
{
    if (PROCTOR_FAILS(l && data && len > 0)) {
        free(data);
        return -EINVAL;
    }
    return queue_push(l, data, len, true);
}

int backend_link_reconnect(struct backend_link *l)
{
    log_info(LOG_BACKEND, "reconnecting to the backend at %s (dropping %zu queued messages)",
             l->addr, l->nq);
    close_socket(l, 0);
    queue_clear(l);
    return open_socket(l);
}

void backend_link_set_silence_ms(struct backend_link *l, uint64_t ms)
{
    l->silence_ms = ms;
}

size_t backend_link_queued(const struct backend_link *l)
{
    return l->nq;
}

uint64_t backend_link_silence_ms(const struct backend_link *l)
{
    uint64_t now = util_now_ms();
    return now > l->last_rx_ms ? now - l->last_rx_ms : 0;
}

void backend_link_free(struct backend_link *l)
{
    if (!l)
        return;
    loop_timer_del(l->loop, l->check_timer);
    loop_timer_del(l->loop, l->yield_timer);
    if (l->hooked)
        loop_hook_del(l->loop, on_hook, l);
    // Hand whatever is queued to libzmq, which keeps sending during the linger.
    flush(l);
    if (l->nq)
        log_warn(LOG_BACKEND, "closing with %zu unsent messages", l->nq);
    close_socket(l, BACKEND_LINK_CLOSE_LINGER_MS);
    if (l->ctx)
        zmq_ctx_term(l->ctx);
    queue_clear(l);
    free(l->addr);
    free(l);
}
