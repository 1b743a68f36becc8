/* STM32F746G-DISCO (STM32F746NGH6): core at 216 MHz from the 25 MHz HSE crystal through the PLL,
 * the protocol on USART1 at 115200 8N1, which the board routes to the ST-LINK's virtual COM port
 * (TX = PA9, RX = PB7, alternate function 7), and the DWT cycle counter as the clock.
 *
 * Register-level, no HAL. References: RM0385 (STM32F75xxx/74xxx reference manual), sections
 * RCC, PWR (over-drive), FLASH (wait states), GPIO and USART; UM1907 (the board's user manual)
 * for the VCP pins. */
#include "tt_board.h"
#include "tt_io.h"
#include "tt_proto.h"

#define REG(addr) (*(volatile uint32_t *)(addr))

#define HSE_HZ 25000000u
#define HSI_HZ 16000000u
#define CORE_HZ 216000000u
#define APB2_HZ (CORE_HZ / 2u) /* USART1's clock (PCLK2) */
#define BAUD 115200u

/* RCC */
#define RCC_BASE 0x40023800u
#define RCC_CR REG(RCC_BASE + 0x00u)
#define RCC_PLLCFGR REG(RCC_BASE + 0x04u)
#define RCC_CFGR REG(RCC_BASE + 0x08u)
#define RCC_AHB1ENR REG(RCC_BASE + 0x30u)
#define RCC_APB1ENR REG(RCC_BASE + 0x40u)
#define RCC_APB2ENR REG(RCC_BASE + 0x44u)
#define RCC_CR_HSEON (1u << 16)
#define RCC_CR_HSERDY (1u << 17)
#define RCC_CR_HSEBYP (1u << 18)
#define RCC_CR_PLLON (1u << 24)
#define RCC_CR_PLLRDY (1u << 25)
#define RCC_PLLCFGR_PLLSRC_HSE (1u << 22)
#define RCC_PLLCFGR_RESERVED 0xF0BC8000u /* bits 31:28, 23, 21:18, 15: keep as they are */
#define RCC_CFGR_SW_PLL 2u
#define RCC_CFGR_SWS_MASK (3u << 2)
#define RCC_CFGR_SWS_PLL (2u << 2)
#define RCC_CFGR_PPRE1_DIV4 (5u << 10)
#define RCC_CFGR_PPRE2_DIV2 (4u << 13)
#define RCC_AHB1ENR_GPIOAEN (1u << 0)
#define RCC_AHB1ENR_GPIOBEN (1u << 1)
#define RCC_APB1ENR_PWREN (1u << 28)
#define RCC_APB2ENR_USART1EN (1u << 4)

/* PWR: voltage scale 1 and over-drive, both needed above 180 MHz. */
#define PWR_BASE 0x40007000u
#define PWR_CR1 REG(PWR_BASE + 0x00u)
#define PWR_CSR1 REG(PWR_BASE + 0x04u)
#define PWR_CR1_VOS_SCALE1 (3u << 14)
#define PWR_CR1_ODEN (1u << 16)
#define PWR_CR1_ODSWEN (1u << 17)
#define PWR_CSR1_ODRDY (1u << 16)
#define PWR_CSR1_ODSWRDY (1u << 17)

/* FLASH: 7 wait states at 216 MHz and 2.7-3.6 V; ART accelerator and prefetch on. */
#define FLASH_ACR REG(0x40023C00u)
#define FLASH_ACR_LATENCY_7WS 7u
#define FLASH_ACR_LATENCY_MASK 0xFu
#define FLASH_ACR_PRFTEN (1u << 8)
#define FLASH_ACR_ARTEN (1u << 9)

/* GPIO */
#define GPIOA_BASE 0x40020000u
#define GPIOB_BASE 0x40020400u
#define GPIO_MODER(base) REG((base) + 0x00u)
#define GPIO_OSPEEDR(base) REG((base) + 0x08u)
#define GPIO_PUPDR(base) REG((base) + 0x0Cu)
#define GPIO_AFRL(base) REG((base) + 0x20u)
#define GPIO_AFRH(base) REG((base) + 0x24u)
#define GPIO_MODE_AF 2u
#define GPIO_SPEED_HIGH 2u
#define GPIO_PULL_UP 1u
#define AF7_USART1 7u

/* USART1 */
#define USART1_BASE 0x40011000u
#define USART_CR1 REG(USART1_BASE + 0x00u)
#define USART_BRR REG(USART1_BASE + 0x0Cu)
#define USART_ISR REG(USART1_BASE + 0x1Cu)
#define USART_ICR REG(USART1_BASE + 0x20u)
#define USART_RDR REG(USART1_BASE + 0x24u)
#define USART_TDR REG(USART1_BASE + 0x28u)
#define USART_CR1_UE (1u << 0)
#define USART_CR1_RE (1u << 2)
#define USART_CR1_TE (1u << 3)
#define USART_ISR_ORE (1u << 3)
#define USART_ISR_RXNE (1u << 5)
#define USART_ISR_TXE (1u << 7)
#define USART_ICR_ORECF (1u << 3)

/* Cortex-M7 instruction cache (SCB). */
#define SCB_CCR REG(0xE000ED14u)
#define SCB_CCR_IC (1u << 17)
#define SCB_ICIALLU REG(0xE000EF50u)

#define HSE_STARTUP_LOOPS 500000u

const tt_board_info tt_board = {"stm32f746-disco", CORE_HZ, TT_CYCLES_CORE};

