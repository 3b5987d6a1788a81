// SPDX-License-Identifier: GPL-2.0
/*
 * Tests of the snapshot file (common/snapfile.[ch], Documentation/
 * snapshot.rst) and of CRC-32C (common/crc32c.[ch]), TAP.
 *
 *   test-snapfile              all tests, files in $TMPDIR (default /tmp)
 *   test-snapfile seed FILE    write a small valid snapshot (fuzz corpus)
 *
 * The tests that damage a file find what to damage through the offsets of
 * the specification, not through the library: they check the spec too.
 */
#define _GNU_SOURCE
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "crc32c.h"
#include "pattern.h"
#include "snapfile.h"

/* From the specification. */
#define HDR_B		4096	/* header copy B; copy A at 0 */
#define HDR_SEQ		16
#define HDR_VERSION	8
#define HDR_PAGE_SIZE	24
#define HDR_TRAILER	48
#define HDR_CRC		124
#define TRL_SIZE	128
#define BLOCK_REC	72

static int passed, failed, skipped;
static char dir[256];
static char err[512];

__attribute__((format(printf, 2, 3)))
static bool ok(bool cond, const char *fmt, ...)
{
	va_list ap;

	if (cond)
		passed++;
	else
		failed++;
	printf("%s %d - ", cond ? "ok" : "not ok", passed + failed + skipped);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	return cond;
}

__attribute__((format(printf, 1, 2)))
static void skip(const char *fmt, ...)
{
	va_list ap;

	skipped++;
	printf("ok %d - # SKIP ", passed + failed + skipped);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
}

static const char *tpath(const char *name)
{
	static char p[4][320];
	static int n;
	char *s = p[n++ % 4];

	snprintf(s, sizeof(p[0]), "%s/%s", dir, name);
	return s;
}

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* Page content: pattern.h's 4 KiB pages, 512 of them for a 2 MiB page. */
static void fill(uint64_t seed, uint32_t ps, uint64_t page, uint8_t *buf)
{
	for (uint32_t k = 0; k < ps / PATTERN_PAGE; k++)
		pattern_fill(seed, page * (ps / PATTERN_PAGE) + k, buf + k * PATTERN_PAGE);
}

static bool is_zero(const uint8_t *p, size_t n)
{
	return !n || (!p[0] && !memcmp(p, p + 1, n - 1));
}

/* ---- a snapshot made the way a live snapshot makes it ---- */

struct spec {
	uint32_t ps;
	unsigned int nblocks;
	struct snap_block blocks[4];
	uint64_t seed;
	size_t devlen;
};

static uint64_t total_of(const struct spec *s)
{
	uint64_t t = 0;

	for (unsigned int i = 0; i < s->nblocks; i++)
		t += s->blocks[i].length / s->ps;
	return t;
}

static void devstate(const struct spec *s, uint8_t *buf)
{
	uint64_t x = s->seed * 7 + 1;

	for (size_t i = 0; i < s->devlen; i++)
		buf[i] = (uint8_t)rnd(&x);
}

struct putter {
	struct snap_writer *w;
	const struct spec *s;
	const uint64_t *order;
	uint64_t n, first, step;
	int errors;
};

/* Puts order[first], order[first + step], ...; pattern zero pages go
 * through put_zero one time in two, put (detected) the other. */
static void *putter(void *arg)
{
	struct putter *p = arg;
	uint8_t *buf = malloc(p->s->ps);

	for (uint64_t i = p->first; i < p->n; i += p->step) {
		uint64_t page = p->order[i];

		fill(p->s->seed, p->s->ps, page, buf);
		if (is_zero(buf, p->s->ps) && page % 2)
			p->errors += snap_writer_put_zero(p->w, page) != 0;
		else
			p->errors += snap_writer_put(p->w, page, buf) != 0;
	}
	free(buf);
	return NULL;
}

static uint64_t *shuffled(uint64_t n, uint64_t seed)
{
	uint64_t *o = malloc(n * sizeof(*o)), x = seed | 1;

	for (uint64_t i = 0; i < n; i++)
		o[i] = i;
	for (uint64_t i = n; i > 1; i--) {
		uint64_t j = rnd(&x) % i, t = o[i - 1];

		o[i - 1] = o[j];
		o[j] = t;
	}
	return o;
}

/*
 * Write a snapshot of @s at @path: pages in a random order from two
 * threads, then the device state, then finish (unless @leave_out is a
 * page number: then that page is never put).  Returns finish's result.
 */
static int make_snapshot(const char *path, const struct spec *s, uint64_t leave_out)
{
	uint64_t total = total_of(s);
	uint64_t *order = shuffled(total, s->seed);
	struct putter p[2];
	pthread_t th[2];
	struct snap_writer *w;
	uint8_t *dev = malloc(s->devlen + 1);
	int ret;

	ret = snap_writer_create(path, s->ps, s->blocks, s->nblocks, &w, err, sizeof(err));
	if (ret)
		goto out;
	for (uint64_t i = 0; i < total; i++)
		if (order[i] == leave_out)
			order[i] = order[--total];
	for (int i = 0; i < 2; i++) {
		p[i] = (struct putter){ .w = w, .s = s, .order = order, .n = total,
					.first = (uint64_t)i, .step = 2 };
		pthread_create(&th[i], NULL, putter, &p[i]);
	}
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	devstate(s, dev);
	ret = snap_writer_set_device_state(w, dev, s->devlen);
	if (ret || p[0].errors || p[1].errors) {
		snprintf(err, sizeof(err), "puts failed: %d + %d, device state %d",
			 p[0].errors, p[1].errors, ret);
		snap_writer_abort(w);
		ret = -EIO;
		goto out;
	}
	ret = snap_writer_finish(w, err, sizeof(err));
out:
	free(order);
	free(dev);
	return ret;
}

/* make_snapshot() as a test line. */
static bool snapshot(const char *path, const struct spec *s, const char *what)
{
	int ret = make_snapshot(path, s, UINT64_MAX);

	return ok(ret == 0, "%s: %s", what, ret ? err : "written");
}

