#include "docker/docker_api.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/util.h"

static int decode_info(const cJSON *json, docker_any_fn fn, void *data);
static int decode_images(const cJSON *json, docker_any_fn fn, void *data);
static int decode_create(const cJSON *json, docker_any_fn fn, void *data);
static int decode_inspect(const cJSON *json, docker_any_fn fn, void *data);
static int decode_containers(const cJSON *json, docker_any_fn fn, void *data);
static int decode_wait(const cJSON *json, docker_any_fn fn, void *data);
static void line_stats(const cJSON *json, docker_any_fn fn, void *data);
static void line_event(const cJSON *json, docker_any_fn fn, void *data);
static void fail_done(int status, const char *err, docker_any_fn fn, void *data);
static void fail_info(int status, const char *err, docker_any_fn fn, void *data);
static void fail_images(int status, const char *err, docker_any_fn fn, void *data);
static void fail_id(int status, const char *err, docker_any_fn fn, void *data);
static void fail_inspect(int status, const char *err, docker_any_fn fn, void *data);
static void fail_containers(int status, const char *err, docker_any_fn fn, void *data);
static void fail_wait(int status, const char *err, docker_any_fn fn, void *data);
static void fail_cpu(int status, const char *err, docker_any_fn fn, void *data);
static void fail_events(int status, const char *err, docker_any_fn fn, void *data);

#define LONG_POLL DOCKER_KIND_LONG_POLL
#define OK_304 DOCKER_KIND_304_OK

const struct docker_req_row docker_req_kinds[DOCKER_REQ_KIND_COUNT] = {
    /* endpoint, flags, decode (a reply body), line (a stream's line), fail */
    [DOCKER_REQ_INFO] = {"GET /info", 0, decode_info, NULL, fail_info},
    [DOCKER_REQ_IMAGES] = {"GET /images/json", 0, decode_images, NULL, fail_images},
    [DOCKER_REQ_CREATE] = {"POST /containers/create", 0, decode_create, NULL, fail_id},
    [DOCKER_REQ_START] = {"POST /containers/{id}/start", OK_304, NULL, NULL, fail_done},
    [DOCKER_REQ_KILL] = {"POST /containers/{id}/kill", 0, NULL, NULL, fail_done},
    [DOCKER_REQ_REMOVE] = {"DELETE /containers/{id}", 0, NULL, NULL, fail_done},
    [DOCKER_REQ_INSPECT] = {"GET /containers/{id}/json", 0, decode_inspect, NULL, fail_inspect},
    [DOCKER_REQ_CONTAINERS] = {"GET /containers/json", 0, decode_containers, NULL, fail_containers},
    [DOCKER_REQ_WAIT] = {"POST /containers/{id}/wait", LONG_POLL, decode_wait, NULL, fail_wait},
    [DOCKER_REQ_STATS] = {"GET /containers/{id}/stats", 0, NULL, line_stats, fail_cpu},
    [DOCKER_REQ_EVENTS] = {"GET /events", 0, NULL, line_event, fail_events},
    // The reply's {"Warnings": [...]} says nothing the agent acts on.
    [DOCKER_REQ_UPDATE] = {"POST /containers/{id}/update", 0, NULL, NULL, fail_done},
};

static cJSON *json_put(cJSON *obj, const char *key, cJSON *item);
static cJSON *json_append(cJSON *array, cJSON *item);
static cJSON *json_new_object(void);
static char *json_print(cJSON *root);
static void json_put_strings(cJSON *obj, const char *key, const char *const *list);
static void json_put_string(cJSON *obj, const char *key, const char *s);
static void json_put_bool(cJSON *obj, const char *key, bool b);
static void create_host_config(cJSON *root, const struct docker_create_spec *s);

char *docker_api_filters(const char *const *pairs)
{
    cJSON *f = json_new_object();
    for (size_t i = 0; pairs[i]; i += 2) {
        if (!pairs[i + 1])
            continue;
        cJSON *list = cJSON_GetObjectItemCaseSensitive(f, pairs[i]);
        if (!list)
            list = json_put(f, pairs[i], cJSON_CreateArray());
        json_append(list, cJSON_CreateString(pairs[i + 1]));
    }
    return json_print(f);
}

