#include "backend/backend_proto.h"

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "common/utf8.h"
#include "core/util.h"

// Trees we write come either from value_unpack (capped at VALUE_MAX_DEPTH)
// or from the job layer wrapping such a tree a level or two deeper.
#define ENCODE_MAX_DEPTH (2 * VALUE_MAX_DEPTH)

const char *backend_msg_type_name(enum backend_msg_type t)
{
    switch (t) {
    case BACKEND_MSG_NONE:
        return "none";
#define X(name, str)                                                                               \
    case BACKEND_MSG_##name:                                                                       \
        return str;
        BACKEND_MSG_TYPES(X)
#undef X
    }
    return "?";
}

const char *backend_debug_name(enum backend_debug d)
{
    switch (d) {
#define X(name, str)                                                                               \
    case BACKEND_DEBUG_##name:                                                                     \
        return str;
        BACKEND_DEBUG_MODES(X)
#undef X
    }
    return "?";
}

int64_t backend_new_job_limit(const struct backend_new_job *m, const char *key)
{
    const struct value *v = value_map_get(value_map_get(&m->environment_parameters, "limits"), key);
    if (!v)
        return -1;
    switch (v->type) {
    case VALUE_INT:
        return v->u.i;
    case VALUE_UINT:
        return INT64_MAX;
    case VALUE_FLOAT:
        // NaN fails both comparisons: -1 too.
        return v->u.f >= 0 && v->u.f < 9.2e18 ? (int64_t)v->u.f : -1;
    default:
        return -1;
    }
}

static bool tree_utf8_valid(const struct value *v)
{
    switch (v->type) {
    case VALUE_STR:
        return utf8_valid(v->u.s.ptr, v->u.s.len);
    case VALUE_ARRAY:
        for (size_t i = 0; i < v->u.a.len; i++)
            if (!tree_utf8_valid(&v->u.a.items[i]))
                return false;
        return true;
    case VALUE_MAP:
        for (size_t i = 0; i < v->u.m.len; i++)
            if (!tree_utf8_valid(&v->u.m.items[i].key) || !tree_utf8_valid(&v->u.m.items[i].val))
                return false;
        return true;
    default:
        return true;
    }
}

/* ---- decoding backend -> agent ----------------------------------------- */

enum field_kind {
    FIELD_STR,        /* char *, NUL-free */
    FIELD_STR_OR_NIL, /* char * or NULL */
    FIELD_MAP,        /* struct value, MAP */
    FIELD_DEBUG,      /* enum backend_debug from bool or "ssh" */
};

struct field {
    const char *name;
    enum field_kind kind;
    size_t off; /* offset in struct backend_msg */
};

#define NJ(member) offsetof(struct backend_msg, new_job.member)
static const struct field new_job_fields[] = {
    {"job_id", FIELD_STR, NJ(job_id)},
    {"course_id", FIELD_STR_OR_NIL, NJ(course_id)},
    {"task_id", FIELD_STR_OR_NIL, NJ(task_id)},
    {"task_problems", FIELD_MAP, NJ(task_problems)},
    {"inputdata", FIELD_MAP, NJ(inputdata)},
    {"environment_type", FIELD_STR, NJ(environment_type)},
    {"environment", FIELD_STR, NJ(environment)},
    {"environment_parameters", FIELD_MAP, NJ(environment_parameters)},
    {"debug", FIELD_DEBUG, NJ(debug)},
};
#undef NJ

#define KJ(member) offsetof(struct backend_msg, kill_job.member)
static const struct field kill_job_fields[] = {
    {"job_id", FIELD_STR, KJ(job_id)},
    {"state", FIELD_STR, KJ(state)},
};
#undef KJ

struct msg_schema {
    enum backend_msg_type type;
    const struct field *fields;
    size_t nfields;
};

static const struct msg_schema schemas[] = {
    {BACKEND_MSG_NEW_JOB, new_job_fields, ARRAY_SIZE(new_job_fields)},
    {BACKEND_MSG_KILL_JOB, kill_job_fields, ARRAY_SIZE(kill_job_fields)},
    {BACKEND_MSG_PING, NULL, 0},
};

