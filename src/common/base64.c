#include "common/base64.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int base64_encode(const void *p, size_t n, struct buf *out)
{
    const unsigned char *s = p;
    size_t groups = n / 3 + (n % 3 != 0);
    // One allocation for the whole text: archives are megabytes.
    if (groups > (SIZE_MAX - 1 - out->len) / 4 || buf_reserve(out, out->len + groups * 4))
        return -ENOMEM;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)s[i] << 16 | (i + 1 < n ? (uint32_t)s[i + 1] << 8 : 0) |
                     (i + 2 < n ? s[i + 2] : 0);
        char q[4] = {alphabet[v >> 18], alphabet[(v >> 12) & 63],
                     i + 1 < n ? alphabet[(v >> 6) & 63] : '=', i + 2 < n ? alphabet[v & 63] : '='};
        buf_add(out, q, 4); // within the reservation: cannot fail
    }
    return 0;
}

// Value + 1 of each alphabet character; 0 for the others.
static signed char digit(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return (signed char)(c - 'A' + 1);
    if (c >= 'a' && c <= 'z')
        return (signed char)(c - 'a' + 27);
    if (c >= '0' && c <= '9')
        return (signed char)(c - '0' + 53);
    return c == '+' ? 63 : c == '/' ? 64 : 0;
}

int base64_decode(const char *in, size_t n, char **out, size_t *outlen)
{
    char *p = malloc(n / 4 * 3 + 4);
    if (!p)
        return -ENOMEM;
    size_t o = 0, q = 0, pad = 0;
    uint32_t acc = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c == '\n' || c == '\r')
            continue;
        if (c == '=') {
            pad++;
            continue;
        }
        signed char d = digit(c);
        if (pad || !d) {
            free(p);
            return -EINVAL;
        }
        acc = acc << 6 | (uint32_t)(d - 1);
        if (++q == 4) {
            p[o++] = (char)(acc >> 16);
            p[o++] = (char)(acc >> 8);
            p[o++] = (char)acc;
            q = 0;
            acc = 0;
        }
    }
    if (q == 1 || pad > 2 || (q && q + pad != 4 && pad)) {
        free(p);
        return -EINVAL;
    }
    if (q == 2) {
        p[o++] = (char)(acc >> 4);
    } else if (q == 3) {
        p[o++] = (char)(acc >> 10);
        p[o++] = (char)(acc >> 2);
    }
    *out = p;
    *outlen = o;
    return 0;
}
