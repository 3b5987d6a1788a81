// SPDX-License-Identifier: GPL-2.0
/*
 * Protocol tests.
 *
 *   test-proto                      unit tests of the frame encoder/decoder
 *                                   and the postcopy state machine (TAP).
 *   test-proto fake-source ADDR:PORT CASE
 *                                   connect to `umemd --incoming --listen`
 *                                   and misbehave as CASE says.
 *   test-proto fake-dest ADDR:PORT CASE
 *                                   connect to `umemd --outgoing --listen`
 *                                   and misbehave as CASE says.
 *   test-proto fake-dest ADDR:PORT resend
 *                                   accept RESEND and PREEMPT, stop reading
 *                                   main after its first page frame and
 *                                   request the next page (on its way on
 *                                   main): exit 0 once it came on preempt.
 *   test-proto fake-dest ADDR:PORT end-race
 *                                   request a page it has (sent again on
 *                                   preempt), then read up to END, send
 *                                   DONE and close both channels: the
 *                                   source, whose --test-preempt-delay
 *                                   holds that page, writes it after the
 *                                   close and must still end on DONE.
 *   test-proto fake-source ADDR:PORT resend IMAGE
 *                                   a well-behaved source of the 1 MiB
 *                                   IMAGE with RESEND that sends the first
 *                                   requested page twice (exit 0 on DONE).
 * The fake peers exit 0 when they managed to deliver their bad input; the
 * calling script checks that umemd failed cleanly with the right message.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "chan.h"
#include "proto.h"
#include "util.h"

static int passed, failed;

#define OK(cond, ...) do {						\
	if (cond) {							\
		passed++;						\
		printf("ok %d - ", passed + failed);			\
	} else {							\
		failed++;						\
		printf("not ok %d - ", passed + failed);		\
	}								\
	printf(__VA_ARGS__);						\
	printf("\n");							\
} while (0)

static uint8_t buf[PROTO_MAX_FRAME + 8192];
static char err[256];

static void make_layout(struct proto_layout *lay, uint64_t len0, uint64_t len1)
{
	memset(lay, 0, sizeof(*lay));
	lay->page_size = PROTO_PAGE_SIZE;
	lay->nblocks = len1 ? 2 : 1;
	strcpy(lay->blocks[0].name, "pc.ram");
	lay->blocks[0].length = len0;
	strcpy(lay->blocks[1].name, "vga.vram");
	lay->blocks[1].length = len1;
	proto_layout_finish(lay, len0 + len1, err, sizeof(err));
}

static size_t hello(uint8_t *out, uint32_t vmin, uint32_t vmax, uint64_t len0,
		    uint64_t len1)
{
	struct proto_hello h;

	memset(&h, 0, sizeof(h));
	h.version_min = vmin;
	h.version_max = vmax;
	h.page_size = PROTO_PAGE_SIZE;
	h.ram_size = len0 + len1;
	h.features = PROTO_F_KNOWN;
	h.session = 42;
	make_layout(&h.layout, len0, len1);
	return proto_enc_hello(out, sizeof(buf), &h);
}

static int parse(const uint8_t *b, size_t n, const struct proto_layout *lay,
		 struct proto_msg *m)
{
	static struct proto_hello h;

	err[0] = 0;
	return proto_parse(b, n, lay, m, &h, err, sizeof(err));
}

static void be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}

static void test_header(void)
{
	struct proto_msg m;
	uint8_t h[8];

	proto_enc_hdr(h, 0x33, 0);
	OK(parse(h, 8, NULL, &m) == -EPROTO && strstr(err, "unknown frame type"),
	   "unknown type refused: %s", err);
	proto_enc_hdr(h, MSG_ADVISE, 0);
	h[3] = 1;
	OK(parse(h, 8, NULL, &m) == -EPROTO && strstr(err, "flags"),
	   "non-zero flags refused: %s", err);
	proto_enc_hdr(h, MSG_PAGE, 1u << 30);
	OK(parse(h, 8, NULL, &m) == -EPROTO && strstr(err, "must be"),
	   "oversized PAGE length refused before reading: %s", err);
	proto_enc_hdr(h, MSG_PAGE, 16);
	OK(parse(h, 8, NULL, &m) == -EPROTO, "short PAGE length refused: %s", err);
	proto_enc_hdr(h, MSG_ERROR, 0xffffffffu);
	OK(parse(h, 8, NULL, &m) == -EPROTO, "oversized ERROR refused: %s", err);
	proto_enc_hdr(h, MSG_HELLO, 1u << 31);
	OK(parse(h, 8, NULL, &m) == -EPROTO, "oversized HELLO refused: %s", err);
	proto_enc_hdr(h, MSG_ADVISE, 4);
	OK(parse(h, 8, NULL, &m) == -EPROTO, "ADVISE with payload refused: %s", err);
	proto_enc_hdr(h, MSG_ADVISE, 0);
	OK(parse(h, 8, NULL, &m) == 8 && m.type == MSG_ADVISE, "ADVISE parses");
	OK(parse(h, 7, NULL, &m) == 0, "7 bytes of header: need more");
}

static void test_hello(void)
{
	struct proto_hello h;
	struct proto_msg m;
	size_t n = hello(buf, 1, 1, 1 << 20, 64 << 10);
	int ret;

	ret = proto_parse(buf, n, NULL, &m, &h, err, sizeof(err));
	OK(ret == (int)n && h.layout.nblocks == 2 && h.layout.total_pages == 272 &&
	   h.layout.blocks[1].base_page == 256 && h.session == 42 &&
	   h.features == PROTO_F_KNOWN, "HELLO round trip (2 blocks)");
	for (size_t k = 0; k < n; k++)
		if (proto_parse(buf, k, NULL, &m, &h, err, sizeof(err)) != 0) {
			OK(0, "truncated HELLO (%zu bytes) asks for more", k);
			return;
		}
	OK(1, "every truncation of HELLO asks for more data");

	n = hello(buf, 1, 1, 1 << 20, 0);
	buf[8] = 'X';
	OK(parse(buf, n, NULL, &m) == -EPROTO && strstr(err, "magic"), "bad magic: %s", err);
	n = hello(buf, 3, 2, 1 << 20, 0);
	OK(parse(buf, n, NULL, &m) == -EPROTO && strstr(err, "version"), "inverted version range: %s", err);
	n = hello(buf, 1, 1, 1 << 20, 0);
	be32(buf + 8 + 12, 8192);
	OK(parse(buf, n, NULL, &m) == -EPROTO && strstr(err, "page size"), "8 KiB pages refused: %s", err);
	n = hello(buf, 1, 1, 1 << 20, 0);
	be32(buf + 8 + 16, 2);	/* claims 2 blocks, carries 1 */
	OK(parse(buf, n, NULL, &m) == -EPROTO && strstr(err, "must be"), "block count vs length: %s", err);
	n = hello(buf, 1, 1, 1 << 20, 0);
	be32(buf + 8 + 16, 0);
	OK(parse(buf, n, NULL, &m) == -EPROTO, "zero blocks refused: %s", err);
	n = hello(buf, 1, 1, 1 << 20, 0);
	buf[8 + PROTO_HELLO_FIXED] = '!';
	OK(parse(buf, n, NULL, &m) == -EPROTO && strstr(err, "name"), "bad block name: %s", err);
	n = hello(buf, 1, 1, 1 << 20, 0);
	buf[8 + 31] ^= 1;	/* ram size low byte */
	OK(parse(buf, n, NULL, &m) == -EPROTO && strstr(err, "add up"), "RAM size vs blocks: %s", err);
	n = hello(buf, 1, 1, 1 << 20, 0);
	buf[8 + PROTO_HELLO_FIXED + PROTO_BLOCK_NAME + 7] = 1;	/* length + 1 */
	OK(parse(buf, n, NULL, &m) == -EPROTO, "block length not page multiple: %s", err);
	n = hello(buf, 1, 1, 1 << 20, 1 << 20);
	strcpy((char *)buf + 8 + PROTO_HELLO_FIXED + PROTO_HELLO_BLOCK, "pc.ram");
	memset(buf + 8 + PROTO_HELLO_FIXED + PROTO_HELLO_BLOCK + 6, 0, 58);
	OK(parse(buf, n, NULL, &m) == -EPROTO && strstr(err, "duplicate"), "duplicate block name: %s", err);
}

