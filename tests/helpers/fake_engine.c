// The scripted fake Docker engine (see fake_engine.h).

#include "helpers/fake_engine.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "core/loop.h"
#include "core/util.h"

#define LABEL_ROLE "org.proctor.role"
#define LABEL_JOB "org.proctor.job"
#define SOCKETS_BIND_SUFFIX ":/sockets:rw"
#define IMAGE_ID "sha256:fa4e0000000000000000000000000000000000000000000000000000000000e1"

enum conn_kind {
    CONN_READING, /* the request is not whole yet */
    CONN_HELD,    /* stalled by the script */
    CONN_WAIT,    /* a wait on a running container */
    CONN_EVENTS,  /* the events stream */
    CONN_STATS,   /* a stats stream */
    CONN_ATTACH,  /* upgraded: raw both ways */
    CONN_DONE,    /* answered, half-closed */
};

struct conn {
    struct fake_engine *f;
    int fd; /* -1 once closed */
    struct buf in;
    enum conn_kind kind;
    enum fake_step step;
    enum fake_role role;
    struct fake_container *c;
    char method[16];
    char *target; /* after the API prefix, query included */
    char *body;
};

struct fake_container {
    struct fake_engine *f;
    char id[65];
    enum fake_role role;
    enum fake_state state;
    bool removed, oom_killed;
    int exit_code;
    unsigned deletes;
    cJSON *labels; /* the create request's Labels object */
    char *job;
    char *sockets_dir; /* host side of the /sockets bind (grading containers) */
    struct conn *attach;
    struct buf stdin_buf;
};

struct rule {
    enum fake_action action;
    int times; /* < 0: always */
};

struct fake_engine {
    struct loop *loop;
    int lfd;
    char path[108];
    char host[128];
    struct fake_engine_hooks hooks;
    struct rule rules[FAKE_ROLES][FAKE_NSTEPS];
    size_t requests[FAKE_ROLES][FAKE_NSTEPS];
    size_t abandoned[FAKE_ROLES][FAKE_NSTEPS];
    size_t unexpected;
    struct conn **conns;
    size_t nconns;
    struct fake_container **cs;
    size_t ncs;
    enum fake_student_mode student_mode;
    int student_code;
    int64_t last_event_ns;
};

static const char *const step_names[] = {
#define X(name, str) [FAKE_##name] = str,
    FAKE_STEPS(X)
#undef X
};

const char *fake_step_name(enum fake_step step)
{
    return step < FAKE_NSTEPS ? step_names[step] : "?";
}

/* ---- connections ------------------------------------------------------------ */

static void conn_close(struct conn *k)
{
    if (k->fd < 0)
        return;
    loop_fd_del(k->f->loop, k->fd);
    close(k->fd);
    k->fd = -1;
    if (k->c && k->c->attach == k)
        k->c->attach = NULL;
    buf_deinit(&k->in);
}

static void conn_send(struct conn *k, const void *p, size_t n)
{
    const char *s = p;
    while (k->fd >= 0 && n > 0) {
        ssize_t w = send(k->fd, s, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EPIPE || errno == ECONNRESET)) {
            conn_close(k); // the client is gone
            return;
        }
        // Replies are small and the agent reads on the same loop: a full
        // socket buffer would be a deadlock, so it is a broken set-up.
        REQUIRE_OR_EXIT(w > 0, "fake engine: send: %s", w < 0 ? strerror(errno) : "0");
        s += w;
        n -= (size_t)w;
    }
}

static void conn_sendf(struct conn *k, const char *fmt, ...) PROCTOR_PRINTF(2, 3);
static void conn_sendf(struct conn *k, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    REQUIRE_OR_EXIT(n >= 0, "fake engine: out of memory");
    conn_send(k, s, (size_t)n);
    free(s);
}

static const char *reason_phrase(int code)
{
    switch (code) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 204:
        return "No Content";
    case 304:
        return "Not Modified";
    case 404:
        return "Not Found";
    case 409:
        return "Conflict";
    default:
        return "Internal Server Error";
    }
}

