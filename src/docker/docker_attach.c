#include "docker/docker_attach.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <sys/socket.h>
#include <sys/un.h>

#include <cjson/cJSON.h>

#include "core/log.h"
#include "core/loop.h"
#include "core/util.h"
#include "docker/docker_client.h"
#include "docker/docker_stream.h"

#define HEAD_MAX 16384u
#define ERROR_BODY_MAX 65536u
#define READ_CHUNK 65536u
// Reads per wake-up: enough to drain a burst, small enough to stay fair to other fds.
#define READS_PER_WAKE 16

enum attach_state {
    ATTACH_CONNECTING,
    ATTACH_REQUEST,    /* sending the request */
    ATTACH_HEAD,       /* reading the response head */
    ATTACH_ERROR_BODY, /* refused: reading Docker's error text */
    ATTACH_STREAM,     /* upgraded: raw bytes both ways */
    ATTACH_CLOSED,
};

struct docker_attach {
    struct loop *loop;
    int fd;
    enum attach_state state;
    unsigned flags;
    unsigned mask; /* current loop interest */
    struct docker_attach_cbs cbs;
    void *data;
    struct buf req;   /* the HTTP request */
    size_t req_off;   /* bytes of req already sent */
    struct buf head;  /* response head, then (refused) the error body */
    size_t body_need; /* refused: Content-Length of the error body, or 0 = until EOF */
    int http;         /* response status */
    struct buf out;   /* queued stdin bytes */
    size_t out_off;
    size_t max_write;
    struct docker_demux demux;
    uint64_t head_timer; /* until the engine answers the attach request */
    int busy;            /* > 0 while our fd handler runs */
    bool freed;          /* docker_attach_free() was called during a callback */
    char cid[13];
};

static void on_attach_fd(struct loop *loop, int fd, unsigned events, void *data);
static long on_head_timeout(struct loop *loop, uint64_t id, void *data);
static void attach_destroy(struct docker_attach *a);

static bool valid_ref(const char *id)
{
    size_t n = 0;
    for (; id[n]; n++) {
        char ch = id[n];
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || ch == '_' || ch == '.' || ch == '-';
        if (!ok)
            return false;
    }
    return n > 0 && n < 256;
}

