/*
 * rt_value: a small owned value tree for the container runtime. Its codecs
 * are rt_msgpack.h (the agent wire) and rt_json.h (the on-disk files shared
 * with INGInious's Python API). Self-contained: libc only, so that the
 * runtime links statically without msgpack-c or cJSON.
 */
#ifndef PROCTOR_RT_VALUE_H
#define PROCTOR_RT_VALUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

enum rt_type { RT_NIL, RT_BOOL, RT_INT, RT_FLOAT, RT_STR, RT_BIN, RT_ARRAY, RT_MAP };

// Deep enough for any real input map, shallow enough that a hostile frame
// cannot exhaust the stack of a process whose memory is the container's.
#define RT_VALUE_MAX_DEPTH 64

struct rt_value;
struct rt_map_index;

/** One map entry; the key is a NUL-terminated copy owned by the map. */
struct rt_kv {
    char *key;
    struct rt_value *val;
};

/** A node. STR and BIN keep a NUL after their n bytes, so str.p is a C string. */
struct rt_value {
    enum rt_type type;
    union {
        bool b;
        int64_t i;
        double f;
        struct {
            char *p;
            size_t n;
        } str;
        struct {
            struct rt_value **items;
            size_t n, cap;
        } arr;
        struct {
            struct rt_kv *kv; // in insertion order, which the encoders keep
            size_t n, cap;
            struct rt_map_index *index; // private to rt_value.c; NULL for small maps
        } map;
    } u;
};

/** Appends a C string; aborts on OOM (small bookkeeping text only). */
void rt_buf_puts(struct buf *b, const char *s);

/** Reports out-of-memory on stderr and aborts. */
_Noreturn void rt_oom(void);
/** Aborting allocators for small bookkeeping. */
void *rt_xmalloc(size_t n);
char *rt_xstrdup(const char *s);

/* Constructors: each returns a new node the caller frees with rt_value_free. */
struct rt_value *rt_new_nil(void);
struct rt_value *rt_new_bool(bool b);
struct rt_value *rt_new_int(int64_t i);
struct rt_value *rt_new_float(double f);
/** Copies n bytes of p (NULL when the copy cannot be allocated). */
struct rt_value *rt_new_strn(const char *p, size_t n);
struct rt_value *rt_new_str(const char *s);
/** A STR from arbitrary bytes, invalid UTF-8 replaced by U+FFFD (Python's "replace"). */
struct rt_value *rt_new_str_utf8(const char *p, size_t n);
struct rt_value *rt_new_bin(const void *p, size_t n);
struct rt_value *rt_new_array(void);
struct rt_value *rt_new_map(void);

/** Frees v and everything below it; NULL is a no-op. */
void rt_value_free(struct rt_value *v);
/** Deep copy; caller frees. */
struct rt_value *rt_value_dup(const struct rt_value *v);
/** Deep equality: floats compared with ==, maps as sets of keys. */
bool rt_value_equal(const struct rt_value *a, const struct rt_value *b);
/** Deep identity: floats by their bits (NaN is itself, -0.0 is not 0.0), maps in the same order. */
bool rt_value_identical(const struct rt_value *a, const struct rt_value *b);

/** Borrows; valid until the map is changed. NULL if m is not a map or lacks key. */
struct rt_value *rt_map_get(const struct rt_value *m, const char *key);
/** String value of key, or NULL when absent or not a STR. Borrowed. */
const char *rt_map_str(const struct rt_value *m, const char *key);
/** Sets key (replacing an old value, which is freed); takes ownership of val. */
void rt_map_set(struct rt_value *m, const char *key, struct rt_value *val);
/** Appends without checking duplicates (decoder use); takes ownership of val. */
void rt_map_add(struct rt_value *m, char *key_owned, struct rt_value *val);
/** Appends to an array; takes ownership of val. */
void rt_array_push(struct rt_value *a, struct rt_value *val);

#endif
