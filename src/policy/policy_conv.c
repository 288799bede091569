/*
 * Values between C and Lua in the policy worker (see policy_conv.h): the
 * input tables of the hooks and the conversion of their answers, counted.
 */
#include "policy/policy_conv.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <string.h>

#include <lauxlib.h>

#include "common/utf8.h"
#include "core/util.h"

static size_t ptr_slot(const void *p, size_t cap);
static int check_field(lua_State *L, struct policy_conv *cv, int idx, const struct policy_field *f,
                       char *base, char *err, size_t errlen);

/* ---- value <-> Lua ------------------------------------------------------ */

void policy_conv_push_value(lua_State *L, struct policy_conv *cv, const struct value *v, int depth)
{
    if (depth > VALUE_MAX_DEPTH)
        luaL_error(L, "input nested more than %d levels", VALUE_MAX_DEPTH);
    luaL_checkstack(L, 4, "input nested too deeply");
    switch (v->type) {
    case VALUE_NIL:
        lua_rawgeti(L, LUA_REGISTRYINDEX, cv->null_ref); // null
        break;
    case VALUE_BOOL:
        lua_pushboolean(L, v->u.b);
        break;
    case VALUE_INT:
        lua_pushinteger(L, v->u.i);
        break;
    case VALUE_UINT:
        lua_pushnumber(L, (lua_Number)v->u.u); // above INT64_MAX: only a float can hold it
        break;
    case VALUE_FLOAT:
        lua_pushnumber(L, v->u.f);
        break;
    case VALUE_STR:
    case VALUE_BIN:
        lua_pushlstring(L, v->u.s.ptr, v->u.s.len);
        break;
    case VALUE_ARRAY:
        if (v->u.a.len == 0) {
            lua_rawgeti(L, LUA_REGISTRYINDEX, cv->empty_array_ref); // empty_array
            break;
        }
        lua_createtable(L, (int)(v->u.a.len > INT_MAX ? INT_MAX : v->u.a.len), 0); // arr
        for (size_t i = 0; i < v->u.a.len; i++) {
            policy_conv_push_value(L, cv, &v->u.a.items[i], depth + 1); // arr item
            lua_rawseti(L, -2, (lua_Integer)i + 1);                     // arr
        }
        break;
    case VALUE_MAP:
        lua_createtable(L, 0, (int)(v->u.m.len > INT_MAX ? INT_MAX : v->u.m.len)); // map
        for (size_t i = 0; i < v->u.m.len; i++) {
            policy_conv_push_value(L, cv, &v->u.m.items[i].key, depth + 1); // map key
            policy_conv_push_value(L, cv, &v->u.m.items[i].val, depth + 1); // map key val
            lua_rawset(L, -3); // map (raises on a NaN key)
        }
        break;
    }
}

bool policy_conv_is_ref(lua_State *L, int idx, int ref)
{
    idx = lua_absindex(L, idx);
    lua_rawgeti(L, LUA_REGISTRYINDEX, ref); // ... ref
    bool same = lua_rawequal(L, idx, -1);
    lua_pop(L, 1); // ...
    return same;
}

lua_Integer policy_conv_seq_len(lua_State *L, struct policy_conv *cv, int t)
{
    if (policy_conv_is_ref(L, t, cv->empty_array_ref))
        return 0;
    if (lua_type(L, t) != LUA_TTABLE || policy_conv_is_ref(L, t, cv->null_ref))
        return -1;
    lua_Integer n = (lua_Integer)lua_rawlen(L, t), count = 0;
    lua_pushnil(L);          // ... nil
    while (lua_next(L, t)) { // ... key val
        lua_pop(L, 1);       // ... key
        lua_Integer k = lua_isinteger(L, -1) ? lua_tointeger(L, -1) : 0;
        if (k < 1 || k > n) {
            lua_pop(L, 1); // ...
            return -1;
        }
        count++;
    }
    return count == n ? n : -1;
}

void policy_conv_reset(struct policy_conv *cv)
{
    cv->values = cv->bytes = 0;
    free(cv->seen);
    cv->seen = NULL;
    cv->seen_cap = cv->seen_len = 0;
}

