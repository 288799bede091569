/*
 * The hooks of the policy worker, one pair per hook: the input table the
 * policy gets, built from the request, and the check of its answer table
 * into the C struct of policy.h (types, ranges, unknown keys, then the
 * checks of policy_checks.c). The built-in defaults (policy_builtin.c) go
 * through the very same pairs.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <string.h>

#include <lauxlib.h>

#include "core/util.h"
#include "core/value.h"
#include "policy/policy_conv.h"
#include "policy/policy_host.h"
#include "policy/policy_internal.h"

static void push_limits(lua_State *L, struct policy_call *c);
static int take_limits(lua_State *L, int t, struct policy_call *c);
static void push_student(lua_State *L, struct policy_call *c);
static int take_student(lua_State *L, int t, struct policy_call *c);
static void push_ports(lua_State *L, struct policy_call *c);
static int take_ports(lua_State *L, int t, struct policy_call *c);
static void push_runtimes(lua_State *L, struct policy_call *c);
static int take_runtimes(lua_State *L, int t, struct policy_call *c);
static void push_results(lua_State *L, struct policy_call *c);
static int take_results(lua_State *L, int t, struct policy_call *c);
static void push_hardening(lua_State *L, struct policy_call *c);
static int take_hardening(lua_State *L, int t, struct policy_call *c);
static void push_pool(lua_State *L, struct policy_call *c);
static int take_pool(lua_State *L, int t, struct policy_call *c);

const struct policy_call_fns policy_calls[POLICY_HOOK_COUNT] = {
    [POLICY_HOOK_LIMITS] = {push_limits, take_limits},
    [POLICY_HOOK_STUDENT] = {push_student, take_student},
    [POLICY_HOOK_PORTS] = {push_ports, take_ports},
    [POLICY_HOOK_RUNTIMES] = {push_runtimes, take_runtimes},
    [POLICY_HOOK_RESULTS] = {push_results, take_results},
    [POLICY_HOOK_HARDENING] = {push_hardening, take_hardening},
    [POLICY_HOOK_POOL] = {push_pool, take_pool},
};

/* ---- hooks: limits ------------------------------------------------------- */

static void push_limits(lua_State *L, struct policy_call *c)
{
    const struct policy_limits_call *lc = c->req;
    const struct policy_limits_req *req = lc->req;
    lua_createtable(L, 0, 10); // req
    if (req->has_time)
        policy_conv_set_int(L, "time_s", req->time_s);
    if (req->has_hard_time)
        policy_conv_set_int(L, "hard_time_s", req->hard_time_s);
    if (req->has_memory)
        policy_conv_set_int(L, "memory_mib", req->memory_mib);
    policy_conv_set_bool(L, "network_grading", req->network_grading);
    policy_conv_set_bool(L, "needs_ports", req->needs_ports);
    policy_conv_set_str(L, "environment_type", req->environment_type);
    policy_conv_set_str(L, "environment", req->environment);
    policy_conv_set_int(L, "max_memory_mib", policy_max_memory_per_slot(lc->cfg));
    policy_conv_set_int(L, "host_memory_mib", lc->cfg->host_memory_mib);
    policy_conv_set_int(L, "concurrency", lc->cfg->concurrency);
}

static const struct policy_field limits_fields[] = {
    {"time_s", POLICY_FIELD_INT, 1, POLICY_MAX_SECONDS, false},
    {"hard_time_s", POLICY_FIELD_INT, 1, POLICY_MAX_SECONDS, false},
    {"memory_mib", POLICY_FIELD_INT, POLICY_MIN_MEMORY_MIB, INT64_MAX, false},
    {"network", POLICY_FIELD_BOOL, 0, 0, false},
};

static int take_limits(lua_State *L, int t, struct policy_call *c)
{
    struct policy_field_val v[ARRAY_SIZE(limits_fields)];
    int ret = policy_conv_read_fields(L, &c->st->conv, t, limits_fields, ARRAY_SIZE(v), v, c->err,
                                      sizeof c->err);
    if (!ret) {
        struct policy_limits *out = c->out;
        out->time_s = v[0].i;
        out->hard_time_s = v[1].i;
        out->memory_mib = v[2].i;
        out->network = v[3].b;
    }
    return ret;
}

/* ---- hooks: student limits ----------------------------------------------- */

