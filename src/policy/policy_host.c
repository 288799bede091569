/*
 * The Lua policy host, in the policy worker process (policy_worker.c spawns
 * it and calls it with a deadline; policy_serve.c reads its requests), never
 * in the agent's event loop.
 *
 * One lua_State per policy generation, built from the texts the agent sends
 * (build, validate, answer). The state is bounded: a counting allocator with a
 * cap, an instruction budget reset before every call, only the base, string,
 * table, math and utf8 libraries, and policies run in per-file _ENV tables
 * built by the embedded lua/agent/sandbox.lua. Every call goes through
 * policy_state_call(): protected, its answer checked against a C schema
 * (policy_calls.c); a failure is sent back with its kind and message, and the
 * agent then uses the built-in default (policy_builtin.c, which runs the
 * shipped files through this same code in the agent's process). What the Lua
 * budget cannot stop (a C library function that never returns) the agent
 * stops by killing this process.
 */
#include "policy/policy_host.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>

#include "core/log.h"
#include "core/util.h"
#include "policy/policy_lua_embedded.h"
#include "policy/policy_shipped_embedded.h"

#define HOOK_STEP 100            /* instructions between two budget ticks */
#define CALL_BUDGET_TICKS 50000  /* 5 M instructions per call */
#define LOAD_BUDGET_TICKS 500000 /* 50 M instructions per file at load, examples included */
/* Wall-clock bounds too (POLICY_CALL_DEADLINE_MS, POLICY_LOAD_DEADLINE_MS): an
 * instruction can be slow (a concatenation that fails at the memory cap runs a
 * full collection each time). */

#if LUA_VERSION_NUM != 504
#error "proctor's policy host needs Lua 5.4"
#endif

static void *host_alloc(void *ud, void *ptr, size_t osize, size_t nsize);
static int host_panic(lua_State *L);
static void budget_stop(struct policy_state *st);
static int l_policy_msgh(lua_State *L);
static int l_policy_trampoline(lua_State *L);
static int l_state_setup(lua_State *L);
static void copy_first_line(char *dst, size_t dstlen, const char *msg);

/* ---- public --------------------------------------------------------------- */

struct policy_state *policy_state_new(struct policy_setup *s, char *err, size_t errlen)
{
    struct policy_state *st = s->st;
    int ret = 0;
    st->mem_cap = s->mem_cap ? s->mem_cap : POLICY_STATE_MEMORY_CAP;
    st->call_ticks = s->call_ticks ? s->call_ticks : CALL_BUDGET_TICKS;
    st->call_deadline_ms = s->call_deadline_ms ? s->call_deadline_ms : POLICY_CALL_DEADLINE_MS;
    st->in_agent = s->in_agent;
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
                         st->sh->where[0] ? st->sh->where : "policies",
                         POLICY_STATE_MEMORY_CAP >> 20);
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
        policy_state_free(st);
        st = NULL;
    }
    return st;
}

void policy_state_free(struct policy_state *st)
{
    if (!st)
        return;
    if (st->L)
        lua_close(st->L);
    policy_conv_reset(&st->conv);
    free(st);
}

bool policy_state_call(struct policy_state *st, struct policy_call *c)
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
    policy_conv_reset(&st->conv); // when the conversion raised (out of memory)
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
                     c->source, POLICY_STATE_MEMORY_CAP >> 20,
                     st->sh->where[0] ? st->sh->where : "the call's start");
        } else {
            c->trace = lua_tostring(L, -1);
            copy_first_line(c->msg, sizeof c->msg, c->trace ? c->trace : "(no message)");
        }
    }
    return decided;
}

void policy_state_call_done(struct policy_state *st, struct policy_call *c)
{
    lua_settop(st->L, 0);
    if (c->msg[0])
        lua_gc(st->L, LUA_GCCOLLECT); // give back what a runaway policy took
    st->exhausted = false;
    c->trace = NULL;
}

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
    // In the worker, also every call: the agent that kills it reads where a C function was
    // called from. Nobody kills the agent's own built-in state: counting is enough there.
    lua_sethook(st->L, budget_hook, st->in_agent ? LUA_MASKCOUNT : LUA_MASKCOUNT | LUA_MASKCALL,
                HOOK_STEP);
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
    char where[POLICY_LOCATION_MAX] = "policy";
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

// Pushes { name = { text = ..., chunkname = "@(built-in)/name.lua" } } of the
// embedded shipped files: what extend() starts from.
static void push_shipped(lua_State *L)
{
    lua_createtable(L, 0, (int)ARRAY_SIZE(policy_shipped_files)); // shipped
    for (size_t i = 0; i < ARRAY_SIZE(policy_shipped_files); i++) {
        const struct policy_shipped_file *f = &policy_shipped_files[i];
        lua_createtable(L, 0, 2);                                        // shipped file
        lua_pushlstring(L, (const char *)f->text, f->len);               // shipped file text
        lua_setfield(L, -2, "text");                                     // shipped file
        lua_pushfstring(L, "@" POLICY_BUILTIN_PREFIX "%s.lua", f->name); // shipped file chunk
        lua_setfield(L, -2, "chunkname");                                // shipped file
        lua_setfield(L, -2, f->name);                                    // shipped
    }
}

