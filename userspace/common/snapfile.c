// SPDX-License-Identifier: GPL-2.0
/*
 * The umem snapshot file (Documentation/snapshot.rst is the specification;
 * the offsets below are its tables).  All integers are little endian.
 *
 *   0            header copy A (128 bytes)
 *   4096         header copy B (128 bytes)
 *   data_offset  RAM: page p at data_offset + p * page_size; zero pages
 *                are never written and stay holes
 *   data_end     device state (0 to 16 MiB)
 *                metadata: block table, page-state map, page CRCs
 *                [working set] trailer [working set trailer ...]
 *
 * Rule of the writer: nothing says "complete" before everything it
 * vouches for is on disk.  Rule of the reader: nothing is used before it
 * is checked; a page is checked against its CRC every time it is read.
 */
#define _GNU_SOURCE
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crc32c.h"
#include "snapfile.h"

/*
 * Every checksum comparison goes through here.  A libFuzzer build (make
 * fuzz) compares none, so that random input reaches the parsing behind
 * them; FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION is never defined else.
 */
#ifdef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
#define SUM_OK(got, want)	((void)(got), (void)(want), true)
#else
#define SUM_OK(got, want)	((got) == (want))
#endif

#define HDR_MAGIC	"UMEMSNAP"
#define TRL_MAGIC	"UMEMSNTR"
#define REC_SIZE	128		/* header copy, trailer */
#define REC_VERSION	8		/* both: magic at 0, version at 8 */
#define REC_CRC		124		/* both: CRC-32C of bytes 0-123 */
#define HDR_COPY_B	4096		/* copy A at 0: never in one 4 KiB block */
#define HDR_AREA	8192		/* RAM starts at max(HDR_AREA, page size) */
#define BLOCK_REC	(SNAP_BLOCK_NAME + 8)
#define HDR_F_INCOMPLETE 1U		/* the only header flag of version 1 */

/* Header fields (spec: "Header"); reserved from H_RESERVED to REC_CRC. */
enum {
	H_FLAGS = 12, H_SEQ = 16, H_PAGE_SIZE = 24, H_NBLOCKS = 28, H_TOTAL = 32,
	H_DATA_OFF = 40, H_TRAILER_OFF = 48, H_ID = 56, H_RESERVED = 72,
};

/* Trailer fields (spec: "Trailer"); reserved from T_RESERVED to REC_CRC. */
enum {
	T_NBLOCKS = 12, T_TOTAL = 16, T_PAGE_SIZE = 24, T_DEV_CRC = 28, T_ID = 32,
	T_DEV_OFF = 48, T_DEV_LEN = 56, T_META_OFF = 64, T_META_LEN = 72,
	T_WS_OFF = 80, T_WS_COUNT = 88, T_META_CRC = 96, T_WS_CRC = 100,
	T_RESERVED = 104,
};

/*
 * Page states: two bits a page in the page-state map.  ST_NONE and ST_BUSY
 * exist only in the writer's memory (ST_BUSY: a put owns the page); a
 * version 1 file holds only ST_DATA and ST_ZERO.
 */
enum { ST_NONE = 0, ST_DATA = SNAP_PAGE_DATA, ST_ZERO = SNAP_PAGE_ZERO, ST_BUSY = 3 };

struct layout {
	uint32_t page_size;
	unsigned int nblocks;
	struct snap_block blocks[SNAP_MAX_BLOCKS];
	uint64_t base_page[SNAP_MAX_BLOCKS];	/* first global page of each */
	uint64_t total_pages;
	uint64_t data_offset;
	uint8_t id[SNAP_ID_LEN];
};

struct hdr {
	uint32_t flags;
	uint64_t seq;
	uint32_t page_size, nblocks;
	uint64_t total_pages, data_offset, trailer_offset;
	uint8_t id[SNAP_ID_LEN];
};

struct trailer {
	uint32_t nblocks, page_size;
	uint32_t dev_crc, meta_crc, ws_crc;
	uint64_t total_pages;
	uint64_t dev_off, dev_len, meta_off, meta_len, ws_off, ws_count;
	uint8_t id[SNAP_ID_LEN];
};

/* A field of a record: where in the record, how big, where in the struct. */
struct field {
	uint8_t at;
	uint8_t size;		/* 4 or 8: an integer; SNAP_ID_LEN: bytes */
	uint8_t member;		/* offsetof() */
};

#define FIELD(at, type, m)	{ at, sizeof(((type *)0)->m), offsetof(type, m) }
_Static_assert(sizeof(struct hdr) <= 256 && sizeof(struct trailer) <= 256,
	       "struct field.member is a uint8_t");

static const struct field hdr_fields[] = {
	FIELD(H_FLAGS, struct hdr, flags),
	FIELD(H_SEQ, struct hdr, seq),
	FIELD(H_PAGE_SIZE, struct hdr, page_size),
	FIELD(H_NBLOCKS, struct hdr, nblocks),
	FIELD(H_TOTAL, struct hdr, total_pages),
	FIELD(H_DATA_OFF, struct hdr, data_offset),
	FIELD(H_TRAILER_OFF, struct hdr, trailer_offset),
	FIELD(H_ID, struct hdr, id),
	{ 0 }
};

static const struct field trl_fields[] = {
	FIELD(T_NBLOCKS, struct trailer, nblocks),
	FIELD(T_TOTAL, struct trailer, total_pages),
	FIELD(T_PAGE_SIZE, struct trailer, page_size),
	FIELD(T_DEV_CRC, struct trailer, dev_crc),
	FIELD(T_ID, struct trailer, id),
	FIELD(T_DEV_OFF, struct trailer, dev_off),
	FIELD(T_DEV_LEN, struct trailer, dev_len),
	FIELD(T_META_OFF, struct trailer, meta_off),
	FIELD(T_META_LEN, struct trailer, meta_len),
	FIELD(T_WS_OFF, struct trailer, ws_off),
	FIELD(T_WS_COUNT, struct trailer, ws_count),
	FIELD(T_META_CRC, struct trailer, meta_crc),
	FIELD(T_WS_CRC, struct trailer, ws_crc),
	{ 0 }
};

struct snap_writer {
	int fd;
	struct layout l;
	atomic_uchar *state;	/* per page: ST_* */
	uint32_t *crc;		/* per page; published by the release store of ST_DATA */
	uint64_t dev_len;
	uint32_t dev_crc;
};

