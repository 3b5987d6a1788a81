// SPDX-License-Identifier: GPL-2.0
/*
 * Helpers shared by the umem selftests; see umem_common.h for the rules.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "umem_common.h"

#if defined(__SANITIZE_ADDRESS__)
/*
 * The tests expect SIGBUS and SIGSEGV to kill their children; ASan would
 * catch them and exit(1) with a report instead.
 */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
	return "handle_sigbus=0:handle_segv=0:allow_user_segv_handler=1";
}
#endif

bool ut_module_loaded(void)
{
	return access(UMEM_CTL_DEVICE, F_OK) == 0;
}

pid_t ut_gettid(void)
{
	return (pid_t)syscall(SYS_gettid);
}

uint64_t ut_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

void ut_sleep_ms(unsigned int ms)
{
	struct timespec ts = {
		.tv_sec = ms / 1000,
		.tv_nsec = (long)(ms % 1000) * 1000000L,
	};

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

int ut_ioctl(int fd, unsigned long cmd, void *arg)
{
	int ret;

	do {
		ret = ioctl(fd, cmd, arg);
	} while (ret < 0 && errno == EINTR);
	return ret < 0 ? -errno : ret;
}

int ut_open_ctl_raw(void)
{
	int fd = open(UMEM_CTL_DEVICE, O_RDWR | O_CLOEXEC);

	return fd < 0 ? -errno : fd;
}

int ut_get_api(int ctl_fd, struct umem_api *api)
{
	return ut_ioctl(ctl_fd, UMEM_GET_API, api);
}

int ut_open_ctl(void)
{
	struct umem_api api = { .api = UMEM_API };
	int fd, ret;

	fd = ut_open_ctl_raw();
	if (fd < 0)
		return fd;
	ret = ut_get_api(fd, &api);
	if (ret < 0) {
		close(fd);
		return ret;
	}
	return fd;
}

void ut_make_name(char name[UMEM_NAME_MAX], const char *tag)
{
	/* Per process; each test runs in a process of its own. */
	static atomic_uint counter;
	unsigned int n = atomic_fetch_add(&counter, 1);

	snprintf(name, UMEM_NAME_MAX, "ut%d-%.12s%u", (int)getpid(),
		 tag ? tag : "", n);
}

void ut_node_path(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "%s%s", UMEM_NODE_PREFIX, name);
}

int ut_create(int ctl_fd, const char *name, uint64_t size,
	      struct umem_create *out)
{
	return ut_create_mode(ctl_fd, name, size, 0, out);
}

static int ut_create_full(int ctl_fd, const char *name, uint64_t size,
			  uint32_t page_size, uint32_t node_mode,
			  uint32_t flags, struct umem_create *out)
{
	struct umem_create c;
	int ret;

	memset(&c, 0, sizeof(c));
	c.size = size;
	c.page_size = page_size;
	c.node_mode = node_mode;
	c.flags = flags;
	snprintf(c.name, sizeof(c.name), "%s", name);
	ret = ut_ioctl(ctl_fd, UMEM_CREATE, &c);
	if (out)
		*out = c;
	return ret;
}

int ut_create_mode(int ctl_fd, const char *name, uint64_t size,
		   uint32_t node_mode, struct umem_create *out)
{
	return ut_create_full(ctl_fd, name, size, UMEM_PAGE_SIZE_4K, node_mode,
			      0, out);
}

int ut_create_flags(int ctl_fd, const char *name, uint64_t size,
		    uint32_t flags, struct umem_create *out)
{
	return ut_create_full(ctl_fd, name, size, UMEM_PAGE_SIZE_4K, 0, flags,
			      out);
}

int ut_create_ps(int ctl_fd, const char *name, uint64_t size,
		 uint32_t page_size, struct umem_create *out)
{
	return ut_create_full(ctl_fd, name, size, page_size, 0, 0, out);
}

void ut_region_clear(struct ut_region *r)
{
	memset(r, 0, sizeof(*r));
	r->ctl_fd = -1;
	r->server_fd = -1;
	r->node_fd = -1;
}

int ut_region_init(struct ut_region *r, uint64_t size, const char *tag)
{
	return ut_region_init_mode(r, size, tag, 0);
}

