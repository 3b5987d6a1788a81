// SPDX-License-Identifier: GPL-2.0
/*
 * umemd --snapshot: a live snapshot of a running VMM's RAM into a
 * snapshot file (common/snapfile.h), by write protection.
 *
 *   1. Take the RAM (wp_ram.h): a umem node, or the memfd and userfaultfd
 *      the VMM offers on --vmm-socket.  Create the file (snap_out.h).
 *   2. Stop the VMM (--pid: SIGSTOP; --stop-cmd), write-protect every page
 *      in one call, read --device-state into the file, let the VMM run
 *      again (--cont-cmd, or SIGCONT).  That is the VMM's stop time: it
 *      does not grow with the RAM.
 *   3. Save every page once (claims.h): the request thread answers each
 *      write request (UMEM_REQUEST_WP, a writer blocked on a protected
 *      page) by saving that page and unprotecting it; meanwhile the
 *      background scan (the main thread) saves the pages nobody took, in
 *      order, in runs that it unprotects once saved.  Whoever unprotects
 *      a page stamps the time in done_ns[]; every request is measured
 *      from its arrival to that stamp, whichever thread saved the page:
 *      a request whose page another save holds waits on the request
 *      thread's pending list until the stamp appears.
 *   4. Complete the file, release the RAM (every protection dropped), and
 *      on the uffd backends tell the VMM DONE.  On any failure (the VMM
 *      exits, the region fails, SIGTERM) the file stays marked incomplete,
 *      the RAM is released all the same and the VMM gets FAIL.
 *
 * Threads: the main thread (steps 1, 2, 4 and the background scan), the
 * request thread (step 3), the session's cancel watch (session.h) and,
 * with --progress, the progress line (progress.h), which only reads
 * atomics.  The page claims and done_ns[] are atomics; the request
 * thread's pending list and blocked-time counters are its own, read only
 * after it is joined.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "claims.h"
#include "devstate.h"
#include "progress.h"
#include "session.h"
#include "snap_out.h"
#include "umemd.h"
#include "util.h"
#include "vmm_proc.h"
#include "wp_ram.h"

#define SNAP_RUN_MAX	64		/* background pages saved, then unprotected, at once */
#define SNAP_REQ_BATCH	64
#define SNAP_POLL_MS	100
#define SNAP_BLOCK_NAME_RAM "ram"

struct snap_session {
	const struct umemd_opts *o;
	struct session ss;
	struct wp_ram ram;
	struct snap_out out;
	struct claims cl;
	struct vmm_proc vp;
	pthread_t req_th;
	bool req_on;
	atomic_bool bg_done;
	atomic_uint_fast64_t pages_bg;
	atomic_uint_fast64_t requests;	/* write requests read (the progress line reads it) */
	/* one a page: when it was unprotected (now_ns()), 0 while protected */
	atomic_uint_fast64_t *done_ns;
	bool file_made;			/* the snapshot file exists (incomplete until finished) */
	struct progress prog;
	/* the request thread's, read once it is joined */
	struct snap_wait *pend;		/* requests whose page another save holds */
	size_t npend, pend_cap;
	uint64_t pages_req, requests_bg, requests_lost, blocked_ns, blocked_max_ns;
};

/* A write request waiting for the unprotect of a page that another save holds. */
struct snap_wait {
	uint64_t page, time_ns;
};

/* Whether the VMM process @pid still runs (a zombie does not). */
static bool pid_alive(int pid)
{
	char path[64], st[256], *c;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return kill(pid, 0) == 0 || errno != ESRCH;
	n = read(fd, st, sizeof(st) - 1);
	close(fd);
	if (n <= 0)
		return false;
	st[n] = 0;
	c = strrchr(st, ')');
	return !(c && c[1] == ' ' && (c[2] == 'Z' || c[2] == 'X'));
}

/* Fail the session if the VMM is gone; true if it is. */
static bool vmm_gone(struct snap_session *x)
{
	if (x->o->pid && !pid_alive(x->o->pid)) {
		session_fail(&x->ss, "the VMM (pid %d) exited during the snapshot", x->o->pid);
		return true;
	}
	if (wp_ram_vmm_gone(&x->ram)) {
		session_fail(&x->ss, "the VMM closed %s: it exited during the snapshot",
			     x->o->vmm_socket);
		return true;
	}
	return false;
}

