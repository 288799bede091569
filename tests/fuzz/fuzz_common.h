// Shared helpers of the libFuzzer harnesses: a reader over the fuzzer's
// bytes (for choices such as chunk splits), deep equality of value trees, and
// a property check that reports through the sanitizer's usual crash path.
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"

#include "core/util.h"
#include "core/value.h"

// Consumes the fuzzer's input from the front (choices) while the rest stays
// the payload: a choice past the end reads as 0.
struct fuzz_in {
    const uint8_t *p;
    size_t n;
};

static inline uint8_t fuzz_u8(struct fuzz_in *in)
{
    if (in->n == 0)
        return 0;
    in->n--;
    return *in->p++;
}

static inline uint16_t fuzz_u16(struct fuzz_in *in)
{
    uint16_t hi = fuzz_u8(in);
    return (uint16_t)(hi << 8 | fuzz_u8(in));
}

// Chunk sizes chosen by the fuzzer: `k` sizes of 1..256 bytes, then the rest
// in one piece. Splits[] receives at most max sizes; returns how many.
static inline size_t fuzz_splits(struct fuzz_in *in, size_t *splits, size_t max)
{
    size_t k = fuzz_u8(in) % (max + 1);
    for (size_t i = 0; i < k; i++)
        splits[i] = (size_t)fuzz_u8(in) + 1;
    return k;
}

// Deep equality; floats compare by their bits (NaN equals the same NaN).
static inline bool fuzz_value_equal(const struct value *a, const struct value *b)
{
    if (a->type != b->type)
        return false;
    switch (a->type) {
    case VALUE_NIL:
        return true;
    case VALUE_BOOL:
        return a->u.b == b->u.b;
    case VALUE_INT:
        return a->u.i == b->u.i;
    case VALUE_UINT:
        return a->u.u == b->u.u;
    case VALUE_FLOAT:
        return memcmp(&a->u.f, &b->u.f, sizeof(double)) == 0;
    case VALUE_STR:
    case VALUE_BIN:
        return a->u.s.len == b->u.s.len &&
               (a->u.s.len == 0 || memcmp(a->u.s.ptr, b->u.s.ptr, a->u.s.len) == 0);
    case VALUE_ARRAY:
        if (a->u.a.len != b->u.a.len)
            return false;
        for (size_t i = 0; i < a->u.a.len; i++)
            if (!fuzz_value_equal(&a->u.a.items[i], &b->u.a.items[i]))
                return false;
        return true;
    case VALUE_MAP:
        if (a->u.m.len != b->u.m.len)
            return false;
        for (size_t i = 0; i < a->u.m.len; i++)
            if (!fuzz_value_equal(&a->u.m.items[i].key, &b->u.m.items[i].key) ||
                !fuzz_value_equal(&a->u.m.items[i].val, &b->u.m.items[i].val))
                return false;
        return true;
    }
    return false;
}

// Packs v into a fresh sbuffer (caller destroys it with msgpack_sbuffer_destroy).
static inline void fuzz_pack(const struct value *v, msgpack_sbuffer *sb)
{
    msgpack_sbuffer_init(sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    FUZZ_CHECK(value_pack(&pk, v) == 0, "value_pack failed on a decoded tree");
}
