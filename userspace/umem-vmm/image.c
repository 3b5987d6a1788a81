// SPDX-License-Identifier: GPL-2.0
/*
 * umem-vmm --make-image, --check-image: guest RAM images whose page i
 * depends only on (seed, i) (common/pattern.h).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pattern.h"
#include "util.h"
#include "vmm.h"

int make_image(const char *path, uint64_t size, uint64_t seed)
{
	uint8_t *page = malloc(1 << 20);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	int ret = 0;

	if (fd < 0 || !page) {
		log_msg("%s: %s", path, strerror(errno));
		free(page);
		return 1;
	}
	for (uint64_t off = 0; off < size && !ret; off += 1 << 20) {
		uint64_t chunk = size - off < (1 << 20) ? size - off : (1 << 20);

		for (uint64_t p = 0; p < chunk / PATTERN_PAGE; p++)
			pattern_fill(seed, off / PATTERN_PAGE + p, page + p * PATTERN_PAGE);
		if (write(fd, page, chunk) != (ssize_t)chunk) {
			log_msg("writing %s: %s", path, strerror(errno));
			ret = 1;
		}
	}
	free(page);
	if (close(fd) < 0)
		ret = 1;
	return ret;
}

int check_image(const char *path, uint64_t seed)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	uint8_t *p;
	uint64_t bad = 0;

	if (fd < 0 || fstat(fd, &st) < 0) {
		log_msg("%s: %s", path, strerror(errno));
		return 1;
	}
	p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
	close(fd);
	if (p == MAP_FAILED)
		return 1;
	for (uint64_t i = 0; i < (uint64_t)st.st_size / PATTERN_PAGE; i++)
		if (!pattern_check(seed, i, p + i * PATTERN_PAGE)) {
			if (!bad)
				log_msg("page %llu does not match seed %llu",
					(unsigned long long)i, (unsigned long long)seed);
			bad++;
		}
	munmap(p, (size_t)st.st_size);
	return bad ? 1 : 0;
}
