// Fault injection for the Docker client and the attach connection: a scripted
// fake engine on a unix socket, served from the same loop, produces what the
// real engine will not on demand: an events stream that ends (restart with
// `since`, replay dropped), a stats stream that ends, unparsable JSON, HTTP
// errors with Docker's message, over-long stream lines, a refused attach, bad
// and truncated multiplexed frames, stdin queued before the upgrade, freeing an
// attach or the whole client with work in flight. A second, hostile engine
// answers with numbers no integer can hold (NCPU 1e300, StatusCode 1e10,
// total_usage 1e999, event time 1e17): each is refused as a parse error of its
// reply (or line), never cast (UBSan would stop the test). Label filters with
// a quote, a backslash, '&' and non-ASCII reach the engine intact: the fake
// decodes the query and the JSON and compares.

#include "docker/docker_attach.h"
#include "docker/docker_client.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cjson/cJSON.h>

#include "check.h"
#include "core/loop.h"
#include "core/util.h"

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
#define EVENTS_FILTER                                                                              \
    "{\"label\":[\"lbl=x\"],\"type\":[\"container\"],\"event\":[\"create\",\"die\",\"oom\"]}"
// A label filter that JSON and the query must both escape.
#define ODD_LABEL "org.proctor.q=a\"b\\c d&e=%41/\xc3\xa9"

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
    char *events_filter; /* the first events request's filters, decoded */
    char *images_label;  /* the label filter of /images/json, decoded */
    char *list_label;    /* ... of /containers/json */
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
    REQUIRE_OR_EXIT(w == (ssize_t)n, "fake engine: short send");
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
    REQUIRE_OR_EXIT(buf_append(&b, hdr, 8, 0) == 0 && buf_append(&b, p, n, 0) == 0);
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
        REQUIRE_OR_EXIT((size_t)f->infos < ARRAY_SIZE(infos), "extra /info");
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
        REQUIRE_OR_EXIT(!"a request the hostile engine serves", "%s", p);
    }
}

static int hex_digit(char ch)
{
    return isdigit((unsigned char)ch) ? ch - '0' : tolower((unsigned char)ch) - 'a' + 10;
}

// The value of query parameter `key` in target, percent-decoded; NULL when
// absent or badly escaped. Caller frees.
static char *query_param(const char *target, const char *key)
{
    const char *q = strchr(target, '?');
    size_t klen = strlen(key);
    while (q && (strncmp(q + 1, key, klen) != 0 || q[1 + klen] != '='))
        q = strchr(q + 1, '&');
    if (!q)
        return NULL;
    const char *v = q + 1 + klen + 1;
    size_t n = strcspn(v, "&");
    char *out = xmalloc(n + 1), *o = out;
    for (size_t i = 0; i < n; i++) {
        if (v[i] != '%') {
            *o++ = v[i];
            continue;
        }
        if (i + 2 >= n + 1 || !isxdigit((unsigned char)v[i + 1]) ||
            !isxdigit((unsigned char)v[i + 2])) {
            free(out);
            return NULL;
        }
        *o++ = (char)(hex_digit(v[i + 1]) * 16 + hex_digit(v[i + 2]));
        i += 2;
    }
    *o = '\0';
    return out;
}

// The one label of target's `filters` ({"label":[...]}, nothing else); NULL
// when the filters are not that. Caller frees.
static char *filter_label(const char *target)
{
    AUTO_FREE char *json = query_param(target, "filters");
    cJSON *f = json ? cJSON_Parse(json) : NULL;
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(f, "label");
    const cJSON *first = cJSON_GetArrayItem(list, 0);
    char *label = NULL;
    if (cJSON_GetArraySize(f) == 1 && cJSON_GetArraySize(list) == 1 && cJSON_IsString(first))
        label = xstrdup(first->valuestring);
    cJSON_Delete(f);
    return label;
}

