// Text-producing task-author tools (§11.6 of the container protocol):
// parsetemplate, which pastes the student's answers into files, and the
// rst-* helpers, which print reStructuredText fragments for feedback. The
// output layout (tabs, blank lines, the trailing newline print() adds) is
// what upstream's tools produce, since run scripts concatenate it verbatim.
#include "rt_common.h"

#include "common/base64.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// Cap on rst-indent's amount: each line gets |amount| copies of the indent
// string, so an absurd amount would only exhaust memory.
#define RST_INDENT_MAX (1L << 20)

// Python's str.splitlines(): the next line of p[0..n) from *off, without its
// terminator (\n, \r, \r\n, \v, \f, \x1c-\x1e, U+0085, U+2028, U+2029). A
// final terminator does not start an empty line. false when no line is left.
static bool next_line(const char *p, size_t n, size_t *off, const char **line, size_t *len)
{
    size_t i = *off;
    if (i >= n)
        return false;
    *line = p + i;
    for (; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        size_t term = 0;
        if (c == '\n' || c == '\v' || c == '\f' || (c >= 0x1c && c <= 0x1e))
            term = 1;
        else if (c == '\r')
            term = i + 1 < n && p[i + 1] == '\n' ? 2 : 1;
        else if (c == 0xc2 && i + 1 < n && (unsigned char)p[i + 1] == 0x85)
            term = 2;
        else if (c == 0xe2 && i + 2 < n && (unsigned char)p[i + 1] == 0x80 &&
                 ((unsigned char)p[i + 2] == 0xa8 || (unsigned char)p[i + 2] == 0xa9))
            term = 3;
        if (term) {
            *len = i - *off;
            *off = i + term;
            return true;
        }
    }
    *len = n - *off;
    *off = n;
    return true;
}

// Byte length of the UTF-8 sequence starting with c (1 for stray bytes).
static size_t utf8_len(unsigned char c)
{
    return c >= 0xf0 && c <= 0xf7 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
}

// Writes the whole buffer to stdout; returns the exit code (0, or 1 on error).
static int emit(const char *cmd, struct buf *b)
{
    int ret = rt_write_all(1, b->data ? b->data : "", b->len);
    if (ret)
        fprintf(stderr, "%s: cannot write the output: %s\n", cmd, strerror(-ret));
    buf_deinit(b);
    return ret ? 1 : 0;
}

// The text of -m/-c, or stdin when the option is absent or empty; with -e
// its backslash escapes decoded. Caller frees.
static char *message_text(const struct rt_opt *msg, bool escape)
{
    char *text = msg->value && *msg->value ? rt_xstrdup(msg->value) : rt_read_stdin();
    if (escape) {
        char *u = rt_unescape(text);
        free(text);
        text = u;
    }
    return text;
}

// Appends "\t<line>\n" for every line of text (code-block and admonition bodies).
static void add_tabbed_lines(struct buf *b, const char *text)
{
    const char *line;
    size_t off = 0, len, n = strlen(text);
    while (next_line(text, n, &off, &line, &len)) {
        rt_buf_puts(b, "\t");
        if (buf_add(b, line, len))
            rt_oom();
        rt_buf_puts(b, "\n");
    }
}

int rt_cmd_rst_code(int argc, char **argv)
{
    struct rt_opt o[] = {{'l', "language", true, false, NULL},
                         {'e', "escape", false, false, NULL},
                         {'c', "code", true, false, NULL},
                         {0}};
    char *pos[argc];
    int npos;
    if (rt_args_parse(o, argc, argv, false, pos, &npos) || npos != 0)
        return rt_usage(argv[0], "[-l LANGUAGE] [-e] [-c CODE]   (reads stdin without -c)");
    char *text = message_text(&o[2], o[1].set);
    struct buf b = {0};
    rt_buf_puts(&b, "\n\n.. code-block:: ");
    rt_buf_puts(&b, o[0].value ? o[0].value : "");
    rt_buf_puts(&b, "\n\n");
    add_tabbed_lines(&b, text);
    rt_buf_puts(&b, "\n\n");
    free(text);
    return emit(argv[0], &b);
}

