// Unit tests for the grading-container runner's helpers (rt_runner.c) that
// handle what the task leaves behind: the archive's argument list must name
// every entry of /archive exactly once, however many there are, and so must
// the archive itself. Then the runner's main loop, in a child process, facing
// IPC clients (run_student, i.e. code in the grading container).

#include "rt_common.h"
#include "rt_internal.h"
#include "rt_value.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
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

#include "rt_test.h"

#define NFILES 1500

// Long names, so that the directory stream needs many getdents batches.
static void file_name(char *dst, size_t size, int i)
{
    snprintf(dst, size, "%sentry-%04d-with-a-rather-long-name-to-fill-the-buffer",
             i % 100 == 7 ? "-" : "", i);
}

static void test_archive_argv_many_files(void)
{
    char dir[PATH_MAX], path[PATH_MAX], name[128];
    static unsigned char seen[NFILES];
    REQUIRE(!rt_path_join(dir, g_root, "many"), "path too long");
    REQUIRE(mkdir(dir, 0755) == 0, "mkdir %s: %s", dir, strerror(errno));
    for (int i = 0; i < NFILES; i++) {
        file_name(name, sizeof(name), i);
        rt_path_join(path, dir, name);
        REQUIRE(rt_write_file(path, "x", 1, 0644) == 0, "cannot create %s", path);
    }
    char **argv = NULL;
    REQUIRE(rt_archive_argv(dir, &argv) == 0 && argv, "rt_archive_argv failed");
    static const char *const head[] = {"tar", "-czf", "-", "--"};
    size_t n = 0;
    bool ok = true;
    for (; ok && n < 4; n++)
        ok = argv[n] && !strcmp(argv[n], head[n]);
    size_t bad = 0, dups = 0;
    for (; ok && argv[n]; n++) {
        int i = -1;
        if (sscanf(argv[n] + (argv[n][0] == '-'), "entry-%d-", &i) != 1 || i < 0 || i >= NFILES) {
            bad++;
            continue;
        }
        file_name(name, sizeof(name), i);
        if (strcmp(argv[n], name))
            bad++;
        else if (seen[i]++)
            dups++;
    }
    rt_words_free(argv);
    REQUIRE(ok, "the list does not start with tar -czf - --");
    REQUIRE(bad == 0 && dups == 0, "%zu wrong and %zu repeated names", bad, dups);
    REQUIRE(n == 4 + NFILES, "%zu names for %d files", n - 4, NFILES);
    for (int i = 0; i < NFILES; i++)
        REQUIRE(seen[i] == 1, "entry %d missing", i);
}

static void test_archive_argv_empty(void)
{
    char dir[PATH_MAX];
    const char *dirs[] = {"empty", "does-not-exist"};
    for (size_t k = 0; k < 2; k++) {
        REQUIRE(!rt_path_join(dir, g_root, dirs[k]), "path too long");
        if (k == 0)
            REQUIRE(mkdir(dir, 0755) == 0, "mkdir %s: %s", dir, strerror(errno));
        char **argv = NULL;
        REQUIRE(rt_archive_argv(dir, &argv) == 0 && argv, "rt_archive_argv failed");
        bool ok = argv[4] && !strcmp(argv[4], ".") && !argv[5];
        rt_words_free(argv);
        REQUIRE(ok, "%s: expected a lone \".\"", dirs[k]);
    }
}

