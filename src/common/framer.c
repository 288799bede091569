#include "common/framer.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

uint32_t framer_be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

#define MSG_FRAMER_KEEP_BYTES (1u << 20)

static enum framer_result framer_fail(struct msg_framer *f, int errnum, const char *what, size_t n)
{
    f->failed = true;
    f->errnum = errnum;
    snprintf(f->err, sizeof(f->err), "%s (%zu bytes, limit %zu)", what, n, f->max_msg);
    f->in = NULL;
    f->in_len = 0;
    buf_deinit(&f->part);
    f->need = 0;
    return FRAMER_ERROR;
}

void msg_framer_init(struct msg_framer *f, size_t max_msg)
{
    memset(f, 0, sizeof(*f));
    f->max_msg = max_msg;
}

void msg_framer_deinit(struct msg_framer *f)
{
    buf_deinit(&f->part);
    memset(f, 0, sizeof(*f));
}

int msg_framer_feed(struct msg_framer *f, const void *buf, size_t len)
{
    if (f->in_len > 0)
        return -EBUSY;
    f->in = buf;
    f->in_len = len;
    return 0;
}

// Checks a declared length; returns the total frame size or 0 after failing f.
static size_t framer_check_len(struct msg_framer *f, const uint8_t *hdr)
{
    size_t n = framer_be32(hdr);
    if (n == 0) {
        framer_fail(f, -EINVAL, "empty application frame", n);
        return 0;
    }
    if (n > f->max_msg) {
        framer_fail(f, -EMSGSIZE, "application frame too large", n);
        return 0;
    }
    return MSG_FRAME_HEADER_LEN + n;
}

// Moves up to `want` input bytes into the partial-frame buffer.
static int framer_take(struct msg_framer *f, size_t want)
{
    size_t n = f->in_len < want ? f->in_len : want;
    int ret = buf_append(&f->part, f->in, n, MSG_FRAME_HEADER_LEN + f->max_msg);
    if (ret == 0) {
        f->in += n;
        f->in_len -= n;
    }
    return ret;
}

enum framer_result msg_framer_next(struct msg_framer *f, const void **ptr, size_t *len)
{
    if (f->failed)
        return FRAMER_ERROR;
    if (f->release_part) {
        // A big frame's buffer goes back at once: a 50 MB result must not
        // stay allocated for the rest of the job.
        if (f->part.cap > MSG_FRAMER_KEEP_BYTES)
            buf_deinit(&f->part);
        else
            buf_reset(&f->part);
        f->need = 0;
        f->release_part = false;
    }
    if (f->part.len == 0 && f->in_len >= MSG_FRAME_HEADER_LEN) {
        // Fast path: the whole frame is in the caller's buffer, hand it out in place.
        size_t total = framer_check_len(f, f->in);
        if (total == 0)
            return FRAMER_ERROR;
        if (f->in_len >= total) {
            *ptr = f->in + MSG_FRAME_HEADER_LEN;
            *len = total - MSG_FRAME_HEADER_LEN;
            f->in += total;
            f->in_len -= total;
            f->msgs++;
            return FRAMER_FRAME;
        }
    }
    if (f->in_len == 0)
        goto need_more;
    if (f->part.len < MSG_FRAME_HEADER_LEN) {
        if (framer_take(f, MSG_FRAME_HEADER_LEN - f->part.len) < 0)
            return framer_fail(f, -ENOMEM, "out of memory for application frame",
                               MSG_FRAME_HEADER_LEN);
        if (f->part.len < MSG_FRAME_HEADER_LEN)
            goto need_more;
        f->need = framer_check_len(f, (const uint8_t *)f->part.data);
        if (f->need == 0)
            return FRAMER_ERROR;
        // The size is known: one exact allocation instead of doublings.
        if (buf_reserve(&f->part, f->need) < 0)
            return framer_fail(f, -ENOMEM, "out of memory for application frame", f->need);
    }
    if (framer_take(f, f->need - f->part.len) < 0)
        return framer_fail(f, -ENOMEM, "out of memory for application frame", f->need);
    if (f->part.len < f->need)
        goto need_more;
    *ptr = f->part.data + MSG_FRAME_HEADER_LEN;
    *len = f->need - MSG_FRAME_HEADER_LEN;
    f->release_part = true;
    f->msgs++;
    return FRAMER_FRAME;

need_more:
    f->in = NULL;
    f->in_len = 0;
    return FRAMER_NEED_MORE;
}

size_t msg_framer_pending(const struct msg_framer *f)
{
    return f->release_part ? 0 : f->part.len;
}

const char *msg_framer_error(const struct msg_framer *f)
{
    return f->failed ? f->err : "";
}

int msg_frame_encode(struct buf *out, const void *msg, size_t len)
{
    if (len > UINT32_MAX)
        return -EMSGSIZE;
    uint8_t hdr[MSG_FRAME_HEADER_LEN] = {(uint8_t)(len >> 24), (uint8_t)(len >> 16),
                                         (uint8_t)(len >> 8), (uint8_t)len};
    size_t old = out->len;
    int ret = buf_append(out, hdr, sizeof(hdr), 0);
    if (ret == 0)
        ret = buf_append(out, msg, len, 0);
    if (ret < 0 && out->len > old) {
        // Never leave half a frame behind: the peer would lose sync.
        out->len = old;
        out->data[old] = '\0';
    }
    return ret;
}