int rt_cmd_rst_msgblock(int argc, char **argv)
{
    struct rt_opt o[] = {{'c', "class", true, false, NULL},
                         {'e', "escape", false, false, NULL},
                         {'t', "title", true, false, NULL},
                         {'m', "message", true, false, NULL},
                         {0}};
    char *pos[argc];
    int npos;
    if (rt_args_parse(o, argc, argv, false, pos, &npos) || npos != 0)
        return rt_usage(argv[0], "[-c success|info|warning|danger] [-e] [-t TITLE] [-m MESSAGE]"
                                 "   (reads stdin without -m)");
    const char *cls = o[0].value ? o[0].value : "";
    if (strcmp(cls, "success") && strcmp(cls, "info") && strcmp(cls, "warning") &&
        strcmp(cls, "danger"))
        cls = "info";
    char *text = message_text(&o[3], o[1].set);
    struct buf b = {0};
    if (o[2].value && *o[2].value) {
        rt_buf_puts(&b, "\n\n.. admonition:: ");
        rt_buf_puts(&b, o[2].value);
        rt_buf_puts(&b, "\n");
    } else {
        // Upstream's untitled form, trailing blank included.
        rt_buf_puts(&b, "\n\n.. note:: \n");
    }
    rt_buf_puts(&b, "\t:class: alert alert-");
    rt_buf_puts(&b, cls);
    rt_buf_puts(&b, "\n\n");
    add_tabbed_lines(&b, text);
    rt_buf_puts(&b, "\n\n");
    free(text);
    return emit(argv[0], &b);
}

// De-indents one line as upstream does: every occurrence of the indent
// character among the first |amount| characters is dropped, leading or not.
// A multi-character indent string never matches a single character.
static void deindent_line(struct buf *b, const char *line, size_t len, const char *ind, long amount)
{
    size_t ilen = strlen(ind);
    long idx = 0;
    for (size_t i = 0; i < len; idx++) {
        size_t cl = utf8_len((unsigned char)line[i]);
        if (cl > len - i)
            cl = len - i;
        bool drop = idx < amount && cl == ilen && !memcmp(line + i, ind, cl);
        if (!drop && buf_add(b, line + i, cl))
            rt_oom();
        i += cl;
    }
}

int rt_cmd_rst_indent(int argc, char **argv)
{
    struct rt_opt o[] = {{'e', "escape", false, false, NULL},
                         {'c', "indent-char", true, false, NULL},
                         {'a', "amount", true, false, NULL},
                         {'m', "message", true, false, NULL},
                         {0}};
    const char *usage = "[-e] [-c INDENT_CHAR] [-a AMOUNT] [-m MESSAGE]   (reads stdin without "
                        "-m; a negative AMOUNT de-indents)";
    char *pos[argc];
    int npos;
    long long amount = 1;
    if (rt_args_parse(o, argc, argv, false, pos, &npos) || npos != 0)
        return rt_usage(argv[0], usage);
    if (o[2].value && (!rt_parse_int(o[2].value, &amount) || amount > RST_INDENT_MAX ||
                       amount < -RST_INDENT_MAX)) {
        fprintf(stderr, "%s: invalid amount: '%s'\n", argv[0], o[2].value);
        return rt_usage(argv[0], usage);
    }
    const char *ind = o[1].value ? o[1].value : "\t";
    char *text = message_text(&o[3], o[0].set);
    struct buf b = {0};
    const char *line;
    size_t off = 0, len, n = strlen(text);
    while (next_line(text, n, &off, &line, &len)) {
        if (amount > 0) {
            for (long long k = 0; k < amount; k++)
                rt_buf_puts(&b, ind);
            if (buf_add(&b, line, len))
                rt_oom();
        } else {
            deindent_line(&b, line, len, ind, (long)-amount);
        }
        rt_buf_puts(&b, "\n");
    }
    rt_buf_puts(&b, "\n");
    free(text);
    return emit(argv[0], &b);
}

// os.path.splitext's extension without the dot: "" for "a", ".bashrc" or "dir.d/a".
static const char *file_extension(const char *path)
{
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    const char *dot = strrchr(base, '.');
    for (const char *c = base; dot && c < dot; c++)
        if (*c != '.')
            return dot + 1;
    return "";
}

int rt_cmd_rst_image(int argc, char **argv)
{
    struct rt_opt o[] = {{'f', "format", true, false, NULL}, {0}};
    char *pos[argc];
    int npos;
    if (rt_args_parse(o, argc, argv, false, pos, &npos) || npos != 1)
        return rt_usage(argv[0], "[-f FORMAT] FILENAME");
    struct buf img = {0}, b = {0};
    int ret = rt_read_file(pos[0], &img);
    if (ret) {
        // Upstream dies with a traceback here, hence 1 rather than 2.
        fprintf(stderr, "%s: cannot read %s: %s\n", argv[0], pos[0], strerror(-ret));
    } else {
        rt_buf_puts(&b, "\n\n.. raw:: html\n\n\t<img src=\"data:image/");
        rt_buf_puts(&b, o[0].value && *o[0].value ? o[0].value : file_extension(pos[0]));
        rt_buf_puts(&b, ";base64,");
        if (base64_encode(img.data, img.len, &b))
            rt_oom();
        rt_buf_puts(&b, "\">\n\n");
    }
    buf_deinit(&img);
    return ret ? 1 : emit(argv[0], &b);
}

