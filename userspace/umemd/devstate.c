// SPDX-License-Identifier: GPL-2.0
/* The VMM's device state: see devstate.h. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "devstate.h"
#include "proto.h"
#include "util.h"

/*
 * Called at the switch, once the VMM is stopped, so that a --stop-cmd
 * hook can write the file.
 */
int devstate_load(const char *path, uint8_t **blob, size_t *len,
		  char *err, size_t errlen)
{
	size_t cap = 65536, n = 0;
	uint8_t *b = NULL;
	int fd;

	*blob = NULL;
	*len = 0;
	if (!path)
		return 0;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errlen, "--device-state %s: %s", path, strerror(errno));
		return -1;
	}
	for (;;) {
		ssize_t r;

		if (n == cap || !b) {
			uint8_t *nb = n == cap ? realloc(b, cap *= 2) : malloc(cap);

			if (!nb) {
				snprintf(err, errlen, "--device-state %s: out of memory", path);
				break;
			}
			b = nb;
		}
		r = read(fd, b + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			snprintf(err, errlen, "--device-state %s: %s", path, strerror(errno));
			break;
		}
		if (!r) {
			close(fd);
			*blob = b;
			*len = n;
			return 0;
		}
		n += (size_t)r;
		if (n > PROTO_MAX_DEVSTATE) {
			snprintf(err, errlen, "--device-state %s: larger than %u bytes", path,
				 PROTO_MAX_DEVSTATE);
			break;
		}
	}
	free(b);
	close(fd);
	return -1;
}

int devstate_piece(struct devstate_in *ds, uint64_t total, uint64_t offset,
		   const uint8_t *data, uint32_t len, char *err, size_t errlen)
{
	if (!ds->buf) {
		ds->buf = malloc(total ? total : 1);
		if (!ds->buf) {
			snprintf(err, errlen, "device state of %llu bytes: out of memory",
				 (unsigned long long)total);
			return -ENOMEM;
		}
		ds->total = total;
	}
	if (total != ds->total || offset != ds->got) {
		snprintf(err, errlen,
			 "DEVICE_STATE bytes %llu+%u of %llu, expected offset %llu of %llu",
			 (unsigned long long)offset, len, (unsigned long long)total,
			 (unsigned long long)ds->got, (unsigned long long)ds->total);
		return -EPROTO;
	}
	memcpy(ds->buf + ds->got, data, len);
	ds->got += len;
	return 0;
}

int devstate_whole(const struct devstate_in *ds, char *err, size_t errlen)
{
	if (ds->got == ds->total)
		return 0;
	snprintf(err, errlen, "RUN after %llu of %llu bytes of device state",
		 (unsigned long long)ds->got, (unsigned long long)ds->total);
	return -EPROTO;
}

void devstate_free(struct devstate_in *ds)
{
	free(ds->buf);
	memset(ds, 0, sizeof(*ds));
}

int devstate_write(const char *path, const uint8_t *buf, uint64_t len, bool verbose,
		   char *err, size_t errlen)
{
	char tmp[4096];
	FILE *f;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp)) {
		snprintf(err, errlen, "--device-state-out: path too long");
		return -ENAMETOOLONG;
	}
	f = fopen(tmp, "we");
	if (!f || (len && fwrite(buf, 1, len, f) != len) ||
	    fflush(f) || fsync(fileno(f))) {
		snprintf(err, errlen, "--device-state-out %.150s: %s", tmp, strerror(errno));
		if (f)
			fclose(f);
		unlink(tmp);
		return -EIO;
	}
	if (fclose(f) || rename(tmp, path)) {
		snprintf(err, errlen, "--device-state-out %.150s: %s", path, strerror(errno));
		unlink(tmp);
		return -EIO;
	}
	if (verbose)
		log_msg("device state: %llu bytes written to %s", (unsigned long long)len, path);
	return 0;
}
