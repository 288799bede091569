#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/util.h"
#include "job/agent_internal.h"
#include "job/pool.h"

/*
 * Discovery: removes the containers an earlier run with this agent id left
 * behind, asks the engine for its runtimes (mapped to environment types by
 * the runtimes policy), and turns the grading images into environments.
 */

// Image labels INGInious reads (spec CONTAINER_PROTOCOL §3).
#define LABEL_NAME "org.inginious.grading.name"
#define LABEL_VERSION "org.inginious.grading.agent_version"
// proctor's own: the image carries proctor's runtime (its intern waits at /__parent.d).
#define LABEL_PROCTOR_RUNTIME "org.proctor.runtime"
#define LABEL_PORTS "org.inginious.grading.ports"
#define LABEL_NEED_ROOT "org.inginious.grading.need_root"
#define LABEL_NEED_GPU "org.inginious.grading.need_gpu"
#define LABEL_ADVERTISE "org.inginious.grading.advertise"

static void env_deinit(struct env *e)
{
    free(e->envtype);
    free(e->name);
    free(e->image_id);
    free(e->runtime);
    memset(e, 0, sizeof *e);
}

void agent_envs_clear(struct agent *a)
{
    for (size_t i = 0; i < a->nenvs; i++)
        env_deinit(&a->envs[i]);
    free(a->envs);
    a->envs = NULL;
    a->nenvs = 0;
    value_deinit(&a->hello_envs);
}

const struct env *agent_env_find(const struct agent *a, const char *envtype, const char *name)
{
    for (size_t i = 0; i < a->nenvs; i++)
        if (!strcmp(a->envs[i].envtype, envtype) && !strcmp(a->envs[i].name, name))
            return &a->envs[i];
    return NULL;
}

/* ---- discovery ---------------------------------------------------------- */

static const char *label_get(const struct docker_image *img, const char *key)
{
    for (size_t i = 0; i < img->n_labels; i++)
        if (!strcmp(img->labels[i].key, key))
            return img->labels[i].value;
    return NULL;
}

static int parse_ports(const char *s, uint16_t *out, size_t *n)
{
    *n = 0;
    if (!s || !*s)
        return 0;
    AUTO_FREE char *copy = xstrdup(s);
    char *save = NULL;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ')
            tok++;
        char *end;
        long p = strtol(tok, &end, 10);
        while (*end == ' ')
            end++;
        if (end == tok || *end || p < 1 || p > 65535 || *n >= JOB_MAX_ENV_PORTS)
            return -EINVAL;
        out[(*n)++] = (uint16_t)p;
    }
    return 0;
}

static void env_add(struct agent *a, const struct policy_runtime *rt,
                    const struct docker_image *img, const char *name, int version,
                    const uint16_t *ports, size_t nports, bool advertised, bool ahead_ok)
{
    for (size_t i = 0; i < a->nenvs; i++) {
        struct env *e = &a->envs[i];
        if (strcmp(e->envtype, rt->envtype) || strcmp(e->name, name))
            continue;
        // Several images share a name: the newest wins, as upstream.
        if (e->created >= img->created)
            return;
        env_deinit(e);
        goto fill;
    }
    a->envs = xrealloc(a->envs, (a->nenvs + 1) * sizeof *a->envs);
    a->nenvs++;
fill:;
    struct env *e = &a->envs[a->nenvs - 1];
    for (size_t i = 0; i < a->nenvs; i++)
        if (!a->envs[i].envtype)
            e = &a->envs[i];
    e->envtype = xstrdup(rt->envtype);
    e->name = xstrdup(name);
    e->image_id = xstrdup(img->id);
    e->runtime = xstrdup(rt->runtime);
    e->created = img->created;
    memcpy(e->ports, ports, nports * sizeof *ports);
    e->nports = nports;
    e->run_as_root = rt->run_as_root;
    e->advertised = advertised;
    e->agent_version = version;
    e->ahead_ok = ahead_ok;
}

/** The AgentHello environments map, and the envtypes every job's `start` lists. */
static void build_hello_envs(struct agent *a)
{
    value_deinit(&a->hello_envs);
    value_set_map(&a->hello_envs);
    value_deinit(&a->envtypes);
    value_set_map(&a->envtypes);
    for (size_t i = 0; i < a->nenvs; i++) {
        const struct env *e = &a->envs[i];
        value_set_bool(value_map_put(&a->envtypes, e->envtype), true);
        struct value *type = value_map_put(&a->hello_envs, e->envtype);
        if (type->type != VALUE_MAP)
            value_set_map(type);
        struct value *info = value_map_put(type, e->name);
        value_set_map(info);
        value_set_str(value_map_put(info, "id"), e->image_id);
        value_set_str(value_map_put(info, "title"), e->name);
        value_set_int(value_map_put(info, "created"), e->created);
        struct value *ports = value_map_put(info, "ports");
        value_set_array(ports);
        for (size_t p = 0; p < e->nports; p++)
            value_set_int(value_array_push(ports), e->ports[p]);
        value_set_str(value_map_put(info, "runtime"), e->runtime);
        value_set_bool(value_map_put(info, "advertised"), e->advertised);
    }
}

static void disc_finish(struct agent *a, const char *err)
{
    agent_ready_fn ready = a->disc_ready;
    void *data = a->disc_data;
    a->disc_ready = NULL;
    a->disc_req = NULL;
    if (ready)
        ready(a, err ? NULL : &a->hello_envs, err, data);
}

