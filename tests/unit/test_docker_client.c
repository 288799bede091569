// Integration test of the Docker client against the real engine, on a real loop:
// info, image lists, error and cancel paths, then one container's whole life:
// create (labelled) -> attach before start -> start -> update of its limits ->
// framed echo through `cat` -> CPU samples -> kill -> wait / die event / attach EOF -> inspect ->
// remove -> nothing left with our label.
//
// `test_docker_client --setup-image` (a CTest fixture) builds the throwaway
// image proctor/test-busybox (FROM scratch + the host's static busybox) when it
// is missing. Without a reachable Docker engine both fail loudly.

#include "docker/docker_attach.h"
#include "docker/docker_client.h"
#include "docker/docker_stream.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "check.h"
#include "common/framer.h"
#include "core/loop.h"
#include "core/util.h"

#define TEST_IMAGE "proctor/test-busybox"
#define IMAGE_LABEL "org.proctor.test"
#define RUN_LABEL "org.proctor.test.run"
#define BIG_MSG (200u * 1024)
#define DEADLINE_MS 90000

struct ctx {
    struct loop *loop;
    struct docker_client *c;
    struct docker_events *events;
    struct docker_attach *attach;
    struct docker_req *cpu;
    struct msg_framer framer;
    char run_label[64]; // "org.proctor.test.run=<pid>"
    char run_value[32];
    char name[64];
    char id[80];
    int cgroup_version;
    int pending_checks; // independent preliminary checks still running
    char *big;          // the large message echoed through cat
    int echoed;         // messages received back
    bool started, updated, cpu_sample, killed, waited, died, eof, removed, done;
    bool never_called;
    int64_t cpu_ns;
};

static struct ctx *g_ctx;

// Removes whatever this run created, with the CLI (at exit, after a failed
// REQUIRE_OR_EXIT; a finished run has removed its container and cleared g_ctx).
static void emergency_cleanup(void)
{
    if (!g_ctx)
        return;
    char cmd[256];
    snprintf(
        cmd, sizeof(cmd),
        "ids=$(docker ps -aq --filter label=%s); [ -z \"$ids\" ] || docker rm -f $ids >/dev/null",
        g_ctx->run_label);
    if (system(cmd) != 0)
        fprintf(stderr, "cleanup command failed: %s\n", cmd);
}

static void step(const char *what)
{
    fprintf(stderr, "test_docker_client: %s\n", what);
}

static void maybe_kill(struct ctx *x);
static void maybe_inspect(struct ctx *x);
static void start_container_phase(struct ctx *x);

/* ---- preliminary checks ----------------------------------------------- */

static void prelim_done(struct ctx *x)
{
    if (--x->pending_checks == 0)
        start_container_phase(x);
}

static void on_never(int status, const char *err, const struct docker_info *info, void *data)
{
    PROCTOR_UNUSED(status);
    PROCTOR_UNUSED(err);
    PROCTOR_UNUSED(info);
    ((struct ctx *)data)->never_called = false;
}

static void on_info(int status, const char *err, const struct docker_info *info, void *data)
{
    struct ctx *x = data;
    REQUIRE_OR_EXIT(status == 0, "docker engine not reachable or /info failed: %d %s", status,
                    err ? err : "");
    bool runc = false;
    for (size_t i = 0; i < info->n_runtimes; i++)
        runc = runc || strcmp(info->runtimes[i], "runc") == 0;
    CHECK(runc, "runc not among %zu runtimes", info->n_runtimes);
    CHECK(info->cgroup_version == 1 || info->cgroup_version == 2, "cgroup version %d",
          info->cgroup_version);
    CHECK(info->ncpu >= 1 && info->mem_total > 0, "ncpu %d mem %lld", info->ncpu,
          (long long)info->mem_total);
    x->cgroup_version = info->cgroup_version;
    step("info ok");
    prelim_done(x);
}

static void on_info_capped(int status, const char *err, const struct docker_info *info, void *data)
{
    CHECK(status == -EMSGSIZE && err && info == NULL, "capped /info gave %d", status);
    step("body cap ok");
    prelim_done(data);
}

static bool has_label(const struct docker_kv *kv, size_t n, const char *key, const char *value)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(kv[i].key, key) == 0 && (!value || strcmp(kv[i].value, value) == 0))
            return true;
    return false;
}

