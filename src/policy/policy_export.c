/*
 * What `proctor test-policies` runs busted with (policy.h): the host Lua and
 * the shipped policies embedded in this very binary, and the busted helper,
 * written out to a directory, so that an admin's specs run on the same code
 * as the daemon, wherever proctor is installed.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/util.h"
#include "policy/policy.h"
#include "policy/policy_helper_embedded.h"
#include "policy/policy_lua_embedded.h"
#include "policy/policy_shipped_embedded.h"

static int write_file(const char *dir, const char *sub, const char *name, const unsigned char *text,
                      size_t len, char *err, size_t errlen)
{
    AUTO_FREE char *path = xasprintf("%s/%s%s.lua", dir, sub, name);
    int ret = 0;
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0444);
    if (fd < 0)
        ret = -errno;
    for (size_t off = 0; !ret && off < len;) {
        ssize_t n = write(fd, text + off, len - off);
        if (n < 0 && errno != EINTR)
            ret = -errno;
        else if (n > 0)
            off += (size_t)n;
    }
    if (fd >= 0 && close(fd) < 0 && !ret)
        ret = -errno;
    if (ret)
        util_err(err, errlen, "%s: %s", path, strerror(-ret));
    return ret;
}

int policy_export_embedded(const char *dir, char *err, size_t errlen)
{
    AUTO_FREE char *lua = xasprintf("%s/lua", dir);
    AUTO_FREE char *agent = xasprintf("%s/lua/agent", dir);
    AUTO_FREE char *policies = xasprintf("%s/policies", dir);
    int ret = 0;
    if (mkdir(lua, 0755) < 0 || mkdir(agent, 0755) < 0 || mkdir(policies, 0755) < 0) {
        ret = -errno;
        util_err(err, errlen, "%s: %s", dir, strerror(errno));
    }
    for (size_t i = 0; !ret && i < ARRAY_SIZE(policy_lua_modules); i++)
        ret = write_file(dir, "lua/agent/", policy_lua_modules[i].name, policy_lua_modules[i].text,
                         policy_lua_modules[i].len, err, errlen);
    for (size_t i = 0; !ret && i < ARRAY_SIZE(policy_shipped_files); i++)
        ret = write_file(dir, "policies/", policy_shipped_files[i].name,
                         policy_shipped_files[i].text, policy_shipped_files[i].len, err, errlen);
    for (size_t i = 0; !ret && i < ARRAY_SIZE(policy_helper_files); i++)
        ret = write_file(dir, "", policy_helper_files[i].name, policy_helper_files[i].text,
                         policy_helper_files[i].len, err, errlen);
    return ret;
}

void policy_export_remove(const char *dir)
{
    for (size_t i = 0; i < ARRAY_SIZE(policy_lua_modules); i++) {
        AUTO_FREE char *p = xasprintf("%s/lua/agent/%s.lua", dir, policy_lua_modules[i].name);
        unlink(p);
    }
    for (size_t i = 0; i < ARRAY_SIZE(policy_shipped_files); i++) {
        AUTO_FREE char *p = xasprintf("%s/policies/%s.lua", dir, policy_shipped_files[i].name);
        unlink(p);
    }
    for (size_t i = 0; i < ARRAY_SIZE(policy_helper_files); i++) {
        AUTO_FREE char *p = xasprintf("%s/%s.lua", dir, policy_helper_files[i].name);
        unlink(p);
    }
    static const char *const dirs[] = {"lua/agent", "lua", "policies", ""};
    for (size_t i = 0; i < ARRAY_SIZE(dirs); i++) {
        AUTO_FREE char *p = xasprintf("%s/%s", dir, dirs[i]);
        rmdir(p);
    }
}