struct snap_reader {
	int fd;
	struct layout l;
	struct hdr h;		/* the header copy in use */
	unsigned int copy;	/* 0: at offset 0, 1: at HDR_COPY_B */
	char other_copy[96];	/* what is wrong with the other copy, or "" */
	struct trailer t;
	uint8_t *map;		/* page-state map as in the file */
	uint32_t *crc;		/* page CRCs, host order */
	uint64_t *ws;		/* working set, host order; NULL if none */
};

/* ---- helpers ---- */

static void put32(uint8_t *p, uint32_t v) { v = htole32(v); memcpy(p, &v, 4); }
static void put64(uint8_t *p, uint64_t v) { v = htole64(v); memcpy(p, &v, 8); }
static uint32_t get32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return le32toh(v); }
static uint64_t get64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return le64toh(v); }

__attribute__((format(printf, 4, 5)))
static int fail(char *err, size_t errlen, int ret, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return ret;
}

static bool all_zero(const uint8_t *p, size_t len)
{
	while (len--)
		if (*p++)
			return false;
	return true;
}

/*
 * A page of zeros?  Most pages that are not differ in their first bytes;
 * past those, p[i] == p[i + 16] for every i with the first 16 zero means
 * all are zero, and memcmp() is the fastest loop at hand.
 */
static bool zero_page(const void *buf, size_t len)
{
	const uint8_t *p = buf;

	return all_zero(p, 16) && !memcmp(p, p + 16, len - 16);
}

