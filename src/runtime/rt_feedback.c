// The task-author tools that read the input file and edit the feedback file
// (§11.5/§11.6 of the container protocol): getinput, feedback*, tag*, archive.
// The feedback file is loaded, changed and rewritten by every call, exactly
// like INGInious's Python API, so the two can be mixed in one run script.
#include "rt_common.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

// Loads the feedback map; a missing or empty file is {}, and unreadable JSON
// is replaced by the crash the Python API reports, so later edits keep it.
static struct rt_value *fb_load(void)
{
    char path[PATH_MAX];
    struct buf b = {0};
    struct rt_value *v = NULL;
    if (rt_read_file(rt_path(RT_FEEDBACK_JSON, path), &b) == 0 && b.len) {
        if (rt_json_decode(b.data, b.len, &v) || v->type != RT_MAP) {
            rt_value_free(v);
            v = rt_new_map();
            rt_map_set(v, "result", rt_new_str("crash"));
            rt_map_set(v, "text", rt_new_str("Feedback file has been modified by user !"));
        }
    }
    buf_deinit(&b);
    return v ? v : rt_new_map();
}

// Writes fb and frees it. Returns an exit code: 0, or 2 on I/O errors.
static int fb_save(struct rt_value *fb)
{
    char path[PATH_MAX], dir[PATH_MAX];
    struct buf b = {0};
    int ret = rt_json_encode(fb, &b);
    if (!ret)
        ret = rt_mkdirs(rt_path(RT_OUTPUT_DIR, dir), 0777);
    if (!ret)
        ret = rt_write_file(rt_path(RT_FEEDBACK_JSON, path), b.data ? b.data : "", b.len, 0666);
    if (ret)
        fprintf(stderr, "cannot write the feedback file: %s\n", strerror(-ret));
    buf_deinit(&b);
    rt_value_free(fb);
    return ret ? 2 : 0;
}

// The sub-map `key` of fb, created empty when absent or not a map.
static struct rt_value *fb_sub(struct rt_value *fb, const char *key)
{
    struct rt_value *m = rt_map_get(fb, key);
    if (!m || m->type != RT_MAP) {
        m = rt_new_map();
        rt_map_set(fb, key, m);
    }
    return m;
}

static struct rt_value *str_concat(const struct rt_value *old, const char *add)
{
    struct buf b = {0};
    if (old && old->type == RT_STR)
        buf_add(&b, old->u.str.p, old->u.str.n);
    rt_buf_puts(&b, add);
    struct rt_value *v = rt_new_strn(b.data, b.len);
    buf_deinit(&b);
    return v;
}

// A problem entry is either "text" or [result, text].
static void fb_problem_result(struct rt_value *fb, const char *pid, const char *result)
{
    struct rt_value *probs = fb_sub(fb, "problems");
    struct rt_value *cur = rt_map_get(probs, pid);
    struct rt_value *pair = rt_new_array();
    rt_array_push(pair, rt_new_str(result));
    if (cur && cur->type == RT_ARRAY && cur->u.arr.n >= 2)
        rt_array_push(pair, rt_value_dup(cur->u.arr.items[1]));
    else if (cur && cur->type == RT_STR)
        rt_array_push(pair, rt_value_dup(cur));
    else
        rt_array_push(pair, rt_new_str(""));
    rt_map_set(probs, pid, pair);
}

static void fb_problem_text(struct rt_value *fb, const char *pid, const char *text, bool append)
{
    struct rt_value *probs = fb_sub(fb, "problems");
    struct rt_value *cur = rt_map_get(probs, pid);
    if (cur && cur->type == RT_ARRAY && cur->u.arr.n >= 2) {
        struct rt_value *t = append ? str_concat(cur->u.arr.items[1], text) : rt_new_str(text);
        rt_value_free(cur->u.arr.items[1]);
        cur->u.arr.items[1] = t;
    } else {
        rt_map_set(probs, pid, append ? str_concat(cur, text) : rt_new_str(text));
    }
}

