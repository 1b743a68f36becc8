/* Protocol firmware: serves the tinytvm UART protocol (docs/protocol.md) on any board that
 * implements tt_board.h. The host sends samples, the device trains on them, one step per
 * request, and answers with the loss; inference, statistics and the trained state on demand. */
#include <string.h>

#include "tinytvm.h"
#include "tt_board.h"
#include "tt_io.h"
#include "tt_proto.h"

#define INPUT_BYTES (TT_INPUT_ELEMS * 4u)
/* A sample that fits in one frame may come inline with TRAIN / INFER; a larger one comes first
 * with INPUT frames (the client decides by the max_payload INFO reports). */
#define TRAIN_INLINE (5u + INPUT_BYTES <= TT_PROTO_MAX_PAYLOAD)
#define INFER_INLINE (INPUT_BYTES <= TT_PROTO_MAX_PAYLOAD)

static float input[TT_INPUT_ELEMS];
static float logits[TT_NUM_CLASSES];
static uint8_t request[TT_PROTO_MAX_PAYLOAD];
static uint8_t reply[TT_PROTO_MAX_PAYLOAD];

static struct {
    uint32_t steps;
    uint64_t last_train_cycles, last_infer_cycles, total_train_cycles;
} stats;

static uint8_t *put_u16(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    return p + 2;
}

static uint8_t *put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
    return p + 4;
}

static uint8_t *put_u64(uint8_t *p, uint64_t v)
{
    return put_u32(put_u32(p, (uint32_t)v), (uint32_t)(v >> 32));
}

static uint8_t *put_f32(uint8_t *p, float v)
{
    memcpy(p, &v, 4);
    return p + 4;
}

static uint8_t *put_text(uint8_t *p, const char *s)
{
    size_t n = strlen(s);
    if (n > 64u) n = 64u;
    *p++ = (uint8_t)n;
    memcpy(p, s, n);
    return p + n;
}

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static int32_t argmax(const float *v, int n)
{
    int32_t best = 0;
    for (int i = 1; i < n; i++)
        if (v[i] > v[best]) best = i;
    return best;
}

/* Times one call with the board's counter; the barriers keep the compiler from moving the call
 * out from between the two reads. */
#define TIMED(cycles, call)                          \
    do {                                             \
        uint64_t t0_ = tt_board_cycles();            \
        __asm__ volatile("" ::: "memory");           \
        call;                                        \
        __asm__ volatile("" ::: "memory");           \
        (cycles) = tt_board_cycles() - t0_;          \
    } while (0)

static void do_info(uint8_t seq)
{
    uint8_t *p = put_u16(reply, TT_PROTO_VERSION);
    p = put_u16(p, TT_PROTO_MAX_PAYLOAD);
    p = put_u32(p, TT_INPUT_ELEMS);
    p = put_u32(p, TT_NUM_CLASSES);
    p = put_u32(p, TT_STATE_BYTES);
    p = put_u32(p, TT_STATE_MODEL_ID);
    p = put_u32(p, tt_board.core_hz);
    *p++ = tt_board.cycle_kind;
    p = put_text(p, tt_board.name);
    p = put_text(p, TT_MODEL_NAME);
    tt_proto_send(TT_CMD_INFO | TT_REPLY, seq, reply, (size_t)(p - reply));
}

static void do_input(uint8_t seq, int len)
{
    if (len < 4 || (len - 4) % 4 != 0) {
        tt_proto_send_error(seq, TT_ERR_ARG, len, "INPUT: payload is u32 offset + float32 values");
        return;
    }
    uint32_t offset = get_u32(request);
    uint32_t count = (uint32_t)(len - 4) / 4u;
    if (offset > TT_INPUT_ELEMS || count > TT_INPUT_ELEMS - offset) {
        tt_proto_send_error(seq, TT_ERR_ARG, (int32_t)offset, "INPUT: past the end of the input");
        return;
    }
    memcpy(&input[offset], request + 4, count * 4u);
    tt_proto_send(TT_CMD_INPUT | TT_REPLY, seq, NULL, 0);
}

static void do_train(uint8_t seq, int len)
{
    int inline_input = TRAIN_INLINE && len == 5 + (int)INPUT_BYTES;
    if (len != 5 && !inline_input) {
        tt_proto_send_error(seq, TT_ERR_ARG, len, "TRAIN: payload is label, flags [, input]");
        return;
    }
    int32_t label = (int32_t)get_u32(request);
    if (label < 0 || label >= TT_NUM_CLASSES) {
        tt_proto_send_error(seq, TT_ERR_ARG, label, "TRAIN: label out of range");
        return;
    }
#if TRAIN_INLINE
    if (inline_input) memcpy(input, request + 5, INPUT_BYTES);
#endif
    int32_t prediction = -1;
    if (request[4] & TT_TRAIN_PREDICT) {
        tt_infer(input, logits);
        prediction = argmax(logits, TT_NUM_CLASSES);
    }
    float loss;
    uint64_t cycles;
    TIMED(cycles, loss = tt_train_step(input, label));
    stats.steps++;
    stats.last_train_cycles = cycles;
    stats.total_train_cycles += cycles;
    uint8_t *p = put_f32(reply, loss);
    p = put_u32(p, (uint32_t)prediction);
    p = put_u32(p, stats.steps);
    p = put_u64(p, cycles);
    tt_proto_send(TT_CMD_TRAIN | TT_REPLY, seq, reply, (size_t)(p - reply));
}

