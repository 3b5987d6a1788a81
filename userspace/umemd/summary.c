// SPDX-License-Identifier: GPL-2.0
/* The end-of-run summary, for people (stderr) or as one JSON object (stdout). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "umemd.h"

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static uint64_t pct(const uint64_t *v, uint64_t n, unsigned int p)
{
	uint64_t i;

	if (!n)
		return 0;
	i = (n * p + 99) / 100;
	return v[i ? i - 1 : 0];
}

static void json_str(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			printf("\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			printf("\\u%04x", *s);
		else
			putchar(*s);
	}
	putchar('"');
}

/* umemd --snapshot: what the VMM paid (stop, blocked writers) and what was saved. */
static void snapshot_summary_print(const struct umemd_summary *s, bool json)
{
	double secs = (double)s->total_ns / 1e9;
	double mib = (double)s->bytes_written / (1 << 20);

	if (json) {
		printf("{\"role\":\"snapshot\",\"ok\":%s,\"backend\":",
		       s->ok ? "true" : "false");
		json_str(s->backend ? s->backend : "");
		printf(",\"error\":");
		json_str(s->ok ? "" : s->error);
		printf(",\"page_size\":%u,\"stop_ms\":%.3f,\"total_ms\":%.3f,"
		       "\"pages\":%llu,\"pages_background\":%llu,\"pages_requested\":%llu,"
		       "\"pages_zero\":%llu,\"requests\":%llu,\"requests_background\":%llu,"
		       "\"requests_lost\":%llu,\"blocked_ms\":%.3f,"
		       "\"blocked_max_ms\":%.3f,\"device_state_bytes\":%llu,"
		       "\"bytes_written\":%llu}\n",
		       s->page_size, s->stop_ns / 1e6, s->total_ns / 1e6,
		       (unsigned long long)s->pages, (unsigned long long)s->pages_bg,
		       (unsigned long long)s->pages_req, (unsigned long long)s->pages_zero,
		       (unsigned long long)s->requests, (unsigned long long)s->requests_bg,
		       (unsigned long long)s->requests_lost, s->blocked_ns / 1e6,
		       s->blocked_max_ns / 1e6, (unsigned long long)s->device_state_bytes,
		       (unsigned long long)s->bytes_written);
		fflush(stdout);
		return;
	}
	fprintf(stderr, "umemd snapshot summary: %s%s%s\n", s->ok ? "OK" : "FAILED",
		s->ok ? "" : ": ", s->ok ? "" : s->error);
	fprintf(stderr, "  total time        %.3f s (%.1f MiB written, %.1f MiB/s), backend %s\n",
		secs, mib, secs > 0 ? mib / secs : 0.0, s->backend ? s->backend : "-");
	fprintf(stderr, "  VMM stopped       %.3f ms (stop, protect every page, device state, cont)\n",
		s->stop_ns / 1e6);
	fprintf(stderr, "  pages saved       %llu: background %llu, for a write request %llu, zero %llu\n",
		(unsigned long long)s->pages, (unsigned long long)s->pages_bg,
		(unsigned long long)s->pages_req, (unsigned long long)s->pages_zero);
	fprintf(stderr, "  write requests    %llu: %llu saved their page, %llu waited for another save (%llu not seen released)\n",
		(unsigned long long)s->requests, (unsigned long long)s->pages_req,
		(unsigned long long)s->requests_bg, (unsigned long long)s->requests_lost);
	fprintf(stderr, "  writers blocked   %.3f ms total, %.3f ms longest (every request: fault or request read -> unprotect of its page)\n",
		s->blocked_ns / 1e6, s->blocked_max_ns / 1e6);
	fprintf(stderr, "  device state      %llu bytes\n", (unsigned long long)s->device_state_bytes);
}