/** A whole reply, then the connection closes (or, with cut, half of it). */
static void reply(struct conn *k, int code, const char *body, bool cut)
{
    size_t n = body ? strlen(body) : 0;
    if (!body && cut) {
        conn_sendf(k, "HTTP/1.1 %d", code / 10); // no body to cut: the status line is
    } else if (!body) {
        conn_sendf(k, "HTTP/1.1 %d %s\r\nConnection: close\r\n\r\n", code, reason_phrase(code));
    } else {
        // Cut: announce more than is sent, so the body ends early.
        conn_sendf(k,
                   "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                   "Connection: close\r\n\r\n",
                   code, reason_phrase(code), cut ? n + 64 : n);
        conn_send(k, body, cut ? n / 2 : n);
    }
    // Half-close: the agent's end of the connection tells when it has read
    // the reply (hooks.on_reply_read).
    k->kind = CONN_DONE;
    if (k->fd >= 0)
        shutdown(k->fd, SHUT_WR);
}

static void reply_json(struct conn *k, int code, cJSON *json, bool cut)
{
    char *s = cJSON_PrintUnformatted(json);
    REQUIRE_OR_EXIT(s, "fake engine: out of memory");
    reply(k, code, s, cut);
    free(s);
    cJSON_Delete(json);
}

static void reply_message(struct conn *k, int code, const char *fmt, ...) PROCTOR_PRINTF(3, 4);
static void reply_message(struct conn *k, int code, const char *fmt, ...)
{
    char text[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "message", text);
    reply_json(k, code, o, false);
}

static void stream_head(struct conn *k, enum conn_kind kind)
{
    static const char head[] = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                               "Connection: close\r\n\r\n";
    conn_send(k, head, strlen(head));
    k->kind = kind;
}

/* ---- events and containers ------------------------------------------------ */

static void emit_event(struct fake_engine *f, struct fake_container *c, const char *action)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t ns = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
    // The agent drops an event older than the last one (a replay), and reads
    // timeNano through a double: keep them strictly apart.
    if (ns < f->last_event_ns + 1000)
        ns = f->last_event_ns + 1000;
    f->last_event_ns = ns;
    cJSON *attrs = cJSON_Duplicate(c->labels, true);
    if (!strcmp(action, "die")) {
        char code[16];
        snprintf(code, sizeof code, "%d", c->exit_code);
        cJSON_AddStringToObject(attrs, "exitCode", code);
    }
    cJSON *ev = cJSON_CreateObject();
    cJSON_AddStringToObject(ev, "Type", "container");
    cJSON_AddStringToObject(ev, "Action", action);
    cJSON *actor = cJSON_AddObjectToObject(ev, "Actor");
    cJSON_AddStringToObject(actor, "ID", c->id);
    cJSON_AddItemToObject(actor, "Attributes", attrs);
    cJSON_AddNumberToObject(ev, "time", (double)(ns / 1000000000));
    cJSON_AddNumberToObject(ev, "timeNano", (double)ns);
    char *line = cJSON_PrintUnformatted(ev);
    REQUIRE_OR_EXIT(line, "fake engine: out of memory");
    cJSON_Delete(ev);
    for (size_t i = 0; i < f->nconns; i++) {
        struct conn *k = f->conns[i];
        if (k->fd >= 0 && k->kind == CONN_EVENTS) {
            conn_send(k, line, strlen(line));
            conn_send(k, "\n", 1);
        }
    }
    free(line);
}

static void container_exit(struct fake_container *c, int code)
{
    struct fake_engine *f = c->f;
    if (c->state != FAKE_RUNNING)
        return;
    c->state = FAKE_EXITED;
    c->exit_code = code;
    char body[64];
    snprintf(body, sizeof body, "{\"StatusCode\":%d}", code);
    for (size_t i = 0; i < f->nconns; i++) {
        struct conn *k = f->conns[i];
        if (k->fd >= 0 && k->kind == CONN_WAIT && k->c == c)
            reply(k, 200, body, false);
    }
    if (c->attach)
        conn_close(c->attach); // the output ends at a frame boundary
    emit_event(f, c, "die");
}

static void container_remove(struct fake_container *c)
{
    struct fake_engine *f = c->f;
    if (c->state == FAKE_RUNNING)
        container_exit(c, 137);
    c->removed = true;
    for (size_t i = 0; i < f->nconns; i++) {
        struct conn *k = f->conns[i];
        if (k->fd >= 0 && k->c == c &&
            (k->kind == CONN_STATS || k->kind == CONN_ATTACH || k->kind == CONN_WAIT))
            conn_close(k); // its streams end
    }
}