// Enough fields for any schema above (checked when decoding).
#define MAX_FIELDS 16

static const struct msg_schema *schema_find(const struct value *name)
{
    for (size_t i = 0; i < ARRAY_SIZE(schemas); i++)
        if (value_is_str(name, backend_msg_type_name(schemas[i].type)))
            return &schemas[i];
    return NULL;
}

static bool key_is(const struct value *key, const char *name)
{
    return value_is_str(key, name);
}

// Copies a str value into a fresh C string. The length comes from the
// network, hence the checked allocation.
static int take_cstr(const struct value *v, char **dst)
{
    char *s = try_malloc(v->u.s.len + 1);
    if (!s)
        return -ENOMEM;
    memcpy(s, v->u.s.ptr, v->u.s.len);
    s[v->u.s.len] = '\0';
    *dst = s;
    return 0;
}

static int fill_field(const struct field *f, struct value *v, struct backend_msg *out, char *err,
                      size_t errlen)
{
    char *base = (char *)out + f->off;
    switch (f->kind) {
    case FIELD_STR_OR_NIL:
        if (v->type == VALUE_NIL)
            return 0;
        // fall through
    case FIELD_STR:
        if (v->type != VALUE_STR) {
            util_err(err, errlen, "field %s is a %s, not a str", f->name, value_type_name(v->type));
            return -EBADMSG;
        }
        if (memchr(v->u.s.ptr, '\0', v->u.s.len)) {
            util_err(err, errlen, "field %s contains a NUL byte", f->name);
            return -EBADMSG;
        }
        return take_cstr(v, (char **)base);
    case FIELD_MAP:
        if (v->type != VALUE_MAP) {
            util_err(err, errlen, "field %s is a %s, not a map", f->name, value_type_name(v->type));
            return -EBADMSG;
        }
        // Move the subtree: the message now owns it, the root forgets it.
        *(struct value *)base = *v;
        value_set_nil(v);
        return 0;
    case FIELD_DEBUG: {
        enum backend_debug *d = (enum backend_debug *)base;
        if (v->type == VALUE_BOOL) {
            *d = v->u.b ? BACKEND_DEBUG_ON : BACKEND_DEBUG_OFF;
            return 0;
        }
        if (value_is_str(v, "ssh")) {
            *d = BACKEND_DEBUG_SSH;
            return 0;
        }
        util_err(err, errlen, "field %s must be a bool or \"ssh\" (got a %s)", f->name,
                 value_type_name(v->type));
        return -EBADMSG;
    }
    }
    return -EBADMSG;
}

