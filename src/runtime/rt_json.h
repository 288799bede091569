/*
 * rt_json: the runtime's JSON codec for rt_value trees, in the dialect of
 * Python's json module (the files shared with INGInious's Python API).
 */
#ifndef PROCTOR_RT_JSON_H
#define PROCTOR_RT_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "rt_value.h"

/**
 * Appends v as JSON in Python's json.dumps default style (", " and ": "
 * separators, ASCII-only with \u escapes, floats always with a '.' or an
 * exponent). BIN values are not representable: -EINVAL. 0 or -ENOMEM.
 */
int rt_json_encode(const struct rt_value *v, struct buf *out);
/**
 * Parses exactly one JSON document (surrounding whitespace allowed) from
 * p[0..n). Integers without fraction or exponent become INT, others FLOAT;
 * NaN/Infinity are accepted as Python writes them. 0 and *out (caller frees),
 * or -EINVAL / -ENOMEM.
 */
int rt_json_decode(const char *p, size_t n, struct rt_value **out);

/** Appends the UTF-8 encoding of code point cp; 0 or -ENOMEM. */
int rt_utf8_put(struct buf *b, uint32_t cp);

/** Python's repr of a float into dst (at least 32 bytes): "50.0", "66.67", "1e-05". */
void rt_float_repr(double f, char *dst, size_t size);

#endif
