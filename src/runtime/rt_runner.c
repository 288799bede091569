// The grading container's entry process (image CMD `INGInious`, §11 of the
// container protocol). One thread, one poll loop over: the agent's frames on
// stdin, the IPC listener /sockets/main.sock and its clients (our
// run_student), and a self-pipe woken by SIGCHLD. It never writes anything
// but frames to the agent's stdout: fd 1 is re-pointed to stderr at start
// and the real stdout is kept on a private descriptor.
#include "rt_common.h"
#include "rt_internal.h"

#include "common/base64.h"
#include "common/privdrop.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_CLIENTS 64

struct client {
    int fd;
    struct msg_framer fr;
    char *socket_id; // set once the client asked for a student container
};

struct runner {
    int agent_in, agent_out; // private copies of the original fds 0 and 1
    bool stdin_open, started;
    struct msg_framer in;
    int listen_fd;
    struct client clients[MAX_CLIENTS];
    int nclients;
    pid_t task_pid;
    bool task_done, launch_failed;
    int out_fd, err_fd; // captured stdout/stderr of the task
    bool debug, run_as_root;
};

static int g_sigpipe[2] = {-1, -1};

static void on_sigchld(int sig)
{
    (void)sig;
    int saved = errno;
    ssize_t r = write(g_sigpipe[1], "c", 1);
    (void)r; // a full pipe already holds a pending wake-up
    errno = saved;
}

static const char *P(const char *abs, char *buf)
{
    return rt_path(abs, buf);
}

static struct rt_value *crash(const char *text)
{
    struct rt_value *r = rt_new_map();
    rt_map_set(r, "result", rt_new_str("crash"));
    rt_map_set(r, "text", rt_new_str(text));
    return r;
}

static int send_agent(struct runner *r, struct rt_value *msg)
{
    int ret = rt_frame_write(r->agent_out, msg);
    if (ret)
        fprintf(stderr, "INGInious: cannot write to the agent: %s\n", strerror(-ret));
    rt_value_free(msg);
    return ret;
}

/* ------------------------------------------------------------ IPC clients */

static void client_close(struct runner *r, int i)
{
    struct client *c = &r->clients[i];
    close(c->fd);
    msg_framer_deinit(&c->fr);
    free(c->socket_id);
    r->clients[i] = r->clients[--r->nclients];
}

static int find_client(struct runner *r, const char *socket_id)
{
    for (int i = 0; socket_id && i < r->nclients; i++)
        if (r->clients[i].socket_id && !strcmp(r->clients[i].socket_id, socket_id))
            return i;
    return -1;
}

static int64_t int_or_zero(const struct rt_value *m, const char *key)
{
    const struct rt_value *v = rt_map_get(m, key);
    return v && v->type == RT_INT ? v->u.i : 0;
}

static bool truthy(const struct rt_value *v)
{
    return v && !(v->type == RT_NIL || (v->type == RT_BOOL && !v->u.b) ||
                  (v->type == RT_INT && !v->u.i) || (v->type == RT_STR && !v->u.str.n));
}

// A run_student request from our IPC client becomes a complete, well-typed
// frame to the agent (a missing key would make the agent drop it silently).
struct rt_value *rt_runner_request(const struct rt_value *req)
{
    const char *type = rt_map_str(req, "type");
    const char *sid = rt_map_str(req, "socket_id");
    const char *env = rt_map_str(req, "environment");
    if (!type || strcmp(type, WIRE_MSG_RUN_STUDENT) || !sid || !*sid || strchr(sid, '/'))
        return NULL;
    struct rt_value *m = rt_new_map();
    rt_map_set(m, "type", rt_new_str(WIRE_MSG_RUN_STUDENT));
    rt_map_set(m, "environment", env && *env ? rt_new_str(env) : rt_new_nil());
    rt_map_set(m, "time_limit", rt_new_int(int_or_zero(req, "time_limit")));
    rt_map_set(m, "hard_time_limit", rt_new_int(int_or_zero(req, "hard_time_limit")));
    rt_map_set(m, "memory_limit", rt_new_int(int_or_zero(req, "memory_limit")));
    rt_map_set(m, "share_network", rt_new_bool(truthy(rt_map_get(req, "share_network"))));
    rt_map_set(m, "socket_id", rt_new_str(sid));
    rt_map_set(m, "ssh", rt_new_bool(false));
    rt_map_set(m, "run_as_root", rt_new_bool(truthy(rt_map_get(req, "run_as_root"))));
    return m;
}

