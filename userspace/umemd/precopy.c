// SPDX-License-Identifier: GPL-2.0
/*
 * umemd --outgoing with --pid or --stop-cmd: precopy rounds while the VMM
 * runs (the background stream, once per round, with the dirty tracking
 * of dirty.c between rounds), when to stop them (convergence, the round
 * limit, --postcopy-after, SIGUSR1), DISCARD of the pages dirtied after
 * they were sent, stopping the VMM; and the switch itself, LISTEN, the
 * device state (--device-state), RUN, which a migration without precopy
 * sends right after ADVISE (net_out_link.c's src_handshake()).
 *
 * Threads: all of it runs on the main thread.  The rp thread may already
 * read the return path (ACKs; no requests before LISTEN); a failure
 * anywhere is seen through s->ss.failed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "devstate.h"
#include "dirty.h"
#include "source.h"
#include "util.h"

/* Set by SIGUSR1 (main.c): switch a precopy migration to postcopy now. */
volatile int umemd_switch_requested;

/* ---- precopy rounds and the switch to postcopy ---- */

#define DISCARD_BUF	(PROTO_HDR_LEN + 8 + 16 * PROTO_MAX_DISCARD)

/*
 * DISCARD every page set in @map that was already sent, and make it
 * unsent again (the background stream sends it again).  Clears @map.
 */
static int send_discards(struct source *s, uint8_t *map, uint64_t *ndisc)
{
	uint8_t *buf = malloc(DISCARD_BUF);
	uint64_t *pages = malloc(PROTO_MAX_DISCARD * sizeof(uint64_t));
	uint32_t *counts = malloc(PROTO_MAX_DISCARD * sizeof(uint32_t));
	uint32_t n = 0;
	int ret = 0;

	if (!buf || !pages || !counts) {
		session_fail(&s->ss, "out of memory");
		ret = -ENOMEM;
		goto out;
	}
	for (uint32_t b = 0; b < s->ram.lay.nblocks && !ret; b++) {
		const struct proto_block *bl = &s->ram.lay.blocks[b];
		uint64_t end = bl->base_page + bl->pages;

		for (uint64_t p = bl->base_page; p < end && !ret;) {
			uint64_t start = p;
			uint32_t cnt = 0;

			while (p < end && cnt < PROTO_MAX_RUN && map[p] &&
			       claims_taken(&s->sent, p)) {
				claims_give_back(&s->sent, p);
				p++;
				cnt++;
			}
			if (!cnt) {
				p++;
				continue;
			}
			pages[n] = start;
			counts[n] = cnt;
			*ndisc += cnt;
			if (++n == PROTO_MAX_DISCARD) {
				ret = chan_write(&s->main, buf,
						 proto_enc_discard(buf, DISCARD_BUF, &s->ram.lay, pages, counts, n),
						 NULL, 0);
				n = 0;
			}
		}
	}
	if (!ret && n)
		ret = chan_write(&s->main, buf,
				 proto_enc_discard(buf, DISCARD_BUF, &s->ram.lay, pages, counts, n),
				 NULL, 0);
	if (ret)
		session_fail(&s->ss, "sending DISCARD: %s%s", chan_strerror(ret), gone(ret));
out:
	memset(map, 0, s->ram.pages);
	free(buf);
	free(pages);
	free(counts);
	return ret;
}

/*
 * --pid: precopy rounds while the VMM runs, then stop it and switch:
 * DISCARD (sent & dirty), LISTEN, RUN.  Without --pid (only --stop-cmd):
 * no rounds, just the stop and the switch.  Returns 0 once RUN is sent.
 */
