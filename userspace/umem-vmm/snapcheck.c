// SPDX-License-Identifier: GPL-2.0
/*
 * umem-vmm --check-snapshot FILE --state-file S: a snapshot file (of
 * umemd --snapshot, common/snapfile.h) against the writer's state file
 * written at the pause where the snapshot was taken.  Every page is read
 * through snap_reader (checksums checked) into memory, then checked as
 * --check-state checks a RAM: each page must hold its generation of the
 * state; wrong pages are named with the generation expected and found.
 * The device state stored in the snapshot is reported too.  Main thread
 * only, then the checking threads of guest.c (check_state_mem()).
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "pattern.h"
#include "snapfile.h"
#include "util.h"
#include "vmm.h"

#define READ_RUN_PAGES	256

int check_snapshot(struct vmm *v, const char *snap_path)
{
	struct snap_reader *r = NULL;
	struct snap_info info;
	char err[256] = "";
	uint64_t size;
	int ret, rc = 1;

	ret = snap_reader_open(snap_path, &r, err, sizeof(err));
	if (ret) {
		log_msg("%s: %s", snap_path, err[0] ? err : "cannot open");
		return 1;
	}
	snap_reader_info(r, &info);
	if (info.page_size != PATTERN_PAGE) {
		log_msg("%s: %u-byte pages; the writer's RAM has 4 KiB pages", snap_path,
			info.page_size);
		goto out;
	}
	size = info.total_pages * PATTERN_PAGE;
	v->ram = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (v->ram == MAP_FAILED) {
		v->ram = NULL;
		log_msg("no memory for the %llu bytes of %s", (unsigned long long)size, snap_path);
		goto out;
	}
	v->size = size;
	for (uint64_t p = 0; p < info.total_pages; p += READ_RUN_PAGES) {
		uint64_t n = info.total_pages - p < READ_RUN_PAGES ? info.total_pages - p :
			     READ_RUN_PAGES;

		ret = snap_reader_read_run(r, p, n, v->ram + p * PATTERN_PAGE, err, sizeof(err));
		if (ret) {
			log_msg("%s: %s", snap_path, err);
			goto out;
		}
	}
	fprintf(stderr, "umem-vmm: %s: %llu pages, %llu bytes of device state\n", snap_path,
		(unsigned long long)info.total_pages, (unsigned long long)info.device_state_len);
	rc = check_state_mem(v, snap_path);
out:
	if (v->ram)
		munmap(v->ram, v->size);
	v->ram = NULL;
	snap_reader_close(r);
	return rc;
}