/* Save @count claimed pages from @page, then unprotect them.  0 or -1 (failed). */
static int save_run(struct snap_session *x, uint64_t page, uint32_t count)
{
	uint64_t stored;
	int ret;

	ret = x->out.sink.put(&x->out.sink, page, count,
			      x->ram.map + page * x->ram.page_size, &stored);
	if (ret) {
		session_fail(&x->ss, "saving page %llu to %s: %s", (unsigned long long)page,
			     x->o->snapshot, strerror(-ret));
		return -1;
	}
	ret = wp_ram_protect(&x->ram, page, count, false);
	if (ret) {
		session_fail(&x->ss, "unprotecting page %llu (%u pages) of the VMM's RAM: %s",
			     (unsigned long long)page, count, umem_strerror(ret));
		return -1;
	}
	/* The writers of these pages go on from here: what their requests wait for. */
	for (uint64_t t = now_ns(), i = 0; i < count; i++)
		atomic_store(&x->done_ns[page + i], t);
	return 0;
}

/* A writer blocked from @arrival to @done (the unprotect of its page). */
static void count_blocked(struct snap_session *x, uint64_t arrival, uint64_t done)
{
	uint64_t blocked = done > arrival ? done - arrival : 0;

	x->blocked_ns += blocked;
	if (blocked > x->blocked_max_ns)
		x->blocked_max_ns = blocked;
}

/* Count the pending requests whose page is unprotected by now. */
static void settle_pending(struct snap_session *x)
{
	size_t kept = 0;

	for (size_t i = 0; i < x->npend; i++) {
		uint64_t done = atomic_load(&x->done_ns[x->pend[i].page]);

		if (done) {
			count_blocked(x, x->pend[i].time_ns, done);
			x->requests_bg++;
		} else {
			x->pend[kept++] = x->pend[i];
		}
	}
	x->npend = kept;
}

static void serve_request(struct snap_session *x, const struct umem_page_request *q)
{
	uint64_t page = q->offset / x->ram.page_size, done;

	if (!(q->flags & UMEM_REQUEST_WP) || page >= x->ram.pages)
		return;
	atomic_fetch_add(&x->requests, 1);
	if (claims_take(&x->cl, page)) {
		if (save_run(x, page, 1))
			return;
		x->pages_req++;
		count_blocked(x, q->time_ns, atomic_load(&x->done_ns[page]));
		return;
	}
	/*
	 * Another save holds the page (the background's run, or an earlier
	 * request): the writer waits for its unprotect, done or to come.
	 */
	done = atomic_load(&x->done_ns[page]);
	if (done) {
		count_blocked(x, q->time_ns, done);
		x->requests_bg++;
		return;
	}
	if (x->npend == x->pend_cap) {
		size_t cap = x->pend_cap ? 2 * x->pend_cap : 64;
		struct snap_wait *p = realloc(x->pend, cap * sizeof(*p));

		if (!p) {
			x->requests_lost++;	/* not measured; said in the summary's check */
			return;
		}
		x->pend = p;
		x->pend_cap = cap;
	}
	x->pend[x->npend++] = (struct snap_wait){ .page = page, .time_ns = q->time_ns };
}

static void *request_thread(void *arg)
{
	struct snap_session *x = arg;
	struct umem_page_request reqs[SNAP_REQ_BATCH];

	thread_name("umemd-snap-req");
	while (!atomic_load(&x->ss.stopping)) {
		int n = wp_ram_requests(&x->ram, reqs, SNAP_REQ_BATCH, SNAP_POLL_MS);

		if (n == -ESHUTDOWN) {
			session_fail(&x->ss, "the VMM exited during the snapshot (its memory is gone)");
			break;
		}
		if (n < 0) {
			session_fail(&x->ss, "reading write requests from the VMM's RAM: %s",
				     umem_strerror(n));
			break;
		}
		for (int i = 0; i < n && !session_failed(&x->ss); i++)
			serve_request(x, &reqs[i]);
		settle_pending(x);
		if (atomic_load(&x->bg_done) || (n == 0 && vmm_gone(x)))
			break;
	}
	/* The background is done: every page it took is unprotected, unless it failed. */
	settle_pending(x);
	x->requests_lost += x->npend;
	return NULL;
}

