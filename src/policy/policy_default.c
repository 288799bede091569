/*
 * Built-in safe defaults and the checks C applies after every policy answer.
 * The defaults mirror policies/<name>.lua: a policy directory without a file, a
 * hook an admin deleted, or a policy that fails, gives these same decisions.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "policy/policy_internal.h"

/* Values of policies/limits.lua `defaults`. */
#define DEF_TIME_S 30
#define DEF_HARD_TIME_FACTOR 3
#define DEF_MEMORY_MIB 200
#define DEF_MIN_MEMORY_MIB 20
#define DEF_MIN_TIME_S 1
#define DEF_PORTS_TIME_S 1800

/* Values of policies/hardening.lua `defaults`. */
#define DEF_PIDS_LIMIT 1024
#define DEF_NOFILE 1024
#define DEF_MAX_OUTPUT_BYTES (INT64_C(128) * 1024 * 1024)
#define DEF_MAX_STUDENTS 8
#define DEF_MAX_STUDENTS_TOTAL 512

#define BAD "Feedback file is badly formatted: "

enum field_kind { FIELD_STRING, FIELD_FLOAT, FIELD_MAP, FIELD_DECODED };

static const struct {
    const char *name;
    enum field_kind kind;
} result_fields[] = {
    {"result", FIELD_STRING},  {"text", FIELD_STRING},     {"state", FIELD_STRING},
    {"grade", FIELD_FLOAT},    {"problems", FIELD_MAP},    {"tests", FIELD_MAP},
    {"custom", FIELD_MAP},     {"archive", FIELD_DECODED}, {"stdout", FIELD_DECODED},
    {"stderr", FIELD_DECODED},
};

static const char *describe(const struct value *v);
static const char *kind_name(enum field_kind kind);
static int64_t clamp64(int64_t v, int64_t lo, int64_t hi);
static int64_t inherit(int64_t asked, int64_t parent);
static bool envtype_taken(const struct policy_runtime *out, size_t n, const char *envtype);
static bool kind_ok(enum field_kind kind, const struct value *v);
static bool is_string(const struct value *v);
static int check_fields(const struct value *raw, char *reason, size_t reasonlen);
static int check_ids(const char *map_name, const struct value *map, char *reason, size_t reasonlen);
static void map_append(struct value *map, const struct value *key, const struct value *val);
static void set_string(struct value *dst, const struct value *src);
static int normalise_problems(const struct value *problems, const char *result, struct value *out,
                              char *reason, size_t reasonlen);
static void copy_map(struct value *dst, const struct value *src);
static char *dup_string(const struct value *v, const char *fallback);
static bool id_char(char c, bool star);

int64_t policy_max_memory_per_slot(const struct policy_config *cfg)
{
    int64_t slots = cfg->concurrency > 0 ? cfg->concurrency : 1;
    return cfg->host_memory_mib / slots;
}

int policy_default_limits(const struct policy_config *cfg, const struct policy_limits_req *req,
                          struct policy_limits *out, char *reason, size_t reasonlen)
{
    int64_t max_mem = policy_max_memory_per_slot(cfg);
    int64_t mem = req->has_memory ? req->memory_mib : DEF_MEMORY_MIB;
    if (mem < DEF_MIN_MEMORY_MIB) {
        mem = DEF_MIN_MEMORY_MIB;
    } else if (mem > max_mem) {
        util_err(reason, reasonlen, POLICY_TEXT_NO_MEMORY, (int)clamp64(max_mem, 0, INT32_MAX));
        return -EPERM;
    }
    int64_t time = req->has_time ? req->time_s : DEF_TIME_S;
    time = clamp64(time, DEF_MIN_TIME_S, POLICY_MAX_SECONDS);
    int64_t hard = req->has_hard_time ? req->hard_time_s : 0;
    // INGInious treats 0 like a missing hard_time (`x or 3 * time`).
    if (hard == 0)
        hard = clamp64(time, 0, POLICY_MAX_SECONDS / DEF_HARD_TIME_FACTOR) * DEF_HARD_TIME_FACTOR;
    hard = clamp64(hard, DEF_MIN_TIME_S, POLICY_MAX_SECONDS);
    if (req->needs_ports)
        time = hard = DEF_PORTS_TIME_S;
    out->time_s = time;
    out->hard_time_s = hard;
    out->memory_mib = mem;
    out->network = req->needs_ports || req->network_grading;
    return 0;
}

