/**
 * @file rt_test.h
 * Shared by the runtime's tool tests: the check family (check.h), a scratch
 * root for each test binary (rt_test_begin/rt_test_end: g_root, exported as
 * PROCTOR_RT_ROOT so that rt_path relocates every in-container path there),
 * and run_io(), which runs a tool's entry point in-process with a given
 * stdin and captures its stdout.
 */
#pragma once

#include "rt_common.h"
#include "check.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char g_root[256];

// Creates the scratch root /tmp/<name>.XXXXXX; exits when it cannot.
__attribute__((unused)) static void rt_test_begin(const char *name)
{
    snprintf(g_root, sizeof(g_root), "/tmp/%s.XXXXXX", name);
    REQUIRE_OR_EXIT(mkdtemp(g_root), "mkdtemp: %s", strerror(errno));
    setenv("PROCTOR_RT_ROOT", g_root, 1);
}

// Removes the scratch root; main's return value.
__attribute__((unused)) static int rt_test_end(const char *name)
{
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_root);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", g_root);
    return check_finish(name);
}

// Runs a tool with a NULL-terminated argument list, stdin from `in` (or
// /dev/null) and stdout captured into `out` (may be NULL).
__attribute__((unused)) static int run_io(int (*fn)(int, char **), const char *in, struct buf *out,
                                          ...)
{
    char *argv[32];
    int argc = 0;
    va_list ap;
    va_start(ap, out);
    for (char *a; (a = va_arg(ap, char *)) && argc < 31;)
        argv[argc++] = a;
    va_end(ap);
    argv[argc] = NULL;
    char inpath[PATH_MAX], outpath[PATH_MAX];
    snprintf(inpath, sizeof(inpath), "%s/stdin.tmp", g_root);
    snprintf(outpath, sizeof(outpath), "%s/stdout.tmp", g_root);
    rt_write_file(inpath, in ? in : "", in ? strlen(in) : 0, 0600);
    fflush(stdout);
    int saved_in = dup(0), saved_out = dup(1);
    int ifd = open(inpath, O_RDONLY), ofd = open(outpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(ifd, 0);
    dup2(ofd, 1);
    close(ifd);
    close(ofd);
    int code = fn(argc, argv);
    fflush(stdout);
    dup2(saved_in, 0);
    dup2(saved_out, 1);
    close(saved_in);
    close(saved_out);
    if (out) {
        out->len = 0;
        rt_read_file(outpath, out);
        buf_add(out, "", 0);
    }
    return code;
}

#define RUN(fn, ...) run_io(fn, NULL, NULL, __VA_ARGS__, (char *)NULL)
