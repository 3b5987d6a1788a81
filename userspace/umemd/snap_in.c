// SPDX-License-Identifier: GPL-2.0
/*
 * A snapshot file as the region's page provider (umemd --restore).
 *
 * The region's fault thread hands requested pages to si_request(), which
 * queues them (reqq.h) and, with --record-working-set, notes the order
 * in which they were first asked for.  Two threads read the file and
 * store pages with the sink's put():
 *   req  serves requested pages, oldest first, one at a time;
 *   bg   streams the rest: the file's working set first, in its order
 *        (unless --no-prefetch), then every page in order, consecutive
 *        pages in runs of up to 256 KiB (one read, one install).
 * (--throttle N, testing: bg sleeps 1 ms every N pages, a stream slower
 * than the guest, as the source's --throttle.)
 * A page goes in once: whoever takes it in the claims map (claims.h)
 * reads and stores it, the other skips it.  Zero pages are never read:
 * they go in as zero installs.  A page whose checksum fails fails the
 * session with the reader's sentence (page, block, offset); its buffer
 * was zeroed by the reader and is never stored.
 *
 * Threads and locks: see restore.h.  The thread whose put() makes the
 * sink complete writes done_fd (put() hands each count to one caller).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "restore.h"
#include "util.h"

#define SI_BATCH_BYTES	(256U << 10)
#define SI_QUEUE_MAX	65536

static int si_request(struct page_provider *p, const uint64_t *pages, uint32_t n)
{
	struct snap_in *si = container_of(p, struct snap_in, prov);

	if (atomic_load(&si->ss->stopping))
		return -ECANCELED;
	if (si->record) {
		pthread_mutex_lock(&si->wlock);
		for (uint32_t i = 0; i < n && si->nwset < si->info.total_pages; i++)
			si->wset[si->nwset++] = pages[i];
		pthread_mutex_unlock(&si->wlock);
	}
	for (uint32_t i = 0; i < n; i++)
		reqq_push(&si->q, pages[i], 1);
	return 0;
}

void si_init(struct snap_in *si, struct session *ss, struct snap_reader *r,
	     const char *path)
{
	memset(si, 0, sizeof(*si));
	si->prov.request = si_request;
	si->ss = ss;
	si->r = r;
	si->path = path;
	si->done_fd = -1;
	pthread_mutex_init(&si->wlock, NULL);
	snap_reader_info(r, &si->info);
}

int si_open(struct snap_in *si, struct page_sink *sink, bool prefetch, bool record,
	    uint64_t throttle)
{
	uint64_t pages = si->info.total_pages;
	size_t cap = pages < SI_QUEUE_MAX ? (size_t)pages : SI_QUEUE_MAX;

	si->sink = sink;
	si->sink_pages = pages;
	si->prefetch = prefetch;
	si->record = record;
	si->throttle = throttle;
	si->batch = SI_BATCH_BYTES / si->info.page_size;
	if (!si->batch)
		si->batch = 1;
	si->done_fd = eventfd(0, EFD_CLOEXEC);
	if (si->done_fd < 0) {
		session_fail(si->ss, "eventfd: %s", strerror(errno));
		return -errno;
	}
	if (reqq_init(&si->q, cap ? cap : 1) || claims_init(&si->cl, pages) ||
	    (record && !(si->wset = calloc(pages, sizeof(uint64_t))))) {
		session_fail(si->ss, "out of memory for %llu pages", (unsigned long long)pages);
		return -ENOMEM;
	}
	return 0;
}

/* The sink holds every page: tell the main thread (once). */
static void note_stored(struct snap_in *si, uint64_t stored)
{
	uint64_t one = 1;

	if (stored == si->sink_pages && write(si->done_fd, &one, sizeof(one)) < 0)
		session_fail(si->ss, "eventfd: %s", strerror(errno));
}

/*
 * Read and store @count pages from @page, all taken by the caller and
 * all of one kind (data or zero).  0, or -1 with the session failed.
 */
static int install(struct snap_in *si, uint64_t page, uint32_t count, bool zero,
		   uint8_t *buf)
{
	uint64_t stored;
	char err[256];
	int ret;

	if (!zero) {
		ret = (int)snap_reader_read_run(si->r, page, count, buf, err, sizeof(err));
		if (ret) {
			session_fail(si->ss, "%s: %s", si->path, err);
			return -1;
		}
		atomic_fetch_add(&si->bytes_read, (uint64_t)count * si->info.page_size);
	}
	ret = si->sink->put(si->sink, page, count, zero ? NULL : buf, &stored);
	if (ret) {
		session_fail(si->ss, "installing page %llu%s: %s", (unsigned long long)page,
			     count > 1 ? " and on" : "", umem_strerror(ret));
		return -1;
	}
	note_stored(si, stored);
	return 0;
}

static bool is_zero(struct snap_in *si, uint64_t page)
{
	return snap_reader_page_state(si->r, page) == SNAP_PAGE_ZERO;
}