int policy_conv_count(struct policy_conv *cv, size_t values, size_t bytes, char *err, size_t errlen)
{
    cv->values += values;
    cv->bytes += bytes + values * sizeof(struct value);
    if (cv->values <= POLICY_CONV_MAX_VALUES && cv->bytes <= POLICY_CONV_MAX_BYTES)
        return 0;
    util_err(err, errlen, "answer larger than %zu values or %zu MiB", POLICY_CONV_MAX_VALUES,
             POLICY_CONV_MAX_BYTES >> 20);
    return -EINVAL;
}

int policy_conv_table(lua_State *L, struct policy_conv *cv, int idx, char *err, size_t errlen)
{
    const void *p = lua_topointer(L, idx);
    if (2 * (cv->seen_len + 1) > cv->seen_cap) {
        size_t cap = cv->seen_cap ? 2 * cv->seen_cap : 64;
        const void **grown = xcalloc(cap, sizeof *grown);
        for (size_t i = 0; i < cv->seen_cap; i++) {
            if (!cv->seen[i])
                continue;
            size_t j = ptr_slot(cv->seen[i], cap);
            while (grown[j])
                j = (j + 1) & (cap - 1);
            grown[j] = cv->seen[i];
        }
        free(cv->seen);
        cv->seen = grown;
        cv->seen_cap = cap;
    }
    size_t j = ptr_slot(p, cv->seen_cap);
    for (; cv->seen[j]; j = (j + 1) & (cv->seen_cap - 1)) {
        if (cv->seen[j] == p) {
            util_err(err, errlen, "the same table appears twice in the answer");
            return -EINVAL;
        }
    }
    cv->seen[j] = p;
    cv->seen_len++;
    return 0;
}

struct value_pair *policy_conv_map_append(struct value *map)
{
    if (map->u.m.len == map->u.m.cap) {
        map->u.m.cap = map->u.m.cap ? map->u.m.cap * 2 : 8;
        map->u.m.items = xrealloc(map->u.m.items, map->u.m.cap * sizeof *map->u.m.items);
    }
    struct value_pair *p = &map->u.m.items[map->u.m.len++];
    value_set_nil(&p->key);
    value_set_nil(&p->val);
    return p;
}

int policy_conv_to_map(lua_State *L, struct policy_conv *cv, int t, struct value *out, int depth,
                       char *err, size_t errlen)
{
    int ret = 0, top = lua_gettop(L);
    value_set_map(out);
    lua_pushnil(L);                  // ... nil
    while (!ret && lua_next(L, t)) { // ... key val
        struct value_pair *p = policy_conv_map_append(out);
        ret = policy_conv_to_value(L, cv, -2, &p->key, depth + 1, err, errlen);
        if (!ret)
            ret = policy_conv_to_value(L, cv, -1, &p->val, depth + 1, err, errlen);
        lua_pop(L, 1); // ... key
    }
    lua_settop(L, top);
    return ret;
}

// Only non-allocating Lua API here: a conversion must not raise.
int policy_conv_to_value(lua_State *L, struct policy_conv *cv, int idx, struct value *out,
                         int depth, char *err, size_t errlen)
{
    int ret = 0, top = lua_gettop(L);
    idx = lua_absindex(L, idx);
    if (depth > VALUE_MAX_DEPTH || !lua_checkstack(L, 6)) {
        util_err(err, errlen, "answer nested more than %d levels", VALUE_MAX_DEPTH);
        return -EINVAL;
    }
    int type = lua_type(L, idx);
    size_t len = 0;
    if (type == LUA_TSTRING)
        lua_tolstring(L, idx, &len);
    ret = policy_conv_count(cv, 1, len, err, errlen);
    if (!ret && type == LUA_TTABLE && !policy_conv_is_ref(L, idx, cv->null_ref) &&
        !policy_conv_is_ref(L, idx, cv->empty_array_ref))
        ret = policy_conv_table(L, cv, idx, err, errlen);
    if (ret)
        return ret;
    switch (type) {
    case LUA_TBOOLEAN:
        value_set_bool(out, lua_toboolean(L, idx));
        break;
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx))
            value_set_int(out, lua_tointeger(L, idx));
        else
            value_set_float(out, lua_tonumber(L, idx));
        break;
    case LUA_TSTRING: {
        const char *s = lua_tolstring(L, idx, &len);
        if (utf8_valid(s, len))
            value_set_strn(out, s, len);
        else
            value_set_bin(out, s, len);
        break;
    }
    case LUA_TTABLE: {
        if (policy_conv_is_ref(L, idx, cv->null_ref)) {
            value_set_nil(out);
            break;
        }
        lua_Integer n = policy_conv_seq_len(L, cv, idx);
        if (n == 0 && !policy_conv_is_ref(L, idx, cv->empty_array_ref)) {
            value_set_map(out); // {}: an empty map, the common case in results
        } else if (n >= 0) {
            value_set_array(out);
            for (lua_Integer i = 1; !ret && i <= n; i++) {
                lua_rawgeti(L, idx, i); // ... item
                ret =
                    policy_conv_to_value(L, cv, -1, value_array_push(out), depth + 1, err, errlen);
                lua_pop(L, 1); // ...
            }
        } else {
            ret = policy_conv_to_map(L, cv, idx, out, depth, err, errlen);
        }
        break;
    }
    default:
        util_err(err, errlen, "cannot send a %s value", luaL_typename(L, idx));
        ret = -EINVAL;
    }
    lua_settop(L, top);
    return ret;
}

