// Unit tests of the built-in defaults (the shipped policies/*.lua embedded in
// the binary), through policy.h without a policy directory: INGInious's limits
// clamping, result validation, hardening; and the checks C applies after
// every policy answer.

#include "policy/policy.h"
#include "policy/policy_internal.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "common/utf8.h"
#include "core/util.h"
#include "core/value.h"

static const struct policy_config cfg = {.concurrency = 3, .host_memory_mib = 1000};
static struct policy_host *host;

static void test_limits(void)
{
    // INGInious 0.9 __new_job_sync, row by row; max per slot = 1000 / 3 = 333.
    static const struct {
        struct policy_limits_req req;
        int ret;
        int64_t time, hard, mem;
        bool network;
    } cases[] = {
        {{0}, 0, 30, 90, 200, false},
        {{.has_time = true, .time_s = 10}, 0, 10, 30, 200, false},
        {{.has_time = true, .time_s = 10, .has_hard_time = true, .hard_time_s = 0},
         0,
         10,
         30,
         200,
         false},
        {{.has_time = true, .time_s = 10, .has_hard_time = true, .hard_time_s = 15},
         0,
         10,
         15,
         200,
         false},
        {{.has_memory = true, .memory_mib = 19}, 0, 30, 90, 20, false},
        {{.has_memory = true, .memory_mib = -3}, 0, 30, 90, 20, false},
        {{.has_memory = true, .memory_mib = 333}, 0, 30, 90, 333, false},
        {{.has_memory = true, .memory_mib = 334}, -EPERM, 0, 0, 0, false},
        {{.has_memory = true, .memory_mib = INT64_MAX}, -EPERM, 0, 0, 0, false},
        {{.network_grading = true}, 0, 30, 90, 200, true},
        {{.needs_ports = true, .has_time = true, .time_s = 5}, 0, 1800, 1800, 200, true},
        {{.has_time = true, .time_s = 0}, 0, 1, 3, 200, false},
        {{.has_time = true, .time_s = INT64_MAX}, 0, POLICY_MAX_SECONDS, 2147483646, 200, false},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        struct policy_limits out = {0};
        char reason[POLICY_REASON_MAX] = "";
        int ret = policy_limits(host, &cases[i].req, &out, reason, sizeof reason);
        REQUIRE(ret == cases[i].ret, "case %zu: ret %d", i, ret);
        if (ret) {
            REQUIRE(!strcmp(reason, "Not enough memory on agent (available: 333MB). Please contact "
                                    "your course administrator."),
                    "case %zu: %s", i, reason);
            continue;
        }
        REQUIRE(out.time_s == cases[i].time && out.hard_time_s == cases[i].hard &&
                    out.memory_mib == cases[i].mem && out.network == cases[i].network,
                "case %zu: %lld %lld %lld %d", i, (long long)out.time_s, (long long)out.hard_time_s,
                (long long)out.memory_mib, out.network);
    }
    return;
}

static void test_caps(void)
{
    struct policy_config c = {.concurrency = 2,
                              .host_memory_mib = 100,
                              .max_time_s = 10,
                              .max_hard_time_s = 20,
                              .max_result_bytes = 5,
                              .max_output_bytes = 6};
    struct policy_limits l = {100, 100, 500, false};
    policy_cap_limits(&c, &l);
    REQUIRE(l.time_s == 10 && l.hard_time_s == 20 && l.memory_mib == 50, "limits capped");
    struct policy_student_req sr = {30, 90, 200, 0, 0, 0, "x"};
    struct policy_student_limits s = {40, 40, 400};
    policy_cap_student(&sr, &s);
    REQUIRE(s.time_s == 30 && s.hard_time_s == 40 && s.memory_mib == 200, "student capped");
    struct policy_hardening_req grading = {"x", false, 200, false};
    struct policy_hardening h = {.max_output_bytes = 100,
                                 .max_frame_bytes = 100,
                                 .max_students = 1000,
                                 .max_students_total = INT64_MAX};
    policy_cap_hardening(&c, &grading, &h);
    REQUIRE(h.max_output_bytes == 6 && h.max_frame_bytes == 5, "bytes capped");
    REQUIRE(h.max_students == POLICY_MAX_STUDENTS &&
                h.max_students_total == POLICY_MAX_STUDENTS_TOTAL,
            "student caps: %lld %lld", (long long)h.max_students, (long long)h.max_students_total);
    h.max_students = 3;
    h.max_students_total = 7;
    policy_cap_hardening(&c, &grading, &h);
    REQUIRE(h.max_students == 3 && h.max_students_total == 7, "a policy narrows");
    struct policy_hardening_req student = {"x", true, 200, false};
    policy_cap_hardening(&c, &student, &h);
    REQUIRE(h.max_students == 0 && h.max_students_total == 0, "meaningless for student containers");
    return;
}

