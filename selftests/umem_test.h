/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Include this instead of kselftest_harness.h: it quiets what -Wextra
 * -Werror rejects in the 6.12 harness itself, then pulls in the helpers.
 */
#ifndef UMEM_TEST_H
#define UMEM_TEST_H

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"
#include "kselftest_harness.h"
#pragma GCC diagnostic pop

/*
 * TEST_F() keeps "child" in a local across setjmp(); GCC flags it in every
 * test body that follows.  It is the harness's variable, not ours.
 */
#ifndef __clang__
#pragma GCC diagnostic ignored "-Wclobbered"
#endif
/*
 * EXPECT_EQ(0, u64_field) compares typeof(expected) with typeof(seen) by
 * design and prints both with their own signedness; -Wextra's sign-compare
 * would flag nearly every assertion.
 */
#pragma GCC diagnostic ignored "-Wsign-compare"

/*
 * Beware: EXPECT_*() and ASSERT_*() expand to two statements (the check,
 * then a for() that runs the optional trailing TH_LOG()/statement and
 * bails).  Always brace the body of a loop or if that holds one.
 */

#include "umem_common.h"

#endif /* UMEM_TEST_H */
