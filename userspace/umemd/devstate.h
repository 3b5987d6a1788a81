/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The VMM's device state: an opaque blob of at most PROTO_MAX_DEVSTATE
 * bytes that travels with the RAM.  The source reads it from
 * --device-state FILE once the VMM is stopped (devstate_load()); the
 * destination assembles it from DEVICE_STATE pieces (devstate_piece())
 * and, at RUN, writes it to --device-state-out FILE (devstate_write(),
 * which --restore will use as well).  Main thread only.
 */
#ifndef UMEMD_DEVSTATE_H
#define UMEMD_DEVSTATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Read @path whole into *@blob (malloc'd; NULL and 0 bytes without a
 * @path).  0, or -1 with @err saying what failed.
 */
int devstate_load(const char *path, uint8_t **blob, size_t *len,
		  char *err, size_t errlen);

/* A blob arriving in pieces. */
struct devstate_in {
	uint8_t *buf;
	uint64_t total, got;
};

/*
 * The piece of @len bytes at @offset of a @total-byte blob: pieces come
 * in order and agree on the total.  0, -EPROTO or -ENOMEM with @err.
 */
int devstate_piece(struct devstate_in *ds, uint64_t total, uint64_t offset,
		   const uint8_t *data, uint32_t len, char *err, size_t errlen);
/* Whether every piece arrived: 0, or -EPROTO with @err. */
int devstate_whole(const struct devstate_in *ds, char *err, size_t errlen);
void devstate_free(struct devstate_in *ds);
/*
 * Write @len bytes to @path (named by --device-state-out in @err), through
 * a temporary file that is renamed, so a reader never sees half of it.
 * 0, or -errno with @err.
 */
int devstate_write(const char *path, const uint8_t *buf, uint64_t len, bool verbose,
		   char *err, size_t errlen);
#endif
