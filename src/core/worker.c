#include "core/worker.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "core/log.h"
#include "core/loop.h"
#include "core/util.h"

struct worker_task {
    struct worker_task *next;
    worker_fn fn;
    void *arg;
    worker_free_fn free_arg;
    worker_done_fn done;
    void *data;
    int ret;
    bool cancelled; /* loop thread only */
};

struct worker {
    struct loop *loop;
    int efd;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    // todo: queued for the thread; done: finished, waiting for the loop.
    struct worker_task *todo_head, *todo_tail;
    struct worker_task *done_head, *done_tail;
    bool stopping;
};

static void push(struct worker_task **head, struct worker_task **tail, struct worker_task *t)
{
    t->next = NULL;
    if (*tail)
        (*tail)->next = t;
    else
        *head = t;
    *tail = t;
}

static void *run(void *p)
{
    struct worker *w = p;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->todo_head && !w->stopping)
            pthread_cond_wait(&w->cv, &w->mu);
        struct worker_task *t = w->todo_head;
        if (!t)
            break; /* stopping and nothing left */
        w->todo_head = t->next;
        if (!w->todo_head)
            w->todo_tail = NULL;
        pthread_mutex_unlock(&w->mu);
        t->ret = t->fn(t->arg);
        pthread_mutex_lock(&w->mu);
        push(&w->done_head, &w->done_tail, t);
        uint64_t one = 1;
        // The counter cannot overflow in practice; a failed write only
        // delays completions to the next wake-up.
        if (write(w->efd, &one, sizeof one) < 0)
            log_warn(LOG_LOOP, "worker: eventfd write failed");
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

static void finish(struct worker_task *t)
{
    if (t->done && !t->cancelled)
        t->done(t->ret, t->data);
    if (t->free_arg)
        t->free_arg(t->arg);
    free(t);
}

static void on_event(struct loop *loop, int fd, unsigned events, void *data)
{
    PROCTOR_UNUSED(loop);
    PROCTOR_UNUSED(events);
    struct worker *w = data;
    uint64_t n;
    if (read(fd, &n, sizeof n) < 0 && errno != EAGAIN)
        log_warn(LOG_LOOP, "worker: eventfd read failed");
    pthread_mutex_lock(&w->mu);
    struct worker_task *t = w->done_head;
    w->done_head = w->done_tail = NULL;
    pthread_mutex_unlock(&w->mu);
    while (t) {
        struct worker_task *next = t->next;
        finish(t);
        t = next;
    }
}

struct worker *worker_new(struct loop *loop)
{
    struct worker *w = xcalloc(1, sizeof *w);
    w->loop = loop;
    w->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (w->efd < 0) {
        free(w);
        return NULL;
    }
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    // The thread must not take the signals the loop reads from its signalfd.
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int ret = pthread_create(&w->thread, NULL, run, w);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (ret || loop_fd_add(loop, w->efd, LOOP_READ, on_event, w)) {
        if (!ret) {
            w->stopping = true;
            pthread_cond_signal(&w->cv);
            pthread_join(w->thread, NULL);
        }
        close(w->efd);
        pthread_mutex_destroy(&w->mu);
        pthread_cond_destroy(&w->cv);
        free(w);
        return NULL;
    }
    return w;
}

void worker_free(struct worker *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->mu);
    w->stopping = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    // Queued work still runs: a job directory must not be left behind.
    pthread_join(w->thread, NULL);
    loop_fd_del(w->loop, w->efd);
    close(w->efd);
    for (struct worker_task *t = w->done_head, *next; t; t = next) {
        next = t->next;
        t->cancelled = true;
        finish(t);
    }
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    free(w);
}

struct worker_task *worker_submit(struct worker *w, worker_fn fn, void *arg,
                                  worker_free_fn free_arg, worker_done_fn done, void *data)
{
    struct worker_task *t = xcalloc(1, sizeof *t);
    *t = (struct worker_task){
        .fn = fn, .arg = arg, .free_arg = free_arg, .done = done, .data = data};
    pthread_mutex_lock(&w->mu);
    push(&w->todo_head, &w->todo_tail, t);
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    return t;
}

void worker_cancel(struct worker_task *t)
{
    // Only the loop thread reads `cancelled` (in finish), so no lock.
    if (t)
        t->cancelled = true;
}
