// Fault injection for the Docker client and the attach connection: a scripted
// fake engine on a unix socket, served from the same loop, produces what the
// real engine will not on demand: an events stream that ends (restart with
// `since`, replay dropped), a stats stream that ends, unparsable JSON, HTTP
// errors with Docker's message, over-long stream lines, a refused attach, bad
// and truncated multiplexed frames, stdin queued before the upgrade, freeing an
// attach or the whole client with work in flight. A second, hostile engine
// answers with numbers no integer can hold (NCPU 1e300, StatusCode 1e10,
// total_usage 1e999, event time 1e17): each is refused as a parse error of its
// reply (or line), never cast (UBSan would stop the test).

#include "docker/docker_attach.h"
#include "docker/docker_client.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "core/loop.h"
#include "core/util.h"

PROCTOR_PRINTF(1, 2) PROCTOR_NORETURN static void fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "test_docker_faults: FAIL: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

#define EXPECT(cond, ...)                                                                          \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, #cond);                             \
            fail(__VA_ARGS__);                                                                     \
        }                                                                                          \
    } while (0)

/* ---- the fake engine ---------------------------------------------------- */

#define EV1                                                                                        \
    "{\"Type\":\"container\",\"Action\":\"die\",\"Actor\":{\"ID\":\"c1\",\"Attributes\":{"         \
    "\"exitCode\":\"1\",\"lbl\":\"x\"}},\"time\":1700000001,\"timeNano\":1700000001000000100}\n"
#define EV2                                                                                        \
    "{\"Type\":\"container\",\"Action\":\"oom\",\"Actor\":{\"ID\":\"c2\",\"Attributes\":{}},"      \
    "\"time\":1700000002,\"timeNano\":1700000002000000200}\n"
#define EV3                                                                                        \
    "{\"Type\":\"container\",\"status\":\"die\",\"id\":\"c3\",\"Actor\":{\"Attributes\":{"         \
    "\"exitCode\":\"oops\"}},\"time\":1700000003}\n"
#define EV2_NANO 1700000002000000200LL

struct fake;

struct conn {
    struct fake *f;
    int fd;
    struct buf in;
    bool answered;
    bool echo; /* attach "echo": stdin comes back as stdout frames */
};

struct fake {
    struct loop *loop;
    bool hostile; /* serves serve_hostile() */
    int infos;    /* /info requests served so far (hostile engine) */
    int lfd;
    char path[108];
    int events_conns;
    int64_t second_since;
    struct conn *conns[32];
    size_t nconns;
};

static struct fake g_fake, g_hostile;

static void conn_close(struct fake *f, struct conn *c)
{
    loop_fd_del(f->loop, c->fd);
    close(c->fd);
    c->fd = -1;
}

static void conn_send(struct conn *c, const void *p, size_t n)
{
    // Small replies into an empty unix socket buffer: one send is enough.
    ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);
    EXPECT(w == (ssize_t)n, "fake engine: short send");
}

static void conn_reply(struct fake *f, struct conn *c, int code, const char *body)
{
    char head[256];
    snprintf(head, sizeof(head),
             "HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
             "Connection: close\r\n\r\n",
             code, strlen(body));
    conn_send(c, head, strlen(head));
    conn_send(c, body, strlen(body));
    conn_close(f, c);
}

static void conn_stream_head(struct conn *c)
{
    static const char head[] = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                               "Connection: close\r\n\r\n";
    conn_send(c, head, strlen(head));
}

static void frame(struct conn *c, uint8_t stream, const char *p, size_t n)
{
    uint8_t hdr[8] = {stream,    0, 0, 0, (uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8),
                      (uint8_t)n};
    struct buf b = {0};
    PROCTOR_REQUIRE(buf_append(&b, hdr, 8, 0) == 0 && buf_append(&b, p, n, 0) == 0);
    conn_send(c, b.data, b.len);
    buf_deinit(&b);
}

static const char upgraded[] = "HTTP/1.1 101 UPGRADED\r\nContent-Type: "
                               "application/vnd.docker.raw-stream\r\nConnection: Upgrade\r\n"
                               "Upgrade: tcp\r\n\r\n";

