/*
 * rt_common: what every part of the container runtime shares: wire-format
 * constants, relocatable paths, file helpers, the length-prefixed frame
 * codec, an argparse-like option parser, INGInious's id rule, and the entry
 * points of the multi-call binary (one function per installed name).
 */
#ifndef PROCTOR_RT_COMMON_H
#define PROCTOR_RT_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "common/framer.h"
#include "common/wire.h"
#include "rt_json.h"
#include "rt_msgpack.h"
#include "rt_value.h"

#define RT_NPROC_LIMIT 1000

// Largest frame accepted from the agent or a peer: uploads travel in `start`.
#define RT_FRAME_MAX (1024u * 1024u * 1024u)
// Largest frame the runner accepts from an IPC client (code in the grading
// container): a run_student request is a few hundred bytes, and the runner
// (root, PID 1) must not buffer 64 clients' worth of RT_FRAME_MAX for it.
#define RT_IPC_FRAME_MAX (64u * 1024u)

#define RT_INPUT_DIR "/.__input"
#define RT_INPUT_JSON "/.__input/__inputdata.json"
#define RT_OUTPUT_DIR "/.__output"
#define RT_FEEDBACK_JSON "/.__output/__feedback.json"
#define RT_ARCHIVE_DIR "/archive"
#define RT_MAIN_SOCK "/sockets/main.sock"

/**
 * Maps an absolute in-container path to the real one: unchanged, unless the
 * environment variable PROCTOR_RT_ROOT names a directory, which is then
 * prefixed (tests run the tools outside a container that way). Writes into
 * buf (PATH_MAX bytes) and returns it.
 */
const char *rt_path(const char *abs, char *buf);

/** dst (PATH_MAX bytes) = a "/" b; 0 or -ENAMETOOLONG. */
int rt_path_join(char *dst, const char *a, const char *b);

/** Reads a whole regular file into out (appended); a symlink as last component is refused (-ELOOP).
 * 0 or -errno. */
int rt_read_file(const char *path, struct buf *out);
/** Creates or truncates path with mode and writes n bytes. 0 or -errno. */
int rt_write_file(const char *path, const void *p, size_t n, mode_t mode);
/** Writes all n bytes, retrying on EINTR and short writes. 0 or -errno. */
int rt_write_all(int fd, const void *p, size_t n);
/** mkdir -p; 0 or -errno. */
int rt_mkdirs(const char *path, mode_t mode);

/**
 * Copies the task's /task/systemfiles/<name>, when there is one, into
 * /etc/<name> (both relocated by rt_path): a newline, then its content,
 * appended (hosts) or replacing the file (resolv.conf); a new file gets
 * mode. 0 (also when the task has none) or -errno.
 */
int rt_systemfile_copy(const char *name, bool append, mode_t mode);

/** Packs msg and writes it as one frame (4-byte big-endian length + body). 0 or -errno. */
int rt_frame_write(int fd, const struct rt_value *msg);

/**
 * Pulls the next frame out of f (common/framer.h, initialised with the
 * largest body accepted: RT_FRAME_MAX or RT_IPC_FRAME_MAX) and decodes it:
 * 1 and *out (caller frees) when a whole frame was there; 0 when more bytes
 * are needed (feed f again); -EMSGSIZE (length over the framer's max),
 * -EINVAL (length 0, or a body that is not exactly one msgpack object) or
 * -ENOMEM, after which f is unusable.
 */
int rt_frame_next(struct msg_framer *f, struct rt_value **out);

/** One option of a command line, argparse style: -x, -xVALUE, -x VALUE, --long[=VALUE]. */
struct rt_opt {
    char short_name;       // 0 when the option has only a long name
    const char *long_name; // without the leading "--"; NULL when none
    bool has_arg;
    bool set;          // out
    const char *value; // out; borrowed from argv
};
/**
 * Parses argv[1..argc): options fill opts (terminated by an entry with
 * neither name), everything else is copied to pos (room for argc entries),
 * with *npos set. Short flags may be grouped ("-ae"). "--" ends options; a
 * word that looks like a negative number is positional. With remainder,
 * everything from the first positional on is positional (argparse
 * REMAINDER). Returns 0, or -EINVAL after printing the reason to stderr.
 */
int rt_args_parse(struct rt_opt *opts, int argc, char **argv, bool remainder, char **pos,
                  int *npos);

/** INGInious's id rule: one or more of [A-Za-z0-9_.-], plus '*' for tests ids. */
bool rt_id_valid(const char *id, bool allow_star);

/** Prints "usage: <name> <usage>" to stderr and returns 2 (argparse's exit code). */
int rt_usage(const char *name, const char *usage);

/** Python's int() on a decimal string: surrounding blanks allowed, nothing else after. */
bool rt_parse_int(const char *s, long long *out);
/** Reads all of stdin into a NUL-terminated string (caller frees); stops early on a read error. */
char *rt_read_stdin(void);
/**
 * Decodes backslash escapes as the upstream tools do (-e flags): C letters,
 * \ooo and \xhh as raw bytes, \uXXXX and \UXXXXXXXX as UTF-8, unknown
 * escapes kept. Returns a new string the caller frees.
 */
char *rt_unescape(const char *s);
/**
 * Loads the input file (RT_INPUT_JSON, relocated) into *doc (a map, caller
 * frees). Returns 0, or 2 (the tools' exit code) after printing
 * "<cmd>: input file not found" or "<cmd>: input is not compatible".
 */
int rt_input_load(const char *cmd, struct rt_value **doc);

/* Entry points: each takes main's argc/argv (argv[0] = the command name) and
 * returns the process exit code. */
int rt_cmd_runner(int argc, char **argv);        // INGInious
int rt_cmd_intern(int argc, char **argv);        // _run_student_intern
int rt_cmd_run_student(int argc, char **argv);   // run_student
int rt_cmd_getinput(int argc, char **argv);      // getinput
int rt_cmd_feedback(int argc, char **argv);      // feedback
int rt_cmd_fb_result(int argc, char **argv);     // feedback-result
int rt_cmd_fb_grade(int argc, char **argv);      // feedback-grade
int rt_cmd_fb_msg(int argc, char **argv);        // feedback-msg
int rt_cmd_fb_custom(int argc, char **argv);     // feedback-custom
int rt_cmd_fb_state(int argc, char **argv);      // feedback-state
int rt_cmd_tag(int argc, char **argv);           // tag
int rt_cmd_tag_set(int argc, char **argv);       // tag-set
int rt_cmd_archive(int argc, char **argv);       // archive
int rt_cmd_parsetemplate(int argc, char **argv); // parsetemplate
int rt_cmd_rst_code(int argc, char **argv);      // rst-code
int rt_cmd_rst_msgblock(int argc, char **argv);  // rst-msgblock
int rt_cmd_rst_indent(int argc, char **argv);    // rst-indent
int rt_cmd_rst_image(int argc, char **argv);     // rst-image

#endif
