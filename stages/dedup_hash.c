/* dedup_hash: pHash, text normalisation and MinHash (see the header).
 *
 * The DCT runs in fixed point (cosines scaled by 2^14, sums in int64) so
 * the bits never depend on floating-point contraction or the libm build;
 * the only floating-point step is rounding the table once.  ICU owns all
 * Unicode knowledge; this file only sizes its buffers. */
#include "dedup_hash.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unicode/uchar.h>
#include <unicode/unorm2.h>
#include <unicode/ustring.h>
#include <unicode/utf16.h>

enum { PH_N = 32, PH_K = 8, PH_FRAC = 6 };

static int32_t dct_table[PH_K][PH_N]; /* round(2^14 * s(u) * cos(pi (2x+1) u / 64)) */
static pthread_once_t dct_once = PTHREAD_ONCE_INIT;

static void dct_build(void)
{
    const double pi = 3.14159265358979323846;
    for (int u = 0; u < PH_K; u++) {
        double s = u == 0 ? sqrt(1.0 / PH_N) : sqrt(2.0 / PH_N);
        for (int x = 0; x < PH_N; x++)
            dct_table[u][x] =
                (int32_t)lround(16384.0 * s * cos(pi * (2 * x + 1) * u / (2.0 * PH_N)));
    }
}

void dedup_hash_init(void)
{
    pthread_once(&dct_once, dct_build);
}

/* Overlap, in units where a source pixel is 32 long and an output pixel
 * `n` long, of source pixel i with output pixel o. */