static int wait_set(volatile uint32_t *reg, uint32_t mask, uint32_t loops)
{
    while (loops-- > 0u)
        if ((*reg & mask) == mask) return 1;
    return 0;
}

/* PLL: f = source / M * N / P. HSE: 25 MHz / 25 * 432 / 2 = 216 MHz (Q = 9 gives the 48 MHz
 * USB clock). If the crystal does not start, HSI: 16 MHz / 16 * 432 / 2, the same 216 MHz. */
static uint32_t pll_config(int hse)
{
    uint32_t m = hse ? HSE_HZ / 1000000u : HSI_HZ / 1000000u;
    uint32_t n = 432u, p_bits = 0u /* P = 2 */, q = 9u;
    return m | n << 6 | p_bits << 16 | (hse ? RCC_PLLCFGR_PLLSRC_HSE : 0u) | q << 24;
}

static void clock_init(void)
{
    RCC_APB1ENR |= RCC_APB1ENR_PWREN;
    (void)RCC_APB1ENR; /* read back: the enable takes effect before PWR is touched */
    PWR_CR1 = (PWR_CR1 & ~(3u << 14)) | PWR_CR1_VOS_SCALE1;

    RCC_CR = (RCC_CR & ~RCC_CR_HSEBYP) | RCC_CR_HSEON;
    int hse = wait_set(&RCC_CR, RCC_CR_HSERDY, HSE_STARTUP_LOOPS);
    if (!hse) RCC_CR &= ~RCC_CR_HSEON;

    RCC_CR &= ~RCC_CR_PLLON;
    RCC_PLLCFGR = (RCC_PLLCFGR & RCC_PLLCFGR_RESERVED) | pll_config(hse);
    RCC_CR |= RCC_CR_PLLON;
    while (!(RCC_CR & RCC_CR_PLLRDY)) {
    }

    PWR_CR1 |= PWR_CR1_ODEN;
    while (!(PWR_CSR1 & PWR_CSR1_ODRDY)) {
    }
    PWR_CR1 |= PWR_CR1_ODSWEN;
    while (!(PWR_CSR1 & PWR_CSR1_ODSWRDY)) {
    }

    /* Slow the flash down before the clock goes up. */
    FLASH_ACR = FLASH_ACR_LATENCY_7WS | FLASH_ACR_PRFTEN | FLASH_ACR_ARTEN;
    while ((FLASH_ACR & FLASH_ACR_LATENCY_MASK) != FLASH_ACR_LATENCY_7WS) {
    }

    /* AHB /1 (216 MHz), APB1 /4 (54 MHz, max 54), APB2 /2 (108 MHz, max 108). */
    RCC_CFGR = RCC_CFGR_PPRE1_DIV4 | RCC_CFGR_PPRE2_DIV2 | RCC_CFGR_SW_PLL;
    while ((RCC_CFGR & RCC_CFGR_SWS_MASK) != RCC_CFGR_SWS_PLL) {
    }
}

static void icache_enable(void)
{
    __asm__ volatile("dsb\n isb" ::: "memory");
    SCB_ICIALLU = 0u;
    __asm__ volatile("dsb\n isb" ::: "memory");
    SCB_CCR |= SCB_CCR_IC;
    __asm__ volatile("dsb\n isb" ::: "memory");
}

static void pin_af7(uint32_t base, uint32_t pin)
{
    GPIO_MODER(base) = (GPIO_MODER(base) & ~(3u << (2u * pin))) | GPIO_MODE_AF << (2u * pin);
    GPIO_OSPEEDR(base) |= GPIO_SPEED_HIGH << (2u * pin);
    GPIO_PUPDR(base) = (GPIO_PUPDR(base) & ~(3u << (2u * pin))) | GPIO_PULL_UP << (2u * pin);
    volatile uint32_t *afr = pin < 8u ? &GPIO_AFRL(base) : &GPIO_AFRH(base);
    uint32_t shift = 4u * (pin % 8u);
    *afr = (*afr & ~(0xFu << shift)) | AF7_USART1 << shift;
}

static void uart_init(void)
{
    RCC_AHB1ENR |= RCC_AHB1ENR_GPIOAEN | RCC_AHB1ENR_GPIOBEN;
    RCC_APB2ENR |= RCC_APB2ENR_USART1EN;
    (void)RCC_APB2ENR;
    pin_af7(GPIOA_BASE, 9u); /* USART1_TX -> ST-LINK VCP */
    pin_af7(GPIOB_BASE, 7u); /* USART1_RX <- ST-LINK VCP */
    USART_CR1 = 0u;
    USART_BRR = (APB2_HZ + BAUD / 2u) / BAUD; /* oversampling by 16: 937.5 -> 938, 0.05 % off */
    USART_CR1 = USART_CR1_TE | USART_CR1_RE | USART_CR1_UE;
}

void tt_board_init(void)
{
    clock_init();
    icache_enable();
    uart_init();
    (void)tt_cycles(); /* starts the DWT counter */
}

void tt_board_write(const uint8_t *data, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        while (!(USART_ISR & USART_ISR_TXE)) {
        }
        USART_TDR = data[i];
    }
}

int tt_board_read(void)
{
    for (;;) {
        uint32_t isr = USART_ISR;
        if (isr & USART_ISR_RXNE) return (int)(USART_RDR & 0xFFu);
        if (isr & USART_ISR_ORE) USART_ICR = USART_ICR_ORECF; /* a lost byte fails the CRC */
    }
}

uint64_t tt_board_cycles(void)
{
    return tt_cycles();
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