static void client_request(struct runner *r, int i, const struct rt_value *req)
{
    const char *sid = rt_map_str(req, "socket_id");
    struct rt_value *m = r->clients[i].socket_id || (sid && find_client(r, sid) >= 0)
                             ? NULL
                             : rt_runner_request(req);
    if (!m) {
        fprintf(stderr, "INGInious: refusing an invalid IPC request\n");
        client_close(r, i);
        return;
    }
    r->clients[i].socket_id = rt_xstrdup(sid);
    send_agent(r, m);
}

static void client_readable(struct runner *r, int i)
{
    char chunk[4096];
    ssize_t n = read(r->clients[i].fd, chunk, sizeof(chunk));
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return;
    if (n <= 0 || msg_framer_feed(&r->clients[i].fr, chunk, (size_t)n)) {
        client_close(r, i); // its socket_id is forgotten: later agent replies are dropped
        return;
    }
    // A client sends one request; a second one is refused by client_request.
    int fd = r->clients[i].fd, got;
    struct rt_value *req = NULL;
    while (i < r->nclients && r->clients[i].fd == fd &&
           (got = rt_frame_next(&r->clients[i].fr, &req)) != 0) {
        if (got < 0) {
            client_close(r, i);
            break;
        }
        client_request(r, i, req);
        rt_value_free(req);
        req = NULL;
    }
}

static void accept_client(struct runner *r)
{
    int fd = accept4(r->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0)
        return;
    if (r->nclients == MAX_CLIENTS) {
        close(fd);
        return;
    }
    r->clients[r->nclients] = (struct client){.fd = fd};
    msg_framer_init(&r->clients[r->nclients++].fr, RT_IPC_FRAME_MAX);
}

static int listen_main_sock(void)
{
    char path[PATH_MAX], dir[PATH_MAX];
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(P(RT_MAIN_SOCK, path)) >= sizeof(sa.sun_path))
        return -ENAMETOOLONG;
    strcpy(sa.sun_path, path);
    rt_mkdirs(P("/sockets", dir), 0777);
    unlink(path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 16) < 0) {
        int err = errno;
        if (fd >= 0)
            close(fd);
        return -err;
    }
    if (chown(path, WIRE_WORKER_ID, WIRE_WORKER_ID) < 0 || chmod(path, 0775) < 0)
        fprintf(stderr, "INGInious: cannot hand %s to worker: %s\n", path, strerror(errno));
    return fd;
}

/* ------------------------------------------------------- job preparation */

// Recursively gives `worker` everything under dfd (which it takes), walking
// by descriptors with O_NOFOLLOW so that a symlink planted by a running task
// cannot redirect root's chmod/chown outside the tree.
static void rights_fd(int dfd, int depth)
{
    if (fchown(dfd, WIRE_WORKER_ID, WIRE_WORKER_ID) < 0 || fchmod(dfd, 0777) < 0)
        fprintf(stderr, "INGInious: cannot set rights: %s\n", strerror(errno));
    int dup_fd = depth < 64 ? fcntl(dfd, F_DUPFD_CLOEXEC, 0) : -1;
    DIR *d = dup_fd >= 0 ? fdopendir(dup_fd) : NULL;
    for (struct dirent *e; d && (e = readdir(d));) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        int fd = openat(dfd, e->d_name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
        struct stat st;
        if (fd < 0) {
            // Symlinks (ELOOP) and sockets: change the owner of the entry itself only.
            fchownat(dfd, e->d_name, WIRE_WORKER_ID, WIRE_WORKER_ID, AT_SYMLINK_NOFOLLOW);
        } else if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
            rights_fd(fd, depth + 1);
            continue;
        } else if (fchown(fd, WIRE_WORKER_ID, WIRE_WORKER_ID) < 0 || fchmod(fd, 0777) < 0) {
            fprintf(stderr, "INGInious: cannot set rights on %s\n", e->d_name);
        }
        if (fd >= 0)
            close(fd);
    }
    if (d)
        closedir(d);
    else if (dup_fd >= 0)
        close(dup_fd);
    close(dfd);
}

static void set_rights(const char *abs)
{
    char path[PATH_MAX];
    int fd = open(P(abs, path), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd >= 0)
        rights_fd(fd, 0);
}

