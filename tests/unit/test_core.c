// Unit tests of src/core: the loop (fds, timers, signals, deletion from
// callbacks), the value tree and its bounded msgpack codec, buffers, trees.

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/loop.h"
#include "core/util.h"
#include "core/value.h"
#include "core/worker.h"

static int failures;
#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);               \
            failures++;                                                                            \
        }                                                                                          \
    } while (0)

/* ---- loop ---------------------------------------------------------------- */

struct counter {
    int fires;
    int stop_at;
    uint64_t other; /* a timer this one deletes */
};

static long count_timer(struct loop *l, uint64_t id, void *data)
{
    PROCTOR_UNUSED(id);
    struct counter *c = data;
    c->fires++;
    if (c->other) {
        loop_timer_del(l, c->other);
        c->other = 0;
    }
    if (c->fires == c->stop_at) {
        loop_stop(l);
        return LOOP_NOMORE;
    }
    return 1;
}

static long never(struct loop *l, uint64_t id, void *data)
{
    PROCTOR_UNUSED(l);
    PROCTOR_UNUSED(id);
    int *hit = data;
    (*hit)++;
    return LOOP_NOMORE;
}

static void test_timers(void)
{
    struct loop *l = loop_new();
    CHECK(l);
    int hit = 0;
    struct counter c = {.stop_at = 3};
    c.other = loop_timer_add(l, 50, never, &hit);
    CHECK(loop_timer_add(l, 0, count_timer, &c) != 0);
    CHECK(loop_run(l) == 0);
    CHECK(c.fires == 3);
    CHECK(hit == 0); /* deleted from inside another timer's callback */
    loop_free(l);
}

struct pipe_state {
    int rfd, wfd;
    char got[16];
    size_t n;
};

static void on_pipe(struct loop *l, int fd, unsigned ev, void *data)
{
    struct pipe_state *p = data;
    CHECK(ev & LOOP_READ);
    ssize_t r = read(fd, p->got + p->n, sizeof p->got - p->n - 1);
    if (r > 0)
        p->n += (size_t)r;
    if (r == 0 || p->n >= 5) {
        // Removing the fd from its own callback must be safe.
        loop_fd_del(l, fd);
        loop_stop(l);
    }
}

static long write_later(struct loop *l, uint64_t id, void *data)
{
    PROCTOR_UNUSED(l);
    PROCTOR_UNUSED(id);
    struct pipe_state *p = data;
    CHECK(write(p->wfd, "hello", 5) == 5);
    return LOOP_NOMORE;
}

static void test_fds(void)
{
    struct loop *l = loop_new();
    int fds[2];
    CHECK(pipe(fds) == 0);
    struct pipe_state p = {.rfd = fds[0], .wfd = fds[1]};
    CHECK(loop_fd_add(l, fds[0], LOOP_READ, on_pipe, &p) == 0);
    CHECK(loop_fd_add(l, fds[0], LOOP_READ, on_pipe, &p) != 0); /* twice is refused */
    loop_timer_add(l, 5, write_later, &p);
    CHECK(loop_run(l) == 0);
    CHECK(p.n == 5 && !memcmp(p.got, "hello", 5));
    close(fds[0]);
    close(fds[1]);
    loop_free(l);
}

static void on_sig(struct loop *l, int signo, void *data)
{
    int *got = data;
    *got = signo;
    loop_stop(l);
}

static long raise_later(struct loop *l, uint64_t id, void *data)
{
    PROCTOR_UNUSED(l);
    PROCTOR_UNUSED(id);
    PROCTOR_UNUSED(data);
    kill(getpid(), SIGUSR1);
    return LOOP_NOMORE;
}

static void test_signals(void)
{
    struct loop *l = loop_new();
    int got = 0;
    CHECK(loop_signal_watch(l, SIGUSR1, on_sig, &got) == 0);
    loop_timer_add(l, 1, raise_later, NULL);
    CHECK(loop_run(l) == 0);
    CHECK(got == SIGUSR1);
    loop_free(l);
}

/* ---- value ------------------------------------------------------------- */