static int ut_region_init_full(struct ut_region *r, uint64_t size,
			       const char *tag, uint32_t node_mode,
			       uint32_t flags)
{
	struct umem_create c;
	int ret;

	ut_region_clear(r);
	ret = ut_open_ctl();
	if (ret < 0)
		return ret;
	r->ctl_fd = ret;
	ut_make_name(r->name, tag);
	ret = ut_create_full(r->ctl_fd, r->name, size, UMEM_PAGE_SIZE_4K,
			     node_mode, flags, &c);
	if (ret < 0) {
		ut_region_fini(r);
		return ret;
	}
	r->server_fd = ret;
	r->id = c.id;
	r->size = size;
	r->pages = size / UT_PAGE;
	return 0;
}

int ut_region_init_mode(struct ut_region *r, uint64_t size, const char *tag,
			uint32_t node_mode)
{
	return ut_region_init_full(r, size, tag, node_mode, 0);
}

int ut_region_init_flags(struct ut_region *r, uint64_t size, const char *tag,
			 uint32_t flags)
{
	return ut_region_init_full(r, size, tag, 0, flags);
}

int ut_wait_path(const char *path, bool exists, int timeout_ms)
{
	uint64_t end = ut_now_ns() + (uint64_t)timeout_ms * 1000000ULL;
	struct stat st;

	for (;;) {
		if ((stat(path, &st) == 0) == exists)
			return 0;
		if (ut_now_ns() > end)
			return -ETIMEDOUT;
		ut_sleep_ms(5);
	}
}

int ut_region_open_node(struct ut_region *r)
{
	char path[64];
	int fd;

	ut_node_path(path, sizeof(path), r->name);
	ut_wait_path(path, true, UT_WAIT_MS);
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	r->node_fd = fd;
	return 0;
}

void ut_region_fini(struct ut_region *r)
{
	if (r->node_fd >= 0)
		close(r->node_fd);
	if (r->server_fd >= 0)
		close(r->server_fd);
	if (r->ctl_fd >= 0)
		close(r->ctl_fd);
	r->node_fd = r->server_fd = r->ctl_fd = -1;
}

void *ut_map(int fd, uint64_t len, uint64_t off)
{
	return mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
		    (off_t)off);
}

int ut_copy(int sfd, uint64_t off, const void *src, uint64_t len,
	    int64_t *copied)
{
	struct umem_copy c = {
		.offset = off,
		.len = len,
		.src = (uintptr_t)src,
	};
	int ret = ut_ioctl(sfd, UMEM_COPY, &c);

	if (copied)
		*copied = c.copied;
	return ret;
}

int ut_zero(int sfd, uint64_t off, uint64_t len, int64_t *zeroed)
{
	struct umem_zero z = { .offset = off, .len = len };
	int ret = ut_ioctl(sfd, UMEM_ZERO, &z);

	if (zeroed)
		*zeroed = z.zeroed;
	return ret;
}

int ut_copy_vec(int sfd, struct umem_copy_entry *e, uint32_t n,
		uint64_t *handled)
{
	struct umem_copy_vec v = {
		.entries = (uintptr_t)e,
		.count = n,
	};
	int ret = ut_ioctl(sfd, UMEM_COPY_VEC, &v);

	if (handled)
		*handled = v.handled;
	return ret;
}

int ut_mark_present(int sfd, const uint64_t *offs, uint32_t n,
		    uint64_t *marked)
{
	struct umem_mark_present m = {
		.offsets = (uintptr_t)offs,
		.count = n,
	};
	int ret = ut_ioctl(sfd, UMEM_MARK_PRESENT, &m);

	if (marked)
		*marked = m.marked;
	return ret;
}

int ut_discard(int sfd, uint64_t off, uint64_t len)
{
	struct umem_discard d = { .offset = off, .len = len };

	return ut_ioctl(sfd, UMEM_DISCARD, &d);
}

int ut_writeprotect(int sfd, uint64_t off, uint64_t len, bool protect,
		    int64_t *done)
{
	struct umem_writeprotect w = {
		.offset = off,
		.len = len,
		.mode = protect ? UMEM_WP_MODE_PROTECT : 0,
	};
	int ret = ut_ioctl(sfd, UMEM_WRITEPROTECT, &w);

	if (done)
		*done = w.done;
	return ret;
}

