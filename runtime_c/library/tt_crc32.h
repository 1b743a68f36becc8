/* CRC-32 (IEEE 802.3, as zlib's crc32 and Python's zlib.crc32): reflected polynomial 0xEDB88320,
 * initial value and final XOR 0xFFFFFFFF. Used by tt_state.c (saved state) and by the UART
 * protocol of the board projects (frame check). */
#ifndef TT_CRC32_H
#define TT_CRC32_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Continues a CRC over n more bytes: crc = tt_crc32(0, a, na); crc = tt_crc32(crc, b, nb)
 * gives the CRC of a followed by b, the same value as zlib.crc32(a + b). */
uint32_t tt_crc32(uint32_t crc, const void *data, size_t n);

#ifdef __cplusplus
}
#endif

#endif /* TT_CRC32_H */
