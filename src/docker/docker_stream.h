/**
 * @file docker_stream.h
 * I/O-free parsers for the container's attach stream (feed bytes, pull frames).
 *
 * Two layers, both bounded and both tolerant of arbitrary splitting and
 * coalescing of their input:
 *  - struct docker_demux: Docker's stream multiplexing (Tty=false attach): an
 *    8-byte header (stream id 0/1/2, three zero bytes, uint32 big-endian length)
 *    then the payload. Payloads are handed out in pieces as they arrive, so a
 *    huge frame never needs to be buffered here.
 *  - struct msg_framer (common/framer.h, shared with the runtime): the
 *    application framing carried inside the reassembled stdout bytes: uint32
 *    big-endian length N, then N bytes of msgpack. A frame is handed out whole
 *    (msgpack needs it contiguous), so it is bounded.
 *
 * Usage pattern for both: feed() one buffer, then call next() until it returns
 * FRAMER_NEED_MORE (or FRAMER_ERROR; enum framer_result of common/framer.h)
 * before feeding again. feed() borrows the buffer: it must
 * stay valid and unchanged until next() returns NEED_MORE. Errors are sticky
 * and their text is kept in the parser.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/framer.h" // struct msg_framer, the application framing
#include "core/util.h"

/** Docker stream ids in the multiplexing header. */
enum docker_stream_id {
    DOCKER_STDIN = 0,
    DOCKER_STDOUT = 1,
    DOCKER_STDERR = 2,
};

#define DOCKER_DEMUX_HEADER_LEN 8

/**
 * Docker multiplexing parser. Embedded by value; holds no heap memory, so it
 * has no deinit.
 */
struct docker_demux {
    size_t max_frame;                     /* largest declared payload accepted */
    const uint8_t *in;                    /* borrowed from feed(), unconsumed part */
    size_t in_len;                        /* bytes left in `in` */
    uint8_t hdr[DOCKER_DEMUX_HEADER_LEN]; /* header bytes collected so far */
    size_t hdr_len;
    int stream;            /* stream id of the frame being read */
    size_t remaining;      /* payload bytes of the current frame not yet handed out */
    uint64_t frames;       /* headers accepted (including empty frames) */
    uint64_t empty_frames; /* zero-length frames skipped */
    bool failed;
    char err[128];
};

/** Prepares d; frames whose declared length exceeds max_frame are an error. */
void docker_demux_init(struct docker_demux *d, size_t max_frame);

/**
 * Gives the parser the next input bytes. Borrows buf until next() returns
 * NEED_MORE or ERROR. Returns 0, or -EBUSY if the previous input was not fully
 * consumed yet (a caller bug: nothing is lost, the new bytes are refused).
 */
int docker_demux_feed(struct docker_demux *d, const void *buf, size_t len);

/**
 * Pulls the next payload piece. On FRAMER_FRAME, *stream is the stream
 * id and *ptr and *len (len > 0) a piece of its payload, borrowed from the fed
 * buffer. One Docker frame may be returned in several pieces; consecutive
 * pieces of one frame carry the same stream id.
 *
 * Zero-length frames are accepted and skipped silently (counted in
 * empty_frames): INGInious treats them as a protocol error, but Docker can
 * emit them and they carry nothing, so ending the job on one would be wrong.
 *
 * Errors: stream id other than 0/1/2, non-zero reserved bytes, declared length
 * over max_frame.
 */
enum framer_result docker_demux_next(struct docker_demux *d, int *stream, const void **ptr,
                                     size_t *len);

/** True when no header or payload is half-read: EOF here is a clean end. */
bool docker_demux_at_boundary(const struct docker_demux *d);

/** Error text after FRAMER_ERROR; "" otherwise. Borrowed from d. */
const char *docker_demux_error(const struct docker_demux *d);
