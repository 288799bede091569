// The student container's intern (src/runtime/rt_student.c, through
// rt_internal.h): it runs as root in the student container and reads what
// the grading container sends: the run_student_command map on its socket,
// and the command line it splits with shell rules before exec.
// Properties: shlex: quoting every word of a split and splitting again gives
// the same words, and only a quote or backslash can make a split fail;
// read_command: succeeds exactly when the bytes start with one msgpack
// object (the same tree rt_msgpack_unpack reads), and consumes exactly that
// object, leaving the signal digits that follow it in the socket.
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/socket.h>
#include <unistd.h>

#include "rt_fuzz_common.h"
#include "rt_internal.h"

// POSIX shell quoting: 'word' with each ' written as '"'"'.
static void quote(struct buf *out, const char *w)
{
    rt_buf_puts(out, "'");
    for (const char *p = w; *p; p++) {
        if (*p == '\'')
            rt_buf_puts(out, "'\"'\"'");
        else if (buf_add(out, p, 1))
            rt_oom();
    }
    rt_buf_puts(out, "'");
}

static void check_shlex(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    memcpy(s, data, size);
    s[size] = '\0';
    char **words = rt_shlex_split(s);
    if (!words) {
        FUZZ_CHECK(strpbrk(s, "'\"\\"), "split of a text without quotes failed");
        free(s);
        return;
    }
    struct buf again = {0};
    size_t n = 0;
    for (; words[n]; n++) {
        if (n)
            rt_buf_puts(&again, " ");
        quote(&again, words[n]);
    }
    char **back = rt_shlex_split(again.data ? again.data : "");
    FUZZ_CHECK(back, "quoted words do not split: %s", again.data);
    for (size_t i = 0; i < n; i++)
        FUZZ_CHECK(back[i] && strcmp(back[i], words[i]) == 0, "word %zu differs after quoting", i);
    FUZZ_CHECK(back[n] == NULL, "quoting added words");
    rt_words_free(back);
    rt_words_free(words);
    buf_deinit(&again);
    free(s);
}

static void check_read_command(const uint8_t *data, size_t size)
{
    static const char digits[] = "015---";
    int sv[2];
    FUZZ_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0, "harness setup");
    fcntl(sv[0], F_SETFL, O_NONBLOCK);
    ssize_t w = size ? send(sv[0], data, size, MSG_NOSIGNAL) : 0;
    if (w != (ssize_t)size) { // more than the socket holds: not this harness's subject
        close(sv[0]);
        close(sv[1]);
        return;
    }
    FUZZ_CHECK(send(sv[0], digits, 6, MSG_NOSIGNAL) == 6, "harness setup");
    shutdown(sv[0], SHUT_WR);

    size_t used = 0;
    struct rt_value *ref = NULL, *got = NULL;
    int want = rt_msgpack_unpack(data, size, &used, &ref);
    int ret = rt_intern_read_command(sv[1], &got);
    if (want == 0) {
        FUZZ_CHECK(ret == 0, "read_command gives %d on a whole object", ret);
        FUZZ_CHECK(rt_value_identical(ref, got), "read_command read another tree");
        // Exactly the object was consumed: the rest of the bytes, then the digits.
        size_t rest = size - used;
        char *tail = malloc(rest + 7);
        ssize_t r = recv(sv[1], tail, rest + 7, MSG_WAITALL);
        FUZZ_CHECK(r == (ssize_t)(rest + 6) && memcmp(tail, data + used, rest) == 0 &&
                       memcmp(tail + rest, digits, 6) == 0,
                   "%zd bytes left after the object, expected %zu", r, rest + 6);
        free(tail);
    } else if (want == -EINVAL) {
        // -EINVAL, or -EPROTO for nesting too deep that ends past the bytes.
        FUZZ_CHECK(ret != 0, "read_command accepts malformed bytes");
    } else if (want == -EAGAIN) {
        // The digits may complete or break an unfinished object: no claim.
        FUZZ_CHECK(ret != 0 || got != NULL, "success without a tree");
    }
    rt_value_free(ref);
    rt_value_free(got);
    close(sv[0]);
    close(sv[1]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    if (data[0] & 1)
        check_read_command(data + 1, size - 1);
    else
        check_shlex(data + 1, size - 1);
    return 0;
}