/* --throttle (testing): the stream sleeps 1 ms every N pages. */
static void throttle(struct snap_in *si, uint64_t *since, uint32_t n)
{
	struct timespec ms = { .tv_sec = 0, .tv_nsec = 1000000 };

	if (!si->throttle)
		return;
	*since += n;
	while (*since >= si->throttle) {
		*since -= si->throttle;
		nanosleep(&ms, NULL);
	}
}

/* ---- req: requested pages first ---- */

static void *req_thread(void *arg)
{
	struct snap_in *si = arg;
	uint8_t *buf = aligned_alloc(4096, si->info.page_size);
	uint64_t page;

	thread_name("umemd-rst-req");
	if (!buf) {
		session_fail(si->ss, "out of memory for a page buffer");
		return NULL;
	}
	while (!atomic_load(&si->ss->stopping) && reqq_pop(&si->q, &page, true)) {
		if (page >= si->info.total_pages || !claims_take(&si->cl, page))
			continue;	/* the stream has it, or had it */
		atomic_fetch_add(&si->served, 1);
		if (install(si, page, 1, is_zero(si, page), buf))
			break;
	}
	free(buf);
	return NULL;
}

/* ---- bg: the working set, then every page ---- */

/*
 * Install the taken pages of @pages[0..n) (sorted, each taken by us) in
 * runs of consecutive pages of one kind.
 */
static int install_sorted(struct snap_in *si, const uint64_t *pages, uint32_t n,
			  uint8_t *buf, uint64_t *since)
{
	uint32_t i = 0;

	while (i < n && !atomic_load(&si->ss->stopping)) {
		bool zero = is_zero(si, pages[i]);
		uint32_t k = 1;

		while (i + k < n && k < si->batch && pages[i + k] == pages[i] + k &&
		       is_zero(si, pages[i + k]) == zero)
			k++;
		if (install(si, pages[i], k, zero, buf))
			return -1;
		throttle(si, since, k);
		i += k;
	}
	return 0;
}

/*
 * The working set, in its order: the pages nobody took, in runs of pages
 * that follow each other both in the set and in the file.
 */
static int prefetch_working_set(struct snap_in *si, uint8_t *buf, uint64_t *since)
{
	const uint64_t *ws = snap_reader_working_set(si->r);
	uint64_t n = si->info.working_set_len;

	for (uint64_t at = 0; at < n && !atomic_load(&si->ss->stopping);) {
		uint64_t first;
		bool zero;
		uint32_t k = 1;

		if (!claims_take(&si->cl, ws[at])) {
			at++;
			continue;
		}
		first = ws[at];
		zero = is_zero(si, first);
		while (at + k < n && k < si->batch && ws[at + k] == first + k &&
		       is_zero(si, first + k) == zero && claims_take(&si->cl, first + k))
			k++;
		at += k;
		atomic_fetch_add(&si->prefetched, k);
		if (install(si, first, k, zero, buf))
			return -1;
		throttle(si, since, k);
	}
	return 0;
}

static void *bg_thread(void *arg)
{
	struct snap_in *si = arg;
	uint64_t pages = si->info.total_pages, since = 0;
	uint8_t *buf = aligned_alloc(4096, (size_t)si->batch * si->info.page_size);
	uint64_t *run = calloc(si->batch, sizeof(uint64_t));

	thread_name("umemd-rst-bg");
	if (!buf || !run) {
		session_fail(si->ss, "out of memory for the stream's buffers");
		goto out;
	}
	if (si->prefetch && si->info.working_set_len &&
	    prefetch_working_set(si, buf, &since))
		goto out;
	for (uint64_t p = 0; p < pages && !atomic_load(&si->ss->stopping);) {
		uint32_t k = 0;

		/* The next run of pages nobody took, up to a batch. */
		for (; p < pages && k < si->batch; p++) {
			if (claims_take(&si->cl, p))
				run[k++] = p;
			else if (k)
				break;
		}
		if (k && install_sorted(si, run, k, buf, &since))
			break;
	}
out:
	free(buf);
	free(run);
	return NULL;
}

int si_start(struct snap_in *si)
{
	if (pthread_create(&si->req_th, NULL, req_thread, si)) {
		session_fail(si->ss, "cannot start the request thread");
		return -1;
	}
	si->req_on = true;
	if (pthread_create(&si->bg_th, NULL, bg_thread, si)) {
		session_fail(si->ss, "cannot start the background stream");
		return -1;
	}
	si->bg_on = true;
	return 0;
}

void si_wake(struct snap_in *si)
{
	reqq_close(&si->q);
}

void si_join(struct snap_in *si)
{
	if (si->req_on)
		pthread_join(si->req_th, NULL);
	if (si->bg_on)
		pthread_join(si->bg_th, NULL);
	si->req_on = si->bg_on = false;
}

void si_free(struct snap_in *si)
{
	reqq_destroy(&si->q);
	claims_free(&si->cl);
	free(si->wset);
	si->wset = NULL;
	if (si->done_fd >= 0)
		close(si->done_fd);
	si->done_fd = -1;
	pthread_mutex_destroy(&si->wlock);
}
