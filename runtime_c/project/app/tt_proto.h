/* The tinytvm UART protocol, device side. The full description is docs/protocol.md; the Python
 * side is tinytvm/micro/protocol.py, and a test checks that both use the same numbers.
 *
 * A frame on the wire is the COBS encoding of
 *     cmd (u8) | seq (u8) | payload (0..TT_PROTO_MAX_PAYLOAD bytes) | CRC-32 of cmd..payload (u32)
 * followed by one 0x00 byte. Integers and floats are little-endian. */
#ifndef TT_PROTO_H
#define TT_PROTO_H

#include <stddef.h>
#include <stdint.h>

#define TT_PROTO_VERSION 1

#ifndef TT_PROTO_MAX_PAYLOAD
#define TT_PROTO_MAX_PAYLOAD 1024
#endif

/* Requests (host to device). A reply has the request's cmd | TT_REPLY and the same seq. */
#define TT_CMD_INFO 0x01
#define TT_CMD_INPUT 0x02
#define TT_CMD_TRAIN 0x03
#define TT_CMD_INFER 0x04
#define TT_CMD_STATS 0x05
#define TT_CMD_STATE_READ 0x06
#define TT_CMD_STATE_WRITE 0x07
#define TT_CMD_STATE_VERIFY 0x08
#define TT_REPLY 0x80

/* Device to host, instead of a reply or unsolicited. */
#define TT_MSG_ERROR 0x7F /* payload: code (u8), detail (i32), message (ASCII) */
#define TT_MSG_LOG 0x7E   /* payload: text from tt_puts; seq 0 */

/* TRAIN flags. */
#define TT_TRAIN_PREDICT 0x01 /* run tt_infer before the step and return its argmax */

/* Error codes of TT_MSG_ERROR. */
#define TT_ERR_CRC 1     /* the request's CRC did not match */
#define TT_ERR_FRAME 2   /* bad COBS, too short, or longer than TT_PROTO_MAX_PAYLOAD */
#define TT_ERR_UNKNOWN 3 /* unknown cmd */
#define TT_ERR_ARG 4     /* bad payload length, label, offset or length */
#define TT_ERR_STATE 5   /* tt_state_write / tt_state_verify refused (detail: TT_STATE_E_*) */
#define TT_ERR_HALTED 6  /* the firmware stopped (detail: exit code, 250 = CPU fault) */

/* Cycle counter kinds reported by INFO. */
#define TT_CYCLES_NONE 0         /* no counter: cycle fields are 0 */
#define TT_CYCLES_CORE 1         /* core clock cycles (DWT->CYCCNT) at core_hz */
#define TT_CYCLES_INSTRUCTIONS 2 /* guest instructions (QEMU -icount shift=0), resolution 40 */

#define TT_PROTO_CLOSED (-100) /* tt_proto_receive: the link closed (host builds only) */

#ifdef __cplusplus
extern "C" {
#endif

/* Waits for the next frame. Returns its payload length and sets *cmd, *seq and the payload
 * (TT_PROTO_MAX_PAYLOAD bytes of room), or returns -TT_ERR_CRC / -TT_ERR_FRAME for a damaged
 * frame (*seq is then a guess), or TT_PROTO_CLOSED. Empty frames (a lone 0x00) are skipped. */
int tt_proto_receive(uint8_t *cmd, uint8_t *seq, uint8_t *payload);

/* Sends one frame; the payload may be NULL when len is 0. */
void tt_proto_send(uint8_t cmd, uint8_t seq, const void *payload, size_t len);

/* Sends TT_MSG_ERROR. */
void tt_proto_send_error(uint8_t seq, uint8_t code, int32_t detail, const char *message);

/* Never returns: answers every request with TT_ERR_HALTED (detail = code), starting with the
 * request being served when it was called. Used by tt_exit, so faults are reported too. */
__attribute__((noreturn)) void tt_proto_halt(int code);

#ifdef __cplusplus
}
#endif

#endif /* TT_PROTO_H */
