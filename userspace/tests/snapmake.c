// SPDX-License-Identifier: GPL-2.0
/*
 * test-snapmake: write a umem snapshot file (common/snapfile.h) from a RAM
 * file, for the umemd --restore tests, without a live snapshot:
 *
 *   test-snapmake --ram FILE --out SNAP [--page-size 4k|2m]
 *                 [--device-state FILE] [--working-set FILE]
 *                 [--corrupt-page N] [--truncate BYTES] [--incomplete]
 *
 * One block, "pc.ram", the length of the RAM file.  Pages of zeros become
 * zero pages (holes), as a snapshot makes them.  --working-set FILE: page
 * numbers, one a line, added with snap_add_working_set().  For tests of a
 * damaged file: --corrupt-page N flips a byte in data page N's data,
 * --truncate BYTES cuts that many bytes off the end, --incomplete never
 * finishes the file (as a snapshot that was killed).
 *
 * Single-threaded; exit 0, 1 on failure (said on stderr), 2 bad usage.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "snapfile.h"
#include "util.h"

static int map_file(const char *path, const uint8_t **p, uint64_t *size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	void *m;

	if (fd < 0 || fstat(fd, &st) < 0) {
		log_msg("%s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	*size = (uint64_t)st.st_size;
	if (!*size) {
		*p = NULL;
		close(fd);
		return 0;
	}
	m = mmap(NULL, *size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (m == MAP_FAILED) {
		log_msg("%s: %s", path, strerror(errno));
		return -1;
	}
	*p = m;
	return 0;
}

/* Page numbers, one a line, into a malloc'd array. */
static int load_ws(const char *path, uint64_t **ws, uint64_t *n)
{
	FILE *f = fopen(path, "r");
	unsigned long long v;
	uint64_t cap = 1024;

	*n = 0;
	*ws = malloc(cap * sizeof(uint64_t));
	if (!f || !*ws) {
		log_msg("%s: %s", path, strerror(errno ? errno : ENOMEM));
		if (f)
			fclose(f);
		return -1;
	}
	while (fscanf(f, "%llu", &v) == 1) {
		if (*n == cap) {
			uint64_t *m = realloc(*ws, 2 * cap * sizeof(uint64_t));

			if (!m) {
				fclose(f);
				return -1;
			}
			*ws = m;
			cap *= 2;
		}
		(*ws)[(*n)++] = v;
	}
	fclose(f);
	return 0;
}

/* Flip one byte in page @page's data (the file is complete). */
static int corrupt(const char *path, uint32_t ps, uint64_t page)
{
	uint64_t off = (ps == SNAP_PAGE_4K ? 8192 : SNAP_PAGE_2M) + page * ps + 100;
	int fd = open(path, O_RDWR | O_CLOEXEC);
	uint8_t b;

	if (fd < 0 || pread(fd, &b, 1, (off_t)off) != 1) {
		log_msg("%s: reading page %llu: %s", path, (unsigned long long)page,
			strerror(errno));
		return -1;
	}
	b ^= 0x5a;
	if (pwrite(fd, &b, 1, (off_t)off) != 1 || close(fd)) {
		log_msg("%s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "ram", required_argument, NULL, 'r' },
		{ "out", required_argument, NULL, 'o' },
		{ "page-size", required_argument, NULL, 'z' },
		{ "device-state", required_argument, NULL, 'd' },
		{ "working-set", required_argument, NULL, 'w' },
		{ "corrupt-page", required_argument, NULL, 'c' },
		{ "truncate", required_argument, NULL, 't' },
		{ "incomplete", no_argument, NULL, 'i' },
		{ NULL, 0, NULL, 0 },
	};
	const char *ram = NULL, *out = NULL, *dev = NULL, *wsf = NULL;
	uint64_t corrupt_page = UINT64_MAX, cut = 0, size, dsize = 0;
	uint32_t ps = SNAP_PAGE_4K;
	bool incomplete = false;
	const uint8_t *mem, *dmem = NULL;
	struct snap_block blk;
	struct snap_writer *w;
	char err[256];
	int c, ret;

	log_set_prog("test-snapmake");
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'r': ram = optarg; break;
		case 'o': out = optarg; break;
		case 'd': dev = optarg; break;
		case 'w': wsf = optarg; break;
		case 'i': incomplete = true; break;
		case 'z':
			if (!strcmp(optarg, "4k"))
				ps = SNAP_PAGE_4K;
			else if (!strcmp(optarg, "2m"))
				ps = SNAP_PAGE_2M;
			else
				return 2;
			break;
		case 'c':
			if (parse_u64(optarg, &corrupt_page))
				return 2;
			break;
		case 't':
			if (parse_u64(optarg, &cut))
				return 2;
			break;
		default:
			return 2;
		}
	}
	if (!ram || !out || optind != argc) {
		log_msg("usage: test-snapmake --ram FILE --out SNAP [--page-size 4k|2m] [--device-state FILE] [--working-set FILE] [--corrupt-page N] [--truncate BYTES] [--incomplete]");
		return 2;
	}
	if (map_file(ram, &mem, &size) || (dev && map_file(dev, &dmem, &dsize)))
		return 1;
	if (!size || size % ps) {
		log_msg("%s: %llu bytes, not a multiple of the page size %u", ram,
			(unsigned long long)size, ps);
		return 1;
	}
	memset(&blk, 0, sizeof(blk));
	snprintf(blk.name, sizeof(blk.name), "pc.ram");
	blk.length = size;
	ret = snap_writer_create(out, ps, &blk, 1, &w, err, sizeof(err));
	if (ret) {
		log_msg("%s: %s", out, err);
		return 1;
	}
	for (uint64_t p = 0; p < size / ps; p++) {
		ret = snap_writer_put(w, p, mem + p * ps);
		if (ret) {
			log_msg("%s: page %llu: %s", out, (unsigned long long)p, strerror(-ret));
			snap_writer_abort(w);
			return 1;
		}
	}
	if (dsize && (ret = snap_writer_set_device_state(w, dmem, dsize))) {
		log_msg("%s: device state: %s", out, strerror(-ret));
		snap_writer_abort(w);
		return 1;
	}
	if (incomplete) {
		snap_writer_abort(w);
		return 0;
	}
	if (snap_writer_finish(w, err, sizeof(err))) {
		log_msg("%s: %s", out, err);
		return 1;
	}
	if (wsf) {
		uint64_t *ws, n;

		if (load_ws(wsf, &ws, &n))
			return 1;
		ret = snap_add_working_set(out, ws, n, err, sizeof(err));
		free(ws);
		if (ret) {
			log_msg("%s: working set: %s", out, err);
			return 1;
		}
	}
	if (corrupt_page != UINT64_MAX && corrupt(out, ps, corrupt_page))
		return 1;
	if (cut) {
		struct stat st;

		if (stat(out, &st) || truncate(out, st.st_size > (off_t)cut ?
					       st.st_size - (off_t)cut : 0)) {
			log_msg("%s: %s", out, strerror(errno));
			return 1;
		}
	}
	return 0;
}
