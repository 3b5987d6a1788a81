// SPDX-License-Identifier: GPL-2.0
/* The progress line on stderr: see progress.h. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "progress.h"
#include "util.h"

static bool going(struct progress *p)
{
	return !atomic_load(&p->ss->stopping) && !atomic_load(&p->ss->failed);
}

static void *progress_thread(void *arg)
{
	struct progress *p = arg;
	uint64_t t0 = now_ns();

	thread_name("umemd-progress");
	for (;;) {
		uint64_t got;

		/* The first line after one period, so that its rate means something. */
		usleep(250000);
		if (!going(p))
			break;
		got = atomic_load(p->done);

		if (p->receiving || p->saving) {
			double secs = (double)(now_ns() - t0) / 1e9;
			double rate = secs > 0 ? (double)got * p->page_size / (1 << 20) / secs : 0;
			double eta = got ? secs * (double)(p->pages - got) / (double)got : 0;

			fprintf(stderr, "\rumemd: %s%llu/%llu pages (%.0f%%), %llu requests, %.1f MiB/s, ETA %.1f s   ",
				p->saving ? "saved " : "", (unsigned long long)got, (unsigned long long)p->pages,
				p->pages ? 100.0 * (double)got / (double)p->pages : 0.0,
				(unsigned long long)atomic_load(p->requests), rate, eta);
		} else {
			fprintf(stderr, "\rumemd: sent %llu/%llu pages, %llu requests, acked %llu   ",
				(unsigned long long)got, (unsigned long long)p->pages,
				(unsigned long long)atomic_load(p->requests),
				(unsigned long long)atomic_load(p->acked));
		}
	}
	fprintf(stderr, "\n");
	return NULL;
}

void progress_start(struct progress *p)
{
	int err = pthread_create(&p->th, NULL, progress_thread, p);

	/* Progress lines are a convenience: go on without them. */
	if (err)
		log_msg("no progress lines: cannot start their thread: %s", strerror(err));
	else
		p->on = true;
}

void progress_join(struct progress *p)
{
	if (p->on)
		pthread_join(p->th, NULL);
	p->on = false;
}