static int decode_root(struct value *root, struct backend_msg *out, char *err, size_t errlen)
{
    if (root->type != VALUE_MAP) {
        util_err(err, errlen, "payload is a %s, not a map", value_type_name(root->type));
        return -EBADMSG;
    }
    const struct value *type = NULL;
    for (size_t i = 0; i < root->u.m.len; i++) {
        const struct value *k = &root->u.m.items[i].key;
        if (k->type != VALUE_STR) {
            util_err(err, errlen, "invalid message content: a %s key", value_type_name(k->type));
            return -EBADMSG;
        }
        if (key_is(k, "@type"))
            type = &root->u.m.items[i].val;
    }
    if (!tree_utf8_valid(root)) {
        util_err(err, errlen, "invalid UTF-8 in a str");
        return -EBADMSG;
    }
    if (!type) {
        util_err(err, errlen, "no @type key");
        return -EBADMSG;
    }
    if (type->type != VALUE_STR) {
        util_err(err, errlen, "@type is a %s, not a str", value_type_name(type->type));
        return -EBADMSG;
    }
    const struct msg_schema *sc = schema_find(type);
    if (!sc) {
        util_err(err, errlen, "unknown message type \"%.64s\"", type->u.s.ptr);
        return -EBADMSG;
    }
    const char *tname = backend_msg_type_name(sc->type);

    // Match every key against the schema exactly once, like the keyword
    // construction upstream does (and refuse duplicates, which it cannot see).
    struct value *slot[MAX_FIELDS] = {0};
    PROCTOR_REQUIRE(sc->nfields <= MAX_FIELDS);
    bool seen_type = false;
    for (size_t i = 0; i < root->u.m.len; i++) {
        struct value_pair *p = &root->u.m.items[i];
        if (key_is(&p->key, "@type")) {
            if (seen_type) {
                util_err(err, errlen, "duplicate @type key");
                return -EBADMSG;
            }
            seen_type = true;
            continue;
        }
        size_t j = 0;
        while (j < sc->nfields && !key_is(&p->key, sc->fields[j].name))
            j++;
        if (j == sc->nfields) {
            util_err(err, errlen, "invalid message content: unexpected field \"%.64s\" in %s",
                     p->key.u.s.ptr, tname);
            return -EBADMSG;
        }
        if (slot[j]) {
            util_err(err, errlen, "duplicate field %s in %s", sc->fields[j].name, tname);
            return -EBADMSG;
        }
        slot[j] = &p->val;
    }
    for (size_t j = 0; j < sc->nfields; j++) {
        if (!slot[j]) {
            util_err(err, errlen, "invalid message content: missing field %s in %s",
                     sc->fields[j].name, tname);
            return -EBADMSG;
        }
    }

    int ret = 0;
    out->type = sc->type;
    for (size_t j = 0; !ret && j < sc->nfields; j++)
        ret = fill_field(&sc->fields[j], slot[j], out, err, errlen);
    if (!ret && sc->type == BACKEND_MSG_NEW_JOB &&
        (out->new_job.course_id == NULL) != (out->new_job.task_id == NULL)) {
        util_err(err, errlen, "course_id and task_id must be both nil or both str");
        ret = -EBADMSG;
    }
    if (ret == -ENOMEM)
        util_err(err, errlen, "out of memory decoding %s", tname);
    return ret;
}

int backend_decode(const char *buf, size_t len, struct backend_msg *out, char *err, size_t errlen)
{
    struct value root;
    memset(out, 0, sizeof *out);
    int ret = value_unpack(buf, len, &root, err, errlen);
    if (!ret)
        ret = decode_root(&root, out, err, errlen);
    if (ret)
        backend_msg_deinit(out);
    value_deinit(&root);
    return ret;
}

void backend_msg_deinit(struct backend_msg *m)
{
    if (!m)
        return;
    switch (m->type) {
    case BACKEND_MSG_NEW_JOB:
        free(m->new_job.job_id);
        free(m->new_job.course_id);
        free(m->new_job.task_id);
        value_deinit(&m->new_job.task_problems);
        value_deinit(&m->new_job.inputdata);
        free(m->new_job.environment_type);
        free(m->new_job.environment);
        value_deinit(&m->new_job.environment_parameters);
        break;
    case BACKEND_MSG_KILL_JOB:
        free(m->kill_job.job_id);
        free(m->kill_job.state);
        break;
    case BACKEND_MSG_PING:
    case BACKEND_MSG_NONE:
        break;
    }
    memset(m, 0, sizeof *m);
}

/* ---- encoding agent -> backend ----------------------------------------- */

static int packed(int r)
{
    // msgpack-c only fails when the sbuffer cannot grow.
    return r ? -ENOMEM : 0;
}

static int pack_str(msgpack_packer *pk, const char *s, size_t n)
{
    if (utf8_valid(s, n))
        return packed(msgpack_pack_str_with_body(pk, s, n));
    size_t m;
    AUTO_FREE char *clean = utf8_repair_dup(s, n, &m);
    if (!clean)
        return -ENOMEM;
    return packed(msgpack_pack_str_with_body(pk, clean, m));
}

static int pack_cstr(msgpack_packer *pk, const char *s)
{
    return pack_str(pk, s, strlen(s));
}

static int pack_cstr_or_nil(msgpack_packer *pk, const char *s)
{
    return s ? pack_cstr(pk, s) : packed(msgpack_pack_nil(pk));
}

