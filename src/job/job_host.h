/**
 * @file job_host.h
 * What a job may use of the agent that runs it: the services (loop, Docker
 * client, filesystem worker, policy host, result sink), the agent's settings,
 * and four calls back into the agent. The agent's own state (environment
 * table, port pool, job list) stays private to src/job/agent.c; a job reaches
 * it only through these calls.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "core/loop.h"
#include "core/value.h"
#include "core/worker.h"
#include "docker/docker_client.h"
#include "job/agent.h"
#include "policy/policy.h"

#define JOB_LABEL_AGENT "org.proctor.agent"
#define JOB_LABEL_JOB "org.proctor.job"
#define JOB_LABEL_ROLE "org.proctor.role"
#define JOB_MAX_ENV_PORTS 8

/** One environment the agent offers: (envtype, name) -> image + runtime. */
struct env {
    char *envtype;
    char *name;
    char *image_id;
    char *runtime;
    int64_t created;
    uint16_t ports[JOB_MAX_ENV_PORTS]; /* container ports from the ports label */
    size_t nports;
    bool run_as_root;
    bool advertised;
    int agent_version; /* the image's container protocol: 3 (0.7-0.9.x) or 4 (HEAD) */
    /* org.proctor.runtime: its intern can be started before its request and wait at
       /__parent.d (students ahead, job_student.c) */
    bool ahead_ok;
};

struct job;
struct pool;
struct student_memory;

struct job_host {
    struct loop *loop;
    struct docker_client *docker;
    struct worker *worker; /* blocking filesystem work, off the loop */
    struct policy_host *policy;
    struct agent_sink sink;
    const char *agent_id;   /* org.proctor.agent of every container */
    const char *tasks_dir;  /* DIR/course/task */
    const char *tmp_dir;    /* job directories */
    const char *debug_host; /* NULL: SSH debug off */
    bool ssh;               /* the -ssh environment types are offered */
    bool answer_at_exit;    /* judge a job at its container's exit, not at its result */
    int cgroup_version;     /* 1 or 2 (0: unknown) */
    /* {envtype: true} of every environment, for the runner's `start` (rebuilt by discovery) */
    const struct value *envtypes;
    struct pool *pool; /* the warm pool (pool.h); NULL: none */
    /* which tasks ask for student containers (job_student.c); NULL: none started ahead */
    struct student_memory *students_seen;
    struct agent *agent; /* for the calls below only */
};

/** Finds an environment; NULL if unknown. Valid until the next discovery: copy what you keep. */
/* job_student.c: which tasks asked for student containers (students started ahead) */
struct student_memory *student_memory_new(void);
void student_memory_free(struct student_memory *m);
/**
 * The environment course/task's last plain run_student request asked for, in
 * *memory_mib the memory it got, in *calls how many its last job asked; NULL
 * when none is known (or m is NULL).
 */
const char *student_memory_recall(struct student_memory *m, const char *course, const char *task,
                                  size_t *calls, int64_t *memory_mib);

const struct env *agent_env_find(const struct agent *a, const char *envtype, const char *name);
/** Takes n ports from the pool through the ports policy; 0 or -EPERM with reason. */
int agent_ports_take(struct agent *a, const char *job_id, size_t n, uint16_t *out, char *reason,
                     size_t reasonlen);
/** Returns ports to the pool. */
void agent_ports_give(struct agent *a, const uint16_t *ports, size_t n);
/**
 * A container of ours that could not be removed (the engine failed or was away):
 * the agent asks again later, with a backoff, whatever becomes of the job.
 * `container_id` is copied.
 */
void agent_remove_later(struct agent *a, const char *container_id);
/**
 * A job that may have left a container whose id it never learnt (a create whose
 * answer was lost): once the job is over, the agent removes every container of
 * ours labelled with it. `job_id` is copied.
 */
void agent_sweep_job_later(struct agent *a, const char *job_id);
/** Called by a job once it has reported and released everything: unlinks and frees it. */
void agent_job_finished(struct agent *a, struct job *j);
/** Called by the pool when a drain has removed its last container. */
void agent_pool_empty(struct agent *a);
