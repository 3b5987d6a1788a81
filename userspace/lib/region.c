// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * libumem core: backend lookup, argument checks, and dispatch to the
 * backend ops table.  Backend files never see an unchecked range.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

#ifndef HUGETLBFS_MAGIC
#define HUGETLBFS_MAGIC 0x958458f6
#endif

static const struct umem_backend_ops *const backends[] = {
	&umem__backend_umem,
	&umem__backend_uffd,
	&umem__backend_uffd_minor,
};

static const char *const backend_names[] = { "umem", "uffd", "uffd-minor", NULL };

const char *const *umem_backend_names(void)
{
	return backend_names;
}

static const struct umem_backend_ops *find_backend(const char *name)
{
	if (!name)
		name = "umem";
	for (size_t i = 0; i < sizeof(backends) / sizeof(backends[0]); i++)
		if (!strcmp(backends[i]->name, name))
			return backends[i];
	return NULL;
}

int umem_backend_known(const char *backend)
{
	return find_backend(backend) != NULL;
}

void umem__log(const struct umem_region *r, int level, const char *fmt, ...)
{
	char buf[256];
	va_list ap;

	if (!r || !r->log)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	r->log(r->log_opaque, level, buf);
}

int umem__ioctl(int fd, unsigned long req, void *arg)
{
	int ret;

	do {
		ret = ioctl(fd, req, arg);
	} while (ret < 0 && errno == EINTR);
	return ret < 0 ? -errno : ret;
}

uint64_t umem__now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

int umem__range_ok(const struct umem_region *r, uint64_t off, uint64_t len)
{
	uint64_t mask = r->page_size - 1;

	if ((off & mask) || (len & mask) || !len)
		return -EINVAL;
	if (off >= r->size || len > r->size - off)
		return -EINVAL;
	return 0;
}

