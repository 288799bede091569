#include "docker/docker_client.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "core/log.h"
#include "core/loop.h"
#include "core/util.h"

#define DOCKER_DEFAULT_HOST "unix:///var/run/docker.sock"
#define DOCKER_DEFAULT_API "1.41"
#define CONNECT_TIMEOUT_MS 10000L
#define EVENTS_RESTART_MS 250L
#define EVENTS_BACKOFF_MAX_MS 10000L
#define SINCE_MARGIN_NS 2000

enum req_kind {
    REQ_DONE,
    REQ_START,
    REQ_INFO,
    REQ_IMAGES,
    REQ_CREATE,
    REQ_INSPECT,
    REQ_CONTAINERS,
    REQ_WAIT,
    REQ_EVENTS,
    REQ_CPU,
};

struct docker_req {
    struct docker_client *c;
    struct docker_req *prev, *next; /* in c->reqs */
    enum req_kind kind;
    union {
        docker_done_fn done;
        docker_info_fn info;
        docker_images_fn images;
        docker_id_fn id;
        docker_inspect_fn inspect;
        docker_containers_fn containers;
        docker_wait_fn wait;
        docker_cpu_fn cpu;
    } cb;
    void *data;
    struct docker_events *events; /* REQ_EVENTS: the watch this stream feeds */
    CURL *easy;                   /* ours until curl_multi_remove_handle() + cleanup */
    struct curl_slist *headers;
    struct buf body; /* reply body; for streams, the bytes not yet split into lines */
    size_t max_body; /* cap on the body (streams: on one line) */
    bool streaming;  /* newline-delimited JSON, dispatched as it arrives */
    bool overflow;   /* the body cap was hit: the transfer was aborted */
    bool in_multi;
    bool cancelled; /* no callback any more; freed by whoever holds it */
    bool finishing; /* its completion callback is running; freed right after */
    char errbuf[CURL_ERROR_SIZE];
};

struct docker_events {
    struct docker_client *c;
    struct docker_events *prev, *next; /* in c->watches */
    char *label;
    docker_event_fn cb;
    void *data;
    struct docker_req *req;
    uint64_t restart_timer;
    long backoff_ms;
    int64_t since_nano; /* where a restarted stream resumes */
    int64_t last_nano;  /* last delivered event, to drop the replay of it */
    char *last_id;
    char *last_action;
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

static void client_drive(struct docker_client *c, curl_socket_t s, int flags);
static void events_connect(struct docker_events *ev);

/* ---- public: client ---------------------------------------------------- */

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

static int on_curl_socket(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp);
static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp);

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

static void req_free(struct docker_req *r);
static void req_detach(struct docker_req *r);
static void events_free(struct docker_events *ev);

void docker_client_free(struct docker_client *c)
{
    if (!c)
        return;
    PROCTOR_REQUIRE(c->depth == 0);
    while (c->watches)
        events_free(c->watches);
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

static struct docker_req *req_new(struct docker_client *c, enum req_kind kind, const char *method,
                                  char *path, char *body, void *data);
static struct docker_req *req_submit(struct docker_req *r);
static char *url_escape(const char *s);
static char *label_filter_query(const char *key, const char *label, const char *extra);

struct docker_req *docker_info(struct docker_client *c, docker_info_fn cb, void *data)
{
    struct docker_req *r = req_new(c, REQ_INFO, "GET", xstrdup("/info"), NULL, data);
    r->cb.info = cb;
    return req_submit(r);
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
    AUTO_FREE char *q = label_filter_query("label", label, NULL);
    struct docker_req *r =
        req_new(c, REQ_IMAGES, "GET", xasprintf("/images/json?%s", q), NULL, data);
    r->cb.images = cb;
    return req_submit(r);
}

static cJSON *json_strings(const char *const *list)
{
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; list && list[i]; i++)
        cJSON_AddItemToArray(arr, cJSON_CreateString(list[i]));
    return arr;
}

// Adds key: [strings] when the list is set.
static void json_add_strings(cJSON *obj, const char *key, const char *const *list)
{
    if (list)
        cJSON_AddItemToObject(obj, key, json_strings(list));
}

static void json_add_string(cJSON *obj, const char *key, const char *s)
{
    if (s)
        cJSON_AddStringToObject(obj, key, s);
}