static uint32_t overlap(uint32_t i, uint32_t o, uint32_t n)
{
    uint64_t a0 = (uint64_t)i * PH_N, a1 = a0 + PH_N, b0 = (uint64_t)o * n, b1 = b0 + n;
    uint64_t lo = a0 > b0 ? a0 : b0, hi = a1 < b1 ? a1 : b1;
    return hi > lo ? (uint32_t)(hi - lo) : 0;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Output pixel o of the 32 along a side of n source pixels covers source
 * pixels lo .. hi: the first and the last in part (weights wlo, whi, in
 * units where a source pixel is 32 long), those between wholly (32). */
struct ph_span {
    uint32_t lo, hi, wlo, whi;
};

static void ph_spans(struct ph_span sp[PH_N], uint32_t n)
{
    for (uint32_t o = 0; o < PH_N; o++) {
        uint32_t lo = (uint32_t)((uint64_t)o * n / PH_N);
        uint32_t hi = (uint32_t)((((uint64_t)o + 1) * n - 1) / PH_N);
        sp[o] = (struct ph_span){ lo, hi, overlap(lo, o, n), overlap(hi, o, n) };
    }
}

uint64_t dedup_phash_luma(const struct img *luma)
{
    dedup_hash_init();
    uint32_t w = luma->w, h = luma->h;
    if (!w || !h)
        return 0;
    struct ph_span sx[PH_N], sy[PH_N];
    ph_spans(sx, w);
    ph_spans(sy, h);
    /* Horizontal pass: each row to 32 columns (sums of pixel * overlap;
     * at most 255 * 32 * w, far inside 32 bits). */
    uint32_t *rows = malloc((size_t)h * PH_N * sizeof *rows);
    int64_t lum[PH_N][PH_N];
    if (!rows)
        return 0;
    for (uint32_t y = 0; y < h; y++) {
        const uint8_t *p = luma->pixels + (size_t)y * w;
        uint32_t *r = rows + (size_t)y * PH_N;
        for (int o = 0; o < PH_N; o++) {
            const struct ph_span *s = &sx[o];
            if (s->lo == s->hi) {
                r[o] = p[s->lo] * s->wlo;
                continue;
            }
            uint32_t mid = 0;
            for (uint32_t x = s->lo + 1; x < s->hi; x++)
                mid += p[x];
            r[o] = p[s->lo] * s->wlo + p[s->hi] * s->whi + mid * PH_N;
        }
    }
    uint64_t col[PH_N][PH_N];
    for (int o = 0; o < PH_N; o++) {
        const struct ph_span *s = &sy[o];
        const uint32_t *first = rows + (size_t)s->lo * PH_N, *last = rows + (size_t)s->hi * PH_N;
        uint64_t mid[PH_N] = { 0 };
        for (uint32_t y = s->lo + 1; y < s->hi; y++)
            for (int x = 0; x < PH_N; x++)
                mid[x] += rows[(size_t)y * PH_N + x];
        for (int x = 0; x < PH_N; x++)
            col[o][x] = s->lo == s->hi ? (uint64_t)first[x] * s->wlo
                                       : (uint64_t)first[x] * s->wlo + (uint64_t)last[x] * s->whi +
                                             mid[x] * PH_N;
    }
    free(rows);
    /* Each output pixel's weights sum to w * h. */
    uint64_t wh = (uint64_t)w * h;
    for (int y = 0; y < PH_N; y++)
        for (int x = 0; x < PH_N; x++)
            lum[y][x] = (int64_t)((col[y][x] * (1u << PH_FRAC) + wh / 2) / wh);
    /* D[u][v] = sum_y C[u][y] sum_x C[v][x] lum[y][x]. */
    int64_t t[PH_N][PH_K], d[PH_K * PH_K], sorted[PH_K * PH_K];
    for (int y = 0; y < PH_N; y++)
        for (int v = 0; v < PH_K; v++) {
            int64_t s = 0;
            for (int x = 0; x < PH_N; x++)
                s += lum[y][x] * dct_table[v][x];
            t[y][v] = s;
        }
    for (int u = 0; u < PH_K; u++)
        for (int v = 0; v < PH_K; v++) {
            int64_t s = 0;
            for (int y = 0; y < PH_N; y++)
                s += t[y][v] * dct_table[u][y];
            d[u * PH_K + v] = s;
        }
    memcpy(sorted, d, sizeof d);
    qsort(sorted, PH_K * PH_K, sizeof *sorted, cmp_i64);
    int64_t twice_median = sorted[31] + sorted[32];
    uint64_t bits = 0;
    for (int i = 0; i < PH_K * PH_K; i++)
        bits = bits << 1 | (uint64_t)(2 * d[i] > twice_median);
    return bits;
}

enum vc_status dedup_phash_image(const uint8_t *data, size_t size, const struct img_limits *limits,
                                 uint64_t *out, struct vc_err *err)
{
    struct img luma;
    /* 64: twice the hash grid, so the area average still sees several
     * decoded pixels per cell after DCT scaling. */
    VC_TRY(img_decode_reduced(data, size, limits, 64, IMG_DECODE_LUMA | IMG_DECODE_NO_ORIENT, &luma,
                              err));
    *out = dedup_phash_luma(&luma);
    img_release(&luma);
    return VC_OK;
}

uint64_t dedup_hash_bytes(const void *data, size_t size, uint64_t seed)
{
    const uint8_t *p = data;
    uint64_t h = 0xcbf29ce484222325ull ^ dedup_mix64(seed);
    for (size_t i = 0; i < size; i++)
        h = (h ^ p[i]) * 0x100000001b3ull;
    return dedup_mix64(h ^ size);
}

/* Runs an ICU string function into a buffer grown to what it asks for. */
typedef int32_t (*icu_fn)(UChar *dst, int32_t cap, const UChar *src, int32_t n, UErrorCode *ec);

static int32_t fold_fn(UChar *dst, int32_t cap, const UChar *src, int32_t n, UErrorCode *ec)
{
    return u_strFoldCase(dst, cap, src, n, U_FOLD_CASE_DEFAULT, ec);
}

static int32_t nfc_fn(UChar *dst, int32_t cap, const UChar *src, int32_t n, UErrorCode *ec)
{
    const UNormalizer2 *nfc = unorm2_getNFCInstance(ec);
    return U_FAILURE(*ec) ? 0 : unorm2_normalize(nfc, src, n, dst, cap, ec);
}

static UChar *icu_apply(icu_fn fn, const UChar *src, int32_t n, int32_t *out_n)
{
    int32_t cap = n + n / 2 + 16;
    for (int attempt = 0; attempt < 2; attempt++) {
        UChar *dst = malloc((size_t)cap * sizeof *dst);
        if (!dst)
            return NULL;
        UErrorCode ec = U_ZERO_ERROR;
        int32_t got = fn(dst, cap, src, n, &ec);
        if (U_SUCCESS(ec) && got <= cap) {
            *out_n = got;
            return dst;
        }
        free(dst);
        if (ec != U_BUFFER_OVERFLOW_ERROR)
            return NULL;
        cap = got + 1;
    }
    return NULL;
}

enum vc_status dedup_text_normalize(const char *text, size_t len, char **out, size_t *out_len,
                                    struct vc_err *err)
{
    *out = NULL;
    *out_len = 0;
    if (len > INT32_MAX / 4)
        return vc_err_set(err, VC_ESAMPLE, VC_REASON_field_too_long, "text of %zu bytes", len);
    UChar *u16 = malloc((len + 1) * sizeof *u16), *folded = NULL, *nfc = NULL;
    char *u8 = NULL;
    int32_t n16 = 0, n_fold = 0, n_nfc = 0;
    UErrorCode ec = U_ZERO_ERROR;
    if (u16)
        u_strFromUTF8WithSub(u16, (int32_t)len + 1, &n16, text, (int32_t)len, 0xFFFD, NULL, &ec);
    if (u16 && U_SUCCESS(ec))
        folded = icu_apply(fold_fn, u16, n16, &n_fold);
    if (folded)
        nfc = icu_apply(nfc_fn, folded, n_fold, &n_nfc);
    free(u16);
    free(folded);
    if (!nfc)
        return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "text normalisation failed");
    /* Collapse white space in place (the write index never passes the read
     * index), then convert: UTF-8 needs at most 3 bytes per UTF-16 unit. */
    int32_t w = 0;
    int pending = 0;
    for (int32_t i = 0; i < n_nfc;) {
        int32_t start = i;
        UChar32 c;
        U16_NEXT(nfc, i, n_nfc, c);
        if (u_isUWhiteSpace(c)) {
            pending = w > 0;
            continue;
        }
        if (pending)
            nfc[w++] = ' ';
        pending = 0;
        while (start < i)
            nfc[w++] = nfc[start++];
    }
    size_t cap = (size_t)w * 3 + 1;
    u8 = malloc(cap);
    int32_t n8 = 0;
    ec = U_ZERO_ERROR;
    if (u8)
        u_strToUTF8(u8, (int32_t)cap, &n8, nfc, w, &ec);
    free(nfc);
    if (!u8 || U_FAILURE(ec)) {
        free(u8);
        return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "text normalisation failed");
    }
    u8[n8] = '\0';
    *out = u8;
    *out_len = (size_t)n8;
    return VC_OK;
}

