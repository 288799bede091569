#include "docker/docker_cgroup.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"

// Where each layout keeps the counter: the cgroupfs and systemd drivers of
// cgroup v1 (cpuacct.usage, in ns) and v2 (cpu.stat usage_usec, in us). The
// first file that exists tells the version.
static const struct {
    const char *prefix, *suffix;
    bool v1;
} cgroup_paths[] = {
    {"/sys/fs/cgroup/cpuacct/docker/", "/cpuacct.usage", true},
    {"/sys/fs/cgroup/cpu,cpuacct/docker/", "/cpuacct.usage", true},
    {"/sys/fs/cgroup/cpuacct/system.slice/docker-", ".scope/cpuacct.usage", true},
    {"/sys/fs/cgroup/cpu,cpuacct/system.slice/docker-", ".scope/cpuacct.usage", true},
    {"/sys/fs/cgroup/system.slice/docker-", ".scope/cpu.stat", false},
    {"/sys/fs/cgroup/docker/", "/cpu.stat", false},
};

// The memory controller's files: v1's oom_control, v2's memory.events.
static const char *const oom_paths[][2] = {
    {"/sys/fs/cgroup/memory/docker/", "/memory.oom_control"},
    {"/sys/fs/cgroup/memory/system.slice/docker-", ".scope/memory.oom_control"},
    {"/sys/fs/cgroup/system.slice/docker-", ".scope/memory.events"},
    {"/sys/fs/cgroup/docker/", "/memory.events"},
};

static bool is_full_id(const char *id);
static int parse_usage(const char *text, bool v1, uint64_t *ns);

int docker_cpu_read_cgroup(const char *id, uint64_t *ns)
{
    if (PROCTOR_FAILS(id && ns) || !is_full_id(id))
        return -EINVAL;
    int ret = -ENOENT;
    for (size_t i = 0; i < ARRAY_SIZE(cgroup_paths) && ret == -ENOENT; i++) {
        AUTO_FREE char *path =
            xasprintf("%s%s%s", cgroup_paths[i].prefix, id, cgroup_paths[i].suffix);
        AUTO_FREE char *text = NULL;
        ret = util_read_file(path, 4096, &text, NULL);
        if (ret == 0)
            ret = parse_usage(text, cgroup_paths[i].v1, ns);
    }
    return ret;
}

int docker_oom_read_cgroup(const char *id, uint64_t *kills)
{
    if (PROCTOR_FAILS(id && kills) || !is_full_id(id))
        return -EINVAL;
    int ret = -ENOENT;
    for (size_t i = 0; i < ARRAY_SIZE(oom_paths) && ret == -ENOENT; i++) {
        AUTO_FREE char *path = xasprintf("%s%s%s", oom_paths[i][0], id, oom_paths[i][1]);
        AUTO_FREE char *text = NULL;
        ret = util_read_file(path, 4096, &text, NULL);
        if (ret == 0)
            ret = docker_cgroup_kv(text, "oom_kill", kills);
    }
    return ret;
}

int docker_cgroup_kv(const char *text, const char *key, uint64_t *out)
{
    if (PROCTOR_FAILS(text && key && out))
        return -EINVAL;
    size_t klen = strlen(key);
    for (const char *line = text; *line;) {
        const char *eol = strchr(line, '\n');
        if (!strncmp(line, key, klen) && line[klen] == ' ') {
            const char *p = line + klen + 1;
            char *end = NULL;
            errno = 0;
            unsigned long long v = strtoull(p, &end, 10);
            if (end == p || errno || !isdigit((unsigned char)*p) || (*end && *end != '\n'))
                return -EIO;
            *out = (uint64_t)v;
            return 0;
        }
        if (!eol)
            break;
        line = eol + 1;
    }
    return -EIO;
}

static bool is_full_id(const char *id)
{
    size_t n = 0;
    for (; id[n]; n++)
        if (!isxdigit((unsigned char)id[n]) || isupper((unsigned char)id[n]))
            return false;
    return n == 64;
}

// v1: the whole file is the count in ns; v2: the "usage_usec N" line, in us.
static int parse_usage(const char *text, bool v1, uint64_t *ns)
{
    uint64_t v;
    if (!v1) {
        if (docker_cgroup_kv(text, "usage_usec", &v) || v > UINT64_MAX / 1000u)
            return -EIO;
        *ns = v * 1000u;
        return 0;
    }
    char *end = NULL;
    errno = 0;
    v = strtoull(text, &end, 10);
    if (end == text || errno)
        return -EIO;
    *ns = v;
    return 0;
}
