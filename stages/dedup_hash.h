/* dedup_hash: the signatures the dedup stage compares, computed from one
 * sample's bytes: a 64-bit perceptual hash of an image (pHash), the
 * normalised form of a text, and MinHash over its word 5-grams with the
 * LSH band keys and a 1-bit sketch to estimate similarity.
 *
 * Everything here is pure integer arithmetic after a table built once
 * (dedup_hash_init), so a signature is the same on every machine and
 * thread count.  Text normalisation is ICU's: case folding then NFC, then
 * every run of Unicode white space becomes one ASCII space (trimmed at
 * both ends); invalid UTF-8 becomes U+FFFD. */
#ifndef VC_STAGES_DEDUP_HASH_H
#define VC_STAGES_DEDUP_HASH_H

#include <stddef.h>
#include <stdint.h>

#include "core/img.h"
#include "core/vc_err.h"

/* Builds the DCT table; idempotent and thread-safe (call it from create). */
void dedup_hash_init(void);

/* pHash of a luma picture (ch = 1, any size): area-average to 32x32 with
 * 6 fractional bits, 2-D DCT-II (orthonormal, fixed point), the 8x8 lowest
 * frequencies (row = vertical frequency) compared with their median (the
 * mean of the 32nd and 33rd); a coefficient above it sets its bit, the
 * first coefficient (DC) being the most significant bit, as imagededup and
 * shared/peers/pil_pipeline.py lay the bits out. */
uint64_t dedup_phash_luma(const struct img *luma);
/* Decodes to grey at the smallest cheap size with both sides >= 64
 * (img_decode_reduced with IMG_DECODE_LUMA, stored orientation) and
 * hashes. */
enum vc_status dedup_phash_image(const uint8_t *data, size_t size, const struct img_limits *limits,
                                 uint64_t *out, struct vc_err *err);

static inline int dedup_hamming(uint64_t a, uint64_t b)
{
    return __builtin_popcountll(a ^ b);
}

/* A 64-bit mix (splitmix64's finaliser): the building block of every hash
 * below. */
static inline uint64_t dedup_mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}
/* Band j of n_bands of a pHash (pigeonhole: two hashes within Hamming
 * distance r agree on at least one of r + 1 bands): bits
 * [64 j / n, 64 (j + 1) / n) from the least significant end. */
static inline uint64_t dedup_phash_band(uint64_t ph, int j, int n_bands)
{
    int lo = 64 * j / n_bands, hi = 64 * (j + 1) / n_bands;
    uint64_t mask = hi - lo >= 64 ? ~0ull : ((1ull << (hi - lo)) - 1);
    return ph >> lo & mask;
}
/* The first band on which two pHashes agree; n_bands when none. */
static inline int dedup_phash_first_band(uint64_t a, uint64_t b, int n_bands)
{
    for (int j = 0; j < n_bands; j++)
        if (dedup_phash_band(a, j, n_bands) == dedup_phash_band(b, j, n_bands))
            return j;
    return n_bands;
}

/* 64-bit hash of bytes (FNV-1a, then dedup_mix64 to spread the bits). */
uint64_t dedup_hash_bytes(const void *data, size_t size, uint64_t seed);

/* Normalised text, owned by the caller (free()); *out_len bytes plus a NUL.
 * VC_EFATAL on OOM or an ICU failure. */
enum vc_status dedup_text_normalize(const char *text, size_t len, char **out, size_t *out_len,
                                    struct vc_err *err);

/* LSH shape: datatrove / FineWeb's 14 bands of 8 rows. */
enum { DEDUP_MH_BANDS_MAX = 32, DEDUP_MH_ROWS_MAX = 16 };

struct dedup_minhash {
    uint64_t band[DEDUP_MH_BANDS_MAX]; /* band keys (the band number is mixed in) */
    uint64_t sketch;                   /* bit i = low bit of the minimum of extra permutation i */
    int n_bands;
};

/* MinHash of normalised text over word n-grams (words are separated by
 * single spaces after normalisation; a text of fewer than `ngram` words is
 * one shingle).  Returns 0 for an empty text (nothing to compare), else 1. */
int dedup_minhash(const char *norm, size_t len, int ngram, int bands, int rows,
                  struct dedup_minhash *out);
/* Jaccard similarity estimated from two sketches (1-bit MinHash: equal
 * bits happen with probability (1 + J) / 2), clamped to [0, 1]. */
double dedup_sketch_similarity(uint64_t a, uint64_t b);

#endif
