/* SPDX-License-Identifier: GPL-2.0 */
/*
 * CRC-32C (Castagnoli, polynomial 0x1EDC6F41, reflected 0x82F63B78), the
 * checksum of iSCSI, ext4 metadata and btrfs: initial value and final xor
 * 0xFFFFFFFF, so crc32c(0, "123456789", 9) == 0xE3069283.
 *
 * The @crc argument is a previous result, 0 to start: a buffer may be
 * summed in pieces, crc32c(crc32c(0, a, n), b, m) being the CRC of a
 * followed by b.  crc32c() uses the SSE4.2 instruction when the CPU has it
 * (decided once, at the first call) and a table otherwise; both give the
 * same values.  All functions are thread-safe.
 */
#ifndef UMEM_CRC32C_H
#define UMEM_CRC32C_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

uint32_t crc32c(uint32_t crc, const void *buf, size_t len);

/* The two implementations, for tests and benchmarks. */
uint32_t crc32c_sw(uint32_t crc, const void *buf, size_t len);
/* True if crc32c_hw() may be called: x86-64 with SSE4.2. */
bool crc32c_hw_available(void);
/* SSE4.2 crc32 instruction; only when crc32c_hw_available(). */
uint32_t crc32c_hw(uint32_t crc, const void *buf, size_t len);
#endif