// Like value_pack(), but every str (keys included) is made valid UTF-8.
static int pack_clean(msgpack_packer *pk, const struct value *v, int depth)
{
    int ret = 0;
    if (depth > ENCODE_MAX_DEPTH)
        return -EINVAL;
    switch (v->type) {
    case VALUE_STR:
        ret = pack_str(pk, v->u.s.ptr, v->u.s.len);
        break;
    case VALUE_ARRAY:
        ret = packed(msgpack_pack_array(pk, v->u.a.len));
        for (size_t i = 0; !ret && i < v->u.a.len; i++)
            ret = pack_clean(pk, &v->u.a.items[i], depth + 1);
        break;
    case VALUE_MAP:
        ret = packed(msgpack_pack_map(pk, v->u.m.len));
        for (size_t i = 0; !ret && i < v->u.m.len; i++) {
            ret = pack_clean(pk, &v->u.m.items[i].key, depth + 1);
            if (!ret)
                ret = pack_clean(pk, &v->u.m.items[i].val, depth + 1);
        }
        break;
    default:
        ret = value_pack(pk, v);
        break;
    }
    return ret;
}

static bool map_has_str_keys(const struct value *m)
{
    for (size_t i = 0; i < m->u.m.len; i++)
        if (m->u.m.items[i].key.type != VALUE_STR)
            return false;
    return true;
}

static bool is_sp_result(const struct value *v)
{
    return v->type == VALUE_ARRAY && v->u.a.len == 2 && v->u.a.items[0].type == VALUE_STR &&
           v->u.a.items[1].type == VALUE_STR;
}

// problems/tests/custom: a map with str keys (NULL or NIL = {}).
static int pack_result_map(msgpack_packer *pk, const struct value *m, bool problems)
{
    if (!m || m->type == VALUE_NIL)
        return packed(msgpack_pack_map(pk, 0));
    if (m->type != VALUE_MAP || !map_has_str_keys(m))
        return -EINVAL;
    if (problems)
        for (size_t i = 0; i < m->u.m.len; i++)
            if (!is_sp_result(&m->u.m.items[i].val))
                return -EINVAL;
    return pack_clean(pk, m, 0);
}

static int pack_type(msgpack_packer *pk, const char *name)
{
    int ret = pack_cstr(pk, "@type");
    if (!ret)
        ret = pack_cstr(pk, name);
    return ret;
}

static bool env_info_ok(const struct value *info)
{
    if (info->type != VALUE_MAP || !map_has_str_keys(info))
        return false;
    const struct value *id = value_map_get(info, "id");
    const struct value *created = value_map_get(info, "created");
    return id && id->type == VALUE_STR && created && created->type == VALUE_INT;
}

// {type: {name: info}} with every info carrying "advertised": true, last.
static int pack_environments(msgpack_packer *pk, const struct value *envs)
{
    if (!envs || envs->type == VALUE_NIL)
        return packed(msgpack_pack_map(pk, 0));
    if (envs->type != VALUE_MAP || !map_has_str_keys(envs))
        return -EINVAL;
    for (size_t i = 0; i < envs->u.m.len; i++) {
        const struct value *names = &envs->u.m.items[i].val;
        if (names->type != VALUE_MAP || !map_has_str_keys(names))
            return -EINVAL;
        for (size_t j = 0; j < names->u.m.len; j++)
            if (!env_info_ok(&names->u.m.items[j].val))
                return -EINVAL;
    }

    int ret = packed(msgpack_pack_map(pk, envs->u.m.len));
    for (size_t i = 0; !ret && i < envs->u.m.len; i++) {
        const struct value *names = &envs->u.m.items[i].val;
        ret = pack_clean(pk, &envs->u.m.items[i].key, 0);
        if (!ret)
            ret = packed(msgpack_pack_map(pk, names->u.m.len));
        for (size_t j = 0; !ret && j < names->u.m.len; j++) {
            const struct value *info = &names->u.m.items[j].val;
            size_t n = info->u.m.len + (value_map_get(info, "advertised") ? 0 : 1);
            ret = pack_clean(pk, &names->u.m.items[j].key, 0);
            if (!ret)
                ret = packed(msgpack_pack_map(pk, n));
            for (size_t k = 0; !ret && k < info->u.m.len; k++) {
                const struct value_pair *p = &info->u.m.items[k];
                if (key_is(&p->key, "advertised"))
                    continue;
                ret = pack_clean(pk, &p->key, 0);
                if (!ret)
                    ret = pack_clean(pk, &p->val, 1);
            }
            if (!ret)
                ret = pack_cstr(pk, "advertised");
            if (!ret)
                ret = packed(msgpack_pack_true(pk));
        }
    }
    return ret;
}

