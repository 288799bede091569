/*
 * rt_internal: pieces of the runner (rt_runner.c) and of the student-container
 * intern (rt_student.c) that are not tools of their own but parse or collect
 * what a hostile container controls. They are reachable here so that the unit
 * tests can drive them directly; nothing outside src/runtime/ includes this.
 */
#ifndef PROCTOR_RT_INTERNAL_H
#define PROCTOR_RT_INTERNAL_H

#include "rt_value.h"

/**
 * Splits a command line with Python's shlex.split rules (POSIX mode, no
 * comments): blanks separate words, '...' is literal, "..." honours \" and
 * \\, a bare backslash escapes the next character. Returns a NULL-terminated
 * array the caller frees with rt_words_free, or NULL on an unterminated quote
 * or escape. Aborts on OOM (the input is bounded by the caller).
 */
char **rt_shlex_split(const char *s);
/** Frees a NULL-terminated array of strings and the strings; NULL is a no-op. */
void rt_words_free(char **words);

#endif
