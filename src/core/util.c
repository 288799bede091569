#include "core/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "core/log.h"

void util_require_failed(const char *expr, const char *file, int line)
{
    fprintf(stderr, "proctor: invariant broken: %s at %s:%d\n", expr, file, line);
    abort();
}

bool util_fails_report(const char *expr, const char *file, int line)
{
    log_error(LOG_MAIN, "unexpected condition: %s at %s:%d", expr, file, line);
    return true;
}

static void oom(size_t n)
{
    // Bookkeeping allocations are tiny; failing them means the process is
    // beyond saving, and aborting beats limping on with corrupted state.
    fprintf(stderr, "proctor: out of memory allocating %zu bytes\n", n);
    abort();
}

void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        oom(n);
    return p;
}

void *xcalloc(size_t nmemb, size_t size)
{
    void *p = calloc(nmemb ? nmemb : 1, size ? size : 1);
    if (!p)
        oom(nmemb * size);
    return p;
}

void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        oom(n);
    return q;
}

char *xstrdup(const char *s)
{
    return xstrndup(s, strlen(s));
}

char *xstrndup(const char *s, size_t n)
{
    char *p = xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *xasprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    PROCTOR_REQUIRE(n >= 0);
    char *p = xmalloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
}

void *try_malloc(size_t n)
{
    return malloc(n ? n : 1);
}

void *try_realloc(void *p, size_t n)
{
    return realloc(p, n ? n : 1);
}

int util_double_to_int(double d, int64_t min, int64_t max, int64_t *out)
{
    // -2^63 and 2^63 are exact doubles, and NaN fails both comparisons: in
    // this range the cast truncates toward zero and is defined.
    if (!(d >= -9223372036854775808.0 && d < 9223372036854775808.0))
        return -ERANGE;
    int64_t i = (int64_t)d;
    if (i < min || i > max)
        return -ERANGE;
    *out = i;
    return 0;
}

void util_strlcpy(char *dst, const char *src, size_t dstlen)
{
    if (!dstlen)
        return;
    size_t n = strlen(src);
    if (n >= dstlen)
        n = dstlen - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

void util_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

uint64_t util_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t util_now_ms(void)
{
    return util_now_ns() / 1000000ull;
}

static int rmtree_at(int dirfd, const char *name)
{
    int ret = 0;
    // Containers leave files with odd modes (uid 4242, 0000 dirs): make each
    // directory traversable and writable before descending.
    int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOTDIR || errno == ELOOP) {
            if (unlinkat(dirfd, name, 0) < 0 && errno != ENOENT)
                return -errno;
            return 0;
        }
        if (errno == EACCES) {
            // Never follow a link here: the entry may have been swapped.
            fchmodat(dirfd, name, 0700, AT_SYMLINK_NOFOLLOW);
            fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        }
        if (fd < 0)
            return errno == ENOENT ? 0 : -errno;
    }
    fchmod(fd, 0700);
    DIR *d = fdopendir(fd);
    if (!d) {
        close(fd);
        return -errno;
    }
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        int r;
        if (e->d_type == DT_DIR || e->d_type == DT_UNKNOWN)
            r = rmtree_at(fd, e->d_name);
        else
            r = unlinkat(fd, e->d_name, 0) < 0 && errno != ENOENT ? -errno : 0;
        if (r && !ret)
            ret = r;
    }
    closedir(d);
    if (unlinkat(dirfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT && !ret)
        ret = -errno;
    return ret;
}

int util_rmtree(const char *path)
{
    return rmtree_at(AT_FDCWD, path);
}

/** Copies the file src to the entry `name` of the directory dfd (never through a link there). */
static int copy_file(const char *src, int dfd, const char *name, mode_t mode, bool excl)
{
    int ret = 0;
    int in = open(src, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return -errno;
    int out =
        openat(dfd, name, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC | (excl ? O_EXCL : O_TRUNC),
               mode & 07777);
    if (out < 0) {
        ret = -errno;
        goto out;
    }
    char chunk[65536];
    for (;;) {
        ssize_t n = read(in, chunk, sizeof chunk);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            ret = -errno;
            break;
        }
        if (n == 0)
            break;
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(out, chunk + off, (size_t)(n - off));
            if (w < 0) {
                if (errno == EINTR)
                    continue;
                ret = -errno;
                goto out;
            }
            off += w;
        }
    }
    if (!ret && fchmod(out, mode & 07777) < 0)
        ret = -errno;