int backend_encode_hello(msgpack_sbuffer *sb, const char *friendly_name, int64_t slots,
                         const struct value *environments)
{
    if (PROCTOR_FAILS(friendly_name && slots >= 0))
        return -EINVAL;
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    int ret = packed(msgpack_pack_map(&pk, 4));
    if (!ret)
        ret = pack_cstr(&pk, "friendly_name");
    if (!ret)
        ret = pack_cstr(&pk, friendly_name);
    if (!ret)
        ret = pack_cstr(&pk, "available_job_slots");
    if (!ret)
        ret = packed(msgpack_pack_int64(&pk, slots));
    if (!ret)
        ret = pack_cstr(&pk, "available_environments");
    if (!ret)
        ret = pack_environments(&pk, environments);
    if (!ret)
        ret = pack_type(&pk, "AgentHello");
    return ret;
}

int backend_encode_job_started(msgpack_sbuffer *sb, const char *job_id)
{
    if (PROCTOR_FAILS(job_id))
        return -EINVAL;
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    int ret = packed(msgpack_pack_map(&pk, 2));
    if (!ret)
        ret = pack_cstr(&pk, "job_id");
    if (!ret)
        ret = pack_cstr(&pk, job_id);
    if (!ret)
        ret = pack_type(&pk, "AgentJobStarted");
    return ret;
}

int backend_encode_job_done(msgpack_sbuffer *sb, const struct backend_job_done *d)
{
    if (PROCTOR_FAILS(d && d->job_id && d->result))
        return -EINVAL;
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    int ret = packed(msgpack_pack_map(&pk, 11));
    if (!ret)
        ret = pack_cstr(&pk, "job_id");
    if (!ret)
        ret = pack_cstr(&pk, d->job_id);
    if (!ret)
        ret = pack_cstr(&pk, "result");
    if (!ret)
        ret = packed(msgpack_pack_array(&pk, 2));
    if (!ret)
        ret = pack_cstr(&pk, d->result);
    if (!ret)
        ret = pack_cstr(&pk, d->text ? d->text : "");
    if (!ret)
        ret = pack_cstr(&pk, "grade");
    if (!ret)
        ret = packed(msgpack_pack_double(&pk, d->grade));
    if (!ret)
        ret = pack_cstr(&pk, "problems");
    if (!ret)
        ret = pack_result_map(&pk, d->problems, true);
    if (!ret)
        ret = pack_cstr(&pk, "tests");
    if (!ret)
        ret = pack_result_map(&pk, d->tests, false);
    if (!ret)
        ret = pack_cstr(&pk, "custom");
    if (!ret)
        ret = pack_result_map(&pk, d->custom, false);
    if (!ret)
        ret = pack_cstr(&pk, "state");
    if (!ret)
        ret = pack_cstr(&pk, d->state ? d->state : "");
    if (!ret)
        ret = pack_cstr(&pk, "archive");
    if (!ret)
        ret = packed(d->archive ? msgpack_pack_bin_with_body(&pk, d->archive, d->archive_len)
                                : msgpack_pack_nil(&pk));
    if (!ret)
        ret = pack_cstr(&pk, "stdout");
    if (!ret)
        ret = pack_cstr_or_nil(&pk, d->stdout_text);
    if (!ret)
        ret = pack_cstr(&pk, "stderr");
    if (!ret)
        ret = pack_cstr_or_nil(&pk, d->stderr_text);
    if (!ret)
        ret = pack_type(&pk, "AgentJobDone");
    return ret;
}