static int rm_tree(const char *path)
{
    struct stat st;
    if (lstat(path, &st) < 0)
        return errno == ENOENT ? 0 : -errno;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        for (struct dirent *e; d && (e = readdir(d));) {
            char sub[PATH_MAX];
            if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") &&
                !rt_path_join(sub, path, e->d_name))
                rm_tree(sub);
        }
        if (d)
            closedir(d);
    }
    return remove(path) < 0 ? -errno : 0;
}

// Uploaded files ({"filename", "value"} maps) go to __inputfile_<k>, their
// value replaced by the path; then the whole start message is saved as JSON.
static int write_input(struct rt_value *start, char *err, size_t errlen)
{
    char path[PATH_MAX], dir[PATH_MAX];
    int ret = rt_mkdirs(P(RT_INPUT_DIR, dir), 0755);
    struct rt_value *input = rt_map_get(start, "input");
    int k = 0;
    for (size_t i = 0; !ret && input && input->type == RT_MAP && i < input->u.map.n; i++) {
        struct rt_value *v = input->u.map.kv[i].val;
        struct rt_value *data = rt_map_get(v, "value");
        if (v->type != RT_MAP || v->u.map.n != 2 || !rt_map_get(v, "filename") || !data ||
            (data->type != RT_BIN && data->type != RT_STR))
            continue;
        char name[64], real[PATH_MAX];
        snprintf(name, sizeof(name), RT_INPUT_DIR "/__inputfile_%d", k++);
        ret = rt_write_file(P(name, real), data->u.str.p, data->u.str.n, 0644);
        rt_map_set(v, "value", rt_new_str(real));
    }
    struct buf json = {0};
    if (!ret)
        ret = rt_json_encode(start, &json);
    if (!ret)
        ret = rt_write_file(P(RT_INPUT_JSON, path), json.data, json.len, 0644);
    if (ret)
        snprintf(err, errlen, "Exception occured in container (cannot write the input: %s)",
                 ret == -EINVAL ? "binary value that is not an upload" : strerror(-ret));
    buf_deinit(&json);
    return ret;
}

// Appends (hosts) or replaces (resolv.conf) an /etc file with a newline plus
// the task's systemfiles version, then lets group worker edit it.
static int apply_systemfile(const char *name, bool append, char *err, size_t errlen)
{
    char dst_abs[64], dst[PATH_MAX];
    snprintf(dst_abs, sizeof(dst_abs), "/etc/%s", name);
    P(dst_abs, dst);
    int ret = rt_systemfile_copy(name, append, 0664);
    if (ret)
        snprintf(err, errlen, "Cannot read/use /task/systemfiles/%s", name);
    if (!ret && access(dst, F_OK) == 0 &&
        (chown(dst, 0, WIRE_WORKER_ID) < 0 || chmod(dst, 0664) < 0))
        fprintf(stderr, "INGInious: cannot hand %s to group worker\n", dst_abs);
    return ret;
}

static void free_argv(char **argv)
{
    for (char **a = argv; a && *a; a++)
        free(*a);
    free(argv);
}

// The command to run: run_cmd split on single spaces (upstream's rule),
// else the first existing run file. NULL when there is none.
static char **resolve_command(const char *run_cmd)
{
    static const char *const bases[] = {"/task/run", "/course/common/run", "/course/run"};
    static const char *const exts[][2] = {
        {"py", "/bin/inginious-ipython"}, {"py3", "/bin/inginious-ipython"}, {"sh", "/bin/sh"}};
    char **argv = NULL;
    if (run_cmd && *run_cmd) {
        size_t words = 2;
        for (const char *c = run_cmd; *c; c++)
            words += *c == ' ';
        argv = rt_xmalloc(words * sizeof(*argv));
        size_t n = 0;
        for (const char *w = run_cmd;; w = strchr(w, ' ') + 1) {
            const char *sp = strchr(w, ' ');
            argv[n] = strndup(w, sp ? (size_t)(sp - w) : strlen(w));
            if (!argv[n++])
                rt_oom(); // run_cmd is the agent's, from task.yaml: bookkeeping
            if (!sp)
                break;
        }
        argv[n] = NULL;
        return argv;
    }
    char path[PATH_MAX], cand[PATH_MAX];
    for (size_t i = 0; i < sizeof(bases) / sizeof(bases[0]); i++) {
        if (access(P(bases[i], path), F_OK) == 0) {
            argv = rt_xmalloc(2 * sizeof(*argv));
            argv[0] = rt_xstrdup(path);
            argv[1] = NULL;
            return argv;
        }
        for (size_t e = 0; e < sizeof(exts) / sizeof(exts[0]); e++) {
            int len = snprintf(cand, sizeof(cand), "%s.%s", path, exts[e][0]);
            if (len > 0 && len < (int)sizeof(cand) && access(cand, F_OK) == 0) {
                argv = rt_xmalloc(3 * sizeof(*argv));
                argv[0] = rt_xstrdup(exts[e][1]);
                argv[1] = rt_xstrdup(cand);
                argv[2] = NULL;
                return argv;
            }
        }
    }
    return NULL;
}

