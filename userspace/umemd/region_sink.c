// SPDX-License-Identifier: GPL-2.0
/*
 * The destination's region as a page sink: creating it, installing
 * pages, the page maps, the fault thread, the region's summary.  See
 * region_sink.h for the maps, the threads and the locks; the VMM socket
 * is in vmm_link.c.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "region_sink.h"
#include "util.h"

static int rs_sink_put(struct page_sink *k, uint64_t page, uint32_t count,
		       const uint8_t *data, uint64_t *stored)
{
	return rs_put(container_of(k, struct region_sink, sink), page, count, data, stored);
}

void rs_init(struct region_sink *rs, struct session *ss, const struct umemd_opts *o,
	     struct page_provider *prov)
{
	memset(rs, 0, sizeof(*rs));
	rs->sink.put = rs_sink_put;
	rs->ss = ss;
	rs->o = o;
	rs->verbose = o->verbose;
	rs->prov = prov;
	pthread_mutex_init(&rs->llock, NULL);
	rs->vmm.lfd = rs->vmm.fd = -1;
	rs->copy_fd = -1;
	pthread_mutex_init(&rs->vmm.lock, NULL);
	pthread_cond_init(&rs->vmm.cond, NULL);
}

static int create_region(struct region_sink *rs)
{
	const struct umemd_opts *o = rs->o;
	struct umem_region_config cfg;
	char name[32];
	int ret;

	memset(&cfg, 0, sizeof(cfg));
	cfg.backend = o->backend;
	if (o->name)
		snprintf(name, sizeof(name), "%s", o->name);
	else
		snprintf(name, sizeof(name), "umemd-%d", (int)getpid());
	cfg.name = name;
	cfg.size = rs->pages * rs->page_size;
	cfg.page_size = rs->page_size;
	cfg.log = log_libumem;
	cfg.log_opaque = &rs->verbose;
	ret = umem_region_create(&cfg, &rs->region);
	if (ret) {
		/* hugetlb: say what to do (libumem logged the numbers). */
		bool pool = ret == -ENOMEM && cfg.page_size != PROTO_PAGE_SIZE &&
			    strcmp(o->backend, "umem");

		session_fail(rs->ss, "creating a %s region of %llu bytes in %u-byte pages: %s%s",
			     o->backend, (unsigned long long)cfg.size, cfg.page_size,
			     umem_strerror(ret),
			     pool ? " (no free 2 MiB huge pages: reserve them in /proc/sys/vm/nr_hugepages)" : "");
		return ret;
	}
	if (o->verbose)
		log_msg("region %s (%s) ready%s%s", name, o->backend,
			umem_region_path(rs->region) ? " at " : "",
			umem_region_path(rs->region) ? umem_region_path(rs->region) : "");
	return 0;
}