// Engine replies whose numbers no integer can hold, next to one good reply
// of each kind, so that a refusal is not just a broken parser.
static void serve_hostile(struct fake *f, struct conn *c, const char *p)
{
    static const char *const infos[] = {
        "{\"NCPU\":1e300,\"MemTotal\":1024}",
        "{\"NCPU\":-1e300,\"MemTotal\":1024}",
        "{\"NCPU\":2,\"MemTotal\":1e19}",
        "{\"NCPU\":2,\"MemTotal\":-1e999}",
        "{\"NCPU\":2147483648,\"MemTotal\":1024}",
        "{\"NCPU\":2,\"MemTotal\":1024,\"CgroupVersion\":1e10}",
        "{\"NCPU\":2,\"MemTotal\":1024,\"CgroupVersion\":\"99999999999\"}",
        "{\"NCPU\":2,\"MemTotal\":9223372036854775808}", /* 2^63: just out */
        "{\"NCPU\":4,\"MemTotal\":9223372036854774784,\"CgroupVersion\":\"2\","
        "\"Runtimes\":{\"runc\":{}}}", /* the largest double below 2^63: fine */
    };
    if (strcmp(p, "/info") == 0) {
        EXPECT((size_t)f->infos < ARRAY_SIZE(infos), "extra /info");
        conn_reply(f, c, 200, infos[f->infos++]);
    } else if (strncmp(p, "/images/json?", 13) == 0) {
        conn_reply(f, c, 200, "[{\"Id\":\"sha256:a\",\"Created\":1e300,\"Labels\":{}}]");
    } else if (strcmp(p, "/containers/code/json") == 0) {
        conn_reply(f, c, 200, "{\"Id\":\"code\",\"State\":{\"ExitCode\":1e10,\"Pid\":1}}");
    } else if (strcmp(p, "/containers/pid/json") == 0) {
        conn_reply(f, c, 200, "{\"Id\":\"pid\",\"State\":{\"ExitCode\":1,\"Pid\":1e19}}");
    } else if (strcmp(p, "/containers/fine/json") == 0) {
        conn_reply(f, c, 200, "{\"Id\":\"fine\",\"State\":{\"ExitCode\":-1,\"Pid\":42}}");
    } else if (strcmp(p, "/containers/big/wait?condition=not-running") == 0) {
        conn_reply(f, c, 200, "{\"StatusCode\":1e10}");
    } else if (strcmp(p, "/containers/small/wait?condition=not-running") == 0) {
        conn_reply(f, c, 200, "{\"StatusCode\":-1e999}");
    } else if (strcmp(p, "/containers/fine/wait?condition=not-running") == 0) {
        conn_reply(f, c, 200, "{\"StatusCode\":137}");
    } else if (strcmp(p, "/containers/cpu/stats?stream=1") == 0) {
        static const char st[] = "{\"cpu_stats\":{\"cpu_usage\":{\"total_usage\":1e999}}}\n"
                                 "{\"cpu_stats\":{\"cpu_usage\":{\"total_usage\":1e19}}}\n"
                                 "{\"cpu_stats\":{\"cpu_usage\":{\"total_usage\":5000}}}\n";
        conn_stream_head(c);
        conn_send(c, st, strlen(st));
        conn_close(f, c);
    } else if (strncmp(p, "/containers/code/attach?", 24) == 0) {
        static const char head[] = "HTTP/1.1 99999999999 UPGRADED\r\n\r\n";
        conn_send(c, head, strlen(head));
    } else if (strncmp(p, "/events?", 8) == 0) {
        static const char ev[] =
            "{\"Action\":\"die\",\"Actor\":{\"ID\":\"t1\"},\"time\":1e17}\n"
            "{\"Action\":\"die\",\"Actor\":{\"ID\":\"t2\"},\"time\":1,\"timeNano\":1e300}\n"
            "{\"Action\":\"die\",\"Actor\":{\"ID\":\"t3\"},\"time\":-1e300}\n"
            "{\"Action\":\"die\",\"Actor\":{\"ID\":\"ok\"},\"time\":1700000004}\n";
        conn_stream_head(c);
        conn_send(c, ev, strlen(ev)); // left open: the watch is stopped by the test
    } else {
        fail("hostile engine: unexpected %s", p);
    }
}

