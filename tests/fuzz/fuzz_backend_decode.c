// backend_decode (src/backend/backend_proto.h) on hostile frames from the
// backend socket.
// Properties: a failure leaves BACKEND_MSG_NONE; a decoded message has
// NUL-free valid UTF-8 in every C string and valid UTF-8 in every str of its
// trees; rebuilding the frame from the decoded fields and decoding it again
// gives the same message (decode(encode(decode(x))) == decode(x)); and the
// agent's answers built from its strings (AgentJobStarted, AgentJobDone,
// AgentJobSSHDebug) pass the backend-side check. On every input too: UTF-8
// repair as Python's decode(errors="replace") does it (a reference).
#include <errno.h>

#include "backend/backend_proto.h"
#include "common/utf8.h"
#include "fuzz_common.h"
#include "utf8_ref.h"

static void check_cstr(const char *s, const char *what)
{
    FUZZ_CHECK(s != NULL, "%s is NULL", what);
    FUZZ_CHECK(utf8_valid(s, strlen(s)), "%s is not valid UTF-8", what);
}

static void check_tree_utf8(const struct value *v)
{
    switch (v->type) {
    case VALUE_STR:
        FUZZ_CHECK(utf8_valid(v->u.s.ptr, v->u.s.len), "a str in a tree is not UTF-8");
        break;
    case VALUE_ARRAY:
        for (size_t i = 0; i < v->u.a.len; i++)
            check_tree_utf8(&v->u.a.items[i]);
        break;
    case VALUE_MAP:
        for (size_t i = 0; i < v->u.m.len; i++) {
            check_tree_utf8(&v->u.m.items[i].key);
            check_tree_utf8(&v->u.m.items[i].val);
        }
        break;
    default:
        break;
    }
}

static void put_str(struct value *m, const char *key, const char *s)
{
    if (s)
        value_set_str(value_map_put(m, key), s);
    else
        value_set_nil(value_map_put(m, key));
}

// The frame the backend would send for m, from its decoded fields.
static void rebuild(const struct backend_msg *m, struct value *out)
{
    value_set_map(out);
    if (m->type == BACKEND_MSG_NEW_JOB) {
        const struct backend_new_job *j = &m->new_job;
        put_str(out, "job_id", j->job_id);
        put_str(out, "course_id", j->course_id);
        put_str(out, "task_id", j->task_id);
        value_copy(value_map_put(out, "task_problems"), &j->task_problems);
        value_copy(value_map_put(out, "inputdata"), &j->inputdata);
        put_str(out, "environment_type", j->environment_type);
        put_str(out, "environment", j->environment);
        value_copy(value_map_put(out, "environment_parameters"), &j->environment_parameters);
        if (j->debug == BACKEND_DEBUG_SSH)
            value_set_str(value_map_put(out, "debug"), "ssh");
        else
            value_set_bool(value_map_put(out, "debug"), j->debug == BACKEND_DEBUG_ON);
    } else if (m->type == BACKEND_MSG_KILL_JOB) {
        put_str(out, "job_id", m->kill_job.job_id);
        put_str(out, "state", m->kill_job.state);
    }
    value_set_str(value_map_put(out, "@type"), backend_msg_type_name(m->type));
}

