// SPDX-License-Identifier: GPL-2.0
/*
 * umemd --restore FILE: a guest's RAM from a snapshot file into a libumem
 * region its VMM maps over --vmm-socket or (umem) by path.
 *
 * Numbered steps (who does what):
 *   1. umemd opens FILE (snap_reader_open()) and reads its device state
 *      (checksum checked): a file that is not a complete, intact snapshot
 *      is refused here, before anything starts.
 *   2. umemd creates the region in the file's page size and opens the VMM
 *      socket; uffd backends wait here for the VMM's userfaultfd.
 *   3. The device state is written to --device-state-out.
 *   4. Once the VMM has attached (uffd: in step 2; umem: when it maps
 *      the region), the request thread and the background stream start
 *      (snap_in.c), and the clock of run_ms and total_ms, so that both
 *      mean the same on every backend.  Lazy (the default): RUN at once;
 *      the guest runs while its pages come in.  --eager: RUN only once
 *      every page is in (the baseline).
 *   5. Every page present: by path, umemd holds the region until a VMM
 *      has mapped the node (--vmm-wait; vmm_hold()); DONE to the VMM;
 *      with --record-working-set the
 *      pages first requested by faults, in that order, are added to FILE
 *      (snap_add_working_set(), crash-safe); exit 0.
 *   On any failure (a page whose checksum fails, a failed install,
 *   SIGTERM): FAIL to the VMM, then the region is closed so no faulting
 *   task waits forever and none sees wrong data (umem: SIGBUS; uffd: the
 *   VMM was told FAIL first).
 *
 * Threads: main (these steps), and those of restore.h.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "devstate.h"
#include "restore.h"
#include "umemd.h"
#include "util.h"
#include "vmmsock.h"

struct restore {
	struct session ss;
	struct region_sink rs;
	struct snap_in si;
};

/* session_fail() and session_stop(): wake the request queue and the wait
 * for the VMM. */
static void restore_wake(void *arg)
{
	struct restore *x = arg;

	si_wake(&x->si);
	vmm_link_wake(&x->rs);
}

/*
 * Step 1: the device state read whole and its checksum checked, into
 * *@buf (malloc'd) and *@len.  0, or -1 with @err.
 */
static int device_state_load(struct snap_reader *r, const char *path, uint8_t **buf,
			     uint64_t *len, char *err, size_t errlen)
{
	struct snap_info info;
	char why[160];
	int64_t n;

	snap_reader_info(r, &info);
	*buf = malloc(info.device_state_len ? info.device_state_len : 1);
	if (!*buf) {
		snprintf(err, errlen, "out of memory for %llu bytes of device state",
			 (unsigned long long)info.device_state_len);
		return -1;
	}
	n = snap_reader_read_device_state(r, *buf, info.device_state_len ? info.device_state_len : 1,
					  why, sizeof(why));
	if (n < 0) {
		snprintf(err, errlen, "%s: %s", path, why);
		return -1;
	}
	*len = (uint64_t)n;
	return 0;
}

/* Wait until every page is in: true, or false once the session stopped. */
static bool wait_complete(struct restore *x)
{
	struct pollfd p[2] = {
		{ .fd = x->si.done_fd, .events = POLLIN },
		{ .fd = x->ss.stop_fd, .events = POLLIN },
	};

	while (!atomic_load(&x->ss.stopping)) {
		if (poll(p, 2, 200) < 0 && errno != EINTR)
			return false;
		if (p[0].revents)
			return !atomic_load(&x->ss.stopping);
		if (p[1].revents)
			return false;
	}
	return false;
}

static void run(struct restore *x, const struct umemd_opts *o, uint64_t *t_run)
{
	*t_run = now_ns();
	if (o->verbose)
		log_msg("RUN: the guest runs here now");
	vmm_notify(&x->rs, VMM_RUN, NULL);
}

/* Step 5: the pages first requested, into the file.  0, or -1 with @err. */
static int record_working_set(struct restore *x, const char *path, uint64_t *len,
			      char *err, size_t errlen)
{
	uint64_t *ws, n;
	char why[192];
	int ret;

	pthread_mutex_lock(&x->si.wlock);
	n = x->si.nwset;
	ws = malloc((n ? n : 1) * sizeof(uint64_t));
	if (ws)
		memcpy(ws, x->si.wset, n * sizeof(uint64_t));
	pthread_mutex_unlock(&x->si.wlock);
	if (!ws) {
		snprintf(err, errlen, "recording the working set: out of memory");
		return -1;
	}
	*len = n;
	if (!n) {
		log_msg("no page was requested: the working set of %s is left as it was", path);
		free(ws);
		return 0;
	}
	ret = snap_add_working_set(path, ws, n, why, sizeof(why));
	free(ws);
	if (ret) {
		snprintf(err, errlen, "recording the working set in %s: %s", path, why);
		return -1;
	}
	return 0;
}

