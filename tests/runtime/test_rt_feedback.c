// Unit tests for the task-author tools, run in-process against a scratch
// root (PROCTOR_RT_ROOT relocates /.__input, /.__output and /archive): the
// exact feedback file each command leaves (Python json.dumps layout, so
// INGInious's own API reads and extends it), input lookups and exit codes.

#include "rt_common.h"
#include "rt_value.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rt_test.h"

static const char *feedback_text(void)
{
    static struct buf b;
    char path[PATH_MAX];
    b.len = 0;
    rt_read_file(rt_path(RT_FEEDBACK_JSON, path), &b);
    buf_add(&b, "", 0);
    return b.data;
}

static void reset_feedback(const char *content)
{
    char path[PATH_MAX];
    rt_write_file(rt_path(RT_FEEDBACK_JSON, path), content, strlen(content), 0644);
}

static void test_result_and_grade(void)
{
    reset_feedback("");
    REQUIRE(RUN(rt_cmd_fb_result, "feedback-result", "success") == 0, "result");
    REQUIRE(!strcmp(feedback_text(), "{\"result\": \"success\"}"), "%s", feedback_text());
    REQUIRE(RUN(rt_cmd_fb_grade, "feedback-grade", "50") == 0, "grade");
    REQUIRE(!strcmp(feedback_text(), "{\"result\": \"success\", \"grade\": 50.0}"), "%s",
            feedback_text());
    REQUIRE(RUN(rt_cmd_fb_grade, "feedback-grade", "66.67") == 0, "grade");
    REQUIRE(strstr(feedback_text(), "\"grade\": 66.67}"), "%s", feedback_text());
    REQUIRE(RUN(rt_cmd_fb_grade, "feedback-grade", "-5") == 0, "negative grade is positional");
    REQUIRE(strstr(feedback_text(), "\"grade\": -5.0}"), "%s", feedback_text());
    REQUIRE(RUN(rt_cmd_fb_grade, "feedback-grade", "abc") == 1, "non-numeric grade");
    REQUIRE(RUN(rt_cmd_fb_grade, "feedback-grade", "12abc") == 1, "trailing junk");
    REQUIRE(strstr(feedback_text(), "\"grade\": -5.0}"), "unchanged after errors: %s",
            feedback_text());
}

static void test_messages(void)
{
    reset_feedback("");
    REQUIRE(RUN(rt_cmd_fb_msg, "feedback-msg", "-m", "Hello") == 0, "msg");
    REQUIRE(RUN(rt_cmd_fb_msg, "feedback-msg", "-a", "-m", ", world") == 0, "append");
    REQUIRE(!strcmp(feedback_text(), "{\"text\": \"Hello, world\"}"), "%s", feedback_text());
    REQUIRE(run_io(rt_cmd_fb_msg, "from stdin\n", NULL, "feedback-msg", "-a", (char *)NULL) == 0,
            "stdin");
    REQUIRE(!strcmp(feedback_text(), "{\"text\": \"Hello, worldfrom stdin\\n\"}"), "%s",
            feedback_text());
    REQUIRE(RUN(rt_cmd_fb_msg, "feedback-msg", "-e", "-m", "a\\tb\\nc\\\\d\\x41\\u00e9\\q") == 0,
            "escapes");
    REQUIRE(!strcmp(feedback_text(), "{\"text\": \"a\\tb\\nc\\\\dA\\u00e9\\\\q\"}"), "%s",
            feedback_text());
    REQUIRE(RUN(rt_cmd_fb_msg, "feedback-msg", "-m", "a\\nb") == 0, "no -e: literal");
    REQUIRE(!strcmp(feedback_text(), "{\"text\": \"a\\\\nb\"}"), "%s", feedback_text());
    REQUIRE(RUN(rt_cmd_fb_msg, "feedback-msg", "-ae", "--message=\\n!") == 0, "grouped flags");
    REQUIRE(!strcmp(feedback_text(), "{\"text\": \"a\\\\nb\\n!\"}"), "%s", feedback_text());
}