char *docker_api_update_body(const struct docker_update *u)
{
    cJSON *root = json_new_object();
    // Memory and MemorySwap go together: the engine refuses Memory above the
    // current MemorySwap (409), and Memory alone leaves memsw as it was.
    if (u->memory > 0) {
        json_put(root, "Memory", cJSON_CreateNumber((double)u->memory));
        json_put(root, "MemorySwap",
                 cJSON_CreateNumber((double)(u->memory_swap ? u->memory_swap : u->memory)));
    }
    if (u->nano_cpus > 0)
        json_put(root, "NanoCpus", cJSON_CreateNumber((double)u->nano_cpus));
    if (u->pids_limit > 0)
        json_put(root, "PidsLimit", cJSON_CreateNumber((double)u->pids_limit));
    return json_print(root);
}

char *docker_api_create_body(const struct docker_create_spec *s)
{
    cJSON *root = json_new_object();
    json_put_string(root, "Image", s->image);
    json_put_strings(root, "Cmd", s->cmd);
    json_put_strings(root, "Entrypoint", s->entrypoint);
    json_put_strings(root, "Env", s->env);
    json_put_string(root, "User", s->user);
    json_put_string(root, "WorkingDir", s->working_dir);
    json_put_string(root, "Hostname", s->hostname);
    json_put_bool(root, "Tty", false);
    json_put_bool(root, "OpenStdin", s->open_stdin);
    json_put_bool(root, "StdinOnce", s->stdin_once);
    json_put_bool(root, "AttachStdin", s->attach_stdin);
    json_put_bool(root, "AttachStdout", s->attach_stdout);
    json_put_bool(root, "AttachStderr", s->attach_stderr);
    if (s->n_labels) {
        cJSON *labels = json_put(root, "Labels", cJSON_CreateObject());
        for (size_t i = 0; i < s->n_labels; i++)
            if (s->labels[i].key)
                json_put_string(labels, s->labels[i].key, s->labels[i].value);
    }
    create_host_config(root, s);
    return json_print(root);
}

/* ---- building ---------------------------------------------------------- */

// cJSON allocates with malloc: a NULL is out of memory, fatal as in xmalloc.
// Adds item to obj under key; returns item.
static cJSON *json_put(cJSON *obj, const char *key, cJSON *item)
{
    PROCTOR_REQUIRE(item && cJSON_AddItemToObject(obj, key, item));
    return item;
}

static cJSON *json_append(cJSON *array, cJSON *item)
{
    PROCTOR_REQUIRE(item && cJSON_AddItemToArray(array, item));
    return item;
}

static cJSON *json_new_object(void)
{
    cJSON *o = cJSON_CreateObject();
    PROCTOR_REQUIRE(o);
    return o;
}

static char *json_print(cJSON *root)
{
    char *text = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    PROCTOR_REQUIRE(text);
    return text;
}

// key: [strings], when the list is set.
static void json_put_strings(cJSON *obj, const char *key, const char *const *list)
{
    if (!list)
        return;
    cJSON *arr = json_put(obj, key, cJSON_CreateArray());
    for (size_t i = 0; list[i]; i++)
        json_append(arr, cJSON_CreateString(list[i]));
}

static void json_put_string(cJSON *obj, const char *key, const char *s)
{
    if (s)
        json_put(obj, key, cJSON_CreateString(s));
}

static void json_put_number(cJSON *obj, const char *key, double d)
{
    json_put(obj, key, cJSON_CreateNumber(d));
}

static void json_put_bool(cJSON *obj, const char *key, bool b)
{
    json_put(obj, key, cJSON_CreateBool(b));
}

