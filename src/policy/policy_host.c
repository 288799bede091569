/*
 * The Lua policy host: the only file that includes lua.h. It runs in the
 * policy worker process (policy_worker.c spawns it and calls it with a
 * deadline), never in the agent's event loop.
 *
 * One lua_State per policy generation, built from the texts the agent sends
 * (build, validate, answer). The state is bounded: a counting allocator with a
 * cap, an instruction budget reset before every call, only the base, string,
 * table, math and utf8 libraries, and policies run in per-file _ENV tables
 * built by the embedded lua/agent/sandbox.lua. Every call goes through
 * host_call(): protected, checked against a C schema; a failure is sent back
 * with its kind and message, and the agent then uses the built-in default of
 * policy_default.c. What the Lua budget cannot stop (a C library function that
 * never returns) the agent stops by killing this process.
 *
 * Messages (policy_wire.h framing; see policy_worker.c for the agent's side):
 *   LOAD  config, log level, examples?, quiet?, then per file: present?, path, text
 *     ->  ok?, error text, has_hook[POLICY_HOOK_COUNT]
 *   CALL  hook, the request of that hook
 *     ->  decided?, verdict, reason, failure kind, message, trace, then the answer
 *         (decided with verdict 0 only)
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "core/log.h"
#include "core/util.h"
#include "core/value.h"
#include "policy/policy.h"
#include "policy/policy_internal.h"
#include "policy/policy_lua_embedded.h"
#include "policy/policy_wire.h"

/* Bounds of one policy generation (the memory cap and deadlines are in policy_internal.h). */
#define STATE_MEMORY_CAP POLICY_STATE_MEMORY_CAP
#define HOOK_STEP 100            /* instructions between two budget ticks */
#define CALL_BUDGET_TICKS 50000  /* 5 M instructions per call */
#define LOAD_BUDGET_TICKS 500000 /* 50 M instructions per file at load, examples included */
/* Wall-clock bounds too: an instruction can be slow (a concatenation that
 * fails at the memory cap runs a full collection each time). */
#define CALL_DEADLINE_MS POLICY_CALL_DEADLINE_MS
#define LOAD_DEADLINE_MS POLICY_LOAD_DEADLINE_MS
#define LOCATION_MAX POLICY_LOCATION_MAX
/* Bounds of one answer converted to C: a table shared by several places of an
 * answer (`t = {t, t}` k times is 2^k nodes) or a string repeated many times
 * costs Lua nothing but C a copy each, so every value and byte is counted. */
#define ANSWER_MAX_VALUES ((size_t)1 << 18) /* values, keys included */
#define ANSWER_MAX_BYTES STATE_MEMORY_CAP   /* string bytes + sizeof(struct value) per value */
/* A request larger than this is refused by the worker (results are bounded by
 * the agent's frame cap before they get here). */
#define REQUEST_MAX ((size_t)1 << 30)
#define MAX_RUNTIMES 256 /* entries map_runtimes may answer */

#if LUA_VERSION_NUM != 504
#error "proctor's policy host needs Lua 5.4"
#endif

#define HOOK_COUNT POLICY_HOOK_COUNT
#define FILE_COUNT POLICY_FILE_COUNT

/** One loaded generation of policies. */
struct policy_state {
    lua_State *L;
    struct policy_config cfg;
    size_t mem_used, mem_cap;
    long ticks_left;
    long budget_ticks;
    uint64_t deadline_ms;
    bool exhausted;           /* the current call ran out of instructions */
    struct policy_shared *sh; /* where (file:line) and deadline, also read by the agent */
    const char *where_src;    /* what sh->where holds: source and line */
    int where_line;
    char budget_msg[LOCATION_MAX + 96];
    int hooks_ref; /* registry: { fn name = function } */
    /* the answer being converted to C (reset before each take) */
    size_t conv_values, conv_bytes;
    const void **seen; /* open addressing set of the answer's tables */
    size_t seen_cap, seen_len;
    int null_ref, empty_array_ref; /* registry: schema.null, schema.empty_array */
    bool has_hook[HOOK_COUNT];
};

struct call_ctx;
typedef void (*push_fn)(lua_State *L, struct call_ctx *c);
typedef int (*take_fn)(lua_State *L, int t, struct call_ctx *c);

/** One policy call: what host_call() needs, and what it found. */
struct call_ctx {
    enum policy_hook hook;
    struct policy_state *st;
    push_fn push; /* pushes the input table (may raise: runs protected) */
    take_fn take; /* checks the answer table at t: 0, or -EINVAL with err */
    const void *req;
    void *out;
    char *reason;
    size_t reasonlen;
    /* filled during the call */
    int verdict; /* 0 decided, -EPERM refused, -EINVAL rejected answer */
    char source[LOCATION_MAX];
    int line;
    char err[POLICY_REASON_MAX];
    /* when the call failed */
    enum policy_failure kind;
    char msg[POLICY_REASON_MAX + LOCATION_MAX];
    const char *trace; /* borrowed from the Lua stack until host_call_done() */
};

// Arguments of the hooks whose request is more than one C struct.
struct limits_call {
    const struct policy_config *cfg;
    const struct policy_limits_req *req;
};

struct runtimes_call {
    const char *const *names;
    size_t nnames;
    bool ssh;
    struct policy_runtime *out;
    size_t max, *nout;
};

struct results_call {
    const struct value *raw;
    const char *prev_state;
};

/** What the agent sent to load a generation. */
struct setup_ctx {
    struct policy_state *st;
    bool examples; /* run the files' examples (not when restarting a known-good generation) */
    bool quiet;    /* do not log what the first load already logged */
    const char *paths[FILE_COUNT]; /* NULL: no such file */
    const char *texts[FILE_COUNT];
    size_t lens[FILE_COUNT];
};

static bool host_call(struct policy_state *st, struct call_ctx *c);
static void host_call_done(struct policy_state *st, struct call_ctx *c);
static struct policy_state *state_new(struct setup_ctx *s, char *err, size_t errlen);
static void state_free(struct policy_state *st);
static void conv_reset(struct policy_state *st);
static void push_limits(lua_State *L, struct call_ctx *c);
static int take_limits(lua_State *L, int t, struct call_ctx *c);
static void push_student(lua_State *L, struct call_ctx *c);
static int take_student(lua_State *L, int t, struct call_ctx *c);
static void push_ports(lua_State *L, struct call_ctx *c);
static int take_ports(lua_State *L, int t, struct call_ctx *c);
static void push_runtimes(lua_State *L, struct call_ctx *c);
static int take_runtimes(lua_State *L, int t, struct call_ctx *c);
static void push_results(lua_State *L, struct call_ctx *c);
static int take_results(lua_State *L, int t, struct call_ctx *c);
static void push_hardening(lua_State *L, struct call_ctx *c);
static int take_hardening(lua_State *L, int t, struct call_ctx *c);

/* ---- allocator, budget, messages --------------------------------------- */

static struct policy_state *state_of(lua_State *L)
{
    void *ud = NULL;
    lua_getallocf(L, &ud);
    return ud;
}

// Counts every byte Lua holds and refuses growth past the cap; Lua turns the
// NULL into a memory error that the protected call catches.
static void *host_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    struct policy_state *st = ud;
    if (!ptr)
        osize = 0; // osize carries the object type when ptr is NULL
    if (nsize == 0) {
        free(ptr);
        st->mem_used -= osize;
        return NULL;
    }
    if (nsize > osize && st->mem_used + (nsize - osize) > st->mem_cap)
        return NULL;
    void *p = realloc(ptr, nsize);
    if (!p)
        return nsize <= osize ? ptr : NULL; // Lua assumes a shrink never fails
    st->mem_used = st->mem_used - osize + nsize;
    return p;
}

