// Helpers of the container runtime's harnesses (src/runtime links nothing
// from src/core, so these stand on rt_value.h alone).
#pragma once

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"

#include "rt_common.h"
#include "rt_value.h"

// Deep equality; unlike rt_value_equal, floats compare by their bits so that
// a NaN equals itself and -0.0 differs from 0.0.
static inline bool rt_fuzz_equal(const struct rt_value *a, const struct rt_value *b)
{
    if (a->type != b->type)
        return false;
    switch (a->type) {
    case RT_NIL:
        return true;
    case RT_BOOL:
        return a->u.b == b->u.b;
    case RT_INT:
        return a->u.i == b->u.i;
    case RT_FLOAT:
        return memcmp(&a->u.f, &b->u.f, sizeof(double)) == 0;
    case RT_STR:
    case RT_BIN:
        return a->u.str.n == b->u.str.n &&
               (a->u.str.n == 0 || memcmp(a->u.str.p, b->u.str.p, a->u.str.n) == 0);
    case RT_ARRAY:
        if (a->u.arr.n != b->u.arr.n)
            return false;
        for (size_t i = 0; i < a->u.arr.n; i++)
            if (!rt_fuzz_equal(a->u.arr.items[i], b->u.arr.items[i]))
                return false;
        return true;
    case RT_MAP:
        if (a->u.map.n != b->u.map.n)
            return false;
        for (size_t i = 0; i < a->u.map.n; i++)
            if (strcmp(a->u.map.kv[i].key, b->u.map.kv[i].key) ||
                !rt_fuzz_equal(a->u.map.kv[i].val, b->u.map.kv[i].val))
                return false;
        return true;
    }
    return false;
}