static void fb_global_text(struct rt_value *fb, const char *text, bool append)
{
    rt_map_set(fb, "text", append ? str_concat(rt_map_get(fb, "text"), text) : rt_new_str(text));
}

// Python's float(): surrounding blanks allowed, nothing else after the number.
static bool parse_float(const char *s, double *out)
{
    char *end;
    errno = 0;
    *out = strtod(s, &end);
    while (*end == ' ' || *end == '\t' || *end == '\n')
        end++;
    return end != s && !*end && *s && errno != ERANGE;
}

bool rt_parse_int(const char *s, long long *out)
{
    char *end;
    errno = 0;
    *out = strtoll(s, &end, 10);
    while (*end == ' ' || *end == '\t' || *end == '\n')
        end++;
    return end != s && !*end && *s && errno != ERANGE;
}

// Backslash escapes as the upstream tools decode them: C-style letters,
// \ooo and \xhh give raw bytes, \uXXXX and \UXXXXXXXX give UTF-8, and an
// unknown escape is kept as written.
char *rt_unescape(const char *s)
{
    struct buf b = {0};
    while (*s) {
        const char *map = "n\nt\tr\ra\ab\bf\fv\v\\\\''\"\"";
        const char *hit = s[0] == '\\' && s[1] ? strchr(map, s[1]) : NULL;
        if (hit && (hit - map) % 2 == 0) {
            buf_add(&b, hit + 1, 1);
            s += 2;
        } else if (s[0] == '\\' && s[1] >= '0' && s[1] <= '7') {
            int v = 0, k = 1;
            for (; k <= 3 && s[k] >= '0' && s[k] <= '7'; k++)
                v = v * 8 + (s[k] - '0');
            char c = (char)v;
            buf_add(&b, &c, 1);
            s += k;
        } else if (s[0] == '\\' && (s[1] == 'x' || s[1] == 'u' || s[1] == 'U')) {
            int want = s[1] == 'x' ? 2 : s[1] == 'u' ? 4 : 8, k = 0;
            unsigned long v = 0;
            for (; k < want && strchr("0123456789abcdefABCDEF", s[2 + k]) && s[2 + k]; k++)
                v = v * 16 + (unsigned long)(s[2 + k] <= '9' ? s[2 + k] - '0'
                                                             : (s[2 + k] | 0x20) - 'a' + 10);
            if (k < want) {
                buf_add(&b, s, 2); // truncated escape: keep it literally
                s += 2;
                continue;
            }
            if (want == 2) {
                char c = (char)v;
                buf_add(&b, &c, 1);
            } else {
                rt_utf8_put(&b, v > 0x10ffff ? 0xfffd : (uint32_t)v);
            }
            s += 2 + want;
        } else {
            buf_add(&b, s, 1);
            s++;
        }
    }
    buf_add(&b, "", 0);
    return b.data;
}

char *rt_read_stdin(void)
{
    struct buf b = {0};
    char chunk[4096];
    ssize_t n;
    while ((n = read(0, chunk, sizeof(chunk))) != 0) {
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 || buf_add(&b, chunk, (size_t)n))
            break;
    }
    buf_add(&b, "", 0);
    return b.data;
}

static bool check_pid(const char *cmd, const char *pid)
{
    if (rt_id_valid(pid, false))
        return true;
    fprintf(stderr, "%s: invalid problem id '%s' (allowed: letters, digits, '_', '.', '-')\n", cmd,
            pid);
    return false;
}

int rt_cmd_fb_result(int argc, char **argv)
{
    const char *usage = "[-i ID] RESULT";
    struct rt_opt o[] = {{'i', "id", true, false, NULL}, {0}};
    char *pos[argc];
    int npos;
    if (rt_args_parse(o, argc, argv, false, pos, &npos) || npos != 1)
        return rt_usage(argv[0], usage);
    if (o[0].value && *o[0].value && !check_pid(argv[0], o[0].value))
        return 2;
    struct rt_value *fb = fb_load();
    if (o[0].value && *o[0].value)
        fb_problem_result(fb, o[0].value, pos[0]);
    else
        rt_map_set(fb, "result", rt_new_str(pos[0]));
    return fb_save(fb);
}

