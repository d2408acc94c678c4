/* idf2_cpu_bf16mm: outer-product bf16 matmul for more than 16 activation
 * rows, or any from weights packed at load (see the header for the numerics it shares with the
 * streaming tile of synth/idf2_cpu_avx512.c).
 *
 * Layout.  K is padded with zeros to C chunks of 32 inputs; input pair p =
 * 16c + l (chunk c, lane l) belongs to slice l.  A weight group is 16
 * output columns; its panel stores, per slice l and chunk c, the 16
 * columns' pair (2l, 2l+1) of chunk c as one zmm (a 16 x 16 transpose of
 * 32-bit pairs per chunk), slice-major with the slices in fold order (as
 * the tiles run them), so the tile of one slice reads one sequential
 * stream per group and a tile's 16 slices the whole group front to back.
 * idf2_bf16mm_pack writes the same layout for all of K once (at load).
 * Activations, as bf16 hi (and lo) terms,
 * are stored per row tile in the order the tile reads them: slice by slice
 * in fold order, chunk by chunk, the MR rows' pairs together, so that a
 * tile's 16 slices read one sequential stream (rows strided by K, as they
 * were, left the hardware prefetcher eight short streams per slice).
 *
 * Tile: MR rows x NG groups = 24 zmm accumulators; per chunk NG panel loads
 * and MR broadcast pairs feed MR * NG vdpbf16ps (two, hi then lo, on the
 * exact format).  A tile runs its 16 slices one after another in the
 * order 0, 8, 4, 12, 2, ... (bit-reversed), so that lane_sum's fold (l +
 * l+8, + l+4, + l+2, + l+1) becomes a binary counter over at most five
 * partial results kept in L1.
 *
 * Blocking: threads split the column groups into contiguous ranges; a
 * thread packs NG groups at a time (over a K block of at most KC_MAX
 * chunks, about 400 KB of panel, kept in L2) and runs every row tile over
 * them, so each weight is read from memory once per call.  Packed at load,
 * the row tiles go in blocks of at most MB_TILES, each block over all the
 * groups (each weight read once per block): a sweep over one group's
 * panel then reads and writes at most MB_TILES * MR rows, not all of them
 * (in one process at 4,374 rows: q, k, v and o 13-18 % faster in blocks of
 * 1,664 rows than in none, fc2 over 1,458 rows 10 % faster in blocks of
 * 1,024 than of 1,664, where a 729-row image's rate per row was reached;
 * a sweep over every row writes a 192-byte piece of each output row, each
 * on its own 4 KB page, likely past the TLB's reach).  When K has
 * more than one block, a tile's 16 slice accumulators wait in a per-thread
 * buffer between blocks (a store and reload is exact).  Packed at load,
 * the weights come from memory in one K block; at 1-16 rows (one or two
 * row tiles) the slices go outermost and the tiles prefetch two ahead
 * (run_groups). */
#include "idf2_cpu_bf16mm.h"

#include <immintrin.h>
#include <omp.h>

#include "synth/idf2_backend.h"
/* No VNNI or F16C here: the bf16 outer product needs neither. */
#define IDF2_AVX512_TARGET "avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,fma"
#include "synth/idf2_cpu_avx512_inl.h"

#define MR       8
#define NG       3
#define NSLICE   16  /* lanes of a chunk's pair layout */
#define KC_MAX   160 /* chunks (of 32 inputs) per K block: 5120 inputs */
#define FOLD_LV  5   /* partial results of the fold: 16 leaves, 4 levels */
#define MB_TILES 128 /* row tiles per block from packed weights: 1,024 rows */
/* Weights ahead (per row) that packing prefetches: 8 chunks (128 to 256
 * measured best at M = 16; 1024 and an L2 prefetch of the next panel
 * during compute were slower). */
#define PF_W 256
/* Where a tile reading weights packed at load prefetches the slices ahead
 * (24-86 KB a slice at the text shapes). */
#define PF_HINT _MM_HINT_T0
/* How many slices ahead such a tile prefetches, through the end of its take
 * into the thread's next take: at 16 rows two ahead, with the next take's
 * first slices, ran the 4-layer stack 1.03-1.05x faster than one ahead and
 * nothing past a take (one ahead into the next take, or three, within the
 * noise of the VM's bandwidth). */
#define PF_SLICES 2

static size_t chunks(size_t K)
{
    return (K + 31) / 32;
}

/* Row tiles: ceil(m / MR) of balanced sizes (729 rows: 7 and 8, not
 * 91 x 8 and a one-row tile that runs at a third of the rate). */
