// SPDX-License-Identifier: GPL-2.0
/*
 * umem-vmm --pause PID, --resume PID: the writer's pause protocol seen
 * from a hook script (umemd --stop-cmd and --cont-cmd).  Each returns
 * only once the writer has acted on its signal, so that umemd's next
 * step (write-protect the RAM, read the device state; or a later pause)
 * never overtakes it:
 *
 *   --pause   unlinks the state file, sends SIGUSR1 and waits until the
 *             writer has written the file (it renames a complete one in
 *             place, so the file's existence is the answer);
 *   --resume  sends SIGUSR2 and waits until the writer has taken it off
 *             its pending signals (ShdPnd in /proc/PID/status).  Two
 *             standard signals pending at once are delivered lowest
 *             number first, so without this wait a resume followed at
 *             once by the next pause would be taken as pause, resume.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "util.h"
#include "vmm.h"

#define HOOK_POLL_US	5000

/* 1 if @sig is pending for the whole process @pid, 0 if not, -errno. */
static int shared_pending(pid_t pid, int sig)
{
	char path[64], line[256];
	unsigned long long mask;
	int ret = -ENOENT;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "ShdPnd: %llx", &mask) == 1) {
			ret = (mask >> (sig - 1)) & 1;
			break;
		}
	fclose(f);
	return ret;
}

static bool alive(pid_t pid)
{
	return kill(pid, 0) == 0 || errno != ESRCH;
}

int hook_pause(pid_t pid, const char *state_path, double timeout)
{
	uint64_t deadline = now_ns() + (uint64_t)(timeout * 1e9);

	if (unlink(state_path) < 0 && errno != ENOENT) {
		log_msg("--pause: removing the old %s: %s", state_path, strerror(errno));
		return 1;
	}
	if (kill(pid, SIGUSR1) < 0) {
		log_msg("--pause: SIGUSR1 to %d: %s", (int)pid, strerror(errno));
		return 1;
	}
	while (access(state_path, F_OK) < 0) {
		if (!alive(pid)) {
			log_msg("--pause: writer %d exited before writing %s", (int)pid, state_path);
			return 1;
		}
		if (now_ns() > deadline) {
			log_msg("--pause: writer %d did not write %s within %g s (is it umem-vmm --writer --state-file %s?)",
				(int)pid, state_path, timeout, state_path);
			return 1;
		}
		usleep(HOOK_POLL_US);
	}
	return 0;
}

int hook_resume(pid_t pid, double timeout)
{
	uint64_t deadline = now_ns() + (uint64_t)(timeout * 1e9);
	int ret;

	if (kill(pid, SIGUSR2) < 0) {
		log_msg("--resume: SIGUSR2 to %d: %s", (int)pid, strerror(errno));
		return 1;
	}
	while ((ret = shared_pending(pid, SIGUSR2)) == 1) {
		if (now_ns() > deadline) {
			log_msg("--resume: writer %d did not take SIGUSR2 within %g s",
				(int)pid, timeout);
			return 1;
		}
		usleep(HOOK_POLL_US);
	}
	if (ret < 0 && !alive(pid)) {
		log_msg("--resume: writer %d exited", (int)pid);
		return 1;
	}
	if (ret < 0) {
		/* No /proc to ask: the signal is sent, which is all we can know. */
		log_msg("--resume: cannot read /proc/%d/status (%s); not waiting",
			(int)pid, strerror(-ret));
	}
	return 0;
}
