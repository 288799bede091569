/**
 * @file docker_client.h
 * Asynchronous Docker Engine API client on the event loop.
 *
 * libcurl multi, driven by the loop through CURLMOPT_SOCKETFUNCTION and
 * CURLMOPT_TIMERFUNCTION, talks HTTP/1.1 to the engine over its unix socket
 * (or plain TCP). JSON is handled with cJSON inside this module only: callers
 * get typed C results. Nothing here blocks the loop. Each endpoint is one row
 * of the table in docker_api.c (with its JSON); the events watch
 * (docker_events.h) and the cgroup CPU reader (docker_cgroup.h) have their
 * own files, and this header includes theirs.
 *
 * Endpoint: the `docker_host` argument, else $DOCKER_HOST, else
 * unix:///var/run/docker.sock. Accepted forms: `unix:///path` and
 * `tcp://host:port` (plain http, no TLS).
 *
 * API version: every path is prefixed with a fixed version, `/v1.41` (engine
 * 20.10, which also every later engine up to 28.x accepts), overridable with
 * $DOCKER_API_VERSION like the docker CLI. There is no /version round trip at
 * start-up: behaviour does not depend on what the engine happens to be.
 *
 * Requests: every call takes a completion callback and `void *data`, and
 * returns a `struct docker_req *` handle, or NULL on immediate failure (then the
 * callback is never called). The client owns the request until the callback
 * has returned or the caller cancelled it with docker_req_cancel(); after
 * either, the handle is invalid.
 *
 * Callbacks are never called from inside libcurl: they run from the loop, after
 * curl has returned. So from any callback it is safe to start new requests,
 * cancel any request (including the one being reported) or stop an events
 * watch. docker_client_free() must not be called from a callback of the same
 * client.
 *
 * Status convention for every callback: `status` is 0 on success, -errno on a
 * transport or protocol failure (-ECONNREFUSED, -ETIMEDOUT, -EMSGSIZE when a
 * reply exceeds the body cap, -EPROTO on unparsable JSON, ...), or the HTTP
 * status (>= 300) when Docker refused the call. `err` is then a human text:
 * Docker's `message`, or the transport error; it is NULL when status is 0.
 * Results and `err` are borrowed: valid only during the callback.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sys/socket.h>

#include "docker/docker_cgroup.h" // docker_cpu_read_cgroup()
#include "docker/docker_events.h" // docker_events_watch(), struct docker_event

struct loop;
struct docker_client;
struct docker_req;

/** The grading-image label INGInious environments carry. */
#define DOCKER_GRADING_LABEL "org.inginious.grading.name"

/** Default caps, changeable with docker_client_set_limits(). */
#define DOCKER_DEFAULT_MAX_BODY (16u << 20)
#define DOCKER_DEFAULT_TIMEOUT_MS 300000L

/** Where the engine listens; filled by docker_client_new(). */
struct docker_endpoint {
    bool is_unix;
    char unix_path[108];
    struct sockaddr_storage addr; /* TCP: resolved once at docker_client_new() */
    socklen_t addr_len;
    char host_port[256]; /* TCP: "host:port" as given */
    char api_prefix[32]; /* "/v1.41" */
};

/** A borrowed key/value string pair (labels). */
struct docker_kv {
    const char *key;
    const char *value;
};

struct docker_info {
    const char *const *runtimes; /* names, in the order Docker lists them */
    size_t n_runtimes;
    const char *default_runtime; /* may be NULL */
    int cgroup_version;          /* 1 or 2; 0 when the engine does not say */
    int64_t mem_total;           /* bytes */
    int ncpu;
    const char *server_version; /* may be NULL */
};

struct docker_image {
    const char *id;  /* "sha256:..." */
    int64_t created; /* unix seconds */
    const struct docker_kv *labels;
    size_t n_labels;
};

/** One of a container's mounts (inspect's Mounts). */
struct docker_mount {
    const char *source;      /* on the Docker host */
    const char *destination; /* in the container */
};

struct docker_container_state {
    const char *id;
    const char *status; /* "created", "running", "exited", ... ("" if absent) */
    bool running;
    bool oom_killed;
    int exit_code;
    int64_t pid;
    int64_t memory;                    /* HostConfig.Memory, bytes (0: none or not said) */
    int64_t pids_limit;                /* HostConfig.PidsLimit (0: none or not said) */
    const struct docker_mount *mounts; /* Mounts with both paths (at most 64) */
    size_t n_mounts;
};

