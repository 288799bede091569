#ifndef PROCTOR_COMMON_BASE64_H
#define PROCTOR_COMMON_BASE64_H

/*
 * Base64 (RFC 4648, standard alphabet): the runtime encodes the task's
 * archive and inline images with it, the daemon decodes the archive the
 * grading container sends.
 */

#include <stddef.h>

#include "common/buf.h"

/** Appends the padded encoding of p[0..n) to out. 0, or -ENOMEM (out then unchanged). */
int base64_encode(const void *p, size_t n, struct buf *out);

/**
 * Decodes in[0..n). Line breaks (\n, \r) anywhere are skipped; anything else
 * outside the alphabet, a character after '=', more than two '=', or a tail
 * that padding cannot complete is -EINVAL. Padding may be left out. On
 * success *out (caller frees with free()) holds *outlen bytes. 0, -EINVAL or
 * -ENOMEM.
 */
int base64_decode(const char *in, size_t n, char **out, size_t *outlen);

#endif
