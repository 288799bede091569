/*
 * The hooks of the policy worker, one pair per hook: the input table the
 * policy gets, built from the request, and the check of its answer table
 * into the C struct of policy.h (by named field: types, ranges, unknown keys,
 * policy_fields.h through policy_conv.h; then the checks of policy_checks.c).
 * The built-in defaults (policy_builtin.c) go through the very same pairs.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <string.h>

#include <lauxlib.h>

#include "core/util.h"
#include "core/value.h"
#include "policy/policy_conv.h"
#include "policy/policy_fields.h"
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
    policy_conv_push_fields(L, &policy_fields_limits_req, lc->req); // req
    policy_conv_set_int(L, "max_memory_mib", policy_max_memory_per_slot(lc->cfg));
    policy_conv_set_int(L, "host_memory_mib", lc->cfg->host_memory_mib);
    policy_conv_set_int(L, "concurrency", lc->cfg->concurrency);
}

static int take_limits(lua_State *L, int t, struct policy_call *c)
{
    return policy_conv_read_fields(L, &c->st->conv, t, &policy_fields_limits, c->out, c->err,
                                   sizeof c->err);
}

/* ---- hooks: student limits ----------------------------------------------- */

static void push_student(lua_State *L, struct policy_call *c)
{
    policy_conv_push_fields(L, &policy_fields_student_req, c->req); // req
}

static int take_student(lua_State *L, int t, struct policy_call *c)
{
    return policy_conv_read_fields(L, &c->st->conv, t, &policy_fields_student, c->out, c->err,
                                   sizeof c->err);
}

/* ---- hooks: ports -------------------------------------------------------- */

static void push_ports(lua_State *L, struct policy_call *c)
{
    const struct policy_ports_req *req = c->req;
    lua_createtable(L, 0, 3); // req
    policy_conv_set_str(L, "job_id", req->job_id);
    policy_conv_set_int(L, "count", (int64_t)req->count);
    policy_conv_push_ints(L, req->free, req->nfree); // req free
    lua_setfield(L, -2, "free");                     // req
}

static const struct policy_field ports_f[] = {POLICY_F_TABLE("ports", false)};
static const struct policy_fieldset ports_fields = {"ports answer", ports_f, 1};

static int take_ports(lua_State *L, int t, struct policy_call *c)
{
    const struct policy_ports_req *req = c->req;
    uint16_t *chosen = c->out;
    int ret =
        policy_conv_read_fields(L, &c->st->conv, t, &ports_fields, NULL, c->err, sizeof c->err);
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
    lua_createtable(L, 0, 2);                        // req
    policy_conv_push_strs(L, rc->names, rc->nnames); // req names
    lua_setfield(L, -2, "runtimes");                 // req
    policy_conv_set_bool(L, "ssh", rc->ssh);
    if (rc->nforced) {
        lua_createtable(L, (int)rc->nforced, 0); // req forced
        for (size_t i = 0; i < rc->nforced; i++) {
            policy_conv_push_fields(L, &policy_fields_runtime, &rc->forced[i]); // req forced e
            lua_rawseti(L, -2, (lua_Integer)i + 1);                             // req forced
        }
        lua_setfield(L, -2, "forced"); // req
    }
}

static const struct policy_field runtimes_f[] = {POLICY_F_TABLE("runtimes", false)};
static const struct policy_fieldset runtimes_fields = {"runtimes answer", runtimes_f, 1};

static int take_runtime_entry(lua_State *L, struct policy_conv *cv, int t_entry,
                              const struct policy_runtimes_call *rc, size_t i, char *err,
                              size_t errlen)
{
    struct policy_runtime *out = rc->out, e;
    memset(&e, 0, sizeof e); // the bytes past each name too: the answer is copied as is
    int ret = policy_conv_read_fields(L, cv, t_entry, &policy_fields_runtime, &e, err, errlen);
    if (ret)
        return ret;
    bool known = false;
    for (size_t k = 0; k < rc->nnames && !known; k++)
        known = rc->names[k] && !strcmp(rc->names[k], e.runtime);
    if (!known) {
        util_err(err, errlen, "runtimes[%zu]: '%s' is not a runtime of this engine", i + 1,
                 e.runtime);
        return -EINVAL;
    }
    if (!policy_envtype_valid(e.envtype)) {
        util_err(err, errlen, "runtimes[%zu]: invalid envtype '%s'", i + 1, e.envtype);
        return -EINVAL;
    }
    for (size_t k = 0; k < i; k++) {
        if (!strcmp(out[k].envtype, e.envtype)) {
            util_err(err, errlen, "runtimes[%zu]: envtype '%s' given twice", i + 1, e.envtype);
            return -EINVAL;
        }
    }
    out[i] = e;
    return 0;
}