static void test_problems(void)
{
    reset_feedback("");
    REQUIRE(RUN(rt_cmd_fb_msg, "feedback-msg", "-i", "q1", "-m", "fine") == 0, "problem msg");
    REQUIRE(!strcmp(feedback_text(), "{\"problems\": {\"q1\": \"fine\"}}"), "%s", feedback_text());
    REQUIRE(RUN(rt_cmd_fb_result, "feedback-result", "-i", "q1", "success") == 0, "problem result");
    REQUIRE(RUN(rt_cmd_fb_msg, "feedback-msg", "-a", "-i", "q1", "-m", "!") == 0, "append");
    REQUIRE(RUN(rt_cmd_fb_result, "feedback-result", "failed", "--id", "q-2.b_") == 0, "id after");
    REQUIRE(!strcmp(feedback_text(), "{\"problems\": {\"q1\": [\"success\", \"fine!\"], "
                                     "\"q-2.b_\": [\"failed\", \"\"]}}"),
            "%s", feedback_text());
    REQUIRE(RUN(rt_cmd_fb_msg, "feedback-msg", "-i", "q-2.b_", "-m", "new") == 0, "replace");
    REQUIRE(strstr(feedback_text(), "\"q-2.b_\": [\"failed\", \"new\"]"), "%s", feedback_text());
    const char *bad[] = {"bad id", "q/1", "q:1", "*q"};
    for (size_t i = 0; i < 4; i++) {
        REQUIRE(RUN(rt_cmd_fb_result, "feedback-result", "-i", bad[i], "success") == 2, "%s",
                bad[i]);
        REQUIRE(RUN(rt_cmd_fb_msg, "feedback-msg", "-i", bad[i], "-m", "x") == 2, "%s", bad[i]);
        REQUIRE(RUN(rt_cmd_feedback, "feedback", "-i", bad[i], "-f", "x") == 2, "%s", bad[i]);
    }
}

static void test_feedback_all_in_one(void)
{
    reset_feedback("");
    struct buf out = {0};
    int code = run_io(rt_cmd_feedback, NULL, &out, "feedback", "-r", "failed", "-g", "12.5", "-f",
                      "x\\ty", "-e", "-c", "n:42", "-p", (char *)NULL);
    REQUIRE(code == 0, "feedback");
    const char *want = "{\"result\": \"failed\", \"grade\": 12.5, \"text\": \"x\\ty\", "
                       "\"custom\": {\"n\": 42}}";
    REQUIRE(!strcmp(feedback_text(), want), "%s", feedback_text());
    REQUIRE(!strncmp(out.data, want, strlen(want)) && out.data[strlen(want)] == '\n', "-p: %s",
            out.data);
    REQUIRE(RUN(rt_cmd_feedback, "feedback", "-i", "p1", "-r", "success", "-f", "ok") == 0, "pid");
    REQUIRE(strstr(feedback_text(), "\"problems\": {\"p1\": [\"success\", \"ok\"]}"), "%s",
            feedback_text());
    REQUIRE(RUN(rt_cmd_feedback, "feedback", "-j", "obj:{\"a\": [1, 2]}") == 0, "custom json");
    REQUIRE(strstr(feedback_text(), "\"obj\": {\"a\": [1, 2]}"), "%s", feedback_text());
    REQUIRE(RUN(rt_cmd_feedback, "feedback", "-j", "obj:{nope") == 1, "bad json");
    REQUIRE(RUN(rt_cmd_feedback, "feedback", "-g", "ten") == 1, "bad grade");
    REQUIRE(RUN(rt_cmd_feedback, "feedback", "-a") == 2, "-a is not an option of feedback");
    REQUIRE(RUN(rt_cmd_feedback, "feedback", "stray") == 2, "positional");
    buf_deinit(&out);
}

