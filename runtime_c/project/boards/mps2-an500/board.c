/* QEMU mps2-an500 (Arm MPS2 with the AN500 FPGA image: Cortex-M7): the protocol on UART0, a CMSDK
 * APB UART at 0x40004000 (QEMU's first -serial), and CMSDK timer 0 at 0x40000000 as the clock.
 * Both run from the 25 MHz peripheral clock. */
#include "tt_board.h"
#include "tt_proto.h"

#define REG(addr) (*(volatile uint32_t *)(addr))

#define PCLK_HZ 25000000u
#define BAUD 115200u

#define UART0_BASE 0x40004000u
#define UART_DATA REG(UART0_BASE + 0x00u)
#define UART_STATE REG(UART0_BASE + 0x04u)
#define UART_CTRL REG(UART0_BASE + 0x08u)
#define UART_BAUDDIV REG(UART0_BASE + 0x10u)
#define UART_STATE_TXFULL (1u << 0)
#define UART_STATE_RXFULL (1u << 1)
#define UART_CTRL_TXEN (1u << 0)
#define UART_CTRL_RXEN (1u << 1)

#define TIMER0_BASE 0x40000000u
#define TIMER_CTRL REG(TIMER0_BASE + 0x00u)
#define TIMER_VALUE REG(TIMER0_BASE + 0x04u)
#define TIMER_RELOAD REG(TIMER0_BASE + 0x08u)
#define TIMER_CTRL_ENABLE (1u << 0)

/* Under `-icount shift=0` one guest instruction takes 1 ns of virtual time, and the timer ticks
 * every 40 ns (25 MHz): ticks * 40 = instructions, to within 40. */
#define INSTRUCTIONS_PER_TICK 40u

const tt_board_info tt_board = {"mps2-an500", 0u, TT_CYCLES_INSTRUCTIONS};

void tt_board_init(void)
{
    UART_BAUDDIV = PCLK_HZ / BAUD; /* QEMU ignores the rate but wants a valid divider (>= 16) */
    UART_CTRL = UART_CTRL_TXEN | UART_CTRL_RXEN;
    TIMER_CTRL = 0u;
    TIMER_RELOAD = 0xFFFFFFFFu;
    TIMER_VALUE = 0xFFFFFFFFu;
    TIMER_CTRL = TIMER_CTRL_ENABLE;
}

void tt_board_write(const uint8_t *data, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        while (UART_STATE & UART_STATE_TXFULL) {
        }
        UART_DATA = data[i];
    }
}

int tt_board_read(void)
{
    while (!(UART_STATE & UART_STATE_RXFULL)) {
    }
    return (int)(UART_DATA & 0xFFu);
}

uint64_t tt_board_cycles(void)
{
    static uint32_t last;
    static uint64_t ticks;
    uint32_t now = 0xFFFFFFFFu - TIMER_VALUE; /* the timer counts down */
    ticks += (uint32_t)(now - last);          /* modulo 2^32: one wrap between calls is fine */
    last = now;
    return ticks * INSTRUCTIONS_PER_TICK;
}

extern uint32_t __stack_bottom__[], __StackTop[];

uint32_t tt_board_stack_bytes(void)
{
    return (uint32_t)((uintptr_t)__StackTop - (uintptr_t)__stack_bottom__);
}

void tt_board_exit(int code)
{
    (void)code;
    for (;;) {
    }
}