struct docker_container_summary {
    const char *id;
    const char *state; /* "" if absent */
    const struct docker_kv *labels;
    size_t n_labels;
};

struct docker_port_binding {
    unsigned container_port;
    unsigned host_port;
    const char *proto;   /* NULL = "tcp" */
    const char *host_ip; /* NULL = all interfaces */
};

struct docker_ulimit {
    const char *name; /* "nofile", "nproc", ... */
    int64_t soft;
    int64_t hard;
};

/**
 * Typed container-create parameters. Everything is borrowed for the duration
 * of the docker_container_create() call only (the JSON body is built at once).
 * String lists are NULL-terminated arrays; NULL means "not set". Tty is always
 * false so that attach output is multiplexed.
 */
struct docker_create_spec {
    const char *name;              /* NULL = Docker picks one */
    const char *image;             /* required: image id or reference */
    const char *const *cmd;        /* argv; NULL = image default */
    const char *const *entrypoint; /* NULL = image default */
    const char *const *env;        /* "KEY=value" */
    const char *user;              /* NULL = image default */
    const char *working_dir;       /* NULL = image default */
    const char *hostname;          /* NULL = Docker default */
    const struct docker_kv *labels;
    size_t n_labels;
    int64_t memory;           /* bytes; 0 = unset */
    int64_t memory_swap;      /* bytes; 0 = unset, -1 = unlimited */
    int memory_swappiness;    /* 0..100; -1 = unset */
    bool oom_kill_disable;    /* only meaningful on cgroup v1 */
    int64_t pids_limit;       /* 0 = unset */
    int64_t nano_cpus;        /* 0 = unset */
    const char *network_mode; /* "none", "bridge", ...; NULL = Docker default */
    const char *runtime;      /* NULL = engine default */
    const char *log_driver;   /* HostConfig.LogConfig.Type, e.g. "none"; NULL = default */
    const char *const *binds; /* "src:dst[:mode]" */
    const struct docker_port_binding *ports;
    size_t n_ports;
    const struct docker_ulimit *ulimits;
    size_t n_ulimits;
    const char *const *cap_drop; /* e.g. "ALL" */
    const char *const *cap_add;
    const char *const *security_opt; /* e.g. "no-new-privileges" */
    const char *const *extra_hosts;  /* "host:ip" */
    bool readonly_rootfs;
    bool open_stdin;
    bool stdin_once;
    bool attach_stdin;
    bool attach_stdout;
    bool attach_stderr;
};

/** Limits of a running container to change (0 = unchanged). */
struct docker_update {
    int64_t memory;      /* bytes; MemorySwap is sent with it */
    int64_t memory_swap; /* bytes; 0 = the same as memory (no swap) */
    int64_t nano_cpus;
    int64_t pids_limit;
};

typedef void (*docker_done_fn)(int status, const char *err, void *data);
typedef void (*docker_info_fn)(int status, const char *err, const struct docker_info *info,
                               void *data);
typedef void (*docker_images_fn)(int status, const char *err, const struct docker_image *images,
                                 size_t n, void *data);
/** `id` is the new container's full id (NULL unless status is 0). */
typedef void (*docker_id_fn)(int status, const char *err, const char *id, void *data);
typedef void (*docker_inspect_fn)(int status, const char *err,
                                  const struct docker_container_state *state, void *data);
typedef void (*docker_containers_fn)(int status, const char *err,
                                     const struct docker_container_summary *list, size_t n,
                                     void *data);
/** `exit_code` is the container's StatusCode (-1 unless status is 0). */
typedef void (*docker_wait_fn)(int status, const char *err, int exit_code, void *data);
/**
 * CPU samples: called with status 0 and total_ns >= 0 (cumulative CPU
 * nanoseconds of the container) for each sample; finally once with
 * total_ns == -1 when the stream ended (status 0: Docker closed it; otherwise
 * the error). Not called after docker_req_cancel().
 */
typedef void (*docker_cpu_fn)(int status, const char *err, int64_t total_ns, void *data);

/**
 * Creates a client on loop (borrowed; must outlive the client). docker_host may
 * be NULL (see the file comment). A tcp:// host name is resolved here, once,
 * with getaddrinfo (start-up only). Caller frees with docker_client_free().
 * NULL on a bad address or curl initialisation failure (logged).
 */
struct docker_client *docker_client_new(struct loop *loop, const char *docker_host);

