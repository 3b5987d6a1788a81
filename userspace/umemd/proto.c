// SPDX-License-Identifier: GPL-2.0
/*
 * umemd wire protocol: encoders and the validating decoder.
 *
 * Rule: nothing is used before it is checked.  proto_check_hdr() bounds the
 * payload length per type before the payload is read; proto_decode()
 * checks the exact length, reserved fields, block numbers, alignment and
 * ranges before handing out a page number.
 */
#define _GNU_SOURCE
#include <endian.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "proto.h"

static void put16(uint8_t *p, uint16_t v) { v = htobe16(v); memcpy(p, &v, 2); }
static void put32(uint8_t *p, uint32_t v) { v = htobe32(v); memcpy(p, &v, 4); }
static void put64(uint8_t *p, uint64_t v) { v = htobe64(v); memcpy(p, &v, 8); }
static uint16_t get16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return be16toh(v); }
static uint32_t get32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return be32toh(v); }
static uint64_t get64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return be64toh(v); }

__attribute__((format(printf, 3, 4)))
static int fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -EPROTO;
}

const char *proto_type_name(uint16_t type)
{
	switch (type) {
	case MSG_HELLO: return "HELLO";
	case MSG_ADVISE: return "ADVISE";
	case MSG_DISCARD: return "DISCARD";
	case MSG_LISTEN: return "LISTEN";
	case MSG_RUN: return "RUN";
	case MSG_PAGE: return "PAGE";
	case MSG_ZERO: return "ZERO";
	case MSG_END: return "END";
	case MSG_PREEMPT_HELLO: return "PREEMPT_HELLO";
	case MSG_DEVICE_STATE: return "DEVICE_STATE";
	case MSG_PIECE: return "PIECE";
	case MSG_RESUME: return "RESUME";
	case MSG_RECV_MAP: return "RECV_MAP";
	case MSG_RESUME_OK: return "RESUME_OK";
	case MSG_PROGRESS: return "PROGRESS";
	case MSG_HELLO_ACK: return "HELLO_ACK";
	case MSG_REQ: return "REQ";
	case MSG_ACK: return "ACK";
	case MSG_DONE: return "DONE";
	case MSG_ERROR: return "ERROR";
	default: return "unknown";
	}
}

/* Payload length bounds per type: [min, max]; min == max for fixed ones. */
static int len_bounds(uint16_t type, uint32_t *min, uint32_t *max)
{
	switch (type) {
	case MSG_HELLO:
		*min = PROTO_HELLO_FIXED + PROTO_HELLO_BLOCK;
		*max = PROTO_HELLO_FIXED + PROTO_HELLO_BLOCK * PROTO_MAX_BLOCKS;
		return 0;
	case MSG_ADVISE: case MSG_LISTEN: case MSG_RUN: case MSG_END:
		*min = *max = 0;
		return 0;
	case MSG_DISCARD:
		*min = 8 + 16;
		*max = 8 + 16 * PROTO_MAX_DISCARD;
		return 0;
	case MSG_PAGE:
		*min = *max = 16 + PROTO_PAGE_SIZE;
		return 0;
	case MSG_ZERO: case MSG_REQ:
		*min = *max = 16;
		return 0;
	case MSG_PIECE:
		*min = 16 + PROTO_PAGE_SIZE;
		*max = 16 + PROTO_PIECE_MAX;
		return 0;
	case MSG_PREEMPT_HELLO: case MSG_RESUME:
		*min = *max = 24;
		return 0;
	case MSG_RECV_MAP:
		*min = 16 + 1;
		*max = 16 + PROTO_MAP_BITS / 8;
		return 0;
	case MSG_RESUME_OK:
		*min = *max = 8;
		return 0;
	case MSG_DEVICE_STATE:
		*min = 16 + 1;
		*max = 16 + PROTO_DEVSTATE_CHUNK;
		return 0;
	case MSG_HELLO_ACK:
		*min = *max = 24;
		return 0;
	case MSG_ACK: case MSG_DONE: case MSG_PROGRESS:
		*min = *max = 8;
		return 0;
	case MSG_ERROR:
		*min = 8;
		*max = 8 + PROTO_MAX_TEXT;
		return 0;
	default:
		return -1;
	}
}