static char *build_create_body(const struct docker_create_spec *s)
{
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "Image", s->image);
    json_add_strings(root, "Cmd", s->cmd);
    json_add_strings(root, "Entrypoint", s->entrypoint);
    json_add_strings(root, "Env", s->env);
    json_add_string(root, "User", s->user);
    json_add_string(root, "WorkingDir", s->working_dir);
    json_add_string(root, "Hostname", s->hostname);
    cJSON_AddBoolToObject(root, "Tty", false);
    cJSON_AddBoolToObject(root, "OpenStdin", s->open_stdin);
    cJSON_AddBoolToObject(root, "StdinOnce", s->stdin_once);
    cJSON_AddBoolToObject(root, "AttachStdin", s->attach_stdin);
    cJSON_AddBoolToObject(root, "AttachStdout", s->attach_stdout);
    cJSON_AddBoolToObject(root, "AttachStderr", s->attach_stderr);
    if (s->n_labels) {
        cJSON *labels = cJSON_AddObjectToObject(root, "Labels");
        for (size_t i = 0; i < s->n_labels; i++)
            cJSON_AddStringToObject(labels, s->labels[i].key, s->labels[i].value);
    }

    cJSON *hc = cJSON_AddObjectToObject(root, "HostConfig");
    if (s->log_driver) {
        cJSON *lc = cJSON_AddObjectToObject(hc, "LogConfig");
        if (lc)
            cJSON_AddStringToObject(lc, "Type", s->log_driver);
    }
    if (s->memory)
        cJSON_AddNumberToObject(hc, "Memory", (double)s->memory);
    if (s->memory_swap)
        cJSON_AddNumberToObject(hc, "MemorySwap", (double)s->memory_swap);
    if (s->memory_swappiness >= 0)
        cJSON_AddNumberToObject(hc, "MemorySwappiness", s->memory_swappiness);
    if (s->oom_kill_disable)
        cJSON_AddBoolToObject(hc, "OomKillDisable", true);
    if (s->pids_limit)
        cJSON_AddNumberToObject(hc, "PidsLimit", (double)s->pids_limit);
    if (s->nano_cpus)
        cJSON_AddNumberToObject(hc, "NanoCpus", (double)s->nano_cpus);
    json_add_string(hc, "NetworkMode", s->network_mode);
    json_add_string(hc, "Runtime", s->runtime);
    json_add_strings(hc, "Binds", s->binds);
    json_add_strings(hc, "CapDrop", s->cap_drop);
    json_add_strings(hc, "CapAdd", s->cap_add);
    json_add_strings(hc, "SecurityOpt", s->security_opt);
    json_add_strings(hc, "ExtraHosts", s->extra_hosts);
    if (s->readonly_rootfs)
        cJSON_AddBoolToObject(hc, "ReadonlyRootfs", true);
    if (s->n_ulimits) {
        cJSON *ul = cJSON_AddArrayToObject(hc, "Ulimits");
        for (size_t i = 0; i < s->n_ulimits; i++) {
            cJSON *u = cJSON_CreateObject();
            cJSON_AddStringToObject(u, "Name", s->ulimits[i].name);
            cJSON_AddNumberToObject(u, "Soft", (double)s->ulimits[i].soft);
            cJSON_AddNumberToObject(u, "Hard", (double)s->ulimits[i].hard);
            cJSON_AddItemToArray(ul, u);
        }
    }
    if (s->n_ports) {
        cJSON *exposed = cJSON_AddObjectToObject(root, "ExposedPorts");
        cJSON *pb = cJSON_AddObjectToObject(hc, "PortBindings");
        for (size_t i = 0; i < s->n_ports; i++) {
            const struct docker_port_binding *p = &s->ports[i];
            char key[48], hostport[16];
            snprintf(key, sizeof(key), "%u/%s", p->container_port, p->proto ? p->proto : "tcp");
            snprintf(hostport, sizeof(hostport), "%u", p->host_port);
            cJSON_AddObjectToObject(exposed, key);
            cJSON *list = cJSON_GetObjectItemCaseSensitive(pb, key);
            if (!list)
                list = cJSON_AddArrayToObject(pb, key);
            cJSON *b = cJSON_CreateObject();
            cJSON_AddStringToObject(b, "HostIp", p->host_ip ? p->host_ip : "");
            cJSON_AddStringToObject(b, "HostPort", hostport);
            cJSON_AddItemToArray(list, b);
        }
    }
    char *text = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    PROCTOR_REQUIRE(text);
    return text;
}

