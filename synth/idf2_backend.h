/* idf2_backend: the seam between the Idefics2 forward passes (vision,
 * connector, text) and the numeric kernels.  The forward passes call only
 * the operations of one `struct idf2_ops` table (a "row"); rows are chosen
 * at run time by CPU features, as ggml's backends are:
 *
 *   "ref"  scalar reference: plain loops, double accumulation.  Defines the
 *          meaning of every operation and weight format; what the golden
 *          tests and the per-row oracle test (tests/unit/test_idf2_backend.c)
 *          compare against.  Always available.
 *   "vec"  portable float32 kernels (GCC vector extensions, 8 lanes; what
 *          -march makes of them): idf2_kernels.c.
 *   "avx2" AVX2 + FMA matmul for f32 and bf16 weights in register tiles:
 *          idf2_cpu_avx2.c; flash-style attention, norms and SiLU/GELU-tanh:
 *          idf2_cpu_avx2ops.c; chosen when the CPU has AVX2/FMA and no
 *          AVX-512 BF16.
 *   "avx512" AVX-512 BF16/VNNI matmul for bf16, Q8_0 and Q4_0 weights and tiled
 *          (flash-style) non-causal attention: idf2_cpu_avx512.c; chosen
 *          when the CPU has AVX-512 F/BW/VL/BF16/VNNI.
 *   "avx512bf16" the avx512 row with activations rounded once to bf16 in
 *          bf16 matmuls: about 2x the compute-bound speed, not exact to
 *          float32 (~1e-2 relative, what a bf16 engine such as llama.cpp
 *          computes).  An approximate row: AUTO never picks it, FAST
 *          (and the name "fast") does.
 *   later rows (CUDA) register in idf2_backend.c's table.
 *
 * A row may leave an operation NULL: it then inherits its parent row's
 * entry (the table names each row's parent: avx2 and avx512 build on vec,
 * avx512bf16 on avx512, and so on up to "ref"), so a fast row implements
 * only what it speeds up.
 *
 * Weight formats are their own type (not the safetensors dtype): a matrix is
 * `struct idf2_w` in one `enum idf2_wfmt`, row-major [rows, cols], one
 * matmul entry per format.  The block formats cut each row into
 * ceil(cols / 32) blocks, the last one zero-filled past `cols` (SigLIP's
 * K = 4304 is 134.5 blocks).  Q8_0 / Q4_0 store each row's blocks in turn
 * (ggml's layout): a row starts at row * idf2_wfmt_row_bytes().  Their x16
 * twins (the text weights quantized at load) interleave 16 rows, see
 * below; a matrix of any format takes rows * idf2_wfmt_row_bytes() bytes,
 * and idf2_w_quantize_row / idf2_w_dequantize_row address a row of any.
 *
 * The contract every row keeps (the oracle test checks each point):
 *  - accuracy: matmul output element (i, j) is within
 *    `tol[fmt] * sum_k |x[i,k] * w[j,k]|` (+ 1e-30) of the reference;
 *    attention within `tol_attn` of the largest |v| (+ 1e-6), norms and
 *    activations within `tol_other` relative (+ 1e-6 absolute);
 *  - batch invariance: element (i, j) of a matmul is a function of x's row
 *    i, w's row j and the bias only, bit for bit: the same for any n, any
 *    thread count and any other rows of x (reductions in a fixed order per
 *    output element; threads split outputs, never a dot product).  Attention
 *    output row i depends on q row i and the keys/values it may see, never
 *    on the thread count.  The batched decoder relies on this for
 *    byte-identical output at any batch size.
 *  - no allocation: an operation uses only the caller's workspace
 *    (ex->ws, at least the bytes its *_ws query asked for, queries being
 *    non-decreasing in every size argument so that a context can size it
 *    once for its largest call) and never fails.
 * Activations are float32, row-major, y = x W^T (HF nn.Linear layout). */
#ifndef VC_SYNTH_IDF2_BACKEND_H
#define VC_SYNTH_IDF2_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "synth/idf2_config.h"

/* ------------------------------------------------------------ formats */

