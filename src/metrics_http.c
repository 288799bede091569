#include "metrics_http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/metrics.h"
#include "core/util.h"

#define CONNECTION_TIMEOUT_S 10
#define MAX_CONNECTIONS 16

struct metrics_http {
    struct loop *loop;
    struct MHD_Daemon *d;
    int epfd;
    uint64_t timer;
};

static void arm(struct metrics_http *m);

static void run(struct metrics_http *m)
{
    if (MHD_run(m->d) != MHD_YES)
        log_warn(LOG_MAIN, "metrics: the HTTP server failed a round");
    arm(m);
}

static long on_timer(struct loop *loop, uint64_t id, void *data)
{
    PROCTOR_UNUSED(loop);
    PROCTOR_UNUSED(id);
    struct metrics_http *m = data;
    m->timer = 0;
    run(m);
    return LOOP_NOMORE;
}

/** libmicrohttpd's own deadlines (idle connections): a timer of the loop. */
static void arm(struct metrics_http *m)
{
    MHD_UNSIGNED_LONG_LONG ms = 0;
    loop_timer_del(m->loop, m->timer);
    m->timer = 0;
    if (MHD_get_timeout(m->d, &ms) == MHD_YES)
        m->timer = loop_timer_add(m->loop, (long)(ms > 60000 ? 60000 : ms), on_timer, m);
}

static void on_epoll(struct loop *loop, int fd, unsigned events, void *data)
{
    PROCTOR_UNUSED(loop);
    PROCTOR_UNUSED(fd);
    PROCTOR_UNUSED(events);
    run(data);
}

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned code, const char *type,
                             char *body, size_t len)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    enum MHD_Result ret = MHD_queue_response(conn, code, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **state)
{
    PROCTOR_UNUSED(cls);
    PROCTOR_UNUSED(version);
    PROCTOR_UNUSED(upload);
    if (*upload_size) {
        *upload_size = 0; /* no body is read: it is dropped */
        return MHD_YES;
    }
    PROCTOR_UNUSED(state);
    const char *text = "text/plain; charset=utf-8";
    if (strcmp(method, "GET") && strcmp(method, "HEAD"))
        return reply(conn, MHD_HTTP_METHOD_NOT_ALLOWED, text, xstrdup("GET only\n"), 9);
    if (strcmp(url, "/metrics"))
        return reply(conn, MHD_HTTP_NOT_FOUND, text, xstrdup("try /metrics\n"), 13);
    size_t len;
    char *body = metrics_render(&len);
    return reply(conn, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", body, len);
}

static void on_panic(void *cls, const char *file, unsigned line, const char *reason)
{
    PROCTOR_UNUSED(cls);
    // libmicrohttpd calls this for an internal inconsistency; its default aborts.
    log_error(LOG_MAIN, "metrics: libmicrohttpd panic at %s:%u: %s", file ? file : "?", line,
              reason ? reason : "?");
    abort();
}

static int parse_addr(const char *addr, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof *ss);
    const char *colon = strrchr(addr, ':');
    if (!colon || !colon[1])
        return -EINVAL;
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end || port < 1 || port > 65535)
        return -EINVAL;
    AUTO_FREE char *host = xstrndup(addr, (size_t)(colon - addr));
    if (host[0] == '[') {
        size_t n = strlen(host);
        if (n < 2 || host[n - 1] != ']')
            return -EINVAL;
        host[n - 1] = '\0';
        struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        return inet_pton(AF_INET6, host + 1, &a6->sin6_addr) == 1 ? 0 : -EINVAL;
    }
    struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
    a4->sin_family = AF_INET;
    a4->sin_port = htons((uint16_t)port);
    return inet_pton(AF_INET, host, &a4->sin_addr) == 1 ? 0 : -EINVAL;
}

struct metrics_http *metrics_http_start(struct loop *loop, const char *addr, char *err,
                                        size_t errlen)
{
    struct sockaddr_storage ss;
    if (parse_addr(addr, &ss)) {
        util_err(err, errlen, "--metrics takes ADDR:PORT (e.g. 127.0.0.1:9464), not %s", addr);
        return NULL;
    }
    MHD_set_panic_func(on_panic, NULL);
    struct metrics_http *m = xcalloc(1, sizeof *m);
    m->loop = loop;
    unsigned flags = MHD_USE_EPOLL | MHD_USE_ERROR_LOG;
    if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    uint16_t port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                   : ((struct sockaddr_in *)&ss)->sin_port);
    m->d = MHD_start_daemon(flags, port, NULL, NULL, on_request, m, MHD_OPTION_SOCK_ADDR, &ss,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)CONNECTION_TIMEOUT_S,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)MAX_CONNECTIONS, MHD_OPTION_END);
    if (!m->d) {
        util_err(err, errlen, "cannot serve metrics on %s: %s", addr, strerror(errno));
        free(m);
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(m->d, MHD_DAEMON_INFO_EPOLL_FD);
    m->epfd = info ? info->epoll_fd : -1;
    if (m->epfd < 0 || loop_fd_add(loop, m->epfd, LOOP_READ, on_epoll, m)) {
        util_err(err, errlen, "cannot watch the metrics server");
        MHD_stop_daemon(m->d);
        free(m);
        return NULL;
    }
    arm(m);
    log_info(LOG_MAIN, "metrics on http://%s/metrics", addr);
    return m;
}

void metrics_http_stop(struct metrics_http *m)
{
    if (!m)
        return;
    loop_timer_del(m->loop, m->timer);
    loop_fd_del(m->loop, m->epfd);
    MHD_stop_daemon(m->d);
    free(m);
}
