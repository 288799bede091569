#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/base64.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/util.h"
#include "job/job_internal.h"

/* ---- reporting ------------------------------------------------------------ */

// A phase's duration in ms, from the previous milestone reached; -1 = not reached.
static int64_t phase_ms(uint64_t at, uint64_t *prev)
{
    if (!at)
        return -1;
    int64_t d = at > *prev ? (int64_t)(at - *prev) : 0;
    *prev = at;
    return d;
}

void job_log_finished(const struct job *j, const char *result, double grade, const char *text,
                      const char *fmt, ...)
{
    if (!log_enabled(LOG_LEVEL_INFO))
        return;
    const struct container *c = j->grading;
    uint64_t now = util_now_ms() - j->started_ms, prev = 0;
    int64_t create = phase_ms(c->t_created, &prev), attach = phase_ms(c->t_attached, &prev);
    int64_t start = phase_ms(c->t_running, &prev), run = phase_ms(ct_ended_at(c), &prev);
    int64_t report = ct_ended_at(c) ? phase_ms(now, &prev) : -1;
    bool decided = j->limits.memory_mib > 0;
    const struct log_field f[] = {
        LOG_STR("result", result),
        LOG_DOUBLE("grade", grade),
        LOG_STR("text", text),
        LOG_STR("course", j->course_id),
        LOG_STR("task", j->task_id),
        LOG_STR("environment", j->envname),
        LOG_UINT("total_ms", now),
        LOG_INT("create_ms", create),
        LOG_INT("attach_ms", attach),
        LOG_INT("start_ms", start),
        LOG_INT("run_ms", run),
        LOG_INT("report_ms", report),
        LOG_INT("cpu_ms", c->cpu_ns >= 0 ? c->cpu_ns / 1000000 : -1),
        LOG_INT("time_s", decided ? j->limits.time_s : -1),
        LOG_INT("hard_time_s", decided ? j->limits.hard_time_s : -1),
        LOG_INT("memory_mib", decided ? j->limits.memory_mib : -1),
        LOG_STR("container", c->id),
        // Their ids are on the job's container_created lines (they are freed by now).
        LOG_UINT("student_containers", j->students_started),
        LOG_UINT("output_bytes", j->output_bytes),
    };
    va_list ap;
    va_start(ap, fmt);
    log_vwrite_event(LOG_LEVEL_INFO, LOG_JOB, "job_finished", f, ARRAY_SIZE(f), fmt, ap);
    va_end(ap);
}

void job_report_plain(struct job *j, const char *result, const char *text, bool with_streams)
{
    struct backend_job_done d = {
        .job_id = j->id,
        .result = result,
        .text = text,
        .grade = 0.0,
        .state = j->prev_state,
        .stdout_text = with_streams ? "" : NULL,
        .stderr_text = with_streams ? "" : NULL,
    };
    j->host->sink.job_done(j->host->sink.data, &d);
}

/** Takes a STR value's buffer (caller frees) and leaves `true` in its place. */
static char *take_str(struct value *v)
{
    char *p = v->u.s.ptr;
    v->u.s.ptr = NULL;
    value_set_bool(v, true);
    return p;
}

static void report_result(struct job *j)
{
    char reason[POLICY_REASON_MAX] = "";
    // The job ends here: work on its result in place, so that a large
    // output is never held twice.
    struct value *raw = &j->result;
    AUTO_FREE char *archive = NULL;
    size_t archive_len = 0;
    bool archive_bad = false;
    AUTO_FREE char *out_text = NULL, *err_text = NULL;
    if (raw->type == VALUE_MAP) {
        // The C side decodes and bounds these itself; the policy sees `true`.
        struct value *a = (struct value *)value_map_get(raw, "archive");
        if (a && a->type == VALUE_STR) {
            archive_bad = base64_decode(a->u.s.ptr, a->u.s.len, &archive, &archive_len) != 0;
            value_deinit(a);
            value_set_bool(a, true);
        }
        struct value *o = (struct value *)value_map_get(raw, "stdout");
        if (o && o->type == VALUE_STR)
            out_text = take_str(o);
        struct value *e = (struct value *)value_map_get(raw, "stderr");
        if (e && e->type == VALUE_STR)
            err_text = take_str(e);
    }
    struct policy_result pr = {0};
    int ret = policy_results(j->host->policy, raw, j->prev_state, &pr, reason, sizeof reason);
    if (!ret && raw->type == VALUE_MAP) {
        // Lua tables have no order: give the backend the grader's.
        value_map_order_like(&pr.problems, value_map_get(raw, "problems"));
        value_map_order_like(&pr.tests, value_map_get(raw, "tests"));
        value_map_order_like(&pr.custom, value_map_get(raw, "custom"));
    }
    value_deinit(raw);
    if (ret) {
        AUTO_FREE char *text = xasprintf(TXT_UNREADABLE "%s", reason);
        job_log_finished(j, "crash", 0.0, text, "job %s: result rejected: %s", j->id, reason);
        job_report_plain(j, "crash", text, true);
        return;
    }
    AUTO_FREE char *bad = archive_bad ? xasprintf(TXT_UNREADABLE "invalid base64 archive") : NULL;
    struct backend_job_done d = {
        .job_id = j->id,
        .result = archive_bad ? "crash" : pr.result,
        .text = archive_bad ? bad : pr.text,
        .grade = pr.grade,
        .problems = &pr.problems,
        .tests = &pr.tests,
        .custom = &pr.custom,
        .state = pr.state,
        .archive = archive_bad ? NULL : archive,
        .archive_len = archive_len,
        // Upstream always gives the grader's streams, "" when not in debug.
        .stdout_text = out_text ? out_text : "",
        .stderr_text = err_text ? err_text : "",
    };
    // The feedback text is the student's business: only a crash's says what went wrong.
    job_log_finished(j, d.result, d.grade, strcmp(d.result, "crash") ? NULL : d.text,
                     "job %s: %s, grade %.2f", j->id, d.result, d.grade);
    j->host->sink.job_done(j->host->sink.data, &d);
    policy_result_deinit(&pr);
}

