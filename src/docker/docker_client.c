#include "docker/docker_client.h"

#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "core/log.h"
#include "core/metrics.h"
#include "core/loop.h"
#include "core/util.h"
#include "docker/docker_api.h"

#define DOCKER_DEFAULT_HOST "unix:///var/run/docker.sock"
#define DOCKER_DEFAULT_API "1.41"
#define CONNECT_TIMEOUT_MS 10000L

struct docker_req {
    struct docker_client *c;
    struct docker_req *prev, *next; /* in c->reqs */
    const struct docker_req_row *row;
    docker_any_fn fn; /* the public function's callback, called by the row's functions */
    void *data;
    CURL *easy; /* ours until curl_multi_remove_handle() + cleanup */
    struct curl_slist *headers;
    struct buf body; /* reply body; for streams, the bytes not yet split into lines */
    size_t max_body; /* cap on the body (streams: on one line) */
    bool overflow;   /* the body cap was hit: the transfer was aborted */
    bool in_multi;
    bool cancelled; /* no callback any more; freed by whoever holds it */
    bool finishing; /* its completion callback is running; freed right after */
    char errbuf[CURL_ERROR_SIZE];
};

struct docker_client {
    struct loop *loop;
    CURLM *multi;
    uint64_t timer_id;
    struct docker_req *reqs;
    struct docker_events *watches;
    size_t n_reqs;
    int depth;        /* > 0 while we are inside client_drive() */
    bool has_zombies; /* cancelled requests wait for the end of client_drive() */
    size_t max_body;
    long timeout_ms;
    struct docker_endpoint ep;
    char base_url[300];
};

static int parse_endpoint(const char *host, struct docker_endpoint *ep, char *base, size_t baselen);
static int parse_api_version(const char *v, struct docker_endpoint *ep);
static int on_curl_socket(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp);
static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp);
static void client_drive(struct docker_client *c, curl_socket_t s, int flags);
static struct docker_req *req_submit(struct docker_req *r);
static void req_detach(struct docker_req *r);
static void req_free(struct docker_req *r);

/* ---- public: client ---------------------------------------------------- */

