#include "core/loop.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "core/log.h"
#include "core/util.h"

struct loop_fd {
    loop_fd_fn fn;
    void *data;
    unsigned mask;
    bool used;
};

struct loop_timer {
    uint64_t id;
    uint64_t when_ms;
    loop_timer_fn fn;
    void *data;
};

struct loop_hook {
    loop_hook_fn fn;
    void *data;
};

struct loop_sig {
    int signo;
    loop_signal_fn fn;
    void *data;
};

struct loop {
    int epfd;
    struct loop_fd *fds; /* indexed by fd */
    size_t nfds;
    // Timers are few (a handful per job): an unsorted array scanned per
    // iteration is simpler than a heap and fast enough.
    struct loop_timer *timers;
    size_t ntimers, captimers;
    uint64_t next_timer_id;
    struct loop_hook hooks[8];
    size_t nhooks;
    int sigfd;
    sigset_t sigmask;
    struct loop_sig sigs[16];
    size_t nsigs;
    uint64_t now_ms;
    bool stop;
};

static unsigned to_epoll(unsigned mask)
{
    return (mask & LOOP_READ ? EPOLLIN : 0u) | (mask & LOOP_WRITE ? EPOLLOUT : 0u);
}

struct loop *loop_new(void)
{
    struct loop *l = xcalloc(1, sizeof *l);
    l->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (l->epfd < 0) {
        free(l);
        return NULL;
    }
    l->sigfd = -1;
    sigemptyset(&l->sigmask);
    l->next_timer_id = 1;
    l->now_ms = util_now_ms();
    return l;
}

void loop_free(struct loop *l)
{
    if (!l)
        return;
    if (l->sigfd >= 0)
        close(l->sigfd);
    close(l->epfd);
    free(l->fds);
    free(l->timers);
    free(l);
}

int loop_fd_add(struct loop *l, int fd, unsigned mask, loop_fd_fn fn, void *data)
{
    if (PROCTOR_FAILS(fd >= 0 && fn))
        return -EINVAL;
    if ((size_t)fd >= l->nfds) {
        size_t n = l->nfds ? l->nfds : 64;
        while (n <= (size_t)fd)
            n *= 2;
        l->fds = xrealloc(l->fds, n * sizeof *l->fds);
        memset(l->fds + l->nfds, 0, (n - l->nfds) * sizeof *l->fds);
        l->nfds = n;
    }
    if (PROCTOR_FAILS(!l->fds[fd].used))
        return -EEXIST;
    struct epoll_event ev = {.events = to_epoll(mask), .data.fd = fd};
    if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
        return -errno;
    l->fds[fd] = (struct loop_fd){.fn = fn, .data = data, .mask = mask, .used = true};
    return 0;
}

int loop_fd_set(struct loop *l, int fd, unsigned mask)
{
    if (PROCTOR_FAILS(fd >= 0 && (size_t)fd < l->nfds && l->fds[fd].used))
        return -ENOENT;
    if (l->fds[fd].mask == mask)
        return 0;
    struct epoll_event ev = {.events = to_epoll(mask), .data.fd = fd};
    if (epoll_ctl(l->epfd, EPOLL_CTL_MOD, fd, &ev) < 0)
        return -errno;
    l->fds[fd].mask = mask;
    return 0;
}

void loop_fd_del(struct loop *l, int fd)
{
    if (fd < 0 || (size_t)fd >= l->nfds || !l->fds[fd].used)
        return;
    epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL);
    l->fds[fd] = (struct loop_fd){0};
}

uint64_t loop_timer_add(struct loop *l, long ms, loop_timer_fn fn, void *data)
{
    PROCTOR_REQUIRE(fn);
    if (l->ntimers == l->captimers) {
        l->captimers = l->captimers ? l->captimers * 2 : 16;
        l->timers = xrealloc(l->timers, l->captimers * sizeof *l->timers);
    }
    uint64_t id = l->next_timer_id++;
    l->timers[l->ntimers++] = (struct loop_timer){
        .id = id, .when_ms = util_now_ms() + (uint64_t)(ms > 0 ? ms : 0), .fn = fn, .data = data};
    return id;
}

void loop_timer_del(struct loop *l, uint64_t id)
{
    for (size_t i = 0; id && i < l->ntimers; i++) {
        if (l->timers[i].id == id) {
            l->timers[i] = l->timers[--l->ntimers];
            return;
        }
    }
}

int loop_hook_add(struct loop *l, loop_hook_fn fn, void *data)
{
    if (PROCTOR_FAILS(l->nhooks < ARRAY_SIZE(l->hooks)))
        return -ENOSPC;
    l->hooks[l->nhooks++] = (struct loop_hook){fn, data};
    return 0;
}

void loop_hook_del(struct loop *l, loop_hook_fn fn, void *data)
{
    for (size_t i = 0; i < l->nhooks; i++) {
        if (l->hooks[i].fn == fn && l->hooks[i].data == data) {
            memmove(&l->hooks[i], &l->hooks[i + 1], (l->nhooks - i - 1) * sizeof l->hooks[0]);
            l->nhooks--;
            return;
        }
    }
}