out:
    if (out >= 0 && close(out) < 0 && !ret)
        ret = -errno;
    close(in);
    return ret;
}

/* What one copy may do: a task author controls the tree being copied. */
struct copy_ctx {
    const char *root; /* followed directory links must resolve under it */
    size_t root_len;
    dev_t dev[UTIL_COPY_MAX_DEPTH]; /* the directories on the current path */
    ino_t ino[UTIL_COPY_MAX_DEPTH];
    size_t depth;
    size_t entries;        /* copied so far */
    struct stat *followed; /* directories already copied through a link */
    size_t nfollowed;
    size_t links; /* links followed on the current path (the kernel resolves 40 at most) */
    bool excl;    /* the destination may be written by others: create, never reuse */
    const char *const *skip; /* names not copied from the top directory */
};

/** True if the link `s` may be followed: a directory under ctx->root, not on the current path. */
static bool copy_may_follow(const struct copy_ctx *c, const char *s, const struct stat *tst)
{
    char real[PATH_MAX];
    if (!c->root || !realpath(s, real))
        return false;
    if (strncmp(real, c->root, c->root_len) || (real[c->root_len] && real[c->root_len] != '/'))
        return false;
    for (size_t i = 0; i < c->depth; i++)
        if (c->dev[i] == tst->st_dev && c->ino[i] == tst->st_ino)
            return false;
    // Each directory is copied through a link once: many links to one
    // directory (or a fan-out of them) cannot multiply the copy.
    for (size_t i = 0; i < c->nfollowed; i++)
        if (c->followed[i].st_dev == tst->st_dev && c->followed[i].st_ino == tst->st_ino)
            return false;
    return true;
}

static int copy_link(const char *s, int dfd, const char *name)
{
    char target[4096];
    ssize_t n = readlink(s, target, sizeof target - 1);
    if (n < 0)
        return -errno;
    target[n] = '\0';
    return symlinkat(target, dfd, name) < 0 ? -errno : 0;
}

static bool copy_skipped(const struct copy_ctx *c, const char *name)
{
    if (c->depth != 1 || !c->skip)
        return false;
    for (const char *const *k = c->skip; *k; k++)
        if (!strcmp(*k, name))
            return true;
    return false;
}

static int copy_entries(struct copy_ctx *c, const char *src, const struct stat *st, int dfd);

/** Copies the directory src to the entry `name` of dfd, created with src's mode. */
static int copy_dir(struct copy_ctx *c, const char *src, int dfd, const char *name)
{
    struct stat st;
    if (stat(src, &st) < 0)
        return -errno;
    if (!S_ISDIR(st.st_mode))
        return -ENOTDIR;
    if (mkdirat(dfd, name, st.st_mode & 07777) < 0 && (c->excl || errno != EEXIST))
        return -errno;
    // The directory just made is opened without following a link: whoever
    // else writes the destination cannot redirect what follows.
    int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int ret = copy_entries(c, src, &st, fd);
    close(fd);
    return ret;
}

