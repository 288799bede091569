// The task.yaml reader of `proctor run` (src/cli/task_yaml.c): block and flow
// style, the old top-level limits, quoted values, and a broken file reported
// with its line. With the source directory as argument, every task.yaml of the
// repository must parse too.
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "cli/task_yaml.h"

static int parse(const char *text, struct task_yaml *t, char *err, size_t errlen)
{
    return task_yaml_parse(text, strlen(text), "task.yaml", t, err, errlen);
}

static void check_limits(const struct task_yaml *t, long long time, long long hard,
                         long long memory)
{
    CHECK(t->has_time && t->has_hard_time && t->has_memory, "all three limits read");
    CHECK_INT_EQ(t->time, time);
    CHECK_INT_EQ(t->hard_time, hard);
    CHECK_INT_EQ(t->memory, memory);
}

static void test_block_style(void)
{
    struct task_yaml t;
    char err[256] = "";
    int ret = parse("accessible: true\n"
                    "author: someone\n"
                    "environment_id: pyjavacpp\n"
                    "environment_type: docker\n"
                    "environment_parameters:\n"
                    "  limits:\n"
                    "    time: 10\n"
                    "    hard_time: 30\n"
                    "    memory: 64\n"
                    "  run_cmd: ''\n"
                    "problems:\n"
                    "  q1:\n"
                    "    type: code\n"
                    "    limits: {time: 1}  # a problem's key of the same name is not the task's\n",
                    &t, err, sizeof err);
    REQUIRE(ret == 0, "%s", err);
    CHECK_STR_EQ(t.environment_id, "pyjavacpp");
    check_limits(&t, 10, 30, 64);
    task_yaml_deinit(&t);
    CHECK(t.environment_id == NULL && !t.has_time, "deinit empties");
}

static void test_flow_style(void)
{
    struct task_yaml t;
    char err[256] = "";
    int ret = parse("{environment_id: \"default\", environment_parameters: "
                    "{limits: {time: 20, hard_time: 60, memory: 128}, run_cmd: ''}, problems: {}}",
                    &t, err, sizeof err);
    REQUIRE(ret == 0, "%s", err);
    CHECK_STR_EQ(t.environment_id, "default");
    check_limits(&t, 20, 60, 128);
    task_yaml_deinit(&t);

    ret = parse("environment_id: default\n"
                "environment_parameters:\n"
                "  limits: {time: 30, memory: 64}\n",
                &t, err, sizeof err);
    REQUIRE(ret == 0, "%s", err);
    CHECK(t.has_time && !t.has_hard_time && t.has_memory, "hard_time absent");
    CHECK_INT_EQ(t.time, 30);
    CHECK_INT_EQ(t.memory, 64);
    task_yaml_deinit(&t);
}

static void test_old_top_level_limits(void)
{
    struct task_yaml t;
    char err[256] = "";
    int ret = parse("environment: default\n"
                    "limits:\n"
                    "  time: 5\n"
                    "  hard_time: 15\n"
                    "  memory: 100\n",
                    &t, err, sizeof err);
    REQUIRE(ret == 0, "%s", err);
    CHECK(t.environment_id == NULL, "no environment_id: the caller's default");
    check_limits(&t, 5, 15, 100);
    task_yaml_deinit(&t);

    // Both places: environment_parameters wins, the old key fills the gap.
    ret = parse("limits: {time: 1, hard_time: 2, memory: 3}\n"
                "environment_parameters:\n"
                "  limits: {time: 10, memory: 64}\n",
                &t, err, sizeof err);
    REQUIRE(ret == 0, "%s", err);
    check_limits(&t, 10, 2, 64);
    task_yaml_deinit(&t);
}

static void test_quoted_and_empty_values(void)
{
    struct task_yaml t;
    char err[256] = "";
    int ret = parse("environment_id: 'my env' # a comment\n"
                    "environment_parameters:\n"
                    "  limits:\n"
                    "    time: '10'\n"
                    "    hard_time: ''\n"
                    "    memory: \"64.9\"\n",
                    &t, err, sizeof err);
    REQUIRE(ret == 0, "%s", err);
    CHECK_STR_EQ(t.environment_id, "my env");
    CHECK(t.has_time && !t.has_hard_time && t.has_memory, "an empty hard_time is absent");
    CHECK_INT_EQ(t.time, 10);
    CHECK_INT_EQ(t.memory, 64);
    task_yaml_deinit(&t);

    ret = parse("environment_id: ~\nlimits: {time: null, hard_time: 7}\n", &t, err, sizeof err);
    REQUIRE(ret == 0, "%s", err);
    CHECK(t.environment_id == NULL, "a null environment_id is absent");
    CHECK(!t.has_time && t.has_hard_time && t.hard_time == 7, "null time absent");
    task_yaml_deinit(&t);

    // Anchors and aliases are YAML too.
    ret = parse("base: &l {time: 3, hard_time: 9, memory: 32}\nlimits: *l\n", &t, err, sizeof err);
    REQUIRE(ret == 0, "%s", err);
    check_limits(&t, 3, 9, 32);
    task_yaml_deinit(&t);

    ret = parse("", &t, err, sizeof err);
    CHECK(ret == 0 && !t.environment_id && !t.has_time, "an empty file holds nothing");
    task_yaml_deinit(&t);
}

