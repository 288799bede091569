/*
 * rt_msgpack: the runtime's msgpack codec (the agent wire and the IPC
 * sockets) for rt_value trees. libc only.
 */
#ifndef PROCTOR_RT_MSGPACK_H
#define PROCTOR_RT_MSGPACK_H

#include <stddef.h>
#include <stdint.h>

#include "rt_value.h"

/** Appends the msgpack encoding of v to out; 0 or -ENOMEM. */
int rt_msgpack_pack(const struct rt_value *v, struct buf *out);
/**
 * Decodes one msgpack object from p[0..n). Returns 0 and sets *out (caller
 * frees) and *used; -EAGAIN when the bytes end before the object does;
 * -EINVAL on malformed or unsupported input (ext types, map keys that are
 * neither str nor bin, nesting deeper than 64); -ENOMEM.
 */
int rt_msgpack_unpack(const void *p, size_t n, size_t *used, struct rt_value **out);

/** Where a resumable boundary scan of one msgpack object stands. */
struct rt_msgpack_scan {
    size_t pos;       // bytes known to belong to the object
    uint64_t pending; // objects (array items, map keys and values) still to pass
};
#define RT_MSGPACK_SCAN_INIT                                                                       \
    {                                                                                              \
        .pos = 0, .pending = 1                                                                     \
    }

/**
 * Finds where the msgpack object starting at p[0] ends, without decoding or
 * allocating: returns 0 once it is whole (it is p[0..s->pos)), -EAGAIN when
 * p[0..n) ends first (call again with the same bytes plus more: the scan
 * resumes at s->pos, so each byte is examined about once in all), or -EINVAL
 * on a type rt_msgpack_unpack refuses as well (ext types, 0xc1). Depth is
 * not limited here; the decoder does that.
 */
int rt_msgpack_scan(const void *p, size_t n, struct rt_msgpack_scan *s);

#endif