static int capture_file(void)
{
    char dir[PATH_MAX], tmpl[PATH_MAX];
    rt_mkdirs(P("/.__runner", dir), 0700);
    if (rt_path_join(tmpl, dir, "captureXXXXXX"))
        return -1;
    int fd = mkostemp(tmpl, O_CLOEXEC);
    if (fd >= 0)
        unlink(tmpl); // anonymous: only the runner and the task's fd 1/2 reach it
    return fd;
}

// In the forked child: become the task process, or report errno on `report`.
static _Noreturn void exec_task(struct runner *r, char **argv, int report)
{
    char task[PATH_MAX];
    int devnull = open("/dev/null", O_RDONLY);
    privdrop_reset_signals();
    int ok =
        devnull >= 0 && dup2(devnull, 0) == 0 && dup2(r->out_fd, 1) == 1 &&
        dup2(r->err_fd, 2) == 2 && chdir(P(WIRE_WORKER_HOME, task)) == 0 &&
        privdrop_prepare(WIRE_WORKER_ID, r->run_as_root, RT_NPROC_LIMIT, WIRE_WORKER_HOME) == 0;
    if (ok)
        execvp(argv[0], argv);
    int err = errno;
    ssize_t w = write(report, &err, sizeof(err));
    (void)w;
    _exit(127);
}

static void spawn_task(struct runner *r, char **argv)
{
    char path[PATH_MAX], common[PATH_MAX];
    int report[2];
    // The exec bit, as upstream adds it; never on the read-only common folder.
    struct stat st;
    const char *first = argv[0][0] == '/' ? argv[0] : NULL;
    if (!first && !rt_path_join(path, P("/task", common), argv[0]))
        first = path;
    if (first && stat(first, &st) == 0 && S_ISREG(st.st_mode) &&
        strncmp(first, P("/course/common", common), strlen(common)))
        chmod(first, st.st_mode | 0111);

    r->out_fd = capture_file();
    r->err_fd = capture_file();
    if (r->out_fd < 0 || r->err_fd < 0 || pipe2(report, O_CLOEXEC) < 0) {
        r->launch_failed = true;
        return;
    }
    pid_t pid = fork();
    if (pid == 0)
        exec_task(r, argv, report[1]);
    close(report[1]);
    int err = 0;
    ssize_t n;
    do
        n = read(report[0], &err, sizeof(err)); // returns 0 once exec succeeded
    while (n < 0 && errno == EINTR);
    close(report[0]);
    if (pid < 0 || n > 0) {
        fprintf(stderr, "INGInious: cannot run %s: %s\n", argv[0], strerror(pid < 0 ? errno : err));
        r->launch_failed = true;
        if (pid > 0)
            waitpid(pid, NULL, 0);
        return;
    }
    r->task_pid = pid;
}

/* ------------------------------------------------------------- the result */

static struct rt_value *captured(int fd)
{
    struct buf b = {0};
    char chunk[65536];
    ssize_t n;
    lseek(fd, 0, SEEK_SET);
    while ((n = read(fd, chunk, sizeof(chunk))) > 0)
        if (buf_add(&b, chunk, (size_t)n))
            break;
    struct rt_value *v = rt_new_str_utf8(b.data ? b.data : "", b.len);
    buf_deinit(&b);
    return v ? v : rt_new_str("");
}

