// Unit tests for the grading-container runner's helpers (rt_runner.c) that
// handle what the task leaves behind: the archive's argument list must name
// every entry of /archive exactly once, however many there are, and so must
// the archive itself.

#include "rt_common.h"
#include "rt_internal.h"
#include "rt_value.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "rt_test.h"

#define NFILES 1500

// Long names, so that the directory stream needs many getdents batches.
static void file_name(char *dst, size_t size, int i)
{
    snprintf(dst, size, "%sentry-%04d-with-a-rather-long-name-to-fill-the-buffer",
             i % 100 == 7 ? "-" : "", i);
}

static void test_archive_argv_many_files(void)
{
    char dir[PATH_MAX], path[PATH_MAX], name[128];
    static unsigned char seen[NFILES];
    CHECK(!rt_path_join(dir, g_root, "many"), "path too long");
    CHECK(mkdir(dir, 0755) == 0, "mkdir %s: %s", dir, strerror(errno));
    for (int i = 0; i < NFILES; i++) {
        file_name(name, sizeof(name), i);
        rt_path_join(path, dir, name);
        CHECK(rt_write_file(path, "x", 1, 0644) == 0, "cannot create %s", path);
    }
    char **argv = NULL;
    CHECK(rt_archive_argv(dir, &argv) == 0 && argv, "rt_archive_argv failed");
    static const char *const head[] = {"tar", "-czf", "-", "--"};
    size_t n = 0;
    bool ok = true;
    for (; ok && n < 4; n++)
        ok = argv[n] && !strcmp(argv[n], head[n]);
    size_t bad = 0, dups = 0;
    for (; ok && argv[n]; n++) {
        int i = -1;
        if (sscanf(argv[n] + (argv[n][0] == '-'), "entry-%d-", &i) != 1 || i < 0 || i >= NFILES) {
            bad++;
            continue;
        }
        file_name(name, sizeof(name), i);
        if (strcmp(argv[n], name))
            bad++;
        else if (seen[i]++)
            dups++;
    }
    rt_words_free(argv);
    CHECK(ok, "the list does not start with tar -czf - --");
    CHECK(bad == 0 && dups == 0, "%zu wrong and %zu repeated names", bad, dups);
    CHECK(n == 4 + NFILES, "%zu names for %d files", n - 4, NFILES);
    for (int i = 0; i < NFILES; i++)
        CHECK(seen[i] == 1, "entry %d missing", i);
}

static void test_archive_argv_empty(void)
{
    char dir[PATH_MAX];
    const char *dirs[] = {"empty", "does-not-exist"};
    for (size_t k = 0; k < 2; k++) {
        CHECK(!rt_path_join(dir, g_root, dirs[k]), "path too long");
        if (k == 0)
            CHECK(mkdir(dir, 0755) == 0, "mkdir %s: %s", dir, strerror(errno));
        char **argv = NULL;
        CHECK(rt_archive_argv(dir, &argv) == 0 && argv, "rt_archive_argv failed");
        bool ok = argv[4] && !strcmp(argv[4], ".") && !argv[5];
        rt_words_free(argv);
        CHECK(ok, "%s: expected a lone \".\"", dirs[k]);
    }
}

// The whole archive, listed back by tar: every file exactly once. worker (the
// uid tar runs as) must be able to read the scratch tree.
static void test_archive_make(void)
{
    char dir[PATH_MAX], path[PATH_MAX], name[128], list_cmd[PATH_MAX + 32];
    static unsigned char seen[NFILES];
    CHECK(chmod(g_root, 0755) == 0, "chmod %s: %s", g_root, strerror(errno));
    CHECK(rt_mkdirs(rt_path(RT_ARCHIVE_DIR, dir), 0755) == 0, "mkdir %s", dir);
    for (int i = 0; i < NFILES; i++) {
        file_name(name, sizeof(name), i);
        rt_path_join(path, dir, name);
        CHECK(rt_write_file(path, "x", 1, 0644) == 0, "cannot create %s", path);
    }
    struct rt_buf tgz = {0};
    int ret = rt_archive_make(&tgz);
    CHECK(ret == 0 && tgz.len > 0, "rt_archive_make: %s", strerror(-ret));
    rt_path_join(path, g_root, "out.tgz");
    ret = rt_write_file(path, tgz.data, tgz.len, 0644);
    rt_buf_deinit(&tgz);
    CHECK(ret == 0, "cannot write %s", path);
    snprintf(list_cmd, sizeof(list_cmd), "tar -tzf '%s'", path);
    FILE *list = popen(list_cmd, "r");
    CHECK(list, "cannot run %s", list_cmd);
    size_t total = 0, bad = 0, dups = 0;
    while (fgets(name, sizeof(name), list)) {
        name[strcspn(name, "\n")] = '\0';
        total++;
        int i = -1;
        char want[128];
        if (sscanf(name + (name[0] == '-'), "entry-%d-", &i) != 1 || i < 0 || i >= NFILES) {
            bad++;
            continue;
        }
        file_name(want, sizeof(want), i);
        if (strcmp(name, want))
            bad++;
        else if (seen[i]++)
            dups++;
    }
    int status = pclose(list);
    CHECK(status == 0, "tar -t failed: %d", status);
    CHECK(bad == 0 && dups == 0 && total == NFILES, "%zu entries, %zu wrong, %zu repeated", total,
          bad, dups);
}

int main(void)
{
    char tmpl[] = "/tmp/test_rt_runner.XXXXXX";
    if (!mkdtemp(tmpl)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(g_root, sizeof(g_root), "%s", tmpl);
    setenv("PROCTOR_RT_ROOT", g_root, 1);
    test_archive_argv_many_files();
    test_archive_argv_empty();
    test_archive_make();
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_root);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", g_root);
    if (failures)
        fprintf(stderr, "%d check(s) failed\n", failures);
    else
        printf("test_rt_runner: all checks passed\n");
    return failures ? 1 : 0;
}
