/**
 * @file job_internal.h
 * Shared by the files of one job: job.c (its life, from BackendNewJob to
 * exactly one AgentJobDone), job_student.c (run_student requests),
 * job_report.c (the AgentJobDone) and job_dir.c (the job directory).
 *
 * A job owns one grading container and the student containers it asked
 * for, each a `struct container` (container.h). Its phases:
 *
 *   PREPARING  cold: the worker fills the job directory
 *                dir ready, no reason to stop -> RUNNING (grading container created)
 *                dir failed, or stopped meanwhile -> CLEANING
 *              warm (a pooled container fits, pool.h): the worker fills the directory
 *              the container has mounted, and Docker updates its limits if they differ
 *                both done -> RUNNING (claimed: `start` sent, the limits count)
 *                stopped meanwhile -> CLEANING
 *                either failed, or the container died waiting -> it goes back to the
 *                pool for removal, and the job starts cold (PREPARING again)
 *   RUNNING    the grading container is made, runs, is judged
 *              grading container ended (or could not be made) -> CLEANING
 *   CLEANING   reported; every container being removed
 *              all gone -> the agent frees the job (agent_job_finished)
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "core/value.h"
#include "docker/docker_stream.h"
#include "job/container.h"
#include "job/job.h"
#include "job/job_host.h"
#include "job/pool.h"

// User-visible texts: the exact strings INGInious's agent sends, so students
// and admins see what they know (spec BACKEND_PROTOCOL §4.3, CONTAINER §5.1).
#define TXT_ENV_UNAVAILABLE                                                                        \
    "This environment is not available in this agent. Please contact your course administrator."
#define TXT_TASK_UNAVAILABLE                                                                       \
    "Task unavailable on agent. Please retry later, the agents should synchronize soon. If the "   \
    "error persists, please contact your course administrator."
#define TXT_BAD_PARAMS "The agent is unable to parse the parameters"
#define TXT_CANNOT_CREATE "Cannot create container."
#define TXT_CANNOT_START "Cannot start container"
#define TXT_UNKNOWN_ERROR                                                                          \
    "An unknown error occurred in the agent. Please contact your course administrator."
#define TXT_UNREADABLE "The grader did not return a readable output : "
#define TXT_SSH_STUDENT                                                                            \
    "ssh for student requires to allow ssh and internet access in the task environment "           \
    "configuration tab!"
#define TXT_SSH_FOREIGN "Trying to connect with ssh to a non-children student container !"

// A hostile container can send malformed messages for ever: log this many.
#define JOB_BAD_MSG_LOGS 3

enum job_phase {
    JOB_PREPARING,
    JOB_RUNNING,
    JOB_CLEANING,
};

/** Why the job ends, when it is not the grader's own result. The first reason wins. */
enum job_reason {
    REASON_NONE,
    REASON_KILLED,
    REASON_TIMEOUT,
    REASON_OVERFLOW,
    REASON_CRASH, /* crash_text says why */
};

/** Why a well-formed run_student request gets no container (bit index in refusals_logged). */
enum student_refusal {
    REFUSE_NONE,
    REFUSE_DUPLICATE,
    REFUSE_ENDING,
    REFUSE_AT_ONCE,
    REFUSE_TOTAL,
};

struct student {
    struct job *job; /* NULL while the pool holds it (a pooled container's student part) */
    struct student *next;
    char *socket_id; /* NULL: started ahead and not taken yet */
    /* J/links/<n>.sock: the requester's socket, bound as /__parent.sock; started
       ahead: J/links/ahead-<n>/parent.sock, made when a request takes it */
    char *link;
    struct policy_student_limits limits;
    uint16_t ssh_port; /* 0 = none */
    bool replied;      /* run_student_retval sent */
    /* Started ahead (before any request: job_student.c), parked until a request takes it */
    bool ahead;
    bool taken;         /* ahead: a request took it */
    bool claim_on_park; /* taken while still being made: claimed once parked */
    bool dropped;       /* ahead, not taken: being removed */
    char *rdv;          /* ahead: J/links/ahead-<n>, mounted read-only at /__parent.d */
    char *envname, *image_id, *runtime; /* ahead: what it was made as */
    struct policy_hardening hard;       /* ahead: what it was made with */
    struct container ct;
};

struct job {
    const struct job_host *host;
    struct job *next; /* the agent's list */
    enum job_phase phase;
    char *id;
    char *course_id, *task_id; /* NULL for a taskless job */
    char *envtype, *envname;
    enum backend_debug debug;
    struct value inputdata;
    char *prev_state;
    struct env env; /* copy: discovery may replace the agent's table meanwhile */
    struct policy_limits limits;
    struct policy_hardening hard;
    char *run_cmd;
    uint16_t ports_host[POLICY_MAX_PORTS];
    uint16_t ports_cont[POLICY_MAX_PORTS];
    size_t nports;
    char *dir;                    /* job directory on the host */
    struct worker_task *dir_task; /* filling it, on the worker thread */
    uint64_t started_ms;          /* BackendNewJob received */