/* --restore: its fields, after the common ones. */
static void restore_json(const struct umemd_summary *s, uint64_t p50, uint64_t p99,
			 uint64_t max)
{
	printf(",\"eager\":%s,\"run_ms\":%.3f,\"pages_prefetched\":%llu,"
	       "\"working_set\":{\"in_file\":%llu,\"recorded\":",
	       s->eager ? "true" : "false", s->run_ns / 1e6,
	       (unsigned long long)s->pages_prefetched, (unsigned long long)s->ws_len);
	if (s->ws_recording)
		printf("%llu}", (unsigned long long)s->ws_recorded);
	else
		printf("null}");
	printf(",\"latency_us\":{\"count\":%llu,\"p50\":%.1f,\"p99\":%.1f,\"max\":%.1f},"
	       "\"blocked_ms\":%.3f,\"blocked_max_ms\":%.3f,\"blocked_source\":\"%s\"",
	       (unsigned long long)s->nlat, p50 / 1e3, p99 / 1e3, max / 1e3,
	       s->blocked_ns / 1e6, s->blocked_max_ns / 1e6,
	       s->blocked_from_kernel ? "kernel" : "estimate");
}

static void restore_text(const struct umemd_summary *s, uint64_t p50, uint64_t p99,
			 uint64_t max)
{
	if (!s->pages)
		return;		/* the file was refused: nothing was restored */
	fprintf(stderr, "  restore           %s: RUN after %.3f ms, every page present after %.3f ms\n",
		s->eager ? "eager" : "lazy", s->run_ns / 1e6, s->total_ns / 1e6);
	fprintf(stderr, "  working set       %llu pages in the file, %llu prefetched",
		(unsigned long long)s->ws_len, (unsigned long long)s->pages_prefetched);
	if (s->ws_recording)
		fprintf(stderr, "; %llu pages recorded", (unsigned long long)s->ws_recorded);
	fprintf(stderr, "\n  request latency   p50 %.1f us, p99 %.1f us, max %.1f us (%llu requests, fault read -> install)\n",
		p50 / 1e3, p99 / 1e3, max / 1e3, (unsigned long long)s->nlat);
}