static int attach_connect(struct docker_attach *a, const struct docker_endpoint *ep)
{
    int ret = 0;
    if (ep->is_unix) {
        struct sockaddr_un sun = {.sun_family = AF_UNIX};
        util_strlcpy(sun.sun_path, ep->unix_path, sizeof(sun.sun_path));
        a->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (a->fd < 0)
            ret = -errno;
        else if (connect(a->fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 && errno != EINPROGRESS)
            ret = -errno;
    } else {
        a->fd = socket(ep->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (a->fd < 0)
            ret = -errno;
        else if (connect(a->fd, (const struct sockaddr *)&ep->addr, ep->addr_len) < 0 &&
                 errno != EINPROGRESS)
            ret = -errno;
    }
    return ret;
}

struct docker_attach *docker_attach_new(struct docker_client *c, const char *id,
                                        const struct docker_attach_opts *opts,
                                        const struct docker_attach_cbs *cbs, void *data)
{
    if (PROCTOR_FAILS(c && id && cbs && cbs->on_data && cbs->on_close))
        return NULL;
    if (!valid_ref(id)) {
        log_error(LOG_DOCKER, "attach: bad container reference");
        return NULL;
    }
    const struct docker_endpoint *ep = docker_client_endpoint(c);
    struct docker_attach *a = xcalloc(1, sizeof(*a));
    a->loop = docker_client_loop(c);
    a->fd = -1;
    a->cbs = *cbs;
    a->data = data;
    a->flags = opts && opts->flags
                   ? opts->flags
                   : DOCKER_ATTACH_STDIN | DOCKER_ATTACH_STDOUT | DOCKER_ATTACH_STDERR;
    a->max_write = opts && opts->max_write ? opts->max_write : DOCKER_ATTACH_DEFAULT_MAX_WRITE;
    docker_demux_init(&a->demux,
                      opts && opts->max_frame ? opts->max_frame : DOCKER_ATTACH_DEFAULT_MAX_FRAME);
    snprintf(a->cid, sizeof(a->cid), "%.12s", id);

    AUTO_FREE char *req = xasprintf(
        "POST %s/containers/%s/attach?stream=1&stdin=%d&stdout=%d&stderr=%d&logs=%d HTTP/1.1\r\n"
        "Host: %s\r\n"
        "User-Agent: proctor\r\n"
        "Content-Type: text/plain\r\n"
        "Content-Length: 0\r\n"
        "Connection: Upgrade\r\n"
        "Upgrade: tcp\r\n"
        "\r\n",
        ep->api_prefix, id, !!(a->flags & DOCKER_ATTACH_STDIN), !!(a->flags & DOCKER_ATTACH_STDOUT),
        !!(a->flags & DOCKER_ATTACH_STDERR), !!(a->flags & DOCKER_ATTACH_LOGS),
        ep->is_unix ? "docker" : ep->host_port);
    int ret = buf_append(&a->req, req, strlen(req), 0);
    if (!ret)
        ret = attach_connect(a, ep);
    if (!ret) {
        a->state = ATTACH_CONNECTING;
        // Writable means connected (or failed: SO_ERROR tells).
        a->mask = LOOP_WRITE;
        ret = loop_fd_add(a->loop, a->fd, a->mask, on_attach_fd, a);
    }
    // An engine that accepts the connection and never answers must not keep
    // the container's owner waiting: the handshake has the calls' timeout.
    long timeout_ms = docker_client_timeout_ms(c);
    if (!ret && timeout_ms > 0)
        a->head_timer = loop_timer_add(a->loop, timeout_ms, on_head_timeout, a);
    if (ret < 0) {
        log_error(LOG_DOCKER, "container %s: cannot attach: %s", a->cid, strerror(-ret));
        if (a->fd >= 0)
            close(a->fd);
        a->fd = -1;
        attach_destroy(a);
        return NULL;
    }
    return a;
}

int docker_attach_write(struct docker_attach *a, const void *p, size_t n)
{
    if (a->state == ATTACH_CLOSED)
        return -EPIPE;
    size_t pending = a->out.len - a->out_off;
    if (n > a->max_write || pending > a->max_write - n)
        return -ENOBUFS;
    if (a->out_off > 0 && a->out_off >= a->out.len / 2) {
        // Drop what was sent so the buffer does not grow with the stream's history.
        buf_consume(&a->out, a->out_off);
        a->out_off = 0;
    }
    int ret = buf_append(&a->out, p, n, 0);
    if (!ret && a->state == ATTACH_STREAM && !(a->mask & LOOP_WRITE) && !a->busy) {
        a->mask |= LOOP_WRITE;
        loop_fd_set(a->loop, a->fd, a->mask);
    }
    return ret;
}

size_t docker_attach_pending(const struct docker_attach *a)
{
    return a->out.len - a->out_off;
}

bool docker_attach_is_ready(const struct docker_attach *a)
{
    return a->state == ATTACH_STREAM;
}

void docker_attach_free(struct docker_attach *a)
{
    if (!a)
        return;
    if (a->busy) {
        // Our handler is on the stack; it frees a when it unwinds.
        a->freed = true;
        a->cbs.on_close = NULL;
        return;
    }
    attach_destroy(a);
}

/* ---- internals --------------------------------------------------------- */

static void attach_destroy(struct docker_attach *a)
{
    loop_timer_del(a->loop, a->head_timer);
    if (a->fd >= 0) {
        loop_fd_del(a->loop, a->fd);
        close(a->fd);
    }
    buf_deinit(&a->req);
    buf_deinit(&a->head);
    buf_deinit(&a->out);
    free(a);
}

// Ends the connection and reports it once.
static void attach_close(struct docker_attach *a, int err, const char *text)
{
    if (a->state == ATTACH_CLOSED)
        return;
    a->state = ATTACH_CLOSED;
    loop_timer_del(a->loop, a->head_timer);
    a->head_timer = 0;
    loop_fd_del(a->loop, a->fd);
    close(a->fd);
    a->fd = -1;
    if (err)
        log_debug(LOG_DOCKER, "container %s: attach closed: %d %s", a->cid, err, text);
    if (a->cbs.on_close && !a->freed)
        a->cbs.on_close(a, err, text, a->data);
}

static bool attach_gone(const struct docker_attach *a)
{
    return a->freed || a->state == ATTACH_CLOSED;
}

// Hands container output to the caller; returns false if a is closed or freed.
static bool attach_deliver(struct docker_attach *a, const char *p, size_t n)
{
    if (a->flags & DOCKER_ATTACH_TTY) {
        a->cbs.on_data(a, DOCKER_STDOUT, p, n, a->data);
        return !attach_gone(a);
    }
    if (docker_demux_feed(&a->demux, p, n) < 0) {
        attach_close(a, -EPROTO, "attach demultiplexer fed twice");
        return false;
    }
    for (;;) {
        int stream;
        const void *piece;
        size_t len;
        enum framer_result r = docker_demux_next(&a->demux, &stream, &piece, &len);
        if (r == FRAMER_NEED_MORE)
            return true;
        if (r == FRAMER_ERROR) {
            attach_close(a, -EPROTO, docker_demux_error(&a->demux));
            return false;
        }
        a->cbs.on_data(a, stream, piece, len, a->data);
        if (attach_gone(a))
            return false;
    }
}

static void attach_refused(struct docker_attach *a)
{
    char text[256];
    cJSON *json = cJSON_ParseWithLength(a->head.data ? a->head.data : "", a->head.len);
    const cJSON *msg = cJSON_GetObjectItemCaseSensitive(json, "message");
    if (cJSON_IsString(msg))
        snprintf(text, sizeof(text), "%s", msg->valuestring);
    else
        snprintf(text, sizeof(text), "docker refused the attach with http %d", a->http);
    cJSON_Delete(json);
    attach_close(a, a->http, text);
}

// Parses the response head once complete; returns false if a is closed or freed.

// "HTTP/1.1 101 ..." -> 101; -1 unless the status line is that shape (three
// digits: sscanf's %d would overflow on a long number).
static int status_code(const char *head)
{
    const char *p = head;
    if (strncmp(p, "HTTP/", 5) != 0)
        return -1;
    p += 5;
    while (isdigit((unsigned char)*p) || *p == '.')
        p++;
    if (*p++ != ' ' || !isdigit((unsigned char)p[0]) || !isdigit((unsigned char)p[1]) ||
        !isdigit((unsigned char)p[2]) || isdigit((unsigned char)p[3]))
        return -1;
    int code = (p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0');
    // HTTP has no status below 100: "000" would read as a refusal with
    // status 0, which the caller takes for a clean end of the stream.
    return code < 100 ? -1 : code;
}

static bool attach_head(struct docker_attach *a)
{
    const char *end = memmem(a->head.data, a->head.len, "\r\n\r\n", 4);
    if (!end) {
        if (a->head.len >= HEAD_MAX) {
            attach_close(a, -EPROTO, "attach response head too long");
            return false;
        }
        return true;
    }
    size_t head_len = (size_t)(end - a->head.data) + 4;
    int code = status_code(a->head.data);
    if (code < 0) {
        attach_close(a, -EPROTO, "malformed attach response");
        return false;
    }
    a->http = code;
    if (code == 101 || code == 200) {
        // Bytes after the head already belong to the stream: keep them aside
        // (the head buffer is reused) and hand them out after on_ready.
        struct buf rest = {0};
        bool ok = buf_append(&rest, a->head.data + head_len, a->head.len - head_len, 0) == 0;
        buf_deinit(&a->head);
        a->state = ATTACH_STREAM;
        loop_timer_del(a->loop, a->head_timer);
        a->head_timer = 0;
        log_debug(LOG_DOCKER, "container %s: attached (http %d)", a->cid, code);
        if (!ok)
            attach_close(a, -ENOMEM, "out of memory");
        else if (a->cbs.on_ready)
            a->cbs.on_ready(a, a->data);
        if (ok && !attach_gone(a) && rest.len > 0)
            ok = attach_deliver(a, rest.data, rest.len);
        buf_deinit(&rest);
        return ok && !attach_gone(a);
    }
    // Refused: what follows the head is Docker's JSON error.
    const char *cl = strcasestr(a->head.data, "\r\ncontent-length:");
    a->body_need = cl && cl < end ? strtoul(cl + 17, NULL, 10) : 0;
    buf_consume(&a->head, head_len);
    a->state = ATTACH_ERROR_BODY;
    if (a->body_need > 0 && a->head.len >= a->body_need) {
        attach_refused(a);
        return false;
    }
    return true;
}

static void attach_eof(struct docker_attach *a)
{
    switch (a->state) {
    case ATTACH_ERROR_BODY:
        attach_refused(a);
        break;
    case ATTACH_STREAM:
        if (docker_demux_at_boundary(&a->demux) || (a->flags & DOCKER_ATTACH_TTY))
            attach_close(a, 0, "end of stream");
        else
            attach_close(a, -EPROTO, "attach stream ended inside a docker frame");
        break;
    default:
        attach_close(a, -ECONNRESET, "docker closed the attach connection before answering");
        break;
    }
}

static void attach_read(struct docker_attach *a)
{
    char chunk[READ_CHUNK];
    for (int i = 0; i < READS_PER_WAKE && !attach_gone(a); i++) {
        ssize_t n = recv(a->fd, chunk, sizeof(chunk), MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                attach_close(a, -errno, strerror(errno));
            return;
        }
        if (n == 0) {
            attach_eof(a);
            return;
        }
        if (a->state == ATTACH_STREAM) {
            if (!attach_deliver(a, chunk, (size_t)n))
                return;
            continue;
        }
        size_t limit = a->state == ATTACH_HEAD ? HEAD_MAX : ERROR_BODY_MAX;
        if (buf_append(&a->head, chunk, (size_t)n, limit) < 0) {
            attach_close(a, -EPROTO, "attach response too long");
            return;
        }
        if (a->state == ATTACH_HEAD) {
            if (!attach_head(a))
                return;
        } else if (a->body_need > 0 && a->head.len >= a->body_need) {
            attach_refused(a);
            return;
        }
    }
}

// Sends from buf+*off; returns false if a was closed on an error.
static bool attach_send(struct docker_attach *a, struct buf *b, size_t *off)
{
    while (*off < b->len) {
        ssize_t n = send(a->fd, b->data + *off, b->len - *off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return true;
            attach_close(a, -errno, strerror(errno));
            return false;
        }
        *off += (size_t)n;
    }
    buf_reset(b);
    *off = 0;
    return true;
}

static void attach_update_mask(struct docker_attach *a)
{
    if (a->state == ATTACH_CLOSED)
        return;
    unsigned mask = LOOP_READ;
    if (a->state == ATTACH_CONNECTING || a->state == ATTACH_REQUEST ||
        (a->state == ATTACH_STREAM && a->out_off < a->out.len))
        mask |= LOOP_WRITE;
    if (mask != a->mask && loop_fd_set(a->loop, a->fd, mask) == 0)
        a->mask = mask;
}

static void on_attach_fd(struct loop *loop, int fd, unsigned events, void *data)
{
    PROCTOR_UNUSED(loop);
    PROCTOR_UNUSED(fd);
    struct docker_attach *a = data;
    a->busy++;
    if (a->state == ATTACH_CONNECTING && (events & (LOOP_WRITE | LOOP_ERROR))) {
        int err = 0;
        socklen_t len = sizeof(err);
        if (getsockopt(a->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
            err = errno;
        if (err)
            attach_close(a, -err, strerror(err));
        else
            a->state = ATTACH_REQUEST;
    }
    if (a->state == ATTACH_REQUEST && attach_send(a, &a->req, &a->req_off) && a->req.len == 0)
        a->state = ATTACH_HEAD;
    if ((events & (LOOP_READ | LOOP_ERROR)) && a->state >= ATTACH_HEAD && !attach_gone(a))
        attach_read(a);
    if (a->state == ATTACH_STREAM && !attach_gone(a) && a->out_off < a->out.len)
        attach_send(a, &a->out, &a->out_off);
    if (!attach_gone(a))
        attach_update_mask(a);
    a->busy--;
    if (a->freed && a->busy == 0)
        attach_destroy(a);
}

static long on_head_timeout(struct loop *loop, uint64_t id, void *data)
{
    PROCTOR_UNUSED(loop);
    PROCTOR_UNUSED(id);
    struct docker_attach *a = data;
    a->head_timer = 0;
    a->busy++;
    attach_close(a, -ETIMEDOUT, "no answer to the attach request");
    a->busy--;
    if (a->freed && a->busy == 0)
        attach_destroy(a);
    return LOOP_NOMORE;
}
