/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Helpers shared by the umem selftests.
 *
 * Rules: every helper returns 0 (or a count / fd) on success and -errno on
 * failure; none prints, none exits.  Nothing here keeps state between calls
 * except ut_make_name()'s per-process counter, and every test runs in its
 * own forked process, so no state is shared between tests.
 *
 * Patterns: page data is a deterministic function of (region offset, seed),
 * so any reader can check a page without talking to the installer.
 */
#ifndef UMEM_COMMON_H
#define UMEM_COMMON_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <linux/umem.h>

#define UT_PAGE			4096UL
#define UT_REQ_SIZE		sizeof(struct umem_request)
/* Generous bound for "this should happen soon" under TCG emulation. */
#define UT_WAIT_MS		10000

#define UT_ARRAY_SIZE(a)	(sizeof(a) / sizeof((a)[0]))
#define UT_STAT(field)		offsetof(struct umem_stats, field)

/* ---- environment ---- */

/* true when /dev/umem exists (the module is loaded). */
bool ut_module_loaded(void);
/* Why a test skips when the module is absent. */
#define UT_NO_MODULE "/dev/umem missing: umem module not loaded"

pid_t ut_gettid(void);
uint64_t ut_now_ns(void);
void ut_sleep_ms(unsigned int ms);

/* ---- control device and regions ---- */

/* ioctl() that retries EINTR; returns the ioctl's value or -errno. */
int ut_ioctl(int fd, unsigned long cmd, void *arg);
/* Open /dev/umem (O_RDWR | O_CLOEXEC); fd or -errno.  No handshake. */
int ut_open_ctl_raw(void);
/* Open /dev/umem and do UMEM_GET_API with features 0; fd or -errno. */
int ut_open_ctl(void);
int ut_get_api(int ctl_fd, struct umem_api *api);

/*
 * Unique region name "ut<pid>-<tag><n>" (n counts per process).  @tag may
 * be NULL; the result is truncated to fit UMEM_NAME_MAX.
 */
void ut_make_name(char name[UMEM_NAME_MAX], const char *tag);
void ut_node_path(char *buf, size_t len, const char *name);

/* UMEM_CREATE with everything else zero; server fd or -errno. */
int ut_create(int ctl_fd, const char *name, uint64_t size,
	      struct umem_create *out);
/* The same with a node mode (UMEM_F_NODE_MODE; 0: the default 0600). */
int ut_create_mode(int ctl_fd, const char *name, uint64_t size,
		   uint32_t node_mode, struct umem_create *out);
/* The same with a page size (UMEM_PAGE_SIZE_4K or, with UMEM_F_PAGE_2M, _2M). */
int ut_create_ps(int ctl_fd, const char *name, uint64_t size,
		 uint32_t page_size, struct umem_create *out);
/* UMEM_CREATE of 4 KiB pages with UMEM_CREATE_* @flags. */
int ut_create_flags(int ctl_fd, const char *name, uint64_t size,
		    uint32_t flags, struct umem_create *out);

/* Everything a test usually holds about one region. -1 = not open. */
struct ut_region {
	int ctl_fd;
	int server_fd;
	int node_fd;
	uint32_t id;
	uint64_t size;
	uint64_t pages;
	char name[UMEM_NAME_MAX];
};

/* Zero @r and mark every fd closed (safe to pass to ut_region_fini()). */
void ut_region_clear(struct ut_region *r);
/* Open the control device and create a region of @size; 0 or -errno. */
int ut_region_init(struct ut_region *r, uint64_t size, const char *tag);
int ut_region_init_mode(struct ut_region *r, uint64_t size, const char *tag,
			uint32_t node_mode);
/* A region created with UMEM_CREATE_* @flags. */
int ut_region_init_flags(struct ut_region *r, uint64_t size, const char *tag,
			 uint32_t flags);
/* Open /dev/umem-<name> into r->node_fd (waits for the node to appear). */
int ut_region_open_node(struct ut_region *r);
/* Close every fd still open. */
void ut_region_fini(struct ut_region *r);

/* Wait until @path exists (@exists) or not; 0 or -ETIMEDOUT. */
int ut_wait_path(const char *path, bool exists, int timeout_ms);

/* mmap(MAP_SHARED, RW); the mapping or MAP_FAILED with errno set. */
void *ut_map(int fd, uint64_t len, uint64_t off);

