#include "docker/docker_stream.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

// The caller has written the error text into d->err.
static enum framer_result demux_fail(struct docker_demux *d)
{
    d->failed = true;
    d->in = NULL;
    d->in_len = 0;
    return FRAMER_ERROR;
}

void docker_demux_init(struct docker_demux *d, size_t max_frame)
{
    memset(d, 0, sizeof(*d));
    d->max_frame = max_frame;
    d->stream = -1;
}

int docker_demux_feed(struct docker_demux *d, const void *buf, size_t len)
{
    if (d->in_len > 0)
        return -EBUSY;
    d->in = buf;
    d->in_len = len;
    return 0;
}

enum framer_result docker_demux_next(struct docker_demux *d, int *stream, const void **ptr,
                                     size_t *len)
{
    if (d->failed)
        return FRAMER_ERROR;
    for (;;) {
        if (d->remaining > 0) {
            if (d->in_len == 0)
                break;
            size_t n = d->in_len < d->remaining ? d->in_len : d->remaining;
            *stream = d->stream;
            *ptr = d->in;
            *len = n;
            d->in += n;
            d->in_len -= n;
            d->remaining -= n;
            return FRAMER_FRAME;
        }
        // Collect the header byte by byte only when it is split; the common
        // case copies 8 bytes at once.
        size_t want = DOCKER_DEMUX_HEADER_LEN - d->hdr_len;
        size_t n = d->in_len < want ? d->in_len : want;
        memcpy(d->hdr + d->hdr_len, d->in, n);
        d->hdr_len += n;
        d->in += n;
        d->in_len -= n;
        if (d->hdr_len < DOCKER_DEMUX_HEADER_LEN)
            break;
        d->hdr_len = 0;
        unsigned id = d->hdr[0];
        size_t flen = framer_be32(d->hdr + 4);
        if (id > DOCKER_STDERR) {
            snprintf(d->err, sizeof(d->err), "bad docker stream id %u after %llu frames", id,
                     (unsigned long long)d->frames);
            return demux_fail(d);
        }
        if (d->hdr[1] | d->hdr[2] | d->hdr[3]) {
            snprintf(d->err, sizeof(d->err), "non-zero reserved bytes in docker frame header");
            return demux_fail(d);
        }
        if (flen > d->max_frame) {
            snprintf(d->err, sizeof(d->err), "docker frame of %zu bytes over the limit of %zu",
                     flen, d->max_frame);
            return demux_fail(d);
        }
        d->frames++;
        d->stream = (int)id;
        d->remaining = flen;
        if (flen == 0)
            d->empty_frames++;
    }
    d->in = NULL;
    d->in_len = 0;
    return FRAMER_NEED_MORE;
}

bool docker_demux_at_boundary(const struct docker_demux *d)
{
    return d->hdr_len == 0 && d->remaining == 0;
}

const char *docker_demux_error(const struct docker_demux *d)
{
    return d->failed ? d->err : "";
}
