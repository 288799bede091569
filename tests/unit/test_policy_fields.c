// Unit tests of the named fields between the agent, its policy worker and
// Lua (policy_fields.h): a C struct as a map keyed by field name and back,
// and the errors that name a missing, mistyped, unknown or out-of-range field;
// then the same checks on a policy's answer table, through the policy worker.

#include "policy/policy_fields.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "common/utf8.h"
#include "core/util.h"
#include "core/value.h"
#include "policy/policy.h"
#include "policy/policy_explain.h"

static void test_round_trip(void)
{
    struct policy_limits_req req = {
        .has_memory = true, .memory_mib = -3, .needs_ports = true, .environment = "default"};
    struct value map;
    value_set_map(&map);
    policy_fields_put(&map, &policy_fields_limits_req, &req);
    CHECK(value_map_get(&map, "time_s") == NULL, "an absent optional field is left out");
    CHECK(value_map_get(&map, "environment_type") == NULL, "a NULL string is left out");
    CHECK_INT_EQ(policy_fields_int(&map, "memory_mib", 0), -3);
    CHECK(policy_fields_bool(&map, "needs_ports", false), "needs_ports by name");
    struct policy_limits_req back = {.has_time = true, .time_s = 99};
    char err[256] = "";
    REQUIRE(policy_fields_get(&map, &policy_fields_limits_req, &back, err, sizeof err) == 0, "%s",
            err);
    CHECK(!back.has_time && back.has_memory && back.memory_mib == -3, "presence flags follow keys");
    CHECK(back.needs_ports && !back.network_grading, "booleans");
    CHECK_STR_EQ(back.environment, "default");
    value_deinit(&map);

    struct policy_runtime rt = {.runtime = "runc", .envtype = "docker", .shared_kernel = true};
    struct policy_runtime rt_back;
    memset(&rt_back, 0, sizeof rt_back);
    value_set_map(&map);
    policy_fields_put(&map, &policy_fields_runtime, &rt);
    REQUIRE(policy_fields_get(&map, &policy_fields_runtime, &rt_back, err, sizeof err) == 0, "%s",
            err);
    CHECK(memcmp(&rt, &rt_back, sizeof rt) == 0, "a runtime entry comes back the same");
    value_deinit(&map);
}

// A limits answer with `mutate` applied: the error must name the field.
static void expect_error(const char *what, void (*mutate)(struct value *), const char *want)
{
    struct policy_limits l = {.time_s = 30, .hard_time_s = 90, .memory_mib = 100};
    struct value map;
    value_set_map(&map);
    policy_fields_put(&map, &policy_fields_limits, &l);
    mutate(&map);
    char err[256] = "";
    struct policy_limits out = {0};
    CHECK(policy_fields_get(&map, &policy_fields_limits, &out, err, sizeof err) == -EINVAL,
          "%s: refused", what);
    CHECK(strstr(err, want) != NULL, "%s: '%s' names the field ('%s' expected)", what, err, want);
    value_deinit(&map);
}

static void drop_memory(struct value *m)
{
    value_map_del(m, "memory_mib");
}
static void string_time(struct value *m)
{
    struct value *v = value_map_put(m, "time_s");
    value_deinit(v);
    value_set_str(v, "30");
}
static void float_time(struct value *m)
{
    struct value *v = value_map_put(m, "hard_time_s");
    value_set_float(v, 90.0);
}
static void int_network(struct value *m)
{
    value_set_int(value_map_put(m, "network"), 1);
}
static void tiny_memory(struct value *m)
{
    value_set_int(value_map_put(m, "memory_mib"), 3);
}
static void extra_key(struct value *m)
{
    value_set_int(value_map_put(m, "memroy_mib"), 3);
}

