/**
 * @file policy_fields.h
 * Named fields: what the agent, its policy worker and the Lua side exchange,
 * described once per C struct of policy.h (name, kind, range, where in the
 * struct), so that every exchange is a map keyed by field name, never bytes
 * read in an agreed order.
 *
 * The same descriptions serve the two conversions:
 *   - C struct <-> value MAP (this file, no Lua): the messages between the
 *     agent and its policy worker (policy_api.c, policy_serve.c);
 *   - C struct <-> Lua table (policy_conv.c): the hooks' input tables and the
 *     checks of their answers (policy_calls.c).
 * Reading is checked: an unknown key, a missing field, a value of the wrong
 * type or out of range is an error that names the field.
 * Nothing outside src/policy includes this header.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/value.h"
#include "policy/policy.h"

enum policy_field_kind {
    POLICY_FIELD_INT,   /* int64_t, in [min, max] */
    POLICY_FIELD_BOOL,  /* bool */
    POLICY_FIELD_STR,   /* const char *, borrowed from what was read (NULL when absent) */
    POLICY_FIELD_NUM,   /* double (an integer is taken too) */
    POLICY_FIELD_NAME,  /* char[size], NUL-terminated, shorter than size */
    POLICY_FIELD_TABLE, /* no storage: a list or map the hook reads itself */
};

struct policy_field {
    const char *name;
    enum policy_field_kind kind;
    int64_t min, max; /* POLICY_FIELD_INT only */
    bool optional;    /* may be absent */
    size_t off;       /* of the member in its struct (not TABLE) */
    size_t size;      /* POLICY_FIELD_NAME: the array's size */
    size_t has_off;   /* 0, or 1 + the offset of the bool that says the field is present */
};

/** One struct's fields; `what` names it in errors ("limits answer"). */
struct policy_fieldset {
    const char *what;
    const struct policy_field *f;
    size_t n;
};

// clang-format off
#define POLICY_F_INT(type, m, lo, hi) {#m, POLICY_FIELD_INT, lo, hi, false, offsetof(type, m), 0, 0}
#define POLICY_F_OPT_INT(type, m, lo, hi) {#m, POLICY_FIELD_INT, lo, hi, true, offsetof(type, m), 0, 0}
#define POLICY_F_HAS_INT(type, m, has, lo, hi)                                                     \
    {#m, POLICY_FIELD_INT, lo, hi, true, offsetof(type, m), 0, offsetof(type, has) + 1}
#define POLICY_F_BOOL(type, m) {#m, POLICY_FIELD_BOOL, 0, 0, false, offsetof(type, m), 0, 0}
#define POLICY_F_STR(type, m, opt) {#m, POLICY_FIELD_STR, 0, 0, opt, offsetof(type, m), 0, 0}
#define POLICY_F_NUM(type, m) {#m, POLICY_FIELD_NUM, 0, 0, false, offsetof(type, m), 0, 0}
#define POLICY_F_NAME(type, m)                                                                     \
    {#m, POLICY_FIELD_NAME, 0, 0, false, offsetof(type, m), sizeof(((type *)0)->m), 0}
#define POLICY_F_TABLE(name, opt) {name, POLICY_FIELD_TABLE, 0, 0, opt, 0, 0, 0}
// clang-format on

/* ---- the structs of policy.h, and the views the hooks read into -------------- */

extern const struct policy_fieldset policy_fields_config;        /* struct policy_config */
extern const struct policy_fieldset policy_fields_limits_req;    /* struct policy_limits_req */
extern const struct policy_fieldset policy_fields_limits;        /* struct policy_limits */
extern const struct policy_fieldset policy_fields_student_req;   /* struct policy_student_req */
extern const struct policy_fieldset policy_fields_student;       /* struct policy_student_limits */
extern const struct policy_fieldset policy_fields_hardening_req; /* struct policy_hardening_req */
/** struct policy_hardening without cap_drop (TABLE: a list of names). */
extern const struct policy_fieldset policy_fields_hardening;
/** struct policy_runtime (one entry of map_runtimes' list). */
extern const struct policy_fieldset policy_fields_runtime;
/** struct policy_pool_env (one entry of size_pool's environments). */
extern const struct policy_fieldset policy_fields_pool_env;

/** The scalar part of a result answer (problems, tests and custom are TABLE fields). */
struct policy_result_view {
    const char *result, *text, *state; /* borrowed */
    double grade;
};
extern const struct policy_fieldset policy_fields_result;

/* ---- C struct <-> value MAP ------------------------------------------------ */

/**
 * Adds the fields of s (borrowed) to map (a MAP): absent optional fields
 * (a NULL string, a presence flag that is false) are left out, and so are
 * TABLE fields (the caller adds them). xmalloc-style.
 */
void policy_fields_put(struct value *map, const struct policy_fieldset *set, const void *s);
/**
 * Reads map into s: every key must be a field of set, each of its kind and
 * range, every non-optional field present. Strings are borrowed from map.
 * Fields that are absent keep what s held (presence flags are set to false).
 * 0, or -EINVAL with an error naming the field in err.
 */
int policy_fields_get(const struct value *map, const struct policy_fieldset *set, void *s,
                      char *err, size_t errlen);

/** The value of a bool, int or string key of map, with a default when absent or mistyped. */
bool policy_fields_bool(const struct value *map, const char *key, bool dflt);
int64_t policy_fields_int(const struct value *map, const char *key, int64_t dflt);
/** Borrowed; NULL when absent or not a string. */
const char *policy_fields_str(const struct value *map, const char *key);
