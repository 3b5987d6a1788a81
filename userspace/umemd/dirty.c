// SPDX-License-Identifier: GPL-2.0
/*
 * umemd --outgoing --pid: dirty tracking of the running VMM for precopy
 * (dirty.h), called by precopy.c on the main thread between rounds:
 * soft-dirty bits (below), or with --dirty hash (or where the kernel has
 * no soft-dirty) a 64-bit hash of every page as sent, compared with the
 * page now.  The VMM is frozen around each read of its soft-dirty bits
 * (vmm_proc.c).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "dirty.h"
#include "source.h"
#include "util.h"

/* ---- dirty tracking of a running VMM: soft-dirty bits ----
 *
 * Writing "4" to /proc/PID/clear_refs clears the soft-dirty bit of every
 * PTE of PID (and write-protects them); a later write sets it again, and
 * /proc/PID/pagemap reports it as bit 55.  We find PID's shared mappings
 * of our RAM files in /proc/PID/maps, by device and inode.
 *
 * Reading the bits and clearing them are two system calls: a write that
 * lands between them would be cleared without being seen.  So each round
 * freezes the VMM (SIGSTOP, wait until every thread is stopped) around
 * the read + clear, then lets it go (SIGCONT) -- as CRIU does.
 */
#define PM_SOFT_DIRTY	(1ULL << 55)

struct dvma {
	uint64_t start, end;	/* PID's addresses */
	uint64_t page;		/* global page of start */
};

int write_clear_refs(int pid)
{
	char path[64];
	int fd, ret = 0;

	snprintf(path, sizeof(path), "/proc/%d/clear_refs", pid);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (write(fd, "4", 1) != 1)
		ret = -errno;
	close(fd);
	return ret;
}

int umemd_probe_soft_dirty(char *why, size_t len)
{
	long psz = sysconf(_SC_PAGESIZE);
	volatile uint8_t *p = mmap(NULL, (size_t)psz, PROT_READ | PROT_WRITE,
				   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint64_t e0 = 0, e1 = 0;
	int fd, ret = 0;

	if (p == MAP_FAILED) {
		snprintf(why, len, "mmap: %s", strerror(errno));
		return -ENOMEM;
	}
	p[0] = 1;
	fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		snprintf(why, len, "/proc/self/pagemap: %s", strerror(errno));
		goto out;
	}
	ret = write_clear_refs(getpid());
	if (ret) {
		snprintf(why, len, "writing 4 to /proc/self/clear_refs: %s", strerror(-ret));
		goto out;
	}
	if (pread(fd, &e0, 8, (off_t)((uintptr_t)p / (uint64_t)psz * 8)) != 8)
		e0 = ~0ULL;
	p[0] = 2;
	if (pread(fd, &e1, 8, (off_t)((uintptr_t)p / (uint64_t)psz * 8)) != 8)
		e1 = 0;
	if ((e0 & PM_SOFT_DIRTY) || !(e1 & PM_SOFT_DIRTY)) {
		ret = -EOPNOTSUPP;
		snprintf(why, len, "pagemap bit 55 does not track writes (kernel without CONFIG_MEM_SOFT_DIRTY?)");
	}
out:
	if (fd >= 0)
		close(fd);
	munmap((void *)p, (size_t)psz);
	return ret;
}

void dirty_close(struct dirty *t)
{
	if (t->pagemap_fd >= 0)
		close(t->pagemap_fd);
	t->pagemap_fd = -1;
	free(t->v);
	t->v = NULL;
	t->nv = 0;
}

