// Unit tests of the Lua policy host: the shipped policies decide the same in
// the policy worker (as an admin's copy of them) and built in (embedded, in the
// agent's process), and every way a policy can go wrong (raise, loop, eat
// memory, answer nonsense, set a global, lose a function, break on reload)
// gives the documented fallback while the process keeps running.
//
// Usage: test_policy_host <repository root>

#include "policy/policy.h"
#include "policy/policy_wire.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "core/log.h"
#include "core/util.h"
#include "core/value.h"

static const char *shipped_dir;
static const char *repo_root;

static const struct policy_config cfg = {
    .concurrency = 4,
    .host_memory_mib = 4096, // 1024 MiB per slot
    .max_time_s = 0,
    .max_hard_time_s = 0,
    .max_result_bytes = 64 << 20,
    .max_output_bytes = 256 << 20,
};

/* ---- helpers -------------------------------------------------------------- */

static char *make_dir(void)
{
    char tmpl[] = "/tmp/proctor-policy-test-XXXXXX";
    REQUIRE_OR_EXIT(mkdtemp(tmpl) != NULL);
    return xstrdup(tmpl);
}

static void write_file(const char *dir, const char *name, const char *text)
{
    char *path = xasprintf("%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    REQUIRE_OR_EXIT(f != NULL);
    REQUIRE_OR_EXIT(fputs(text, f) >= 0);
    REQUIRE_OR_EXIT(fclose(f) == 0);
    free(path);
}

// A directory holding one policy file; the other hooks use the defaults.
static char *dir_with(const char *name, const char *text)
{
    char *dir = make_dir();
    write_file(dir, name, text);
    return dir;
}

static void remove_dir(char *dir)
{
    if (dir)
        util_rmtree(dir);
    free(dir);
}

static struct policy_host *host_from(const char *dir)
{
    char err[1024] = "";
    struct policy_host *host = policy_host_new(dir, &cfg, err, sizeof err);
    if (!host)
        fprintf(stderr, "policy_host_new(%s): %s\n", dir, err);
    return host;
}

static const struct policy_limits_req default_req = {
    .has_time = true,
    .time_s = 10,
    .has_memory = true,
    .memory_mib = 100,
    .environment_type = "docker",
    .environment = "default",
};

// What the built-in default gives for default_req.
static bool is_default_limits(const struct policy_limits *l)
{
    return l->time_s == 10 && l->hard_time_s == 30 && l->memory_mib == 100 && !l->network;
}

// limits.lua whose clamp_limits has `body`, plus a sane clamp_student.
static char *limits_dir(const char *body)
{
    char *text = xasprintf("local function clamp_limits(req)\n%s\nend\n"
                           "return { clamp_limits = clamp_limits }\n",
                           body);
    char *dir = dir_with("limits.lua", text);
    free(text);
    return dir;
}

// Runs clamp_limits with `body` and expects the built-in default and one failure.
static void expect_limits_fallback(const char *what, const char *body)
{
    char *dir = limits_dir(body);
    struct policy_host *host = host_from(dir);
    struct policy_limits out = {0};
    char reason[POLICY_REASON_MAX] = "";
    REQUIRE(host != NULL, "%s: the file must load", what);
    int ret = policy_limits(host, &default_req, &out, reason, sizeof reason);
    REQUIRE(ret == 0, "%s: ret %d (%s)", what, ret, reason);
    REQUIRE(is_default_limits(&out), "%s: got %lld/%lld/%lld", what, (long long)out.time_s,
            (long long)out.hard_time_s, (long long)out.memory_mib);
    REQUIRE(policy_host_failures(host) == 1, "%s: failures %llu", what,
            (unsigned long long)policy_host_failures(host));
    // The same state still answers: the failure left nothing behind.
    ret = policy_limits(host, &default_req, &out, reason, sizeof reason);
    REQUIRE(ret == 0 && is_default_limits(&out), "%s: second call", what);
    REQUIRE(policy_host_failures(host) == 2, "%s: failures are counted", what);
    policy_host_free(host);
    remove_dir(dir);
}

// Expects policy_host_new to refuse dir with a message containing `needle`.
static void expect_load_error(const char *what, const char *file, const char *text,
                              const char *needle)
{
    char *dir = dir_with(file, text);
    char err[1024] = "";
    struct policy_host *host = policy_host_new(dir, &cfg, err, sizeof err);
    REQUIRE(host == NULL, "%s: must not load", what);
    REQUIRE(strstr(err, needle) != NULL, "%s: error '%s' lacks '%s'", what, err, needle);
    err[0] = '\0';
    REQUIRE(policy_check_dir(dir, err, sizeof err) == -EINVAL, "%s: check_dir", what);
    REQUIRE(strstr(err, needle) != NULL, "%s: check_dir error '%s' lacks '%s'", what, err, needle);
    policy_host_free(host);
    remove_dir(dir);
}

/* ---- the shipped files decide alike in the worker and built in ------------- */

static void test_shipped_limits(struct policy_host *host, struct policy_host *builtin)
{
    static const struct policy_limits_req reqs[] = {
        {0},
        {.has_time = true, .time_s = 10},
        {.has_time = true, .time_s = 10, .has_hard_time = true, .hard_time_s = 0},
        {.has_time = true, .time_s = 0},
        {.has_time = true, .time_s = -5, .has_hard_time = true, .hard_time_s = -1},
        {.has_time = true, .time_s = INT64_MAX},
        {.has_memory = true, .memory_mib = 5},
        {.has_memory = true, .memory_mib = -100},
        {.has_memory = true, .memory_mib = 1024},
        {.has_memory = true, .memory_mib = 1025},
        {.has_memory = true, .memory_mib = INT64_MAX},
        {.network_grading = true},
        {.needs_ports = true, .has_time = true, .time_s = 5},
    };
    for (size_t i = 0; i < ARRAY_SIZE(reqs); i++) {
        struct policy_limits a = {0}, b = {0};
        char ra[POLICY_REASON_MAX] = "", rb[POLICY_REASON_MAX] = "";
        int reta = policy_limits(host, &reqs[i], &a, ra, sizeof ra);
        int retb = policy_limits(builtin, &reqs[i], &b, rb, sizeof rb);
        REQUIRE(reta == retb, "limits case %zu: lua %d vs C %d (%s / %s)", i, reta, retb, ra, rb);
        REQUIRE(!strcmp(ra, rb), "limits case %zu: '%s' vs '%s'", i, ra, rb);
        REQUIRE(!memcmp(&a, &b, sizeof a),
                "limits case %zu: lua %lld/%lld/%lld/%d C %lld/%lld/%lld/%d", i,
                (long long)a.time_s, (long long)a.hard_time_s, (long long)a.memory_mib, a.network,
                (long long)b.time_s, (long long)b.hard_time_s, (long long)b.memory_mib, b.network);
    }
    struct policy_limits l = {0};
    char reason[POLICY_REASON_MAX] = "";
    struct policy_limits_req big = {.has_memory = true, .memory_mib = 2000};
    REQUIRE(policy_limits(host, &big, &l, reason, sizeof reason) == -EPERM, "refused");
    REQUIRE(!strcmp(reason, "Not enough memory on agent (available: 1024MB). Please contact your "
                            "course administrator."),
            "INGInious's text, got '%s'", reason);
    return;
}

static void test_shipped_student(struct policy_host *host, struct policy_host *builtin)
{
    static const struct policy_student_req reqs[] = {
        {30, 90, 200, 0, 0, 0, "default"},    {30, 90, 200, 10, 500, 100, "default"},
        {30, 90, 200, -1, -1, -1, "default"}, {30, 90, 200, 40, 40, 5, "default"},
        {30, 90, 10, 0, 0, 5, "default"},     {1800, 1800, 1024, INT64_MAX, 1, 1024, "x"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(reqs); i++) {
        struct policy_student_limits a = {0}, b = {0};
        char r[POLICY_REASON_MAX];
        REQUIRE(policy_student_limits(host, &reqs[i], &a, r, sizeof r) == 0, "student %zu", i);
        REQUIRE(policy_student_limits(builtin, &reqs[i], &b, r, sizeof r) == 0, "student %zu", i);
        REQUIRE(!memcmp(&a, &b, sizeof a), "student case %zu: %lld/%lld/%lld vs %lld/%lld/%lld", i,
                (long long)a.time_s, (long long)a.hard_time_s, (long long)a.memory_mib,
                (long long)b.time_s, (long long)b.hard_time_s, (long long)b.memory_mib);
        REQUIRE(a.time_s <= reqs[i].parent_time_s && a.memory_mib <= reqs[i].parent_memory_mib,
                "student case %zu above its parent", i);
    }
    return;
}

static void test_shipped_ports(struct policy_host *host)
{
    uint16_t free_ports[] = {64120, 64121, 64125};
    uint16_t chosen[POLICY_MAX_PORTS] = {0};
    char reason[POLICY_REASON_MAX] = "";
    struct policy_ports_req req = {"job", 2, free_ports, 3};
    REQUIRE(policy_ports(host, &req, chosen, reason, sizeof reason) == 0, "ports: %s", reason);
    REQUIRE(chosen[0] == 64120 && chosen[1] == 64121, "ports %u %u", chosen[0], chosen[1]);
    req.count = 4;
    REQUIRE(policy_ports(host, &req, chosen, reason, sizeof reason) == -EPERM, "pool too small");
    REQUIRE(!strcmp(reason, "No ports are available right now. Please retry later."), "%s", reason);
    req.count = 0;
    REQUIRE(policy_ports(host, &req, chosen, reason, sizeof reason) == 0, "no port needed");
    return;
}

static void test_shipped_runtimes(struct policy_host *host, struct policy_host *builtin)
{
    const char *names[] = {"io.containerd.runc.v2", "io.containerd.runtime.v1.linux", "runc",
                           "kata-runtime", "nvidia"};
    struct policy_runtime a[16], b[16];
    size_t na = 0, nb = 0;
    for (int ssh = 0; ssh <= 1; ssh++) {
        memset(a, 0, sizeof a);
        memset(b, 0, sizeof b);
        REQUIRE(policy_runtimes(host, names, ARRAY_SIZE(names), ssh, a, 16, &na) == 0, "runtimes");
        REQUIRE(policy_runtimes(builtin, names, ARRAY_SIZE(names), ssh, b, 16, &nb) == 0, "rt");
        REQUIRE(na == nb && na == (ssh ? 6u : 3u), "runtimes: %zu vs %zu", na, nb);
        REQUIRE(!memcmp(a, b, sizeof a), "runtimes differ (ssh %d)", ssh);
        REQUIRE(!strcmp(a[0].runtime, "io.containerd.runc.v2") && !strcmp(a[0].envtype, "docker"),
                "first runtime wins: %s %s", a[0].runtime, a[0].envtype);
        REQUIRE(a[0].shared_kernel && !a[0].run_as_root, "docker flags");
    }
    REQUIRE(policy_host_failures(host) == 0, "no failure");
    return;
}

static void test_shipped_hardening(struct policy_host *host, struct policy_host *builtin)
{
    for (int net = 0; net <= 1; net++) {
        struct policy_hardening_req req = {"default", net == 1, 200, net == 1};
        struct policy_hardening a, b;
        char r[POLICY_REASON_MAX];
        REQUIRE(policy_hardening(host, &req, &a, r, sizeof r) == 0, "hardening");
        REQUIRE(policy_hardening(builtin, &req, &b, r, sizeof r) == 0, "hardening");
        REQUIRE(!memcmp(&a, &b, sizeof a), "hardening differs (network %d)", net);
        REQUIRE(a.pids_limit >= 512 && a.no_new_privileges, "hardening values");
        REQUIRE(a.max_output_bytes == 128 << 20, "output bytes %lld",
                (long long)a.max_output_bytes);
        REQUIRE(a.max_frame_bytes == 64 << 20, "frame bytes capped by cfg: %lld",
                (long long)a.max_frame_bytes);
        for (size_t i = 0; i < a.ncap_drop; i++)
            REQUIRE(strcmp(a.cap_drop[i], "CHOWN") && strcmp(a.cap_drop[i], "SETUID"),
                    "the runner needs %s", a.cap_drop[i]);
        REQUIRE(a.ncap_drop == (net ? 4u : 7u), "caps dropped: %zu", a.ncap_drop);
    }
    for (int student = 0; student <= 1; student++) {
        struct policy_hardening_req req = {"default", student == 1, 200, false};
        struct policy_hardening a, b;
        char r[POLICY_REASON_MAX];
        REQUIRE(policy_hardening(host, &req, &a, r, sizeof r) == 0, "hardening");
        REQUIRE(policy_hardening(builtin, &req, &b, r, sizeof r) == 0, "hardening");
        REQUIRE(!memcmp(&a, &b, sizeof a), "hardening differs (student %d)", student);
        REQUIRE(a.max_students == (student ? 0 : 8) && a.max_students_total == (student ? 0 : 512),
                "student caps (student %d): %lld %lld", student, (long long)a.max_students,
                (long long)a.max_students_total);
    }
    return;
}

// A result map as a container sends it, with the agent's `archive: true`.
static void build_result(struct value *r, const char *grade_kind)
{
    value_set_map(r);
    value_set_str(value_map_put(r, "result"), "failed");
    value_set_str(value_map_put(r, "text"), "some feedback");
    if (!strcmp(grade_kind, "float"))
        value_set_float(value_map_put(r, "grade"), 66.666);
    else if (!strcmp(grade_kind, "int"))
        value_set_int(value_map_put(r, "grade"), 50);
    struct value *p = value_map_put(r, "problems");
    value_set_map(p);
    value_set_str(value_map_put(p, "q1"), "well done");
    struct value *pair = value_map_put(p, "q2");
    value_set_array(pair);
    value_set_str(value_array_push(pair), "failed");
    value_set_str(value_array_push(pair), "try again");
    struct value *t = value_map_put(r, "tests");
    value_set_map(t);
    value_set_bool(value_map_put(t, "tag*"), true);
    struct value *c = value_map_put(r, "custom");
    value_set_map(c);
    value_set_nil(value_map_put(c, "nothing"));
    value_set_array(value_map_put(c, "empty"));
    value_set_bin(value_map_put(c, "raw"), "\xff\xfe", 2);
    value_set_int(value_map_put(c, "n"), 7);
    value_set_bool(value_map_put(r, "archive"), true);
}

static void test_shipped_results(struct policy_host *host, struct policy_host *builtin)
{
    struct value raw;
    struct policy_result a = {0}, b = {0};
    char reason[POLICY_REASON_MAX] = "";
    build_result(&raw, "float");
    REQUIRE(policy_results(host, &raw, "old", &a, reason, sizeof reason) == 0, "%s", reason);
    REQUIRE(policy_results(builtin, &raw, "old", &b, reason, sizeof reason) == 0, "%s", reason);
    REQUIRE(!strcmp(a.result, "failed") && !strcmp(a.text, "some feedback"), "result/text");
    REQUIRE(a.grade == 66.67 && b.grade == 66.67, "grade rounded: %f %f", a.grade, b.grade);
    REQUIRE(!strcmp(a.state, "") && !strcmp(b.state, ""), "state erased as in INGInious");
    const struct value *q1 = value_map_get(&a.problems, "q1");
    REQUIRE(q1 && q1->type == VALUE_ARRAY && q1->u.a.len == 2 &&
                value_is_str(&q1->u.a.items[0], "failed") &&
                value_is_str(&q1->u.a.items[1], "well done"),
            "a str problem becomes [result, text]");
    const struct value *q2 = value_map_get(&a.problems, "q2");
    REQUIRE(q2 && q2->u.a.len == 2 && value_is_str(&q2->u.a.items[1], "try again"), "q2 kept");
    REQUIRE(a.problems.u.m.len == b.problems.u.m.len, "same problems");
    const struct value *tag = value_map_get(&a.tests, "tag*");
    REQUIRE(tag && tag->type == VALUE_BOOL && tag->u.b, "tests kept");
    const struct value *v = value_map_get(&a.custom, "nothing");
    REQUIRE(v && v->type == VALUE_NIL, "nil survives the round trip");
    v = value_map_get(&a.custom, "empty");
    REQUIRE(v && v->type == VALUE_ARRAY && v->u.a.len == 0, "empty array survives");
    v = value_map_get(&a.custom, "raw");
    REQUIRE(v && v->type == VALUE_BIN && v->u.s.len == 2, "invalid UTF-8 comes back as bin");
    v = value_map_get(&a.custom, "n");
    REQUIRE(v && v->type == VALUE_INT && v->u.i == 7, "integers stay integers");
    policy_result_deinit(&a);
    policy_result_deinit(&b);

    // INGInious refuses an integer grade; so do both paths, with the same words.
    value_deinit(&raw);
    build_result(&raw, "int");
    char rb[POLICY_REASON_MAX] = "";
    REQUIRE(policy_results(host, &raw, "", &a, reason, sizeof reason) == -EPERM, "int grade");
    REQUIRE(policy_results(builtin, &raw, "", &b, rb, sizeof rb) == -EPERM, "int grade (C)");
    REQUIRE(!strcmp(reason, rb), "same reason: '%s' vs '%s'", reason, rb);
    REQUIRE(strstr(reason, "grade") != NULL, "reason names the key: %s", reason);

    // Unknown key, named in the reason.
    value_deinit(&raw);
    build_result(&raw, "none");
    value_set_str(value_map_put(&raw, "extra"), "x");
    REQUIRE(policy_results(host, &raw, "", &a, reason, sizeof reason) == -EPERM, "unknown key");
    REQUIRE(strstr(reason, "extra") != NULL, "reason names the key: %s", reason);

    // A container's msgpack can key custom by an integer, which the backend
    // cannot take: refused whoever decides (found by fuzz_policy_results).
    value_deinit(&raw);
    static const char intkey[] = "\x82\xa6"
                                 "result"
                                 "\xa7"
                                 "success"
                                 "\xa6"
                                 "custom"
                                 "\x81\x66\xa1"
                                 "x";
    char uerr[128];
    REQUIRE(value_unpack(intkey, sizeof intkey - 1, &raw, uerr, sizeof uerr) == 0, "%s", uerr);
    REQUIRE(policy_results(host, &raw, "", &a, reason, sizeof reason) == -EPERM, "integer key");
    REQUIRE(strstr(reason, "custom: a key of type") != NULL, "reason: %s", reason);
    REQUIRE(policy_results(builtin, &raw, "", &b, rb, sizeof rb) == -EPERM, "integer key (C)");
    REQUIRE(!strcmp(reason, rb), "same reason: '%s' vs '%s'", reason, rb);

    // Not a map at all.
    value_deinit(&raw);
    value_set_str(&raw, "hello");
    REQUIRE(policy_results(host, &raw, "", &a, reason, sizeof reason) == -EPERM, "not a map");
    REQUIRE(policy_results(host, NULL, "", &a, reason, sizeof reason) == -EPERM, "no result");

    // No grade: 100 on success.
    value_deinit(&raw);
    value_set_map(&raw);
    value_set_str(value_map_put(&raw, "result"), "success");
    REQUIRE(policy_results(host, &raw, "", &a, reason, sizeof reason) == 0, "%s", reason);
    REQUIRE(a.grade == 100.0 && !strcmp(a.text, ""), "default grade %f", a.grade);
    policy_result_deinit(&a);
    REQUIRE(policy_host_failures(host) == 0, "no policy failure: %llu",
            (unsigned long long)policy_host_failures(host));
    value_deinit(&raw);
}

static void test_shipped(void)
{
    struct policy_host *host = host_from(shipped_dir);
    char err[256];
    struct policy_host *builtin = policy_host_new(NULL, &cfg, err, sizeof err);
    REQUIRE(host != NULL && builtin != NULL, "both hosts load");
    REQUIRE(policy_host_generation(host) == 1, "generation 1");
    REQUIRE(policy_check_dir(shipped_dir, err, sizeof err) == 0, "check: %s", err);
    test_shipped_limits(host, builtin);
    test_shipped_student(host, builtin);
    test_shipped_ports(host);
    test_shipped_runtimes(host, builtin);
    test_shipped_hardening(host, builtin);
    test_shipped_results(host, builtin);
    REQUIRE(policy_host_failures(host) == 0, "the shipped policies never fail");
    policy_host_free(host);
    policy_host_free(builtin);
}

// The alternative sets pass --check-policies and decide through the host.
static void test_example_sets(void)
{
    static const char *const sets[] = {"exam", "jvm"};
    struct policy_host *host = NULL;
    char *dir = NULL;
    for (size_t i = 0; i < ARRAY_SIZE(sets); i++) {
        char err[1024] = "";
        dir = xasprintf("%s/examples/policies/%s", repo_root, sets[i]);
        REQUIRE(policy_check_dir(dir, err, sizeof err) == 0, "%s: %s", sets[i], err);
        host = host_from(dir);
        struct policy_limits l;
        char reason[POLICY_REASON_MAX] = "";
        struct policy_limits_req req = {0};
        REQUIRE(host && policy_limits(host, &req, &l, reason, sizeof reason) == 0, "%s", reason);
        REQUIRE(l.memory_mib == (i == 0 ? 128 : 1024), "%s: memory %lld", sets[i],
                (long long)l.memory_mib);
        REQUIRE(policy_host_failures(host) == 0, "%s: no failure", sets[i]);
        policy_host_free(host);
        host = NULL;
        free(dir);
        dir = NULL;
    }
    policy_host_free(host);
    free(dir);
}

/* ---- broken policies ------------------------------------------------------ */

static void test_raises(void)
{
    expect_limits_fallback("raise", "error('boom')");
    expect_limits_fallback("index nil", "return req.nothing.x");
    expect_limits_fallback("raise a table", "error({})");
}

static void test_budget(void)
{
    expect_limits_fallback("infinite loop", "while true do end");
    // pcall must not let a policy swallow its budget and carry on.
    expect_limits_fallback("loop in pcall",
                           "while true do pcall(function() while true do end end) end");
    expect_limits_fallback("recursion in pcall",
                           "local function f() return pcall(f) end while true do f() end");
}

static void test_memory(void)
{
    expect_limits_fallback("unbounded table", "local t = {} while true do t[#t + 1] = {} end");
    expect_limits_fallback("huge string", "local s = string.rep('x', 1 << 40) return {}");
    expect_limits_fallback("doubling in pcall",
                           "local s = 'x' while true do pcall(function() s = s .. s end) end");
}

static void test_wrong_answers(void)
{
    expect_limits_fallback("string time",
                           "return { time_s = '30', hard_time_s = 90, memory_mib = 200, network = "
                           "false }");
    expect_limits_fallback("float memory",
                           "return { time_s = 30, hard_time_s = 90, memory_mib = 200.5, network = "
                           "false }");
    expect_limits_fallback("integral float",
                           "return { time_s = 30.0, hard_time_s = 90, memory_mib = 200, network = "
                           "false }");
    expect_limits_fallback("zero time",
                           "return { time_s = 0, hard_time_s = 90, memory_mib = 200, network = "
                           "false }");
    expect_limits_fallback("negative memory",
                           "return { time_s = 1, hard_time_s = 90, memory_mib = -1, network = "
                           "false }");
    expect_limits_fallback("missing key",
                           "return { time_s = 30, hard_time_s = 90, network = false }");
    expect_limits_fallback("extra key",
                           "return { time_s = 30, hard_time_s = 90, memory_mib = 200, network = "
                           "false, memroy_mib = 1 }");
    expect_limits_fallback("not a table", "return 42");
    expect_limits_fallback("nil without reason", "return nil");
    expect_limits_fallback("nil with a table reason", "return nil, {}");
    expect_limits_fallback("two values",
                           "return { time_s = 30, hard_time_s = 90, memory_mib = 200, network = "
                           "false }, 'x'");
    expect_limits_fallback("integer key", "return { [1] = 2 }");
}

static void test_global_at_call(void)
{
    expect_limits_fallback("global at call", "counter = 1");
    expect_limits_fallback("rawset", "rawset(_ENV, 'x', 1)");
    expect_limits_fallback("setmetatable on _ENV", "setmetatable(_ENV, nil)");
    expect_limits_fallback("string metatable", "getmetatable('').__index.x = 1");
    expect_limits_fallback("library write", "string.rep = nil");
    expect_limits_fallback("io", "io.open('/etc/passwd')");
    expect_limits_fallback("os", "os.exit(1)");
    expect_limits_fallback("load", "load('return 1')");
    expect_limits_fallback("require", "require('os')");
    expect_limits_fallback("__gc", "setmetatable({}, { __gc = function() end })");
}

// Sandbox holes between two functions of one generation: what one call writes
// through pairs() or the string metatable must not change what another sees.
static void test_sandbox_holes(void)
{
    char *dir = dir_with(
        "limits.lua",
        "local function clamp_student(req)\n"
        "  for _, lib in ipairs({ math, string }) do\n"
        "    local _, backing = pairs(lib)\n"
        "    pcall(function() backing.max = function() return 1 end end)\n"
        "    pcall(function() backing.format = function() return '1' end end)\n"
        "  end\n"
        "  local _, s = pairs(schema)\n"
        "  pcall(function() s.is_id = function() return false end end)\n"
        "  return { time_s = 1, hard_time_s = 1, memory_mib = 6 }\n"
        "end\n"
        "local function clamp_limits(req)\n"
        "  local dumped = pcall(('').dump, function() end)\n"
        "  return { time_s = math.max(req.time_s, 2), hard_time_s = tonumber(string.format('%d', "
        "40)),\n"
        "           memory_mib = schema.is_id('a') and 100 or 50, network = dumped }\n"
        "end\n"
        "return { clamp_limits = clamp_limits, clamp_student = clamp_student }\n");
    struct policy_host *host = host_from(dir);
    struct policy_student_req sreq = {30, 90, 200, 0, 0, 0, "default"};
    struct policy_student_limits s;
    struct policy_limits l;
    char reason[POLICY_REASON_MAX] = "";
    REQUIRE(host != NULL, "loads");
    REQUIRE(policy_student_limits(host, &sreq, &s, reason, sizeof reason) == 0, "student");
    REQUIRE(policy_limits(host, &default_req, &l, reason, sizeof reason) == 0, "limits");
    REQUIRE(l.time_s == 10 && l.hard_time_s == 40 && l.memory_mib == 100,
            "a library changed through pairs(): %lld %lld %lld", (long long)l.time_s,
            (long long)l.hard_time_s, (long long)l.memory_mib);
    REQUIRE(!l.network, "('').dump reached string.dump");
    REQUIRE(policy_host_failures(host) == 0, "no failure: %llu",
            (unsigned long long)policy_host_failures(host));
    policy_host_free(host);
    remove_dir(dir);
}

// results.lua whose validate_result builds `setup` and answers `field` = `expr`.
static void expect_results_fallback(const char *what, const char *setup, const char *field,
                                    const char *expr)
{
    char *text = xasprintf("local function validate_result(req)\n%s\n"
                           "  local out = { result = 'success', text = 'policy', grade = 1.0, "
                           "problems = {}, tests = {}, custom = {}, state = '' }\n"
                           "  out.%s = %s\n  return out\nend\n"
                           "return { validate_result = validate_result }\n",
                           setup, field, expr);
    char *dir = dir_with("results.lua", text);
    struct policy_host *host = host_from(dir);
    struct value raw;
    struct policy_result res = {0};
    char reason[POLICY_REASON_MAX] = "";
    value_set_map(&raw);
    value_set_str(value_map_put(&raw, "result"), "failed");
    REQUIRE(host != NULL, "%s: loads", what);
    REQUIRE(policy_results(host, &raw, "", &res, reason, sizeof reason) == 0, "%s: %s", what,
            reason);
    REQUIRE(!strcmp(res.result, "failed") && !strcmp(res.text, ""),
            "%s: the built-in default decides: %s '%s'", what, res.result, res.text);
    REQUIRE(policy_host_failures(host) == 1, "%s: failures %llu", what,
            (unsigned long long)policy_host_failures(host));
    policy_result_deinit(&res);
    value_deinit(&raw);
    policy_host_free(host);
    remove_dir(dir);
    free(text);
}

// A result larger than the policies' heap is decided by the default at once.
static void test_huge_result(void)
{
    char *dir = dir_with("results.lua", "return { validate_result = function(req) return "
                                        "{ result = 'success', text = 'policy', grade = 1.0, "
                                        "problems = {}, tests = {}, custom = {}, state = '' } "
                                        "end }\n");
    struct policy_host *host = host_from(dir);
    struct value raw;
    struct policy_result res = {0};
    char reason[POLICY_REASON_MAX] = "";
    size_t big = (size_t)40 << 20;
    char *text = xmalloc(big);
    memset(text, 'x', big);
    value_set_map(&raw);
    value_set_str(value_map_put(&raw, "result"), "failed");
    value_set_strn(value_map_put(&raw, "text"), text, big);
    REQUIRE(host != NULL, "loads");
    REQUIRE(policy_results(host, &raw, "", &res, reason, sizeof reason) == 0, "%s", reason);
    REQUIRE(!strcmp(res.result, "failed") && strlen(res.text) == big, "the default decides");
    REQUIRE(policy_host_failures(host) == 1, "one failure");
    policy_result_deinit(&res);
    value_deinit(value_map_put(&raw, "text"));
    value_set_str(value_map_put(&raw, "text"), "small");
    REQUIRE(policy_results(host, &raw, "", &res, reason, sizeof reason) == 0, "%s", reason);
    REQUIRE(!strcmp(res.text, "policy"), "a small one goes to the policy: %s", res.text);
    free(text);
    policy_result_deinit(&res);
    value_deinit(&raw);
    policy_host_free(host);
    remove_dir(dir);
}

// Answers that cost Lua little and C a lot are refused, not converted.
static void test_answer_size(void)
{
    // 2^40 nodes through one shared table: the agent used to run out of memory.
    expect_results_fallback("shared subtree k=40", "local t = {} for _ = 1, 40 do t = { t, t } end",
                            "custom", "t");
    expect_results_fallback("shared subtree k=20",
                            "local t = { x = 1 } for _ = 1, 20 do t = { a = t, b = t } end",
                            "tests", "t");
    expect_results_fallback("a table twice", "local t = { 1 }", "custom", "{ a = t, b = t }");
    expect_results_fallback("tests and custom alike", "local t = {}", "custom", "t; out.tests = t");
    expect_results_fallback("a problem pair twice", "local p = { 'failed', 'x' }", "problems",
                            "{ a = p, b = p }");
    // 100000 references to one 1 MiB string: 100 GB once copied.
    expect_results_fallback("a large flat answer",
                            "local s = string.rep('x', 1 << 20) local c = {}\n"
                            "for i = 1, 100000 do c[i] = s end",
                            "custom", "c");
    expect_results_fallback("one string in many problems",
                            "local s = string.rep('x', 1 << 20) local p = {}\n"
                            "for i = 1, 100000 do p['q' .. i] = { 'failed', s } end",
                            "problems", "p");
    expect_results_fallback("too many values", "local c = {} for i = 1, 300000 do c[i] = true end",
                            "custom", "c");
    // Within the caps: converted as before.
    char *dir =
        dir_with("results.lua", "return { validate_result = function(req)\n"
                                "  local c = {} for i = 1, 1000 do c[i] = { i, schema.null } end\n"
                                "  return { result = 'success', text = string.rep('y', 1 << 20), "
                                "grade = 1.0, problems = {}, tests = { a = schema.empty_array, b = "
                                "schema.empty_array }, custom = { c = c, n = schema.null, m = "
                                "schema.null }, state = '' } end }\n");
    struct policy_host *host = host_from(dir);
    struct value raw;
    struct policy_result res = {0};
    char reason[POLICY_REASON_MAX] = "";
    value_set_map(&raw);
    REQUIRE(host != NULL, "loads");
    REQUIRE(policy_results(host, &raw, "", &res, reason, sizeof reason) == 0, "%s", reason);
    REQUIRE(!strcmp(res.result, "success") && strlen(res.text) == 1 << 20, "the policy decides");
    const struct value *c = value_map_get(&res.custom, "c");
    REQUIRE(c && c->type == VALUE_ARRAY && c->u.a.len == 1000, "1000 entries");
    REQUIRE(policy_host_failures(host) == 0, "the sentinels may repeat: %llu",
            (unsigned long long)policy_host_failures(host));
    policy_result_deinit(&res);
    value_deinit(&raw);
    policy_host_free(host);
    remove_dir(dir);
}

static void test_refusal(void)
{
    char *dir = limits_dir("return nil, 'too big for us'");
    struct policy_host *host = host_from(dir);
    struct policy_limits out;
    char reason[POLICY_REASON_MAX] = "";
    REQUIRE(host != NULL, "loads");
    REQUIRE(policy_limits(host, &default_req, &out, reason, sizeof reason) == -EPERM, "refusal");
    REQUIRE(!strcmp(reason, "too big for us"), "reason: %s", reason);
    REQUIRE(policy_host_failures(host) == 0, "a refusal is a decision, not a failure");
    policy_host_free(host);
    remove_dir(dir);
}

static void test_caps(void)
{
    char *dir = limits_dir("return { time_s = 100000, hard_time_s = 100000, memory_mib = 4000, "
                           "network = true }");
    struct policy_config capped = cfg;
    capped.max_time_s = 60;
    capped.max_hard_time_s = 120;
    char err[256];
    struct policy_host *host = policy_host_new(dir, &capped, err, sizeof err);
    struct policy_limits out;
    char reason[POLICY_REASON_MAX] = "";
    REQUIRE(host != NULL, "loads: %s", err);
    REQUIRE(policy_limits(host, &default_req, &out, reason, sizeof reason) == 0, "%s", reason);
    REQUIRE(out.time_s == 60 && out.hard_time_s == 120, "hard caps after the policy: %lld %lld",
            (long long)out.time_s, (long long)out.hard_time_s);
    REQUIRE(out.memory_mib == 1024, "memory per slot caps a policy: %lld",
            (long long)out.memory_mib);
    REQUIRE(out.network, "network kept");
    policy_host_free(host);
    remove_dir(dir);
}

static void test_deleted_function(void)
{
    // limits.lua without clamp_student: that hook falls back, nothing fails.
    char *dir =
        limits_dir("return { time_s = 5, hard_time_s = 6, memory_mib = 7, network = true }");
    struct policy_host *host = host_from(dir);
    struct policy_student_req sreq = {30, 90, 200, 0, 0, 0, "default"};
    struct policy_student_limits s;
    struct policy_limits l;
    char reason[POLICY_REASON_MAX];
    REQUIRE(host != NULL, "loads without clamp_student");
    REQUIRE(policy_student_limits(host, &sreq, &s, reason, sizeof reason) == 0, "student");
    REQUIRE(s.time_s == 30 && s.hard_time_s == 90 && s.memory_mib == 200, "default student");
    REQUIRE(policy_limits(host, &default_req, &l, reason, sizeof reason) == 0, "limits");
    REQUIRE(l.time_s == 5 && l.hard_time_s == 6 && l.memory_mib == 7, "the policy's own answer");
    REQUIRE(policy_host_failures(host) == 0, "a deleted function is not a failure");
    policy_host_free(host);
    remove_dir(dir);
}

static void test_other_hooks_fallback(void)
{
    char *dir = make_dir();
    write_file(dir, "ports.lua",
               "return { choose_ports = function(req) return { ports = { 1, 1 } } end }");
    write_file(dir, "runtimes.lua",
               "return { map_runtimes = function(req) return { runtimes = { { runtime = 'ghost', "
               "envtype = 'docker', run_as_root = false, enables_gpu = false, shared_kernel = true "
               "} } } end }");
    write_file(dir, "hardening.lua",
               "return { harden = function(req) return { pids_limit = 10, no_new_privileges = "
               "true, cap_drop = { 'NOT_A_CAP' }, nofile_soft = 1, nofile_hard = 1, "
               "max_output_bytes = 1, max_frame_bytes = 1 } end }");
    write_file(dir, "results.lua",
               "return { validate_result = function(req) return { result = 'great', text = '', "
               "grade = 1.0, problems = {}, tests = {}, custom = {}, state = '' } end }");
    struct policy_host *host = host_from(dir);
    uint16_t free_ports[] = {64120, 64121};
    uint16_t chosen[POLICY_MAX_PORTS];
    char reason[POLICY_REASON_MAX];
    struct policy_ports_req preq = {"j", 2, free_ports, 2};
    const char *names[] = {"runc"};
    struct policy_runtime rt[4];
    size_t nrt = 0;
    struct policy_hardening_req hreq = {"default", false, 200, false};
    struct policy_hardening h;
    struct value raw;
    struct policy_result res = {0};
    value_set_map(&raw);
    value_set_str(value_map_put(&raw, "result"), "success");
    REQUIRE(host != NULL, "loads");
    REQUIRE(policy_ports(host, &preq, chosen, reason, sizeof reason) == 0, "ports");
    REQUIRE(chosen[0] == 64120 && chosen[1] == 64121, "a duplicate choice falls back");
    REQUIRE(policy_runtimes(host, names, 1, false, rt, 4, &nrt) == 0, "runtimes");
    REQUIRE(nrt == 1 && !strcmp(rt[0].runtime, "runc"), "an unknown runtime falls back");
    REQUIRE(policy_hardening(host, &hreq, &h, reason, sizeof reason) == 0, "hardening");
    REQUIRE(h.pids_limit == 1024 && h.ncap_drop == 7, "an unknown capability falls back");
    REQUIRE(policy_results(host, &raw, "", &res, reason, sizeof reason) == 0, "results");
    REQUIRE(!strcmp(res.result, "success") && res.grade == 100.0, "an unknown result falls back");
    REQUIRE(policy_host_failures(host) == 4, "four failures: %llu",
            (unsigned long long)policy_host_failures(host));
    policy_result_deinit(&res);
    value_deinit(&raw);
    policy_host_free(host);
    remove_dir(dir);
}

// hardening.lua whose harden() answers the shipped table plus `extra` (Lua fields).
static char *hardening_dir(const char *extra)
{
    char *text = xasprintf(
        "return { harden = function(req) return { pids_limit = 10, no_new_privileges = true, "
        "cap_drop = {}, nofile_soft = 0, nofile_hard = 0, max_output_bytes = 100, "
        "max_frame_bytes = 100%s } end }\n",
        extra);
    char *dir = dir_with("hardening.lua", text);
    free(text);
    return dir;
}

// The student-container caps: a policy narrows them, never widens them, and
// nonsense (0, a float, a typo) falls back to the built-in 8 and 512.
static void test_student_caps(void)
{
    static const struct {
        const char *extra;
        bool student;
        int64_t now, total;
        unsigned failures;
    } cases[] = {
        {"", false, 8, 512, 0},
        {", max_students = 2, max_students_total = 3", false, 2, 3, 0},
        {", max_students = 1000, max_students_total = 1 << 40", false, POLICY_MAX_STUDENTS,
         POLICY_MAX_STUDENTS_TOTAL, 0},
        {", max_students = 5", false, 5, 512, 0},
        {", max_students = 0", false, 8, 512, 1},
        {", max_students_total = -1", false, 8, 512, 1},
        {", max_students = 2.5", false, 8, 512, 1},
        {", max_students = '2'", false, 8, 512, 1},
        {", max_student = 2", false, 8, 512, 1},
        {", max_students = 2, max_students_total = 3", true, 0, 0, 0},
    };
    struct policy_host *host = NULL;
    char *dir = NULL;
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        dir = hardening_dir(cases[i].extra);
        host = host_from(dir);
        struct policy_hardening_req req = {"default", cases[i].student, 200, false};
        struct policy_hardening h;
        char reason[POLICY_REASON_MAX] = "";
        REQUIRE(host != NULL, "case %zu loads", i);
        REQUIRE(policy_hardening(host, &req, &h, reason, sizeof reason) == 0, "case %zu: %s", i,
                reason);
        REQUIRE(h.max_students == cases[i].now && h.max_students_total == cases[i].total,
                "case %zu (%s): %lld %lld", i, cases[i].extra, (long long)h.max_students,
                (long long)h.max_students_total);
        REQUIRE(policy_host_failures(host) == cases[i].failures, "case %zu: failures %llu", i,
                (unsigned long long)policy_host_failures(host));
        policy_host_free(host);
        host = NULL;
        remove_dir(dir);
        dir = NULL;
    }
    policy_host_free(host);
    remove_dir(dir);
}

static void test_load_errors(void)
{
    expect_load_error("syntax", "limits.lua", "local x = \nreturn {", "limits.lua:2:");
    expect_load_error("global at load", "limits.lua", "\n\nfoo = 1\nreturn {}",
                      "limits.lua:3: policy tried to set global foo");
    expect_load_error("blocked", "ports.lua", "local f = io.open('/etc/passwd')\nreturn {}",
                      "ports.lua:1: blocked function: io.open");
    expect_load_error("raise at load", "results.lua", "\nerror('nope')\n", "results.lua:2: nope");
    expect_load_error("not a table", "hardening.lua", "return 1\n",
                      "hardening.lua:1: a policy file must return a table");
    expect_load_error("typo in hook name", "limits.lua",
                      "local function f() end\nreturn { clamp_limit = f }\n",
                      "limits.lua:2: unknown entry 'clamp_limit'");
    expect_load_error("not a function", "limits.lua", "return { clamp_limits = 1 }",
                      "clamp_limits must be a function");
    expect_load_error("loop at load", "limits.lua", "\nwhile true do end\n",
                      "limits.lua:2: instruction budget exhausted");
    expect_load_error("memory at load", "limits.lua",
                      "local t = {}\nfor i = 1, 1e9 do t[i] = {} end\n", "memory cap");
    expect_load_error("bytecode", "limits.lua", "\x1bLua\x54", "limits.lua");
    expect_load_error(
        "failing example", "ports.lua",
        "local function choose_ports() return { ports = {} } end\n"
        "return { choose_ports = choose_ports, examples = { choose_ports = {\n"
        "  { input = { count = 1, free = { 1 } }, output = { ports = { 1 } } } } } }\n",
        "ports.lua:2: examples.choose_ports[1]");
    expect_load_error("defaults typo", "limits.lua",
                      "local defaults = { time = 1 }\n"
                      "schema.check_keys(defaults, { 'time_s' }, 'defaults')\nreturn {}\n",
                      "limits.lua:2: defaults: unknown key 'time'");
    char err[256] = "";
    REQUIRE(policy_check_dir("/nonexistent/proctor", err, sizeof err) == -EINVAL, "no dir");
    REQUIRE(strstr(err, "/nonexistent/proctor") != NULL, "names the dir: %s", err);
    return;
}

static void test_reload(void)
{
    char *dir =
        limits_dir("return { time_s = 5, hard_time_s = 6, memory_mib = 7, network = true }");
    struct policy_host *host = host_from(dir);
    struct policy_limits l;
    char reason[POLICY_REASON_MAX], err[1024] = "";
    REQUIRE(host != NULL, "loads");
    write_file(dir, "limits.lua", "local x = 1\nlocal y = \n");
    REQUIRE(policy_host_reload(host, err, sizeof err) == -EINVAL, "a broken file is refused");
    REQUIRE(strstr(err, "limits.lua:3:") != NULL, "with file:line: %s", err);
    REQUIRE(policy_host_generation(host) == 1, "generation stays");
    REQUIRE(policy_limits(host, &default_req, &l, reason, sizeof reason) == 0 && l.time_s == 5,
            "the old policy still decides");
    write_file(dir, "limits.lua",
               "return { clamp_limits = function() return { time_s = 8, hard_time_s = 9, "
               "memory_mib = 10, network = false } end }");
    REQUIRE(policy_host_reload(host, err, sizeof err) == 0, "reload: %s", err);
    REQUIRE(policy_host_generation(host) == 2, "generation 2");
    REQUIRE(policy_limits(host, &default_req, &l, reason, sizeof reason) == 0 && l.time_s == 8,
            "the new policy decides");
    // Removing the file is a valid policy directory too: built-in defaults.
    char *path = xasprintf("%s/limits.lua", dir);
    unlink(path);
    free(path);
    REQUIRE(policy_host_reload(host, err, sizeof err) == 0, "reload: %s", err);
    REQUIRE(policy_limits(host, &default_req, &l, reason, sizeof reason) == 0 &&
                is_default_limits(&l),
            "defaults after the file went away");
    policy_host_free(host);
    remove_dir(dir);
}

// Failures are logged once per generation and kind, and counted every time.
static void test_log_once(void)
{
    char *dir = limits_dir("error('boom')");
    log_set_level(LOG_LEVEL_WARN);
    log_reset_repeats(); /* earlier tests logged the same warnings: count afresh */
    char logpath[] = "/tmp/proctor-policy-log-XXXXXX";
    int fd = mkstemp(logpath);
    REQUIRE_OR_EXIT(fd >= 0);
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    REQUIRE_OR_EXIT(saved >= 0 && dup2(fd, STDERR_FILENO) >= 0);
    struct policy_host *host = host_from(dir);
    struct policy_limits l;
    char reason[POLICY_REASON_MAX], err[256];
    for (int i = 0; host && i < 3; i++)
        policy_limits(host, &default_req, &l, reason, sizeof reason);
    if (host)
        policy_host_reload(host, err, sizeof err);
    for (int i = 0; host && i < 2; i++)
        policy_limits(host, &default_req, &l, reason, sizeof reason);
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    char *log = NULL;
    REQUIRE(util_read_file(logpath, 1 << 20, &log, NULL) == 0, "read the log");
    int lines = 0;
    for (const char *p = log; (p = strstr(p, "clamp_limits() raised an error")); p++)
        lines++;
    REQUIRE(lines == 2, "one line per generation, got %d:\n%s", lines, log);
    REQUIRE(strstr(log, "limits.lua:2: boom") != NULL, "file:line in the log:\n%s", log);
    REQUIRE(policy_host_failures(host) == 5, "all counted");
    free(log);
    close(fd);
    unlink(logpath);
    policy_host_free(host);
    remove_dir(dir);
}

/* ---- the wire between the agent and its worker ----------------------------- */

static void test_wire(void)
{
    int sv[2] = {-1, -1};
    struct buf b = {0};
    char *msg = NULL;
    size_t len = 0;
    struct value v, back;
    value_set_map(&v);
    value_set_map(&back);
    value_set_bin(value_map_put(&v, "bin"), "\0\xff", 2);
    value_set_float(value_map_put(&v, "f"), 2.5);
    struct value *arr = value_map_put(&v, "a");
    value_set_array(arr);
    value_set_nil(value_array_push(arr));
    value_set_int(value_array_push(arr), -7);
    value_set_bool(value_array_push(arr), true);
    REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0, "socketpair");
    wire_value(&b, &v);
    wire_str(&b, NULL);
    REQUIRE(wire_send(sv[0], &b, NULL) == 0, "send");
    REQUIRE(wire_recv(sv[1], &msg, &len, 1 << 20, NULL) == 0 && len == b.len, "recv");
    struct wire_rd r;
    wire_rd_init(&r, msg, len);
    value_deinit(&back);
    REQUIRE(wire_get_value(&r, &back) == 0, "decodes");
    REQUIRE(wire_get_str(&r, NULL) == NULL && !r.bad && r.off == len, "a NULL string, all read");
    const struct value *bin = value_map_get(&back, "bin"), *a = value_map_get(&back, "a");
    REQUIRE(bin && bin->type == VALUE_BIN && bin->u.s.len == 2 && bin->u.s.ptr[1] == '\xff', "bin");
    REQUIRE(a && a->type == VALUE_ARRAY && a->u.a.len == 3 && a->u.a.items[1].u.i == -7, "array");
    // A declared length larger than what follows is refused before any allocation.
    for (char type = 8; type <= 9; type++) { // an array, a map of 2^62 entries
        char bogus[1 + 8] = {type};
        int64_t huge = INT64_C(1) << 62;
        memcpy(bogus + 1, &huge, sizeof huge);
        wire_rd_init(&r, bogus, sizeof bogus);
        value_deinit(&back);
        REQUIRE(wire_get_value(&r, &back) == -EINVAL && r.bad, "a lying length (type %d)", type);
    }
    // A deadline the worker's page keeps moving still ends at its limit.
    uint64_t far = UINT64_MAX - 5, t0 = util_now_ms();
    struct wire_deadline dl = {t0 + 50, &far, 100, t0 + 300};
    free(msg);
    msg = NULL;
    REQUIRE(wire_recv(sv[0], &msg, &len, 1 << 20, &dl) == -ETIMEDOUT, "times out");
    uint64_t took = util_now_ms() - t0;
    REQUIRE(took >= 290 && took < 2000, "at the limit: %llu ms", (unsigned long long)took);
    close(sv[1]);
    sv[1] = -1;
    dl = (struct wire_deadline){util_now_ms() + 5000, NULL, 0, 0};
    REQUIRE(wire_recv(sv[0], &msg, &len, 1 << 20, &dl) == -EPIPE, "the peer is gone");
    for (int i = 0; i < 2; i++)
        if (sv[i] >= 0)
            close(sv[i]);
    free(msg);
    free(b.data);
    value_deinit(&v);
    value_deinit(&back);
}

