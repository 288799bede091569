// proctor: the admin's command line. Grades one submission locally with the
// same job code as proctord (no backend), lists environments, checks policies.

#include <cjson/cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/task_yaml.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/util.h"
#include "job/agent.h"
#include "policy/policy.h"

struct cli {
    struct loop *loop;
    struct agent *agent;
    struct backend_new_job job;
    bool want_envs;
    bool envs_json; /* envs: JSON rather than a table */
    int exit_code;
    bool done;
    bool stopping;         /* interrupted: removing the job's containers */
    uint64_t status_timer; /* the live status line on a terminal */
    bool status_shown;
};

// Interrupted: how long removing the job's containers may take.
#define STOP_MS 20000
// The live status line's refresh.
#define STATUS_MS 250

/**
 * The value as a cJSON tree (caller frees with cJSON_Delete): binary strings
 * become "<N bytes>", map keys that are not strings their JSON text, and
 * non-finite floats null (cJSON's choice; JSON has no NaN or Infinity).
 * Aborts on OOM, like the other small bookkeeping of this command.
 */
static cJSON *to_json(const struct value *v)
{
    cJSON *j = NULL;
    switch (v->type) {
    case VALUE_NIL:
        j = cJSON_CreateNull();
        break;
    case VALUE_BOOL:
        j = cJSON_CreateBool(v->u.b);
        break;
    case VALUE_INT:
        j = cJSON_CreateNumber((double)v->u.i);
        break;
    case VALUE_UINT:
        j = cJSON_CreateNumber((double)v->u.u);
        break;
    case VALUE_FLOAT:
        j = isfinite(v->u.f) ? cJSON_CreateNumber(v->u.f) : cJSON_CreateNull();
        break;
    case VALUE_STR:
        j = cJSON_CreateString(v->u.s.ptr);
        break;
    case VALUE_BIN: {
        char text[48];
        snprintf(text, sizeof text, "<%zu bytes>", v->u.s.len);
        j = cJSON_CreateString(text);
        break;
    }
    case VALUE_ARRAY:
        j = cJSON_CreateArray();
        for (size_t i = 0; j && i < v->u.a.len; i++)
            cJSON_AddItemToArray(j, to_json(&v->u.a.items[i]));
        break;
    case VALUE_MAP:
        j = cJSON_CreateObject();
        for (size_t i = 0; j && i < v->u.m.len; i++) {
            const struct value *k = &v->u.m.items[i].key;
            char *ktext = NULL;
            if (k->type != VALUE_STR) {
                cJSON *kj = to_json(k);
                ktext = cJSON_PrintUnformatted(kj);
                cJSON_Delete(kj);
                PROCTOR_REQUIRE(ktext);
            }
            cJSON_AddItemToObject(j, ktext ? ktext : k->u.s.ptr, to_json(&v->u.m.items[i].val));
            free(ktext);
        }
        break;
    }
    PROCTOR_REQUIRE(j);
    return j;
}

/** Prints a cJSON tree on stdout and frees it. */
static void print_json(cJSON *j)
{
    char *text = cJSON_Print(j);
    PROCTOR_REQUIRE(text);
    puts(text);
    fflush(stdout);
    free(text);
    cJSON_Delete(j);
}

static cJSON *str_or_null(const char *s)
{
    cJSON *j = s ? cJSON_CreateString(s) : cJSON_CreateNull();
    PROCTOR_REQUIRE(j);
    return j;
}

static cJSON *map_or_empty(const struct value *v)
{
    if (v && v->type != VALUE_NIL)
        return to_json(v);
    cJSON *j = cJSON_CreateObject();
    PROCTOR_REQUIRE(j);
    return j;
}

static void sink_started(void *data, const char *job_id)
{
    PROCTOR_UNUSED(data);
    log_debug(LOG_CLI, "job %s started", job_id);
}

