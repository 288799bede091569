/*
 * The checks and hard caps C applies after every policy answer, whoever gave
 * it (an admin's file in the policy worker, or the shipped files built in:
 * policy_builtin.c), and the small C facts both share.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "policy/policy_internal.h"

/* What a grading container's hardening answer that leaves them out gets
 * (policies/hardening.lua's max_students and max_students_total). */
#define MISSING_MAX_STUDENTS 8
#define MISSING_MAX_STUDENTS_TOTAL 512

static bool id_char(char c, bool star);

int64_t policy_max_memory_per_slot(const struct policy_config *cfg)
{
    int64_t slots = cfg->concurrency > 0 ? cfg->concurrency : 1;
    return cfg->host_memory_mib / slots;
}

void policy_result_deinit(struct policy_result *r)
{
    if (!r)
        return;
    free(r->result);
    free(r->text);
    free(r->state);
    value_deinit(&r->problems);
    value_deinit(&r->tests);
    value_deinit(&r->custom);
    memset(r, 0, sizeof *r);
}

void policy_missing_student_caps(const struct policy_hardening_req *req,
                                 struct policy_hardening *out)
{
    out->max_students = req->student ? 0 : MISSING_MAX_STUDENTS;
    out->max_students_total = req->student ? 0 : MISSING_MAX_STUDENTS_TOTAL;
}

/* ---- checks and caps --------------------------------------------------- */

void policy_cap_limits(const struct policy_config *cfg, struct policy_limits *out)
{
    if (cfg->max_time_s > 0 && out->time_s > cfg->max_time_s)
        out->time_s = cfg->max_time_s;
    if (cfg->max_hard_time_s > 0 && out->hard_time_s > cfg->max_hard_time_s)
        out->hard_time_s = cfg->max_hard_time_s;
    int64_t max_mem = policy_max_memory_per_slot(cfg);
    // The per-slot ceiling wins over a policy, but never below Docker's floor.
    if (out->memory_mib > max_mem)
        out->memory_mib = max_mem > POLICY_MIN_MEMORY_MIB ? max_mem : POLICY_MIN_MEMORY_MIB;
}

void policy_cap_student(const struct policy_student_req *req, struct policy_student_limits *out)
{
    if (req->parent_time_s > 0 && out->time_s > req->parent_time_s)
        out->time_s = req->parent_time_s;
    if (req->parent_hard_time_s > 0 && out->hard_time_s > req->parent_hard_time_s)
        out->hard_time_s = req->parent_hard_time_s;
    if (req->parent_memory_mib > 0 && out->memory_mib > req->parent_memory_mib)
        out->memory_mib = req->parent_memory_mib;
}

void policy_cap_hardening(const struct policy_config *cfg, const struct policy_hardening_req *req,
                          struct policy_hardening *out)
{
    if (cfg->max_output_bytes > 0 && out->max_output_bytes > cfg->max_output_bytes)
        out->max_output_bytes = cfg->max_output_bytes;
    if (cfg->max_result_bytes > 0 && out->max_frame_bytes > cfg->max_result_bytes)
        out->max_frame_bytes = cfg->max_result_bytes;
    // Only a grading container starts student containers; the counts of a student
    // container would mean nothing, so nobody can read a stray value there.
    if (req->student) {
        out->max_students = out->max_students_total = 0;
        return;
    }
    if (out->max_students > POLICY_MAX_STUDENTS)
        out->max_students = POLICY_MAX_STUDENTS;
    if (out->max_students_total > POLICY_MAX_STUDENTS_TOTAL)
        out->max_students_total = POLICY_MAX_STUDENTS_TOTAL;
}

bool policy_ports_valid(const struct policy_ports_req *req, const uint16_t *chosen, char *err,
                        size_t errlen)
{
    for (size_t i = 0; i < req->count; i++) {
        bool is_free = false;
        for (size_t j = 0; j < req->nfree && !is_free; j++)
            is_free = req->free[j] == chosen[i];
        if (!is_free) {
            util_err(err, errlen, "port %u is not in the free pool", chosen[i]);
            return false;
        }
        for (size_t j = 0; j < i; j++) {
            if (chosen[j] == chosen[i]) {
                util_err(err, errlen, "port %u is chosen twice", chosen[i]);
                return false;
            }
        }
    }
    return true;
}

// Linux capabilities as of 6.x; Docker also accepts them with a CAP_ prefix.
static const char *const capability_names[] = {
    "ALL",
    "AUDIT_CONTROL",
    "AUDIT_READ",
    "AUDIT_WRITE",
    "BLOCK_SUSPEND",
    "BPF",
    "CHECKPOINT_RESTORE",
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "IPC_LOCK",
    "IPC_OWNER",
    "KILL",
    "LEASE",
    "LINUX_IMMUTABLE",
    "MAC_ADMIN",
    "MAC_OVERRIDE",
    "MKNOD",
    "NET_ADMIN",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_RAW",
    "PERFMON",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYSLOG",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_CHROOT",
    "SYS_MODULE",
    "SYS_NICE",
    "SYS_PACCT",
    "SYS_PTRACE",
    "SYS_RAWIO",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "WAKE_ALARM",
};

bool policy_cap_name_valid(const char *name)
{
    if (!strncmp(name, "CAP_", 4) && strcmp(name, "CAP_ALL") != 0)
        name += 4;
    for (size_t i = 0; i < ARRAY_SIZE(capability_names); i++)
        if (!strcmp(name, capability_names[i]))
            return true;
    return false;
}

bool policy_result_name_valid(const char *name)
{
    static const char *const names[] = {"success", "failed",   "error", "crash",
                                        "timeout", "overflow", "killed"};
    for (size_t i = 0; i < ARRAY_SIZE(names); i++)
        if (!strcmp(name, names[i]))
            return true;
    return false;
}

bool policy_id_valid(const char *s, size_t len, bool tests)
{
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!id_char(s[i], tests))
            return false;
    return true;
}

bool policy_envtype_valid(const char *name)
{
    size_t len = strlen(name);
    return len < POLICY_NAME_MAX && policy_id_valid(name, len, false);
}

double policy_round2(double x)
{
    if (!isfinite(x))
        return x;
    // printf rounds the exact binary value, ties to even: Python's round(x, 2).
    char buf[512];
    snprintf(buf, sizeof buf, "%.2f", x);
    return strtod(buf, NULL);
}

/* ---- helpers ------------------------------------------------------------ */

static bool id_char(char c, bool star)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == '-' || (star && c == '*');
}