enum idf2_wfmt {
    IDF2_WF_F32 = 0,
    IDF2_WF_BF16, /* the high 16 bits of a float32 */
    IDF2_WF_Q8_0, /* struct idf2_block_q8_0 rows: w = d * q */
    IDF2_WF_Q4_0, /* struct idf2_block_q4_0 rows: w = d * (nibble - 8) */
    /* The same blocks, values and bytes per matrix, 16 rows interleaved so
     * that a VNNI instruction meets 16 rows at once (synth/idf2_cpu_q8.c
     * streams them as stored at any row count; llama.cpp's repacked
     * Q4_0_8_8 types are the precedent).  Rows 16g .. 16g+w-1 (w = 16, or
     * what is left in the last group) are group g, at byte 16g * row bytes.
     * In a group, block b's codes come first, at b * w * 32 (Q8_0) or
     * b * w * 16 (Q4_0): chunk j (j < 8 for Q8_0, 4 for Q4_0) at j * w * 4,
     * its dword c being row 16g+c's code bytes 4j..4j+3; Q8_0 codes stored
     * as unsigned q + 128, Q4_0 as ggml's nibble bytes qs[4j..4j+3].  After
     * all nb blocks of codes, the half scales: block b's at nb * w * 32 (or
     * 16) + b * w * 2, row c's at + 2c. */
    IDF2_WF_Q8_0X16,
    IDF2_WF_Q4_0X16,
};
#define IDF2_WF_COUNT 6
#define IDF2_QBLOCK   32 /* weights per block of the block formats */

/* Byte-compatible with ggml's block_q8_0 / block_q4_0 (d is IEEE half). */
struct idf2_block_q8_0 {
    uint16_t d;
    int8_t q[IDF2_QBLOCK];
};
/* qs[j] holds element j in its low nibble and element j + 16 in its high. */
struct idf2_block_q4_0 {
    uint16_t d;
    uint8_t qs[IDF2_QBLOCK / 2];
};

const char *idf2_wfmt_name(enum idf2_wfmt f);
/* Bytes of one row of `cols` weights; 0 when it would overflow. */
size_t idf2_wfmt_row_bytes(enum idf2_wfmt f, size_t cols);

/* Reference quantizer of one row (the format's definition): per block,
 * d = max|x| / 127 (Q8_0) or max-magnitude / -8 (Q4_0, signed so the
 * largest value maps to -8 exactly, as ggml), stored as half, and
 * q = round(x / d) clamped to the range.  dst: idf2_wfmt_row_bytes bytes.
 * For F32/BF16 it stores (round-to-nearest-even for BF16). */
void idf2_quantize_row(enum idf2_wfmt f, const float *src, size_t cols, void *dst);
/* dst[cols] = row as float32 (exact for F32/BF16, d * q for blocks). */
void idf2_dequantize_row(enum idf2_wfmt f, const void *row, size_t cols, float *dst);
/* The row formats behind a format: Q8_0 for Q8_0X16, Q4_0 for Q4_0X16,
 * f itself else. */
enum idf2_wfmt idf2_wfmt_base(enum idf2_wfmt f);
/* Row r of a [rows, cols] matrix `mat` in format f, any format: stores
 * src quantized as idf2_quantize_row (the same values), or reads it back
 * as idf2_dequantize_row.  Writers of different rows touch different
 * bytes (threads may fill a matrix row by row). */
void idf2_w_quantize_row(enum idf2_wfmt f, void *mat, size_t rows, size_t cols, size_t r,
                         const float *src);
void idf2_w_dequantize_row(enum idf2_wfmt f, const void *mat, size_t rows, size_t cols, size_t r,
                           float *dst);
/* Row r of mat from `row`, the same row in the base format's layout (a
 * byte copy or an interleave: no rounding). */
void idf2_w_store_row(enum idf2_wfmt f, void *mat, size_t rows, size_t cols, size_t r,
                      const void *row);

struct idf2_w;
/* A row's packing of a matrix into its own layout (see idf2_ops.pack). */
typedef void (*idf2_pack_fn)(void *dst, const struct idf2_w *w, int nt);

