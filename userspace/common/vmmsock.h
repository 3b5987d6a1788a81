/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The local control socket between umemd --incoming and its VMM
 * (AF_UNIX, SOCK_SEQPACKET, host byte order; both ends on one machine).
 *
 *   1. umemd -> VMM  HELLO   size, page_size (4096 or 2 MiB), backend
 *                            name; SCM_RIGHTS:
 *                            the fd to map (umem node fd or memfd).
 *   2. VMM -> umemd  ATTACH  base, size; SCM_RIGHTS: the VMM's
 *                            userfaultfd (uffd backends only).  The VMM
 *                            closes its own copy after sending.
 *   3. umemd -> VMM  RUN     the source said RUN: vCPUs may start.
 *   4. umemd -> VMM  DONE    every page is present; or
 *      umemd -> VMM  FAIL    text says why; the VMM must not trust pages
 *                            it reads from now on (uffd: they may be
 *                            zero-filled once umemd lets go of the uffd).
 *
 * The other direction, for a live snapshot on a uffd backend: the VMM's
 * RAM exists first (a memfd born present, its mapping registered for
 * write protection), and the VMM offers it to umemd --snapshot, which
 * listens on the same kind of socket.  The VMM connects, retrying until
 * umemd listens, then:
 *
 *   1. VMM -> umemd  OFFER   size, base (the VMM's mapping), page_size,
 *                            text: backend name; SCM_RIGHTS: the memfd.
 *   2. VMM -> umemd  ATTACH  base, size; SCM_RIGHTS: the VMM's
 *                            userfaultfd, registered in write-protect
 *                            mode.  The VMM closes its own copy after
 *                            sending, so that umemd's death releases the
 *                            VMM's writers (the kernel then drops every
 *                            protection).
 *   3. umemd -> VMM  DONE    the snapshot is complete and umemd has let
 *                            go of the userfaultfd; or
 *      umemd -> VMM  FAIL    text says why; the VMM runs on either way.
 *
 * VMM_MSG_VERSION stays 1: OFFER is only a new message type, and the
 * messages of the first direction are unchanged.
 */
#ifndef UMEM_VMMSOCK_H
#define UMEM_VMMSOCK_H

#include <stdint.h>

#define VMM_MSG_MAGIC	0x4d564d55U	/* "UMVM" */
#define VMM_MSG_VERSION	1

enum vmm_msg_type {
	VMM_HELLO = 1,
	VMM_ATTACH = 2,
	VMM_RUN = 3,
	VMM_DONE = 4,
	VMM_FAIL = 5,
	VMM_OFFER = 6,		/* VMM -> umemd --snapshot: its RAM's memfd */
};

struct vmm_msg {
	uint32_t magic;
	uint16_t type;
	uint16_t version;
	uint64_t size;
	uint64_t base;
	uint32_t page_size;
	uint32_t pad;
	char text[96];
};

int vmm_listen(const char *path);
int vmm_connect(const char *path);
/* Send @m with @fd (-1: none); page_size 4096. */
int vmm_send(int sock, uint16_t type, uint64_t size, uint64_t base,
	     const char *text, int fd);
/* The same with the region's page size (HELLO of a 2 MiB region). */
int vmm_send_ps(int sock, uint16_t type, uint64_t size, uint64_t base,
		uint32_t page_size, const char *text, int fd);
/*
 * Receive one message (and an fd, or -1).  Waits up to @timeout_ms (-1
 * forever).  1 = got one, 0 = timeout, -EPIPE = peer closed, -EPROTO =
 * bad message.
 */
int vmm_recv(int sock, struct vmm_msg *m, int *fd, int timeout_ms);
#endif