// One distinct (prefix, suffix) pair found around a field in the template.
struct tpl_pair {
    char *prefix, *suffix;
};

// Finds every non-overlapping "@prefix@FIELD@suffix@" left to right, where
// prefix and suffix contain no '@' (upstream's regex, with FIELD literal),
// and stores the distinct pairs in *pairs (caller frees). Returns the count.
static size_t find_pairs(const struct buf *t, const char *field, struct tpl_pair **pairs)
{
    size_t flen = strlen(field), count = 0, i = 0;
    *pairs = NULL;
    while (t->data && i < t->len) {
        const char *at = memchr(t->data + i, '@', t->len - i);
        if (!at)
            break;
        i = (size_t)(at - t->data);
        const char *mid = memchr(at + 1, '@', t->len - i - 1);
        size_t m = mid ? (size_t)(mid - t->data) : t->len;
        // After the prefix's closing '@': FIELD, '@', then the suffix up to an '@'.
        const char *end = NULL;
        if (mid && t->len - m - 1 > flen && !memcmp(mid + 1, field, flen) && mid[1 + flen] == '@')
            end = memchr(mid + 2 + flen, '@', t->len - m - 2 - flen);
        if (!end) {
            i++;
            continue;
        }
        char *prefix = strndup(at + 1, (size_t)(mid - at - 1));
        char *suffix = strndup(mid + 2 + flen, (size_t)(end - mid - 2 - flen));
        if (!prefix || !suffix)
            rt_oom();
        bool seen = false;
        for (size_t k = 0; k < count && !seen; k++)
            seen = !strcmp((*pairs)[k].prefix, prefix) && !strcmp((*pairs)[k].suffix, suffix);
        if (seen) {
            free(prefix);
            free(suffix);
        } else {
            *pairs = realloc(*pairs, (count + 1) * sizeof(**pairs));
            if (!*pairs)
                rt_oom();
            (*pairs)[count++] = (struct tpl_pair){prefix, suffix};
        }
        i = (size_t)(end - t->data) + 1;
    }
    return count;
}

// Replaces every non-overlapping occurrence of pat in *t by rep. 0 or -ENOMEM.
static int replace_all(struct buf *t, const char *pat, const struct buf *rep)
{
    struct buf out = {0};
    size_t plen = strlen(pat), i = 0;
    int ret = 0;
    while (!ret && i < t->len) {
        const char *hit = plen <= t->len - i ? memmem(t->data + i, t->len - i, pat, plen) : NULL;
        size_t upto = hit ? (size_t)(hit - t->data) : t->len;
        ret = buf_add(&out, t->data + i, upto - i);
        if (!ret && hit)
            ret = buf_add(&out, rep->data ? rep->data : "", rep->len);
        i = hit ? upto + plen : t->len;
    }
    if (ret) {
        buf_deinit(&out);
        return ret;
    }
    buf_deinit(t);
    *t = out;
    return 0;
}

// The text a field stands for: a string as is, a number as Python prints it,
// the bytes of an upload (its "value" is the path the runner wrote it to).
// 0, or the exit code 2 after a message.
static int field_text(const char *cmd, const char *field, const struct rt_value *v, bool upload,
                      struct buf *out)
{
    char num[48] = "";
    int ret = 0;
    if (upload) {
        ret = rt_read_file(v->u.str.p, out);
    } else if (v->type == RT_STR) {
        ret = buf_add(out, v->u.str.p, v->u.str.n);
    } else if (v->type == RT_INT) {
        snprintf(num, sizeof(num), "%lld", (long long)v->u.i);
        ret = buf_add(out, num, strlen(num));
    } else if (v->type == RT_FLOAT) {
        rt_float_repr(v->u.f, num, sizeof(num));
        ret = buf_add(out, num, strlen(num));
    } else {
        fprintf(stderr, "%s: input %s is not text and cannot fill a template\n", cmd, field);
        return 2;
    }
    if (ret)
        fprintf(stderr, "%s: cannot read the value of %s: %s\n", cmd, field, strerror(-ret));
    return ret ? 2 : 0;
}