static void status_clear(struct cli *c)
{
    loop_timer_del(c->loop, c->status_timer);
    c->status_timer = 0;
    if (c->status_shown)
        fputs("\r\033[K", stderr);
    c->status_shown = false;
}

/** --explain: one line per policy decision on stderr (the status line, if any, is redrawn). */
static void on_explain(void *data, const char *line)
{
    struct cli *c = data;
    if (c->status_shown)
        fputs("\r\033[K", stderr);
    c->status_shown = false;
    fprintf(stderr, "explain: %s\n", line);
}

/** On a terminal: one line, rewritten in place, with the job's phase and its times. */
static long on_status(struct loop *loop, uint64_t id, void *data)
{
    PROCTOR_UNUSED(loop);
    PROCTOR_UNUSED(id);
    struct cli *c = data;
    struct agent_job_status st;
    if (!c->agent || agent_job_status(c->agent, c->job.job_id, &st))
        return STATUS_MS;
    char cpu[32] = "-";
    if (st.cpu_s >= 0)
        snprintf(cpu, sizeof cpu, "%.1f", st.cpu_s);
    fprintf(stderr, "\r\033[K%s/%s: %s, CPU %s of %lld s, wall %.1f of %lld s", c->job.course_id,
            c->job.task_id, st.phase, cpu, (long long)st.time_s, st.wall_s,
            (long long)st.hard_time_s);
    c->status_shown = true;
    return STATUS_MS;
}

static void sink_done(void *data, const struct backend_job_done *d)
{
    struct cli *c = data;
    status_clear(c);
    // The same fields AgentJobDone carries, as JSON on stdout.
    cJSON *j = cJSON_CreateObject();
    cJSON *result = cJSON_CreateArray();
    PROCTOR_REQUIRE(j && result);
    cJSON_AddItemToArray(result, str_or_null(d->result));
    cJSON_AddItemToArray(result, str_or_null(d->text ? d->text : ""));
    cJSON_AddItemToObject(j, "result", result);
    // The backend rounds the grade to 2 decimals; so does the agent.
    cJSON_AddItemToObject(j, "grade",
                          isfinite(d->grade) ? cJSON_CreateNumber(d->grade) : cJSON_CreateNull());
    cJSON_AddItemToObject(j, "problems", map_or_empty(d->problems));
    cJSON_AddItemToObject(j, "tests", map_or_empty(d->tests));
    cJSON_AddItemToObject(j, "custom", map_or_empty(d->custom));
    cJSON_AddItemToObject(j, "state", str_or_null(d->state ? d->state : ""));
    cJSON_AddItemToObject(j, "archive", str_or_null(d->archive ? "<tgz>" : NULL));
    cJSON_AddItemToObject(j, "stdout", str_or_null(d->stdout_text));
    cJSON_AddItemToObject(j, "stderr", str_or_null(d->stderr_text));
    print_json(j);
    c->exit_code = !strcmp(d->result, "success") ? 0 : 1;
    c->done = true;
}

static void sink_ssh(void *data, const char *job_id, const char *host, int port, const char *user,
                     const char *password)
{
    PROCTOR_UNUSED(data);
    fprintf(stderr, "job %s: ssh %s@%s -p %d (password %s)\n", job_id, user, host, port, password);
}

static void sink_idle(void *data)
{
    struct cli *c = data;
    // The job is answered and its containers removed.
    loop_stop(c->loop);
}