/**
 * Cancels every request and events watch (no callback is called afterwards)
 * and frees the client. NULL is a no-op. Not from a callback of this client.
 * Attach connections are independent and must be freed by their owner.
 */
void docker_client_free(struct docker_client *c);

/**
 * Sets the cap on any reply body kept in memory (JSON replies and single lines
 * of streams; default DOCKER_DEFAULT_MAX_BODY) and the total timeout of
 * non-streaming calls other than wait (default DOCKER_DEFAULT_TIMEOUT_MS; 0 =
 * none). Applies to requests started afterwards.
 */
void docker_client_set_limits(struct docker_client *c, size_t max_body, long timeout_ms);

/** Borrowed; valid for the client's lifetime. */
const struct docker_endpoint *docker_client_endpoint(const struct docker_client *c);
/** The total timeout of one non-streaming call in ms (0: none); attach handshakes use it too. */
long docker_client_timeout_ms(const struct docker_client *c);

/** The loop the client runs on (borrowed). */
struct loop *docker_client_loop(const struct docker_client *c);
/** Number of requests in flight (tests and metrics). */
size_t docker_client_pending(const struct docker_client *c);

/**
 * Cancels a request: the callback is never called. Safe from any callback,
 * including the request's own. NULL is a no-op. The handle is invalid after.
 */
void docker_req_cancel(struct docker_req *r);

/** GET /info: runtimes, cgroup version, memory, CPUs. */
struct docker_req *docker_info(struct docker_client *c, docker_info_fn cb, void *data);

/** GET /images/json filtered on DOCKER_GRADING_LABEL. */
struct docker_req *docker_images_list(struct docker_client *c, docker_images_fn cb, void *data);

/** GET /images/json filtered on one label filter ("key" or "key=value"; borrowed). */
struct docker_req *docker_images_list_label(struct docker_client *c, const char *label,
                                            docker_images_fn cb, void *data);

/** POST /containers/create. spec is borrowed for the call only. */
struct docker_req *docker_container_create(struct docker_client *c,
                                           const struct docker_create_spec *spec, docker_id_fn cb,
                                           void *data);

/** POST /containers/{id}/start. "Already started" (304) is reported as 0. */
struct docker_req *docker_container_start(struct docker_client *c, const char *id,
                                          docker_done_fn cb, void *data);

/**
 * POST /containers/{id}/update: changes the memory (with swap), CPU and pids
 * limits of a container, running or not; the cgroup enforces the new values
 * at once. cb(0) on success.
 */
struct docker_req *docker_container_update(struct docker_client *c, const char *id,
                                           const struct docker_update *u, docker_done_fn cb,
                                           void *data);

/** POST /containers/{id}/kill; signal_name NULL = SIGKILL. */
struct docker_req *docker_container_kill(struct docker_client *c, const char *id,
                                         const char *signal_name, docker_done_fn cb, void *data);

/** DELETE /containers/{id}. A missing container is reported as 404. */
struct docker_req *docker_container_remove(struct docker_client *c, const char *id, bool force,
                                           bool volumes, docker_done_fn cb, void *data);

/** GET /containers/{id}/json: state only. */
struct docker_req *docker_container_inspect(struct docker_client *c, const char *id,
                                            docker_inspect_fn cb, void *data);

/**
 * GET /containers/json with a label filter ("key" or "key=value"; borrowed);
 * `all` includes stopped containers.
 */
struct docker_req *docker_containers_list_by_label(struct docker_client *c, const char *label,
                                                   bool all, docker_containers_fn cb, void *data);

/**
 * POST /containers/{id}/wait (condition not-running): completes when the
 * container stops, with its exit code. A long poll with no timeout. Call it
 * after the start succeeded: on a created, never-started container it
 * completes at once (it is not running).
 */
struct docker_req *docker_container_wait(struct docker_client *c, const char *id, docker_wait_fn cb,
                                         void *data);

/**
 * Streams GET /containers/{id}/stats?stream=1 and reports
 * cpu_stats.cpu_usage.total_usage for each sample (about one per second; the
 * first comes about a second after the call). Samples with no CPU time are
 * skipped: Docker sends zeroed samples once the container has stopped and
 * keeps the stream open until the container is removed, so cancel the watch
 * with docker_req_cancel() when the container dies.
 */
struct docker_req *docker_cpu_watch(struct docker_client *c, const char *id, docker_cpu_fn cb,
                                    void *data);