static void on_test_images(int status, const char *err, const struct docker_image *imgs, size_t n,
                           void *data)
{
    CHECK(status == 0, "image list: %d %s", status, err ? err : "");
    CHECK(n >= 1, "image %s (label %s=busybox) not listed; did the fixture run?", TEST_IMAGE,
          IMAGE_LABEL);
    for (size_t i = 0; i < n; i++) {
        CHECK(strncmp(imgs[i].id, "sha256:", 7) == 0, "image id %s", imgs[i].id);
        CHECK(imgs[i].created > 1000000000, "created %lld", (long long)imgs[i].created);
        CHECK(has_label(imgs[i].labels, imgs[i].n_labels, IMAGE_LABEL, "busybox"), "label");
    }
    step("test image listed");
    prelim_done(data);
}

static void on_grading_images(int status, const char *err, const struct docker_image *imgs,
                              size_t n, void *data)
{
    CHECK(status == 0, "grading image list: %d %s", status, err ? err : "");
    for (size_t i = 0; i < n; i++)
        CHECK(has_label(imgs[i].labels, imgs[i].n_labels, DOCKER_GRADING_LABEL, NULL),
              "image %s lacks the grading label", imgs[i].id);
    step("grading image list ok");
    prelim_done(data);
}

static void on_inspect_missing(int status, const char *err, const struct docker_container_state *st,
                               void *data)
{
    CHECK(status == 404 && err && *err && st == NULL, "inspect of a missing container: %d", status);
    step("404 reported");
    prelim_done(data);
}

/* ---- the container ---------------------------------------------------- */

static void on_event(const struct docker_event *ev, void *data)
{
    struct ctx *x = data;
    if (strcmp(ev->action, "create") == 0) {
        // It may come before the create's answer (x->id not known yet).
        CHECK(has_label(ev->attributes, ev->n_attributes, RUN_LABEL, x->run_value),
              "create event attributes carry our label");
        return;
    }
    REQUIRE(strcmp(ev->id, x->id) == 0, "event %s for a container (%s) not ours", ev->action,
            ev->id);
    CHECK(has_label(ev->attributes, ev->n_attributes, RUN_LABEL, x->run_value),
          "event attributes carry our label");
    if (strcmp(ev->action, "die") == 0) {
        CHECK(x->killed, "die before kill");
        CHECK_INT_EQ(ev->exit_code, 137);
        CHECK(ev->time > 0 && ev->time_nano / 1000000000 == ev->time, "event time");
        REQUIRE(!x->died, "die delivered twice");
        x->died = true;
        step("die event ok");
        maybe_inspect(x);
    }
}

static void on_wait(int status, const char *err, int code, void *data)
{
    struct ctx *x = data;
    CHECK(status == 0, "wait: %d %s", status, err ? err : "");
    CHECK(x->killed && code == 137, "wait exit code %d", code);
    x->waited = true;
    step("wait ok");
    maybe_inspect(x);
}

static void on_cpu(int status, const char *err, int64_t ns, void *data)
{
    struct ctx *x = data;
    CHECK(status == 0 && ns >= 0, "cpu watch: %d %s (ns %lld)", status, err ? err : "",
          (long long)ns);
    CHECK(ns > 0, "a running container used no CPU at all");
    x->cpu_sample = true;
    x->cpu_ns = ns;
    // Cancel from inside the request's own callback.
    docker_req_cancel(x->cpu);
    x->cpu = NULL;
    uint64_t cg = 0;
    int rc = docker_cpu_read_cgroup(x->id, &cg);
    CHECK(rc == 0 || rc == -ENOENT, "cgroup read: %d", rc);
    if (rc == 0)
        CHECK(cg > 0, "cgroup cpu time 0");
    fprintf(stderr, "test_docker_client: cpu sample %lld ns; cgroup file %s (%llu ns)\n",
            (long long)ns, rc == 0 ? "visible" : "not visible", (unsigned long long)cg);
    CHECK(docker_cpu_read_cgroup("../../etc", &cg) == -EINVAL, "id validation");
    // Both come from the same cgroup: visible together or not at all.
    uint64_t kills = 99;
    int orc = docker_oom_read_cgroup(x->id, &kills);
    CHECK(orc == rc, "oom counter read %d, cpu read %d", orc, rc);
    if (orc == 0)
        CHECK(kills == 0, "a container that never ran short of memory has %llu OOM kills",
              (unsigned long long)kills);
    CHECK(docker_oom_read_cgroup("../../etc", &kills) == -EINVAL, "id validation (oom)");
    maybe_kill(x);
}