static void serve(struct fake *f, struct conn *c, const char *line, size_t extra)
{
    char method[16], target[1024];
    REQUIRE_OR_EXIT(sscanf(line, "%15s %1023s", method, target) == 2, "request line %s", line);
    c->answered = true;
    REQUIRE_OR_EXIT(strncmp(target, "/v1.41/", 7) == 0, "unversioned path %s", target);
    const char *p = target + 6;
    if (f->hostile) {
        serve_hostile(f, c, p);
    } else if (strncmp(p, "/events?", 8) == 0) {
        const char *since = strstr(p, "since=");
        REQUIRE_OR_EXIT(since && strstr(p, "filters="), "events query %s", p);
        long long sec = 0, nsec = 0;
        REQUIRE_OR_EXIT(sscanf(since, "since=%lld.%lld", &sec, &nsec) == 2, "since %s", since);
        conn_stream_head(c);
        if (f->events_conns++ == 0) {
            f->events_filter = query_param(p, "filters");
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
    } else if (strncmp(p, "/images/json?", 13) == 0) {
        f->images_label = filter_label(p);
        conn_reply(f, c, 200, "[{\"Id\":\"sha256:i\",\"Created\":5,\"Labels\":{\"x\":\"y\"}}]");
    } else if (strncmp(p, "/containers/json?all=1&", 23) == 0) {
        f->list_label = filter_label(p);
        // No Id: left out; a label that is not a string: left out; no State: "".
        conn_reply(f, c, 200,
                   "[{\"Id\":\"q1\",\"State\":\"running\",\"Labels\":{\"k\":\"v\"}},"
                   "{\"State\":\"exited\"},{\"Id\":\"q2\",\"Labels\":{\"a\":\"b\",\"n\":1}}]");
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
        REQUIRE_OR_EXIT(buf_append(&b, upgraded, strlen(upgraded), 0) == 0);
        // Output in the same packet as the head, then a frame with stream id 7.
        uint8_t fr[] = {1, 0, 0, 0, 0, 0, 0, 2, 'h', 'i', 7, 0, 0, 0, 0, 0, 0, 1, 'z'};
        REQUIRE_OR_EXIT(buf_append(&b, fr, sizeof(fr), 0) == 0);
        conn_send(c, b.data, b.len);
        buf_deinit(&b);
    } else if (strncmp(p, "/containers/trunc/attach?", 25) == 0) {
        conn_send(c, upgraded, strlen(upgraded));
        uint8_t fr[] = {1, 0, 0, 0, 0, 0, 0, 10, 'a', 'b', 'c'};
        conn_send(c, fr, sizeof(fr));
        conn_close(f, c);
    } else if (strncmp(p, "/containers/echo/attach?stream=1&stdin=1", 40) == 0) {
        // Nothing may be written before the upgrade answer: Docker drops such bytes.
        CHECK(extra == 0, "%zu stdin bytes sent before the upgrade", extra);
        conn_send(c, upgraded, strlen(upgraded));
        c->echo = true;
    } else {
        REQUIRE_OR_EXIT(!"a request the fake engine serves", "%s %s", method, target);
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
    REQUIRE_OR_EXIT(buf_append(&c->in, tmp, (size_t)n, 0) == 0);
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
    REQUIRE_OR_EXIT(f->nconns < ARRAY_SIZE(f->conns), "too many connections");
    struct conn *c = xcalloc(1, sizeof(*c));
    c->f = f;
    c->fd = cfd;
    f->conns[f->nconns++] = c;
    REQUIRE_OR_EXIT(loop_fd_add(loop, cfd, LOOP_READ, on_conn, c) == 0, "add conn");
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
    REQUIRE_OR_EXIT(f->lfd >= 0 && bind(f->lfd, (struct sockaddr *)&sun, sizeof(sun)) == 0 &&
                        listen(f->lfd, 16) == 0,
                    "fake engine socket: %s", strerror(errno));
    REQUIRE_OR_EXIT(loop_fd_add(loop, f->lfd, LOOP_READ, on_accept, f) == 0, "listen");
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
    free(f->events_filter);
    free(f->images_label);
    free(f->list_label);
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
    bool echo_closed;         /* on_close of an attach freed in on_data: must not happen */
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
    REQUIRE(i < 3, "event %d (%s %s): replayed or extra", i, ev->action, ev->id);
    CHECK(strcmp(ev->id, ids[i]) == 0 && strcmp(ev->action, actions[i]) == 0 &&
              ev->exit_code == codes[i],
          "event %d: %s %s %d", i, ev->action, ev->id, ev->exit_code);
    if (i == 0)
        CHECK(ev->n_attributes == 2 && ev->time == 1700000001, "attributes and time");
    if (i == 2) {
        CHECK(ev->time_nano == 1700000003LL * 1000000000, "time_nano from time");
        CHECK(g_fake.events_conns == 2, "stream reopened once (%d)", g_fake.events_conns);
        CHECK(g_fake.second_since <= EV2_NANO && g_fake.second_since > EV2_NANO - 10000,
              "reopened since %lld", (long long)g_fake.second_since);
        CHECK_STR_EQ(g_fake.events_filter, EVENTS_FILTER);
        docker_events_stop(t->ev);
        t->ev = NULL;
        check_done(t);
    }
}

static void on_cpu_ok(int status, const char *err, int64_t ns, void *data)
{
    struct t *t = data;
    static const int64_t want[] = {1000, 2500, -1};
    CHECK(status == 0, "stats: %d %s", status, err);
    REQUIRE(t->cpu_samples < 3, "sample %d: %lld", t->cpu_samples, (long long)ns);
    CHECK(ns == want[t->cpu_samples], "sample %d: %lld", t->cpu_samples, (long long)ns);
    if (++t->cpu_samples == 3)
        check_done(t);
}

static void on_cpu_long(int status, const char *err, int64_t ns, void *data)
{
    CHECK(status == -EMSGSIZE && err && ns == -1, "long stats line: %d %lld", status,
          (long long)ns);
    check_done(data);
}

static void on_info(int status, const char *err, const struct docker_info *info, void *data)
{
    CHECK(status == -EPROTO && err && !info, "garbage /info: %d", status);
    check_done(data);
}

static void on_create(int status, const char *err, const char *id, void *data)
{
    CHECK(status == 500 && err && strcmp(err, "boom") == 0 && !id, "create: %d %s", status,
          err ? err : "");
    check_done(data);
}

static void on_inspect(int status, const char *err, const struct docker_container_state *st,
                       void *data)
{
    CHECK(status == -EPROTO && err && !st, "inspect of a wrong shape: %d", status);
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
    CHECK(status == -ECONNREFUSED || status == -EIO, "no engine: %d %s", status, err ? err : "");
    check_done(data);
}

static void on_tcp_info(int status, const char *err, const struct docker_info *info, void *data)
{
    CHECK(status == -ECONNREFUSED && err && !info, "tcp info: %d", status);
    check_done(data);
}

static void on_tcp_close(struct docker_attach *a, int err, const char *text, void *data)
{
    // The non-blocking connect fails later, through SO_ERROR.
    CHECK(err == -ECONNREFUSED, "tcp attach: %d %s", err, text);
    CHECK(docker_attach_write(a, "x", 1) == -EPIPE, "write after close");
    docker_attach_free(a);
    check_done(data);
}

static void on_att_data(struct docker_attach *a, int stream, const void *p, size_t n, void *data)
{
    PROCTOR_UNUSED(a);
    PROCTOR_UNUSED(data);
    CHECK(stream == 1 && n == 2 && memcmp(p, "hi", 2) == 0, "bad attach data");
}

static void on_att_close_bad(struct docker_attach *a, int err, const char *text, void *data)
{
    CHECK(err == -EPROTO && strstr(text, "stream id"), "bad frame: %d %s", err, text);
    docker_attach_free(a); // free from inside on_close
    check_done(data);
}

static void on_att_close_missing(struct docker_attach *a, int err, const char *text, void *data)
{
    CHECK(err == 404 && strcmp(text, "No such container: missing") == 0, "refused: %d %s", err,
          text);
    docker_attach_free(a);
    check_done(data);
}

static void on_att_close_zero(struct docker_attach *a, int err, const char *text, void *data)
{
    CHECK(err == -EPROTO && strstr(text, "malformed"), "status 000: %d %s", err, text);
    docker_attach_free(a);
    check_done(data);
}

static void on_att_data_trunc(struct docker_attach *a, int stream, const void *p, size_t n,
                              void *data)
{
    PROCTOR_UNUSED(a);
    PROCTOR_UNUSED(data);
    CHECK(stream == 1 && n == 3 && memcmp(p, "abc", 3) == 0, "partial payload first");
}

static void on_att_close_trunc(struct docker_attach *a, int err, const char *text, void *data)
{
    CHECK(err == -EPROTO && strstr(text, "inside"), "truncated: %d %s", err, text);
    docker_attach_free(a);
    check_done(data);
}

static void on_echo_ready(struct docker_attach *a, void *data)
{
    PROCTOR_UNUSED(data);
    CHECK(docker_attach_write(a, " late", 5) == 0, "write after ready");
}

static void on_echo_data(struct docker_attach *a, int stream, const void *p, size_t n, void *data)
{
    struct t *t = data;
    CHECK(stream == 1, "echo stream %d", stream);
    REQUIRE_OR_EXIT(buf_append(&t->echoed, p, n, 0) == 0);
    if (t->echoed.len == 11) {
        CHECK(memcmp(t->echoed.data, "early! late", 11) == 0, "echo %.*s", (int)t->echoed.len,
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
    fprintf(stderr, "echo attach closed (%d %s) after being freed\n", err, text);
    ((struct t *)data)->echo_closed = true;
}

static void on_odd_images(int status, const char *err, const struct docker_image *imgs, size_t n,
                          void *data)
{
    CHECK_STR_EQ(g_fake.images_label, ODD_LABEL);
    CHECK(status == 0 && n == 1 && strcmp(imgs[0].id, "sha256:i") == 0 && imgs[0].created == 5 &&
              imgs[0].n_labels == 1,
          "images: %d %s (%zu)", status, err ? err : "", n);
    check_done(data);
}

static void on_odd_list(int status, const char *err, const struct docker_container_summary *l,
                        size_t n, void *data)
{
    CHECK_STR_EQ(g_fake.list_label, ODD_LABEL);
    CHECK(status == 0 && n == 2, "containers: %d %s (%zu)", status, err ? err : "", n);
    if (status == 0 && n == 2) {
        CHECK_STR_EQ(l[0].id, "q1");
        CHECK_STR_EQ(l[0].state, "running");
        CHECK(l[0].n_labels == 1 && strcmp(l[0].labels[0].key, "k") == 0 &&
                  strcmp(l[0].labels[0].value, "v") == 0,
              "labels of q1");
        CHECK_STR_EQ(l[1].id, "q2");
        CHECK_STR_EQ(l[1].state, "");
        CHECK_INT_EQ(l[1].n_labels, 1);
    }
    check_done(data);
}

/* ---- the hostile engine's numbers ----------------------------------------- */

static void on_h_info(int status, const char *err, const struct docker_info *info, void *data)
{
    struct t *t = data;
    int i = g_hostile.infos - 1;
    if (i < 8) {
        CHECK(status == -EPROTO && err && !info, "hostile /info %d: %d", i, status);
        REQUIRE_OR_EXIT(docker_info(t->hc, on_h_info, t), "next info");
        return;
    }
    CHECK(status == 0 && info->ncpu == 4 && info->mem_total == 9223372036854774784LL &&
              info->cgroup_version == 2 && info->n_runtimes == 1,
          "good /info: %d", status);
    check_done(t);
}

static void on_h_images(int status, const char *err, const struct docker_image *imgs, size_t n,
                        void *data)
{
    CHECK(status == -EPROTO && err && !imgs && n == 0, "images with Created 1e300: %d", status);
    check_done(data);
}

static void on_h_inspect_bad(int status, const char *err, const struct docker_container_state *st,
                             void *data)
{
    CHECK(status == -EPROTO && err && !st, "inspect with a huge number: %d", status);
    check_done(data);
}

static void on_h_inspect_fine(int status, const char *err, const struct docker_container_state *st,
                              void *data)
{
    CHECK(status == 0 && !err && st->exit_code == -1 && st->pid == 42, "inspect fine: %d", status);
    check_done(data);
}

static void on_h_wait_bad(int status, const char *err, int code, void *data)
{
    CHECK(status == -EPROTO && err, "wait with StatusCode out of range: %d (%d)", status, code);
    check_done(data);
}

static void on_h_wait_fine(int status, const char *err, int code, void *data)
{
    CHECK(status == 0 && !err && code == 137, "wait fine: %d %d", status, code);
    check_done(data);
}

static void on_h_cpu(int status, const char *err, int64_t ns, void *data)
{
    struct t *t = data;
    // The two samples out of range are dropped; the good one and the end remain.
    static const int64_t want[] = {5000, -1};
    CHECK(status == 0, "hostile stats: %d %s", status, err);
    REQUIRE(t->h_cpu < 2, "hostile sample %d: %lld", t->h_cpu, (long long)ns);
    CHECK(ns == want[t->h_cpu], "hostile sample %d: %lld", t->h_cpu, (long long)ns);
    if (++t->h_cpu == 2)
        check_done(t);
}

static void on_h_event(const struct docker_event *ev, void *data)
{
    struct t *t = data;
    CHECK(strcmp(ev->id, "ok") == 0, "event %s with a time out of range delivered", ev->id);
    CHECK(ev->time == 1700000004 && ev->time_nano == 1700000004LL * 1000000000, "event time");
    docker_events_stop(t->hev);
    t->hev = NULL;
    check_done(t);
}

static void on_h_attach_close(struct docker_attach *a, int err, const char *text, void *data)
{
    CHECK(err == -EPROTO && strstr(text, "malformed"), "status 99999999999: %d %s", err, text);
    docker_attach_free(a);
    check_done(data);
}

static void start_hostile(struct t *t)
{
    AUTO_FREE char *host = xasprintf("unix://%s", g_hostile.path);
    t->hc = docker_client_new(t->loop, host);
    REQUIRE_OR_EXIT(t->hc, "hostile client");
    t->outstanding += 9;
    REQUIRE_OR_EXIT(docker_info(t->hc, on_h_info, t), "info");
    REQUIRE_OR_EXIT(docker_images_list(t->hc, on_h_images, t), "images");
    REQUIRE_OR_EXIT(docker_container_inspect(t->hc, "code", on_h_inspect_bad, t), "inspect code");
    REQUIRE_OR_EXIT(docker_container_inspect(t->hc, "pid", on_h_inspect_bad, t), "inspect pid");
    REQUIRE_OR_EXIT(docker_container_inspect(t->hc, "fine", on_h_inspect_fine, t), "inspect fine");
    REQUIRE_OR_EXIT(docker_container_wait(t->hc, "big", on_h_wait_bad, t), "wait big");
    REQUIRE_OR_EXIT(docker_container_wait(t->hc, "small", on_h_wait_bad, t), "wait small");
    REQUIRE_OR_EXIT(docker_container_wait(t->hc, "fine", on_h_wait_fine, t), "wait fine");
    REQUIRE_OR_EXIT(docker_cpu_watch(t->hc, "cpu", on_h_cpu, t), "cpu");
    static const struct docker_attach_cbs code_cbs = {.on_data = on_att_data,
                                                      .on_close = on_h_attach_close};
    REQUIRE_OR_EXIT(docker_attach_new(t->hc, "code", NULL, &code_cbs, t), "attach code");
    t->outstanding++;
    t->hev = docker_events_watch(t->hc, "lbl=h", on_h_event, t);
    REQUIRE_OR_EXIT(t->hev, "hostile events");
    t->outstanding++;
}

static long on_deadline(struct loop *loop, uint64_t id, void *data)
{
    PROCTOR_UNUSED(loop);
    PROCTOR_UNUSED(id);
    struct t *t = data;
    REQUIRE_OR_EXIT(t->outstanding == 0, "deadline: %d checks left, %d events, %d cpu samples",
                    t->outstanding, t->events_seen, t->cpu_samples);
    return LOOP_NOMORE;
}

int main(void)
{
    struct t t = {0};
    t.loop = loop_new();
    REQUIRE_OR_EXIT(t.loop, "loop");
    fake_start(&g_fake, t.loop, false);
    fake_start(&g_hostile, t.loop, true);
    AUTO_FREE char *host = xasprintf("unix://%s", g_fake.path);
    t.c = docker_client_new(t.loop, host);
    REQUIRE_OR_EXIT(t.c, "client");
    loop_timer_add(t.loop, 20000, on_deadline, &t);

    t.outstanding = 16;
    t.ev = docker_events_watch(t.c, "lbl=x", on_event, &t);
    REQUIRE_OR_EXIT(t.ev, "watch");
    REQUIRE_OR_EXIT(docker_cpu_watch(t.c, "ok", on_cpu_ok, &t), "cpu ok");
    docker_client_set_limits(t.c, 64, 0);
    REQUIRE_OR_EXIT(docker_cpu_watch(t.c, "long", on_cpu_long, &t), "cpu long");
    docker_client_set_limits(t.c, 0, 0);
    REQUIRE_OR_EXIT(docker_info(t.c, on_info, &t), "info");
    struct docker_create_spec spec = {.image = "img", .memory_swappiness = -1};
    REQUIRE_OR_EXIT(docker_container_create(t.c, &spec, on_create, &t), "create");
    REQUIRE_OR_EXIT(docker_container_inspect(t.c, "x", on_inspect, &t), "inspect");
    REQUIRE_OR_EXIT(docker_container_wait(t.c, "hang", on_hang, &t), "wait");
    REQUIRE_OR_EXIT(docker_images_list_label(t.c, ODD_LABEL, on_odd_images, &t), "odd images");
    REQUIRE_OR_EXIT(docker_containers_list_by_label(t.c, ODD_LABEL, true, on_odd_list, &t),
                    "odd list");

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
    REQUIRE_OR_EXIT(docker_attach_new(t.c, "bad", NULL, &bad, &t), "attach bad");
    REQUIRE_OR_EXIT(docker_attach_new(t.c, "missing", NULL, &missing, &t), "attach missing");
    REQUIRE_OR_EXIT(docker_attach_new(t.c, "trunc", NULL, &trunc, &t), "attach trunc");
    REQUIRE_OR_EXIT(docker_attach_new(t.c, "zero", NULL, &zero, &t), "attach zero");
    CHECK(docker_attach_new(t.c, "../etc", NULL, &trunc, &t) == NULL, "bad reference");
    struct docker_attach_opts small = {.max_write = 12};
    t.echo = docker_attach_new(t.c, "echo", &small, &echo, &t);
    REQUIRE_OR_EXIT(t.echo, "attach echo");
    // Queued before the upgrade; the write bound holds.
    CHECK(docker_attach_write(t.echo, "early!", 6) == 0, "early write");
    CHECK(docker_attach_write(t.echo, "1234567", 7) == -ENOBUFS, "write over the bound");

    start_hostile(&t);

    // No engine at all.
    struct docker_client *none = docker_client_new(t.loop, "unix:///nonexistent/docker.sock");
    REQUIRE_OR_EXIT(none, "client without engine");
    REQUIRE_OR_EXIT(docker_container_start(none, "x", on_refused, &t), "start without engine");
    CHECK(docker_attach_new(none, "x", NULL, &bad, &t) == NULL, "attach without engine");

    // Plain TCP endpoint with nothing listening (port 1 on loopback).
    struct docker_client *tcp = docker_client_new(t.loop, "tcp://127.0.0.1:1");
    REQUIRE_OR_EXIT(tcp, "tcp client");
    CHECK_STR_EQ(docker_client_endpoint(tcp)->api_prefix, "/v1.41");
    REQUIRE_OR_EXIT(docker_info(tcp, on_tcp_info, &t), "tcp info");
    static const struct docker_attach_cbs tcp_cbs = {.on_data = on_att_data,
                                                     .on_close = on_tcp_close};
    REQUIRE_OR_EXIT(docker_attach_new(tcp, "x", NULL, &tcp_cbs, &t), "tcp attach");

    CHECK(loop_run(t.loop) == 0, "loop");
    CHECK(t.outstanding == 0, "checks left");
    CHECK(!t.hang_called, "hang");
    // The wait is still in flight: freeing the client must drop it silently.
    CHECK_INT_EQ(docker_client_pending(t.c), 1);
    docker_client_free(t.c);
    docker_client_free(none);
    docker_client_free(tcp);
    CHECK_INT_EQ(docker_client_pending(t.hc), 0);
    docker_client_free(t.hc);
    CHECK(!t.hang_called, "callback after free");
    fake_stop(&g_fake);
    fake_stop(&g_hostile);
    loop_free(t.loop);
    buf_deinit(&t.echoed);
    CHECK(!t.echo_closed, "on_close after docker_attach_free() in on_data");
    return check_finish("test_docker_faults");
}