/* The pages nobody took, in order, in runs; unprotected once saved. */
static void background_scan(struct snap_session *x)
{
	uint64_t cursor = 0, low = 0, since_sleep = 0, t_check = now_ns();

	while (!session_failed(&x->ss) && claims_next(&x->cl, &cursor, &low)) {
		uint32_t n = 0;

		while (n < SNAP_RUN_MAX && cursor + n < x->ram.pages &&
		       claims_take(&x->cl, cursor + n))
			n++;
		if (!n) {
			cursor++;
			continue;
		}
		if (save_run(x, cursor, n))
			break;
		atomic_fetch_add(&x->pages_bg, n);
		cursor += n;
		if (x->o->throttle_pages) {
			/* testing: 1 ms every N pages, so that writers meet protected pages */
			for (since_sleep += n; since_sleep >= x->o->throttle_pages;
			     since_sleep -= x->o->throttle_pages)
				usleep(1000);
		}
		if (now_ns() - t_check > SNAP_POLL_MS * 1000000ULL) {
			t_check = now_ns();
			if (vmm_gone(x))
				break;
		}
	}
}

/* Step 1: the RAM and the file. */
static int take_ram(struct snap_session *x, char *err, size_t errlen)
{
	const struct umemd_opts *o = x->o;
	int ret;

	if (!strcmp(o->backend, "umem")) {
		ret = wp_ram_open_node(&x->ram, o->ram[0], err, errlen);
	} else {
		ret = wp_ram_listen(&x->ram, o->vmm_socket, err, errlen);
		if (!ret && o->verbose)
			log_msg("waiting for the VMM's OFFER on %s", o->vmm_socket);
		if (!ret)
			ret = wp_ram_accept(&x->ram, -1, x->ss.stop_fd, err, errlen);
	}
	if (ret)
		return ret;
	if (o->verbose)
		log_msg("the VMM's RAM: %llu bytes of %u-byte pages (%s)",
			(unsigned long long)x->ram.size, x->ram.page_size, x->ram.backend);
	x->done_ns = calloc(x->ram.pages, sizeof(*x->done_ns));
	if (!x->done_ns || claims_init(&x->cl, x->ram.pages)) {
		snprintf(err, errlen, "no memory for %llu pages' claims",
			 (unsigned long long)x->ram.pages);
		return -ENOMEM;
	}
	ret = snap_out_create(&x->out, o->snapshot, SNAP_BLOCK_NAME_RAM, x->ram.size,
			      x->ram.page_size, err, errlen);
	x->file_made = !ret;
	return ret;
}

/* Step 2, from stop to cont: 0, or -1 with the session failed. */
static int stop_protect_cont(struct snap_session *x, struct umemd_summary *s)
{
	char err[256];
	uint8_t *blob = NULL;
	size_t len = 0;
	uint64_t t0 = now_ns();
	int ret, failed = 0;

	if (vmm_stop(&x->vp, err, sizeof(err))) {
		session_fail(&x->ss, "%s", err);
		return -1;
	}
	ret = wp_ram_protect(&x->ram, 0, x->ram.pages, true);
	if (ret) {
		session_fail(&x->ss, "write-protecting the VMM's RAM: %s", umem_strerror(ret));
		failed = 1;
	}
	if (!failed) {
		/* Writers that meet a protected page from now on are served. */
		if (pthread_create(&x->req_th, NULL, request_thread, x)) {
			session_fail(&x->ss, "cannot start the request thread");
			failed = 1;
		} else {
			x->req_on = true;
		}
	}
	if (!failed && devstate_load(x->o->device_state, &blob, &len, err, sizeof(err))) {
		session_fail(&x->ss, "%s", err);
		failed = 1;
	}
	if (!failed && snap_out_set_device_state(&x->out, blob, len, err, sizeof(err))) {
		session_fail(&x->ss, "%s", err);
		failed = 1;
	}
	free(blob);
	s->device_state_bytes = len;
	if (vmm_cont(&x->vp, err, sizeof(err))) {
		session_fail(&x->ss, "%s", err);
		failed = 1;
	}
	s->stop_ns = now_ns() - t0;
	if (x->o->verbose && !failed)
		log_msg("VMM stopped for %.3f ms: every page protected, %zu bytes of device state",
			s->stop_ns / 1e6, len);
	return failed ? -1 : 0;
}

