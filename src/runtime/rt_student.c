// Student containers, both ends (§9.2/§9.3 of the container protocol):
// `run_student` in the grading container asks our runner for a container
// over /sockets/main.sock (4-byte length + msgpack frames, one connection per
// request), then lends its stdin/stdout/stderr to `_run_student_intern`, the
// student container's entry, over /sockets/<socket_id>.sock: byte 'H', byte
// 'S' + SCM_RIGHTS(3 fds), one bare msgpack run_student_command map, then
// 3-digit signal numbers until "---".
#include "rt_common.h"
#include "rt_internal.h"

#include "common/privdrop.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

static int g_sigpipe[2] = {-1, -1};

// Catchable signals relayed to the student process; stop signals are left
// alone so that run_student itself stays controllable.
static const int g_forwarded[] = {SIGHUP,  SIGINT,  SIGQUIT, SIGABRT,
                                  SIGUSR1, SIGUSR2, SIGALRM, SIGTERM};

static void on_signal(int sig)
{
    int saved = errno;
    unsigned char b = (unsigned char)sig;
    ssize_t r = write(g_sigpipe[1], &b, 1);
    (void)r;
    errno = saved;
}

static int watch_signals(const int *sigs, size_t n)
{
    struct sigaction sa = {.sa_handler = on_signal, .sa_flags = SA_RESTART | SA_NOCLDSTOP};
    sigemptyset(&sa.sa_mask);
    if (pipe2(g_sigpipe, O_CLOEXEC | O_NONBLOCK) < 0)
        return -errno;
    for (size_t i = 0; i < n; i++)
        if (sigaction(sigs[i], &sa, NULL) < 0)
            return -errno;
    return 0;
}

static int unix_addr(struct sockaddr_un *sa, const char *path)
{
    memset(sa, 0, sizeof(*sa));
    sa->sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(sa->sun_path))
        return -ENAMETOOLONG;
    strcpy(sa->sun_path, path);
    return 0;
}

// Blocking read of exactly one frame from fd (run_student's replies).
static int read_frame(int fd, struct rt_value **out)
{
    struct msg_framer fr;
    msg_framer_init(&fr, RT_FRAME_MAX);
    int got = 0;
    while (!got) {
        char chunk[512];
        ssize_t n = read(fd, chunk, sizeof(chunk));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            got = n < 0 ? -errno : -EPIPE;
            break;
        }
        msg_framer_feed(&fr, chunk, (size_t)n); // the last next() said NEED_MORE
        got = rt_frame_next(&fr, out);
    }
    // A reply frame is the last thing on its connection until the next poll:
    // anything buffered beyond it would be a protocol error, so drop it.
    msg_framer_deinit(&fr);
    return got < 0 ? got : 0;
}

struct student_req {
    const char *container, *teardown;
    int64_t time, hard_time, memory;
    bool share_network, run_as_root;
    char *command;
};

int rt_send_fds(int conn, const int fds[3])
{
    char byte = 'S';
    struct iovec iov = {.iov_base = &byte, .iov_len = 1};
    union {
        char buf[CMSG_SPACE(3 * sizeof(int))];
        struct cmsghdr align;
    } ctl;
    memset(&ctl, 0, sizeof(ctl));
    struct msghdr mh = {.msg_iov = &iov,
                        .msg_iovlen = 1,
                        .msg_control = ctl.buf,
                        .msg_controllen = sizeof(ctl.buf)};
    struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(3 * sizeof(int));
    memcpy(CMSG_DATA(c), fds, 3 * sizeof(int));
    return sendmsg(conn, &mh, MSG_NOSIGNAL) == 1 ? 0 : -errno;
}