// The whole archive, listed back by tar: every file exactly once. worker (the
// uid tar runs as) must be able to read the scratch tree.
static void test_archive_make(void)
{
    char dir[PATH_MAX], path[PATH_MAX], name[128], list_cmd[PATH_MAX + 32];
    static unsigned char seen[NFILES];
    REQUIRE(chmod(g_root, 0755) == 0, "chmod %s: %s", g_root, strerror(errno));
    REQUIRE(rt_mkdirs(rt_path(RT_ARCHIVE_DIR, dir), 0755) == 0, "mkdir %s", dir);
    for (int i = 0; i < NFILES; i++) {
        file_name(name, sizeof(name), i);
        rt_path_join(path, dir, name);
        REQUIRE(rt_write_file(path, "x", 1, 0644) == 0, "cannot create %s", path);
    }
    struct buf tgz = {0};
    int ret = rt_archive_make(&tgz);
    REQUIRE(ret == 0 && tgz.len > 0, "rt_archive_make: %s", strerror(-ret));
    rt_path_join(path, g_root, "out.tgz");
    ret = rt_write_file(path, tgz.data, tgz.len, 0644);
    buf_deinit(&tgz);
    REQUIRE(ret == 0, "cannot write %s", path);
    snprintf(list_cmd, sizeof(list_cmd), "tar -tzf '%s'", path);
    FILE *list = popen(list_cmd, "r");
    REQUIRE(list, "cannot run %s", list_cmd);
    size_t total = 0, bad = 0, dups = 0;
    while (fgets(name, sizeof(name), list)) {
        name[strcspn(name, "\n")] = '\0';
        total++;
        int i = -1;
        char want[128];
        if (sscanf(name + (name[0] == '-'), "entry-%d-", &i) != 1 || i < 0 || i >= NFILES) {
            bad++;
            continue;
        }
        file_name(want, sizeof(want), i);
        if (strcmp(name, want))
            bad++;
        else if (seen[i]++)
            dups++;
    }
    int status = pclose(list);
    REQUIRE(status == 0, "tar -t failed: %d", status);
    REQUIRE(bad == 0 && dups == 0 && total == NFILES, "%zu entries, %zu wrong, %zu repeated", total,
            bad, dups);
}

/* ------------------------------------------------ the runner, in-process */

struct runner_proc {
    pid_t pid;
    int to_stdin, from_stdout;
};

// Starts the runner with stdin and stdout on pipes, and returns once its IPC
// socket accepts connections: it chowns the socket right after listen(),
// which inotify reports as IN_ATTRIB.
static int runner_start(struct runner_proc *rp)
{
    char dir[PATH_MAX];
    int in[2], out[2];
    rt_mkdirs(rt_path("/sockets", dir), 0777);
    int ino = inotify_init1(IN_CLOEXEC);
    if (ino < 0 || inotify_add_watch(ino, dir, IN_ATTRIB) < 0 || pipe2(in, O_CLOEXEC) < 0 ||
        pipe2(out, O_CLOEXEC) < 0)
        return -1;
    rp->pid = fork();
    if (rp->pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        char *argv[] = {"INGInious", NULL};
        _exit(rt_cmd_runner(1, argv));
    }
    close(in[0]);
    close(out[1]);
    rp->to_stdin = in[1];
    rp->from_stdout = out[0];
    bool ready = false;
    while (!ready && rp->pid > 0) {
        union {
            char buf[4096];
            struct inotify_event align;
        } ev;
        ssize_t n = read(ino, ev.buf, sizeof(ev.buf));
        if (n <= 0)
            break;
        for (char *p = ev.buf; p < ev.buf + n;) {
            const struct inotify_event *e = (const struct inotify_event *)p;
            ready = ready || (e->len && !strcmp(e->name, "main.sock"));
            p += sizeof(*e) + e->len;
        }
    }
    close(ino);
    return ready ? 0 : -1;
}

static void runner_stop(struct runner_proc *rp)
{
    kill(rp->pid, SIGKILL);
    waitpid(rp->pid, NULL, 0);
    close(rp->to_stdin);
    close(rp->from_stdout);
}

static int ipc_connect(void)
{
    char path[PATH_MAX];
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", rt_path(RT_MAIN_SOCK, path));
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        close(fd);
        fd = -1;
    }
    return fd;
}