static int host_panic(lua_State *L)
{
    const char *msg = lua_tostring(L, -1);
    log_error(LOG_POLICY, "unprotected lua error: %s", msg ? msg : "(not a string)");
    PROCTOR_REQUIRE(!"lua error outside a protected call");
    return 0;
}

// Keeps sh->where at the policy's file:line (formatted only when it moves).
static void note_where(struct policy_state *st, const lua_Debug *ar)
{
    if (ar->currentline <= 0 || ar->source[0] != '@')
        return;
    if (ar->source == st->where_src && ar->currentline == st->where_line)
        return;
    st->where_src = ar->source;
    st->where_line = ar->currentline;
    snprintf(st->sh->where, sizeof st->sh->where, "%s:%d", ar->source + 1, ar->currentline);
}

// Every HOOK_STEP instructions: remember where the policy is, and stop it
// once its budget is spent. After that it fires on every instruction, so a
// policy cannot swallow the error with pcall and carry on. It also fires when
// a function is called: a C function that never returns cannot be stopped
// here, but the agent that kills this process then reads the line that
// called it from sh->where.
static void budget_hook(lua_State *L, lua_Debug *ar)
{
    struct policy_state *st = state_of(L);
    if (ar->event == LUA_HOOKCALL) {
        lua_Debug caller;
        if (!st->exhausted && lua_getinfo(L, "S", ar) && ar->what[0] == 'C' &&
            lua_getstack(L, 1, &caller) && lua_getinfo(L, "Sl", &caller))
            note_where(st, &caller);
        if (!st->exhausted)
            return;
    } else if (!st->exhausted && lua_getinfo(L, "Sl", ar)) {
        note_where(st, ar);
    }
    if (!st->exhausted && --st->ticks_left > 0 && util_now_ms() < st->deadline_ms)
        return;
    if (!st->exhausted) {
        const char *where = st->sh->where[0] ? st->sh->where : "policy";
        st->exhausted = true;
        if (st->ticks_left > 0)
            snprintf(st->budget_msg, sizeof st->budget_msg, "%s: time budget exhausted", where);
        else
            snprintf(st->budget_msg, sizeof st->budget_msg,
                     "%s: instruction budget exhausted (%ld instructions)", where,
                     st->budget_ticks * HOOK_STEP);
        lua_sethook(L, budget_hook, LUA_MASKCOUNT, 1);
    }
    lua_pushstring(L, st->budget_msg);
    lua_error(L);
}

static void budget_start(struct policy_state *st, long ticks, uint64_t deadline_ms)
{
    st->ticks_left = st->budget_ticks = ticks;
    st->deadline_ms = util_now_ms() + deadline_ms;
    st->sh->deadline_ms = st->deadline_ms; // the agent waits that long (plus a grace) for us
    st->exhausted = false;
    st->sh->where[0] = '\0';
    st->where_src = NULL;
    st->where_line = 0;
    lua_sethook(st->L, budget_hook, LUA_MASKCOUNT | LUA_MASKCALL, HOOK_STEP);
}

static void budget_stop(struct policy_state *st)
{
    lua_sethook(st->L, NULL, 0, 0);
}

// "path:12: text": does the message already say where it comes from?
static bool has_location(const char *msg)
{
    const char *colon = strchr(msg, ':');
    if (!colon || colon == msg || colon[1] < '0' || colon[1] > '9')
        return false;
    const char *p = colon + 1;
    while (*p >= '0' && *p <= '9')
        p++;
    return *p == ':';
}

// Message handler of every protected call: gives the message the file:line
// of the nearest policy frame when it has none (errors raised by C library
// functions), then appends a traceback.
static int l_policy_msgh(lua_State *L)
{
    struct policy_state *st = state_of(L);
    const char *msg;
    if (st->exhausted)
        msg = lua_pushstring(L, st->budget_msg); // msgh errobj budget_msg
    else if (lua_type(L, 1) == LUA_TSTRING)
        msg = lua_tostring(L, 1);
    else
        msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1)); // ... msg
    if (!has_location(msg)) {
        lua_Debug ar;
        for (int level = 0; lua_getstack(L, level, &ar); level++) {
            if (lua_getinfo(L, "Sl", &ar) && ar.currentline > 0 && ar.source[0] == '@') {
                msg =
                    lua_pushfstring(L, "%s:%d: %s", ar.source + 1, ar.currentline, msg); // ... msg
                break;
            }
        }
    }
    luaL_traceback(L, L, msg, 1); // ... msg traceback
    return 1;
}

// print() of a policy: one log line, with the policy's location.
static int l_policy_print(lua_State *L)
{
    int n = lua_gettop(L);
    luaL_Buffer b;
    luaL_buffinit(L, &b); // args... buffer
    for (int i = 1; i <= n; i++) {
        if (i > 1)
            luaL_addchar(&b, '\t');
        luaL_tolstring(L, i, NULL); // args... buffer str
        luaL_addvalue(&b);          // args... buffer
    }
    luaL_pushresult(&b); // args... line
    lua_Debug ar;
    char where[LOCATION_MAX] = "policy";
    if (lua_getstack(L, 1, &ar) && lua_getinfo(L, "Sl", &ar) && ar.source[0] == '@')
        snprintf(where, sizeof where, "%s:%d", ar.source + 1, ar.currentline);
    log_info(LOG_POLICY, "%s: %s", where, lua_tostring(L, -1));
    return 0;
}

// The first line of a traceback is the message itself.
static void copy_first_line(char *dst, size_t dstlen, const char *msg)
{
    size_t n = strcspn(msg, "\n");
    if (n >= dstlen)
        n = dstlen - 1;
    memcpy(dst, msg, n);
    dst[n] = '\0';
}

/* ---- value <-> Lua ------------------------------------------------------ */

// Builds the Lua form of v (see lua/agent/schema.lua); runs protected.
static void push_value(lua_State *L, struct policy_state *st, const struct value *v, int depth)
{
    if (depth > VALUE_MAX_DEPTH)
        luaL_error(L, "input nested more than %d levels", VALUE_MAX_DEPTH);
    luaL_checkstack(L, 4, "input nested too deeply");
    switch (v->type) {
    case VALUE_NIL:
        lua_rawgeti(L, LUA_REGISTRYINDEX, st->null_ref); // null
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
            lua_rawgeti(L, LUA_REGISTRYINDEX, st->empty_array_ref); // empty_array
            break;
        }
        lua_createtable(L, (int)(v->u.a.len > INT_MAX ? INT_MAX : v->u.a.len), 0); // arr
        for (size_t i = 0; i < v->u.a.len; i++) {
            push_value(L, st, &v->u.a.items[i], depth + 1); // arr item
            lua_rawseti(L, -2, (lua_Integer)i + 1);         // arr
        }
        break;
    case VALUE_MAP:
        lua_createtable(L, 0, (int)(v->u.m.len > INT_MAX ? INT_MAX : v->u.m.len)); // map
        for (size_t i = 0; i < v->u.m.len; i++) {
            push_value(L, st, &v->u.m.items[i].key, depth + 1); // map key
            push_value(L, st, &v->u.m.items[i].val, depth + 1); // map key val
            lua_rawset(L, -3);                                  // map (raises on a NaN key)
        }
        break;
    }
}