/** `proctor envs`: one line per environment. */
static void print_envs_table(const struct value *envs)
{
    printf("%-28s %-14s %-24s %-12s %s\n", "ENVIRONMENT", "IMAGE", "RUNTIME", "PORTS",
           "ADVERTISED");
    for (size_t t = 0; envs->type == VALUE_MAP && t < envs->u.m.len; t++) {
        const struct value_pair *type = &envs->u.m.items[t];
        for (size_t n = 0; type->val.type == VALUE_MAP && n < type->val.u.m.len; n++) {
            const struct value_pair *env = &type->val.u.m.items[n];
            const struct value *id = value_map_get(&env->val, "id");
            const struct value *rt = value_map_get(&env->val, "runtime");
            const struct value *ports = value_map_get(&env->val, "ports");
            const struct value *adv = value_map_get(&env->val, "advertised");
            char portlist[64] = "-";
            size_t o = 0;
            for (size_t i = 0; ports && ports->type == VALUE_ARRAY && i < ports->u.a.len; i++)
                if (ports->u.a.items[i].type == VALUE_INT && o + 8 < sizeof portlist)
                    o += (size_t)snprintf(portlist + o, sizeof portlist - o, "%s%lld", i ? "," : "",
                                          (long long)ports->u.a.items[i].u.i);
            AUTO_FREE char *name = xasprintf("%s/%s", type->key.u.s.ptr, env->key.u.s.ptr);
            const char *img = id && id->type == VALUE_STR ? id->u.s.ptr : "?";
            if (!strncmp(img, "sha256:", 7))
                img += 7;
            printf("%-28s %-14.12s %-24s %-12s %s\n", name, img,
                   rt && rt->type == VALUE_STR ? rt->u.s.ptr : "?", portlist,
                   adv && adv->type == VALUE_BOOL && !adv->u.b ? "no" : "yes");
        }
    }
}

static void on_ready(struct agent *a, const struct value *envs, const char *err, void *data)
{
    struct cli *c = data;
    if (!envs) {
        fprintf(stderr, "proctor: %s\n", err ? err : "environment discovery failed");
        c->exit_code = 2;
        loop_stop(c->loop);
        return;
    }
    if (c->want_envs) {
        if (c->envs_json)
            print_json(to_json(envs));
        else
            print_envs_table(envs);
        c->exit_code = 0;
        loop_stop(c->loop);
        return;
    }
    agent_new_job(a, &c->job);
    if (agent_job_count(a) == 0) {
        loop_stop(c->loop); /* answered at once (refused): nothing to clean up */
        return;
    }
    if (isatty(STDERR_FILENO) && !c->done)
        c->status_timer = loop_timer_add(c->loop, STATUS_MS, on_status, c);
}

static long on_stop_deadline(struct loop *loop, uint64_t id, void *data)
{
    PROCTOR_UNUSED(id);
    PROCTOR_UNUSED(data);
    fprintf(stderr, "proctor: containers not removed within %d s; the next run removes them\n",
            STOP_MS / 1000);
    loop_stop(loop);
    return LOOP_NOMORE;
}

static void on_sigint(struct loop *loop, int signo, void *data)
{
    PROCTOR_UNUSED(signo);
    struct cli *c = data;
    // First signal: stop the job and remove its containers; second: exit now.
    if (c->stopping || !c->agent || agent_job_count(c->agent) == 0) {
        loop_stop(loop);
        return;
    }
    c->stopping = true;
    status_clear(c);
    agent_abandon_jobs(c->agent);
    loop_timer_add(loop, STOP_MS, on_stop_deadline, c);
}

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: proctor run [options] COURSE TASK\n"
        "       proctor envs [--ssh] [--json]\n"
        "       proctor check-policies DIR\n"
        "       proctor test-policies DIR [SPEC...]\n"
        "       proctor --version\n"
        "\n"
        "run: grade one submission locally with the real Docker engine (no backend) and\n"
        "print the result as JSON. Exit status 0 when the result is success.\n"
        "  --tasks DIR           courses directory (default ./tasks)\n"
        "  --policies DIR        Lua policies (default: built-in)\n"
        "  --tmpdir DIR          where to make the job's work directory (default /tmp)\n"
        "  --input PID=VALUE     a problem's answer (repeatable); @username=... etc. too\n"
        "  --file PID=PATH       upload PATH as the file answer of PID\n"
        "  --env TYPE/NAME       environment (default docker/<task.yaml environment_id>)\n"
        "  --time S --hard-time S --memory MB   limits (default: task.yaml's, else the policy's)\n"
        "  --debug               ask the runner for stdout/stderr\n"
        "  --explain             one line per policy decision on stderr: the hook, the\n"
        "                        file:line that answered, its input and what the job got,\n"
        "                        and whether the shipped file answered instead of DIR's\n"
        "  --answer-at-exit      judge the job when its grading container exits, as\n"
        "                        INGInious does (default: as soon as its result arrives)\n"
        "  -v                    the agent's logs (default: warnings only)\n"
        "envs: the environments of the local Docker engine, as a table (--json: as JSON).\n"
        "test-policies: run busted specs (default DIR/spec) against the policies in DIR, in\n"
        "proctord's loader and sandbox; proctor.load(name) in a spec is DIR/<name>.lua, or the\n"
        "shipped file when DIR has none. Exit status: busted's.\n");
}