int rt_cmd_fb_grade(int argc, char **argv)
{
    char *pos[argc];
    int npos;
    double g;
    struct rt_opt o[] = {{0}};
    if (rt_args_parse(o, argc, argv, false, pos, &npos) || npos != 1)
        return rt_usage(argv[0], "GRADE");
    if (!parse_float(pos[0], &g)) {
        fprintf(stderr, "%s: grade is not a number: '%s'\n", argv[0], pos[0]);
        return 1;
    }
    struct rt_value *fb = fb_load();
    rt_map_set(fb, "grade", rt_new_float(g));
    return fb_save(fb);
}

int rt_cmd_fb_msg(int argc, char **argv)
{
    const char *usage = "[-a] [-i ID] [-e] [-m MESSAGE]   (reads stdin without -m)";
    struct rt_opt o[] = {{'a', "append", false, false, NULL},
                         {'i', "id", true, false, NULL},
                         {'e', "escape", false, false, NULL},
                         {'m', "message", true, false, NULL},
                         {0}};
    char *pos[argc];
    int npos;
    if (rt_args_parse(o, argc, argv, false, pos, &npos) || npos != 0)
        return rt_usage(argv[0], usage);
    const char *pid = o[1].value && *o[1].value ? o[1].value : NULL;
    if (pid && !check_pid(argv[0], pid))
        return 2;
    char *msg = o[3].value && *o[3].value ? rt_xstrdup(o[3].value) : rt_read_stdin();
    if (o[2].set) {
        char *u = rt_unescape(msg);
        free(msg);
        msg = u;
    }
    struct rt_value *fb = fb_load();
    if (pid)
        fb_problem_text(fb, pid, msg, o[0].set);
    else
        fb_global_text(fb, msg, o[0].set);
    free(msg);
    return fb_save(fb);
}

// Stores custom[name] = value: int, else float, else the string; or JSON.
static int set_custom(struct rt_value *fb, const char *cmd, const char *name, const char *value,
                      bool json)
{
    struct rt_value *v = NULL;
    long long i;
    double d;
    if (json) {
        if (rt_json_decode(value, strlen(value), &v)) {
            fprintf(stderr, "%s: the value is not valid JSON\n", cmd);
            return 1;
        }
    } else if (rt_parse_int(value, &i)) {
        v = rt_new_int(i);
    } else if (parse_float(value, &d)) {
        v = rt_new_float(d);
    } else {
        v = rt_new_str(value);
    }
    rt_map_set(fb_sub(fb, "custom"), name, v);
    return 0;
}