static void on_images(int status, const char *err, const struct docker_image *images, size_t n,
                      void *data)
{
    struct agent *a = data;
    a->disc_req = NULL;
    if (status) {
        char msg[512];
        snprintf(msg, sizeof msg, "listing images failed: %s", err ? err : strerror(-status));
        disc_finish(a, msg);
        return;
    }
    agent_envs_clear(a);
    for (size_t i = 0; i < n; i++) {
        const struct docker_image *img = &images[i];
        const char *name = label_get(img, LABEL_NAME);
        const char *version = label_get(img, LABEL_VERSION);
        if (!name || !*name)
            continue;
        // proctord speaks both protocol generations: 3 (0.7-0.9.x) and 4 (HEAD).
        if (!version || (strcmp(version, "3") && strcmp(version, "4"))) {
            log_warn(LOG_JOB, "image %s (%s): agent_version %s not supported, skipped", img->id,
                     name, version ? version : "missing");
            continue;
        }
        uint16_t ports[JOB_MAX_ENV_PORTS];
        size_t nports;
        if (parse_ports(label_get(img, LABEL_PORTS), ports, &nports)) {
            log_warn(LOG_JOB, "image %s (%s): malformed %s label, skipped", img->id, name,
                     LABEL_PORTS);
            continue;
        }
        const char *adv = label_get(img, LABEL_ADVERTISE);
        bool advertised = !adv || !strcmp(adv, "true");
        bool need_root = label_get(img, LABEL_NEED_ROOT) != NULL;
        bool need_gpu = label_get(img, LABEL_NEED_GPU) != NULL;
        for (size_t r = 0; r < a->disc_nrts; r++) {
            const struct policy_runtime *rt = &a->disc_rts[r];
            if ((need_root && !rt->run_as_root) || (need_gpu && !rt->enables_gpu))
                continue;
            const char *prt = label_get(img, LABEL_PROCTOR_RUNTIME);
            env_add(a, rt, img, name, atoi(version), ports, nports, advertised,
                    prt && !strcmp(prt, "1"));
        }
    }
    build_hello_envs(a);
    if (a->pool)
        pool_envs_changed(a->pool);
    log_info(LOG_JOB, "discovered %zu environment(s) from %zu image(s)", a->nenvs, n);
    for (size_t i = 0; i < a->nenvs; i++)
        log_info(LOG_JOB, "  %s/%s -> %.19s (runtime %s)", a->envs[i].envtype, a->envs[i].name,
                 a->envs[i].image_id, a->envs[i].runtime);
    disc_finish(a, NULL);
}

static void on_info(int status, const char *err, const struct docker_info *info, void *data)
{
    struct agent *a = data;
    a->disc_req = NULL;
    if (status) {
        char msg[512];
        snprintf(msg, sizeof msg, "Docker engine info failed: %s", err ? err : strerror(-status));
        disc_finish(a, msg);
        return;
    }
    a->host.cgroup_version = info->cgroup_version;
    policy_runtimes(a->policy, info->runtimes, info->n_runtimes, a->ssh, a->disc_rts,
                    ARRAY_SIZE(a->disc_rts), &a->disc_nrts);
    for (size_t i = 0; i < a->disc_nrts; i++)
        log_debug(LOG_JOB, "runtime %s -> %s%s", a->disc_rts[i].runtime, a->disc_rts[i].envtype,
                  a->disc_rts[i].run_as_root ? " (root)" : "");
    a->disc_req = docker_images_list(a->docker, on_images, a);
    if (!a->disc_req)
        disc_finish(a, "cannot list images");
}

static void start_info(struct agent *a)
{
    a->disc_req = docker_info(a->docker, on_info, a);
    if (!a->disc_req)
        disc_finish(a, "cannot query the Docker engine");
}

static void on_orphan_removed(int status, const char *err, void *data)
{
    struct agent *a = data;
    if (status && status != 404)
        log_warn(LOG_JOB, "removing a leftover container failed: %s", err ? err : "?");
    if (--a->disc_pending_removals == 0)
        start_info(a);
}

static void on_orphans(int status, const char *err, const struct docker_container_summary *list,
                       size_t n, void *data)
{
    struct agent *a = data;
    a->disc_req = NULL;
    if (status) {
        char msg[512];
        snprintf(msg, sizeof msg, "listing containers failed: %s", err ? err : strerror(-status));
        disc_finish(a, msg);
        return;
    }
    // Containers of ours that no job of this process knows: a previous run
    // died and left them behind. Nobody waits for them any more.
    for (size_t i = 0; i < n; i++) {
        bool known = false;
        for (size_t l = 0; l < list[i].n_labels; l++) {
            if (strcmp(list[i].labels[l].key, JOB_LABEL_JOB))
                continue;
            for (struct job *j = a->jobs; j; j = job_next(j))
                known |= job_owns_label(j, list[i].labels[l].value);
            known |= a->pool && pool_owns(a->pool, list[i].labels[l].value);
        }
        if (known)
            continue;
        log_info(LOG_JOB, "removing leftover container %.12s", list[i].id);
        a->disc_pending_removals++;
        if (!docker_container_remove(a->docker, list[i].id, true, true, on_orphan_removed, a))
            a->disc_pending_removals--;
    }
    if (a->disc_pending_removals == 0)
        start_info(a);
}

int agent_discover(struct agent *a, agent_ready_fn ready, void *data)
{
    if (a->disc_ready)
        return -EBUSY;
    a->disc_ready = ready;
    a->disc_data = data;
    AUTO_FREE char *label = xasprintf("%s=%s", JOB_LABEL_AGENT, a->agent_id);
    a->disc_req = docker_containers_list_by_label(a->docker, label, true, on_orphans, a);
    if (!a->disc_req) {
        a->disc_ready = NULL;
        return -EIO;
    }
    return 0;
}