    struct container *grading; /* &cold, or a pooled container taken for this job */
    struct container cold;     /* the grading container made for this job */
    struct pool_entry *pooled; /* the pool's record of *grading, when taken from the pool */
    char *pooled_label;        /* its org.proctor.job label (the pool's) */
    unsigned claim_pending;    /* pooled: fill and update still running */
    int claim_err;             /* pooled: one of them failed */
    bool pooled_lost;          /* pooled: it ended before the claim */
    struct docker_req *update_req;
    struct msg_framer framer;
    size_t output_bytes, stderr_logged;
    uint64_t bad_msgs;   /* malformed container messages skipped */
    struct value result; /* last `result` the container sent (NIL = none) */
    bool has_result;
    bool ssh_sent;
    bool abandoned; /* the backend forgot it: no report */
    bool reported;
    enum job_reason reason;
    char *crash_text;

    struct student *students; /* requested ones, and those started ahead (s->ahead) */
    size_t students_started;  /* student containers requests got so far */
    size_t links_made;        /* J/links/<n>.sock names used */
    bool ahead_off;           /* one started ahead died unused: no more for this job */
    size_t students_refused;  /* requests over a cap */
    unsigned refusals_logged; /* bit per enum student_refusal already logged */
};

/* job.c */
/** Sets the reason (first wins) and stops the grading container. */
void job_fail(struct job *j, enum job_reason r, const char *text);
/** Encodes and writes one message to the grading container: 0 or -errno. */
int job_send(struct job *j, const struct value *msg);
/** In CLEANING with every container gone: hands the job back to the agent (frees it). */
void job_maybe_finished(struct job *j);
/** Python's truth value of a message field. */
bool job_truthy(const struct value *v);

/* job_student.c */
/** A `run_student` message from the grading container. */
void student_request(struct job *j, const struct value *msg);
/** The student container with this Docker id; NULL if none. */
struct student *student_by_container(struct job *j, const char *id);
/** The job ends: removes every student container (no more replies). */
void students_remove_all(struct job *j);
/**
 * Starts a student container ahead of its request when this job's task asked
 * for one before (the agent remembers), its environment's image allows it and
 * the job's caps leave room: at most one waits per job.
 */
void student_ahead(struct job *j);
/** The job ends: what it asked for is what the next job of its task may ask. */
void students_job_done(struct job *j);
/** Removes the student containers started ahead that no request took (a cold restart). */
void students_ahead_drop(struct job *j);
/** Hands a pooled container's student part to the job that took the container. */
void student_part_adopt(struct job *j, struct student *s);
/**
 * A pooled container's student part (pool.c): a student container started
 * ahead in the pooled container's directory `dir`, labelled `label`, with the
 * pool's ops/data until a job adopts it. NULL when it cannot be made.
 */
struct student *student_part_new(const struct job_host *h, const char *dir, const char *label,
                                 const char *envtype, const char *envname, const struct env *env,
                                 int64_t memory_mib, const struct ct_ops *ops, void *data);
struct container *student_part_container(struct student *s);
const char *student_part_envname(const struct student *s);
/** Whether it was made from this environment's image and runtime. */
bool student_part_is(const struct student *s, const struct env *env);
void student_part_free(struct student *s);
/** Frees every student record at once (job_free). No Docker calls. */
void students_free(struct job *j);

/* job_report.c */
/** Reports the job's one AgentJobDone (from its reason or its result); once. */
void job_report(struct job *j);
/** An AgentJobDone without a grader result. */
void job_report_plain(struct job *j, const char *result, const char *text, bool with_streams);
/**
 * Logs the job_finished event: the line that says the job's result (fmt),
 * with its result, grade, text (borrowed), phase durations, CPU, limits and
 * container ids as fields.
 */
void job_log_finished(const struct job *j, const char *result, double grade, const char *text,
                      const char *fmt, ...) PROCTOR_PRINTF(5, 6);

/* job_dir.c */
/**
 * Creates the job directory and has the worker fill it (copying never blocks
 * the loop); done(ret, j) follows on the loop. 0, or -errno with reason set.
 */
int job_dir_make(struct job *j, void (*done)(int ret, void *data), char *reason, size_t reasonlen);
/** Lays out an empty job directory (mkdtemp'd): its directories and mount points. 0 or -errno. */
int job_dir_layout(const char *dir);
/** Fills j->dir, laid out already (a pooled container may have it mounted); done(ret, j) on
 * the loop. */
void job_dir_fill(struct job *j, void (*done)(int ret, void *data));
/** The grading container's bind mounts ("src:dst:mode"), NULL-terminated; free with
 * job_dir_binds_free. */
char **job_dir_grading_binds(const char *dir);
/**
 * A student container's bind mounts in job directory `dir`: `parent` is its
 * parent socket's hard link (/__parent.sock), or for one started ahead the
 * directory where that link will be made (/__parent.d, read-only).
 */
char **job_dir_student_binds(const char *dir, const char *parent, bool ahead);
void job_dir_binds_free(char **binds);
/**
 * Gives the requester's socket J/sockets/<socket_id>.sock a name of the
 * agent's own (see job_dir.c): sets *link. 0, or -errno (-EPERM: not a socket).
 */
int job_dir_link_socket(const struct job *j, const char *socket_id, size_t n, char **link);
/** The same, at a path of the agent's choosing (`link`, in J/links). */
int job_dir_link_socket_at(const char *dir, const char *socket_id, const char *link);
/** Removes the job directory on the worker thread (after any copy still queued there). */
void job_dir_remove(struct job *j);