int rt_cmd_feedback(int argc, char **argv)
{
    const char *usage = "[-r RESULT] [-g GRADE] [-f TEXT] [-i ID] [-e] [-p] "
                        "[-c NAME:VALUE] [-j NAME:JSON]";
    struct rt_opt o[] = {{'r', "result", true, false, NULL},
                         {'g', "grade", true, false, NULL},
                         {'f', "feedback", true, false, NULL},
                         {'i', "id", true, false, NULL},
                         {'e', "escape", false, false, NULL},
                         {'p', "print", false, false, NULL},
                         {'c', "custom", true, false, NULL},
                         {'j', "custom-json", true, false, NULL},
                         {0}};
    char *pos[argc];
    int npos, ret = 0;
    double g = 0;
    if (rt_args_parse(o, argc, argv, false, pos, &npos) || npos != 0)
        return rt_usage(argv[0], usage);
    const char *pid = o[3].value && *o[3].value ? o[3].value : NULL;
    const char *grade = o[1].value && *o[1].value ? o[1].value : NULL;
    bool json = o[7].value && *o[7].value;
    const char *custom = json ? o[7].value : o[6].value && *o[6].value ? o[6].value : NULL;
    if (pid && !check_pid(argv[0], pid))
        return 2;
    if (grade && !parse_float(grade, &g)) {
        fprintf(stderr, "%s: grade is not a number: '%s'\n", argv[0], grade);
        return 1;
    }
    struct rt_value *fb = fb_load();
    if (o[0].value && *o[0].value) {
        if (pid)
            fb_problem_result(fb, pid, o[0].value);
        else
            rt_map_set(fb, "result", rt_new_str(o[0].value));
    }
    if (grade)
        rt_map_set(fb, "grade", rt_new_float(g));
    if (o[2].value && *o[2].value) {
        char *text = o[4].set ? rt_unescape(o[2].value) : rt_xstrdup(o[2].value);
        if (pid)
            fb_problem_text(fb, pid, text, false);
        else
            fb_global_text(fb, text, false);
        free(text);
    }
    if (custom) {
        // NAME:VALUE splits at the first ':'; the value may contain more.
        const char *colon = strchr(custom, ':');
        char *name = strndup(custom, colon ? (size_t)(colon - custom) : strlen(custom));
        if (!name)
            rt_oom();
        ret = set_custom(fb, argv[0], name, colon ? colon + 1 : "", json);
        free(name);
    }
    if (ret) {
        rt_value_free(fb);
        return ret;
    }
    if (o[5].set) {
        struct buf b = {0};
        rt_json_encode(fb, &b);
        printf("%s\n", b.data ? b.data : "{}");
        buf_deinit(&b);
    }
    return fb_save(fb);
}

int rt_cmd_fb_custom(int argc, char **argv)
{
    struct rt_opt o[] = {{'j', "json", false, false, NULL}, {0}};
    char *pos[argc];
    int npos;
    if (rt_args_parse(o, argc, argv, false, pos, &npos) || npos != 2)
        return rt_usage(argv[0], "[-j] KEY VALUE");
    struct rt_value *fb = fb_load();
    int ret = set_custom(fb, argv[0], pos[0], pos[1], o[0].set);
    if (ret) {
        rt_value_free(fb);
        return ret;
    }
    return fb_save(fb);
}

int rt_cmd_fb_state(int argc, char **argv)
{
    struct rt_opt o[] = {{0}};
    char *pos[argc];
    int npos;
    if (rt_args_parse(o, argc, argv, false, pos, &npos) || npos != 1)
        return rt_usage(argv[0], "STATE");
    struct rt_value *fb = fb_load();
    rt_map_set(fb, "state", rt_new_str(pos[0]));
    return fb_save(fb);
}

int rt_cmd_tag_set(int argc, char **argv)
{
    struct rt_opt o[] = {{0}};
    char *pos[argc];
    int npos;
    if (rt_args_parse(o, argc, argv, false, pos, &npos) || npos != 2)
        return rt_usage(argv[0], "TAG true|false");
    if (!strncmp(pos[0], "*auto-tag-", 10))
        return 0; // reserved for `tag`, silently ignored as upstream does
    if (!rt_id_valid(pos[0], true)) {
        fprintf(stderr, "%s: invalid tag id '%s'\n", argv[0], pos[0]);
        return 2;
    }
    struct rt_value *fb = fb_load();
    bool on = !strcmp(pos[1], "true") || !strcmp(pos[1], "True");
    rt_map_set(fb_sub(fb, "tests"), pos[0], rt_new_bool(on));
    return fb_save(fb);
}

