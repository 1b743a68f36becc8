/* tt_nv on the host: each slot is a file (tt_nv_slot0.bin, tt_nv_slot1.bin in the working
 * directory), so a host run behaves like the QEMU run that uses semihosting files. */
#include <stdio.h>
#include <string.h>

#include "tt_nv.h"
#include "tt_nv_cut.h"

#ifndef TT_NV_SLOT_BYTES
#define TT_NV_SLOT_BYTES (64u * 1024u)
#endif

static FILE *files[TT_NV_SLOTS];

static FILE *open_slot(int slot)
{
    if (slot < 0 || slot >= TT_NV_SLOTS) return NULL;
    if (files[slot] == NULL) {
        char name[] = "tt_nv_slot0.bin";
        name[10] = (char)('0' + slot);
        files[slot] = fopen(name, "r+b");
        if (files[slot] == NULL) files[slot] = fopen(name, "w+b");
    }
    return files[slot];
}

static int write_at(int slot, uint32_t offset, const void *data, uint32_t len)
{
    FILE *f = open_slot(slot);
    if (f == NULL || offset + len > TT_NV_SLOT_BYTES || fseek(f, (long)offset, SEEK_SET) != 0)
        return -1;
    uint32_t allowed = tt_nv_cut_allowance(len);
    if (fwrite(data, 1, allowed, f) != allowed || fflush(f) != 0) return -1;
    tt_nv_cut_check(allowed, len);
    return 0;
}

int tt_nv_erase(int slot)
{
    uint8_t ones[256];
    memset(ones, 0xFF, sizeof ones);
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
    FILE *f = open_slot(slot);
    if (f == NULL || offset + len > TT_NV_SLOT_BYTES || fseek(f, (long)offset, SEEK_SET) != 0)
        return -1;
    size_t got = fread(data, 1, len, f);
    memset((uint8_t *)data + got, 0xFF, len - got); /* past the end of a fresh file: erased */
    return 0;
}

uint32_t tt_nv_slot_bytes(void)
{
    return TT_NV_SLOT_BYTES;
}