int proto_check_hdr(const uint8_t hdr[PROTO_HDR_LEN], uint16_t *type,
		    uint32_t *len, char *err, size_t errlen)
{
	uint16_t t = get16(hdr), flags = get16(hdr + 2);
	uint32_t l = get32(hdr + 4), min, max;

	if (len_bounds(t, &min, &max))
		return fail(err, errlen, "unknown frame type %#x", t);
	if (flags)
		return fail(err, errlen, "%s frame with non-zero flags %#x",
			    proto_type_name(t), flags);
	if (l < min || l > max) {
		if (min == max)
			return fail(err, errlen, "%s frame of %u bytes (must be %u)",
				    proto_type_name(t), l, min);
		return fail(err, errlen, "%s frame of %u bytes (must be %u..%u)",
			    proto_type_name(t), l, min, max);
	}
	*type = t;
	*len = l;
	return 0;
}

int proto_layout_finish(struct proto_layout *lay, uint64_t ram_size,
			char *err, size_t errlen)
{
	uint64_t total = 0;

	if (lay->page_size != PROTO_PAGE_SIZE && lay->page_size != PROTO_PAGE_SIZE_2M)
		return fail(err, errlen, "page size %u not supported (only %u or %u)",
			    lay->page_size, PROTO_PAGE_SIZE, PROTO_PAGE_SIZE_2M);
	if (!lay->nblocks || lay->nblocks > PROTO_MAX_BLOCKS)
		return fail(err, errlen, "%u RAM blocks (must be 1..%u)",
			    lay->nblocks, PROTO_MAX_BLOCKS);
	for (uint32_t i = 0; i < lay->nblocks; i++) {
		struct proto_block *b = &lay->blocks[i];

		if (!b->length || b->length % lay->page_size ||
		    b->length > PROTO_MAX_RAM)
			return fail(err, errlen,
				    "block %u (%s): bad length %llu", i, b->name,
				    (unsigned long long)b->length);
		b->base_page = total / lay->page_size;
		b->pages = b->length / lay->page_size;
		total += b->length;
		if (total > PROTO_MAX_RAM)
			return fail(err, errlen, "RAM larger than %llu bytes",
				    (unsigned long long)PROTO_MAX_RAM);
		for (uint32_t j = 0; j < i; j++)
			if (!strcmp(lay->blocks[j].name, b->name))
				return fail(err, errlen, "duplicate block name %s",
					    b->name);
	}
	if (total != ram_size)
		return fail(err, errlen,
			    "blocks add up to %llu bytes, RAM size says %llu",
			    (unsigned long long)total,
			    (unsigned long long)ram_size);
	lay->total_pages = total / lay->page_size;
	return 0;
}

static bool name_ok(const char *raw)
{
	size_t n = strnlen(raw, PROTO_BLOCK_NAME);

	if (n == 0 || n == PROTO_BLOCK_NAME)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = raw[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || strchr("_.-:/", c)))
			return false;
	}
	for (size_t i = n; i < PROTO_BLOCK_NAME; i++)
		if (raw[i])
			return false;	/* padding must be zero */
	return true;
}

int proto_decode_hello(const uint8_t *p, uint32_t len, struct proto_hello *h,
		       char *err, size_t errlen)
{
	uint32_t nblocks;

	memset(h, 0, sizeof(*h));
	if (len < PROTO_HELLO_FIXED)
		return fail(err, errlen, "HELLO too short");
	if (memcmp(p, PROTO_MAGIC, 8))
		return fail(err, errlen, "bad magic: not a umemd migration stream");
	h->version_min = get16(p + 8);
	h->version_max = get16(p + 10);
	h->page_size = get32(p + 12);
	nblocks = get32(p + 16);
	if (get32(p + 20))
		return fail(err, errlen, "HELLO reserved field not zero");
	h->ram_size = get64(p + 24);
	h->features = get64(p + 32);
	h->session = get64(p + 40);
	if (h->version_min > h->version_max || h->version_min == 0)
		return fail(err, errlen, "HELLO version range %u..%u invalid",
			    h->version_min, h->version_max);
	if (!nblocks || nblocks > PROTO_MAX_BLOCKS)
		return fail(err, errlen, "HELLO with %u blocks (must be 1..%u)",
			    nblocks, PROTO_MAX_BLOCKS);
	if (len != PROTO_HELLO_FIXED + (uint64_t)nblocks * PROTO_HELLO_BLOCK)
		return fail(err, errlen,
			    "HELLO of %u bytes for %u blocks (must be %u)", len,
			    nblocks, PROTO_HELLO_FIXED + nblocks * PROTO_HELLO_BLOCK);
	h->layout.page_size = h->page_size;
	h->layout.nblocks = nblocks;
	for (uint32_t i = 0; i < nblocks; i++) {
		const uint8_t *b = p + PROTO_HELLO_FIXED + i * PROTO_HELLO_BLOCK;

		if (!name_ok((const char *)b))
			return fail(err, errlen, "block %u: bad name", i);
		memcpy(h->layout.blocks[i].name, b, PROTO_BLOCK_NAME);
		h->layout.blocks[i].length = get64(b + PROTO_BLOCK_NAME);
	}
	return 0;
}

