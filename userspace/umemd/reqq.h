/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A queue of requested pages, oldest first, for whoever serves them: the
 * source's preempt thread (or its main thread without a preempt
 * channel) today; the --restore and --snapshot streamers next.  A fixed
 * ring: when it is full, the oldest entry is dropped, a page the
 * background stream reaches anyway.
 *
 * Locking: lock guards every field; cond is broadcast on a push, on
 * reqq_close() and on reqq_hold().  Any thread pushes; reqq_pop() blocks
 * only when asked to.
 */
#ifndef UMEMD_REQQ_H
#define UMEMD_REQQ_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct reqq {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	uint64_t *ring;
	size_t head, len, cap;
	bool closed;		/* the session stops: nobody waits any more */
	bool held;		/* paused: the entries stay, none is handed out */
};

/* A queue of @cap entries; -ENOMEM (the queue is still safe to close). */
int reqq_init(struct reqq *q, size_t cap);
void reqq_destroy(struct reqq *q);
/* Pages @page .. @page + @count - 1, in that order. */
void reqq_push(struct reqq *q, uint64_t page, uint32_t count);
/*
 * The oldest page into *@page: true.  With @wait, blocks while the queue
 * is empty, open and not held; false once there is nothing to hand out.
 */
bool reqq_pop(struct reqq *q, uint64_t *page, bool wait);
/* Wake every waiter for good. */
void reqq_close(struct reqq *q);
/* Pause (@hold) or resume handing pages out; waiters wake on a pause. */
void reqq_hold(struct reqq *q, bool hold);
#endif