static int take_runtimes(lua_State *L, int t, struct policy_call *c)
{
    const struct policy_runtimes_call *rc = c->req;
    struct policy_conv *cv = &c->st->conv;
    int ret = policy_conv_read_fields(L, cv, t, &runtimes_fields, NULL, c->err, sizeof c->err);
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
    struct policy_result_view v = {0};
    int ret = policy_conv_read_fields(L, cv, t, &policy_fields_result, &v, c->err, sizeof c->err);
    if (!ret && !policy_result_name_valid(v.result)) {
        util_err(c->err, sizeof c->err, "'result' = '%.64s' is not a known result", v.result);
        ret = -EINVAL;
    }
    if (!ret && !isfinite(v.grade)) {
        util_err(c->err, sizeof c->err, "'grade' is not a finite number");
        ret = -EINVAL;
    }
    if (ret)
        return ret;
    out->result = xstrdup(v.result);
    out->text = xstrdup(v.text);
    out->grade = policy_round2(v.grade);
    out->state = xstrdup(v.state);
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
    policy_conv_push_fields(L, &policy_fields_hardening_req, c->req); // req
}

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
    memset(out, 0, sizeof *out);
    out->max_students = out->max_students_total = -1; // absent: the built-in values below
    int ret =
        policy_conv_read_fields(L, cv, t, &policy_fields_hardening, out, c->err, sizeof c->err);
    if (!ret && (out->max_students == 0 || out->max_students_total == 0)) {
        util_err(c->err, sizeof c->err, "'%s' = 0 is out of range [1, %" PRId64 "]",
                 out->max_students == 0 ? "max_students" : "max_students_total", INT64_MAX);
        ret = -EINVAL;
    }
    if (!ret && out->nofile_soft > out->nofile_hard && out->nofile_hard != 0) {
        util_err(c->err, sizeof c->err, "nofile_soft is above nofile_hard");
        ret = -EINVAL;
    }
    if (!ret && out->nofile_hard == 0 && out->nofile_soft != 0) {
        util_err(c->err, sizeof c->err, "nofile_soft needs a nofile_hard");
        ret = -EINVAL;
    }
    if (ret)
        return ret;
    struct policy_hardening dflt;
    policy_missing_student_caps(c->req, &dflt);
    if (out->max_students < 0)
        out->max_students = dflt.max_students;
    if (out->max_students_total < 0)
        out->max_students_total = dflt.max_students_total;
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
        policy_conv_push_fields(L, &policy_fields_pool_env, e); // req envs env
        AUTO_FREE char *key = xasprintf("%s/%s", e->envtype, e->name);
        policy_conv_set_str(L, "key", key);
        lua_rawseti(L, -2, (lua_Integer)i + 1); // req envs
    }
    lua_setfield(L, -2, "environments"); // req
    policy_conv_set_int(L, "slots", req->slots);
    policy_conv_set_int(L, "slots_in_use", req->slots_in_use);
    policy_conv_set_int(L, "host_memory_mib", c->st->cfg.host_memory_mib);
}

static const struct policy_field pool_f[] = {POLICY_F_TABLE("sizes", false)};
static const struct policy_fieldset pool_fields = {"pool answer", pool_f, ARRAY_SIZE(pool_f)};

// sizes: { ["<envtype>/<name>"] = n }, keys among the request's environments.
static int take_pool(lua_State *L, int t, struct policy_call *c)
{
    const struct policy_pool_req *req = c->req;
    int64_t *sizes = c->out;
    struct policy_conv *cv = &c->st->conv;
    int ret = policy_conv_read_fields(L, cv, t, &pool_fields, NULL, c->err, sizeof c->err);
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
