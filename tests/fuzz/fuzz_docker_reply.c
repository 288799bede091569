// Every reply parser of the Docker client (src/docker/docker_api.c, docker_events.c): the
// JSON of /info, /images/json, /containers/json, inspect, create, wait and the
// error replies, and the line-delimited streams of stats and events. They are
// static in the client, so the harness reaches them the way proctord does:
// a request through the public API, answered by a scripted engine on a unix
// socket (fake_engine.h) with the fuzzer's body.
// Properties: exactly one final callback per request; status 0 comes with a
// result (every string non-NULL) and no error text, any other status with an
// error text; cpu samples are > 0 and end once with -1; events carry an
// action, an id, an exit code in -1..255 and non-decreasing times.
#include "docker/docker_client.h"
#include "fake_engine.h"

#include "core/log.h"

enum kind {
    K_INFO,
    K_IMAGES,
    K_IMAGES_LABEL,
    K_CONTAINERS,
    K_CREATE,
    K_START,
    K_KILL,
    K_REMOVE,
    K_INSPECT,
    K_WAIT,
    K_CPU,
    K_EVENTS,
    K_COUNT,
};

static const int statuses[] = {200, 201, 204, 304, 404, 409, 500, 200};
static const size_t max_bodies[] = {DOCKER_DEFAULT_MAX_BODY, 64, 4096, DOCKER_DEFAULT_MAX_BODY};

static struct {
    struct loop *loop;
    struct docker_client *c;
    struct fake_engine engine;
} g;

struct outcome {
    int finals; // final callbacks (for events: unused)
    int64_t last_nano;
    unsigned events;
};

static void check_status(int status, const char *err)
{
    if (status == 0)
        FUZZ_CHECK(err == NULL, "status 0 with an error text");
    else
        FUZZ_CHECK(err != NULL, "status %d without an error text", status);
}

static void final(struct outcome *o)
{
    o->finals++;
    FUZZ_CHECK(o->finals == 1, "%d final callbacks", o->finals);
    loop_stop(g.loop);
}

static void check_kv(const struct docker_kv *kv, size_t n)
{
    for (size_t i = 0; i < n; i++)
        FUZZ_CHECK(kv[i].key && kv[i].value, "label %zu has a NULL string", i);
}

static void on_done(int status, const char *err, void *data)
{
    check_status(status, err);
    final(data);
}

static void on_info(int status, const char *err, const struct docker_info *info, void *data)
{
    check_status(status, err);
    FUZZ_CHECK(!status == !!info, "info %p with status %d", (const void *)info, status);
    for (size_t i = 0; info && i < info->n_runtimes; i++)
        FUZZ_CHECK(info->runtimes[i], "runtime %zu is NULL", i);
    final(data);
}

static void on_images(int status, const char *err, const struct docker_image *im, size_t n,
                      void *data)
{
    check_status(status, err);
    FUZZ_CHECK(status || im || n == 0, "images NULL with %zu entries", n);
    for (size_t i = 0; im && i < n; i++) {
        FUZZ_CHECK(im[i].id, "image %zu without id", i);
        check_kv(im[i].labels, im[i].n_labels);
    }
    final(data);
}

static void on_containers(int status, const char *err, const struct docker_container_summary *l,
                          size_t n, void *data)
{
    check_status(status, err);
    FUZZ_CHECK(status || l || n == 0, "list NULL with %zu entries", n);
    for (size_t i = 0; l && i < n; i++) {
        FUZZ_CHECK(l[i].id && l[i].state, "container %zu with a NULL id or state", i);
        check_kv(l[i].labels, l[i].n_labels);
    }
    final(data);
}

static void on_id(int status, const char *err, const char *id, void *data)
{
    check_status(status, err);
    FUZZ_CHECK(!status == !!id, "id with status %d", status);
    final(data);
}

static void on_inspect(int status, const char *err, const struct docker_container_state *st,
                       void *data)
{
    check_status(status, err);
    FUZZ_CHECK(!status == !!st, "state with status %d", status);
    if (st)
        FUZZ_CHECK(st->id && st->status, "state with a NULL id or status");
    final(data);
}

static void on_wait(int status, const char *err, int code, void *data)
{
    check_status(status, err);
    if (status)
        FUZZ_CHECK(code == -1, "failed wait with exit code %d", code);
    final(data);
}

static void on_cpu(int status, const char *err, int64_t total_ns, void *data)
{
    struct outcome *o = data;
    FUZZ_CHECK(o->finals == 0, "cpu callback after the end");
    if (total_ns == -1) {
        check_status(status, err);
        final(o);
        return;
    }
    FUZZ_CHECK(status == 0 && err == NULL && total_ns > 0, "cpu sample %lld with status %d",
               (long long)total_ns, status);
}