static void test_pages(void)
{
	struct proto_layout lay;
	struct proto_msg m;
	size_t n;

	make_layout(&lay, 1 << 20, 64 << 10);
	n = proto_enc_page_hdr(buf, &lay, 260);
	memset(buf + n, 0xab, PROTO_PAGE_SIZE);
	n += PROTO_PAGE_SIZE;
	OK(parse(buf, n, &lay, &m) == (int)n && m.u.page.page == 260 &&
	   m.u.page.data[0] == 0xab, "PAGE in block 1 maps to global page 260");
	OK(parse(buf, n, NULL, &m) == -EPROTO && strstr(err, "handshake"),
	   "PAGE before handshake refused: %s", err);
	OK(parse(buf, n - 1, &lay, &m) == 0, "truncated PAGE asks for more");
	buf[8 + 8 + 7] = 1;	/* offset low byte: unaligned */
	OK(parse(buf, n, &lay, &m) == -EPROTO && strstr(err, "aligned"), "unaligned PAGE: %s", err);
	proto_enc_page_hdr(buf, &lay, 260);
	buf[8 + 8 + 5] = 0x01;	/* offset += 64 KiB: past block 1 */
	OK(parse(buf, n, &lay, &m) == -EPROTO && strstr(err, "past the end"), "PAGE past end of block: %s", err);
	proto_enc_page_hdr(buf, &lay, 0);
	be32(buf + 8, 2);
	OK(parse(buf, n, &lay, &m) == -EPROTO && strstr(err, "block 2"), "PAGE for unknown block: %s", err);
	proto_enc_page_hdr(buf, &lay, 0);
	be32(buf + 12, 1);
	OK(parse(buf, n, &lay, &m) == -EPROTO && strstr(err, "reserved"), "PAGE reserved field: %s", err);

	n = proto_enc_run(buf, MSG_ZERO, &lay, 250, 6);
	OK(parse(buf, n, &lay, &m) == (int)n && m.u.page.count == 6, "ZERO run to the end of block 0");
	n = proto_enc_run(buf, MSG_ZERO, &lay, 250, 7);
	OK(parse(buf, n, &lay, &m) == -EPROTO, "ZERO run crossing a block end: %s", err);
	n = proto_enc_run(buf, MSG_ZERO, &lay, 0, 0);
	OK(parse(buf, n, &lay, &m) == -EPROTO && strstr(err, "count"), "ZERO count 0: %s", err);
	n = proto_enc_run(buf, MSG_REQ, &lay, 0, PROTO_MAX_RUN + 1);
	OK(parse(buf, n, &lay, &m) == -EPROTO, "REQ count too big: %s", err);
	n = proto_enc_run(buf, MSG_REQ, &lay, 271, 1);
	OK(parse(buf, n, &lay, &m) == (int)n && m.u.page.page == 271, "REQ of the last page");
	{
		uint64_t pages[2] = { 3, 256 };
		uint32_t counts[2] = { 2, 16 };
		uint64_t pg;
		uint32_t c;

		n = proto_enc_discard(buf, sizeof(buf), &lay, pages, counts, 2);
		OK(parse(buf, n, &lay, &m) == (int)n && m.u.discard.count == 2,
		   "DISCARD with 2 ranges");
		proto_discard_entry(&m, &lay, 1, &pg, &c);
		OK(pg == 256 && c == 16, "DISCARD entry decodes to its global page");
		counts[1] = 17;
		n = proto_enc_discard(buf, sizeof(buf), &lay, pages, counts, 2);
		OK(parse(buf, n, &lay, &m) == -EPROTO, "DISCARD range past the end: %s", err);
		n = proto_enc_discard(buf, sizeof(buf), &lay, pages, counts, 1);
		be32(buf + 8, 2);
		OK(parse(buf, n, &lay, &m) == -EPROTO, "DISCARD count vs length: %s", err);
	}
	{
		/* v2 recovery frames */
		uint8_t map[34];

		memset(map, 0, sizeof(map));
		map[0] = 0x05;
		n = proto_enc_recv_map(buf, &lay, 0, 272, map);
		OK(parse(buf, n, &lay, &m) == (int)n && m.u.map.page == 0 && m.u.map.bits == 272 &&
		   m.u.map.map[0] == 0x05, "RECV_MAP of all 272 pages");
		n = proto_enc_recv_map(buf, &lay, 8, 272, map);
		OK(parse(buf, n, &lay, &m) == -EPROTO && strstr(err, "past the end"),
		   "RECV_MAP past the end: %s", err);
		n = proto_enc_recv_map(buf, &lay, 0, 8, map);
		be32(buf + 16, 9);
		OK(parse(buf, n, &lay, &m) == -EPROTO, "RECV_MAP bits vs length: %s", err);
		n = proto_enc_resume(buf, 2, 0x1234);
		OK(parse(buf, n, &lay, &m) == (int)n && m.u.preempt.session == 0x1234 &&
		   m.u.preempt.version == 2, "RESUME round trip");
		n = proto_enc_u64(buf, MSG_RESUME_OK, 273);
		OK(parse(buf, n, &lay, &m) == -EPROTO, "RESUME_OK with more pages than RAM: %s", err);
	}
	n = proto_enc_u64(buf, MSG_DONE, 273);
	OK(parse(buf, n, &lay, &m) == -EPROTO, "DONE with more pages than RAM: %s", err);
	n = proto_enc_u64(buf, MSG_PROGRESS, 1ULL << 45);
	OK(parse(buf, n, &lay, &m) == (int)n && m.type == MSG_PROGRESS &&
	   m.u.bytes == 1ULL << 45 && !strcmp(proto_type_name(MSG_PROGRESS), "PROGRESS"),
	   "PROGRESS round trip (any byte count)");
	n = proto_enc_hdr(buf, MSG_PROGRESS, 16);
	memset(buf + n, 0, 16);
	OK(parse(buf, n + 16, &lay, &m) == -EPROTO, "PROGRESS of 16 bytes: %s", err);
	OK(!pc_allowed(PC_RUNNING, MSG_PROGRESS), "PROGRESS is not a source frame");
	n = proto_enc_error(buf, 2, "bad\x01thing");
	OK(parse(buf, n, &lay, &m) == (int)n && !strcmp(m.u.error.text, "bad?thing"),
	   "ERROR text is sanitised");
	buf[15] = 200;
	OK(parse(buf, n, &lay, &m) == -EPROTO, "ERROR text length mismatch: %s", err);
}