static size_t row_tiles(size_t m)
{
    return (m + MR - 1) / MR;
}

static size_t tile_row0(size_t m, size_t i)
{
    return m * i / row_tiles(m);
}

/* K blocks and chunks per block, balanced (4304 inputs: one block). */
static size_t k_blocks(size_t C)
{
    return (C + KC_MAX - 1) / KC_MAX;
}

static size_t k_block_chunks(size_t C)
{
    const size_t nkb = k_blocks(C);
    return nkb ? (C + nkb - 1) / nkb : 0;
}

static size_t tile_bytes(void)
{
    return (size_t)MR * NG * sizeof(__m512);
}

/* Per thread: the panel, the fold's partial results (of two row tiles at
 * once: see run_groups), and the slice
 * accumulators of every row tile when K has more than one block. */
static size_t thread_bytes(size_t m, size_t C)
{
    const size_t panel = (size_t)NG * NSLICE * k_block_chunks(C) * sizeof(__m512);
    const size_t carry = k_blocks(C) > 1 ? row_tiles(m) * NSLICE * tile_bytes() : 0;
    return idf2_align64(panel) + 2 * FOLD_LV * tile_bytes() + carry;
}

/* Chunks of a row tile's slice in the activation layout: even (packing
 * goes two chunks at a time). */
static size_t x_chunks(size_t C)
{
    return (C + 1) / 2 * 2;
}

/* Dwords of one row tile's activations (one term). */
static size_t x_tile_dwords(size_t C)
{
    return NSLICE * x_chunks(C) * MR;
}

static size_t x_bytes(size_t m, size_t K, bool two)
{
    return row_tiles(m) * x_tile_dwords(chunks(K)) * 4 * (two ? 2 : 1);
}

/* Position of slice l in the fold order (four bits reversed; an
 * involution: also the slice of fold leaf l). */
static int fold_pos(int l)
{
    return (l & 1) << 3 | (l & 2) << 1 | (l & 4) >> 1 | l >> 3;
}

size_t idf2_bf16mm_ws(size_t m, size_t K, bool two, int nt)
{
    return x_bytes(m, K, two) + (size_t)(nt > 0 ? nt : 1) * thread_bytes(m, chunks(K));
}

KINL __m512 widen(__m256bh h)
{
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32((__m256i)h), 16));
}

/* r[i] = row i (16 pairs) -> r[l] = pair l of rows 0..15. */
KINL void transpose16(__m512i r[16])
{
    __m512i t[16], u[16];
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) {
        u[i] = _mm512_unpacklo_epi64(t[i], t[i + 2]);
        u[i + 1] = _mm512_unpackhi_epi64(t[i], t[i + 2]);
        u[i + 2] = _mm512_unpacklo_epi64(t[i + 1], t[i + 3]);
        u[i + 3] = _mm512_unpackhi_epi64(t[i + 1], t[i + 3]);
    }
    /* u[4b + i] lane q: rows 4b..4b+3 of pair 4q + i. */
    for (int i = 0; i < 4; i++) {
        const __m512i v0 = _mm512_shuffle_i32x4(u[i], u[4 + i], 0x88);
        const __m512i w0 = _mm512_shuffle_i32x4(u[i], u[4 + i], 0xDD);
        const __m512i v1 = _mm512_shuffle_i32x4(u[8 + i], u[12 + i], 0x88);
        const __m512i w1 = _mm512_shuffle_i32x4(u[8 + i], u[12 + i], 0xDD);
        r[i] = _mm512_shuffle_i32x4(v0, v1, 0x88);
        r[8 + i] = _mm512_shuffle_i32x4(v0, v1, 0xDD);
        r[4 + i] = _mm512_shuffle_i32x4(w0, w1, 0x88);
        r[12 + i] = _mm512_shuffle_i32x4(w0, w1, 0xDD);
    }
}

/* Row tile t's activations (rows r0 .. r0+rows-1 of x), as the tile
 * reads them: hi[(fold_pos(l) * Cx + c) * MR + r] = pair l of chunk c of
 * row r as bf16 (round to nearest even), lo the rounded remainder (NULL:
 * hi only), zero past K.  Two chunks of MR rows at a time are 16 zmm of
 * 16 pairs, one transpose away from two chunks of one slice (a scatter
 * per row and chunk cost as much as the tile's compute at N = 300). */