struct docker_req *docker_container_create(struct docker_client *c,
                                           const struct docker_create_spec *spec, docker_id_fn cb,
                                           void *data)
{
    if (PROCTOR_FAILS(spec && spec->image))
        return NULL;
    char *path;
    if (spec->name) {
        AUTO_FREE char *name = url_escape(spec->name);
        path = xasprintf("/containers/create?name=%s", name);
    } else {
        path = xstrdup("/containers/create");
    }
    struct docker_req *r = req_new(c, REQ_CREATE, "POST", path, build_create_body(spec), data);
    r->cb.id = cb;
    return req_submit(r);
}

// "/containers/<escaped id><suffix>"
static char *container_path(const char *id, const char *suffix)
{
    AUTO_FREE char *eid = url_escape(id);
    return xasprintf("/containers/%s%s", eid, suffix);
}

struct docker_req *docker_container_start(struct docker_client *c, const char *id,
                                          docker_done_fn cb, void *data)
{
    if (PROCTOR_FAILS(id && *id))
        return NULL;
    struct docker_req *r = req_new(c, REQ_START, "POST", container_path(id, "/start"), NULL, data);
    r->cb.done = cb;
    return req_submit(r);
}

struct docker_req *docker_container_kill(struct docker_client *c, const char *id,
                                         const char *signal_name, docker_done_fn cb, void *data)
{
    if (PROCTOR_FAILS(id && *id))
        return NULL;
    AUTO_FREE char *sig = url_escape(signal_name ? signal_name : "KILL");
    AUTO_FREE char *suffix = xasprintf("/kill?signal=%s", sig);
    struct docker_req *r = req_new(c, REQ_DONE, "POST", container_path(id, suffix), NULL, data);
    r->cb.done = cb;
    return req_submit(r);
}

struct docker_req *docker_container_remove(struct docker_client *c, const char *id, bool force,
                                           bool volumes, docker_done_fn cb, void *data)
{
    if (PROCTOR_FAILS(id && *id))
        return NULL;
    AUTO_FREE char *suffix = xasprintf("?force=%d&v=%d", force, volumes);
    struct docker_req *r = req_new(c, REQ_DONE, "DELETE", container_path(id, suffix), NULL, data);
    r->cb.done = cb;
    return req_submit(r);
}

struct docker_req *docker_container_inspect(struct docker_client *c, const char *id,
                                            docker_inspect_fn cb, void *data)
{
    if (PROCTOR_FAILS(id && *id))
        return NULL;
    struct docker_req *r = req_new(c, REQ_INSPECT, "GET", container_path(id, "/json"), NULL, data);
    r->cb.inspect = cb;
    return req_submit(r);
}

struct docker_req *docker_containers_list_by_label(struct docker_client *c, const char *label,
                                                   bool all, docker_containers_fn cb, void *data)
{
    if (PROCTOR_FAILS(label && *label))
        return NULL;
    AUTO_FREE char *q = label_filter_query("label", label, NULL);
    char *path = xasprintf("/containers/json?all=%d&%s", all, q);
    struct docker_req *r = req_new(c, REQ_CONTAINERS, "GET", path, NULL, data);
    r->cb.containers = cb;
    return req_submit(r);
}

struct docker_req *docker_container_wait(struct docker_client *c, const char *id, docker_wait_fn cb,
                                         void *data)
{
    if (PROCTOR_FAILS(id && *id))
        return NULL;
    char *path = container_path(id, "/wait?condition=not-running");
    struct docker_req *r = req_new(c, REQ_WAIT, "POST", path, NULL, data);
    r->cb.wait = cb;
    return req_submit(r);
}

struct docker_req *docker_cpu_watch(struct docker_client *c, const char *id, docker_cpu_fn cb,
                                    void *data)
{
    if (PROCTOR_FAILS(id && *id))
        return NULL;
    char *path = container_path(id, "/stats?stream=1");
    struct docker_req *r = req_new(c, REQ_CPU, "GET", path, NULL, data);
    r->cb.cpu = cb;
    return req_submit(r);
}

/* ---- public: events ---------------------------------------------------- */

static int64_t realtime_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

struct docker_events *docker_events_watch(struct docker_client *c, const char *label,
                                          docker_event_fn cb, void *data)
{
    if (PROCTOR_FAILS(c && cb))
        return NULL;
    struct docker_events *ev = xcalloc(1, sizeof(*ev));
    ev->c = c;
    ev->label = label ? xstrdup(label) : NULL;
    ev->cb = cb;
    ev->data = data;
    // Start from "now" rather than from the moment the stream is up, so that
    // nothing between this call and the connection is missed.
    ev->since_nano = realtime_ns();
    ev->backoff_ms = EVENTS_RESTART_MS;
    ev->next = c->watches;
    if (c->watches)
        c->watches->prev = ev;
    c->watches = ev;
    events_connect(ev);
    return ev;
}

