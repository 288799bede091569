// Unit tests for the student-container intern's parsers (rt_student.c), which
// run as root on input the grading container writes: the shell-like split of
// the command line (checked against Python's shlex.split outputs), the
// reading of the command map, which must stop at its last byte, and the
// whole intern against a fake grading side, where root's chmod of the
// student scripts directory must never follow a symlink swapped in. Run under
// ASan, so that an out-of-bounds write fails the test even when the result
// happens to look right.

#include "rt_common.h"
#include "rt_internal.h"
#include "rt_value.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "rt_test.h"

static size_t count_words(char **w)
{
    size_t n = 0;
    while (w[n])
        n++;
    return n;
}

// Every word count around the growth steps of the word array (8, 16, 32),
// with the last word ending the string, followed by a blank, or quoted.
static void test_shlex_word_counts(void)
{
    static const char *const tails[] = {"", " ", "\t\n"};
    for (size_t k = 0; k <= 40; k++) {
        for (size_t t = 0; t < 3; t++) {
            for (int quoted = 0; quoted < 2; quoted++) {
                struct buf cmd = {0};
                buf_add(&cmd, "", 0);
                for (size_t i = 0; i < k; i++) {
                    char w[32];
                    snprintf(w, sizeof(w), quoted && i + 1 == k ? "%s'w %zu'" : "%sw%zu",
                             i ? " " : "", i);
                    rt_buf_puts(&cmd, w);
                }
                rt_buf_puts(&cmd, tails[t]);
                char **words = rt_shlex_split(cmd.data);
                REQUIRE(words, "k=%zu: split failed on \"%s\"", k, cmd.data);
                size_t n = count_words(words);
                bool ok = n == k;
                for (size_t i = 0; ok && i < k; i++) {
                    char w[32];
                    snprintf(w, sizeof(w), quoted && i + 1 == k ? "w %zu" : "w%zu", i);
                    ok = !strcmp(words[i], w);
                }
                rt_words_free(words);
                buf_deinit(&cmd);
                REQUIRE(ok, "k=%zu tail=%zu quoted=%d: got %zu words", k, t, quoted, n);
            }
        }
    }
}

// Expected outputs are Python's shlex.split on the same strings; NULL words
// means shlex raises ValueError.
static void test_shlex_quoting(void)
{
    static const struct {
        const char *in;
        const char *out[6]; // NULL-terminated; {NULL} with err for an error
        bool err;
    } cases[] = {
        {"a 'b c' d", {"a", "b c", "d"}, false},
        {"\"a \\\"q\\\" \\\\ \\x\"", {"a \"q\" \\ \\x"}, false},
        {"a\\ b", {"a b"}, false},
        {"''", {""}, false},
        {"\"\"", {""}, false},
        {"a''b", {"ab"}, false},
        {"'a\\b'", {"a\\b"}, false},
        {"  lead  and\ttabs\nnl\r ", {"lead", "and", "tabs", "nl"}, false},
        {"\"a\"'b'c", {"abc"}, false},
        {"\"it's\"", {"it's"}, false},
        {"'say \"hi\"'", {"say \"hi\""}, false},
        {"\\'", {"'"}, false},
        {"\"\"\"\"", {""}, false},
        {"\"\\\\\"", {"\\"}, false},
        {"\"a\\$b\"", {"a\\$b"}, false},
        {"a\\\nb", {"a\nb"}, false},
        {"x 'y'", {"x", "y"}, false},
        {"", {NULL}, false},
        {"   ", {NULL}, false},
        {"'unterminated", {NULL}, true},
        {"\"unterminated", {NULL}, true},
        {"ok 'unterminated", {NULL}, true},
        {"trailing\\", {NULL}, true},
        {"\"\\\"", {NULL}, true},
    };
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        char **w = rt_shlex_split(cases[c].in);
        if (cases[c].err) {
            rt_words_free(w);
            REQUIRE(!w, "case %zu (%s): expected an error", c, cases[c].in);
            continue;
        }
        REQUIRE(w, "case %zu (%s): unexpected error", c, cases[c].in);
        size_t i = 0;
        bool ok = true;
        for (; ok && cases[c].out[i]; i++)
            ok = w[i] && !strcmp(w[i], cases[c].out[i]);
        ok = ok && !w[i];
        rt_words_free(w);
        REQUIRE(ok, "case %zu (%s): word %zu differs", c, cases[c].in, i);
    }
}