/* Every page and the device state of @path equal to what @s wrote. */
static bool content_ok(const char *path, const struct spec *s, char *why, size_t whylen)
{
	struct snap_reader *r;
	struct snap_info info;
	uint64_t total = total_of(s);
	uint8_t *want = malloc(s->ps), *got = malloc(s->ps);
	uint8_t *dev = malloc(s->devlen + 1), *dev_got = malloc(s->devlen + 1);
	bool good = false;

	if (snap_reader_open(path, &r, err, sizeof(err))) {
		snprintf(why, whylen, "open: %s", err);
		goto out;
	}
	snap_reader_info(r, &info);
	if (info.total_pages != total || info.page_size != s->ps ||
	    info.device_state_len != s->devlen) {
		snprintf(why, whylen, "info: %llu pages of %u, %llu bytes of device state",
			 (unsigned long long)info.total_pages, info.page_size,
			 (unsigned long long)info.device_state_len);
		goto close;
	}
	for (uint64_t p = 0; p < total; p++) {
		fill(s->seed, s->ps, p, want);
		if (snap_reader_read(r, p, got, err, sizeof(err)) ||
		    memcmp(want, got, s->ps) ||
		    snap_reader_page_state(r, p) !=
		    (is_zero(want, s->ps) ? SNAP_PAGE_ZERO : SNAP_PAGE_DATA)) {
			snprintf(why, whylen, "page %llu differs (%s)", (unsigned long long)p, err);
			goto close;
		}
	}
	devstate(s, dev);
	if (snap_reader_read_device_state(r, dev_got, s->devlen, err, sizeof(err)) !=
	    (int64_t)s->devlen || memcmp(dev, dev_got, s->devlen)) {
		snprintf(why, whylen, "device state differs (%s)", err);
		goto close;
	}
	good = true;
close:
	snap_reader_close(r);
out:
	free(want);
	free(got);
	free(dev);
	free(dev_got);
	return good;
}

/* Open must fail with @want and a message containing @text. */
static bool open_fails(const char *path, int want, const char *text)
{
	struct snap_reader *r;
	int ret;

	err[0] = 0;
	ret = snap_reader_open(path, &r, err, sizeof(err));
	if (!ret)
		snap_reader_close(r);
	return ret == want && strstr(err, text);
}

/* ---- raw file surgery, at the spec's offsets ---- */

/* Read (or write) @len bytes at @off of @path; false if short. */
static bool raw(const char *path, uint64_t off, void *buf, size_t len, bool write)
{
	int fd = open(path, O_RDWR | O_CLOEXEC);
	ssize_t n = -1;

	if (fd >= 0) {
		n = write ? pwrite(fd, buf, len, (off_t)off) : pread(fd, buf, len, (off_t)off);
		close(fd);
	}
	if (n != (ssize_t)len)
		printf("# %s %zu bytes at %llu of %s: %zd\n", write ? "write" : "read",
		       len, (unsigned long long)off, path, n);
	return n == (ssize_t)len;
}

static void xor_byte(const char *path, uint64_t off, uint8_t x)
{
	uint8_t b = 0;

	raw(path, off, &b, 1, false);
	b ^= x;
	raw(path, off, &b, 1, true);
}

static uint64_t rd64(const char *path, uint64_t off)
{
	uint64_t v = 0;

	raw(path, off, &v, 8, false);
	return le64toh(v);
}

static void wr32(const char *path, uint64_t off, uint32_t v)
{
	v = htole32(v);
	raw(path, off, &v, 4, true);
}

/* Recompute the CRC of a header copy or trailer at @off after editing it
 * (spec: bytes 0-123). */
static void reseal(const char *path, uint64_t off)
{
	uint8_t b[128];

	if (raw(path, off, b, 128, false))
		wr32(path, off + HDR_CRC, crc32c(0, b, HDR_CRC));
}

/* The trailer offset in the header copy with the higher sequence number. */
static uint64_t trailer_in_use(const char *path)
{
	uint64_t copy = rd64(path, HDR_SEQ) > rd64(path, HDR_B + HDR_SEQ) ? 0 : HDR_B;

	return rd64(path, copy + HDR_TRAILER);
}

static off_t file_size(const char *path)
{
	struct stat st;

	return stat(path, &st) ? -1 : st.st_size;
}

static int copy_file(const char *from, const char *to)
{
	int in = open(from, O_RDONLY), out = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	char buf[65536];
	ssize_t n;
	int ret = in < 0 || out < 0 ? -1 : 0;

	while (!ret && (n = read(in, buf, sizeof(buf))) > 0)
		if (write(out, buf, (size_t)n) != n)
			ret = -1;
	if (in >= 0)
		close(in);
	if (out >= 0)
		close(out);
	return ret;
}

/* The layout of a file made from @s without a working set (spec: "Layout"). */
struct offsets {
	uint64_t data, dev, meta, meta_len, trailer;
};

static struct offsets offsets_of(const struct spec *s)
{
	uint64_t total = total_of(s);
	struct offsets o;

	o.data = s->ps > 8192 ? s->ps : 8192;
	o.dev = o.data + total * s->ps;
	o.meta = o.dev + s->devlen;
	o.meta_len = (uint64_t)s->nblocks * BLOCK_REC + (total + 3) / 4 + 4 * total;
	o.trailer = o.meta + o.meta_len;
	return o;
}

/* ---- the tests ---- */

static const struct spec three_blocks = {
	.ps = SNAP_PAGE_4K, .nblocks = 3, .seed = 11, .devlen = 100000,
	.blocks = { { "pc.ram", 1 << 20 }, { "vga.vram", 64 << 10 },
		    { "/rom@etc/acpi/tables", 8 << 10 } },
};