KFN void pack_x_tile(uint32_t *hi, uint32_t *lo, const float *x, size_t x_stride, size_t rows,
                     size_t K, size_t C)
{
    const size_t Cx = x_chunks(C);
    for (size_t c = 0; c < Cx; c += 2) {
        __m512i h[16], l[16];
        for (size_t i = 0; i < 16; i++) {
            const size_t r = i % MR, k = (c + i / MR) * 32;
            const bool live = r < rows && k < K;
            const float *src = live ? x + r * x_stride + k : x;
            const __m512 a = _mm512_maskz_loadu_ps(live ? tail16(K - k) : 0, src);
            const __m512 b =
                _mm512_maskz_loadu_ps(live && k + 16 < K ? tail16(K - k - 16) : 0, src + 16);
            const __m256bh ha = _mm512_cvtneps_pbh(a), hb = _mm512_cvtneps_pbh(b);
            h[i] = _mm512_inserti64x4(_mm512_castsi256_si512((__m256i)ha), (__m256i)hb, 1);
            if (lo) {
                const __m256bh la = _mm512_cvtneps_pbh(_mm512_sub_ps(a, widen(ha)));
                const __m256bh lb = _mm512_cvtneps_pbh(_mm512_sub_ps(b, widen(hb)));
                l[i] = _mm512_inserti64x4(_mm512_castsi256_si512((__m256i)la), (__m256i)lb, 1);
            }
        }
        transpose16(h);
        for (int s = 0; s < NSLICE; s++)
            _mm512_store_si512(hi + ((size_t)fold_pos(s) * Cx + c) * MR, h[s]);
        if (lo) {
            transpose16(l);
            for (int s = 0; s < NSLICE; s++)
                _mm512_store_si512(lo + ((size_t)fold_pos(s) * Cx + c) * MR, l[s]);
        }
    }
}

/* Panel of groups g0 .. g0+ng-1 over chunks [c0, c1): zmm (g, l, c - c0)
 * at panel[(g * 16 + fold_pos(l)) * (c1 - c0) + c - c0] (slices in the
 * order the tiles run them, so a group packed at load is read front to
 * back); columns past N and inputs past K read as zero. */
KFN void pack_w(__m512i *panel, const uint16_t *w, size_t N, size_t K, size_t g0, size_t ng,
                size_t c0, size_t c1)
{
    const size_t kc = c1 - c0;
    for (size_t g = 0; g < ng; g++) {
        const size_t j0 = (g0 + g) * 16, rows = idf2_min_sz(16, N - j0);
        for (size_t c = c0; c < c1; c++) {
            const __mmask32 km = tail32(K - c * 32);
            __m512i r[16];
            for (size_t i = 0; i < 16; i++) {
                const uint16_t *src = w + (j0 + i) * K + c * 32;
                r[i] = i < rows ? _mm512_maskz_loadu_epi16(km, src) : _mm512_setzero_si512();
                if (i < rows)
                    _mm_prefetch((const char *)(src + PF_W), _MM_HINT_T0);
            }
            transpose16(r);
            for (int l = 0; l < NSLICE; l++)
                _mm512_store_si512(panel + ((g * NSLICE + (size_t)fold_pos(l)) * kc + (c - c0)),
                                   r[l]);
        }
    }
}

/* Where a tile's work goes. */
struct tile_io {
    const uint32_t *x; /* the tile's slice l at chunk c0 */
    size_t xlo;        /* dwords from hi to lo terms */
    const __m512i *p;  /* group 0's slice l panel */
    size_t ps;         /* zmm between groups */
    size_t kc;         /* chunks of this K block */
    __m512 *carry;     /* the slice's accumulators between K blocks, or NULL */
    bool first;        /* first K block: start from zero */
    __m512 *fold;      /* FOLD_LV partial results of MR * NG */
    int leaf;          /* position of this slice in the fold (0..15) */
    /* Packed at load: the panel PF_SLICES slices ahead for group 0 (NULL: none),
     * groups ps apart, of which this tile prefetches its share: chunks
     * (pf_i * kc + c) / pf_n at every pf_n-th chunk c, so that the row
     * tiles over a slice together fetch all of the next. */
    const __m512i *pf;
    int pf_i, pf_n;
    float *y;          /* row r0, column of group 0 */
    size_t ldy, ncols; /* y's row stride; columns left from group 0 */
    const float *bias; /* at group 0's column, or NULL */
    enum idf2_bf16mm_ep ep;
};

/* y[lanes m] = v by ep other than IDF2_BF16MM_STORE: out of line, so that
 * the activation is one copy, not one per tile shape and unrolled row (it
 * runs once per 16 outputs, after K / 2 vdpbf16ps each). */