// A writer process sends bytes[0..n) on one end of a socketpair, in writes of
// `step` bytes (0: one write), then closes it; returns the reading end.
static int feed_socket(const char *bytes, size_t n, size_t step, pid_t *pid)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        return -1;
    *pid = fork();
    if (*pid == 0) {
        close(sv[0]);
        signal(SIGPIPE, SIG_IGN); // the reader may stop early: EPIPE ends the loop
        for (size_t off = 0; off < n;) {
            size_t k = step && step < n - off ? step : n - off;
            ssize_t w = write(sv[1], bytes + off, k);
            if (w <= 0)
                break;
            off += (size_t)w;
        }
        _exit(0);
    }
    close(sv[1]);
    if (*pid < 0) {
        close(sv[0]);
        return -1;
    }
    return sv[0];
}

// Sends msg's encoding followed by tail; checks that the intern reads back
// exactly msg and leaves exactly tail on the connection.
static void check_read_command(const char *what, const struct rt_value *msg, const char *tail,
                               size_t step)
{
    struct buf wire = {0}, rest = {0};
    REQUIRE(rt_msgpack_pack(msg, &wire) == 0, "%s: pack", what);
    rt_buf_puts(&wire, tail);
    pid_t pid;
    int fd = feed_socket(wire.data, wire.len, step, &pid);
    REQUIRE(fd >= 0, "%s: socketpair/fork: %s", what, strerror(errno));
    struct rt_value *got = NULL;
    int ret = rt_intern_read_command(fd, &got);
    char chunk[4096];
    ssize_t r;
    while ((r = read(fd, chunk, sizeof(chunk))) > 0)
        buf_add(&rest, chunk, (size_t)r);
    buf_add(&rest, "", 0);
    close(fd);
    waitpid(pid, NULL, 0);
    bool same = !ret && rt_value_equal(msg, got);
    bool tail_ok = rest.len == strlen(tail) && !memcmp(rest.data, tail, rest.len);
    rt_value_free(got);
    buf_deinit(&wire);
    buf_deinit(&rest);
    REQUIRE(ret == 0, "%s: read failed: %s", what, strerror(-ret));
    REQUIRE(same, "%s: the map read back differs", what);
    REQUIRE(tail_ok, "%s: the bytes after the map were consumed", what);
}

static struct rt_value *command_map(const char *command)
{
    struct rt_value *m = rt_new_map();
    rt_map_set(m, "type", rt_new_str("run_student_command"));
    rt_map_set(m, "student_container_id", rt_new_str("0123456789abcdef"));
    rt_map_set(m, "command", rt_new_str(command));
    rt_map_set(m, "teardown_script", rt_new_str(""));
    rt_map_set(m, "working_dir", rt_new_str("/task/student"));
    rt_map_set(m, "ssh", rt_new_bool(false));
    rt_map_set(m, "user", rt_new_str("worker"));
    return m;
}

static void test_read_command(void)
{
    // A command of a few bytes under the cap, as one big write.
    size_t len = RT_INTERN_CMD_MAX - 4096;
    char *big = rt_xmalloc(len + 1);
    for (size_t i = 0; i < len; i++)
        big[i] = i % 8 == 7 ? ' ' : (char)('a' + i % 26);
    big[len] = '\0';
    struct rt_value *m = command_map(big);
    free(big);
    check_read_command("big command", m, "015---", 0);
    rt_value_free(m);
    // Hundreds of thousands of one-byte objects.
    m = command_map("echo hi");
    struct rt_value *junk = rt_new_array();
    for (int i = 0; i < 300000; i++)
        rt_array_push(junk, i % 2 ? rt_new_nil() : rt_new_int(i % 100));
    rt_map_set(m, "junk", junk);
    check_read_command("many small objects", m, "009---", 0);
    // One byte per write: every split of headers and payloads.
    rt_map_set(m, "junk", rt_new_strn("0123456789012345678901234567890123456789", 40));
    struct rt_value *nested = rt_new_map();
    rt_map_set(nested, "k", rt_new_bin("\x01\x02", 2));
    rt_map_set(nested, "f", rt_new_float(1.5));
    rt_map_set(nested, "i", rt_new_int(-100000));
    rt_map_set(m, "nested", nested);
    check_read_command("byte at a time", m, "001", 1);
    rt_value_free(m);
}

// Sends raw bytes, returns what rt_intern_read_command says about them.
static int read_command_raw(const char *bytes, size_t n)
{
    pid_t pid;
    int fd = feed_socket(bytes, n, 0, &pid);
    if (fd < 0)
        return 1;
    struct rt_value *got = NULL;
    int ret = rt_intern_read_command(fd, &got);
    rt_value_free(got);
    close(fd); // before waiting: the writer may still be blocked on a full socket
    waitpid(pid, NULL, 0);
    return ret;
}