int umem__mmap_aligned(const struct umem_region *r, int fd, void **out)
{
	size_t align = r->page_size, len = (size_t)r->size;
	uint8_t *res, *p;

	if (align <= UMEM_LIB_PAGE_4K) {
		p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		if (p == MAP_FAILED)
			return -errno;
		*out = p;
		return 0;
	}
	/* Reserve len + align of address space, map the file at the first
	 * aligned address inside it, give back the rest. */
	res = mmap(NULL, len + align, PROT_NONE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (res == MAP_FAILED)
		return -errno;
	p = (uint8_t *)(((uintptr_t)res + align - 1) & ~(uintptr_t)(align - 1));
	if (mmap(p, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0) ==
	    MAP_FAILED) {
		int err = -errno;

		munmap(res, len + align);
		return err;
	}
	if (p > res)
		munmap(res, (size_t)(p - res));
	if (p + len < res + len + align)
		munmap(p + len, (size_t)(res + len + align - (p + len)));
	*out = p;
	return 0;
}

long umem__hugepages_count(const char *file)
{
	char path[128];
	long v = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/sys/kernel/mm/hugepages/hugepages-2048kB/%s", file);
	f = fopen(path, "re");
	if (!f)
		return -1;
	if (fscanf(f, "%ld", &v) != 1)
		v = -1;
	fclose(f);
	return v;
}

void umem__hugetlb_hint(const struct umem_region *r, const char *what)
{
	long fr = umem__hugepages_count("free_hugepages");
	long rs = umem__hugepages_count("resv_hugepages");

	umem__log(r, UMEM_LOG_ERR,
		  "%s: no free 2 MiB huge pages for %llu MiB (%ld free, %ld reserved): reserve them in /proc/sys/vm/nr_hugepages",
		  what, (unsigned long long)(r->size >> 20), fr, rs);
}

const char *umem_strerror(int err)
{
	if (err < 0)
		err = -err;
	switch (err) {
	case ENOENT:	return "no such region or device (is the umem module loaded?)";
	case EOPNOTSUPP: return "operation not supported by this backend";
	case ENOTCONN:	return "no VMM attached to the region yet";
	case ESHUTDOWN:	return "the VMM side of the region is gone";
	case EEXIST:	return "page already present (or region name in use)";
	default:	return strerror(err);
	}
}

static int check_config(const struct umem_region_config *cfg)
{
	if (!cfg || cfg->flags & ~(UMEM_REGION_WRITE_PROTECT | UMEM_REGION_PRESENT))
		return -EINVAL;
	for (size_t i = 0; i < 4; i++)
		if (cfg->reserved[i])
			return -EINVAL;
	if (cfg->page_size && cfg->page_size != UMEM_LIB_PAGE_4K &&
	    cfg->page_size != UMEM_LIB_PAGE_2M)
		return -EINVAL;
	if (!find_backend(cfg->backend))
		return -ENOENT;
	return 0;
}

static struct umem_region *region_alloc(const struct umem_region_config *cfg)
{
	struct umem_region *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	r->ops = find_backend(cfg->backend);
	r->page_size = cfg->page_size ? cfg->page_size : UMEM_LIB_PAGE_4K;
	r->size = cfg->size;
	r->flags = cfg->flags;
	r->server_fd = r->export_fd = r->fault_fd = r->client_uffd = -1;
	r->log = cfg->log;
	r->log_opaque = cfg->log_opaque;
	if (cfg->name)
		snprintf(r->name, sizeof(r->name), "%s", cfg->name);
	return r;
}

static int alloc_zero_buf(struct umem_region *r)
{
	void *z = mmap(NULL, r->page_size, PROT_READ,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	if (z == MAP_FAILED)
		return -errno;
	r->zero_buf = z;
	return 0;
}

static bool name_ok(const char *name)
{
	size_t n = name ? strlen(name) : 0;

	if (n == 0 || n >= sizeof(((struct umem_region *)0)->name))
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-'))
			return false;
	}
	return true;
}

int umem_region_create(const struct umem_region_config *cfg,
		       struct umem_region **out)
{
	struct umem_region *r;
	int ret = check_config(cfg);

	if (ret)
		return ret;
	if (!out || !name_ok(cfg->name) || !cfg->size ||
	    cfg->size % (cfg->page_size ? cfg->page_size : UMEM_LIB_PAGE_4K))
		return -EINVAL;
	r = region_alloc(cfg);
	if (!r)
		return -ENOMEM;
	ret = alloc_zero_buf(r);
	if (ret) {
		umem_region_close(r);
		return ret;
	}
	r->server = true;
	ret = r->ops->create(r);
	if (ret) {
		umem_region_close(r);
		return ret;
	}
	*out = r;
	return 0;
}

int umem_region_open(const struct umem_region_config *cfg, int fd,
		     const char *path, struct umem_region **out)
{
	struct umem_region *r;
	struct statfs sfs;
	struct stat st;
	off_t end;
	int ret = check_config(cfg);

	if (ret || !out || (fd < 0 && !path)) {
		if (fd >= 0)
			close(fd);
		return ret ? ret : -EINVAL;
	}
	if (fd < 0) {
		fd = open(path, O_RDWR | O_CLOEXEC);
		if (fd < 0)
			return -errno;
	}
	r = region_alloc(cfg);
	if (!r) {
		close(fd);
		return -ENOMEM;
	}
	r->export_fd = fd;
	if (path)
		snprintf(r->path, sizeof(r->path), "%s", path);
	/*
	 * A hugetlbfs memfd (uffd* on huge pages) knows its page size; a
	 * umem node does not tell, so the caller passes it (from the
	 * daemon's VMM socket HELLO).
	 */
	if (fstatfs(fd, &sfs) == 0 && (unsigned long)sfs.f_type == HUGETLBFS_MAGIC) {
		if (cfg->page_size && cfg->page_size != (uint64_t)sfs.f_bsize) {
			umem__log(r, UMEM_LOG_ERR,
				  "region fd has %ld-byte huge pages, expected page size %u",
				  (long)sfs.f_bsize, cfg->page_size);
			umem_region_close(r);
			return -EINVAL;
		}
		if ((uint64_t)sfs.f_bsize != UMEM_LIB_PAGE_2M) {
			umem__log(r, UMEM_LOG_ERR, "hugetlbfs page size %ld not supported",
				  (long)sfs.f_bsize);
			umem_region_close(r);
			return -EINVAL;
		}
		r->page_size = (uint32_t)sfs.f_bsize;
		r->hugetlb = true;
	}
	ret = alloc_zero_buf(r);
	if (ret) {
		umem_region_close(r);
		return ret;
	}
	/* Size: regular files and memfds by fstat, device nodes by lseek. */
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode))
		end = st.st_size;
	else
		end = lseek(fd, 0, SEEK_END);
	if (end <= 0 || (uint64_t)end % r->page_size ||
	    (cfg->size && (uint64_t)end != cfg->size)) {
		umem__log(r, UMEM_LOG_ERR, "region fd has size %lld, expected %llu",
			  (long long)end, (unsigned long long)cfg->size);
		umem_region_close(r);
		return -EINVAL;
	}
	r->size = (uint64_t)end;
	ret = r->ops->open(r);
	if (ret) {
		umem_region_close(r);
		return ret;
	}
	*out = r;
	return 0;
}

