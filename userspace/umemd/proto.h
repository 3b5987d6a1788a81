/* SPDX-License-Identifier: GPL-2.0 */
/*
 * umemd wire protocol: frame layouts, encoders and a validating decoder.
 * Documentation/protocol.rst is the specification; this file follows it.
 * Everything here is pure (no I/O, no allocation) so it can be unit-tested
 * and fuzzed on its own.  All multi-byte fields are big-endian.
 */
#ifndef UMEMD_PROTO_H
#define UMEMD_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PROTO_MAGIC		"UMEMPOST"	/* 8 bytes, no NUL on the wire */
#define PROTO_VERSION_MIN	1
#define PROTO_VERSION_MAX	3
#define PROTO_VERSION_HUGE	3		/* first version with 2 MiB pages */
#define PROTO_HDR_LEN		8
#define PROTO_PAGE_SIZE		4096U		/* the 4 KiB page, and PAGE's data */
#define PROTO_PAGE_SIZE_2M	(2U << 20)	/* v3: RAM of 2 MiB pages */
#define PROTO_PIECE_MAX		65536U		/* v3: data bytes per PIECE frame */
#define PROTO_MAX_BLOCKS	64
#define PROTO_BLOCK_NAME	64		/* incl. NUL padding */
#define PROTO_MAX_RAM		(1ULL << 40)
#define PROTO_MAX_DISCARD	1024
#define PROTO_MAX_RUN		1024		/* pages per ZERO / REQ */
#define PROTO_MAX_TEXT		256

/* Features: offered by the source, accepted (a subset) by the destination. */
#define PROTO_F_PREEMPT		(1ULL << 0)	/* second channel for requested pages */
#define PROTO_F_ZERO		(1ULL << 1)	/* ZERO frames for zero pages */
#define PROTO_F_RECOVER		(1ULL << 2)	/* v2: postcopy pauses on a broken connection */
#define PROTO_F_DEVSTATE	(1ULL << 3)	/* DEVICE_STATE frames between LISTEN and RUN */
#define PROTO_F_RESEND		(1ULL << 4)	/* a requested page may come twice; the
						 * destination drops the later copy */
#define PROTO_F_PROGRESS	(1ULL << 5)	/* PROGRESS frames before REQ: how far
						 * the destination has read main */
#define PROTO_F_KNOWN		(PROTO_F_PREEMPT | PROTO_F_ZERO | PROTO_F_RECOVER | \
				 PROTO_F_DEVSTATE | PROTO_F_RESEND | PROTO_F_PROGRESS)
#define PROTO_MAP_BITS		32768		/* pages per RECV_MAP frame */
#define PROTO_MAX_DEVSTATE	(16U << 20)	/* device-state blob, bytes */
#define PROTO_DEVSTATE_CHUNK	8192		/* data bytes per DEVICE_STATE frame */

enum proto_type {
	/* source -> destination */
	MSG_HELLO	= 0x01,
	MSG_ADVISE	= 0x02,
	MSG_DISCARD	= 0x03,
	MSG_LISTEN	= 0x04,
	MSG_RUN		= 0x05,
	MSG_PAGE	= 0x06,
	MSG_ZERO	= 0x07,
	MSG_END		= 0x08,
	MSG_PREEMPT_HELLO = 0x09,
	MSG_RESUME	= 0x0a,		/* v2: first frame of a resumed main connection */
	MSG_DEVICE_STATE = 0x0b,	/* DEVSTATE: a piece of the device-state blob */
	MSG_PIECE	= 0x0c,		/* v3: part of a 2 MiB page */
	/* destination -> source (return path) */
	MSG_HELLO_ACK	= 0x41,
	MSG_REQ		= 0x42,
	MSG_ACK		= 0x43,
	MSG_DONE	= 0x44,
	MSG_RECV_MAP	= 0x45,		/* v2: received map, after RESUME */
	MSG_RESUME_OK	= 0x46,		/* v2: end of the received map */
	MSG_PROGRESS	= 0x47,		/* PROGRESS: main-connection bytes read */
	/* either way */
	MSG_ERROR	= 0x7f,
};