// HostConfig, and ExposedPorts after it (the order Docker has always been sent).
static void create_host_config(cJSON *root, const struct docker_create_spec *s)
{
    cJSON *hc = json_put(root, "HostConfig", cJSON_CreateObject());
    if (s->log_driver)
        json_put_string(json_put(hc, "LogConfig", cJSON_CreateObject()), "Type", s->log_driver);
    if (s->memory)
        json_put_number(hc, "Memory", (double)s->memory);
    if (s->memory_swap)
        json_put_number(hc, "MemorySwap", (double)s->memory_swap);
    if (s->memory_swappiness >= 0)
        json_put_number(hc, "MemorySwappiness", s->memory_swappiness);
    if (s->oom_kill_disable)
        json_put_bool(hc, "OomKillDisable", true);
    if (s->pids_limit)
        json_put_number(hc, "PidsLimit", (double)s->pids_limit);
    if (s->nano_cpus)
        json_put_number(hc, "NanoCpus", (double)s->nano_cpus);
    json_put_string(hc, "NetworkMode", s->network_mode);
    json_put_string(hc, "Runtime", s->runtime);
    json_put_strings(hc, "Binds", s->binds);
    json_put_strings(hc, "CapDrop", s->cap_drop);
    json_put_strings(hc, "CapAdd", s->cap_add);
    json_put_strings(hc, "SecurityOpt", s->security_opt);
    json_put_strings(hc, "ExtraHosts", s->extra_hosts);
    if (s->readonly_rootfs)
        json_put_bool(hc, "ReadonlyRootfs", true);
    if (s->n_ulimits) {
        cJSON *ul = json_put(hc, "Ulimits", cJSON_CreateArray());
        for (size_t i = 0; i < s->n_ulimits; i++) {
            cJSON *u = json_append(ul, cJSON_CreateObject());
            json_put_string(u, "Name", s->ulimits[i].name);
            json_put_number(u, "Soft", (double)s->ulimits[i].soft);
            json_put_number(u, "Hard", (double)s->ulimits[i].hard);
        }
    }
    if (!s->n_ports)
        return;
    cJSON *exposed = json_put(root, "ExposedPorts", cJSON_CreateObject());
    cJSON *pb = json_put(hc, "PortBindings", cJSON_CreateObject());
    for (size_t i = 0; i < s->n_ports; i++) {
        const struct docker_port_binding *p = &s->ports[i];
        char key[48], hostport[16];
        snprintf(key, sizeof(key), "%u/%s", p->container_port, p->proto ? p->proto : "tcp");
        snprintf(hostport, sizeof(hostport), "%u", p->host_port);
        // A port bound twice is listed twice here, as it always was.
        json_put(exposed, key, cJSON_CreateObject());
        cJSON *list = cJSON_GetObjectItemCaseSensitive(pb, key);
        if (!list)
            list = json_put(pb, key, cJSON_CreateArray());
        cJSON *b = json_append(list, cJSON_CreateObject());
        json_put_string(b, "HostIp", p->host_ip ? p->host_ip : "");
        json_put_string(b, "HostPort", hostport);
    }
}

/* ---- reading ----------------------------------------------------------- */

static const char *json_str(const cJSON *obj, const char *key)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(it) ? it->valuestring : NULL;
}

// Every number of a reply that becomes an integer goes through here: 0 with
// *out set (dflt when key is absent or not a number), or -EPROTO when the
// number does not fit [min, max] (a cast would be undefined behaviour).
static int json_int(const cJSON *obj, const char *key, int64_t min, int64_t max, int64_t dflt,
                    int64_t *out)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    *out = dflt;
    if (!cJSON_IsNumber(it))
        return 0;
    return util_double_to_int(it->valuedouble, min, max, out) ? -EPROTO : 0;
}

static bool json_bool(const cJSON *obj, const char *key)
{
    return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(obj, key));
}

static size_t json_count_strings(const cJSON *obj)
{
    size_t n = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, obj)
    {
        if (it->string && cJSON_IsString(it))
            n++;
    }
    return n;
}

// Fills kv with obj's string members; returns how many.
static size_t json_fill_kv(const cJSON *obj, struct docker_kv *kv)
{
    size_t n = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, obj)
    {
        if (it->string && cJSON_IsString(it))
            kv[n++] = (struct docker_kv){.key = it->string, .value = it->valuestring};
    }
    return n;
}