/** The job's duration and the phases its grading container went through, in seconds. */
static void job_observe(const struct job *j)
{
    const struct container *c = j->grading;
    uint64_t now = util_now_ms() - j->started_ms;
    metric_observe(METRIC_JOB_SECONDS, NULL, (double)now / 1000);
    // Each phase from the previous milestone reached (0 = not reached).
    const struct {
        const char *name;
        uint64_t at;
    } steps[] = {{"create", c->t_created},
                 {"attach", c->t_attached},
                 {"start", c->t_running},
                 {"run", ct_ended_at(c)},
                 {"report", ct_ended_at(c) ? now : 0}};
    uint64_t prev = 0;
    for (size_t i = 0; i < ARRAY_SIZE(steps); i++) {
        if (!steps[i].at)
            continue;
        metric_observe(METRIC_PHASE_SECONDS, steps[i].name,
                       (double)(steps[i].at - (prev < steps[i].at ? prev : steps[i].at)) / 1000);
        prev = steps[i].at;
    }
}

void job_report(struct job *j)
{
    if (j->reported)
        return;
    j->reported = true;
    // One line per job with where its time went (ms from BackendNewJob).
    log_info(LOG_JOB,
             "job %s: timings created %llu, attached %llu, running %llu, answered %llu, "
             "exited %llu, reported %llu ms",
             j->id, (unsigned long long)j->grading->t_created,
             (unsigned long long)j->grading->t_attached, (unsigned long long)j->grading->t_running,
             (unsigned long long)j->grading->t_answered, (unsigned long long)j->grading->t_exited,
             (unsigned long long)(util_now_ms() - j->started_ms));
    job_observe(j);
    if (j->bad_msgs > JOB_BAD_MSG_LOGS)
        log_warn(LOG_JOB, "job %s: %llu incorrect messages from the container skipped in all",
                 j->id, (unsigned long long)j->bad_msgs);
    if (j->students_refused)
        log_info(LOG_JOB, "job %s: %zu run_student request(s) refused over its caps in all", j->id,
                 j->students_refused);
    if (j->abandoned)
        return;
    switch (j->reason) {
    case REASON_KILLED:
        job_log_finished(j, "killed", 0.0, NULL, "job %s: killed", j->id);
        job_report_plain(j, "killed", "", true);
        break;
    case REASON_TIMEOUT:
        job_log_finished(j, "timeout", 0.0, NULL, "job %s: timeout", j->id);
        job_report_plain(j, "timeout", "", true);
        break;
    case REASON_OVERFLOW:
        job_log_finished(j, "overflow", 0.0, NULL, "job %s: overflow (memory)", j->id);
        job_report_plain(j, "overflow", "", true);
        break;
    case REASON_CRASH:
        job_log_finished(j, "crash", 0.0, j->crash_text, "job %s: crash: %s", j->id, j->crash_text);
        job_report_plain(j, "crash", j->crash_text, j->grading->ran);
        break;
    case REASON_NONE:
        if (!j->has_result) {
            job_report_plain(j, "crash",
                             TXT_UNREADABLE "the grading container exited without a result", true);
            job_log_finished(j, "crash", 0.0, "the grading container exited without a result",
                             "job %s: container exited without a result", j->id);
        } else {
            report_result(j);
        }
        break;
    }
}
