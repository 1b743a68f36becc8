/* Framing of the tinytvm UART protocol: COBS (Cheshire & Baker 1999) with a 0x00 delimiter,
 * and CRC-32. Board-independent; the bytes go through tt_board_read / tt_board_write. */
#include "tt_proto.h"

#include <string.h>

#include "tt_board.h"
#include "tt_crc32.h"

#define FRAME_OVERHEAD 6u /* cmd, seq, CRC-32 */
#define MAX_FRAME (TT_PROTO_MAX_PAYLOAD + FRAME_OVERHEAD)
/* COBS adds one byte per 254 and one at the start. */
#define MAX_ENCODED (MAX_FRAME + MAX_FRAME / 254u + 2u)

static uint8_t rx[MAX_ENCODED];
static uint8_t current_seq;   /* seq of the request being served */
static int awaiting_reply;    /* a request was received and not answered yet */

/* Decodes COBS in place (the output never overtakes the input). Returns the length, or -1. */
static int cobs_decode(uint8_t *buf, size_t n)
{
    size_t r = 0, w = 0;
    while (r < n) {
        uint8_t code = buf[r++];
        if (code == 0u) return -1;
        for (uint8_t i = 1; i < code; i++) {
            if (r >= n) return -1;
            buf[w++] = buf[r++];
        }
        if (code != 0xFFu && r < n) buf[w++] = 0u;
    }
    return (int)w;
}

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Raw bytes up to the next 0x00. Returns the count, -1 if the frame overflowed rx (the rest
 * up to the delimiter is dropped), or TT_PROTO_CLOSED. */
static int read_encoded(void)
{
    size_t n = 0;
    int overflow = 0;
    for (;;) {
        int c = tt_board_read();
        if (c < 0) return TT_PROTO_CLOSED;
        if (c == 0) return overflow ? -1 : (int)n;
        if (n < sizeof rx)
            rx[n++] = (uint8_t)c;
        else
            overflow = 1;
    }
}

int tt_proto_receive(uint8_t *cmd, uint8_t *seq, uint8_t *payload)
{
    for (;;) {
        int n = read_encoded();
        if (n == TT_PROTO_CLOSED) return n;
        if (n == 0) continue; /* a lone delimiter: the host resynchronizing */
        awaiting_reply = 1;
        int len = n < 0 ? -1 : cobs_decode(rx, (size_t)n);
        *seq = len >= 2 ? rx[1] : 0u;
        current_seq = *seq;
        if (len < (int)FRAME_OVERHEAD) return -TT_ERR_FRAME;
        size_t body = (size_t)len - 4u;
        if (tt_crc32(0u, rx, body) != get_u32(rx + body)) return -TT_ERR_CRC;
        *cmd = rx[0];
        memcpy(payload, rx + 2, body - 2u);
        return (int)(body - 2u);
    }
}

/* COBS encoder writing as it goes: holds one block of at most 254 non-zero bytes. */
typedef struct {
    uint8_t block[255]; /* block[0] is the code byte */
    uint8_t n;          /* data bytes in the block */
} cobs_writer;

static void cobs_flush(cobs_writer *w)
{
    w->block[0] = (uint8_t)(w->n + 1u);
    tt_board_write(w->block, (size_t)w->n + 1u);
    w->n = 0;
}

static void cobs_put(cobs_writer *w, const uint8_t *data, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (data[i] == 0u) {
            cobs_flush(w);
            continue;
        }
        w->block[1u + w->n++] = data[i];
        if (w->n == 254u) {
            w->block[0] = 0xFFu; /* a full block: no zero follows it */
            tt_board_write(w->block, 255u);
            w->n = 0;
        }
    }
}

void tt_proto_send(uint8_t cmd, uint8_t seq, const void *payload, size_t len)
{
    static cobs_writer w;
    uint8_t head[2] = {cmd, seq};
    uint32_t crc = tt_crc32(tt_crc32(0u, head, 2u), payload, len);
    uint8_t tail[4];
    for (int i = 0; i < 4; i++) tail[i] = (uint8_t)(crc >> (8 * i));
    static const uint8_t delimiter = 0u;
    w.n = 0;
    cobs_put(&w, head, 2u);
    if (len > 0u) cobs_put(&w, (const uint8_t *)payload, len);
    cobs_put(&w, tail, 4u);
    cobs_flush(&w);
    tt_board_write(&delimiter, 1u);
    if (cmd != TT_MSG_LOG) awaiting_reply = 0;
}

void tt_proto_send_error(uint8_t seq, uint8_t code, int32_t detail, const char *message)
{
    uint8_t buf[96];
    size_t n = strlen(message);
    if (n > sizeof buf - 5u) n = sizeof buf - 5u;
    buf[0] = code;
    for (int i = 0; i < 4; i++) buf[1 + i] = (uint8_t)((uint32_t)detail >> (8 * i));
    memcpy(buf + 5, message, n);
    tt_proto_send(TT_MSG_ERROR, seq, buf, n + 5u);
}

void tt_proto_halt(int code)
{
    static uint8_t payload[TT_PROTO_MAX_PAYLOAD];
    const char *why = code == 250 ? "the firmware stopped: CPU fault (exit code 250)"
                                  : "the firmware stopped (detail: its exit code)";
    if (awaiting_reply) tt_proto_send_error(current_seq, TT_ERR_HALTED, code, why);
    for (;;) {
        uint8_t cmd, seq;
        if (tt_proto_receive(&cmd, &seq, payload) == TT_PROTO_CLOSED) tt_board_exit(code);
        tt_proto_send_error(seq, TT_ERR_HALTED, code, why);
    }
}
