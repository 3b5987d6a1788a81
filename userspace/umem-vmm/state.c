// SPDX-License-Identifier: GPL-2.0
/* The writer's state file (state.h). */
#define _GNU_SOURCE
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crc32c.h"
#include "pattern.h"
#include "state.h"
#include "util.h"

_Static_assert(sizeof(struct vmm_state_hdr) == 48, "the state header is 48 bytes");
_Static_assert(offsetof(struct vmm_state_hdr, table_crc) == 44, "table_crc ends the header");

int state_save(const char *path, const struct vmm_state *st)
{
	struct vmm_state_hdr h;
	char *tmp;
	int ret = 0;
	FILE *f;

	if (asprintf(&tmp, "%s.tmp", path) < 0)
		return -ENOMEM;
	memset(&h, 0, sizeof(h));
	memcpy(h.magic, VMM_STATE_MAGIC, sizeof(h.magic));
	h.version = VMM_STATE_VERSION;
	h.header_size = sizeof(h);
	h.seed = st->seed;
	h.size = st->size;
	h.pages = st->pages;
	h.page_size = PATTERN_PAGE;
	h.table_crc = crc32c(0, st->gen, st->pages * 8);
	f = fopen(tmp, "we");
	if (!f) {
		ret = -errno;
		log_msg("state file %s: %s", tmp, strerror(-ret));
		free(tmp);
		return ret;
	}
	errno = 0;	/* a short fwrite() need not set it */
	if (fwrite(&h, sizeof(h), 1, f) != 1 || fwrite(st->gen, 8, st->pages, f) != st->pages ||
	    fflush(f) || fsync(fileno(f)) < 0)
		ret = errno ? -errno : -EIO;
	if (fclose(f) && !ret)
		ret = errno ? -errno : -EIO;
	if (!ret && rename(tmp, path) < 0)
		ret = -errno;
	if (ret) {
		log_msg("writing the state file %s: %s", path, strerror(-ret));
		unlink(tmp);
	}
	free(tmp);
	return ret;
}

/* Why @h cannot be the header of a @flen-byte state file, or NULL. */
static const char *bad_header(const struct vmm_state_hdr *h, uint64_t flen)
{
	if (memcmp(h->magic, VMM_STATE_MAGIC, sizeof(h->magic)))
		return "not a umem-vmm state file (bad magic)";
	if (h->version != VMM_STATE_VERSION)
		return "a state file version this umem-vmm does not read";
	if (h->header_size != sizeof(*h) || h->page_size != PATTERN_PAGE)
		return "unknown header size or page size";
	if (!h->pages || h->pages > (UINT64_MAX - sizeof(*h)) / 8 / PATTERN_PAGE ||
	    h->size != h->pages * PATTERN_PAGE)
		return "size and page count disagree";
	if (flen != sizeof(*h) + h->pages * 8)
		return "the file's length is not that of its table (truncated?)";
	return NULL;
}

int state_load(const char *path, struct vmm_state *st)
{
	struct vmm_state_hdr h;
	struct stat sb;
	const char *why = NULL;
	FILE *f;

	memset(st, 0, sizeof(*st));
	f = fopen(path, "re");
	if (!f || fstat(fileno(f), &sb) < 0) {
		int ret = -errno;

		log_msg("state file %s: %s", path, strerror(-ret));
		if (f)
			fclose(f);
		return ret;
	}
	if (fread(&h, sizeof(h), 1, f) != 1)
		why = "shorter than its header";
	else
		why = bad_header(&h, (uint64_t)sb.st_size);
	if (!why) {
		st->gen = malloc(h.pages * 8);
		if (!st->gen)
			why = "no memory for its table";
		else if (fread(st->gen, 8, h.pages, f) != h.pages)
			why = "cannot read its table";
		else if (crc32c(0, st->gen, h.pages * 8) != h.table_crc)
			why = "the table's CRC-32C is wrong";
	}
	fclose(f);
	if (why) {
		log_msg("state file %s: %s", path, why);
		free(st->gen);
		st->gen = NULL;
		return -EINVAL;
	}
	st->seed = h.seed;
	st->size = h.size;
	st->pages = h.pages;
	return 0;
}
