#include "common/buf.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int buf_append(struct buf *b, const void *p, size_t n, size_t limit)
{
    if (n > SIZE_MAX - b->len - 1)
        return -ENOMEM;
    size_t need = b->len + n;
    if (limit && need > limit)
        return -ENOMEM;
    if (need + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < need + 1)
            cap = cap > SIZE_MAX / 2 ? need + 1 : cap * 2;
        char *q = realloc(b->data, cap);
        if (!q)
            return -ENOMEM;
        b->data = q;
        b->cap = cap;
    }
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len = need;
    b->data[b->len] = '\0';
    return 0;
}

int buf_add(struct buf *b, const void *p, size_t n)
{
    return buf_append(b, p, n, 0);
}

int buf_reserve(struct buf *b, size_t total)
{
    if (total == SIZE_MAX)
        return -ENOMEM;
    if (total + 1 <= b->cap)
        return 0;
    char *q = realloc(b->data, total + 1);
    if (!q)
        return -ENOMEM;
    if (!b->data)
        q[0] = '\0';
    b->data = q;
    b->cap = total + 1;
    return 0;
}

void buf_consume(struct buf *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
    } else {
        memmove(b->data, b->data + n, b->len - n);
        b->len -= n;
    }
    if (b->data)
        b->data[b->len] = '\0';
}

void buf_reset(struct buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

void buf_deinit(struct buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}