static struct fake_container *container_find(struct fake_engine *f, const char *id, size_t n)
{
    for (size_t i = 0; i < f->ncs; i++)
        if (strlen(f->cs[i]->id) == n && !strncmp(f->cs[i]->id, id, n))
            return f->cs[i];
    return NULL;
}

static void deliver_stdin(struct fake_container *c)
{
    struct fake_engine *f = c->f;
    while (c->state == FAKE_RUNNING && !c->removed && c->stdin_buf.len >= 4) {
        const unsigned char *p = (const unsigned char *)c->stdin_buf.data;
        size_t n = (size_t)p[0] << 24 | (size_t)p[1] << 16 | (size_t)p[2] << 8 | p[3];
        if (c->stdin_buf.len - 4 < n)
            break;
        char *msg = xmalloc(n + 1);
        memcpy(msg, p + 4, n);
        buf_consume(&c->stdin_buf, 4 + n);
        if (f->hooks.on_stdin)
            f->hooks.on_stdin(f, c, msg, n, f->hooks.data);
        free(msg);
    }
}

static void student_run(struct fake_container *c)
{
    switch (c->f->student_mode) {
    case FAKE_STUDENT_EXIT:
        container_exit(c, c->f->student_code);
        break;
    case FAKE_STUDENT_OOM:
        fake_engine_oom(c->f, c, true);
        break;
    case FAKE_STUDENT_HANG:
        break;
    }
}

/* ---- requests --------------------------------------------------------------- */

static cJSON *container_json(const struct fake_container *c)
{
    static const char *const states[] = {"created", "running", "exited"};
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "Id", c->id);
    cJSON_AddStringToObject(o, "State", states[c->state]);
    cJSON_AddItemToObject(o, "Labels", cJSON_Duplicate(c->labels, true));
    return o;
}

static cJSON *inspect_json(const struct fake_container *c)
{
    static const char *const states[] = {"created", "running", "exited"};
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "Id", c->id);
    cJSON *st = cJSON_AddObjectToObject(o, "State");
    cJSON_AddStringToObject(st, "Status", states[c->state]);
    cJSON_AddBoolToObject(st, "Running", c->state == FAKE_RUNNING);
    cJSON_AddBoolToObject(st, "OOMKilled", c->oom_killed);
    cJSON_AddNumberToObject(st, "ExitCode", c->state == FAKE_EXITED ? c->exit_code : 0);
    cJSON_AddNumberToObject(st, "Pid", c->state == FAKE_RUNNING ? 4242 : 0);
    return o;
}

static void serve_create(struct conn *k, bool cut)
{
    struct fake_engine *f = k->f;
    cJSON *body = cJSON_Parse(k->body ? k->body : "");
    const cJSON *labels = cJSON_GetObjectItemCaseSensitive(body, "Labels");
    if (!cJSON_IsObject(labels) ||
        !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(body, "Image"))) {
        f->unexpected++;
        cJSON_Delete(body);
        reply_message(k, 400, "fake engine: create without Image or Labels");
        return;
    }
    struct fake_container *c = xcalloc(1, sizeof *c);
    c->f = f;
    snprintf(c->id, sizeof c->id, "fa4e%060zx", f->ncs + 1);
    c->role = k->role;
    c->labels = cJSON_Duplicate(labels, true);
    const cJSON *job = cJSON_GetObjectItemCaseSensitive(labels, LABEL_JOB);
    c->job = xstrdup(cJSON_IsString(job) ? job->valuestring : "");
    const cJSON *hc = cJSON_GetObjectItemCaseSensitive(body, "HostConfig");
    const cJSON *bind;
    cJSON_ArrayForEach(bind, cJSON_GetObjectItemCaseSensitive(hc, "Binds"))
    {
        const char *s = cJSON_IsString(bind) ? bind->valuestring : "";
        size_t n = strlen(s), m = strlen(SOCKETS_BIND_SUFFIX);
        if (n > m && !strcmp(s + n - m, SOCKETS_BIND_SUFFIX))
            c->sockets_dir = xstrndup(s, n - m);
    }
    cJSON_Delete(body);
    f->cs = xrealloc(f->cs, (f->ncs + 1) * sizeof *f->cs);
    f->cs[f->ncs++] = c;
    k->c = c;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "Id", c->id);
    cJSON_AddArrayToObject(o, "Warnings");
    reply_json(k, 201, o, cut);
}