int rt_cmd_tag(int argc, char **argv)
{
    struct rt_opt o[] = {{0}};
    char *pos[argc];
    int npos;
    if (rt_args_parse(o, argc, argv, false, pos, &npos) || npos != 1)
        return rt_usage(argv[0], "VALUE");
    // A stable FNV-1a hash: upstream's per-process hash() makes the same
    // value differ between runs, which only hurts.
    uint64_t h = 14695981039346656037ULL;
    for (const unsigned char *c = (const unsigned char *)pos[0]; *c; c++)
        h = (h ^ *c) * 1099511628211ULL;
    char key[48];
    snprintf(key, sizeof(key), "*auto-tag-%llu", (unsigned long long)(h >> 1));
    struct rt_value *fb = fb_load();
    rt_map_set(fb_sub(fb, "tests"), key, rt_new_str(pos[0]));
    return fb_save(fb);
}

// Prints a scalar as Python's str() would, a list or map as JSON.
static int print_input(const struct rt_value *v)
{
    char num[48];
    struct buf b = {0};
    int ret = 0;
    switch (v->type) {
    case RT_STR:
    case RT_BIN:
        ret = rt_write_all(1, v->u.str.p, v->u.str.n);
        break;
    case RT_BOOL:
        ret = rt_write_all(1, v->u.b ? "True" : "False", v->u.b ? 4 : 5);
        break;
    case RT_INT:
        snprintf(num, sizeof(num), "%lld", (long long)v->u.i);
        ret = rt_write_all(1, num, strlen(num));
        break;
    case RT_FLOAT:
        rt_float_repr(v->u.f, num, sizeof(num));
        ret = rt_write_all(1, num, strlen(num));
        break;
    case RT_ARRAY:
    case RT_MAP:
        ret = rt_json_encode(v, &b);
        if (!ret)
            ret = rt_write_all(1, b.data, b.len);
        break;
    default:
        fputs("getinput: invalid/unknown input format\n", stderr);
        return 2;
    }
    buf_deinit(&b);
    return ret ? 2 : 0;
}

int rt_input_load(const char *cmd, struct rt_value **doc)
{
    char path[PATH_MAX];
    struct buf b = {0};
    int ret = 0;
    *doc = NULL;
    if (rt_read_file(rt_path(RT_INPUT_JSON, path), &b)) {
        fprintf(stderr, "%s: input file not found\n", cmd);
        ret = 2;
    }
    // Python strips NUL padding before parsing; the decoder allows blanks.
    while (!ret && b.len && b.data[b.len - 1] == '\0')
        b.len--;
    if (!ret && (rt_json_decode(b.data ? b.data : "", b.len, doc) || (*doc)->type != RT_MAP)) {
        fprintf(stderr, "%s: input is not compatible\n", cmd);
        rt_value_free(*doc);
        *doc = NULL;
        ret = 2;
    }
    buf_deinit(&b);
    return ret;
}

int rt_cmd_getinput(int argc, char **argv)
{
    struct rt_opt o[] = {{0}};
    char *pos[argc];
    int npos, ret = 0;
    struct rt_value *doc = NULL;
    if (rt_args_parse(o, argc, argv, false, pos, &npos) || npos != 1)
        return rt_usage(argv[0], "PROBLEM   (pid, pid/box, pid:filename, pid:value, @lang, ...)");
    ret = rt_input_load(argv[0], &doc);
    char *key = rt_xstrdup(pos[0]);
    char *colon = strchr(key, ':');
    if (colon)
        *colon = '\0';
    const struct rt_value *v = ret ? NULL : rt_map_get(rt_map_get(doc, "input"), key);
    if (!ret && !v) {
        fprintf(stderr, "getinput: unknown input id '%s'\n", key);
        ret = 1;
    }
    const struct rt_value *fname = v ? rt_map_get(v, "filename") : NULL;
    const char *fvalue = v ? rt_map_str(v, "value") : NULL;
    if (!ret && fname && fvalue) {
        // An upload: the runner replaced its bytes by the path of a file.
        struct buf content = {0};
        if (colon && !strcmp(colon + 1, "filename")) {
            ret = print_input(fname);
        } else if (rt_read_file(fvalue, &content)) {
            fputs("getinput: input file not found\n", stderr);
            ret = 2;
        } else {
            ret = rt_write_all(1, content.data, content.len) ? 2 : 0;
        }
        buf_deinit(&content);
    } else if (!ret) {
        ret = print_input(v);
    }
    free(key);
    rt_value_free(doc);
    return ret;
}