/* ---- policies stuck inside a C library function --------------------------- */

// Runs fn with stderr (the log) going to a file; returns what was logged.
static char *capture_log(void (*fn)(void *), void *arg)
{
    log_reset_repeats(); /* earlier tests logged the same warnings: count afresh */
    char logpath[] = "/tmp/proctor-policy-log-XXXXXX";
    int fd = mkstemp(logpath);
    REQUIRE_OR_EXIT(fd >= 0);
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    REQUIRE_OR_EXIT(saved >= 0 && dup2(fd, STDERR_FILENO) >= 0);
    fn(arg);
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    close(fd);
    char *log = NULL;
    REQUIRE_OR_EXIT(util_read_file(logpath, 1 << 20, &log, NULL) == 0);
    unlink(logpath);
    return log;
}

struct stuck_call {
    const char *dir;
    struct policy_host *host;
    uint64_t first_ms, second_ms;
    int ret1, ret2;
    struct policy_limits l1, l2;
};

static void run_stuck_call(void *arg)
{
    struct stuck_call *s = arg;
    char reason[POLICY_REASON_MAX];
    s->host = host_from(s->dir);
    if (!s->host)
        return;
    uint64_t t0 = util_now_ms();
    s->ret1 = policy_limits(s->host, &default_req, &s->l1, reason, sizeof reason);
    uint64_t t1 = util_now_ms();
    // The next call gets a new worker, which is stuck again and killed again.
    s->ret2 = policy_limits(s->host, &default_req, &s->l2, reason, sizeof reason);
    s->first_ms = t1 - t0;
    s->second_ms = util_now_ms() - t1;
}

