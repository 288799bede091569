#ifndef PROCTOR_COMMON_BUF_H
#define PROCTOR_COMMON_BUF_H

/*
 * Growable byte buffer, shared by the daemon and the container runtime.
 * Embedded by value and zero-initialised ({0} is an empty buffer); `data` is
 * NUL-terminated whenever it is non-NULL, so text can be read as a C string.
 * Allocation failures are returned, never fatal: sizes come from outside.
 */

#include <stddef.h>

struct buf {
    char *data;
    size_t len;
    size_t cap;
};

/** Appends n bytes; -ENOMEM if the buffer would grow past `limit` (0 = no limit) or on OOM,
 * the buffer then unchanged. */
int buf_append(struct buf *b, const void *p, size_t n, size_t limit);
/** buf_append without a limit. */
int buf_add(struct buf *b, const void *p, size_t n);
/** Makes room for `total` bytes in all (exactly, no doubling). 0 or -ENOMEM. */
int buf_reserve(struct buf *b, size_t total);
/** Drops the first n bytes. */
void buf_consume(struct buf *b, size_t n);
/** Empties the buffer, keeping its storage. */
void buf_reset(struct buf *b);
/** Frees the storage; the buf is empty and reusable afterwards. */
void buf_deinit(struct buf *b);

#endif