static void test_read_command_errors(void)
{
    struct buf wire = {0};
    // Over the cap: refused, without waiting for the rest.
    char *big = rt_xmalloc(RT_INTERN_CMD_MAX + 1);
    memset(big, 'x', RT_INTERN_CMD_MAX);
    big[RT_INTERN_CMD_MAX] = '\0';
    struct rt_value *m = command_map(big);
    free(big);
    rt_msgpack_pack(m, &wire);
    rt_value_free(m);
    int ret = read_command_raw(wire.data, wire.len);
    REQUIRE(ret == -EMSGSIZE, "over the cap: %d", ret);
    // The connection ends inside the map.
    ret = read_command_raw(wire.data, 1000);
    REQUIRE(ret == -EPROTO, "truncated: %d", ret);
    ret = read_command_raw("", 0);
    REQUIRE(ret == -EPROTO, "empty: %d", ret);
    buf_deinit(&wire);
    // Types the decoder refuses, and nesting past its depth limit.
    ret = read_command_raw("\xc1", 1);
    REQUIRE(ret == -EINVAL, "0xc1: %d", ret);
    ret = read_command_raw("\x81\xa1k\xd4\x01\x00", 6);
    REQUIRE(ret == -EINVAL, "fixext: %d", ret);
    char deep[201];
    memset(deep, 0x91, 200);
    deep[200] = (char)0xc0;
    ret = read_command_raw(deep, sizeof(deep));
    REQUIRE(ret == -EINVAL, "200 nested arrays: %d", ret);
}

/* ------------------------------------------------ the intern, in-process */

// Plays the grading container winning its race against the intern: while
// armed, right after an lstat() of the scripts directory, the directory is
// swapped for a symlink to the sentinel, as a renameat2(RENAME_EXCHANGE)
// loop would. The intern (linked into this binary) calls this lstat.
static bool g_swap_armed;
static char g_scripts[PATH_MAX], g_sentinel[PATH_MAX];

int lstat(const char *restrict path, struct stat *restrict st)
{
    int ret = fstatat(AT_FDCWD, path, st, AT_SYMLINK_NOFOLLOW);
    if (g_swap_armed && !strcmp(path, g_scripts)) {
        char aside[PATH_MAX + 8];
        snprintf(aside, sizeof(aside), "%s.real", g_scripts);
        if (rename(g_scripts, aside) == 0 && symlink(g_sentinel, g_scripts) == 0)
            g_swap_armed = false;
    }
    return ret;
}

static int send_stdio(int conn)
{
    int fds[3];
    for (int i = 0; i < 3; i++)
        fds[i] = open("/dev/null", O_RDWR | O_CLOEXEC);
    int ret = rt_send_fds(conn, fds) ? -1 : 0;
    for (int i = 0; i < 3; i++)
        close(fds[i]);
    return ret;
}

// Whether process pid holds an inotify instance (it waits at /__parent.d).
static bool has_inotify(pid_t pid)
{
    char dir[64], link[PATH_MAX + 64], target[128];
    snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)pid);
    DIR *d = opendir(dir);
    bool found = false;
    struct dirent *e;
    while (d && !found && (e = readdir(d))) {
        snprintf(link, sizeof(link), "%s/%s", dir, e->d_name);
        ssize_t n = readlink(link, target, sizeof(target) - 1);
        found = n > 0 && (target[n] = 0, strstr(target, "inotify") != NULL);
    }
    if (d)
        closedir(d);
    return found;
}

// Runs _run_student_intern in a child process, playing the grading side on
// ROOT/__parent.sock: 'H', then /dev/null as stdio, then the command map.
// `ahead`: the socket is bound elsewhere and linked as ROOT/__parent.d/parent.sock
// once the intern waits there (a student container started before its request).
// Returns the intern's exit code, or -1 when the exchange failed.
static int run_intern_at(const char *command, const char *teardown, bool ahead)
{
    char path[PATH_MAX], dir[PATH_MAX], lnk[PATH_MAX];
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    rt_path("/__parent.d", dir);
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s",
             rt_path(ahead ? "/requester.sock" : "/__parent.sock", path));
    unlink(sa.sun_path);
    unlink(rt_path("/__parent.sock", path));
    if (ahead) {
        mkdir(dir, 0755);
        if (rt_path_join(lnk, dir, "parent.sock"))
            return -1;
        unlink(lnk);
    }
    int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(lfd, 1) < 0)
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
        char *argv[] = {"_run_student_intern", NULL};
        _exit(rt_cmd_intern(1, argv));
    }
    int status = 0;
    bool gone = false;
    if (ahead && pid > 0) {
        // Its request comes once it waits: the link (as the agent makes it, a hard
        // link of the requester's socket) appears under its watch.
        while (!has_inotify(pid) && !(gone = waitpid(pid, &status, WNOHANG) == pid))
            sched_yield();
        if (gone || link(sa.sun_path, lnk) < 0) {
            if (!gone)
                kill(pid, SIGKILL);
            pid = -pid;
        }
    }
    int conn = pid > 0 ? accept4(lfd, NULL, NULL, SOCK_CLOEXEC) : -1;
    char hello = 0;
    bool ok = conn >= 0 && read(conn, &hello, 1) == 1 && hello == 'H' && !send_stdio(conn);
    struct rt_value *m = command_map(command);
    rt_map_set(m, "teardown_script", rt_new_str(teardown));
    rt_map_set(m, "working_dir", rt_new_str(g_root));
    struct buf b = {0};
    ok = ok && !rt_msgpack_pack(m, &b) && send(conn, b.data, b.len, MSG_NOSIGNAL) == (ssize_t)b.len;
    buf_deinit(&b);
    rt_value_free(m);
    if (pid != 0 && !gone)
        waitpid(pid > 0 ? pid : -pid, &status, 0);
    if (conn >= 0)
        close(conn);
    close(lfd);
    if (ahead)
        unlink(lnk);
    return ok && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static int run_intern(const char *command, const char *teardown)
{
    return run_intern_at(command, teardown, false);
}