// After 'H': the three fds, then the command map (no length prefix).
static int hand_over(int conn, const struct student_req *q, const char *container_id)
{
    int fds[3], ret = 0;
    char cwd[PATH_MAX];
    for (int i = 0; i < 3; i++) {
        // A closed stdio is replaced by /dev/null, readable and writable
        // (upstream lends it read-only, so the student's writes fail).
        fds[i] = fcntl(i, F_GETFD) >= 0 ? i : open("/dev/null", O_RDWR | O_CLOEXEC);
    }
    ret = rt_send_fds(conn, fds);
    for (int i = 0; i < 3; i++)
        if (fds[i] > 2)
            close(fds[i]);
    struct rt_value *m = rt_new_map();
    rt_map_set(m, "type", rt_new_str(WIRE_MSG_RUN_STUDENT_COMMAND));
    rt_map_set(m, "student_container_id", rt_new_str(container_id ? container_id : ""));
    rt_map_set(m, "command", rt_new_str(q->command));
    rt_map_set(m, "teardown_script", rt_new_str(q->teardown ? q->teardown : ""));
    rt_map_set(m, "working_dir", rt_new_str(getcwd(cwd, sizeof(cwd)) ? cwd : "/task"));
    rt_map_set(m, "ssh", rt_new_bool(false));
    rt_map_set(m, "user", rt_new_str(q->run_as_root ? "root" : "worker"));
    struct buf b = {0};
    if (!ret)
        ret = rt_msgpack_pack(m, &b);
    if (!ret && send(conn, b.data, b.len, MSG_NOSIGNAL) != (ssize_t)b.len)
        ret = -EPIPE;
    buf_deinit(&b);
    rt_value_free(m);
    return ret;
}

static struct rt_value *request_msg(const struct student_req *q, const char *socket_id)
{
    struct rt_value *m = rt_new_map();
    rt_map_set(m, "type", rt_new_str(WIRE_MSG_RUN_STUDENT));
    rt_map_set(m, "environment", q->container ? rt_new_str(q->container) : rt_new_nil());
    rt_map_set(m, "time_limit", rt_new_int(q->time));
    rt_map_set(m, "hard_time_limit", rt_new_int(q->hard_time));
    rt_map_set(m, "memory_limit", rt_new_int(q->memory));
    rt_map_set(m, "share_network", rt_new_bool(q->share_network));
    rt_map_set(m, "socket_id", rt_new_str(socket_id));
    rt_map_set(m, "ssh", rt_new_bool(false));
    rt_map_set(m, "run_as_root", rt_new_bool(q->run_as_root));
    return m;
}

enum stage { WAIT_STARTED, WAIT_INTERN, WAIT_HELLO, RUNNING };