/* A matrix.  Linear layers are [out, in] (y = x W^T); embedding tables are
 * [vocab, width].  data is aligned to at least 4 bytes for F32, 2 else.
 * `packed`, when set, is the same matrix in the layout of the row whose
 * pack entry is `packed_by` (made once at load, synth/idf2_place.h): only
 * a row with that pack entry reads it (instead of data, bit for bit the
 * same results); every other row reads data, which stays valid. */
struct idf2_w {
    enum idf2_wfmt fmt;
    const void *data;
    int64_t rows, cols;
    const void *packed;
    idf2_pack_fn packed_by;
};
/* Bytes of w's data as stored (rows x idf2_wfmt_row_bytes). */
size_t idf2_w_bytes(const struct idf2_w *w);

/* ---------------------------------------------------------- operations */

/* float32 minimum: the mask value HF adds to masked scores (SPEC §10). */
#define IDF2_MASK_MIN (-3.4028234663852886e38f)

/* Multi-head attention with grouped K/V heads.
 *   q: [n_q, n_heads*hd] rows at stride q_stride floats;
 *   k, v: per kv head g, rows j at k + g*kv_head_stride + j*kv_row_stride
 *         (the same layout for v), j in [0, n_kv);
 *   out: [n_q, n_heads*hd], contiguous.
 * Query head h uses kv head h / (n_heads / n_kv_heads) (repeat_kv).  Scores
 * are (q . k) * scale; with `causal`, query i (at absolute position
 * q_pos0 + i) sees keys j <= q_pos0 + i, and with window > 0 also
 * q_pos0 + i - j < window.  Keys with key_mask[j] == 0 (key_mask may be
 * NULL) get IDF2_MASK_MIN added, as HF does.  A softmax in float32 with the
 * maximum subtracted. */
struct idf2_attn {
    const float *q;
    size_t q_stride;
    const float *k, *v;
    size_t kv_head_stride, kv_row_stride;
    size_t n_q, n_kv;
    int n_heads, n_kv_heads, head_dim;
    float scale;
    bool causal;
    size_t q_pos0;
    size_t window;
    const uint8_t *key_mask;
};

/* What a fused matmul stores of each sum v = x . w_j + bias_j
 * (idf2_ops.matmul_ep): act(v); y + v (a residual add); act(y) * v
 * (SwiGLU's middle, y holding the gate's product). */
enum idf2_ep { IDF2_EP_ACT, IDF2_EP_ADD, IDF2_EP_ACT_MUL };

struct idf2_ops;

/* What one call may use: the row, its threads (>= 1; an operation may use
 * fewer when the work is small) and its workspace. */
struct idf2_exec {
    const struct idf2_ops *ops;
    int nt;
    void *ws; /* 64-byte aligned */
    size_t ws_bytes;
};

struct idf2_ops {
    const char *name;
    /* Trades float32 exactness for speed (bf16 activations: outputs ~1e-2
     * relative off the reference, as any bf16 engine's): AUTO passes over
     * such a row.  Not inherited. */
    bool approx;
    /* Contract tolerances (see the top of this file). */
    double tol[IDF2_WF_COUNT];
    double tol_other;
    /* Attention's, when looser than tol_other (bf16 dot products). */
    double tol_attn;

    /* Buffers the forward passes and the context keep (weights excepted):
     * 64-byte aligned, NULL on out-of-memory; free accepts NULL. */
    void *(*buf_alloc)(size_t bytes);
    void (*buf_free)(void *p);

