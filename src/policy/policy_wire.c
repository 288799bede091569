/*
 * Messages between the agent and its policy worker (see policy_wire.h).
 */
#include "policy/policy_wire.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

enum wire_type {
    WT_NIL,
    WT_FALSE,
    WT_TRUE,
    WT_INT,
    WT_UINT,
    WT_FLOAT,
    WT_STR,
    WT_BIN,
    WT_ARRAY,
    WT_MAP
};

static void put(struct buf *b, const void *p, size_t n)
{
    PROCTOR_REQUIRE(buf_append(b, p, n, 0) == 0);
}

void wire_u8(struct buf *b, uint8_t v)
{
    put(b, &v, 1);
}

void wire_i64(struct buf *b, int64_t v)
{
    put(b, &v, sizeof v);
}

void wire_f64(struct buf *b, double v)
{
    put(b, &v, sizeof v);
}

void wire_strn(struct buf *b, const char *s, size_t len)
{
    wire_i64(b, s ? (int64_t)len : -1);
    if (s) {
        put(b, s, len);
        wire_u8(b, 0);
    }
}

void wire_str(struct buf *b, const char *s)
{
    wire_strn(b, s, s ? strlen(s) : 0);
}

void wire_map(struct buf *b, size_t n)
{
    wire_u8(b, WT_MAP);
    wire_i64(b, (int64_t)n);
}

void wire_key(struct buf *b, const char *s)
{
    if (!s) {
        wire_u8(b, WT_NIL);
        return;
    }
    wire_u8(b, WT_STR);
    wire_str(b, s);
}

void wire_value(struct buf *b, const struct value *v)
{
    switch (v->type) {
    case VALUE_NIL:
        wire_u8(b, WT_NIL);
        break;
    case VALUE_BOOL:
        wire_u8(b, v->u.b ? WT_TRUE : WT_FALSE);
        break;
    case VALUE_INT:
        wire_u8(b, WT_INT);
        wire_i64(b, v->u.i);
        break;
    case VALUE_UINT:
        wire_u8(b, WT_UINT);
        wire_i64(b, (int64_t)v->u.u);
        break;
    case VALUE_FLOAT:
        wire_u8(b, WT_FLOAT);
        wire_f64(b, v->u.f);
        break;
    case VALUE_STR:
    case VALUE_BIN:
        wire_u8(b, v->type == VALUE_STR ? WT_STR : WT_BIN);
        wire_strn(b, v->u.s.ptr, v->u.s.len);
        break;
    case VALUE_ARRAY:
        wire_u8(b, WT_ARRAY);
        wire_i64(b, (int64_t)v->u.a.len);
        for (size_t i = 0; i < v->u.a.len; i++)
            wire_value(b, &v->u.a.items[i]);
        break;
    case VALUE_MAP:
        wire_u8(b, WT_MAP);
        wire_i64(b, (int64_t)v->u.m.len);
        for (size_t i = 0; i < v->u.m.len; i++) {
            wire_value(b, &v->u.m.items[i].key);
            wire_value(b, &v->u.m.items[i].val);
        }
        break;
    }
}

void wire_rd_init(struct wire_rd *r, const char *p, size_t len)
{
    r->p = p;
    r->len = len;
    r->off = 0;
    r->bad = false;
}

static const char *take(struct wire_rd *r, size_t n)
{
    if (r->bad || n > r->len - r->off) {
        r->bad = true;
        return NULL;
    }
    const char *p = r->p + r->off;
    r->off += n;
    return p;
}

// Copies n bytes into dst (zeroes when the message is short).
static void get_raw(struct wire_rd *r, void *dst, size_t n)
{
    const char *p = take(r, n);
    if (p)
        memcpy(dst, p, n);
    else
        memset(dst, 0, n);
}

uint8_t wire_get_u8(struct wire_rd *r)
{
    uint8_t v;
    get_raw(r, &v, 1);
    return v;
}

int64_t wire_get_i64(struct wire_rd *r)
{
    int64_t v;
    get_raw(r, &v, sizeof v);
    return v;
}

double wire_get_f64(struct wire_rd *r)
{
    double v;
    get_raw(r, &v, sizeof v);
    return v;
}

const char *wire_get_str(struct wire_rd *r, size_t *len)
{
    int64_t n = wire_get_i64(r);
    if (len)
        *len = 0;
    if (r->bad || n == -1)
        return NULL;
    if (n < 0 || (uint64_t)n >= r->len - r->off) {
        r->bad = true;
        return NULL;
    }
    const char *p = take(r, (size_t)n + 1);
    if (!p || p[n] != '\0') {
        r->bad = true;
        return NULL;
    }
    if (len)
        *len = (size_t)n;
    return p;
}

// A container of n entries of `per` values each needs at least n * per bytes
// (one type byte per value).
static bool count_fits(struct wire_rd *r, int64_t n, uint64_t per)
{
    if (r->bad || n < 0 || (uint64_t)n > (r->len - r->off) / per)
        r->bad = true;
    return !r->bad;
}