static void on_attach_data(struct docker_attach *a, int stream, const void *p, size_t n, void *data)
{
    PROCTOR_UNUSED(a);
    struct ctx *x = data;
    REQUIRE(stream == DOCKER_STDOUT, "output on stream %d: %.*s", stream, (int)n, (const char *)p);
    REQUIRE(msg_framer_feed(&x->framer, p, n) == 0, "framer feed");
    for (;;) {
        const void *msg;
        size_t len;
        enum framer_result r = msg_framer_next(&x->framer, &msg, &len);
        REQUIRE(r != FRAMER_ERROR, "framing: %s", msg_framer_error(&x->framer));
        if (r == FRAMER_NEED_MORE)
            break;
        if (x->echoed == 0)
            CHECK(len == 13 && memcmp(msg, "hello proctor", 13) == 0, "first echo");
        else
            CHECK(x->echoed == 1 && len == BIG_MSG && memcmp(msg, x->big, len) == 0,
                  "second echo (%zu bytes)", len);
        x->echoed++;
    }
    if (x->echoed == 2) {
        step("framed echo through cat ok");
        maybe_kill(x);
    }
}

static void on_attach_close(struct docker_attach *a, int err, const char *text, void *data)
{
    PROCTOR_UNUSED(a);
    struct ctx *x = data;
    CHECK(err == 0, "attach closed: %d %s", err, text);
    CHECK(x->killed, "attach ended before the kill");
    CHECK(docker_attach_write(x->attach, "x", 1) == -EPIPE, "write after close");
    x->eof = true;
    step("attach eof ok");
    maybe_inspect(x);
}

static void on_kill(int status, const char *err, void *data)
{
    CHECK(status == 0, "kill: %d %s", status, err ? err : "");
    step("kill ok");
    PROCTOR_UNUSED(data);
}

static void maybe_kill(struct ctx *x)
{
    if (x->killed || !x->updated || !x->cpu_sample || x->echoed < 2)
        return;
    x->killed = true;
    REQUIRE_OR_EXIT(docker_container_kill(x->c, x->id, NULL, on_kill, x), "kill request");
}

static void on_list_after(int status, const char *err, const struct docker_container_summary *l,
                          size_t n, void *data)
{
    struct ctx *x = data;
    PROCTOR_UNUSED(l);
    CHECK(status == 0, "list: %d %s", status, err ? err : "");
    CHECK(n == 0, "%zu containers with %s remain", n, x->run_label);
    step("no container left");
    // Stop the watch from inside a callback.
    docker_events_stop(x->events);
    x->events = NULL;
    x->done = true;
    loop_stop(x->loop);
}

static void on_remove(int status, const char *err, void *data)
{
    struct ctx *x = data;
    CHECK(status == 0, "remove: %d %s", status, err ? err : "");
    x->removed = true;
    step("remove ok");
    REQUIRE_OR_EXIT(docker_containers_list_by_label(x->c, x->run_label, true, on_list_after, x),
                    "list");
}

static void on_inspect(int status, const char *err, const struct docker_container_state *st,
                       void *data)
{
    struct ctx *x = data;
    REQUIRE_OR_EXIT(status == 0, "inspect: %d %s", status, err ? err : "");
    CHECK_STR_EQ(st->id, x->id);
    CHECK(!st->running && !st->oom_killed && st->exit_code == 137,
          "state: running %d oom %d "
          "exit %d",
          st->running, st->oom_killed, st->exit_code);
    CHECK_STR_EQ(st->status, "exited");
    // The limits as the update left them (created with 64 MiB and 16 pids).
    CHECK_INT_EQ(st->memory, 96 << 20);
    CHECK_INT_EQ(st->pids_limit, 24);
    step("inspect ok");
    REQUIRE_OR_EXIT(docker_container_remove(x->c, x->id, true, true, on_remove, x),
                    "remove request");
}

static void maybe_inspect(struct ctx *x)
{
    if (x->waited && x->died && x->eof)
        REQUIRE_OR_EXIT(docker_container_inspect(x->c, x->id, on_inspect, x), "inspect request");
}

static void on_update(int status, const char *err, void *data)
{
    struct ctx *x = data;
    CHECK(status == 0, "update: %d %s", status, err ? err : "");
    x->updated = true;
    step("update ok");
    maybe_kill(x);
}

