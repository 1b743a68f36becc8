/* tt_nv on the STM32F746: slots are flash sectors 6 and 7 (256 KB each, at 0x08040000 and
 * 0x08080000), programmed word by word through the flash interface (RM0385 §3). Keep the
 * firmware image below 0x08040000 (256 KB) when checkpoints are used. */
#include <string.h>

#include "tt_nv.h"

#define FLASH_BASE_ADDR 0x40023C00u
#define FLASH_KEYR (*(volatile uint32_t *)(FLASH_BASE_ADDR + 0x04u))
#define FLASH_SR (*(volatile uint32_t *)(FLASH_BASE_ADDR + 0x0Cu))
#define FLASH_CR (*(volatile uint32_t *)(FLASH_BASE_ADDR + 0x10u))
#define KEY1 0x45670123u
#define KEY2 0xCDEF89ABu
#define SR_BSY (1u << 16)
#define SR_ERRORS 0xF2u /* OPERR, WRPERR, PGAERR, PGPERR, ERSERR */
#define CR_PG (1u << 0)
#define CR_SER (1u << 1)
#define CR_SNB_SHIFT 3
#define CR_PSIZE_X32 (2u << 8)
#define CR_STRT (1u << 16)
#define CR_LOCK (1u << 31)

static const uint32_t slot_address[TT_NV_SLOTS] = {0x08040000u, 0x08080000u};
static const uint32_t slot_sector[TT_NV_SLOTS] = {6u, 7u};

static int wait_ready(void)
{
    while (FLASH_SR & SR_BSY) {
    }
    uint32_t errors = FLASH_SR & SR_ERRORS;
    FLASH_SR = errors; /* write 1 to clear */
    return errors ? -1 : 0;
}

static void unlock(void)
{
    if (FLASH_CR & CR_LOCK) {
        FLASH_KEYR = KEY1;
        FLASH_KEYR = KEY2;
    }
}

int tt_nv_erase(int slot)
{
    if (slot < 0 || slot >= TT_NV_SLOTS) return -1;
    unlock();
    if (wait_ready() != 0) return -1;
    FLASH_CR = CR_PSIZE_X32 | CR_SER | (slot_sector[slot] << CR_SNB_SHIFT);
    FLASH_CR |= CR_STRT;
    int rc = wait_ready();
    FLASH_CR = CR_LOCK;
    return rc;
}

int tt_nv_write(int slot, uint32_t offset, const void *data, uint32_t len)
{
    if (slot < 0 || slot >= TT_NV_SLOTS || (offset & 3u) || offset + len > tt_nv_slot_bytes())
        return -1;
    unlock();
    FLASH_CR = CR_PSIZE_X32 | CR_PG;
    const uint8_t *src = data;
    int rc = 0;
    for (uint32_t at = 0; at < len && rc == 0; at += 4) {
        uint32_t word = 0xFFFFFFFFu;
        memcpy(&word, src + at, len - at < 4 ? len - at : 4);
        *(volatile uint32_t *)(slot_address[slot] + offset + at) = word;
        __asm volatile("dsb" ::: "memory");
        rc = wait_ready();
    }
    FLASH_CR = CR_LOCK;
    return rc;
}

int tt_nv_read(int slot, uint32_t offset, void *data, uint32_t len)
{
    if (slot < 0 || slot >= TT_NV_SLOTS || offset + len > tt_nv_slot_bytes()) return -1;
    memcpy(data, (const void *)(slot_address[slot] + offset), len);
    return 0;
}

uint32_t tt_nv_slot_bytes(void)
{
    return 256u * 1024u;
}