// The API sends CgroupVersion as a string ("1", "2"); not a number means
// "not said" (0), a number out of range is a broken reply.
static int cgroup_version(const cJSON *json, int64_t *out)
{
    const char *cg = json_str(json, "CgroupVersion");
    if (!cg)
        return json_int(json, "CgroupVersion", 0, INT_MAX, 0, out);
    char *end;
    errno = 0;
    long long v = strtoll(cg, &end, 10);
    *out = 0;
    if (end == cg)
        return 0;
    if (errno || v < 0 || v > INT_MAX)
        return -EPROTO;
    *out = v;
    return 0;
}

static int decode_info(const cJSON *json, docker_any_fn fn, void *data)
{
    int64_t mem = 0, ncpu = 0, cgv = 0;
    if (!cJSON_IsObject(json))
        return -EPROTO;
    int ret = json_int(json, "MemTotal", 0, INT64_MAX, 0, &mem);
    if (!ret)
        ret = json_int(json, "NCPU", 0, INT_MAX, 0, &ncpu);
    if (!ret)
        ret = cgroup_version(json, &cgv);
    if (ret)
        return ret;
    const cJSON *rts = cJSON_GetObjectItemCaseSensitive(json, "Runtimes");
    const char **names = xcalloc((size_t)cJSON_GetArraySize(rts) + 1, sizeof(*names));
    size_t n = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, rts)
    {
        if (it->string)
            names[n++] = it->string;
    }
    struct docker_info info = {
        .runtimes = names,
        .n_runtimes = n,
        .default_runtime = json_str(json, "DefaultRuntime"),
        .mem_total = mem,
        .ncpu = (int)ncpu,
        .cgroup_version = (int)cgv,
        .server_version = json_str(json, "ServerVersion"),
    };
    ((docker_info_fn)fn)(0, NULL, &info, data);
    free(names);
    return 0;
}

/*
 * The two list replies (images, containers): an array of objects, of which
 * those with an Id become elements, each with its Labels; `fill` reads the
 * element's own fields and `deliver` calls the typed callback.
 */
struct list_shape {
    size_t elem_size;
    int (*fill)(void *elem, const cJSON *item, const char *id, const struct docker_kv *labels,
                size_t n_labels);
    void (*deliver)(docker_any_fn fn, const void *elems, size_t n, void *data);
};

static int decode_list(const cJSON *json, const struct list_shape *shape, docker_any_fn fn,
                       void *data)
{
    if (!cJSON_IsArray(json))
        return -EPROTO;
    size_t n = 0, nkv = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, json)
    {
        n++;
        nkv += json_count_strings(cJSON_GetObjectItemCaseSensitive(it, "Labels"));
    }
    char *elems = xcalloc(n + 1, shape->elem_size);
    struct docker_kv *kvs = xcalloc(nkv + 1, sizeof(*kvs));
    size_t i = 0, k = 0;
    int ret = 0;
    cJSON_ArrayForEach(it, json)
    {
        const char *id = json_str(it, "Id");
        if (!id)
            continue;
        size_t nl = json_fill_kv(cJSON_GetObjectItemCaseSensitive(it, "Labels"), kvs + k);
        ret = shape->fill(elems + i++ * shape->elem_size, it, id, kvs + k, nl);
        if (ret)
            break;
        k += nl;
    }
    if (!ret)
        shape->deliver(fn, elems, i, data);
    free(kvs);
    free(elems);
    return ret;
}

static int fill_image(void *elem, const cJSON *item, const char *id, const struct docker_kv *labels,
                      size_t n_labels)
{
    struct docker_image *img = elem;
    *img = (struct docker_image){.id = id, .labels = labels, .n_labels = n_labels};
    return json_int(item, "Created", INT64_MIN, INT64_MAX, 0, &img->created);
}

static void deliver_images(docker_any_fn fn, const void *elems, size_t n, void *data)
{
    ((docker_images_fn)fn)(0, NULL, elems, n, data);
}

static int fill_container(void *elem, const cJSON *item, const char *id,
                          const struct docker_kv *labels, size_t n_labels)
{
    const char *state = json_str(item, "State");
    *(struct docker_container_summary *)elem = (struct docker_container_summary){
        .id = id, .state = state ? state : "", .labels = labels, .n_labels = n_labels};
    return 0;
}