int ut_attach(int node_fd)
{
	struct umem_attach a;

	memset(&a, 0, sizeof(a));
	return ut_ioctl(node_fd, UMEM_ATTACH, &a);
}

int ut_stats(int sfd, struct umem_stats *st)
{
	memset(st, 0, sizeof(*st));
	return ut_ioctl(sfd, UMEM_STATS, st);
}

uint64_t ut_stat(int sfd, size_t field)
{
	struct umem_stats st;
	uint64_t v;

	if (ut_stats(sfd, &st) < 0)
		return 0;
	memcpy(&v, (const char *)&st + field, sizeof(v));
	return v;
}

int ut_wait_stat(int sfd, size_t field, uint64_t want, int timeout_ms)
{
	uint64_t end = ut_now_ns() + (uint64_t)timeout_ms * 1000000ULL;
	struct umem_stats st;
	uint64_t v;
	int ret;

	for (;;) {
		ret = ut_stats(sfd, &st);
		if (ret < 0)
			return ret;
		memcpy(&v, (const char *)&st + field, sizeof(v));
		if (v == want)
			return 0;
		if (ut_now_ns() > end)
			return -ETIMEDOUT;
		ut_sleep_ms(2);
	}
}

ssize_t ut_read_requests(int sfd, struct umem_request *req, size_t max)
{
	ssize_t n;

	do {
		n = read(sfd, req, max * UT_REQ_SIZE);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	if (n % UT_REQ_SIZE)
		return -EIO;	/* never a partial record */
	return n / (ssize_t)UT_REQ_SIZE;
}

int ut_poll_in(int fd, int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	int ret;

	do {
		ret = poll(&p, 1, timeout_ms);
	} while (ret < 0 && errno == EINTR);
	if (ret < 0)
		return -errno;
	return ret > 0 && (p.revents & POLLIN);
}

int ut_set_nonblock(int fd, bool on)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0)
		return -errno;
	fl = on ? (fl | O_NONBLOCK) : (fl & ~O_NONBLOCK);
	return fcntl(fd, F_SETFL, fl) < 0 ? -errno : 0;
}

uint64_t ut_pattern_word(uint64_t region_off, uint32_t seed)
{
	uint64_t x = (region_off + 8) * 0x9E3779B97F4A7C15ULL;

	return x ^ ((uint64_t)(seed + 1) * 0xC2B2AE3D27D4EB4FULL);
}

void ut_fill(void *buf, uint64_t region_off, size_t len, uint32_t seed)
{
	uint64_t *w = buf;
	size_t i;

	for (i = 0; i < len / 8; i++)
		w[i] = ut_pattern_word(region_off + i * 8, seed);
}

long ut_check(const void *buf, uint64_t region_off, size_t len, uint32_t seed)
{
	const uint64_t *w = buf;
	size_t i;

	for (i = 0; i < len / 8; i++)
		if (w[i] != ut_pattern_word(region_off + i * 8, seed))
			return (long)(i * 8);
	return -1;
}

long ut_check_zero(const void *buf, size_t len)
{
	const unsigned char *b = buf;
	size_t i;

	for (i = 0; i < len; i++)
		if (b[i])
			return (long)i;
	return -1;
}

int ut_install_page(int sfd, enum ut_install how, uint64_t off, uint32_t seed)
{
	uint64_t page[UT_PAGE / 8];
	struct umem_copy_entry e;
	uint64_t done;
	ssize_t n;
	int ret;

	ut_fill(page, off, UT_PAGE, seed);
	switch (how) {
	case UT_INSTALL_COPY:
		return ut_copy(sfd, off, page, UT_PAGE, NULL);
	case UT_INSTALL_COPY_VEC:
		e.offset = off;
		e.src = (uintptr_t)page;
		e.result = 1;
		ret = ut_copy_vec(sfd, &e, 1, &done);
		if (ret < 0)
			return ret;
		if (done != 1)
			return -EIO;
		return (int)e.result;
	case UT_INSTALL_PWRITE:
		n = pwrite(sfd, page, UT_PAGE, (off_t)off);
		if (n < 0)
			return -errno;
		if (n != (ssize_t)UT_PAGE)
			return -EIO;
		return ut_mark_present(sfd, &off, 1, NULL);
	case UT_INSTALL_ZERO:
		return ut_zero(sfd, off, UT_PAGE, NULL);
	}
	return -EINVAL;
}