struct docker_client *docker_client_new(struct loop *loop, const char *docker_host)
{
    if (PROCTOR_FAILS(loop))
        return NULL;
    if (!docker_host) {
        docker_host = getenv("DOCKER_HOST");
        if (!docker_host || !*docker_host)
            docker_host = DOCKER_DEFAULT_HOST;
    }
    struct docker_client *c = xcalloc(1, sizeof(*c));
    c->loop = loop;
    c->max_body = DOCKER_DEFAULT_MAX_BODY;
    c->timeout_ms = DOCKER_DEFAULT_TIMEOUT_MS;
    int ret = parse_endpoint(docker_host, &c->ep, c->base_url, sizeof(c->base_url));
    if (ret < 0)
        log_error(LOG_DOCKER, "bad docker host '%s' (want unix:///path or tcp://host:port)",
                  docker_host);
    if (!ret && (ret = parse_api_version(getenv("DOCKER_API_VERSION"), &c->ep)) < 0)
        log_error(LOG_DOCKER, "bad DOCKER_API_VERSION '%s'", getenv("DOCKER_API_VERSION"));
    if (!ret && curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        ret = -ENOMEM;
    if (!ret && !(c->multi = curl_multi_init())) {
        curl_global_cleanup();
        ret = -ENOMEM;
    }
    if (ret < 0)
        goto fail;
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
    log_debug(LOG_DOCKER, "docker client on %s (api %s)", docker_host, c->ep.api_prefix);
    return c;

fail:
    free(c);
    return NULL;
}

void docker_client_free(struct docker_client *c)
{
    if (!c)
        return;
    PROCTOR_REQUIRE(c->depth == 0);
    while (c->watches)
        docker_events_stop(c->watches);
    while (c->reqs)
        req_free(c->reqs);
    // Cleanup closes pooled connections, which calls back on_curl_socket with
    // CURL_POLL_REMOVE: the loop registrations go before c does.
    curl_multi_cleanup(c->multi);
    curl_global_cleanup();
    loop_timer_del(c->loop, c->timer_id);
    free(c);
}

void docker_client_set_limits(struct docker_client *c, size_t max_body, long timeout_ms)
{
    c->max_body = max_body ? max_body : DOCKER_DEFAULT_MAX_BODY;
    c->timeout_ms = timeout_ms > 0 ? timeout_ms : 0;
}

const struct docker_endpoint *docker_client_endpoint(const struct docker_client *c)
{
    return &c->ep;
}

long docker_client_timeout_ms(const struct docker_client *c)
{
    return c->timeout_ms;
}

struct loop *docker_client_loop(const struct docker_client *c)
{
    return c->loop;
}

size_t docker_client_pending(const struct docker_client *c)
{
    return c->n_reqs;
}

/* ---- public: requests -------------------------------------------------- */

void docker_req_cancel(struct docker_req *r)
{
    if (!r || r->cancelled)
        return;
    r->cancelled = true;
    // A request whose callback is running is freed when the callback returns.
    if (r->finishing)
        return;
    // Out of curl's hands at once (we never run inside a curl callback), but
    // freed later if a drive is iterating over the request list.
    req_detach(r);
    if (r->c->depth > 0)
        r->c->has_zombies = true;
    else
        req_free(r);
}

struct docker_req *docker_info(struct docker_client *c, docker_info_fn cb, void *data)
{
    return docker_req_start(c, DOCKER_REQ_INFO, NULL, NULL, NULL, (docker_any_fn)cb, data);
}

struct docker_req *docker_images_list(struct docker_client *c, docker_images_fn cb, void *data)
{
    return docker_images_list_label(c, DOCKER_GRADING_LABEL, cb, data);
}

struct docker_req *docker_images_list_label(struct docker_client *c, const char *label,
                                            docker_images_fn cb, void *data)
{
    if (PROCTOR_FAILS(label))
        return NULL;
    const char *const filters[] = {"label", label, NULL};
    AUTO_FREE char *f = docker_api_filters(filters);
    const char *const query[] = {"filters", f, NULL};
    return docker_req_start(c, DOCKER_REQ_IMAGES, NULL, query, NULL, (docker_any_fn)cb, data);
}

struct docker_req *docker_container_create(struct docker_client *c,
                                           const struct docker_create_spec *spec, docker_id_fn cb,
                                           void *data)
{
    if (PROCTOR_FAILS(spec && spec->image))
        return NULL;
    const char *const query[] = {"name", spec->name, NULL};
    return docker_req_start(c, DOCKER_REQ_CREATE, NULL, query, docker_api_create_body(spec),
                            (docker_any_fn)cb, data);
}

struct docker_req *docker_container_start(struct docker_client *c, const char *id,
                                          docker_done_fn cb, void *data)
{
    return docker_req_start(c, DOCKER_REQ_START, id, NULL, NULL, (docker_any_fn)cb, data);
}

struct docker_req *docker_container_update(struct docker_client *c, const char *id,
                                           const struct docker_update *u, docker_done_fn cb,
                                           void *data)
{
    return docker_req_start(c, DOCKER_REQ_UPDATE, id, NULL, docker_api_update_body(u),
                            (docker_any_fn)cb, data);
}

struct docker_req *docker_container_kill(struct docker_client *c, const char *id,
                                         const char *signal_name, docker_done_fn cb, void *data)
{
    const char *const query[] = {"signal", signal_name ? signal_name : "KILL", NULL};
    return docker_req_start(c, DOCKER_REQ_KILL, id, query, NULL, (docker_any_fn)cb, data);
}

struct docker_req *docker_container_remove(struct docker_client *c, const char *id, bool force,
                                           bool volumes, docker_done_fn cb, void *data)
{
    const char *const query[] = {"force", force ? "1" : "0", "v", volumes ? "1" : "0", NULL};
    return docker_req_start(c, DOCKER_REQ_REMOVE, id, query, NULL, (docker_any_fn)cb, data);
}

struct docker_req *docker_container_inspect(struct docker_client *c, const char *id,
                                            docker_inspect_fn cb, void *data)
{
    return docker_req_start(c, DOCKER_REQ_INSPECT, id, NULL, NULL, (docker_any_fn)cb, data);
}

struct docker_req *docker_containers_list_by_label(struct docker_client *c, const char *label,
                                                   bool all, docker_containers_fn cb, void *data)
{
    if (PROCTOR_FAILS(label && *label))
        return NULL;
    const char *const filters[] = {"label", label, NULL};
    AUTO_FREE char *f = docker_api_filters(filters);
    const char *const query[] = {"all", all ? "1" : "0", "filters", f, NULL};
    return docker_req_start(c, DOCKER_REQ_CONTAINERS, NULL, query, NULL, (docker_any_fn)cb, data);
}

struct docker_req *docker_container_wait(struct docker_client *c, const char *id, docker_wait_fn cb,
                                         void *data)
{
    const char *const query[] = {"condition", "not-running", NULL};
    return docker_req_start(c, DOCKER_REQ_WAIT, id, query, NULL, (docker_any_fn)cb, data);
}

struct docker_req *docker_cpu_watch(struct docker_client *c, const char *id, docker_cpu_fn cb,
                                    void *data)
{
    const char *const query[] = {"stream", "1", NULL};
    return docker_req_start(c, DOCKER_REQ_STATS, id, query, NULL, (docker_any_fn)cb, data);
}

/* ---- inside src/docker (docker_api.h) ---------------------------------- */

static void req_setopts(struct docker_req *r, const char *method, const char *url,
                        const char *body);
static char *req_url(struct docker_req *r, const char *path, const char *id,
                     const char *const *query);

struct docker_req *docker_req_start(struct docker_client *c, enum docker_req_kind kind,
                                    const char *id, const char *const *query, char *body,
                                    docker_any_fn fn, void *data)
{
    const struct docker_req_row *row = &docker_req_kinds[kind];
    const char *path = strchr(row->endpoint, ' ') + 1;
    if (strstr(path, "{id}") && PROCTOR_FAILS(id && *id)) {
        free(body);
        return NULL;
    }
    char method[8];
    snprintf(method, sizeof(method), "%.*s", (int)(path - 1 - row->endpoint), row->endpoint);
    struct docker_req *r = xcalloc(1, sizeof(*r));
    r->c = c;
    r->row = row;
    r->fn = fn;
    r->data = data;
    r->max_body = c->max_body;
    r->easy = curl_easy_init();
    PROCTOR_REQUIRE(r->easy);
    AUTO_FREE char *url = req_url(r, path, id, query);
    req_setopts(r, method, url, body); // curl copies the body
    free(body);
    log_debug(LOG_DOCKER, "%s %s", method, url);
    return req_submit(r);
}

struct docker_events **docker_client_watches(struct docker_client *c)
{
    return &c->watches;
}

/* ---- requests: lifecycle ----------------------------------------------- */

static size_t on_curl_write(char *p, size_t size, size_t nmemb, void *userp);

static void req_header(struct docker_req *r, const char *header)
{
    struct curl_slist *list = curl_slist_append(r->headers, header);
    PROCTOR_REQUIRE(list);
    r->headers = list;
}

static void req_setopts(struct docker_req *r, const char *method, const char *url, const char *body)
{
    struct docker_client *c = r->c;
    CURL *e = r->easy;
    curl_easy_setopt(e, CURLOPT_URL, url);
    if (c->ep.is_unix)
        curl_easy_setopt(e, CURLOPT_UNIX_SOCKET_PATH, c->ep.unix_path);
    curl_easy_setopt(e, CURLOPT_PRIVATE, r);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_curl_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, CONNECT_TIMEOUT_MS);
    // Streams and the wait long-poll last as long as the container: no total timeout.
    if (!r->row->line && !(r->row->flags & DOCKER_KIND_LONG_POLL) && c->timeout_ms > 0)
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, c->timeout_ms);
    req_header(r, "Expect:");
    if (strcmp(method, "POST") == 0) {
        curl_easy_setopt(e, CURLOPT_POST, 1L);
        if (body) {
            req_header(r, "Content-Type: application/json");
            curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
            curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, body);
        } else {
            curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, 0L);
            curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, "");
        }
    } else if (strcmp(method, "GET") != 0) {
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
    }
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->headers);
}