static void serve_attach(struct conn *k, bool cut)
{
    struct fake_container *c = k->c;
    static const char upgraded[] = "HTTP/1.1 101 UPGRADED\r\nContent-Type: "
                                   "application/vnd.docker.raw-stream\r\nConnection: Upgrade\r\n"
                                   "Upgrade: tcp\r\n\r\n";
    conn_send(k, upgraded, strlen(upgraded));
    k->kind = CONN_ATTACH;
    if (cut) {
        uint8_t part[] = {1, 0, 0, 0, 0, 0, 0, 64, 'c', 'u', 't'};
        conn_send(k, part, sizeof part);
        conn_close(k);
        return;
    }
    if (c->state == FAKE_EXITED) {
        conn_close(k); // nothing more will come
        return;
    }
    if (c->attach)
        conn_close(c->attach);
    c->attach = k;
    // Bytes sent with the request head already are stdin too.
    if (k->in.len)
        REQUIRE_OR_EXIT(buf_append(&c->stdin_buf, k->in.data, k->in.len, 0) == 0, "oom");
    buf_reset(&k->in);
}

/** The work of one request and its answer, as the engine would give it. */
static void serve_ok(struct conn *k, bool cut)
{
    struct fake_engine *f = k->f;
    struct fake_container *c = k->c;
    const char *q = strchr(k->target, '?');
    char body[128];
    switch (k->step) {
    case FAKE_INFO: {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "NCPU", 2);
        cJSON_AddNumberToObject(o, "MemTotal", 8.0 * 1024 * 1024 * 1024);
        cJSON_AddStringToObject(o, "CgroupVersion", "2");
        cJSON_AddStringToObject(o, "DefaultRuntime", "runc");
        cJSON_AddStringToObject(o, "ServerVersion", "fake");
        cJSON_AddObjectToObject(cJSON_AddObjectToObject(o, "Runtimes"), "runc");
        reply_json(k, 200, o, cut);
        return;
    }
    case FAKE_IMAGES: {
        cJSON *a = cJSON_CreateArray();
        cJSON *img = cJSON_CreateObject();
        cJSON_AddStringToObject(img, "Id", IMAGE_ID);
        cJSON_AddNumberToObject(img, "Created", 1700000000);
        cJSON *l = cJSON_AddObjectToObject(img, "Labels");
        cJSON_AddStringToObject(l, "org.inginious.grading.name", FAKE_ENGINE_ENV);
        cJSON_AddStringToObject(l, "org.inginious.grading.agent_version", "3");
        cJSON_AddItemToArray(a, img);
        reply_json(k, 200, a, cut);
        return;
    }
    case FAKE_LIST: {
        cJSON *a = cJSON_CreateArray();
        for (size_t i = 0; i < f->ncs; i++)
            if (!f->cs[i]->removed)
                cJSON_AddItemToArray(a, container_json(f->cs[i]));
        reply_json(k, 200, a, cut);
        return;
    }
    case FAKE_EVENTS:
        stream_head(k, CONN_EVENTS);
        if (cut)
            conn_close(k);
        return;
    case FAKE_CREATE:
        serve_create(k, cut);
        return;
    case FAKE_OTHER:
        break;
    default:
        if (!c || c->removed) {
            reply_message(k, 404, "No such container: %.64s", k->target);
            return;
        }
        break;
    }
    switch (k->step) {
    case FAKE_ATTACH:
        serve_attach(k, cut);
        break;
    case FAKE_START:
        if (c->state == FAKE_RUNNING) {
            reply(k, 304, NULL, cut);
            break;
        }
        if (c->state == FAKE_EXITED) {
            f->unexpected++; // the agent never restarts a container
            reply_message(k, 500, "fake engine: restart not supported");
            break;
        }
        c->state = FAKE_RUNNING;
        reply(k, 204, NULL, cut);
        if (c->role == FAKE_STUDENT)
            student_run(c);
        else
            deliver_stdin(c);
        break;
    case FAKE_WAIT:
        if (cut) {
            reply(k, 200, "{\"StatusCode\":0}", true);
        } else if (c->state == FAKE_RUNNING) {
            k->kind = CONN_WAIT;
        } else {
            snprintf(body, sizeof body, "{\"StatusCode\":%d}",
                     c->state == FAKE_EXITED ? c->exit_code : 0);
            reply(k, 200, body, false);
        }
        break;
    case FAKE_INSPECT:
        reply_json(k, 200, inspect_json(c), cut);
        break;
    case FAKE_KILL:
        if (c->state != FAKE_RUNNING) {
            reply_message(k, 409, "Cannot kill container: %s: Container %s is not running", c->id,
                          c->id);
            break;
        }
        container_exit(c, 137);
        reply(k, 204, NULL, cut);
        break;
    case FAKE_DELETE:
        if (c->state == FAKE_RUNNING && !(q && strstr(q, "force=1"))) {
            reply_message(k, 409, "You cannot remove a running container %s", c->id);
            break;
        }
        container_remove(c);
        reply(k, 204, NULL, cut);
        break;
    case FAKE_STATS:
        stream_head(k, CONN_STATS);
        if (cut)
            conn_close(k);
        break;
    default:
        if (!strncmp(k->target, "/_ping", 6))
            reply(k, 200, "OK", false);
        else if (!strncmp(k->target, "/version", 8))
            reply(k, 200, "{\"Version\":\"fake\",\"ApiVersion\":\"1.41\"}", false);
        break;
    }
}