static void push_student(lua_State *L, struct policy_call *c)
{
    const struct policy_student_req *req = c->req;
    lua_createtable(L, 0, 7); // req
    policy_conv_set_int(L, "parent_time_s", req->parent_time_s);
    policy_conv_set_int(L, "parent_hard_time_s", req->parent_hard_time_s);
    policy_conv_set_int(L, "parent_memory_mib", req->parent_memory_mib);
    policy_conv_set_int(L, "time_s", req->time_s);
    policy_conv_set_int(L, "hard_time_s", req->hard_time_s);
    policy_conv_set_int(L, "memory_mib", req->memory_mib);
    policy_conv_set_str(L, "environment", req->environment);
}

static const struct policy_field student_fields[] = {
    {"time_s", POLICY_FIELD_INT, 1, POLICY_MAX_SECONDS, false},
    {"hard_time_s", POLICY_FIELD_INT, 1, POLICY_MAX_SECONDS, false},
    {"memory_mib", POLICY_FIELD_INT, POLICY_MIN_MEMORY_MIB, INT64_MAX, false},
};

static int take_student(lua_State *L, int t, struct policy_call *c)
{
    struct policy_field_val v[ARRAY_SIZE(student_fields)];
    int ret = policy_conv_read_fields(L, &c->st->conv, t, student_fields, ARRAY_SIZE(v), v, c->err,
                                      sizeof c->err);
    if (!ret) {
        struct policy_student_limits *out = c->out;
        out->time_s = v[0].i;
        out->hard_time_s = v[1].i;
        out->memory_mib = v[2].i;
    }
    return ret;
}

/* ---- hooks: ports -------------------------------------------------------- */

static void push_ports(lua_State *L, struct policy_call *c)
{
    const struct policy_ports_req *req = c->req;
    lua_createtable(L, 0, 3); // req
    policy_conv_set_str(L, "job_id", req->job_id);
    policy_conv_set_int(L, "count", (int64_t)req->count);
    lua_createtable(L, (int)(req->nfree > INT_MAX ? INT_MAX : req->nfree), 0); // req free
    for (size_t i = 0; i < req->nfree; i++) {
        lua_pushinteger(L, req->free[i]);       // req free port
        lua_rawseti(L, -2, (lua_Integer)i + 1); // req free
    }
    lua_setfield(L, -2, "free"); // req
}

static const struct policy_field ports_fields[] = {{"ports", POLICY_FIELD_TABLE, 0, 0, false}};

static int take_ports(lua_State *L, int t, struct policy_call *c)
{
    const struct policy_ports_req *req = c->req;
    uint16_t *chosen = c->out;
    struct policy_field_val v[1];
    int ret =
        policy_conv_read_fields(L, &c->st->conv, t, ports_fields, 1, v, c->err, sizeof c->err);
    if (ret)
        return ret;
    policy_conv_push_field(L, t, "ports"); // ... ports
    int p = lua_gettop(L);
    lua_Integer n = policy_conv_seq_len(L, &c->st->conv, p);
    if (n < 0 || (size_t)n != req->count) {
        util_err(c->err, sizeof c->err, "'ports' must be a list of exactly %zu ports", req->count);
        return -EINVAL;
    }
    for (lua_Integer i = 1; !ret && i <= n; i++) {
        lua_rawgeti(L, p, i); // ... ports port
        if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 1 || lua_tointeger(L, -1) > 65535) {
            util_err(c->err, sizeof c->err, "ports[%lld] is not a port number", (long long)i);
            ret = -EINVAL;
        } else {
            chosen[i - 1] = (uint16_t)lua_tointeger(L, -1);
        }
        lua_pop(L, 1); // ... ports
    }
    if (!ret && !policy_ports_valid(req, chosen, c->err, sizeof c->err))
        ret = -EINVAL;
    return ret;
}

/* ---- hooks: runtimes ----------------------------------------------------- */

static void push_runtimes(lua_State *L, struct policy_call *c)
{
    const struct policy_runtimes_call *rc = c->req;
    lua_createtable(L, 0, 2);                                                  // req
    lua_createtable(L, (int)(rc->nnames > INT_MAX ? INT_MAX : rc->nnames), 0); // req names
    for (size_t i = 0; i < rc->nnames; i++) {
        lua_pushstring(L, rc->names[i] ? rc->names[i] : ""); // req names name
        lua_rawseti(L, -2, (lua_Integer)i + 1);              // req names
    }
    lua_setfield(L, -2, "runtimes"); // req
    policy_conv_set_bool(L, "ssh", rc->ssh);
}