static void url_add(struct buf *b, const char *s, size_t n)
{
    PROCTOR_REQUIRE(buf_add(b, s, n) == 0);
}

// Percent-encodes all but RFC 3986's unreserved characters.
static void url_add_escaped(struct buf *b, CURL *e, const char *s)
{
    char *esc = curl_easy_escape(e, s, 0);
    PROCTOR_REQUIRE(esc);
    url_add(b, esc, strlen(esc));
    curl_free(esc);
}

// base URL + API prefix + path with "{id}" replaced + "?k=v&..." (values
// escaped; pairs with a NULL value left out). Caller frees.
static char *req_url(struct docker_req *r, const char *path, const char *id,
                     const char *const *query)
{
    struct docker_client *c = r->c;
    struct buf b = {0};
    url_add(&b, c->base_url, strlen(c->base_url));
    url_add(&b, c->ep.api_prefix, strlen(c->ep.api_prefix));
    const char *slot = strstr(path, "{id}");
    if (slot) {
        url_add(&b, path, (size_t)(slot - path));
        url_add_escaped(&b, r->easy, id);
        path = slot + strlen("{id}");
    }
    url_add(&b, path, strlen(path));
    char sep = '?';
    for (size_t i = 0; query && query[i]; i += 2) {
        if (!query[i + 1])
            continue;
        url_add(&b, &sep, 1);
        url_add(&b, query[i], strlen(query[i]));
        url_add(&b, "=", 1);
        url_add_escaped(&b, r->easy, query[i + 1]);
        sep = '&';
    }
    return b.data;
}

