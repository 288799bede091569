/**
 * @file metrics.h
 * proctord's metrics, in Prometheus' text exposition format (served by
 * src/metrics_http.c on --metrics). One registry per process, used from the
 * loop thread only. Every family is declared once below; a series is made on
 * first use from its label values (at most METRICS_MAX_SERIES per family, so
 * that no input can make the registry grow without bound: past it, the
 * series "other" takes the rest).
 */
#pragma once

#include <stddef.h>

// id, name, type, help
#define METRICS_FAMILIES(X)                                                                        \
    X(JOBS, "proctord_jobs_total", COUNTER, "Jobs answered, by result.", "result")                 \
    X(JOB_SECONDS, "proctord_job_duration_seconds", HISTOGRAM,                                     \
      "From BackendNewJob to the job's answer.", NULL)                                             \
    X(PHASE_SECONDS, "proctord_job_phase_seconds", HISTOGRAM,                                      \
      "Time a job spent in each phase of its grading container.", "phase")                         \
    X(SLOTS_USED, "proctord_job_slots_in_use", GAUGE, "Jobs started and not answered yet.", NULL)  \
    X(SLOTS, "proctord_job_slots", GAUGE, "Job slots offered to the backend.", NULL)               \
    X(CONTAINERS, "proctord_containers", GAUGE, "Containers alive (created, not yet removed).",    \
      "role")                                                                                      \
    X(DOCKER_ERRORS, "proctord_docker_errors_total", COUNTER,                                      \
      "Docker Engine API calls that failed, by call.", "call")                                     \
    X(BACKEND_CONNECTED, "proctord_backend_connected", GAUGE,                                      \
      "1 while the backend's socket is connected.", NULL)                                          \
    X(BACKEND_RECONNECTS, "proctord_backend_reconnects_total", COUNTER,                            \
      "New connections to the backend after the first.", NULL)                                     \
    X(POLICY_FAILURES, "proctord_policy_failures_total", COUNTER,                                  \
      "Policy calls that failed, by hook and kind (builtin: the shipped file itself failed).",     \
      "hook,kind")                                                                                 \
    X(CONTAINER_BYTES, "proctord_container_bytes_received_total", COUNTER,                         \
      "Bytes read from grading containers' output.", NULL)                                         \
    X(POOL_CLAIMS, "proctord_pool_claims_total", COUNTER,                                          \
      "Jobs that could use a warm container: hit (served from the pool) or miss (cold).",          \
      "result")

enum metric_id {
#define X(id, name, type, help, label) METRIC_##id,
    METRICS_FAMILIES(X)
#undef X
        METRIC_COUNT
};

#define METRICS_MAX_SERIES 64

/**
 * Adds v to a counter or gauge series. `label` is the value of the family's
 * label (NULL for a family without one); it is escaped when rendered. A family
 * with two labels ("hook,kind") takes metric_add2.
 */
void metric_add(enum metric_id id, const char *label, double v);
void metric_add2(enum metric_id id, const char *label1, const char *label2, double v);
/** Sets a gauge series. */
void metric_set(enum metric_id id, const char *label, double v);
/** Observes v (seconds) in a histogram series. */
void metric_observe(enum metric_id id, const char *label, double v);
/** The current value of a counter or gauge series (0 when it does not exist). */
double metric_get(enum metric_id id, const char *label);
/** Renders everything in the text format 0.0.4. Caller frees; *len gets the length. */
char *metrics_render(size_t *len);
/** Forgets every series (tests, and the end of the process). */
void metrics_reset(void);