void summary_print(const struct umemd_summary *s, bool json)
{
	uint64_t p50 = 0, p99 = 0, max = 0;
	double secs = (double)s->total_ns / 1e9;
	double mib = (double)(s->bytes_main + s->bytes_preempt) / (1 << 20);

	if (s->role && !strcmp(s->role, "snapshot")) {
		snapshot_summary_print(s, json);
		return;
	}
	if (s->nlat) {
		qsort(s->lat_ns, s->nlat, sizeof(uint64_t), cmp_u64);
		p50 = pct(s->lat_ns, s->nlat, 50);
		p99 = pct(s->lat_ns, s->nlat, 99);
		max = s->lat_ns[s->nlat - 1];
	}
	if (json) {
		printf("{\"role\":\"%s\",\"ok\":%s,", s->role, s->ok ? "true" : "false");
		if (s->backend)
			printf("\"backend\":\"%s\",", s->backend);
		printf("\"error\":");
		json_str(s->ok ? "" : s->error);
		printf(",\"preempt\":%s,\"total_ms\":%.3f,\"pages\":%llu,"
		       "\"pages_background\":%llu,\"pages_requested\":%llu,"
		       "\"pages_zero\":%llu,\"requests\":%llu,"
		       "\"requests_duplicate\":%llu,\"bytes_main\":%llu,"
		       "\"bytes_preempt\":%llu",
		       s->preempt ? "true" : "false", (double)s->total_ns / 1e6,
		       (unsigned long long)s->pages,
		       (unsigned long long)s->pages_bg,
		       (unsigned long long)s->pages_req,
		       (unsigned long long)s->pages_zero,
		       (unsigned long long)s->requests,
		       (unsigned long long)s->requests_dup,
		       (unsigned long long)s->bytes_main,
		       (unsigned long long)s->bytes_preempt);
		printf(",\"device_state_bytes\":%llu",
		       (unsigned long long)s->device_state_bytes);
		printf(",\"version\":%u,\"page_size\":%u,\"pieces\":%llu",
		       s->version, s->page_size, (unsigned long long)s->pieces);
		if (s->role[0] == 's')
			printf(",\"interrupts\":%llu,\"requests_partial\":%llu",
			       (unsigned long long)s->interrupts,
			       (unsigned long long)s->req_partial);
		else
			printf(",\"interleaved\":%llu,\"partial_dropped\":%llu",
			       (unsigned long long)s->interleaved,
			       (unsigned long long)s->pieces_dropped);
		if (s->role[0] == 's' || s->role[0] == 'd')
			printf(",\"pages_resent\":%llu", (unsigned long long)s->resent);
		if (s->role[0] == 's')
			printf(",\"resend_near\":%llu", (unsigned long long)s->resend_near);
		if (s->role[0] == 'd')
			printf(",\"resent_first\":%llu,\"install_calls\":%llu,\"postcopy_ms\":%.3f"
			       ",\"resent_taken\":%llu",
			       (unsigned long long)s->resent_first,
			       (unsigned long long)s->install_calls, s->postcopy_ns / 1e6,
			       (unsigned long long)s->resent_taken);
		if (s->role[0] == 's' || s->role[0] == 'd')
			printf(",\"sockets\":{\"preempt_priority\":%d,\"preempt_tos\":%d,"
			       "\"main_notsent_lowat\":%d}", s->sock_preempt_priority,
			       s->sock_preempt_tos, s->sock_main_notsent_lowat);
		if (s->precopy || s->switch_reason) {
			printf(",\"precopy\":{\"dirty_tracking\":");
			json_str(s->dirty_method ? s->dirty_method : "none");
			printf(",\"rounds\":%u,\"round_pages\":[", s->rounds);
			for (uint32_t i = 0; i < s->rounds; i++)
				printf("%s%llu", i ? "," : "", (unsigned long long)s->round_pages[i]);
			printf("],\"pages_discarded\":%llu,\"switch\":",
			       (unsigned long long)s->pages_discarded);
			json_str(s->switch_reason ? s->switch_reason : "");
			printf(",\"precopy_ms\":%.3f,\"downtime_ms\":%.3f,\"freeze_max_ms\":%.3f}",
			       s->precopy_ns / 1e6, s->downtime_ns / 1e6, s->freeze_max_ns / 1e6);
		}
		printf(",\"resumes\":%u,\"paused_ms\":%.3f", s->resumes, s->paused_ns / 1e6);
		if (!s->role[0] || s->role[0] == 'd')
			printf(",\"latency_us\":{\"count\":%llu,\"p50\":%.1f,"
			       "\"p99\":%.1f,\"max\":%.1f},\"blocked_ms\":%.3f,"
			       "\"blocked_max_ms\":%.3f,\"blocked_source\":\"%s\"",
			       (unsigned long long)s->nlat, p50 / 1e3, p99 / 1e3,
			       max / 1e3, s->blocked_ns / 1e6,
			       s->blocked_max_ns / 1e6,
			       s->blocked_from_kernel ? "kernel" : "estimate");
		if (s->role[0] == 'r')
			restore_json(s, p50, p99, max);
		printf("}\n");
		fflush(stdout);
		return;
	}
	fprintf(stderr, "umemd %s summary: %s%s%s\n", s->role,
		s->ok ? "OK" : "FAILED", s->ok ? "" : ": ", s->ok ? "" : s->error);
	fprintf(stderr, "  total time        %.3f s (%.1f MiB, %.1f MiB/s)%s%s\n",
		secs, mib, secs > 0 ? mib / secs : 0.0,
		s->backend ? ", backend " : "", s->backend ? s->backend : "");
	fprintf(stderr, "  pages             %llu: background %llu, requested %llu, zero %llu\n",
		(unsigned long long)s->pages, (unsigned long long)s->pages_bg,
		(unsigned long long)s->pages_req, (unsigned long long)s->pages_zero);
	fprintf(stderr, "  requests          %llu (%llu duplicates dropped), preempt channel %s\n",
		(unsigned long long)s->requests,
		(unsigned long long)s->requests_dup, s->preempt ? "on" : "off");
	if (s->role[0] == 's' && s->resent)
		fprintf(stderr, "  resent            %llu requested pages already on their way on main, sent again on preempt\n",
			(unsigned long long)s->resent);
	if (s->role[0] == 's' && s->resend_near)
		fprintf(stderr, "  not resent        %llu requested pages whose copy on main was near the destination's reader (--resend-gap)\n",
			(unsigned long long)s->resend_near);
	if (s->role[0] == 'd' && s->resent)
		fprintf(stderr, "  resent            %llu second copies of requested pages dropped (%llu times the copy sent again came first, %llu times it overtook main's queued one)\n",
			(unsigned long long)s->resent, (unsigned long long)s->resent_first,
			(unsigned long long)s->resent_taken);
	if (s->role[0] == 'd' && s->install_calls)
		fprintf(stderr, "  installs          %llu calls into the region for %llu pages\n",
			(unsigned long long)s->install_calls, (unsigned long long)s->pages);
	if (s->version)
		fprintf(stderr, "  protocol          version %u, %u-byte pages\n",
			s->version, s->page_size);
	if (s->role[0] == 's' || s->role[0] == 'd')
		fprintf(stderr, "  sockets           preempt: SO_PRIORITY %d, TOS byte %d; main: TCP_NOTSENT_LOWAT %d (-1: none/unknown)\n",
			s->sock_preempt_priority, s->sock_preempt_tos,
			s->sock_main_notsent_lowat);
	if (s->page_size > 4096 && s->role[0] == 's')
		fprintf(stderr, "  huge pages        %llu PIECE frames; %llu requested pages interrupted a partly sent page; %llu requests for the page being sent\n",
			(unsigned long long)s->pieces, (unsigned long long)s->interrupts,
			(unsigned long long)s->req_partial);
	else if (s->page_size > 4096)
		fprintf(stderr, "  huge pages        %llu PIECE frames; %llu pages completed while another was partly received; %llu partly received pages dropped on a pause\n",
			(unsigned long long)s->pieces, (unsigned long long)s->interleaved,
			(unsigned long long)s->pieces_dropped);
	if (s->device_state_bytes)
		fprintf(stderr, "  device state      %llu bytes (between LISTEN and RUN)\n",
			(unsigned long long)s->device_state_bytes);
	if (s->precopy || s->switch_reason) {
		fprintf(stderr, "  dirty tracking    %s\n", s->dirty_method ? s->dirty_method : "none");
		fprintf(stderr, "  precopy rounds    %u in %.3f s, pages per round:", s->rounds,
			s->precopy_ns / 1e9);
		for (uint32_t i = 0; i < s->rounds; i++)
			fprintf(stderr, " %llu", (unsigned long long)s->round_pages[i]);
		fprintf(stderr, "\n  switch            %s; %llu pages discarded; longest freeze %.3f ms\n",
			s->switch_reason ? s->switch_reason : "-",
			(unsigned long long)s->pages_discarded, s->freeze_max_ns / 1e6);
		fprintf(stderr, "  downtime          %.3f ms (VMM stopped -> RUN sent)\n",
			s->downtime_ns / 1e6);
	}
	if (s->resumes)
		fprintf(stderr, "  recovery          %u resume(s), %.3f s paused\n", s->resumes,
			s->paused_ns / 1e9);
	if (s->role[0] == 'r')
		restore_text(s, p50, p99, max);
	if (s->role[0] == 'd') {
		if (s->postcopy_ns)
			fprintf(stderr, "  postcopy          %.3f s (RUN -> every page present)\n",
				s->postcopy_ns / 1e9);
		fprintf(stderr, "  request latency   p50 %.1f us, p99 %.1f us, max %.1f us (%llu requests, fault read -> install)\n",
			p50 / 1e3, p99 / 1e3, max / 1e3,
			(unsigned long long)s->nlat);
		fprintf(stderr, "  blocked time      %.3f ms total, %.3f ms longest (%s)\n",
			s->blocked_ns / 1e6, s->blocked_max_ns / 1e6,
			s->blocked_from_kernel ? "kernel counters" :
			"sum of request latencies");
	}
}
