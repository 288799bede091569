#include "common/mp_head.h"

#include <errno.h>
#include <string.h>

static uint64_t be(const uint8_t *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

// Sign-extends the low 8*n bits of u without a signed shift or overflow.
static int64_t sign_extend(uint64_t u, size_t n)
{
    if (n < 8) {
        uint64_t sign = (uint64_t)1 << (8 * n - 1);
        u = (u ^ sign) - sign;
    }
    int64_t i;
    memcpy(&i, &u, sizeof i);
    return i;
}

int mp_head_read(const void *p, size_t avail, struct mp_head *h)
{
    const uint8_t *b = p;
    if (avail == 0)
        return -EAGAIN;
    uint8_t t = b[0];
    size_t extra = 0; // bytes after the type byte
    memset(h, 0, sizeof *h);
    if (t <= 0x7f || t >= 0xe0) {
        h->kind = t <= 0x7f ? MP_UINT : MP_INT;
        if (t <= 0x7f)
            h->n = t;
        else
            h->i = (int64_t)t - 256;
    } else if (t <= 0x8f) {
        h->kind = MP_MAP, h->n = t & 0x0f;
    } else if (t <= 0x9f) {
        h->kind = MP_ARRAY, h->n = t & 0x0f;
    } else if (t <= 0xbf) {
        h->kind = MP_STR, h->n = t & 0x1f;
    } else if (t == 0xc0) {
        h->kind = MP_NIL;
    } else if (t == 0xc2 || t == 0xc3) {
        h->kind = MP_BOOL, h->n = t == 0xc3;
    } else if (t >= 0xc4 && t <= 0xc6) {
        h->kind = MP_BIN, extra = (size_t)1 << (t - 0xc4);
    } else if (t == 0xca || t == 0xcb) {
        h->kind = MP_FLOAT, extra = t == 0xca ? 4 : 8;
    } else if (t >= 0xcc && t <= 0xcf) {
        h->kind = MP_UINT, extra = (size_t)1 << (t - 0xcc);
    } else if (t >= 0xd0 && t <= 0xd3) {
        h->kind = MP_INT, extra = (size_t)1 << (t - 0xd0);
    } else if (t >= 0xd9 && t <= 0xdb) {
        h->kind = MP_STR, extra = (size_t)1 << (t - 0xd9);
    } else if (t == 0xdc || t == 0xdd) {
        h->kind = MP_ARRAY, extra = t == 0xdc ? 2 : 4;
    } else if (t == 0xde || t == 0xdf) {
        h->kind = MP_MAP, extra = t == 0xde ? 2 : 4;
    } else {
        return -EINVAL; // 0xc1 is never used; ext types are in no message
    }
    if (avail - 1 < extra)
        return -EAGAIN;
    h->len = 1 + extra;
    if (!extra)
        return 0;
    uint64_t x = be(b + 1, extra);
    if (h->kind == MP_INT) {
        h->i = sign_extend(x, extra);
    } else if (h->kind == MP_FLOAT && extra == 4) {
        uint32_t b32 = (uint32_t)x;
        float f;
        memcpy(&f, &b32, sizeof f);
        h->f = f;
    } else if (h->kind == MP_FLOAT) {
        memcpy(&h->f, &x, sizeof h->f);
    } else {
        h->n = x;
    }
    return 0;
}