// The conversation; returns the student's retval or WIRE_RET_ERROR.
static int student_session(const struct student_req *q, int main_fd, int listen_fd)
{
    enum stage st = WAIT_STARTED;
    int conn = -1, retval = WIRE_RET_ERROR;
    char *container_id = NULL;
    for (bool done = false; !done;) {
        struct pollfd p[3] = {{.fd = main_fd, .events = POLLIN},
                              {.fd = st == WAIT_INTERN ? listen_fd : conn, .events = POLLIN},
                              {.fd = st == RUNNING ? g_sigpipe[0] : -1, .events = POLLIN}};
        if (st == WAIT_STARTED)
            p[1].fd = -1;
        if (poll(p, 3, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (p[0].revents) {
            // Upstream waits in accept() and hangs if the container then fails
            // to start; here an early retval always ends the wait.
            struct rt_value *msg = NULL;
            const char *type = NULL;
            if (read_frame(main_fd, &msg) == 0)
                type = rt_map_str(msg, "type");
            const struct rt_value *rv = rt_map_get(msg, "retval");
            if (type && !strcmp(type, WIRE_MSG_RUN_STUDENT_STARTED) && st == WAIT_STARTED) {
                const char *cid = rt_map_str(msg, "container_id");
                container_id = rt_xstrdup(cid ? cid : "");
                st = WAIT_INTERN;
            } else {
                if (type && !strcmp(type, WIRE_MSG_RUN_STUDENT_RETVAL) && st != WAIT_STARTED &&
                    rv && rv->type == RT_INT)
                    retval = (int)rv->u.i;
                done = true;
            }
            rt_value_free(msg);
            continue;
        }
        if (st == WAIT_INTERN && p[1].revents) {
            conn = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
            st = conn >= 0 ? WAIT_HELLO : st;
        } else if (st == WAIT_HELLO && p[1].revents) {
            char hello = 0;
            if (read(conn, &hello, 1) != 1 || hello != 'H' || hand_over(conn, q, container_id)) {
                fputs("run_student: handshake with the student container failed\n", stderr);
                done = true;
            }
            st = RUNNING;
        } else if (st == RUNNING && p[1].revents) {
            char junk[64];
            if (read(conn, junk, sizeof(junk)) <= 0) {
                close(conn); // the intern is gone; its retval comes from the agent
                conn = -1;
            }
        }
        if (st == RUNNING && p[2].revents) {
            unsigned char sig;
            while (read(g_sigpipe[0], &sig, 1) == 1) {
                char digits[8];
                snprintf(digits, sizeof(digits), "%03u", (unsigned)sig);
                if (conn >= 0)
                    send(conn, digits, 3, MSG_NOSIGNAL);
            }
        }
    }
    if (conn >= 0) {
        send(conn, "---", 3, MSG_NOSIGNAL);
        close(conn);
    }
    free(container_id);
    return retval;
}

static int run_student(const struct student_req *q)
{
    char dir[PATH_MAX], placeholder[PATH_MAX], sock_path[PATH_MAX + 8], main_path[PATH_MAX];
    struct sockaddr_un sa;
    int listen_fd = -1, main_fd = -1, ret = 0, retval = WIRE_RET_ERROR;
    ret = rt_path_join(placeholder, rt_path("/sockets", dir), "pXXXXXX");
    int ph = ret ? -1 : mkostemp(placeholder, O_CLOEXEC);
    if (ph < 0) {
        fprintf(stderr, "run_student: cannot create a socket id in %s: %s\n", dir, strerror(errno));
        return WIRE_RET_ERROR;
    }
    close(ph);
    const char *socket_id = strrchr(placeholder, '/') + 1;
    snprintf(sock_path, sizeof(sock_path), "%s.sock", placeholder);
    // Bound before asking: the agent bind-mounts exactly this host file.
    unlink(sock_path);
    ret = unix_addr(&sa, sock_path);
    listen_fd = ret ? -1 : socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (listen_fd < 0 || bind(listen_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
        listen(listen_fd, 1) < 0)
        ret = ret ? ret : -errno;
    if (!ret)
        ret = unix_addr(&sa, rt_path(RT_MAIN_SOCK, main_path));
    main_fd = ret ? -1 : socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (!ret && (main_fd < 0 || connect(main_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0))
        ret = -errno;
    if (!ret) {
        struct rt_value *req = request_msg(q, socket_id);
        ret = rt_frame_write(main_fd, req);
        rt_value_free(req);
    }
    if (!ret)
        ret = watch_signals(g_forwarded, sizeof(g_forwarded) / sizeof(g_forwarded[0]));
    if (!ret)
        retval = student_session(q, main_fd, listen_fd);
    else
        fprintf(stderr, "run_student: cannot reach the grading runner: %s\n", strerror(-ret));
    if (listen_fd >= 0)
        close(listen_fd);
    if (main_fd >= 0)
        close(main_fd);
    unlink(sock_path);
    unlink(placeholder);
    return retval;
}

static bool parse_limit(const char *s, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = s ? strtoll(s, &end, 10) : 0;
    if (s && (end == s || *end || errno))
        return false;
    *out = v;
    return true;
}

int rt_cmd_run_student(int argc, char **argv)
{
    const char *usage = "[--container ENV] [--time S] [--hard-time S] [--memory MB] "
                        "[--share-network] [--run-as-root] [--teardown-script CMD] CMD [ARG...]\n"
                        "  returns the command's exit code; 252: out of memory, 253: time out, "
                        "254: error";
    struct rt_opt o[] = {{0, "container", true, false, NULL},
                         {0, "time", true, false, NULL},
                         {0, "hard-time", true, false, NULL},
                         {0, "memory", true, false, NULL},
                         {0, "share-network", false, false, NULL},
                         {0, "run-as-root", false, false, NULL},
                         {0, "teardown-script", true, false, NULL},
                         {'h', "help", false, false, NULL},
                         {0}};
    char *pos[argc];
    int npos;
    struct student_req q = {.container = NULL};
    if (rt_args_parse(o, argc, argv, true, pos, &npos) || o[7].set ||
        !parse_limit(o[1].value, &q.time) || !parse_limit(o[2].value, &q.hard_time) ||
        !parse_limit(o[3].value, &q.memory))
        return rt_usage(argv[0], usage);
    q.container = o[0].value;
    q.share_network = o[4].set;
    q.run_as_root = o[5].set;
    q.teardown = o[6].value;
    // Words are joined with single spaces, as upstream does; the intern
    // splits them again with shell-like rules.
    struct buf cmd = {0};
    for (int i = 0; i < npos; i++) {
        if (i)
            rt_buf_puts(&cmd, " ");
        rt_buf_puts(&cmd, pos[i]);
    }
    q.command = cmd.data ? cmd.data : "";
    int retval = run_student(&q);
    buf_deinit(&cmd);
    return retval & 0xff; // -1 (agent lost the exit code) becomes 255 as upstream
}

/* ------------------------------------------------------------ the intern */

// The command is bounded by RT_INTERN_CMD_MAX: its copies are bookkeeping.
static void add_or_die(struct buf *b, const void *p, size_t n)
{
    if (buf_add(b, p, n))
        rt_oom();
}

void rt_words_free(char **w)
{
    for (char **p = w; p && *p; p++)
        free(*p);
    free(w);
}

// Appends the word being built (and NUL-terminates it); the array always
// keeps one free slot after the last word for the terminating NULL.
static void push_word(char ***words, size_t *n, size_t *cap, struct buf *w)
{
    if (*n + 2 > *cap) {
        *cap *= 2;
        char **g = realloc(*words, *cap * sizeof(**words));
        if (!g)
            rt_oom();
        *words = g;
    }
    add_or_die(w, "", 0);
    (*words)[(*n)++] = w->data;
    (*words)[*n] = NULL;
    *w = (struct buf){0};
}

char **rt_shlex_split(const char *s)
{
    size_t n = 0, cap = 8;
    char **words = rt_xmalloc(cap * sizeof(*words));
    struct buf w = {0};
    bool in_word = false, bad = false;
    words[0] = NULL;
    while (*s && !bad) {
        char c = *s++;
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
            if (in_word)
                push_word(&words, &n, &cap, &w);
            in_word = false;
            continue;
        }
        in_word = true;
        if (c == '\'') {
            const char *end = strchr(s, '\'');
            bad = !end;
            if (end)
                add_or_die(&w, s, (size_t)(end - s));
            s = end ? end + 1 : s;
        } else if (c == '"') {
            for (; *s && *s != '"'; s++) {
                if (*s == '\\' && (s[1] == '"' || s[1] == '\\'))
                    s++;
                add_or_die(&w, s, 1);
            }
            bad = !*s;
            s += !bad;
        } else if (c == '\\') {
            bad = !*s;
            if (*s)
                add_or_die(&w, s++, 1);
        } else {
            add_or_die(&w, &c, 1);
        }
    }
    if (in_word && !bad)
        push_word(&words, &n, &cap, &w);
    buf_deinit(&w);
    if (bad) {
        rt_words_free(words);
        return NULL;
    }
    return words;
}

static int recv_fds(int conn, int fds[3])
{
    char byte = 0;
    struct iovec iov = {.iov_base = &byte, .iov_len = 1};
    union {
        char buf[CMSG_SPACE(3 * sizeof(int))];
        struct cmsghdr align;
    } ctl;
    struct msghdr mh = {.msg_iov = &iov,
                        .msg_iovlen = 1,
                        .msg_control = ctl.buf,
                        .msg_controllen = sizeof(ctl.buf)};
    int got = 0;
    if (recvmsg(conn, &mh, MSG_CMSG_CLOEXEC) != 1)
        return -EPROTO;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < k; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
            if (got < 3)
                fds[got++] = fd;
            else
                close(fd);
        }
    }
    if (byte != 'S' || got != 3) {
        for (int i = 0; i < got; i++)
            close(fds[i]);
        return -EPROTO;
    }
    return 0;
}

// The same stream carries signal digits right after the map, so nothing
// beyond its last byte may be consumed: bytes are peeked at, scanned for the
// map's end, and only those that belong to it are then read.
int rt_intern_read_command(int conn, struct rt_value **out)
{
    struct buf b = {0};
    struct rt_msgpack_scan scan = RT_MSGPACK_SCAN_INIT;
    char chunk[65536];
    int ret = -EAGAIN;
    while (ret == -EAGAIN) {
        size_t room = RT_INTERN_CMD_MAX - b.len, old_len = b.len;
        ssize_t n =
            room ? recv(conn, chunk, room < sizeof(chunk) ? room : sizeof(chunk), MSG_PEEK) : 0;
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            ret = room ? -EPROTO : -EMSGSIZE;
            break;
        }
        ret = buf_add(&b, chunk, (size_t)n);
        if (!ret)
            ret = rt_msgpack_scan(b.data, b.len, &scan);
        if (ret && ret != -EAGAIN)
            break;
        // Keep the peeked bytes that belong to the map, then consume exactly them.
        if (!ret) {
            b.len = scan.pos;
            b.data[b.len] = '\0';
        }
        size_t take = b.len - old_len;
        while (take) {
            ssize_t r = recv(conn, chunk, take, 0);
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0) {
                ret = -EPROTO;
                break;
            }
            take -= (size_t)r;
        }
    }
    size_t used = 0;
    if (!ret)
        ret = rt_msgpack_unpack(b.data, b.len, &used, out);
    if (!ret && used != b.len) {
        rt_value_free(*out);
        *out = NULL;
        ret = -EINVAL;
    }
    buf_deinit(&b);
    return ret;
}

