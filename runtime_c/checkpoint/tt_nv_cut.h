/* Power-cut simulation for tests: built with -DTT_NV_CUT_AFTER=N, the storage backend stops the
 * program (exit code TT_NV_CUT_EXIT) once N bytes have been written in this run, in the middle of
 * whatever write reached that byte — as a power loss would. */
#ifndef TT_NV_CUT_H
#define TT_NV_CUT_H

#include <stdint.h>

#include "tt_io.h"

#define TT_NV_CUT_EXIT 99

/* How many of `len` bytes may be written before the cut; calls tt_exit after they are. */
static inline uint32_t tt_nv_cut_allowance(uint32_t len)
{
#ifdef TT_NV_CUT_AFTER
    static uint32_t written;
    uint32_t left = TT_NV_CUT_AFTER > written ? TT_NV_CUT_AFTER - written : 0u;
    written += len;
    return len < left ? len : left;
#else
    return len;
#endif
}

static inline void tt_nv_cut_check(uint32_t allowed, uint32_t len)
{
    if (allowed < len) tt_exit(TT_NV_CUT_EXIT);
}

#endif