static void on_signalfd(struct loop *l, int fd, unsigned events, void *data)
{
    PROCTOR_UNUSED(events);
    PROCTOR_UNUSED(data);
    struct signalfd_siginfo si;
    while (read(fd, &si, sizeof si) == (ssize_t)sizeof si) {
        for (size_t i = 0; i < l->nsigs; i++)
            if (l->sigs[i].signo == (int)si.ssi_signo)
                l->sigs[i].fn(l, (int)si.ssi_signo, l->sigs[i].data);
    }
}

int loop_signal_watch(struct loop *l, int signo, loop_signal_fn fn, void *data)
{
    if (PROCTOR_FAILS(l->nsigs < ARRAY_SIZE(l->sigs)))
        return -ENOSPC;
    sigaddset(&l->sigmask, signo);
    if (sigprocmask(SIG_BLOCK, &l->sigmask, NULL) < 0)
        return -errno;
    int fd = signalfd(l->sigfd, &l->sigmask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (fd < 0)
        return -errno;
    if (l->sigfd < 0) {
        int ret = loop_fd_add(l, fd, LOOP_READ, on_signalfd, NULL);
        if (ret) {
            close(fd);
            return ret;
        }
        l->sigfd = fd;
    }
    l->sigs[l->nsigs++] = (struct loop_sig){signo, fn, data};
    return 0;
}

static void run_timers(struct loop *l)
{
    uint64_t now = util_now_ms();
    l->now_ms = now;
    // Collect due ids first: callbacks may add or delete timers.
    uint64_t due[64];
    size_t ndue = 0;
    for (size_t i = 0; i < l->ntimers && ndue < ARRAY_SIZE(due); i++)
        if (l->timers[i].when_ms <= now)
            due[ndue++] = l->timers[i].id;
    for (size_t k = 0; k < ndue; k++) {
        size_t i;
        for (i = 0; i < l->ntimers && l->timers[i].id != due[k]; i++)
            ;
        if (i == l->ntimers)
            continue; /* deleted by an earlier callback */
        struct loop_timer t = l->timers[i];
        long next = t.fn(l, t.id, t.data);
        // The callback may have deleted its own timer or shuffled the array.
        for (i = 0; i < l->ntimers && l->timers[i].id != t.id; i++)
            ;
        if (i == l->ntimers)
            continue;
        if (next == LOOP_NOMORE)
            l->timers[i] = l->timers[--l->ntimers];
        else
            l->timers[i].when_ms = util_now_ms() + (uint64_t)(next > 0 ? next : 0);
    }
}

static int next_timeout(struct loop *l)
{
    if (!l->ntimers)
        return -1;
    uint64_t now = util_now_ms();
    uint64_t first = UINT64_MAX;
    for (size_t i = 0; i < l->ntimers; i++)
        if (l->timers[i].when_ms < first)
            first = l->timers[i].when_ms;
    if (first <= now)
        return 0;
    uint64_t d = first - now;
    return d > 60000 ? 60000 : (int)d;
}

static bool hook_registered(const struct loop *l, const struct loop_hook *h)
{
    for (size_t i = 0; i < l->nhooks; i++)
        if (l->hooks[i].fn == h->fn && l->hooks[i].data == h->data)
            return true;
    return false;
}

int loop_run(struct loop *l)
{
    l->stop = false;
    struct epoll_event evs[64];
    while (!l->stop) {
        // A hook may delete itself or another one: walk a snapshot, and call
        // an entry only while it is still registered (its data may be freed).
        struct loop_hook hooks[ARRAY_SIZE(l->hooks)];
        size_t nhooks = l->nhooks;
        memcpy(hooks, l->hooks, nhooks * sizeof hooks[0]);
        for (size_t i = 0; i < nhooks; i++)
            if (hook_registered(l, &hooks[i]))
                hooks[i].fn(l, hooks[i].data);
        if (l->stop)
            break;
        int n = epoll_wait(l->epfd, evs, (int)ARRAY_SIZE(evs), next_timeout(l));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            log_error(LOG_LOOP, "epoll_wait failed: %s", strerror(errno));
            return -errno;
        }
        l->now_ms = util_now_ms();
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            // An earlier callback of this batch may have removed this fd.
            if ((size_t)fd >= l->nfds || !l->fds[fd].used)
                continue;
            unsigned ev = 0;
            if (evs[i].events & EPOLLIN)
                ev |= LOOP_READ;
            if (evs[i].events & EPOLLOUT)
                ev |= LOOP_WRITE;
            if (evs[i].events & (EPOLLERR | EPOLLHUP | EPOLLRDHUP))
                ev |= LOOP_ERROR | (l->fds[fd].mask & LOOP_READ);
            l->fds[fd].fn(l, fd, ev, l->fds[fd].data);
        }
        run_timers(l);
    }
    return 0;
}

void loop_stop(struct loop *l)
{
    l->stop = true;
}

uint64_t loop_now_ms(struct loop *l)
{
    return l->now_ms;
}
