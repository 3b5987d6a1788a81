// SPDX-License-Identifier: GPL-2.0
/* A snapshot file as a page sink: see snap_out.h. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "snap_out.h"

static bool all_zero(const uint8_t *p, uint32_t len)
{
	static const uint8_t zero[256];

	for (uint32_t off = 0; off < len; off += sizeof(zero))
		if (memcmp(p + off, zero, sizeof(zero)))
			return false;
	return true;
}

static int so_put(struct page_sink *k, uint64_t page, uint32_t count, const uint8_t *data,
		  uint64_t *stored)
{
	struct snap_out *o = container_of(k, struct snap_out, sink);
	uint64_t zero = 0, bytes = 0;
	int ret = 0;

	for (uint32_t i = 0; i < count && !ret; i++) {
		const uint8_t *p = data ? data + (uint64_t)i * o->page_size : NULL;

		if (!p || all_zero(p, o->page_size)) {
			ret = snap_writer_put_zero(o->w, page + i);
			zero += !ret;
		} else {
			ret = snap_writer_put(o->w, page + i, p);
			bytes += ret ? 0 : o->page_size;
		}
		if (!ret)
			*stored = atomic_fetch_add(&o->stored, 1) + 1;
	}
	atomic_fetch_add(&o->zero, zero);
	atomic_fetch_add(&o->bytes, bytes);
	return ret;
}

int snap_out_create(struct snap_out *o, const char *path, const char *block, uint64_t size,
		    uint32_t page_size, char *err, size_t errlen)
{
	struct snap_block b;
	char why[200] = "";
	int ret;

	memset(o, 0, sizeof(*o));
	o->sink.put = so_put;
	o->page_size = page_size;
	memset(&b, 0, sizeof(b));
	snprintf(b.name, sizeof(b.name), "%s", block);
	b.length = size;
	ret = snap_writer_create(path, page_size, &b, 1, &o->w, why, sizeof(why));
	if (ret) {
		snprintf(err, errlen, "creating the snapshot %s: %s", path,
			 why[0] ? why : strerror(-ret));
		o->w = NULL;
	}
	return ret;
}

int snap_out_set_device_state(struct snap_out *o, const void *buf, size_t len,
			      char *err, size_t errlen)
{
	int ret = snap_writer_set_device_state(o->w, buf, len);

	if (ret)
		snprintf(err, errlen, "writing the device state (%zu bytes) to the snapshot: %s",
			 len, strerror(-ret));
	else
		atomic_fetch_add(&o->bytes, len);
	return ret;
}

int snap_out_finish(struct snap_out *o, char *err, size_t errlen)
{
	char why[200] = "";
	int ret = snap_writer_finish(o->w, why, sizeof(why));

	o->w = NULL;
	if (ret)
		snprintf(err, errlen, "completing the snapshot: %s", why[0] ? why : strerror(-ret));
	return ret;
}

void snap_out_abort(struct snap_out *o)
{
	if (o->w)
		snap_writer_abort(o->w);
	o->w = NULL;
}