int backend_encode_ssh_debug(msgpack_sbuffer *sb, const char *job_id, const char *host, int port,
                             const char *user, const char *password)
{
    if (PROCTOR_FAILS(job_id && host && user && password && port >= 0 && port <= 65535))
        return -EINVAL;
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    int ret = packed(msgpack_pack_map(&pk, 6));
    if (!ret)
        ret = pack_cstr(&pk, "job_id");
    if (!ret)
        ret = pack_cstr(&pk, job_id);
    if (!ret)
        ret = pack_cstr(&pk, "host");
    if (!ret)
        ret = pack_cstr(&pk, host);
    if (!ret)
        ret = pack_cstr(&pk, "port");
    if (!ret)
        ret = packed(msgpack_pack_int(&pk, port));
    if (!ret)
        ret = pack_cstr(&pk, "user");
    if (!ret)
        ret = pack_cstr(&pk, user);
    if (!ret)
        ret = pack_cstr(&pk, "password");
    if (!ret)
        ret = pack_cstr(&pk, password);
    if (!ret)
        ret = pack_type(&pk, "AgentJobSSHDebug");
    return ret;
}

int backend_encode_pong(msgpack_sbuffer *sb)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    int ret = packed(msgpack_pack_map(&pk, 1));
    if (!ret)
        ret = pack_type(&pk, "Pong");
    return ret;
}

/* ---- backend-side check of agent messages (tests, fake backends) -------- */

enum check_kind {
    CHECK_STR,
    CHECK_STR_OR_NIL,
    CHECK_UINT, /* non-negative int */
    CHECK_PORT, /* int in 0..65535 */
    CHECK_FLOAT,
    CHECK_SP_RESULT,    /* [str, str] */
    CHECK_PROBLEMS,     /* {str: [str, str]} */
    CHECK_STR_KEY_MAP,  /* {str: any} */
    CHECK_ENVIRONMENTS, /* {str: {str: {id: str, created: int, advertised: true, ...}}} */
    CHECK_BIN_OR_NIL,
};

struct check_field {
    const char *name;
    enum check_kind kind;
};

struct check_schema {
    const char *type;
    const struct check_field *fields;
    size_t nfields;
};

static const struct check_field hello_check[] = {
    {"friendly_name", CHECK_STR},
    {"available_job_slots", CHECK_UINT},
    {"available_environments", CHECK_ENVIRONMENTS},
};
static const struct check_field started_check[] = {
    {"job_id", CHECK_STR},
};
static const struct check_field done_check[] = {
    {"job_id", CHECK_STR},        {"result", CHECK_SP_RESULT},   {"grade", CHECK_FLOAT},
    {"problems", CHECK_PROBLEMS}, {"tests", CHECK_STR_KEY_MAP},  {"custom", CHECK_STR_KEY_MAP},
    {"state", CHECK_STR},         {"archive", CHECK_BIN_OR_NIL}, {"stdout", CHECK_STR_OR_NIL},
    {"stderr", CHECK_STR_OR_NIL},
};
static const struct check_field ssh_check[] = {
    {"job_id", CHECK_STR}, {"host", CHECK_STR},     {"port", CHECK_PORT},
    {"user", CHECK_STR},   {"password", CHECK_STR},
};

static const struct check_schema check_schemas[] = {
    {"AgentHello", hello_check, ARRAY_SIZE(hello_check)},
    {"AgentJobStarted", started_check, ARRAY_SIZE(started_check)},
    {"AgentJobDone", done_check, ARRAY_SIZE(done_check)},
    {"AgentJobSSHDebug", ssh_check, ARRAY_SIZE(ssh_check)},
    {"Pong", NULL, 0},
};