static void test_student(void)
{
    static const struct {
        struct policy_student_req req;
        int64_t time, hard, mem;
    } cases[] = {
        {{30, 90, 200, 0, 0, 0, "x"}, 30, 90, 200},      // 0 inherits
        {{30, 90, 200, -5, 500, 100, "x"}, 30, 90, 100}, // more than the parent is cut
        {{30, 90, 200, 10, 20, 5, "x"}, 10, 20, 20},     // memory floor
        {{30, 90, 10, 0, 0, 5, "x"}, 30, 90, 10},        // the floor never lifts above the parent
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        struct policy_student_limits out = {0};
        char reason[POLICY_REASON_MAX] = "";
        REQUIRE(policy_student_limits(host, &cases[i].req, &out, reason, sizeof reason) == 0,
                "case %zu: %s", i, reason);
        CHECK(out.time_s == cases[i].time && out.hard_time_s == cases[i].hard &&
                  out.memory_mib == cases[i].mem,
              "case %zu: %lld %lld %lld", i, (long long)out.time_s, (long long)out.hard_time_s,
              (long long)out.memory_mib);
    }
}

static void test_hardening(void)
{
    struct policy_hardening_req grading = {"x", false, 200, false};
    struct policy_hardening h;
    char reason[POLICY_REASON_MAX] = "";
    REQUIRE(policy_hardening(host, &grading, &h, reason, sizeof reason) == 0, "%s", reason);
    REQUIRE(h.max_students == 8 && h.max_students_total == 512, "built-in: %lld %lld",
            (long long)h.max_students, (long long)h.max_students_total);
    CHECK(h.pids_limit == 1024 && h.no_new_privileges && h.nofile_soft == 1024 &&
              h.nofile_hard == 1024 && h.max_output_bytes == 128 << 20 &&
              h.max_frame_bytes == 128 << 20,
          "shipped values");
    static const char *const offline[] = {
        "NET_RAW", "MKNOD", "SETPCAP", "SETFCAP", "SYS_CHROOT", "NET_BIND_SERVICE", "AUDIT_WRITE"};
    REQUIRE(h.ncap_drop == ARRAY_SIZE(offline), "caps without a network: %zu", h.ncap_drop);
    for (size_t i = 0; i < ARRAY_SIZE(offline); i++)
        CHECK_STR_EQ(h.cap_drop[i], offline[i]);
    struct policy_hardening_req networked = {"x", false, 200, true};
    REQUIRE(policy_hardening(host, &networked, &h, reason, sizeof reason) == 0, "%s", reason);
    CHECK(h.ncap_drop == 4, "sshd keeps its capabilities: %zu", h.ncap_drop);
    struct policy_hardening_req student = {"x", true, 200, false};
    REQUIRE(policy_hardening(host, &student, &h, reason, sizeof reason) == 0, "%s", reason);
    REQUIRE(h.max_students == 0 && h.max_students_total == 0, "student containers: 0");
    CHECK(h.pids_limit == 1024, "no student_pids_limit by default");
    return;
}

static void test_ports(void)
{
    uint16_t pool[] = {10, 11, 12};
    uint16_t chosen[POLICY_MAX_PORTS] = {0};
    char err[128] = "";
    struct policy_ports_req req = {"j", 2, pool, 3};
    REQUIRE(policy_ports(host, &req, chosen, err, sizeof err) == 0, "two of three");
    REQUIRE(chosen[0] == 10 && chosen[1] == 11, "lowest first");
    req.count = 4;
    REQUIRE(policy_ports(host, &req, chosen, err, sizeof err) == -EPERM, "too few");
    REQUIRE(!strcmp(err, "No ports are available right now. Please retry later."), "%s", err);
    req.count = 2;
    uint16_t dup[] = {11, 11}, stranger[] = {10, 99};
    REQUIRE(!policy_ports_valid(&req, dup, err, sizeof err), "duplicate refused");
    REQUIRE(!policy_ports_valid(&req, stranger, err, sizeof err), "foreign port refused");
    REQUIRE(strstr(err, "99") != NULL, "names the port: %s", err);
    return;
}