/* Checks (block, offset, count) and gives the global page. */
static int locate(const struct proto_layout *lay, const uint8_t *p,
		  bool has_count, uint64_t *page, uint32_t *count,
		  const char *what, char *err, size_t errlen)
{
	uint32_t block = get32(p), cnt = get32(p + 4);
	uint64_t off = get64(p + 8);
	const struct proto_block *b;

	if (!lay)
		return fail(err, errlen, "%s before the handshake", what);
	if (!has_count) {
		if (cnt)
			return fail(err, errlen, "%s reserved field not zero", what);
		cnt = 1;
	}
	if (block >= lay->nblocks)
		return fail(err, errlen, "%s for block %u (only %u)", what,
			    block, lay->nblocks);
	b = &lay->blocks[block];
	if (off % lay->page_size)
		return fail(err, errlen, "%s offset %#llx not page aligned",
			    what, (unsigned long long)off);
	if (!cnt || cnt > PROTO_MAX_RUN)
		return fail(err, errlen, "%s count %u (must be 1..%u)", what,
			    cnt, PROTO_MAX_RUN);
	if (off / lay->page_size >= b->pages ||
	    cnt > b->pages - off / lay->page_size)
		return fail(err, errlen,
			    "%s offset %#llx + %u pages past the end of block %s (%llu bytes)",
			    what, (unsigned long long)off, cnt, b->name,
			    (unsigned long long)b->length);
	*page = b->base_page + off / lay->page_size;
	*count = cnt;
	return 0;
}