static bool same_str(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static bool same_msg(const struct backend_msg *a, const struct backend_msg *b)
{
    if (a->type != b->type)
        return false;
    if (a->type == BACKEND_MSG_KILL_JOB)
        return same_str(a->kill_job.job_id, b->kill_job.job_id) &&
               same_str(a->kill_job.state, b->kill_job.state);
    if (a->type != BACKEND_MSG_NEW_JOB)
        return true;
    const struct backend_new_job *x = &a->new_job, *y = &b->new_job;
    return same_str(x->job_id, y->job_id) && same_str(x->course_id, y->course_id) &&
           same_str(x->task_id, y->task_id) &&
           fuzz_value_equal(&x->task_problems, &y->task_problems) &&
           fuzz_value_equal(&x->inputdata, &y->inputdata) &&
           same_str(x->environment_type, y->environment_type) &&
           same_str(x->environment, y->environment) &&
           fuzz_value_equal(&x->environment_parameters, &y->environment_parameters) &&
           x->debug == y->debug;
}

// An agent message built by the encoders must pass the backend-side check.
static void check_agent_msg(msgpack_sbuffer *sb, const char *what)
{
    char err[256] = "";
    struct value v;
    int ret = backend_check_agent_msg(sb->data, sb->size, &v, err, sizeof err);
    FUZZ_CHECK(ret == 0, "%s refused by the backend-side check: %s", what, err);
    value_deinit(&v);
    msgpack_sbuffer_clear(sb);
}

static bool str_keys(const struct value *m)
{
    for (size_t i = 0; i < m->u.m.len; i++)
        if (m->u.m.items[i].key.type != VALUE_STR)
            return false;
    return true;
}

static void check_answers(const struct backend_msg *m)
{
    const char *job_id = m->type == BACKEND_MSG_NEW_JOB ? m->new_job.job_id : m->kill_job.job_id;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    FUZZ_CHECK(backend_encode_job_started(&sb, job_id) == 0, "AgentJobStarted not encoded");
    check_agent_msg(&sb, "AgentJobStarted");
    struct backend_job_done d = {.job_id = job_id, .result = "killed", .grade = 0.0};
    if (m->type == BACKEND_MSG_KILL_JOB) {
        d.state = m->kill_job.state;
    } else {
        d.text = m->new_job.environment;
        d.state = m->new_job.environment_type;
        d.stdout_text = m->new_job.course_id;
        d.stderr_text = m->new_job.task_id;
        d.custom = &m->new_job.inputdata; // any map with str keys: copied as it is
    }
    int ret = backend_encode_job_done(&sb, &d);
    if (d.custom && !str_keys(d.custom)) {
        FUZZ_CHECK(ret == -EINVAL, "custom with a non-str key encoded (%d)", ret);
        msgpack_sbuffer_clear(&sb);
    } else {
        FUZZ_CHECK(ret == 0, "AgentJobDone not encoded (%d)", ret);
        check_agent_msg(&sb, "AgentJobDone");
    }
    FUZZ_CHECK(backend_encode_ssh_debug(&sb, job_id, job_id, 22, job_id, job_id) == 0,
               "AgentJobSSHDebug not encoded");
    check_agent_msg(&sb, "AgentJobSSHDebug");
    msgpack_sbuffer_destroy(&sb);
}

// Every str the agent writes goes through utf8_repair_dup: it must
// give Python's decode(errors="replace") of the same bytes (the reference),
// which is valid UTF-8 and leaves valid text unchanged.
static void check_sanitize(const uint8_t *data, size_t size)
{
    size_t n = 0;
    char *clean = utf8_repair_dup((const char *)data, size, &n);
    FUZZ_CHECK(clean != NULL && clean[n] == '\0', "sanitize failed");
    uint8_t *ref = xmalloc(3 * size + 1);
    size_t m = utf8_ref_repair(data, size, ref);
    FUZZ_CHECK(n == m && memcmp(clean, ref, n) == 0, "sanitize differs from the reference");
    FUZZ_CHECK(utf8_valid(clean, n), "sanitized text is not valid UTF-8");
    FUZZ_CHECK(utf8_valid((const char *)data, size) == (size == m && memcmp(data, ref, m) == 0),
               "utf8_valid disagrees with the reference");
    free(ref);
    free(clean);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_sanitize(data, size);
    char err[256] = "";
    struct backend_msg m;
    int ret = backend_decode((const char *)data, size, &m, err, sizeof err);
    if (ret) {
        FUZZ_CHECK(ret == -EBADMSG || ret == -ENOMEM, "unexpected error %d", ret);
        FUZZ_CHECK(m.type == BACKEND_MSG_NONE, "failed decode left type %d", (int)m.type);
        return 0;
    }
    if (m.type == BACKEND_MSG_NEW_JOB) {
        const struct backend_new_job *j = &m.new_job;
        check_cstr(j->job_id, "job_id");
        FUZZ_CHECK(!j->course_id == !j->task_id, "course_id and task_id not nil together");
        if (j->course_id) {
            check_cstr(j->course_id, "course_id");
            check_cstr(j->task_id, "task_id");
        }
        check_cstr(j->environment_type, "environment_type");
        check_cstr(j->environment, "environment");
        FUZZ_CHECK(j->task_problems.type == VALUE_MAP && j->inputdata.type == VALUE_MAP &&
                       j->environment_parameters.type == VALUE_MAP,
                   "a tree field is not a map");
        check_tree_utf8(&j->task_problems);
        check_tree_utf8(&j->inputdata);
        check_tree_utf8(&j->environment_parameters);
    } else if (m.type == BACKEND_MSG_KILL_JOB) {
        check_cstr(m.kill_job.job_id, "job_id");
        check_cstr(m.kill_job.state, "state");
    } else {
        FUZZ_CHECK(m.type == BACKEND_MSG_PING, "decoded an unknown type %d", (int)m.type);
    }

    struct value frame;
    rebuild(&m, &frame);
    msgpack_sbuffer sb;
    fuzz_pack(&frame, &sb);
    struct backend_msg again;
    ret = backend_decode(sb.data, sb.size, &again, err, sizeof err);
    FUZZ_CHECK(ret == 0, "rebuilt frame refused: %s", err);
    FUZZ_CHECK(same_msg(&m, &again), "decode(encode(decode(x))) != decode(x)");
    backend_msg_deinit(&again);
    msgpack_sbuffer_destroy(&sb);
    value_deinit(&frame);

    if (m.type != BACKEND_MSG_PING)
        check_answers(&m);
    backend_msg_deinit(&m);
    return 0;
}
