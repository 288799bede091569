/*
 * Named fields of the structs of policy.h (see policy_fields.h), and their
 * conversion to and from value maps.
 */
#include "policy/policy_fields.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "core/util.h"
#include "policy/policy_internal.h"

#define SET(what, arr)                                                                             \
    {                                                                                              \
        what, arr, ARRAY_SIZE(arr)                                                                 \
    }

static const struct policy_field config_f[] = {
    POLICY_F_INT(struct policy_config, concurrency, INT64_MIN, INT64_MAX),
    POLICY_F_INT(struct policy_config, host_memory_mib, INT64_MIN, INT64_MAX),
    POLICY_F_INT(struct policy_config, max_time_s, INT64_MIN, INT64_MAX),
    POLICY_F_INT(struct policy_config, max_hard_time_s, INT64_MIN, INT64_MAX),
    POLICY_F_INT(struct policy_config, max_result_bytes, INT64_MIN, INT64_MAX),
    POLICY_F_INT(struct policy_config, max_output_bytes, INT64_MIN, INT64_MAX),
};
const struct policy_fieldset policy_fields_config = SET("config", config_f);

static const struct policy_field limits_req_f[] = {
    POLICY_F_HAS_INT(struct policy_limits_req, time_s, has_time, INT64_MIN, INT64_MAX),
    POLICY_F_HAS_INT(struct policy_limits_req, hard_time_s, has_hard_time, INT64_MIN, INT64_MAX),
    POLICY_F_HAS_INT(struct policy_limits_req, memory_mib, has_memory, INT64_MIN, INT64_MAX),
    POLICY_F_BOOL(struct policy_limits_req, network_grading),
    POLICY_F_BOOL(struct policy_limits_req, needs_ports),
    POLICY_F_STR(struct policy_limits_req, environment_type, true),
    POLICY_F_STR(struct policy_limits_req, environment, true),
};
const struct policy_fieldset policy_fields_limits_req = SET("limits request", limits_req_f);

static const struct policy_field limits_f[] = {
    POLICY_F_INT(struct policy_limits, time_s, 1, POLICY_MAX_SECONDS),
    POLICY_F_INT(struct policy_limits, hard_time_s, 1, POLICY_MAX_SECONDS),
    POLICY_F_INT(struct policy_limits, memory_mib, POLICY_MIN_MEMORY_MIB, INT64_MAX),
    POLICY_F_BOOL(struct policy_limits, network),
};
const struct policy_fieldset policy_fields_limits = SET("limits answer", limits_f);

static const struct policy_field student_req_f[] = {
    POLICY_F_INT(struct policy_student_req, parent_time_s, INT64_MIN, INT64_MAX),
    POLICY_F_INT(struct policy_student_req, parent_hard_time_s, INT64_MIN, INT64_MAX),
    POLICY_F_INT(struct policy_student_req, parent_memory_mib, INT64_MIN, INT64_MAX),
    POLICY_F_INT(struct policy_student_req, time_s, INT64_MIN, INT64_MAX),
    POLICY_F_INT(struct policy_student_req, hard_time_s, INT64_MIN, INT64_MAX),
    POLICY_F_INT(struct policy_student_req, memory_mib, INT64_MIN, INT64_MAX),
    POLICY_F_STR(struct policy_student_req, environment, true),
};
const struct policy_fieldset policy_fields_student_req = SET("student request", student_req_f);

static const struct policy_field student_f[] = {
    POLICY_F_INT(struct policy_student_limits, time_s, 1, POLICY_MAX_SECONDS),
    POLICY_F_INT(struct policy_student_limits, hard_time_s, 1, POLICY_MAX_SECONDS),
    POLICY_F_INT(struct policy_student_limits, memory_mib, POLICY_MIN_MEMORY_MIB, INT64_MAX),
};
const struct policy_fieldset policy_fields_student = SET("student limits answer", student_f);

static const struct policy_field hardening_req_f[] = {
    POLICY_F_STR(struct policy_hardening_req, environment, true),
    POLICY_F_BOOL(struct policy_hardening_req, student),
    POLICY_F_INT(struct policy_hardening_req, memory_mib, INT64_MIN, INT64_MAX),
    POLICY_F_BOOL(struct policy_hardening_req, network),
};
const struct policy_fieldset policy_fields_hardening_req =
    SET("hardening request", hardening_req_f);