/* A 2 MiB layout: block 0 8 MiB (pages 0-3), block 1 2 MiB (page 4). */
static void make_layout_2m(struct proto_layout *lay)
{
	memset(lay, 0, sizeof(*lay));
	lay->page_size = PROTO_PAGE_SIZE_2M;
	lay->nblocks = 2;
	strcpy(lay->blocks[0].name, "pc.ram");
	lay->blocks[0].length = 8 << 20;
	strcpy(lay->blocks[1].name, "pc.ram2");
	lay->blocks[1].length = 2 << 20;
	proto_layout_finish(lay, 10 << 20, err, sizeof(err));
}

static size_t hello_2m(uint8_t *out, uint32_t vmin, uint32_t vmax)
{
	struct proto_hello h;

	memset(&h, 0, sizeof(h));
	h.version_min = vmin;
	h.version_max = vmax;
	h.page_size = PROTO_PAGE_SIZE_2M;
	h.ram_size = 10 << 20;
	h.features = PROTO_F_KNOWN;
	h.session = 43;
	make_layout_2m(&h.layout);
	return proto_enc_hello(out, sizeof(buf), &h);
}

static size_t piece(uint8_t *out, const struct proto_layout *lay, uint64_t page,
		    uint32_t off, uint32_t len, uint8_t fill)
{
	size_t n = proto_enc_piece_hdr(out, lay, page, off, len);

	memset(out + n, fill, len);
	return n + len;
}