int umem_region_map(struct umem_region *r, void **addr)
{
	int ret = 0;

	if (!r)
		return -EINVAL;
	if (!r->map)
		ret = r->ops->map(r);
	if (!ret && addr)
		*addr = r->map;
	return ret;
}

int umem_region_client_fault_fd(struct umem_region *r, int *fd, uint64_t *base)
{
	if (!r || !fd || !base)
		return -EINVAL;
	if (!r->ops->attach)
		return -ENOTSUP;
	if (r->client_uffd < 0)
		return r->map ? -EBADF : -ENOTCONN;
	*fd = r->client_uffd;
	*base = (uint64_t)(uintptr_t)r->map;
	/* The creator's own uffd (snapshot sequence): stop serving it. */
	if (r->fault_fd == r->client_uffd)
		r->fault_fd = -1;
	r->client_uffd = -1;
	return 0;
}

int umem_region_export_fd(struct umem_region *r)
{
	return r ? r->export_fd : -EINVAL;
}

const char *umem_region_path(const struct umem_region *r)
{
	return r && r->path[0] ? r->path : NULL;
}

int umem_region_needs_attach(const struct umem_region *r)
{
	return r && r->ops->attach ? 1 : 0;
}

int umem_region_attach(struct umem_region *r, int fd, uint64_t base)
{
	/* A VMM's handle (opened and mapped) cannot serve. */
	if (!r || fd < 0 || (!r->server && (r->map || r->client_uffd >= 0))) {
		if (fd >= 0)
			close(fd);
		return -EINVAL;
	}
	if (!r->ops->attach) {
		close(fd);
		return -EOPNOTSUPP;
	}
	if (r->fault_fd >= 0) {
		close(fd);
		return -EBUSY;
	}
	return r->ops->attach(r, fd, base);
}

int umem_region_fault_fd(const struct umem_region *r)
{
	if (!r)
		return -EINVAL;
	return r->fault_fd >= 0 ? r->fault_fd : -ENOTCONN;
}