/* ---- server fd ioctls; 0 or -errno; out fields stored when non-NULL ---- */

int ut_copy(int sfd, uint64_t off, const void *src, uint64_t len,
	    int64_t *copied);
int ut_zero(int sfd, uint64_t off, uint64_t len, int64_t *zeroed);
int ut_copy_vec(int sfd, struct umem_copy_entry *e, uint32_t n,
		uint64_t *handled);
int ut_mark_present(int sfd, const uint64_t *offs, uint32_t n,
		    uint64_t *marked);
int ut_discard(int sfd, uint64_t off, uint64_t len);
/* UMEM_WRITEPROTECT: protect (@protect) or unprotect; *@done if not NULL. */
int ut_writeprotect(int sfd, uint64_t off, uint64_t len, bool protect,
		    int64_t *done);
/* UMEM_ATTACH on a node fd: the new server fd or -errno. */
int ut_attach(int node_fd);
int ut_stats(int sfd, struct umem_stats *st);
/* One stats field by offset (UT_STAT(name)); 0 on error. */
uint64_t ut_stat(int sfd, size_t field);
/* Wait until stats field @field equals @want; 0, -ETIMEDOUT or -errno. */
int ut_wait_stat(int sfd, size_t field, uint64_t want, int timeout_ms);

/* read() up to @max requests; number of records or -errno. */
ssize_t ut_read_requests(int sfd, struct umem_request *req, size_t max);
/* poll() one fd for POLLIN; 1 ready, 0 timeout, -errno. */
int ut_poll_in(int fd, int timeout_ms);
/* Set or clear O_NONBLOCK; 0 or -errno. */
int ut_set_nonblock(int fd, bool on);

/* ---- patterns ---- */

uint64_t ut_pattern_word(uint64_t region_off, uint32_t seed);
/* Fill @len bytes meant for region offset @region_off. */
void ut_fill(void *buf, uint64_t region_off, size_t len, uint32_t seed);
/* -1 when @buf holds the pattern, else the byte index of the first miss. */
long ut_check(const void *buf, uint64_t region_off, size_t len, uint32_t seed);
/* -1 when @buf is all zero, else the byte index of the first non-zero. */
long ut_check_zero(const void *buf, size_t len);

/* ---- installing ---- */

enum ut_install {
	UT_INSTALL_COPY,	/* UMEM_COPY */
	UT_INSTALL_COPY_VEC,	/* UMEM_COPY_VEC, one entry per page */
	UT_INSTALL_PWRITE,	/* pwrite() + UMEM_MARK_PRESENT */
	UT_INSTALL_ZERO,	/* UMEM_ZERO: the page reads as zeros */
};

/* Install the pattern (or zeros) at one page; 0 or -errno. */
int ut_install_page(int sfd, enum ut_install how, uint64_t off, uint32_t seed);
/* Check a page installed by ut_install_page(); -1 ok, else first miss. */
long ut_check_installed(const void *page, enum ut_install how, uint64_t off,
			uint32_t seed);

/* ---- the fake daemon ---- */

struct ut_daemon;
/* A request handler: install the page (or not); 0 or -errno. */
typedef int (*ut_handler_t)(struct ut_daemon *d, const struct umem_request *req);

/*
 * A thread that polls the server fd and a stop eventfd, reads requests in
 * batches and installs each requested page with the pattern of @seed (or
 * hands it to @handler).  Tests must not read() the server fd themselves
 * while it runs.  Counters are valid after ut_daemon_stop().
 */
struct ut_daemon {
	/* configuration: set by ut_daemon_init(), may be changed before start */
	int server_fd;
	uint64_t size;
	uint32_t seed;
	enum ut_install how;
	unsigned int batch;		/* records per read(), 1..64 */
	unsigned int delay_us;		/* sleep before each install */
	ut_handler_t handler;		/* NULL: ut_install_page() */
	void *priv;			/* for @handler */

	/* results, written by the daemon thread only */
	uint64_t requests;		/* records read */
	uint64_t write_requests;	/* ...with UMEM_REQ_WRITE */
	uint64_t installed;		/* pages installed without error */
	uint64_t reads;			/* read() calls that returned records */
	uint64_t max_batch;		/* most records one read() returned */
	uint64_t duplicates;		/* request for a page asked before */
	uint64_t bad_records;		/* misaligned, out of range, reserved */
	int error;			/* first unexpected -errno, else 0 */