static const struct policy_field runtimes_fields[] = {
    {"runtimes", POLICY_FIELD_TABLE, 0, 0, false}};
static const struct policy_field runtime_entry_fields[] = {
    {"runtime", POLICY_FIELD_STR, 0, 0, false},
    {"envtype", POLICY_FIELD_STR, 0, 0, false},
    {"run_as_root", POLICY_FIELD_BOOL, 0, 0, false},
    {"enables_gpu", POLICY_FIELD_BOOL, 0, 0, false},
    {"shared_kernel", POLICY_FIELD_BOOL, 0, 0, false},
};

static int take_runtime_entry(lua_State *L, struct policy_conv *cv, int e,
                              const struct policy_runtimes_call *rc, size_t i, char *err,
                              size_t errlen)
{
    struct policy_runtime *out = rc->out;
    struct policy_field_val v[ARRAY_SIZE(runtime_entry_fields)];
    int ret =
        policy_conv_read_fields(L, cv, e, runtime_entry_fields, ARRAY_SIZE(v), v, err, errlen);
    if (ret)
        return ret;
    bool known = false;
    for (size_t k = 0; k < rc->nnames && !known; k++)
        known = rc->names[k] && !strcmp(rc->names[k], v[0].s);
    if (!known || strlen(v[0].s) >= POLICY_NAME_MAX) {
        util_err(err, errlen, "runtimes[%zu]: '%s' is not a runtime of this engine", i + 1, v[0].s);
        return -EINVAL;
    }
    if (!policy_envtype_valid(v[1].s)) {
        util_err(err, errlen, "runtimes[%zu]: invalid envtype '%s'", i + 1, v[1].s);
        return -EINVAL;
    }
    for (size_t k = 0; k < i; k++) {
        if (!strcmp(out[k].envtype, v[1].s)) {
            util_err(err, errlen, "runtimes[%zu]: envtype '%s' given twice", i + 1, v[1].s);
            return -EINVAL;
        }
    }
    util_strlcpy(out[i].runtime, v[0].s, sizeof out[i].runtime);
    util_strlcpy(out[i].envtype, v[1].s, sizeof out[i].envtype);
    out[i].run_as_root = v[2].b;
    out[i].enables_gpu = v[3].b;
    out[i].shared_kernel = v[4].b;
    return 0;
}

static int take_runtimes(lua_State *L, int t, struct policy_call *c)
{
    const struct policy_runtimes_call *rc = c->req;
    struct policy_conv *cv = &c->st->conv;
    struct policy_field_val v[1];
    int ret = policy_conv_read_fields(L, cv, t, runtimes_fields, 1, v, c->err, sizeof c->err);
    if (ret)
        return ret;
    policy_conv_push_field(L, t, "runtimes"); // ... list
    int list = lua_gettop(L);
    lua_Integer n = policy_conv_seq_len(L, cv, list);
    if (n < 0 || (size_t)n > rc->max) {
        util_err(c->err, sizeof c->err, "'runtimes' must be a list of at most %zu entries",
                 rc->max);
        return -EINVAL;
    }
    for (lua_Integer i = 1; !ret && i <= n; i++) {
        lua_rawgeti(L, list, i); // ... list entry
        if (lua_type(L, -1) != LUA_TTABLE) {
            util_err(c->err, sizeof c->err, "runtimes[%lld] is not a table", (long long)i);
            ret = -EINVAL;
        } else {
            ret =
                take_runtime_entry(L, cv, lua_gettop(L), rc, (size_t)i - 1, c->err, sizeof c->err);
        }
        lua_pop(L, 1); // ... list
    }
    if (!ret)
        *rc->nout = (size_t)n;
    return ret;
}

/* ---- hooks: results ------------------------------------------------------ */

static void push_results(lua_State *L, struct policy_call *c)
{
    const struct policy_results_call *rc = c->req;
    lua_createtable(L, 0, 2); // req
    if (rc->raw) {
        policy_conv_push_value(L, &c->st->conv, rc->raw, 0); // req result
        lua_setfield(L, -2, "result");                       // req
    }
    policy_conv_set_str(L, "prev_state", rc->prev_state ? rc->prev_state : "");
}

