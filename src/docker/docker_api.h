/**
 * @file docker_api.h
 * Inside src/docker only: the Engine API endpoints as one table, and the JSON
 * both ways (request bodies and filters built with cJSON; replies decoded into
 * the typed callbacks of docker_client.h). No I/O here: docker_client.c moves
 * the bytes and calls a row's functions.
 *
 * Adding an endpoint: a docker_req_kind value, its row in docker_req_kinds
 * (docker_api.c), its decoder and fail function there, and the public function
 * in docker_client.c that starts it with its typed callback.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "docker/docker_client.h"

/**
 * Any callback, stored untyped in a request: the row's functions cast it back
 * to the one type its public function took (void (*)(void) converts to and
 * from every function pointer type without a warning).
 */
typedef void (*docker_any_fn)(void);

/**
 * The callback of an events stream (docker_events.c): each event with status
 * 0, then once ev == NULL when the stream ended (status 0) or failed.
 */
typedef void (*docker_event_stream_fn)(int status, const char *err, const struct docker_event *ev,
                                       void *data);

enum docker_req_kind {
    DOCKER_REQ_INFO,
    DOCKER_REQ_IMAGES,
    DOCKER_REQ_CREATE,
    DOCKER_REQ_START,
    DOCKER_REQ_KILL,
    DOCKER_REQ_REMOVE,
    DOCKER_REQ_INSPECT,
    DOCKER_REQ_CONTAINERS,
    DOCKER_REQ_WAIT,
    DOCKER_REQ_STATS,
    DOCKER_REQ_EVENTS,
    DOCKER_REQ_UPDATE,
    DOCKER_REQ_KIND_COUNT,
};

/** Row flags. */
#define DOCKER_KIND_LONG_POLL 1u /* no total timeout (streams have none either) */
#define DOCKER_KIND_304_OK 2u    /* HTTP 304 is a success (start: "already started") */

struct docker_req_row {
    /**
     * "METHOD /path", the path after the API prefix, where "{id}" stands for
     * the escaped container id: "POST /containers/{id}/start".
     */
    const char *endpoint;
    unsigned flags; /* DOCKER_KIND_* */
    /**
     * A success's reply body, parsed: calls fn once with the typed result and
     * returns 0, or returns -EPROTO (then fn was not called) when the JSON has
     * not the expected shape. NULL: the reply has no body, and success is
     * fail(0, NULL).
     */
    int (*decode)(const cJSON *json, docker_any_fn fn, void *data);
    /**
     * Set for streams (newline-delimited JSON, no timeout): one parsed line;
     * a line it cannot use it skips. fn may cancel the request.
     */
    void (*line)(const cJSON *json, docker_any_fn fn, void *data);
    /**
     * Calls fn with the error (status != 0, err set), or with no result and
     * status 0 for a body-less success or the end of a stream.
     */
    void (*fail)(int status, const char *err, docker_any_fn fn, void *data);
};

/** Indexed by enum docker_req_kind. */
extern const struct docker_req_row docker_req_kinds[DOCKER_REQ_KIND_COUNT];

/** The POST /containers/create body. Caller frees. */
char *docker_api_create_body(const struct docker_create_spec *spec);
/** The POST /containers/{id}/update body (only the fields set). Caller frees. */
char *docker_api_update_body(const struct docker_update *u);

/**
 * A `filters` value: pairs is a NULL-terminated list of key, value; pairs
 * with a NULL value are left out, values of one key form one list, keys keep
 * their first-seen order. E.g. {"label", "a=b", "event", "die", "event",
 * "oom", NULL} gives {"label":["a=b"],"event":["die","oom"]}. Caller frees.
 */
char *docker_api_filters(const char *const *pairs);

/* ---- implemented by docker_client.c for the other files of src/docker ---- */

/**
 * Starts a request of `kind`: id (borrowed; required when the row's path has
 * "{id}") and every value of query (NULL-terminated key, value list, keys
 * literal; may be NULL) are percent-escaped; body (JSON, may be NULL) is taken
 * over. fn is the callback the row's functions call. NULL on failure (nothing
 * called back).
 */
struct docker_req *docker_req_start(struct docker_client *c, enum docker_req_kind kind,
                                    const char *id, const char *const *query, char *body,
                                    docker_any_fn fn, void *data);

/** The head of the client's list of events watches (docker_events.c links them). */
struct docker_events **docker_client_watches(struct docker_client *c);