static const struct policy_field hardening_f[] = {
    POLICY_F_INT(struct policy_hardening, pids_limit, 0, POLICY_MAX_PIDS),
    POLICY_F_BOOL(struct policy_hardening, no_new_privileges),
    POLICY_F_TABLE("cap_drop", false),
    POLICY_F_INT(struct policy_hardening, nofile_soft, 0, POLICY_MAX_NOFILE),
    POLICY_F_INT(struct policy_hardening, nofile_hard, 0, POLICY_MAX_NOFILE),
    POLICY_F_INT(struct policy_hardening, max_output_bytes, 1, INT64_MAX),
    POLICY_F_INT(struct policy_hardening, max_frame_bytes, 1, INT64_MAX),
    // Optional, so that hardening files written before they existed keep deciding
    // (0 is what a student container gets; a policy answering 0 is refused by the hook).
    POLICY_F_OPT_INT(struct policy_hardening, max_students, 0, INT64_MAX),
    POLICY_F_OPT_INT(struct policy_hardening, max_students_total, 0, INT64_MAX),
};
const struct policy_fieldset policy_fields_hardening = SET("hardening answer", hardening_f);

static const struct policy_field runtime_f[] = {
    POLICY_F_NAME(struct policy_runtime, runtime),
    POLICY_F_NAME(struct policy_runtime, envtype),
    POLICY_F_BOOL(struct policy_runtime, run_as_root),
    POLICY_F_BOOL(struct policy_runtime, enables_gpu),
    POLICY_F_BOOL(struct policy_runtime, shared_kernel),
};
const struct policy_fieldset policy_fields_runtime = SET("runtime entry", runtime_f);

static const struct policy_field pool_env_f[] = {
    POLICY_F_STR(struct policy_pool_env, envtype, false),
    POLICY_F_STR(struct policy_pool_env, name, false),
    POLICY_F_INT(struct policy_pool_env, waiting, 0, INT64_MAX),
    POLICY_F_INT(struct policy_pool_env, arrivals_1m, 0, INT64_MAX),
    POLICY_F_INT(struct policy_pool_env, arrivals_10m, 0, INT64_MAX),
    POLICY_F_INT(struct policy_pool_env, idle_s, 0, INT64_MAX),
    POLICY_F_INT(struct policy_pool_env, memory_mib, 0, INT64_MAX),
    POLICY_F_BOOL(struct policy_pool_env, available),
};
const struct policy_fieldset policy_fields_pool_env = SET("pool environment", pool_env_f);

static const struct policy_field result_f[] = {
    POLICY_F_STR(struct policy_result_view, result, false),
    POLICY_F_STR(struct policy_result_view, text, false),
    POLICY_F_NUM(struct policy_result_view, grade),
    POLICY_F_TABLE("problems", false),
    POLICY_F_TABLE("tests", false),
    POLICY_F_TABLE("custom", false),
    POLICY_F_STR(struct policy_result_view, state, false),
};
const struct policy_fieldset policy_fields_result = SET("result answer", result_f);

/* ---- C struct <-> value MAP ------------------------------------------------ */

void policy_fields_put(struct value *map, const struct policy_fieldset *set, const void *s)
{
    const char *base = s;
    for (size_t i = 0; i < set->n; i++) {
        const struct policy_field *f = &set->f[i];
        if (f->has_off && !*(const bool *)(base + f->has_off - 1))
            continue;
        switch (f->kind) {
        case POLICY_FIELD_INT:
            value_set_int(value_map_put(map, f->name), *(const int64_t *)(base + f->off));
            break;
        case POLICY_FIELD_BOOL:
            value_set_bool(value_map_put(map, f->name), *(const bool *)(base + f->off));
            break;
        case POLICY_FIELD_STR: {
            const char *str = *(const char *const *)(base + f->off);
            if (str)
                value_set_str(value_map_put(map, f->name), str);
            break;
        }
        case POLICY_FIELD_NUM:
            value_set_float(value_map_put(map, f->name), *(const double *)(base + f->off));
            break;
        case POLICY_FIELD_NAME:
            value_set_strn(value_map_put(map, f->name), base + f->off,
                           strnlen(base + f->off, f->size));
            break;
        case POLICY_FIELD_TABLE:
            break;
        }
    }
}

