/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The VMM process on the source (--pid, --stop-cmd): freezing its tasks
 * (SIGSTOP, then wait until every thread is stopped) around a read of
 * its dirty bits, and stopping it for good at the switch, with
 * --stop-cmd or by freezing it; and letting it run again (--cont-cmd
 * for umemd --snapshot).  Main thread
 * only.
 */
#ifndef UMEMD_VMM_PROC_H
#define UMEMD_VMM_PROC_H

#include <stdbool.h>
#include <stddef.h>

struct vmm_proc {
	int pid;			/* 0: none (--stop-cmd alone) */
	const char *stop_cmd;		/* NULL: SIGSTOP */
	const char *cont_cmd;		/* --cont-cmd (snapshot); NULL: SIGCONT */
	bool frozen;			/* by vmm_stop(), with SIGSTOP */
};

/* SIGSTOP @pid and wait (up to 5 s) until every thread is stopped. */
int vmm_freeze(int pid, char *err, size_t errlen);
/* Let a frozen @pid run again (SIGCONT). */
void vmm_thaw(int pid);
/* Stop the VMM: --stop-cmd, else freeze it.  0, or -1 with @err. */
int vmm_stop(struct vmm_proc *v, char *err, size_t errlen);
/*
 * Undo vmm_stop(): 0 if the VMM runs again; -1 if it was not stopped
 * here or was stopped by --stop-cmd, which has no counterpart.
 */
int vmm_resume(struct vmm_proc *v);
/*
 * Let a VMM stopped by vmm_stop() run again, whichever way it was
 * stopped (umemd --snapshot): --cont-cmd if given, else SIGCONT to a
 * frozen pid.  0, or -1 with @err (a --stop-cmd without --cont-cmd has
 * no counterpart).
 */
int vmm_cont(struct vmm_proc *v, char *err, size_t errlen);
#endif