int umem_region_read_requests(struct umem_region *r,
			      struct umem_page_request *reqs, unsigned int max,
			      int timeout_ms)
{
	struct pollfd pfd;
	int ret;

	if (!r || !reqs || !max)
		return -EINVAL;
	if (r->fault_fd < 0) {
		if (timeout_ms > 0)
			poll(NULL, 0, timeout_ms);
		return -ENOTCONN;
	}
	for (;;) {
		ret = r->ops->read(r, reqs, max);
		if (ret != -EAGAIN)
			return ret;
		pfd.fd = r->fault_fd;
		pfd.events = POLLIN;
		pfd.revents = 0;
		ret = poll(&pfd, 1, timeout_ms);
		if (ret < 0 && errno == EINTR)
			continue;
		if (ret < 0)
			return -errno;
		if (ret == 0)
			return 0;
		if (pfd.revents & (POLLERR | POLLHUP | POLLNVAL) &&
		    !(pfd.revents & POLLIN))
			return -ESHUTDOWN;
		timeout_ms = 0;
	}
}

/* A checked range of a region that serves: 0, -EINVAL or -ENOTCONN. */
static int served_range(const struct umem_region *r, uint64_t off, uint64_t len)
{
	int ret;

	if (!r)
		return -EINVAL;
	ret = umem__range_ok(r, off, len);
	if (ret)
		return ret;
	if (r->ops->attach && r->fault_fd < 0)
		return -ENOTCONN;
	return 0;
}

int umem_region_copy(struct umem_region *r, uint64_t off, const void *src,
		     uint64_t len)
{
	int ret = src ? served_range(r, off, len) : -EINVAL;

	return ret ? ret : r->ops->copy(r, off, src, len);
}

int umem_region_copy_vec(struct umem_region *r, struct umem_copy_item *items,
			 unsigned int count)
{
	if (!r || !items || !count)
		return -EINVAL;
	if (r->ops->attach && r->fault_fd < 0)
		return -ENOTCONN;
	if (r->ops->copy_vec)
		return r->ops->copy_vec(r, items, count);
	for (unsigned int i = 0; i < count; i++) {
		items[i].result = umem__range_ok(r, items[i].offset, r->page_size);
		if (!items[i].result)
			items[i].result = r->ops->copy(r, items[i].offset,
						       items[i].src, r->page_size);
	}
	return (int)count;
}

int umem_region_zero(struct umem_region *r, uint64_t off, uint64_t len)
{
	int ret = served_range(r, off, len);

	if (ret)
		return ret;
	if (r->ops->zero)
		return r->ops->zero(r, off, len);
	for (uint64_t done = 0; done < len; done += r->page_size) {
		ret = r->ops->copy(r, off + done, r->zero_buf, r->page_size);
		if (ret)
			return ret;
	}
	return 0;
}

int umem_region_write(struct umem_region *r, uint64_t off, const void *src,
		      uint64_t len)
{
	if (!r || !src || !len)
		return -EINVAL;
	if (!r->ops->write)
		return -EOPNOTSUPP;
	if (off >= r->size || len > r->size - off)
		return -EINVAL;
	return r->ops->write(r, off, src, len);
}

int umem_region_mark_present(struct umem_region *r, const uint64_t *offs,
			     unsigned int count)
{
	if (!r || !offs || !count)
		return -EINVAL;
	if (!r->ops->mark_present)
		return -EOPNOTSUPP;
	if (r->ops->attach && r->fault_fd < 0)
		return -ENOTCONN;
	for (unsigned int i = 0; i < count; i++)
		if (umem__range_ok(r, offs[i], r->page_size))
			return -EINVAL;
	return r->ops->mark_present(r, offs, count);
}

int umem_region_writeprotect(struct umem_region *r, uint64_t off,
			     uint64_t len, int protect)
{
	int ret = served_range(r, off, len);

	if (ret)
		return ret;
	if (!r->ops->writeprotect)
		return -EOPNOTSUPP;
	return r->ops->writeprotect(r, off, len, protect != 0);
}