/** Copies the entries of the directory src (stat st) into the open directory dfd. */
static int copy_entries(struct copy_ctx *c, const char *src, const struct stat *st, int dfd)
{
    if (c->depth >= UTIL_COPY_MAX_DEPTH)
        return -ELOOP;
    DIR *d = opendir(src);
    if (!d)
        return -errno;
    c->dev[c->depth] = st->st_dev;
    c->ino[c->depth] = st->st_ino;
    c->depth++;
    int ret = 0;
    struct dirent *e;
    while (!ret && (e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") || copy_skipped(c, e->d_name))
            continue;
        if (++c->entries > UTIL_COPY_MAX_ENTRIES) {
            ret = -EFBIG;
            break;
        }
        AUTO_FREE char *s = xasprintf("%s/%s", src, e->d_name);
        struct stat lst, tst;
        if (lstat(s, &lst) < 0) {
            ret = -errno;
            break;
        }
        if (S_ISLNK(lst.st_mode)) {
            // Links to files stay links (like the Python agent); links to
            // directories are followed so the task sees their content, but
            // only inside the root, and never round a cycle: a task must
            // not copy host files into a container, nor loop for ever.
            if (c->links < UTIL_COPY_MAX_LINKS && stat(s, &tst) == 0 && S_ISDIR(tst.st_mode) &&
                copy_may_follow(c, s, &tst)) {
                c->followed = xrealloc(c->followed, (c->nfollowed + 1) * sizeof *c->followed);
                c->followed[c->nfollowed++] = tst;
                c->links++;
                ret = copy_dir(c, s, dfd, e->d_name);
                c->links--;
            } else
                ret = copy_link(s, dfd, e->d_name);
        } else if (S_ISDIR(lst.st_mode)) {
            ret = copy_dir(c, s, dfd, e->d_name);
        } else if (S_ISREG(lst.st_mode)) {
            ret = copy_file(s, dfd, e->d_name, lst.st_mode, c->excl);
        }
    }
    c->depth--;
    closedir(d);
    return ret;
}

static int copytree(const char *src, const char *dst, const char *root, bool excl,
                    const char *const *skip)
{
    struct copy_ctx *c = xcalloc(1, sizeof *c);
    char real[PATH_MAX];
    if (root && realpath(root, real)) {
        c->root = real;
        c->root_len = strlen(real);
        while (c->root_len > 1 && real[c->root_len - 1] == '/')
            real[--c->root_len] = '\0';
    }
    c->excl = excl;
    c->skip = skip;
    int ret = 0;
    struct stat st;
    if (stat(src, &st) < 0)
        ret = -errno;
    else if (!S_ISDIR(st.st_mode))
        ret = -ENOTDIR;
    if (!ret && !excl && mkdir(dst, st.st_mode & 07777) < 0 && errno != EEXIST)
        ret = -errno;
    int fd = ret ? -1 : open(dst, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (!ret && fd < 0)
        ret = -errno;
    if (!ret)
        ret = copy_entries(c, src, &st, fd);
    if (fd >= 0)
        close(fd);
    free(c->followed);
    free(c);
    return ret;
}

int util_copytree(const char *src, const char *dst, const char *root)
{
    return copytree(src, dst, root, false, NULL);
}

int util_copytree_into(const char *src, const char *dst, const char *root, const char *const *skip)
{
    return copytree(src, dst, root, true, skip);
}

int util_mkdirs(const char *path, unsigned mode)
{
    AUTO_FREE char *p = xstrdup(path);
    for (char *s = p + 1; *s; s++) {
        if (*s != '/')
            continue;
        *s = '\0';
        if (mkdir(p, mode) < 0 && errno != EEXIST)
            return -errno;
        *s = '/';
    }
    if (mkdir(p, mode) < 0 && errno != EEXIST)
        return -errno;
    return 0;
}

int util_read_file(const char *path, size_t limit, char **out, size_t *outlen)
{
    int ret = 0;
    struct buf b = {0};
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    char chunk[8192];
    for (;;) {
        ssize_t n = read(fd, chunk, sizeof chunk);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            ret = -errno;
            break;
        }
        if (n == 0)
            break;
        if ((ret = buf_append(&b, chunk, (size_t)n, limit)))
            break;
    }
    close(fd);
    if (ret) {
        buf_deinit(&b);
        return ret;
    }
    if (!b.data && (ret = buf_append(&b, "", 0, 0)))
        return ret;
    *out = b.data;
    if (outlen)
        *outlen = b.len;
    return 0;
}

int util_set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return -errno;
    int fdf = fcntl(fd, F_GETFD);
    if (fdf < 0 || fcntl(fd, F_SETFD, fdf | FD_CLOEXEC) < 0)
        return -errno;
    return 0;
}
