#include "common/utf8.h"

#include <stdlib.h>
#include <string.h>

size_t utf8_next(const unsigned char *p, size_t n, bool *ok, uint32_t *cp)
{
    unsigned char c = p[0];
    unsigned char lo = 0x80, hi = 0xBF;
    size_t need;
    uint32_t v;
    *ok = false;
    if (c < 0x80) {
        *ok = true;
        if (cp)
            *cp = c;
        return 1;
    }
    if (c >= 0xC2 && c <= 0xDF) {
        need = 1;
        v = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 2;
        v = c & 0x0F;
        if (c == 0xE0)
            lo = 0xA0; // overlong
        else if (c == 0xED)
            hi = 0x9F; // surrogates
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 3;
        v = c & 0x07;
        if (c == 0xF0)
            lo = 0x90; // overlong
        else if (c == 0xF4)
            hi = 0x8F; // past U+10FFFF
    } else {
        return 1;
    }
    for (size_t i = 1; i <= need; i++) {
        if (i >= n || p[i] < lo || p[i] > hi)
            return i;
        v = (v << 6) | (p[i] & 0x3F);
        lo = 0x80;
        hi = 0xBF;
    }
    *ok = true;
    if (cp)
        *cp = v;
    return need + 1;
}

bool utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        // ASCII runs are the common case for logs and feedback.
        if (p[i] < 0x80) {
            i++;
            continue;
        }
        bool ok;
        i += utf8_next(p + i, len - i, &ok, NULL);
        if (!ok)
            return false;
    }
    return true;
}

size_t utf8_repair_len(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t need = 0;
    bool ok;
    for (size_t i = 0; i < len;) {
        size_t n = utf8_next(p + i, len - i, &ok, NULL);
        size_t add = ok ? n : 3;
        if (need > SIZE_MAX - 1 - add)
            return SIZE_MAX;
        need += add;
        i += n;
    }
    return need;
}

size_t utf8_repair(const char *s, size_t len, char *out)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t o = 0;
    bool ok;
    for (size_t i = 0; i < len;) {
        size_t n = utf8_next(p + i, len - i, &ok, NULL);
        if (ok) {
            memcpy(out + o, s + i, n);
            o += n;
        } else {
            memcpy(out + o, UTF8_REPLACEMENT, 3);
            o += 3;
        }
        i += n;
    }
    return o;
}

char *utf8_repair_dup(const char *s, size_t len, size_t *outlen)
{
    // Sized exactly first: text can be megabytes of stdout.
    size_t need = utf8_repair_len(s, len);
    if (need == SIZE_MAX)
        return NULL;
    char *out = malloc(need + 1);
    if (!out)
        return NULL;
    size_t o = utf8_repair(s, len, out);
    out[o] = '\0';
    if (outlen)
        *outlen = o;
    return out;
}

size_t utf8_encode(uint32_t cp, char out[4])
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp > 0x10FFFF)
        cp = 0xFFFD;
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}