long ut_check_installed(const void *page, enum ut_install how, uint64_t off,
			uint32_t seed)
{
	if (how == UT_INSTALL_ZERO)
		return ut_check_zero(page, UT_PAGE);
	return ut_check(page, off, UT_PAGE, seed);
}

/* pthread_timedjoin_np() with a relative timeout; 0 or -errno. */
static int ut_timedjoin(pthread_t thread, int timeout_ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += timeout_ms / 1000;
	ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	return -pthread_timedjoin_np(thread, NULL, &ts);
}

/* ---- daemon ---- */

void ut_daemon_init(struct ut_daemon *d, int server_fd, uint64_t size,
		    uint32_t seed)
{
	memset(d, 0, sizeof(*d));
	d->server_fd = server_fd;
	d->size = size;
	d->seed = seed;
	d->how = UT_INSTALL_COPY;
	d->batch = 16;
	d->stop_fd = -1;
}

static void ut_daemon_fail(struct ut_daemon *d, int err)
{
	if (!d->error)
		d->error = err;
}

static void ut_daemon_handle(struct ut_daemon *d, const struct umem_request *r)
{
	uint64_t page = r->offset / UT_PAGE;
	int ret;

	d->requests++;
	if (r->flags & UMEM_REQ_WRITE)
		d->write_requests++;
	if (r->offset % UT_PAGE || r->offset >= d->size || r->reserved ||
	    (r->flags & ~UMEM_REQ_WRITE)) {
		d->bad_records++;
		return;
	}
	if (d->seen[page]++)
		d->duplicates++;
	if (d->delay_us)
		usleep(d->delay_us);
	if (d->handler)
		ret = d->handler(d, r);
	else
		ret = ut_install_page(d->server_fd, d->how, r->offset, d->seed);
	if (ret < 0)
		ut_daemon_fail(d, ret);
	else
		d->installed++;
}

static void *ut_daemon_thread(void *arg)
{
	struct ut_daemon *d = arg;
	struct umem_request reqs[64];
	struct pollfd p[2] = {
		{ .fd = d->server_fd, .events = POLLIN },
		{ .fd = d->stop_fd, .events = POLLIN },
	};
	ssize_t n, i;

	for (;;) {
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			ut_daemon_fail(d, -errno);
			break;
		}
		if (p[1].revents)
			break;
		if (!(p[0].revents & POLLIN)) {
			/* POLLERR/POLLHUP: the region is gone under us. */
			ut_daemon_fail(d, -EPIPE);
			break;
		}
		n = ut_read_requests(d->server_fd, reqs, d->batch);
		if (n == -EAGAIN)
			continue;
		if (n <= 0) {
			ut_daemon_fail(d, n ? (int)n : -EIO);
			break;
		}
		d->reads++;
		if ((uint64_t)n > d->max_batch)
			d->max_batch = (uint64_t)n;
		for (i = 0; i < n; i++)
			ut_daemon_handle(d, &reqs[i]);
	}
	return NULL;
}

int ut_daemon_start(struct ut_daemon *d)
{
	int ret;

	if (d->batch < 1 || d->batch > 64)
		return -EINVAL;
	d->seen = calloc(d->size / UT_PAGE + 1, sizeof(*d->seen));
	if (!d->seen)
		return -ENOMEM;
	d->stop_fd = eventfd(0, EFD_CLOEXEC);
	if (d->stop_fd < 0) {
		ret = -errno;
		goto err;
	}
	ret = -pthread_create(&d->thread, NULL, ut_daemon_thread, d);
	if (ret)
		goto err;
	d->running = true;
	return 0;
err:
	if (d->stop_fd >= 0)
		close(d->stop_fd);
	d->stop_fd = -1;
	free(d->seen);
	d->seen = NULL;
	return ret;
}