static void serve(struct fake *f, struct conn *c, const char *line, size_t extra)
{
    char method[16], target[1024];
    EXPECT(sscanf(line, "%15s %1023s", method, target) == 2, "request line %s", line);
    c->answered = true;
    if (strncmp(target, "/v1.41/", 7) != 0)
        fail("unversioned path %s", target);
    const char *p = target + 6;
    if (f->hostile) {
        serve_hostile(f, c, p);
    } else if (strncmp(p, "/events?", 8) == 0) {
        const char *since = strstr(p, "since=");
        EXPECT(since && strstr(p, "filters="), "events query %s", p);
        long long sec = 0, nsec = 0;
        EXPECT(sscanf(since, "since=%lld.%lld", &sec, &nsec) == 2, "since %s", since);
        conn_stream_head(c);
        if (f->events_conns++ == 0) {
            conn_send(c, EV1 EV2, strlen(EV1 EV2));
            conn_close(f, c); // the stream ends: the client must reopen it
        } else {
            f->second_since = sec * 1000000000 + nsec;
            conn_send(c, EV2 EV3, strlen(EV2 EV3)); // EV2 replayed: must be dropped
        }
    } else if (strcmp(p, "/containers/ok/stats?stream=1") == 0) {
        static const char s[] = "{\"cpu_stats\":{\"cpu_usage\":{\"total_usage\":1000}}}\n"
                                "{\"read\":\"x\"}\n"
                                "{\"cpu_stats\":{\"cpu_usage\":{\"total_usage\":2500}}}";
        conn_stream_head(c);
        conn_send(c, s, strlen(s));
        conn_close(f, c);
    } else if (strcmp(p, "/containers/long/stats?stream=1") == 0) {
        char s[300];
        memset(s, ' ', sizeof(s));
        conn_stream_head(c);
        conn_send(c, s, sizeof(s));
    } else if (strcmp(p, "/info") == 0) {
        conn_reply(f, c, 200, "this is not json");
    } else if (strcmp(p, "/containers/create") == 0) {
        conn_reply(f, c, 500, "{\"message\":\"boom\"}");
    } else if (strcmp(p, "/containers/x/json") == 0) {
        conn_reply(f, c, 200, "[1,2]"); // valid JSON, wrong shape
    } else if (strcmp(p, "/containers/hang/wait?condition=not-running") == 0) {
        // never answered: the client is freed with this in flight
    } else if (strncmp(p, "/containers/missing/attach?", 27) == 0) {
        conn_reply(f, c, 404, "{\"message\":\"No such container: missing\"}");
    } else if (strncmp(p, "/containers/zero/attach?", 24) == 0) {
        // No HTTP status is below 100: not a refusal with status 0 (found by fuzzing).
        static const char z[] = "HTTP/1.1 000 X\r\n\r\n";
        conn_send(c, z, strlen(z));
        conn_close(f, c);
    } else if (strncmp(p, "/containers/bad/attach?", 23) == 0) {
        struct buf b = {0};
        PROCTOR_REQUIRE(buf_append(&b, upgraded, strlen(upgraded), 0) == 0);
        // Output in the same packet as the head, then a frame with stream id 7.
        uint8_t fr[] = {1, 0, 0, 0, 0, 0, 0, 2, 'h', 'i', 7, 0, 0, 0, 0, 0, 0, 1, 'z'};
        PROCTOR_REQUIRE(buf_append(&b, fr, sizeof(fr), 0) == 0);
        conn_send(c, b.data, b.len);
        buf_deinit(&b);
    } else if (strncmp(p, "/containers/trunc/attach?", 25) == 0) {
        conn_send(c, upgraded, strlen(upgraded));
        uint8_t fr[] = {1, 0, 0, 0, 0, 0, 0, 10, 'a', 'b', 'c'};
        conn_send(c, fr, sizeof(fr));
        conn_close(f, c);
    } else if (strncmp(p, "/containers/echo/attach?stream=1&stdin=1", 40) == 0) {
        // Nothing may be written before the upgrade answer: Docker drops such bytes.
        EXPECT(extra == 0, "%zu stdin bytes sent before the upgrade", extra);
        conn_send(c, upgraded, strlen(upgraded));
        c->echo = true;
    } else {
        fail("fake engine: unexpected %s %s", method, target);
    }
}