int umemd_restore(const struct umemd_opts *o, struct umemd_summary *sum)
{
	struct restore *x = calloc(1, sizeof(*x));
	struct snap_reader *r = NULL;
	uint64_t t0 = now_ns(), t_run = 0, t_done = 0, ds_len = 0;
	uint8_t *ds = NULL;
	char err[200];
	bool complete = false;
	int ret;

	sum->role = "restore";
	sum->backend = o->backend;
	sum->eager = o->eager;
	if (!x) {
		snprintf(sum->error, sizeof(sum->error), "out of memory");
		return -1;
	}
	/* Step 1: refused before anything starts. */
	ret = snap_reader_open(o->restore, &r, err, sizeof(err));
	if (ret) {
		snprintf(sum->error, sizeof(sum->error), "%s: %s", o->restore, err);
		free(x);
		return -1;
	}
	if (device_state_load(r, o->restore, &ds, &ds_len, sum->error, sizeof(sum->error))) {
		free(ds);
		snap_reader_close(r);
		free(x);
		return -1;
	}
	sum->device_state_bytes = ds_len;
	session_init(&x->ss, o->cancel_fd, restore_wake, x);
	si_init(&x->si, &x->ss, r, o->restore);
	rs_init(&x->rs, &x->ss, o, &x->si.prov);
	sum->pages = x->si.info.total_pages;
	sum->page_size = x->si.info.page_size;
	if (x->ss.stop_fd < 0) {
		session_fail(&x->ss, "eventfd: %s", strerror(errno));
		goto out;
	}
	if (session_watch_cancel(&x->ss))
		goto out;
	if (o->verbose)
		log_msg("%s: %llu pages of %u bytes, %llu bytes of device state, working set of %llu pages",
			o->restore, (unsigned long long)x->si.info.total_pages,
			x->si.info.page_size, (unsigned long long)x->si.info.device_state_len,
			(unsigned long long)x->si.info.working_set_len);
	/* Step 2. */
	if (rs_open(&x->rs, x->si.info.total_pages, x->si.info.page_size))
		goto out;
	if (si_open(&x->si, &x->rs.sink, !o->no_prefetch, o->record_ws, o->throttle_pages))
		goto out;
	/* Step 3. */
	if (o->device_state_out &&
	    devstate_write(o->device_state_out, ds, ds_len, o->verbose, err, sizeof(err))) {
		session_fail(&x->ss, "%s", err);
		goto out;
	}
	/* Step 4. */
	if (rs_start_faults(&x->rs) || vmm_wait_attached(&x->rs))
		goto out;
	t0 = now_ns();
	if (si_start(&x->si))
		goto out;
	if (!o->eager)
		run(x, o, &t_run);
	if (!wait_complete(x))
		goto out;
	t_done = now_ns();
	if (o->eager)
		run(x, o, &t_run);
	/* By path, the VMM may not have mapped the node yet: hold it. */
	ret = vmm_hold(&x->rs, "exiting");
	if (ret == -ETIMEDOUT)
		session_fail(&x->ss, "no VMM took the region within --vmm-wait %d s: its RAM is dropped",
			     o->vmm_wait_ms / 1000);
	if (ret)
		goto out;
	/* Step 5. */
	atomic_store(&x->ss.finished, true);
	complete = true;
	vmm_notify(&x->rs, VMM_DONE, "all pages present");
	if (o->verbose)
		log_msg("all %llu pages present", (unsigned long long)x->si.info.total_pages);
out:
	if (atomic_load(&x->ss.failed))
		vmm_fail(&x->rs, x->ss.err);
	session_stop(&x->ss);
	session_join_cancel(&x->ss);
	si_join(&x->si);
	rs_join(&x->rs);
	sum->ok = complete && !atomic_load(&x->ss.failed);
	if (sum->ok && o->record_ws) {
		sum->ws_recording = true;
		if (record_working_set(x, o->restore, &sum->ws_recorded, x->ss.err,
				       sizeof(x->ss.err)))
			sum->ok = false;
	}
	if (!sum->ok && !x->ss.err[0])
		snprintf(x->ss.err, sizeof(x->ss.err), "restore did not complete");
	snprintf(sum->error, sizeof(sum->error), "%s", sum->ok ? "" : x->ss.err);
	sum->total_ns = (t_done ? t_done : now_ns()) - t0;
	sum->run_ns = t_run ? t_run - t0 : 0;
	if (t_run && t_done > t_run)
		sum->postcopy_ns = t_done - t_run;
	sum->pages_prefetched = atomic_load(&x->si.prefetched);
	/* The summary's bytes: page data read from the file (zero pages cost
	 * none). */
	sum->bytes_main = atomic_load(&x->si.bytes_read);
	sum->ws_len = x->si.info.working_set_len;
	rs_summary(&x->rs, sum);
	rs_close(&x->rs);
	si_free(&x->si);
	session_destroy(&x->ss);
	snap_reader_close(r);
	free(ds);
	free(x);
	return sum->ok ? 0 : -1;
}