static bool check_envs(const struct value *v)
{
    if (v->type != VALUE_MAP || !map_has_str_keys(v))
        return false;
    for (size_t i = 0; i < v->u.m.len; i++) {
        const struct value *names = &v->u.m.items[i].val;
        if (names->type != VALUE_MAP || !map_has_str_keys(names))
            return false;
        for (size_t j = 0; j < names->u.m.len; j++) {
            const struct value *info = &names->u.m.items[j].val;
            const struct value *adv = value_map_get(info, "advertised");
            if (!env_info_ok(info) || !adv || adv->type != VALUE_BOOL || !adv->u.b)
                return false;
        }
    }
    return true;
}

static bool check_value(enum check_kind kind, const struct value *v)
{
    switch (kind) {
    case CHECK_STR:
        return v->type == VALUE_STR;
    case CHECK_STR_OR_NIL:
        return v->type == VALUE_STR || v->type == VALUE_NIL;
    case CHECK_UINT:
        return v->type == VALUE_INT && v->u.i >= 0;
    case CHECK_PORT:
        return v->type == VALUE_INT && v->u.i >= 0 && v->u.i <= 65535;
    case CHECK_FLOAT:
        return v->type == VALUE_FLOAT;
    case CHECK_SP_RESULT:
        return is_sp_result(v);
    case CHECK_PROBLEMS:
        if (v->type != VALUE_MAP || !map_has_str_keys(v))
            return false;
        for (size_t i = 0; i < v->u.m.len; i++)
            if (!is_sp_result(&v->u.m.items[i].val))
                return false;
        return true;
    case CHECK_STR_KEY_MAP:
        return v->type == VALUE_MAP && map_has_str_keys(v);
    case CHECK_ENVIRONMENTS:
        return check_envs(v);
    case CHECK_BIN_OR_NIL:
        return v->type == VALUE_BIN || v->type == VALUE_NIL;
    }
    return false;
}

static int check_root(const struct value *root, char *err, size_t errlen)
{
    if (root->type != VALUE_MAP || root->u.m.len == 0) {
        util_err(err, errlen, "payload is not a non-empty map");
        return -EBADMSG;
    }
    if (!tree_utf8_valid(root)) {
        util_err(err, errlen, "invalid UTF-8 in a str");
        return -EBADMSG;
    }
    const struct value_pair *last = &root->u.m.items[root->u.m.len - 1];
    if (!key_is(&last->key, "@type") || last->val.type != VALUE_STR) {
        util_err(err, errlen, "the last key is not \"@type\" with a str value");
        return -EBADMSG;
    }
    const struct check_schema *sc = NULL;
    for (size_t i = 0; i < ARRAY_SIZE(check_schemas); i++)
        if (value_is_str(&last->val, check_schemas[i].type))
            sc = &check_schemas[i];
    if (!sc) {
        util_err(err, errlen, "agents may not send \"%.64s\"", last->val.u.s.ptr);
        return -EBADMSG;
    }
    if (root->u.m.len != sc->nfields + 1) {
        util_err(err, errlen, "%s has %zu fields, expected %zu", sc->type, root->u.m.len - 1,
                 sc->nfields);
        return -EBADMSG;
    }
    for (size_t i = 0; i < sc->nfields; i++) {
        const struct value_pair *p = &root->u.m.items[i];
        if (!key_is(&p->key, sc->fields[i].name)) {
            util_err(err, errlen, "%s field %zu is not %s", sc->type, i, sc->fields[i].name);
            return -EBADMSG;
        }
        if (!check_value(sc->fields[i].kind, &p->val)) {
            util_err(err, errlen, "%s field %s has a wrong type or shape (%s)", sc->type,
                     sc->fields[i].name, value_type_name(p->val.type));
            return -EBADMSG;
        }
    }
    return 0;
}

int backend_check_agent_msg(const char *buf, size_t len, struct value *out, char *err,
                            size_t errlen)
{
    int ret = value_unpack(buf, len, out, err, errlen);
    if (!ret)
        ret = check_root(out, err, errlen);
    if (ret)
        value_deinit(out);
    return ret;
}