int proto_decode(uint16_t type, const uint8_t *p, uint32_t len,
		 const struct proto_layout *lay, struct proto_msg *m,
		 char *err, size_t errlen)
{
	uint32_t min, max;

	memset(m, 0, sizeof(*m));
	m->type = type;
	m->len = len;
	if (len_bounds(type, &min, &max) || len < min || len > max)
		return fail(err, errlen, "bad %s frame length %u",
			    proto_type_name(type), len);
	switch (type) {
	case MSG_ADVISE: case MSG_LISTEN: case MSG_RUN: case MSG_END:
		return 0;
	case MSG_HELLO:
		return fail(err, errlen, "unexpected HELLO");
	case MSG_HELLO_ACK:
		m->u.ack.version = get32(p);
		m->u.ack.page_size = get32(p + 4);
		m->u.ack.features = get64(p + 8);
		m->u.ack.session = get64(p + 16);
		return 0;
	case MSG_PREEMPT_HELLO: case MSG_RESUME:
		if (memcmp(p, PROTO_MAGIC, 8))
			return fail(err, errlen, "%s: bad magic", proto_type_name(type));
		m->u.preempt.version = get32(p + 8);
		if (get32(p + 12))
			return fail(err, errlen, "%s reserved field not zero", proto_type_name(type));
		m->u.preempt.session = get64(p + 16);
		return 0;
	case MSG_RECV_MAP: {
		uint64_t pg = get64(p);
		uint32_t bits = get32(p + 8);

		if (get32(p + 12))
			return fail(err, errlen, "RECV_MAP reserved field not zero");
		if (!bits || bits > PROTO_MAP_BITS || len != 16 + (bits + 7) / 8)
			return fail(err, errlen, "RECV_MAP of %u bytes for %u pages", len, bits);
		if (!lay || pg > lay->total_pages || bits > lay->total_pages - pg)
			return fail(err, errlen, "RECV_MAP pages %llu+%u past the end",
				    (unsigned long long)pg, bits);
		m->u.map.page = pg;
		m->u.map.bits = bits;
		m->u.map.map = p + 16;
		return 0;
	}
	case MSG_DEVICE_STATE: {
		uint64_t total = get64(p), off = get64(p + 8);
		uint32_t n = len - 16;

		if (total > PROTO_MAX_DEVSTATE)
			return fail(err, errlen, "DEVICE_STATE of %llu bytes (at most %u)",
				    (unsigned long long)total, PROTO_MAX_DEVSTATE);
		if (off > total || n > total - off)
			return fail(err, errlen, "DEVICE_STATE bytes %llu+%u past its end %llu",
				    (unsigned long long)off, n, (unsigned long long)total);
		m->u.devstate.total = total;
		m->u.devstate.offset = off;
		m->u.devstate.len = n;
		m->u.devstate.data = p + 16;
		return 0;
	}
	case MSG_RESUME_OK:
		m->u.pages = get64(p);
		if (lay && m->u.pages > lay->total_pages)
			return fail(err, errlen, "RESUME_OK claims %llu pages of %llu",
				    (unsigned long long)m->u.pages,
				    (unsigned long long)lay->total_pages);
		return 0;
	case MSG_PAGE:
		if (lay && lay->page_size != PROTO_PAGE_SIZE)
			return fail(err, errlen,
				    "PAGE in a RAM of %u-byte pages (those travel as PIECE)",
				    lay->page_size);
		m->u.page.data = p + 16;
		return locate(lay, p, false, &m->u.page.page, &m->u.page.count,
			      "PAGE", err, errlen);
	case MSG_PIECE: {
		uint32_t block = get32(p), n = get32(p + 4);
		uint64_t off = get64(p + 8), in;
		const struct proto_block *b;

		if (!lay)
			return fail(err, errlen, "PIECE before the handshake");
		if (lay->page_size == PROTO_PAGE_SIZE)
			return fail(err, errlen, "PIECE in a RAM of 4096-byte pages");
		if (n != len - 16 || n % PROTO_PAGE_SIZE)
			return fail(err, errlen,
				    "PIECE of %u data bytes in a %u-byte frame (a multiple of %u)",
				    n, len, PROTO_PAGE_SIZE);
		if (block >= lay->nblocks)
			return fail(err, errlen, "PIECE for block %u (only %u)", block,
				    lay->nblocks);
		b = &lay->blocks[block];
		in = off % lay->page_size;
		if (off % PROTO_PAGE_SIZE || off >= b->length || in + n > lay->page_size)
			return fail(err, errlen,
				    "PIECE of %u bytes at %#llx: not 4 KiB aligned, past block %s or across a %u-byte page",
				    n, (unsigned long long)off, b->name, lay->page_size);
		m->u.piece.page = b->base_page + off / lay->page_size;
		m->u.piece.off = (uint32_t)in;
		m->u.piece.len = n;
		m->u.piece.data = p + 16;
		return 0;
	}
	case MSG_ZERO: case MSG_REQ:
		return locate(lay, p, true, &m->u.page.page, &m->u.page.count,
			      proto_type_name(type), err, errlen);
	case MSG_DISCARD: {
		uint32_t n = get32(p);

		if (get32(p + 4))
			return fail(err, errlen, "DISCARD reserved field not zero");
		if (!n || n > PROTO_MAX_DISCARD || len != 8 + 16 * n)
			return fail(err, errlen,
				    "DISCARD of %u bytes with %u ranges", len, n);
		for (uint32_t i = 0; i < n; i++) {
			uint64_t pg;
			uint32_t c;
			int ret = locate(lay, p + 8 + 16 * i, true, &pg, &c,
					 "DISCARD range", err, errlen);

			if (ret)
				return ret;
		}
		m->u.discard.count = n;
		m->u.discard.raw = p + 8;
		return 0;
	}
	case MSG_ACK: case MSG_DONE:
		m->u.pages = get64(p);
		if (lay && m->u.pages > lay->total_pages)
			return fail(err, errlen, "%s claims %llu pages of %llu",
				    proto_type_name(type),
				    (unsigned long long)m->u.pages,
				    (unsigned long long)lay->total_pages);
		return 0;
	case MSG_PROGRESS:
		/* Any count: only its sender knows the connection's length. */
		m->u.bytes = get64(p);
		return 0;
	case MSG_ERROR: {
		uint32_t tl = get32(p + 4);

		m->u.error.code = get32(p);
		if (tl != len - 8)
			return fail(err, errlen, "ERROR text length %u in a %u-byte frame",
				    tl, len);
		for (uint32_t i = 0; i < tl; i++) {
			char c = (char)p[8 + i];

			m->u.error.text[i] = (c >= 0x20 && c < 0x7f) ? c : '?';
		}
		m->u.error.text[tl] = 0;
		return 0;
	}
	default:
		return fail(err, errlen, "unknown frame type %#x", type);
	}
}

