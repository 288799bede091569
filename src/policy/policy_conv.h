/**
 * @file policy_conv.h
 * Values between C and Lua, in the policy worker and the built-in state: the
 * one place where C values become Lua tables and back. The agent's value trees
 * pushed as Lua tables (the forms of lua/agent/schema.lua), C structs pushed
 * and read by their named fields (policy_fields.h: the same descriptions as
 * the messages to and from the worker), and policy answers converted back to
 * C under caps.
 *
 * An answer converted to C is counted: a table shared by several places of an
 * answer (`t = {t, t}` k times is 2^k nodes) or a string repeated many times
 * costs Lua nothing but C a copy each, so every value and byte is counted
 * (POLICY_CONV_MAX_VALUES, POLICY_CONV_MAX_BYTES) and a table met twice is
 * refused. Call policy_conv_reset() before and after each answer.
 *
 * Nothing outside src/policy includes this header (it includes lua.h).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <lua.h>

#include "core/value.h"
#include "policy/policy_fields.h"
#include "policy/policy_internal.h"

/** Values (keys included) one answer may hold. */
#define POLICY_CONV_MAX_VALUES ((size_t)1 << 18)
/** String bytes + sizeof(struct value) per value of one answer. */
#define POLICY_CONV_MAX_BYTES POLICY_STATE_MEMORY_CAP

/** The conversion state of one Lua state (embedded in it). */
struct policy_conv {
    int null_ref, empty_array_ref; /* registry: schema.null, schema.empty_array */
    /* the answer being converted to C (reset before each) */
    size_t values, bytes;
    const void **seen; /* open addressing set of the answer's tables */
    size_t seen_cap, seen_len;
};

/** Forgets the answer being converted (frees the set of its tables). */
void policy_conv_reset(struct policy_conv *cv);

/* ---- C -> Lua (may raise: call protected) ---------------------------------- */

/** Pushes the Lua form of v (borrowed; strings are copied into Lua). */
void policy_conv_push_value(lua_State *L, struct policy_conv *cv, const struct value *v, int depth);
/** Sets tbl[key] = v on the table at the top of the stack. */
void policy_conv_set_int(lua_State *L, const char *key, int64_t v);
void policy_conv_set_bool(lua_State *L, const char *key, bool v);
/** Does nothing when v is NULL. */
void policy_conv_set_str(lua_State *L, const char *key, const char *v);

/* ---- Lua -> C (never raise) -------------------------------------------------- */

/** True when the value at idx is the registry's `ref`. */
bool policy_conv_is_ref(lua_State *L, int idx, int ref);
/** Number n when the table at t is a sequence 1..n (n may be 0); -1 otherwise. */
lua_Integer policy_conv_seq_len(lua_State *L, struct policy_conv *cv, int t);
/** Counts `values` values and `bytes` string bytes against the caps: 0 or -EINVAL with err. */
int policy_conv_count(struct policy_conv *cv, size_t values, size_t bytes, char *err,
                      size_t errlen);
/**
 * Records the table at idx as part of the answer; a table met twice is an
 * error of the answer (a shared subtree would be copied once per reference).
 */
int policy_conv_table(lua_State *L, struct policy_conv *cv, int idx, char *err, size_t errlen);
/** Appends a nil/nil pair to a MAP value (xmalloc-style). */
struct value_pair *policy_conv_map_append(struct value *map);
/**
 * Converts the Lua value at idx into out, counted. out is valid (and owns
 * what was converted, caller releases with value_deinit) even on failure.
 * 0, or -EINVAL with err.
 */
int policy_conv_to_value(lua_State *L, struct policy_conv *cv, int idx, struct value *out,
                         int depth, char *err, size_t errlen);
/** The table at t as a MAP (keys converted too), as policy_conv_to_value. */
int policy_conv_to_map(lua_State *L, struct policy_conv *cv, int t, struct value *out, int depth,
                       char *err, size_t errlen);
/** "integer" or "float" for numbers, else the Lua type name (static text). */
const char *policy_conv_kind(lua_State *L, int idx);

/* ---- named fields (policy_fields.h) <-> Lua tables -------------------------------- */

/**
 * Pushes a new table holding the fields of s (borrowed), as policy_fields_put
 * does for a value map (may raise: call protected).
 */
void policy_conv_push_fields(lua_State *L, const struct policy_fieldset *set, const void *s);
/**
 * Checks the answer table at t against set: string keys naming its fields
 * only, each of its kind and range, all the non-optional ones present; writes
 * them into s (strings borrowed from the answer table, which stays on the
 * stack). Absent optional fields keep what s held. 0, or -EINVAL with err.
 */
int policy_conv_read_fields(lua_State *L, struct policy_conv *cv, int t,
                            const struct policy_fieldset *set, void *s, char *err, size_t errlen);
/** Pushes field `name` of the table at t (a key read_fields already checked); its type. */
int policy_conv_push_field(lua_State *L, int t, const char *name);
/** Pushes a list of integers, or of strings (NULL entries as ""). */
void policy_conv_push_ints(lua_State *L, const uint16_t *v, size_t n);
void policy_conv_push_strs(lua_State *L, const char *const *v, size_t n);
