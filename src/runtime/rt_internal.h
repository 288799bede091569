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

/**
 * Largest command map the intern accepts from the grading container: twice
 * what exec() takes by default (ARG_MAX is a quarter of the 8 MiB stack), so
 * that any command the student container could run fits.
 */
#define RT_INTERN_CMD_MAX (4 * 1024 * 1024)

/**
 * Reads the run_student_command map that follows the fds on the intern's
 * connection to its grading container, consuming no byte past the map (the
 * signal digits follow it). 0 and *out (caller frees); -EPROTO on EOF or a
 * read error, -EMSGSIZE past RT_INTERN_CMD_MAX, -EINVAL when malformed,
 * -ENOMEM.
 */
int rt_intern_read_command(int conn, struct rt_value **out);

/**
 * Builds tar's argument list for the task's archive: "tar" "-czf" "-" "--",
 * then a copy of every entry name in dir except "." and "..", or "." alone
 * when there is none (busybox refuses to write an empty archive); the list
 * is NULL-terminated. Returns 0 and *argv (caller frees with rt_words_free),
 * or -ENOMEM (the number of names is the task's choice).
 */
int rt_archive_argv(const char *dir, char ***argv);
/**
 * Appends to tgz the tar+gzip of RT_ARCHIVE_DIR (relocated by rt_path) made
 * by `tar`, run as worker when the caller is root. 0, or -errno (-EIO when
 * tar fails).
 */
int rt_archive_make(struct buf *tgz);

/**
 * The grading side's half of the intern handshake: sends the byte 'S' with
 * the three descriptors (stdin, stdout, stderr to lend) in one SCM_RIGHTS
 * message on conn. 0 or -errno. The descriptors stay the caller's.
 */
int rt_send_fds(int conn, const int fds[3]);

/**
 * The runner's translation of one IPC request from the grading side into the
 * agent's run_student message: a map of exactly type ("run_student"),
 * environment (str or nil), time_limit, hard_time_limit, memory_limit (ints),
 * share_network, ssh (false), run_as_root (bools) and socket_id (the request's,
 * non-empty, without '/'). NULL when the request is refused (not a
 * run_student map, or a bad socket id); the caller also refuses a second
 * request on one connection and a socket id already in use. Caller frees.
 */
struct rt_value *rt_runner_request(const struct rt_value *req);

#endif
