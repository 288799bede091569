#include "common/privdrop.h"

#include <errno.h>
#include <grp.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

void privdrop_reset_signals(void)
{
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL);
    signal(SIGCHLD, SIG_DFL);
}

int privdrop_to(uid_t id, bool no_new_privs)
{
    gid_t gid = (gid_t)id;
    if (setgroups(1, &gid) < 0 || setgid(gid) < 0 || setuid(id) < 0)
        return -errno;
    if (no_new_privs && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        return -errno;
    return 0;
}

int privdrop_prepare(uid_t id, bool as_root, unsigned long nproc, const char *home)
{
    struct rlimit lim = {(rlim_t)nproc, (rlim_t)nproc};
    if (setrlimit(RLIMIT_NPROC, &lim) < 0 || setenv("HOME", home, 1) < 0)
        return -errno;
    return as_root ? 0 : privdrop_to(id, true);
}