/* Version 3: 2 MiB pages in HELLO, PIECE frames, PAGE refused there. */
static void test_huge(void)
{
	struct proto_layout lay, lay4k;
	struct proto_hello h;
	struct proto_msg m;
	size_t n;

	OK(PROTO_VERSION_MAX == 3 && PROTO_MAX_FRAME >= PROTO_HDR_LEN + 16 + PROTO_PIECE_MAX &&
	   PROTO_MAX_FRAME >= PROTO_HDR_LEN + 8 + 16 * PROTO_MAX_DISCARD,
	   "version 3; receive buffers hold a full PIECE and a full DISCARD (%u bytes)",
	   (unsigned int)PROTO_MAX_FRAME);
	n = hello_2m(buf, 1, 3);
	OK(proto_parse(buf, n, NULL, &m, &h, err, sizeof(err)) == (int)n &&
	   h.page_size == PROTO_PAGE_SIZE_2M && h.layout.total_pages == 5 &&
	   h.layout.blocks[1].base_page == 4 && h.version_max == 3,
	   "HELLO with 2 MiB pages: 5 pages, block 1 at page 4");
	n = hello_2m(buf, 1, 3);
	buf[8 + PROTO_HELLO_FIXED + PROTO_BLOCK_NAME + 6] = 0x10;	/* 8 MiB + 4 KiB */
	buf[8 + 31] = 0x10;						/* ram size alike */
	OK(parse(buf, n, NULL, &m) == -EPROTO && strstr(err, "bad length"),
	   "2 MiB RAM block not a multiple of 2 MiB: %s", err);
	n = hello_2m(buf, 1, 3);
	be32(buf + 8 + 12, 1U << 30);
	OK(parse(buf, n, NULL, &m) == -EPROTO && strstr(err, "page size"),
	   "1 GiB pages refused: %s", err);

	make_layout_2m(&lay);
	make_layout(&lay4k, 1 << 20, 64 << 10);
	n = piece(buf, &lay, 4, PROTO_PIECE_MAX, PROTO_PIECE_MAX, 0x3c);
	OK(parse(buf, n, &lay, &m) == (int)n && m.type == MSG_PIECE && m.u.piece.page == 4 &&
	   m.u.piece.off == PROTO_PIECE_MAX && m.u.piece.len == PROTO_PIECE_MAX &&
	   m.u.piece.data[PROTO_PIECE_MAX - 1] == 0x3c,
	   "PIECE round trip: block 1, 64 KiB into global page 4: %s", err);
	OK(parse(buf, n - 1, &lay, &m) == 0, "truncated PIECE asks for more");
	n = piece(buf, &lay, 1, 0, PROTO_PAGE_SIZE, 1);
	OK(parse(buf, n, &lay, &m) == (int)n && m.u.piece.len == PROTO_PAGE_SIZE,
	   "a 4 KiB PIECE is allowed");
	OK(parse(buf, n, NULL, &m) == -EPROTO && strstr(err, "handshake"),
	   "PIECE before the handshake: %s", err);
	OK(parse(buf, n, &lay4k, &m) == -EPROTO && strstr(err, "4096-byte"),
	   "PIECE in a RAM of 4 KiB pages: %s", err);
	n = piece(buf, &lay, 1, (2 << 20) - PROTO_PAGE_SIZE, 2 * PROTO_PAGE_SIZE, 1);
	OK(parse(buf, n, &lay, &m) == -EPROTO && strstr(err, "across"),
	   "PIECE across the end of its 2 MiB page: %s", err);
	n = piece(buf, &lay, 0, 0, PROTO_PAGE_SIZE, 1);
	be32(buf + 8, 1);
	buf[8 + 8 + 5] = 0x20;		/* block 1, offset 2 MiB: past its end */
	OK(parse(buf, n, &lay, &m) == -EPROTO && strstr(err, "past block"),
	   "PIECE past the end of its block: %s", err);
	n = piece(buf, &lay, 0, 0, PROTO_PAGE_SIZE, 1);
	buf[8 + 8 + 7] = 1;
	OK(parse(buf, n, &lay, &m) == -EPROTO && strstr(err, "aligned"),
	   "PIECE at an offset not 4 KiB aligned: %s", err);
	n = piece(buf, &lay, 0, 0, PROTO_PAGE_SIZE, 1);
	be32(buf + 12, 2 * PROTO_PAGE_SIZE);
	OK(parse(buf, n, &lay, &m) == -EPROTO && strstr(err, "data bytes"),
	   "PIECE length field vs frame length: %s", err);
	n = piece(buf, &lay, 0, 0, PROTO_PAGE_SIZE + 16, 1);
	be32(buf + 12, PROTO_PAGE_SIZE + 16);
	OK(parse(buf, n, &lay, &m) == -EPROTO && strstr(err, "multiple"),
	   "PIECE of a length not a multiple of 4 KiB: %s", err);
	n = piece(buf, &lay, 0, 0, PROTO_PAGE_SIZE, 1);
	be32(buf + 8, 2);
	OK(parse(buf, n, &lay, &m) == -EPROTO && strstr(err, "block 2"),
	   "PIECE for an unknown block: %s", err);
	proto_enc_hdr(buf, MSG_PIECE, 16 + PROTO_PIECE_MAX + PROTO_PAGE_SIZE);
	OK(parse(buf, 8, &lay, &m) == -EPROTO && strstr(err, "must be"),
	   "PIECE longer than 64 KiB refused from its header: %s", err);
	n = proto_enc_page_hdr(buf, &lay4k, 3);
	memset(buf + n, 0, PROTO_PAGE_SIZE);
	n += PROTO_PAGE_SIZE;
	OK(parse(buf, n, &lay, &m) == -EPROTO && strstr(err, "PIECE"),
	   "PAGE in a RAM of 2 MiB pages: %s", err);
	n = proto_enc_run(buf, MSG_ZERO, &lay, 0, 4);
	OK(parse(buf, n, &lay, &m) == (int)n && m.u.page.count == 4,
	   "ZERO run of four 2 MiB pages (block 0)");
	n = proto_enc_run(buf, MSG_ZERO, &lay, 0, 5);
	OK(parse(buf, n, &lay, &m) == -EPROTO, "ZERO run of 2 MiB pages across a block: %s", err);
	n = proto_enc_run(buf, MSG_REQ, &lay, 4, 1);
	OK(parse(buf, n, &lay, &m) == (int)n && m.u.page.page == 4, "REQ of 2 MiB page 4");
	n = proto_enc_run(buf, MSG_REQ, &lay, 0, 1);
	buf[8 + 8 + 6] = 0x10;		/* offset 4 KiB: inside a 2 MiB page */
	OK(parse(buf, n, &lay, &m) == -EPROTO && strstr(err, "aligned"),
	   "REQ inside a 2 MiB page: %s", err);
	n = proto_enc_hello_ack(buf, 3, PROTO_PAGE_SIZE_2M, PROTO_F_PREEMPT, 43);
	OK(parse(buf, n, &lay, &m) == (int)n && m.u.ack.page_size == PROTO_PAGE_SIZE_2M &&
	   m.u.ack.version == 3, "HELLO_ACK echoes the 2 MiB page size");
	{
		enum pc_state st = PC_NONE;

		OK(pc_step(&st, MSG_PIECE, err, sizeof(err)) == -EPROTO,
		   "PIECE before ADVISE: %s", err);
		st = PC_RUNNING;
		OK(pc_step(&st, MSG_PIECE, err, sizeof(err)) == 0 && st == PC_RUNNING,
		   "PIECE in RUNNING leaves the state alone");
	}
}

static void test_state(void)
{
	static const uint16_t good[] = {
		MSG_ADVISE, MSG_PAGE, MSG_DISCARD, MSG_DISCARD, MSG_LISTEN,
		MSG_PAGE, MSG_ZERO, MSG_RUN, MSG_PAGE, MSG_END,
	};
	enum pc_state s = PC_NONE;
	bool all = true;

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		all &= pc_step(&s, good[i], err, sizeof(err)) == 0;
	OK(all && s == PC_END, "ADVISE, DISCARD, LISTEN, RUN, END walk the states");
	OK(pc_step(&s, MSG_PAGE, err, sizeof(err)) == -EPROTO, "PAGE after END: %s", err);
	s = PC_NONE;
	OK(pc_step(&s, MSG_PAGE, err, sizeof(err)) == -EPROTO && s == PC_NONE, "PAGE before ADVISE: %s", err);
	OK(pc_step(&s, MSG_RUN, err, sizeof(err)) == -EPROTO, "RUN before LISTEN: %s", err);
	OK(pc_step(&s, MSG_END, err, sizeof(err)) == -EPROTO, "END in NONE: %s", err);
	pc_step(&s, MSG_ADVISE, err, sizeof(err));
	OK(pc_step(&s, MSG_ADVISE, err, sizeof(err)) == -EPROTO, "second ADVISE: %s", err);
	pc_step(&s, MSG_LISTEN, err, sizeof(err));
	OK(pc_step(&s, MSG_DISCARD, err, sizeof(err)) == -EPROTO, "DISCARD after LISTEN: %s", err);
	OK(pc_step(&s, MSG_HELLO_ACK, err, sizeof(err)) == -EPROTO, "return-path frame on the main stream: %s", err);
}