// clamp_limits runs `body` (line 2 of limits.lua), which never returns from a
// C function: the call costs at most the deadline, the built-in default
// decides, and the log names limits.lua:2.
static void expect_stuck_call(const char *what, const char *body)
{
    char *dir = limits_dir(body);
    struct stuck_call s = {.dir = dir};
    char *log = capture_log(run_stuck_call, &s);
    REQUIRE(s.host != NULL, "%s: loads", what);
    REQUIRE(s.ret1 == 0 && is_default_limits(&s.l1), "%s: the built-in default decides", what);
    REQUIRE(s.ret2 == 0 && is_default_limits(&s.l2), "%s: and again", what);
    // The deadline is 600 ms; the rest is slack for a loaded machine.
    REQUIRE(s.first_ms < 1500 && s.second_ms < 3000, "%s: %llu and %llu ms", what,
            (unsigned long long)s.first_ms, (unsigned long long)s.second_ms);
    REQUIRE(s.first_ms >= 500, "%s: killed before its deadline? %llu ms", what,
            (unsigned long long)s.first_ms);
    REQUIRE(policy_host_failures(s.host) == 2, "%s: failures %llu", what,
            (unsigned long long)policy_host_failures(s.host));
    REQUIRE(strstr(log, "limits.lua:2: no answer within 600 ms") != NULL,
            "%s: file:line in the log:\n%s", what, log);
    REQUIRE(strstr(log, "did not return within its deadline") != NULL, "%s: the kind:\n%s", what,
            log);
    free(log);
    policy_host_free(s.host);
    remove_dir(dir);
}

