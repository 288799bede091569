// The container runtime's msgpack decoder and frame reassembly
// (src/runtime/rt_value.h, rt_common.h): what the runner reads from the agent
// and from its IPC clients (run_student requests), and what the student
// container's intern reads from the grading container.
// Properties: a decoded object packs back to bytes that decode to an equal
// tree, and packing that again gives the same bytes; every strict prefix of a
// decodable object is "incomplete" (-EAGAIN), which the intern's byte-by-byte
// read_command relies on; the framer gives the same frames and the same end
// for the input fed whole and cut at fuzzer-chosen points.
#include <errno.h>
#include <stdint.h>

#include "rt_fuzz_common.h"

#define MAX_SPLITS 32

static void check_object(const uint8_t *p, size_t n)
{
    size_t used = 0;
    struct rt_value *v = NULL;
    int ret = rt_msgpack_unpack(p, n, &used, &v);
    if (ret) {
        FUZZ_CHECK(ret == -EAGAIN || ret == -EINVAL || ret == -ENOMEM, "error %d", ret);
        FUZZ_CHECK(v == NULL, "failed decode returned a tree");
        return;
    }
    FUZZ_CHECK(v && used > 0 && used <= n, "used %zu of %zu", used, n);
    // Strict prefixes: incomplete, never an error or a different object.
    size_t step = used / 16 + 1;
    for (size_t k = 0; k < used; k += step) {
        size_t u2 = 0;
        struct rt_value *w = NULL;
        int r = rt_msgpack_unpack(p, k, &u2, &w);
        FUZZ_CHECK(r == -EAGAIN, "prefix %zu of a %zu-byte object gives %d", k, used, r);
        rt_value_free(w);
    }
    if (used > 1) {
        size_t u2 = 0;
        struct rt_value *w = NULL;
        int r = rt_msgpack_unpack(p, used - 1, &u2, &w);
        FUZZ_CHECK(r == -EAGAIN, "prefix %zu of a %zu-byte object gives %d", used - 1, used, r);
        rt_value_free(w);
    }
    struct buf once = {0}, twice = {0};
    FUZZ_CHECK(rt_msgpack_pack(v, &once) == 0, "pack failed");
    size_t u2 = 0;
    struct rt_value *w = NULL;
    ret = rt_msgpack_unpack(once.data, once.len, &u2, &w);
    FUZZ_CHECK(ret == 0 && u2 == once.len, "re-encoded object: %d, %zu/%zu", ret, u2, once.len);
    FUZZ_CHECK(rt_value_identical(v, w), "decode(encode(decode(x))) != decode(x)");
    FUZZ_CHECK(rt_msgpack_pack(w, &twice) == 0, "pack failed");
    FUZZ_CHECK(once.len == twice.len && memcmp(once.data, twice.data, once.len) == 0,
               "encoding not canonical");
    buf_deinit(&once);
    buf_deinit(&twice);
    rt_value_free(w);
    rt_value_free(v);
}

struct frames {
    struct buf packed; // every frame, re-packed, one after the other
    size_t n;
    int end; // last rt_frame_next or feed result (0 = needs more)
};

static void run_framer(struct frames *out, const uint8_t *p, size_t n, const size_t *splits,
                       size_t nsplits)
{
    struct msg_framer f;
    msg_framer_init(&f, RT_FRAME_MAX);
    size_t off = 0;
    out->end = 0;
    for (size_t c = 0; c <= nsplits && out->end == 0; c++) {
        size_t k = c < nsplits ? splits[c] : n - off;
        k = k > n - off ? n - off : k;
        out->end = msg_framer_feed(&f, p + off, k);
        off += k;
        while (out->end == 0) {
            struct rt_value *msg = NULL;
            int r = rt_frame_next(&f, &msg);
            if (r == 1) {
                FUZZ_CHECK(msg != NULL, "frame without a value");
                FUZZ_CHECK(rt_msgpack_pack(msg, &out->packed) == 0, "pack failed");
                rt_value_free(msg);
                out->n++;
                continue;
            }
            FUZZ_CHECK(r == 0 || r == -EMSGSIZE || r == -EINVAL, "framer gives %d", r);
            out->end = r;
            break;
        }
    }
    msg_framer_deinit(&f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    // The first byte: even, the rest is one msgpack object; odd, the rest is
    // a stream of frames, cut at points the next bytes choose.
    const uint8_t *p = data + 1;
    size_t n = size - 1;
    if (!(data[0] & 1)) {
        check_object(p, n);
        return 0;
    }
    size_t nsplits = (data[0] >> 1) % (MAX_SPLITS + 1), splits[MAX_SPLITS];
    for (size_t i = 0; i < nsplits; i++)
        splits[i] = (size_t)(i < n ? p[i] % 16 : 0) + 1;
    struct frames whole = {0}, cut = {0};
    run_framer(&whole, p, n, NULL, 0);
    run_framer(&cut, p, n, splits, nsplits);
    FUZZ_CHECK(whole.n == cut.n && whole.end == cut.end, "frames %zu/%zu, end %d/%d", whole.n,
               cut.n, whole.end, cut.end);
    FUZZ_CHECK(whole.packed.len == cut.packed.len &&
                   (whole.packed.len == 0 ||
                    memcmp(whole.packed.data, cut.packed.data, whole.packed.len) == 0),
               "frames differ");
    buf_deinit(&whole.packed);
    buf_deinit(&cut.packed);
    return 0;
}