static void deliver_containers(docker_any_fn fn, const void *elems, size_t n, void *data)
{
    ((docker_containers_fn)fn)(0, NULL, elems, n, data);
}

static int decode_images(const cJSON *json, docker_any_fn fn, void *data)
{
    static const struct list_shape images = {sizeof(struct docker_image), fill_image,
                                             deliver_images};
    return decode_list(json, &images, fn, data);
}

static int decode_containers(const cJSON *json, docker_any_fn fn, void *data)
{
    static const struct list_shape containers = {sizeof(struct docker_container_summary),
                                                 fill_container, deliver_containers};
    return decode_list(json, &containers, fn, data);
}

static int decode_inspect(const cJSON *json, docker_any_fn fn, void *data)
{
    const cJSON *state = cJSON_GetObjectItemCaseSensitive(json, "State");
    const char *id = json_str(json, "Id");
    if (!cJSON_IsObject(state) || !id)
        return -EPROTO;
    const char *status = json_str(state, "Status");
    const cJSON *host = cJSON_GetObjectItemCaseSensitive(json, "HostConfig");
    int64_t code = -1, pid = 0, memory = 0, pids = 0;
    int ret = json_int(state, "ExitCode", INT_MIN, INT_MAX, -1, &code);
    if (!ret)
        ret = json_int(state, "Pid", INT64_MIN, INT64_MAX, 0, &pid);
    if (!ret && cJSON_IsObject(host))
        ret = json_int(host, "Memory", 0, INT64_MAX, 0, &memory);
    if (!ret && cJSON_IsObject(host) && !cJSON_IsNull(cJSON_GetObjectItem(host, "PidsLimit")))
        ret = json_int(host, "PidsLimit", INT64_MIN, INT64_MAX, 0, &pids);
    if (ret)
        return ret;
    struct docker_mount mounts[64];
    size_t nm = 0;
    const cJSON *ml = cJSON_GetObjectItemCaseSensitive(json, "Mounts");
    const cJSON *mo = cJSON_IsArray(ml) ? ml->child : NULL;
    for (; mo && nm < ARRAY_SIZE(mounts); mo = mo->next) {
        const char *src = json_str(mo, "Source"), *dst = json_str(mo, "Destination");
        if (src && dst)
            mounts[nm++] = (struct docker_mount){.source = src, .destination = dst};
    }
    struct docker_container_state st = {
        .mounts = mounts,
        .n_mounts = nm,
        .id = id,
        .status = status ? status : "",
        .running = json_bool(state, "Running"),
        .oom_killed = json_bool(state, "OOMKilled"),
        .exit_code = (int)code,
        .pid = pid,
        .memory = memory,
        .pids_limit = pids,
    };
    ((docker_inspect_fn)fn)(0, NULL, &st, data);
    return 0;
}

static int decode_create(const cJSON *json, docker_any_fn fn, void *data)
{
    const char *id = json_str(json, "Id");
    if (!id)
        return -EPROTO;
    const cJSON *w;
    cJSON_ArrayForEach(w, cJSON_GetObjectItemCaseSensitive(json, "Warnings"))
    {
        if (cJSON_IsString(w))
            log_warn(LOG_DOCKER, "container %.12s: docker warns: %s", id, w->valuestring);
    }
    ((docker_id_fn)fn)(0, NULL, id, data);
    return 0;
}

static int decode_wait(const cJSON *json, docker_any_fn fn, void *data)
{
    int64_t code;
    if (!cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(json, "StatusCode")) ||
        json_int(json, "StatusCode", INT_MIN, INT_MAX, 0, &code))
        return -EPROTO;
    const cJSON *err = cJSON_GetObjectItemCaseSensitive(json, "Error");
    const char *msg = cJSON_IsObject(err) ? json_str(err, "Message") : NULL;
    if (msg && *msg)
        log_warn(LOG_DOCKER, "wait reports: %s", msg);
    ((docker_wait_fn)fn)(0, NULL, (int)code, data);
    return 0;
}