int policy_default_student(const struct policy_student_req *req, struct policy_student_limits *out)
{
    int64_t mem = inherit(req->memory_mib, req->parent_memory_mib);
    int64_t floor =
        req->parent_memory_mib < DEF_MIN_MEMORY_MIB ? req->parent_memory_mib : DEF_MIN_MEMORY_MIB;
    out->memory_mib = mem > floor ? mem : floor;
    out->time_s = inherit(req->time_s, req->parent_time_s);
    out->hard_time_s = inherit(req->hard_time_s, req->parent_hard_time_s);
    return 0;
}

int policy_default_ports(const struct policy_ports_req *req, uint16_t *chosen, char *reason,
                         size_t reasonlen)
{
    if (req->count > req->nfree || req->count > POLICY_MAX_PORTS) {
        util_err(reason, reasonlen, "%s", POLICY_TEXT_NO_PORTS);
        return -EPERM;
    }
    for (size_t i = 0; i < req->count; i++)
        chosen[i] = req->free[i];
    return 0;
}

struct runtime_rule {
    const char *match, *envtype;
    bool run_as_root, enables_gpu, shared_kernel;
};

static const struct runtime_rule runtime_rules[] = {
    {"runc", "docker", false, false, true},  {"crun", "docker", false, false, true},
    {"kata", "kata", true, false, false},    {"runsc", "gvisor", true, false, false},
    {"nvidia", "nvidia", false, true, true},
};

void policy_default_runtimes(const char *const *names, size_t nnames, bool ssh,
                             struct policy_runtime *out, size_t max, size_t *nout)
{
    size_t n = 0;
    for (size_t i = 0; i < nnames; i++) {
        for (size_t r = 0; r < ARRAY_SIZE(runtime_rules); r++) {
            const struct runtime_rule *rule = &runtime_rules[r];
            if (!names[i] || !strstr(names[i], rule->match))
                continue;
            for (int with_ssh = 0; with_ssh <= (ssh ? 1 : 0); with_ssh++) {
                char envtype[POLICY_NAME_MAX];
                snprintf(envtype, sizeof envtype, "%s%s", rule->envtype, with_ssh ? "-ssh" : "");
                if (n >= max || envtype_taken(out, n, envtype) ||
                    strlen(names[i]) >= POLICY_NAME_MAX)
                    continue;
                struct policy_runtime *e = &out[n++];
                util_strlcpy(e->runtime, names[i], sizeof e->runtime);
                util_strlcpy(e->envtype, envtype, sizeof e->envtype);
                e->run_as_root = rule->run_as_root;
                e->enables_gpu = rule->enables_gpu;
                e->shared_kernel = rule->shared_kernel;
            }
        }
    }
    *nout = n;
}

/* ---- results ----------------------------------------------------------- */