static void test_devstate(void)
{
	struct proto_layout lay;
	struct proto_msg m;
	enum pc_state s = PC_NONE;
	size_t n;

	make_layout(&lay, 1 << 20, 0);
	n = proto_enc_devstate_hdr(buf, 20000, 8192, 100);
	memset(buf + n, 0x33, 100);
	n += 100;
	OK(proto_parse(buf, n, &lay, &m, NULL, err, sizeof(err)) == (int)n &&
	   m.type == MSG_DEVICE_STATE && m.u.devstate.total == 20000 &&
	   m.u.devstate.offset == 8192 && m.u.devstate.len == 100 &&
	   m.u.devstate.data[99] == 0x33, "DEVICE_STATE round trip");
	n = proto_enc_devstate_hdr(buf, 100, 95, 10) + 10;
	OK(proto_parse(buf, n, &lay, &m, NULL, err, sizeof(err)) == -EPROTO,
	   "DEVICE_STATE past its total: %s", err);
	n = proto_enc_devstate_hdr(buf, (uint64_t)PROTO_MAX_DEVSTATE + 1, 0, 10) + 10;
	OK(proto_parse(buf, n, &lay, &m, NULL, err, sizeof(err)) == -EPROTO,
	   "DEVICE_STATE over 16 MiB: %s", err);
	n = proto_enc_devstate_hdr(buf, 100, 0, 0);
	OK(proto_parse(buf, n, &lay, &m, NULL, err, sizeof(err)) == -EPROTO,
	   "empty DEVICE_STATE piece: %s", err);
	proto_enc_hdr(buf, MSG_DEVICE_STATE, 16 + PROTO_DEVSTATE_CHUNK + 1);
	OK(proto_check_hdr(buf, &m.type, &m.len, err, sizeof(err)) == -EPROTO,
	   "DEVICE_STATE piece over %u bytes: %s", PROTO_DEVSTATE_CHUNK, err);
	OK(pc_step(&s, MSG_DEVICE_STATE, err, sizeof(err)) == -EPROTO,
	   "DEVICE_STATE before LISTEN: %s", err);
	pc_step(&s, MSG_ADVISE, err, sizeof(err));
	pc_step(&s, MSG_LISTEN, err, sizeof(err));
	OK(pc_step(&s, MSG_DEVICE_STATE, err, sizeof(err)) == 0 && s == PC_LISTENING,
	   "DEVICE_STATE between LISTEN and RUN");
	pc_step(&s, MSG_RUN, err, sizeof(err));
	OK(pc_step(&s, MSG_DEVICE_STATE, err, sizeof(err)) == -EPROTO,
	   "DEVICE_STATE after RUN: %s", err);
}

static void test_garbage(void)
{
	struct proto_layout lay;
	struct proto_msg m;
	uint64_t x = 88172645463325252ULL;
	int accepted = 0;

	make_layout(&lay, 1 << 20, 0);
	for (int i = 0; i < 200000; i++) {
		size_t n = 8 + (size_t)(x % 64);

		for (size_t k = 0; k < n; k++) {
			x ^= x << 13; x ^= x >> 7; x ^= x << 17;
			buf[k] = (uint8_t)x;
		}
		/* Sometimes a plausible header, to get past the first check. */
		if (i & 1) {
			buf[0] = 0;
			buf[1] = (uint8_t)(x % 10);
			buf[2] = buf[3] = buf[4] = buf[5] = 0;
		}
		accepted += parse(buf, n, &lay, &m) > 0;
	}
	OK(1, "200000 random frames parsed without a crash (%d accepted)", accepted);
}

/* ---- chan framing over a real socket ---- */

#define CHAN_FRAMES 300

/* @n PAGE frames for pages first.., each page filled with its number. */
static size_t page_stream(uint8_t *out, const struct proto_layout *lay,
			  uint64_t first, int n)
{
	size_t len = 0;

	for (int i = 0; i < n; i++) {
		len += proto_enc_page_hdr(out + len, lay, first + (uint64_t)i);
		memset(out + len, (int)((first + (uint64_t)i) & 0xff), PROTO_PAGE_SIZE);
		len += PROTO_PAGE_SIZE;
	}
	return len;
}

/* Child: write @len bytes in pieces of awkward sizes, then close. */
static void write_pieces(int fd, const uint8_t *p, size_t len)
{
	static const size_t sizes[] = { 1, 7, 4113, 65537, 3, 20000, 16, 8192 };
	size_t off = 0;

	for (int i = 0; off < len; i++) {
		size_t n = sizes[i % 8];

		if (n > len - off)
			n = len - off;
		if (write(fd, p + off, n) != (ssize_t)n)
			_exit(1);
		off += n;
	}
	_exit(0);
}

static void test_chan(void)
{
	static uint8_t stream[CHAN_FRAMES * (PROTO_HDR_LEN + 16 + PROTO_PAGE_SIZE)];
	struct proto_layout lay;
	struct proto_msg m;
	struct chan c;
	uint16_t type;
	uint32_t len;
	int sv[2], good = 0, ret;
	size_t n;
	pid_t pid;

	make_layout(&lay, 4 << 20, 0);
	n = page_stream(stream, &lay, 0, CHAN_FRAMES);
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv)) {
		OK(0, "socketpair: %s", strerror(errno));
		return;
	}
	pid = fork();
	if (pid == 0) {
		close(sv[0]);
		write_pieces(sv[1], stream, n);
	}
	close(sv[1]);
	chan_init(&c, "main", -1);
	chan_attach(&c, sv[0]);
	for (int i = 0; i < CHAN_FRAMES; i++) {
		if (chan_read_frame(&c, &type, buf, &len, err, sizeof(err)) ||
		    proto_decode(type, buf, len, &lay, &m, err, sizeof(err)) ||
		    type != MSG_PAGE || m.u.page.page != (uint64_t)i ||
		    m.u.page.data[0] != (i & 0xff) ||
		    m.u.page.data[PROTO_PAGE_SIZE - 1] != (i & 0xff))
			break;
		good++;
	}
	ret = chan_read_frame(&c, &type, buf, &len, err, sizeof(err));
	waitpid(pid, NULL, 0);
	OK(good == CHAN_FRAMES && ret == -EPIPE && c.bytes_in == n,
	   "%d of %d PAGE frames, written in pieces of 1..65537 bytes, framed intact; then a clean end (%d)",
	   good, CHAN_FRAMES, ret);
	chan_close(&c);

	/* A frame cut short: -EIO, and how much of it came. */
	socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
	n = page_stream(stream, &lay, 5, 2) - 1000;
	pid = fork();
	if (pid == 0) {
		close(sv[0]);
		write_pieces(sv[1], stream, n);
	}
	close(sv[1]);
	chan_attach(&c, sv[0]);
	ret = chan_read_frame(&c, &type, buf, &len, err, sizeof(err));
	ret = ret ? ret : chan_read_frame(&c, &type, buf, &len, err, sizeof(err));
	waitpid(pid, NULL, 0);
	OK(ret == -EIO && strstr(err, "3112 of 4112 bytes"),
	   "second frame cut 1000 bytes short: %s", err);
	chan_close(&c);

	/* Bytes buffered from a connection are dropped with it. */
	socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
	n = page_stream(stream, &lay, 10, 2);
	ret = write(sv[1], stream, n) == (ssize_t)n ? 0 : -1;
	chan_attach(&c, sv[0]);
	if (!ret)
		ret = chan_read_frame(&c, &type, buf, &len, err, sizeof(err));
	OK(!ret && chan_buffered(&c) == PROTO_HDR_LEN + 16 + PROTO_PAGE_SIZE,
	   "one recv() took both frames: the second one is buffered (%zu bytes)",
	   chan_buffered(&c));
	close(sv[1]);
	close(sv[0]);
	socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
	n = page_stream(stream, &lay, 20, 1);
	ret = write(sv[1], stream, n) == (ssize_t)n ? 0 : -1;
	chan_attach(&c, sv[0]);
	if (!ret)
		ret = chan_read_frame(&c, &type, buf, &len, err, sizeof(err));
	if (!ret)
		ret = proto_decode(type, buf, len, &lay, &m, err, sizeof(err));
	OK(!ret && m.u.page.page == 20 && m.u.page.data[0] == 20 && chan_buffered(&c) == 0,
	   "after chan_attach() to a new connection its frame comes, not the old one's leftover");
	close(sv[1]);
	chan_close(&c);
}

