/**
 * @file agent_internal.h
 * The agent's own state, private to agent.c and discovery.c. Jobs never see
 * it: they use the `struct job_host` embedded here (job_host.h).
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "job/agent.h"
#include "job/job.h"
#include "job/job_host.h"

struct stray; /* janitor.c */

struct agent {
    struct job_host host; /* what jobs see; host.agent == this */
    struct loop *loop;
    struct docker_client *docker;
    struct worker *worker;
    struct docker_events *events;
    struct policy_host *policy;
    struct agent_sink sink;
    char *friendly_name, *agent_id, *tasks_dir, *tmp_dir, *debug_host, *docker_host;
    int lock_fd; /* flock on tmp_dir/.agent.lock, held for the agent's life */
    int64_t concurrency;
    bool ssh;
    int64_t host_memory_mib;
    struct env *envs;
    size_t nenvs;
    struct value hello_envs;
    struct value envtypes; /* {envtype: true}, for every job's `start` */
    /* port pool: C owns it, the ports policy chooses from it */
    uint16_t *ports_free;
    size_t nports_free;
    bool ports_enabled;
    struct pool *pool; /* NULL: no warm pool */
    struct job *jobs;  /* singly linked */
    size_t njobs;
    /* discovery in progress */
    struct docker_req *disc_req;
    agent_ready_fn disc_ready;
    void *disc_data;
    size_t disc_pending_removals;
    struct policy_runtime disc_rts[32]; /* runtimes -> envtypes of the last discovery */
    size_t disc_nrts;
    bool closing; /* draining or freeing: new jobs are refused */
    /* agent_check_work_dir in progress */
    agent_check_fn check_done;
    void *check_data;
    struct docker_req *check_req;
    uint64_t check_timer;
    /* the janitor (janitor.c): removals that failed, jobs that may have left one */
    struct stray *strays, *stray_cur;
    size_t nstrays;
    struct docker_req *stray_req;
    uint64_t stray_timer;
    long stray_delay;
};

/* janitor.c */
/** Cancels what the janitor has in flight and forgets every entry. */
void agent_janitor_free(struct agent *a);
/** Entries not done yet (the one in flight included). */
size_t agent_janitor_pending(const struct agent *a);

/* discovery.c */
/** Forgets every environment. */
void agent_envs_clear(struct agent *a);