/* Permutation i of the 64-bit shingle hashes: a keyed mix.  The first
 * bands * rows feed the LSH bands, the next 64 the similarity sketch. */
static inline uint64_t perm(uint64_t h, int i)
{
    return dedup_mix64(h ^ dedup_mix64(0x9e3779b97f4a7c15ull * (uint64_t)(i + 1)));
}

int dedup_minhash(const char *norm, size_t len, int ngram, int bands, int rows,
                  struct dedup_minhash *out)
{
    memset(out, 0, sizeof *out);
    if (len == 0 || bands < 1 || bands > DEDUP_MH_BANDS_MAX || rows < 1 ||
        rows > DEDUP_MH_ROWS_MAX || ngram < 1)
        return 0;
    enum { N_MAX = DEDUP_MH_BANDS_MAX * DEDUP_MH_ROWS_MAX + 64 };
    int n_perm = bands * rows + 64;
    uint64_t mins[N_MAX];
    for (int i = 0; i < n_perm; i++)
        mins[i] = UINT64_MAX;
    /* Word starts: the normalised text has single spaces only.  A ring of
     * the last `ngram` starts gives each shingle's first byte. */
    size_t starts[64];
    if (ngram > 64)
        ngram = 64;
    size_t n_words = 0;
    int any = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i == 0 || norm[i - 1] == ' ')
            starts[n_words++ % (size_t)ngram] = i;
        if (i < len && norm[i] != ' ')
            continue;
        /* A word ends at i. */
        if (n_words < (size_t)ngram && i < len)
            continue;
        size_t first = n_words < (size_t)ngram ? 0 : starts[n_words % (size_t)ngram];
        uint64_t h = dedup_hash_bytes(norm + first, i - first, 0);
        for (int p = 0; p < n_perm; p++) {
            uint64_t v = perm(h, p);
            if (v < mins[p])
                mins[p] = v;
        }
        any = 1;
    }
    if (!any)
        return 0;
    out->n_bands = bands;
    for (int b = 0; b < bands; b++) {
        uint64_t k = dedup_mix64(0x243f6a8885a308d3ull + (uint64_t)b);
        for (int r = 0; r < rows; r++)
            k = dedup_mix64(k ^ mins[b * rows + r]);
        out->band[b] = k;
    }
    for (int i = 0; i < 64; i++)
        out->sketch |= (mins[bands * rows + i] & 1) << i;
    return 1;
}

double dedup_sketch_similarity(uint64_t a, uint64_t b)
{
    double p = (64 - dedup_hamming(a, b)) / 64.0, j = 2 * p - 1;
    return j < 0 ? 0 : j;
}