void proto_discard_entry(const struct proto_msg *m,
			 const struct proto_layout *lay, uint32_t i,
			 uint64_t *page, uint32_t *count)
{
	const uint8_t *e = m->u.discard.raw + 16 * i;

	*page = lay->blocks[get32(e)].base_page + get64(e + 8) / lay->page_size;
	*count = get32(e + 4);
}

int proto_page_to_block(const struct proto_layout *lay, uint64_t page,
			uint32_t *block, uint64_t *offset)
{
	for (uint32_t i = 0; i < lay->nblocks; i++) {
		const struct proto_block *b = &lay->blocks[i];

		if (page >= b->base_page && page - b->base_page < b->pages) {
			*block = i;
			*offset = (page - b->base_page) * lay->page_size;
			return 0;
		}
	}
	return -ERANGE;
}

int proto_parse(const uint8_t *buf, size_t len, const struct proto_layout *lay,
		struct proto_msg *m, struct proto_hello *hello,
		char *err, size_t errlen)
{
	uint16_t type;
	uint32_t plen;
	int ret;

	if (len < PROTO_HDR_LEN)
		return 0;
	ret = proto_check_hdr(buf, &type, &plen, err, errlen);
	if (ret)
		return ret;
	if (len - PROTO_HDR_LEN < plen)
		return 0;
	if (type == MSG_HELLO) {
		memset(m, 0, sizeof(*m));
		m->type = type;
		m->len = plen;
		ret = proto_decode_hello(buf + PROTO_HDR_LEN, plen, hello, err, errlen);
		if (!ret)
			ret = proto_layout_finish(&hello->layout, hello->ram_size,
						  err, errlen);
	} else {
		ret = proto_decode(type, buf + PROTO_HDR_LEN, plen, lay, m, err,
				   errlen);
	}
	return ret ? ret : (int)(PROTO_HDR_LEN + plen);
}

size_t proto_enc_hdr(uint8_t *out, uint16_t type, uint32_t len)
{
	put16(out, type);
	put16(out + 2, 0);
	put32(out + 4, len);
	return PROTO_HDR_LEN;
}

size_t proto_enc_hello(uint8_t *out, size_t outlen, const struct proto_hello *h)
{
	uint32_t n = h->layout.nblocks;
	uint32_t len = PROTO_HELLO_FIXED + n * PROTO_HELLO_BLOCK;
	uint8_t *p = out + PROTO_HDR_LEN;

	if (n > PROTO_MAX_BLOCKS || outlen < PROTO_HDR_LEN + len)
		return 0;
	proto_enc_hdr(out, MSG_HELLO, len);
	memcpy(p, PROTO_MAGIC, 8);
	put16(p + 8, (uint16_t)h->version_min);
	put16(p + 10, (uint16_t)h->version_max);
	put32(p + 12, h->page_size);
	put32(p + 16, n);
	put32(p + 20, 0);
	put64(p + 24, h->ram_size);
	put64(p + 32, h->features);
	put64(p + 40, h->session);
	for (uint32_t i = 0; i < n; i++) {
		uint8_t *b = p + PROTO_HELLO_FIXED + i * PROTO_HELLO_BLOCK;

		memset(b, 0, PROTO_BLOCK_NAME);
		strncpy((char *)b, h->layout.blocks[i].name, PROTO_BLOCK_NAME - 1);
		put64(b + PROTO_BLOCK_NAME, h->layout.blocks[i].length);
	}
	return PROTO_HDR_LEN + len;
}

size_t proto_enc_hello_ack(uint8_t *out, uint32_t version, uint32_t page_size,
			   uint64_t features, uint64_t session)
{
	proto_enc_hdr(out, MSG_HELLO_ACK, 24);
	put32(out + 8, version);
	put32(out + 12, page_size);
	put64(out + 16, features);
	put64(out + 24, session);
	return PROTO_HDR_LEN + 24;
}

static size_t enc_session(uint8_t *out, uint16_t type, uint32_t version,
			  uint64_t session)
{
	proto_enc_hdr(out, type, 24);
	memcpy(out + 8, PROTO_MAGIC, 8);
	put32(out + 16, version);
	put32(out + 20, 0);
	put64(out + 24, session);
	return PROTO_HDR_LEN + 24;
}