int umem_region_attach_node(const struct umem_region_config *cfg,
			    const char *path, struct umem_region **out)
{
	struct umem_region *r;
	int ret = check_config(cfg);

	if (ret)
		return ret;
	if (!path || !out)
		return -EINVAL;
	r = region_alloc(cfg);
	if (!r)
		return -ENOMEM;
	if (!r->ops->attach_node) {
		umem__log(r, UMEM_LOG_ERR, "%s: attaching by node needs the umem backend, not %s",
			  path, r->ops->name);
		umem_region_close(r);
		return -EOPNOTSUPP;
	}
	r->server = true;
	ret = r->ops->attach_node(r, path);
	if (!ret && ((cfg->size && cfg->size != r->size) ||
		     (cfg->page_size && cfg->page_size != r->page_size))) {
		umem__log(r, UMEM_LOG_ERR,
			  "%s has %llu bytes in %u-byte pages, expected %llu bytes in %u-byte pages",
			  path, (unsigned long long)r->size, r->page_size,
			  (unsigned long long)cfg->size, cfg->page_size);
		ret = -EINVAL;
	}
	if (!ret)
		ret = alloc_zero_buf(r);
	if (ret) {
		umem_region_close(r);
		return ret;
	}
	*out = r;
	return 0;
}

int umem_region_discard(struct umem_region *r, uint64_t off, uint64_t len)
{
	int ret;

	if (!r)
		return -EINVAL;
	if (!r->ops->discard)
		return -EOPNOTSUPP;
	ret = umem__range_ok(r, off, len);
	return ret ? ret : r->ops->discard(r, off, len);
}

int umem_region_wake(struct umem_region *r, uint64_t off, uint64_t len)
{
	int ret;

	if (!r)
		return -EINVAL;
	ret = umem__range_ok(r, off, len);
	if (ret)
		return ret;
	return r->ops->wake && r->fault_fd >= 0 ? r->ops->wake(r, off, len) : 0;
}

int umem_region_stats(struct umem_region *r, struct umem_region_stats *st)
{
	if (!r || !st)
		return -EINVAL;
	memset(st, 0, sizeof(*st));
	if (r->ops->stats)
		return r->ops->stats(r, st);
	st->size = r->size;
	st->page_size = r->page_size;
	st->pages = r->size / r->page_size;
	st->faults = atomic_load(&r->n_requests);
	st->requests = st->faults + atomic_load(&r->n_wp_requests);
	st->installed = atomic_load(&r->n_installed);
	st->discarded = atomic_load(&r->n_discarded);
	/* Born present: a discarded page reads as zeros, still present. */
	st->pages_present = r->flags & UMEM_REGION_PRESENT ? st->pages :
			    st->installed - st->discarded;
	st->pages_protected = atomic_load(&r->n_protected);
	st->wp_faults = atomic_load(&r->n_wp_faults);
	return 0;
}

int umem_region_was_mapped(struct umem_region *r)
{
	if (!r)
		return -EINVAL;
	return r->ops->was_mapped ? r->ops->was_mapped(r) : -EOPNOTSUPP;
}

const char *umem_region_backend(const struct umem_region *r)
{
	return r ? r->ops->name : NULL;
}

uint64_t umem_region_size(const struct umem_region *r)
{
	return r ? r->size : 0;
}

uint32_t umem_region_page_size(const struct umem_region *r)
{
	return r ? r->page_size : 0;
}

void umem_region_close(struct umem_region *r)
{
	int fds[4];

	if (!r)
		return;
	r->ops->destroy(r);
	if (r->map)
		munmap(r->map, r->size);
	if (r->daemon_map)
		munmap(r->daemon_map, r->size);
	if (r->zero_buf)
		munmap((void *)r->zero_buf, r->page_size);
	fds[0] = r->fault_fd;
	fds[1] = r->client_uffd;
	fds[2] = r->export_fd;
	fds[3] = r->server_fd;
	for (int i = 0; i < 4; i++) {
		bool dup_fd = false;

		for (int j = 0; j < i; j++)
			dup_fd |= fds[j] == fds[i];
		if (fds[i] >= 0 && !dup_fd)
			close(fds[i]);
	}
	free(r);
}