static int copy_file(const char *src, const char *dst, mode_t mode)
{
    struct buf b = {0};
    int ret = rt_read_file(src, &b);
    if (!ret)
        ret = rt_write_file(dst, b.data ? b.data : "", b.len, mode & 07777);
    buf_deinit(&b);
    return ret;
}

// Recursive copy that never follows symlinks (they are recreated as links).
static int copy_tree(const char *src, const char *dst)
{
    struct stat st;
    int ret = lstat(src, &st) < 0 ? -errno : 0;
    if (!ret && S_ISLNK(st.st_mode)) {
        char target[PATH_MAX];
        ssize_t n = readlink(src, target, sizeof(target) - 1);
        if (n < 0)
            return -errno;
        target[n] = '\0';
        return symlink(target, dst) < 0 ? -errno : 0;
    }
    if (!ret && !S_ISDIR(st.st_mode))
        return S_ISREG(st.st_mode) ? copy_file(src, dst, st.st_mode) : -EINVAL;
    if (!ret && mkdir(dst, st.st_mode & 07777) < 0 && errno != EEXIST)
        ret = -errno;
    DIR *d = ret ? NULL : opendir(src);
    if (!ret && !d)
        ret = -errno;
    for (struct dirent *e; !ret && d && (e = readdir(d));) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        char s2[PATH_MAX], d2[PATH_MAX];
        ret = rt_path_join(s2, src, e->d_name);
        if (!ret)
            ret = rt_path_join(d2, dst, e->d_name);
        if (!ret)
            ret = copy_tree(s2, d2);
    }
    if (d)
        closedir(d);
    return ret;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path) < 0 ? -1 : 0;
}

int rt_cmd_archive(int argc, char **argv)
{
    // -o is v0.9.x's name for the sub-directory, -s HEAD's; both are accepted.
    struct rt_opt o[] = {{'a', "add", true, false, NULL},
                         {'r', "remove", true, false, NULL},
                         {'s', "subdir", true, false, NULL},
                         {'o', "outsubdir", true, false, NULL},
                         {0}};
    char *pos[argc], root[PATH_MAX], dir[PATH_MAX], dst[PATH_MAX];
    int npos, ret = 0;
    if (rt_args_parse(o, argc, argv, false, pos, &npos) || npos != 0 || (!o[0].set && !o[1].set))
        return rt_usage(argv[0], "[-s SUBDIR] [-a FILE] [-r FILE]");
    const char *sub = o[2].value ? o[2].value : o[3].value ? o[3].value : "";
    ret = rt_path_join(dir, rt_path(RT_ARCHIVE_DIR, root), sub);
    if (!ret)
        ret = rt_mkdirs(dir, 0777);
    if (!ret && o[0].value) {
        char *copy = rt_xstrdup(o[0].value);
        size_t n = strlen(copy);
        while (n > 1 && copy[n - 1] == '/')
            copy[--n] = '\0';
        const char *base = strrchr(copy, '/') ? strrchr(copy, '/') + 1 : copy;
        ret = rt_path_join(dst, dir, base);
        if (!ret)
            ret = copy_tree(copy, dst);
        free(copy);
    }
    if (!ret && o[1].value) {
        ret = rt_path_join(dst, dir, o[1].value);
        if (!ret)
            ret = nftw(dst, rm_one, 16, FTW_DEPTH | FTW_PHYS) < 0 ? -errno : 0;
    }
    if (ret)
        fprintf(stderr, "%s: %s\n", argv[0], strerror(-ret));
    return ret ? 2 : 0;
}
