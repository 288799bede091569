#ifndef PROCTOR_COMMON_MP_HEAD_H
#define PROCTOR_COMMON_MP_HEAD_H

/*
 * The head of one msgpack object: its type byte and the length, count or
 * scalar that follows it. The one table of msgpack's type bytes, shared by
 * the daemon's decoder (core/value.c, which needs bounds msgpack-c lacks)
 * and the runtime's (which links no msgpack-c). Reading a head allocates
 * nothing and never reads past p[avail - 1].
 */

#include <stddef.h>
#include <stdint.h>

enum mp_kind {
    MP_NIL,
    MP_BOOL,  /* n: 0 or 1 */
    MP_UINT,  /* n: the value (positive fixint, uint8..uint64) */
    MP_INT,   /* i: the value (negative fixint, int8..int64) */
    MP_FLOAT, /* f: the value (float32 widened, or float64) */
    MP_STR,   /* n: payload bytes, which follow the head */
    MP_BIN,   /* n: payload bytes, which follow the head */
    MP_ARRAY, /* n: items, which follow */
    MP_MAP,   /* n: key/value pairs, which follow */
};

struct mp_head {
    enum mp_kind kind;
    size_t len; /* bytes of the head: the type byte and its length, count or scalar */
    uint64_t n;
    int64_t i;
    double f;
};

/**
 * Reads the head of the object at p[0..avail). 0 and *h; -EAGAIN when avail
 * ends inside the head (nothing is known yet); -EINVAL on a type byte no
 * message of ours uses: 0xc1 and the ext types (checked first, so one byte
 * is enough to refuse them).
 */
int mp_head_read(const void *p, size_t avail, struct mp_head *h);

#endif
