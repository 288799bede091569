/**
 * @file docker_cgroup.h
 * A container's CPU time and OOM kills read straight from its cgroup, without
 * the engine.
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

/**
 * Reads how many processes of the container the kernel killed for memory so far,
 * straight from its cgroup (v1 memory.oom_control, v2 memory.events: their
 * `oom_kill` line, kernel 4.13+). Same layouts, ids and return values as
 * docker_cpu_read_cgroup; -EIO also when the file has no `oom_kill` line.
 */
int docker_oom_read_cgroup(const char *id, uint64_t *kills);

/**
 * The value of the line "<key> N" in a cgroup key-value file (cpu.stat,
 * memory.events, memory.oom_control). 0 and *out set; -EIO when the key is
 * missing or its value is not a number.
 */
int docker_cgroup_kv(const char *text, const char *key, uint64_t *out);