static void on_conn(struct loop *loop, int fd, unsigned events, void *data)
{
    PROCTOR_UNUSED(loop);
    PROCTOR_UNUSED(events);
    struct conn *c = data;
    struct fake *f = c->f;
    char tmp[4096];
    ssize_t n = recv(fd, tmp, sizeof(tmp), MSG_DONTWAIT);
    if (n < 0 && errno == EAGAIN)
        return;
    if (n <= 0) {
        conn_close(f, c);
        return;
    }
    if (c->echo) {
        frame(c, 1, tmp, (size_t)n);
        return;
    }
    if (c->answered)
        return;
    PROCTOR_REQUIRE(buf_append(&c->in, tmp, (size_t)n, 0) == 0);
    const char *end = memmem(c->in.data, c->in.len, "\r\n\r\n", 4);
    if (end)
        serve(f, c, c->in.data, c->in.len - (size_t)(end + 4 - c->in.data));
}

static void on_accept(struct loop *loop, int fd, unsigned events, void *data)
{
    PROCTOR_UNUSED(events);
    struct fake *f = data;
    int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (cfd < 0)
        return;
    EXPECT(f->nconns < ARRAY_SIZE(f->conns), "too many connections");
    struct conn *c = xcalloc(1, sizeof(*c));
    c->f = f;
    c->fd = cfd;
    f->conns[f->nconns++] = c;
    EXPECT(loop_fd_add(loop, cfd, LOOP_READ, on_conn, c) == 0, "add conn");
}

static void fake_start(struct fake *f, struct loop *loop, bool hostile)
{
    f->loop = loop;
    f->hostile = hostile;
    snprintf(f->path, sizeof(f->path), "/tmp/proctor-fake-docker-%ld%s.sock", (long)getpid(),
             hostile ? "-hostile" : "");
    unlink(f->path);
    f->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    util_strlcpy(sun.sun_path, f->path, sizeof(sun.sun_path));
    EXPECT(f->lfd >= 0 && bind(f->lfd, (struct sockaddr *)&sun, sizeof(sun)) == 0 &&
               listen(f->lfd, 16) == 0,
           "fake engine socket: %s", strerror(errno));
    EXPECT(loop_fd_add(loop, f->lfd, LOOP_READ, on_accept, f) == 0, "listen");
}

static void fake_stop(struct fake *f)
{
    for (size_t i = 0; i < f->nconns; i++) {
        if (f->conns[i]->fd >= 0)
            conn_close(f, f->conns[i]);
        buf_deinit(&f->conns[i]->in);
        free(f->conns[i]);
    }
    loop_fd_del(f->loop, f->lfd);
    close(f->lfd);
    unlink(f->path);
}

/* ---- the client side ---------------------------------------------------- */

struct t {
    struct loop *loop;
    struct docker_client *c;
    struct docker_events *ev;
    struct docker_attach *echo;
    int events_seen;
    int cpu_samples;
    int outstanding; // checks not finished yet
    struct buf echoed;
    bool hang_called;
    struct docker_client *hc; /* talks to the hostile engine */
    struct docker_events *hev;
    int h_cpu;
};

static void check_done(struct t *t)
{
    if (--t->outstanding == 0)
        loop_stop(t->loop);
}

