// SPDX-License-Identifier: GPL-2.0
/*
 * umem-workload: the program a real Linux guest runs while it migrates
 * (make demo-qemu GUEST=linux; Documentation/qemu.rst, "A real Linux
 * guest").  A static binary in the guest's initramfs, started by its
 * /init (busybox sh) after the virtio modules are loaded.
 *
 * Parameters come from the environment, i.e. from the guest kernel's
 * command line (the kernel hands unknown "name=value" words to init):
 *   mib=N     the test area, N MiB of anonymous memory (default 32)
 *   print=K   print every K-th pass (default 1)
 *   hwrng=0   do not read /dev/hwrng each pass (default: 64 bytes a pass,
 *             one request on the virtio-rng queue)
 *
 * The area is locked (mlock) and kept out of THP, so its pages stay where
 * they are.  Every 4 KiB page is filled from (page, generation) and its
 * checksum kept in a table of its own.  Then, forever, pass G re-reads
 * every page, compares its checksum with the table, and rewrites the page
 * with generation G + 1 (new checksum in the table).  After each pass it
 * prints on stdout (the serial console):
 *
 *   pass G: P pages, M mismatches, total T
 *
 * the same line as the bare-metal test guest (userspace/qemu/guest), so
 * qemu_migrate.py reads both alike; each bad page (at most 8 a pass) as
 *
 *   MISMATCH pass G page N: checksum 0xX want 0xY, word W: got 0xA want 0xB
 *
 * and after a pass with mismatches "FAIL: ..." and powers the guest off
 * (QEMU runs with -no-reboot, so it exits).
 *
 * It also prints where page 0 of the area is in guest-physical memory
 * (/proc/self/pagemap; init runs it as root), "workload: page 0 at
 * guest-physical 0xADDR", for qemu_migrate.py --test-corrupt.
 *
 * Single-threaded; no locks.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/reboot.h>
#include <unistd.h>

#define PAGE		4096u
#define WORDS		(PAGE / 8)
#define MAX_REPORT	8u

struct area {
	uint64_t *mem;		/* pages * WORDS words */
	uint64_t *sum;		/* one checksum per page */
	size_t pages;
	int rng_fd;		/* /dev/hwrng, or -1 */
};

static uint64_t mix(uint64_t x)
{
	x ^= x >> 31;
	x *= 0x7fb5d329728ea185ull;
	x ^= x >> 27;
	x *= 0x81dadef4bc2dd44dull;
	return x ^ (x >> 33);
}

/* The value of word @w of page @p in generation @g. */
static uint64_t word_of(size_t p, unsigned int w, uint64_t g)
{
	return mix(((uint64_t)p << 24) ^ (g << 44) ^ w) ^ g;
}

static uint64_t checksum(const uint64_t *page)
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (unsigned int w = 0; w < WORDS; w++)
		h = (h ^ page[w]) * 0x100000001b3ull;
	return h;
}

static void fill(struct area *a, size_t p, uint64_t g)
{
	uint64_t *page = a->mem + p * WORDS;

	for (unsigned int w = 0; w < WORDS; w++)
		page[w] = word_of(p, w, g);
	a->sum[p] = checksum(page);
}

/* Print the first word of page @p that differs from generation @g. */
static void report(const struct area *a, size_t p, uint64_t g, uint64_t got)
{
	const uint64_t *page = a->mem + p * WORDS;
	unsigned int w;

	for (w = 0; w < WORDS && page[w] == word_of(p, w, g); w++)
		;
	if (w == WORDS) {
		printf("MISMATCH pass %" PRIu64 " page %zu: checksum 0x%016" PRIx64
		       " want 0x%016" PRIx64 ", every word as written (the table is bad)\n",
		       g, p, got, a->sum[p]);
		return;
	}
	printf("MISMATCH pass %" PRIu64 " page %zu: checksum 0x%016" PRIx64 " want 0x%016"
	       PRIx64 ", word %u: got 0x%016" PRIx64 " want 0x%016" PRIx64 "\n",
	       g, p, got, a->sum[p], w, page[w], word_of(p, w, g));
}

static void rng_poke(struct area *a)
{
	unsigned char buf[64];

	if (a->rng_fd >= 0 && read(a->rng_fd, buf, sizeof(buf)) < 0 && errno != EINTR) {
		printf("workload: /dev/hwrng: %s (no more reads)\n", strerror(errno));
		close(a->rng_fd);
		a->rng_fd = -1;
	}
}

/* Guest-physical address of the page at @va, or 0 if unknown. */
static uint64_t phys_of(const void *va)
{
	uint64_t ent = 0;
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return 0;
	if (pread(fd, &ent, sizeof(ent), (off_t)((uintptr_t)va / PAGE * sizeof(ent))) !=
	    (ssize_t)sizeof(ent))
		ent = 0;
	close(fd);
	/* bit 63: present; bits 0-54: the page frame number */
	return (ent >> 63) ? (ent & ((1ull << 55) - 1)) * PAGE : 0;
}

static long env_long(const char *name, long def, long min)
{
	const char *s = getenv(name);
	char *end;
	long v;

	if (!s || !*s)
		return def;
	v = strtol(s, &end, 10);
	return (*end || v < min) ? def : v;
}

int main(void)
{
	long mib = env_long("mib", 32, 1), every = env_long("print", 1, 1);
	struct area a = { .rng_fd = -1 };
	uint64_t total = 0;
	size_t bytes;

	setvbuf(stdout, NULL, _IOLBF, 0);
	a.pages = (size_t)mib << 20 >> 12;
	bytes = a.pages * PAGE;
	a.mem = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	a.sum = calloc(a.pages, sizeof(*a.sum));
	if (a.mem == MAP_FAILED || !a.sum) {
		printf("FAIL: workload: cannot allocate %ld MiB: %s\n", mib, strerror(errno));
		return 1;
	}
	madvise(a.mem, bytes, MADV_NOHUGEPAGE);
	if (mlock(a.mem, bytes) || mlock(a.sum, a.pages * sizeof(*a.sum)))
		printf("workload: mlock: %s (pages may move)\n", strerror(errno));
	if (env_long("hwrng", 1, 0))
		a.rng_fd = open("/dev/hwrng", O_RDONLY | O_CLOEXEC);
	for (size_t p = 0; p < a.pages; p++)
		fill(&a, p, 1);
	printf("workload: %zu pages (%ld MiB) filled, generation 1; hwrng %s\n", a.pages, mib,
	       a.rng_fd >= 0 ? "read each pass" : "not read");
	printf("workload: page 0 at guest-physical 0x%" PRIx64 "\n", phys_of(a.mem));

	for (uint64_t g = 1;; g++) {
		unsigned int bad = 0;

		for (size_t p = 0; p < a.pages; p++) {
			uint64_t got = checksum(a.mem + p * WORDS);

			if (got != a.sum[p]) {
				if (bad < MAX_REPORT)
					report(&a, p, g, got);
				bad++;
			}
			fill(&a, p, g + 1);
		}
		rng_poke(&a);
		total += bad;
		if (bad || g % (uint64_t)every == 0)
			printf("pass %" PRIu64 ": %zu pages, %u mismatches, total %" PRIu64 "\n",
			       g, a.pages, bad, total);
		if (bad) {
			printf("FAIL: %u of %zu pages did not hold what was written in pass %" PRIu64
			       "; powering off\n", bad, a.pages, g);
			fflush(stdout);
			sync();
			reboot(RB_POWER_OFF);
			return 1;
		}
	}
}
