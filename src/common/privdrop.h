#ifndef PROCTOR_COMMON_PRIVDROP_H
#define PROCTOR_COMMON_PRIVDROP_H

/*
 * What a child of the container runtime does between fork and exec to
 * become an unprivileged task or student process. Async-signal-safe enough
 * for a forked child (no allocation but setenv's).
 */

#include <stdbool.h>
#include <sys/types.h>

/** Clears the signal mask and gives SIGPIPE and SIGCHLD their default actions. */
void privdrop_reset_signals(void);

/**
 * Becomes uid and gid `id` with `id` as the only group (upstream keeps
 * root's supplementary groups; we do not); with no_new_privs, setuid
 * binaries cannot regain anything afterwards. 0 or -errno (errno kept).
 */
int privdrop_to(uid_t id, bool no_new_privs);

/**
 * The process setup of a task or student command: at most `nproc`
 * processes for its user, HOME=home, then, unless as_root,
 * privdrop_to(id, true). 0 or -errno (errno kept), for the caller to
 * report before _exit.
 */
int privdrop_prepare(uid_t id, bool as_root, unsigned long nproc, const char *home);

#endif
