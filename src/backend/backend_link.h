/**
 * @file backend_link.h
 * The agent's ZeroMQ DEALER to the INGInious backend, on the loop.
 *
 * One link = one DEALER connected to the backend's agent address (ZMQ_IPV6
 * on, no routing id, as upstream). Incoming frames are decoded with
 * backend_proto and delivered to on_message; malformed or unexpected ones are
 * logged (with a hex prefix) and dropped. Ping is answered by the link itself
 * (a Pong is queued at once) and is not delivered, so a busy job layer can
 * never miss the backend's 6-7 s liveness deadline.
 *
 * Outgoing messages are copied into a bounded queue and written with
 * ZMQ_DONTWAIT from a before-sleep hook; what libzmq refuses stays queued.
 *
 * The 10-second rule (spec §4.7): the link remembers when it last received
 * anything; a 1 s timer calls on_silence once the backend has been silent for
 * more than BACKEND_LINK_SILENCE_MS. The caller then abandons its jobs, calls
 * backend_link_reconnect() and sends a fresh AgentHello.
 *
 * Callbacks run on the loop. They may call backend_link_send() and
 * backend_link_reconnect(), but must not call backend_link_free().
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "backend/backend_proto.h"
#include "core/loop.h"

/** Silence longer than this (ms) triggers on_silence. */
#define BACKEND_LINK_SILENCE_MS 10000
/** Period of the silence check (ms). */
#define BACKEND_LINK_CHECK_MS 1000
/** Bounds of the send queue (messages libzmq has not taken yet). */
#define BACKEND_LINK_QUEUE_MAX_MSGS 4096
#define BACKEND_LINK_QUEUE_MAX_BYTES (512u * 1024 * 1024)
/** How long backend_link_free() lets queued messages drain (ms), as upstream. */
#define BACKEND_LINK_CLOSE_LINGER_MS 1000
/** Largest message accepted from the backend (libzmq refuses bigger ones). */
#define BACKEND_LINK_MAX_MSG_BYTES (256ll * 1024 * 1024)

struct backend_link;

struct backend_link_cb {
    /** A decoded BackendNewJob or BackendKillJob. m is borrowed for the call only. Required. */
    void (*on_message)(struct backend_link *link, const struct backend_msg *m, void *data);
    /** The backend has been silent for more than BACKEND_LINK_SILENCE_MS. Required. */
    void (*on_silence)(struct backend_link *link, void *data);
    /**
     * Optional (may be NULL): libzmq's monitor saw the TCP connection drop
     * (spec §4.9: whatever comes next, the backend will see a new routing id).
     */
    void (*on_disconnect)(struct backend_link *link, void *data);
    /** Optional (may be NULL): the monitor saw a connection established. */
    void (*on_connect)(struct backend_link *link, void *data);
};

/**
 * Creates the socket, connects it to addr (e.g. "tcp://127.0.0.1:2001") and
 * registers it on loop. addr and cb are copied; data is passed to every
 * callback. The silence clock starts now. NULL on failure (logged).
 * Caller frees with backend_link_free(), before loop_free(loop).
 */
struct backend_link *backend_link_new(struct loop *loop, const char *addr,
                                      const struct backend_link_cb *cb, void *data);

/**
 * Queues a copy of sb's bytes as one frame (sb stays the caller's).
 * 0, -ENOBUFS when the queue is full (the message is dropped and logged),
 * -EINVAL for an empty buffer, or -ENOMEM.
 */
int backend_link_send(struct backend_link *link, const msgpack_sbuffer *sb);

/**
 * Like backend_link_send() for a message the caller built with malloc (e.g.
 * msgpack_sbuffer_release()): takes ownership of data in every case, and hands
 * it to libzmq without copying. 0, -ENOBUFS (queue full) or -ENOMEM.
 */
int backend_link_send_take(struct backend_link *link, char *data, size_t len);

/**
 * Drops the connection (linger 0) and everything still queued, then opens a
 * new DEALER to the same address: the backend will see a new peer, which must
 * say hello again. Resets the silence clock. 0 or -errno (then the link has no
 * socket and retries at the next silence check, calling on_silence again).
 */
int backend_link_reconnect(struct backend_link *link);

/** Changes the silence threshold (default BACKEND_LINK_SILENCE_MS); for tests. */
void backend_link_set_silence_ms(struct backend_link *link, uint64_t ms);

/** Number of messages queued and not yet taken by libzmq. */
size_t backend_link_queued(const struct backend_link *link);

/** ms since the link last received a frame (or was (re)connected). */
uint64_t backend_link_silence_ms(const struct backend_link *link);

/**
 * Unregisters from the loop, pushes what is still queued to libzmq and closes
 * the socket with a linger of BACKEND_LINK_CLOSE_LINGER_MS, so that a last
 * AgentJobDone still gets out (this may block up to that long). NULL is a
 * no-op. The loop may keep running afterwards.
 */
void backend_link_free(struct backend_link *link);