/* ---- schema of flat answer tables ---------------------------------------- */

const char *policy_conv_kind(lua_State *L, int idx)
{
    if (lua_type(L, idx) == LUA_TNUMBER)
        return lua_isinteger(L, idx) ? "integer" : "float";
    return luaL_typename(L, idx);
}

// Like knot's lua_table_checkindices, plus types.
int policy_conv_read_fields(lua_State *L, struct policy_conv *cv, int t,
                            const struct policy_fieldset *set, void *s, char *err, size_t errlen)
{
    int ret = 0, top = lua_gettop(L);
    char *base = s;
    for (size_t i = 0; i < set->n; i++) {
        if (set->f[i].has_off)
            *(bool *)(base + set->f[i].has_off - 1) = false;
    }
    lua_pushnil(L);                  // ... nil
    while (!ret && lua_next(L, t)) { // ... key val
        size_t i = set->n;
        if (lua_type(L, -2) == LUA_TSTRING) {
            const char *key = lua_tostring(L, -2);
            for (i = 0; i < set->n && strcmp(set->f[i].name, key) != 0; i++)
                ;
            if (i == set->n)
                util_err(err, errlen, "unknown key '%s'", key);
        } else {
            util_err(err, errlen, "unknown key of type %s", policy_conv_kind(L, -2));
        }
        ret = i == set->n ? -EINVAL : check_field(L, cv, -1, &set->f[i], base, err, errlen);
        lua_pop(L, 1); // ... key
    }
    lua_settop(L, top);
    for (size_t i = 0; !ret && i < set->n; i++) {
        if (set->f[i].optional)
            continue;
        policy_conv_push_field(L, t, set->f[i].name); // ... val
        bool seen = !lua_isnil(L, -1);
        lua_pop(L, 1); // ...
        if (!seen) {
            util_err(err, errlen, "missing key '%s'", set->f[i].name);
            ret = -EINVAL;
        }
    }
    return ret;
}

int policy_conv_push_field(lua_State *L, int t, const char *name)
{
    lua_pushstring(L, name); // ... name
    return lua_rawget(L, t); // ... value
}

/* ---- input tables -------------------------------------------------------- */

void policy_conv_push_fields(lua_State *L, const struct policy_fieldset *set, const void *s)
{
    const char *base = s;
    lua_createtable(L, 0, (int)set->n); // tbl
    for (size_t i = 0; i < set->n; i++) {
        const struct policy_field *f = &set->f[i];
        if (f->has_off && !*(const bool *)(base + f->has_off - 1))
            continue;
        switch (f->kind) {
        case POLICY_FIELD_INT:
            policy_conv_set_int(L, f->name, *(const int64_t *)(base + f->off));
            break;
        case POLICY_FIELD_BOOL:
            policy_conv_set_bool(L, f->name, *(const bool *)(base + f->off));
            break;
        case POLICY_FIELD_STR:
            policy_conv_set_str(L, f->name, *(const char *const *)(base + f->off));
            break;
        case POLICY_FIELD_NUM:
            lua_pushnumber(L, *(const double *)(base + f->off)); // tbl v
            lua_setfield(L, -2, f->name);                        // tbl
            break;
        case POLICY_FIELD_NAME:
            lua_pushlstring(L, base + f->off, strnlen(base + f->off, f->size)); // tbl v
            lua_setfield(L, -2, f->name);                                       // tbl
            break;
        case POLICY_FIELD_TABLE:
            break;
        }
    }
}

