/**
 * @file rt_test.h
 * Shared by the runtime's tool tests: the check family (check.h), and
 * run_io(), which runs a tool's entry
 * point in-process with a given stdin and captures its stdout. Each test file
 * sets g_root to its scratch root (PROCTOR_RT_ROOT).
 */
#pragma once

#include "rt_common.h"
#include "check.h"

#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static char g_root[256];

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