static struct rt_value *collect_result(struct runner *r)
{
    char path[PATH_MAX];
    struct buf b = {0};
    struct rt_value *res = NULL;
    if (r->launch_failed)
        return crash("An error occured while running the grading script. It is possible that it "
                     "is non-executable or made a timeout");
    int rd = rt_read_file(P(RT_FEEDBACK_JSON, path), &b);
    bool empty = rd || !b.len;
    if (empty) {
        res = crash("No feedback was given !");
        rt_map_set(res, "problems", rt_new_map());
        rt_map_set(res, "tests", rt_new_map());
    } else if (rt_json_decode(b.data, b.len, &res)) {
        res = crash("Feedback file has been modified by user !");
    }
    buf_deinit(&b);
    if (r->debug && res->type == RT_MAP) {
        rt_map_set(res, "stdout", captured(r->out_fd));
        rt_map_set(res, "stderr", captured(r->err_fd));
    }
    struct buf tgz = {0}, b64 = {0};
    if (!empty && res->type == RT_MAP) {
        int ret = rt_archive_make(&tgz);
        if (ret)
            fprintf(stderr, "INGInious: cannot archive /archive: %s\n", strerror(-ret));
        else if (base64_encode(tgz.data, tgz.len, &b64))
            rt_oom();
        if (!ret)
            rt_map_set(res, "archive", rt_new_strn(b64.data ? b64.data : "", b64.len));
    }
    buf_deinit(&tgz);
    buf_deinit(&b64);
    set_rights("/task");
    return res;
}

static _Noreturn void finish(struct runner *r, struct rt_value *result)
{
    struct rt_value *m = rt_new_map();
    rt_map_set(m, "type", rt_new_str(WIRE_MSG_RESULT));
    rt_map_set(m, "result", result);
    int ret = send_agent(r, m);
    exit(ret ? 1 : 0);
}

/* ------------------------------------------------------- agent messages */

static void handle_start(struct runner *r, struct rt_value *start)
{
    char err[256] = "", path[PATH_MAX];
    const struct rt_value *debug = rt_map_get(start, "debug");
    const struct rt_value *run_cmd = rt_map_get(start, "run_cmd");
    r->started = true;
    r->debug = r->debug || truthy(debug);
    r->run_as_root = truthy(rt_map_get(start, "run_as_root"));
    if (debug && debug->type == RT_STR && !strcmp(debug->u.str.p, "ssh"))
        finish(r, crash("[SSH Debug] This environment has no SSH server: debugging over SSH is "
                        "not available."));
    int ret = write_input(start, err, sizeof(err));
    if (!ret) {
        const char *dirs[] = {RT_OUTPUT_DIR, RT_ARCHIVE_DIR, "/task"};
        for (size_t i = 0; !ret && i < 3; i++)
            ret = rt_mkdirs(P(dirs[i], path), 0777);
        if (!ret)
            ret = rt_write_file(P(RT_FEEDBACK_JSON, path), "", 0, 0666);
        if (ret)
            snprintf(err, sizeof(err), "Exception occured in container (%s)", strerror(-ret));
    }
    if (!ret) {
        rm_tree(P("/task/.ssh", path));
        const char *trees[] = {"/tmp", "/task", RT_OUTPUT_DIR, RT_ARCHIVE_DIR};
        for (size_t i = 0; i < 4; i++)
            set_rights(trees[i]);
        if (truthy(rt_map_get(start, "shared_kernel")))
            rt_write_file(P(RT_INPUT_DIR "/__shared_kernel", path), "", 0, 0644);
        ret = apply_systemfile("hosts", true, err, sizeof(err));
        if (!ret)
            ret = apply_systemfile("resolv.conf", false, err, sizeof(err));
    }
    if (ret)
        finish(r, crash(err));
    char **argv = resolve_command(run_cmd && run_cmd->type == RT_STR ? run_cmd->u.str.p : NULL);
    if (!argv)
        finish(r, crash("'/task/run' could not be found"));
    spawn_task(r, argv);
    free_argv(argv);
    if (r->launch_failed)
        finish(r, collect_result(r));
}