void policy_conv_push_ints(lua_State *L, const uint16_t *v, size_t n)
{
    lua_createtable(L, (int)(n > INT_MAX ? INT_MAX : n), 0); // list
    for (size_t i = 0; i < n; i++) {
        lua_pushinteger(L, v[i]);               // list v
        lua_rawseti(L, -2, (lua_Integer)i + 1); // list
    }
}

void policy_conv_push_strs(lua_State *L, const char *const *v, size_t n)
{
    lua_createtable(L, (int)(n > INT_MAX ? INT_MAX : n), 0); // list
    for (size_t i = 0; i < n; i++) {
        lua_pushstring(L, v[i] ? v[i] : "");    // list v
        lua_rawseti(L, -2, (lua_Integer)i + 1); // list
    }
}

void policy_conv_set_int(lua_State *L, const char *key, int64_t v)
{
    lua_pushinteger(L, v);    // tbl v
    lua_setfield(L, -2, key); // tbl
}

void policy_conv_set_bool(lua_State *L, const char *key, bool v)
{
    lua_pushboolean(L, v);    // tbl v
    lua_setfield(L, -2, key); // tbl
}

void policy_conv_set_str(lua_State *L, const char *key, const char *v)
{
    if (!v)
        return;
    lua_pushstring(L, v);     // tbl v
    lua_setfield(L, -2, key); // tbl
}

/* ---- helpers ------------------------------------------------------------- */

static size_t ptr_slot(const void *p, size_t cap)
{
    uintptr_t h = (uintptr_t)p;
    h ^= h >> 17;
    h *= UINT64_C(0x9E3779B97F4A7C15);
    return (size_t)(h ^ (h >> 29)) & (cap - 1);
}

static int check_field(lua_State *L, struct policy_conv *cv, int idx, const struct policy_field *f,
                       char *base, char *err, size_t errlen)
{
    static const char *const want[] = {"an integer", "a boolean", "a string",
                                       "a number",   "a string",  "a table"};
    bool ok = false;
    switch (f->kind) {
    case POLICY_FIELD_INT:
        ok = lua_isinteger(L, idx);
        if (ok) {
            int64_t i = lua_tointeger(L, idx);
            if (i < f->min || i > f->max) {
                util_err(err, errlen,
                         "'%s' = %" PRId64 " is out of range [%" PRId64 ", %" PRId64 "]", f->name,
                         i, f->min, f->max);
                return -EINVAL;
            }
            *(int64_t *)(base + f->off) = i;
        }
        break;
    case POLICY_FIELD_BOOL:
        ok = lua_type(L, idx) == LUA_TBOOLEAN;
        if (ok)
            *(bool *)(base + f->off) = lua_toboolean(L, idx);
        break;
    case POLICY_FIELD_STR:
        ok = lua_type(L, idx) == LUA_TSTRING;
        if (ok)
            *(const char **)(base + f->off) = lua_tostring(L, idx);
        break;
    case POLICY_FIELD_NUM:
        ok = lua_type(L, idx) == LUA_TNUMBER;
        if (ok)
            *(double *)(base + f->off) = lua_tonumber(L, idx);
        break;
    case POLICY_FIELD_NAME: {
        size_t len = 0;
        ok = lua_type(L, idx) == LUA_TSTRING;
        const char *str = ok ? lua_tolstring(L, idx, &len) : NULL;
        if (ok && (len >= f->size || memchr(str, 0, len))) {
            util_err(err, errlen, "'%s' is longer than %zu bytes", f->name, f->size - 1);
            return -EINVAL;
        }
        if (ok)
            memcpy(base + f->off, str, len + 1);
        break;
    }
    case POLICY_FIELD_TABLE:
        ok = lua_type(L, idx) == LUA_TTABLE && !policy_conv_is_ref(L, idx, cv->null_ref);
        break;
    }
    if (!ok) {
        util_err(err, errlen, "'%s' must be %s, got %s", f->name, want[f->kind],
                 policy_conv_kind(L, idx));
        return -EINVAL;
    }
    if (f->has_off)
        *(bool *)(base + f->has_off - 1) = true;
    return 0;
}