__attribute__((noinline)) KFN void store_ep(float *y, __mmask16 m, __m512 v, enum idf2_bf16mm_ep ep)
{
    const bool silu = ep == IDF2_BF16MM_SILU || ep == IDF2_BF16MM_SILU_MUL;
    if (ep == IDF2_BF16MM_ADD)
        v = _mm512_add_ps(_mm512_maskz_loadu_ps(m, y), v);
    else if (ep == IDF2_BF16MM_SILU_MUL || ep == IDF2_BF16MM_GELU_TANH_MUL)
        v = _mm512_mul_ps(act_vec(_mm512_maskz_loadu_ps(m, y), silu), v);
    else
        v = act_vec(v, silu);
    _mm512_mask_storeu_ps(y, m, v);
}

/* One slice of a tile: the chunk loop, then (last K block) the fold step
 * and, at the fold's last leaf, y = sum + bias (or its act, or y +
 * that: io->ep). */
KINL void tile(const int R, const int G, const bool two, const struct tile_io *io)
{
    __m512 acc[MR][NG];
    _Pragma("GCC unroll 8") for (int r = 0; r < R; r++)
        _Pragma("GCC unroll 4") for (int g = 0; g < G; g++) acc[r][g] =
            io->first ? _mm512_setzero_ps() : io->carry[r * NG + g];
    const uint32_t *x = io->x;
    const __m512i *p = io->p;
    for (size_t c = 0; c < io->kc; c++) {
        if (io->pf && c % (size_t)io->pf_n == 0) {
            const size_t at = ((size_t)io->pf_i * io->kc + c) / (size_t)io->pf_n;
            _Pragma("GCC unroll 4") for (int g = 0; g < G; g++)
                _mm_prefetch((const char *)(io->pf + (size_t)g * io->ps + at), PF_HINT);
        }
        __m512bh wv[NG];
        _Pragma("GCC unroll 4") for (int g = 0; g < G; g++) wv[g] =
            (__m512bh)_mm512_load_si512(p + (size_t)g * io->ps + c);
        _Pragma("GCC unroll 8") for (int r = 0; r < R; r++)
        {
            const __m512bh xh = (__m512bh)_mm512_set1_epi32((int)x[c * MR + (size_t)r]);
            if (two) {
                const __m512bh xl =
                    (__m512bh)_mm512_set1_epi32((int)x[io->xlo + c * MR + (size_t)r]);
                _Pragma("GCC unroll 4") for (int g = 0; g < G; g++) acc[r][g] =
                    _mm512_dpbf16_ps(_mm512_dpbf16_ps(acc[r][g], xh, wv[g]), xl, wv[g]);
            } else {
                _Pragma("GCC unroll 4") for (int g = 0; g < G; g++) acc[r][g] =
                    _mm512_dpbf16_ps(acc[r][g], xh, wv[g]);
            }
        }
    }
    if (!io->fold) {
        _Pragma("GCC unroll 8") for (int r = 0; r < R; r++)
            _Pragma("GCC unroll 4") for (int g = 0; g < G; g++) io->carry[r * NG + g] = acc[r][g];
        return;
    }
    /* Binary counter: leaf i merges with the partial of each level whose
     * bit i has set; addition order within a pair is immaterial (float
     * addition commutes), the pairing is lane_sum's. */
    int lv = 0;
    while (lv < 4 && (io->leaf >> lv & 1)) {
        const __m512 *s = io->fold + (size_t)lv * MR * NG;
        _Pragma("GCC unroll 8") for (int r = 0; r < R; r++)
            _Pragma("GCC unroll 4") for (int g = 0; g < G; g++) acc[r][g] =
                _mm512_add_ps(s[r * NG + g], acc[r][g]);
        lv++;
    }
    if (lv < 4) {
        __m512 *s = io->fold + (size_t)lv * MR * NG;
        _Pragma("GCC unroll 8") for (int r = 0; r < R; r++)
            _Pragma("GCC unroll 4") for (int g = 0; g < G; g++) s[r * NG + g] = acc[r][g];
        return;
    }
    _Pragma("GCC unroll 4") for (int g = 0; g < G; g++)
    {
        const size_t col = (size_t)g * 16;
        const __mmask16 m = tail16(io->ncols - col);
        const __m512 b = io->bias ? _mm512_maskz_loadu_ps(m, io->bias + col) : _mm512_setzero_ps();
        _Pragma("GCC unroll 8") for (int r = 0; r < R; r++)
        {
            float *y = io->y + (size_t)r * io->ldy + col;
            const __m512 v = io->bias ? _mm512_add_ps(acc[r][g], b) : acc[r][g];
            if (io->ep == IDF2_BF16MM_STORE)
                _mm512_mask_storeu_ps(y, m, v);
            else
                store_ep(y, m, v, io->ep);
        }
    }
}

