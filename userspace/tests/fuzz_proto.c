// SPDX-License-Identifier: GPL-2.0
/*
 * libFuzzer target for the frame parser.  The input is a stream of frames
 * as a destination would read it: first against no layout (handshake),
 * then, once a HELLO parsed, against its layout, with the postcopy state
 * machine gating each frame.  Build: make -C userspace fuzz.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct proto_hello hello;
	struct proto_layout lay;
	bool have_layout = false;
	enum pc_state st = PC_NONE;
	char err[256];

	while (size) {
		struct proto_msg m;
		int n = proto_parse(data, size, have_layout ? &lay : NULL, &m,
				    &hello, err, sizeof(err));

		if (n <= 0)
			break;
		if (m.type == MSG_HELLO && !have_layout) {
			lay = hello.layout;
			have_layout = true;
		} else if (m.type == MSG_DISCARD && have_layout) {
			for (uint32_t i = 0; i < m.u.discard.count; i++) {
				uint64_t page;
				uint32_t count;

				proto_discard_entry(&m, &lay, i, &page, &count);
				if (page + count > lay.total_pages)
					__builtin_trap();
			}
		} else if ((m.type == MSG_PAGE || m.type == MSG_ZERO ||
			    m.type == MSG_REQ) && have_layout) {
			if (m.u.page.page + m.u.page.count > lay.total_pages)
				__builtin_trap();
		} else if (m.type == MSG_PIECE && have_layout) {
			if (m.u.piece.page >= lay.total_pages ||
			    m.u.piece.off + (uint64_t)m.u.piece.len > lay.page_size)
				__builtin_trap();
		}
		pc_step(&st, m.type, err, sizeof(err));
		data += n;
		size -= (size_t)n;
	}
	return 0;
}