/* ---- fake peers ---- */

/*
 * "resend": after RUN, wait for the first REQ and send that page twice on
 * main (as a source with RESEND does when a requested page is already on
 * its way), then every other page once, END, and wait for DONE.  The
 * destination must drop the second copy (counted: pages_resent 1).
 */
static int fake_resend(struct chan *c, const struct proto_layout *lay, const char *image)
{
	uint64_t req = UINT64_MAX, pages = lay->total_pages;
	uint8_t *ram = malloc(pages * PROTO_PAGE_SIZE);
	struct proto_msg m;
	uint16_t type;
	uint32_t len;
	size_t n;
	int fd = image ? open(image, O_RDONLY) : -1;

	if (!ram || fd < 0 || pread(fd, ram, pages * PROTO_PAGE_SIZE, 0) !=
	    (ssize_t)(pages * PROTO_PAGE_SIZE)) {
		fprintf(stderr, "fake-source: cannot read %llu pages of %s\n",
			(unsigned long long)pages, image ? image : "(no image)");
		return 1;
	}
	close(fd);
	n = proto_enc_empty(buf, MSG_ADVISE);
	n += proto_enc_empty(buf + n, MSG_LISTEN);
	n += proto_enc_empty(buf + n, MSG_RUN);
	chan_write(c, buf, n, NULL, 0);
	while (req == UINT64_MAX) {
		if (chan_read_frame(c, &type, buf, &len, err, sizeof(err)) ||
		    proto_decode(type, buf, len, lay, &m, err, sizeof(err))) {
			fprintf(stderr, "fake-source: waiting for a REQ: %s\n", err);
			return 1;
		}
		if (type == MSG_REQ)
			req = m.u.page.page;
	}
	printf("fake-source: page %llu requested, sent twice\n", (unsigned long long)req);
	for (int i = 0; i < 2; i++) {
		n = proto_enc_page_hdr(buf, lay, req);
		chan_write(c, buf, n, ram + req * PROTO_PAGE_SIZE, PROTO_PAGE_SIZE);
	}
	for (uint64_t p = 0; p < pages; p++) {
		if (p == req)
			continue;
		n = proto_enc_page_hdr(buf, lay, p);
		chan_write(c, buf, n, ram + p * PROTO_PAGE_SIZE, PROTO_PAGE_SIZE);
	}
	n = proto_enc_empty(buf, MSG_END);
	chan_write(c, buf, n, NULL, 0);
	free(ram);
	for (;;) {
		if (chan_read_frame(c, &type, buf, &len, err, sizeof(err))) {
			fprintf(stderr, "fake-source: no DONE: %s\n", err);
			return 1;
		}
		if (type == MSG_DONE)
			return 0;
		if (type == MSG_ERROR) {
			proto_decode(type, buf, len, lay, &m, err, sizeof(err));
			fprintf(stderr, "fake-source: destination said error %u: %s\n",
				m.u.error.code, m.u.error.text);
			return 1;
		}
	}
}

static int fake_source(const char *addr, const char *what, const char *image)
{
	struct chan c;
	struct proto_layout lay;
	struct proto_msg m;
	uint16_t type;
	uint32_t len;
	size_t n;
	int fd = net_connect(addr, 10000, -1, 0);

	if (fd < 0) {
		fprintf(stderr, "fake-source: connect %s: %s\n", addr, strerror(-fd));
		return 1;
	}
	chan_init(&c, "main", -1);
	chan_attach(&c, fd);
	make_layout(&lay, 1 << 20, 0);
	if (!strcmp(what, "garbage")) {
		memcpy(buf, "GET / HTTP/1.0\r\n\r\nxxxxxxxxxxxxxxxxx", 34);
		chan_write(&c, buf, 34, NULL, 0);
		goto expect_error;
	}
	if (!strcmp(what, "version")) {
		n = hello(buf, 7, 9, 1 << 20, 0);
		chan_write(&c, buf, n, NULL, 0);
		goto expect_error;
	}
	if (!strcmp(what, "hello-oversize")) {
		proto_enc_hdr(buf, MSG_HELLO, 0x7fffffff);
		chan_write(&c, buf, 8, NULL, 0);
		goto expect_error;
	}
	n = hello(buf, 1, 1, 1 << 20, 0);
	chan_write(&c, buf, n, NULL, 0);
	if (chan_read_frame(&c, &type, buf, &len, err, sizeof(err)) ||
	    type != MSG_HELLO_ACK) {
		fprintf(stderr, "fake-source: no HELLO_ACK: %s\n", err);
		return 1;
	}
	if (!strcmp(what, "resend"))
		return fake_resend(&c, &lay, image);
	if (!strcmp(what, "runfirst")) {
		n = proto_enc_empty(buf, MSG_RUN);
		chan_write(&c, buf, n, NULL, 0);
		goto expect_error;
	}
	if (!strcmp(what, "devstate-gap") || !strcmp(what, "devstate-short")) {
		bool gap = !strcmp(what, "devstate-gap");

		n = proto_enc_empty(buf, MSG_ADVISE);
		n += proto_enc_empty(buf + n, MSG_LISTEN);
		n += proto_enc_devstate_hdr(buf + n, 100, 0, 10);
		memset(buf + n, 0xd5, 10);
		n += 10;
		if (gap) {	/* bytes 10..49 never sent */
			n += proto_enc_devstate_hdr(buf + n, 100, 50, 10);
			memset(buf + n, 0xd5, 10);
			n += 10;
		} else {	/* RUN with 90 bytes missing */
			n += proto_enc_empty(buf + n, MSG_RUN);
		}
		chan_write(&c, buf, n, NULL, 0);
		goto expect_error;
	}
	n = proto_enc_empty(buf, MSG_ADVISE);
	n += proto_enc_empty(buf + n, MSG_LISTEN);
	n += proto_enc_empty(buf + n, MSG_RUN);
	chan_write(&c, buf, n, NULL, 0);
	n = proto_enc_page_hdr(buf, &lay, 3);
	memset(buf + n, 0x5a, PROTO_PAGE_SIZE);
	n += PROTO_PAGE_SIZE;
	chan_write(&c, buf, n, NULL, 0);	/* one good page */
	if (!strcmp(what, "truncated")) {
		n = proto_enc_page_hdr(buf, &lay, 4);
		chan_write(&c, buf, n + 100, NULL, 0);
		close(fd);
		return 0;
	}
	if (!strcmp(what, "eof")) {
		close(fd);
		return 0;
	}
	if (!strcmp(what, "duplicate")) {
		chan_write(&c, buf, n, NULL, 0);
		goto expect_error;
	}
	if (!strcmp(what, "past-end")) {
		proto_enc_page_hdr(buf, &lay, 3);
		buf[8 + 8 + 4] = 0x10;	/* offset 64 GiB-ish */
		chan_write(&c, buf, n, NULL, 0);
		goto expect_error;
	}
	if (!strcmp(what, "oversize")) {
		proto_enc_hdr(buf, MSG_PAGE, 1u << 30);
		chan_write(&c, buf, 8, NULL, 0);
		goto expect_error;
	}
	if (!strcmp(what, "zero-overlap")) {
		n = proto_enc_run(buf, MSG_ZERO, &lay, 0, 8);	/* covers page 3 */
		chan_write(&c, buf, n, NULL, 0);
		goto expect_error;
	}
	fprintf(stderr, "fake-source: unknown case %s\n", what);
	return 2;
expect_error:
	/* The destination must answer with ERROR (or just close). */
	for (;;) {
		int ret = chan_read_frame(&c, &type, buf, &len, err, sizeof(err));

		if (ret) {
			printf("fake-source: connection closed (%s)\n", err);
			break;
		}
		if (type == MSG_ERROR &&
		    !proto_decode(type, buf, len, &lay, &m, err, sizeof(err))) {
			printf("fake-source: destination said error %u: %s\n",
			       m.u.error.code, m.u.error.text);
			break;
		}
	}
	close(fd);
	return 0;
}