static int get_value(struct wire_rd *r, struct value *out, int depth)
{
    value_set_nil(out);
    if (depth > VALUE_MAX_DEPTH)
        r->bad = true;
    uint8_t t = wire_get_u8(r);
    if (r->bad)
        return -EINVAL;
    switch (t) {
    case WT_NIL:
        break;
    case WT_FALSE:
    case WT_TRUE:
        value_set_bool(out, t == WT_TRUE);
        break;
    case WT_INT:
        value_set_int(out, wire_get_i64(r));
        break;
    case WT_UINT:
        out->type = VALUE_UINT;
        out->u.u = (uint64_t)wire_get_i64(r);
        break;
    case WT_FLOAT:
        value_set_float(out, wire_get_f64(r));
        break;
    case WT_STR:
    case WT_BIN: {
        size_t len;
        const char *s = wire_get_str(r, &len);
        if (!s)
            r->bad = true;
        else if (t == WT_STR)
            value_set_strn(out, s, len);
        else
            value_set_bin(out, s, len);
        break;
    }
    case WT_ARRAY: {
        int64_t n = wire_get_i64(r);
        value_set_array(out);
        for (int64_t i = 0; count_fits(r, n - i, 1) && i < n; i++)
            get_value(r, value_array_push(out), depth + 1);
        break;
    }
    case WT_MAP: {
        int64_t n = wire_get_i64(r);
        value_set_map(out);
        for (int64_t i = 0; count_fits(r, n - i, 2) && i < n; i++) {
            // Appended as they come (value_map_put keys by C string and merges).
            if (out->u.m.len == out->u.m.cap) {
                out->u.m.cap = out->u.m.cap ? out->u.m.cap * 2 : 8;
                out->u.m.items = xrealloc(out->u.m.items, out->u.m.cap * sizeof *out->u.m.items);
            }
            struct value_pair *p = &out->u.m.items[out->u.m.len++];
            value_set_nil(&p->val);
            get_value(r, &p->key, depth + 1);
            get_value(r, &p->val, depth + 1);
        }
        break;
    }
    default:
        r->bad = true;
    }
    return r->bad ? -EINVAL : 0;
}

int wire_get_value(struct wire_rd *r, struct value *out)
{
    return get_value(r, out, 0);
}

/* ---- framed I/O ------------------------------------------------------------ */

static int wait_fd(int fd, short events, const struct wire_deadline *dl)
{
    for (;;) {
        int timeout = -1;
        if (dl && dl->at_ms) {
            uint64_t at = dl->at_ms;
            uint64_t extend = dl->extend ? *dl->extend : 0;
            extend = extend > UINT64_MAX - dl->grace_ms ? UINT64_MAX : extend + dl->grace_ms;
            if (dl->extend && extend > at)
                at = extend;
            if (dl->limit_ms && at > dl->limit_ms)
                at = dl->limit_ms;
            uint64_t now = util_now_ms();
            if (now >= at)
                return -ETIMEDOUT;
            timeout = at - now > INT32_MAX ? INT32_MAX : (int)(at - now);
        }
        struct pollfd p = {.fd = fd, .events = events};
        int n = poll(&p, 1, timeout);
        if (n > 0)
            return 0;
        if (n < 0 && errno != EINTR)
            return -errno;
    }
}

static int send_all(int fd, const char *p, size_t n, const struct wire_deadline *dl)
{
    int ret = 0;
    while (!ret && n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
        } else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            ret = wait_fd(fd, POLLOUT, dl);
        } else if (w < 0 && errno != EINTR) {
            ret = errno == ECONNRESET ? -EPIPE : -errno;
        }
    }
    return ret;
}

// Without a deadline (the worker's side) the socket blocks; with one, poll
// first: the answer is rarely there already, and a failed recv is a syscall.
static int recv_all(int fd, char *p, size_t n, const struct wire_deadline *dl)
{
    bool bounded = dl && dl->at_ms;
    int ret = bounded ? wait_fd(fd, POLLIN, dl) : 0;
    while (!ret && n > 0) {
        ssize_t r = recv(fd, p, n, bounded ? MSG_DONTWAIT : 0);
        if (r > 0) {
            p += r;
            n -= (size_t)r;
        } else if (r == 0) {
            ret = -EPIPE;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            ret = wait_fd(fd, POLLIN, dl);
        } else if (errno != EINTR) {
            ret = errno == ECONNRESET ? -EPIPE : -errno;
        }
    }
    return ret;
}

int wire_send(int fd, const struct buf *b, const struct wire_deadline *dl)
{
    if (b->len > UINT32_MAX)
        return -EMSGSIZE;
    uint32_t n = (uint32_t)b->len;
    // The length and a small message leave in one syscall.
    struct iovec iov[2] = {{&n, sizeof n}, {b->data, b->len}};
    struct msghdr mh = {.msg_iov = iov, .msg_iovlen = 2};
    ssize_t w;
    do
        w = sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
    while (w < 0 && errno == EINTR);
    if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
        return errno == ECONNRESET ? -EPIPE : -errno;
    size_t sent = w > 0 ? (size_t)w : 0;
    int ret = 0;
    if (sent < sizeof n)
        ret = send_all(fd, (const char *)&n + sent, sizeof n - sent, dl);
    size_t done = sent > sizeof n ? sent - sizeof n : 0;
    if (!ret)
        ret = send_all(fd, b->data + done, b->len - done, dl);
    return ret;
}

int wire_recv(int fd, char **msg, size_t *len, size_t max, const struct wire_deadline *dl)
{
    uint32_t n = 0;
    char *p = NULL;
    *msg = NULL;
    *len = 0;
    int ret = recv_all(fd, (char *)&n, sizeof n, dl);
    if (!ret && n > max)
        ret = -EMSGSIZE;
    if (!ret) {
        p = try_malloc((size_t)n + 1);
        if (!p)
            ret = -ENOMEM;
    }
    if (!ret)
        ret = recv_all(fd, p, n, dl);
    if (ret) {
        free(p);
        return ret;
    }
    p[n] = '\0';
    *msg = p;
    *len = n;
    return 0;
}