/** A task author's typo gets a clear error here, not the backend's "Task unavailable". */
static int check_task_dirs(const char *tasks, const char *course, const char *task)
{
    struct stat st;
    AUTO_FREE char *cdir = xasprintf("%s/%s", tasks, course);
    AUTO_FREE char *tdir = xasprintf("%s/%s", cdir, task);
    if (stat(tasks, &st) < 0 || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "proctor: no tasks directory %s (give it with --tasks DIR)\n", tasks);
        return -1;
    }
    if (stat(cdir, &st) < 0 || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "proctor: no course %s in %s\n", course, tasks);
        return -1;
    }
    if (stat(tdir, &st) < 0 || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "proctor: no task %s in course %s (%s)\n", task, course, tdir);
        return -1;
    }
    return 0;
}

static int add_input(struct value *input, const char *spec, bool file)
{
    const char *eq = strchr(spec, '=');
    if (!eq || eq == spec)
        return -EINVAL;
    AUTO_FREE char *key = xstrndup(spec, (size_t)(eq - spec));
    if (!file) {
        value_set_str(value_map_put(input, key), eq + 1);
        return 0;
    }
    char *content = NULL;
    size_t len = 0;
    int ret = util_read_file(eq + 1, 64 << 20, &content, &len);
    if (ret)
        return ret;
    struct value *v = value_map_put(input, key);
    value_set_map(v);
    const char *base = strrchr(eq + 1, '/');
    value_set_str(value_map_put(v, "filename"), base ? base + 1 : eq + 1);
    value_take_bin(value_map_put(v, "value"), content, len);
    return 0;
}

/*
 * proctor test-policies DIR [SPEC...]: the admin's busted specs (default
 * DIR/spec) against the policy directory DIR, with the host Lua, the shipped
 * policies and the busted helper embedded in this binary written to a fresh
 * directory (the same loader and sandbox as proctord, wherever proctor is
 * installed). The exit status is busted's (0: every spec passed).
 */