static int fake_dest(const char *addr, const char *what)
{
	bool resend, progress, far, end_race;
	struct chan c;
	struct proto_hello h;
	struct proto_msg m;
	uint16_t type;
	uint32_t len;
	size_t n;
	int fd = net_connect(addr, 10000, -1, 0);

	if (fd < 0) {
		fprintf(stderr, "fake-dest: connect %s: %s\n", addr, strerror(-fd));
		return 1;
	}
	chan_init(&c, "main", -1);
	chan_attach(&c, fd);
	if (chan_read_frame(&c, &type, buf, &len, err, sizeof(err)) ||
	    type != MSG_HELLO ||
	    proto_decode_hello(buf, len, &h, err, sizeof(err)) ||
	    proto_layout_finish(&h.layout, h.ram_size, err, sizeof(err))) {
		fprintf(stderr, "fake-dest: bad HELLO: %s\n", err);
		return 1;
	}
	if (!strcmp(what, "bad-ack")) {
		n = proto_enc_hello_ack(buf, 1, PROTO_PAGE_SIZE, 1ULL << 40, h.session);
		chan_write(&c, buf, n, NULL, 0);
		goto drain;
	}
	if (!strcmp(what, "refuse")) {
		n = proto_enc_error(buf, PROTO_E_PARAM, "no room for this guest");
		chan_write(&c, buf, n, NULL, 0);
		goto drain;
	}
	/*
	 * resend: RESEND without PROGRESS; progress: with it, reporting
	 * where it is (the source's --resend-gap decides); progress-far:
	 * reporting 1 byte read, so that the page looks a whole stream
	 * away; progress-unagreed: PROGRESS frames sent although not agreed;
	 * end-race: DONE and both channels closed while the source still
	 * owes a page sent again (its --test-preempt-delay holds it).
	 */
	far = !strcmp(what, "progress-far");
	progress = far || !strcmp(what, "progress");
	end_race = !strcmp(what, "end-race");
	resend = progress || end_race || !strcmp(what, "resend") ||
		 !strcmp(what, "progress-unagreed");
	n = proto_enc_hello_ack(buf, 1, PROTO_PAGE_SIZE, resend ?
				PROTO_F_ZERO | PROTO_F_PREEMPT | PROTO_F_RESEND |
				(progress ? PROTO_F_PROGRESS : 0) : PROTO_F_ZERO,
				h.session);
	chan_write(&c, buf, n, NULL, 0);
	if (!strcmp(what, "req-past-end")) {
		n = proto_enc_run(buf, MSG_REQ, &h.layout, 0, 1);
		buf[8 + 8 + 3] = 0x40;	/* offset far past the end */
		chan_write(&c, buf, n, NULL, 0);
		goto drain;
	}
	if (resend) {
		struct chan pc;
		uint64_t next = UINT64_MAX;
		int pfd;

		alarm(20);	/* an old source never sends it: fail, not hang */
		pfd = net_connect(addr, 10000, -1, 0);
		if (pfd < 0) {
			fprintf(stderr, "fake-dest: preempt connect: %s\n", strerror(-pfd));
			return 1;
		}
		chan_init(&pc, "preempt", -1);
		chan_attach(&pc, pfd);
		n = proto_enc_preempt_hello(buf, 1, h.session);
		chan_write(&pc, buf, n, NULL, 0);
		/*
		 * Up to the first page; with PROGRESS, whose source weighs
		 * bytes by the stream's rate, on for 100 ms and 12 MiB (more
		 * than loopback's socket buffers hold, so that flushes of the
		 * source's went on for longer than its 20 ms rate window; at
		 * most 256 KiB a millisecond) so that it has one.  Then we
		 * read no more: the source claims and queues far more than
		 * this meanwhile (its socket buffers fill up).
		 */
		for (uint64_t t0 = now_ns(), k = 0;
		     next == UINT64_MAX ||
		     (progress && (now_ns() - t0 < 100000000ULL || chan_read_pos(&c) < (12u << 20)));
		     k++) {
			if (chan_read_frame(&c, &type, buf, &len, err, sizeof(err)) ||
			    proto_decode(type, buf, len, &h.layout, &m, err, sizeof(err))) {
				fprintf(stderr, "fake-dest: main: %s\n", err);
				return 1;
			}
			if (type == MSG_PAGE || type == MSG_ZERO)
				next = m.u.page.page + m.u.page.count;
			if (progress && k % 64 == 63)
				usleep(1000);
		}
		if (end_race) {
			uint64_t first = next - 1;

			/*
			 * Ask for a page we have: the source sends it again on
			 * preempt, after its test delay.  Meanwhile read the
			 * rest up to END, say DONE and close both channels;
			 * preempt with the source's PREEMPT_HELLO unread, so
			 * that the close resets it and the source's late write
			 * fails at once.
			 */
			n = proto_enc_run(buf, MSG_REQ, &h.layout, first, 1);
			chan_write(&c, buf, n, NULL, 0);
			do {
				if (chan_read_frame(&c, &type, buf, &len, err, sizeof(err))) {
					fprintf(stderr, "fake-dest: main before END: %s\n", err);
					return 1;
				}
			} while (type != MSG_END);
			n = proto_enc_u64(buf, MSG_DONE, h.ram_size / PROTO_PAGE_SIZE);
			chan_write(&c, buf, n, NULL, 0);
			close(pfd);
			close(fd);
			printf("fake-dest: page %llu requested again, DONE sent, both channels closed\n",
			       (unsigned long long)first);
			return 0;
		}
		usleep(500 * 1000);
		n = 0;
		if (progress || !strcmp(what, "progress-unagreed"))
			n = proto_enc_u64(buf, MSG_PROGRESS, far ? 1 : chan_read_pos(&c));
		n += proto_enc_run(buf + n, MSG_REQ, &h.layout, next, 1);
		chan_write(&c, buf, n, NULL, 0);
		if (!strcmp(what, "progress-unagreed"))
			goto drain;
		for (;;) {
			struct pollfd pl = { .fd = pfd, .events = POLLIN };

			/*
			 * Whether the source sends it again depends on its
			 * --resend-gap: the page is the next frame on main.
			 * Nothing on preempt within a second: it did not.
			 */
			if (progress && !far && !chan_buffered(&pc) && poll(&pl, 1, 1000) == 0) {
				while (!chan_read_frame(&c, &type, buf, &len, err, sizeof(err)) &&
				       !proto_decode(type, buf, len, &h.layout, &m, err, sizeof(err)))
					if ((type == MSG_PAGE || type == MSG_ZERO) &&
					    m.u.page.page <= next &&
					    next < m.u.page.page + m.u.page.count)
						break;
				printf("fake-dest: page %llu, on its way on main, not sent again on preempt\n",
				       (unsigned long long)next);
				close(pfd);
				close(fd);
				return 0;
			}
			if (chan_read_frame(&pc, &type, buf, &len, err, sizeof(err)) ||
			    proto_decode(type, buf, len, &h.layout, &m, err, sizeof(err))) {
				fprintf(stderr, "fake-dest: preempt: %s\n", err);
				return 1;
			}
			if ((type == MSG_PAGE || type == MSG_ZERO) && m.u.page.page == next) {
				printf("fake-dest: page %llu, on its way on main, came again on preempt (%s)\n",
				       (unsigned long long)next, proto_type_name(type));
				close(pfd);
				close(fd);
				return 0;
			}
		}
	}
	if (!strcmp(what, "die")) {
		/* Read a little, then vanish without DONE. */
		for (int i = 0; i < 10; i++)
			if (chan_read_frame(&c, &type, buf, &len, err, sizeof(err)))
				break;
		close(fd);
		return 0;
	}
	fprintf(stderr, "fake-dest: unknown case %s\n", what);
	return 2;
drain:
	while (!chan_read_frame(&c, &type, buf, &len, err, sizeof(err)))
		if (type == MSG_ERROR &&
		    !proto_decode(type, buf, len, &h.layout, &m, err, sizeof(err)))
			printf("fake-dest: source said error %u: %s\n",
			       m.u.error.code, m.u.error.text);
	close(fd);
	return 0;
}