// Links r into the client and hands it to curl; NULL (r freed) on failure.
static struct docker_req *req_submit(struct docker_req *r)
{
    struct docker_client *c = r->c;
    r->next = c->reqs;
    if (c->reqs)
        c->reqs->prev = r;
    c->reqs = r;
    c->n_reqs++;
    CURLMcode mc = curl_multi_add_handle(c->multi, r->easy);
    if (mc != CURLM_OK) {
        log_error(LOG_DOCKER, "cannot start docker request: %s", curl_multi_strerror(mc));
        req_free(r);
        return NULL;
    }
    r->in_multi = true;
    return r;
}

static void req_detach(struct docker_req *r)
{
    if (r->in_multi) {
        curl_multi_remove_handle(r->c->multi, r->easy);
        r->in_multi = false;
    }
}

static void req_free(struct docker_req *r)
{
    struct docker_client *c = r->c;
    req_detach(r);
    if (r->prev)
        r->prev->next = r->next;
    else
        c->reqs = r->next;
    if (r->next)
        r->next->prev = r->prev;
    c->n_reqs--;
    curl_easy_cleanup(r->easy);
    curl_slist_free_all(r->headers);
    buf_deinit(&r->body);
    free(r);
}

/* ---- requests: curl glue ----------------------------------------------- */

static size_t on_curl_write(char *p, size_t size, size_t nmemb, void *userp)
{
    struct docker_req *r = userp;
    size_t n = size * nmemb;
    // Streams keep only an unfinished line between drives; the cap is on one line.
    size_t limit = r->row->line ? 2 * r->max_body : r->max_body;
    if (buf_append(&r->body, p, n, limit) < 0) {
        r->overflow = true;
        return 0;
    }
    if (r->row->line) {
        const char *nl = memrchr(r->body.data, '\n', r->body.len);
        size_t tail = nl ? r->body.len - (size_t)(nl + 1 - r->body.data) : r->body.len;
        if (tail > r->max_body) {
            r->overflow = true;
            return 0;
        }
    }
    return n;
}

static void on_curl_fd(struct loop *loop, int fd, unsigned events, void *data)
{
    PROCTOR_UNUSED(loop);
    int flags = 0;
    if (events & LOOP_READ)
        flags |= CURL_CSELECT_IN;
    if (events & LOOP_WRITE)
        flags |= CURL_CSELECT_OUT;
    if (events & LOOP_ERROR)
        flags |= CURL_CSELECT_ERR;
    client_drive(data, fd, flags);
}

static int on_curl_socket(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
    PROCTOR_UNUSED(easy);
    struct docker_client *c = userp;
    if (what == CURL_POLL_REMOVE) {
        if (socketp)
            loop_fd_del(c->loop, s);
        return 0;
    }
    unsigned mask =
        ((what & CURL_POLL_IN) ? LOOP_READ : 0) | ((what & CURL_POLL_OUT) ? LOOP_WRITE : 0);
    int ret;
    if (socketp) {
        ret = loop_fd_set(c->loop, s, mask);
    } else {
        ret = loop_fd_add(c->loop, s, mask, on_curl_fd, c);
        // socketp only marks "registered with the loop"; any non-NULL pointer does.
        if (!ret)
            curl_multi_assign(c->multi, s, c);
    }
    if (ret < 0)
        log_error(LOG_DOCKER, "cannot watch curl socket %d: %s", s, strerror(-ret));
    return ret < 0 ? -1 : 0;
}

