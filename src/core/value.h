/**
 * @file value.h
 * A generic, owned msgpack-shaped value tree: what the backend sends in
 * `inputdata`, what a container sends as its result, what a policy sees as a
 * Lua table. A `struct value` owns its strings and children; value_deinit()
 * releases them. Maps keep insertion order and may hold non-string keys.
 *
 * msgpack (de)serialisation is bounded: depth, object count and every declared
 * size are checked before anything is allocated, so a hostile peer cannot make
 * the decoder recurse or allocate beyond a small multiple of its message.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#define VALUE_TYPES(X)                                                                             \
    X(NIL, "nil")                                                                                  \
    X(BOOL, "bool")                                                                                \
    X(INT, "int")                                                                                  \
    X(UINT, "uint")                                                                                \
    X(FLOAT, "float")                                                                              \
    X(STR, "str")                                                                                  \
    X(BIN, "bin")                                                                                  \
    X(ARRAY, "array")                                                                              \
    X(MAP, "map")

enum value_type {
#define X(name, str) VALUE_##name,
    VALUE_TYPES(X)
#undef X
};

struct value_pair;

struct value {
    enum value_type type;
    union {
        bool b;
        int64_t i;  /* VALUE_INT */
        uint64_t u; /* VALUE_UINT: only for positive values above INT64_MAX */
        double f;
        struct {
            char *ptr; /* NUL-terminated for convenience; len excludes the NUL */
            size_t len;
        } s; /* VALUE_STR and VALUE_BIN */
        struct {
            struct value *items;
            size_t len, cap;
        } a;
        struct {
            struct value_pair *items;
            size_t len, cap;
        } m;
    } u;
};

struct value_pair {
    struct value key;
    struct value val;
};

/** Limits applied while decoding untrusted msgpack. */
#define VALUE_MAX_DEPTH 64
/**
 * Object budget of value_unpack(): a message of len bytes may decode into at
 * most VALUE_MIN_OBJECTS + len / VALUE_BYTES_PER_OBJECT objects (every value,
 * key, array and map counts one). A decoded object costs at most 64 bytes of
 * heap besides its string payload (a 32-byte node, and the overhead of one
 * allocation), and payloads are at most len bytes, so the tree of a decoded
 * message never takes more than VALUE_MAX_DECODED_BYTES(len): five times the
 * message plus 4 MiB. The 4 MiB floor lets any message carry 65536 small
 * values (a list of numbers in a result's custom data) whatever its size.
 */
#define VALUE_MIN_OBJECTS 65536
#define VALUE_BYTES_PER_OBJECT 16
#define VALUE_MAX_OBJECTS(len) ((size_t)VALUE_MIN_OBJECTS + (size_t)(len) / VALUE_BYTES_PER_OBJECT)
#define VALUE_MAX_DECODED_BYTES(len) (5 * (size_t)(len) + (size_t)64 * VALUE_MIN_OBJECTS)

const char *value_type_name(enum value_type t);

/** Releases everything v owns and resets it to NIL. NULL is a no-op. */
void value_deinit(struct value *v);
/** Deep copy; aborts on OOM (bookkeeping sizes). */
void value_copy(struct value *dst, const struct value *src);

/* Constructors: fill *v (previous content is NOT released). Strings are copied. */
void value_set_nil(struct value *v);
void value_set_bool(struct value *v, bool b);
void value_set_int(struct value *v, int64_t i);
void value_set_float(struct value *v, double f);
void value_set_str(struct value *v, const char *s);
void value_set_strn(struct value *v, const char *s, size_t n);
void value_set_bin(struct value *v, const void *p, size_t n);
/** Takes ownership of p (malloc'd, n bytes, must have room for a NUL at p[n]). */
void value_take_bin(struct value *v, char *p, size_t n);
void value_set_array(struct value *v);
void value_set_map(struct value *v);

/** Appends a NIL slot to an array and returns it (valid until the next append). */
struct value *value_array_push(struct value *arr);
/**
 * Returns the slot for string key `key` in map, adding a NIL slot if absent.
 * Valid until the next insertion into map.
 */
struct value *value_map_put(struct value *map, const char *key);
/** Looks up a string key; NULL if absent or if map is not a map. Borrowed. */
const struct value *value_map_get(const struct value *map, const char *key);
/** Removes a string key (releasing its value); true if it was there. */
bool value_map_del(struct value *map, const char *key);
/**
 * Reorders the entries of map `m` so that its string keys also found in map
 * `ref` (borrowed) come first, in ref's order, and the others after them in
 * their current order; then does the same inside every matched value that is
 * a map in both. O(n log n). Non-maps are left alone, and so is m when the
 * bookkeeping cannot be allocated (its order then stays as it is).
 */
void value_map_order_like(struct value *m, const struct value *ref);

/** True for STR values equal to s. */
bool value_is_str(const struct value *v, const char *s);

/**
 * Decodes exactly one msgpack object from buf[0..len) into *out (previous
 * content is NOT released; the caller frees the result with value_deinit()).
 * str and bin stay distinct; ext types are refused. Fails with -EBADMSG
 * (malformed, truncated, trailing bytes, deeper than VALUE_MAX_DEPTH, more
 * than VALUE_MAX_OBJECTS(len) objects) or -ENOMEM; on failure *out is NIL and
 * err (may be NULL) says why. Nothing is allocated for a declared size before
 * it is checked, so the heap it takes stays under VALUE_MAX_DECODED_BYTES(len).
 */
int value_unpack(const char *buf, size_t len, struct value *out, char *err, size_t errlen);
/** Appends v to the packer. 0 or -ENOMEM. */
int value_pack(msgpack_packer *pk, const struct value *v);
