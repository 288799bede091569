// The container runtime's small text parsers (src/runtime/rt_common.h,
// rt_value.h): the argparse-like option parser every tool uses (its argv
// comes from the task's code), backslash unescaping (-e flags), Python's
// int(), the id rule, UTF-8 repair and the float repr of feedback grades.
// Properties: positionals are argv words in order, with REMAINDER everything
// after the first one; option values point into argv; unescaping never grows
// the text and leaves text without a backslash unchanged; repaired UTF-8 is
// valid and valid UTF-8 is left unchanged; a float's repr reads back to the
// same double.
#include <errno.h>
#include <math.h>
#include <stdint.h>

#include "rt_fuzz_common.h"

#define MAX_WORDS 64

static bool points_into(const char *p, char **argv, int argc)
{
    for (int i = 0; i < argc; i++)
        if (p >= argv[i] && p <= argv[i] + strlen(argv[i]))
            return true;
    return false;
}

static void check_args(const uint8_t *data, size_t size, bool remainder)
{
    // Words are NUL-separated in the input; argv[0] is the tool's name.
    char *text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = '\0';
    char *argv[MAX_WORDS + 2];
    int argc = 0;
    argv[argc++] = "tool";
    for (char *w = text; argc <= MAX_WORDS && w <= text + size; w += strlen(w) + 1)
        argv[argc++] = w;
    argv[argc] = NULL;
    struct rt_opt o[] = {{'i', "id", true, false, NULL},
                         {'a', "append", false, false, NULL},
                         {'e', "escape", false, false, NULL},
                         {0, "time", true, false, NULL},
                         {0, "run-as-root", false, false, NULL},
                         {'h', "help", false, false, NULL},
                         {0}};
    char *pos[MAX_WORDS + 2];
    int npos = -1;
    int ret = rt_args_parse(o, argc, argv, remainder, pos, &npos);
    FUZZ_CHECK(ret == 0 || ret == -EINVAL, "rt_args_parse gives %d", ret);
    if (ret == 0) {
        FUZZ_CHECK(npos >= 0 && npos < argc, "%d positionals of %d words", npos, argc);
        int at = 0; // positionals are argv words, in order
        for (int k = 0; k < npos; k++) {
            while (at < argc && argv[at] != pos[k])
                at++;
            FUZZ_CHECK(at < argc && at > 0, "positional %d is not a later argv word", k);
            if (remainder && k > 0)
                FUZZ_CHECK(pos[k - 1] == argv[at - 1], "REMAINDER skipped a word");
            at++;
        }
        if (remainder && npos > 0)
            FUZZ_CHECK(pos[npos - 1] == argv[argc - 1], "REMAINDER stopped early");
        for (struct rt_opt *p = o; p->short_name || p->long_name; p++) {
            if (!p->has_arg || !p->set)
                FUZZ_CHECK(p->value == NULL, "a flag or unset option has a value");
            else
                FUZZ_CHECK(p->value && points_into(p->value, argv, argc),
                           "an option's value is not in argv");
        }
    }
    free(text);
}

static bool utf8_valid(const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        unsigned char c = s[i];
        size_t k = c < 0x80                 ? 0
                   : c >= 0xc2 && c <= 0xdf ? 1
                   : c >= 0xe0 && c <= 0xef ? 2
                   : c >= 0xf0 && c <= 0xf4 ? 3
                                            : 9;
        if (k == 9 || n - i <= k)
            return k == 0;
        uint32_t cp = k == 0 ? c : k == 1 ? c & 0x1f : k == 2 ? c & 0x0f : c & 0x07;
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xc0) != 0x80)
                return false;
            cp = cp << 6 | (s[i + j] & 0x3f);
        }
        if ((k == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
            (k == 3 && (cp < 0x10000 || cp > 0x10ffff)))
            return false;
        i += k + 1;
    }
    return true;
}

static void check_text(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    memcpy(s, data, size);
    s[size] = '\0';
    char *u = rt_unescape(s);
    FUZZ_CHECK(u != NULL, "rt_unescape returned NULL");
    FUZZ_CHECK(strlen(u) <= strlen(s), "unescaping grew the text");
    if (!strchr(s, '\\'))
        FUZZ_CHECK(strcmp(u, s) == 0, "text without a backslash changed");
    free(u);

    long long v;
    if (rt_parse_int(s, &v)) {
        char back[32];
        snprintf(back, sizeof(back), "%lld", v);
        long long w;
        FUZZ_CHECK(rt_parse_int(back, &w) && w == v, "int %lld does not read back", v);
    }
    bool id = rt_id_valid(s, false), tests_id = rt_id_valid(s, true);
    FUZZ_CHECK(!id || tests_id, "an id is not a tests id");
    FUZZ_CHECK(!id || (*s && strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                       "0123456789_.-") == strlen(s)),
               "id rule accepts %s", s);

    struct rt_value *str = rt_new_str_utf8((const char *)data, size);
    FUZZ_CHECK(str && str->type == RT_STR, "rt_new_str_utf8 failed");
    FUZZ_CHECK(utf8_valid((const unsigned char *)str->u.str.p, str->u.str.n),
               "repaired text is not valid UTF-8");
    if (utf8_valid(data, size))
        FUZZ_CHECK(str->u.str.n == size && memcmp(str->u.str.p, data, size) == 0,
                   "valid UTF-8 was changed");
    rt_value_free(str);
    free(s);
}

static void check_float(const uint8_t *data, size_t size)
{
    double f = 0;
    memcpy(&f, data, size < sizeof(f) ? size : sizeof(f));
    char repr[64];
    rt_float_repr(f, repr, sizeof(repr));
    if (isnan(f)) {
        FUZZ_CHECK(strcmp(repr, "NaN") == 0, "NaN is %s", repr);
        return;
    }
    char *end;
    double g = strtod(repr, &end);
    FUZZ_CHECK(*end == '\0' && (g == f && signbit(g) == signbit(f)), "%.17g -> %s -> %.17g", f,
               repr, g);
    if (isfinite(f))
        FUZZ_CHECK(strpbrk(repr, ".e"), "%s has neither '.' nor an exponent", repr);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    check_args(data + 1, size - 1, data[0] & 1);
    check_text(data + 1, size - 1);
    check_float(data + 1, size - 1);
    return 0;
}
