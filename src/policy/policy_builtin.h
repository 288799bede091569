/**
 * @file policy_builtin.h
 * The built-in defaults: the shipped policies/<name>.lua, embedded in the binary,
 * run in the agent's own process (policy_builtin.c). They decide every call
 * that no admin file decides: no --policies, a file or hook missing from the
 * admin's directory, or an admin's hook that failed.
 *
 * Each call returns like policy.h's: 0 decided, -EPERM refused with the text in
 * reason. When the built-in hook itself fails (a bug of the shipped files) the
 * failure is logged and the call is refused with a text that says so, so the
 * job ends as a crash and the agent keeps running.
 * Nothing outside src/policy includes this header.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "policy/policy.h"

struct policy_builtin;

/** Loads the embedded files (their examples run). NULL with err on failure. */
struct policy_builtin *policy_builtin_new(const struct policy_config *cfg, char *err,
                                          size_t errlen);
/** NULL is a no-op. */
void policy_builtin_free(struct policy_builtin *b);
/** How many calls failed (each is logged and refused). */
uint64_t policy_builtin_failures(const struct policy_builtin *b);
/** The file (and *line) of the hook the last call ran: borrowed, valid until the next call. */
const char *policy_builtin_last(const struct policy_builtin *b, int *line);

int policy_builtin_limits(struct policy_builtin *b, const struct policy_limits_req *req,
                          struct policy_limits *out, char *reason, size_t reasonlen);
int policy_builtin_student(struct policy_builtin *b, const struct policy_student_req *req,
                           struct policy_student_limits *out, char *reason, size_t reasonlen);
int policy_builtin_ports(struct policy_builtin *b, const struct policy_ports_req *req,
                         uint16_t *chosen, char *reason, size_t reasonlen);
/** Writes at most `max` entries (the first ones); none when the built-in hook fails. */
/** Never fails: every size 0 when the shipped file fails. */
void policy_builtin_pool(struct policy_builtin *b, const struct policy_pool_req *req,
                         int64_t *sizes);
void policy_builtin_runtimes(struct policy_builtin *b, const char *const *names, size_t nnames,
                             bool ssh, struct policy_runtime *out, size_t max, size_t *nout);
/** 0 with *out filled (release with policy_result_deinit), or -EPERM with a reason. */
int policy_builtin_results(struct policy_builtin *b, const struct value *raw,
                           const char *prev_state, struct policy_result *out, char *reason,
                           size_t reasonlen);
int policy_builtin_hardening(struct policy_builtin *b, const struct policy_hardening_req *req,
                             struct policy_hardening *out, char *reason, size_t reasonlen);
