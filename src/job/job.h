/**
 * @file job.h
 * Internal to the job area: the agent's shared state and one grading job's
 * supervisor (a state machine per job). agent.c owns the agent-wide parts
 * (environments, port pool, job list); job.c runs one job from BackendNewJob
 * to exactly one AgentJobDone, with its student containers.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "backend/backend_proto.h"
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
/** How long agent_free() keeps the loop running to remove containers. */
#define AGENT_CLOSE_MS 20000

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
};

struct job;

struct agent {
    struct loop *loop;
    struct docker_client *docker;
    struct worker *worker; /* blocking filesystem work, off the loop */
    struct docker_events *events;
    struct policy_host *policy;
    struct agent_sink sink;
    char *friendly_name, *agent_id, *tasks_dir, *tmp_dir, *debug_host, *docker_host;
    int lock_fd; /* flock on tmp_dir/.agent.lock, held for the agent's life */
    int64_t concurrency;
    bool ssh;
    int64_t host_memory_mib;
    int cgroup_version;
    bool cgroup_cpu_direct; /* cpuacct readable from here: poll it instead of stats streams */
    struct env *envs;
    size_t nenvs;
    struct value hello_envs;
    /* port pool: C owns it, the ports policy chooses from it */
    uint16_t *ports_free;
    size_t nports_free;
    bool ports_enabled;
    struct job *jobs; /* singly linked */
    size_t njobs;
    /* discovery in progress */
    struct docker_req *disc_req;
    agent_ready_fn disc_ready;
    void *disc_data;
    size_t disc_pending_removals;
    struct policy_runtime disc_rts[32]; /* runtimes -> envtypes of the last discovery */
    size_t disc_nrts;
    bool closing; /* draining or freeing: new jobs are refused */
    uint64_t close_deadline_ms;
};

/** Finds an environment; NULL if unknown. Borrowed from the agent. */
const struct env *agent_env_find(const struct agent *a, const char *envtype, const char *name);
/** Takes n ports from the pool through the ports policy; 0 or -EPERM with reason. */
int agent_ports_take(struct agent *a, const char *job_id, size_t n, uint16_t *out, char *reason,
                     size_t reasonlen);
/** Returns ports to the pool. */
void agent_ports_give(struct agent *a, const uint16_t *ports, size_t n);
/** Called by a job once it has reported and released everything: unlinks and frees it. */
void agent_job_finished(struct agent *a, struct job *j);

/**
 * Starts a job. Reports AgentJobStarted at once and, whatever happens later,
 * exactly one AgentJobDone through the agent's sink. Returns the job (owned
 * by the agent's list) or NULL when it finished synchronously.
 */
struct job *job_start(struct agent *a, const struct backend_new_job *msg);
/** Backend kill: the job ends as "killed" with the given previous state. */
void job_kill(struct job *j, const char *state);
/** The agent stops the job (drain deadline): it ends as a crash with `text` (borrowed). */
void job_stop(struct job *j, const char *text);
/** The backend forgot the job: stop and clean up without reporting. */
void job_abandon(struct job *j);
const char *job_id(const struct job *j);
/** Docker event for one of our containers (die/oom). */
void job_on_event(struct job *j, const struct docker_event *ev);
struct job *job_next(struct job *j);
void job_set_next(struct job *j, struct job *next);
/** Frees a finished job (after agent_job_finished unlinked it). */
void job_free(struct job *j);
