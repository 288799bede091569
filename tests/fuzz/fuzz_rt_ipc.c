// The runner's IPC handler (src/runtime/rt_runner.c, rt_runner_request): what
// the grading side sends on /sockets/main.sock, framed, cut anywhere, becomes
// at most one run_student message per frame for the agent.
// Properties: a refused request is one that is not a run_student map or has
// an empty socket id or one with '/'; an accepted one becomes exactly the
// nine keys of the agent's run_student message with their types, the
// request's socket id and environment, integer limits, and packs to msgpack
// that decodes back to the same message. The IPC framer never takes a frame
// over RT_IPC_FRAME_MAX.
#include <errno.h>
#include <stdint.h>

#include "rt_fuzz_common.h"
#include "rt_internal.h"

static void check_request(const struct rt_value *req)
{
    struct rt_value *m = rt_runner_request(req);
    const char *type = rt_map_str(req, "type"), *sid = rt_map_str(req, "socket_id");
    bool valid = type && !strcmp(type, "run_student") && sid && *sid && !strchr(sid, '/');
    FUZZ_CHECK(valid == (m != NULL), "accepted %d, expected %d", m != NULL, valid);
    if (!m)
        return;
    static const char *const keys[] = {
        "type",          "environment", "time_limit", "hard_time_limit", "memory_limit",
        "share_network", "socket_id",   "ssh",        "run_as_root"};
    FUZZ_CHECK(m->type == RT_MAP && m->u.map.n == 9, "not a 9-key map");
    for (size_t i = 0; i < 9; i++)
        FUZZ_CHECK(rt_map_get(m, keys[i]) != NULL, "key %s missing", keys[i]);
    FUZZ_CHECK(!strcmp(rt_map_str(m, "type"), "run_student"), "type");
    FUZZ_CHECK(!strcmp(rt_map_str(m, "socket_id"), sid), "socket id changed");
    const struct rt_value *env = rt_map_get(m, "environment");
    const char *renv = rt_map_str(req, "environment");
    FUZZ_CHECK(env->type == RT_NIL ? !renv || !*renv
                                   : env->type == RT_STR && renv && !strcmp(env->u.str.p, renv),
               "environment");
    for (size_t i = 2; i < 5; i++)
        FUZZ_CHECK(rt_map_get(m, keys[i])->type == RT_INT, "%s not an int", keys[i]);
    FUZZ_CHECK(rt_map_get(m, "share_network")->type == RT_BOOL, "share_network");
    FUZZ_CHECK(rt_map_get(m, "run_as_root")->type == RT_BOOL, "run_as_root");
    const struct rt_value *ssh = rt_map_get(m, "ssh");
    FUZZ_CHECK(ssh->type == RT_BOOL && !ssh->u.b, "ssh must be false");
    struct buf packed = {0};
    FUZZ_CHECK(rt_msgpack_pack(m, &packed) == 0, "pack failed");
    size_t used = 0;
    struct rt_value *back = NULL;
    int ret = rt_msgpack_unpack(packed.data, packed.len, &used, &back);
    FUZZ_CHECK(ret == 0 && used == packed.len && rt_value_identical(m, back), "round trip: %d",
               ret);
    rt_value_free(back);
    buf_deinit(&packed);
    rt_value_free(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    // The first byte picks the chunk size the client's bytes arrive in.
    size_t chunk = (size_t)(data[0] % 64) + 1;
    data++, size--;
    struct msg_framer f;
    msg_framer_init(&f, RT_IPC_FRAME_MAX);
    int end = 0;
    for (size_t off = 0; off < size && end == 0;) {
        size_t k = size - off < chunk ? size - off : chunk;
        end = msg_framer_feed(&f, data + off, k);
        off += k;
        while (end == 0) {
            struct rt_value *req = NULL;
            int r = rt_frame_next(&f, &req);
            if (r == 0)
                break;
            if (r < 0) {
                FUZZ_CHECK(r == -EMSGSIZE || r == -EINVAL, "framer error %d", r);
                end = r;
                break;
            }
            check_request(req);
            rt_value_free(req);
        }
    }
    msg_framer_deinit(&f);
    return 0;
}