static void on_event(const struct docker_event *ev, void *data)
{
    struct t *t = data;
    static const char *const ids[] = {"c1", "c2", "c3"};
    static const char *const actions[] = {"die", "oom", "die"};
    static const int codes[] = {1, -1, -1};
    int i = t->events_seen++;
    EXPECT(i < 3, "event %d (%s %s): replayed or extra", i, ev->action, ev->id);
    EXPECT(strcmp(ev->id, ids[i]) == 0 && strcmp(ev->action, actions[i]) == 0 &&
               ev->exit_code == codes[i],
           "event %d: %s %s %d", i, ev->action, ev->id, ev->exit_code);
    if (i == 0)
        EXPECT(ev->n_attributes == 2 && ev->time == 1700000001, "attributes and time");
    if (i == 2) {
        EXPECT(ev->time_nano == 1700000003LL * 1000000000, "time_nano from time");
        EXPECT(g_fake.events_conns == 2, "stream reopened once (%d)", g_fake.events_conns);
        EXPECT(g_fake.second_since <= EV2_NANO && g_fake.second_since > EV2_NANO - 10000,
               "reopened since %lld", (long long)g_fake.second_since);
        docker_events_stop(t->ev);
        t->ev = NULL;
        check_done(t);
    }
}

static void on_cpu_ok(int status, const char *err, int64_t ns, void *data)
{
    struct t *t = data;
    static const int64_t want[] = {1000, 2500, -1};
    EXPECT(status == 0, "stats: %d %s", status, err);
    EXPECT(t->cpu_samples < 3 && ns == want[t->cpu_samples], "sample %d: %lld", t->cpu_samples,
           (long long)ns);
    if (++t->cpu_samples == 3)
        check_done(t);
}

static void on_cpu_long(int status, const char *err, int64_t ns, void *data)
{
    EXPECT(status == -EMSGSIZE && err && ns == -1, "long stats line: %d %lld", status,
           (long long)ns);
    check_done(data);
}

static void on_info(int status, const char *err, const struct docker_info *info, void *data)
{
    EXPECT(status == -EPROTO && err && !info, "garbage /info: %d", status);
    check_done(data);
}

static void on_create(int status, const char *err, const char *id, void *data)
{
    EXPECT(status == 500 && err && strcmp(err, "boom") == 0 && !id, "create: %d %s", status,
           err ? err : "");
    check_done(data);
}

static void on_inspect(int status, const char *err, const struct docker_container_state *st,
                       void *data)
{
    EXPECT(status == -EPROTO && err && !st, "inspect of a wrong shape: %d", status);
    check_done(data);
}

static void on_hang(int status, const char *err, int code, void *data)
{
    PROCTOR_UNUSED(status);
    PROCTOR_UNUSED(err);
    PROCTOR_UNUSED(code);
    ((struct t *)data)->hang_called = true;
}

static void on_refused(int status, const char *err, void *data)
{
    EXPECT(status == -ECONNREFUSED || status == -EIO, "no engine: %d %s", status, err ? err : "");
    check_done(data);
}

static void on_tcp_info(int status, const char *err, const struct docker_info *info, void *data)
{
    EXPECT(status == -ECONNREFUSED && err && !info, "tcp info: %d", status);
    check_done(data);
}

static void on_tcp_close(struct docker_attach *a, int err, const char *text, void *data)
{
    // The non-blocking connect fails later, through SO_ERROR.
    EXPECT(err == -ECONNREFUSED, "tcp attach: %d %s", err, text);
    EXPECT(docker_attach_write(a, "x", 1) == -EPIPE, "write after close");
    docker_attach_free(a);
    check_done(data);
}

static void on_att_data(struct docker_attach *a, int stream, const void *p, size_t n, void *data)
{
    PROCTOR_UNUSED(a);
    PROCTOR_UNUSED(data);
    EXPECT(stream == 1 && n == 2 && memcmp(p, "hi", 2) == 0, "bad attach data");
}

static void on_att_close_bad(struct docker_attach *a, int err, const char *text, void *data)
{
    EXPECT(err == -EPROTO && strstr(text, "stream id"), "bad frame: %d %s", err, text);
    docker_attach_free(a); // free from inside on_close
    check_done(data);
}