static void test_crc32c(void)
{
	static const struct { const char *what; uint8_t data[48]; size_t len; uint32_t crc; } v[] = {
		{ "\"123456789\"", "123456789", 9, 0xE3069283 },
		{ "32 zero bytes (RFC 3720 B.4)", { 0 }, 32, 0x8A9136AA },
		{ "32 bytes 0xff (RFC 3720 B.4)", { [0 ... 31] = 0xff }, 32, 0x62A8AB43 },
		{ "32 bytes 0..31 (RFC 3720 B.4)", { 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11,
		  12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29,
		  30, 31 }, 32, 0x46DD794E },
		{ "32 bytes 31..0 (RFC 3720 B.4)", { 31, 30, 29, 28, 27, 26, 25, 24, 23,
		  22, 21, 20, 19, 18, 17, 16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3,
		  2, 1, 0 }, 32, 0x113FDB5C },
		{ "iSCSI read PDU (RFC 3720 B.4)", { 0x01, 0xc0, [16] = 0x14, [22] = 0x04,
		  [27] = 0x14, [31] = 0x18, [32] = 0x28, [40] = 0x02 }, 48, 0xD9963A56 },
		{ "empty", { 0 }, 0, 0 },
	};
	bool hw = crc32c_hw_available();
	uint8_t buf[4096 + 8];
	uint64_t x = 5;
	bool same = true, chained = true;

	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		uint32_t sw = crc32c_sw(0, v[i].data, v[i].len);

		ok(sw == v[i].crc && crc32c(0, v[i].data, v[i].len) == v[i].crc,
		   "crc32c %s = 0x%08X (table: 0x%08X)", v[i].what, v[i].crc, sw);
		if (hw)
			ok(crc32c_hw(0, v[i].data, v[i].len) == v[i].crc,
			   "crc32c %s with SSE4.2 = 0x%08X", v[i].what, v[i].crc);
	}
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)rnd(&x);
	/* Every length 0..64 at every alignment, and a page, both ways. */
	for (size_t off = 0; off < 8 && hw; off++)
		for (size_t len = 0; len <= 64; len++)
			same &= crc32c_hw(0, buf + off, len) == crc32c_sw(0, buf + off, len);
	if (hw)
		ok(same && crc32c_hw(0, buf, 4096) == crc32c_sw(0, buf, 4096),
		   "SSE4.2 and table agree on lengths 0-64 at 8 alignments and on 4096 bytes");
	else
		skip("the CPU has no SSE4.2: only the table path is tested");
	for (size_t cut = 0; cut <= 100; cut++)
		chained &= crc32c(crc32c(0, buf, cut), buf + cut, 4096 - cut) ==
			   crc32c(0, buf, 4096);
	ok(chained, "crc32c(crc32c(0, a), b) == crc32c(0, a b) at 101 cut points");
}

static void test_round_trip(void)
{
	const char *f = tpath("round-trip.snap");
	const struct spec *s = &three_blocks;
	struct offsets o = offsets_of(s);
	struct snap_reader *r;
	struct snap_info info;
	uint64_t total = total_of(s), zero = 0, at_layout = 0;
	uint8_t *all, *page = malloc(s->ps), *raw = malloc(s->ps);
	char why[600] = "";
	int ret, fd;

	ret = make_snapshot(f, s, UINT64_MAX);
	if (!ok(ret == 0, "3 blocks, %llu pages put in random order by 2 threads, "
		"100000 bytes of device state: finish (%s)", (unsigned long long)total,
		ret ? err : "ok"))
		goto out;
	ok(content_ok(f, s, why, sizeof(why)), "every page and the device state read back byte-exact %s", why);
	ok(file_size(f) == (off_t)(o.trailer + TRL_SIZE),
	   "file size %lld = the spec's layout (trailer ends at %llu)",
	   (long long)file_size(f), (unsigned long long)(o.trailer + TRL_SIZE));
	if (snap_reader_open(f, &r, err, sizeof(err))) {
		ok(0, "open: %s", err);
		goto out;
	}
	snap_reader_info(r, &info);
	ok(info.nblocks == 3 && !strcmp(snap_reader_blocks(r)[2].name, "/rom@etc/acpi/tables") &&
	   snap_reader_blocks(r)[1].length == 64 << 10 && info.working_set_len == 0 &&
	   !snap_reader_working_set(r) && (info.id[6] >> 4) == 4 && (info.id[8] >> 6) == 2,
	   "info: 3 blocks with names and lengths, no working set, a version 4 UUID");
	/* Page p of the file is at data + p * page size, holes for zero pages. */
	fd = open(f, O_RDONLY);
	for (uint64_t p = 0; p < total; p++) {
		fill(s->seed, s->ps, p, page);
		if (is_zero(page, s->ps)) {
			zero++;
			continue;
		}
		at_layout += pread(fd, raw, s->ps, (off_t)(o.data + p * s->ps)) == (ssize_t)s->ps &&
			     !memcmp(raw, page, s->ps);
	}
	close(fd);
	ok(zero > 10 && at_layout == total - zero,
	   "each of the %llu data pages is at offset 8192 + page * 4096 (%llu zero pages)",
	   (unsigned long long)(total - zero), (unsigned long long)zero);
	all = malloc(total * s->ps);
	ret = snap_reader_read_run(r, 0, total, all, err, sizeof(err));
	for (uint64_t p = 0; !ret && p < total; p++) {
		fill(s->seed, s->ps, p, page);
		ret = memcmp(page, all + p * s->ps, s->ps) ? -1 : 0;
	}
	ok(ret == 0, "read_run of all %llu pages at once: byte-exact", (unsigned long long)total);
	free(all);
	ok(snap_reader_read(r, total, page, err, sizeof(err)) == -ERANGE &&
	   snap_reader_read_run(r, total - 2, 3, page, err, sizeof(err)) == -ERANGE &&
	   snap_reader_page_state(r, total) == -ERANGE, "reads past the last page: -ERANGE");
	ok(snap_reader_read_device_state(r, page, 10, err, sizeof(err)) == -ENOSPC,
	   "device state into a short buffer: -ENOSPC");
	ret = snap_reader_verify_all(r, err, sizeof(err));
	ok(ret == 0, "verify_all: %s", ret ? err : "ok");
	snap_reader_close(r);
out:
	free(page);
	free(raw);
}

static void test_huge(void)
{
	const char *f = tpath("huge.snap");
	const struct spec s = {
		.ps = SNAP_PAGE_2M, .nblocks = 2, .seed = 3, .devlen = 0,
		.blocks = { { "pc.ram", 4 << 20 }, { "pc.ram2", 2 << 20 } },
	};
	struct snap_writer *w;
	struct snap_reader *r = NULL;
	uint8_t *page = malloc(SNAP_PAGE_2M), *raw = malloc(SNAP_PAGE_2M);
	char why[600] = "";
	bool placed = false;
	int ret, fd;

	ret = make_snapshot(f, &s, UINT64_MAX);
	ok(ret == 0 && content_ok(f, &s, why, sizeof(why)),
	   "2 MiB pages: 2 blocks, 3 pages, empty device state, byte-exact %s%s",
	   ret ? err : "", why);
	fd = open(f, O_RDONLY);
	fill(s.seed, s.ps, 2, page);
	placed = pread(fd, raw, SNAP_PAGE_2M, 3 * SNAP_PAGE_2M) == SNAP_PAGE_2M &&
		 !memcmp(raw, page, SNAP_PAGE_2M);
	close(fd);
	ok(placed, "2 MiB pages: RAM at offset 2 MiB, page 2 at 6 MiB (2 MiB aligned)");

	ret = snap_writer_create(f, SNAP_PAGE_2M, s.blocks, 2, &w, err, sizeof(err));
	if (!ret) {
		memset(page, 0, SNAP_PAGE_2M);
		page[SNAP_PAGE_2M - 1] = 1;	/* non-zero only in its last byte */
		ret = snap_writer_put(w, 0, page) || snap_writer_put_zero(w, 1);
		page[SNAP_PAGE_2M - 1] = 0;
		ret = ret || snap_writer_put(w, 2, page) ||
		      snap_writer_finish(w, err, sizeof(err));
	}
	ok(!ret && !snap_reader_open(f, &r, err, sizeof(err)) &&
	   snap_reader_page_state(r, 0) == SNAP_PAGE_DATA &&
	   snap_reader_page_state(r, 1) == SNAP_PAGE_ZERO &&
	   snap_reader_page_state(r, 2) == SNAP_PAGE_ZERO,
	   "a page non-zero only in its last byte is data; put_zero and a zero page are zero pages");
	snap_reader_close(r);
	free(page);
	free(raw);
}