    /* y[n, w->rows] = x[n, w->cols] W^T (+ bias[w->rows] when bias != NULL),
     * one entry per format; y must not alias x. */
    void (*matmul[IDF2_WF_COUNT])(float *y, const float *x, size_t n, const struct idf2_w *w,
                                  const float *bias, const struct idf2_exec *ex);
    size_t (*matmul_ws)(size_t n, const struct idf2_w *w, int nt);
    /* Optional, per format: the matmul with its epilogue in its store, one
     * pass over y instead of two: y = act(x W^T + bias) (IDF2_EP_ACT),
     * y += x W^T + bias (IDF2_EP_ADD) or y = act(y) * (x W^T + bias)
     * (IDF2_EP_ACT_MUL), bit for bit the matmul followed by this row's
     * act, add or act_mul, in matmul_ws's workspace.  False, with
     * nothing written, where the row does not fuse that call (idf2_mm_ep
     * then makes the two calls).  Inherited only with matmul[f], act,
     * act_mul and add (a row that replaces one of them does not keep its
     * parent's). */
    bool (*matmul_ep[IDF2_WF_COUNT])(float *y, const float *x, size_t n, const struct idf2_w *w,
                                     const float *bias, enum idf2_ep ep, enum idf2_act act,
                                     const struct idf2_exec *ex);
    /* Optional, for weights a row reads many times (the vision tower and
     * connector, prefill-sized calls): pack_bytes is the size of w in the
     * row's packed layout, 0 when the row has none for w's format; pack
     * writes it to dst (64-byte aligned) with up to nt threads.  The
     * matmul then reads w->packed when w->packed_by is this entry, for any
     * row count, with the same bits as from data. */
    size_t (*pack_bytes)(const struct idf2_w *w);
    idf2_pack_fn pack;

    void (*attention)(float *out, const struct idf2_attn *a, const struct idf2_exec *ex);
    size_t (*attention_ws)(size_t n_q, size_t n_kv, int n_kv_heads, int head_dim, int nt);

    /* Row-wise over n rows of d: LayerNorm (x - mean) / sqrt(var + eps) * w
     * + b with the biased variance; RMSNorm w * (x / sqrt(mean(x^2) + eps)).
     * In place allowed (y == x). */
    void (*layernorm)(float *y, const float *x, size_t n, size_t d, const float *w, const float *b,
                      float eps, const struct idf2_exec *ex);
    void (*rmsnorm)(float *y, const float *x, size_t n, size_t d, const float *w, float eps,
                    const struct idf2_exec *ex);
    /* x[i] = act(x[i]); and SwiGLU's middle g[i] = act(g[i]) * u[i]. */
    void (*act)(float *x, size_t n, enum idf2_act act, const struct idf2_exec *ex);
    void (*act_mul)(float *g, const float *u, size_t n, enum idf2_act act,
                    const struct idf2_exec *ex);
    /* y[i] += x[i]. */
    void (*add)(float *y, const float *x, size_t n, const struct idf2_exec *ex);
    /* Rotate-half RoPE in place on x[n, n_heads*head_dim] (row i at stride
     * x_stride floats): row i uses table row pos[i] of cos_t/sin_t, which
     * are [positions, head_dim] (SPEC §8.2). */
    void (*rope)(float *x, size_t n, size_t x_stride, int n_heads, int head_dim, const float *cos_t,
                 const float *sin_t, const int32_t *pos, const struct idf2_exec *ex);
    /* out[n, table->cols] = rows ids[0..n) of table as float32 (ids in
     * range: the caller checks). */
    void (*embed_rows)(float *out, const struct idf2_w *table, const int32_t *ids, size_t n,
                       const struct idf2_exec *ex);
};

/* ---------------------------------------------------------------- arena */

/* Carves one preallocated block into the buffers of a context: the same
 * sequence of calls first with base NULL (a sizing pass: pointers are NULL,
 * `off` grows) and then over a block of `off` bytes hands out the same
 * offsets.  Pieces are 64-byte aligned; a size overflow sets `overflow`. */
struct idf2_carve {
    char *base;
    size_t off;
    bool overflow;
};
void *idf2_carve(struct idf2_carve *c, size_t n, size_t elem);

/* Sizes of the kernels' workspace pieces. */
static inline size_t idf2_align64(size_t v)
{
    return (v + 63) & ~(size_t)63;
}

static inline size_t idf2_min_sz(size_t a, size_t b)
{
    return a < b ? a : b;
}

