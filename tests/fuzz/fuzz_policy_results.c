// Container result -> policy -> AgentJobDone: a `result` message from a
// grading container, judged by the shipped policies (policies/results.lua
// through src/policy/policy.h) or by the built-in default (the first byte
// chooses), then reported to the backend (backend_encode_job_done), the way
// src/job/job.c does it.
// Properties: every result the policy accepts has a known result string and
// a finite grade, and becomes an AgentJobDone that the backend-side check
// (backend_check_agent_msg) accepts; a rejected result comes with a reason,
// and the crash report built from it is accepted too.
#include <errno.h>
#include <math.h>
#include <unistd.h>

#include "backend/backend_proto.h"
#include "core/log.h"
#include "fuzz_common.h"
#include "policy/policy.h"

#define TXT_UNREADABLE "The grader did not return a readable output : "

// The shipped policies, and the built-in defaults (an empty policy directory).
static struct policy_host *g_hosts[2];

// Previous @state values the job may carry, invalid UTF-8 included.
static const char *const prev_states[] = {"", "attempt 1", "\xff\xfe not utf-8", "{\"k\": 1}"};

static const char *const results[] = {"success", "failed",   "error", "crash",
                                      "timeout", "overflow", "killed"};

static void check_done(const struct backend_job_done *d)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    int ret = backend_encode_job_done(&sb, d);
    FUZZ_CHECK(ret == 0, "AgentJobDone for a %s result not encoded (%d)", d->result, ret);
    char err[256] = "";
    struct value v;
    ret = backend_check_agent_msg(sb.data, sb.size, &v, err, sizeof err);
    FUZZ_CHECK(ret == 0, "the backend would die on this AgentJobDone: %s", err);
    value_deinit(&v);
    msgpack_sbuffer_destroy(&sb);
}

static void check_result(const struct policy_result *pr)
{
    bool known = false;
    for (size_t i = 0; i < ARRAY_SIZE(results); i++)
        known = known || (pr->result && strcmp(pr->result, results[i]) == 0);
    FUZZ_CHECK(known, "result \"%s\"", pr->result ? pr->result : "(null)");
    FUZZ_CHECK(pr->text && pr->state, "NULL text or state");
    FUZZ_CHECK(isfinite(pr->grade), "grade %g", pr->grade);
    FUZZ_CHECK(pr->problems.type == VALUE_MAP && pr->tests.type == VALUE_MAP &&
                   pr->custom.type == VALUE_MAP,
               "problems/tests/custom not maps");
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    PROCTOR_UNUSED(argc);
    PROCTOR_UNUSED(argv);
    log_set_level(LOG_LEVEL_ERROR);
    const struct policy_config cfg = {
        .concurrency = 4,
        .host_memory_mib = 4096,
        .max_result_bytes = 64 << 20,
        .max_output_bytes = 256 << 20,
    };
    char err[512] = "";
    static char empty[] = "/tmp/proctor-fuzz-policies-XXXXXX";
    const char *dirs[2] = {PROCTOR_SOURCE_DIR "/policies", mkdtemp(empty)};
    for (int i = 0; i < 2; i++) {
        g_hosts[i] = dirs[i] ? policy_host_new(dirs[i], &cfg, err, sizeof err) : NULL;
        if (!g_hosts[i]) {
            fprintf(stderr, "fuzz_policy_results: cannot load %s: %s\n", dirs[i], err);
            abort();
        }
    }
    rmdir(empty); // loaded: the host keeps nothing open there
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_in in = {data, size};
    uint8_t mode = fuzz_u8(&in);
    const char *prev_state = prev_states[mode % ARRAY_SIZE(prev_states)];
    struct policy_host *host = g_hosts[(mode >> 2) & 1];
    char err[256];
    struct value m;
    if (value_unpack((const char *)in.p, in.n, &m, err, sizeof err))
        return 0;
    const struct value *type = value_map_get(&m, "type");
    struct value *raw = (struct value *)value_map_get(&m, "result");
    if (!type || !value_is_str(type, "result") || !raw) {
        value_deinit(&m);
        return 0;
    }
    // As job.c: the C side takes archive/stdout/stderr, the policy sees `true`.
    char *out_text = NULL, *err_text = NULL, *archive = NULL;
    size_t archive_len = 0;
    const char *keys[] = {"archive", "stdout", "stderr"};
    char **taken[] = {&archive, &out_text, &err_text};
    for (size_t i = 0; raw->type == VALUE_MAP && i < 3; i++) {
        struct value *v = (struct value *)value_map_get(raw, keys[i]);
        if (v && v->type == VALUE_STR) {
            *taken[i] = v->u.s.ptr;
            if (i == 0)
                archive_len = v->u.s.len; // stands for the decoded bytes
            v->u.s.ptr = NULL;
            value_set_bool(v, true);
        }
    }
    char reason[POLICY_REASON_MAX] = "";
    struct policy_result pr = {0};
    int ret = policy_results(host, raw, prev_state, &pr, reason, sizeof reason);
    if (ret) {
        FUZZ_CHECK(ret == -EPERM, "policy_results gives %d", ret);
        FUZZ_CHECK(reason[0] != '\0', "rejected without a reason");
        char *text = xasprintf(TXT_UNREADABLE "%s", reason);
        struct backend_job_done d = {.job_id = "fuzz-job",
                                     .result = "crash",
                                     .text = text,
                                     .state = prev_state,
                                     .stdout_text = "",
                                     .stderr_text = ""};
        check_done(&d);
        free(text);
    } else {
        check_result(&pr);
        struct backend_job_done d = {
            .job_id = "fuzz-job",
            .result = pr.result,
            .text = pr.text,
            .grade = pr.grade,
            .problems = &pr.problems,
            .tests = &pr.tests,
            .custom = &pr.custom,
            .state = pr.state,
            .archive = archive,
            .archive_len = archive_len,
            .stdout_text = out_text ? out_text : "",
            .stderr_text = err_text ? err_text : "",
        };
        check_done(&d);
        policy_result_deinit(&pr);
    }
    free(archive);
    free(out_text);
    free(err_text);
    value_deinit(&m);
    return 0;
}