int precopy_and_switch(struct source *s, struct dirty *t)
{
	struct umemd_summary *sum = s->sum;
	uint8_t *dmap = calloc(s->ram.pages, 1);
	uint64_t prev = s->ram.pages, t_start = now_ns(), t_stop, nd = 0;
	const char *why = "no dirty tracking (--stop-cmd only)";
	uint32_t max = s->o->max_rounds ? s->o->max_rounds : 30;
	bool stopped = false;
	char msg[sizeof(s->ss.err)];
	int ret = -1;

	if (!dmap) {
		session_fail(&s->ss, "out of memory");
		goto out;
	}
	if (max > UMEMD_MAX_ROUNDS)
		max = UMEMD_MAX_ROUNDS;
	if (s->o->pid) {
		ret = s->hash ? 0 : write_clear_refs(t->pid);
		if (ret) {
			session_fail(&s->ss, "clearing soft-dirty bits of pid %d: %s", t->pid, strerror(-ret));
			goto out;
		}
		for (uint32_t round = 1;; round++) {
			uint64_t before = atomic_load(&s->pages_bg);

			s->precopy_phase = true;
			ret = background(s);
			s->precopy_phase = false;
			if (ret || atomic_load(&s->ss.failed)) {
				if (!atomic_load(&s->ss.failed))
					session_fail(&s->ss, "main channel: %s%s", chan_strerror(ret), gone(ret));
				goto fail;
			}
			sum->round_pages[round - 1] = atomic_load(&s->pages_bg) - before;
			sum->rounds = round;
			if (s->o->verbose)
				log_msg("precopy round %u: %llu pages", round,
					(unsigned long long)sum->round_pages[round - 1]);
			if (umemd_switch_requested) {
				why = "SIGUSR1";
				break;
			}
			if (s->o->postcopy_after && round >= s->o->postcopy_after) {
				why = "--postcopy-after";
				break;
			}
			if (!s->o->postcopy_after && round >= max) {
				why = "round limit";
				break;
			}
			nd = 0;
			if (dirty_round(s, t, dmap, &nd))
				goto fail;
			if (umemd_switch_requested) {
				why = "SIGUSR1";
				break;
			}
			if (!nd && !s->o->postcopy_after) {
				why = "converged (nothing dirtied)";
				break;
			}
			if (!s->o->postcopy_after && nd >= prev) {
				why = "dirty set stopped shrinking";
				break;
			}
			prev = nd;
			if (send_discards(s, dmap, &sum->pages_discarded))
				goto fail;
		}
	}
	/* The switch.  dmap may still hold the last round's dirty pages. */
	t_stop = now_ns();
	sum->precopy_ns = t_stop - t_start;
	if (vmm_stop(&s->vmm, msg, sizeof(msg))) {
		session_fail(&s->ss, "%s", msg);
		goto fail;
	}
	stopped = true;
	if (s->o->pid && sum->precopy) {
		if (s->hash)
			hash_scan(s, dmap, &nd);
		else if (dirty_read(s, t, dmap, &nd))
			goto fail;
		if (send_discards(s, dmap, &sum->pages_discarded))
			goto fail;
	}
	if (send_listen_run(s, NULL, 0))
		goto fail;
	stopped = false;	/* RUN is out: the guest lives on the destination */
	atomic_store(&s->running, true);
	sum->downtime_ns = now_ns() - t_stop;
	sum->switch_reason = why;
	ret = 0;
	goto out;
fail:
	ret = -1;
	if (stopped && vmm_resume(&s->vmm) == 0)
		log_msg("migration failed before RUN: VMM pid %d resumed on the source", s->o->pid);
out:
	free(dmap);
	return ret;
}


/* ---- the switch: LISTEN, device state, RUN ---- */

/*
 * @pre (ADVISE, DISCARDs, or nothing), LISTEN, the device-state blob in
 * DEVICE_STATE pieces, RUN: the package of 000_* (LISTEN, device state,
 * RUN), sent as consecutive frames on the main stream.
 */
int send_listen_run(struct source *s, const uint8_t *pre, size_t prelen)
{
	uint8_t hdr[PROTO_HDR_LEN + 16], cmd[3 * PROTO_HDR_LEN];
	char msg[sizeof(s->ss.err)];
	uint8_t *blob;
	size_t len, n = 0;
	int ret;

	/* Read now, once the VMM is stopped: a --stop-cmd hook may write it. */
	if (devstate_load(s->o->device_state, &blob, &len, msg, sizeof(msg))) {
		session_fail(&s->ss, "%s", msg);
		return -ECANCELED;
	}
	if (prelen)
		memcpy(cmd, pre, prelen);
	n = prelen + proto_enc_empty(cmd + prelen, MSG_LISTEN);
	ret = chan_write(&s->main, cmd, n, NULL, 0);
	for (size_t off = 0; !ret && off < len; off += PROTO_DEVSTATE_CHUNK) {
		uint32_t c = len - off < PROTO_DEVSTATE_CHUNK ? (uint32_t)(len - off) :
			     PROTO_DEVSTATE_CHUNK;

		ret = chan_write(&s->main, hdr, proto_enc_devstate_hdr(hdr, len, off, c),
				 blob + off, c);
	}
	free(blob);
	if (!ret)
		ret = chan_write(&s->main, cmd, proto_enc_empty(cmd, MSG_RUN), NULL, 0);
	if (ret)
		session_fail(&s->ss, "sending LISTEN, device state, RUN: %s%s", chan_strerror(ret),
			     gone(ret));
	else
		s->sum->device_state_bytes = len;
	return ret;
}

