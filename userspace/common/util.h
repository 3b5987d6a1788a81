/* SPDX-License-Identifier: GPL-2.0 */
/* Small helpers shared by umemd and umem-vmm. */
#ifndef UMEM_UTIL_H
#define UMEM_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

uint64_t now_ns(void);
/* "64M", "1G", "4096", "4k": bytes; -EINVAL on junk or overflow. */
int parse_size(const char *s, uint64_t *out);
int parse_u64(const char *s, uint64_t *out);
/* "ADDR:PORT" -> separate strings (ADDR may be empty = any). */
int split_hostport(const char *s, char *host, size_t hostlen, char *port,
		   size_t portlen);
/* Logging for the programs (not the library). */
void log_set_prog(const char *prog);
void log_msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_libumem(void *opaque, int level, const char *msg);
/* Name the calling thread (top -H, perf, /proc/PID/task/TID/comm). */
void thread_name(const char *name);
#endif
