#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log.h"
#include "core/util.h"
#include "job/job_internal.h"

/** Copies src to dst, or makes dst empty when src is absent (dst's parent exists). */
static int copy_optional(const char *src, const char *dst, const char *root)
{
    struct stat st;
    if (stat(src, &st) < 0 || !S_ISDIR(st.st_mode))
        return mkdir(dst, 0755) < 0 && errno != EEXIST ? -errno : 0;
    return util_copytree(src, dst, root);
}

/** What the worker thread needs to fill a job directory: copies, owned by it. */
struct dir_work {
    char *dir;      /* the job directory, already created */
    char *task_src; /* NULL for a taskless job */
    char *common_src;
    char *common_student_src;
    char *root; /* the course directory: links to directories are followed only inside it */
};

static void dir_work_free(void *p)
{
    struct dir_work *w = p;
    free(w->dir);
    free(w->task_src);
    free(w->common_src);
    free(w->common_student_src);
    free(w->root);
    free(w);
}

/*
 * The job directory J, and the security invariant it keeps: no path the agent
 * hands to Docker, opens, chmods or removes has a component that a container
 * can create, rename or replace.
 *
 *   J/               0755  agent only (no container sees J itself)
 *   J/task/          0777  /task (grading, rw): the task's copy
 *   J/student/       0777  /task/student (grading and student containers, rw)
 *   J/scripts/       0777  /task/student/scripts (grading and students, rw)
 *   J/systemfiles/   0755  /task/systemfiles (grading rw, students ro)
 *   J/sockets/       0777  /sockets (grading, rw): the runner's and run_student's sockets
 *   J/links/         0700  agent only: a hard link to each student's socket
 *   J/course/common[/student]  /course/common[/student] (ro everywhere)
 *
 * Upstream shares J/task/student, J/task/student/scripts, J/task/systemfiles
 * and J/sockets/<id>.sock with student containers: paths under trees the
 * grading container writes, which it can swap for symlinks that Docker then
 * follows on the host. Here each shared directory is a mount of its own in
 * the grading container too (a mount point cannot be renamed or removed:
 * EBUSY), and a student's socket is reached through a hard link the agent
 * makes, without following symlinks, in J/links. The container-side paths
 * are upstream's, so INGInious's own images keep working.
 */

/**
 * Worker thread, before any container exists: moves J/task/<name> (as copied
 * from the task) to `dst`, or creates `dst` empty when the task has no such
 * directory (anything but a directory there is dropped), and leaves an empty
 * mount point in its place.
 */
static int split_out(const char *parent, const char *name, const char *dst, mode_t mode)
{
    AUTO_FREE char *src = xasprintf("%s/%s", parent, name);
    struct stat st;
    int ret = 0;
    if (lstat(src, &st) < 0)
        ret = errno == ENOENT ? 0 : -errno;
    else if (S_ISDIR(st.st_mode))
        ret = rename(src, dst) < 0 ? -errno : 1;
    else if (unlink(src) < 0)
        ret = -errno;
    if (ret == 0 && mkdir(dst, mode) < 0)
        ret = -errno;
    if (ret >= 0 && chmod(dst, mode) < 0)
        ret = -errno;
    if (ret >= 0 && mkdir(src, 0755) < 0)
        ret = -errno;
    return ret < 0 ? ret : 0;
}

/** Runs on the worker thread: copies the task (spec CONTAINER_PROTOCOL §5.2, layout above). */
static int dir_work_fill(void *p)
{
    struct dir_work *w = p;
    AUTO_FREE char *task = xasprintf("%s/task", w->dir);
    AUTO_FREE char *student = xasprintf("%s/student", w->dir);
    AUTO_FREE char *scripts = xasprintf("%s/scripts", w->dir);
    AUTO_FREE char *sysfiles = xasprintf("%s/systemfiles", w->dir);
    AUTO_FREE char *sockets = xasprintf("%s/sockets", w->dir);
    AUTO_FREE char *links = xasprintf("%s/links", w->dir);
    AUTO_FREE char *course = xasprintf("%s/course", w->dir);
    AUTO_FREE char *common = xasprintf("%s/course/common", w->dir);
    AUTO_FREE char *common_student = xasprintf("%s/course/common/student", w->dir);
    int ret = chmod(w->dir, 0755) < 0 ? -errno : 0;
    if (!ret && w->task_src) {
        ret = util_copytree(w->task_src, task, w->root);
        if (!ret && mkdir(course, 0755) < 0)
            ret = -errno;
        if (!ret)
            ret = copy_optional(w->common_src, common, w->root);
        if (!ret)
            ret = copy_optional(w->common_student_src, common_student, w->root);
    } else if (!ret) {
        // Taskless job: nothing to copy, only the mount points.
        if (mkdir(task, 0777) < 0 || mkdir(course, 0755) < 0 || mkdir(common, 0755) < 0 ||
            mkdir(common_student, 0755) < 0)
            ret = -errno;
    }
    if (!ret && chmod(task, 0777) < 0)
        ret = -errno;
    if (!ret)
        ret = split_out(task, "student", student, 0777);
    if (!ret)
        ret = split_out(student, "scripts", scripts, 0777);
    if (!ret)
        ret = split_out(task, "systemfiles", sysfiles, 0755);
    if (!ret && (mkdir(sockets, 0777) < 0 || chmod(sockets, 0777) < 0))
        ret = -errno;
    if (!ret && mkdir(links, 0700) < 0)
        ret = -errno;
    return ret;
}

