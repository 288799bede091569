// A scripted Docker engine for the harnesses that reach the Docker client and
// the attach connection: a unix socket served from the same loop as the
// client, that reads one HTTP request per connection and answers it with the
// bytes the harness chose, then closes the connection. Header-only: each
// harness is one translation unit.
#pragma once

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/loop.h"
#include "core/util.h"
#include "fuzz_common.h"

struct fake_engine {
    struct loop *loop;
    int lfd;
    char path[108];
    int fd;         // the connection being served, -1 when none
    struct buf in;  // its request so far
    bool answered;  // the reply is queued
    struct buf out; // the reply
    size_t out_off; // bytes of it already sent
    bool closed;    // the reply was sent whole and the connection closed
    unsigned conns; // connections accepted since fake_engine_expect()
};

static void fake_engine_drop(struct fake_engine *f)
{
    if (f->fd >= 0) {
        loop_fd_del(f->loop, f->fd);
        close(f->fd);
        f->fd = -1;
    }
}

// Sends what the socket takes; closes the connection once the reply is out.
static void fake_engine_flush(struct fake_engine *f)
{
    while (f->out_off < f->out.len) {
        ssize_t n = send(f->fd, f->out.data + f->out_off, f->out.len - f->out_off,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            loop_fd_set(f->loop, f->fd, LOOP_READ | LOOP_WRITE);
            return;
        }
        if (n < 0) // the client hung up first (it may refuse a reply early)
            break;
        f->out_off += (size_t)n;
    }
    fake_engine_drop(f);
    f->closed = true;
}

// A request is whole at the end of its head plus Content-Length body bytes.
static bool fake_engine_request_done(const struct buf *in)
{
    const char *end = in->data ? memmem(in->data, in->len, "\r\n\r\n", 4) : NULL;
    if (!end)
        return false;
    size_t head = (size_t)(end + 4 - in->data), body = 0;
    const char *cl = strcasestr(in->data, "\r\ncontent-length:");
    if (cl && cl < end)
        body = strtoul(cl + 17, NULL, 10);
    return in->len - head >= body;
}

static void fake_engine_on_conn(struct loop *loop, int fd, unsigned events, void *data)
{
    PROCTOR_UNUSED(loop);
    struct fake_engine *f = data;
    if (f->answered) {
        if (events & LOOP_WRITE)
            fake_engine_flush(f);
        else if (events & LOOP_READ) {
            char junk[4096]; // stdin bytes on an attach, or a hang-up
            ssize_t n = recv(fd, junk, sizeof(junk), MSG_DONTWAIT);
            if (n == 0)
                fake_engine_drop(f);
        }
        return;
    }
    char tmp[4096];
    ssize_t n = recv(fd, tmp, sizeof(tmp), MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        fake_engine_drop(f);
        f->closed = true;
        return;
    }
    PROCTOR_REQUIRE(buf_append(&f->in, tmp, (size_t)n, 0) == 0);
    if (fake_engine_request_done(&f->in)) {
        f->answered = true;
        fake_engine_flush(f);
    }
}

static void fake_engine_on_accept(struct loop *loop, int fd, unsigned events, void *data)
{
    PROCTOR_UNUSED(events);
    struct fake_engine *f = data;
    int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (cfd < 0)
        return;
    f->conns++;
    if (f->fd >= 0 || f->answered) {
        // One request per script: a reconnection (events restart) is not served.
        close(cfd);
        return;
    }
    f->fd = cfd;
    PROCTOR_REQUIRE(loop_fd_add(loop, cfd, LOOP_READ, fake_engine_on_conn, f) == 0);
}

static char fake_engine_path[108];

// libFuzzer ends with exit(): the socket file goes with the process.
static void fake_engine_unlink(void)
{
    unlink(fake_engine_path);
}

static void fake_engine_start(struct fake_engine *f, struct loop *loop)
{
    *f = (struct fake_engine){.loop = loop, .fd = -1};
    snprintf(f->path, sizeof(f->path), "/tmp/proctor-fuzz-docker-%ld.sock", (long)getpid());
    util_strlcpy(fake_engine_path, f->path, sizeof(fake_engine_path));
    atexit(fake_engine_unlink);
    unlink(f->path);
    f->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    util_strlcpy(sun.sun_path, f->path, sizeof(sun.sun_path));
    PROCTOR_REQUIRE(f->lfd >= 0 && bind(f->lfd, (struct sockaddr *)&sun, sizeof(sun)) == 0 &&
                    listen(f->lfd, 16) == 0);
    PROCTOR_REQUIRE(loop_fd_add(loop, f->lfd, LOOP_READ, fake_engine_on_accept, f) == 0);
}

// The next connection is answered with reply[0..n) (copied), then closed.
static void fake_engine_expect(struct fake_engine *f, const void *reply, size_t n)
{
    fake_engine_drop(f);
    buf_reset(&f->in);
    buf_reset(&f->out);
    PROCTOR_REQUIRE(buf_append(&f->out, reply, n, 0) == 0);
    f->out_off = 0;
    f->answered = false;
    f->closed = false;
    f->conns = 0;
}

// Guard against a client that never reports: a hang is a finding too.
static long fake_engine_on_deadline(struct loop *loop, uint64_t id, void *data)
{
    PROCTOR_UNUSED(loop);
    PROCTOR_UNUSED(id);
    FUZZ_CHECK(false, "no answer from the client within %s", (const char *)data);
    return LOOP_NOMORE;
}