struct racer {
	struct snap_writer *w;
	uint64_t total;
	int won, lost, other;
};

static void *racer(void *arg)
{
	struct racer *t = arg;
	uint8_t page[4096];

	for (uint64_t p = 0; p < t->total; p++) {
		int ret;

		fill(99, 4096, p, page);
		ret = snap_writer_put(t->w, p, page);
		if (!ret)
			t->won++;
		else if (ret == -EEXIST)
			t->lost++;
		else
			t->other++;
	}
	return NULL;
}

static void test_writer_rules(void)
{
	const char *f = tpath("rules.snap");
	const struct spec s = { .ps = 4096, .nblocks = 1, .seed = 99, .devlen = 100,
				.blocks = { { "pc.ram", 4 << 20 } } };
	struct racer t[2];
	pthread_t th[2];
	struct snap_writer *w;
	uint8_t page[4096] = { 1 }, big[5000] = { 0 }, dev[100];
	char why[600] = "";
	int ret;

	ret = snap_writer_create(f, 4096, s.blocks, 1, &w, err, sizeof(err));
	if (!ok(ret == 0, "create: %s", ret ? err : "ok"))
		return;
	for (int i = 0; i < 2; i++) {
		t[i] = (struct racer){ .w = w, .total = 1024 };
		pthread_create(&th[i], NULL, racer, &t[i]);
	}
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	ok(t[0].won + t[1].won == 1024 && t[0].lost + t[1].lost == 1024 &&
	   !t[0].other && !t[1].other,
	   "two threads put every page: each saved once (%d + %d), the other put -EEXIST",
	   t[0].won, t[1].won);
	ok(snap_writer_put(w, 5, page) == -EEXIST && snap_writer_put_zero(w, 5) == -EEXIST,
	   "a page put again: -EEXIST");
	ok(snap_writer_put(w, 1024, page) == -ERANGE && snap_writer_put_zero(w, 1 << 30) == -ERANGE,
	   "a page past the last: -ERANGE");
	ok(snap_writer_set_device_state(w, page, SNAP_MAX_DEVICE_STATE + 1) == -EINVAL,
	   "device state over 16 MiB: -EINVAL");
	devstate(&s, dev);
	ret = snap_writer_set_device_state(w, big, sizeof(big)) ||
	      snap_writer_set_device_state(w, dev, sizeof(dev));
	ret = ret || snap_writer_finish(w, err, sizeof(err));
	ok(ret == 0 && content_ok(f, &s, why, sizeof(why)) &&
	   file_size(f) == (off_t)(offsets_of(&s).trailer + TRL_SIZE),
	   "device state of 5000 bytes replaced by 100: the 100 read back, nothing left after the trailer %s",
	   why);
}

static void test_create_checks(void)
{
	static const struct {
		const char *what;
		uint32_t ps;
		unsigned int n;
		struct snap_block b[2];
		const char *text;
	} bad[] = {
		{ "page size 8192", 8192, 1, { { "a", 8192 } }, "page size 8192 not supported" },
		{ "page size 0", 0, 1, { { "a", 8192 } }, "page size 0" },
		{ "page size 1 MiB", 1 << 20, 1, { { "a", 2 << 20 } }, "page size" },
		{ "no blocks", 4096, 0, { { "a", 8192 } }, "0 RAM blocks" },
		{ "an empty name", 4096, 1, { { "", 8192 } }, "name empty" },
		{ "a name with a space", 4096, 1, { { "pc ram", 8192 } }, "byte 2 is 0x20" },
		{ "two blocks of one name", 4096, 2, { { "a", 8192 }, { "a", 4096 } }, "is block 0's too" },
		{ "a length of 1000", 4096, 1, { { "a", 1000 } }, "length 1000 is not" },
		{ "a length of 0", 4096, 1, { { "a", 0 } }, "length 0 is not" },
		{ "4 KiB in a 2 MiB file", 2 << 20, 1, { { "a", 4096 } }, "multiple of the page size 2097152" },
		{ "more than 1 TiB", 4096, 2, { { "a", 1ULL << 40 }, { "b", 4096 } }, "larger than" },
	};
	struct snap_block many[SNAP_MAX_BLOCKS + 1], longname;
	struct snap_writer *w;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = 0;
		ok(snap_writer_create(tpath("bad.snap"), bad[i].ps, bad[i].b, bad[i].n, &w,
				      err, sizeof(err)) == -EINVAL && strstr(err, bad[i].text) && !w,
		   "create refuses %s: %s", bad[i].what, err);
	}
	memset(&longname, 'x', sizeof(longname.name));
	longname.length = 4096;
	ok(snap_writer_create(tpath("bad.snap"), 4096, &longname, 1, &w, err, sizeof(err)) == -EINVAL &&
	   strstr(err, "not ended within 64"), "create refuses a name of 64 bytes: %s", err);
	memset(many, 0, sizeof(many));
	for (int i = 0; i <= SNAP_MAX_BLOCKS; i++) {
		snprintf(many[i].name, sizeof(many[i].name), "b%d", i);
		many[i].length = 4096;
	}
	ok(snap_writer_create(tpath("bad.snap"), 4096, many, SNAP_MAX_BLOCKS + 1, &w, err,
			      sizeof(err)) == -EINVAL && strstr(err, "65 RAM blocks"),
	   "create refuses 65 blocks: %s", err);
	ok(snap_writer_create(tpath("bad.snap"), 4096, many, SNAP_MAX_BLOCKS, &w, err,
			      sizeof(err)) == 0, "64 blocks are fine");
	if (w)
		snap_writer_abort(w);
}

