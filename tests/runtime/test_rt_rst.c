// Unit tests for parsetemplate and the rst-* tools, run in-process against a
// scratch root (PROCTOR_RT_ROOT relocates /.__input): exact outputs, checked
// against what upstream's Python tools print for the same arguments, and
// exit codes.

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

// Runs a tool and compares its whole stdout with want.
#define EXPECT_OUT(want, in, fn, ...)                                                              \
    do {                                                                                           \
        struct buf o_ = {0};                                                                       \
        int c_ = run_io(fn, in, &o_, __VA_ARGS__, (char *)NULL);                                   \
        bool ok_ = c_ == 0 && o_.data && !strcmp(o_.data, want);                                   \
        if (!ok_)                                                                                  \
            fprintf(stderr, "%s:%d: exit %d, got '%s', want '%s'\n", __FILE__, __LINE__, c_,       \
                    o_.data ? o_.data : "", want);                                                 \
        buf_deinit(&o_);                                                                           \
        REQUIRE(ok_, "output");                                                                    \
    } while (0)

static const char *file_text(const char *path)
{
    static struct buf b;
    b.len = 0;
    if (rt_read_file(path, &b))
        return NULL;
    buf_add(&b, "", 0);
    return b.data ? b.data : "";
}

static void put(const char *path, const char *text)
{
    rt_write_file(path, text, strlen(text), 0644);
}

static void test_rst_code(void)
{
    EXPECT_OUT("\n\n.. code-block:: python\n\n\tprint(1)\n\tx = 2\n\n\n", NULL, rt_cmd_rst_code,
               "rst-code", "-l", "python", "-c", "print(1)\nx = 2\n");
    EXPECT_OUT("\n\n.. code-block:: \n\n\tfrom\n\t\n\tstdin\n\n\n", "from\r\n\nstdin",
               rt_cmd_rst_code, "rst-code");
    EXPECT_OUT("\n\n.. code-block:: c\n\n\ta\n\tb\n\n\n", NULL, rt_cmd_rst_code, "rst-code", "-e",
               "-lc", "--code=a\\nb");
    EXPECT_OUT("\n\n.. code-block:: \n\n\n\n", NULL, rt_cmd_rst_code, "rst-code");
    REQUIRE(RUN(rt_cmd_rst_code, "rst-code", "stray") == 2, "positional");
    REQUIRE(RUN(rt_cmd_rst_code, "rst-code", "-x") == 2, "unknown option");
    REQUIRE(RUN(rt_cmd_rst_code, "rst-code", "-l") == 2, "missing value");
}

static void test_rst_msgblock(void)
{
    EXPECT_OUT("\n\n.. admonition:: Well done\n\t:class: alert alert-success\n\n\tAll tests "
               "pass.\n\tBye\n\n\n",
               NULL, rt_cmd_rst_msgblock, "rst-msgblock", "-c", "success", "-t", "Well done", "-m",
               "All tests pass.\nBye");
    EXPECT_OUT("\n\n.. note:: \n\t:class: alert alert-info\n\n\tx\n\n\n", NULL, rt_cmd_rst_msgblock,
               "rst-msgblock", "-c", "purple", "-m", "x");
    EXPECT_OUT("\n\n.. note:: \n\t:class: alert alert-danger\n\n\tin\n\n\n", "in\n",
               rt_cmd_rst_msgblock, "rst-msgblock", "-c", "danger", "-m", "");
    EXPECT_OUT("\n\n.. admonition:: T\n\t:class: alert alert-warning\n\n\ta\tb\n\n\n", NULL,
               rt_cmd_rst_msgblock, "rst-msgblock", "-ec", "warning", "-t", "T", "-m", "a\\tb");
    REQUIRE(RUN(rt_cmd_rst_msgblock, "rst-msgblock", "-m", "x", "y") == 2, "positional");
}

