// SPDX-License-Identifier: GPL-2.0
/* The guest's RAM files as a page source: see ram.h. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ram.h"

int ram_open(struct ram *r, const char *const *files, int n, uint32_t page_size,
	     char *err, size_t errlen)
{
	uint64_t total = 0;
	char lerr[160];

	memset(r, 0, sizeof(*r));
	r->lay.page_size = page_size;
	r->lay.nblocks = (uint32_t)n;
	for (int i = 0; i < n; i++) {
		struct proto_block *b = &r->lay.blocks[i];
		const char *base = strrchr(files[i], '/');
		struct stat st;
		void *p;
		int fd = open(files[i], O_RDONLY | O_CLOEXEC), ret;

		if (fd < 0 || fstat(fd, &st) < 0) {
			ret = -errno;
			snprintf(err, errlen, "%s: %s", files[i], strerror(errno));
			if (fd >= 0)
				close(fd);
			return ret;
		}
		if (!st.st_size || st.st_size % page_size) {
			snprintf(err, errlen, "%s: size %lld is not a non-zero multiple of the page size %u",
				 files[i], (long long)st.st_size, page_size);
			close(fd);
			return -EINVAL;
		}
		p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
		close(fd);
		if (p == MAP_FAILED) {
			ret = -errno;
			snprintf(err, errlen, "mmap %s: %s", files[i], strerror(errno));
			return ret;
		}
		madvise(p, (size_t)st.st_size, MADV_SEQUENTIAL);
		r->blk[i] = p;
		snprintf(b->name, sizeof(b->name), "%s", base ? base + 1 : files[i]);
		for (char *c = b->name; *c; c++)
			if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-:/", *c))
				*c = '_';
		b->length = (uint64_t)st.st_size;
		total += b->length;
	}
	if (proto_layout_finish(&r->lay, total, lerr, sizeof(lerr))) {
		snprintf(err, errlen, "RAM layout: %s", lerr);
		return -EINVAL;
	}
	r->pages = r->lay.total_pages;
	return 0;
}

void ram_close(struct ram *r)
{
	for (uint32_t i = 0; i < r->lay.nblocks; i++)
		if (r->blk[i])
			munmap((void *)r->blk[i], r->lay.blocks[i].length);
	memset(r->blk, 0, sizeof(r->blk));
}

bool ram_zero(const struct ram *r, const uint8_t *p)
{
	static const uint8_t zero[PROTO_PAGE_SIZE];

	for (uint32_t off = 0; off < r->lay.page_size; off += PROTO_PAGE_SIZE)
		if (memcmp(p + off, zero, PROTO_PAGE_SIZE))
			return false;
	return true;
}
