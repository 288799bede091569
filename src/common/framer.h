#ifndef PROCTOR_COMMON_FRAMER_H
#define PROCTOR_COMMON_FRAMER_H

/*
 * The application framing between the agent and a grading container, in
 * both directions and on the runtime's IPC sockets: uint32 big-endian length
 * N, then N bytes (one msgpack object). I/O-free: feed() bytes, pull whole
 * frames with next() until it returns FRAMER_NEED_MORE (or FRAMER_ERROR)
 * before feeding again. feed() borrows the buffer: it must stay valid and
 * unchanged until next() returns FRAMER_NEED_MORE. Errors are sticky and
 * their text and code are kept in the framer.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

/** What next() of a feed/next parser gives (the framer here, Docker's demux). */
enum framer_result {
    FRAMER_NEED_MORE, /**< input consumed; feed more bytes */
    FRAMER_FRAME,     /**< a frame (or a piece of a payload) is available */
    FRAMER_ERROR,     /**< protocol error; see the parser's error text; sticky */
};

#define MSG_FRAME_HEADER_LEN 4

/**
 * Whole frames that arrive in one fed buffer are returned in place without
 * copying; only a frame split across feeds is collected into an internal
 * buffer, bounded by MSG_FRAME_HEADER_LEN + max_msg.
 */
struct msg_framer {
    size_t max_msg;
    const uint8_t *in; /* borrowed from feed() */
    size_t in_len;
    struct buf part;   /* a frame being collected across feeds (header included) */
    size_t need;       /* total bytes of the frame in `part` once its header is known, else 0 */
    bool release_part; /* `part` holds the frame returned last time: drop it on next() */
    uint64_t msgs;     /* frames returned */
    bool failed;
    int errnum; /* after an error: -EINVAL (length 0), -EMSGSIZE (over max_msg) or -ENOMEM */
    char err[128];
};

/** Prepares f; declared lengths over max_msg (or zero) are an error. */
void msg_framer_init(struct msg_framer *f, size_t max_msg);
/** Frees the internal buffer; f can be init'ed again. */
void msg_framer_deinit(struct msg_framer *f);

/**
 * Gives the framer the next input bytes. Borrows buf until next() returns
 * FRAMER_NEED_MORE or FRAMER_ERROR. Returns 0, or -EBUSY if the previous
 * input was not fully consumed yet (a caller bug: nothing is lost, the new
 * bytes are refused).
 */
int msg_framer_feed(struct msg_framer *f, const void *buf, size_t len);

/**
 * Pulls the next complete message. On FRAMER_FRAME, *ptr and *len are the
 * body (len > 0), borrowed from f or from the fed buffer, valid until the
 * next call on f. Errors: declared length 0, declared length over max_msg,
 * out of memory.
 */
enum framer_result msg_framer_next(struct msg_framer *f, const void **ptr, size_t *len);

/** Bytes of an incomplete frame held (0 = EOF here is a clean end). */
size_t msg_framer_pending(const struct msg_framer *f);

/** Error text after FRAMER_ERROR; "" otherwise. Borrowed from f. */
const char *msg_framer_error(const struct msg_framer *f);

/**
 * Appends one frame (uint32 big-endian length + msg) to out; on failure out
 * is unchanged. 0, -EMSGSIZE if len does not fit in 32 bits, or -ENOMEM.
 */
int msg_frame_encode(struct buf *out, const void *msg, size_t len);

/** The big-endian uint32 at p. */
uint32_t framer_be32(const uint8_t *p);

#endif
