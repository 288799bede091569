// Unit tests of src/job/agent.c that need no Docker engine: the agent's
// identity and work-directory lock, and the port pool's order.

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "core/loop.h"
#include "core/util.h"
#include "job/agent.h"
#include "job/agent_internal.h"

static void sink_started(void *data, const char *job_id)
{
    PROCTOR_UNUSED(data);
    PROCTOR_UNUSED(job_id);
}

static void sink_done(void *data, const struct backend_job_done *done)
{
    PROCTOR_UNUSED(data);
    PROCTOR_UNUSED(done);
}

static void sink_ssh(void *data, const char *job_id, const char *host, int port, const char *user,
                     const char *password)
{
    PROCTOR_UNUSED(data);
    PROCTOR_UNUSED(job_id);
    PROCTOR_UNUSED(host);
    PROCTOR_UNUSED(port);
    PROCTOR_UNUSED(user);
    PROCTOR_UNUSED(password);
}

static const struct agent_sink sink = {
    .job_started = sink_started, .job_done = sink_done, .ssh_debug = sink_ssh};

static struct agent *new_agent(struct loop *loop, const char *tmp, const char *prefix, char *err,
                               size_t errlen)
{
    struct agent_config cfg = {
        .concurrency = 1,
        .tasks_dir = "/nonexistent",
        .tmp_dir = tmp,
        .id_prefix = prefix,
        .debug_host = "127.0.0.1",
        .debug_port_min = 64120,
        .debug_port_max = 64125,
    };
    return agent_new(loop, &cfg, &sink, err, errlen);
}

static void test_identity(struct loop *loop, const char *top)
{
    char err[512] = "";
    AUTO_FREE char *tmp = xasprintf("%s/work", top);
    struct agent *a = new_agent(loop, tmp, NULL, err, sizeof err);
    CHECK(a != NULL);
    if (!a) {
        fprintf(stderr, "agent_new: %s\n", err);
        return;
    }
    AUTO_FREE char *id = xstrdup(a->agent_id);
    CHECK(!strncmp(id, "proctord-", 9) && strlen(id) == 9 + 16);

    // A second agent on the same work directory is refused, naming the holder.
    struct agent *b = new_agent(loop, tmp, NULL, err, sizeof err);
    CHECK(b == NULL);
    AUTO_FREE char *want =
        xasprintf("another agent (pid %ld) is using the work directory", (long)getpid());
    CHECK(strstr(err, want) != NULL);

    // A job directory left by a crash is removed at the next start; the id stays.
    AUTO_FREE char *left = xasprintf("%s/job-left", tmp);
    CHECK(mkdir(left, 0700) == 0);
    agent_free(a);
    a = new_agent(loop, tmp, NULL, err, sizeof err);
    CHECK(a != NULL);
    CHECK(a && !strcmp(a->agent_id, id));
    CHECK(access(left, F_OK) < 0 && errno == ENOENT);
    agent_free(a);

    // Another work directory is another agent; a prefix names the CLI's.
    AUTO_FREE char *tmp2 = xasprintf("%s/work2", top);
    struct agent *c = new_agent(loop, tmp2, "proctor-cli", err, sizeof err);
    CHECK(c != NULL);
    CHECK(c && strcmp(c->agent_id, id) && !strncmp(c->agent_id, "proctor-cli-", 12));
    agent_free(c);

    // A damaged id file is replaced by a fresh id rather than trusted.
    AUTO_FREE char *idfile = xasprintf("%s/.agent-id", tmp);
    FILE *f = fopen(idfile, "w");
    CHECK(f != NULL);
    if (f) {
        fputs("proctord-../../etc\n", f);
        fclose(f);
    }
    a = new_agent(loop, tmp, NULL, err, sizeof err);
    CHECK(a && strcmp(a->agent_id, id) && !strncmp(a->agent_id, "proctord-", 9) &&
          !strchr(a->agent_id, '/'));
    agent_free(a);
}

static void test_ports_ascending(struct loop *loop, const char *top)
{
    char err[512] = "", reason[512] = "";
    AUTO_FREE char *tmp = xasprintf("%s/ports", top);
    struct agent *a = new_agent(loop, tmp, NULL, err, sizeof err);
    CHECK(a != NULL);
    if (!a)
        return;
    uint16_t p1, p2, p3;
    CHECK(agent_ports_take(a, "j1", 1, &p1, reason, sizeof reason) == 0 && p1 == 64120);
    CHECK(agent_ports_take(a, "j2", 1, &p2, reason, sizeof reason) == 0 && p2 == 64121);
    agent_ports_give(a, &p1, 1);
    // The shipped policy takes the lowest free port: the one given back.
    CHECK(agent_ports_take(a, "j3", 1, &p3, reason, sizeof reason) == 0 && p3 == 64120);
    agent_ports_give(a, &p2, 1);
    agent_ports_give(a, &p3, 1);
    CHECK(a->nports_free == 6);
    for (size_t i = 0; i < a->nports_free; i++)
        CHECK(a->ports_free[i] == 64120 + i);
    agent_free(a);
}

int main(void)
{
    char top[] = "/tmp/proctor-test-agent-XXXXXX";
    REQUIRE_OR_EXIT(mkdtemp(top) != NULL, "mkdtemp");
    struct loop *loop = loop_new();
    REQUIRE_OR_EXIT(loop != NULL, "cannot create a loop");
    test_identity(loop, top);
    test_ports_ascending(loop, top);
    loop_free(loop);
    util_rmtree(top);
    return check_finish("agent");
}
