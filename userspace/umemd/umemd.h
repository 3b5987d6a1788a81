/* SPDX-License-Identifier: GPL-2.0 */
#ifndef UMEMD_H
#define UMEMD_H

#include <stdbool.h>
#include <stdint.h>

#include "proto.h"

#define UMEMD_MAX_RAM_FILES	PROTO_MAX_BLOCKS

struct umemd_opts {
	bool outgoing, incoming;
	const char *listen, *connect;
	int connect_wait_ms;
	/* source */
	const char *ram[UMEMD_MAX_RAM_FILES];
	int nram;
	bool bg_follow;
	/* destination */
	const char *backend;
	const char *name;
	const char *vmm_socket;
	bool preempt;
	bool json;
	bool progress;		/* stderr is a terminal */
	int verbose;
	/* testing hooks */
	uint64_t throttle_pages;	/* source: sleep 1 ms every N bg pages */
};

/* Summary of one run (both roles). */
struct umemd_summary {
	const char *role;
	const char *backend;
	bool ok;
	char error[256];
	uint64_t total_ns;
	uint64_t pages, pages_bg, pages_req, pages_zero;
	uint64_t requests, requests_dup;
	uint64_t bytes_main, bytes_preempt;
	bool preempt;
	/* destination only */
	uint64_t *lat_ns;		/* one per requested page installed */
	uint64_t nlat;
	uint64_t blocked_ns, blocked_max_ns;
	bool blocked_from_kernel;
};

int umemd_source(const struct umemd_opts *o, struct umemd_summary *s);
int umemd_dest(const struct umemd_opts *o, struct umemd_summary *s);
void summary_print(const struct umemd_summary *s, bool json);
#endif
