/* sha256: FIPS 180-4 SHA-256 (section 6.2), streaming.  Owns no memory;
 * the context lives wherever the caller puts it.  Every output byte of a
 * shard is hashed, so the block function matters: on x86-64 CPUs with the
 * SHA extensions a SHA-NI path (chosen once at run time) runs several
 * times faster than the portable C path, which stays the reference and the
 * fallback.  Both are checked against the FIPS vectors in test_sha256. */
#include "sha256.h"

#include <string.h>
#if defined(__x86_64__)
#    include <cpuid.h>
#    include <immintrin.h>
#endif

/* FIPS 180-4 section 4.2.2: first 32 bits of the fractional parts of the
 * cube roots of the first 64 primes. */
static const uint32_t sha256_k[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

static uint32_t sha256_rotr(uint32_t x, unsigned n)
{
    return (x >> n) | (x << (32 - n));
}

static void sha256_block(uint32_t h[8], const uint8_t block[64])
{
    uint32_t w[64];
    for (size_t t = 0; t < 16; t++)
        w[t] = (uint32_t)block[4 * t] << 24 | (uint32_t)block[4 * t + 1] << 16 |
               (uint32_t)block[4 * t + 2] << 8 | (uint32_t)block[4 * t + 3];
    for (int t = 16; t < 64; t++) {
        uint32_t s0 = sha256_rotr(w[t - 15], 7) ^ sha256_rotr(w[t - 15], 18) ^ (w[t - 15] >> 3);
        uint32_t s1 = sha256_rotr(w[t - 2], 17) ^ sha256_rotr(w[t - 2], 19) ^ (w[t - 2] >> 10);
        w[t] = w[t - 16] + s0 + w[t - 7] + s1;
    }
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
    for (int t = 0; t < 64; t++) {
        uint32_t S1 = sha256_rotr(e, 6) ^ sha256_rotr(e, 11) ^ sha256_rotr(e, 25);
        uint32_t ch = (e & f) ^ (~e & g);
        uint32_t t1 = hh + S1 + ch + sha256_k[t] + w[t];
        uint32_t S0 = sha256_rotr(a, 2) ^ sha256_rotr(a, 13) ^ sha256_rotr(a, 22);
        uint32_t maj = (a & b) ^ (a & c) ^ (b & c);
        uint32_t t2 = S0 + maj;
        hh = g;
        g = f;
        f = e;
        e = d + t1;
        d = c;
        c = b;
        b = a;
        a = t1 + t2;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
    h[5] += f;
    h[6] += g;
    h[7] += hh;
}

#if defined(__x86_64__)
/* The state lives in the SHA-NI register layout (ABEF, CDGH) during the
 * rounds; each rnds2 does two rounds, each loop step four, and from step 4
 * on the schedule computes W[4i..4i+3] from the four previous groups. */
__attribute__((target("sha,sse4.1"))) static void
sha256_blocks_shani(uint32_t h[8], const uint8_t *data, size_t n_blocks)
{
    const __m128i bswap = _mm_set_epi64x(0x0c0d0e0f08090a0bLL, 0x0405060700010203LL);
    __m128i tmp = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)&h[0]), 0xB1);
    __m128i cdgh = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)&h[4]), 0x1B);
    __m128i abef = _mm_alignr_epi8(tmp, cdgh, 8);
    cdgh = _mm_blend_epi16(cdgh, tmp, 0xF0);
    for (; n_blocks > 0; n_blocks--, data += 64) {
        __m128i abef_in = abef, cdgh_in = cdgh, w[4];
        for (int i = 0; i < 16; i++) {
            if (i < 4) {
                w[i] = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(data + 16 * i)), bswap);
            } else {
                __m128i x = _mm_sha256msg1_epu32(w[i & 3], w[(i - 3) & 3]);
                x = _mm_add_epi32(x, _mm_alignr_epi8(w[(i - 1) & 3], w[(i - 2) & 3], 4));
                w[i & 3] = _mm_sha256msg2_epu32(x, w[(i - 1) & 3]);
            }
            __m128i msg =
                _mm_add_epi32(w[i & 3], _mm_loadu_si128((const __m128i *)&sha256_k[4 * i]));
            cdgh = _mm_sha256rnds2_epu32(cdgh, abef, msg);
            abef = _mm_sha256rnds2_epu32(abef, cdgh, _mm_shuffle_epi32(msg, 0x0E));
        }
        abef = _mm_add_epi32(abef, abef_in);
        cdgh = _mm_add_epi32(cdgh, cdgh_in);
    }
    tmp = _mm_shuffle_epi32(abef, 0x1B);
    cdgh = _mm_shuffle_epi32(cdgh, 0xB1);
    _mm_storeu_si128((__m128i *)&h[0], _mm_blend_epi16(tmp, cdgh, 0xF0));
    _mm_storeu_si128((__m128i *)&h[4], _mm_alignr_epi8(cdgh, tmp, 8));
}
#endif