static void conn_act(struct conn *k, enum fake_action action)
{
    struct fake_engine *f = k->f;
    bool held = false;
    switch (action) {
    case FAKE_ERROR:
        reply_message(k, 500, "fake engine: injected %s error", fake_step_name(k->step));
        break;
    case FAKE_STALL:
        k->kind = CONN_HELD;
        held = true;
        break;
    case FAKE_OK:
    case FAKE_CUT:
        serve_ok(k, action == FAKE_CUT);
        break;
    }
    // Last: the hook may release, kill or free anything.
    if (f->hooks.on_request)
        f->hooks.on_request(f, k->step, k->role, k->c, held, f->hooks.data);
}

static enum fake_action rule_take(struct fake_engine *f, enum fake_role role, enum fake_step step)
{
    struct rule *r = &f->rules[role][step];
    if (r->action == FAKE_OK || r->times == 0)
        return FAKE_OK;
    if (r->times > 0)
        r->times--;
    return r->action;
}

/** Which step a request is, and which container and role it concerns. */
static void conn_classify(struct conn *k)
{
    struct fake_engine *f = k->f;
    const char *t = k->target;
    size_t plen = strcspn(t, "?");
    bool get = !strcmp(k->method, "GET"), post = !strcmp(k->method, "POST");
    k->step = FAKE_OTHER;
    k->role = FAKE_GRADING;
    if (get && (plen == 6 && !strncmp(t, "/_ping", 6)))
        return;
    if (get && (plen == 8 && !strncmp(t, "/version", 8)))
        return;
    if (get && plen == 5 && !strncmp(t, "/info", 5))
        k->step = FAKE_INFO;
    else if (get && plen == 12 && !strncmp(t, "/images/json", 12))
        k->step = FAKE_IMAGES;
    else if (get && plen == 16 && !strncmp(t, "/containers/json", 16))
        k->step = FAKE_LIST;
    else if (get && plen == 7 && !strncmp(t, "/events", 7))
        k->step = FAKE_EVENTS;
    else if (post && plen == 18 && !strncmp(t, "/containers/create", 18)) {
        k->step = FAKE_CREATE;
        cJSON *body = cJSON_Parse(k->body ? k->body : "");
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(body, "Labels"), LABEL_ROLE);
        if (cJSON_IsString(role) && !strcmp(role->valuestring, "student"))
            k->role = FAKE_STUDENT;
        cJSON_Delete(body);
    } else if (!strncmp(t, "/containers/", 12)) {
        const char *id = t + 12;
        size_t idlen = strcspn(id, "/?");
        const char *rest = id + idlen;
        size_t rlen = strcspn(rest, "?");
        k->c = container_find(f, id, idlen);
        if (k->c)
            k->role = k->c->role;
        if (!strcmp(k->method, "DELETE") && rlen == 0) {
            k->step = FAKE_DELETE;
            if (k->c)
                k->c->deletes++;
        } else if (post && rlen == 7 && !strncmp(rest, "/attach", 7)) {
            k->step = FAKE_ATTACH;
        } else if (post && rlen == 6 && !strncmp(rest, "/start", 6)) {
            k->step = FAKE_START;
        } else if (post && rlen == 5 && !strncmp(rest, "/wait", 5)) {
            k->step = FAKE_WAIT;
        } else if (get && rlen == 5 && !strncmp(rest, "/json", 5)) {
            k->step = FAKE_INSPECT;
        } else if (post && rlen == 5 && !strncmp(rest, "/kill", 5)) {
            k->step = FAKE_KILL;
        } else if (get && rlen == 6 && !strncmp(rest, "/stats", 6) && strstr(rest, "stream=1")) {
            k->step = FAKE_STATS;
        }
    }
}