#define STUCK_REP "string.rep('', math.maxinteger)"
#define STUCK_FIND "string.find(string.rep('a', 3000), string.rep('.-', 12) .. 'b')"

static void test_stuck_in_c(void)
{
    expect_stuck_call("string.rep of an empty string", "local s = " STUCK_REP);
    expect_stuck_call("backtracking pattern", "local x = " STUCK_FIND);
    expect_stuck_call("in pcall", "pcall(string.rep, '', math.maxinteger)");
    expect_stuck_call("gsub", "local x = string.gsub(string.rep('a', 3000), "
                              "string.rep('.-', 12) .. 'b', '')");
}

struct stuck_load {
    const char *dir;
    struct policy_host *host;
    int check_ret;
    char new_err[1024], check_err[1024];
    uint64_t new_ms, check_ms;
};

static void run_stuck_load(void *arg)
{
    struct stuck_load *s = arg;
    uint64_t t0 = util_now_ms();
    s->host = policy_host_new(s->dir, &cfg, s->new_err, sizeof s->new_err);
    uint64_t t1 = util_now_ms();
    s->check_ret = policy_check_dir(s->dir, s->check_err, sizeof s->check_err);
    s->new_ms = t1 - t0;
    s->check_ms = util_now_ms() - t1;
}

// A top-level statement of a file (line 3) that never returns from C fails
// the load with file:line within the load deadline (5 s per file).
static void expect_stuck_load(const char *what, const char *stmt)
{
    char *text = xasprintf("local a = 1\nlocal b = 2\nlocal x = %s\nreturn {}\n", stmt);
    char *dir = dir_with("ports.lua", text);
    struct stuck_load s = {.dir = dir};
    char *log = capture_log(run_stuck_load, &s);
    REQUIRE(s.host == NULL, "%s: must not load", what);
    REQUIRE(s.check_ret == -EINVAL, "%s: check_dir", what);
    REQUIRE(strstr(s.new_err, "ports.lua:3: loading did not finish") != NULL, "%s: %s", what,
            s.new_err);
    REQUIRE(strstr(s.check_err, "ports.lua:3: loading did not finish") != NULL, "%s: %s", what,
            s.check_err);
    REQUIRE(s.new_ms < 7000 && s.check_ms < 7000, "%s: %llu and %llu ms", what,
            (unsigned long long)s.new_ms, (unsigned long long)s.check_ms);
    free(log);
    free(text);
    policy_host_free(s.host);
    remove_dir(dir);
}