static void test_intern_started_ahead(void)
{
    char dir[PATH_MAX];
    rt_mkdirs(rt_path("/task/student/scripts", dir), 0755);
    // Started before its request: no /__parent.sock, an empty /__parent.d where the
    // socket's link appears while it waits (inotify); then the usual exchange.
    int code = run_intern_at("true", "", true);
    REQUIRE(code == 0, "started ahead: exit code %d", code);
    code = run_intern_at("false", "", true);
    REQUIRE(code == 1, "started ahead: exit code %d", code);
    // Neither /__parent.sock nor /__parent.d: the handshake fails (254), no wait.
    rmdir(rt_path("/__parent.d", dir));
    pid_t pid = fork();
    if (pid == 0) {
        char *argv[] = {"_run_student_intern", NULL};
        _exit(rt_cmd_intern(1, argv));
    }
    int status = 0;
    waitpid(pid, &status, 0);
    REQUIRE(WIFEXITED(status) && WEXITSTATUS(status) == 254, "no parent: status %d", status);
}

static mode_t mode_of(const char *path)
{
    struct stat st;
    return fstatat(AT_FDCWD, path, &st, AT_SYMLINK_NOFOLLOW) == 0 ? st.st_mode & 07777 : 01000;
}

// A fresh scripts directory (0755) and sentinel (0750) for each case.
static void reset_dirs(void)
{
    char cmd[3 * PATH_MAX + 64];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s' '%s.real' '%s'", g_scripts, g_scripts, g_sentinel);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot clean %s\n", g_scripts);
    rt_mkdirs(g_scripts, 0755);
    chmod(g_scripts, 0755);
    mkdir(g_sentinel, 0750);
    chmod(g_sentinel, 0750);
}

static void test_intern_scripts_lock(void)
{
    char dir[PATH_MAX];
    REQUIRE(chmod(g_root, 0755) == 0, "chmod %s", g_root);
    rt_path("/task/student/scripts", g_scripts);
    REQUIRE(!rt_path_join(g_sentinel, g_root, "sentinel"), "path too long");
    rt_mkdirs(rt_path("/task/student", dir), 0755);

    // The student is done: the scripts are locked away (mode 0), or opened
    // (0777) for the teardown script, as upstream does.
    reset_dirs();
    int code = run_intern("true", "");
    REQUIRE(code == 0, "true: exit code %d", code);
    REQUIRE(mode_of(g_scripts) == 0, "scripts mode %o after the run", mode_of(g_scripts));
    reset_dirs();
    code = run_intern("false", "true");
    REQUIRE(code == 1, "false: exit code %d", code);
    REQUIRE(mode_of(g_scripts) == 0777, "scripts mode %o for the teardown", mode_of(g_scripts));

    // Scripts replaced by a symlink beforehand: the sentinel is not touched.
    reset_dirs();
    rmdir(g_scripts);
    REQUIRE(symlink(g_sentinel, g_scripts) == 0, "symlink: %s", strerror(errno));
    code = run_intern("true", "true");
    REQUIRE(code == 0, "symlinked: exit code %d", code);
    REQUIRE(mode_of(g_sentinel) == 0750, "symlinked: sentinel mode %o", mode_of(g_sentinel));

    // Swapped between the intern's check and its chmod.
    reset_dirs();
    g_swap_armed = true;
    code = run_intern("true", "true");
    g_swap_armed = false;
    REQUIRE(code == 0, "raced: exit code %d", code);
    REQUIRE(mode_of(g_sentinel) == 0750, "raced: sentinel mode changed to %o", mode_of(g_sentinel));
}

int main(void)
{
    rt_test_begin("test_rt_student");
    test_shlex_word_counts();
    test_shlex_quoting();
    test_read_command();
    test_read_command_errors();
    test_intern_scripts_lock();
    test_intern_started_ahead();
    return rt_test_end("test_rt_student");
}