static void handle_agent(struct runner *r, struct rt_value *msg)
{
    const char *type = rt_map_str(msg, "type");
    if (!type)
        return;
    if (!strcmp(type, WIRE_MSG_START) && !r->started) {
        handle_start(r, msg);
    } else if (!strcmp(type, WIRE_MSG_RUN_STUDENT_STARTED) ||
               !strcmp(type, WIRE_MSG_RUN_STUDENT_RETVAL)) {
        int i = find_client(r, rt_map_str(msg, "socket_id"));
        if (i < 0)
            return; // the requester is gone
        int ret = rt_frame_write(r->clients[i].fd, msg);
        if (ret || !strcmp(type, WIRE_MSG_RUN_STUDENT_RETVAL))
            client_close(r, i);
    }
    // Anything else (v0.9.x relay messages, future types) is ignored.
}

static void agent_readable(struct runner *r)
{
    char chunk[65536];
    ssize_t n = read(r->agent_in, chunk, sizeof(chunk));
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return;
    if (n <= 0) {
        r->stdin_open = false;
        if (!r->started) {
            fputs("INGInious: stdin closed before the start message\n", stderr);
            exit(1);
        }
        return; // keep running: the task can still finish and report
    }
    msg_framer_feed(&r->in, chunk, (size_t)n); // the last next() said NEED_MORE
    for (;;) {
        struct rt_value *msg = NULL;
        int got = rt_frame_next(&r->in, &msg);
        if (got < 0) {
            fputs(got == -ENOMEM ? "INGInious: out of memory reading stdin\n"
                                 : "INGInious: protocol error on stdin\n",
                  stderr);
            exit(1);
        }
        if (!got)
            break;
        handle_agent(r, msg);
        rt_value_free(msg);
    }
}

static void reap(struct runner *r)
{
    char drain[64];
    while (read(g_sigpipe[0], drain, sizeof(drain)) > 0)
        ;
    int status;
    pid_t pid;
    // PID 1 of the container: every orphan ends up here and must be reaped.
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
        if (pid == r->task_pid)
            r->task_done = true;
}

int rt_cmd_runner(int argc, char **argv)
{
    struct runner r = {.stdin_open = true, .out_fd = -1, .err_fd = -1};
    msg_framer_init(&r.in, RT_FRAME_MAX);
    for (int i = 1; i < argc; i++)
        r.debug = r.debug || !strcmp(argv[i], "--debug");
    r.agent_in = fcntl(0, F_DUPFD_CLOEXEC, 3);
    r.agent_out = fcntl(1, F_DUPFD_CLOEXEC, 3);
    int devnull = open("/dev/null", O_RDWR);
    if (r.agent_in < 0 || r.agent_out < 0 || devnull < 0 || dup2(devnull, 0) < 0 ||
        dup2(2, 1) < 0) {
        perror("INGInious: cannot set up stdio");
        return 1;
    }
    close(devnull);
    struct sigaction sa = {.sa_handler = on_sigchld, .sa_flags = SA_RESTART | SA_NOCLDSTOP};
    sigemptyset(&sa.sa_mask);
    if (pipe2(g_sigpipe, O_CLOEXEC | O_NONBLOCK) < 0 || sigaction(SIGCHLD, &sa, NULL) < 0) {
        perror("INGInious: cannot watch children");
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    r.listen_fd = listen_main_sock();
    if (r.listen_fd < 0)
        fprintf(stderr, "INGInious: no IPC socket, run_student unavailable: %s\n",
                strerror(-r.listen_fd));

    for (;;) {
        struct pollfd p[3 + MAX_CLIENTS];
        int np = 0, ci = 3;
        p[np++] = (struct pollfd){.fd = g_sigpipe[0], .events = POLLIN};
        p[np++] = (struct pollfd){.fd = r.stdin_open ? r.agent_in : -1, .events = POLLIN};
        p[np++] = (struct pollfd){.fd = r.listen_fd, .events = POLLIN};
        for (int i = 0; i < r.nclients; i++)
            p[np++] = (struct pollfd){.fd = r.clients[i].fd, .events = POLLIN};
        if (poll(p, (nfds_t)np, -1) < 0) {
            if (errno == EINTR)
                continue;
            perror("INGInious: poll");
            return 1;
        }
        if (p[0].revents)
            reap(&r);
        if (r.task_done)
            finish(&r, collect_result(&r));
        if (p[1].revents)
            agent_readable(&r);
        if (p[2].revents)
            accept_client(&r);
        // Walk clients backwards: client_close moves the last one into the gap.
        for (int i = np - 1; i >= ci; i--)
            if (p[i].revents && i - ci < r.nclients && r.clients[i - ci].fd == p[i].fd)
                client_readable(&r, i - ci);
    }
}
