#include "rt_common.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

const char *rt_path(const char *abs, char *buf)
{
    const char *root = getenv("PROCTOR_RT_ROOT");
    snprintf(buf, PATH_MAX, "%s%s", root && *root ? root : "", abs);
    return buf;
}

int rt_path_join(char *dst, const char *a, const char *b)
{
    int n = snprintf(dst, PATH_MAX, "%s/%s", a, b);
    return n < 0 || n >= PATH_MAX ? -ENAMETOOLONG : 0;
}

int rt_read_file(const char *path, struct buf *out)
{
    int ret = 0;
    struct stat st;
    // The runner reads files that `worker` controls while running as root:
    // a symlink in the last component or a FIFO must not be followed.
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0)
        return -errno;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return -EINVAL;
    }
    for (;;) {
        char chunk[65536];
        ssize_t n = read(fd, chunk, sizeof(chunk));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            ret = n < 0 ? -errno : 0;
            break;
        }
        ret = buf_add(out, chunk, (size_t)n);
        if (ret)
            break;
    }
    close(fd);
    return ret;
}

int rt_write_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n) {
        ssize_t w = write(fd, c, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -errno;
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

int rt_write_file(const char *path, const void *p, size_t n, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0)
        return -errno;
    int ret = rt_write_all(fd, p, n);
    if (close(fd) < 0 && !ret)
        ret = -errno;
    return ret;
}

int rt_mkdirs(const char *path, mode_t mode)
{
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof(tmp), "%s", path) >= (int)sizeof(tmp))
        return -ENAMETOOLONG;
    for (char *s = tmp + 1;; s++) {
        if (*s != '/' && *s)
            continue;
        char saved = *s;
        *s = '\0';
        if (mkdir(tmp, mode) < 0 && errno != EEXIST)
            return -errno;
        *s = saved;
        if (!saved)
            break;
    }
    return 0;
}

int rt_systemfile_copy(const char *name, bool append, mode_t mode)
{
    char src_abs[64], dst_abs[64], src[PATH_MAX], dst[PATH_MAX];
    snprintf(src_abs, sizeof(src_abs), "/task/systemfiles/%s", name);
    snprintf(dst_abs, sizeof(dst_abs), "/etc/%s", name);
    if (access(rt_path(src_abs, src), F_OK) < 0)
        return 0;
    struct buf b = {0};
    int ret = buf_add(&b, "\n", 1);
    if (!ret)
        ret = rt_read_file(src, &b);
    int fd = ret ? -1
                 : open(rt_path(dst_abs, dst),
                        O_WRONLY | O_CREAT | O_CLOEXEC | (append ? O_APPEND : O_TRUNC), mode);
    if (!ret && fd < 0)
        ret = -errno;
    if (!ret)
        ret = rt_write_all(fd, b.data, b.len);
    if (fd >= 0)
        close(fd);
    buf_deinit(&b);
    return ret;
}

int rt_frame_write(int fd, const struct rt_value *msg)
{
    struct buf b = {0};
    int ret = buf_add(&b, "\0\0\0\0", 4);
    if (!ret)
        ret = rt_msgpack_pack(msg, &b);
    if (!ret && b.len - 4 > 0xffffffffu)
        ret = -EMSGSIZE;
    if (!ret) {
        size_t n = b.len - 4;
        for (int i = 0; i < 4; i++)
            b.data[i] = (char)(n >> (24 - 8 * i));
        ret = rt_write_all(fd, b.data, b.len);
    }
    buf_deinit(&b);
    return ret;
}

int rt_frame_next(struct msg_framer *f, struct rt_value **out)
{
    const void *p;
    size_t n, used = 0;
    enum framer_result r = msg_framer_next(f, &p, &n);
    if (r == FRAMER_NEED_MORE)
        return 0;
    if (r == FRAMER_ERROR)
        return f->errnum;
    int ret = rt_msgpack_unpack(p, n, &used, out);
    if (!ret && used != n) {
        rt_value_free(*out);
        *out = NULL;
        ret = -EINVAL;
    }
    if (ret)
        return ret == -ENOMEM ? ret : -EINVAL;
    return 1;
}

static struct rt_opt *find_opt(struct rt_opt *opts, char s, const char *l, size_t llen)
{
    for (struct rt_opt *o = opts; o->short_name || o->long_name; o++) {
        if (s && o->short_name == s)
            return o;
        if (l && o->long_name && strlen(o->long_name) == llen && !strncmp(o->long_name, l, llen))
            return o;
    }
    return NULL;
}

static bool looks_negative(const char *a)
{
    return a[0] == '-' && (a[1] == '.' || (a[1] >= '0' && a[1] <= '9'));
}

int rt_args_parse(struct rt_opt *opts, int argc, char **argv, bool remainder, char **pos, int *npos)
{
    bool only_pos = false;
    *npos = 0;
    for (int i = 1; i < argc; i++) {
        char *a = argv[i];
        if (only_pos || a[0] != '-' || !a[1] || looks_negative(a)) {
            pos[(*npos)++] = a;
            only_pos = only_pos || remainder;
            continue;
        }
        if (!strcmp(a, "--")) {
            only_pos = true;
            continue;
        }
        if (a[1] == '-') {
            const char *eq = strchr(a + 2, '=');
            size_t llen = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
            struct rt_opt *o = find_opt(opts, 0, a + 2, llen);
            if (!o || (!o->has_arg && eq)) {
                fprintf(stderr, "%s: unrecognized argument: %s\n", argv[0], a);
                return -EINVAL;
            }
            o->set = true;
            if (o->has_arg) {
                if (!eq && i + 1 >= argc) {
                    fprintf(stderr, "%s: option %s expects a value\n", argv[0], a);
                    return -EINVAL;
                }
                o->value = eq ? eq + 1 : argv[++i];
            }
            continue;
        }
        for (char *c = a + 1; *c; c++) {
            struct rt_opt *o = find_opt(opts, *c, NULL, 0);
            if (!o) {
                fprintf(stderr, "%s: unrecognized option: -%c\n", argv[0], *c);
                return -EINVAL;
            }
            o->set = true;
            if (!o->has_arg)
                continue;
            if (c[1]) {
                o->value = c + 1;
            } else if (i + 1 < argc) {
                o->value = argv[++i];
            } else {
                fprintf(stderr, "%s: option -%c expects a value\n", argv[0], *c);
                return -EINVAL;
            }
            break;
        }
    }
    return 0;
}

bool rt_id_valid(const char *id, bool allow_star)
{
    if (!id || !*id)
        return false;
    for (const char *c = id; *c; c++) {
        bool ok = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
                  (*c >= '0' && *c <= '9') || *c == '_' || *c == '.' || *c == '-' ||
                  (allow_star && *c == '*');
        if (!ok)
            return false;
    }
    return true;
}

int rt_usage(const char *name, const char *usage)
{
    fprintf(stderr, "usage: %s %s\n", name, usage);
    return 2;
}