void docker_events_stop(struct docker_events *ev)
{
    if (ev)
        events_free(ev);
}

/* ---- public: cgroup CPU time ------------------------------------------- */

static bool is_full_id(const char *id)
{
    size_t n = 0;
    for (; id[n]; n++)
        if (!isxdigit((unsigned char)id[n]) || isupper((unsigned char)id[n]))
            return false;
    return n == 64;
}

int docker_cpu_read_cgroup(const char *id, uint64_t *ns)
{
    if (PROCTOR_FAILS(id && ns) || !is_full_id(id))
        return -EINVAL;
    // cgroupfs and systemd drivers; v1 cpuacct.usage is in ns, v2 cpu.stat in us.
    static const struct {
        const char *prefix, *suffix;
        bool v1;
    } paths[] = {
        {"/sys/fs/cgroup/cpuacct/docker/", "/cpuacct.usage", true},
        {"/sys/fs/cgroup/cpu,cpuacct/docker/", "/cpuacct.usage", true},
        {"/sys/fs/cgroup/cpuacct/system.slice/docker-", ".scope/cpuacct.usage", true},
        {"/sys/fs/cgroup/cpu,cpuacct/system.slice/docker-", ".scope/cpuacct.usage", true},
        {"/sys/fs/cgroup/system.slice/docker-", ".scope/cpu.stat", false},
        {"/sys/fs/cgroup/docker/", "/cpu.stat", false},
    };
    int ret = -ENOENT;
    AUTO_FREE char *text = NULL;
    for (size_t i = 0; i < ARRAY_SIZE(paths) && ret == -ENOENT; i++) {
        AUTO_FREE char *path = xasprintf("%s%s%s", paths[i].prefix, id, paths[i].suffix);
        ret = util_read_file(path, 4096, &text, NULL);
        if (ret < 0)
            continue;
        const char *p = paths[i].v1 ? text : strstr(text, "usage_usec ");
        if (p && !paths[i].v1)
            p += strlen("usage_usec ");
        char *end = NULL;
        errno = 0;
        unsigned long long v = p ? strtoull(p, &end, 10) : 0;
        if (!p || end == p || errno || (!paths[i].v1 && v > UINT64_MAX / 1000u))
            ret = -EIO;
        else
            *ns = paths[i].v1 ? (uint64_t)v : (uint64_t)v * 1000u;
    }
    return ret;
}

/* ---- requests: lifecycle ----------------------------------------------- */

static size_t on_curl_write(char *p, size_t size, size_t nmemb, void *userp);

static struct docker_req *req_new(struct docker_client *c, enum req_kind kind, const char *method,
                                  char *path, char *body, void *data)
{
    struct docker_req *r = xcalloc(1, sizeof(*r));
    r->c = c;
    r->kind = kind;
    r->data = data;
    r->streaming = kind == REQ_EVENTS || kind == REQ_CPU;
    r->max_body = c->max_body;
    r->easy = curl_easy_init();
    PROCTOR_REQUIRE(r->easy);
    AUTO_FREE char *url = xasprintf("%s%s%s", c->base_url, c->ep.api_prefix, path);
    free(path);
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
    if (!r->streaming && kind != REQ_WAIT && c->timeout_ms > 0)
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, c->timeout_ms);
    r->headers = curl_slist_append(NULL, "Expect:");
    if (strcmp(method, "POST") == 0) {
        curl_easy_setopt(e, CURLOPT_POST, 1L);
        if (body) {
            r->headers = curl_slist_append(r->headers, "Content-Type: application/json");
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
    free(body);
    log_debug(LOG_DOCKER, "%s %s", method, url);
    return r;
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
    size_t limit = r->streaming ? 2 * r->max_body : r->max_body;
    if (buf_append(&r->body, p, n, limit) < 0) {
        r->overflow = true;
        return 0;
    }
    if (r->streaming) {
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
    // curl forbids driving the multi handle from here: even a 0 ms timeout goes through the loop.
    if (timeout_ms >= 0)
        c->timer_id = loop_timer_add(c->loop, timeout_ms, on_loop_timer, c);
    return 0;
}

/* ---- requests: results ------------------------------------------------- */

static const char *json_str(const cJSON *obj, const char *key)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(it) ? it->valuestring : NULL;
}

static bool json_num(const cJSON *obj, const char *key, double *out)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!cJSON_IsNumber(it))
        return false;
    *out = it->valuedouble;
    return true;
}