int ut_daemon_stop(struct ut_daemon *d)
{
	uint64_t one = 1;

	if (!d->running)
		return d->error;
	if (write(d->stop_fd, &one, sizeof(one)) != sizeof(one))
		ut_daemon_fail(d, -errno);
	pthread_join(d->thread, NULL);
	close(d->stop_fd);
	d->stop_fd = -1;
	d->running = false;
	return d->error;
}

uint32_t ut_daemon_seen(const struct ut_daemon *d, uint64_t off)
{
	if (!d->seen || off >= d->size)
		return 0;
	return d->seen[off / UT_PAGE];
}

/* ---- toucher ---- */

static void *ut_toucher_thread(void *arg)
{
	struct ut_toucher *t = arg;
	uintptr_t base = (uintptr_t)t->addr & ~(UT_PAGE - 1);

	atomic_store(&t->tid, ut_gettid());
	t->start_ns = ut_now_ns();
	if (t->write) {
		*t->addr = t->value;
		t->seen = t->value;
	} else {
		t->seen = *t->addr;
	}
	memcpy(t->page, (const void *)base, UT_PAGE);
	atomic_store(&t->done, 1);
	return NULL;
}

int ut_toucher_start(struct ut_toucher *t, void *addr, bool write,
		     uint64_t value)
{
	int ret;

	memset(t, 0, sizeof(*t));
	t->addr = addr;
	t->write = write;
	t->value = value;
	ret = pthread_create(&t->thread, NULL, ut_toucher_thread, t);
	if (ret)
		return -ret;
	t->started = true;
	return 0;
}

int ut_toucher_join(struct ut_toucher *t, int timeout_ms)
{
	int ret;

	if (!t->started)
		return -EINVAL;
	ret = ut_timedjoin(t->thread, timeout_ms);
	if (!ret)
		t->started = false;
	return ret;
}

int ut_toucher_wait_tid(struct ut_toucher *t, int timeout_ms)
{
	uint64_t end = ut_now_ns() + (uint64_t)timeout_ms * 1000000ULL;

	while (!atomic_load(&t->tid)) {
		if (ut_now_ns() > end)
			return -ETIMEDOUT;
		ut_sleep_ms(1);
	}
	return 0;
}

/* ---- io thread ---- */

static void *ut_io_thread_fn(void *arg)
{
	struct ut_io_thread *t = arg;
	ssize_t ret = -1;

	atomic_store(&t->tid, ut_gettid());
	switch (t->op) {
	case UT_IO_READ:
		ret = read(t->fd, t->buf, t->len);
		break;
	case UT_IO_WRITE:
		ret = write(t->fd, t->buf, t->len);
		break;
	case UT_IO_PREAD:
		ret = pread(t->fd, t->buf, t->len, t->off);
		break;
	case UT_IO_PWRITE:
		ret = pwrite(t->fd, t->buf, t->len, t->off);
		break;
	}
	t->err = ret < 0 ? errno : 0;
	t->ret = ret;
	atomic_store(&t->done, 1);
	return NULL;
}

int ut_io_start(struct ut_io_thread *t, enum ut_io_op op, int fd, void *buf,
		size_t len, off_t off)
{
	int ret;

	memset(t, 0, sizeof(*t));
	t->op = op;
	t->fd = fd;
	t->buf = buf;
	t->len = len;
	t->off = off;
	ret = pthread_create(&t->thread, NULL, ut_io_thread_fn, t);
	if (ret)
		return -ret;
	t->started = true;
	return 0;
}

int ut_io_join(struct ut_io_thread *t, int timeout_ms)
{
	int ret;

	if (!t->started)
		return -EINVAL;
	ret = ut_timedjoin(t->thread, timeout_ms);
	if (!ret)
		t->started = false;
	return ret;
}

/* ---- processes ---- */

int ut_waitpid_timeout(pid_t pid, int *status, int timeout_ms)
{
	uint64_t end = ut_now_ns() + (uint64_t)timeout_ms * 1000000ULL;
	pid_t ret;

	for (;;) {
		ret = waitpid(pid, status, WNOHANG);
		if (ret == pid)
			return 0;
		if (ret < 0 && errno != EINTR)
			return -errno;
		if (ut_now_ns() > end)
			return -ETIMEDOUT;
		ut_sleep_ms(2);
	}
}