static void test_custom_state_tags(void)
{
    reset_feedback("");
    REQUIRE(RUN(rt_cmd_fb_custom, "feedback-custom", "i", "5") == 0, "int");
    REQUIRE(RUN(rt_cmd_fb_custom, "feedback-custom", "f", "2.5") == 0, "float");
    REQUIRE(RUN(rt_cmd_fb_custom, "feedback-custom", "s", "five") == 0, "str");
    REQUIRE(RUN(rt_cmd_fb_custom, "feedback-custom", "-j", "j", "[true, null]") == 0, "json");
    REQUIRE(RUN(rt_cmd_fb_custom, "feedback-custom", "-j", "bad", "[") == 1, "bad json");
    REQUIRE(RUN(rt_cmd_fb_custom, "feedback-custom", "only-key") == 2, "usage");
    REQUIRE(!strcmp(feedback_text(), "{\"custom\": {\"i\": 5, \"f\": 2.5, \"s\": \"five\", \"j\": "
                                     "[true, null]}}"),
            "%s", feedback_text());
    REQUIRE(RUN(rt_cmd_fb_state, "feedback-state", "level 2") == 0, "state");
    REQUIRE(strstr(feedback_text(), "\"state\": \"level 2\""), "%s", feedback_text());
    REQUIRE(RUN(rt_cmd_fb_state, "feedback-state") == 2, "usage");
    reset_feedback("");
    REQUIRE(RUN(rt_cmd_tag_set, "tag-set", "t1", "true") == 0, "tag-set");
    REQUIRE(RUN(rt_cmd_tag_set, "tag-set", "t2", "no") == 0, "tag-set false");
    REQUIRE(RUN(rt_cmd_tag_set, "tag-set", "*auto-tag-1", "true") == 0, "reserved: ignored");
    REQUIRE(RUN(rt_cmd_tag_set, "tag-set", "t 3", "true") == 2, "bad tag id");
    REQUIRE(RUN(rt_cmd_tag_set, "tag-set", "t1") == 2, "usage");
    REQUIRE(!strcmp(feedback_text(), "{\"tests\": {\"t1\": true, \"t2\": false}}"), "%s",
            feedback_text());
    REQUIRE(RUN(rt_cmd_tag, "tag", "Loop used") == 0, "tag");
    char first[512];
    snprintf(first, sizeof(first), "%s", feedback_text());
    REQUIRE(strstr(first, "\"*auto-tag-") && strstr(first, "\": \"Loop used\"}"), "%s", first);
    REQUIRE(RUN(rt_cmd_tag, "tag", "Loop used") == 0, "same tag again");
    REQUIRE(!strcmp(first, feedback_text()), "tag ids are stable: %s", feedback_text());
}

static void test_modified_file(void)
{
    reset_feedback("{broken");
    REQUIRE(RUN(rt_cmd_fb_grade, "feedback-grade", "10") == 0, "grade on a broken file");
    REQUIRE(!strcmp(feedback_text(), "{\"result\": \"crash\", \"text\": \"Feedback file has been "
                                     "modified by user !\", \"grade\": 10.0}"),
            "%s", feedback_text());
}

static void test_getinput(void)
{
    char path[PATH_MAX], upload[PATH_MAX];
    struct buf out = {0};
    rt_path(RT_INPUT_DIR "/__inputfile_0", upload);
    rt_write_file(upload, "line1\nline2\n", 12, 0644);
    char json[2 * PATH_MAX];
    snprintf(json, sizeof(json),
             "{\"type\": \"start\", \"input\": {\"q1\": \"echo hi\", \"n\": 5, \"f\": 2.5, "
             "\"l\": [1, \"a\"], \"b\": true, \"box/1\": \"x\", \"@lang\": \"fr\", \"none\": null, "
             "\"up\": {\"filename\": \"r.txt\", \"value\": \"%s\"}}}",
             upload);
    rt_write_file(rt_path(RT_INPUT_JSON, path), json, strlen(json), 0644);
    struct {
        const char *key, *want;
    } cases[] = {{"q1", "echo hi"},
                 {"n", "5"},
                 {"f", "2.5"},
                 {"l", "[1, \"a\"]"},
                 {"b", "True"},
                 {"box/1", "x"},
                 {"@lang", "fr"},
                 {"up:filename", "r.txt"},
                 {"up", "line1\nline2\n"},
                 {"up:value", "line1\nline2\n"}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int code = run_io(rt_cmd_getinput, NULL, &out, "getinput", cases[i].key, (char *)NULL);
        REQUIRE(code == 0 && !strcmp(out.data, cases[i].want), "%s: %d '%s'", cases[i].key, code,
                out.data);
    }
    REQUIRE(RUN(rt_cmd_getinput, "getinput", "missing") == 1, "unknown id");
    REQUIRE(RUN(rt_cmd_getinput, "getinput", "none") == 2, "null has no text form");
    REQUIRE(RUN(rt_cmd_getinput, "getinput") == 2, "usage");
    REQUIRE(RUN(rt_cmd_getinput, "getinput", "a", "b") == 2, "usage");
    rt_write_file(path, "not json", 8, 0644);
    REQUIRE(RUN(rt_cmd_getinput, "getinput", "q1") == 2, "bad format");
    unlink(path);
    REQUIRE(RUN(rt_cmd_getinput, "getinput", "q1") == 2, "missing file");
    buf_deinit(&out);
}

