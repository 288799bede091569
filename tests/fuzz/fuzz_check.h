// The property check of every harness: a violation is a finding like a
// sanitizer report, so it prints what broke and aborts, and libFuzzer saves
// the input as a crash artifact. libc only, so that the runtime's harnesses
// (which link nothing of src/core) share it with the daemon's.
#pragma once

#include <stdio.h>
#include <stdlib.h>

#define FUZZ_CHECK(cond, ...)                                                                      \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: property violated: %s: ", __FILE__, __LINE__, #cond);          \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            abort();                                                                               \
        }                                                                                          \
    } while (0)