static int copy_systemfiles(void)
{
    int ret = rt_systemfile_copy("hosts", true, 0644);
    return ret ? ret : rt_systemfile_copy("resolv.conf", false, 0644);
}

// Forks words[] with the given stdio as worker (or root); returns the pid.
static pid_t spawn_as(char **words, const int stdio[3], bool as_root, int errfd)
{
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    privdrop_reset_signals();
    int ok = 1;
    for (int i = 0; ok && i < 3; i++)
        ok = dup2(stdio[i], i) == i;
    if (ok)
        ok = privdrop_prepare(WIRE_WORKER_ID, as_root, RT_NPROC_LIMIT, WIRE_WORKER_HOME) == 0;
    if (ok)
        execvp(words[0], words);
    dprintf(ok ? 2 : errfd, "run_student: cannot run %s: %s\n", words[0], strerror(errno));
    _exit(127);
}

static int wait_status_code(int status)
{
    return WIFEXITED(status) ? WEXITSTATUS(status) : 256 - WTERMSIG(status);
}

static void relay_signal_digits(int conn, pid_t child, char *pending, size_t *have, bool *open_)
{
    ssize_t n = read(conn, pending + *have, 3 - *have);
    if (n < 0 && errno == EINTR)
        return;
    if (n <= 0) {
        *open_ = false; // EOF: the parent is gone, stop relaying
        return;
    }
    *have += (size_t)n;
    if (*have < 3)
        return;
    *have = 0;
    if (!memcmp(pending, "---", 3)) {
        *open_ = false;
        return;
    }
    int sig = (pending[0] - '0') * 100 + (pending[1] - '0') * 10 + (pending[2] - '0');
    if (sig > 0 && sig < 65)
        kill(child, sig);
}

