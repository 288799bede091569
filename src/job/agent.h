/**
 * @file agent.h
 * The agent: everything one proctord (or one `proctor run`) owns on its loop —
 * the Docker client, the policy host, the discovered environments, the port
 * pool and the running jobs — and the INGInious job protocol around them.
 *
 * Results leave through a `struct agent_sink`: proctord's sink encodes them for
 * the backend link, `proctor run` prints them. The agent never sends a message
 * itself, so the same job code serves both.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "backend/backend_proto.h"
#include "core/loop.h"
#include "core/value.h"

struct agent;

#define AGENT_DEFAULT_MAX_TIME_S 1800
#define AGENT_DEFAULT_MAX_HARD_TIME_S 3600
#define AGENT_DEFAULT_MAX_FRAME_BYTES (512ll << 20)
#define AGENT_DEFAULT_MAX_OUTPUT_BYTES (1ll << 30)

struct agent_sink {
    void (*job_started)(void *data, const char *job_id);
    /** Called exactly once per job the agent accepted, whatever happens. */
    void (*job_done)(void *data, const struct backend_job_done *done);
    void (*ssh_debug)(void *data, const char *job_id, const char *host, int port, const char *user,
                      const char *password);
    /** Optional: the last job has finished and no warm container is left (agent_idle()). */
    void (*idle)(void *data);
    void *data;
};

struct agent_config {
    const char *friendly_name; /* "" allowed */
    /*
     * Value of the org.proctor.agent label on our containers. NULL: the id kept
     * in tmp_dir (drawn at random the first time: "<id_prefix>-<16 hex>").
     */
    const char *agent_id;
    const char *id_prefix; /* "proctord" when NULL */
    int64_t concurrency;   /* job slots, > 0 */
    const char *tasks_dir; /* DIR/course/task */
    const char *tmp_dir;   /* job directories; locked, then emptied at start (id and lock kept) */
    const char *policies_dir; /* NULL = built-in defaults only */
    const char *debug_host;   /* NULL = SSH debug disabled (no port pool) */
    uint16_t debug_port_min, debug_port_max;
    bool ssh; /* also register the -ssh environment types */
    /* Hard caps that no policy can exceed; 0 = the AGENT_DEFAULT_* value. */
    int64_t max_time_s;       /* CPU seconds of a grading container */
    int64_t max_hard_time_s;  /* wall seconds of a grading container */
    int64_t max_frame_bytes;  /* one message from a container */
    int64_t max_output_bytes; /* everything one job's container may send */
    const char *docker_host;  /* NULL = $DOCKER_HOST or the default socket */
    long docker_timeout_ms;   /* one non-streaming engine call; 0 = DOCKER_DEFAULT_TIMEOUT_MS */
    bool pool; /* keep warm grading containers (pool.h; sized by policies/pool.lua) */
    /* answer a job once its grading container has exited (INGInious's timing), not as
       soon as its result has arrived (README "When a job is answered") */
    bool answer_at_exit;
    /* "<envtype>/<name>" of environments to warm from the start (--warm), as if just used */
    const char *const *warm;
    size_t nwarm;
};

/**
 * Creates the agent (no I/O on Docker yet). Strings of cfg are copied.
 * NULL with err filled on failure (bad policy directory, tmp dir not usable...).
 * Caller frees with agent_free().
 */
struct agent *agent_new(struct loop *loop, const struct agent_config *cfg,
                        const struct agent_sink *sink, char *err, size_t errlen);
/**
 * Frees the agent at once; NULL is a no-op. Removing containers takes the
 * loop: to leave none, call agent_abandon_jobs() first and run the loop until
 * the sink's `idle` (or agent_job_count() is 0). Containers of jobs still
 * running here are left to the next start's discovery, which removes every
 * container carrying this agent's id.
 */
void agent_free(struct agent *a);
/** The agent's id: the value of the org.proctor.agent label on its containers. */
const char *agent_id(const struct agent *a);
/** Where a job stands, for a person watching it (proctor's status line). */
struct agent_job_status {
    const char *phase; /* "preparing", "creating", "attaching", "starting", "running", ... */
    double cpu_s;      /* CPU seconds of the grading container so far (-1: not known yet) */
    double wall_s;     /* wall seconds since the grading container started (0 before) */
    int64_t time_s, hard_time_s; /* its limits */
};
/** 0 and *st filled, or -ENOENT for a job the agent does not have. */
int agent_job_status(const struct agent *a, const char *job_id, struct agent_job_status *st);

/**
 * Starts discovery: removes containers an earlier run with the same agent id
 * left behind, reads the engine's runtimes and the grading images, then calls
 * ready(a, environments, data) with the AgentHello environments map
 * (borrowed; valid until the next discovery) or NULL with err on failure.
 */
typedef void (*agent_ready_fn)(struct agent *a, const struct value *environments, const char *err,
                               void *data);
int agent_discover(struct agent *a, agent_ready_fn ready, void *data);

/**
 * When the agent runs in a Docker container itself: checks that its work
 * directory is a host directory mounted at the same path, since the engine
 * binds job directories by their host path. done(a, NULL, data) when it is
 * (or the agent is not in a container), done(a, err, data) with what to
 * change otherwise; always from the loop. 0 or -errno (nothing called back).
 */
typedef void (*agent_check_fn)(struct agent *a, const char *err, void *data);
int agent_check_work_dir(struct agent *a, agent_check_fn done, void *data);

/** Handles BackendNewJob (takes nothing: msg is borrowed and copied as needed). */
void agent_new_job(struct agent *a, const struct backend_new_job *msg);
/** Handles BackendKillJob: kills a running job; an unknown job is logged and ignored. */
void agent_kill_job(struct agent *a, const struct backend_kill_job *msg);
/**
 * The backend forgot every job (restart, silence, re-registration): kill and
 * remove their containers without reporting anything.
 */
void agent_abandon_jobs(struct agent *a);
/**
 * Graceful stop: jobs running go on, new ones are answered with a crash at
 * once; the warm pool's containers are removed.
 */
void agent_close(struct agent *a);
/** No job left and no warm container left (the sink's `idle` says when this becomes true). */
bool agent_idle(const struct agent *a);
/**
 * End of a drain: every job still running is killed and reported as a crash
 * with `text` (borrowed); its containers are removed as usual.
 */
void agent_stop_jobs(struct agent *a, const char *text);
/** Number of jobs still running or being cleaned up. */
size_t agent_job_count(const struct agent *a);

/** SIGHUP: build, validate, swap the policies. 0 or -EINVAL (old ones kept; logged). */
int agent_reload_policies(struct agent *a);