#define TILE_CASE2(R_, G_, TWO_)                                                                   \
    case ((R_)*4 + (G_)) * 2 + (TWO_):                                                             \
        tile(R_, G_, TWO_, io);                                                                    \
        break;
#define TILE_CASE(R_, G_) TILE_CASE2(R_, G_, 0) TILE_CASE2(R_, G_, 1)
#define TILE_ROW(R_)      TILE_CASE(R_, 1) TILE_CASE(R_, 2) TILE_CASE(R_, 3)

KFN void tile_any(int R, int G, bool two, const struct tile_io *io)
{
    switch ((R * 4 + G) * 2 + (int)two) {
        TILE_ROW(1)
        TILE_ROW(2)
        TILE_ROW(3)
        TILE_ROW(4)
        TILE_ROW(5)
        TILE_ROW(6)
        TILE_ROW(7)
        TILE_ROW(8)
    default:
        break;
    }
}

/* A thread's column groups [ga, gb): per NG groups and K block, pack
 * (unless wp holds every group packed over all of K), then every row tile
 * over every slice.  From wp with at most two row tiles (decode, batched
 * decode) there is one K block and the slices go outermost, each through
 * both tiles while it is in L1/L2, and the tiles prefetch the slice
 * PF_SLICES ahead from memory as they go, past gb into `after` (the
 * thread's next take, group 0 of it; NULL: none): the stream overlaps the
 * compute.  More row tiles keep the K blocks, so that a block's panel
 * stays in L2 while every row tile reads it.  Row tiles [ta, tb) only. */
KFN void run_groups(float *y, const uint32_t *xp, size_t m, const uint16_t *w, const __m512i *wp,
                    size_t N, size_t K, bool two, const float *bias, enum idf2_bf16mm_ep ep,
                    char *mine, size_t ta, size_t tb, size_t ga, size_t gb, const __m512i *after)
{
    const size_t C = chunks(K), tiles = row_tiles(m), nt = tb - ta;
    const bool leaf_outer = wp && tiles <= 2;
    const size_t nkb = leaf_outer ? 1 : k_blocks(C), kcb = leaf_outer ? C : k_block_chunks(C);
    const size_t xs = x_tile_dwords(C), xlo = tiles * xs;
    __m512i *panel = (__m512i *)mine;
    __m512 *fold =
        (__m512 *)(mine + idf2_align64((size_t)NG * NSLICE * k_block_chunks(C) * sizeof(__m512)));
    __m512 *carry = fold + (size_t)2 * FOLD_LV * MR * NG;
    for (size_t g0 = ga; g0 < gb; g0 += NG) {
        const size_t ng = idf2_min_sz(NG, gb - g0);
        for (size_t kb = 0; kb < nkb; kb++) {
            const size_t c0 = kb * kcb, c1 = idf2_min_sz(C, c0 + kcb), kc = c1 - c0;
            /* The prepacked layout is the panel's with kc = C, so a K
             * block of it starts c0 chunks into each slice. */
            const __m512i *pn = wp ? wp + g0 * NSLICE * C + c0 : panel;
            const size_t pkc = wp ? C : kc;
            if (!wp)
                pack_w(panel, w, N, K, g0, ng, c0, c1);
            for (size_t it = 0; it < nt * NSLICE; it++) {
                const size_t i = ta + (leaf_outer ? it % nt : it / NSLICE);
                const int leaf = (int)(leaf_outer ? it / nt : it % NSLICE);
                const size_t r0 = tile_row0(m, i);
                const int R = (int)(tile_row0(m, i + 1) - r0);
                const int l = fold_pos(leaf);
                /* PF_SLICES slices ahead in this take, or into the next take's. */
                const size_t q = (g0 - ga) / NG * NSLICE + (size_t)leaf + PF_SLICES;
                const size_t gq = ga + q / NSLICE * NG, nq = (gb - ga + NG - 1) / NG * NSLICE;
                const __m512i *next =
                    !leaf_outer ? NULL
                    : gq < gb   ? wp + gq * NSLICE * C + q % NSLICE * C
                    : after ? after + (q - nq) / NSLICE * NG * NSLICE * C + (q - nq) % NSLICE * C
                            : NULL;
                const struct tile_io io = {
                    .x = xp + i * xs + ((size_t)leaf * x_chunks(C) + c0) * MR,
                    .xlo = xlo,
                    .p = pn + (size_t)leaf * pkc,
                    .ps = NSLICE * pkc,
                    .kc = kc,
                    .carry = carry + (i * NSLICE + (size_t)l) * MR * NG,
                    .first = kb == 0,
                    .fold = kb + 1 == nkb ? fold + (leaf_outer ? i : 0) * FOLD_LV * MR * NG : NULL,
                    .leaf = leaf,
                    .y = y + r0 * N + g0 * 16,
                    .ldy = N,
                    .ncols = N - g0 * 16,
                    .bias = bias ? bias + g0 * 16 : NULL,
                    .ep = ep,
                    .pf = next,
                    .pf_i = (int)(i - ta),
                    .pf_n = (int)nt,
                };
                tile_any(R, (int)ng, two, &io);
            }
        }
    }
}

