/**
 * @file loop.h
 * One-thread event loop, ae-shaped, on epoll.
 *
 * - fd events: one registration per fd with a callback and `void *data`;
 *   loop_fd_set() changes the interest mask (0 keeps the fd registered but quiet).
 * - timers: the callback returns the next delay in ms, or LOOP_NOMORE to drop it.
 * - before-sleep hooks run each iteration before waiting (flush queued output).
 * - signals: loop_signal_watch() routes signals through a signalfd to a callback
 *   run on the loop (never in a handler).
 *
 * It is safe to call loop_fd_del()/loop_timer_del() from inside any callback,
 * including for the fd or timer being dispatched; remove registrations before
 * freeing the memory their `data` points to.
 */
#pragma once

#include <stdint.h>

#define LOOP_READ 1u
#define LOOP_WRITE 2u
/** Reported with READ/WRITE when the fd has an error or a hang-up. */
#define LOOP_ERROR 4u
#define LOOP_NOMORE (-1L)

struct loop;
typedef void (*loop_fd_fn)(struct loop *loop, int fd, unsigned events, void *data);
typedef long (*loop_timer_fn)(struct loop *loop, uint64_t id, void *data);
typedef void (*loop_hook_fn)(struct loop *loop, void *data);
typedef void (*loop_signal_fn)(struct loop *loop, int signo, void *data);

/** Caller frees with loop_free(). NULL on failure. */
struct loop *loop_new(void);
void loop_free(struct loop *loop);

/** Registers fd (must not be registered yet). 0 or -errno. */
int loop_fd_add(struct loop *loop, int fd, unsigned mask, loop_fd_fn fn, void *data);
/** Changes the interest mask of a registered fd. 0 or -errno. */
int loop_fd_set(struct loop *loop, int fd, unsigned mask);
/** Unregisters fd (does not close it). No-op for an unknown fd. */
void loop_fd_del(struct loop *loop, int fd);

/** Adds a timer firing after ms milliseconds. Returns its id (never 0). */
uint64_t loop_timer_add(struct loop *loop, long ms, loop_timer_fn fn, void *data);
/** Removes a timer; no-op for 0 or an unknown id. */
void loop_timer_del(struct loop *loop, uint64_t id);

/** Adds a hook called before each wait. At most 8 hooks. */
int loop_hook_add(struct loop *loop, loop_hook_fn fn, void *data);
/** Removes a hook added with the same fn and data; no-op if absent. */
void loop_hook_del(struct loop *loop, loop_hook_fn fn, void *data);

/** Blocks signo for the process and delivers it to fn on the loop. 0 or -errno. */
int loop_signal_watch(struct loop *loop, int signo, loop_signal_fn fn, void *data);

/** Runs until loop_stop(). 0 or -errno on a fatal epoll error. */
int loop_run(struct loop *loop);
void loop_stop(struct loop *loop);
/** Monotonic time cached at the start of the iteration, in ms. */
uint64_t loop_now_ms(struct loop *loop);