// Every number of a reply that becomes an integer goes through here: 0 with
// *out set (dflt when key is absent or not a number), or -EPROTO when the
// number does not fit [min, max] (a cast would be undefined behaviour).
static int json_int(const cJSON *obj, const char *key, int64_t min, int64_t max, int64_t dflt,
                    int64_t *out)
{
    double d;
    *out = dflt;
    if (!json_num(obj, key, &d))
        return 0;
    return util_double_to_int(d, min, max, out) ? -EPROTO : 0;
}

static bool json_bool(const cJSON *obj, const char *key)
{
    return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(obj, key));
}

static size_t json_count_strings(const cJSON *obj)
{
    size_t n = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, obj)
    {
        if (it->string && cJSON_IsString(it))
            n++;
    }
    return n;
}

// Fills kv with obj's string members; returns how many.
static size_t json_fill_kv(const cJSON *obj, struct docker_kv *kv)
{
    size_t n = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, obj)
    {
        if (it->string && cJSON_IsString(it))
            kv[n++] = (struct docker_kv){.key = it->string, .value = it->valuestring};
    }
    return n;
}

// The API sends CgroupVersion as a string ("1", "2"); not a number means
// "not said" (0), a number out of range is a broken reply.
static int cgroup_version(const cJSON *json, int64_t *out)
{
    const char *cg = json_str(json, "CgroupVersion");
    if (!cg)
        return json_int(json, "CgroupVersion", 0, INT_MAX, 0, out);
    char *end;
    errno = 0;
    long long v = strtoll(cg, &end, 10);
    *out = 0;
    if (end == cg)
        return 0;
    if (errno || v < 0 || v > INT_MAX)
        return -EPROTO;
    *out = v;
    return 0;
}

static int result_info(struct docker_req *r, const cJSON *json)
{
    int64_t mem = 0, ncpu = 0, cgv = 0;
    if (!cJSON_IsObject(json))
        return -EPROTO;
    int ret = json_int(json, "MemTotal", 0, INT64_MAX, 0, &mem);
    if (!ret)
        ret = json_int(json, "NCPU", 0, INT_MAX, 0, &ncpu);
    if (!ret)
        ret = cgroup_version(json, &cgv);
    if (ret)
        return ret;
    const cJSON *rts = cJSON_GetObjectItemCaseSensitive(json, "Runtimes");
    size_t n = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, rts) n++;
    const char **names = xcalloc(n + 1, sizeof(*names));
    n = 0;
    cJSON_ArrayForEach(it, rts)
    {
        if (it->string)
            names[n++] = it->string;
    }
    struct docker_info info = {
        .runtimes = names,
        .n_runtimes = n,
        .default_runtime = json_str(json, "DefaultRuntime"),
        .mem_total = mem,
        .ncpu = (int)ncpu,
        .cgroup_version = (int)cgv,
        .server_version = json_str(json, "ServerVersion"),
    };
    r->cb.info(0, NULL, &info, r->data);
    free(names);
    return 0;
}

static int result_images(struct docker_req *r, const cJSON *json)
{
    if (!cJSON_IsArray(json))
        return -EPROTO;
    size_t n = 0, nkv = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, json)
    {
        n++;
        nkv += json_count_strings(cJSON_GetObjectItemCaseSensitive(it, "Labels"));
    }
    struct docker_image *imgs = xcalloc(n + 1, sizeof(*imgs));
    struct docker_kv *kvs = xcalloc(nkv + 1, sizeof(*kvs));
    size_t i = 0, k = 0;
    int ret = 0;
    cJSON_ArrayForEach(it, json)
    {
        const char *id = json_str(it, "Id");
        if (!id)
            continue;
        struct docker_image *img = &imgs[i++];
        img->id = id;
        ret = json_int(it, "Created", INT64_MIN, INT64_MAX, 0, &img->created);
        if (ret)
            break;
        img->labels = kvs + k;
        img->n_labels = json_fill_kv(cJSON_GetObjectItemCaseSensitive(it, "Labels"), kvs + k);
        k += img->n_labels;
    }
    if (!ret)
        r->cb.images(0, NULL, imgs, i, r->data);
    free(kvs);
    free(imgs);
    return ret;
}