void ut_kill_reap(pid_t pid)
{
	if (pid <= 0)
		return;
	kill(pid, SIGKILL);
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
}

long ut_meminfo_kb(const char *key)
{
	char line[256];
	size_t klen = strlen(key);
	long val = -ENOENT;
	FILE *f;

	f = fopen("/proc/meminfo", "re");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, key, klen) && line[klen] == ':') {
			val = strtol(line + klen + 1, NULL, 10);
			break;
		}
	}
	fclose(f);
	return val;
}

/* ---- the shmem huge page knob ---- */

int ut_thp_shmem_read(char *out, size_t len)
{
	char buf[256], *l, *r;
	ssize_t n;
	int fd;

	fd = open(UT_THP_SHMEM, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return n < 0 ? -errno : -EIO;
	buf[n] = '\0';
	l = strchr(buf, '[');
	r = l ? strchr(l, ']') : NULL;
	if (!r)
		return -EIO;
	*r = '\0';
	snprintf(out, len, "%s", l + 1);
	return 0;
}

int ut_thp_shmem_write(const char *val)
{
	ssize_t n;
	int fd;

	fd = open(UT_THP_SHMEM, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = write(fd, val, strlen(val));
	close(fd);
	if (n < 0)
		return -errno;
	return n == (ssize_t)strlen(val) ? 0 : -EIO;
}

int ut_thp_shmem_set(const char *val)
{
	char now[32];
	int err = ut_thp_shmem_write(val);

	if (!err)
		err = ut_thp_shmem_read(now, sizeof(now));
	if (!err && strcmp(now, val))
		err = -EIO;
	return err;
}

/*
 * Process-wide by nature (atexit() and signal handlers have no context
 * argument), so the guard's state is the only file-scope state here.
 */
static char ut_thp_orig[32];
static pid_t ut_thp_main_pid;

static void ut_thp_restore_at_exit(void)
{
	char now[32];

	if (getpid() != ut_thp_main_pid || !ut_thp_orig[0])
		return;
	if (ut_thp_shmem_read(now, sizeof(now)) == 0 && strcmp(now, ut_thp_orig))
		ut_thp_shmem_write(ut_thp_orig);
}

static void ut_thp_restore_on_signal(int sig)
{
	if (getpid() == ut_thp_main_pid && ut_thp_orig[0])
		ut_thp_shmem_write(ut_thp_orig);
	signal(sig, SIG_DFL);
	raise(sig);
}

void ut_thp_shmem_guard(void)
{
	ut_thp_main_pid = getpid();
	if (ut_thp_shmem_read(ut_thp_orig, sizeof(ut_thp_orig))) {
		ut_thp_orig[0] = '\0';
		return;
	}
	atexit(ut_thp_restore_at_exit);
	signal(SIGTERM, ut_thp_restore_on_signal);
	signal(SIGINT, ut_thp_restore_on_signal);
	signal(SIGHUP, ut_thp_restore_on_signal);
}

/* ---- /proc/self/smaps ---- */

long ut_smaps_kb(const void *start, const char *key)
{
	char line[512], fmt[64];
	unsigned long s, e, v;
	bool in = false, found = false;
	long kb = 0;
	FILE *f;

	snprintf(fmt, sizeof(fmt), "%s: %%lu kB", key);
	f = fopen("/proc/self/smaps", "re");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		size_t hex = strspn(line, "0123456789abcdef");

		/* A vma header: "start-end perms ..."; keys are "Name:". */
		if (hex && line[hex] == '-' &&
		    sscanf(line, "%lx-%lx ", &s, &e) == 2) {
			in = s == (uintptr_t)start;
			found |= in;
			continue;
		}
		if (in && sscanf(line, fmt, &v) == 1)
			kb += (long)v;
	}
	fclose(f);
	return found ? kb : -ENOENT;
}

long ut_smaps_pmd_kb(const void *start)
{
	long a = ut_smaps_kb(start, "ShmemPmdMapped");
	long b = ut_smaps_kb(start, "FilePmdMapped");

	if (a < 0 || b < 0)
		return a < 0 ? a : b;
	return a + b;
}