size_t proto_enc_resume(uint8_t *out, uint32_t version, uint64_t session)
{
	return enc_session(out, MSG_RESUME, version, session);
}

size_t proto_enc_recv_map(uint8_t *out, const struct proto_layout *lay,
			  uint64_t page, uint32_t bits, const uint8_t *map)
{
	uint32_t n = (bits + 7) / 8;

	(void)lay;
	proto_enc_hdr(out, MSG_RECV_MAP, 16 + n);
	put64(out + 8, page);
	put32(out + 16, bits);
	put32(out + 20, 0);
	memcpy(out + 24, map, n);
	return PROTO_HDR_LEN + 16 + n;
}

size_t proto_enc_preempt_hello(uint8_t *out, uint32_t version, uint64_t session)
{
	proto_enc_hdr(out, MSG_PREEMPT_HELLO, 24);
	memcpy(out + 8, PROTO_MAGIC, 8);
	put32(out + 16, version);
	put32(out + 20, 0);
	put64(out + 24, session);
	return PROTO_HDR_LEN + 24;
}

size_t proto_enc_empty(uint8_t *out, uint16_t type)
{
	return proto_enc_hdr(out, type, 0);
}

size_t proto_enc_page_hdr(uint8_t *out, const struct proto_layout *lay,
			  uint64_t page)
{
	uint32_t block = 0;
	uint64_t off = 0;

	proto_page_to_block(lay, page, &block, &off);
	proto_enc_hdr(out, MSG_PAGE, 16 + lay->page_size);
	put32(out + 8, block);
	put32(out + 12, 0);
	put64(out + 16, off);
	return PROTO_HDR_LEN + 16;
}

size_t proto_enc_piece_hdr(uint8_t *out, const struct proto_layout *lay,
			   uint64_t page, uint32_t off, uint32_t len)
{
	uint32_t block = 0;
	uint64_t boff = 0;

	proto_page_to_block(lay, page, &block, &boff);
	proto_enc_hdr(out, MSG_PIECE, 16 + len);
	put32(out + 8, block);
	put32(out + 12, len);
	put64(out + 16, boff + off);
	return PROTO_HDR_LEN + 16;
}

size_t proto_enc_run(uint8_t *out, uint16_t type,
		     const struct proto_layout *lay, uint64_t page,
		     uint32_t count)
{
	uint32_t block = 0;
	uint64_t off = 0;

	proto_page_to_block(lay, page, &block, &off);
	proto_enc_hdr(out, type, 16);
	put32(out + 8, block);
	put32(out + 12, count);
	put64(out + 16, off);
	return PROTO_HDR_LEN + 16;
}

size_t proto_enc_u64(uint8_t *out, uint16_t type, uint64_t v)
{
	proto_enc_hdr(out, type, 8);
	put64(out + 8, v);
	return PROTO_HDR_LEN + 8;
}

size_t proto_enc_devstate_hdr(uint8_t *out, uint64_t total, uint64_t offset,
			      uint32_t len)
{
	proto_enc_hdr(out, MSG_DEVICE_STATE, 16 + len);
	put64(out + 8, total);
	put64(out + 16, offset);
	return PROTO_HDR_LEN + 16;
}

size_t proto_enc_error(uint8_t *out, uint32_t code, const char *text)
{
	size_t tl = strnlen(text, PROTO_MAX_TEXT);

	proto_enc_hdr(out, MSG_ERROR, (uint32_t)(8 + tl));
	put32(out + 8, code);
	put32(out + 12, (uint32_t)tl);
	memcpy(out + 16, text, tl);
	return PROTO_HDR_LEN + 8 + tl;
}

size_t proto_enc_discard(uint8_t *out, size_t outlen,
			 const struct proto_layout *lay, const uint64_t *pages,
			 const uint32_t *counts, uint32_t n)
{
	uint32_t len = 8 + 16 * n;

	if (!n || n > PROTO_MAX_DISCARD || outlen < PROTO_HDR_LEN + len)
		return 0;
	proto_enc_hdr(out, MSG_DISCARD, len);
	put32(out + 8, n);
	put32(out + 12, 0);
	for (uint32_t i = 0; i < n; i++) {
		uint32_t block = 0;
		uint64_t off = 0;

		proto_page_to_block(lay, pages[i], &block, &off);
		put32(out + 16 + 16 * i, block);
		put32(out + 20 + 16 * i, counts[i]);
		put64(out + 24 + 16 * i, off);
	}
	return PROTO_HDR_LEN + len;
}