static void test_rst_indent(void)
{
    EXPECT_OUT("\ta\n\t\tb\n\n", NULL, rt_cmd_rst_indent, "rst-indent", "-m", "a\n\tb");
    EXPECT_OUT("  a\n   b\n\n", NULL, rt_cmd_rst_indent, "rst-indent", "-c", " ", "-a", "2", "-m",
               "a\n b");
    EXPECT_OUT("-=-=x\n\n", NULL, rt_cmd_rst_indent, "rst-indent", "-c", "-=", "-a", "2", "-m",
               "x");
    // De-indent: the indent char is dropped among the first |N| characters only.
    EXPECT_OUT("a\n\tb\nxy\t\n\n", NULL, rt_cmd_rst_indent, "rst-indent", "-a", "-2", "-m",
               "\ta\n\t\t\tb\nx\ty\t");
    EXPECT_OUT("a\n\n", NULL, rt_cmd_rst_indent, "rst-indent", "-c", " ", "-a-1", "-m", " a");
    EXPECT_OUT("\xc3\xa9"
               "b\n\n",
               NULL, rt_cmd_rst_indent, "rst-indent", "-c", " ", "-a", "-2", "-m", "\xc3\xa9 b");
    EXPECT_OUT("\tfrom stdin\n\n", "from stdin\n", rt_cmd_rst_indent, "rst-indent");
    EXPECT_OUT("\ta\n\tb\n\n", NULL, rt_cmd_rst_indent, "rst-indent", "-e", "-m", "a\\nb");
    EXPECT_OUT(" x\n\n", NULL, rt_cmd_rst_indent, "rst-indent", "-a", "0", "-m", " x");
    REQUIRE(RUN(rt_cmd_rst_indent, "rst-indent", "-a", "two", "-m", "x") == 2, "bad amount");
    REQUIRE(RUN(rt_cmd_rst_indent, "rst-indent", "-a", "99999999999", "-m", "x") == 2, "huge");
    REQUIRE(RUN(rt_cmd_rst_indent, "rst-indent", "extra") == 2, "positional");
}

static void test_rst_image(void)
{
    char png[PATH_MAX], odd[PATH_MAX];
    snprintf(png, sizeof(png), "%s/pic.png", g_root);
    snprintf(odd, sizeof(odd), "%s/.hidden", g_root);
    rt_write_file(png, "\x89PNG\r\n", 6, 0644);
    rt_write_file(odd, "ab", 2, 0644);
    EXPECT_OUT("\n\n.. raw:: html\n\n\t<img src=\"data:image/png;base64,iVBORw0K\">\n\n", NULL,
               rt_cmd_rst_image, "rst-image", png);
    EXPECT_OUT("\n\n.. raw:: html\n\n\t<img src=\"data:image/gif;base64,YWI=\">\n\n", NULL,
               rt_cmd_rst_image, "rst-image", "-f", "gif", odd);
    EXPECT_OUT("\n\n.. raw:: html\n\n\t<img src=\"data:image/;base64,YWI=\">\n\n", NULL,
               rt_cmd_rst_image, "rst-image", odd);
    REQUIRE(RUN(rt_cmd_rst_image, "rst-image", "/nonexistent.png") == 1, "missing image");
    REQUIRE(RUN(rt_cmd_rst_image, "rst-image") == 2, "no file");
    REQUIRE(RUN(rt_cmd_rst_image, "rst-image", png, png) == 2, "two files");
}