static void on_start(int status, const char *err, void *data)
{
    struct ctx *x = data;
    REQUIRE_OR_EXIT(status == 0, "start: %d %s", status, err ? err : "");
    x->started = true;
    step("start ok");
    x->cpu = docker_cpu_watch(x->c, x->id, on_cpu, x);
    REQUIRE_OR_EXIT(x->cpu, "cpu watch");
    REQUIRE_OR_EXIT(docker_container_wait(x->c, x->id, on_wait, x), "wait");
    // A running container's limits change (the warm pool's claim does this).
    struct docker_update up = {.memory = 96 << 20, .pids_limit = 24};
    REQUIRE_OR_EXIT(docker_container_update(x->c, x->id, &up, on_update, x), "update");
    struct buf out = {0};
    REQUIRE_OR_EXIT(msg_frame_encode(&out, "hello proctor", 13) == 0, "encode");
    REQUIRE_OR_EXIT(msg_frame_encode(&out, x->big, BIG_MSG) == 0, "encode");
    REQUIRE_OR_EXIT(docker_attach_write(x->attach, out.data, out.len) == 0, "attach write");
    buf_deinit(&out);
}

static void on_ready(struct docker_attach *a, void *data)
{
    struct ctx *x = data;
    CHECK(a == x->attach && docker_attach_is_ready(a), "ready");
    CHECK(!x->started, "attached before start");
    step("attached (before start)");
    REQUIRE_OR_EXIT(docker_container_start(x->c, x->id, on_start, x), "start request");
}

static void on_create(int status, const char *err, const char *id, void *data)
{
    struct ctx *x = data;
    REQUIRE_OR_EXIT(status == 0, "create: %d %s", status, err ? err : "");
    CHECK(strlen(id) == 64, "id %s", id);
    util_strlcpy(x->id, id, sizeof(x->id));
    step("create ok");
    static const struct docker_attach_cbs cbs = {
        .on_ready = on_ready, .on_data = on_attach_data, .on_close = on_attach_close};
    x->attach = docker_attach_new(x->c, x->id, NULL, &cbs, x);
    REQUIRE_OR_EXIT(x->attach, "attach");
    CHECK(!docker_attach_is_ready(x->attach), "not ready yet");
}

static void start_container_phase(struct ctx *x)
{
    x->events = docker_events_watch(x->c, x->run_label, on_event, x);
    REQUIRE_OR_EXIT(x->events, "events watch");
    static const char *const cmd[] = {"/bin/busybox", "cat", NULL};
    static const char *const cap_drop[] = {"ALL", NULL};
    static const char *const secopt[] = {"no-new-privileges", NULL};
    static const char *const env[] = {"PROCTOR_TEST=1", NULL};
    struct docker_kv labels[] = {{IMAGE_LABEL, "docker_client"}, {RUN_LABEL, x->run_value}};
    struct docker_ulimit ulimits[] = {{"nofile", 64, 64}};
    struct docker_create_spec spec = {
        .name = x->name,
        .image = TEST_IMAGE,
        .cmd = cmd,
        .env = env,
        .user = "65534:65534",
        .working_dir = "/",
        .labels = labels,
        .n_labels = ARRAY_SIZE(labels),
        .memory = 64 << 20,
        .memory_swap = 64 << 20,
        .memory_swappiness = x->cgroup_version == 1 ? 0 : -1,
        .oom_kill_disable = x->cgroup_version == 1,
        .pids_limit = 16,
        .network_mode = "none",
        .ulimits = ulimits,
        .n_ulimits = ARRAY_SIZE(ulimits),
        .cap_drop = cap_drop,
        .security_opt = secopt,
        .open_stdin = true,
        .stdin_once = true,
        .attach_stdin = true,
        .attach_stdout = true,
        .attach_stderr = true,
    };
    REQUIRE_OR_EXIT(docker_container_create(x->c, &spec, on_create, x), "create request");
}

static long on_deadline(struct loop *loop, uint64_t id, void *data)
{
    PROCTOR_UNUSED(loop);
    PROCTOR_UNUSED(id);
    struct ctx *x = data;
    REQUIRE_OR_EXIT(x->done,
                    "deadline: started %d cpu %d echoed %d killed %d waited %d died %d eof %d "
                    "removed %d",
                    x->started, x->cpu_sample, x->echoed, x->killed, x->waited, x->died, x->eof,
                    x->removed);
    return LOOP_NOMORE;
}

/* ---- fixture: the throwaway image ------------------------------------- */

