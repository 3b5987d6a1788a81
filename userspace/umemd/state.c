// SPDX-License-Identifier: GPL-2.0
/*
 * The destination's postcopy state machine: one enum, one table of what
 * may arrive when, and one function that changes the state.
 *
 *   NONE --ADVISE--> ADVISE --DISCARD--> DISCARD
 *                      |                    |
 *                      +------LISTEN--------+--> LISTENING --RUN--> RUNNING
 *                                                                  |
 *                                                          END --> END
 *
 * PAGE, PIECE and ZERO may arrive from ADVISE to RUNNING (before LISTEN they are
 * precopy pages).  Nothing may arrive after END.
 */
#include <errno.h>
#include <stdio.h>

#include "proto.h"

const char *pc_state_name(enum pc_state s)
{
	static const char *const names[] = {
		[PC_NONE] = "NONE", [PC_ADVISE] = "ADVISE",
		[PC_DISCARD] = "DISCARD", [PC_LISTENING] = "LISTENING",
		[PC_RUNNING] = "RUNNING", [PC_END] = "END",
	};

	return (unsigned int)s <= PC_END ? names[s] : "?";
}

bool pc_allowed(enum pc_state s, uint16_t type)
{
	switch (type) {
	case MSG_ADVISE:
		return s == PC_NONE;
	case MSG_DISCARD:
		return s == PC_ADVISE || s == PC_DISCARD;
	case MSG_LISTEN:
		return s == PC_ADVISE || s == PC_DISCARD;
	case MSG_RUN:
		return s == PC_LISTENING;
	case MSG_END:
		return s == PC_RUNNING;
	case MSG_DEVICE_STATE:
		return s == PC_LISTENING;
	case MSG_PAGE:
	case MSG_PIECE:
	case MSG_ZERO:
		return s >= PC_ADVISE && s <= PC_RUNNING;
	default:
		return false;
	}
}

int pc_step(enum pc_state *s, uint16_t type, char *err, size_t errlen)
{
	if (!pc_allowed(*s, type)) {
		snprintf(err, errlen, "%s not allowed in state %s",
			 proto_type_name(type), pc_state_name(*s));
		return -EPROTO;
	}
	switch (type) {
	case MSG_ADVISE:  *s = PC_ADVISE; break;
	case MSG_DISCARD: *s = PC_DISCARD; break;
	case MSG_LISTEN:  *s = PC_LISTENING; break;
	case MSG_RUN:     *s = PC_RUNNING; break;
	case MSG_END:     *s = PC_END; break;
	default: break;	/* pages leave the state alone */
	}
	return 0;
}