static void test_runtimes(void)
{
    const char *names[] = {"io.containerd.runc.v2",
                           "io.containerd.runtime.v1.linux",
                           "runc",
                           "crun",
                           "kata-qemu",
                           "nvidia"};
    struct policy_runtime out[8];
    size_t n = 0;
    REQUIRE(policy_runtimes(host, names, ARRAY_SIZE(names), true, out, 8, &n) == 0, "never fails");
    REQUIRE(n == 6, "docker, docker-ssh, kata, kata-ssh, nvidia, nvidia-ssh: %zu", n);
    REQUIRE(!strcmp(out[0].envtype, "docker") && !strcmp(out[0].runtime, "io.containerd.runc.v2"),
            "first wins");
    REQUIRE(!strcmp(out[1].envtype, "docker-ssh"), "ssh variant: %s", out[1].envtype);
    REQUIRE(!strcmp(out[2].envtype, "kata") && out[2].run_as_root && !out[2].shared_kernel, "kata");
    REQUIRE(!strcmp(out[4].envtype, "nvidia") && out[4].enables_gpu, "nvidia");
    REQUIRE(policy_runtimes(host, names, ARRAY_SIZE(names), false, out, 2, &n) == 0, "bounded");
    REQUIRE(n == 2, "bounded by max: %zu", n);
    return;
}

static void test_results(void)
{
    struct value raw;
    struct policy_result r = {0};
    char reason[POLICY_REASON_MAX] = "";
    value_set_map(&raw);
    value_set_str(value_map_put(&raw, "result"), "bogus");
    value_set_float(value_map_put(&raw, "grade"), 12.345);
    struct value *p = value_map_put(&raw, "problems");
    value_set_map(p);
    value_set_str(value_map_put(p, "q.1-a_b"), "fine");
    REQUIRE(policy_results(host, &raw, "s", &r, reason, sizeof reason) == 0, "%s", reason);
    REQUIRE(!strcmp(r.result, "error"), "unknown result becomes error: %s", r.result);
    REQUIRE(r.grade == 12.35, "Python's round(12.345, 2): %.17g", r.grade);
    const struct value *q = value_map_get(&r.problems, "q.1-a_b");
    REQUIRE(q && q->type == VALUE_ARRAY && value_is_str(&q->u.a.items[0], "error"), "normalised");
    policy_result_deinit(&r);

    value_set_str(value_map_put(p, "bad id"), "x");
    REQUIRE(policy_results(host, &raw, "", &r, reason, sizeof reason) == -EPERM, "bad id");
    REQUIRE(strstr(reason, "bad id") != NULL, "%s", reason);
    value_deinit(&raw);

    value_set_map(&raw);
    struct value *t = value_map_put(&raw, "tests");
    value_set_map(t);
    value_set_map(value_map_put(t, "x*"));
    REQUIRE(policy_results(host, &raw, "", &r, reason, sizeof reason) == -EPERM, "map value");
    value_deinit(&raw);

    value_set_map(&raw);
    value_set_bool(value_map_put(&raw, "grade"), true);
    REQUIRE(policy_results(host, &raw, "", &r, reason, sizeof reason) == -EPERM, "bool grade");
    value_deinit(&raw);

    value_set_map(&raw);
    value_set_float(value_map_put(&raw, "grade"), NAN);
    REQUIRE(policy_results(host, &raw, "", &r, reason, sizeof reason) == -EPERM, "nan grade");
    value_deinit(&raw);

    value_set_map(&raw);
    value_set_str(value_map_put(&raw, "archive"), "not decoded by the caller");
    REQUIRE(policy_results(host, &raw, "", &r, reason, sizeof reason) == -EPERM, "archive");
    value_deinit(&raw);

    value_set_map(&raw);
    REQUIRE(policy_results(host, &raw, "old", &r, reason, sizeof reason) == 0, "empty map");
    REQUIRE(!strcmp(r.result, "error") && r.grade == 0.0 && !strcmp(r.state, ""), "defaults");
    REQUIRE(r.problems.type == VALUE_MAP && r.tests.type == VALUE_MAP && r.custom.type == VALUE_MAP,
            "maps");
    policy_result_deinit(&r);
    value_deinit(&raw);
}