static int result_containers(struct docker_req *r, const cJSON *json)
{
    if (!cJSON_IsArray(json))
        return -EPROTO;
    size_t n = 0, nkv = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, json)
    {
        n++;
        nkv += json_count_strings(cJSON_GetObjectItemCaseSensitive(it, "Labels"));
    }
    struct docker_container_summary *list = xcalloc(n + 1, sizeof(*list));
    struct docker_kv *kvs = xcalloc(nkv + 1, sizeof(*kvs));
    size_t i = 0, k = 0;
    cJSON_ArrayForEach(it, json)
    {
        const char *id = json_str(it, "Id");
        if (!id)
            continue;
        struct docker_container_summary *s = &list[i++];
        s->id = id;
        s->state = json_str(it, "State");
        if (!s->state)
            s->state = "";
        s->labels = kvs + k;
        s->n_labels = json_fill_kv(cJSON_GetObjectItemCaseSensitive(it, "Labels"), kvs + k);
        k += s->n_labels;
    }
    r->cb.containers(0, NULL, list, i, r->data);
    free(kvs);
    free(list);
    return 0;
}

static int result_inspect(struct docker_req *r, const cJSON *json)
{
    const cJSON *state = cJSON_GetObjectItemCaseSensitive(json, "State");
    const char *id = json_str(json, "Id");
    if (!cJSON_IsObject(state) || !id)
        return -EPROTO;
    const char *status = json_str(state, "Status");
    int64_t code = -1, pid = 0;
    int ret = json_int(state, "ExitCode", INT_MIN, INT_MAX, -1, &code);
    if (!ret)
        ret = json_int(state, "Pid", INT64_MIN, INT64_MAX, 0, &pid);
    if (ret)
        return ret;
    struct docker_container_state st = {
        .id = id,
        .status = status ? status : "",
        .running = json_bool(state, "Running"),
        .oom_killed = json_bool(state, "OOMKilled"),
        .exit_code = (int)code,
        .pid = pid,
    };
    r->cb.inspect(0, NULL, &st, r->data);
    return 0;
}

static int result_create(struct docker_req *r, const cJSON *json)
{
    const char *id = json_str(json, "Id");
    if (!id)
        return -EPROTO;
    const cJSON *w;
    cJSON_ArrayForEach(w, cJSON_GetObjectItemCaseSensitive(json, "Warnings"))
    {
        if (cJSON_IsString(w))
            log_warn(LOG_DOCKER, "container %.12s: docker warns: %s", id, w->valuestring);
    }
    r->cb.id(0, NULL, id, r->data);
    return 0;
}

static int result_wait(struct docker_req *r, const cJSON *json)
{
    double d;
    int64_t code;
    if (!json_num(json, "StatusCode", &d) || util_double_to_int(d, INT_MIN, INT_MAX, &code))
        return -EPROTO;
    const cJSON *err = cJSON_GetObjectItemCaseSensitive(json, "Error");
    const char *msg = cJSON_IsObject(err) ? json_str(err, "Message") : NULL;
    if (msg && *msg)
        log_warn(LOG_DOCKER, "wait reports: %s", msg);
    r->cb.wait(0, NULL, (int)code, r->data);
    return 0;
}

static void events_line(struct docker_events *ev, const cJSON *json);
static void events_end(struct docker_events *ev, int status, const char *err);

static void cpu_line(struct docker_req *r, const cJSON *json)
{
    const cJSON *cpu = cJSON_GetObjectItemCaseSensitive(json, "cpu_stats");
    const cJSON *usage = cJSON_GetObjectItemCaseSensitive(cpu, "cpu_usage");
    int64_t total = 0;
    // Docker keeps the stream open after the container stops and sends
    // zeroed samples (and a bare {"read":...}); those carry no CPU reading.
    if (json_int(usage, "total_usage", INT64_MIN, INT64_MAX, 0, &total)) {
        log_warn(LOG_DOCKER, "stats sample with a cpu time out of range skipped");
        return;
    }
    if (total <= 0) {
        log_debug(LOG_DOCKER, "stats sample without cpu time");
        return;
    }
    r->cb.cpu(0, NULL, total, r->data);
}

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
        if (r->kind == REQ_EVENTS)
            events_line(r->events, json);
        else
            cpu_line(r, json);
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