// A client announcing a 16 MiB frame (run_student's requests are a few
// hundred bytes) is cut off at once: the runner, root and PID 1, does not
// buffer it, so the client's write fails long before its end. A well-formed
// request on another connection is still relayed to the agent.
static void test_runner_ipc_frame_cap(void)
{
    struct runner_proc rp;
    REQUIRE(runner_start(&rp) == 0, "the runner did not start listening");
    int fd = ipc_connect();
    size_t len = 16u << 20, sent = 0;
    char *junk = rt_xmalloc(len);
    memset(junk, 'x', len);
    unsigned char head[4] = {(unsigned char)(len >> 24), (unsigned char)(len >> 16), 0, 0};
    bool cut = fd < 0 || send(fd, head, 4, MSG_NOSIGNAL) != 4;
    while (!cut && sent < len) {
        ssize_t w = send(fd, junk + sent, len - sent, MSG_NOSIGNAL);
        cut = w <= 0;
        sent += w > 0 ? (size_t)w : 0;
    }
    free(junk);
    if (fd >= 0)
        close(fd);
    REQUIRE(cut && sent < len, "the runner took %zu of %zu bytes of an oversized frame", sent, len);

    fd = ipc_connect();
    struct rt_value *req = rt_new_map();
    rt_map_set(req, "type", rt_new_str("run_student"));
    rt_map_set(req, "socket_id", rt_new_str("p0123"));
    rt_map_set(req, "environment", rt_new_str("default"));
    rt_map_set(req, "time_limit", rt_new_int(10));
    int ret = fd < 0 ? -errno : rt_frame_write(fd, req);
    rt_value_free(req);
    struct msg_framer fr;
    msg_framer_init(&fr, RT_FRAME_MAX);
    struct rt_value *msg = NULL;
    int got = 0;
    while (!ret && !got) {
        char chunk[4096];
        ssize_t n = read(rp.from_stdout, chunk, sizeof(chunk));
        got = n <= 0 ? -EPIPE : msg_framer_feed(&fr, chunk, (size_t)n);
        if (!got)
            got = rt_frame_next(&fr, &msg);
    }
    msg_framer_deinit(&fr);
    if (fd >= 0)
        close(fd);
    runner_stop(&rp);
    const char *type = rt_map_str(msg, "type"), *sid = rt_map_str(msg, "socket_id");
    bool relayed = got == 1 && type && !strcmp(type, "run_student") && sid && !strcmp(sid, "p0123");
    rt_value_free(msg);
    REQUIRE(ret == 0, "cannot send a request: %s", strerror(-ret));
    REQUIRE(relayed, "the request was not relayed to the agent (%d)", got);
}

// A task's systemfiles: hosts gets a newline and the task's lines appended,
// resolv.conf is replaced; without the task's file nothing changes.
static void test_systemfiles(void)
{
    char dir[PATH_MAX], path[PATH_MAX];
    struct buf got = {0};
    REQUIRE(rt_mkdirs(rt_path("/task/systemfiles", dir), 0755) == 0);
    REQUIRE(rt_mkdirs(rt_path("/etc", dir), 0755) == 0);
    REQUIRE(rt_write_file(rt_path("/etc/hosts", path), "127.0.0.1 localhost", 19, 0644) == 0);
    REQUIRE(rt_write_file(rt_path("/etc/resolv.conf", path), "nameserver 1.1.1.1", 18, 0644) == 0);
    CHECK(rt_systemfile_copy("hosts", true, 0644) == 0, "no task file");
    REQUIRE(rt_read_file(rt_path("/etc/hosts", path), &got) == 0);
    CHECK_STR_EQ(got.data, "127.0.0.1 localhost");
    REQUIRE(rt_write_file(rt_path("/task/systemfiles/hosts", path), "10.0.0.1 db", 11, 0644) == 0);
    REQUIRE(rt_write_file(rt_path("/task/systemfiles/resolv.conf", path), "nameserver 9.9.9.9", 18,
                          0644) == 0);
    CHECK(rt_systemfile_copy("hosts", true, 0644) == 0, "hosts");
    CHECK(rt_systemfile_copy("resolv.conf", false, 0644) == 0, "resolv.conf");
    got.len = 0;
    REQUIRE(rt_read_file(rt_path("/etc/hosts", path), &got) == 0);
    CHECK_STR_EQ(got.data, "127.0.0.1 localhost\n10.0.0.1 db");
    got.len = 0;
    REQUIRE(rt_read_file(rt_path("/etc/resolv.conf", path), &got) == 0);
    CHECK_STR_EQ(got.data, "\nnameserver 9.9.9.9");
    buf_deinit(&got);
}

int main(void)
{
    rt_test_begin("test_rt_runner");
    test_archive_argv_many_files();
    test_archive_argv_empty();
    test_archive_make();
    test_runner_ipc_frame_cap();
    test_systemfiles();
    return rt_test_end("test_rt_runner");
}
