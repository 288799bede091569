/**
 * @file pool.h
 * The warm pool: grading containers created, attached and started before
 * their job exists. The runner (INGInious's and proctor's) does nothing until
 * it reads `start` on its stdin, so such a container waits at no CPU cost; a
 * job that takes it skips create, attach and start (most of the Docker floor).
 *
 * What is fixed at creation (image, runtime, network, ports, mounts, caps,
 * ulimits, labels) is the job-independent spec: no network, no ports, the
 * environment's runtime, the hardening policy's caps and ulimits, and the job
 * directory's mounts pointing at a fresh directory of the agent's. A job takes
 * a pooled container only when its own spec is that one; otherwise it starts
 * cold, unchanged. Memory (with swap) and the pids limit are updated on the
 * claim when they differ; the CPU and wall-clock limits count from the claim.
 * A pooled container serves one job and is never reused.
 *
 * How many wait per environment is policies/pool.lua's answer (recent
 * arrivals, slots, host memory), under hard caps here. Refilling and removal
 * happen off every job's critical path, POOL_MAX_MAKING containers being made at a time.
 * Pooled containers carry the agent's labels with role `pool`, so a restart's
 * orphan clean-up removes them; a drain removes them; so does a discovery that
 * finds another image for their environment, and a policy reload that changes
 * their spec. One that dies, or speaks, while waiting is removed, never handed out.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "docker/docker_events.h"
#include "job/container.h"

struct pool;
struct pool_entry;
struct student;
struct job_host;
struct env;

/** Hard caps: what the policy answers is cut to these. */
#define POOL_MAX_PER_ENV 8
#define POOL_MAX_TOTAL 16
/**
 * Containers being made at once: a refill competes with running jobs for the engine, but one
 * at a time cannot keep up with back-to-back jobs answered at their result (README "Warm pool").
 */
#define POOL_MAX_MAKING 2
/** How often the pool asks its policy (also at once after each claim or death). */
#define POOL_PLAN_MS 5000

/** `enabled` false: never holds a container (--no-pool). `slots`: the agent's job slots. */
struct pool *pool_new(const struct job_host *host, int64_t slots, bool enabled);
/** Frees the records at once; containers still there are left to the next start's clean-up. */
void pool_free(struct pool *p);

/** What a job needs of a pooled container; every pointer is borrowed. */
struct pool_want {
    const struct env *env;
    const char *envtype, *envname; /* as the backend named them */
    int64_t memory_mib;
    const struct policy_hardening *hard;
    bool plain; /* no network, no ports: the only jobs a pooled container can serve */
    /* the student environment the job's task asked for before (its image allows a
       student container started ahead): the pool pairs one with its containers */
    const char *student_env;
    int64_t student_memory_mib; /* and the memory its request got */
};

/**
 * Counts as a job for this environment now (--warm): the policy sees it used
 * before its first job, whose limits are not known yet (the limits policy's
 * answer for a job without limits is used).
 */
void pool_prewarm(struct pool *p, const char *envtype, const char *envname);
/**
 * A job of this environment asked for a plain student container of student_env
 * (its image allows one started ahead) and got memory_mib: the pool pairs one
 * with its waiting containers from now on (for 10 minutes after the last such job).
 */
void pool_note_student(struct pool *p, const char *envtype, const char *envname,
                       const char *student_env, int64_t memory_mib);
/** A job arrived for this environment (counts for the policy, even when it starts cold). */
void pool_note_arrival(struct pool *p, const struct pool_want *w);
/**
 * Takes a waiting container that fits: NULL when none does. The caller owns
 * the entry from now on (pool_entry_container, pool_entry_dir), adopts the
 * container (ct_adopt) and frees the record with pool_entry_free once it is
 * gone, or hands it back with pool_discard.
 */
struct pool_entry *pool_take(struct pool *p, const struct pool_want *w);
struct container *pool_entry_container(struct pool_entry *e);
/**
 * Its student part, started ahead in the same directory (NULL: none): the
 * caller owns it from now on (student_part_adopt).
 */
struct student *pool_entry_student(struct pool *p, struct pool_entry *e);
/** The creation-time fields of two hardening answers (caps, ulimits, no_new_privileges) agree. */
bool pool_same_hardening(const struct policy_hardening *a, const struct policy_hardening *b);
/** The directory its mounts point at (the job's directory from now on). */
const char *pool_entry_dir(const struct pool_entry *e);
/** Whether memory and pids must be updated for w; fills *u with what differs. */
bool pool_entry_update(const struct pool_entry *e, const struct pool_want *w,
                       struct docker_update *u);
/** Whether the container's `pool` label value is this entry's (orphan clean-up). */
const char *pool_entry_label(const struct pool_entry *e);
/** Frees a taken entry whose container is gone (ct_remove done); the directory is the caller's. */
void pool_entry_free(struct pool_entry *e);
/** A taken entry its job could not use (it died before the claim): the pool removes it. */
void pool_discard(struct pool *p, struct pool_entry *e);

/** A Docker event about a container of the pool: true when it was one of its waiting ones. */
bool pool_on_event(struct pool *p, const struct docker_event *ev);
/** Whether a container labelled org.proctor.job=`label` is one of the pool's. */
bool pool_owns(const struct pool *p, const char *label);
/** After a discovery: removes containers whose environment went away or changed image. */
void pool_envs_changed(struct pool *p);
/** After a policy reload: removes containers whose spec the policies no longer give. */
void pool_policy_reloaded(struct pool *p);
/** Drain or stop: removes every container and makes no more. */
void pool_drain(struct pool *p);
/** No container of the pool exists any more (after pool_drain). */
bool pool_empty(const struct pool *p);
/** Containers waiting now (for tests, metrics and the status of proctord). */
size_t pool_waiting(const struct pool *p);