// One field of map into s: 0, or -EINVAL naming it.
static int get_field(const struct value *v, const struct policy_fieldset *set,
                     const struct policy_field *f, char *base, char *err, size_t errlen)
{
    static const char *const want[] = {"an integer", "a boolean", "a string",
                                       "a number",   "a string",  "a list or map"};
    bool ok = false;
    switch (f->kind) {
    case POLICY_FIELD_INT:
        ok = v->type == VALUE_INT;
        if (ok && (v->u.i < f->min || v->u.i > f->max)) {
            util_err(err, errlen,
                     "%s: field '%s' = %" PRId64 " is out of range [%" PRId64 ", %" PRId64 "]",
                     set->what, f->name, v->u.i, f->min, f->max);
            return -EINVAL;
        }
        if (ok)
            *(int64_t *)(base + f->off) = v->u.i;
        break;
    case POLICY_FIELD_BOOL:
        ok = v->type == VALUE_BOOL;
        if (ok)
            *(bool *)(base + f->off) = v->u.b;
        break;
    case POLICY_FIELD_STR:
        ok = v->type == VALUE_STR || v->type == VALUE_BIN;
        if (ok)
            *(const char **)(base + f->off) = v->u.s.ptr;
        break;
    case POLICY_FIELD_NUM:
        ok = v->type == VALUE_FLOAT || v->type == VALUE_INT;
        if (ok)
            *(double *)(base + f->off) = v->type == VALUE_FLOAT ? v->u.f : (double)v->u.i;
        break;
    case POLICY_FIELD_NAME:
        ok = v->type == VALUE_STR;
        if (ok && (v->u.s.len >= f->size || memchr(v->u.s.ptr, 0, v->u.s.len))) {
            util_err(err, errlen, "%s: field '%s' is longer than %zu bytes", set->what, f->name,
                     f->size - 1);
            return -EINVAL;
        }
        if (ok)
            memcpy(base + f->off, v->u.s.ptr, v->u.s.len + 1);
        break;
    case POLICY_FIELD_TABLE:
        ok = v->type == VALUE_ARRAY || v->type == VALUE_MAP;
        break;
    }
    if (!ok) {
        util_err(err, errlen, "%s: field '%s' must be %s, got %s", set->what, f->name,
                 want[f->kind], value_type_name(v->type));
        return -EINVAL;
    }
    if (f->has_off)
        *(bool *)(base + f->has_off - 1) = true;
    return 0;
}

int policy_fields_get(const struct value *map, const struct policy_fieldset *set, void *s,
                      char *err, size_t errlen)
{
    char *base = s;
    if (map->type != VALUE_MAP) {
        util_err(err, errlen, "%s: a map of fields expected, got %s", set->what,
                 value_type_name(map->type));
        return -EINVAL;
    }
    for (size_t i = 0; i < set->n; i++) {
        if (set->f[i].has_off)
            *(bool *)(base + set->f[i].has_off - 1) = false;
    }
    for (size_t k = 0; k < map->u.m.len; k++) {
        const struct value_pair *p = &map->u.m.items[k];
        size_t i = 0;
        while (p->key.type == VALUE_STR && i < set->n && strcmp(set->f[i].name, p->key.u.s.ptr))
            i++;
        if (p->key.type != VALUE_STR || i == set->n) {
            util_err(err, errlen, "%s: unknown field '%s'", set->what,
                     p->key.type == VALUE_STR ? p->key.u.s.ptr : value_type_name(p->key.type));
            return -EINVAL;
        }
        int ret = get_field(&p->val, set, &set->f[i], base, err, errlen);
        if (ret)
            return ret;
    }
    for (size_t i = 0; i < set->n; i++) {
        if (!set->f[i].optional && !value_map_get(map, set->f[i].name)) {
            util_err(err, errlen, "%s: missing field '%s'", set->what, set->f[i].name);
            return -EINVAL;
        }
    }
    return 0;
}

bool policy_fields_bool(const struct value *map, const char *key, bool dflt)
{
    const struct value *v = value_map_get(map, key);
    return v && v->type == VALUE_BOOL ? v->u.b : dflt;
}

int64_t policy_fields_int(const struct value *map, const char *key, int64_t dflt)
{
    const struct value *v = value_map_get(map, key);
    return v && v->type == VALUE_INT ? v->u.i : dflt;
}

const char *policy_fields_str(const struct value *map, const char *key)
{
    const struct value *v = value_map_get(map, key);
    return v && v->type == VALUE_STR ? v->u.s.ptr : NULL;
}
