/**
 * @file policy_wire.h
 * What the agent and its policy worker process say to each other: framed
 * messages on a socket (a u32 length, then the payload), written with the
 * put functions into a `struct buf` and read back with the get functions.
 *
 * Both ends are the same binary (the worker is /proc/self/exe), so integers
 * travel in host layout; every message is a map of named fields
 * (policy_fields.h), never a C struct's bytes. The reader never
 * trusts a length: a short or malformed message sets `bad` and every later
 * get returns zero/NULL. Nothing outside src/policy includes this header.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/util.h"
#include "core/value.h"

/* ---- writing (to a struct buf; xmalloc-style: small messages, or data the agent already holds)
 */

void wire_u8(struct buf *b, uint8_t v);
void wire_i64(struct buf *b, int64_t v);
void wire_f64(struct buf *b, double v);
/** A string that may be NULL; read back NUL-terminated. */
void wire_str(struct buf *b, const char *s);
void wire_strn(struct buf *b, const char *s, size_t len);
/**
 * The head of a MAP of n entries, written without building a tree: the
 * caller appends n keys and values (a large value is then not copied).
 */
void wire_map(struct buf *b, size_t n);
/** A string value (a key of a map, or a string field's value); NULL is written as nil. */
void wire_key(struct buf *b, const char *s);
/** A value tree (depth <= VALUE_MAX_DEPTH: the tree comes from a checked source). */
void wire_value(struct buf *b, const struct value *v);

/* ---- reading (borrows the message; pointers stay valid while it lives) ---- */

struct wire_rd {
    const char *p;
    size_t len, off;
    bool bad; /* a get ran past the end or met nonsense */
};

void wire_rd_init(struct wire_rd *r, const char *p, size_t len);
uint8_t wire_get_u8(struct wire_rd *r);
int64_t wire_get_i64(struct wire_rd *r);
double wire_get_f64(struct wire_rd *r);
/** Borrowed, NUL-terminated; NULL for a NULL string (and when bad). *len may be NULL. */
const char *wire_get_str(struct wire_rd *r, size_t *len);
/**
 * A value tree into out (caller releases with value_deinit, also on failure).
 * Every array or map length is checked against the bytes left before anything
 * is allocated. 0, or -EINVAL (and bad) on a malformed value.
 */
int wire_get_value(struct wire_rd *r, struct value *out);

/* ---- framed I/O ------------------------------------------------------------ */

/**
 * When a transfer must end: at `at_ms` (util_now_ms clock), or later while
 * `*extend` + `grace_ms` is later (the worker moves *extend forward when it
 * starts a new budgeted phase), but never after `limit_ms` (0: no limit; the
 * page behind *extend is written by the worker, which is not trusted to stop).
 * at_ms == 0: no deadline.
 */
struct wire_deadline {
    uint64_t at_ms;
    const volatile uint64_t *extend; /* may be NULL */
    uint64_t grace_ms;
    uint64_t limit_ms;
};

/** Sends b as one framed message. 0, -ETIMEDOUT, -EPIPE or another -errno. */
int wire_send(int fd, const struct buf *b, const struct wire_deadline *dl);
/**
 * Receives one framed message of at most max bytes into *msg (caller frees).
 * 0, -ETIMEDOUT, -EPIPE (the peer is gone), -EMSGSIZE, or another -errno.
 */
int wire_recv(int fd, char **msg, size_t *len, size_t max, const struct wire_deadline *dl);