static const struct policy_field results_fields[] = {
    {"result", POLICY_FIELD_STR, 0, 0, false},  {"text", POLICY_FIELD_STR, 0, 0, false},
    {"grade", POLICY_FIELD_NUM, 0, 0, false},   {"problems", POLICY_FIELD_TABLE, 0, 0, false},
    {"tests", POLICY_FIELD_TABLE, 0, 0, false}, {"custom", POLICY_FIELD_TABLE, 0, 0, false},
    {"state", POLICY_FIELD_STR, 0, 0, false},
};

// problems: a map of string ids to { result, text }.
static int take_problems(lua_State *L, struct policy_conv *cv, int t, struct value *out, char *err,
                         size_t errlen)
{
    int ret = policy_conv_table(L, cv, t, err, errlen), top = lua_gettop(L);
    value_set_map(out);
    lua_pushnil(L);                  // ... nil
    while (!ret && lua_next(L, t)) { // ... id fb
        if (lua_type(L, -2) != LUA_TSTRING) {
            util_err(err, errlen, "problems: key of type %s is not a string",
                     policy_conv_kind(L, -2));
            ret = -EINVAL;
            break;
        }
        int fb = lua_gettop(L);
        if (policy_conv_seq_len(L, cv, fb) != 2) {
            util_err(err, errlen, "problems.%s must be { result, text }", lua_tostring(L, -2));
            ret = -EINVAL;
            break;
        }
        size_t len;
        lua_tolstring(L, -2, &len);
        ret = policy_conv_table(L, cv, fb, err, errlen);
        if (!ret)
            ret = policy_conv_count(cv, 2, len, err, errlen); // the id, the pair
        if (ret)
            break;
        struct value_pair *p = policy_conv_map_append(out);
        const char *s = lua_tolstring(L, -2, &len);
        value_set_strn(&p->key, s, len);
        value_set_array(&p->val);
        for (lua_Integer i = 1; !ret && i <= 2; i++) {
            lua_rawgeti(L, fb, i); // ... id fb s
            if (lua_type(L, -1) != LUA_TSTRING) {
                util_err(err, errlen, "problems.%s[%lld] must be a string", p->key.u.s.ptr,
                         (long long)i);
                ret = -EINVAL;
            } else {
                s = lua_tolstring(L, -1, &len);
                ret = policy_conv_count(cv, 1, len, err, errlen);
                if (!ret)
                    value_set_strn(value_array_push(&p->val), s, len);
            }
            lua_pop(L, 1); // ... id fb
        }
        lua_pop(L, 1); // ... id
    }
    lua_settop(L, top);
    return ret;
}

// A top-level map of an answer (tests, custom), counted like any table of it.
static int take_map(lua_State *L, struct policy_conv *cv, int t, struct value *out, char *err,
                    size_t errlen)
{
    int ret = policy_conv_table(L, cv, t, err, errlen);
    if (!ret)
        ret = policy_conv_count(cv, 1, 0, err, errlen);
    if (!ret)
        ret = policy_conv_to_map(L, cv, t, out, 1, err, errlen);
    else
        value_set_map(out);
    return ret;
}

// tests: string keys, any convertible values.
static int take_tests(lua_State *L, struct policy_conv *cv, int t, struct value *out, char *err,
                      size_t errlen)
{
    int ret = take_map(L, cv, t, out, err, errlen);
    for (size_t i = 0; !ret && i < out->u.m.len; i++) {
        if (out->u.m.items[i].key.type != VALUE_STR) {
            util_err(err, errlen, "tests: key of type %s is not a string",
                     value_type_name(out->u.m.items[i].key.type));
            ret = -EINVAL;
        }
    }
    return ret;
}

