/**
 * @file docker_events.h
 * The container events watch (`create`, `die`, `oom`) of a docker client: one GET
 * /events stream, reopened when it ends or fails, with no event delivered
 * twice. docker_client.h includes this header.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

struct docker_client;
struct docker_events;
struct docker_kv; /* docker_client.h */

struct docker_event {
    const char *action; /* "create", "die", "oom" */
    const char *id;     /* container id */
    int exit_code;      /* from Actor.Attributes.exitCode; -1 when absent or unparsable */
    int64_t time;       /* unix seconds */
    int64_t time_nano;  /* unix nanoseconds (time * 1e9 when Docker omits timeNano) */
    const struct docker_kv *attributes; /* Actor.Attributes (labels included) */
    size_t n_attributes;
};

/** One event; `ev` and its strings are borrowed for the call. */
typedef void (*docker_event_fn)(const struct docker_event *ev, void *data);

/**
 * Watches container `create`, `die` and `oom` events (optionally only containers with
 * label filter `label`, borrowed; NULL = all). The stream is parsed line by
 * line; when it ends or fails it is reopened after a short loop timer with
 * `since` = the last event seen (or the time of this call), and events already
 * delivered are not repeated. Both event formats are read: `Action` and
 * `Actor.ID`, or the older `status` and `id`. Returns the watch (owned by the
 * client, which stops it in docker_client_free(); stop it earlier with
 * docker_events_stop()) or NULL.
 */
struct docker_events *docker_events_watch(struct docker_client *c, const char *label,
                                          docker_event_fn cb, void *data);

/** Stops a watch: no callback afterwards. Safe from any callback. NULL is a no-op. */
void docker_events_stop(struct docker_events *ev);