static void test_parsetemplate(void)
{
    char input[PATH_MAX], upload[PATH_MAX], tpl[PATH_MAX], out[PATH_MAX], json[4 * PATH_MAX];
    rt_path(RT_INPUT_JSON, input);
    rt_path(RT_INPUT_DIR "/__inputfile_0", upload);
    put(upload, "l1\nl2\n");
    snprintf(
        json, sizeof(json),
        "{\"type\": \"start\", \"input\": {\"next\": \"@@n@@\", \"code\": \"int a;\\nint b;\\n\", "
        "\"n\": 7, \"@lang\": \"fr\", \"list\": [1], "
        "\"up\": {\"filename\": \"r.txt\", \"value\": \"%s\"}}}",
        upload);
    put(input, json);
    snprintf(tpl, sizeof(tpl), "%s/main.c.tpl", g_root);
    snprintf(out, sizeof(out), "%s/gen/deep/main.c", g_root);
    put(tpl, "void f() {\n@    @code@ // x@\n}\n@@code@@|@@n@@|@<@@lang@>@|@@next@@\n"
             "@@up:filename@@ @# @up:value@@ @@up@@ @@missing@@ a@b.c @@code@@\n");
    REQUIRE(RUN(rt_cmd_parsetemplate, "parsetemplate", "-o", out, tpl) == 0, "with -o");
    const char *want = "void f() {\n    int a; // x\n    int b; // x\n}\nint a;\nint b;|7|<fr>|7\n"
                       "r.txt # l1\n# l2 @@up@@ @@missing@@ a@b.c int a;\nint b;\n";
    const char *got = file_text(out);
    REQUIRE(got && !strcmp(got, want), "got '%s'", got ? got : "(none)");
    REQUIRE(!strcmp(file_text(tpl),
                    "void f() {\n@    @code@ // x@\n}\n@@code@@|@@n@@|@<@@lang@"
                    ">@|@@next@@\n@@up:filename@@ @# @up:value@@ @@up@@ @@missing@@ "
                    "a@b.c @@code@@\n"),
            "template untouched with -o");
    // Without -o the template itself is rewritten.
    put(tpl, "[@@code@@]\n");
    REQUIRE(RUN(rt_cmd_parsetemplate, "parsetemplate", tpl) == 0, "in place");
    REQUIRE(!strcmp(file_text(tpl), "[int a;\nint b;]\n"), "%s", file_text(tpl));
    // A placeholder of a non-text value is an error, and nothing is written.
    put(tpl, "@@list@@");
    REQUIRE(RUN(rt_cmd_parsetemplate, "parsetemplate", "-o", out, tpl) == 2, "list value");
    REQUIRE(!strcmp(file_text(out), want), "output unchanged after an error");
    REQUIRE(RUN(rt_cmd_parsetemplate, "parsetemplate", "/nonexistent.tpl") == 2,
            "missing template");
    REQUIRE(RUN(rt_cmd_parsetemplate, "parsetemplate") == 2, "usage");
    REQUIRE(RUN(rt_cmd_parsetemplate, "parsetemplate", tpl, tpl) == 2, "usage");
    put(tpl, "@@up:value@@");
    snprintf(json, sizeof(json),
             "{\"input\": {\"up\": {\"filename\": \"r.txt\", \"value\": \"%s/gone\"}}}", g_root);
    put(input, json);
    REQUIRE(RUN(rt_cmd_parsetemplate, "parsetemplate", tpl) == 2, "upload file missing");
    put(input, "{\"type\": \"start\"}");
    REQUIRE(RUN(rt_cmd_parsetemplate, "parsetemplate", tpl) == 2, "no input map");
    put(input, "not json");
    REQUIRE(RUN(rt_cmd_parsetemplate, "parsetemplate", tpl) == 2, "bad input file");
    unlink(input);
    REQUIRE(RUN(rt_cmd_parsetemplate, "parsetemplate", tpl) == 2, "no input file");
    REQUIRE(!strcmp(file_text(tpl), "@@up:value@@"), "template untouched after errors");
}

int main(void)
{
    char path[PATH_MAX];
    rt_test_begin("test_rt_rst");
    rt_mkdirs(rt_path(RT_INPUT_DIR, path), 0755);
    test_rst_code();
    test_rst_msgblock();
    test_rst_indent();
    test_rst_image();
    test_parsetemplate();
    return rt_test_end("test_rt_rst");
}