static int run(char *const argv[], bool quiet)
{
    pid_t pid = fork();
    if (pid < 0)
        return -errno;
    if (pid == 0) {
        if (quiet && !freopen("/dev/null", "w", stdout))
            _exit(126);
        if (quiet && !freopen("/dev/null", "w", stderr))
            _exit(126);
        execvp(argv[0], argv);
        _exit(127);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return -errno;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static int setup_image(void)
{
    char *info[] = {"docker", "info", "--format", "{{.ServerVersion}}", NULL};
    if (run(info, true) != 0) {
        fprintf(stderr, "test_docker_client: FAIL: docker engine not reachable (docker info)\n");
        return 1;
    }
    char *inspect[] = {"docker", "image", "inspect", TEST_IMAGE, NULL};
    if (run(inspect, true) == 0) {
        printf("image %s already present\n", TEST_IMAGE);
        return 0;
    }
    const char *busybox = getenv("PROCTOR_BUSYBOX");
    if (!busybox)
        busybox = "/bin/busybox";
    char dir[] = "/tmp/proctor-test-image-XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    AUTO_FREE char *dockerfile = xasprintf("%s/Dockerfile", dir);
    AUTO_FREE char *bb = xasprintf("%s/busybox", dir);
    char *cp[] = {"cp", (char *)busybox, bb, NULL};
    char *build[] = {"docker", "build", "-q", "-t", TEST_IMAGE, dir, NULL};
    FILE *f = fopen(dockerfile, "w");
    int ret = f ? 0 : 1;
    if (f) {
        fprintf(f,
                "FROM scratch\nCOPY busybox /bin/busybox\nLABEL %s=busybox\n"
                "CMD [\"/bin/busybox\", \"cat\"]\n",
                IMAGE_LABEL);
        ret = fclose(f) != 0;
    }
    if (!ret)
        ret = run(cp, false);
    if (!ret)
        ret = run(build, false);
    util_rmtree(dir);
    if (ret)
        fprintf(stderr, "test_docker_client: FAIL: cannot build %s from %s\n", TEST_IMAGE, busybox);
    return ret ? 1 : 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--setup-image") == 0)
        return setup_image();

    struct ctx x = {.never_called = true};
    g_ctx = &x;
    REQUIRE_OR_EXIT(atexit(emergency_cleanup) == 0, "atexit");
    snprintf(x.run_value, sizeof(x.run_value), "%ld", (long)getpid());
    snprintf(x.run_label, sizeof(x.run_label), "%s=%s", RUN_LABEL, x.run_value);
    snprintf(x.name, sizeof(x.name), "proctor-test-client-%s", x.run_value);
    x.big = xmalloc(BIG_MSG);
    for (size_t i = 0; i < BIG_MSG; i++)
        x.big[i] = (char)(i * 7 + (i >> 9));
    msg_framer_init(&x.framer, 1u << 20);

    x.loop = loop_new();
    REQUIRE_OR_EXIT(x.loop, "loop");
    x.c = docker_client_new(x.loop, NULL);
    REQUIRE_OR_EXIT(x.c, "client");
    CHECK(docker_client_new(x.loop, "ftp://nowhere") == NULL, "bad host refused");
    loop_timer_add(x.loop, DEADLINE_MS, on_deadline, &x);

    // Cancelled at once: its callback must never run.
    struct docker_req *r = docker_info(x.c, on_never, &x);
    REQUIRE_OR_EXIT(r, "info request");
    docker_req_cancel(r);

    x.pending_checks = 5;
    docker_client_set_limits(x.c, 64, 0);
    REQUIRE_OR_EXIT(docker_info(x.c, on_info_capped, &x), "capped info");
    docker_client_set_limits(x.c, 0, DOCKER_DEFAULT_TIMEOUT_MS);
    REQUIRE_OR_EXIT(docker_info(x.c, on_info, &x), "info");
    REQUIRE_OR_EXIT(docker_images_list_label(x.c, IMAGE_LABEL "=busybox", on_test_images, &x),
                    "images");
    REQUIRE_OR_EXIT(docker_images_list(x.c, on_grading_images, &x), "grading images");
    REQUIRE_OR_EXIT(
        docker_container_inspect(x.c, "proctor-no-such-container-here", on_inspect_missing, &x),
        "inspect");

    CHECK(loop_run(x.loop) == 0, "loop");
    CHECK(x.done, "finished");
    CHECK(x.never_called, "a cancelled request called back");
    CHECK_INT_EQ(docker_client_pending(x.c), 0);
    docker_attach_free(x.attach);
    docker_client_free(x.c);
    loop_free(x.loop);
    msg_framer_deinit(&x.framer);
    free(x.big);
    if (!x.done)
        emergency_cleanup();
    g_ctx = NULL; // x goes with main's frame, before the atexit handler runs
    return check_finish("test_docker_client");
}