/** A whole request is in k->in: parse, classify, act as scripted. */
static void conn_serve(struct conn *k, size_t head_len, size_t body_len)
{
    struct fake_engine *f = k->f;
    char target[2048];
    if (sscanf(k->in.data, "%15s %2047s", k->method, target) != 2) {
        f->unexpected++;
        reply_message(k, 400, "fake engine: bad request line");
        return;
    }
    // Every path carries the API version: /v<major>.<minor>/...
    const char *t = target;
    if (t[0] == '/' && t[1] == 'v') {
        t += 2 + strspn(t + 2, "0123456789.");
    } else {
        f->unexpected++;
        reply_message(k, 404, "fake engine: unversioned path %s", target);
        return;
    }
    k->target = xstrdup(t);
    const char *up = strcasestr(k->in.data, "\r\nupgrade: tcp\r\n");
    bool upgrade = up && up < k->in.data + head_len;
    if (body_len)
        k->body = xstrndup(k->in.data + head_len, body_len);
    buf_consume(&k->in, head_len + body_len);
    conn_classify(k);
    if (k->step == FAKE_OTHER && strncmp(k->target, "/_ping", 6) &&
        strncmp(k->target, "/version", 8)) {
        f->unexpected++;
        reply_message(k, 404, "fake engine: unexpected %s %s", k->method, target);
        return;
    }
    f->requests[k->role][k->step]++;
    if (k->step == FAKE_ATTACH && !upgrade)
        f->unexpected++; // Docker hijacks only when asked to upgrade
    conn_act(k, k->step == FAKE_OTHER ? FAKE_OK : rule_take(f, k->role, k->step));
}

static bool request_whole(const struct buf *in, size_t *head_len, size_t *body_len)
{
    const char *end = in->data ? memmem(in->data, in->len, "\r\n\r\n", 4) : NULL;
    if (!end)
        return false;
    *head_len = (size_t)(end + 4 - in->data);
    *body_len = 0;
    const char *cl = strcasestr(in->data, "\r\ncontent-length:");
    if (cl && cl < end)
        *body_len = strtoul(cl + 17, NULL, 10);
    return in->len - *head_len >= *body_len;
}

static void on_conn(struct loop *loop, int fd, unsigned events, void *data)
{
    PROCTOR_UNUSED(loop);
    PROCTOR_UNUSED(fd);
    PROCTOR_UNUSED(events);
    struct conn *k = data;
    char tmp[16384];
    ssize_t n = recv(k->fd, tmp, sizeof tmp, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        struct fake_engine *f = k->f;
        if (k->kind == CONN_HELD)
            f->abandoned[k->role][k->step]++;
        conn_close(k);
        if (k->kind == CONN_DONE && f->hooks.on_reply_read)
            f->hooks.on_reply_read(f, k->step, k->role, k->c, f->hooks.data);
        return;
    }
    if (k->kind == CONN_ATTACH) {
        REQUIRE_OR_EXIT(buf_append(&k->c->stdin_buf, tmp, (size_t)n, 0) == 0, "oom");
        deliver_stdin(k->c);
        return;
    }
    if (k->kind != CONN_READING)
        return; // one request per connection; anything more is ignored
    REQUIRE_OR_EXIT(buf_append(&k->in, tmp, (size_t)n, 0) == 0, "oom");
    size_t head_len, body_len;
    if (request_whole(&k->in, &head_len, &body_len))
        conn_serve(k, head_len, body_len);
}

static void on_accept(struct loop *loop, int fd, unsigned events, void *data)
{
    PROCTOR_UNUSED(events);
    struct fake_engine *f = data;
    int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (cfd < 0)
        return;
    struct conn *k = xcalloc(1, sizeof *k);
    k->f = f;
    k->fd = cfd;
    f->conns = xrealloc(f->conns, (f->nconns + 1) * sizeof *f->conns);
    f->conns[f->nconns++] = k;
    REQUIRE_OR_EXIT(loop_fd_add(loop, cfd, LOOP_READ, on_conn, k) == 0, "fake engine: add conn");
}

/* ---- public ----------------------------------------------------------------- */

