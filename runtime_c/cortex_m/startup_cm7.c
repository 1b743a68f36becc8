/* Reset and fault handling for a bare-metal Cortex-M7 (QEMU mps2-an500, STM32F746).
 * The symbols come from boards/cm7_sections.ld. */
#include <stdint.h>

#include "tt_io.h"

/* tt_core_cm7.c: TT_EXIT_STACK_OVERFLOW when the MPU stack guard was hit, else TT_EXIT_FAULT. */
int tt_fault_code(void);

extern uint32_t __StackTop[];
extern int main(void);

typedef void (*tt_vector)(void);
typedef void (*init_fn)(void);

void Reset_Handler(void);
void Fault_Handler(void);
__attribute__((noreturn, used)) void tt_crt_main(void);

/* Only the core exceptions: the generated programs use no interrupts. */
__attribute__((section(".isr_vector"), used)) const tt_vector tt_vectors[16] = {
    (tt_vector)__StackTop, /* 0: initial MSP */
    Reset_Handler,         /* 1: reset */
    Fault_Handler,         /* 2: NMI */
    Fault_Handler,         /* 3: HardFault */
    Fault_Handler,         /* 4: MemManage */
    Fault_Handler,         /* 5: BusFault */
    Fault_Handler,         /* 6: UsageFault */
    0, 0, 0, 0,
    Fault_Handler, /* 11: SVC */
    Fault_Handler, /* 12: DebugMon */
    0,
    Fault_Handler, /* 14: PendSV */
    Fault_Handler, /* 15: SysTick */
};

/* Written in assembly because no C code may run before the FPU is on (the compiler is free to
 * use FP registers anywhere) and before the stack is painted (C would dirty it). */
__attribute__((naked, noreturn)) void Reset_Handler(void)
{
    __asm volatile(
        /* A debugger or bootloader may jump here with any SP; the table may not be at 0x0. */
        "ldr r0, =__StackTop\n"
        "mov sp, r0\n"
        "ldr r0, =0xE000ED08\n" /* SCB->VTOR */
        "ldr r1, =tt_vectors\n"
        "str r1, [r0]\n"
        /* FPU: CPACR CP10/CP11 full access. */
        "ldr r0, =0xE000ED88\n"
        "ldr r1, [r0]\n"
        "orr r1, r1, #(0xF << 20)\n"
        "str r1, [r0]\n"
        "dsb\n"
        "isb\n"
        /* .data: FLASH -> RAM. */
        "ldr r0, =__etext_data\n"
        "ldr r1, =__data_start__\n"
        "ldr r2, =__data_end__\n"
        "1: cmp r1, r2\n"
        "bhs 2f\n"
        "ldr r3, [r0], #4\n"
        "str r3, [r1], #4\n"
        "b 1b\n"
        "2:\n"
        /* .bss: zero. */
        "ldr r1, =__bss_start__\n"
        "ldr r2, =__bss_end__\n"
        "movs r3, #0\n"
        "3: cmp r1, r2\n"
        "bhs 4f\n"
        "str r3, [r1], #4\n"
        "b 3b\n"
        "4:\n"
        /* Paint [__stack_bottom__, sp) so tt_stack_peak_bytes can find the deepest use. */
        "ldr r1, =__stack_bottom__\n"
        "mov r2, sp\n"
        "ldr r3, =0xC0FFEE55\n"
        "5: cmp r1, r2\n"
        "bhs 6f\n"
        "str r3, [r1], #4\n"
        "b 5b\n"
        "6:\n"
        "bl tt_crt_main\n"
        "b .\n");
}

extern init_fn __preinit_array_start[], __preinit_array_end[];
extern init_fn __init_array_start[], __init_array_end[];

/* Constructors are run here rather than by newlib's __libc_init_array, because a weak reference
 * would not pull that out of libc.a and they would silently never run. */
void tt_crt_main(void)
{
    for (init_fn *f = __preinit_array_start; f < __preinit_array_end; f++) (*f)();
    for (init_fn *f = __init_array_start; f < __init_array_end; f++) (*f)();
    tt_exit(main());
}

/* SP is reset first: after a stack overflow the faulting SP is unusable, and tt_exit needs a
 * few bytes of stack for its semihosting block. */
__attribute__((naked, noreturn)) void Fault_Handler(void)
{
    __asm volatile(
        "ldr r0, =__StackTop\n"
        "mov sp, r0\n"
        "bl tt_fault_code\n"
        "b tt_exit\n");
}
