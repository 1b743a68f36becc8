/* What the protocol firmware needs from a board: one byte stream (a UART, or a TCP socket on the
 * host), a cycle counter and a few facts. Each board folder has one board.c implementing it. */
#ifndef TT_BOARD_H
#define TT_BOARD_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    const char *name;   /* the tinytvm board name, e.g. "stm32f746-disco" */
    uint32_t core_hz;   /* core clock after tt_board_init (0 if not meaningful) */
    uint8_t cycle_kind; /* TT_CYCLES_* of tt_proto.h: what tt_board_cycles counts */
} tt_board_info;

extern const tt_board_info tt_board;

/* Clocks and the serial link; called once, first thing in main. */
void tt_board_init(void);

/* Blocking write of n bytes. */
void tt_board_write(const uint8_t *data, size_t n);

/* Blocking read of the next byte (0..255), or -1 once the link is closed (host only). */
int tt_board_read(void);

/* A free-running 64-bit counter, in the unit tt_board.cycle_kind says. */
uint64_t tt_board_cycles(void);

/* Bytes reserved for the stack (0 if unknown). */
uint32_t tt_board_stack_bytes(void);

/* Ends the program where that means something (the host); spins elsewhere. */
__attribute__((noreturn)) void tt_board_exit(int code);

#endif /* TT_BOARD_H */
