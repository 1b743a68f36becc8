/* Non-volatile storage for checkpoints: two slots that behave like flash sectors (erase sets
 * every byte to 0xFF; a write may be cut short by a power loss at any byte). One backend per
 * place the program runs: a file on the host, a semihosting file in QEMU, flash sectors on the
 * STM32F746. */
#ifndef TT_NV_H
#define TT_NV_H

#include <stdint.h>

#define TT_NV_SLOTS 2

/* Each returns 0 on success, a negative number on failure. */
int tt_nv_erase(int slot);
int tt_nv_write(int slot, uint32_t offset, const void *data, uint32_t len);
int tt_nv_read(int slot, uint32_t offset, void *data, uint32_t len);

/* Bytes a slot holds (the backend's sector size). */
uint32_t tt_nv_slot_bytes(void);

#endif
