/* Double-buffered checkpoints over tt_nv (see tt_checkpoint.h for the format and its reasons). */
#include "tt_checkpoint.h"

#include <string.h>

#include "tinytvm.h"
#include "tt_crc32.h"
#include "tt_nv.h"

#define HEADER_BYTES 16u
#define CHUNK 64u

typedef struct {
    uint32_t seq;
    uint32_t length;
} slot_info;

static uint32_t newest_seq;

static void put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* The header is valid when its magic and its own CRC match; the state is checked separately. */
static int read_header(int slot, slot_info *info)
{
    uint8_t h[HEADER_BYTES];
    if (tt_nv_read(slot, 0, h, HEADER_BYTES) != 0) return 0;
    if (memcmp(h, "TTCK", 4) != 0 || tt_crc32(0u, h, 12) != get_u32(h + 12)) return 0;
    info->seq = get_u32(h + 4);
    info->length = get_u32(h + 8);
    return info->length == TT_STATE_BYTES;
}

/* CRC-32 of the stored state's header and payload, compared with its trailing CRC. */
static int state_intact(int slot)
{
    uint8_t buf[CHUNK];
    uint32_t crc = 0u, body = TT_STATE_BYTES - 4u;
    for (uint32_t at = 0; at < body; at += CHUNK) {
        uint32_t n = body - at < CHUNK ? body - at : CHUNK;
        if (tt_nv_read(slot, HEADER_BYTES + at, buf, n) != 0) return 0;
        crc = tt_crc32(crc, buf, n);
    }
    if (tt_nv_read(slot, HEADER_BYTES + body, buf, 4) != 0) return 0;
    return crc == get_u32(buf);
}

/* The slot holding the newest valid checkpoint, or -1. */
static int newest_slot(uint32_t *seq)
{
    int best = -1;
    for (int slot = 0; slot < TT_NV_SLOTS; slot++) {
        slot_info info;
        if (read_header(slot, &info) && (best < 0 || info.seq > *seq) && state_intact(slot)) {
            best = slot;
            *seq = info.seq;
        }
    }
    return best;
}

int tt_checkpoint_save(void)
{
    if (HEADER_BYTES + TT_STATE_BYTES > tt_nv_slot_bytes()) return TT_CKPT_E_TOO_BIG;
    uint32_t seq = 0;
    int current = newest_slot(&seq);
    int target = current == 0 ? 1 : 0;
    if (tt_nv_erase(target) != 0) return TT_CKPT_E_STORAGE;
    uint8_t buf[CHUNK];
    size_t n;
    for (size_t at = 0; (n = tt_state_read(at, buf, CHUNK)) > 0; at += n)
        if (tt_nv_write(target, HEADER_BYTES + (uint32_t)at, buf, (uint32_t)n) != 0)
            return TT_CKPT_E_STORAGE;
    uint8_t h[HEADER_BYTES];
    memcpy(h, "TTCK", 4);
    put_u32(h + 4, seq + 1u);
    put_u32(h + 8, TT_STATE_BYTES);
    put_u32(h + 12, tt_crc32(0u, h, 12));
    if (tt_nv_write(target, 0, h, HEADER_BYTES) != 0) return TT_CKPT_E_STORAGE; /* the commit */
    newest_seq = seq + 1u;
    return TT_CKPT_OK;
}

int tt_checkpoint_restore(void)
{
    uint32_t seq = 0;
    int slot = newest_slot(&seq);
    if (slot < 0) return TT_CKPT_NONE;
    uint8_t buf[CHUNK];
    for (uint32_t at = 0; at < TT_STATE_BYTES; at += CHUNK) {
        uint32_t n = TT_STATE_BYTES - at < CHUNK ? TT_STATE_BYTES - at : CHUNK;
        if (tt_nv_read(slot, HEADER_BYTES + at, buf, n) != 0) return TT_CKPT_E_STORAGE;
        int rc = tt_state_write(at, buf, n);
        if (rc != TT_STATE_OK) return rc;
    }
    int rc = tt_state_verify();
    if (rc == TT_STATE_OK) newest_seq = seq;
    return rc;
}

uint32_t tt_checkpoint_seq(void)
{
    return newest_seq;
}