	/* private */
	pthread_t thread;
	int stop_fd;
	bool running;
	uint32_t *seen;			/* requests per page */
};

void ut_daemon_init(struct ut_daemon *d, int server_fd, uint64_t size,
		    uint32_t seed);
int ut_daemon_start(struct ut_daemon *d);
/* Stop and join; returns d->error.  Safe to call when not running. */
int ut_daemon_stop(struct ut_daemon *d);
/* Requests the daemon has seen for the page at @off (after stop). */
uint32_t ut_daemon_seen(const struct ut_daemon *d, uint64_t off);

/* ---- a thread touching one address ---- */

/*
 * Touches @addr (a read of the word, or a write of @value), then copies
 * the whole page around @addr into @page.  @done is set when it returns.
 */
struct ut_toucher {
	volatile uint64_t *addr;
	bool write;
	uint64_t value;

	pthread_t thread;
	atomic_int done;
	atomic_int tid;
	uint64_t seen;			/* word read (or written) */
	uint64_t start_ns;		/* just before the access */
	unsigned char page[UT_PAGE];
	bool started;
};

int ut_toucher_start(struct ut_toucher *t, void *addr, bool write,
		     uint64_t value);
/* Join with a timeout; 0, -ETIMEDOUT (thread left running) or -errno. */
int ut_toucher_join(struct ut_toucher *t, int timeout_ms);
/* Wait until the thread has published its tid; 0 or -ETIMEDOUT. */
int ut_toucher_wait_tid(struct ut_toucher *t, int timeout_ms);

/* ---- a thread blocked in a syscall on a umem page ---- */

enum ut_io_op {
	UT_IO_READ,		/* read(fd, buf, len) */
	UT_IO_WRITE,		/* write(fd, buf, len) */
	UT_IO_PREAD,		/* pread(fd, buf, len, off) */
	UT_IO_PWRITE,		/* pwrite(fd, buf, len, off) */
};

/*
 * Runs one syscall in a thread, e.g. write(pipe, mapping) (the kernel reads
 * a missing page) or read(file, mapping) (the kernel writes one).
 */
struct ut_io_thread {
	enum ut_io_op op;
	int fd;
	void *buf;
	size_t len;
	off_t off;

	pthread_t thread;
	atomic_int tid;
	atomic_int done;
	ssize_t ret;
	int err;			/* errno when ret < 0 */
	bool started;
};

int ut_io_start(struct ut_io_thread *t, enum ut_io_op op, int fd, void *buf,
		size_t len, off_t off);
/* Join with a timeout; 0, -ETIMEDOUT (thread left running) or -errno. */
int ut_io_join(struct ut_io_thread *t, int timeout_ms);

/* ---- processes ---- */

/*
 * waitpid() with a timeout; 0 with *status filled, -ETIMEDOUT (child left
 * alone) or -errno.
 */
int ut_waitpid_timeout(pid_t pid, int *status, int timeout_ms);
/* Kill with SIGKILL and reap (for cleanup paths). */
void ut_kill_reap(pid_t pid);

/* A /proc/meminfo line ("Shmem") in KiB; >= 0 or -errno. */
long ut_meminfo_kb(const char *key);
/*
 * Sum of the "@key: N kB" lines of /proc/self/smaps for the vma that
 * starts at @start; -ENOENT if there is no such vma, or -errno.
 */
long ut_smaps_kb(const void *start, const char *key);
/* kB of that vma mapped by PMDs: ShmemPmdMapped + FilePmdMapped. */
long ut_smaps_pmd_kb(const void *start);

/* ---- the shmem huge page knob ---- */

#define UT_THP_SHMEM	"/sys/kernel/mm/transparent_hugepage/shmem_enabled"
/* Its current value (the bracketed word) into @out; 0 or -errno. */
int ut_thp_shmem_read(char *out, size_t len);
/* Write @val; 0 or -errno. */
int ut_thp_shmem_write(const char *val);
/* Write @val and read it back; 0 or -errno (-EIO if it did not stick). */
int ut_thp_shmem_set(const char *val);
/*
 * Safety net for a test program that changes the knob: call it once at
 * start (a constructor); the value seen then is put back when the
 * program's main process exits or dies of SIGTERM/SIGINT/SIGHUP,
 * whatever happened to a test (a harness timeout kills a test and its
 * teardown together).
 */
void ut_thp_shmem_guard(void);

#endif /* UMEM_COMMON_H */