static void line_stats(const cJSON *json, docker_any_fn fn, void *data)
{
    const cJSON *cpu = cJSON_GetObjectItemCaseSensitive(json, "cpu_stats");
    const cJSON *usage = cJSON_GetObjectItemCaseSensitive(cpu, "cpu_usage");
    int64_t total = 0;
    // Docker keeps the stream open after the container stops and sends
    // zeroed samples (and a bare {"read":...}); those carry no CPU reading.
    if (json_int(usage, "total_usage", INT64_MIN, INT64_MAX, 0, &total)) {
        log_warn(LOG_DOCKER, "stats sample with a cpu time out of range skipped");
        return;
    }
    if (total <= 0) {
        log_debug(LOG_DOCKER, "stats sample without cpu time");
        return;
    }
    ((docker_cpu_fn)fn)(0, NULL, total, data);
}

// `Action` and `Actor.ID`, else the older `status` and `id` (Docker 29 sends
// only the former).
static void line_event(const cJSON *json, docker_any_fn fn, void *data)
{
    const char *action = json_str(json, "Action");
    if (!action)
        action = json_str(json, "status");
    const cJSON *actor = cJSON_GetObjectItemCaseSensitive(json, "Actor");
    const char *id = json_str(actor, "ID");
    if (!id)
        id = json_str(json, "id");
    if (!action || !id)
        return;
    // time is bounded so that time * 1e9 (timeNano's default) fits.
    int64_t t = 0, tn = 0;
    if (json_int(json, "time", 0, INT64_MAX / 1000000000, 0, &t) ||
        json_int(json, "timeNano", 0, INT64_MAX, t * 1000000000, &tn)) {
        log_warn(LOG_DOCKER, "docker event %s for %.12s with a time out of range skipped", action,
                 id);
        return;
    }
    const cJSON *attrs = cJSON_GetObjectItemCaseSensitive(actor, "Attributes");
    struct docker_kv *kv = xcalloc(json_count_strings(attrs) + 1, sizeof(*kv));
    struct docker_event e = {
        .action = action,
        .id = id,
        .exit_code = -1,
        .time = t,
        .time_nano = tn,
        .attributes = kv,
        .n_attributes = json_fill_kv(attrs, kv),
    };
    const char *code = json_str(attrs, "exitCode");
    if (code && *code) {
        char *end;
        long v = strtol(code, &end, 10);
        if (*end == '\0' && v >= 0 && v <= 255)
            e.exit_code = (int)v;
    }
    ((docker_event_stream_fn)fn)(0, NULL, &e, data);
    free(kv);
}

/* ---- failing ----------------------------------------------------------- */

static void fail_done(int status, const char *err, docker_any_fn fn, void *data)
{
    ((docker_done_fn)fn)(status, err, data);
}

static void fail_info(int status, const char *err, docker_any_fn fn, void *data)
{
    ((docker_info_fn)fn)(status, err, NULL, data);
}

static void fail_images(int status, const char *err, docker_any_fn fn, void *data)
{
    ((docker_images_fn)fn)(status, err, NULL, 0, data);
}

static void fail_id(int status, const char *err, docker_any_fn fn, void *data)
{
    ((docker_id_fn)fn)(status, err, NULL, data);
}

static void fail_inspect(int status, const char *err, docker_any_fn fn, void *data)
{
    ((docker_inspect_fn)fn)(status, err, NULL, data);
}

static void fail_containers(int status, const char *err, docker_any_fn fn, void *data)
{
    ((docker_containers_fn)fn)(status, err, NULL, 0, data);
}

static void fail_wait(int status, const char *err, docker_any_fn fn, void *data)
{
    ((docker_wait_fn)fn)(status, err, -1, data);
}

static void fail_cpu(int status, const char *err, docker_any_fn fn, void *data)
{
    ((docker_cpu_fn)fn)(status, err, -1, data);
}

static void fail_events(int status, const char *err, docker_any_fn fn, void *data)
{
    ((docker_event_stream_fn)fn)(status, err, NULL, data);
}
