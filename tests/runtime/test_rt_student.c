// Unit tests for the student-container intern's parsers (rt_student.c), which
// run as root on input the grading container writes: the shell-like split of
// the command line (checked against Python's shlex.split outputs). Run under
// ASan, so that an out-of-bounds write fails the test even when the result
// happens to look right.

#include "rt_common.h"
#include "rt_internal.h"
#include "rt_value.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rt_test.h"

static size_t count_words(char **w)
{
    size_t n = 0;
    while (w[n])
        n++;
    return n;
}

// Every word count around the growth steps of the word array (8, 16, 32),
// with the last word ending the string, followed by a blank, or quoted.
static void test_shlex_word_counts(void)
{
    static const char *const tails[] = {"", " ", "\t\n"};
    for (size_t k = 0; k <= 40; k++) {
        for (size_t t = 0; t < 3; t++) {
            for (int quoted = 0; quoted < 2; quoted++) {
                struct rt_buf cmd = {0};
                rt_buf_add(&cmd, "", 0);
                for (size_t i = 0; i < k; i++) {
                    char w[32];
                    snprintf(w, sizeof(w), quoted && i + 1 == k ? "%s'w %zu'" : "%sw%zu",
                             i ? " " : "", i);
                    rt_buf_puts(&cmd, w);
                }
                rt_buf_puts(&cmd, tails[t]);
                char **words = rt_shlex_split(cmd.data);
                CHECK(words, "k=%zu: split failed on \"%s\"", k, cmd.data);
                size_t n = count_words(words);
                bool ok = n == k;
                for (size_t i = 0; ok && i < k; i++) {
                    char w[32];
                    snprintf(w, sizeof(w), quoted && i + 1 == k ? "w %zu" : "w%zu", i);
                    ok = !strcmp(words[i], w);
                }
                rt_words_free(words);
                rt_buf_deinit(&cmd);
                CHECK(ok, "k=%zu tail=%zu quoted=%d: got %zu words", k, t, quoted, n);
            }
        }
    }
}

// Expected outputs are Python's shlex.split on the same strings; NULL words
// means shlex raises ValueError.
static void test_shlex_quoting(void)
{
    static const struct {
        const char *in;
        const char *out[6]; // NULL-terminated; {NULL} with err for an error
        bool err;
    } cases[] = {
        {"a 'b c' d", {"a", "b c", "d"}, false},
        {"\"a \\\"q\\\" \\\\ \\x\"", {"a \"q\" \\ \\x"}, false},
        {"a\\ b", {"a b"}, false},
        {"''", {""}, false},
        {"\"\"", {""}, false},
        {"a''b", {"ab"}, false},
        {"'a\\b'", {"a\\b"}, false},
        {"  lead  and\ttabs\nnl\r ", {"lead", "and", "tabs", "nl"}, false},
        {"\"a\"'b'c", {"abc"}, false},
        {"\"it's\"", {"it's"}, false},
        {"'say \"hi\"'", {"say \"hi\""}, false},
        {"\\'", {"'"}, false},
        {"\"\"\"\"", {""}, false},
        {"\"\\\\\"", {"\\"}, false},
        {"\"a\\$b\"", {"a\\$b"}, false},
        {"a\\\nb", {"a\nb"}, false},
        {"x 'y'", {"x", "y"}, false},
        {"", {NULL}, false},
        {"   ", {NULL}, false},
        {"'unterminated", {NULL}, true},
        {"\"unterminated", {NULL}, true},
        {"ok 'unterminated", {NULL}, true},
        {"trailing\\", {NULL}, true},
        {"\"\\\"", {NULL}, true},
    };
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        char **w = rt_shlex_split(cases[c].in);
        if (cases[c].err) {
            rt_words_free(w);
            CHECK(!w, "case %zu (%s): expected an error", c, cases[c].in);
            continue;
        }
        CHECK(w, "case %zu (%s): unexpected error", c, cases[c].in);
        size_t i = 0;
        bool ok = true;
        for (; ok && cases[c].out[i]; i++)
            ok = w[i] && !strcmp(w[i], cases[c].out[i]);
        ok = ok && !w[i];
        rt_words_free(w);
        CHECK(ok, "case %zu (%s): word %zu differs", c, cases[c].in, i);
    }
}

int main(void)
{
    test_shlex_word_counts();
    test_shlex_quoting();
    if (failures)
        fprintf(stderr, "%d check(s) failed\n", failures);
    else
        printf("test_rt_student: all checks passed\n");
    return failures ? 1 : 0;
}