static void on_event(const struct docker_event *ev, void *data)
{
    struct outcome *o = data;
    FUZZ_CHECK(ev->action && ev->id, "event without action or id");
    FUZZ_CHECK(ev->exit_code >= -1 && ev->exit_code <= 255, "exit code %d", ev->exit_code);
    FUZZ_CHECK(o->events == 0 || ev->time_nano >= o->last_nano, "event time went back");
    check_kv(ev->attributes, ev->n_attributes);
    o->last_nano = ev->time_nano;
    o->events++;
}

// The events watch has no final callback: it ends when its request is over.
static void events_hook(struct loop *loop, void *data)
{
    PROCTOR_UNUSED(data);
    if (g.engine.closed && docker_client_pending(g.c) == 0)
        loop_stop(loop);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    PROCTOR_UNUSED(argc);
    PROCTOR_UNUSED(argv);
    log_set_level(LOG_LEVEL_ERROR);
    g.loop = loop_new();
    PROCTOR_REQUIRE(g.loop);
    fake_engine_start(&g.engine, g.loop);
    char host[160];
    snprintf(host, sizeof(host), "unix://%s", g.engine.path);
    g.c = docker_client_new(g.loop, host);
    PROCTOR_REQUIRE(g.c);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_in in = {data, size};
    uint8_t mode = fuzz_u8(&in);
    enum kind kind = (enum kind)(mode % K_COUNT);
    int status = statuses[(mode >> 4) & 7];
    docker_client_set_limits(g.c, max_bodies[fuzz_u8(&in) & 3], 5000);

    struct buf reply = {0};
    char head[256];
    if (kind == K_CPU || kind == K_EVENTS)
        snprintf(head, sizeof(head),
                 "HTTP/1.1 %d X\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n",
                 status);
    else
        snprintf(head, sizeof(head),
                 "HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                 "Connection: close\r\n\r\n",
                 status, status == 204 || status == 304 ? (size_t)0 : in.n);
    PROCTOR_REQUIRE(buf_append(&reply, head, strlen(head), 0) == 0);
    if (status != 204 && status != 304)
        PROCTOR_REQUIRE(buf_append(&reply, in.p, in.n, 0) == 0);
    fake_engine_expect(&g.engine, reply.data, reply.len);
    buf_deinit(&reply);

    struct outcome o = {0};
    struct docker_req *r = NULL;
    struct docker_events *ev = NULL;
    const struct docker_create_spec spec = {.image = "img"};
    switch (kind) {
    case K_INFO:
        r = docker_info(g.c, on_info, &o);
        break;
    case K_IMAGES:
        r = docker_images_list(g.c, on_images, &o);
        break;
    case K_IMAGES_LABEL:
        r = docker_images_list_label(g.c, "a=b", on_images, &o);
        break;
    case K_CONTAINERS:
        r = docker_containers_list_by_label(g.c, "a", true, on_containers, &o);
        break;
    case K_CREATE:
        r = docker_container_create(g.c, &spec, on_id, &o);
        break;
    case K_START:
        r = docker_container_start(g.c, "c1", on_done, &o);
        break;
    case K_KILL:
        r = docker_container_kill(g.c, "c1", NULL, on_done, &o);
        break;
    case K_REMOVE:
        r = docker_container_remove(g.c, "c1", true, false, on_done, &o);
        break;
    case K_INSPECT:
        r = docker_container_inspect(g.c, "c1", on_inspect, &o);
        break;
    case K_WAIT:
        r = docker_container_wait(g.c, "c1", on_wait, &o);
        break;
    case K_CPU:
        r = docker_cpu_watch(g.c, "c1", on_cpu, &o);
        break;
    case K_EVENTS:
        ev = docker_events_watch(g.c, NULL, on_event, &o);
        break;
    case K_COUNT:
        break;
    }
    FUZZ_CHECK(r || ev, "request %d not started", (int)kind);
    if (ev)
        PROCTOR_REQUIRE(loop_hook_add(g.loop, events_hook, NULL) == 0);
    uint64_t deadline = loop_timer_add(g.loop, 10000, fake_engine_on_deadline, "10 s");
    loop_run(g.loop);
    loop_timer_del(g.loop, deadline);
    if (ev) {
        loop_hook_del(g.loop, events_hook, NULL);
        docker_events_stop(ev);
    } else {
        FUZZ_CHECK(o.finals == 1, "request %d ended without its callback", (int)kind);
    }
    FUZZ_CHECK(docker_client_pending(g.c) == 0, "%zu requests left", docker_client_pending(g.c));
    return 0;
}
