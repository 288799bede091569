// Unit tests of src/common: UTF-8 validation and repair.

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "common/utf8.h"

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

/* ---- UTF-8 ------------------------------------------------------------- */

static void hex(const char *s, size_t n, char *dst, size_t size)
{
    size_t o = 0;
    dst[0] = '\0';
    for (size_t i = 0; i < n && o + 3 < size; i++)
        o += (size_t)snprintf(dst + o, size - o, "%02x", (unsigned char)s[i]);
}

static void test_utf8_repair(void)
{
    static const struct {
        const char *in;
        size_t n;
        const char *out; // Python: in.decode("utf-8", "replace").encode()
        size_t outn;
    } cases[] = {
        {"abc", 3, "abc", 3},
        {"\xff", 1, "\xef\xbf\xbd", 3},
        {"a\xc3", 2, "a\xef\xbf\xbd", 4},
        {"\xe0\x80\x80", 3, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd", 9},
        {"\xe0\x80", 2, "\xef\xbf\xbd\xef\xbf\xbd", 6},
        {"\xed\xa0\x80", 3, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd", 9},
        {"\xf4\x90\x80\x80", 4, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd", 12},
        {"\xf0\x9f\x98", 3, "\xef\xbf\xbd", 3},
        {"\xf0\x9f\x98"
         "A",
         4,
         "\xef\xbf\xbd"
         "A",
         4},
        {"\xef\xbf"
         "q",
         3,
         "\xef\xbf\xbd"
         "q",
         4},
        {"\xc0\xaf", 2, "\xef\xbf\xbd\xef\xbf\xbd", 6},
        {"\xe2\x82\xacx\xe2\x82", 6, "\xe2\x82\xacx\xef\xbf\xbd", 7},
        {"\xf0\x9f\x98\x80\x80", 5, "\xf0\x9f\x98\x80\xef\xbf\xbd", 7},
        {"ok\xff\xc3\xa9\xe2\x82", 7, "ok\xef\xbf\xbd\xc3\xa9\xef\xbf\xbd", 10},
        {"", 0, "", 0},
        {"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9, "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9},
        {"nul\0ok", 6, "nul\0ok", 6},
        {"\xf5\x80", 2, "\xef\xbf\xbd\xef\xbf\xbd", 6},
    };
    for (size_t i = 0; i < N_OF(cases); i++) {
        size_t n = 0;
        char *s = utf8_repair_dup(cases[i].in, cases[i].n, &n);
        char got[128];
        hex(s ? s : "", s ? n : 0, got, sizeof got);
        REQUIRE(s, "case %zu: allocation", i);
        CHECK(n == cases[i].outn && !memcmp(s, cases[i].out, n) && s[n] == '\0', "case %zu: %s", i,
              got);
        CHECK_INT_EQ(utf8_repair_len(cases[i].in, cases[i].n), cases[i].outn);
        CHECK(utf8_valid(s, n), "case %zu: output valid", i);
        bool in_ok = n == cases[i].n && !memcmp(s, cases[i].in, n);
        CHECK(utf8_valid(cases[i].in, cases[i].n) == in_ok, "case %zu: validity", i);
        free(s);
    }
}

// Every code point encodes, and utf8_next reads it back whole; surrogates
// encode (CESU-style) but are not well-formed.
static void test_utf8_encode_next(void)
{
    int bad = 0;
    for (uint32_t cp = 0; cp <= 0x10FFFF && bad < 5; cp++) {
        char u[4];
        size_t n = utf8_encode(cp, u);
        bool ok;
        uint32_t back = 0;
        size_t m = utf8_next((const unsigned char *)u, n, &ok, &back);
        bool surrogate = cp >= 0xD800 && cp <= 0xDFFF;
        size_t want = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
        if (n != want || ok == surrogate || (ok && (m != n || back != cp))) {
            bad++;
            CHECK(0, "cp %#x: len %zu ok %d next %zu back %#x", (unsigned)cp, n, ok, m,
                  (unsigned)back);
        }
        // Every proper prefix of a multi-byte character is one ill-formed subpart.
        for (size_t k = 1; !surrogate && k < n; k++) {
            m = utf8_next((const unsigned char *)u, k, &ok, NULL);
            if (ok || m != k) {
                bad++;
                CHECK(0, "cp %#x prefix %zu: ok %d len %zu", (unsigned)cp, k, ok, m);
            }
        }
    }
    char u[4];
    CHECK(utf8_encode(0x110000, u) == 3 && !memcmp(u, UTF8_REPLACEMENT, 3), "past U+10FFFF");
}

// Two bytes, all 65536 pairs: the input is valid exactly when repair keeps
// it, and the repair is always valid and never longer than 3 bytes per byte.
static void test_utf8_pairs(void)
{
    int bad = 0;
    for (unsigned a = 0; a < 256 && bad < 5; a++) {
        for (unsigned b = 0; b < 256 && bad < 5; b++) {
            char in[2] = {(char)a, (char)b}, out[6];
            size_t n = utf8_repair_len(in, 2);
            if (n > sizeof out) {
                bad++;
                CHECK(0, "%02x %02x: repaired length %zu", a, b, n);
                continue;
            }
            size_t m = utf8_repair(in, 2, out);
            bool same = m == 2 && !memcmp(in, out, 2);
            if (m != n || !utf8_valid(out, m) || same != utf8_valid(in, 2)) {
                bad++;
                CHECK(0, "%02x %02x: len %zu/%zu same %d", a, b, m, n, same);
            }
        }
    }
}

int main(void)
{
    test_utf8_repair();
    test_utf8_encode_next();
    test_utf8_pairs();
    return check_finish("common");
}
