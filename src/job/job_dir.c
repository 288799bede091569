#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log.h"
#include "core/util.h"
#include "job/job_internal.h"

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

/* What the worker thread needs to fill a job directory: copies, owned by it. */
struct dir_work {
    char *dir;      /* the job directory */
    char *task_src; /* NULL for a taskless job */
    char *common_src;
    char *root;  /* the course directory: links to directories are followed only inside it */
    bool layout; /* lay the directory out first (a cold start) */
};

static void dir_work_free(void *p)
{
    struct dir_work *w = p;
    free(w->dir);
    free(w->task_src);
    free(w->common_src);
    free(w->root);
    free(w);
}

/* The directories of J below it, their modes, and the mount points inside
 * them (made here, so that the engine never creates anything in J). */
static const struct {
    const char *path;
    mode_t mode;
} layout[] = {
    {"task", 0777},        {"task/student", 0755},    {"task/systemfiles", 0755},
    {"student", 0777},     {"student/scripts", 0755}, {"scripts", 0777},
    {"systemfiles", 0755}, {"sockets", 0777},         {"links", 0700},
    {"course", 0755},      {"course/common", 0755},   {"course/common/student", 0755},
};

int job_dir_layout(const char *dir)
{
    if (chmod(dir, 0755) < 0)
        return -errno;
    for (size_t i = 0; i < ARRAY_SIZE(layout); i++) {
        AUTO_FREE char *p = xasprintf("%s/%s", dir, layout[i].path);
        // chmod: mkdir's mode goes through the umask.
        if (mkdir(p, layout[i].mode) < 0 || chmod(p, layout[i].mode) < 0)
            return -errno;
    }
    return 0;
}

/**
 * The directory `name` of the task tree `parent`, to copy from: NULL when
 * there is none, or when it is a link that leads out of `root` (then, as for
 * any entry that is not a directory, the task has none).
 */
static char *source_dir(const char *parent, const char *name, const char *root)
{
    char *p = xasprintf("%s/%s", parent, name);
    struct stat lst, st;
    char real[PATH_MAX], rroot[PATH_MAX];
    bool ok = lstat(p, &lst) == 0 && stat(p, &st) == 0 && S_ISDIR(st.st_mode);
    if (ok && S_ISLNK(lst.st_mode)) {
        size_t n = root && realpath(root, rroot) ? strlen(rroot) : 0;
        ok = n && realpath(p, real) && !strncmp(real, rroot, n) && (real[n] == '/' || !real[n]);
    }
    if (!ok) {
        free(p);
        return NULL;
    }
    return p;
}

/** Copies parent[/name] (when it is a directory) into J/dst, skipping `skip` at its top. */
static int fill_from(const struct dir_work *w, const char *parent, const char *name,
                     const char *dst, const char *const *skip)
{
    AUTO_FREE char *src = name ? source_dir(parent, name, w->root) : NULL;
    if (name && !src)
        return 0;
    struct stat st;
    if (!name && (stat(parent, &st) < 0 || !S_ISDIR(st.st_mode)))
        return 0;
    AUTO_FREE char *to = xasprintf("%s/%s", w->dir, dst);
    return util_copytree_into(src ? src : parent, to, w->root, skip);
}

/**
 * Runs on the worker thread: copies the task into J (spec CONTAINER_PROTOCOL
 * §5.2, layout above). J's directories may already be mounted in a waiting
 * (pooled) container: nothing there is reused or followed (util_copytree_into).
 */
