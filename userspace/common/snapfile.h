/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The umem snapshot file: a guest's RAM blocks, its device state and an
 * optional working set, written in one pass by a live snapshot (pages in
 * any order, from several threads) and read page by page by a lazy
 * restore.  Documentation/snapshot.rst is the specification of the format;
 * this module follows it.
 *
 * Pages are numbered globally over the blocks in order (block 0's pages,
 * then block 1's, ...), as umemd's struct proto_layout numbers them.  One
 * page size per file: 4 KiB or 2 MiB.
 *
 * Errors are negative errnos; functions taking @err also write a sentence
 * there saying what is wrong and where (page, block, offsets), without the
 * file's name: the caller knows it and prefixes it.
 *
 * Calling context:
 *   writer  snap_writer_put() and snap_writer_put_zero() may run in any
 *           number of threads at once; every other writer function runs
 *           alone (no put in flight).
 *   reader  every function may run in any number of threads at once,
 *           except snap_reader_close().
 */
#ifndef UMEM_SNAPFILE_H
#define UMEM_SNAPFILE_H

#include <stddef.h>
#include <stdint.h>

#define SNAP_VERSION		1
#define SNAP_PAGE_4K		4096U
#define SNAP_PAGE_2M		(2U << 20)
#define SNAP_MAX_BLOCKS		64
#define SNAP_BLOCK_NAME		64		/* bytes, incl. the NUL: names up to 63 */
#define SNAP_MAX_RAM		(1ULL << 40)	/* sum of the block lengths */
#define SNAP_MAX_DEVICE_STATE	(16U << 20)	/* as umemd's device-state limit */
#define SNAP_ID_LEN		16		/* a random (version 4) UUID */

/* What a complete file holds for a page (snap_reader_page_state()). */
enum snap_page_state {
	SNAP_PAGE_DATA = 1,	/* page_size bytes in the file, with a CRC */
	SNAP_PAGE_ZERO = 2,	/* all zero: nothing in the file (a hole) */
};

/*
 * A RAM block: a name (1 to 63 bytes of printable ASCII, no space,
 * NUL-padded, unique in the file) and a length in bytes (a non-zero
 * multiple of the page size).
 */
struct snap_block {
	char name[SNAP_BLOCK_NAME];
	uint64_t length;
};

struct snap_writer;
struct snap_reader;

/* ---- Writing ---- */

/*
 * Create @path (replacing any file there; mode 0600, guest RAM is
 * private) for a snapshot of @nblocks blocks of @page_size pages.  The
 * file is marked incomplete, and that is made durable (file and directory
 * fsync'ed), before this returns: until snap_writer_finish() succeeds no
 * reader accepts it.  -EINVAL for a bad page size or block table, else
 * the errno of the failing call.
 */
int snap_writer_create(const char *path, uint32_t page_size,
		       const struct snap_block *blocks, unsigned int nblocks,
		       struct snap_writer **out, char *err, size_t errlen);

/*
 * Save global page @page: @data holds page_size bytes.  A page of zeros
 * is recorded as a zero page and not written (it stays a hole); any other
 * costs one pwrite() and one CRC.  Pages come in any order, each once:
 * -EEXIST if @page was saved already or is being saved by another thread,
 * -ERANGE past the last page, else the pwrite() errno (the page then
 * counts as not saved and may be put again).
 */
int snap_writer_put(struct snap_writer *w, uint64_t page, const void *data);

/* Save @page as a zero page without looking at data.  Errors as above. */
int snap_writer_put_zero(struct snap_writer *w, uint64_t page);

/*
 * The device-state blob: @len bytes (0 to SNAP_MAX_DEVICE_STATE, -EINVAL
 * above) written at once after the RAM area; a second call replaces it.
 * Without a call the file has an empty device state.
 */
int snap_writer_set_device_state(struct snap_writer *w, const void *buf,
				 size_t len);

/*
 * Complete the file: check that every page was saved (else -ENODATA,
 * naming the first page missing), write the page map, the checksums and
 * the trailer, fsync, then mark the file complete in its header (twice:
 * see the spec) with an fsync after each.  Releases @w whether it
 * succeeds or not; on failure the file stays marked incomplete.
 */
int snap_writer_finish(struct snap_writer *w, char *err, size_t errlen);

/* Release @w and leave the file as it is: marked incomplete. */
void snap_writer_abort(struct snap_writer *w);

/* ---- Reading ---- */

struct snap_info {
	uint32_t page_size;
	unsigned int nblocks;
	uint64_t total_pages;
	uint64_t device_state_len;	/* bytes */
	uint64_t working_set_len;	/* pages; 0: none */
	uint8_t id[SNAP_ID_LEN];
};

/*
 * Open a complete snapshot: find the header, the trailer and every section,
 * check their checksums and bounds, and load the page map and the page
 * checksums (about 4.25 bytes per page) and the working set.  Refused with
 * -EBADMSG and a sentence: not a snapshot, incomplete ("incomplete
 * snapshot: the snapshot did not finish"), truncated, a checksum that does
 * not match, a field out of range; -EPROTONOSUPPORT for another version.
 * Page data and the device state are checked as they are read.
 */
int snap_reader_open(const char *path, struct snap_reader **out, char *err,
		     size_t errlen);

void snap_reader_info(const struct snap_reader *r, struct snap_info *info);

/* The block table: info.nblocks entries, valid until snap_reader_close(). */
const struct snap_block *snap_reader_blocks(const struct snap_reader *r);

/*
 * The working set: info.working_set_len global page numbers, in the order
 * a restore first asked for them, each once; NULL if there is none.
 */
const uint64_t *snap_reader_working_set(const struct snap_reader *r);

/* SNAP_PAGE_DATA or SNAP_PAGE_ZERO, or -ERANGE past the last page. */
int snap_reader_page_state(const struct snap_reader *r, uint64_t page);

/*
 * Read page @page into @buf (page_size bytes): a zero page is a memset, a
 * data page one pread() and a CRC check.  -EBADMSG on a checksum mismatch
 * ("page 123 (block pc.ram offset 0x7b000): checksum mismatch ..."), -EIO
 * if the file ends early, -ERANGE past the last page.  On any error @buf
 * is zeroed: wrong data is never handed out.
 */
int snap_reader_read(struct snap_reader *r, uint64_t page, void *buf,
		     char *err, size_t errlen);

/*
 * The same for @count pages from @page into @buf (count * page_size
 * bytes): one pread() per run of consecutive data pages.  All or nothing:
 * on error all of @buf is zeroed.
 */
int snap_reader_read_run(struct snap_reader *r, uint64_t page, uint64_t count,
			 void *buf, char *err, size_t errlen);

/*
 * Copy the device state into @buf (@len bytes, at least
 * info.device_state_len) and check its CRC.  Returns its length, or
 * -EBADMSG / -EIO as above, -ENOSPC if @len is too small.
 */
int64_t snap_reader_read_device_state(struct snap_reader *r, void *buf,
				      size_t len, char *err, size_t errlen);

/*
 * Read and check every data page and the device state, and check that
 * both header copies are intact (open needs one).  Returns 0, or the
 * first error with, for pages, how many are bad in all.
 */
int snap_reader_verify_all(struct snap_reader *r, char *err, size_t errlen);

void snap_reader_close(struct snap_reader *r);

/* ---- Updating ---- */

/*
 * Record @n global page numbers (each below the page count, none twice)
 * as the working set of the complete snapshot at @path, replacing any
 * earlier one; n == 0 removes it.  The set and a new trailer are appended
 * and made durable before the header points at them, so an interrupted
 * update leaves the file as it was (see the spec).  Updates of one file
 * are serialized with flock(); readers may have it open meanwhile.
 */
int snap_add_working_set(const char *path, const uint64_t *pages, uint64_t n,
			 char *err, size_t errlen);
#endif
