/**
 * @file job.h
 * One grading job, as the agent sees it: started from a BackendNewJob, it
 * answers exactly one AgentJobDone through the host's sink whatever happens,
 * then hands itself back with agent_job_finished() once every container it
 * made is removed. Its insides: job_internal.h.
 */
#pragma once

#include "backend/backend_proto.h"
#include "docker/docker_client.h"
#include "job/job_host.h"

struct job;

/**
 * Starts a job. Reports AgentJobStarted at once and, whatever happens later,
 * exactly one AgentJobDone through the host's sink. Returns the job (the
 * agent keeps it in its list) or NULL when it finished synchronously.
 */
struct job *job_start(const struct job_host *h, const struct backend_new_job *msg);
/** Backend kill: the job ends as "killed" with the given previous state. */
void job_kill(struct job *j, const char *state);
/** The agent stops the job (drain deadline): it ends as a crash with `text` (borrowed). */
void job_stop(struct job *j, const char *text);
/** The backend forgot the job: stop and clean up without reporting. */
void job_abandon(struct job *j);
const char *job_id(const struct job *j);
/** Whether a container labelled org.proctor.job=`label` is this job's (its id, or its pooled
 * container's label). */
bool job_owns_label(const struct job *j, const char *label);
/** Where the job stands (agent_job_status). 0. */
int job_status(const struct job *j, struct agent_job_status *st);
/** Docker event for one of its containers (die/oom). */
void job_on_event(struct job *j, const struct docker_event *ev);
struct job *job_next(struct job *j);
void job_set_next(struct job *j, struct job *next);
/** Frees a job at once (after agent_job_finished unlinked it, or at exit). No Docker calls. */
void job_free(struct job *j);