/* A valid destination-side stream, as a fuzzer seed. */
static int write_seed(const char *path)
{
	struct proto_layout lay;
	FILE *f = fopen(path, "w");
	size_t n;

	if (!f)
		return 1;
	make_layout(&lay, 1 << 20, 64 << 10);
	n = hello(buf, 1, 1, 1 << 20, 64 << 10);
	n += proto_enc_empty(buf + n, MSG_ADVISE);
	{
		uint64_t pages[1] = { 2 };
		uint32_t counts[1] = { 3 };

		n += proto_enc_discard(buf + n, sizeof(buf) - n, &lay, pages, counts, 1);
	}
	n += proto_enc_empty(buf + n, MSG_LISTEN);
	n += proto_enc_empty(buf + n, MSG_RUN);
	n += proto_enc_run(buf + n, MSG_ZERO, &lay, 0, 4);
	n += proto_enc_page_hdr(buf + n, &lay, 260);
	memset(buf + n, 7, PROTO_PAGE_SIZE);
	n += PROTO_PAGE_SIZE;
	n += proto_enc_error(buf + n, 1, "x");
	n += proto_enc_empty(buf + n, MSG_END);
	fwrite(buf, 1, n, f);
	return fclose(f) ? 1 : 0;
}

/* A valid 2 MiB stream: pieces of 4 KiB keep it under the fuzzer's max_len. */
static int write_seed_huge(const char *path)
{
	struct proto_layout lay;
	FILE *f = fopen(path, "w");
	size_t n;

	if (!f)
		return 1;
	make_layout_2m(&lay);
	n = hello_2m(buf, 1, 3);
	n += proto_enc_empty(buf + n, MSG_ADVISE);
	n += proto_enc_empty(buf + n, MSG_LISTEN);
	n += proto_enc_empty(buf + n, MSG_RUN);
	n += proto_enc_run(buf + n, MSG_ZERO, &lay, 0, 2);
	n += piece(buf + n, &lay, 4, 0, PROTO_PAGE_SIZE, 9);
	n += piece(buf + n, &lay, 4, PROTO_PAGE_SIZE, PROTO_PAGE_SIZE, 9);
	n += proto_enc_empty(buf + n, MSG_END);
	fwrite(buf, 1, n, f);
	return fclose(f) ? 1 : 0;
}

int main(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[1], "seed"))
		return write_seed(argv[2]);
	if (argc == 3 && !strcmp(argv[1], "seed-huge"))
		return write_seed_huge(argv[2]);
	if ((argc == 4 || argc == 5) && !strcmp(argv[1], "fake-source"))
		return fake_source(argv[2], argv[3], argc == 5 ? argv[4] : NULL);
	if (argc == 4 && !strcmp(argv[1], "fake-dest"))
		return fake_dest(argv[2], argv[3]);
	if (argc != 1) {
		fprintf(stderr, "usage: test-proto [fake-source|fake-dest ADDR:PORT CASE | fake-source ADDR:PORT resend IMAGE | seed|seed-huge FILE]\n");
		return 2;
	}
	test_header();
	test_hello();
	test_pages();
	test_huge();
	test_state();
	test_devstate();
	test_garbage();
	test_chan();
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