static void roundtrip(const struct value *v, struct value *out)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    CHECK(value_pack(&pk, v) == 0);
    char err[128];
    CHECK(value_unpack(sb.data, sb.size, out, err, sizeof err) == 0);
    msgpack_sbuffer_destroy(&sb);
}

static void test_value(void)
{
    struct value m;
    value_set_map(&m);
    value_set_str(value_map_put(&m, "s"), "text");
    value_set_bin(value_map_put(&m, "b"), "\x00\x01\xff", 3);
    value_set_int(value_map_put(&m, "neg"), -5);
    value_set_float(value_map_put(&m, "f"), 66.67);
    value_set_bool(value_map_put(&m, "t"), true);
    struct value *arr = value_map_put(&m, "a");
    value_set_array(arr);
    value_set_int(value_array_push(arr), 1);
    value_set_nil(value_array_push(arr));
    struct value *same = value_map_put(&m, "s"); /* same key: same slot, content kept */
    CHECK(value_is_str(same, "text"));
    value_deinit(same);
    value_set_str(same, "replaced");
    CHECK(m.u.m.len == 6);

    struct value back;
    roundtrip(&m, &back);
    CHECK(back.type == VALUE_MAP && back.u.m.len == 6);
    CHECK(value_is_str(value_map_get(&back, "s"), "replaced"));
    const struct value *b = value_map_get(&back, "b");
    CHECK(b && b->type == VALUE_BIN && b->u.s.len == 3 && !memcmp(b->u.s.ptr, "\x00\x01\xff", 3));
    CHECK(value_map_get(&back, "neg")->u.i == -5);
    CHECK(value_map_get(&back, "f")->u.f == 66.67);
    CHECK(value_map_get(&back, "a")->u.a.len == 2);
    CHECK(value_map_del(&back, "neg") && !value_map_get(&back, "neg"));
    CHECK(!value_map_del(&back, "neg"));

    struct value copy;
    value_copy(&copy, &back);
    value_deinit(&back);
    CHECK(value_is_str(value_map_get(&copy, "s"), "replaced"));
    value_deinit(&copy);
    value_deinit(&m);

    // uint64 above INT64_MAX survives.
    struct value u = {.type = VALUE_UINT, .u.u = UINT64_MAX};
    roundtrip(&u, &back);
    CHECK(back.type == VALUE_UINT && back.u.u == UINT64_MAX);
}

static void test_value_hostile(void)
{
    char err[128];
    struct value v;
    // Truncated, trailing bytes, ext type, and nesting past the limit.
    CHECK(value_unpack("\x92\x01", 2, &v, err, sizeof err) == -EBADMSG && v.type == VALUE_NIL);
    CHECK(value_unpack("\x01\x02", 2, &v, err, sizeof err) == -EBADMSG);
    CHECK(value_unpack("\xd4\x01\x00", 3, &v, err, sizeof err) == -EBADMSG);
    CHECK(value_unpack("\xc1", 1, &v, err, sizeof err) == -EBADMSG);
    char deep[200];
    memset(deep, 0x91, sizeof deep - 1);
    deep[sizeof deep - 1] = 0x00;
    CHECK(value_unpack(deep, sizeof deep, &v, err, sizeof err) == -EBADMSG);
    CHECK(value_unpack(deep + sizeof deep - 10, 10, &v, err, sizeof err) == 0);
    value_deinit(&v);
    // A declared size far beyond the input is just truncated input.
    CHECK(value_unpack("\xdb\xff\xff\xff\xff", 5, &v, err, sizeof err) == -EBADMSG);
}

/* ---- buf and trees ----------------------------------------------------- */

static void test_buf(void)
{
    struct buf b = {0};
    CHECK(buf_append(&b, "abc", 3, 0) == 0);
    CHECK(buf_append(&b, "def", 3, 5) == -ENOMEM); /* over the limit: refused whole */
    CHECK(b.len == 3 && !strcmp(b.data, "abc"));
    buf_consume(&b, 1);
    CHECK(b.len == 2 && !strcmp(b.data, "bc"));
    buf_deinit(&b);
}