/* Error codes carried by MSG_ERROR. */
enum proto_errcode {
	PROTO_E_PROTO = 1,	/* malformed or unexpected frame */
	PROTO_E_VERSION = 2,	/* no common protocol version */
	PROTO_E_PARAM = 3,	/* page size / RAM size / blocks refused */
	PROTO_E_LOCAL = 4,	/* local failure (backend, memory) */
	PROTO_E_CANCEL = 5,	/* operator cancelled */
};

struct proto_block {
	char name[PROTO_BLOCK_NAME];
	uint64_t length;	/* bytes */
	uint64_t base_page;	/* derived: first global page index */
	uint64_t pages;		/* derived */
};

/* What the decoder needs to validate offsets: the block table. */
struct proto_layout {
	uint32_t page_size;
	uint32_t nblocks;
	uint64_t total_pages;
	struct proto_block blocks[PROTO_MAX_BLOCKS];
};

struct proto_hello {
	uint32_t version_min, version_max;
	uint32_t page_size;
	uint64_t ram_size;
	uint64_t features;
	uint64_t session;
	struct proto_layout layout;	/* blocks */
};

/*
 * A decoded frame.  Page numbers are global page indexes (block base +
 * offset / page size), already checked against the layout; data points
 * into the caller's buffer.
 */
struct proto_msg {
	uint16_t type;
	uint32_t len;			/* payload bytes */
	union {
		struct {
			uint32_t version;
			uint32_t page_size;
			uint64_t features;
			uint64_t session;
		} ack;			/* HELLO_ACK */
		struct {
			uint32_t version;
			uint64_t session;
		} preempt;		/* PREEMPT_HELLO, RESUME */
		struct {
			uint64_t page;
			uint32_t bits;
			const uint8_t *map;
		} map;			/* RECV_MAP */
		struct {
			uint64_t page;
			uint32_t count;	/* PAGE: 1 */
			const uint8_t *data;
		} page;			/* PAGE, ZERO, REQ */
		struct {
			uint64_t page;	/* the huge page */
			uint32_t off;	/* bytes into it */
			uint32_t len;
			const uint8_t *data;
		} piece;		/* PIECE */
		struct {
			uint32_t count;
			const uint8_t *raw;
		} discard;
		struct {
			uint64_t total;	/* whole blob, bytes */
			uint64_t offset;
			uint32_t len;
			const uint8_t *data;
		} devstate;		/* DEVICE_STATE */
		uint64_t pages;		/* ACK, DONE */
		uint64_t bytes;		/* PROGRESS */
		struct {
			uint32_t code;
			char text[PROTO_MAX_TEXT + 1];
		} error;
	} u;
};

/* Names for messages and logs. */
const char *proto_type_name(uint16_t type);

/*
 * Check a frame header before reading its payload: known type, zero
 * flags, and a length this type allows (exact for fixed layouts, bounded
 * for the others), so an oversized length is refused before anything is
 * read or allocated.  Returns 0 or -EPROTO with @err filled in.
 */
int proto_check_hdr(const uint8_t hdr[PROTO_HDR_LEN], uint16_t *type,
		     uint32_t *len, char *err, size_t errlen);

/*
 * Decode and validate a payload.  @lay may be NULL before the handshake;
 * frames that carry offsets are then refused.  HELLO is decoded with
 * proto_decode_hello().  Returns 0 or -EPROTO with @err filled in.
 */
int proto_decode(uint16_t type, const uint8_t *payload, uint32_t len,
		 const struct proto_layout *lay, struct proto_msg *m,
		 char *err, size_t errlen);
int proto_decode_hello(const uint8_t *payload, uint32_t len,
		       struct proto_hello *h, char *err, size_t errlen);
/* Entry @i of a decoded DISCARD (validated by proto_decode). */
void proto_discard_entry(const struct proto_msg *m,
			 const struct proto_layout *lay, uint32_t i,
			 uint64_t *page, uint32_t *count);