static void test_errors_name_the_line(void)
{
    struct task_yaml t;
    char err[256] = "";
    int ret = parse("environment_id: x\n"
                    "environment_parameters:\n"
                    "  limits: {time: 10\n"
                    "  run_cmd: ''\n",
                    &t, err, sizeof err);
    CHECK_INT_EQ(ret, -EINVAL);
    CHECK(!strncmp(err, "task.yaml:4:", 12), "the line of the problem: %s", err);
    CHECK(strstr(err, "flow mapping") != NULL, "what was being parsed: %s", err);
    CHECK(t.environment_id == NULL && !t.has_time, "nothing half-read on failure");

    ret = parse("a: b\n c: d\n", &t, err, sizeof err);
    CHECK_INT_EQ(ret, -EINVAL);
    CHECK(!strncmp(err, "task.yaml:2:", 12), "bad indentation on line 2: %s", err);

    ret = parse("key: \"unterminated\n", &t, err, sizeof err);
    CHECK_INT_EQ(ret, -EINVAL);
    CHECK(!strncmp(err, "task.yaml:", 10), "%s", err);

    ret = parse("limits:\n  time: ten\n", &t, err, sizeof err);
    CHECK_INT_EQ(ret, -EINVAL);
    CHECK_STR_EQ(err, "task.yaml:2: limits.time is not a number");

    ret = parse("environment_parameters:\n  limits: [10, 20]\n", &t, err, sizeof err);
    CHECK_INT_EQ(ret, -EINVAL);
    CHECK_STR_EQ(err, "task.yaml:2: limits is not a mapping");

    ret = parse("environment_id: [a, b]\n", &t, err, sizeof err);
    CHECK_INT_EQ(ret, -EINVAL);
    CHECK_STR_EQ(err, "task.yaml:1: environment_id is not a string");

    ret = parse("- a\n- b\n", &t, err, sizeof err);
    CHECK_INT_EQ(ret, -EINVAL);
    CHECK_STR_EQ(err, "task.yaml:1: the task is not a mapping of keys");
}

static void test_read_file(void)
{
    struct task_yaml t;
    char err[256] = "";
    CHECK_INT_EQ(task_yaml_read("/nonexistent/task.yaml", &t, err, sizeof err), -ENOENT);
    CHECK(err[0] == '\0', "no file is not an error text: %s", err);

    char dir[] = "/tmp/test_task_yaml_XXXXXX";
    REQUIRE(mkdtemp(dir) != NULL);
    char path[64];
    snprintf(path, sizeof path, "%s/task.yaml", dir);
    FILE *f = fopen(path, "w");
    REQUIRE(f != NULL);
    fputs("environment_id: x\nlimits: {time: 1\n", f);
    fclose(f);
    CHECK_INT_EQ(task_yaml_read(path, &t, err, sizeof err), -EINVAL);
    CHECK(!strncmp(err, path, strlen(path)) && err[strlen(path)] == ':', "names the file: %s", err);
    remove(path);
    rmdir(dir);
}

static int repo_tasks;

static int check_repo_task(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    if (flag != FTW_F || strcmp(path + ftw->base, "task.yaml"))
        return FTW_CONTINUE;
    struct task_yaml t;
    char err[512] = "";
    int ret = task_yaml_read(path, &t, err, sizeof err);
    CHECK(ret == 0, "%s", err);
    task_yaml_deinit(&t);
    repo_tasks++;
    return FTW_CONTINUE;
}

int main(int argc, char **argv)
{
    test_block_style();
    test_flow_style();
    test_old_top_level_limits();
    test_quoted_and_empty_values();
    test_errors_name_the_line();
    test_read_file();
    if (argc > 1) {
        char dirs[2][4096];
        snprintf(dirs[0], sizeof dirs[0], "%s/examples", argv[1]);
        snprintf(dirs[1], sizeof dirs[1], "%s/tests", argv[1]);
        for (size_t i = 0; i < 2; i++)
            CHECK(nftw(dirs[i], check_repo_task, 16, FTW_PHYS | FTW_ACTIONRETVAL) == 0,
                  "walk %.200s", dirs[i]);
        CHECK(repo_tasks >= 10, "found %d task.yaml files", repo_tasks);
    }
    return check_finish("test_task_yaml");
}
