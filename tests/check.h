/**
 * @file check.h
 * The one check family of every C test (daemon and runtime alike).
 *
 *   CHECK(cond[, fmt, ...])        counts a failure, prints file:line, the
 *                                  condition and the optional message; goes on
 *   REQUIRE(cond[, fmt, ...])      the same, then returns from the (void) test
 *                                  function: for checks later ones depend on
 *   REQUIRE_OR_EXIT(cond[, ...])   the same, then exits 1: for broken set-up
 *                                  (a fake server that cannot listen...)
 *   CHECK_INT_EQ(got, want)        integers, both values printed
 *   CHECK_STR_EQ(got, want)        strings (NULL allowed), both printed
 *   check_finish("name")           main's return value: 0, or 1 with the count
 *
 * The optional message must start with a string literal. Header-only: each
 * test binary has its own failure count.
 */
#pragma once

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// CHECK(cond) with no message expands to a zero-length format: that is intended.
#pragma GCC diagnostic ignored "-Wformat-zero-length"
// A note longer than its 1 KiB buffer (a PATH_MAX path...) is cut: that is intended.
#pragma GCC diagnostic ignored "-Wformat-truncation"

static int check_failures;

__attribute__((unused)) static void check_report(const char *file, int line, const char *cond)
{
    check_failures++;
    fprintf(stderr, "%s:%d: check failed: %s", file, line, cond);
}

#define CHECK_NOTE_(...)                                                                           \
    do {                                                                                           \
        char check_note_[1024];                                                                    \
        snprintf(check_note_, sizeof check_note_, "" __VA_ARGS__);                                 \
        fprintf(stderr, "%s%s\n", *check_note_ ? ": " : "", check_note_);                          \
    } while (0)

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            check_report(__FILE__, __LINE__, #cond);                                               \
            CHECK_NOTE_(__VA_ARGS__);                                                              \
        }                                                                                          \
    } while (0)

#define REQUIRE(cond, ...)                                                                         \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            check_report(__FILE__, __LINE__, #cond);                                               \
            CHECK_NOTE_(__VA_ARGS__);                                                              \
            return;                                                                                \
        }                                                                                          \
    } while (0)

#define REQUIRE_OR_EXIT(cond, ...)                                                                 \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            check_report(__FILE__, __LINE__, #cond);                                               \
            CHECK_NOTE_(__VA_ARGS__);                                                              \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

#define CHECK_INT_EQ(got, want)                                                                    \
    do {                                                                                           \
        long long check_g_ = (long long)(got), check_w_ = (long long)(want);                       \
        if (check_g_ != check_w_) {                                                                \
            check_report(__FILE__, __LINE__, #got " == " #want);                                   \
            fprintf(stderr, ": got %lld, want %lld\n", check_g_, check_w_);                        \
        }                                                                                          \
    } while (0)

#define CHECK_STR_EQ(got, want)                                                                    \
    do {                                                                                           \
        const char *check_g_ = (got), *check_w_ = (want);                                          \
        if (!check_g_ || !check_w_ ? check_g_ != check_w_ : strcmp(check_g_, check_w_) != 0) {    \
            check_report(__FILE__, __LINE__, #got " == " #want);                                   \
            fprintf(stderr, ": got \"%s\", want \"%s\"\n", check_g_ ? check_g_ : "(null)",         \
                    check_w_ ? check_w_ : "(null)");                                               \
        }                                                                                          \
    } while (0)

/** main's return value: prints the outcome under `name`. */
__attribute__((unused)) static int check_finish(const char *name)
{
    if (check_failures) {
        fprintf(stderr, "%s: %d check(s) failed\n", name, check_failures);
        return 1;
    }
    printf("%s: all checks passed\n", name);
    return 0;
}