struct fake_engine *fake_engine_new(struct loop *loop, const char *path,
                                    const struct fake_engine_hooks *hooks)
{
    struct fake_engine *f = xcalloc(1, sizeof *f);
    f->loop = loop;
    if (hooks)
        f->hooks = *hooks;
    REQUIRE_OR_EXIT(strlen(path) < sizeof f->path, "fake engine: path too long: %s", path);
    util_strlcpy(f->path, path, sizeof f->path);
    snprintf(f->host, sizeof f->host, "unix://%s", f->path);
    unlink(f->path);
    f->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    util_strlcpy(sun.sun_path, f->path, sizeof sun.sun_path);
    REQUIRE_OR_EXIT(f->lfd >= 0 && bind(f->lfd, (struct sockaddr *)&sun, sizeof sun) == 0 &&
                        listen(f->lfd, 64) == 0,
                    "fake engine: listen on %s: %s", f->path, strerror(errno));
    REQUIRE_OR_EXIT(loop_fd_add(loop, f->lfd, LOOP_READ, on_accept, f) == 0, "fake engine: add");
    return f;
}

void fake_engine_free(struct fake_engine *f)
{
    if (!f)
        return;
    for (size_t i = 0; i < f->nconns; i++) {
        conn_close(f->conns[i]);
        free(f->conns[i]->target);
        free(f->conns[i]->body);
        free(f->conns[i]);
    }
    free(f->conns);
    for (size_t i = 0; i < f->ncs; i++) {
        cJSON_Delete(f->cs[i]->labels);
        free(f->cs[i]->job);
        free(f->cs[i]->sockets_dir);
        buf_deinit(&f->cs[i]->stdin_buf);
        free(f->cs[i]);
    }
    free(f->cs);
    loop_fd_del(f->loop, f->lfd);
    close(f->lfd);
    unlink(f->path);
    free(f);
}

const char *fake_engine_host(const struct fake_engine *f)
{
    return f->host;
}

void fake_engine_script(struct fake_engine *f, enum fake_role role, enum fake_step step,
                        enum fake_action action, int times)
{
    f->rules[role][step] = (struct rule){action, times};
}

size_t fake_engine_release(struct fake_engine *f, enum fake_role role, enum fake_step step)
{
    size_t n = 0;
    // By index: a hook run by a release may accept nothing, but may release more.
    for (size_t i = 0; i < f->nconns; i++) {
        struct conn *k = f->conns[i];
        if (k->fd >= 0 && k->kind == CONN_HELD && k->role == role && k->step == step) {
            k->kind = CONN_READING;
            n++;
            conn_act(k, FAKE_OK);
        }
    }
    return n;
}

void fake_engine_student(struct fake_engine *f, enum fake_student_mode mode, int exit_code)
{
    f->student_mode = mode;
    f->student_code = exit_code;
}

void fake_engine_send(struct fake_engine *f, struct fake_container *c, const void *p, size_t n)
{
    PROCTOR_UNUSED(f);
    if (!c->attach)
        return;
    // The runner's frame, carried in two Docker frames so the agent reassembles.
    uint8_t app[4] = {(uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8), (uint8_t)n};
    struct buf b = {0};
    REQUIRE_OR_EXIT(buf_append(&b, app, 4, 0) == 0 && buf_append(&b, p, n, 0) == 0, "oom");
    size_t first = b.len / 2;
    size_t parts[2][2] = {{0, first}, {first, b.len - first}};
    for (int i = 0; i < 2; i++) {
        size_t len = parts[i][1];
        uint8_t hdr[8] = {
            1,           0, 0, 0, (uint8_t)(len >> 24), (uint8_t)(len >> 16), (uint8_t)(len >> 8),
            (uint8_t)len};
        conn_send(c->attach, hdr, 8);
        if (c->attach)
            conn_send(c->attach, b.data + parts[i][0], len);
        if (!c->attach)
            break;
    }
    buf_deinit(&b);
}

void fake_engine_cut_attach(struct fake_engine *f, struct fake_container *c)
{
    PROCTOR_UNUSED(f);
    if (!c->attach)
        return;
    uint8_t part[] = {1, 0, 0, 0, 0, 0, 0, 64, 0, 0, 0, 60, 0x81};
    conn_send(c->attach, part, sizeof part);
    if (c->attach)
        conn_close(c->attach);
}

void fake_engine_exit(struct fake_engine *f, struct fake_container *c, int code)
{
    PROCTOR_UNUSED(f);
    container_exit(c, code);
}