// /task/student/scripts can be renamed or replaced at any moment by the
// grading container and by whatever the student left running: root changes
// its mode only through a descriptor opened without following a symlink
// (the directory above it is a mount point, which cannot be replaced).
static void scripts_chmod(mode_t mode)
{
    char path[PATH_MAX];
    int fd = open(rt_path("/task/student/scripts", path),
                  O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return;
    if (fchmod(fd, mode) < 0)
        fprintf(stderr, "_run_student_intern: cannot set the mode of %s: %s\n", path,
                strerror(errno));
    close(fd);
}

static int intern_run(int conn, const int fds[3], const struct rt_value *cmd)
{
    const char *user = rt_map_str(cmd, "user");
    const char *command = rt_map_str(cmd, "command");
    const char *wd = rt_map_str(cmd, "working_dir");
    const char *teardown = rt_map_str(cmd, "teardown_script");
    if (user && !strcmp(user, "root"))
        return WIRE_RET_ROOT_REFUSED;
    if (copy_systemfiles()) {
        dprintf(fds[2], "run_student: cannot apply the task's systemfiles\n");
        return WIRE_RET_ERROR;
    }
    if (wd && *wd && chdir(wd) < 0) {
        dprintf(fds[2], "run_student: no working directory %s in the student container\n", wd);
        return 1;
    }
    char **words =
        rt_shlex_split(command && *command ? command : "echo 'run_student: no command was given'");
    if (!words || !words[0]) {
        dprintf(fds[2], "run_student: cannot split the command (unbalanced quotes?)\n");
        rt_words_free(words);
        return WIRE_RET_ERROR;
    }
    static const int sigchld[] = {SIGCHLD};
    int ret = watch_signals(sigchld, 1);
    pid_t child = ret ? -1 : spawn_as(words, fds, false, fds[2]);
    rt_words_free(words);
    if (child < 0)
        return WIRE_RET_ERROR;
    int retval = WIRE_RET_ERROR, status;
    char pending[3];
    size_t have = 0;
    bool relay = true, running = true;
    while (running) {
        struct pollfd p[2] = {{.fd = g_sigpipe[0], .events = POLLIN},
                              {.fd = relay ? conn : -1, .events = POLLIN}};
        if (poll(p, 2, -1) < 0 && errno != EINTR)
            break;
        if (p[1].revents)
            relay_signal_digits(conn, child, pending, &have, &relay);
        char drain[64];
        while (read(g_sigpipe[0], drain, sizeof(drain)) > 0)
            ;
        pid_t pid;
        // PID 1 of the student container: reap every orphan too.
        while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
            if (pid == child) {
                retval = wait_status_code(status);
                running = false;
            }
        }
    }
    // Student scripts stay out of reach once the student process is done.
    scripts_chmod(0);
    if (teardown && *teardown) {
        char **tw = rt_shlex_split(teardown);
        int own[3] = {open("/dev/null", O_RDWR | O_CLOEXEC), 1, 2};
        scripts_chmod(0777); // upstream writes decimal 777 (mode 01411) here
        pid_t t = tw && tw[0] && own[0] >= 0 ? spawn_as(tw, own, false, 2) : -1;
        while (t > 0 && waitpid(t, &status, 0) < 0 && errno == EINTR)
            ;
        rt_words_free(tw);
        if (own[0] >= 0)
            close(own[0]);
    }
    return retval;
}