static void on_att_close_missing(struct docker_attach *a, int err, const char *text, void *data)
{
    EXPECT(err == 404 && strcmp(text, "No such container: missing") == 0, "refused: %d %s", err,
           text);
    docker_attach_free(a);
    check_done(data);
}

static void on_att_close_zero(struct docker_attach *a, int err, const char *text, void *data)
{
    EXPECT(err == -EPROTO && strstr(text, "malformed"), "status 000: %d %s", err, text);
    docker_attach_free(a);
    check_done(data);
}

static void on_att_data_trunc(struct docker_attach *a, int stream, const void *p, size_t n,
                              void *data)
{
    PROCTOR_UNUSED(a);
    PROCTOR_UNUSED(data);
    EXPECT(stream == 1 && n == 3 && memcmp(p, "abc", 3) == 0, "partial payload first");
}

static void on_att_close_trunc(struct docker_attach *a, int err, const char *text, void *data)
{
    EXPECT(err == -EPROTO && strstr(text, "inside"), "truncated: %d %s", err, text);
    docker_attach_free(a);
    check_done(data);
}

static void on_echo_ready(struct docker_attach *a, void *data)
{
    PROCTOR_UNUSED(data);
    EXPECT(docker_attach_write(a, " late", 5) == 0, "write after ready");
}

static void on_echo_data(struct docker_attach *a, int stream, const void *p, size_t n, void *data)
{
    struct t *t = data;
    EXPECT(stream == 1, "echo stream %d", stream);
    PROCTOR_REQUIRE(buf_append(&t->echoed, p, n, 0) == 0);
    if (t->echoed.len == 11) {
        EXPECT(memcmp(t->echoed.data, "early! late", 11) == 0, "echo %.*s", (int)t->echoed.len,
               t->echoed.data);
        // Free from inside on_data: no on_close may follow.
        docker_attach_free(a);
        t->echo = NULL;
        check_done(t);
    }
}

static void on_echo_close(struct docker_attach *a, int err, const char *text, void *data)
{
    PROCTOR_UNUSED(a);
    PROCTOR_UNUSED(data);
    fail("echo attach closed (%d %s) after being freed", err, text);
}

/* ---- the hostile engine's numbers ----------------------------------------- */

static void on_h_info(int status, const char *err, const struct docker_info *info, void *data)
{
    struct t *t = data;
    int i = g_hostile.infos - 1;
    if (i < 8) {
        EXPECT(status == -EPROTO && err && !info, "hostile /info %d: %d", i, status);
        EXPECT(docker_info(t->hc, on_h_info, t), "next info");
        return;
    }
    EXPECT(status == 0 && info->ncpu == 4 && info->mem_total == 9223372036854774784LL &&
               info->cgroup_version == 2 && info->n_runtimes == 1,
           "good /info: %d", status);
    check_done(t);
}

static void on_h_images(int status, const char *err, const struct docker_image *imgs, size_t n,
                        void *data)
{
    EXPECT(status == -EPROTO && err && !imgs && n == 0, "images with Created 1e300: %d", status);
    check_done(data);
}

static void on_h_inspect_bad(int status, const char *err, const struct docker_container_state *st,
                             void *data)
{
    EXPECT(status == -EPROTO && err && !st, "inspect with a huge number: %d", status);
    check_done(data);
}

static void on_h_inspect_fine(int status, const char *err, const struct docker_container_state *st,
                              void *data)
{
    EXPECT(status == 0 && !err && st->exit_code == -1 && st->pid == 42, "inspect fine: %d", status);
    check_done(data);
}

static void on_h_wait_bad(int status, const char *err, int code, void *data)
{
    EXPECT(status == -EPROTO && err, "wait with StatusCode out of range: %d (%d)", status, code);
    check_done(data);
}

static void on_h_wait_fine(int status, const char *err, int code, void *data)
{
    EXPECT(status == 0 && !err && code == 137, "wait fine: %d %d", status, code);
    check_done(data);
}