/* Global page -> (block, byte offset in block). */
int proto_page_to_block(const struct proto_layout *lay, uint64_t page,
			uint32_t *block, uint64_t *offset);
/* Fill base_page/pages/total_pages from the block lengths; validates. */
int proto_layout_finish(struct proto_layout *lay, uint64_t ram_size,
			char *err, size_t errlen);

/*
 * Parse one whole frame from a buffer (header + payload): used by tests
 * and the fuzzer.  Returns bytes consumed, 0 if @len is short of a whole
 * frame, or -EPROTO.
 */
int proto_parse(const uint8_t *buf, size_t len, const struct proto_layout *lay,
		struct proto_msg *m, struct proto_hello *hello,
		char *err, size_t errlen);

/* Encoders: write a whole frame into @out, return its length. */
size_t proto_enc_hdr(uint8_t *out, uint16_t type, uint32_t len);
size_t proto_enc_hello(uint8_t *out, size_t outlen, const struct proto_hello *h);
size_t proto_enc_hello_ack(uint8_t *out, uint32_t version, uint32_t page_size,
			   uint64_t features, uint64_t session);
size_t proto_enc_preempt_hello(uint8_t *out, uint32_t version, uint64_t session);
/* RESUME: same layout as PREEMPT_HELLO. */
size_t proto_enc_resume(uint8_t *out, uint32_t version, uint64_t session);
/* RECV_MAP for pages [page, page + bits): bit i set = page + i received. */
size_t proto_enc_recv_map(uint8_t *out, const struct proto_layout *lay,
			  uint64_t page, uint32_t bits, const uint8_t *map);
size_t proto_enc_empty(uint8_t *out, uint16_t type);
/* PAGE header only (16-byte payload prefix); the data follows. */
size_t proto_enc_page_hdr(uint8_t *out, const struct proto_layout *lay,
			  uint64_t page);
/* PIECE header (16-byte payload prefix): @len bytes at @off into @page. */
size_t proto_enc_piece_hdr(uint8_t *out, const struct proto_layout *lay,
			   uint64_t page, uint32_t off, uint32_t len);
/* ZERO or REQ. */
size_t proto_enc_run(uint8_t *out, uint16_t type,
		     const struct proto_layout *lay, uint64_t page,
		     uint32_t count);
size_t proto_enc_u64(uint8_t *out, uint16_t type, uint64_t v);
/* DEVICE_STATE header (16-byte payload prefix); @len data bytes follow. */
size_t proto_enc_devstate_hdr(uint8_t *out, uint64_t total, uint64_t offset,
			      uint32_t len);
size_t proto_enc_error(uint8_t *out, uint32_t code, const char *text);
/* DISCARD with @n (page, count) ranges; each range within one block. */
size_t proto_enc_discard(uint8_t *out, size_t outlen,
			 const struct proto_layout *lay, const uint64_t *pages,
			 const uint32_t *counts, uint32_t n);

/* The largest frame of any type (a full PIECE: 65560 bytes; a full DISCARD
 * is 16400, PAGE 4120, HELLO at most 4664): the size of every receive
 * buffer. */
#define PROTO_MAX_FRAME	(PROTO_HDR_LEN + 16 + PROTO_PIECE_MAX)
#define PROTO_HELLO_FIXED	48
#define PROTO_HELLO_BLOCK	72

/* ---- destination postcopy state machine (state.c) ---- */
enum pc_state {
	PC_NONE,	/* handshake done, nothing else */
	PC_ADVISE,	/* postcopy announced: region set up */
	PC_DISCARD,	/* receiving discard ranges */
	PC_LISTENING,	/* faults are forwarded as requests */
	PC_RUNNING,	/* vCPUs run */
	PC_END,		/* source sent everything */
};
const char *pc_state_name(enum pc_state s);
/* Whether a source frame may arrive in state @s. */
bool pc_allowed(enum pc_state s, uint16_t type);
/* The one place the state changes: -EPROTO if @type is not allowed. */
int pc_step(enum pc_state *s, uint16_t type, char *err, size_t errlen);
#endif