/*
 * The parent's socket. A container started the usual way has it bound at
 * /__parent.sock when it starts. One proctord started ahead of the request
 * (README "Warm pool": the image carries org.proctor.runtime) has instead an
 * empty, read-only /__parent.d, where the agent links the requester's socket
 * as parent.sock once the request comes: wait for that entry (inotify, no
 * polling). Writes the path to use into buf.
 */
static int parent_socket(char *buf)
{
    char dir[PATH_MAX];
    struct stat st;
    rt_path("/__parent.sock", buf);
    if (lstat(buf, &st) == 0 || errno != ENOENT)
        return 0;
    rt_path("/__parent.d", dir);
    if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode))
        return 0; /* neither: connect() says what is wrong */
    if (rt_path_join(buf, dir, "parent.sock"))
        return -ENAMETOOLONG;
    int in = inotify_init1(IN_CLOEXEC);
    if (in < 0 || inotify_add_watch(in, dir, IN_CREATE | IN_MOVED_TO | IN_ATTRIB) < 0) {
        int err = -errno;
        if (in >= 0)
            close(in);
        return err;
    }
    // Checked after the watch is set: a link made in between is not missed.
    int ret = 0;
    char ev[sizeof(struct inotify_event) + NAME_MAX + 1]
        __attribute__((aligned(__alignof__(struct inotify_event))));
    while (lstat(buf, &st) < 0) {
        if (errno != ENOENT) {
            ret = -errno;
            break;
        }
        if (read(in, ev, sizeof(ev)) < 0 && errno != EINTR) {
            ret = -errno;
            break;
        }
    }
    close(in);
    return ret;
}

int rt_cmd_intern(int argc, char **argv)
{
    (void)argc, (void)argv; // v0.9.x passes <runtime> <parent envtype>: unused
    char path[PATH_MAX];
    struct sockaddr_un sa;
    struct rt_value *cmd = NULL;
    int fds[3] = {-1, -1, -1}, retval = WIRE_RET_ERROR;
    signal(SIGPIPE, SIG_IGN);
    int ret = parent_socket(path);
    if (!ret)
        ret = unix_addr(&sa, path);
    int conn = ret ? -1 : socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (!ret && (conn < 0 || connect(conn, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
                 send(conn, "H", 1, MSG_NOSIGNAL) != 1))
        ret = -errno;
    if (!ret)
        ret = recv_fds(conn, fds);
    if (!ret)
        ret = rt_intern_read_command(conn, &cmd);
    const char *type = ret ? NULL : rt_map_str(cmd, "type");
    if (!ret && (!type || strcmp(type, WIRE_MSG_RUN_STUDENT_COMMAND)))
        ret = -EPROTO;
    if (ret)
        fprintf(stderr, "_run_student_intern: handshake failed: %s\n", strerror(-ret));
    else
        retval = intern_run(conn, fds, cmd);
    rt_value_free(cmd);
    for (int i = 0; i < 3; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    if (conn >= 0)
        close(conn);
    return retval;
}