static void test_archive(void)
{
    char src[PATH_MAX], sub[PATH_MAX], path[PATH_MAX];
    struct stat st;
    snprintf(src, sizeof(src), "%s/work", g_root);
    rt_mkdirs(src, 0755);
    snprintf(sub, sizeof(sub), "%s/work/a.txt", g_root);
    rt_write_file(sub, "A", 1, 0644);
    snprintf(sub, sizeof(sub), "%s/work/d/e", g_root);
    rt_mkdirs(sub, 0755);
    snprintf(sub, sizeof(sub), "%s/work/d/e/f.txt", g_root);
    rt_write_file(sub, "F", 1, 0644);
    snprintf(sub, sizeof(sub), "%s/work/a.txt", g_root);
    REQUIRE(RUN(rt_cmd_archive, "archive", "-a", sub) == 0, "add file");
    REQUIRE(stat(rt_path("/archive/a.txt", path), &st) == 0, "copied");
    snprintf(sub, sizeof(sub), "%s/work/d/", g_root);
    REQUIRE(RUN(rt_cmd_archive, "archive", "-s", "logs", "-a", sub) == 0, "add dir");
    REQUIRE(stat(rt_path("/archive/logs/d/e/f.txt", path), &st) == 0, "copied recursively");
    REQUIRE(RUN(rt_cmd_archive, "archive", "-o", "logs", "-r", "d") == 0, "remove (v0.9 -o)");
    REQUIRE(stat(rt_path("/archive/logs/d", path), &st) < 0, "removed");
    REQUIRE(RUN(rt_cmd_archive, "archive", "-a", "/nonexistent/file") == 2, "I/O error");
    REQUIRE(RUN(rt_cmd_archive, "archive") == 2, "usage");
}

static void test_usage_errors(void)
{
    REQUIRE(RUN(rt_cmd_fb_result, "feedback-result") == 2, "no result");
    REQUIRE(RUN(rt_cmd_fb_result, "feedback-result", "a", "b") == 2, "two results");
    REQUIRE(RUN(rt_cmd_fb_result, "feedback-result", "-i") == 2, "-i without value");
    REQUIRE(RUN(rt_cmd_fb_grade, "feedback-grade") == 2, "no grade");
    REQUIRE(RUN(rt_cmd_fb_msg, "feedback-msg", "-z") == 2, "unknown flag");
    REQUIRE(RUN(rt_cmd_fb_msg, "feedback-msg", "--nope") == 2, "unknown long flag");
    REQUIRE(RUN(rt_cmd_tag, "tag") == 2, "no tag");
    REQUIRE(RUN(rt_cmd_run_student, "run_student", "--time", "abc", "ls") == 2, "bad limit");
    REQUIRE(RUN(rt_cmd_run_student, "run_student", "--bogus", "ls") == 2, "unknown option");
}

int main(void)
{
    char path[PATH_MAX];
    rt_test_begin("test_rt_feedback");
    rt_mkdirs(rt_path(RT_INPUT_DIR, path), 0755);
    rt_mkdirs(rt_path(RT_OUTPUT_DIR, path), 0755);
    test_result_and_grade();
    test_messages();
    test_problems();
    test_feedback_all_in_one();
    test_custom_state_tags();
    test_modified_file();
    test_getinput();
    test_archive();
    test_usage_errors();
    return rt_test_end("test_rt_feedback");
}