static void test_stuck_at_load(void)
{
    expect_stuck_load("string.rep of an empty string", STUCK_REP);
    expect_stuck_load("backtracking pattern", STUCK_FIND);
    // On reload the old generation keeps deciding.
    char *dir =
        limits_dir("return { time_s = 5, hard_time_s = 6, memory_mib = 7, network = true }");
    struct policy_host *host = host_from(dir);
    struct policy_limits l;
    char reason[POLICY_REASON_MAX], err[1024] = "";
    REQUIRE(host != NULL, "loads");
    write_file(dir, "limits.lua", "\nlocal s = " STUCK_REP "\nreturn {}\n");
    uint64_t t0 = util_now_ms();
    REQUIRE(policy_host_reload(host, err, sizeof err) == -EINVAL, "a stuck file is refused");
    REQUIRE(util_now_ms() - t0 < 7000, "within the load deadline");
    REQUIRE(strstr(err, "limits.lua:2: loading did not finish") != NULL, "file:line: %s", err);
    REQUIRE(policy_host_generation(host) == 1, "generation stays");
    REQUIRE(policy_limits(host, &default_req, &l, reason, sizeof reason) == 0 && l.time_s == 5,
            "the old policy still decides");
    REQUIRE(policy_host_failures(host) == 0, "no failure");
    policy_host_free(host);
    remove_dir(dir);
}

