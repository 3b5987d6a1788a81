/* SPDX-License-Identifier: GPL-2.0 */
/*
 * umem-vmm, the stand-in VMM: what its parts share.  One concern a file:
 *
 *   main.c    options, and which mode runs
 *   image.c   --make-image, --check-image
 *   page.c    what a page holds: the seed's image, the writer's stamp
 *   guest.c   --region: attach to a region (umemd's socket or a umem
 *             node), run vCPU threads that read and check pages;
 *             --check-state
 *   writer.c  --writer: a running guest that keeps writing its RAM, and
 *             parks its threads for the pause protocol
 *   state.c   the state file, the writer's "device state"
 *   hooks.c   --pause, --resume: the stop and cont hooks of umemd
 *   offer.c   --offer-socket: hand the RAM and its userfaultfd to umemd
 *   snapcheck.c  --check-snapshot: a snapshot file against the state file
 */
#ifndef UMEM_VMM_H
#define UMEM_VMM_H

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "libumem.h"

enum pattern_kind { PAT_SEQ, PAT_RANDOM, PAT_HOTSET };

/* One vCPU (reader) or writer thread. */
struct vcpu {
	struct vmm *v;
	unsigned int id;
	uint64_t rng;
	atomic_uint_fast64_t writes;	/* writer: pages written */
};

/*
 * The writer threads.  Page p's generation is gen[p] >> 1; bit 0 is set
 * while a thread stamps the page, so that two threads never write one
 * page at once and the table always names what a page holds once every
 * thread is parked.
 */
struct writers {
	_Atomic uint64_t *gen;
	struct vcpu *cpus;
	pthread_t *th;
	unsigned int started;
	/* The park gate: threads stop between two pages while park is set. */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	atomic_bool park, stop;
	unsigned int parked;		/* under lock */
};

/* A page a check found wrong, for the report. */
struct bad_page {
	uint64_t page;
	uint64_t want;			/* expected generation (gen table) */
	int64_t found;			/* page_found_gen() */
};
#define BAD_REPORT_MAX 8

struct vmm {
	/* options */
	const char *backend;
	const char *region;
	uint64_t size, pages, seed;
	bool seed_set;
	uint32_t page_size;		/* region page size (0: 4 KiB or the fd's) */
	unsigned int threads;
	enum pattern_kind pattern;
	bool pattern_set;
	double duration;
	double then_write;		/* --region: write this long after verifying */
	bool verify_all, wait_run, json;
	const uint8_t *expect;		/* --expect-file mapping */
	uint64_t expect_size;
	uint64_t rate;			/* writers: pages/s (0: flat out) */
	const char *writer_backend;	/* --writer-backend: a region of our own */
	bool fill;			/* --fill: the RAM gets the seed's image first */
	const char *state_path;		/* --state-file */
	const char *offer_path;		/* --offer-socket */
	/* the RAM */
	uint8_t *ram;
	struct umem_region *r;
	struct writers w;
	/* umemd's control socket and its monitor thread */
	int sock;
	pthread_t mon;
	bool mon_on;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool run, done, failed, gone;	/* under lock */
	char fail_text[128];
	/* the OFFER thread */
	pthread_t offer;
	bool offer_on;
	/* results of the vCPUs */
	atomic_bool stop;
	atomic_uint_fast64_t accesses, verified, mismatches, max_touch_ns;
	uint64_t t0;			/* vCPUs started (CLOCK_MONOTONIC ns) */
	_Atomic uint64_t *seen;		/* bitmap: pages read at least once */
	atomic_uint_fast64_t nseen, first_pass_ns;
	struct bad_page bad[BAD_REPORT_MAX];	/* under lock */
	unsigned int nbad;
};

/* Page p's generation in the writers' table. */
static inline uint64_t writer_gen(const struct writers *w, uint64_t p)
{
	return atomic_load_explicit(&w->gen[p], memory_order_acquire) >> 1;
}

/* The page a thread touches after @page, by the access pattern. */
uint64_t next_page(const struct vmm *v, struct vcpu *c, uint64_t page);
/* Seed a thread's random stream: distinct per thread, fixed per seed. */
void vcpu_init(struct vcpu *c, struct vmm *v, unsigned int id);

int make_image(const char *path, uint64_t size, uint64_t seed);
int check_image(const char *path, uint64_t seed);

/* --region: the exit status. */
int guest_run(struct vmm *v, const char *expect_file, const char *expect_state);
/* --check-state RAM: the exit status. */
int check_state(struct vmm *v, const char *ram_path);
/* The same for the RAM at v->ram (v->size bytes), named @label in messages. */
int check_state_mem(struct vmm *v, const char *label);
/* --check-snapshot FILE: every page of a snapshot against the state file. */
int check_snapshot(struct vmm *v, const char *snap_path);

/* Map the file or device node @path whole (size: fstat or lseek). */
int ram_map_path(const char *path, bool writable, uint8_t **ram, uint64_t *size);
/* A zero table (@init NULL) or a copy of @init, for v->pages pages. */
int writers_init(struct vmm *v, const uint64_t *init);
int writers_start(struct vmm *v);
/*
 * Park every writer between two page writes.  0 once all are parked;
 * -EINTR if a signal of @give_up (may be NULL) became pending first.
 */
int writers_park(struct vmm *v, const sigset_t *give_up);
void writers_unpark(struct vmm *v);
/* Stop and join the threads; the pages they wrote in all. */
uint64_t writers_stop(struct vmm *v);
void writers_free(struct vmm *v);
/* --writer FILE or --writer-backend: runs until SIGTERM or SIGINT. */
int writer_main(struct vmm *v, const char *path);

int offer_start(struct vmm *v);
void offer_join(struct vmm *v);

/* --pause PID, --resume PID: the exit status. */
int hook_pause(pid_t pid, const char *state_path, double timeout);
int hook_resume(pid_t pid, double timeout);
#endif