void fake_engine_oom(struct fake_engine *f, struct fake_container *c, bool event)
{
    if (c->state != FAKE_RUNNING)
        return;
    c->oom_killed = true;
    if (event)
        emit_event(f, c, "oom");
    container_exit(c, 137);
}

void fake_engine_cpu(struct fake_engine *f, struct fake_container *c, int64_t total_ns)
{
    char line[128];
    snprintf(
        line, sizeof line,
        "{\"read\":\"2026-01-01T00:00:00Z\",\"cpu_stats\":{\"cpu_usage\":{\"total_usage\":%" PRId64
        "}}}\n",
        total_ns);
    for (size_t i = 0; i < f->nconns; i++) {
        struct conn *k = f->conns[i];
        if (k->fd >= 0 && k->kind == CONN_STATS && k->c == c)
            conn_send(k, line, strlen(line));
    }
}

void fake_engine_end_stats(struct fake_engine *f, struct fake_container *c)
{
    for (size_t i = 0; i < f->nconns; i++) {
        struct conn *k = f->conns[i];
        if (k->fd >= 0 && k->kind == CONN_STATS && k->c == c)
            conn_close(k);
    }
}

int fake_engine_make_socket(struct fake_engine *f, struct fake_container *c, const char *socket_id)
{
    PROCTOR_UNUSED(f);
    if (!c->sockets_dir)
        return -ENOENT;
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    int n = snprintf(sun.sun_path, sizeof sun.sun_path, "%s/%s.sock", c->sockets_dir, socket_id);
    if (n < 0 || (size_t)n >= sizeof sun.sun_path)
        return -ENAMETOOLONG;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int ret = bind(fd, (struct sockaddr *)&sun, sizeof sun) < 0 ? -errno : 0;
    close(fd);
    return ret;
}

size_t fake_engine_ncontainers(const struct fake_engine *f)
{
    return f->ncs;
}

struct fake_container *fake_engine_container(const struct fake_engine *f, size_t i)
{
    return i < f->ncs ? f->cs[i] : NULL;
}

size_t fake_engine_created(const struct fake_engine *f, enum fake_role role)
{
    size_t n = 0;
    for (size_t i = 0; i < f->ncs; i++)
        n += f->cs[i]->role == role;
    return n;
}

size_t fake_engine_requests(const struct fake_engine *f, enum fake_role role, enum fake_step step)
{
    return f->requests[role][step];
}

size_t fake_engine_abandoned(const struct fake_engine *f, enum fake_role role, enum fake_step step)
{
    return f->abandoned[role][step];
}

size_t fake_engine_unexpected(const struct fake_engine *f)
{
    return f->unexpected;
}

size_t fake_engine_pending(const struct fake_engine *f)
{
    size_t n = 0;
    for (size_t i = 0; i < f->nconns; i++)
        n += f->conns[i]->fd >= 0 && f->conns[i]->kind != CONN_EVENTS;
    return n;
}

void fake_engine_dump(const struct fake_engine *f, FILE *out)
{
    static const char *const kinds[] = {"reading", "stalled", "wait",    "events",
                                        "stats",   "attach",  "answered"};
    static const char *const states[] = {"created", "running", "exited"};
    for (size_t i = 0; i < f->nconns; i++) {
        const struct conn *k = f->conns[i];
        if (k->fd >= 0)
            fprintf(out, "  open connection: %s %s (%s, %s)\n", k->method,
                    k->target ? k->target : "?", kinds[k->kind], fake_step_name(k->step));
    }
    for (size_t i = 0; i < f->ncs; i++) {
        const struct fake_container *c = f->cs[i];
        fprintf(out, "  container %.16s: %s, %s%s, %u DELETE(s)\n", c->id,
                c->role == FAKE_STUDENT ? "student" : "grading", states[c->state],
                c->removed ? ", removed" : "", c->deletes);
    }
}

const char *fake_container_id(const struct fake_container *c)
{
    return c->id;
}

enum fake_role fake_container_role(const struct fake_container *c)
{
    return c->role;
}

enum fake_state fake_container_state(const struct fake_container *c)
{
    return c->state;
}

const char *fake_container_job(const struct fake_container *c)
{
    return c->job;
}

bool fake_container_removed(const struct fake_container *c)
{
    return c->removed;
}

unsigned fake_container_deletes(const struct fake_container *c)
{
    return c->deletes;
}
