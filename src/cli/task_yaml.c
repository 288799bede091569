/*
 * task.yaml through libyaml's document loader: the whole first document is
 * loaded as a node tree (aliases resolved by libyaml), then the few keys of
 * task_yaml.h are looked up in it.
 */
#include "cli/task_yaml.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "core/util.h"

#define TASK_YAML_MAX ((size_t)1 << 20)

static yaml_node_t *map_get(yaml_document_t *doc, yaml_node_t *map, const char *key);
static bool scalar_is(const yaml_node_t *n, const char *text);
static bool is_null(const yaml_node_t *n);
static int read_limits(yaml_document_t *doc, yaml_node_t *limits, const char *name,
                       struct task_yaml *out, char *err, size_t errlen);

int task_yaml_parse(const char *text, size_t len, const char *name, struct task_yaml *out,
                    char *err, size_t errlen)
{
    yaml_parser_t parser;
    yaml_document_t doc;
    bool doc_ready = false;
    int ret = 0;
    memset(out, 0, sizeof *out);
    if (!yaml_parser_initialize(&parser)) {
        util_err(err, errlen, "%s: cannot start the YAML parser (out of memory)", name);
        return -EINVAL;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (!yaml_parser_load(&parser, &doc)) {
        // problem_mark is 0-based; a context ("while parsing a block mapping")
        // says where the construct that failed began.
        if (parser.error == YAML_MEMORY_ERROR || !parser.problem)
            util_err(err, errlen, "%s: cannot parse (out of memory)", name);
        else if (parser.context)
            util_err(err, errlen, "%s:%zu:%zu: %s (%s, line %zu)", name,
                     parser.problem_mark.line + 1, parser.problem_mark.column + 1, parser.problem,
                     parser.context, parser.context_mark.line + 1);
        else
            util_err(err, errlen, "%s:%zu:%zu: %s", name, parser.problem_mark.line + 1,
                     parser.problem_mark.column + 1, parser.problem);
        ret = -EINVAL;
    } else {
        doc_ready = true;
    }
    yaml_node_t *root = doc_ready ? yaml_document_get_root_node(&doc) : NULL;
    if (!ret && root && root->type != YAML_MAPPING_NODE && !is_null(root)) {
        util_err(err, errlen, "%s:%zu: the task is not a mapping of keys", name,
                 root->start_mark.line + 1);
        ret = -EINVAL;
    }
    if (!ret && root && root->type == YAML_MAPPING_NODE) {
        yaml_node_t *env = map_get(&doc, root, "environment_id");
        if (env && env->type != YAML_SCALAR_NODE) {
            util_err(err, errlen, "%s:%zu: environment_id is not a string", name,
                     env->start_mark.line + 1);
            ret = -EINVAL;
        } else if (env && !is_null(env)) {
            out->environment_id =
                xstrndup((const char *)env->data.scalar.value, env->data.scalar.length);
        }
        // environment_parameters.limits first: its keys win over the old top-level ones.
        yaml_node_t *params = map_get(&doc, root, "environment_parameters");
        if (!ret && params && params->type == YAML_MAPPING_NODE)
            ret = read_limits(&doc, map_get(&doc, params, "limits"), name, out, err, errlen);
        if (!ret)
            ret = read_limits(&doc, map_get(&doc, root, "limits"), name, out, err, errlen);
    }
    if (doc_ready)
        yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    if (ret)
        task_yaml_deinit(out);
    return ret;
}

int task_yaml_read(const char *path, struct task_yaml *out, char *err, size_t errlen)
{
    AUTO_FREE char *text = NULL;
    size_t len = 0;
    memset(out, 0, sizeof *out);
    int ret = util_read_file(path, TASK_YAML_MAX, &text, &len);
    if (ret == -ENOENT)
        return ret;
    if (ret) {
        util_err(err, errlen, "%s: %s", path,
                 ret == -ENOMEM ? "larger than 1 MiB" : strerror(-ret));
        return -EINVAL;
    }
    return task_yaml_parse(text, len, path, out, err, errlen);
}

void task_yaml_deinit(struct task_yaml *t)
{
    free(t->environment_id);
    memset(t, 0, sizeof *t);
}

/* ---- helpers ------------------------------------------------------------- */

// The value of `key` in a mapping node (the first one when a key repeats), or NULL.
static yaml_node_t *map_get(yaml_document_t *doc, yaml_node_t *map, const char *key)
{
    if (!map || map->type != YAML_MAPPING_NODE)
        return NULL;
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        if (scalar_is(yaml_document_get_node(doc, p->key), key))
            return yaml_document_get_node(doc, p->value);
    }
    return NULL;
}

static bool scalar_is(const yaml_node_t *n, const char *text)
{
    return n && n->type == YAML_SCALAR_NODE && n->data.scalar.length == strlen(text) &&
           !memcmp(n->data.scalar.value, text, n->data.scalar.length);
}

// Empty, or YAML 1.1's plain null (`~`, `null`, nothing after the colon).
static bool is_null(const yaml_node_t *n)
{
    if (n->type != YAML_SCALAR_NODE)
        return false;
    if (n->data.scalar.length == 0)
        return true;
    if (n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    static const char *const nulls[] = {"~", "null", "Null", "NULL"};
    for (size_t i = 0; i < ARRAY_SIZE(nulls); i++)
        if (scalar_is(n, nulls[i]))
            return true;
    return false;
}

// A limit: an integer, or a finite decimal number truncated toward zero.
static bool parse_limit(const yaml_node_t *n, long long *v)
{
    char text[64];
    size_t len = n->data.scalar.length;
    if (len == 0 || len >= sizeof text)
        return false;
    memcpy(text, n->data.scalar.value, len);
    text[len] = '\0';
    char *end;
    errno = 0;
    long long i = strtoll(text, &end, 10);
    if (end != text && *end == '\0' && errno == 0) {
        *v = i;
        return true;
    }
    double d = strtod(text, &end);
    if (end == text || *end != '\0' || !isfinite(d) || d >= 9.2e18 || d <= -9.2e18)
        return false;
    *v = (long long)d;
    return true;
}

// Fills the limits of out that are still unset from a `limits` mapping (NULL: none).
static int read_limits(yaml_document_t *doc, yaml_node_t *limits, const char *name,
                       struct task_yaml *out, char *err, size_t errlen)
{
    if (!limits || is_null(limits))
        return 0;
    if (limits->type != YAML_MAPPING_NODE) {
        util_err(err, errlen, "%s:%zu: limits is not a mapping", name, limits->start_mark.line + 1);
        return -EINVAL;
    }
    struct {
        const char *key;
        bool *has;
        long long *v;
    } keys[] = {{"time", &out->has_time, &out->time},
                {"hard_time", &out->has_hard_time, &out->hard_time},
                {"memory", &out->has_memory, &out->memory}};
    for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
        yaml_node_t *n = map_get(doc, limits, keys[i].key);
        if (!n || *keys[i].has || is_null(n))
            continue;
        if (n->type != YAML_SCALAR_NODE || !parse_limit(n, keys[i].v)) {
            util_err(err, errlen, "%s:%zu: limits.%s is not a number", name, n->start_mark.line + 1,
                     keys[i].key);
            return -EINVAL;
        }
        *keys[i].has = true;
    }
    return 0;
}