static int take_results(lua_State *L, int t, struct policy_call *c)
{
    struct policy_conv *cv = &c->st->conv;
    struct policy_result *out = c->out;
    struct policy_field_val v[ARRAY_SIZE(results_fields)];
    int ret =
        policy_conv_read_fields(L, cv, t, results_fields, ARRAY_SIZE(v), v, c->err, sizeof c->err);
    if (!ret && !policy_result_name_valid(v[0].s)) {
        util_err(c->err, sizeof c->err, "'result' = '%.64s' is not a known result", v[0].s);
        ret = -EINVAL;
    }
    if (!ret && !isfinite(v[2].d)) {
        util_err(c->err, sizeof c->err, "'grade' is not a finite number");
        ret = -EINVAL;
    }
    if (ret)
        return ret;
    out->result = xstrndup(v[0].s, v[0].len);
    out->text = xstrndup(v[1].s, v[1].len);
    out->grade = policy_round2(v[2].d);
    out->state = xstrndup(v[6].s, v[6].len);
    policy_conv_push_field(L, t, "problems"); // ... problems
    ret = take_problems(L, cv, lua_gettop(L), &out->problems, c->err, sizeof c->err);
    policy_conv_push_field(L, t, "tests"); // ... problems tests
    if (!ret)
        ret = take_tests(L, cv, lua_gettop(L), &out->tests, c->err, sizeof c->err);
    policy_conv_push_field(L, t, "custom"); // ... problems tests custom
    if (!ret)
        ret = take_map(L, cv, lua_gettop(L), &out->custom, c->err, sizeof c->err);
    return ret;
}

/* ---- hooks: hardening ---------------------------------------------------- */

static void push_hardening(lua_State *L, struct policy_call *c)
{
    const struct policy_hardening_req *req = c->req;
    lua_createtable(L, 0, 4); // req
    policy_conv_set_str(L, "environment", req->environment);
    policy_conv_set_bool(L, "student", req->student);
    policy_conv_set_int(L, "memory_mib", req->memory_mib);
    policy_conv_set_bool(L, "network", req->network);
}

static const struct policy_field hardening_fields[] = {
    {"pids_limit", POLICY_FIELD_INT, 0, POLICY_MAX_PIDS, false},
    {"no_new_privileges", POLICY_FIELD_BOOL, 0, 0, false},
    {"cap_drop", POLICY_FIELD_TABLE, 0, 0, false},
    {"nofile_soft", POLICY_FIELD_INT, 0, POLICY_MAX_NOFILE, false},
    {"nofile_hard", POLICY_FIELD_INT, 0, POLICY_MAX_NOFILE, false},
    {"max_output_bytes", POLICY_FIELD_INT, 1, INT64_MAX, false},
    {"max_frame_bytes", POLICY_FIELD_INT, 1, INT64_MAX, false},
    // Optional, so that hardening files written before they existed keep deciding;
    // above the hard caps is cut by policy_cap_hardening, below 1 is nonsense.
    {"max_students", POLICY_FIELD_INT, 1, INT64_MAX, true},
    {"max_students_total", POLICY_FIELD_INT, 1, INT64_MAX, true},
};

static int take_caps(lua_State *L, struct policy_conv *cv, int list, struct policy_hardening *out,
                     char *err, size_t errlen)
{
    lua_Integer n = policy_conv_seq_len(L, cv, list);
    if (n < 0 || n > POLICY_MAX_CAPS) {
        util_err(err, errlen, "'cap_drop' must be a list of at most %d names", POLICY_MAX_CAPS);
        return -EINVAL;
    }
    int ret = 0;
    for (lua_Integer i = 1; !ret && i <= n; i++) {
        lua_rawgeti(L, list, i); // ... list name
        const char *name = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
        if (!name || strlen(name) >= sizeof out->cap_drop[0] || !policy_cap_name_valid(name)) {
            util_err(err, errlen, "cap_drop[%lld] is not a capability name", (long long)i);
            ret = -EINVAL;
        } else {
            util_strlcpy(out->cap_drop[out->ncap_drop++], name, sizeof out->cap_drop[0]);
        }
        lua_pop(L, 1); // ... list
    }
    return ret;
}

static int take_hardening(lua_State *L, int t, struct policy_call *c)
{
    struct policy_conv *cv = &c->st->conv;
    struct policy_hardening *out = c->out;
    struct policy_field_val v[ARRAY_SIZE(hardening_fields)];
    int ret = policy_conv_read_fields(L, cv, t, hardening_fields, ARRAY_SIZE(v), v, c->err,
                                      sizeof c->err);
    if (!ret && (v[3].i > v[4].i) && v[4].i != 0) {
        util_err(c->err, sizeof c->err, "nofile_soft is above nofile_hard");
        ret = -EINVAL;
    }
    if (!ret && v[4].i == 0 && v[3].i != 0) {
        util_err(c->err, sizeof c->err, "nofile_soft needs a nofile_hard");
        ret = -EINVAL;
    }
    if (ret)
        return ret;
    memset(out, 0, sizeof *out);
    out->pids_limit = v[0].i;
    out->no_new_privileges = v[1].b;
    out->nofile_soft = v[3].i;
    out->nofile_hard = v[4].i;
    out->max_output_bytes = v[5].i;
    out->max_frame_bytes = v[6].i;
    policy_missing_student_caps(c->req, out);
    if (v[7].seen)
        out->max_students = v[7].i;
    if (v[8].seen)
        out->max_students_total = v[8].i;
    policy_conv_push_field(L, t, "cap_drop"); // ... caps
    return take_caps(L, cv, lua_gettop(L), out, c->err, sizeof c->err);
}