/* Work of a matmul's columns handed out in chunks as the team's threads get
 * to them, not as fixed shares: the fixed halves of a memory-bound call did
 * not finish together (one thread waited a fifth of a decode step).  A
 * column's result does not depend on its chunk or thread.  idf2_take_chunk:
 * about 8 takes per thread, whole units (a tile's groups).  idf2_take: the
 * next [*a, *b) of n items, *next shared by the team; false when done. */
static inline size_t idf2_take_chunk(size_t n, size_t T, size_t unit)
{
    const size_t units = (n + unit - 1) / unit;
    return unit * (units < 16 * T ? 1 : units / (8 * T));
}

static inline bool idf2_take(size_t *next, size_t n, size_t chunk, size_t *a, size_t *b)
{
    const size_t s = __atomic_fetch_add(next, chunk, __ATOMIC_RELAXED);
    *a = s;
    *b = idf2_min_sz(n, s + chunk);
    return s < n;
}

/* idf2_take with chunks that shrink at the end: at most `chunk`, at least
 * `unit`, about a quarter of what is left per thread of T, so the team's
 * threads finish within a unit of each other instead of within a chunk (a
 * compute-bound bf16 batch-16 step lost ~3 % of its thread time waiting at
 * the end of each call for a chunk of 1/16 of it).  A take never crosses a
 * multiple of `span` (callers whose items are spans of a row block's
 * groups: each take stays in one block). */