static void test_holes(void)
{
	const char *f = tpath("zero.snap"), *g = tpath("data.snap");
	struct snap_block b = { "pc.ram", 64 << 20 };
	uint8_t *page = calloc(1, 4096);
	struct snap_writer *w;
	struct stat zs = { 0 }, ds = { 0 };
	int ret;

	ret = snap_writer_create(f, 4096, &b, 1, &w, err, sizeof(err));
	for (uint64_t p = 0; !ret && p < b.length / 4096; p++)
		ret = snap_writer_put(w, p, page);
	if (!ret)
		ret = snap_writer_finish(w, err, sizeof(err));
	stat(f, &zs);
	ok(!ret && zs.st_size > (off_t)b.length && (uint64_t)zs.st_blocks * 512 < 256 << 10,
	   "a 64 MiB snapshot of zero pages: %lld bytes long, %llu KiB allocated (holes)",
	   (long long)zs.st_size, (unsigned long long)zs.st_blocks / 2);

	/* The same measure sees data: 4 MiB of non-zero pages allocate 4 MiB. */
	ret = snap_writer_create(g, 4096, &b, 1, &w, err, sizeof(err));
	for (uint64_t p = 0; !ret && p < b.length / 4096; p++) {
		page[0] = p < 1024;
		ret = snap_writer_put(w, p, page);
	}
	if (!ret)
		ret = snap_writer_finish(w, err, sizeof(err));
	stat(g, &ds);
	ok(!ret && (uint64_t)ds.st_blocks * 512 >= 4 << 20 &&
	   (uint64_t)ds.st_blocks * 512 < (4 << 20) + (512 << 10),
	   "the same with 1024 data pages: %llu KiB allocated (4 MiB of data)",
	   (unsigned long long)ds.st_blocks / 2);
	free(page);
}

static void test_incomplete(void)
{
	const char *f = tpath("incomplete.snap");
	const struct spec *s = &three_blocks;
	struct snap_writer *w;
	uint8_t page[4096];
	int pipefd[2], status = 0;
	char c;
	pid_t pid;

	if (!snap_writer_create(f, 4096, s->blocks, s->nblocks, &w, err, sizeof(err)))
		snap_writer_abort(w);
	ok(open_fails(f, -EBADMSG, "incomplete snapshot: the snapshot did not finish"),
	   "created then aborted: refused: %s", err);

	if (!snap_writer_create(f, 4096, s->blocks, s->nblocks, &w, err, sizeof(err))) {
		for (uint64_t p = 0; p < total_of(s); p++) {
			fill(s->seed, 4096, p, page);
			snap_writer_put(w, p, page);
		}
		snap_writer_abort(w);
	}
	ok(open_fails(f, -EBADMSG, "incomplete snapshot: the snapshot did not finish"),
	   "every page put, aborted before finish: refused: %s", err);
	ok(snap_add_working_set(f, NULL, 0, err, sizeof(err)) == -EBADMSG &&
	   strstr(err, "incomplete"), "no working set added to it: %s", err);

	/* A writer process killed with SIGKILL halfway through. */
	if (pipe(pipefd))
		return;
	pid = fork();
	if (pid == 0) {
		close(pipefd[0]);
		if (snap_writer_create(f, 4096, s->blocks, s->nblocks, &w, err, sizeof(err)))
			_exit(1);
		for (uint64_t p = 0; p < total_of(s) / 2; p++) {
			fill(s->seed, 4096, p, page);
			snap_writer_put(w, p, page);
		}
		if (write(pipefd[1], "x", 1) != 1)
			_exit(1);
		pause();
		_exit(0);
	}
	close(pipefd[1]);
	if (read(pipefd[0], &c, 1) == 1)
		kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	close(pipefd[0]);
	ok(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL &&
	   open_fails(f, -EBADMSG, "incomplete snapshot: the snapshot did not finish"),
	   "writer SIGKILLed after half the pages: refused: %s", err);
}