size_t idf2_bf16mm_packed_bytes(size_t N, size_t K)
{
    return (N + 15) / 16 * NSLICE * chunks(K) * sizeof(__m512i);
}

void idf2_bf16mm_pack(void *dst, const uint16_t *w, size_t N, size_t K, int nt)
{
    const size_t C = chunks(K);
#pragma omp parallel for schedule(static) num_threads(nt > 0 ? nt : 1)
    for (long g = 0; g < (long)((N + 15) / 16); g++)
        pack_w((__m512i *)dst + (size_t)g * NSLICE * C, w, N, K, (size_t)g, 1, 0, C);
}

void idf2_bf16mm(float *y, const float *x, size_t m, size_t x_stride, const uint16_t *w,
                 const void *wp, size_t N, size_t K, bool two, const float *bias, void *ws, int nt)
{
    idf2_bf16mm_ep(y, x, m, x_stride, w, wp, N, K, two, bias, IDF2_BF16MM_STORE, ws, nt);
}

void idf2_bf16mm_ep(float *y, const float *x, size_t m, size_t x_stride, const uint16_t *w,
                    const void *wp, size_t N, size_t K, bool two, const float *bias,
                    enum idf2_bf16mm_ep ep, void *ws, int nt)
{
    if (m == 0 || N == 0)
        return;
    const size_t C = chunks(K), groups = (N + 15) / 16;
    uint32_t *xp = ws;
    char *threads = (char *)ws + x_bytes(m, K, two);
    const size_t xs = x_tile_dwords(C), tiles = row_tiles(m);
    const size_t per = thread_bytes(m, C);
    const int team = m * N * K < (1u << 18) ? 1 : (nt > 0 ? nt : 1);
    /* Unpacked weights are packed per block: one block, packed once. */
    const size_t nmb = wp ? (tiles + MB_TILES - 1) / MB_TILES : 1;
    size_t next = 0;
#pragma omp parallel num_threads(team)
    {
#pragma omp for schedule(static)
        for (long i = 0; i < (long)tiles; i++) {
            const size_t r0 = tile_row0(m, (size_t)i);
            pack_x_tile(xp + (size_t)i * xs, two ? xp + (tiles + (size_t)i) * xs : NULL,
                        x + r0 * x_stride, x_stride, tile_row0(m, (size_t)i + 1) - r0, K, C);
        }
        char *mine = threads + (size_t)omp_get_thread_num() * per;
        /* Tasks: ranges of a row block's groups (never across blocks),
         * shrinking at the end of the call. */
        const size_t T = (size_t)omp_get_num_threads();
        const size_t chunk = idf2_take_chunk(groups, T, NG);
        /* Each take is known one take ahead, so that the end of one
         * prefetches the start of the next (run_groups' `after`). */
        size_t u0, u1, v0, v1;
        bool have = idf2_take_tail(&next, nmb * groups, groups, chunk, NG, T, &u0, &u1);
        while (have) {
            const bool more = idf2_take_tail(&next, nmb * groups, groups, chunk, NG, T, &v0, &v1);
            const size_t b = u0 / groups;
            run_groups(y, xp, m, w, wp, N, K, two, bias, ep, mine, tiles * b / nmb,
                       tiles * (b + 1) / nmb, u0 % groups, u1 - b * groups,
                       more && wp ? (const __m512i *)wp + v0 % groups * NSLICE * C : NULL);
            have = more;
            u0 = v0;
            u1 = v1;
        }
    }
}