static double cpu_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

// A thousand jobs' built-in calls in a row (clamp_limits, harden and
// validate_result of a small result) all answer. What they cost is printed
// for the reader (about 30 us per job in a release build, 70 us under
// ASan+UBSan); speed is the benchmark's to measure, not a test's to assert.
static void test_cost(void)
{
    enum { JOBS = 1000 };
    struct value raw;
    value_set_map(&raw);
    value_set_str(value_map_put(&raw, "result"), "success");
    value_set_str(value_map_put(&raw, "text"), "All tests passed.");
    value_set_float(value_map_put(&raw, "grade"), 87.5);
    struct value *p = value_map_put(&raw, "problems");
    value_set_map(p);
    value_set_str(value_map_put(p, "q1"), "ok");
    struct policy_limits_req lr = {.has_time = true, .time_s = 30};
    struct policy_hardening_req hr = {"default", false, 200, false};
    char reason[POLICY_REASON_MAX] = "";
    int failed = 0;
    double t0 = cpu_us();
    for (int i = 0; i < JOBS; i++) {
        struct policy_limits l;
        struct policy_hardening h;
        struct policy_result r;
        failed += policy_limits(host, &lr, &l, reason, sizeof reason) != 0;
        failed += policy_hardening(host, &hr, &h, reason, sizeof reason) != 0;
        if (policy_results(host, &raw, "", &r, reason, sizeof reason) == 0)
            policy_result_deinit(&r);
        else
            failed++;
    }
    double per_job = (cpu_us() - t0) / JOBS;
    value_deinit(&raw);
    printf("built-in policy calls of one job: %.1f us of CPU\n", per_job);
    CHECK(failed == 0, "%d calls failed: %s", failed, reason);
}

// A directory holding one file, limits.lua, with `text`. Caller removes it.
static char *dir_with_limits(const char *text)
{
    char tmpl[] = "/tmp/proctor-builtin-test-XXXXXX";
    REQUIRE_OR_EXIT(mkdtemp(tmpl) != NULL, "mkdtemp");
    char *path = xasprintf("%s/limits.lua", tmpl);
    FILE *f = fopen(path, "w");
    REQUIRE_OR_EXIT(f && fputs(text, f) >= 0 && fclose(f) == 0, "write %s", path);
    free(path);
    return xstrdup(tmpl);
}

static void remove_dir(char *dir)
{
    char *path = xasprintf("%s/limits.lua", dir);
    unlink(path);
    rmdir(dir);
    free(path);
    free(dir);
}

