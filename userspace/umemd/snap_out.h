/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A snapshot file as a page sink (pages.h), for umemd --snapshot: the
 * common/snapfile.h writer behind page_sink.put(), counting what it
 * stored: pages, zero pages (recorded as holes, never written), bytes
 * written.  The caller claims each page first (claims.h), so every page
 * is put once.
 *
 * Threads: snap_out_sink.put() on any number of threads at once (the
 * writer allows it; the counters are atomics); snap_out_create(),
 * snap_out_set_device_state(), snap_out_finish() and snap_out_abort()
 * on the main thread with no put in flight.
 */
#ifndef UMEMD_SNAP_OUT_H
#define UMEMD_SNAP_OUT_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "pages.h"
#include "snapfile.h"

struct snap_out {
	struct page_sink sink;
	struct snap_writer *w;
	uint32_t page_size;
	atomic_uint_fast64_t stored, zero, bytes;
};

/*
 * Create @path for @size bytes of @page_size pages, one RAM block named
 * @block.  0, or -errno with @err.
 */
int snap_out_create(struct snap_out *o, const char *path, const char *block, uint64_t size,
		    uint32_t page_size, char *err, size_t errlen);
int snap_out_set_device_state(struct snap_out *o, const void *buf, size_t len,
			      char *err, size_t errlen);
/* Complete the file; the writer is released either way.  0 or -errno with @err. */
int snap_out_finish(struct snap_out *o, char *err, size_t errlen);
/* Give up: the file stays marked incomplete.  No-op once finished. */
void snap_out_abort(struct snap_out *o);
#endif
