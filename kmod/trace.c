// SPDX-License-Identifier: GPL-2.0
/*
 * umem tracepoint definitions; the events are described in umem_trace.h.
 *
 * Locking: none; tracepoints may fire under region->lock.
 */
#define CREATE_TRACE_POINTS
#include "umem_trace.h"