static void on_h_cpu(int status, const char *err, int64_t ns, void *data)
{
    struct t *t = data;
    // The two samples out of range are dropped; the good one and the end remain.
    static const int64_t want[] = {5000, -1};
    EXPECT(status == 0, "hostile stats: %d %s", status, err);
    EXPECT(t->h_cpu < 2 && ns == want[t->h_cpu], "hostile sample %d: %lld", t->h_cpu,
           (long long)ns);
    if (++t->h_cpu == 2)
        check_done(t);
}

static void on_h_event(const struct docker_event *ev, void *data)
{
    struct t *t = data;
    EXPECT(strcmp(ev->id, "ok") == 0, "event %s with a time out of range delivered", ev->id);
    EXPECT(ev->time == 1700000004 && ev->time_nano == 1700000004LL * 1000000000, "event time");
    docker_events_stop(t->hev);
    t->hev = NULL;
    check_done(t);
}

static void on_h_attach_close(struct docker_attach *a, int err, const char *text, void *data)
{
    EXPECT(err == -EPROTO && strstr(text, "malformed"), "status 99999999999: %d %s", err, text);
    docker_attach_free(a);
    check_done(data);
}

static void start_hostile(struct t *t)
{
    AUTO_FREE char *host = xasprintf("unix://%s", g_hostile.path);
    t->hc = docker_client_new(t->loop, host);
    EXPECT(t->hc, "hostile client");
    t->outstanding += 9;
    EXPECT(docker_info(t->hc, on_h_info, t), "info");
    EXPECT(docker_images_list(t->hc, on_h_images, t), "images");
    EXPECT(docker_container_inspect(t->hc, "code", on_h_inspect_bad, t), "inspect code");
    EXPECT(docker_container_inspect(t->hc, "pid", on_h_inspect_bad, t), "inspect pid");
    EXPECT(docker_container_inspect(t->hc, "fine", on_h_inspect_fine, t), "inspect fine");
    EXPECT(docker_container_wait(t->hc, "big", on_h_wait_bad, t), "wait big");
    EXPECT(docker_container_wait(t->hc, "small", on_h_wait_bad, t), "wait small");
    EXPECT(docker_container_wait(t->hc, "fine", on_h_wait_fine, t), "wait fine");
    EXPECT(docker_cpu_watch(t->hc, "cpu", on_h_cpu, t), "cpu");
    static const struct docker_attach_cbs code_cbs = {.on_data = on_att_data,
                                                      .on_close = on_h_attach_close};
    EXPECT(docker_attach_new(t->hc, "code", NULL, &code_cbs, t), "attach code");
    t->outstanding++;
    t->hev = docker_events_watch(t->hc, "lbl=h", on_h_event, t);
    EXPECT(t->hev, "hostile events");
    t->outstanding++;
}

static long on_deadline(struct loop *loop, uint64_t id, void *data)
{
    PROCTOR_UNUSED(loop);
    PROCTOR_UNUSED(id);
    struct t *t = data;
    fail("deadline: %d checks left, %d events, %d cpu samples", t->outstanding, t->events_seen,
         t->cpu_samples);
}