int policy_default_results(const struct value *raw, const char *prev_state,
                           struct policy_result *out, char *reason, size_t reasonlen)
{
    PROCTOR_UNUSED(prev_state); // results.lua: keep_state_when_absent = false (INGInious)
    int ret = 0;
    memset(out, 0, sizeof *out);
    if (!raw || raw->type != VALUE_MAP) {
        util_err(reason, reasonlen, BAD "the result must be a map, got %s",
                 raw ? describe(raw) : "null");
        return -EPERM;
    }
    const struct value *problems = value_map_get(raw, "problems");
    const struct value *res = value_map_get(raw, "result");
    const struct value *grade = value_map_get(raw, "grade");
    ret = check_fields(raw, reason, reasonlen);
    if (!ret)
        ret = check_ids("problems", problems, reason, reasonlen);
    if (!ret)
        ret = check_ids("tests", value_map_get(raw, "tests"), reason, reasonlen);
    if (!ret && grade && !isfinite(grade->u.f)) {
        util_err(reason, reasonlen, BAD "'grade' is not a finite number");
        ret = -EPERM;
    }
    if (ret)
        return ret;
    out->result = dup_string(res, "error");
    if (!policy_result_name_valid(out->result) || strlen(out->result) != (res ? res->u.s.len : 5)) {
        free(out->result);
        out->result = xstrdup("error");
    }
    out->text = dup_string(value_map_get(raw, "text"), "");
    out->state = dup_string(value_map_get(raw, "state"), "");
    if (grade)
        out->grade = policy_round2(grade->u.f);
    else
        out->grade = !strcmp(out->result, "success") ? 100.0 : 0.0;
    copy_map(&out->tests, value_map_get(raw, "tests"));
    copy_map(&out->custom, value_map_get(raw, "custom"));
    ret = normalise_problems(problems, out->result, &out->problems, reason, reasonlen);
    if (ret)
        policy_result_deinit(out);
    return ret;
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

/* ---- hardening --------------------------------------------------------- */

static const char *const drop_always[] = {"NET_RAW", "MKNOD", "SETPCAP", "SETFCAP"};
// sshd needs these, and only containers with a network can run it.
static const char *const drop_offline[] = {"SYS_CHROOT", "NET_BIND_SERVICE", "AUDIT_WRITE"};

void policy_default_hardening(const struct policy_hardening_req *req, struct policy_hardening *out)
{
    memset(out, 0, sizeof *out);
    out->pids_limit = DEF_PIDS_LIMIT;
    out->no_new_privileges = true;
    for (size_t i = 0; i < ARRAY_SIZE(drop_always); i++)
        util_strlcpy(out->cap_drop[out->ncap_drop++], drop_always[i], sizeof out->cap_drop[0]);
    for (size_t i = 0; !req->network && i < ARRAY_SIZE(drop_offline); i++)
        util_strlcpy(out->cap_drop[out->ncap_drop++], drop_offline[i], sizeof out->cap_drop[0]);
    out->nofile_soft = out->nofile_hard = DEF_NOFILE;
    out->max_output_bytes = out->max_frame_bytes = DEF_MAX_OUTPUT_BYTES;
    policy_default_student_caps(req, out);
}

void policy_default_student_caps(const struct policy_hardening_req *req,
                                 struct policy_hardening *out)
{
    out->max_students = req->student ? 0 : DEF_MAX_STUDENTS;
    out->max_students_total = req->student ? 0 : DEF_MAX_STUDENTS_TOTAL;
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

static int64_t clamp64(int64_t v, int64_t lo, int64_t hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

static int64_t inherit(int64_t asked, int64_t parent)
{
    if (asked <= 0)
        return parent;
    return asked < parent ? asked : parent;
}

static bool envtype_taken(const struct policy_runtime *out, size_t n, const char *envtype)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(out[i].envtype, envtype))
            return true;
    return false;
}

static bool kind_ok(enum field_kind kind, const struct value *v)
{
    switch (kind) {
    case FIELD_STRING:
        return v->type == VALUE_STR || v->type == VALUE_BIN;
    case FIELD_FLOAT:
        return v->type == VALUE_FLOAT;
    case FIELD_MAP:
        return v->type == VALUE_MAP;
    case FIELD_DECODED:
        return v->type == VALUE_BOOL && v->u.b;
    }
    return false;
}

static bool is_string(const struct value *v)
{
    return v->type == VALUE_STR || v->type == VALUE_BIN;
}

static int check_fields(const struct value *raw, char *reason, size_t reasonlen)
{
    for (size_t i = 0; i < raw->u.m.len; i++) {
        const struct value *key = &raw->u.m.items[i].key;
        const struct value *val = &raw->u.m.items[i].val;
        size_t f = ARRAY_SIZE(result_fields);
        if (is_string(key))
            for (f = 0; f < ARRAY_SIZE(result_fields); f++)
                if (strlen(result_fields[f].name) == key->u.s.len &&
                    !memcmp(result_fields[f].name, key->u.s.ptr, key->u.s.len))
                    break;
        if (f == ARRAY_SIZE(result_fields)) {
            if (is_string(key))
                util_err(reason, reasonlen, BAD "unknown key \"%.64s\"", key->u.s.ptr);
            else
                util_err(reason, reasonlen, BAD "unknown key of type %s", describe(key));
            return -EPERM;
        }
        if (!kind_ok(result_fields[f].kind, val)) {
            util_err(reason, reasonlen, BAD "'%s' must be a %s, got %s", result_fields[f].name,
                     kind_name(result_fields[f].kind), describe(val));
            return -EPERM;
        }
    }
    return 0;
}

static int check_ids(const char *map_name, const struct value *map, char *reason, size_t reasonlen)
{
    if (!map)
        return 0;
    bool tests = !strcmp(map_name, "tests");
    for (size_t i = 0; i < map->u.m.len; i++) {
        const struct value *key = &map->u.m.items[i].key;
        if (!is_string(key)) {
            util_err(reason, reasonlen, BAD "%s: key of type %s is not a string", map_name,
                     describe(key));
            return -EPERM;
        }
        if (!policy_id_valid(key->u.s.ptr, key->u.s.len, tests)) {
            util_err(reason, reasonlen, BAD "%s: invalid id \"%.64s\"", map_name, key->u.s.ptr);
            return -EPERM;
        }
        if (map->u.m.items[i].val.type == VALUE_MAP) {
            util_err(reason, reasonlen, BAD "%s.%s must not be a map", map_name, key->u.s.ptr);
            return -EPERM;
        }
    }
    return 0;
}

static void map_append(struct value *map, const struct value *key, const struct value *val)
{
    if (map->u.m.len == map->u.m.cap) {
        map->u.m.cap = map->u.m.cap ? map->u.m.cap * 2 : 8;
        map->u.m.items = xrealloc(map->u.m.items, map->u.m.cap * sizeof *map->u.m.items);
    }
    struct value_pair *p = &map->u.m.items[map->u.m.len++];
    value_copy(&p->key, key);
    value_copy(&p->val, val);
}

static void set_string(struct value *dst, const struct value *src)
{
    value_set_strn(dst, src->u.s.ptr, src->u.s.len);
}

static int normalise_problems(const struct value *problems, const char *result, struct value *out,
                              char *reason, size_t reasonlen)
{
    value_set_map(out);
    for (size_t i = 0; problems && i < problems->u.m.len; i++) {
        const struct value *key = &problems->u.m.items[i].key;
        const struct value *val = &problems->u.m.items[i].val;
        struct value pair;
        value_set_array(&pair);
        if (is_string(val)) {
            value_set_str(value_array_push(&pair), result);
            set_string(value_array_push(&pair), val);
        } else if (val->type == VALUE_ARRAY && val->u.a.len == 2 && is_string(&val->u.a.items[0]) &&
                   is_string(&val->u.a.items[1])) {
            set_string(value_array_push(&pair), &val->u.a.items[0]);
            set_string(value_array_push(&pair), &val->u.a.items[1]);
        } else {
            value_deinit(&pair);
            util_err(reason, reasonlen, BAD "problems.%s must be a string or [result, text]",
                     key->u.s.ptr);
            return -EPERM;
        }
        struct value k;
        set_string(&k, key);
        map_append(out, &k, &pair);
        value_deinit(&k);
        value_deinit(&pair);
    }
    return 0;
}

static void copy_map(struct value *dst, const struct value *src)
{
    if (src)
        value_copy(dst, src);
    else
        value_set_map(dst);
}

static char *dup_string(const struct value *v, const char *fallback)
{
    return v ? xstrndup(v->u.s.ptr, v->u.s.len) : xstrdup(fallback);
}

static bool id_char(char c, bool star)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == '-' || (star && c == '*');
}

// The names results.lua's describe() gives, so both paths word reasons alike.
static const char *describe(const struct value *v)
{
    switch (v->type) {
    case VALUE_NIL:
        return "null";
    case VALUE_BOOL:
        return "boolean";
    case VALUE_INT:
    case VALUE_UINT:
        return "integer";
    case VALUE_FLOAT:
        return "float";
    case VALUE_STR:
    case VALUE_BIN:
        return "string";
    case VALUE_ARRAY:
        return "array";
    case VALUE_MAP:
        return "map";
    }
    return "value";
}

static const char *kind_name(enum field_kind kind)
{
    static const char *const names[] = {"string", "float", "map", "string"};
    return names[kind];
}