static inline bool idf2_take_tail(size_t *next, size_t n, size_t span, size_t chunk, size_t unit,
                                  size_t T, size_t *a, size_t *b)
{
    size_t s = __atomic_load_n(next, __ATOMIC_RELAXED);
    for (;;) {
        if (s >= n)
            return false;
        size_t c = (n - s) / (4 * T) / unit * unit;
        c = c < unit ? unit : c > chunk ? chunk : c;
        const size_t e = idf2_min_sz(idf2_min_sz(n, s + c), (s / span + 1) * span);
        if (__atomic_compare_exchange_n(next, &s, e, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
            *a = s;
            *b = e;
            return true;
        }
    }
}

/* Below this many values a row- or element-wise operation runs on the
 * calling thread: waking a team costs more than the work. */
#define IDF2_PAR_MIN_ELEMS (1u << 16)

/* A row's vector kernel of SiLU and GELU-tanh: x[i] = act(x[i]) for i in
 * [0, n), times u[i] when u is not NULL.  Each value is computed by the
 * same lane operations whatever n and wherever the span starts (a tail
 * through a padded or masked vector), so any split gives the same bits. */
typedef void idf2_act_span_fn(float *x, const float *u, size_t n, enum idf2_act act);

/* The act (u NULL) and act_mul entries of a row whose `span` computes
 * `lanes` floats at a time: SiLU and GELU-tanh through span, threads
 * (ex->nt from IDF2_PAR_MIN_ELEMS values on) taking contiguous ranges of
 * whole vectors; other activations through the vec row's entries. */
void idf2_act_spans(idf2_act_span_fn *span, size_t lanes, float *x, const float *u, size_t n,
                    enum idf2_act act, const struct idf2_exec *ex);

/* A row's LayerNorm (ln; its bias b) or RMSNorm (b unused) of rows [0, n)
 * of d, each row by the same code whatever the rows around it. */
typedef void idf2_norm_rows_fn(float *y, const float *x, size_t n, size_t d, const float *w,
                               const float *b, bool ln, float eps);

/* The layernorm (ln) and rmsnorm entries of a row from its `norm` kernel:
 * threads (ex->nt from IDF2_PAR_MIN_ELEMS values on) take contiguous
 * ranges of rows. */
void idf2_norm_spans(idf2_norm_rows_fn *norm, float *y, const float *x, size_t n, size_t d,
                     const float *w, const float *b, bool ln, float eps,
                     const struct idf2_exec *ex);

/* Rows per call for the width-expanding MLPs of the vision tower and the
 * modality projection over many patches: their results do not depend on
 * how rows are grouped (batch invariance), so a chunk bounds the scratch.
 * 768 takes a 378 px image's 729 patches in one call, so each weight is
 * packed once per layer (three calls of 256 packed it three times). */
#define IDF2_ROW_CHUNK 768

/* ------------------------------------------------------------ selection */

enum idf2_backend_id {
    IDF2_BACKEND_AUTO = 0, /* the fastest exact row this CPU runs */
    IDF2_BACKEND_REF,
    IDF2_BACKEND_VEC,
    IDF2_BACKEND_AVX2,        /* AVX2 + FMA: synth/idf2_cpu_avx2.c */
    IDF2_BACKEND_AVX512,      /* AVX-512 BF16/VNNI: synth/idf2_cpu_avx512.c */
    IDF2_BACKEND_AVX512_BF16, /* the same, bf16 activations (approximate) */
    IDF2_BACKEND_FAST,        /* the fastest row, approximate ones included */
};

/* The resolved row (inherited entries filled in), or NULL when this CPU
 * cannot run it.  Tables are static: never freed, safe to share. */
const struct idf2_ops *idf2_backend_get(enum idf2_backend_id id);
/* Every row this CPU runs, in table order (index 0 is "ref"), for tests
 * and benchmarks; NULL past the end. */
const struct idf2_ops *idf2_backend_at(size_t i);
/* The row named `name` ("ref", "vec", ...; "fast" = FAST) or NULL. */
const struct idf2_ops *idf2_backend_by_name(const char *name);

/* y = x W^T + bias through ex's row. */
static inline void idf2_mm(const struct idf2_exec *ex, float *y, const float *x, size_t n,
                           const struct idf2_w *w, const float *bias)
{
    ex->ops->matmul[w->fmt](y, x, n, w, bias, ex);
}

/* idf2_mm, then ex->ops->act(y) (ep IDF2_EP_ACT), y += the product
 * (IDF2_EP_ADD) or ex->ops->act_mul(y, the product) (IDF2_EP_ACT_MUL),
 * fused where the row can (idf2_ops.matmul_ep), with the same bits either
 * way.  tmp: n * w->rows floats that the unfused IDF2_EP_ADD and
 * IDF2_EP_ACT_MUL stage the product in (may be NULL for IDF2_EP_ACT); y
 * must alias neither x nor tmp. */
void idf2_mm_ep(const struct idf2_exec *ex, float *y, const float *x, size_t n,
                const struct idf2_w *w, const float *bias, enum idf2_ep ep, enum idf2_act act,
                float *tmp);

/* *out = the matrices parts[0..n) (same format and cols) stacked into one
 * [sum of rows, cols] matrix for the matmul of ops' row, when that row
 * reads them all from its packing made at load (packed_by == ops->pack)
 * and the packed copies lie back to back as the stacked matrix's would
 * (idf2_place packs a layer's matrices in order; in a layout of row
 * groups, such as the outer product's 16 rows, every part but the last
 * must end a group).  The view has data NULL: only that row may read it.
 * Output column j is computed as in its own matrix (batch invariance), so
 * one matmul gives every part's bits; false: one matmul per part. */
bool idf2_w_stack(const struct idf2_ops *ops, const struct idf2_w *const *parts, size_t n,
                  struct idf2_w *out);

/* The gated MLP of every block: y = down(act(gate x) * up x) for n rows.
 * gate_up: gate and up stacked (idf2_w_stack) for one matmul, or NULL for
 * two.  g and u are caller scratch of n * gate->rows floats each, g twice
 * that with gate_up (then u is not used, and may be g + n * gate->rows);
 * y may be x (x is only read before y is written). */
void idf2_swiglu(const struct idf2_exec *ex, float *y, const float *x, size_t n,
                 const struct idf2_w *gate, const struct idf2_w *up, const struct idf2_w *gate_up,
                 const struct idf2_w *down, enum idf2_act act, float *g, float *u);

/* *need = max(*need, what a matmul by w over up to n rows needs). */
void idf2_ws_need_mm(size_t *need, const struct idf2_ops *ops, size_t n, const struct idf2_w *w,
                     int nt);

#endif