static double secs(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/*
 * SIGKILL at random moments of a whole snapshot, finish included: every
 * file left is refused (absent, not yet a snapshot, incomplete) or reads
 * back whole.  Never anything else.
 */
static void test_kill_anywhere(void)
{
	const char *f = tpath("kill.snap");
	const struct spec s = { .ps = 4096, .nblocks = 2, .seed = 21, .devlen = 5000,
				.blocks = { { "pc.ram", 2 << 20 }, { "rom", 64 << 10 } } };
	int outcome[4] = { 0 }, bad = 0;	/* absent, empty, incomplete, good */
	char why[600] = "", last[600] = "";
	uint64_t x = 77;
	double t0 = secs(), full;
	pid_t pid;

	pid = fork();
	if (pid == 0)
		_exit(make_snapshot(f, &s, UINT64_MAX) ? 1 : 0);
	waitpid(pid, NULL, 0);
	full = secs() - t0;
	for (int i = 0; i < 24; i++) {
		useconds_t delay = (useconds_t)(rnd(&x) % (uint64_t)(full * 1.2e6 + 1));
		int status;

		pid = fork();
		if (pid == 0)
			_exit(make_snapshot(f, &s, UINT64_MAX) ? 1 : 0);
		usleep(delay);
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
		if (access(f, F_OK))
			outcome[0]++;
		else if (open_fails(f, -EBADMSG, "not a umem snapshot"))
			outcome[1]++;
		else if (open_fails(f, -EBADMSG, "incomplete snapshot: the snapshot did not finish"))
			outcome[2]++;
		else if (content_ok(f, &s, why, sizeof(why)))
			outcome[3]++;
		else {
			bad++;
			snprintf(last, sizeof(last), "after %u us: %s / %s", delay, err, why);
		}
	}
	ok(!bad, "SIGKILL at 24 random points of a %.0f ms snapshot: %d absent, %d empty, "
	   "%d refused as incomplete, %d complete and byte-exact %s", full * 1e3,
	   outcome[0], outcome[1], outcome[2], outcome[3], last);
}

static void test_unfinished_page(void)
{
	const char *f = tpath("missing.snap");
	int ret = make_snapshot(f, &three_blocks, 260);

	ok(ret == -ENODATA && strstr(err, "1 of 274 pages never saved, the first page 260 "
				     "(block vga.vram offset 0x4000)"),
	   "a page never saved: finish fails: %s", err);
	ok(open_fails(f, -EBADMSG, "incomplete snapshot"), "and the file stays incomplete: %s", err);
}

static void test_truncated(void)
{
	const char *f = tpath("full.snap"), *g = tpath("cut.snap");
	const struct spec *s = &three_blocks;
	struct offsets o = offsets_of(s);
	const struct { const char *where; uint64_t at; } cut[] = {
		{ "in the RAM area", o.data + 100 * 4096 + 7 },
		{ "at the end of the RAM area", o.dev },
		{ "in the device state", o.dev + 5000 },
		{ "in the block table", o.meta + 10 },
		{ "in the page map", o.meta + 3 * BLOCK_REC + 20 },
		{ "in the page checksums", o.trailer - 100 },
		{ "in the trailer", o.trailer + 64 },
		{ "one byte short", o.trailer + TRL_SIZE - 1 },
	};

	if (!snapshot(f, s, "a snapshot to cut"))
		return;
	for (size_t i = 0; i < sizeof(cut) / sizeof(cut[0]); i++) {
		copy_file(f, g);
		if (truncate(g, (off_t)cut[i].at))
			perror("truncate");
		ok(open_fails(g, -EBADMSG, "truncated snapshot"), "cut %s (at %llu): %s",
		   cut[i].where, (unsigned long long)cut[i].at, err);
	}
}

static void test_corrupt_page(void)
{
	const char *f = tpath("corrupt.snap");
	const struct spec *s = &three_blocks;
	struct offsets o = offsets_of(s);
	struct snap_reader *r;
	uint8_t *buf = malloc(4 * 4096), *want = malloc(4096);
	uint64_t total = total_of(s), good = 0, p1 = 0, p2 = 0;
	int ret;

	if (!snapshot(f, s, "a snapshot to damage"))
		goto out;
	/* Two data pages: one in pc.ram, the first of vga.vram + 3. */
	for (p1 = 123; fill(s->seed, 4096, p1, want), is_zero(want, 4096); p1++)
		;
	for (p2 = 259; fill(s->seed, 4096, p2, want), is_zero(want, 4096); p2++)
		;
	xor_byte(f, o.data + p1 * 4096 + 1000, 0x40);
	xor_byte(f, o.data + p2 * 4096 + 4095, 0x01);
	if (!ok(snap_reader_open(f, &r, err, sizeof(err)) == 0,
		"a flipped byte in page data does not stop open: %s", err))
		goto out;
	memset(buf, 0xaa, 4096);
	ret = snap_reader_read(r, p1, buf, err, sizeof(err));
	{
		char text[128];

		snprintf(text, sizeof(text), "page %llu (block pc.ram offset 0x%llx): checksum mismatch",
			 (unsigned long long)p1, (unsigned long long)(p1 * 4096));
		ok(ret == -EBADMSG && strstr(err, text) && is_zero(buf, 4096),
		   "the page with the flipped byte: -EBADMSG, zeroed buffer: %s", err);
	}
	for (uint64_t p = 0; p < total; p++) {
		if (p == p1 || p == p2)
			continue;
		fill(s->seed, 4096, p, want);
		good += !snap_reader_read(r, p, buf, err, sizeof(err)) && !memcmp(buf, want, 4096);
	}
	ok(good == total - 2, "the other %llu pages read fine", (unsigned long long)good);
	memset(buf, 0xaa, 4 * 4096);
	ret = snap_reader_read_run(r, p2 - 1, 4, buf, err, sizeof(err));
	ok(ret == -EBADMSG && strstr(err, "block vga.vram") && is_zero(buf, 4 * 4096),
	   "a run over it fails whole, zeroed: %s", err);
	ret = snap_reader_verify_all(r, err, sizeof(err));
	ok(ret == -EBADMSG && strstr(err, "(2 bad pages in all)"), "verify_all: %s", err);
	snap_reader_close(r);

	/* The device state. */
	make_snapshot(f, s, UINT64_MAX);
	xor_byte(f, o.dev + s->devlen - 1, 0x80);
	if (!ok(snap_reader_open(f, &r, err, sizeof(err)) == 0,
		"a flipped byte in the device state does not stop open: %s", err))
		goto out;
	free(buf);
	buf = malloc(s->devlen);
	ok(snap_reader_read_device_state(r, buf, s->devlen, err, sizeof(err)) == -EBADMSG &&
	   strstr(err, "device state (offset") && strstr(err, "checksum mismatch") &&
	   is_zero(buf, s->devlen), "reading it: -EBADMSG, zeroed buffer: %s", err);
	ok(snap_reader_verify_all(r, err, sizeof(err)) == -EBADMSG &&
	   strstr(err, "device state (offset"), "verify_all: %s", err);
	snap_reader_close(r);
out:
	free(buf);
	free(want);
}

static void test_corrupt_meta(void)
{
	const char *f = tpath("meta.snap"), *g = tpath("meta-bad.snap");
	const struct spec *s = &three_blocks;
	struct offsets o = offsets_of(s);
	const struct { const char *where; uint64_t at; const char *text; } flip[] = {
		{ "the block table (a name)", o.meta + 2, "metadata (offset" },
		{ "the block table (a length)", o.meta + 64, "metadata (offset" },
		{ "the page map", o.meta + 3 * BLOCK_REC + 5, "metadata (offset" },
		{ "the page checksums", o.trailer - 1, "metadata (offset" },
		{ "the trailer magic", o.trailer, "no UMEMSNTR magic" },
		{ "the trailer's metadata offset", o.trailer + 64, "checksum mismatch" },
		{ "the trailer's checksum", o.trailer + 124, "checksum mismatch" },
		{ "both header copies' magic", 0, "not a umem snapshot" },
		{ "both header copies' trailer offset", HDR_TRAILER, "bad header: offset 0: checksum mismatch, offset 4096: checksum mismatch" },
	};
	struct snap_reader *r;
	char why[600] = "";

	if (!snapshot(f, s, "a snapshot to damage"))
		return;
	for (size_t i = 0; i < sizeof(flip) / sizeof(flip[0]); i++) {
		copy_file(f, g);
		xor_byte(g, flip[i].at, 0x04);
		if (flip[i].at < HDR_B)
			xor_byte(g, HDR_B + flip[i].at, 0x04);
		ok(open_fails(g, -EBADMSG, flip[i].text),
		   "a flipped byte in %s: refused: %s", flip[i].where, err);
	}
	/* One header copy damaged: the other is used, verify_all says so. */
	for (int copy = 0; copy < 2; copy++) {
		char text[64];

		copy_file(f, g);
		xor_byte(g, (uint64_t)copy * HDR_B + HDR_SEQ, 0x01);
		ok(content_ok(g, s, why, sizeof(why)),
		   "header copy at %d damaged: the other copy is used %s", copy * HDR_B, why);
		if (snap_reader_open(g, &r, err, sizeof(err)))
			continue;
		snprintf(text, sizeof(text), "header copy at offset %d: checksum mismatch",
			 copy * HDR_B);
		ok(snap_reader_verify_all(r, err, sizeof(err)) == -EBADMSG && strstr(err, text),
		   "and verify_all reports it: %s", err);
		snap_reader_close(r);
	}
}

static void test_version_and_page_size(void)
{
	const char *f = tpath("v.snap"), *g = tpath("v-bad.snap");
	const struct spec *s = &three_blocks;

	if (!snapshot(f, s, "a snapshot"))
		return;
	for (int both = 0; both < 2; both++) {
		copy_file(f, g);
		for (uint64_t copy = 0; copy <= (uint64_t)both; copy++) {
			wr32(g, copy * HDR_B + HDR_VERSION, 2);
			reseal(g, copy * HDR_B);
		}
		ok(open_fails(g, -EPROTONOSUPPORT, "snapshot format version 2 (this reader knows version 1)"),
		   "version 2 in %s: refused: %s", both ? "both header copies" : "one header copy", err);
	}
	copy_file(f, g);
	wr32(g, HDR_VERSION, 0);
	wr32(g, HDR_B + HDR_VERSION, 0);
	ok(open_fails(g, -EPROTONOSUPPORT, "version 0"), "version 0: refused: %s", err);
	copy_file(f, g);
	for (uint64_t copy = 0; copy < 2; copy++) {
		xor_byte(g, copy * HDR_B + 100, 1);
		reseal(g, copy * HDR_B);
	}
	ok(open_fails(g, -EBADMSG, "reserved bytes not zero"),
	   "a reserved header byte not zero: refused: %s", err);
	copy_file(f, g);
	xor_byte(g, offsets_of(s).trailer + 110, 1);
	reseal(g, offsets_of(s).trailer);
	ok(open_fails(g, -EBADMSG, "reserved bytes not zero"),
	   "a reserved trailer byte not zero: refused: %s", err);
	for (uint32_t ps = 8192; ps; ps = ps == 8192 ? 1 << 20 : 0) {
		copy_file(f, g);
		for (uint64_t copy = 0; copy < 2; copy++) {
			wr32(g, copy * HDR_B + HDR_PAGE_SIZE, ps);
			reseal(g, copy * HDR_B);
		}
		ok(open_fails(g, -EBADMSG, "page size"), "page size %u in the header: refused: %s", ps, err);
	}
}

static bool ws_is(const char *path, const uint64_t *want, uint64_t n)
{
	struct snap_reader *r;
	struct snap_info info;
	bool same;

	if (snap_reader_open(path, &r, err, sizeof(err)))
		return false;
	snap_reader_info(r, &info);
	same = info.working_set_len == n &&
	       (n ? !memcmp(snap_reader_working_set(r), want, n * 8) : !snap_reader_working_set(r));
	snap_reader_close(r);
	return same;
}

static void test_working_set(void)
{
	const char *f = tpath("ws.snap"), *g = tpath("ws-bad.snap");
	const struct spec *s = &three_blocks;
	uint64_t total = total_of(s);
	uint64_t *ws1 = shuffled(total, 5), *ws2 = shuffled(total, 6);
	uint64_t bad[3] = { 1, 2, 1 }, past[1] = { 274 };
	struct snap_reader *r = NULL;
	char why[600] = "";
	uint8_t hdr[8192];
	off_t size1;
	int ret;

	if (!snapshot(f, s, "a snapshot"))
		goto out;
	ret = snap_add_working_set(f, ws1, 50, err, sizeof(err));
	ok(ret == 0 && ws_is(f, ws1, 50) && content_ok(f, s, why, sizeof(why)),
	   "a working set of 50 pages added, read back; RAM unchanged %s%s", ret ? err : "", why);
	/* Spec: the set goes right after the trailer it replaces. */
	copy_file(f, g);
	xor_byte(g, offsets_of(s).trailer + TRL_SIZE + 8 * 49 + 7, 0x80);
	ok(open_fails(g, -EBADMSG, "working set (offset 1232005, 50 pages): checksum mismatch"),
	   "a flipped byte in the working set: refused: %s", err);
	ok(snap_add_working_set(f, bad, 3, err, sizeof(err)) == -EINVAL &&
	   strstr(err, "entry 2: page 1 twice") && ws_is(f, ws1, 50),
	   "a page twice refused, file unchanged: %s", err);
	ok(snap_add_working_set(f, past, 1, err, sizeof(err)) == -EINVAL &&
	   strstr(err, "page 274 past the last page") && ws_is(f, ws1, 50),
	   "a page past the end refused: %s", err);
	ret = snap_add_working_set(f, ws2, total, err, sizeof(err));
	ok(ret == 0 && ws_is(f, ws2, total), "replaced by one of all %llu pages %s",
	   (unsigned long long)total, ret ? err : "");
	ret = snap_add_working_set(f, NULL, 0, err, sizeof(err));
	ok(ret == 0 && ws_is(f, NULL, 0), "removed (n = 0) %s", ret ? err : "");
	ret = snap_add_working_set(f, ws1, 50, err, sizeof(err));
	ok(ret == 0 && !snap_reader_open(f, &r, err, sizeof(err)) &&
	   !snap_reader_verify_all(r, err, sizeof(err)),
	   "after four updates verify_all passes %s", ret ? err : "");
	snap_reader_close(r);
	r = NULL;

	/* Interrupted updates: the header area before one, restored after it. */
	ret = !raw(f, 0, hdr, sizeof(hdr), false);
	size1 = file_size(f);
	if (ret || snap_add_working_set(f, ws2, 100, err, sizeof(err)))
		ok(0, "update: %s", err);
	{
		/* The copy not in use (lower sequence number) is written first. */
		uint64_t first = rd64(f, HDR_SEQ) < rd64(f, HDR_B + HDR_SEQ) ? HDR_B : 0;
		uint64_t second = first ? 0 : HDR_B;

		copy_file(f, g);
		ret = !raw(g, 0, hdr, sizeof(hdr), true);
		ok(!ret && file_size(g) > size1 && ws_is(g, ws1, 50) && content_ok(g, s, why, sizeof(why)),
		   "appended, crash before the header: the old working set, all pages right %s", why);
		ret = snap_add_working_set(g, ws2, 20, err, sizeof(err));
		ok(ret == 0 && ws_is(g, ws2, 20) && !snap_reader_open(g, &r, err, sizeof(err)) &&
		   !snap_reader_verify_all(r, err, sizeof(err)) &&
		   file_size(g) == (off_t)(trailer_in_use(g) + TRL_SIZE),
		   "and a later update over the leftover works, the file ends at its trailer %s",
		   ret ? err : "");
		snap_reader_close(r);

		copy_file(f, g);
		ret = !raw(g, second, hdr + second, 128, true);
		ok(!ret && ws_is(g, ws2, 100), "crash after the first header copy: the new working set");

		copy_file(f, g);
		ret = !raw(g, second, hdr + second, 128, true);
		xor_byte(g, first + 60, 0xff);
		ok(!ret && ws_is(g, ws1, 50), "first header copy torn: the old working set");
	}
out:
	free(ws1);
	free(ws2);
}

static void test_replace_while_open(void)
{
	const char *f = tpath("replace.snap");
	struct spec s1 = three_blocks, s2 = three_blocks;
	struct snap_reader *r;
	char why[600] = "";
	uint8_t a[4096], b[4096];
	uint64_t p;

	s2.seed = 12;
	if (make_snapshot(f, &s1, UINT64_MAX) || snap_reader_open(f, &r, err, sizeof(err))) {
		ok(0, "a snapshot: %s", err);
		return;
	}
	for (p = 0; fill(s1.seed, 4096, p, a), fill(s2.seed, 4096, p, b), !memcmp(a, b, 4096); p++)
		;
	ok(make_snapshot(f, &s2, UINT64_MAX) == 0 && content_ok(f, &s2, why, sizeof(why)) &&
	   !snap_reader_read(r, p, b, err, sizeof(err)) && !memcmp(a, b, 4096),
	   "a new snapshot over an open one: a new file; the open reader still reads the old %s", why);
	snap_reader_close(r);
}

struct reader_thread {
	struct snap_reader *r;
	const struct spec *s;
	uint64_t good;
};

static void *reader_thread(void *arg)
{
	struct reader_thread *t = arg;
	uint8_t want[4096], got[4096];
	char e[256];

	for (int round = 0; round < 4; round++)
		for (uint64_t p = 0; p < total_of(t->s); p++) {
			fill(t->s->seed, 4096, p, want);
			t->good += !snap_reader_read(t->r, p, got, e, sizeof(e)) &&
				   !memcmp(want, got, 4096);
		}
	return NULL;
}

static void test_reader_threads(void)
{
	const char *f = tpath("threads.snap");
	const struct spec *s = &three_blocks;
	struct reader_thread t[2];
	pthread_t th[2];
	struct snap_reader *r;

	if (make_snapshot(f, s, UINT64_MAX) || snap_reader_open(f, &r, err, sizeof(err))) {
		ok(0, "a snapshot: %s", err);
		return;
	}
	for (int i = 0; i < 2; i++) {
		t[i] = (struct reader_thread){ .r = r, .s = s };
		pthread_create(&th[i], NULL, reader_thread, &t[i]);
	}
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	ok(t[0].good == 4 * total_of(s) && t[1].good == 4 * total_of(s),
	   "two threads read every page 4 times at once: all byte-exact");
	snap_reader_close(r);
}

static void test_not_snapshots(void)
{
	const char *f = tpath("junk");
	int fd = open(f, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	close(fd);
	ok(open_fails(f, -EBADMSG, "not a umem snapshot (no UMEMSNAP header at offset 0 or 4096; 0 bytes)"),
	   "an empty file: %s", err);
	fd = open(f, O_WRONLY | O_TRUNC);
	if (write(fd, "#!/bin/sh\n", 10) != 10)
		perror("write");
	close(fd);
	ok(open_fails(f, -EBADMSG, "not a umem snapshot"), "a script: %s", err);
	ok(open_fails(dir, -EINVAL, "not a regular file"), "a directory: %s", err);
	ok(open_fails(tpath("none"), -ENOENT, "open: No such file"), "no file: %s", err);
}

static void cleanup(void)
{
	static const char *const names[] = {
		"round-trip.snap", "huge.snap", "rules.snap", "bad.snap", "zero.snap",
		"data.snap", "incomplete.snap", "kill.snap", "missing.snap", "full.snap",
		"cut.snap", "corrupt.snap", "meta.snap", "meta-bad.snap", "v.snap",
		"v-bad.snap", "ws.snap", "ws-bad.snap", "replace.snap", "threads.snap", "junk",
	};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		unlink(tpath(names[i]));
	rmdir(dir);
}

/* A small valid snapshot for the fuzzer's corpus: 2 blocks, 3 pages (one
 * zero), 38 bytes of device state, a working set of 2 pages. */
static int seed(const char *path)
{
	static const char dev[] = "device state of a tiny fuzzing corpus";
	const struct snap_block b[2] = { { "pc.ram", 8192 }, { "rom", 4096 } };
	struct snap_writer *w;
	uint8_t page[4096];
	uint64_t ws[2] = { 2, 0 };
	int ret;

	ret = snap_writer_create(path, 4096, b, 2, &w, err, sizeof(err));
	if (ret)
		goto out;
	fill(1, 4096, 0, page);
	ret = snap_writer_put(w, 0, page) || snap_writer_put_zero(w, 1) ||
	      (fill(1, 4096, 2, page), snap_writer_put(w, 2, page)) ||
	      snap_writer_set_device_state(w, dev, sizeof(dev));
	if (ret) {
		snap_writer_abort(w);
		snprintf(err, sizeof(err), "put failed");
		goto out;
	}
	ret = snap_writer_finish(w, err, sizeof(err));
	if (!ret)
		ret = snap_add_working_set(path, ws, 2, err, sizeof(err));
out:
	if (ret)
		fprintf(stderr, "seed %s: %s\n", path, err);
	return ret ? 1 : 0;
}

int main(int argc, char **argv)
{
	const char *tmp = getenv("TMPDIR");

	if (argc == 3 && !strcmp(argv[1], "seed"))
		return seed(argv[2]);
	if (argc != 1) {
		fprintf(stderr, "usage: test-snapfile [seed FILE]\n");
		return 2;
	}
	snprintf(dir, sizeof(dir), "%s/test-snapfile.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	test_crc32c();
	test_round_trip();
	test_huge();
	test_writer_rules();
	test_create_checks();
	test_holes();
	test_incomplete();
	test_kill_anywhere();
	test_unfinished_page();
	test_truncated();
	test_corrupt_page();
	test_corrupt_meta();
	test_version_and_page_size();
	test_working_set();
	test_replace_while_open();
	test_reader_threads();
	test_not_snapshots();
	cleanup();
	printf("%d passed, %d failed", passed, failed);
	if (skipped)
		printf(", %d skipped", skipped);
	printf("\n");
	return failed ? 1 : 0;
}