static void do_infer(uint8_t seq, int len)
{
    int inline_input = INFER_INLINE && len == (int)INPUT_BYTES;
    if (len != 0 && !inline_input) {
        tt_proto_send_error(seq, TT_ERR_ARG, len, "INFER: payload is empty or the input");
        return;
    }
#if INFER_INLINE
    if (inline_input) memcpy(input, request, INPUT_BYTES);
#endif
    uint64_t cycles;
    TIMED(cycles, tt_infer(input, logits));
    stats.last_infer_cycles = cycles;
    uint8_t *p = put_u32(reply, (uint32_t)argmax(logits, TT_NUM_CLASSES));
    p = put_u64(p, cycles);
    for (int i = 0; i < TT_NUM_CLASSES; i++) p = put_f32(p, logits[i]);
    tt_proto_send(TT_CMD_INFER | TT_REPLY, seq, reply, (size_t)(p - reply));
}

static void do_stats(uint8_t seq)
{
    uint8_t *p = put_u32(reply, TT_ARENA_BYTES);
    p = put_u32(p, TT_TRAINABLE_BYTES);
    p = put_u32(p, TT_FROZEN_BYTES);
    p = put_u32(p, tt_board_stack_bytes());
    p = put_u32(p, tt_stack_peak_bytes());
    p = put_u32(p, TT_STATE_BYTES);
    p = put_u32(p, stats.steps);
    p = put_u64(p, stats.last_train_cycles);
    p = put_u64(p, stats.last_infer_cycles);
    p = put_u64(p, stats.total_train_cycles);
    tt_proto_send(TT_CMD_STATS | TT_REPLY, seq, reply, (size_t)(p - reply));
}

static void do_state_read(uint8_t seq, int len)
{
    if (len != 6) {
        tt_proto_send_error(seq, TT_ERR_ARG, len, "STATE_READ: payload is u32 offset, u16 length");
        return;
    }
    uint32_t offset = get_u32(request);
    uint32_t want = (uint32_t)request[4] | (uint32_t)request[5] << 8;
    if (want > TT_PROTO_MAX_PAYLOAD || offset > TT_STATE_BYTES) {
        tt_proto_send_error(seq, TT_ERR_ARG, (int32_t)want, "STATE_READ: bad offset or length");
        return;
    }
    size_t n = tt_state_read(offset, reply, want);
    tt_proto_send(TT_CMD_STATE_READ | TT_REPLY, seq, reply, n);
}

static void do_state_write(uint8_t seq, int len)
{
    if (len < 4) {
        tt_proto_send_error(seq, TT_ERR_ARG, len, "STATE_WRITE: payload is u32 offset + bytes");
        return;
    }
    int rc = tt_state_write(get_u32(request), request + 4, (size_t)len - 4u);
    if (rc != TT_STATE_OK) {
        tt_proto_send_error(seq, TT_ERR_STATE, rc, "STATE_WRITE: refused (see TT_STATE_E_*)");
        return;
    }
    tt_proto_send(TT_CMD_STATE_WRITE | TT_REPLY, seq, NULL, 0);
}

static void do_state_verify(uint8_t seq)
{
    int rc = tt_state_verify();
    if (rc != TT_STATE_OK) {
        tt_proto_send_error(seq, TT_ERR_STATE, rc, "STATE_VERIFY: CRC mismatch, state damaged");
        return;
    }
    tt_proto_send(TT_CMD_STATE_VERIFY | TT_REPLY, seq, NULL, 0);
}

static void serve(uint8_t cmd, uint8_t seq, int len)
{
    switch (cmd) {
    case TT_CMD_INFO: do_info(seq); break;
    case TT_CMD_INPUT: do_input(seq, len); break;
    case TT_CMD_TRAIN: do_train(seq, len); break;
    case TT_CMD_INFER: do_infer(seq, len); break;
    case TT_CMD_STATS: do_stats(seq); break;
    case TT_CMD_STATE_READ: do_state_read(seq, len); break;
    case TT_CMD_STATE_WRITE: do_state_write(seq, len); break;
    case TT_CMD_STATE_VERIFY: do_state_verify(seq); break;
    default: tt_proto_send_error(seq, TT_ERR_UNKNOWN, cmd, "unknown command"); break;
    }
}

int main(void)
{
    tt_board_init();
    for (;;) {
        uint8_t cmd = 0, seq = 0;
        int len = tt_proto_receive(&cmd, &seq, request);
        if (len == TT_PROTO_CLOSED) return 0;
        if (len == -TT_ERR_CRC)
            tt_proto_send_error(seq, TT_ERR_CRC, 0, "CRC mismatch: request dropped");
        else if (len < 0)
            tt_proto_send_error(seq, TT_ERR_FRAME, 0, "bad frame: request dropped");
        else
            serve(cmd, seq, len);
    }
}