static int test_policies(int argc, char **argv)
{
    char err[1024] = "";
    AUTO_FREE char *dir = realpath(argv[2], NULL);
    struct stat st;
    if (!dir || stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "proctor: no policy directory %s\n", argv[2]);
        return 2;
    }
    AUTO_FREE char *default_specs = xasprintf("%s/spec", dir);
    if (argc == 3 && (stat(default_specs, &st) < 0 || !S_ISDIR(st.st_mode))) {
        fprintf(stderr,
                "proctor: no specs to run: give SPEC files or directories, or put *_spec.lua "
                "files in %s (examples to copy: share/proctor/policies/spec/)\n",
                default_specs);
        return 2;
    }
    const char *tmp_base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    AUTO_FREE char *tmp = xasprintf("%s/proctor-test-policies-XXXXXX", tmp_base);
    if (!mkdtemp(tmp)) {
        fprintf(stderr, "proctor: %s: %s\n", tmp, strerror(errno));
        return 2;
    }
    if (policy_export_embedded(tmp, err, sizeof err)) {
        fprintf(stderr, "proctor: %s\n", err);
        policy_export_remove(tmp);
        return 2;
    }
    const char *busted = getenv("PROCTOR_BUSTED") ? getenv("PROCTOR_BUSTED") : "busted";
    AUTO_FREE char *helper = xasprintf("--helper=%s/preload.lua", tmp);
    // An empty configuration: a .busted in the admin's working directory must not
    // change the helper or what runs.
    AUTO_FREE char *config = xasprintf("%s/busted.conf", tmp);
    AUTO_FREE char *config_arg = xasprintf("--config-file=%s", config);
    FILE *cf = fopen(config, "w");
    if (!cf || fputs("return {}\n", cf) < 0 || fclose(cf) != 0) {
        fprintf(stderr, "proctor: %s: %s\n", config, strerror(errno));
        unlink(config);
        policy_export_remove(tmp);
        return 2;
    }
    size_t n = 0, max = (size_t)argc + 8;
    const char **args = xcalloc(max, sizeof *args);
    args[n++] = busted;
    args[n++] = config_arg;
    args[n++] = "--lua=lua5.4";
    args[n++] = helper;
    args[n++] = "--pattern=_spec";
    args[n++] = "--output=utfTerminal";
    if (argc == 3)
        args[n++] = default_specs;
    for (int i = 3; i < argc; i++)
        args[n++] = argv[i];
    fflush(NULL);
    int status = 2;
    pid_t pid = fork();
    if (pid == 0) {
        setenv("PROCTOR_ROOT", tmp, 1);
        setenv("PROCTOR_POLICIES", dir, 1);
        execvp(busted, (char *const *)args);
        fprintf(stderr, "proctor: cannot run %s: %s (Debian: apt-get install lua-busted)\n", busted,
                strerror(errno));
        _exit(127);
    }
    if (pid < 0) {
        fprintf(stderr, "proctor: fork: %s\n", strerror(errno));
    } else {
        int ws = 0;
        while (waitpid(pid, &ws, 0) < 0 && errno == EINTR)
            ;
        status = WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + (WIFSIGNALED(ws) ? WTERMSIG(ws) : 0);
    }
    free(args);
    unlink(config);
    policy_export_remove(tmp);
    if (status != 0 && status != 127)
        fprintf(stderr, "\nproctor: the specs against %s failed (busted exit status %d)\n", dir,
                status);
    return status;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(cmd, "--version")) {
        printf("proctor %s\n", PROCTOR_VERSION);
        return 0;
    }
    if (!strcmp(cmd, "test-policies")) {
        if (argc < 3) {
            usage(stderr);
            return 2;
        }
        return test_policies(argc, argv);
    }
    if (!strcmp(cmd, "check-policies")) {
        if (argc != 3) {
            usage(stderr);
            return 2;
        }
        char err[1024] = "";
        if (policy_check_dir(argv[2], err, sizeof err)) {
            fprintf(stderr, "proctor: policies in %s refused: %s\n", argv[2], err);
            return 1;
        }
        printf("policies in %s: ok\n", argv[2]);
        return 0;
    }
    bool run = !strcmp(cmd, "run");
    if (!run && strcmp(cmd, "envs")) {
        usage(stderr);
        return 2;
    }

    enum {
        O_TASKS = 256,
        O_POL,
        O_TMP,
        O_INPUT,
        O_FILE,
        O_ENV,
        O_TIME,
        O_HARD,
        O_MEM,
        O_DEBUG,
        O_SSH,
        O_JSON,
        O_EXPLAIN,
        O_AT_EXIT
    };
    static const struct option opts[] = {
        {"tasks", required_argument, NULL, O_TASKS},
        {"policies", required_argument, NULL, O_POL},
        {"tmpdir", required_argument, NULL, O_TMP},
        {"input", required_argument, NULL, O_INPUT},
        {"file", required_argument, NULL, O_FILE},
        {"env", required_argument, NULL, O_ENV},
        {"time", required_argument, NULL, O_TIME},
        {"hard-time", required_argument, NULL, O_HARD},
        {"memory", required_argument, NULL, O_MEM},
        {"debug", no_argument, NULL, O_DEBUG},
        {"ssh", no_argument, NULL, O_SSH},
        {"json", no_argument, NULL, O_JSON},
        {"explain", no_argument, NULL, O_EXPLAIN},
        {"answer-at-exit", no_argument, NULL, O_AT_EXIT},
        {"verbose", no_argument, NULL, 'v'},
        {0},
    };
    struct agent_config cfg = {
        .friendly_name = "proctor", .concurrency = 1, .tasks_dir = "./tasks"};
    struct cli c = {.want_envs = !run, .exit_code = 2};
    struct value input, params, limits;
    value_set_map(&input);
    value_set_map(&params);
    value_set_map(&limits);
    AUTO_FREE char *envspec = NULL;
    AUTO_FREE char *tmpdir = NULL;
    bool debug = false;
    int o;
    optind = 2;
    // Task authors want the result, not the agent's life: warnings only, -v for more
    // (PROCTOR_LOG still decides when set).
    if (!getenv("PROCTOR_LOG"))
        log_set_level(LOG_LEVEL_WARN);
    while ((o = getopt_long(argc, argv, "v", opts, NULL)) != -1) {
        switch (o) {
        case O_TASKS:
            cfg.tasks_dir = optarg;
            break;
        case O_POL:
            cfg.policies_dir = optarg;
            break;
        case O_TMP:
            tmpdir = xstrdup(optarg);
            break;
        case O_INPUT:
        case O_FILE:
            if (add_input(&input, optarg, o == O_FILE)) {
                fprintf(stderr, "proctor: bad --%s %s (want KEY=%s)\n",
                        o == O_FILE ? "file" : "input", optarg, o == O_FILE ? "PATH" : "VALUE");
                return 2;
            }
            break;
        case O_ENV:
            envspec = xstrdup(optarg);
            break;
        case O_TIME:
        case O_HARD:
        case O_MEM:
            value_set_int(value_map_put(&limits, o == O_TIME   ? "time"
                                                 : o == O_HARD ? "hard_time"
                                                               : "memory"),
                          atoll(optarg));
            break;
        case O_DEBUG:
            debug = true;
            break;
        case O_AT_EXIT:
            cfg.answer_at_exit = true;
            break;
        case O_SSH:
            cfg.ssh = true;
            break;
        case O_JSON:
            c.envs_json = true;
            break;
        case O_EXPLAIN:
            policy_explain_set(on_explain, &c);
            break;
        case 'v':
            log_set_level(LOG_LEVEL_DEBUG);
            break;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (run && optind != argc - 2) {
        usage(stderr);
        return 2;
    }
    struct task_yaml task_yaml = {0};
    if (run && check_task_dirs(cfg.tasks_dir, argv[optind], argv[optind + 1])) {
        value_deinit(&limits);
        value_deinit(&input);
        value_deinit(&params);
        return 2;
    }
    if (run) {
        // No task.yaml: the environment "default" and the policy's limits.
        AUTO_FREE char *path =
            xasprintf("%s/%s/%s/task.yaml", cfg.tasks_dir, argv[optind], argv[optind + 1]);
        char yerr[1024] = "";
        int yret = task_yaml_read(path, &task_yaml, yerr, sizeof yerr);
        if (yret && yret != -ENOENT) {
            fprintf(stderr, "proctor: %s\n", yerr);
            value_deinit(&limits);
            value_deinit(&input);
            value_deinit(&params);
            return 2;
        }
        // Command-line limits win over the task's.
        const struct {
            const char *key;
            bool has;
            long long v;
        } from_task[] = {{"time", task_yaml.has_time, task_yaml.time},
                         {"hard_time", task_yaml.has_hard_time, task_yaml.hard_time},
                         {"memory", task_yaml.has_memory, task_yaml.memory}};
        for (size_t i = 0; i < ARRAY_SIZE(from_task); i++)
            if (from_task[i].has && !value_map_get(&limits, from_task[i].key))
                value_set_int(value_map_put(&limits, from_task[i].key), from_task[i].v);
    }
    {
        // Always a fresh directory of our own: the agent empties its work
        // directory, which must never be one the admin named.
        AUTO_FREE char *tmpl = xasprintf("%s/proctor-run-XXXXXX", tmpdir ? tmpdir : "/tmp");
        if (!mkdtemp(tmpl)) {
            fprintf(stderr, "proctor: cannot create a work directory in %s: %s\n",
                    tmpdir ? tmpdir : "/tmp", strerror(errno));
            return 2;
        }
        free(tmpdir);
        tmpdir = xstrdup(tmpl);
    }
    cfg.tmp_dir = tmpdir;
    // A fresh work directory per run, hence a fresh random id: a run removes
    // only what it created, never another run's or a proctord's containers.
    cfg.id_prefix = "proctor-cli";
    AUTO_FREE char *envtype = NULL, *envname = NULL;
    if (run) {
        const char *course = argv[optind], *task = argv[optind + 1];
        if (envspec && strchr(envspec, '/')) {
            envtype = xstrndup(envspec, (size_t)(strchr(envspec, '/') - envspec));
            envname = xstrdup(strchr(envspec, '/') + 1);
        } else {
            envtype = xstrdup("docker");
            envname = xstrdup(envspec                    ? envspec
                              : task_yaml.environment_id ? task_yaml.environment_id
                                                         : "default");
        }
        if (!value_map_get(&input, "@state"))
            value_set_str(value_map_put(&input, "@state"), "");
        if (!value_map_get(&input, "@username"))
            value_set_str(value_map_put(&input, "@username"), "proctor");
        value_copy(value_map_put(&params, "limits"), &limits);
        c.job = (struct backend_new_job){
            .job_id = xasprintf("local-%ld", (long)getpid()),
            .course_id = xstrdup(course),
            .task_id = xstrdup(task),
            .environment_type = envtype,
            .environment = envname,
            .debug = debug ? BACKEND_DEBUG_ON : BACKEND_DEBUG_OFF,
        };
        c.job.inputdata = input;
        c.job.environment_parameters = params;
        value_set_map(&c.job.task_problems);
        value_set_nil(&input);
        value_set_nil(&params);
    }
    value_deinit(&limits);
    value_deinit(&input);
    value_deinit(&params);
    task_yaml_deinit(&task_yaml);

    signal(SIGPIPE, SIG_IGN);
    c.loop = loop_new();
    struct agent_sink sink = {.job_started = sink_started,
                              .job_done = sink_done,
                              .ssh_debug = sink_ssh,
                              .idle = sink_idle,
                              .data = &c};
    char err[1024] = "";
    c.agent = c.loop ? agent_new(c.loop, &cfg, &sink, err, sizeof err) : NULL;
    if (!c.agent) {
        fprintf(stderr, "proctor: %s\n", *err ? err : "cannot start");
    } else {
        loop_signal_watch(c.loop, SIGINT, on_sigint, &c);
        loop_signal_watch(c.loop, SIGTERM, on_sigint, &c);
        if (agent_discover(c.agent, on_ready, &c))
            fprintf(stderr, "proctor: cannot reach the Docker engine\n");
        else
            loop_run(c.loop);
    }
    agent_free(c.agent);
    loop_free(c.loop);
    util_rmtree(tmpdir);
    free(c.job.job_id);
    free(c.job.course_id);
    free(c.job.task_id);
    value_deinit(&c.job.inputdata);
    value_deinit(&c.job.environment_parameters);
    value_deinit(&c.job.task_problems);
    return c.exit_code;
}