int rs_open(struct region_sink *rs, uint64_t pages, uint32_t page_size)
{
	int ret;

	rs->pages = pages;
	rs->page_size = page_size;
	rs->pstate = calloc(pages, 1);
	rs->requested = calloc(pages, 1);
	rs->req_time = calloc(pages, sizeof(*rs->req_time));
	rs->lat = calloc(pages, sizeof(uint64_t));
	if (!rs->pstate || !rs->requested || !rs->req_time || !rs->lat) {
		session_fail(rs->ss, "out of memory for %llu pages", (unsigned long long)pages);
		return -ENOMEM;
	}
	ret = create_region(rs);
	if (ret)
		return ret;
	if (rs->o->test_page_copy) {
		rs->copy_fd = open(rs->o->test_page_copy, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (rs->copy_fd < 0 || ftruncate(rs->copy_fd, (off_t)(pages * page_size))) {
			session_fail(rs->ss, "--test-page-copy %s: %s", rs->o->test_page_copy,
				     strerror(errno));
			return -errno;
		}
	}
	if (rs->o->vmm_socket)
		return vmm_link_open(rs);
	if (umem_region_needs_attach(rs->region)) {
		/* No VMM: serve our own mapping (useful for tests). */
		ret = umem_region_map(rs->region, NULL);
		if (ret) {
			session_fail(rs->ss, "mapping the region: %s", umem_strerror(ret));
			return ret;
		}
	}
	return 0;
}

/* ---- installing ---- */

int rs_claim(struct region_sink *rs, uint64_t page, uint32_t count, uint64_t *at)
{
	for (uint32_t i = 0; i < count; i++) {
		unsigned char exp = PG_MISSING;

		if (!atomic_compare_exchange_strong(&rs->pstate[page + i], &exp,
						    PG_INSTALLING)) {
			*at = page + i;
			return -EEXIST;
		}
	}
	return 0;
}

uint32_t rs_claim_run(struct region_sink *rs, uint64_t page, uint32_t count)
{
	uint32_t n = 0;

	while (n < count) {
		unsigned char exp = PG_MISSING;

		if (!atomic_compare_exchange_strong(&rs->pstate[page + n], &exp,
						    PG_INSTALLING))
			break;
		n++;
	}
	return n;
}

void rs_unclaim(struct region_sink *rs, uint64_t page)
{
	atomic_store(&rs->pstate[page], PG_MISSING);
}

bool rs_claim_queued(struct region_sink *rs, uint64_t page)
{
	unsigned char exp = PG_MISSING;

	return atomic_compare_exchange_strong(&rs->pstate[page], &exp, PG_QUEUED);
}

bool rs_take_queued(struct region_sink *rs, uint64_t page)
{
	unsigned char exp = PG_QUEUED;

	return atomic_compare_exchange_strong(&rs->pstate[page], &exp, PG_INSTALLING);
}

/*
 * @n pages from @page arrived (present now): a requested one has its
 * latency recorded, the others count as background; the counters are
 * added once per run, not per page.
 */
static void account(struct region_sink *rs, uint64_t page, uint32_t n, bool zero)
{
	uint64_t bg = 0, req = 0;

	for (uint32_t i = 0; i < n; i++) {
		uint64_t t;

		atomic_store_explicit(&rs->pstate[page + i], PG_PRESENT, memory_order_release);
		t = atomic_load_explicit(&rs->req_time[page + i], memory_order_relaxed);
		if (!t || !atomic_load_explicit(&rs->requested[page + i], memory_order_relaxed)) {
			bg++;
			continue;
		}
		req++;
		t = now_ns() - t;
		pthread_mutex_lock(&rs->llock);
		if (rs->nlat < rs->pages)
			rs->lat[rs->nlat++] = t;
		pthread_mutex_unlock(&rs->llock);
	}
	if (bg)
		atomic_fetch_add(&rs->pages_bg, bg);
	if (req)
		atomic_fetch_add(&rs->pages_req, req);
	if (zero)
		atomic_fetch_add(&rs->pages_zero, n);
}

/*
 * --test-page-copy: the data of @count pages just installed from @page
 * (NULL: zero pages, a hole of the file), at their offset in the file, so
 * that a test can compare every page installed with the source's RAM.
 */
static void test_copy(struct region_sink *rs, uint64_t page, uint32_t count,
		      const uint8_t *data)
{
	size_t len = (size_t)count * rs->page_size;

	if (rs->copy_fd < 0 || !data)
		return;
	/* A copy with holes would read as wrong pages: fail instead. */
	if (pwrite(rs->copy_fd, data, len, (off_t)(page * rs->page_size)) != (ssize_t)len &&
	    !atomic_exchange(&rs->copy_failed, true))
		session_fail(rs->ss, "--test-page-copy: writing page %llu: %s",
			     (unsigned long long)page, strerror(errno));
}

int rs_put(struct region_sink *rs, uint64_t page, uint32_t count,
	   const uint8_t *data, uint64_t *stored)
{
	uint64_t ps = rs->page_size;
	int ret;

	atomic_fetch_add_explicit(&rs->install_calls, 1, memory_order_relaxed);
	if (data)
		ret = umem_region_copy(rs->region, page * ps, data, (uint64_t)count * ps);
	else
		ret = umem_region_zero(rs->region, page * ps, (uint64_t)count * ps);
	if (ret)
		return ret;
	test_copy(rs, page, count, data);
	account(rs, page, count, !data);
	*stored = atomic_fetch_add(&rs->received, count) + count;
	return 0;
}

/*
 * Without a vector install (the uffd backends): each run of contiguous
 * pages is copied into the aligned staging buffer and installed with one
 * UFFDIO_COPY; a 4 KiB memcpy costs far less than an ioctl.  A run that
 * meets a page already there (taken over and installed by its taker) is
 * done again page by page, so that each page gets its own result; there
 * EEXIST is the run's own earlier pages or the taker's, both installed.
 */
static int put_runs(struct region_sink *rs, struct umem_copy_item *items, uint32_t n)
{
	uint64_t ps = rs->page_size;

	if (!rs->stage) {
		rs->stage = aligned_alloc(4096, RS_STAGE_PAGES * ps);
		if (!rs->stage)
			return -ENOMEM;
	}
	for (uint32_t i = 0, k; i < n; i = k) {
		int ret;

		for (k = i + 1; k < n && k - i < RS_STAGE_PAGES &&
		     items[k].offset == items[k - 1].offset + ps; k++)
			;
		if (k - i == 1) {
			ret = umem_region_copy(rs->region, items[i].offset, items[i].src, ps);
		} else {
			for (uint32_t j = i; j < k; j++)
				memcpy(rs->stage + (j - i) * ps, items[j].src, ps);
			ret = umem_region_copy(rs->region, items[i].offset, rs->stage,
					       (k - i) * ps);
		}
		atomic_fetch_add_explicit(&rs->install_calls, 1, memory_order_relaxed);
		if (ret == -EEXIST && k - i > 1) {
			for (uint32_t j = i; j < k; j++) {
				ret = umem_region_copy(rs->region, items[j].offset,
						       items[j].src, ps);
				atomic_fetch_add_explicit(&rs->install_calls, 1,
							  memory_order_relaxed);
				items[j].result = ret == -EEXIST ? 0 : ret;
			}
			continue;
		}
		for (uint32_t j = i; j < k; j++)
			items[j].result = ret;
	}
	return 0;
}

int rs_put_vec(struct region_sink *rs, struct umem_copy_item *items, uint32_t n,
	       uint64_t *stored, uint32_t *counted)
{
	uint32_t mine = 0;
	int ret;

	if (n == 1) {
		atomic_fetch_add_explicit(&rs->install_calls, 1, memory_order_relaxed);
		items[0].result = umem_region_copy(rs->region, items[0].offset,
						   items[0].src, rs->page_size);
	} else if (strcmp(rs->o->backend, "umem")) {
		ret = put_runs(rs, items, n);
		if (ret)
			return ret;
	} else {
		/* One UMEM_COPY_VEC: the pages straight from the receive buffer. */
		atomic_fetch_add_explicit(&rs->install_calls, 1, memory_order_relaxed);
		ret = umem_region_copy_vec(rs->region, items, n);
		if (ret < 0)
			return ret;
		if ((uint32_t)ret != n)
			return -EIO;
	}
	for (uint32_t i = 0; i < n; i++)
		if (!items[i].result)
			test_copy(rs, items[i].offset / rs->page_size, 1, items[i].src);
	/*
	 * Each page still queued is ours to count; one taken over meanwhile
	 * is its taker's (whose install or ours came first: EEXIST for the
	 * other, the same data either way).
	 */
	for (uint32_t i = 0; i < n; i++) {
		uint64_t page = items[i].offset / rs->page_size;

		if (!rs_take_queued(rs, page))
			continue;
		if (items[i].result)
			return (int)items[i].result;
		account(rs, page, 1, false);
		mine++;
	}
	*counted = mine;
	*stored = atomic_fetch_add(&rs->received, mine) + mine;
	return 0;
}

int rs_put_taken(struct region_sink *rs, uint64_t page, const uint8_t *data,
		 uint64_t *stored)
{
	uint64_t ps = rs->page_size;
	int ret;

	atomic_fetch_add_explicit(&rs->install_calls, 1, memory_order_relaxed);
	if (data)
		ret = umem_region_copy(rs->region, page * ps, data, ps);
	else
		ret = umem_region_zero(rs->region, page * ps, ps);
	if (ret && ret != -EEXIST)
		return ret;
	if (!ret)
		test_copy(rs, page, 1, data);
	account(rs, page, 1, !data);
	*stored = atomic_fetch_add(&rs->received, 1) + 1;
	return 0;
}

int rs_discard(struct region_sink *rs, uint64_t page, uint32_t count)
{
	for (uint32_t j = 0; j < count; j++) {
		unsigned char exp = PG_PRESENT;
		int ret;

		if (!atomic_compare_exchange_strong(&rs->pstate[page + j], &exp, PG_MISSING))
			continue;	/* missing already */
		ret = umem_region_discard(rs->region, (page + j) * rs->page_size,
					  rs->page_size);
		if (ret)
			return ret;
		atomic_fetch_sub(&rs->received, 1);
		/* Missing again: a new fault must be requested again. */
		atomic_store(&rs->requested[page + j], 0);
		atomic_store(&rs->req_time[page + j], 0);
	}
	return 0;
}

/* ---- fault thread: the region's requests -> the provider ---- */

static void *fault_thread(void *arg)
{
	struct region_sink *rs = arg;
	struct umem_page_request reqs[64];
	uint64_t want[64];

	thread_name("umemd-fault");
	while (!atomic_load(&rs->ss->stopping)) {
		int n = umem_region_read_requests(rs->region, reqs, 64, 100);
		uint32_t nwant = 0;

		if (n == -ENOTCONN || n == 0)
			continue;
		if (n < 0) {
			session_fail(rs->ss, "reading page requests: %s%s", umem_strerror(n),
				     n == -ESHUTDOWN ? " (did the VMM exit?)" : "");
			break;
		}
		for (int i = 0; i < n; i++) {
			uint64_t page = reqs[i].offset / rs->page_size;

			atomic_fetch_add(&rs->faults, 1);
			if (page >= rs->pages)
				continue;
			if (atomic_load(&rs->pstate[page]) == PG_PRESENT) {
				/* Raced with an install; make sure it's awake. */
				umem_region_wake(rs->region, reqs[i].offset, rs->page_size);
				atomic_fetch_add(&rs->dup, 1);
				continue;
			}
			if (atomic_exchange(&rs->requested[page], 1)) {
				atomic_fetch_add(&rs->dup, 1);
				continue;
			}
			atomic_store(&rs->req_time[page], now_ns());
			want[nwant++] = page;
			atomic_fetch_add(&rs->requests, 1);
		}
		if (nwant && rs->prov->request(rs->prov, want, nwant))
			break;
	}
	return NULL;
}

int rs_start_faults(struct region_sink *rs)
{
	if (pthread_create(&rs->fault_th, NULL, fault_thread, rs)) {
		session_fail(rs->ss, "cannot start the fault thread");
		return -1;
	}
	rs->fault_on = true;
	return 0;
}

/* ---- the end ---- */

void rs_join(struct region_sink *rs)
{
	if (rs->fault_on)
		pthread_join(rs->fault_th, NULL);
	rs->fault_on = false;
	if (rs->vmm.on)
		pthread_join(rs->vmm.th, NULL);
	rs->vmm.on = false;
}

void rs_summary(struct region_sink *rs, struct umemd_summary *sum)
{
	sum->pages_bg = atomic_load(&rs->pages_bg);
	sum->pages_req = atomic_load(&rs->pages_req);
	sum->pages_zero = atomic_load(&rs->pages_zero);
	sum->requests = atomic_load(&rs->requests);
	sum->requests_dup = atomic_load(&rs->dup);
	sum->install_calls = atomic_load(&rs->install_calls);
	sum->lat_ns = rs->lat;
	sum->nlat = rs->nlat;
	rs->lat = NULL;
	for (uint64_t i = 0; i < sum->nlat; i++) {
		sum->blocked_ns += sum->lat_ns[i];
		if (sum->lat_ns[i] > sum->blocked_max_ns)
			sum->blocked_max_ns = sum->lat_ns[i];
	}
	if (rs->region) {
		struct umem_region_stats st;

		if (!umem_region_stats(rs->region, &st) && st.wait_ns_total) {
			sum->blocked_ns = st.wait_ns_total;
			sum->blocked_max_ns = st.wait_ns_max;
			sum->blocked_from_kernel = true;
		}
	}
}

void rs_close(struct region_sink *rs)
{
	/* Closing the region releases every faulting task. */
	if (rs->region)
		umem_region_close(rs->region);
	rs->region = NULL;
	vmm_link_close(rs);
	free(rs->pstate);
	free(rs->requested);
	free(rs->req_time);
	free(rs->lat);
	free(rs->stage);
	rs->stage = NULL;
	if (rs->copy_fd >= 0)
		close(rs->copy_fd);
	rs->copy_fd = -1;
	rs->pstate = rs->requested = NULL;
	rs->req_time = NULL;
	rs->lat = NULL;
}