static bool is_ref(lua_State *L, int idx, int ref)
{
    idx = lua_absindex(L, idx);
    lua_rawgeti(L, LUA_REGISTRYINDEX, ref); // ... ref
    bool same = lua_rawequal(L, idx, -1);
    lua_pop(L, 1); // ...
    return same;
}

// Number n when the table at t is a sequence 1..n (n may be 0); -1 otherwise.
static lua_Integer sequence_length(lua_State *L, struct policy_state *st, int t)
{
    if (is_ref(L, t, st->empty_array_ref))
        return 0;
    if (lua_type(L, t) != LUA_TTABLE || is_ref(L, t, st->null_ref))
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

static void conv_reset(struct policy_state *st)
{
    st->conv_values = st->conv_bytes = 0;
    free(st->seen);
    st->seen = NULL;
    st->seen_cap = st->seen_len = 0;
}

// Counts `values` values and `bytes` string bytes of the answer against its caps.
static int conv_count(struct policy_state *st, size_t values, size_t bytes, char *err,
                      size_t errlen)
{
    st->conv_values += values;
    st->conv_bytes += bytes + values * sizeof(struct value);
    if (st->conv_values <= ANSWER_MAX_VALUES && st->conv_bytes <= ANSWER_MAX_BYTES)
        return 0;
    util_err(err, errlen, "answer larger than %zu values or %zu MiB", ANSWER_MAX_VALUES,
             ANSWER_MAX_BYTES >> 20);
    return -EINVAL;
}

static size_t ptr_slot(const void *p, size_t cap)
{
    uintptr_t h = (uintptr_t)p;
    h ^= h >> 17;
    h *= UINT64_C(0x9E3779B97F4A7C15);
    return (size_t)(h ^ (h >> 29)) & (cap - 1);
}

// Records the table at idx as part of the answer; a table met twice is an
// error of the answer (a shared subtree would be copied once per reference).
static int conv_table(lua_State *L, struct policy_state *st, int idx, char *err, size_t errlen)
{
    const void *p = lua_topointer(L, idx);
    if (2 * (st->seen_len + 1) > st->seen_cap) {
        size_t cap = st->seen_cap ? 2 * st->seen_cap : 64;
        const void **grown = xcalloc(cap, sizeof *grown);
        for (size_t i = 0; i < st->seen_cap; i++) {
            if (!st->seen[i])
                continue;
            size_t j = ptr_slot(st->seen[i], cap);
            while (grown[j])
                j = (j + 1) & (cap - 1);
            grown[j] = st->seen[i];
        }
        free(st->seen);
        st->seen = grown;
        st->seen_cap = cap;
    }
    size_t j = ptr_slot(p, st->seen_cap);
    for (; st->seen[j]; j = (j + 1) & (st->seen_cap - 1)) {
        if (st->seen[j] == p) {
            util_err(err, errlen, "the same table appears twice in the answer");
            return -EINVAL;
        }
    }
    st->seen[j] = p;
    st->seen_len++;
    return 0;
}

static struct value_pair *map_append(struct value *map)
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

static int to_value(lua_State *L, struct policy_state *st, int idx, struct value *out, int depth,
                    char *err, size_t errlen);

// The table at t as a MAP (keys converted too). `out` is valid (and owns what
// was converted) even on failure.
static int to_map(lua_State *L, struct policy_state *st, int t, struct value *out, int depth,
                  char *err, size_t errlen)
{
    int ret = 0, top = lua_gettop(L);
    value_set_map(out);
    lua_pushnil(L);                  // ... nil
    while (!ret && lua_next(L, t)) { // ... key val
        struct value_pair *p = map_append(out);
        ret = to_value(L, st, -2, &p->key, depth + 1, err, errlen);
        if (!ret)
            ret = to_value(L, st, -1, &p->val, depth + 1, err, errlen);
        lua_pop(L, 1); // ... key
    }
    lua_settop(L, top);
    return ret;
}

// Converts the Lua value at idx without raising (only non-allocating API).
static int to_value(lua_State *L, struct policy_state *st, int idx, struct value *out, int depth,
                    char *err, size_t errlen)
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
    ret = conv_count(st, 1, len, err, errlen);
    if (!ret && type == LUA_TTABLE && !is_ref(L, idx, st->null_ref) &&
        !is_ref(L, idx, st->empty_array_ref))
        ret = conv_table(L, st, idx, err, errlen);
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
        if (policy_utf8_valid(s, len))
            value_set_strn(out, s, len);
        else
            value_set_bin(out, s, len);
        break;
    }
    case LUA_TTABLE: {
        if (is_ref(L, idx, st->null_ref)) {
            value_set_nil(out);
            break;
        }
        lua_Integer n = sequence_length(L, st, idx);
        if (n == 0 && !is_ref(L, idx, st->empty_array_ref)) {
            value_set_map(out); // {}: an empty map, the common case in results
        } else if (n >= 0) {
            value_set_array(out);
            for (lua_Integer i = 1; !ret && i <= n; i++) {
                lua_rawgeti(L, idx, i); // ... item
                ret = to_value(L, st, -1, value_array_push(out), depth + 1, err, errlen);
                lua_pop(L, 1); // ...
            }
        } else {
            ret = to_map(L, st, idx, out, depth, err, errlen);
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

enum field_kind { FIELD_INT, FIELD_BOOL, FIELD_STR, FIELD_NUM, FIELD_TABLE };

struct field {
    const char *name;
    enum field_kind kind;
    int64_t min, max; /* FIELD_INT only */
    bool optional;    /* may be absent (its field_val then has seen == false) */
};

struct field_val {
    bool seen;
    int64_t i;
    bool b;
    double d;
    const char *s; /* borrowed from the answer table, which stays on the stack */
    size_t len;
};

static const char *lua_kind(lua_State *L, int idx)
{
    if (lua_type(L, idx) == LUA_TNUMBER)
        return lua_isinteger(L, idx) ? "integer" : "float";
    return luaL_typename(L, idx);
}

static int check_field(lua_State *L, struct policy_state *st, int idx, const struct field *f,
                       struct field_val *v, char *err, size_t errlen)
{
    static const char *const want[] = {"an integer", "a boolean", "a string", "a number",
                                       "a table"};
    bool ok = false;
    switch (f->kind) {
    case FIELD_INT:
        ok = lua_isinteger(L, idx);
        v->i = ok ? lua_tointeger(L, idx) : 0;
        if (ok && (v->i < f->min || v->i > f->max)) {
            util_err(err, errlen, "'%s' = %" PRId64 " is out of range [%" PRId64 ", %" PRId64 "]",
                     f->name, v->i, f->min, f->max);
            return -EINVAL;
        }
        break;
    case FIELD_BOOL:
        ok = lua_type(L, idx) == LUA_TBOOLEAN;
        v->b = lua_toboolean(L, idx);
        break;
    case FIELD_STR:
        ok = lua_type(L, idx) == LUA_TSTRING;
        v->s = ok ? lua_tolstring(L, idx, &v->len) : NULL;
        break;
    case FIELD_NUM:
        ok = lua_type(L, idx) == LUA_TNUMBER;
        v->d = lua_tonumber(L, idx);
        break;
    case FIELD_TABLE:
        ok = lua_type(L, idx) == LUA_TTABLE && !is_ref(L, idx, st->null_ref);
        break;
    }
    if (!ok) {
        util_err(err, errlen, "'%s' must be %s, got %s", f->name, want[f->kind], lua_kind(L, idx));
        return -EINVAL;
    }
    v->seen = true;
    return 0;
}

// Checks the answer table at t: string keys from `fields` only, each of its
// type and range, all present. Like knot's lua_table_checkindices, plus types.
static int read_fields(lua_State *L, struct policy_state *st, int t, const struct field *fields,
                       size_t n, struct field_val *vals, char *err, size_t errlen)
{
    int ret = 0, top = lua_gettop(L);
    memset(vals, 0, n * sizeof *vals);
    lua_pushnil(L);                  // ... nil
    while (!ret && lua_next(L, t)) { // ... key val
        size_t i = n;
        if (lua_type(L, -2) == LUA_TSTRING) {
            const char *key = lua_tostring(L, -2);
            for (i = 0; i < n && strcmp(fields[i].name, key) != 0; i++)
                ;
            if (i == n)
                util_err(err, errlen, "unknown key '%s'", key);
        } else {
            util_err(err, errlen, "unknown key of type %s", lua_kind(L, -2));
        }
        ret = i == n ? -EINVAL : check_field(L, st, -1, &fields[i], &vals[i], err, errlen);
        lua_pop(L, 1); // ... key
    }
    lua_settop(L, top);
    for (size_t i = 0; !ret && i < n; i++) {
        if (!vals[i].seen && !fields[i].optional) {
            util_err(err, errlen, "missing key '%s'", fields[i].name);
            ret = -EINVAL;
        }
    }
    return ret;
}

// Pushes field `name` of the table at t (a key read_fields already checked).
static int push_field(lua_State *L, int t, const char *name)
{
    lua_pushstring(L, name); // ... name
    return lua_rawget(L, t); // ... value
}

/* ---- input tables -------------------------------------------------------- */

static void set_int(lua_State *L, const char *key, int64_t v)
{
    lua_pushinteger(L, v);    // tbl v
    lua_setfield(L, -2, key); // tbl
}

static void set_bool(lua_State *L, const char *key, bool v)
{
    lua_pushboolean(L, v);    // tbl v
    lua_setfield(L, -2, key); // tbl
}

static void set_str(lua_State *L, const char *key, const char *v)
{
    if (!v)
        return;
    lua_pushstring(L, v);     // tbl v
    lua_setfield(L, -2, key); // tbl
}

/* ---- the call helper ----------------------------------------------------- */

// Runs protected: fetches the hook, builds a fresh input, runs the policy
// under its budget, and checks the answer.
static int l_policy_trampoline(lua_State *L)
{
    struct call_ctx *c = lua_touserdata(L, 1);
    struct policy_state *st = c->st;
    lua_rawgeti(L, LUA_REGISTRYINDEX, st->hooks_ref); // ctx hooks
    lua_getfield(L, -1, policy_hooks[c->hook].fn);    // ctx hooks fn
    lua_Debug ar;
    lua_pushvalue(L, -1);                                   // ctx hooks fn fn
    if (lua_getinfo(L, ">S", &ar) && ar.source[0] == '@') { // ctx hooks fn
        util_strlcpy(c->source, ar.source + 1, sizeof c->source);
        c->line = ar.linedefined;
    }
    c->push(L, c); // ctx hooks fn req
    budget_start(st, CALL_BUDGET_TICKS, CALL_DEADLINE_MS);
    lua_call(L, 1, 2); // ctx hooks answer reason
    budget_stop(st);
    if (lua_isnil(L, -2)) {
        if (lua_type(L, -1) != LUA_TSTRING) {
            util_err(c->err, sizeof c->err, "returned nil without a reason string");
            c->verdict = -EINVAL;
        } else {
            util_strlcpy(c->reason, lua_tostring(L, -1), c->reasonlen);
            c->verdict = -EPERM;
        }
    } else if (lua_type(L, -2) != LUA_TTABLE || is_ref(L, -2, st->null_ref)) {
        util_err(c->err, sizeof c->err, "returned a %s, not a table", lua_kind(L, -2));
        c->verdict = -EINVAL;
    } else if (!lua_isnil(L, -1)) {
        util_err(c->err, sizeof c->err, "returned a second value next to its answer");
        c->verdict = -EINVAL;
    } else {
        conv_reset(st);
        c->verdict = c->take(L, lua_absindex(L, -2), c);
        conv_reset(st);
    }
    return 0;
}

/**
 * True when the policy decided (c->verdict 0 or -EPERM); false when the
 * agent must use the built-in default (c->kind and c->msg say why). The Lua
 * stack keeps the answer (and c->trace) until host_call_done().
 */
static bool host_call(struct policy_state *st, struct call_ctx *c)
{
    lua_State *L = st->L;
    PROCTOR_REQUIRE(lua_gettop(L) == 0);
    c->st = st;
    c->verdict = -EINVAL;
    util_strlcpy(c->source, policy_hooks[c->hook].file, sizeof c->source);
    c->line = 0;
    c->err[0] = '\0';
    c->msg[0] = '\0';
    c->trace = NULL;
    lua_pushcfunction(L, l_policy_msgh);       // msgh
    lua_pushcfunction(L, l_policy_trampoline); // msgh tramp
    lua_pushlightuserdata(L, c);               // msgh tramp ctx
    int status = lua_pcall(L, 1, 0, 1);        // msgh [err]
    budget_stop(st);
    conv_reset(st); // when the conversion raised (out of memory)
    bool decided = status == LUA_OK && c->verdict != -EINVAL;
    if (!decided) {
        c->kind = POLICY_FAILURE_ERROR;
        if (status == LUA_OK) {
            c->kind = POLICY_FAILURE_ANSWER;
            util_err(c->msg, sizeof c->msg, "%s:%d: %s() answer rejected: %s", c->source, c->line,
                     policy_hooks[c->hook].fn, c->err);
        } else if (st->exhausted) {
            c->kind = POLICY_FAILURE_BUDGET;
            util_err(c->msg, sizeof c->msg, "%s", st->budget_msg);
        } else if (status == LUA_ERRMEM) {
            c->kind = POLICY_FAILURE_MEMORY;
            util_err(c->msg, sizeof c->msg, "%s: memory cap of %zu MiB reached (last seen at %s)",
                     c->source, STATE_MEMORY_CAP >> 20,
                     st->sh->where[0] ? st->sh->where : "the call's start");
        } else {
            c->trace = lua_tostring(L, -1);
            copy_first_line(c->msg, sizeof c->msg, c->trace ? c->trace : "(no message)");
        }
    }
    return decided;
}

static void host_call_done(struct policy_state *st, struct call_ctx *c)
{
    lua_settop(st->L, 0);
    if (c->msg[0])
        lua_gc(st->L, LUA_GCCOLLECT); // give back what a runaway policy took
    st->exhausted = false;
    c->trace = NULL;
}

/* ---- hooks: limits ------------------------------------------------------- */

static void push_limits(lua_State *L, struct call_ctx *c)
{
    const struct limits_call *lc = c->req;
    const struct policy_limits_req *req = lc->req;
    lua_createtable(L, 0, 10); // req
    if (req->has_time)
        set_int(L, "time_s", req->time_s);
    if (req->has_hard_time)
        set_int(L, "hard_time_s", req->hard_time_s);
    if (req->has_memory)
        set_int(L, "memory_mib", req->memory_mib);
    set_bool(L, "network_grading", req->network_grading);
    set_bool(L, "needs_ports", req->needs_ports);
    set_str(L, "environment_type", req->environment_type);
    set_str(L, "environment", req->environment);
    set_int(L, "max_memory_mib", policy_max_memory_per_slot(lc->cfg));
    set_int(L, "host_memory_mib", lc->cfg->host_memory_mib);
    set_int(L, "concurrency", lc->cfg->concurrency);
}

static const struct field limits_fields[] = {
    {"time_s", FIELD_INT, 1, POLICY_MAX_SECONDS, false},
    {"hard_time_s", FIELD_INT, 1, POLICY_MAX_SECONDS, false},
    {"memory_mib", FIELD_INT, POLICY_MIN_MEMORY_MIB, INT64_MAX, false},
    {"network", FIELD_BOOL, 0, 0, false},
};

static int take_limits(lua_State *L, int t, struct call_ctx *c)
{
    struct field_val v[ARRAY_SIZE(limits_fields)];
    int ret = read_fields(L, c->st, t, limits_fields, ARRAY_SIZE(v), v, c->err, sizeof c->err);
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

static void push_student(lua_State *L, struct call_ctx *c)
{
    const struct policy_student_req *req = c->req;
    lua_createtable(L, 0, 7); // req
    set_int(L, "parent_time_s", req->parent_time_s);
    set_int(L, "parent_hard_time_s", req->parent_hard_time_s);
    set_int(L, "parent_memory_mib", req->parent_memory_mib);
    set_int(L, "time_s", req->time_s);
    set_int(L, "hard_time_s", req->hard_time_s);
    set_int(L, "memory_mib", req->memory_mib);
    set_str(L, "environment", req->environment);
}

static const struct field student_fields[] = {
    {"time_s", FIELD_INT, 1, POLICY_MAX_SECONDS, false},
    {"hard_time_s", FIELD_INT, 1, POLICY_MAX_SECONDS, false},
    {"memory_mib", FIELD_INT, POLICY_MIN_MEMORY_MIB, INT64_MAX, false},
};

static int take_student(lua_State *L, int t, struct call_ctx *c)
{
    struct field_val v[ARRAY_SIZE(student_fields)];
    int ret = read_fields(L, c->st, t, student_fields, ARRAY_SIZE(v), v, c->err, sizeof c->err);
    if (!ret) {
        struct policy_student_limits *out = c->out;
        out->time_s = v[0].i;
        out->hard_time_s = v[1].i;
        out->memory_mib = v[2].i;
    }
    return ret;
}

/* ---- hooks: ports -------------------------------------------------------- */

static void push_ports(lua_State *L, struct call_ctx *c)
{
    const struct policy_ports_req *req = c->req;
    lua_createtable(L, 0, 3); // req
    set_str(L, "job_id", req->job_id);
    set_int(L, "count", (int64_t)req->count);
    lua_createtable(L, (int)(req->nfree > INT_MAX ? INT_MAX : req->nfree), 0); // req free
    for (size_t i = 0; i < req->nfree; i++) {
        lua_pushinteger(L, req->free[i]);       // req free port
        lua_rawseti(L, -2, (lua_Integer)i + 1); // req free
    }
    lua_setfield(L, -2, "free"); // req
}

static const struct field ports_fields[] = {{"ports", FIELD_TABLE, 0, 0, false}};

static int take_ports(lua_State *L, int t, struct call_ctx *c)
{
    const struct policy_ports_req *req = c->req;
    uint16_t *chosen = c->out;
    struct field_val v[1];
    int ret = read_fields(L, c->st, t, ports_fields, 1, v, c->err, sizeof c->err);
    if (ret)
        return ret;
    push_field(L, t, "ports"); // ... ports
    int p = lua_gettop(L);
    lua_Integer n = sequence_length(L, c->st, p);
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

static void push_runtimes(lua_State *L, struct call_ctx *c)
{
    const struct runtimes_call *rc = c->req;
    lua_createtable(L, 0, 2);                                                  // req
    lua_createtable(L, (int)(rc->nnames > INT_MAX ? INT_MAX : rc->nnames), 0); // req names
    for (size_t i = 0; i < rc->nnames; i++) {
        lua_pushstring(L, rc->names[i] ? rc->names[i] : ""); // req names name
        lua_rawseti(L, -2, (lua_Integer)i + 1);              // req names
    }
    lua_setfield(L, -2, "runtimes"); // req
    set_bool(L, "ssh", rc->ssh);
}

static const struct field runtimes_fields[] = {{"runtimes", FIELD_TABLE, 0, 0, false}};
static const struct field runtime_entry_fields[] = {
    {"runtime", FIELD_STR, 0, 0, false},        {"envtype", FIELD_STR, 0, 0, false},
    {"run_as_root", FIELD_BOOL, 0, 0, false},   {"enables_gpu", FIELD_BOOL, 0, 0, false},
    {"shared_kernel", FIELD_BOOL, 0, 0, false},
};

static int take_runtime_entry(lua_State *L, struct policy_state *st, int e,
                              const struct runtimes_call *rc, size_t i, char *err, size_t errlen)
{
    struct policy_runtime *out = rc->out;
    struct field_val v[ARRAY_SIZE(runtime_entry_fields)];
    int ret = read_fields(L, st, e, runtime_entry_fields, ARRAY_SIZE(v), v, err, errlen);
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

static int take_runtimes(lua_State *L, int t, struct call_ctx *c)
{
    const struct runtimes_call *rc = c->req;
    struct policy_state *st = c->st;
    struct field_val v[1];
    int ret = read_fields(L, st, t, runtimes_fields, 1, v, c->err, sizeof c->err);
    if (ret)
        return ret;
    push_field(L, t, "runtimes"); // ... list
    int list = lua_gettop(L);
    lua_Integer n = sequence_length(L, st, list);
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
                take_runtime_entry(L, st, lua_gettop(L), rc, (size_t)i - 1, c->err, sizeof c->err);
        }
        lua_pop(L, 1); // ... list
    }
    if (!ret)
        *rc->nout = (size_t)n;
    return ret;
}

/* ---- hooks: results ------------------------------------------------------ */

static void push_results(lua_State *L, struct call_ctx *c)
{
    const struct results_call *rc = c->req;
    lua_createtable(L, 0, 2); // req
    if (rc->raw) {
        push_value(L, c->st, rc->raw, 0); // req result
        lua_setfield(L, -2, "result");    // req
    }
    set_str(L, "prev_state", rc->prev_state ? rc->prev_state : "");
}

static const struct field results_fields[] = {
    {"result", FIELD_STR, 0, 0, false},  {"text", FIELD_STR, 0, 0, false},
    {"grade", FIELD_NUM, 0, 0, false},   {"problems", FIELD_TABLE, 0, 0, false},
    {"tests", FIELD_TABLE, 0, 0, false}, {"custom", FIELD_TABLE, 0, 0, false},
    {"state", FIELD_STR, 0, 0, false},
};

// problems: a map of string ids to { result, text }.
static int take_problems(lua_State *L, struct policy_state *st, int t, struct value *out, char *err,
                         size_t errlen)
{
    int ret = conv_table(L, st, t, err, errlen), top = lua_gettop(L);
    value_set_map(out);
    lua_pushnil(L);                  // ... nil
    while (!ret && lua_next(L, t)) { // ... id fb
        if (lua_type(L, -2) != LUA_TSTRING) {
            util_err(err, errlen, "problems: key of type %s is not a string", lua_kind(L, -2));
            ret = -EINVAL;
            break;
        }
        int fb = lua_gettop(L);
        if (sequence_length(L, st, fb) != 2) {
            util_err(err, errlen, "problems.%s must be { result, text }", lua_tostring(L, -2));
            ret = -EINVAL;
            break;
        }
        size_t len;
        lua_tolstring(L, -2, &len);
        ret = conv_table(L, st, fb, err, errlen);
        if (!ret)
            ret = conv_count(st, 2, len, err, errlen); // the id, the pair
        if (ret)
            break;
        struct value_pair *p = map_append(out);
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
                ret = conv_count(st, 1, len, err, errlen);
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
static int take_map(lua_State *L, struct policy_state *st, int t, struct value *out, char *err,
                    size_t errlen)
{
    int ret = conv_table(L, st, t, err, errlen);
    if (!ret)
        ret = conv_count(st, 1, 0, err, errlen);
    if (!ret)
        ret = to_map(L, st, t, out, 1, err, errlen);
    else
        value_set_map(out);
    return ret;
}

// tests: string keys, any convertible values.
static int take_tests(lua_State *L, struct policy_state *st, int t, struct value *out, char *err,
                      size_t errlen)
{
    int ret = take_map(L, st, t, out, err, errlen);
    for (size_t i = 0; !ret && i < out->u.m.len; i++) {
        if (out->u.m.items[i].key.type != VALUE_STR) {
            util_err(err, errlen, "tests: key of type %s is not a string",
                     value_type_name(out->u.m.items[i].key.type));
            ret = -EINVAL;
        }
    }
    return ret;
}

static int take_results(lua_State *L, int t, struct call_ctx *c)
{
    struct policy_state *st = c->st;
    struct policy_result *out = c->out;
    struct field_val v[ARRAY_SIZE(results_fields)];
    int ret = read_fields(L, st, t, results_fields, ARRAY_SIZE(v), v, c->err, sizeof c->err);
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
    push_field(L, t, "problems"); // ... problems
    ret = take_problems(L, st, lua_gettop(L), &out->problems, c->err, sizeof c->err);
    push_field(L, t, "tests"); // ... problems tests
    if (!ret)
        ret = take_tests(L, st, lua_gettop(L), &out->tests, c->err, sizeof c->err);
    push_field(L, t, "custom"); // ... problems tests custom
    if (!ret)
        ret = take_map(L, st, lua_gettop(L), &out->custom, c->err, sizeof c->err);
    return ret;
}

/* ---- hooks: hardening ---------------------------------------------------- */

static void push_hardening(lua_State *L, struct call_ctx *c)
{
    const struct policy_hardening_req *req = c->req;
    lua_createtable(L, 0, 4); // req
    set_str(L, "environment", req->environment);
    set_bool(L, "student", req->student);
    set_int(L, "memory_mib", req->memory_mib);
    set_bool(L, "network", req->network);
}

static const struct field hardening_fields[] = {
    {"pids_limit", FIELD_INT, 0, POLICY_MAX_PIDS, false},
    {"no_new_privileges", FIELD_BOOL, 0, 0, false},
    {"cap_drop", FIELD_TABLE, 0, 0, false},
    {"nofile_soft", FIELD_INT, 0, POLICY_MAX_NOFILE, false},
    {"nofile_hard", FIELD_INT, 0, POLICY_MAX_NOFILE, false},
    {"max_output_bytes", FIELD_INT, 1, INT64_MAX, false},
    {"max_frame_bytes", FIELD_INT, 1, INT64_MAX, false},
    // Optional, so that hardening files written before they existed keep deciding;
    // above the hard caps is cut by policy_cap_hardening, below 1 is nonsense.
    {"max_students", FIELD_INT, 1, INT64_MAX, true},
    {"max_students_total", FIELD_INT, 1, INT64_MAX, true},
};

static int take_caps(lua_State *L, struct policy_state *st, int list, struct policy_hardening *out,
                     char *err, size_t errlen)
{
    lua_Integer n = sequence_length(L, st, list);
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

static int take_hardening(lua_State *L, int t, struct call_ctx *c)
{
    struct policy_state *st = c->st;
    struct policy_hardening *out = c->out;
    struct field_val v[ARRAY_SIZE(hardening_fields)];
    int ret = read_fields(L, st, t, hardening_fields, ARRAY_SIZE(v), v, c->err, sizeof c->err);
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
    policy_default_student_caps(c->req, out);
    if (v[7].seen)
        out->max_students = v[7].i;
    if (v[8].seen)
        out->max_students_total = v[8].i;
    push_field(L, t, "cap_drop"); // ... caps
    return take_caps(L, st, lua_gettop(L), out, c->err, sizeof c->err);
}

/* ---- loading a generation ------------------------------------------------ */

static void open_library(lua_State *L, const char *name, lua_CFunction open)
{
    luaL_requiref(L, name, open, 1); // lib
    lua_pop(L, 1);                   //
}

// Runs an embedded host module and checks that it matches this binary.
static void load_host_module(lua_State *L, int mods, size_t i)
{
    const struct policy_lua_module *m = &policy_lua_modules[i];
    char chunkname[64];
    snprintf(chunkname, sizeof chunkname, "=[proctor]/%s.lua", m->name);
    if (luaL_loadbufferx(L, (const char *)m->text, m->len, chunkname, "t") != LUA_OK) // ... fn|err
        lua_error(L);
    lua_call(L, 0, 1); // ... mod
    if (lua_type(L, -1) != LUA_TTABLE)
        luaL_error(L, "embedded %s.lua did not return a table", m->name);
    lua_getfield(L, -1, "API_VERSION"); // ... mod version
    if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) != POLICY_LUA_API_VERSION)
        luaL_error(L, "embedded %s.lua has API_VERSION %s, this binary needs %d", m->name,
                   luaL_tolstring(L, -1, NULL), POLICY_LUA_API_VERSION);
    lua_pop(L, 1);                  // ... mod
    lua_setfield(L, mods, m->name); // ...
}

// Stores the hook functions of one loaded policy table into the hooks table.
static void register_hooks(lua_State *L, struct setup_ctx *s, const char *file, int policy,
                           int hooks_tbl)
{
    struct policy_state *st = s->st;
    lua_getfield(L, policy, "functions"); // ... functions
    for (size_t h = 0; h < HOOK_COUNT; h++) {
        if (strcmp(policy_hooks[h].file, file) != 0)
            continue;
        if (lua_getfield(L, -1, policy_hooks[h].fn) == LUA_TFUNCTION) { // ... functions fn
            lua_setfield(L, hooks_tbl, policy_hooks[h].fn);             // ... functions
            st->has_hook[h] = true;
        } else {
            lua_pop(L, 1); // ... functions
            if (!s->quiet)
                log_info(LOG_POLICY, "%s.lua defines no %s(): the built-in default is used", file,
                         policy_hooks[h].fn);
        }
    }
    lua_pop(L, 1); // ...
}

// Builds a generation, protected: libraries, host modules, sandbox base, and
// every policy file through loader.load_policy under the load-time budget.
static int l_state_setup(lua_State *L)
{
    struct setup_ctx *s = lua_touserdata(L, 1);
    struct policy_state *st = s->st;
    open_library(L, LUA_GNAME, luaopen_base);
    open_library(L, LUA_STRLIBNAME, luaopen_string);
    open_library(L, LUA_TABLIBNAME, luaopen_table);
    open_library(L, LUA_MATHLIBNAME, luaopen_math);
    open_library(L, LUA_UTF8LIBNAME, luaopen_utf8);
    lua_newtable(L); // ctx mods
    int mods = lua_gettop(L);
    for (size_t i = 0; i < ARRAY_SIZE(policy_lua_modules); i++)
        load_host_module(L, mods, i);
    lua_getfield(L, mods, "loader");  // ctx mods loader
    lua_getfield(L, -1, "init");      // ctx mods loader init
    lua_getfield(L, mods, "schema");  // ctx mods loader init schema
    lua_getfield(L, mods, "sandbox"); // ctx mods loader init schema sandbox
    lua_call(L, 2, 0);                // ctx mods loader
    lua_pop(L, 1);                    // ctx mods

    lua_getfield(L, mods, "sandbox");                // ctx mods sandbox
    lua_getfield(L, -1, "protect_string_metatable"); // ctx mods sandbox fn
    lua_pushglobaltable(L);                          // ctx mods sandbox fn G
    lua_call(L, 1, 0);                               // ctx mods sandbox
    lua_getfield(L, -1, "new_base");                 // ctx mods sandbox new_base
    lua_pushglobaltable(L);                          // ctx mods sandbox new_base G
    lua_createtable(L, 0, 3);                        // ctx mods sandbox new_base G opts
    lua_pushcfunction(L, l_policy_print);            // ... opts print
    lua_setfield(L, -2, "print");                    // ... opts
    lua_getfield(L, mods, "units");                  // ... opts units
    lua_setfield(L, -2, "units");                    // ... opts
    lua_getfield(L, mods, "schema");                 // ... opts schema
    lua_setfield(L, -2, "schema");                   // ... opts
    lua_call(L, 2, 1);                               // ctx mods sandbox base
    int base = lua_gettop(L);

    lua_getfield(L, mods, "schema");                      // ... base schema
    lua_getfield(L, -1, "null");                          // ... base schema null
    st->null_ref = luaL_ref(L, LUA_REGISTRYINDEX);        // ... base schema
    lua_getfield(L, -1, "empty_array");                   // ... base schema ea
    st->empty_array_ref = luaL_ref(L, LUA_REGISTRYINDEX); // ... base schema
    lua_pop(L, 1);                                        // ... base
    lua_newtable(L);                                      // ... base hooks
    lua_pushvalue(L, -1);                                 // ... base hooks hooks
    st->hooks_ref = luaL_ref(L, LUA_REGISTRYINDEX);       // ... base hooks
    int hooks_tbl = lua_gettop(L);

    for (size_t i = 0; i < FILE_COUNT; i++) {
        if (!s->paths[i])
            continue;
        lua_getfield(L, mods, "loader");             // ... loader
        lua_getfield(L, -1, "load_policy");          // ... loader load
        lua_pushstring(L, policy_files[i]);          // ... loader load name
        lua_pushlstring(L, s->texts[i], s->lens[i]); // ... loader load name text
        lua_pushfstring(L, "@%s", s->paths[i]);      // ... loader load name text chunk
        lua_pushvalue(L, base);                      // ... loader load name text chunk base
        lua_pushboolean(L, !s->examples);            // ... loader load name text chunk base skip
        budget_start(st, LOAD_BUDGET_TICKS, LOAD_DEADLINE_MS);
        lua_call(L, 5, 1); // ... loader policy
        budget_stop(st);
        register_hooks(L, s, policy_files[i], lua_gettop(L), hooks_tbl);
        lua_pop(L, 2); // ...
    }
    return 0;
}

static void state_free(struct policy_state *st)
{
    if (!st)
        return;
    if (st->L)
        lua_close(st->L);
    conv_reset(st);
    free(st);
}

// A fresh generation from the texts in s.
static struct policy_state *state_new(struct setup_ctx *s, char *err, size_t errlen)
{
    struct policy_state *st = s->st;
    int ret = 0;
    st->mem_cap = STATE_MEMORY_CAP;
    st->L = lua_newstate(host_alloc, st);
    if (!st->L) {
        util_err(err, errlen, "cannot create a Lua state");
        ret = -ENOMEM;
    }
    if (!ret) {
        lua_State *L = st->L;
        lua_atpanic(L, host_panic);
        lua_pushcfunction(L, l_policy_msgh); // msgh
        lua_pushcfunction(L, l_state_setup); // msgh setup
        lua_pushlightuserdata(L, s);         // msgh setup ctx
        int status = lua_pcall(L, 1, 0, 1);  // msgh [err]
        budget_stop(st);
        if (status != LUA_OK) {
            if (st->exhausted)
                util_err(err, errlen, "%s", st->budget_msg);
            else if (status == LUA_ERRMEM)
                util_err(err, errlen, "%s: memory cap of %zu MiB reached while loading",
                         st->sh->where[0] ? st->sh->where : "policies", STATE_MEMORY_CAP >> 20);
            else
                copy_first_line(err, errlen, lua_tostring(L, -1) ? lua_tostring(L, -1) : "?");
            if (status != LUA_ERRMEM && !st->exhausted && lua_tostring(L, -1))
                log_debug(LOG_POLICY, "%s", lua_tostring(L, -1));
            ret = -EINVAL;
        }
        lua_settop(L, 0);
        st->exhausted = false;
        lua_gc(L, LUA_GCCOLLECT);
    }
    if (ret) {
        state_free(st);
        st = NULL;
    }
    return st;
}

/* ---- the worker: requests in, answers out -------------------------------- */

// The header every CALL answer starts with.
static void put_verdict(struct buf *b, bool decided, const struct call_ctx *c)
{
    wire_u8(b, decided);
    wire_i64(b, c->verdict);
    wire_str(b, decided && c->verdict == -EPERM ? c->reason : NULL);
    wire_u8(b, decided ? 0 : (uint8_t)c->kind);
    wire_str(b, decided ? NULL : c->msg);
    wire_str(b, decided ? NULL : c->trace);
}

static void put_results(struct buf *b, const struct policy_result *r)
{
    wire_str(b, r->result);
    wire_str(b, r->text);
    wire_str(b, r->state);
    wire_f64(b, r->grade);
    wire_value(b, &r->problems);
    wire_value(b, &r->tests);
    wire_value(b, &r->custom);
}

// Decodes one CALL request, runs it and writes its answer into b.
// -EINVAL: a malformed request (the agent and the worker disagree: give up).
static int serve_call(struct policy_state *st, struct wire_rd *r, struct buf *b)
{
    int ret = 0;
    char reason[POLICY_REASON_MAX] = "";
    struct call_ctx c = {.reason = reason, .reasonlen = sizeof reason};
    union {
        struct policy_limits limits;
        struct policy_student_limits student;
        struct policy_hardening hardening;
        struct policy_result results;
    } out;
    memset(&out, 0, sizeof out);
    struct policy_limits_req lreq;
    struct limits_call lc = {&st->cfg, &lreq};
    struct policy_student_req sreq;
    struct policy_hardening_req hreq;
    struct policy_ports_req preq = {0};
    uint16_t *free_ports = NULL, chosen[POLICY_MAX_PORTS];
    struct runtimes_call rc = {0};
    const char **names = NULL;
    struct policy_runtime *runtimes = NULL;
    size_t nruntimes = 0;
    struct value raw;
    struct results_call resc = {NULL, NULL};
    bool decided = false;
    value_set_nil(&raw);

    c.hook = (enum policy_hook)wire_get_u8(r);
    switch (c.hook) {
    case POLICY_HOOK_LIMITS:
        wire_get_raw(r, &lreq, sizeof lreq);
        lreq.environment_type = wire_get_str(r, NULL);
        lreq.environment = wire_get_str(r, NULL);
        c.push = push_limits;
        c.take = take_limits;
        c.req = &lc;
        c.out = &out.limits;
        break;
    case POLICY_HOOK_STUDENT:
        wire_get_raw(r, &sreq, sizeof sreq);
        sreq.environment = wire_get_str(r, NULL);
        c.push = push_student;
        c.take = take_student;
        c.req = &sreq;
        c.out = &out.student;
        break;
    case POLICY_HOOK_HARDENING:
        wire_get_raw(r, &hreq, sizeof hreq);
        hreq.environment = wire_get_str(r, NULL);
        c.push = push_hardening;
        c.take = take_hardening;
        c.req = &hreq;
        c.out = &out.hardening;
        break;
    case POLICY_HOOK_PORTS: {
        preq.job_id = wire_get_str(r, NULL);
        preq.count = (size_t)wire_get_i64(r);
        int64_t nfree = wire_get_i64(r);
        if (nfree < 0 || nfree > 65536 || preq.count > POLICY_MAX_PORTS) {
            r->bad = true;
            break;
        }
        preq.nfree = (size_t)nfree;
        free_ports = xcalloc(preq.nfree + 1, sizeof *free_ports);
        wire_get_raw(r, free_ports, preq.nfree * sizeof *free_ports);
        preq.free = free_ports;
        c.push = push_ports;
        c.take = take_ports;
        c.req = &preq;
        c.out = chosen;
        break;
    }
    case POLICY_HOOK_RUNTIMES: {
        rc.ssh = wire_get_u8(r);
        int64_t max = wire_get_i64(r), n = wire_get_i64(r);
        if (max < 0 || max > MAX_RUNTIMES || n < 0 || (uint64_t)n > r->len - r->off) {
            r->bad = true;
            break;
        }
        names = xcalloc((size_t)n + 1, sizeof *names);
        for (int64_t i = 0; i < n; i++)
            names[i] = wire_get_str(r, NULL);
        runtimes = xcalloc((size_t)max + 1, sizeof *runtimes);
        rc.names = names;
        rc.nnames = (size_t)n;
        rc.out = runtimes;
        rc.max = (size_t)max;
        rc.nout = &nruntimes;
        c.push = push_runtimes;
        c.take = take_runtimes;
        c.req = &rc;
        c.out = runtimes;
        break;
    }
    case POLICY_HOOK_RESULTS:
        if (wire_get_u8(r)) {
            wire_get_value(r, &raw);
            resc.raw = &raw;
        }
        resc.prev_state = wire_get_str(r, NULL);
        c.push = push_results;
        c.take = take_results;
        c.req = &resc;
        c.out = &out.results;
        break;
    default:
        r->bad = true;
    }
    if (r->bad || !st->has_hook[c.hook]) {
        ret = -EINVAL;
        goto out;
    }
    decided = host_call(st, &c);
    put_verdict(b, decided, &c);
    if (decided && c.verdict == 0) {
        switch (c.hook) {
        case POLICY_HOOK_LIMITS:
            wire_raw(b, &out.limits, sizeof out.limits);
            break;
        case POLICY_HOOK_STUDENT:
            wire_raw(b, &out.student, sizeof out.student);
            break;
        case POLICY_HOOK_HARDENING:
            wire_raw(b, &out.hardening, sizeof out.hardening);
            break;
        case POLICY_HOOK_PORTS:
            wire_raw(b, chosen, preq.count * sizeof *chosen);
            break;
        case POLICY_HOOK_RUNTIMES:
            wire_i64(b, (int64_t)nruntimes);
            wire_raw(b, runtimes, nruntimes * sizeof *runtimes);
            break;
        case POLICY_HOOK_RESULTS:
            put_results(b, &out.results);
            break;
        case POLICY_HOOK_COUNT:
            break;
        }
    }
    host_call_done(st, &c);
out:
    if (c.hook == POLICY_HOOK_RESULTS)
        policy_result_deinit(&out.results);
    value_deinit(&raw);
    free(free_ports);
    free(names);
    free(runtimes);
    return ret;
}

// LOAD: builds the generation. NULL (and the reason in err) when it fails.
static struct policy_state *serve_load(struct wire_rd *r, struct policy_shared *sh, char *err,
                                       size_t errlen)
{
    struct setup_ctx s = {0};
    struct policy_state *st = xcalloc(1, sizeof *st);
    st->sh = sh;
    wire_get_raw(r, &st->cfg, sizeof st->cfg);
    int level = wire_get_u8(r);
    s.examples = wire_get_u8(r);
    s.quiet = wire_get_u8(r);
    for (size_t i = 0; i < FILE_COUNT; i++) {
        if (!wire_get_u8(r))
            continue;
        s.paths[i] = wire_get_str(r, NULL);
        s.texts[i] = wire_get_str(r, &s.lens[i]);
        if (!s.paths[i] || !s.texts[i])
            r->bad = true;
    }
    if (r->bad || level > LOG_LEVEL_ERROR) {
        util_err(err, errlen, "malformed load request");
        free(st);
        return NULL;
    }
    log_set_level((enum log_level)level);
    s.st = st;
    return state_new(&s, err, errlen);
}

int policy_worker_serve(int sock, struct policy_shared *sh)
{
    struct policy_state *st = NULL;
    struct buf b = {0};
    char *msg = NULL;
    size_t len = 0;
    int ret = wire_recv(sock, &msg, &len, REQUEST_MAX, NULL);
    if (!ret) {
        char err[POLICY_REASON_MAX + LOCATION_MAX] = "";
        struct wire_rd r;
        wire_rd_init(&r, msg, len);
        if (wire_get_u8(&r) == POLICY_OP_LOAD)
            st = serve_load(&r, sh, err, sizeof err);
        else
            util_err(err, sizeof err, "the first request must be a load");
        sh->deadline_ms = 0; // nothing budgeted runs until the next call
        wire_u8(&b, st != NULL);
        wire_str(&b, err);
        for (size_t h = 0; h < HOOK_COUNT; h++)
            wire_u8(&b, st && st->has_hook[h]);
        ret = wire_send(sock, &b, NULL);
    }
    // A generation that failed to load is done: the agent drops this worker.
    while (!ret && st) {
        free(msg);
        msg = NULL;
        b.len = 0;
        ret = wire_recv(sock, &msg, &len, REQUEST_MAX, NULL);
        struct wire_rd r;
        wire_rd_init(&r, msg, len);
        if (!ret && wire_get_u8(&r) != POLICY_OP_CALL)
            ret = -EINVAL;
        if (!ret)
            ret = serve_call(st, &r, &b);
        sh->deadline_ms = 0;
        if (!ret)
            ret = wire_send(sock, &b, NULL);
    }
    free(msg);
    free(b.data);
    state_free(st);
    // The agent closing the socket is the normal end.
    return ret && ret != -EPIPE ? 1 : 0;
}