// Reports a failure through whatever callback the request has.
static void req_fail(struct docker_req *r, int status, const char *err)
{
    switch (r->kind) {
    case REQ_DONE:
    case REQ_START:
        r->cb.done(status, err, r->data);
        break;
    case REQ_INFO:
        r->cb.info(status, err, NULL, r->data);
        break;
    case REQ_IMAGES:
        r->cb.images(status, err, NULL, 0, r->data);
        break;
    case REQ_CREATE:
        r->cb.id(status, err, NULL, r->data);
        break;
    case REQ_INSPECT:
        r->cb.inspect(status, err, NULL, r->data);
        break;
    case REQ_CONTAINERS:
        r->cb.containers(status, err, NULL, 0, r->data);
        break;
    case REQ_WAIT:
        r->cb.wait(status, err, -1, r->data);
        break;
    case REQ_CPU:
        r->cb.cpu(status, err, -1, r->data);
        break;
    case REQ_EVENTS:
        events_end(r->events, status, err);
        break;
    }
}

// Turns a finished transfer into exactly one callback.
static void req_complete(struct docker_req *r, CURLcode res)
{
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
    } else if (http >= 300 && !(r->kind == REQ_START && http == 304)) {
        status = (int)http;
        json = cJSON_ParseWithLength(r->body.data ? r->body.data : "", r->body.len);
        err = json_str(json, "message");
        if (!err) {
            snprintf(text, sizeof(text), "docker answered http %ld", http);
            err = text;
        }
    } else if (r->streaming) {
        stream_dispatch(r, true);
    } else if (r->kind != REQ_DONE && r->kind != REQ_START) {
        json = cJSON_ParseWithLength(r->body.data ? r->body.data : "", r->body.len);
        if (!json) {
            status = -EPROTO;
            err = "unparsable json from docker";
        }
    }
    int ret = 0;
    if (r->cancelled)
        goto out;
    if (status != 0) {
        req_fail(r, status, err);
        goto out;
    }
    switch (r->kind) {
    case REQ_DONE:
    case REQ_START:
        r->cb.done(0, NULL, r->data);
        break;
    case REQ_INFO:
        ret = result_info(r, json);
        break;
    case REQ_IMAGES:
        ret = result_images(r, json);
        break;
    case REQ_CREATE:
        ret = result_create(r, json);
        break;
    case REQ_INSPECT:
        ret = result_inspect(r, json);
        break;
    case REQ_CONTAINERS:
        ret = result_containers(r, json);
        break;
    case REQ_WAIT:
        ret = result_wait(r, json);
        break;
    case REQ_CPU:
        r->cb.cpu(0, NULL, -1, r->data);
        break;
    case REQ_EVENTS:
        events_end(r->events, 0, NULL);
        break;
    }
    if (ret < 0)
        req_fail(r, ret, "unexpected json shape from docker");
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
        if (!r->streaming || r->cancelled || r->body.len == 0)
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

/* ---- events ------------------------------------------------------------ */

static long on_events_restart(struct loop *loop, uint64_t id, void *data)
{
    PROCTOR_UNUSED(loop);
    PROCTOR_UNUSED(id);
    struct docker_events *ev = data;
    ev->restart_timer = 0;
    events_connect(ev);
    return LOOP_NOMORE;
}

static void events_schedule(struct docker_events *ev, long delay_ms)
{
    if (!ev->restart_timer)
        ev->restart_timer = loop_timer_add(ev->c->loop, delay_ms, on_events_restart, ev);
}

static void events_connect(struct docker_events *ev)
{
    struct docker_client *c = ev->c;
    char extra[64];
    snprintf(extra, sizeof(extra), "\"type\":[\"container\"],\"event\":[\"die\",\"oom\"]");
    AUTO_FREE char *q = label_filter_query("label", ev->label, extra);
    // timeNano goes through a double in cJSON (about 256 ns of rounding at
    // today's dates): resume a little early and let events_line() drop the replay.
    int64_t since = ev->since_nano > SINCE_MARGIN_NS ? ev->since_nano - SINCE_MARGIN_NS : 0;
    char *path = xasprintf("/events?%s&since=%" PRId64 ".%09" PRId64, q, since / 1000000000,
                           since % 1000000000);
    struct docker_req *r = req_new(c, REQ_EVENTS, "GET", path, NULL, ev);
    r->events = ev;
    ev->req = req_submit(r);
    if (!ev->req)
        events_schedule(ev, ev->backoff_ms);
}

