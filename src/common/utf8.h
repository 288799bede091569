#ifndef PROCTOR_COMMON_UTF8_H
#define PROCTOR_COMMON_UTF8_H

/*
 * UTF-8 validation and repair, shared by the daemon and the container
 * runtime (libc only, no logging).
 *
 * "Well-formed" is Unicode's definition (table 3-7): no overlong forms, no
 * surrogates, nothing past U+10FFFF. Repair replaces each maximal ill-formed
 * subpart by one U+FFFD, which is exactly what Python's
 * bytes.decode("utf-8", errors="replace") does: INGInious decodes what the
 * agent sends that way, and the fuzz harnesses compare against it.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/** U+FFFD REPLACEMENT CHARACTER, encoded. */
#define UTF8_REPLACEMENT "\xEF\xBF\xBD"

/**
 * Looks at the sequence starting at p[0] (n > 0 bytes available). Returns
 * its length and sets *ok when it is one complete well-formed character (and
 * *cp, which may be NULL, to its code point); otherwise clears *ok and
 * returns the length of the maximal ill-formed subpart (at least 1).
 */
size_t utf8_next(const unsigned char *p, size_t n, bool *ok, uint32_t *cp);

/** True if s[0..len) is well-formed UTF-8. */
bool utf8_valid(const char *s, size_t len);

/**
 * Length of the repaired copy of s[0..len) (without a terminating NUL), or
 * SIZE_MAX if it does not fit in a size_t.
 */
size_t utf8_repair_len(const char *s, size_t len);

/**
 * Writes the repaired copy of s[0..len) to out, which has room for
 * utf8_repair_len(s, len) bytes; returns that length. No NUL is written.
 */
size_t utf8_repair(const char *s, size_t len, char *out);

/**
 * The repaired copy in a new NUL-terminated string; *outlen (may be NULL)
 * gets its length without the NUL. Caller frees with free(). NULL when the
 * allocation fails.
 */
char *utf8_repair_dup(const char *s, size_t len, size_t *outlen);

/**
 * Encodes code point cp (<= 0x10FFFF; surrogates are encoded as they are)
 * into out; returns the length, 1 to 4. A cp past U+10FFFF gives U+FFFD.
 */
size_t utf8_encode(uint32_t cp, char out[4]);

#endif
