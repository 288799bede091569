/**
 * @file util.h
 * Assertions, allocation helpers and cleanup attributes shared by every module.
 *
 * Two kinds of assertion, never bare assert():
 *  - PROCTOR_REQUIRE(x): always on, aborts with file:line on a broken invariant;
 *  - PROCTOR_FAILS(x): for recoverable "can't happen" cases; true (and logged)
 *    when x is false, so callers write `if (PROCTOR_FAILS(p)) return -EINVAL;`.
 *
 * Allocation: xmalloc/xcalloc/xrealloc/xstrdup abort on OOM and are for small
 * bookkeeping. Sizes that come from the network or a container go through
 * try_malloc/try_realloc, which return NULL and leave the decision to the caller.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "common/buf.h" // struct buf, buf_append...: the daemon's buffer

#define PROCTOR_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#define PROCTOR_NORETURN __attribute__((noreturn))
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define PROCTOR_UNUSED(x) ((void)(x))

PROCTOR_NORETURN void util_require_failed(const char *expr, const char *file, int line);
bool util_fails_report(const char *expr, const char *file, int line);

#define PROCTOR_REQUIRE(x)                                                                         \
    do {                                                                                           \
        if (__builtin_expect(!(x), 0))                                                             \
            util_require_failed(#x, __FILE__, __LINE__);                                           \
    } while (0)
#define PROCTOR_FAILS(x)                                                                           \
    (__builtin_expect(!(x), 0) ? util_fails_report(#x, __FILE__, __LINE__) : false)

/** Abort-on-OOM allocators for small bookkeeping. Never return NULL. */
void *xmalloc(size_t n);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *p, size_t n);
/** Caller frees with free(). */
char *xstrdup(const char *s);
/** Copies n bytes of s and adds a NUL. Caller frees with free(). */
char *xstrndup(const char *s, size_t n);
/** printf into a fresh string. Caller frees with free(). */
char *xasprintf(const char *fmt, ...) PROCTOR_PRINTF(1, 2);

/** Checked allocators for sizes that come from outside: NULL on failure. */
void *try_malloc(size_t n);
void *try_realloc(void *p, size_t n);

/**
 * Converts a number from outside (a JSON double) to an integer in [min, max],
 * truncating toward zero: 0, or -ERANGE when it does not fit (infinite and NaN
 * included), *out then untouched. A plain cast of such a number is undefined.
 */
int util_double_to_int(double d, int64_t min, int64_t max, int64_t *out);

/** Copies src into dst (size dstlen, always NUL-terminated when dstlen > 0). */
void util_strlcpy(char *dst, const char *src, size_t dstlen);
/** Formats into an error buffer (may be NULL or 0-sized: then does nothing). */
void util_err(char *err, size_t errlen, const char *fmt, ...) PROCTOR_PRINTF(3, 4);

/** Monotonic clock in milliseconds / nanoseconds. */
uint64_t util_now_ms(void);
uint64_t util_now_ns(void);

/** Recursively removes a directory tree (no symlink following). 0 or -errno. */
int util_rmtree(const char *path);
#define UTIL_COPY_MAX_DEPTH 64
#define UTIL_COPY_MAX_ENTRIES 200000
/* Directory links followed along one path: below the kernel's 40 per path resolution, so that
 * no source path ever fails with ELOOP (deeper links are copied as links). */
#define UTIL_COPY_MAX_LINKS 32
/**
 * Recursively copies a directory tree: files keep their mode, links to files
 * are copied as links. A link to a directory is followed only when it
 * resolves under `root` (NULL: never), is not one of the directories being
 * copied (a cycle), and fewer than UTIL_COPY_MAX_LINKS links were followed to
 * get there; otherwise it is copied as a link. At most
 * UTIL_COPY_MAX_DEPTH levels and UTIL_COPY_MAX_ENTRIES entries: -ELOOP/-EFBIG.
 * 0 or -errno.
 */
int util_copytree(const char *src, const char *dst, const char *root);
/**
 * Copies the entries of the directory src into the existing directory dst,
 * for a destination that someone else may write meanwhile: dst itself and
 * every directory made below it are opened without following a link, and no
 * entry is reused or replaced (one already there is -EEXIST). Names in `skip`
 * (NULL-terminated, may be NULL) are not copied from src's top level.
 * Otherwise as util_copytree. 0 or -errno.
 */
int util_copytree_into(const char *src, const char *dst, const char *root, const char *const *skip);
/** mkdir -p with a mode. */
int util_mkdirs(const char *path, unsigned mode);
/** Reads a whole small file into a fresh NUL-terminated string (limit bytes max). */
int util_read_file(const char *path, size_t limit, char **out, size_t *outlen);
/** Sets O_NONBLOCK and FD_CLOEXEC. */
int util_set_nonblock(int fd);

static inline void util_freep(void *p)
{
    free(*(void **)p);
}
#define AUTO_FREE __attribute__((cleanup(util_freep)))
