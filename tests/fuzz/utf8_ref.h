// Reference UTF-8 repair, written from the Unicode standard (Table 3-7, and
// the "maximal subpart" practice of section 3.9 that Python's
// decode(errors="replace") follows): each maximal ill-formed subsequence
// becomes one U+FFFD. Only libc, so that every harness can use it.
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

// Writes the repair of s[0..n) to out (room for 3 * n bytes); returns its length.
static inline size_t utf8_ref_repair(const uint8_t *s, size_t n, uint8_t *out)
{
    size_t i = 0, o = 0;
    while (i < n) {
        uint8_t c = s[i];
        size_t len = 0;
        uint8_t lo = 0x80, hi = 0xbf; // range of the second byte
        if (c < 0x80)
            len = 1;
        else if (c >= 0xc2 && c <= 0xdf)
            len = 2;
        else if (c == 0xe0)
            len = 3, lo = 0xa0;
        else if ((c >= 0xe1 && c <= 0xec) || c == 0xee || c == 0xef)
            len = 3;
        else if (c == 0xed)
            len = 3, hi = 0x9f;
        else if (c == 0xf0)
            len = 4, lo = 0x90;
        else if (c >= 0xf1 && c <= 0xf3)
            len = 4;
        else if (c == 0xf4)
            len = 4, hi = 0x8f;
        size_t ok = len ? 1 : 0; // bytes of a well-formed prefix so far
        while (ok && ok < len && i + ok < n) {
            uint8_t b = s[i + ok];
            uint8_t l = ok == 1 ? lo : 0x80, h = ok == 1 ? hi : 0xbf;
            if (b < l || b > h)
                break;
            ok++;
        }
        if (len && ok == len) {
            memcpy(out + o, s + i, len);
            o += len;
            i += len;
        } else {
            memcpy(out + o, "\xef\xbf\xbd", 3);
            o += 3;
            i += ok ? ok : 1;
        }
    }
    return o;
}