/* ---- hooks: pool --------------------------------------------------------- */

static void push_pool(lua_State *L, struct policy_call *c)
{
    const struct policy_pool_req *req = c->req;
    lua_createtable(L, 0, 4);                                                  // req
    lua_createtable(L, (int)(req->nenvs > INT_MAX ? INT_MAX : req->nenvs), 0); // req envs
    for (size_t i = 0; i < req->nenvs; i++) {
        const struct policy_pool_env *e = &req->envs[i];
        lua_createtable(L, 0, 9); // req envs env
        AUTO_FREE char *key = xasprintf("%s/%s", e->envtype, e->name);
        policy_conv_set_str(L, "key", key);
        policy_conv_set_str(L, "envtype", e->envtype);
        policy_conv_set_str(L, "name", e->name);
        policy_conv_set_int(L, "waiting", e->waiting);
        policy_conv_set_int(L, "arrivals_1m", e->arrivals_1m);
        policy_conv_set_int(L, "arrivals_10m", e->arrivals_10m);
        policy_conv_set_int(L, "idle_s", e->idle_s);
        policy_conv_set_int(L, "memory_mib", e->memory_mib);
        policy_conv_set_bool(L, "available", e->available);
        lua_rawseti(L, -2, (lua_Integer)i + 1); // req envs
    }
    lua_setfield(L, -2, "environments"); // req
    policy_conv_set_int(L, "slots", req->slots);
    policy_conv_set_int(L, "slots_in_use", req->slots_in_use);
    policy_conv_set_int(L, "host_memory_mib", c->st->cfg.host_memory_mib);
}

static const struct policy_field pool_fields[] = {{"sizes", POLICY_FIELD_TABLE, 0, 0, false}};

// sizes: { ["<envtype>/<name>"] = n }, keys among the request's environments.
static int take_pool(lua_State *L, int t, struct policy_call *c)
{
    const struct policy_pool_req *req = c->req;
    int64_t *sizes = c->out;
    struct policy_conv *cv = &c->st->conv;
    struct policy_field_val v[1];
    int ret = policy_conv_read_fields(L, cv, t, pool_fields, 1, v, c->err, sizeof c->err);
    if (ret)
        return ret;
    for (size_t i = 0; i < req->nenvs; i++)
        sizes[i] = 0;
    policy_conv_push_field(L, t, "sizes"); // ... sizes
    int st = lua_gettop(L);
    ret = policy_conv_table(L, cv, st, c->err, sizeof c->err);
    lua_pushnil(L);                   // ... sizes nil
    while (!ret && lua_next(L, st)) { // ... sizes key n
        size_t i = req->nenvs;
        if (lua_type(L, -2) == LUA_TSTRING) {
            const char *k = lua_tostring(L, -2);
            for (i = 0; i < req->nenvs; i++) {
                const struct policy_pool_env *e = &req->envs[i];
                size_t tl = strlen(e->envtype);
                if (!strncmp(k, e->envtype, tl) && k[tl] == '/' && !strcmp(k + tl + 1, e->name))
                    break;
            }
        }
        if (i == req->nenvs) {
            util_err(c->err, sizeof c->err,
                     "sizes: key %s is not \"<envtype>/<name>\" of an environment of the request",
                     lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2)
                                                    : policy_conv_kind(L, -2));
            ret = -EINVAL;
        } else if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 0 ||
                   lua_tointeger(L, -1) > POLICY_MAX_POOL) {
            util_err(c->err, sizeof c->err, "sizes[\"%s\"] must be an integer in 0..%d",
                     lua_tostring(L, -2), POLICY_MAX_POOL);
            ret = -EINVAL;
        } else {
            sizes[i] = (int64_t)lua_tointeger(L, -1);
        }
        lua_pop(L, 1); // ... sizes key
    }
    lua_settop(L, st - 1);
    return ret;
}
