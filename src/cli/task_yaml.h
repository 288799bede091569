/**
 * @file task_yaml.h
 * What `proctor run` reads from a task's task.yaml, through libyaml (a real
 * YAML 1.1 parser): the environment and the limits. Nothing else of the file
 * is interpreted, but the whole file must parse.
 *
 * Read, from the first document of the file:
 *   environment_id                        a scalar: the environment's name
 *   environment_parameters.limits.KEY     KEY one of time, hard_time, memory
 *   limits.KEY                            the same, as older tasks have it; a
 *                                         key given in both places is taken
 *                                         from environment_parameters
 * A limit is a number, plain or quoted ("10", 10, '10.5': truncated to an
 * integer); an empty or null one (`hard_time: ''`, as INGInious's task editor
 * writes it) counts as absent. Anything else there is an error.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

struct task_yaml {
    char *environment_id; /* NULL when absent or empty */
    bool has_time, has_hard_time, has_memory;
    long long time, hard_time, memory; /* CPU seconds, wall seconds, MiB */
};

/**
 * Parses text[0..len) (`name` is the file name used in error messages).
 * 0 with *out filled (caller releases with task_yaml_deinit), or -EINVAL
 * with "name:line:column: problem" in err (lines and columns from 1) and
 * *out empty.
 */
int task_yaml_parse(const char *text, size_t len, const char *name, struct task_yaml *out,
                    char *err, size_t errlen);
/**
 * Reads and parses the file at path (at most 1 MiB). -ENOENT when there is no
 * such file (*out empty, err untouched: the caller's defaults apply); other
 * errors as task_yaml_parse, or a read error naming the file.
 */
int task_yaml_read(const char *path, struct task_yaml *out, char *err, size_t errlen);
/** Frees what *t holds and empties it. */
void task_yaml_deinit(struct task_yaml *t);