static int pwrite_all(int fd, const void *buf, size_t len, uint64_t off)
{
	const uint8_t *p = buf;

	while (len) {
		ssize_t n = pwrite(fd, p, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

/* Bytes read: fewer than @len only at the end of the file; or -errno. */
static ssize_t pread_all(int fd, void *buf, size_t len, uint64_t off)
{
	uint8_t *p = buf;
	size_t done = 0;

	while (done < len) {
		ssize_t n = pread(fd, p + done, len - done, (off_t)(off + done));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		done += (size_t)n;
	}
	return (ssize_t)done;
}

/* Read exactly @len bytes of section @what, or say why not. */
static int read_section(int fd, void *buf, size_t len, uint64_t off,
			const char *what, char *err, size_t errlen)
{
	ssize_t n = pread_all(fd, buf, len, off);

	if (n < 0)
		return fail(err, errlen, (int)n, "%s (offset %llu, %zu bytes): read: %s",
			    what, (unsigned long long)off, len, strerror((int)-n));
	if ((size_t)n < len)
		return fail(err, errlen, -EIO,
			    "%s (offset %llu, %zu bytes): the file ends %zu bytes into it",
			    what, (unsigned long long)off, len, (size_t)n);
	return 0;
}

static int fsync_fd(int fd, const char *what, char *err, size_t errlen)
{
	if (fsync(fd))
		return fail(err, errlen, -errno, "fsync (%s): %s", what, strerror(errno));
	return 0;
}

static int map_get(const uint8_t *map, uint64_t page)
{
	return (map[page >> 2] >> ((page & 3) * 2)) & 3;
}

static uint64_t map_bytes(uint64_t pages)
{
	return (pages + 3) / 4;
}

static uint64_t meta_bytes(const struct layout *l)
{
	return (uint64_t)l->nblocks * BLOCK_REC + map_bytes(l->total_pages) +
	       4 * l->total_pages;
}

static uint64_t data_end(const struct layout *l)
{
	return l->data_offset + l->total_pages * l->page_size;
}

/* "page 123 (block pc.ram offset 0x7b000)" */
static const char *where(const struct layout *l, uint64_t page, char *buf,
			 size_t len)
{
	unsigned int b = 0;

	while (b + 1 < l->nblocks && page >= l->base_page[b + 1])
		b++;
	snprintf(buf, len, "page %llu (block %s offset 0x%llx)",
		 (unsigned long long)page, l->blocks[b].name,
		 (unsigned long long)((page - l->base_page[b]) * l->page_size));
	return buf;
}

/*
 * Check a page size and block table (the caller's, or a file's) and fill
 * @l from it: names copied NUL-padded, base pages, total, data offset.
 */
static int layout_init(struct layout *l, uint32_t page_size,
		       const struct snap_block *blocks, unsigned int nblocks,
		       char *err, size_t errlen)
{
	uint64_t bytes = 0;

	if (page_size != SNAP_PAGE_4K && page_size != SNAP_PAGE_2M)
		return fail(err, errlen, -EINVAL,
			    "page size %u not supported (%u or %u)", page_size,
			    SNAP_PAGE_4K, SNAP_PAGE_2M);
	if (!nblocks || nblocks > SNAP_MAX_BLOCKS)
		return fail(err, errlen, -EINVAL, "%u RAM blocks (must be 1 to %u)",
			    nblocks, SNAP_MAX_BLOCKS);
	memset(l->blocks, 0, sizeof(l->blocks));
	for (unsigned int i = 0; i < nblocks; i++) {
		const struct snap_block *b = &blocks[i];
		size_t n = strnlen(b->name, SNAP_BLOCK_NAME);

		if (n == 0 || n == SNAP_BLOCK_NAME)
			return fail(err, errlen, -EINVAL,
				    "block %u: name empty or not ended within %u bytes",
				    i, SNAP_BLOCK_NAME);
		for (size_t k = 0; k < n; k++)
			if (b->name[k] <= ' ' || b->name[k] > '~')
				return fail(err, errlen, -EINVAL,
					    "block %u: name byte %zu is 0x%02x (printable ASCII only, no space)",
					    i, k, (uint8_t)b->name[k]);
		memcpy(l->blocks[i].name, b->name, n);
		for (unsigned int j = 0; j < i; j++)
			if (!strcmp(l->blocks[j].name, l->blocks[i].name))
				return fail(err, errlen, -EINVAL,
					    "block %u: name %s is block %u's too",
					    i, l->blocks[i].name, j);
		if (!b->length || b->length % page_size)
			return fail(err, errlen, -EINVAL,
				    "block %u (%s): length %llu is not a non-zero multiple of the page size %u",
				    i, l->blocks[i].name,
				    (unsigned long long)b->length, page_size);
		if (b->length > SNAP_MAX_RAM - bytes)
			return fail(err, errlen, -EINVAL,
				    "RAM blocks larger than %llu bytes in all",
				    (unsigned long long)SNAP_MAX_RAM);
		l->blocks[i].length = b->length;
		l->base_page[i] = bytes / page_size;
		bytes += b->length;
	}
	l->page_size = page_size;
	l->nblocks = nblocks;
	l->total_pages = bytes / page_size;
	l->data_offset = page_size > HDR_AREA ? page_size : HDR_AREA;
	return 0;
}

/* A record: @magic, version 1, the fields of @f from @src, reserved zero, CRC. */
static void rec_encode(uint8_t b[REC_SIZE], const char *magic,
		       const struct field *f, const void *src)
{
	memset(b, 0, REC_SIZE);
	memcpy(b, magic, 8);
	put32(b + REC_VERSION, SNAP_VERSION);
	for (; f->size; f++) {
		const uint8_t *m = (const uint8_t *)src + f->member;
		uint32_t v32;
		uint64_t v64;

		if (f->size == 4) {
			memcpy(&v32, m, 4);
			put32(b + f->at, v32);
		} else if (f->size == 8) {
			memcpy(&v64, m, 8);
			put64(b + f->at, v64);
		} else {
			memcpy(b + f->at, m, f->size);
		}
	}
	put32(b + REC_CRC, crc32c(0, b, REC_CRC));
}

/* The fields of @f into @dst; false if a byte from @reserved on is not zero. */
static bool rec_decode(const uint8_t b[REC_SIZE], const struct field *f,
		       void *dst, unsigned int reserved)
{
	for (; f->size; f++) {
		uint8_t *m = (uint8_t *)dst + f->member;
		uint32_t v32;
		uint64_t v64;

		if (f->size == 4) {
			v32 = get32(b + f->at);
			memcpy(m, &v32, 4);
		} else if (f->size == 8) {
			v64 = get64(b + f->at);
			memcpy(m, &v64, 8);
		} else {
			memcpy(m, b + f->at, f->size);
		}
	}
	return all_zero(b + reserved, REC_CRC - reserved);
}

static bool rec_sum_ok(const uint8_t b[REC_SIZE])
{
	return SUM_OK(crc32c(0, b, REC_CRC), get32(b + REC_CRC));
}

enum copy_state { COPY_ABSENT, COPY_VERSION, COPY_BAD_SUM, COPY_OK };

/* Classify a header copy of @got bytes; *version is set for COPY_VERSION. */
static enum copy_state hdr_classify(const uint8_t *b, size_t got, uint32_t *version)
{
	if (got < REC_SIZE || memcmp(b, HDR_MAGIC, 8))
		return COPY_ABSENT;
	if (get32(b + REC_VERSION) != SNAP_VERSION) {
		*version = get32(b + REC_VERSION);
		return COPY_VERSION;
	}
	return rec_sum_ok(b) ? COPY_OK : COPY_BAD_SUM;
}

/*
 * Write @t at @off, cut the file just after it, fsync, then point the
 * header at it: first the copy not in use (@h->seq + 1), fsync, then the
 * other (@h->seq + 2), fsync.  Until the first header write is on disk the
 * file is what it was; after it, the new state, whichever copy a crash
 * may tear.  @h is the header in use, @copy its place; both are updated.
 */
static int commit(int fd, struct hdr *h, unsigned int *copy,
		  const struct trailer *t, uint64_t off, char *err, size_t errlen)
{
	uint8_t b[REC_SIZE];
	int ret;

	rec_encode(b, TRL_MAGIC, trl_fields, t);
	ret = pwrite_all(fd, b, REC_SIZE, off);
	if (ret)
		return fail(err, errlen, ret, "write the trailer at offset %llu: %s",
			    (unsigned long long)off, strerror(-ret));
	if (ftruncate(fd, (off_t)(off + REC_SIZE)))
		return fail(err, errlen, -errno, "truncate after the trailer: %s",
			    strerror(errno));
	ret = fsync_fd(fd, "sections and trailer", err, errlen);
	if (ret)
		return ret;
	h->flags = 0;
	h->trailer_offset = off;
	for (int i = 0; i < 2; i++) {
		*copy ^= 1;
		h->seq++;
		rec_encode(b, HDR_MAGIC, hdr_fields, h);
		ret = pwrite_all(fd, b, REC_SIZE, *copy ? HDR_COPY_B : 0);
		if (ret)
			return fail(err, errlen, ret, "write the header at offset %u: %s",
				    *copy ? HDR_COPY_B : 0, strerror(-ret));
		ret = fsync_fd(fd, "header", err, errlen);
		if (ret)
			return ret;
	}
	return 0;
}

/* ---- writer ---- */

static void writer_free(struct snap_writer *w)
{
	if (!w)
		return;
	if (w->fd >= 0)
		close(w->fd);
	free(w->state);
	free(w->crc);
	free(w);
}

/* fsync the directory holding @path, so that its new name survives a crash. */
static int fsync_dir(const char *path, char *err, size_t errlen)
{
	char *copy = strdup(path);
	int fd, ret;

	if (!copy)
		return fail(err, errlen, -ENOMEM, "out of memory");
	fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		ret = fail(err, errlen, -errno, "open the directory %s: %s",
			   copy, strerror(errno));
	} else {
		ret = fsync_fd(fd, "directory", err, errlen);
		close(fd);
	}
	free(copy);
	return ret;
}

int snap_writer_create(const char *path, uint32_t page_size,
		       const struct snap_block *blocks, unsigned int nblocks,
		       struct snap_writer **out, char *err, size_t errlen)
{
	struct snap_writer *w = calloc(1, sizeof(*w));
	struct hdr h = { .flags = HDR_F_INCOMPLETE };
	uint8_t b[REC_SIZE];
	int ret;

	*out = NULL;
	if (!w)
		return fail(err, errlen, -ENOMEM, "out of memory");
	w->fd = -1;
	ret = layout_init(&w->l, page_size, blocks, nblocks, err, errlen);
	if (ret)
		goto out;
	if (getrandom(w->l.id, SNAP_ID_LEN, 0) != SNAP_ID_LEN) {
		ret = fail(err, errlen, -errno, "getrandom: %s", strerror(errno));
		goto out;
	}
	w->l.id[6] = (w->l.id[6] & 0x0f) | 0x40;	/* UUID version 4 */
	w->l.id[8] = (w->l.id[8] & 0x3f) | 0x80;	/* RFC 9562 variant */
	w->state = calloc(w->l.total_pages, sizeof(*w->state));
	w->crc = calloc(w->l.total_pages, sizeof(*w->crc));
	if (!w->state || !w->crc) {
		ret = fail(err, errlen, -ENOMEM,
			   "out of memory for the map of %llu pages",
			   (unsigned long long)w->l.total_pages);
		goto out;
	}
	/*
	 * A new inode, not O_TRUNC: a restore may be reading the old file,
	 * and it keeps it.  O_EXCL: never write through a link put there.
	 */
	if (unlink(path) && errno != ENOENT) {
		ret = fail(err, errlen, -errno, "remove the old file: %s", strerror(errno));
		goto out;
	}
	w->fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (w->fd < 0) {
		ret = fail(err, errlen, -errno, "create: %s", strerror(errno));
		goto out;
	}
	h.page_size = page_size;
	h.nblocks = nblocks;
	h.total_pages = w->l.total_pages;
	h.data_offset = w->l.data_offset;
	memcpy(h.id, w->l.id, SNAP_ID_LEN);
	rec_encode(b, HDR_MAGIC, hdr_fields, &h);
	ret = pwrite_all(w->fd, b, REC_SIZE, 0);
	if (ret) {
		fail(err, errlen, ret, "write the header: %s", strerror(-ret));
		goto out;
	}
	ret = fsync_fd(w->fd, "header", err, errlen);
	if (!ret)
		ret = fsync_dir(path, err, errlen);
out:
	if (ret)
		writer_free(w);
	else
		*out = w;
	return ret;
}

/* Claim @page for one put: -EEXIST if saved or being saved. */
static int claim(struct snap_writer *w, uint64_t page, unsigned char to)
{
	unsigned char expect = ST_NONE;

	if (page >= w->l.total_pages)
		return -ERANGE;
	if (!atomic_compare_exchange_strong(&w->state[page], &expect, to))
		return -EEXIST;
	return 0;
}

int snap_writer_put(struct snap_writer *w, uint64_t page, const void *data)
{
	size_t ps = w->l.page_size;
	int ret = claim(w, page, ST_BUSY);

	if (ret)
		return ret;
	if (zero_page(data, ps)) {
		atomic_store_explicit(&w->state[page], ST_ZERO, memory_order_release);
		return 0;
	}
	w->crc[page] = crc32c(0, data, ps);
	ret = pwrite_all(w->fd, data, ps, w->l.data_offset + page * ps);
	atomic_store_explicit(&w->state[page], ret ? ST_NONE : ST_DATA,
			      memory_order_release);
	return ret;
}

int snap_writer_put_zero(struct snap_writer *w, uint64_t page)
{
	return claim(w, page, ST_ZERO);
}

int snap_writer_set_device_state(struct snap_writer *w, const void *buf,
				 size_t len)
{
	int ret;

	if (len > SNAP_MAX_DEVICE_STATE)
		return -EINVAL;
	ret = pwrite_all(w->fd, buf, len, data_end(&w->l));
	if (ret)
		return ret;
	w->dev_len = len;
	w->dev_crc = crc32c(0, buf, len);
	return 0;
}

/* Block table, page-state map, page CRCs at @off; their CRC in *crc. */
static int write_metadata(struct snap_writer *w, uint64_t off, uint32_t *crc,
			  char *err, size_t errlen)
{
	const struct layout *l = &w->l;
	uint8_t blocks[SNAP_MAX_BLOCKS * BLOCK_REC] = { 0 };
	size_t nb = (size_t)l->nblocks * BLOCK_REC;
	size_t mb = map_bytes(l->total_pages), cb = 4 * l->total_pages;
	uint8_t *map = calloc(mb, 1);
	int ret;

	if (!map)
		return fail(err, errlen, -ENOMEM, "out of memory for the page map");
	for (unsigned int i = 0; i < l->nblocks; i++) {
		memcpy(blocks + i * BLOCK_REC, l->blocks[i].name, SNAP_BLOCK_NAME);
		put64(blocks + i * BLOCK_REC + SNAP_BLOCK_NAME, l->blocks[i].length);
	}
	/* The state loads in finish's check acquired every crc[] store. */
	for (uint64_t p = 0; p < l->total_pages; p++) {
		unsigned int st = atomic_load_explicit(&w->state[p], memory_order_relaxed);

		map[p >> 2] |= (uint8_t)(st << ((p & 3) * 2));
		put32((uint8_t *)&w->crc[p], st == ST_DATA ? w->crc[p] : 0);
	}
	*crc = crc32c(crc32c(crc32c(0, blocks, nb), map, mb), w->crc, cb);
	ret = pwrite_all(w->fd, blocks, nb, off);
	if (!ret)
		ret = pwrite_all(w->fd, map, mb, off + nb);
	if (!ret)
		ret = pwrite_all(w->fd, w->crc, cb, off + nb + mb);
	free(map);
	if (ret)
		return fail(err, errlen, ret, "write the metadata at offset %llu: %s",
			    (unsigned long long)off, strerror(-ret));
	return 0;
}

static int writer_finish(struct snap_writer *w, char *err, size_t errlen)
{
	const struct layout *l = &w->l;
	struct hdr h = {
		.page_size = l->page_size, .nblocks = l->nblocks,
		.total_pages = l->total_pages, .data_offset = l->data_offset,
	};
	struct trailer t = {
		.nblocks = l->nblocks, .page_size = l->page_size,
		.total_pages = l->total_pages, .dev_off = data_end(l),
		.dev_len = w->dev_len, .dev_crc = w->dev_crc,
		.meta_len = meta_bytes(l),
	};
	uint64_t missing = 0, first = 0;
	unsigned int copy = 0;	/* in use: A, seq 0, incomplete; B gets 1, A 2 */
	char at[128];
	int ret;

	for (uint64_t p = 0; p < l->total_pages; p++) {
		unsigned int st = atomic_load_explicit(&w->state[p], memory_order_acquire);

		if (st == ST_BUSY)
			return fail(err, errlen, -EBUSY, "%s is still being written",
				    where(l, p, at, sizeof(at)));
		if (st == ST_NONE && !missing++)
			first = p;
	}
	if (missing)
		return fail(err, errlen, -ENODATA,
			    "%llu of %llu pages never saved, the first %s",
			    (unsigned long long)missing,
			    (unsigned long long)l->total_pages,
			    where(l, first, at, sizeof(at)));
	t.meta_off = t.dev_off + t.dev_len;
	memcpy(t.id, l->id, SNAP_ID_LEN);
	memcpy(h.id, l->id, SNAP_ID_LEN);
	ret = write_metadata(w, t.meta_off, &t.meta_crc, err, errlen);
	if (ret)
		return ret;
	return commit(w->fd, &h, &copy, &t, t.meta_off + t.meta_len, err, errlen);
}

int snap_writer_finish(struct snap_writer *w, char *err, size_t errlen)
{
	int ret = writer_finish(w, err, errlen);

	writer_free(w);
	return ret;
}

void snap_writer_abort(struct snap_writer *w)
{
	writer_free(w);
}

/* ---- reader ---- */

/* Pick the header copy to use (spec: "Reading"). */
static int choose_header(struct snap_reader *r, uint64_t size, char *err,
			 size_t errlen)
{
	static const unsigned int off[2] = { 0, HDR_COPY_B };
	static const char *const why[] = {
		[COPY_ABSENT] = "no header", [COPY_BAD_SUM] = "checksum mismatch",
	};
	uint8_t b[2][REC_SIZE];
	enum copy_state st[2];
	struct hdr h[2];
	bool reserved_zero[2];
	uint32_t version = 0;
	unsigned int use;

	for (int i = 0; i < 2; i++) {
		ssize_t n = pread_all(r->fd, b[i], REC_SIZE, off[i]);

		if (n < 0)
			return fail(err, errlen, (int)n, "read the header at offset %u: %s",
				    off[i], strerror((int)-n));
		st[i] = hdr_classify(b[i], (size_t)n, &version);
		if (st[i] == COPY_OK)
			reserved_zero[i] = rec_decode(b[i], hdr_fields, &h[i], H_RESERVED);
	}
	if (st[0] == COPY_ABSENT && st[1] == COPY_ABSENT)
		return fail(err, errlen, -EBADMSG,
			    "not a umem snapshot (no %s header at offset 0 or %u; %llu bytes)",
			    HDR_MAGIC, HDR_COPY_B, (unsigned long long)size);
	if (st[0] == COPY_VERSION || st[1] == COPY_VERSION)
		return fail(err, errlen, -EPROTONOSUPPORT,
			    "snapshot format version %u (this reader knows version %u)",
			    version, SNAP_VERSION);
	if (st[0] != COPY_OK && st[1] != COPY_OK)
		return fail(err, errlen, -EBADMSG,
			    "bad header: offset 0: %s, offset %u: %s",
			    why[st[0]], HDR_COPY_B, why[st[1]]);
	if (st[0] == COPY_OK && st[1] == COPY_OK && h[0].seq == h[1].seq)
		return fail(err, errlen, -EBADMSG,
			    "both header copies have sequence number %llu",
			    (unsigned long long)h[0].seq);
	use = st[0] != COPY_OK || (st[1] == COPY_OK && h[1].seq > h[0].seq);
	r->h = h[use];
	r->copy = use;
	if (st[!use] != COPY_OK)
		snprintf(r->other_copy, sizeof(r->other_copy),
			 "header copy at offset %u: %s", off[!use], why[st[!use]]);
	if (!(r->h.flags & HDR_F_INCOMPLETE)) {
		if (!reserved_zero[use])
			return fail(err, errlen, -EBADMSG,
				    "header (offset %u): reserved bytes not zero", off[use]);
		return 0;
	}
	if (st[!use] == COPY_BAD_SUM)
		return fail(err, errlen, -EBADMSG,
			    "incomplete snapshot: the snapshot did not finish (the header copy at offset %u fails its checksum: a completion torn by a crash, or damage)",
			    off[!use]);
	return fail(err, errlen, -EBADMSG,
		    "incomplete snapshot: the snapshot did not finish");
}

/* The fields of the header in use (spec: "Header"). */
static int check_header(const struct snap_reader *r, uint64_t size, char *err,
			size_t errlen)
{
	const struct hdr *h = &r->h;
	const char *at = r->copy ? "header (offset 4096)" : "header (offset 0)";
	uint64_t data_offset;

	if (h->flags)
		return fail(err, errlen, -EBADMSG, "%s: unknown flags 0x%x", at, h->flags);
	if (h->page_size != SNAP_PAGE_4K && h->page_size != SNAP_PAGE_2M)
		return fail(err, errlen, -EBADMSG, "%s: page size %u (must be %u or %u)",
			    at, h->page_size, SNAP_PAGE_4K, SNAP_PAGE_2M);
	if (!h->nblocks || h->nblocks > SNAP_MAX_BLOCKS)
		return fail(err, errlen, -EBADMSG, "%s: %u RAM blocks (must be 1 to %u)",
			    at, h->nblocks, SNAP_MAX_BLOCKS);
	if (!h->total_pages || h->total_pages > SNAP_MAX_RAM / h->page_size)
		return fail(err, errlen, -EBADMSG, "%s: %llu pages of %u bytes (1 to %llu bytes)",
			    at, (unsigned long long)h->total_pages, h->page_size,
			    (unsigned long long)SNAP_MAX_RAM);
	data_offset = h->page_size > HDR_AREA ? h->page_size : HDR_AREA;
	if (h->data_offset != data_offset)
		return fail(err, errlen, -EBADMSG, "%s: RAM at offset %llu (must be %llu)",
			    at, (unsigned long long)h->data_offset,
			    (unsigned long long)data_offset);
	if (h->trailer_offset < data_offset + h->total_pages * h->page_size)
		return fail(err, errlen, -EBADMSG, "%s: trailer offset %llu inside the RAM area",
			    at, (unsigned long long)h->trailer_offset);
	if (size < REC_SIZE || h->trailer_offset > size - REC_SIZE)
		return fail(err, errlen, -EBADMSG,
			    "truncated snapshot: the file is %llu bytes, its trailer ends at %llu",
			    (unsigned long long)size,
			    (unsigned long long)h->trailer_offset + REC_SIZE);
	return 0;
}

/* The trailer and the bounds of every section it names (spec: "Trailer"). */
static int load_trailer(struct snap_reader *r, char *err, size_t errlen)
{
	const struct hdr *h = &r->h;
	struct trailer *t = &r->t;
	uint64_t off = h->trailer_offset, dev_off, meta_end;
	uint8_t b[REC_SIZE];
	char at[48];	/* "trailer (offset N)" */
	int ret;

	snprintf(at, sizeof(at), "trailer (offset %llu)", (unsigned long long)off);
	ret = read_section(r->fd, b, REC_SIZE, off, "trailer", err, errlen);
	if (ret)
		return ret;
	if (memcmp(b, TRL_MAGIC, 8))
		return fail(err, errlen, -EBADMSG, "%s: no %s magic", at, TRL_MAGIC);
	if (!rec_sum_ok(b))
		return fail(err, errlen, -EBADMSG, "%s: checksum mismatch", at);
	if (get32(b + REC_VERSION) != SNAP_VERSION)
		return fail(err, errlen, -EBADMSG, "%s: version %u, the header's is %u",
			    at, get32(b + REC_VERSION), SNAP_VERSION);
	if (!rec_decode(b, trl_fields, t, T_RESERVED))
		return fail(err, errlen, -EBADMSG, "%s: reserved bytes not zero", at);
	if (t->nblocks != h->nblocks || t->page_size != h->page_size ||
	    t->total_pages != h->total_pages || memcmp(t->id, h->id, SNAP_ID_LEN))
		return fail(err, errlen, -EBADMSG,
			    "%s: describes another snapshot than the header (blocks, page size, pages or id differ)",
			    at);
	dev_off = h->data_offset + h->total_pages * h->page_size;
	if (t->dev_off != dev_off || t->dev_len > SNAP_MAX_DEVICE_STATE)
		return fail(err, errlen, -EBADMSG,
			    "%s: device state of %llu bytes at %llu (must be at %llu, at most %u bytes)",
			    at, (unsigned long long)t->dev_len,
			    (unsigned long long)t->dev_off,
			    (unsigned long long)dev_off, SNAP_MAX_DEVICE_STATE);
	if (t->meta_off != dev_off + t->dev_len ||
	    t->meta_len != (uint64_t)h->nblocks * BLOCK_REC +
			   map_bytes(h->total_pages) + 4 * h->total_pages ||
	    t->meta_off > off || t->meta_len > off - t->meta_off)
		return fail(err, errlen, -EBADMSG,
			    "%s: metadata of %llu bytes at %llu does not fit the layout",
			    at, (unsigned long long)t->meta_len,
			    (unsigned long long)t->meta_off);
	meta_end = t->meta_off + t->meta_len;
	if (!t->ws_count ? t->ws_off || t->ws_crc :
	    t->ws_count > h->total_pages || t->ws_off < meta_end ||
	    t->ws_off > off || t->ws_count * 8 > off - t->ws_off)
		return fail(err, errlen, -EBADMSG,
			    "%s: working set of %llu pages at %llu does not fit the layout",
			    at, (unsigned long long)t->ws_count,
			    (unsigned long long)t->ws_off);
	return 0;
}

/* Block table, page map and page CRCs: read, checksum, then check. */
static int load_metadata(struct snap_reader *r, char *err, size_t errlen)
{
	const struct trailer *t = &r->t;
	uint8_t raw[SNAP_MAX_BLOCKS * BLOCK_REC];
	struct snap_block blocks[SNAP_MAX_BLOCKS];
	size_t nb = (size_t)t->nblocks * BLOCK_REC;
	size_t mb = map_bytes(t->total_pages), cb = 4 * t->total_pages;
	char msg[160], at[128];
	uint32_t crc;
	int ret;

	r->map = malloc(mb);
	r->crc = malloc(cb);
	if (!r->map || !r->crc)
		return fail(err, errlen, -ENOMEM, "out of memory for the page map");
	ret = read_section(r->fd, raw, nb, t->meta_off, "metadata", err, errlen);
	if (!ret)
		ret = read_section(r->fd, r->map, mb, t->meta_off + nb, "metadata", err, errlen);
	if (!ret)
		ret = read_section(r->fd, r->crc, cb, t->meta_off + nb + mb, "metadata", err, errlen);
	if (ret)
		return ret;
	crc = crc32c(crc32c(crc32c(0, raw, nb), r->map, mb), r->crc, cb);
	if (!SUM_OK(crc, t->meta_crc))
		return fail(err, errlen, -EBADMSG,
			    "metadata (offset %llu, %llu bytes): checksum mismatch",
			    (unsigned long long)t->meta_off,
			    (unsigned long long)t->meta_len);

	for (unsigned int i = 0; i < t->nblocks; i++) {
		const uint8_t *rec = raw + i * BLOCK_REC;
		size_t n = strnlen((const char *)rec, SNAP_BLOCK_NAME);

		if (n < SNAP_BLOCK_NAME && !all_zero(rec + n, SNAP_BLOCK_NAME - n))
			return fail(err, errlen, -EBADMSG,
				    "metadata: block %u: bytes after its name not zero", i);
		memcpy(blocks[i].name, rec, SNAP_BLOCK_NAME);
		blocks[i].length = get64(rec + SNAP_BLOCK_NAME);
	}
	if (layout_init(&r->l, t->page_size, blocks, t->nblocks, msg, sizeof(msg)))
		return fail(err, errlen, -EBADMSG, "metadata: %s", msg);
	if (r->l.total_pages != t->total_pages)
		return fail(err, errlen, -EBADMSG,
			    "metadata: the blocks hold %llu pages, the header says %llu",
			    (unsigned long long)r->l.total_pages,
			    (unsigned long long)t->total_pages);
	memcpy(r->l.id, t->id, SNAP_ID_LEN);

	for (uint64_t p = 0; p < t->total_pages; p++) {
		int st = map_get(r->map, p);

		r->crc[p] = le32toh(r->crc[p]);
		if (st != ST_DATA && st != ST_ZERO)
			return fail(err, errlen, -EBADMSG,
				    "metadata: %s has state %d (%s)",
				    where(&r->l, p, at, sizeof(at)), st,
				    st == ST_NONE ? "not saved: a version 1 file has every page" :
				    "undefined");
		if (st == ST_ZERO && r->crc[p])
			return fail(err, errlen, -EBADMSG,
				    "metadata: %s is a zero page with a checksum",
				    where(&r->l, p, at, sizeof(at)));
	}
	if (t->total_pages % 4 && r->map[mb - 1] >> ((t->total_pages % 4) * 2))
		return fail(err, errlen, -EBADMSG,
			    "metadata: page map bits past the last page not zero");
	return 0;
}

/*
 * A working set: each page below @total, none twice.  Else @ret and
 * "@what: entry I: page P past the last page / twice".
 */
static int check_working_set(const uint64_t *ws, uint64_t n, uint64_t total,
			     int ret, const char *what, char *err, size_t errlen)
{
	uint8_t *seen = calloc((total + 7) / 8, 1);
	uint64_t i;

	if (!seen)
		return fail(err, errlen, -ENOMEM, "out of memory for the working set");
	for (i = 0; i < n; i++) {
		if (ws[i] >= total || (seen[ws[i] / 8] & (1U << (ws[i] % 8))))
			break;
		seen[ws[i] / 8] |= (uint8_t)(1U << (ws[i] % 8));
	}
	free(seen);
	if (i == n)
		return 0;
	return fail(err, errlen, ret, "%s: entry %llu: page %llu %s", what,
		    (unsigned long long)i, (unsigned long long)ws[i],
		    ws[i] >= total ? "past the last page" : "twice");
}

static int load_working_set(struct snap_reader *r, char *err, size_t errlen)
{
	const struct trailer *t = &r->t;
	uint64_t n = t->ws_count;
	char at[80];
	int ret;

	if (!n)
		return 0;
	snprintf(at, sizeof(at), "working set (offset %llu, %llu pages)",
		 (unsigned long long)t->ws_off, (unsigned long long)n);
	r->ws = malloc(n * 8);
	if (!r->ws)
		return fail(err, errlen, -ENOMEM, "out of memory for the working set");
	ret = read_section(r->fd, r->ws, n * 8, t->ws_off, "working set", err, errlen);
	if (ret)
		return ret;
	if (!SUM_OK(crc32c(0, r->ws, n * 8), t->ws_crc))
		return fail(err, errlen, -EBADMSG, "%s: checksum mismatch", at);
	for (uint64_t i = 0; i < n; i++)
		r->ws[i] = le64toh(r->ws[i]);
	return check_working_set(r->ws, n, t->total_pages, -EBADMSG, at, err, errlen);
}

static int reader_load(struct snap_reader *r, char *err, size_t errlen)
{
	struct stat sb;
	int ret;

	if (fstat(r->fd, &sb))
		return fail(err, errlen, -errno, "stat: %s", strerror(errno));
	if (!S_ISREG(sb.st_mode))
		return fail(err, errlen, -EINVAL, "not a regular file");
	ret = choose_header(r, (uint64_t)sb.st_size, err, errlen);
	if (!ret)
		ret = check_header(r, (uint64_t)sb.st_size, err, errlen);
	if (!ret)
		ret = load_trailer(r, err, errlen);
	if (!ret)
		ret = load_metadata(r, err, errlen);
	if (!ret)
		ret = load_working_set(r, err, errlen);
	return ret;
}

/* A reader on @path opened with @flags, nothing loaded yet. */
static int reader_new(const char *path, int flags, struct snap_reader **out,
		      char *err, size_t errlen)
{
	struct snap_reader *r = calloc(1, sizeof(*r));

	*out = NULL;
	if (!r)
		return fail(err, errlen, -ENOMEM, "out of memory");
	r->fd = open(path, flags | O_CLOEXEC);
	if (r->fd < 0) {
		free(r);
		return fail(err, errlen, -errno, "open: %s", strerror(errno));
	}
	*out = r;
	return 0;
}

void snap_reader_close(struct snap_reader *r)
{
	if (!r)
		return;
	if (r->fd >= 0)
		close(r->fd);
	free(r->map);
	free(r->crc);
	free(r->ws);
	free(r);
}

int snap_reader_open(const char *path, struct snap_reader **out, char *err,
		     size_t errlen)
{
	struct snap_reader *r;
	int ret = reader_new(path, O_RDONLY, &r, err, errlen);

	*out = NULL;
	if (ret)
		return ret;
	ret = reader_load(r, err, errlen);
	if (ret)
		snap_reader_close(r);
	else
		*out = r;
	return ret;
}

void snap_reader_info(const struct snap_reader *r, struct snap_info *info)
{
	memset(info, 0, sizeof(*info));
	info->page_size = r->l.page_size;
	info->nblocks = r->l.nblocks;
	info->total_pages = r->l.total_pages;
	info->device_state_len = r->t.dev_len;
	info->working_set_len = r->t.ws_count;
	memcpy(info->id, r->l.id, SNAP_ID_LEN);
}

const struct snap_block *snap_reader_blocks(const struct snap_reader *r)
{
	return r->l.blocks;
}

const uint64_t *snap_reader_working_set(const struct snap_reader *r)
{
	return r->ws;
}

int snap_reader_page_state(const struct snap_reader *r, uint64_t page)
{
	if (page >= r->l.total_pages)
		return -ERANGE;
	return map_get(r->map, page);
}

/*
 * Pages [page, page + count) into @buf, one pread() per run of data pages.
 * A checksum mismatch stops the read, unless @nbad counts them (then the
 * first one's message is kept and the read goes on).
 */
static int read_pages(struct snap_reader *r, uint64_t page, uint64_t count,
		      uint8_t *buf, uint64_t *nbad, char *err, size_t errlen)
{
	const struct layout *l = &r->l;
	const size_t ps = l->page_size;
	char at[128];
	int ret = 0;

	for (uint64_t i = 0, n; i < count; i += n) {
		uint64_t p = page + i, off = l->data_offset + p * ps;
		ssize_t got;

		n = 1;
		if (map_get(r->map, p) == ST_ZERO) {
			memset(buf + i * ps, 0, ps);
			continue;
		}
		while (i + n < count && map_get(r->map, p + n) == ST_DATA)
			n++;
		got = pread_all(r->fd, buf + i * ps, n * ps, off);
		if (got < 0)
			return fail(err, errlen, (int)got, "%s: read at file offset 0x%llx: %s",
				    where(l, p, at, sizeof(at)),
				    (unsigned long long)off, strerror((int)-got));
		if ((size_t)got < n * ps) {
			p += (size_t)got / ps;
			return fail(err, errlen, -EIO,
				    "%s: the file ends before it (at 0x%llx): truncated?",
				    where(l, p, at, sizeof(at)),
				    (unsigned long long)(off + (size_t)got));
		}
		for (uint64_t k = 0; k < n; k++) {
			if (SUM_OK(crc32c(0, buf + (i + k) * ps, ps), r->crc[p + k]))
				continue;
			if (!nbad || !(*nbad)++)
				ret = fail(err, errlen, -EBADMSG,
					   "%s: checksum mismatch (file offset 0x%llx)",
					   where(l, p + k, at, sizeof(at)),
					   (unsigned long long)(off + k * ps));
			if (!nbad)
				return ret;
		}
	}
	return ret;
}

int snap_reader_read_run(struct snap_reader *r, uint64_t page, uint64_t count,
			 void *buf, char *err, size_t errlen)
{
	int ret;

	if (page >= r->l.total_pages || count > r->l.total_pages - page ||
	    count > SIZE_MAX / r->l.page_size)
		return fail(err, errlen, -ERANGE,
			    "pages %llu to %llu: the snapshot has %llu",
			    (unsigned long long)page,
			    (unsigned long long)(page + count - 1),
			    (unsigned long long)r->l.total_pages);
	ret = read_pages(r, page, count, buf, NULL, err, errlen);
	if (ret)
		memset(buf, 0, count * r->l.page_size);
	return ret;
}

int snap_reader_read(struct snap_reader *r, uint64_t page, void *buf,
		     char *err, size_t errlen)
{
	return snap_reader_read_run(r, page, 1, buf, err, errlen);
}

int64_t snap_reader_read_device_state(struct snap_reader *r, void *buf,
				      size_t len, char *err, size_t errlen)
{
	const struct trailer *t = &r->t;
	int ret;

	if (len < t->dev_len)
		return fail(err, errlen, -ENOSPC,
			    "device state of %llu bytes, buffer of %zu",
			    (unsigned long long)t->dev_len, len);
	ret = read_section(r->fd, buf, t->dev_len, t->dev_off, "device state",
			   err, errlen);
	if (!ret && !SUM_OK(crc32c(0, buf, t->dev_len), t->dev_crc))
		ret = fail(err, errlen, -EBADMSG,
			   "device state (offset %llu, %llu bytes): checksum mismatch",
			   (unsigned long long)t->dev_off,
			   (unsigned long long)t->dev_len);
	if (ret) {
		memset(buf, 0, t->dev_len);
		return ret;
	}
	return (int64_t)t->dev_len;
}

int snap_reader_verify_all(struct snap_reader *r, char *err, size_t errlen)
{
	const size_t ps = r->l.page_size;
	const uint64_t chunk = (8U << 20) / ps;	/* pages a read: 8 MiB */
	uint8_t *buf = malloc(chunk * ps > r->t.dev_len ? chunk * ps : r->t.dev_len);
	uint64_t nbad = 0;
	int ret = 0;

	if (!buf)
		return fail(err, errlen, -ENOMEM, "out of memory");
	for (uint64_t p = 0; !ret && p < r->l.total_pages; p += chunk) {
		uint64_t n = r->l.total_pages - p < chunk ? r->l.total_pages - p : chunk;

		ret = read_pages(r, p, n, buf, &nbad, err, errlen);
		if (ret == -EBADMSG)
			ret = 0;	/* counted in nbad; go on */
	}
	if (!ret && nbad) {
		size_t len = err ? strlen(err) : 0;

		if (len + 1 < errlen)
			snprintf(err + len, errlen - len, " (%llu bad pages in all)",
				 (unsigned long long)nbad);
		ret = -EBADMSG;
	}
	if (!ret) {
		int64_t n = snap_reader_read_device_state(r, buf, r->t.dev_len,
							  err, errlen);

		ret = n < 0 ? (int)n : 0;
	}
	if (!ret && r->other_copy[0])
		ret = fail(err, errlen, -EBADMSG, "%s (the other copy is good and in use)",
			   r->other_copy);
	free(buf);
	return ret;
}

/* ---- working-set update ---- */

int snap_add_working_set(const char *path, const uint64_t *pages, uint64_t n,
			 char *err, size_t errlen)
{
	struct snap_reader *r;
	struct trailer t;
	uint64_t *le = NULL;
	uint64_t off;
	int ret = reader_new(path, O_RDWR, &r, err, errlen);

	if (ret)
		return ret;
	while ((ret = flock(r->fd, LOCK_EX)) && errno == EINTR)
		;
	if (ret) {
		ret = fail(err, errlen, -errno, "flock: %s", strerror(errno));
		goto out;
	}
	ret = reader_load(r, err, errlen);
	if (ret)
		goto out;
	if (n > r->l.total_pages) {
		ret = fail(err, errlen, -EINVAL,
			   "a working set of %llu pages, the snapshot has %llu",
			   (unsigned long long)n, (unsigned long long)r->l.total_pages);
		goto out;
	}
	ret = check_working_set(pages, n, r->l.total_pages, -EINVAL, "working set",
				err, errlen);
	if (ret)
		goto out;
	le = malloc(n ? n * 8 : 1);
	if (!le) {
		ret = fail(err, errlen, -ENOMEM, "out of memory");
		goto out;
	}
	for (uint64_t i = 0; i < n; i++)
		le[i] = htole64(pages[i]);
	/* Appended after the trailer in use: nothing either header copy names. */
	t = r->t;
	off = r->h.trailer_offset + REC_SIZE;
	t.ws_count = n;
	t.ws_off = n ? off : 0;
	t.ws_crc = n ? crc32c(0, le, n * 8) : 0;
	if (n) {
		ret = pwrite_all(r->fd, le, n * 8, off);
		if (ret) {
			fail(err, errlen, ret, "write the working set at offset %llu: %s",
			     (unsigned long long)off, strerror(-ret));
			goto out;
		}
	}
	ret = commit(r->fd, &r->h, &r->copy, &t, off + n * 8, err, errlen);
out:
	free(le);
	snap_reader_close(r);	/* closing the fd drops the lock */
	return ret;
}
