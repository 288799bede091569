/**
 * @file docker_cgroup.h
 * A container's CPU time read straight from its cgroup, without the engine.
 * docker_client.h includes this header.
 */
#pragma once

#include <stdint.h>

/**
 * Reads the container's cumulative CPU nanoseconds straight from its cgroup
 * (v1 cpuacct.usage under the cgroupfs or systemd layouts, v2 cpu.stat
 * usage_usec). Synchronous but cheap (one small pseudo-file). id must be the
 * full 64-hex container id. 0 and *ns set, -ENOENT when no cgroup file is
 * visible from here, -EINVAL for a malformed id, -EIO for unparsable content.
 */
int docker_cpu_read_cgroup(const char *id, uint64_t *ns);