static void test_trees(void)
{
    char tmpl[] = "/tmp/proctor-core-XXXXXX";
    CHECK(mkdtemp(tmpl));
    AUTO_FREE char *src = xasprintf("%s/src", tmpl);
    AUTO_FREE char *sub = xasprintf("%s/src/sub", tmpl);
    AUTO_FREE char *file = xasprintf("%s/src/sub/run", tmpl);
    AUTO_FREE char *link = xasprintf("%s/src/link", tmpl);
    AUTO_FREE char *dst = xasprintf("%s/dst", tmpl);
    CHECK(util_mkdirs(sub, 0755) == 0);
    int fd = open(file, O_WRONLY | O_CREAT, 0755);
    CHECK(fd >= 0 && write(fd, "#!/bin/sh\n", 10) == 10);
    close(fd);
    CHECK(symlink("sub/run", link) == 0);
    CHECK(util_copytree(src, dst) == 0);
    AUTO_FREE char *copied = xasprintf("%s/sub/run", dst);
    AUTO_FREE char *copied_link = xasprintf("%s/link", dst);
    struct stat st;
    CHECK(stat(copied, &st) == 0 && (st.st_mode & 0777) == 0755 && st.st_size == 10);
    CHECK(lstat(copied_link, &st) == 0 && S_ISLNK(st.st_mode));
    char *content = NULL;
    size_t len = 0;
    CHECK(util_read_file(copied, 100, &content, &len) == 0 && len == 10);
    free(content);
    CHECK(util_read_file(copied, 5, &content, &len) == -ENOMEM);
    // A directory the container made unreadable is still removed.
    CHECK(chmod(sub, 0) == 0);
    CHECK(util_rmtree(tmpl) == 0);
    CHECK(access(tmpl, F_OK) != 0);
}

/* ---- worker ------------------------------------------------------------ */

struct wstate {
    int done_calls;
    int last_ret;
    int freed;
};

static int work_double(void *arg)
{
    int *v = arg;
    *v *= 2;
    return *v;
}

static void work_free(void *arg)
{
    int *v = arg;
    v[1]++; /* counts frees in the slot after the value */
}

static void work_done(int ret, void *data)
{
    struct wstate *st = data;
    st->done_calls++;
    st->last_ret = ret;
}

static long stop_when_done(struct loop *l, uint64_t id, void *data)
{
    PROCTOR_UNUSED(id);
    struct wstate *st = data;
    if (st->done_calls >= 2) {
        loop_stop(l);
        return LOOP_NOMORE;
    }
    return 1;
}

static void test_worker(void)
{
    struct loop *l = loop_new();
    struct worker *w = worker_new(l);
    CHECK(w);
    struct wstate st = {0};
    int a[2] = {21, 0}, b[2] = {5, 0}, c[2] = {7, 0}, d[2] = {9, 0};
    worker_submit(w, work_double, a, work_free, work_done, &st);
    struct worker_task *t = worker_submit(w, work_double, b, work_free, work_done, &st);
    worker_cancel(t); /* runs, frees, but never calls back */
    worker_submit(w, work_double, c, work_free, work_done, &st);
    loop_timer_add(l, 0, stop_when_done, &st);
    CHECK(loop_run(l) == 0);
    CHECK(st.done_calls == 2 && st.last_ret == 14);
    CHECK(a[0] == 42 && a[1] == 1 && c[1] == 1);
    // Queued work still runs at free (a job directory is never left behind).
    worker_submit(w, work_double, d, work_free, work_done, &st);
    worker_free(w);
    CHECK(d[0] == 18 && d[1] == 1 && b[0] == 10 && b[1] == 1);
    CHECK(st.done_calls == 2);
    loop_free(l);
}

int main(void)
{
    test_timers();
    test_fds();
    test_signals();
    test_value();
    test_value_hostile();
    test_buf();
    test_trees();
    test_worker();
    if (failures) {
        fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    printf("core: all checks passed\n");
    return 0;
}
