// The task's archive (/archive, sent back as the result's "archive"): a
// tar+gzip made by the image's own tar, running as worker.
#include "rt_common.h"
#include "rt_internal.h"

#include "common/privdrop.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

// Appends a copy of word, keeping the list NULL-terminated at every step so
// that rt_words_free can release a half-built one.
static int push_copy(char ***list, size_t *n, size_t *cap, const char *word)
{
    if (*n + 2 > *cap) {
        if (*cap > SIZE_MAX / 2 / sizeof(**list))
            return -ENOMEM;
        char **grown = realloc(*list, *cap * 2 * sizeof(**list));
        if (!grown)
            return -ENOMEM;
        *list = grown;
        *cap *= 2;
    }
    char *copy = strdup(word);
    if (!copy)
        return -ENOMEM;
    (*list)[(*n)++] = copy;
    (*list)[*n] = NULL;
    return 0;
}

int rt_archive_argv(const char *dir, char ***out)
{
    static const char *const head[] = {"tar", "-czf", "-", "--"};
    size_t n = 0, cap = 16;
    char **argv = malloc(cap * sizeof(*argv));
    int ret = argv ? 0 : -ENOMEM;
    if (argv)
        argv[0] = NULL;
    for (size_t i = 0; !ret && i < sizeof(head) / sizeof(head[0]); i++)
        ret = push_copy(&argv, &n, &cap, head[i]);
    DIR *d = ret ? NULL : opendir(dir);
    // d_name lives in the stream's buffer, which the next readdir() may
    // overwrite: each name is copied before reading on.
    for (struct dirent *e; !ret && d && (e = readdir(d));)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            ret = push_copy(&argv, &n, &cap, e->d_name);
    if (!ret && n == sizeof(head) / sizeof(head[0]))
        ret = push_copy(&argv, &n, &cap, ".");
    if (d)
        closedir(d);
    if (ret) {
        rt_words_free(argv);
        argv = NULL;
    }
    *out = argv;
    return ret;
}

// busybox tar runs as worker (it reads a tree the task controls) and streams
// the archive back through a pipe.
int rt_archive_make(struct buf *tgz)
{
    char dir[PATH_MAX];
    char **argv = NULL;
    rt_path(RT_ARCHIVE_DIR, dir);
    int fds[2] = {-1, -1}, ret = rt_archive_argv(dir, &argv);
    if (!ret && pipe2(fds, O_CLOEXEC) < 0)
        ret = -errno;
    pid_t pid = ret ? -1 : fork();
    if (pid == 0) {
        signal(SIGPIPE, SIG_DFL);
        // Without root there is nothing to drop (and no way to become worker).
        bool root = geteuid() == 0;
        if (dup2(fds[1], 1) == 1 && chdir(dir) == 0 &&
            (!root || privdrop_to(WIRE_WORKER_ID, false) == 0))
            execvp("tar", argv);
        _exit(127);
    }
    if (!ret && pid < 0)
        ret = -errno;
    if (fds[1] >= 0)
        close(fds[1]);
    if (!ret) {
        char chunk[65536];
        ssize_t got;
        while ((got = read(fds[0], chunk, sizeof(chunk))) != 0) {
            if (got < 0 && errno == EINTR)
                continue;
            if (got < 0 || buf_add(tgz, chunk, (size_t)got)) {
                ret = -EIO;
                break;
            }
        }
        // Closed before waiting: a tar still writing gets EPIPE, not a hang.
        close(fds[0]);
        fds[0] = -1;
        int status = 0;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
            ;
        if (!ret && !(WIFEXITED(status) && WEXITSTATUS(status) == 0))
            ret = -EIO;
    }
    if (fds[0] >= 0)
        close(fds[0]);
    rt_words_free(argv);
    return ret;
}