static long on_loop_timer(struct loop *loop, uint64_t id, void *data)
{
    PROCTOR_UNUSED(loop);
    PROCTOR_UNUSED(id);
    struct docker_client *c = data;
    // This timer is spent; curl re-arms through on_curl_timer if it needs to.
    c->timer_id = 0;
    client_drive(c, CURL_SOCKET_TIMEOUT, 0);
    return LOOP_NOMORE;
}

static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
    PROCTOR_UNUSED(multi);
    struct docker_client *c = userp;
    loop_timer_del(c->loop, c->timer_id);
    c->timer_id = 0;
    // curl forbids driving the multi handle from here: even a 0 ms timeout goes through the
    // loop.
    if (timeout_ms >= 0)
        c->timer_id = loop_timer_add(c->loop, timeout_ms, on_loop_timer, c);
    return 0;
}

/* ---- requests: completion ---------------------------------------------- */

// Parses and delivers every complete line of a stream; with `all`, also the
// unterminated tail (the stream has ended).
static void stream_dispatch(struct docker_req *r, bool all)
{
    size_t off = 0;
    while (!r->cancelled && off < r->body.len) {
        const char *start = r->body.data + off;
        const char *nl = memchr(start, '\n', r->body.len - off);
        if (!nl && !all)
            break;
        size_t len = nl ? (size_t)(nl - start) : r->body.len - off;
        off += len + (nl ? 1 : 0);
        cJSON *json = cJSON_ParseWithLength(start, len);
        if (!json) {
            if (len > 0 && !(len == 1 && start[0] == '\r'))
                log_warn(LOG_DOCKER, "unparsable line in a docker stream (%zu bytes)", len);
            continue;
        }
        r->row->line(json, r->fn, r->data);
        cJSON_Delete(json);
    }
    if (!r->cancelled)
        buf_consume(&r->body, off);
}

static int curl_errno(CURLcode res)
{
    switch (res) {
    case CURLE_COULDNT_CONNECT:
        return -ECONNREFUSED;
    case CURLE_OPERATION_TIMEDOUT:
        return -ETIMEDOUT;
    case CURLE_OUT_OF_MEMORY:
        return -ENOMEM;
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
        return -ECONNRESET;
    case CURLE_SEND_ERROR:
        return -EPIPE;
    default:
        return -EIO;
    }
}

static const char *reply_message(const cJSON *json)
{
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(json, "message");
    return cJSON_IsString(m) ? m->valuestring : NULL;
}

// Turns a finished transfer into exactly one callback.
static void req_complete(struct docker_req *r, CURLcode res)
{
    const struct docker_req_row *row = r->row;
    long http = 0;
    curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &http);
    cJSON *json = NULL;
    int status = 0;
    const char *err = NULL;
    char text[160];
    if (res != CURLE_OK) {
        status = r->overflow ? -EMSGSIZE : curl_errno(res);
        if (r->overflow) {
            snprintf(text, sizeof(text), "reply from docker over the %zu-byte limit", r->max_body);
            err = text;
        } else {
            err = r->errbuf[0] ? r->errbuf : curl_easy_strerror(res);
        }
    } else if (http >= 300 && !((row->flags & DOCKER_KIND_304_OK) && http == 304)) {
        status = (int)http;
        json = cJSON_ParseWithLength(r->body.data ? r->body.data : "", r->body.len);
        err = reply_message(json);
        if (!err) {
            snprintf(text, sizeof(text), "docker answered http %ld", http);
            err = text;
        }
    } else if (row->line) {
        stream_dispatch(r, true);
    } else if (row->decode) {
        json = cJSON_ParseWithLength(r->body.data ? r->body.data : "", r->body.len);
        if (!json) {
            status = -EPROTO;
            err = "unparsable json from docker";
        }
    }
    if (status)
        metric_add(METRIC_DOCKER_ERRORS, row->endpoint, 1);
    if (r->cancelled)
        goto out;
    // 404 and 409 about one container (gone, not running) are answers its owner
    // expects on its way out; anything else is the engine failing a call.
    if (status)
        log_event_at((status == 404 || status == 409) && strstr(row->endpoint, "{id}")
                         ? LOG_LEVEL_DEBUG
                         : LOG_LEVEL_WARN,
                     LOG_DOCKER, "docker_error",
                     LOG_FIELDS(LOG_STR("call", row->endpoint), LOG_INT("status", status),
                                LOG_STR("error", err)),
                     "docker %s failed (%d): %s", row->endpoint, status, err ? err : "?");
    if (status == 0 && json) {
        int ret = row->decode(json, r->fn, r->data);
        if (ret < 0)
            row->fail(ret, "unexpected json shape from docker", r->fn, r->data);
    } else {
        // An error; or success without a body to decode (done requests, a stream's end).
        row->fail(status, err, r->fn, r->data);
    }