// A policy that only takes its time within the budget is not killed: the
// worker's own budget answers first, with its usual message.
static void test_slow_but_bounded(void)
{
    expect_limits_fallback("wall-clock budget", "local s = 'x' while true do s = s:upper() end");
}

// The pids of this process's children (the policy workers), at most max.
static size_t children(pid_t *out, size_t max)
{
    char *path = xasprintf("/proc/self/task/%d/children", (int)getpid());
    char *text = NULL;
    size_t n = 0;
    if (util_read_file(path, 4096, &text, NULL) == 0) {
        char *p = text, *end;
        for (long v; n < max && (v = strtol(p, &end, 10), end != p); p = end)
            out[n++] = (pid_t)v;
    }
    free(text);
    free(path);
    return n;
}

// The worker holds nothing of the agent: only its socket and shared page
// besides stdio, no privileges (nobody when the agent is root), and it goes
// away with its generation.
static void test_worker_process(void)
{
    pid_t pids[4];
    char *status = NULL, *path = NULL;
    struct policy_host *host = NULL;
    int stray = open("/dev/null", O_RDONLY); // not close-on-exec: must not reach the worker
    REQUIRE(children(pids, 4) == 0, "no worker before");
    host = host_from(shipped_dir);
    REQUIRE(host != NULL, "loads");
    REQUIRE(children(pids, 4) == 1, "one worker");
    path = xasprintf("/proc/%d/status", (int)pids[0]);
    REQUIRE(util_read_file(path, 1 << 16, &status, NULL) == 0, "status");
    if (geteuid() == 0)
        REQUIRE(strstr(status, "\nUid:\t65534\t65534\t65534\t65534\n") &&
                    strstr(status, "\nGid:\t65534\t65534\t65534\t65534\n") &&
                    (strstr(status, "\nGroups:\t\n") || strstr(status, "\nGroups:\t \n")),
                "the worker of a root agent is nobody:\n%s", status);
    REQUIRE(strstr(status, "\nNoNewPrivs:\t1\n"), "no new privileges:\n%s", status);
    REQUIRE(!strncmp(status, "Name:\tproctor-policy\n", 21), "named:\n%s", status);
    free(path);
    for (int fd = 0; fd < 64; fd++) {
        path = xasprintf("/proc/%d/fd/%d", (int)pids[0], fd);
        struct stat sb;
        bool open_in_worker = stat(path, &sb) == 0;
        REQUIRE(open_in_worker == (fd <= 4), "fd %d open in the worker: %d", fd, open_in_worker);
        free(path);
    }
    path = NULL;
    policy_host_free(host);
    host = NULL;
    REQUIRE(children(pids, 4) == 0, "the worker is gone (and reaped) with its host");
    if (stray >= 0)
        close(stray);
    free(status);
    free(path);
    policy_host_free(host);
}