// Stores the hook functions of one loaded policy table into the hooks table.
static void register_hooks(lua_State *L, struct policy_setup *s, const char *file, int policy,
                           int hooks_tbl)
{
    struct policy_state *st = s->st;
    lua_getfield(L, policy, "functions"); // ... functions
    for (size_t h = 0; h < POLICY_HOOK_COUNT; h++) {
        if (strcmp(policy_hooks[h].file, file) != 0)
            continue;
        if (lua_getfield(L, -1, policy_hooks[h].fn) == LUA_TFUNCTION) { // ... functions fn
            lua_setfield(L, hooks_tbl, policy_hooks[h].fn);             // ... functions
            st->has_hook[h] = true;
        } else {
            lua_pop(L, 1); // ... functions
            if (!s->quiet)
                log_info(LOG_POLICY, "%s.lua defines no %s(): the shipped one (built in) is used",
                         file, policy_hooks[h].fn);
        }
    }
    lua_pop(L, 1); // ...
}

// Builds a generation, protected: libraries, host modules, sandbox base, and
// every policy file through loader.load_policy under the load-time budget.
static int l_state_setup(lua_State *L)
{
    struct policy_setup *s = lua_touserdata(L, 1);
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
    push_shipped(L);                  // ctx mods loader init schema sandbox shipped
    lua_call(L, 3, 0);                // ctx mods loader
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
    lua_getfield(L, mods, "loader");                 // ... opts loader
    lua_getfield(L, -1, "extend");                   // ... opts loader extend
    lua_setfield(L, -3, "extend");                   // ... opts loader
    lua_pop(L, 1);                                   // ... opts
    lua_call(L, 2, 1);                               // ctx mods sandbox base
    int base = lua_gettop(L);

    lua_getfield(L, mods, "schema");                           // ... base schema
    lua_getfield(L, -1, "null");                               // ... base schema null
    st->conv.null_ref = luaL_ref(L, LUA_REGISTRYINDEX);        // ... base schema
    lua_getfield(L, -1, "empty_array");                        // ... base schema ea
    st->conv.empty_array_ref = luaL_ref(L, LUA_REGISTRYINDEX); // ... base schema
    lua_pop(L, 1);                                             // ... base
    lua_newtable(L);                                           // ... base hooks
    lua_pushvalue(L, -1);                                      // ... base hooks hooks
    st->hooks_ref = luaL_ref(L, LUA_REGISTRYINDEX);            // ... base hooks
    int hooks_tbl = lua_gettop(L);
    lua_getfield(L, mods, "loader");                   // ... base hooks loader
    lua_getfield(L, -1, "wrappers");                   // ... base hooks loader wrappers
    st->wrappers_ref = luaL_ref(L, LUA_REGISTRYINDEX); // ... base hooks loader
    lua_pop(L, 1);                                     // ... base hooks

    for (size_t i = 0; i < POLICY_FILE_COUNT; i++) {
        if (!s->paths[i])
            continue;
        lua_getfield(L, mods, "loader");             // ... loader
        lua_getfield(L, -1, "load_policy");          // ... loader load
        lua_pushstring(L, policy_files[i]);          // ... loader load name
        lua_pushlstring(L, s->texts[i], s->lens[i]); // ... loader load name text
        lua_pushfstring(L, "@%s", s->paths[i]);      // ... loader load name text chunk
        lua_pushvalue(L, base);                      // ... loader load name text chunk base
        lua_pushboolean(L, !s->examples);            // ... loader load name text chunk base skip
        budget_start(st, LOAD_BUDGET_TICKS, POLICY_LOAD_DEADLINE_MS);
        lua_call(L, 5, 1); // ... loader policy
        budget_stop(st);
        register_hooks(L, s, policy_files[i], lua_gettop(L), hooks_tbl);
        lua_pop(L, 2); // ...
    }
    return 0;
}

/* ---- the call helper ----------------------------------------------------- */

// Runs protected: fetches the hook, builds a fresh input, runs the policy
// under its budget, and checks the answer.
static int l_policy_trampoline(lua_State *L)
{
    struct policy_call *c = lua_touserdata(L, 1);
    struct policy_state *st = c->st;
    lua_rawgeti(L, LUA_REGISTRYINDEX, st->hooks_ref); // ctx hooks
    lua_getfield(L, -1, policy_hooks[c->hook].fn);    // ctx hooks fn
    lua_Debug ar;
    // Where the hook is defined: for a hook of extend(), the admin's function it wraps.
    lua_rawgeti(L, LUA_REGISTRYINDEX, st->wrappers_ref); // ctx hooks fn wrappers
    lua_pushvalue(L, -2);                                // ctx hooks fn wrappers fn
    if (lua_rawget(L, -2) != LUA_TFUNCTION) {            // ctx hooks fn wrappers who
        lua_pop(L, 1);                                   // ctx hooks fn wrappers
        lua_pushvalue(L, -2);                            // ctx hooks fn wrappers fn
    }
    lua_remove(L, -2);                                      // ctx hooks fn who
    if (lua_getinfo(L, ">S", &ar) && ar.source[0] == '@') { // ctx hooks fn
        util_strlcpy(c->source, ar.source + 1, sizeof c->source);
        c->line = ar.linedefined;
    }
    policy_calls[c->hook].push(L, c); // ctx hooks fn req
    budget_start(st, st->call_ticks, st->call_deadline_ms);
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
    } else if (lua_type(L, -2) != LUA_TTABLE || policy_conv_is_ref(L, -2, st->conv.null_ref)) {
        util_err(c->err, sizeof c->err, "returned a %s, not a table", policy_conv_kind(L, -2));
        c->verdict = -EINVAL;
    } else if (!lua_isnil(L, -1)) {
        util_err(c->err, sizeof c->err, "returned a second value next to its answer");
        c->verdict = -EINVAL;
    } else {
        policy_conv_reset(&st->conv);
        c->verdict = policy_calls[c->hook].take(L, lua_absindex(L, -2), c);
        policy_conv_reset(&st->conv);
    }
    return 0;
}