// Fills every "@prefix@field@suffix@" of one field in *t: each line of the
// value, framed by prefix and suffix, lines joined by "\n". 0 or exit code 2.
static int fill_field(const char *cmd, struct buf *t, const char *field, const struct rt_value *v,
                      bool upload)
{
    struct tpl_pair *pairs;
    size_t n = find_pairs(t, field, &pairs);
    struct buf text = {0};
    int ret = n ? field_text(cmd, field, v, upload, &text) : 0;
    for (size_t k = 0; k < n; k++) {
        struct buf rep = {0};
        const char *line;
        size_t off = 0, len;
        for (bool first = true; !ret && next_line(text.data, text.len, &off, &line, &len);
             first = false) {
            if (!first)
                rt_buf_puts(&rep, "\n");
            rt_buf_puts(&rep, pairs[k].prefix);
            if (buf_add(&rep, line, len))
                ret = -ENOMEM;
            rt_buf_puts(&rep, pairs[k].suffix);
        }
        char *pat = NULL;
        if (!ret && asprintf(&pat, "@%s@%s@%s@", pairs[k].prefix, field, pairs[k].suffix) < 0)
            rt_oom();
        if (!ret)
            ret = replace_all(t, pat, &rep);
        if (ret == -ENOMEM) {
            fprintf(stderr, "%s: %s\n", cmd, strerror(ENOMEM));
            ret = 2;
        }
        free(pat);
        buf_deinit(&rep);
        free(pairs[k].prefix);
        free(pairs[k].suffix);
    }
    free(pairs);
    buf_deinit(&text);
    return ret;
}

int rt_cmd_parsetemplate(int argc, char **argv)
{
    struct rt_opt o[] = {{'o', "output", true, false, NULL}, {0}};
    char *pos[argc];
    int npos;
    if (rt_args_parse(o, argc, argv, false, pos, &npos) || npos != 1)
        return rt_usage(argv[0], "[-o OUTPUT] INPUT   (writes INPUT itself without -o)");
    const char *in = pos[0];
    const char *out = o[0].value && *o[0].value ? o[0].value : in;
    struct rt_value *doc = NULL;
    struct buf t = {0};
    int ret = rt_input_load(argv[0], &doc);
    const struct rt_value *input = ret ? NULL : rt_map_get(doc, "input");
    if (!ret && (!input || input->type != RT_MAP)) {
        fprintf(stderr, "%s: input is not compatible\n", argv[0]);
        ret = 2;
    }
    int err = ret ? 0 : rt_read_file(in, &t);
    if (err) {
        fprintf(stderr, "%s: cannot read %s: %s\n", argv[0], in, strerror(-err));
        ret = 2;
    }
    // Fields in input order, as upstream: a value pasted in may itself hold
    // a placeholder of a later field, which is then filled too.
    for (size_t i = 0; !ret && i < input->u.map.n; i++) {
        const char *key = input->u.map.kv[i].key;
        const struct rt_value *v = input->u.map.kv[i].val;
        const struct rt_value *fname = rt_map_get(v, "filename");
        const struct rt_value *fvalue = rt_map_get(v, "value");
        if (fname && fvalue) {
            char field[PATH_MAX];
            snprintf(field, sizeof(field), "%s:filename", key);
            ret = fill_field(argv[0], &t, field, fname, false);
            snprintf(field, sizeof(field), "%s:value", key);
            if (!ret && fvalue->type != RT_STR) {
                fprintf(stderr, "%s: input is not compatible\n", argv[0]);
                ret = 2;
            }
            if (!ret)
                ret = fill_field(argv[0], &t, field, fvalue, true);
        } else {
            ret = fill_field(argv[0], &t, key, v, false);
        }
    }
    if (!ret) {
        char dir[PATH_MAX];
        snprintf(dir, sizeof(dir), "%s", out);
        char *slash = strrchr(dir, '/');
        if (slash && slash != dir) {
            *slash = '\0';
            rt_mkdirs(dir, 0777); // a failure shows up as the write error below
        }
        err = rt_write_file(out, t.data ? t.data : "", t.len, 0666);
        if (err) {
            fprintf(stderr, "%s: cannot write %s: %s\n", argv[0], out, strerror(-err));
            ret = 2;
        }
    }
    buf_deinit(&t);
    rt_value_free(doc);
    return ret;
}