// The cost of one decision through the shipped limits.lua, printed for the
// record (10000 calls). A round trip to the worker is tens of microseconds
// (hundreds on a loaded machine under ASan); the bound only catches a worker
// started per call (milliseconds each).
static void test_call_cost(void)
{
    struct policy_host *host = host_from(shipped_dir);
    struct policy_limits l;
    char reason[POLICY_REASON_MAX];
    REQUIRE(host != NULL, "loads");
    uint64_t start = util_now_ns();
    for (int i = 0; i < 10000; i++)
        REQUIRE(policy_limits(host, &default_req, &l, reason, sizeof reason) == 0, "call %d", i);
    uint64_t per_call = (util_now_ns() - start) / 1000 / 10000;
    printf("policy_limits: %llu us per call (10000 calls)\n", (unsigned long long)per_call);
    REQUIRE(per_call < 5000, "%llu us per call", (unsigned long long)per_call);
    REQUIRE(policy_host_failures(host) == 0, "no failure");
    policy_host_free(host);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s REPOSITORY_ROOT\n", argv[0]);
        return 2;
    }
    repo_root = argv[1];
    shipped_dir = xasprintf("%s/policies", repo_root);
    test_shipped();
    test_example_sets();
    test_raises();
    test_budget();
    test_memory();
    test_wrong_answers();
    test_global_at_call();
    test_sandbox_holes();
    test_answer_size();
    test_huge_result();
    test_refusal();
    test_caps();
    test_deleted_function();
    test_other_hooks_fallback();
    test_student_caps();
    test_load_errors();
    test_reload();
    test_log_once();
    test_wire();
    test_worker_process();
    test_stuck_in_c();
    test_stuck_at_load();
    test_slow_but_bounded();
    test_call_cost();
    free((char *)shipped_dir);
    return check_finish("test_policy_host");
}
