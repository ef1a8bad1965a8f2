/* crc32c.h - CRC-32C (Castagnoli), as in iSCSI, ext4 and SCTP: the checksum of the
 * direct-delivery journal's records. Uses the SSE4.2 instruction where the CPU has
 * it, a table otherwise; both give the same value. */
#ifndef TERN_CRC32C_H
#define TERN_CRC32C_H
#include <stddef.h>
#include <stdint.h>

/* Continue a checksum: crc32c(crc32c(0, a), b) == crc32c of a followed by b.
 * crc32c(0, "123456789", 9) == 0xE3069283. */
uint32_t crc32c(uint32_t crc, const void *p, size_t n);
/* The table version whatever the CPU (for tests: both must agree). */
uint32_t crc32c_portable(uint32_t crc, const void *p, size_t n);

#endif