int umemd_snapshot(const struct umemd_opts *o, struct umemd_summary *s)
{
	struct snap_session *x = calloc(1, sizeof(*x));
	uint64_t t0 = now_ns();
	char err[256] = "";
	bool ok = false;

	s->role = "snapshot";
	s->backend = o->backend;
	if (!x) {
		snprintf(s->error, sizeof(s->error), "out of memory");
		return -1;
	}
	x->o = o;
	wp_ram_init(&x->ram);
	x->vp.pid = o->pid;
	x->vp.stop_cmd = o->stop_cmd;
	x->vp.cont_cmd = o->cont_cmd;
	session_init(&x->ss, o->cancel_fd, NULL, NULL);
	if (x->ss.stop_fd < 0 || session_watch_cancel(&x->ss)) {
		snprintf(s->error, sizeof(s->error), "cannot start the session: %.200s",
			 x->ss.err[0] ? x->ss.err : strerror(errno));
		goto out;
	}
	if (take_ram(x, err, sizeof(err))) {
		/* A cancel while waiting for the VMM says so itself. */
		if (!session_failed(&x->ss))
			session_fail(&x->ss, "%s", err);
		goto done;
	}
	s->page_size = x->ram.page_size;
	x->prog = (struct progress){ .ss = &x->ss, .saving = true, .pages = x->ram.pages,
				     .page_size = x->ram.page_size, .done = &x->out.stored,
				     .requests = &x->requests };
	if (stop_protect_cont(x, s) == 0) {
		if (o->progress)
			progress_start(&x->prog);
		background_scan(x);
	}
	atomic_store(&x->bg_done, true);
	if (x->req_on)
		pthread_join(x->req_th, NULL);
	x->req_on = false;
	if (!session_failed(&x->ss) && claims_count(&x->cl) != x->ram.pages)
		session_fail(&x->ss, "%llu of %llu pages saved",
			     (unsigned long long)claims_count(&x->cl),
			     (unsigned long long)x->ram.pages);
	if (!session_failed(&x->ss)) {
		if (snap_out_finish(&x->out, err, sizeof(err)))
			session_fail(&x->ss, "%s", err);
		else
			ok = true;
	}
done:
	if (ok)
		atomic_store(&x->ss.finished, true);
	snap_out_abort(&x->out);	/* no-op once finished: the file stays incomplete */
	session_stop(&x->ss);
	progress_join(&x->prog);
	session_join_cancel(&x->ss);
	wp_ram_close(&x->ram, ok, x->ss.err);
	s->ok = ok;
	if (!ok)
		snprintf(s->error, sizeof(s->error), "%.200s%s", x->ss.err,
			 x->file_made ? "; the snapshot file is left marked incomplete" : "");
	s->pages = atomic_load(&x->out.stored);
	s->pages_bg = atomic_load(&x->pages_bg);
	s->pages_req = x->pages_req;
	s->pages_zero = atomic_load(&x->out.zero);
	s->requests = atomic_load(&x->requests);
	s->requests_bg = x->requests_bg;
	s->requests_lost = x->requests_lost;
	s->blocked_ns = x->blocked_ns;
	s->blocked_max_ns = x->blocked_max_ns;
	s->bytes_written = atomic_load(&x->out.bytes);
out:
	s->total_ns = now_ns() - t0;
	claims_free(&x->cl);
	free(x->done_ns);
	free(x->pend);
	session_destroy(&x->ss);
	free(x);
	return ok ? 0 : -1;
}