int main(void)
{
    struct t t = {0};
    t.loop = loop_new();
    EXPECT(t.loop, "loop");
    fake_start(&g_fake, t.loop, false);
    fake_start(&g_hostile, t.loop, true);
    AUTO_FREE char *host = xasprintf("unix://%s", g_fake.path);
    t.c = docker_client_new(t.loop, host);
    EXPECT(t.c, "client");
    loop_timer_add(t.loop, 20000, on_deadline, &t);

    t.outstanding = 14;
    t.ev = docker_events_watch(t.c, "lbl=x", on_event, &t);
    EXPECT(t.ev, "watch");
    EXPECT(docker_cpu_watch(t.c, "ok", on_cpu_ok, &t), "cpu ok");
    docker_client_set_limits(t.c, 64, 0);
    EXPECT(docker_cpu_watch(t.c, "long", on_cpu_long, &t), "cpu long");
    docker_client_set_limits(t.c, 0, 0);
    EXPECT(docker_info(t.c, on_info, &t), "info");
    struct docker_create_spec spec = {.image = "img", .memory_swappiness = -1};
    EXPECT(docker_container_create(t.c, &spec, on_create, &t), "create");
    EXPECT(docker_container_inspect(t.c, "x", on_inspect, &t), "inspect");
    EXPECT(docker_container_wait(t.c, "hang", on_hang, &t), "wait");

    static const struct docker_attach_cbs bad = {.on_data = on_att_data,
                                                 .on_close = on_att_close_bad};
    static const struct docker_attach_cbs missing = {.on_data = on_att_data,
                                                     .on_close = on_att_close_missing};
    static const struct docker_attach_cbs trunc = {.on_data = on_att_data_trunc,
                                                   .on_close = on_att_close_trunc};
    static const struct docker_attach_cbs zero = {.on_data = on_att_data,
                                                  .on_close = on_att_close_zero};
    static const struct docker_attach_cbs echo = {
        .on_ready = on_echo_ready, .on_data = on_echo_data, .on_close = on_echo_close};
    EXPECT(docker_attach_new(t.c, "bad", NULL, &bad, &t), "attach bad");
    EXPECT(docker_attach_new(t.c, "missing", NULL, &missing, &t), "attach missing");
    EXPECT(docker_attach_new(t.c, "trunc", NULL, &trunc, &t), "attach trunc");
    EXPECT(docker_attach_new(t.c, "zero", NULL, &zero, &t), "attach zero");
    EXPECT(docker_attach_new(t.c, "../etc", NULL, &trunc, &t) == NULL, "bad reference");
    struct docker_attach_opts small = {.max_write = 12};
    t.echo = docker_attach_new(t.c, "echo", &small, &echo, &t);
    EXPECT(t.echo, "attach echo");
    // Queued before the upgrade; the write bound holds.
    EXPECT(docker_attach_write(t.echo, "early!", 6) == 0, "early write");
    EXPECT(docker_attach_write(t.echo, "1234567", 7) == -ENOBUFS, "write over the bound");

    start_hostile(&t);

    // No engine at all.
    struct docker_client *none = docker_client_new(t.loop, "unix:///nonexistent/docker.sock");
    EXPECT(none, "client without engine");
    EXPECT(docker_container_start(none, "x", on_refused, &t), "start without engine");
    EXPECT(docker_attach_new(none, "x", NULL, &bad, &t) == NULL, "attach without engine");

    // Plain TCP endpoint with nothing listening (port 1 on loopback).
    struct docker_client *tcp = docker_client_new(t.loop, "tcp://127.0.0.1:1");
    EXPECT(tcp, "tcp client");
    EXPECT(strcmp(docker_client_endpoint(tcp)->api_prefix, "/v1.41") == 0, "api prefix");
    EXPECT(docker_info(tcp, on_tcp_info, &t), "tcp info");
    static const struct docker_attach_cbs tcp_cbs = {.on_data = on_att_data,
                                                     .on_close = on_tcp_close};
    EXPECT(docker_attach_new(tcp, "x", NULL, &tcp_cbs, &t), "tcp attach");

    EXPECT(loop_run(t.loop) == 0, "loop");
    EXPECT(t.outstanding == 0, "checks left");
    EXPECT(!t.hang_called, "hang");
    // The wait is still in flight: freeing the client must drop it silently.
    EXPECT(docker_client_pending(t.c) == 1, "pending %zu", docker_client_pending(t.c));
    docker_client_free(t.c);
    docker_client_free(none);
    docker_client_free(tcp);
    EXPECT(docker_client_pending(t.hc) == 0, "hostile pending %zu", docker_client_pending(t.hc));
    docker_client_free(t.hc);
    EXPECT(!t.hang_called, "callback after free");
    fake_stop(&g_fake);
    fake_stop(&g_hostile);
    loop_free(t.loop);
    buf_deinit(&t.echoed);
    printf("test_docker_faults: ok\n");
    return 0;
}