static void events_line(struct docker_events *ev, const cJSON *json)
{
    const char *action = json_str(json, "Action");
    if (!action)
        action = json_str(json, "status");
    const cJSON *actor = cJSON_GetObjectItemCaseSensitive(json, "Actor");
    const char *id = json_str(actor, "ID");
    if (!id)
        id = json_str(json, "id");
    if (!action || !id)
        return;
    // time is bounded so that time * 1e9 (timeNano's default) fits.
    int64_t t = 0, tn = 0;
    if (json_int(json, "time", 0, INT64_MAX / 1000000000, 0, &t) ||
        json_int(json, "timeNano", 0, INT64_MAX, t * 1000000000, &tn)) {
        log_warn(LOG_DOCKER, "docker event %s for %.12s with a time out of range skipped", action,
                 id);
        return;
    }
    // A restarted stream replays from the last event's time, that event included.
    if (tn < ev->last_nano || (tn == ev->last_nano && ev->last_id && strcmp(ev->last_id, id) == 0 &&
                               strcmp(ev->last_action, action) == 0))
        return;
    const cJSON *attrs = cJSON_GetObjectItemCaseSensitive(actor, "Attributes");
    size_t nkv = json_count_strings(attrs);
    struct docker_kv *kv = xcalloc(nkv + 1, sizeof(*kv));
    struct docker_event e = {
        .action = action,
        .id = id,
        .exit_code = -1,
        .time = t,
        .time_nano = tn,
        .attributes = kv,
        .n_attributes = json_fill_kv(attrs, kv),
    };
    const char *code = json_str(attrs, "exitCode");
    if (code && *code) {
        char *end;
        long v = strtol(code, &end, 10);
        if (*end == '\0' && v >= 0 && v <= 255)
            e.exit_code = (int)v;
    }
    ev->last_nano = tn;
    ev->since_nano = tn;
    free(ev->last_id);
    free(ev->last_action);
    ev->last_id = xstrdup(id);
    ev->last_action = xstrdup(action);
    ev->backoff_ms = EVENTS_RESTART_MS;
    ev->cb(&e, ev->data);
    free(kv);
}

static void events_end(struct docker_events *ev, int status, const char *err)
{
    ev->req = NULL;
    if (status == 0) {
        log_info(LOG_DOCKER, "docker events stream ended; reopening");
    } else {
        log_warn(LOG_DOCKER, "docker events stream failed (%d: %s); reopening in %ld ms", status,
                 err ? err : "?", ev->backoff_ms);
    }
    events_schedule(ev, ev->backoff_ms);
    if (status != 0)
        ev->backoff_ms =
            ev->backoff_ms * 2 > EVENTS_BACKOFF_MAX_MS ? EVENTS_BACKOFF_MAX_MS : ev->backoff_ms * 2;
}

static void events_free(struct docker_events *ev)
{
    struct docker_client *c = ev->c;
    docker_req_cancel(ev->req);
    loop_timer_del(c->loop, ev->restart_timer);
    if (ev->prev)
        ev->prev->next = ev->next;
    else
        c->watches = ev->next;
    if (ev->next)
        ev->next->prev = ev->prev;
    free(ev->label);
    free(ev->last_id);
    free(ev->last_action);
    free(ev);
}

/* ---- helpers ----------------------------------------------------------- */

// Percent-encodes everything but RFC 3986 unreserved characters. Caller frees.
static char *url_escape(const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = strlen(s);
    char *out = xmalloc(3 * n + 1), *o = out;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (isalnum(*p) || *p == '-' || *p == '_' || *p == '.' || *p == '~') {
            *o++ = (char)*p;
        } else {
            *o++ = '%';
            *o++ = hex[*p >> 4];
            *o++ = hex[*p & 15];
        }
    }
    *o = '\0';
    return out;
}

// "filters=<escaped {"key":["label"], extra}>"; label may be NULL. Caller frees.
static char *label_filter_query(const char *key, const char *label, const char *extra)
{
    cJSON *f = cJSON_CreateObject();
    if (label) {
        const char *one[] = {label, NULL};
        cJSON_AddItemToObject(f, key, json_strings(one));
    }
    AUTO_FREE char *body = cJSON_PrintUnformatted(f);
    cJSON_Delete(f);
    PROCTOR_REQUIRE(body);
    // Splice the constant members in before the closing brace.
    AUTO_FREE char *json = NULL;
    if (extra) {
        size_t blen = strlen(body);
        json = xasprintf("%.*s%s%s}", (int)(blen - 1), body, label ? "," : "", extra);
    } else {
        json = xstrdup(body);
    }
    AUTO_FREE char *esc = url_escape(json);
    return xasprintf("filters=%s", esc);
}