static void test_errors(void)
{
    expect_error("missing", drop_memory, "limits answer: missing field 'memory_mib'");
    expect_error("string for an integer", string_time,
                 "limits answer: field 'time_s' must be an integer, got str");
    expect_error("float for an integer", float_time,
                 "field 'hard_time_s' must be an integer, got float");
    expect_error("integer for a boolean", int_network,
                 "field 'network' must be a boolean, got int");
    expect_error("out of range", tiny_memory, "field 'memory_mib' = 3 is out of range [6, ");
    expect_error("unknown", extra_key, "limits answer: unknown field 'memroy_mib'");

    struct value notmap;
    value_set_array(&notmap);
    char err[256] = "";
    struct policy_limits out;
    CHECK(policy_fields_get(&notmap, &policy_fields_limits, &out, err, sizeof err) == -EINVAL &&
              strstr(err, "a map of fields expected"),
          "%s", err);
    value_deinit(&notmap);

    struct value map;
    value_set_map(&map);
    struct policy_runtime rt;
    char longname[200];
    memset(longname, 'x', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    value_set_str(value_map_put(&map, "runtime"), longname);
    CHECK(policy_fields_get(&map, &policy_fields_runtime, &rt, err, sizeof err) == -EINVAL &&
              strstr(err, "field 'runtime' is longer than 127 bytes"),
          "%s", err);
    value_deinit(&map);
}

// A policy whose answer lacks a field, or has one of the wrong type: the hook
// falls back to the built-in decision and the failure is counted.
static void test_policy_answers(void)
{
    static const struct {
        const char *text;
        const char *what;
    } cases[] = {
        {"return { clamp_limits = function() return { time_s = 1, hard_time_s = 2, network = "
         "false } end }\n",
         "missing memory_mib"},
        {"return { clamp_limits = function() return { time_s = '1', hard_time_s = 2, "
         "memory_mib = 50, network = false } end }\n",
         "a string time_s"},
    };
    const struct policy_config cfg = {.concurrency = 2, .host_memory_mib = 1000};
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        char tmpl[] = "/tmp/proctor-fields-test-XXXXXX";
        REQUIRE_OR_EXIT(mkdtemp(tmpl) != NULL, "mkdtemp");
        char *path = xasprintf("%s/limits.lua", tmpl);
        FILE *f = fopen(path, "w");
        REQUIRE_OR_EXIT(f && fputs(cases[i].text, f) >= 0 && fclose(f) == 0, "write %s", path);
        char err[POLICY_REASON_MAX + 128] = "", reason[POLICY_REASON_MAX] = "";
        struct policy_host *h = policy_host_new(tmpl, &cfg, err, sizeof err);
        REQUIRE_OR_EXIT(h != NULL, "%s: %s", cases[i].what, err);
        struct policy_limits l = {0};
        struct policy_limits_req req = {0};
        CHECK(policy_limits(h, &req, &l, reason, sizeof reason) == 0, "%s: %s", cases[i].what,
              reason);
        CHECK(l.time_s == 30 && l.hard_time_s == 90 && l.memory_mib == 200,
              "%s: the built-in decision (%lld %lld %lld)", cases[i].what, (long long)l.time_s,
              (long long)l.hard_time_s, (long long)l.memory_mib);
        CHECK_INT_EQ(policy_host_failures(h), 1);
        policy_host_free(h);
        unlink(path);
        rmdir(tmpl);
        free(path);
    }
}

// --explain's rendering: compact JSON, bounded whatever the value.
static void test_explain_render(void)
{
    struct value v;
    value_set_map(&v);
    value_set_int(value_map_put(&v, "time_s"), 10);
    value_set_str(value_map_put(&v, "text"), "a \"quoted\"\nline");
    value_set_bin(value_map_put(&v, "archive"), "\x00\x01", 2);
    char buf[256];
    policy_explain_render(&v, buf, sizeof buf);
    CHECK_STR_EQ(
        buf, "{\"time_s\":10,\"text\":\"a \\\"quoted\\\"\\u000aline\",\"archive\":\"<2 bytes>\"}");
    struct value *list = value_map_put(&v, "list");
    value_set_array(list);
    for (int i = 0; i < 10000; i++)
        value_set_int(value_array_push(list), i);
    char small[64];
    policy_explain_render(&v, small, sizeof small);
    CHECK(strlen(small) < sizeof small && strcmp(small + strlen(small) - 3, "...") == 0,
          "bounded, and says so: %s", small);
    value_deinit(&v);
    char big[400];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    value_set_str(&v, big);
    policy_explain_render(&v, buf, sizeof buf);
    CHECK(strlen(buf) == 1 + 80 + 4, "a long string is cut at 80 bytes: %zu", strlen(buf));
    value_deinit(&v);
    // Cut where a UTF-8 sequence begins, in a string and at the end of the line.
    char accents[3 * 100 + 1] = ""; // euro signs: 3 bytes each, 80 is no multiple of 3
    for (int i = 0; i < 100; i++)
        strcat(accents, "\xe2\x82\xac");
    value_set_str(&v, accents);
    policy_explain_render(&v, buf, sizeof buf);
    CHECK(utf8_valid(buf, strlen(buf)), "a cut string stays valid UTF-8: %s", buf);
    policy_explain_render(&v, small, 31);
    CHECK(utf8_valid(small, strlen(small)), "a cut line stays valid UTF-8: %s", small);
    value_deinit(&v);
}

int main(void)
{
    test_round_trip();
    test_explain_render();
    test_errors();
    test_policy_answers();
    return check_finish("test_policy_fields");
}