static int dir_work_fill(void *p)
{
    struct dir_work *w = p;
    int ret = w->layout ? job_dir_layout(w->dir) : 0;
    if (ret || !w->task_src)
        return ret; /* a taskless job: only the mount points */
    static const char *const task_skip[] = {"student", "systemfiles", NULL};
    static const char *const student_skip[] = {"scripts", NULL};
    static const char *const common_skip[] = {"student", NULL};
    AUTO_FREE char *student = source_dir(w->task_src, "student", w->root);
    ret = fill_from(w, w->task_src, NULL, "task", task_skip);
    if (!ret)
        ret = fill_from(w, w->task_src, "systemfiles", "systemfiles", NULL);
    if (!ret && student)
        ret = fill_from(w, student, NULL, "student", student_skip);
    if (!ret && student)
        ret = fill_from(w, student, "scripts", "scripts", NULL);
    if (!ret)
        ret = fill_from(w, w->common_src, NULL, "course/common", common_skip);
    if (!ret)
        ret = fill_from(w, w->common_src, "student", "course/common/student", NULL);
    return ret;
}

static struct dir_work *dir_work_new(const struct job *j)
{
    const struct job_host *h = j->host;
    struct dir_work *w = xcalloc(1, sizeof *w);
    w->dir = xstrdup(j->dir);
    if (j->course_id) {
        w->task_src = xasprintf("%s/%s/%s", h->tasks_dir, j->course_id, j->task_id);
        w->common_src = xasprintf("%s/%s/$common", h->tasks_dir, j->course_id);
        w->root = xasprintf("%s/%s", h->tasks_dir, j->course_id);
    }
    return w;
}

/** Creates the job directory and has the worker lay it out and fill it (never on the loop). */
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
    struct dir_work *w = dir_work_new(j);
    w->layout = true;
    j->dir_task = worker_submit(h->worker, dir_work_fill, w, dir_work_free, done, j);
    return 0;
}

void job_dir_fill(struct job *j, void (*done)(int ret, void *data))
{
    j->dir_task =
        worker_submit(j->host->worker, dir_work_fill, dir_work_new(j), dir_work_free, done, j);
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

char **job_dir_grading_binds(const char *dir)
{
    char **b = xcalloc(8, sizeof *b);
    b[0] = xasprintf("%s/task:/task:rw", dir);
    b[1] = xasprintf("%s/student:/task/student:rw", dir);
    b[2] = xasprintf("%s/scripts:/task/student/scripts:rw", dir);
    b[3] = xasprintf("%s/systemfiles:/task/systemfiles:rw", dir);
    b[4] = xasprintf("%s/sockets:/sockets:rw", dir);
    b[5] = xasprintf("%s/course/common:/course/common:ro", dir);
    b[6] = xasprintf("%s/course/common/student:/course/common/student:ro", dir);
    return b;
}

char **job_dir_student_binds(const char *dir, const char *parent, bool ahead)
{
    // The destinations are upstream's (but /__parent.d, proctor's runtime's own).
    char **b = xcalloc(6, sizeof *b);
    b[0] = xasprintf("%s/student:/task/student:rw", dir);
    b[1] = xasprintf("%s/scripts:/task/student/scripts:rw", dir);
    b[2] =
        ahead ? xasprintf("%s:/__parent.d:ro", parent) : xasprintf("%s:/__parent.sock:rw", parent);
    b[3] = xasprintf("%s/systemfiles:/task/systemfiles:ro", dir);
    b[4] = xasprintf("%s/course/common/student:/course/common/student:ro", dir);
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
int job_dir_link_socket_at(const char *dir, const char *socket_id, const char *link)
{
    AUTO_FREE char *src = xasprintf("%s/sockets/%s.sock", dir, socket_id);
    struct stat st;
    if (linkat(AT_FDCWD, src, AT_FDCWD, link, 0) < 0)
        return -errno;
    if (lstat(link, &st) < 0 || !S_ISSOCK(st.st_mode)) {
        unlink(link);
        return -EPERM;
    }
    return 0;
}

int job_dir_link_socket(const struct job *j, const char *socket_id, size_t n, char **out)
{
    char *link = xasprintf("%s/links/%zu.sock", j->dir, n);
    int ret = job_dir_link_socket_at(j->dir, socket_id, link);
    if (ret) {
        free(link);
        return ret;
    }
    *out = link;
    return 0;
}
