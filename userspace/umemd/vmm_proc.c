// SPDX-License-Identifier: GPL-2.0
/* The VMM process on the source: see vmm_proc.h. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"
#include "vmm_proc.h"

static int task_states(int pid, bool *all_stopped)
{
	char path[64], st[512];
	struct dirent *de;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/task", pid);
	d = opendir(path);
	if (!d)
		return -errno;
	*all_stopped = true;
	while ((de = readdir(d))) {
		char p2[300];
		char *c;
		int fd;
		ssize_t n;

		if (de->d_name[0] == '.')
			continue;
		snprintf(p2, sizeof(p2), "/proc/%d/task/%s/stat", pid, de->d_name);
		fd = open(p2, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;	/* exited */
		n = read(fd, st, sizeof(st) - 1);
		close(fd);
		if (n <= 0)
			continue;
		st[n] = 0;
		c = strrchr(st, ')');
		if (c && c[1] == ' ' && c[2] != 'T' && c[2] != 't' &&
		    c[2] != 'Z' && c[2] != 'X')
			*all_stopped = false;
	}
	closedir(d);
	return 0;
}

int vmm_freeze(int pid, char *err, size_t errlen)
{
	uint64_t deadline = now_ns() + 5000000000ULL;

	if (kill(pid, SIGSTOP) < 0) {
		snprintf(err, errlen, "stopping the VMM (pid %d): %s", pid, strerror(errno));
		return -1;
	}
	for (;;) {
		bool stopped = false;
		int ret = task_states(pid, &stopped);

		if (ret) {
			snprintf(err, errlen, "VMM pid %d: %s", pid, strerror(-ret));
			return -1;
		}
		if (stopped)
			return 0;
		if (now_ns() > deadline) {
			kill(pid, SIGCONT);
			snprintf(err, errlen, "VMM pid %d did not stop within 5 s", pid);
			return -1;
		}
		usleep(200);
	}
}

void vmm_thaw(int pid)
{
	kill(pid, SIGCONT);
}

int vmm_stop(struct vmm_proc *v, char *err, size_t errlen)
{
	int rc;

	if (!v->stop_cmd) {
		if (vmm_freeze(v->pid, err, errlen))
			return -1;
		v->frozen = true;
		return 0;
	}
	rc = system(v->stop_cmd);
	if (rc != 0) {
		snprintf(err, errlen, "--stop-cmd '%s' failed (status %d); the VMM keeps running here",
			 v->stop_cmd, rc);
		return -1;
	}
	return 0;
}

int vmm_resume(struct vmm_proc *v)
{
	if (!v->frozen)
		return -1;
	v->frozen = false;
	return kill(v->pid, SIGCONT) == 0 ? 0 : -1;
}

int vmm_cont(struct vmm_proc *v, char *err, size_t errlen)
{
	int rc;

	if (v->cont_cmd) {
		rc = system(v->cont_cmd);
		if (rc != 0) {
			snprintf(err, errlen, "--cont-cmd '%s' failed (status %d)", v->cont_cmd, rc);
			return -1;
		}
		return 0;
	}
	if (v->frozen && vmm_resume(v) == 0)
		return 0;
	snprintf(err, errlen, "cannot let the VMM run again: %s",
		 v->frozen ? strerror(errno) : "it was stopped by --stop-cmd and there is no --cont-cmd");
	return -1;
}