static void sha256_blocks_portable(uint32_t h[8], const uint8_t *data, size_t n_blocks)
{
    for (; n_blocks > 0; n_blocks--, data += 64)
        sha256_block(h, data);
}

static void (*sha256_blocks)(uint32_t h[8], const uint8_t *data, size_t n_blocks);

/* Picks the block function once; a benign race (every thread would store
 * the same pointer). */
static void sha256_pick(void)
{
    void (*f)(uint32_t *, const uint8_t *, size_t) = sha256_blocks_portable;
#if defined(__x86_64__)
    /* cpuid rather than __builtin_cpu_supports("sha"), which clang lacks:
     * leaf 7 EBX bit 29 is SHA, leaf 1 ECX bit 19 is SSE4.1. */
    unsigned a, b, c, d;
    if (__get_cpuid_count(7, 0, &a, &b, &c, &d) && (b >> 29 & 1) &&
        __get_cpuid(1, &a, &b, &c, &d) && (c >> 19 & 1))
        f = sha256_blocks_shani;
#endif
    __atomic_store_n(&sha256_blocks, f, __ATOMIC_RELAXED);
}

void sha256_force_portable(int on)
{
    if (on)
        __atomic_store_n(&sha256_blocks, sha256_blocks_portable, __ATOMIC_RELAXED);
    else
        sha256_pick();
}

void sha256_init(struct sha256 *c)
{
    /* Section 5.3.3: fractional parts of the square roots of the first 8 primes. */
    static const uint32_t h0[8] = { 0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                    0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19 };
    if (!__atomic_load_n(&sha256_blocks, __ATOMIC_RELAXED))
        sha256_pick();
    memcpy(c->h, h0, sizeof h0);
    c->n_bytes = 0;
    c->n_buf = 0;
}

void sha256_update(struct sha256 *c, const void *data, size_t size)
{
    const uint8_t *p = data;
    if (size == 0)
        return; /* data may be NULL then; memcpy must not see it */
    c->n_bytes += size;
    if (c->n_buf > 0) {
        size_t take = 64 - c->n_buf < size ? 64 - c->n_buf : size;
        memcpy(c->buf + c->n_buf, p, take);
        c->n_buf += take;
        p += take;
        size -= take;
        if (c->n_buf < 64)
            return;
        sha256_blocks(c->h, c->buf, 1);
        c->n_buf = 0;
    }
    size_t n_blocks = size / 64;
    if (n_blocks) {
        sha256_blocks(c->h, p, n_blocks);
        p += 64 * n_blocks;
        size -= 64 * n_blocks;
    }
    memcpy(c->buf, p, size);
    c->n_buf = size;
}

void sha256_final(struct sha256 *c, uint8_t digest[32])
{
    /* Section 5.1.1: a 1 bit, zeros up to 56 mod 64 bytes, the bit length. */
    uint64_t n_bits = c->n_bytes * 8;
    c->buf[c->n_buf++] = 0x80;
    if (c->n_buf > 56) {
        memset(c->buf + c->n_buf, 0, 64 - c->n_buf);
        sha256_blocks(c->h, c->buf, 1);
        c->n_buf = 0;
    }
    memset(c->buf + c->n_buf, 0, 56 - c->n_buf);
    for (int i = 0; i < 8; i++)
        c->buf[56 + i] = (uint8_t)(n_bits >> (56 - 8 * i));
    sha256_blocks(c->h, c->buf, 1);
    for (size_t i = 0; i < 8; i++) {
        digest[4 * i] = (uint8_t)(c->h[i] >> 24);
        digest[4 * i + 1] = (uint8_t)(c->h[i] >> 16);
        digest[4 * i + 2] = (uint8_t)(c->h[i] >> 8);
        digest[4 * i + 3] = (uint8_t)c->h[i];
    }
    c->n_buf = 0;
}

void sha256_digest_to_hex(const uint8_t digest[32], char hex[65])
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < 32; i++) {
        hex[2 * i] = digits[digest[i] >> 4];
        hex[2 * i + 1] = digits[digest[i] & 15];
    }
    hex[64] = '\0';
}

void sha256_hex(const void *data, size_t size, char hex[65])
{
    struct sha256 c;
    uint8_t digest[32];
    sha256_init(&c);
    sha256_update(&c, data, size);
    sha256_final(&c, digest);
    sha256_digest_to_hex(digest, hex);
}
