/* tt_nv in QEMU: each slot is a file on the host (tt_nv_slot0.bin, tt_nv_slot1.bin in QEMU's
 * working directory), reached through semihosting, so it survives the emulated reset. */
#include <string.h>

#include "tt_nv.h"
#include "tt_nv_cut.h"
#include "tt_semihost.h"

#ifndef TT_NV_SLOT_BYTES
#define TT_NV_SLOT_BYTES (64u * 1024u)
#endif

#define MODE_RB_PLUS 3 /* "r+b" */
#define MODE_WB_PLUS 7 /* "w+b" */

static int handles[TT_NV_SLOTS] = {-1, -1};

static int open_slot(int slot)
{
    if (slot < 0 || slot >= TT_NV_SLOTS) return -1;
    if (handles[slot] >= 0) return handles[slot];
    static char name[] = "tt_nv_slot0.bin";
    name[10] = (char)('0' + slot);
    uint32_t args[3] = {(uint32_t)(uintptr_t)name, MODE_RB_PLUS, (uint32_t)(sizeof name - 1)};
    int h = tt_semihost_call(TT_SYS_OPEN, args);
    if (h < 0) { /* first boot: create it, erased */
        args[1] = MODE_WB_PLUS;
        h = tt_semihost_call(TT_SYS_OPEN, args);
    }
    handles[slot] = h;
    return h;
}

static int seek(int h, uint32_t offset)
{
    uint32_t args[2] = {(uint32_t)h, offset};
    return tt_semihost_call(TT_SYS_SEEK, args) == 0 ? 0 : -1;
}

static int write_at(int slot, uint32_t offset, const void *data, uint32_t len)
{
    int h = open_slot(slot);
    if (h < 0 || offset + len > TT_NV_SLOT_BYTES || seek(h, offset) != 0) return -1;
    uint32_t allowed = tt_nv_cut_allowance(len);
    uint32_t args[3] = {(uint32_t)h, (uint32_t)(uintptr_t)data, allowed};
    if (allowed > 0 && tt_semihost_call(TT_SYS_WRITE, args) != 0) return -1;
    tt_nv_cut_check(allowed, len);
    return 0;
}

int tt_nv_erase(int slot)
{
    static const uint8_t ones[256] = {[0 ... 255] = 0xFF};
    for (uint32_t at = 0; at < TT_NV_SLOT_BYTES; at += sizeof ones)
        if (write_at(slot, at, ones, sizeof ones) != 0) return -1;
    return 0;
}

int tt_nv_write(int slot, uint32_t offset, const void *data, uint32_t len)
{
    return write_at(slot, offset, data, len);
}

int tt_nv_read(int slot, uint32_t offset, void *data, uint32_t len)
{
    int h = open_slot(slot);
    if (h < 0 || offset + len > TT_NV_SLOT_BYTES || seek(h, offset) != 0) return -1;
    memset(data, 0xFF, len); /* bytes past the end of a fresh file read as erased */
    uint32_t args[3] = {(uint32_t)h, (uint32_t)(uintptr_t)data, len};
    tt_semihost_call(TT_SYS_READ, args);
    return 0;
}

uint32_t tt_nv_slot_bytes(void)
{
    return TT_NV_SLOT_BYTES;
}
