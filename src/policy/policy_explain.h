/**
 * @file policy_explain.h
 * Decisions you can see: one line per hook call saying which file:line
 * answered, from which input, what the job got, and whether the shipped file
 * decided because the admin's was missing or failed. `proctor run --explain`
 * sends the lines to a callback (policy_explain_set, policy.h); otherwise
 * proctord logs them at debug level. Nothing is built when neither wants
 * them. The backend never sees them.
 * Nothing outside src/policy includes this header.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "core/value.h"
#include "policy/policy_internal.h"

/** At most this many bytes for the input or the output of one line. */
#define POLICY_EXPLAIN_VALUE_MAX 600

/** Who answered one call. */
struct policy_explain_who {
    const char *source; /* file that answered ("(built-in)/limits.lua" for a shipped one) */
    int line;           /* line of its hook (0: unknown) */
    bool fallback;      /* the shipped file answered for an admin's directory */
    const char *why;    /* when fallback: why the admin's file did not answer (may be "") */
};

/** True when someone wants the lines (a callback is set, or debug logging is on). */
bool policy_explaining(void);
/**
 * Writes v as compact JSON into buf (at most len bytes with the NUL; past
 * that, "..." ends it): strings longer than 80 bytes are cut, binary
 * strings are shown as "<N bytes>".
 */
void policy_explain_render(const struct value *v, char *buf, size_t len);
/**
 * One line for a call of `hook`: `in` (the input the hook got) and, when
 * ret is 0, `out` (what the job gets, after the agent's hard caps); when
 * ret is -EPERM, `reason`. All borrowed.
 */
void policy_explain_emit(enum policy_hook hook, const struct policy_explain_who *who,
                         const struct value *in, int ret, const struct value *out,
                         const char *reason);
