/* sha256: FIPS 180-4 SHA-256, streaming.  Used for image hashes in the
 * per-sample json and for shard checksums in manifests. */
#ifndef VC_CORE_SHA256_H
#define VC_CORE_SHA256_H

#include <stddef.h>
#include <stdint.h>

struct sha256 {
    uint32_t h[8];
    uint64_t n_bytes;
    uint8_t buf[64];
    size_t n_buf;
};

void sha256_init(struct sha256 *c);
void sha256_update(struct sha256 *c, const void *data, size_t size);
void sha256_final(struct sha256 *c, uint8_t digest[32]);
/* One-shot: 64 lowercase hex digits plus NUL into hex[65]. */
void sha256_hex(const void *data, size_t size, char hex[65]);
void sha256_digest_to_hex(const uint8_t digest[32], char hex[65]);
/* Tests and benchmarks: 1 forces the portable block function, 0 returns to
 * the fastest one this CPU supports.  Not for use while hashing. */
void sha256_force_portable(int on);

#endif