out:
    cJSON_Delete(json);
}

// One pass of curl work, then every callback it produced, then deferred frees.
static void client_drive(struct docker_client *c, curl_socket_t s, int flags)
{
    int running = 0;
    c->depth++;
    curl_multi_socket_action(c->multi, s, flags, &running);
    // Streams first, so that a stream's last lines come before its end.
    for (struct docker_req *r = c->reqs; r; r = r->next) {
        if (!r->row->line || r->cancelled || r->body.len == 0)
            continue;
        long http = 0;
        curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &http);
        if (http >= 200 && http < 300)
            stream_dispatch(r, false);
    }
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(c->multi, &left))) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        char *priv = NULL;
        CURLcode res = msg->data.result;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
        struct docker_req *r = (struct docker_req *)priv;
        if (!r || r->cancelled)
            continue;
        req_detach(r);
        r->finishing = true;
        req_complete(r, res);
        req_free(r);
    }
    c->depth--;
    if (c->depth == 0 && c->has_zombies) {
        c->has_zombies = false;
        struct docker_req *next;
        for (struct docker_req *r = c->reqs; r; r = next) {
            next = r->next;
            if (r->cancelled)
                req_free(r);
        }
    }
}

/* ---- endpoint ---------------------------------------------------------- */

static int parse_endpoint(const char *host, struct docker_endpoint *ep, char *base, size_t baselen)
{
    int ret = 0;
    memset(ep, 0, sizeof(*ep));
    if (strncmp(host, "unix://", 7) == 0) {
        const char *path = host + 7;
        if (path[0] != '/' || strlen(path) >= sizeof(ep->unix_path))
            return -EINVAL;
        ep->is_unix = true;
        util_strlcpy(ep->unix_path, path, sizeof(ep->unix_path));
        // The host part is ignored over a unix socket; "docker" keeps logs readable.
        snprintf(base, baselen, "http://docker");
        return 0;
    }
    if (strncmp(host, "tcp://", 6) != 0)
        return -EINVAL;
    const char *hp = host + 6;
    size_t hplen = strcspn(hp, "/");
    if (hplen == 0 || hplen >= sizeof(ep->host_port))
        return -EINVAL;
    memcpy(ep->host_port, hp, hplen);
    ep->host_port[hplen] = '\0';
    char name[256];
    const char *port;
    if (ep->host_port[0] == '[') {
        const char *end = strchr(ep->host_port, ']');
        if (!end || end[1] != ':')
            return -EINVAL;
        snprintf(name, sizeof(name), "%.*s", (int)(end - ep->host_port - 1), ep->host_port + 1);
        port = end + 2;
    } else {
        const char *colon = strrchr(ep->host_port, ':');
        if (!colon)
            return -EINVAL;
        snprintf(name, sizeof(name), "%.*s", (int)(colon - ep->host_port), ep->host_port);
        port = colon + 1;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    int gai = getaddrinfo(name, port, &hints, &res);
    if (gai != 0 || !res || res->ai_addrlen > sizeof(ep->addr)) {
        log_error(LOG_DOCKER, "cannot resolve docker host %s: %s", ep->host_port,
                  gai ? gai_strerror(gai) : "no address");
        ret = -EHOSTUNREACH;
    } else {
        memcpy(&ep->addr, res->ai_addr, res->ai_addrlen);
        ep->addr_len = res->ai_addrlen;
        snprintf(base, baselen, "http://%s", ep->host_port);
    }
    if (res)
        freeaddrinfo(res);
    return ret;
}

static int parse_api_version(const char *v, struct docker_endpoint *ep)
{
    if (!v || !*v)
        v = DOCKER_DEFAULT_API;
    if (v[0] == 'v')
        v++;
    for (const char *p = v; *p; p++)
        if (!isdigit((unsigned char)*p) && *p != '.')
            return -EINVAL;
    if (strlen(v) > 16)
        return -EINVAL;
    snprintf(ep->api_prefix, sizeof(ep->api_prefix), "/v%s", v);
    return 0;
}