/** Creates the job directory and has the worker fill it (copying never blocks the loop). */
int job_dir_make(struct job *j, void (*done)(int ret, void *data), char *reason, size_t reasonlen)
{
    const struct job_host *h = j->host;
    AUTO_FREE char *tmpl = xasprintf("%s/job-XXXXXX", h->tmp_dir);
    if (!mkdtemp(tmpl)) {
        int err = errno;
        log_error(LOG_JOB, "job %s: cannot create a job directory in %s: %s", j->id, h->tmp_dir,
                  strerror(err));
        util_err(reason, reasonlen, "%s", TXT_UNKNOWN_ERROR);
        return -err;
    }
    j->dir = xstrdup(tmpl);
    struct dir_work *w = xcalloc(1, sizeof *w);
    w->dir = xstrdup(j->dir);
    if (j->course_id) {
        w->task_src = xasprintf("%s/%s/%s", h->tasks_dir, j->course_id, j->task_id);
        w->common_src = xasprintf("%s/%s/$common", h->tasks_dir, j->course_id);
        w->common_student_src = xasprintf("%s/%s/$common/student", h->tasks_dir, j->course_id);
        w->root = xasprintf("%s/%s", h->tasks_dir, j->course_id);
    }
    j->dir_task = worker_submit(h->worker, dir_work_fill, w, dir_work_free, done, j);
    return 0;
}

static int rmtree_work(void *p)
{
    return util_rmtree(p);
}

void job_dir_remove(struct job *j)
{
    worker_cancel(j->dir_task);
    j->dir_task = NULL;
    if (j->dir) {
        // Removed on the worker thread, after any copy still queued there.
        worker_submit(j->host->worker, rmtree_work, j->dir, free, NULL, NULL);
        j->dir = NULL;
    }
}

/* ---- mounts: every source is agent-owned (layout above) ------------------------ */

char **job_dir_grading_binds(const struct job *j)
{
    char **b = xcalloc(8, sizeof *b);
    b[0] = xasprintf("%s/task:/task:rw", j->dir);
    b[1] = xasprintf("%s/student:/task/student:rw", j->dir);
    b[2] = xasprintf("%s/scripts:/task/student/scripts:rw", j->dir);
    b[3] = xasprintf("%s/systemfiles:/task/systemfiles:rw", j->dir);
    b[4] = xasprintf("%s/sockets:/sockets:rw", j->dir);
    b[5] = xasprintf("%s/course/common:/course/common:ro", j->dir);
    b[6] = xasprintf("%s/course/common/student:/course/common/student:ro", j->dir);
    return b;
}

char **job_dir_student_binds(const struct job *j, const char *link)
{
    // The destinations are upstream's.
    char **b = xcalloc(6, sizeof *b);
    b[0] = xasprintf("%s/student:/task/student:rw", j->dir);
    b[1] = xasprintf("%s/scripts:/task/student/scripts:rw", j->dir);
    b[2] = xasprintf("%s:/__parent.sock:rw", link);
    b[3] = xasprintf("%s/systemfiles:/task/systemfiles:ro", j->dir);
    b[4] = xasprintf("%s/course/common/student:/course/common/student:ro", j->dir);
    return b;
}

void job_dir_binds_free(char **binds)
{
    if (!binds)
        return;
    for (char **p = binds; *p; p++)
        free(*p);
    free(binds);
}

/**
 * Gives the requester's socket, /sockets/<socket_id>.sock in the grading
 * container, a name of the agent's own: a hard link in J/links, made without
 * following a symlink (linkat without AT_SYMLINK_FOLLOW links the entry
 * itself) and then checked to be a socket. The grading container can swap
 * J/sockets/<id>.sock at will, but not the link: Docker gets a path none of
 * whose components a container can create, rename or replace.
 * 0, or -errno (-EPERM: not a socket; also what fs.protected_hardlinks
 * answers an agent that is neither root nor the socket's owner).
 */
int job_dir_link_socket(const struct job *j, const char *socket_id, size_t n, char **out)
{
    AUTO_FREE char *src = xasprintf("%s/sockets/%s.sock", j->dir, socket_id);
    AUTO_FREE char *link = xasprintf("%s/links/%zu.sock", j->dir, n);
    struct stat st;
    if (linkat(AT_FDCWD, src, AT_FDCWD, link, 0) < 0)
        return -errno;
    if (lstat(link, &st) < 0 || !S_ISSOCK(st.st_mode)) {
        unlink(link);
        return -EPERM;
    }
    *out = link;
    link = NULL;
    return 0;
}
