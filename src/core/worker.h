/**
 * @file worker.h
 * One background thread for the blocking filesystem work the loop must not
 * do itself (copying a task into a job directory, removing a job directory),
 * as libuv's threadpool does for its fs calls. The loop thread submits; the
 * worker runs tasks in order; completions come back on the loop through an
 * eventfd, so callbacks never run on the worker thread.
 *
 * A task's `fn` must only touch its own `arg` (no loop, no agent state).
 */
#pragma once

#include <stdbool.h>

struct loop;
struct worker;
struct worker_task;

/** Runs on the worker thread; returns 0 or -errno. */
typedef int (*worker_fn)(void *arg);
/** Runs on the loop thread with fn's return value. */
typedef void (*worker_done_fn)(int ret, void *data);
/** Releases arg (on the loop thread, after fn ran or was skipped). */
typedef void (*worker_free_fn)(void *arg);

/** Starts the thread. NULL on failure. Caller frees with worker_free(). */
struct worker *worker_new(struct loop *loop);
/**
 * Runs every task still queued (their callbacks are not called), joins the
 * thread, unregisters from the loop. NULL is a no-op.
 */
void worker_free(struct worker *w);

/**
 * Queues fn(arg). Takes ownership of arg: free_arg(arg) is called once fn has
 * run (or when the task is dropped). done(ret, data) is called on the loop
 * unless the task was cancelled; done may be NULL (fire and forget).
 * Returns a handle valid until done runs or the task is cancelled.
 */
struct worker_task *worker_submit(struct worker *w, worker_fn fn, void *arg,
                                  worker_free_fn free_arg, worker_done_fn done, void *data);
/** done will not be called; fn may still run (it owns arg). NULL is a no-op. */
void worker_cancel(struct worker_task *t);
