/**
 * @file docker_attach.h
 * The hijacked attach connection to one container, on the event loop.
 *
 * libcurl cannot hand over an upgraded connection, so this is a raw
 * non-blocking socket: connect (unix or TCP, as the client's endpoint), send
 * `POST /vX/containers/{id}/attach?stream=1&...` with `Connection: Upgrade` and
 * `Upgrade: tcp`, read the `101 UPGRADED` (or `200 OK`) response head, then
 * use the connection raw in both directions:
 *  - container -> us: Docker-multiplexed bytes, demultiplexed here with
 *    docker_demux and handed out as (stream id, bytes) pieces;
 *  - us -> container stdin: bytes queued with docker_attach_write(), flushed
 *    when the socket is writable, bounded.
 *
 * Attaching before the container is started is supported and is the intended
 * order: create -> attach -> (on_ready) start. Starting only after on_ready
 * guarantees no early output is lost.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

struct docker_client;
struct docker_attach;

/** Which streams to attach (query flags). */
#define DOCKER_ATTACH_STDIN 1u
#define DOCKER_ATTACH_STDOUT 2u
#define DOCKER_ATTACH_STDERR 4u
/** Also replay what the container already wrote (`logs=1`). */
#define DOCKER_ATTACH_LOGS 8u
/** The container has a TTY: the output is not multiplexed (delivered as stream 1). */
#define DOCKER_ATTACH_TTY 16u

#define DOCKER_ATTACH_DEFAULT_MAX_WRITE (16u << 20)
#define DOCKER_ATTACH_DEFAULT_MAX_FRAME (1u << 30)

struct docker_attach_cbs {
    /** Upgrade done; writes queued before are being flushed now. May be NULL. */
    void (*on_ready)(struct docker_attach *a, void *data);
    /**
     * A piece of output: stream is DOCKER_STDOUT or DOCKER_STDERR (or
     * DOCKER_STDIN when Docker echoes it). p is borrowed for the call; n > 0.
     */
    void (*on_data)(struct docker_attach *a, int stream, const void *p, size_t n, void *data);
    /**
     * The connection is over and unregistered from the loop; called once.
     * err: 0 for EOF at a frame boundary (the container's output ended),
     * -errno for a connection or protocol failure (-EPROTO: bad framing or a
     * truncated frame), or a positive HTTP status when Docker refused the
     * attach (404: no such container). errtext is borrowed, never NULL.
     * The caller still frees the object with docker_attach_free().
     */
    void (*on_close)(struct docker_attach *a, int err, const char *errtext, void *data);
};

struct docker_attach_opts {
    unsigned flags;   /* DOCKER_ATTACH_*; 0 = STDIN|STDOUT|STDERR */
    size_t max_write; /* bound on queued stdin bytes; 0 = DOCKER_ATTACH_DEFAULT_MAX_WRITE */
    size_t max_frame; /* largest Docker frame accepted; 0 = DOCKER_ATTACH_DEFAULT_MAX_FRAME */
};

/**
 * Starts attaching to container `id` (borrowed for the call) through the
 * client's endpoint and loop. The attach does not depend on the client
 * afterwards (it copies what it needs). cbs is copied; opts may be NULL.
 * Callbacks are only called from the loop, never from this function.
 * Caller frees with docker_attach_free(). NULL on immediate failure (logged).
 */
struct docker_attach *docker_attach_new(struct docker_client *c, const char *id,
                                        const struct docker_attach_opts *opts,
                                        const struct docker_attach_cbs *cbs, void *data);

/**
 * Queues n bytes (copied) for the container's stdin. Allowed before on_ready:
 * the bytes are sent after the upgrade. 0, -ENOBUFS when the queue would grow
 * past max_write (nothing queued), -EPIPE once the connection is closed.
 */
int docker_attach_write(struct docker_attach *a, const void *p, size_t n);

/** Bytes queued and not yet written to the socket. */
size_t docker_attach_pending(const struct docker_attach *a);

/** True between on_ready and on_close. */
bool docker_attach_is_ready(const struct docker_attach *a);

/**
 * Unregisters from the loop, closes the socket, drops queued bytes and frees.
 * No callback afterwards. Safe from inside any of a's callbacks. NULL is a no-op.
 */
void docker_attach_free(struct docker_attach *a);