// extend() in the policy worker: the embedded shipped file with one default
// changed and one hook wrapped; the other file's hooks are the built-in ones.
static void test_extend(void)
{
    char *dir = dir_with_limits("return extend('limits', {\n"
                                "    defaults = { memory_mib = MiB(300), max_task_time_s = 60 },\n"
                                "    clamp_student = function(shipped, req)\n"
                                "        local out = shipped(req)\n"
                                "        out.memory_mib = 7\n"
                                "        return out\n"
                                "    end,\n"
                                "})\n");
    char err[POLICY_REASON_MAX + 128] = "";
    struct policy_host *h = policy_host_new(dir, &cfg, err, sizeof err);
    REQUIRE_OR_EXIT(h != NULL, "extend: %s", err);
    struct policy_limits l = {0};
    char reason[POLICY_REASON_MAX] = "";
    struct policy_limits_req req = {0};
    REQUIRE(policy_limits(h, &req, &l, reason, sizeof reason) == 0, "%s", reason);
    CHECK(l.memory_mib == 300 && l.time_s == 30 && l.hard_time_s == 90, "memory overridden: %lld",
          (long long)l.memory_mib);
    req.has_time = true;
    req.time_s = 61;
    REQUIRE(policy_limits(h, &req, &l, reason, sizeof reason) == -EPERM, "the ceiling refuses");
    CHECK_STR_EQ(reason, "This task asks for more time than this agent allows (60 s). Please "
                         "contact your course administrator.");
    struct policy_student_req sr = {30, 90, 200, 0, 0, 0, "x"};
    struct policy_student_limits s = {0};
    REQUIRE(policy_student_limits(h, &sr, &s, reason, sizeof reason) == 0, "%s", reason);
    CHECK(s.memory_mib == 7 && s.time_s == 30, "wrapped: %lld", (long long)s.memory_mib);
    CHECK(policy_host_failures(h) == 0, "no failure");
    policy_host_free(h);
    remove_dir(dir);

    // A wrapper whose answer the agent rejects: the shipped hook, with its own
    // defaults, decides that call.
    dir = dir_with_limits("return extend('limits', {\n"
                          "    defaults = { memory_mib = MiB(300) },\n"
                          "    clamp_limits = function(shipped, req)\n"
                          "        local out = shipped(req)\n"
                          "        out.memory_mib = 3\n"
                          "        return out\n"
                          "    end,\n"
                          "})\n");
    h = policy_host_new(dir, &cfg, err, sizeof err);
    REQUIRE_OR_EXIT(h != NULL, "extend: %s", err);
    req.has_time = false;
    REQUIRE(policy_limits(h, &req, &l, reason, sizeof reason) == 0, "%s", reason);
    CHECK(l.memory_mib == 200 && l.time_s == 30, "the shipped default decides: %lld",
          (long long)l.memory_mib);
    CHECK(policy_host_failures(h) == 1, "one failure: %llu",
          (unsigned long long)policy_host_failures(h));
    policy_host_free(h);
    remove_dir(dir);

    // A typo in an override: refused at load, with the admin's file:line.
    dir = dir_with_limits("\nreturn extend('limits', { defaults = { memry_mib = 512 } })\n");
    REQUIRE(policy_check_dir(dir, err, sizeof err) == -EINVAL, "a typo is refused");
    char *want = xasprintf("/limits.lua:2: limits.lua defaults: unknown key 'memry_mib'");
    CHECK(strstr(err, want) != NULL, "%s", err);
    free(want);
    remove_dir(dir);
}

static void test_checks(void)
{
    REQUIRE(policy_cap_name_valid("NET_RAW") && policy_cap_name_valid("CAP_NET_RAW") &&
                policy_cap_name_valid("ALL"),
            "known caps");
    REQUIRE(!policy_cap_name_valid("net_raw") && !policy_cap_name_valid("") &&
                !policy_cap_name_valid("CAP_"),
            "unknown caps");
    REQUIRE(policy_id_valid("a-b.c_D9", 8, false) && !policy_id_valid("a*", 2, false) &&
                policy_id_valid("a*", 2, true) && !policy_id_valid("", 0, true) &&
                !policy_id_valid("a\n", 2, false),
            "ids");
    REQUIRE(utf8_valid("h\xc3\xa9", 3) && !utf8_valid("\xff", 1) && !utf8_valid("\xc3", 1) &&
                !utf8_valid("\xed\xa0\x80", 3) && !utf8_valid("\xc0\xaf", 2) && utf8_valid("", 0),
            "utf8");
    REQUIRE(policy_round2(0.125) == 0.12 && policy_round2(0.135) == 0.14 &&
                policy_round2(0.375) == 0.38 && policy_round2(2.675) == 2.67 &&
                policy_round2(-1.005) == -1.0 && policy_round2(1e300) == 1e300 &&
                isnan(policy_round2(NAN)),
            "round2");
    REQUIRE(policy_envtype_valid("docker-ssh") && !policy_envtype_valid("") &&
                !policy_envtype_valid("a b"),
            "envtypes");
    return;
}

int main(void)
{
    char err[POLICY_REASON_MAX + 128] = "";
    host = policy_host_new(NULL, &cfg, err, sizeof err);
    REQUIRE_OR_EXIT(host != NULL, "policy_host_new: %s", err);
    test_limits();
    test_student();
    test_caps();
    test_hardening();
    test_ports();
    test_runtimes();
    test_results();
    test_checks();
    test_extend();
    test_cost();
    CHECK(policy_host_failures(host) == 0, "no built-in hook failed");
    policy_host_free(host);
    return check_finish("test_policy_builtin");
}
