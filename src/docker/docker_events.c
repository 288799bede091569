#include "docker/docker_events.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "core/loop.h"
#include "core/util.h"
#include "docker/docker_api.h"

#define EVENTS_RESTART_MS 250L
#define EVENTS_BACKOFF_MAX_MS 10000L
// timeNano goes through a double in cJSON (about 256 ns of rounding at today's
// dates): a restarted stream resumes this much early and the replay is dropped.
#define SINCE_MARGIN_NS 2000

struct docker_events {
    struct docker_client *c;
    struct docker_events *prev, *next; /* in the client's watches */
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

static int64_t realtime_ns(void);
static void events_connect(struct docker_events *ev);

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
    struct docker_events **head = docker_client_watches(c);
    ev->next = *head;
    if (*head)
        (*head)->prev = ev;
    *head = ev;
    events_connect(ev);
    return ev;
}

void docker_events_stop(struct docker_events *ev)
{
    if (!ev)
        return;
    docker_req_cancel(ev->req);
    loop_timer_del(docker_client_loop(ev->c), ev->restart_timer);
    if (ev->prev)
        ev->prev->next = ev->next;
    else
        *docker_client_watches(ev->c) = ev->next;
    if (ev->next)
        ev->next->prev = ev->prev;
    free(ev->label);
    free(ev->last_id);
    free(ev->last_action);
    free(ev);
}

static int64_t realtime_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static long on_restart(struct loop *loop, uint64_t id, void *data)
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
        ev->restart_timer = loop_timer_add(docker_client_loop(ev->c), delay_ms, on_restart, ev);
}

// A replay of what was delivered before the stream restarted: older than the
// last event, or that event itself (since includes it).
static bool events_seen(const struct docker_events *ev, const struct docker_event *e)
{
    return e->time_nano < ev->last_nano ||
           (e->time_nano == ev->last_nano && ev->last_id && strcmp(ev->last_id, e->id) == 0 &&
            strcmp(ev->last_action, e->action) == 0);
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

static void on_stream(int status, const char *err, const struct docker_event *e, void *data)
{
    struct docker_events *ev = data;
    if (!e) {
        events_end(ev, status, err);
        return;
    }
    if (events_seen(ev, e))
        return;
    ev->last_nano = e->time_nano;
    ev->since_nano = e->time_nano;
    free(ev->last_id);
    free(ev->last_action);
    ev->last_id = xstrdup(e->id);
    ev->last_action = xstrdup(e->action);
    ev->backoff_ms = EVENTS_RESTART_MS;
    ev->cb(e, ev->data);
}

static void events_connect(struct docker_events *ev)
{
    // clang-format off
    const char *const filters[] = {
        "label", ev->label, /* left out when NULL */
        "type", "container",
        "event", "create",
        "event", "die",
        "event", "oom",
        NULL,
    };
    // clang-format on
    AUTO_FREE char *f = docker_api_filters(filters);
    int64_t since = ev->since_nano > SINCE_MARGIN_NS ? ev->since_nano - SINCE_MARGIN_NS : 0;
    char since_text[48];
    snprintf(since_text, sizeof(since_text), "%" PRId64 ".%09" PRId64, since / 1000000000,
             since % 1000000000);
    const char *const query[] = {"filters", f, "since", since_text, NULL};
    // The inner cast checks on_stream's type against what the row calls.
    ev->req = docker_req_start(ev->c, DOCKER_REQ_EVENTS, NULL, query, NULL,
                               (docker_any_fn)(docker_event_stream_fn)on_stream, ev);
    if (!ev->req)
        events_schedule(ev, ev->backoff_ms);
}