/* Find PID's writable shared mappings of the RAM files. */
static int dirty_open(struct source *s, struct dirty *t)
{
	const struct umemd_opts *o = s->o;
	struct stat st[UMEMD_MAX_RAM_FILES];
	char path[64], line[4096];
	FILE *f;
	size_t cap = 0;

	t->pid = o->pid;
	t->pagemap_fd = -1;
	for (int i = 0; i < o->nram; i++)
		if (stat(o->ram[i], &st[i]) < 0) {
			session_fail(&s->ss, "%s: %s", o->ram[i], strerror(errno));
			return -1;
		}
	snprintf(path, sizeof(path), "/proc/%d/maps", t->pid);
	f = fopen(path, "re");
	if (!f) {
		session_fail(&s->ss, "--pid %d: %s: %s", t->pid, path, strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof(line), f)) {
		unsigned long long start, end, off, ino;
		unsigned int maj, min;
		char perms[8];

		if (sscanf(line, "%llx-%llx %7s %llx %x:%x %llu", &start, &end,
			   perms, &off, &maj, &min, &ino) != 7)
			continue;
		if (perms[1] != 'w' || perms[3] != 's')
			continue;
		for (int i = 0; i < o->nram; i++) {
			const struct proto_block *b = &s->ram.lay.blocks[i];
			uint64_t len = end - start;

			if (ino != (unsigned long long)st[i].st_ino ||
			    maj != major(st[i].st_dev) || min != minor(st[i].st_dev))
				continue;
			if (off % PROTO_PAGE_SIZE || off >= b->length)
				continue;
			if (len > b->length - off)
				len = b->length - off;
			if (t->nv == cap) {
				struct dvma *nv = realloc(t->v, (cap ? cap * 2 : 8) * sizeof(*nv));

				if (!nv) {
					fclose(f);
					session_fail(&s->ss, "out of memory");
					return -1;
				}
				t->v = nv;
				cap = cap ? cap * 2 : 8;
			}
			t->v[t->nv].start = start;
			t->v[t->nv].end = start + len;
			t->v[t->nv].page = b->base_page + off / PROTO_PAGE_SIZE;
			t->nv++;
		}
	}
	fclose(f);
	if (!t->nv) {
		session_fail(&s->ss, "--pid %d has no writable shared mapping of %s%s: nothing to track",
			     t->pid, o->ram[0], o->nram > 1 ? " (or the other --ram files)" : "");
		return -1;
	}
	snprintf(path, sizeof(path), "/proc/%d/pagemap", t->pid);
	t->pagemap_fd = open(path, O_RDONLY | O_CLOEXEC);
	if (t->pagemap_fd < 0) {
		session_fail(&s->ss, "%s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

/* OR the soft-dirty pages into @map (one byte per page); count new ones. */
int dirty_read(struct source *s, struct dirty *t, uint8_t *map, uint64_t *n)
{
	uint64_t buf[4096];

	for (size_t i = 0; i < t->nv; i++) {
		uint64_t npg = (t->v[i].end - t->v[i].start) / PROTO_PAGE_SIZE;

		for (uint64_t done = 0; done < npg;) {
			uint64_t want = npg - done < 4096 ? npg - done : 4096;
			off_t at = (off_t)((t->v[i].start / PROTO_PAGE_SIZE + done) * 8);
			ssize_t got = pread(t->pagemap_fd, buf, want * 8, at);

			if (got <= 0 || got % 8) {
				session_fail(&s->ss, "reading /proc/%d/pagemap: %s", t->pid,
					     got < 0 ? strerror(errno) : "short read (did the VMM exit?)");
				return -1;
			}
			for (uint64_t k = 0; k < (uint64_t)got / 8; k++) {
				uint64_t pg = t->v[i].page + done + k;

				if ((buf[k] & PM_SOFT_DIRTY) && pg < s->ram.pages && !map[pg]) {
					map[pg] = 1;
					(*n)++;
				}
			}
			done += (uint64_t)got / 8;
		}
	}
	return 0;
}

/* ---- --dirty hash; one round of either method; picking one ---- */

/* --dirty hash: a sent page whose content no longer matches what was sent. */
void hash_scan(struct source *s, uint8_t *map, uint64_t *n)
{
	for (uint64_t p = 0; p < s->ram.pages; p++)
		if (claims_taken(&s->sent, p) &&
		    !map[p] && page_hash(ram_page(&s->ram, p)) != s->hash[p]) {
			map[p] = 1;
			(*n)++;
		}
}

/* Freeze, read and clear the soft-dirty bits, thaw. */
int dirty_round(struct source *s, struct dirty *t, uint8_t *map, uint64_t *n)
{
	uint64_t t0 = now_ns(), dt;
	char msg[sizeof(s->ss.err)];
	int ret;

	if (s->hash) {
		hash_scan(s, map, n);
		return 0;
	}
	if (vmm_freeze(t->pid, msg, sizeof(msg))) {
		session_fail(&s->ss, "%s", msg);
		return -1;
	}
	ret = dirty_read(s, t, map, n);
	if (!ret) {
		ret = write_clear_refs(t->pid);
		if (ret)
			session_fail(&s->ss, "clearing soft-dirty bits of pid %d: %s", t->pid, strerror(-ret));
	}
	vmm_thaw(t->pid);
	dt = now_ns() - t0;
	if (dt > s->sum->freeze_max_ns)
		s->sum->freeze_max_ns = dt;
	return ret ? -1 : 0;
}

/*
 * --pid: pick the dirty tracking method and find the VMM's mappings,
 * before any connection is made (a bad --pid fails fast).
 */
int precopy_setup(struct source *s, struct dirty *t)
{
	struct umemd_summary *sum = s->sum;
	const char *m = s->o->dirty ? s->o->dirty : "auto";
	char err[160];

	t->pid = s->o->pid;
	if (kill(t->pid, 0) < 0) {
		session_fail(&s->ss, "--pid %d: %s", t->pid, strerror(errno));
		return -1;
	}
	if (strcmp(m, "hash") && umemd_probe_soft_dirty(err, sizeof(err))) {
		if (!strcmp(m, "soft-dirty")) {
			session_fail(&s->ss, "--dirty soft-dirty: %s", err);
			return -1;
		}
		log_msg("soft-dirty unavailable (%s): tracking dirty pages by content hash", err);
		m = "hash";
	}
	sum->precopy = true;
	if (!strcmp(m, "hash")) {
		s->hash = calloc(s->ram.pages, sizeof(uint64_t));
		if (!s->hash) {
			session_fail(&s->ss, "out of memory");
			return -1;
		}
		sum->dirty_method = "content hash (a 64-bit hash per page, every page re-read each round)";
		return 0;
	}
	if (dirty_open(s, t))
		return -1;
	sum->dirty_method = "soft-dirty (/proc/PID/clear_refs 4, /proc/PID/pagemap bit 55)";
	return 0;
}

