// SPDX-License-Identifier: GPL-2.0
/*
 * libFuzzer target for the snapshot reader: the input is a whole file,
 * opened with snap_reader_open(); if it opens, every page is read (one at
 * a time and in one run), then the device state, then verify_all, then a
 * working set is added and the file opened again.  snapfile.c is built
 * with FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION, so checksums always
 * match and the parsing behind them is reached.  Build: make -C userspace
 * fuzz; seed: test-snapfile seed FILE.
 */
#define _GNU_SOURCE
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "snapfile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void read_all(const char *path, size_t size)
{
	struct snap_reader *r;
	struct snap_info info;
	uint8_t *buf;
	char err[256];

	if (snap_reader_open(path, &r, err, sizeof(err)))
		return;
	snap_reader_info(r, &info);
	/* The RAM area lies inside the file: no page past its end. */
	if (info.total_pages * info.page_size > size)
		__builtin_trap();
	buf = malloc(info.total_pages * info.page_size + info.device_state_len + 1);
	for (uint64_t p = 0; p < info.total_pages; p++) {
		if (snap_reader_page_state(r, p) != SNAP_PAGE_DATA &&
		    snap_reader_page_state(r, p) != SNAP_PAGE_ZERO)
			__builtin_trap();
		snap_reader_read(r, p, buf, err, sizeof(err));
	}
	snap_reader_read_run(r, 0, info.total_pages, buf, err, sizeof(err));
	snap_reader_read_device_state(r, buf, info.device_state_len, err, sizeof(err));
	snap_reader_verify_all(r, err, sizeof(err));
	for (uint64_t i = 0; i < info.working_set_len; i++)
		if (snap_reader_working_set(r)[i] >= info.total_pages)
			__builtin_trap();
	for (unsigned int i = 0; i < info.nblocks; i++)
		if (!snap_reader_blocks(r)[i].name[0])
			__builtin_trap();
	free(buf);
	snap_reader_close(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint64_t ws[2] = { 0, 1 };
	char path[64], err[256];
	int fd = memfd_create("fuzz-snapfile", MFD_CLOEXEC);

	if (fd < 0)
		return 0;
	if (write(fd, data, size) == (ssize_t)size) {
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		read_all(path, size);
		if (!snap_add_working_set(path, ws, 2, err, sizeof(err)))
			read_all(path, size);
	}
	close(fd);
	return 0;
}
