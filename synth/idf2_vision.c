/* idf2_vision: SigLIP-style encoder over the real patches of one image.
 *
 * Owns nothing: buffers come from the caller's scratch.  Never reads
 * padding pixels: the real block is gathered straight from the canvas.  Grid sizes are bounded by
 * the position table (N = image_size / patch_size), itself bounded by the config limits, so every
 * buffer size below is small and overflow-free once the grid check has passed. */
#include "idf2_vision.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* transformers 4.40-4.54 on x86 with AVX2 (torch's vectorised arange)
 * buckets these exact hits i*70/n one lower than floor (SPEC §5.3): the
 * released idefics2-8b was run this way. */
static const struct {
    int n;
    int i[6];
} avx2_exceptions_70[] = {
    { 25, { 5, 10, 15, 20 } },
    { 49, { 7, 14, 35, 42 } },
    { 50, { 5, 10, 15, 20, 30, 40 } },
    { 55, { 11, 22, 33, 44 } },
    { 58, { 29 } },
};

/* bucket[i] for i < n coordinates over N buckets. */
static void vision_buckets(int N, int n, int32_t *bucket)
{
    if (N == 70) {
        for (int i = 0; i < n; i++)
            bucket[i] = (int32_t)(i * 70 / n);
        for (size_t e = 0; e < sizeof avx2_exceptions_70 / sizeof avx2_exceptions_70[0]; e++) {
            if (avx2_exceptions_70[e].n != n)
                continue;
            for (int t = 0; t < 6 && avx2_exceptions_70[e].i[t]; t++)
                bucket[avx2_exceptions_70[e].i[t]]--;
        }
        return;
    }
    /* torch.arange on CPU (scalar kernel) for a float32 result: the count is
     * ceil((end - start) / step) in double and element k is
     * float(start + k * step) computed in double.  boundaries =
     * arange(1/N, 1.0, 1/N) with Python-double operands; coords =
     * arange(0, 1 - 1e-6, 1/n) whose step is the float32 quotient 1/n;
     * bucketize(right=True) counts the boundaries <= coord. */
    const double bstep = 1.0 / N;
    const long n_bound = (long)ceil((1.0 - bstep) / bstep);
    const double cstep = (double)(1.0f / (float)n);
    for (int i = 0; i < n; i++) {
        const float coord = (float)(0.0 + (double)i * cstep);
        int32_t b = 0;
        for (long k = 0; k < n_bound; k++)
            if ((float)(bstep + (double)k * bstep) <= coord)
                b++;
        bucket[i] = b;
    }
}

void idf2_vision_position_ids(int N, int nh, int nw, int32_t *out)
{
    int32_t bh[IDF2_MAX_IMAGE_SIZE], bw[IDF2_MAX_IMAGE_SIZE];
    vision_buckets(N, nh, bh);
    vision_buckets(N, nw, bw);
    for (int i = 0; i < nh; i++)
        for (int j = 0; j < nw; j++)
            out[i * nw + j] = bh[i] * N + bw[j];
}

/* Rows per MLP call, in balanced chunks: on weights not packed at load
 * each call packs fc1 and fc2 once, so wide chunks pack them fewer times
 * (a 4,900-patch pass: 3 times, not 7 with IDF2_ROW_CHUNK) for 28 MB of
 * fc1 output at SigLIP's width. */
#define VISION_MLP_ROWS 1664

static size_t mlp_chunks(size_t P)
{
    return (P + VISION_MLP_ROWS - 1) / VISION_MLP_ROWS;
}

void idf2_vision_scratch_carve(const struct idf2_vision_config *cfg, size_t max_patches,
                               struct idf2_carve *c, struct idf2_vision_scratch *s)
{
    const size_t D = (size_t)cfg->hidden_size,
                 plen = (size_t)cfg->num_channels * (size_t)cfg->patch_size * cfg->patch_size;
    const size_t wide = D > plen ? D : plen;
    s->max_patches = max_patches;
    s->x = idf2_carve(c, max_patches, D * sizeof(float));
    s->h = idf2_carve(c, max_patches, wide * sizeof(float));
    s->qkv = idf2_carve(c, max_patches, 3 * D * sizeof(float));
    s->qkv_b = idf2_carve(c, 3, D * sizeof(float));
    s->att = idf2_carve(c, max_patches, D * sizeof(float));
    s->mlp = idf2_carve(c, idf2_min_sz(max_patches, VISION_MLP_ROWS),
                        (size_t)cfg->intermediate_size * sizeof(float));
    s->pos = idf2_carve(c, max_patches, sizeof(int32_t));
}

size_t idf2_vision_ws(const struct idf2_ops *ops, const struct idf2_vision_config *cfg,
                      const struct idf2_vision_weights *w, size_t max_patches, int nt)
{
    const int H = cfg->num_attention_heads;
    size_t need = ops->attention_ws(max_patches, max_patches, H, cfg->hidden_size / H, nt);
    idf2_ws_need_mm(&need, ops, max_patches, &w->patch, nt);
    for (int l = 0; l < cfg->num_hidden_layers; l++) {
        const struct idf2_vision_layer *L = &w->layers[l];
        struct idf2_w qkv;
        if (idf2_vision_fused_qkv(ops, L, &qkv))
            idf2_ws_need_mm(&need, ops, max_patches, &qkv, nt);
        idf2_ws_need_mm(&need, ops, max_patches, &L->q, nt);
        idf2_ws_need_mm(&need, ops, max_patches, &L->k, nt);
        idf2_ws_need_mm(&need, ops, max_patches, &L->v, nt);
        idf2_ws_need_mm(&need, ops, max_patches, &L->o, nt);
        idf2_ws_need_mm(&need, ops, idf2_min_sz(max_patches, VISION_MLP_ROWS), &L->fc1, nt);
        idf2_ws_need_mm(&need, ops, idf2_min_sz(max_patches, VISION_MLP_ROWS), &L->fc2, nt);
    }
    return need;
}

bool idf2_vision_fused_qkv(const struct idf2_ops *ops, const struct idf2_vision_layer *L,
                           struct idf2_w *qkv)
{
    const struct idf2_w *parts[] = { &L->q, &L->k, &L->v };
    return L->q_b && L->k_b && L->v_b && L->k.rows == L->q.rows && L->v.rows == L->q.rows &&
           idf2_w_stack(ops, parts, 3, qkv);
}

/* One pre-LN encoder layer over x[P, D]: the rows of the images im[0..n),
 * each attending to its own rows only.  q, k and v come from one matmul
 * over the normalized rows when the row can (idf2_vision_fused_qkv), side
 * by side in each row of s->qkv; else from three, one after another. */
static void vision_layer(const struct idf2_exec *ex, const struct idf2_vision_config *cfg,
                         const struct idf2_vision_layer *L, struct idf2_vision_scratch *s,
                         const struct idf2_vision_image *im, size_t n, size_t P)
{
    const struct idf2_ops *o = ex->ops;
    const size_t D = (size_t)cfg->hidden_size;
    const int H = cfg->num_attention_heads, hd = cfg->hidden_size / H;
    const float eps = (float)cfg->layer_norm_eps;

    o->layernorm(s->h, s->x, P, D, L->ln1_w, L->ln1_b, eps, ex);
    struct idf2_w qkv;
    const float *q = s->qkv, *k, *v;
    size_t ld = D;
    if (!s->qkv_apart && idf2_vision_fused_qkv(o, L, &qkv)) {
        memcpy(s->qkv_b, L->q_b, D * sizeof(float));
        memcpy(s->qkv_b + D, L->k_b, D * sizeof(float));
        memcpy(s->qkv_b + 2 * D, L->v_b, D * sizeof(float));
        idf2_mm(ex, s->qkv, s->h, P, &qkv, s->qkv_b);
        k = q + D;
        v = q + 2 * D;
        ld = 3 * D;
    } else {
        k = q + P * D;
        v = q + 2 * P * D;
        idf2_mm(ex, s->qkv, s->h, P, &L->q, L->q_b);
        idf2_mm(ex, s->qkv + P * D, s->h, P, &L->k, L->k_b);
        idf2_mm(ex, s->qkv + 2 * P * D, s->h, P, &L->v, L->v_b);
    }
    for (size_t i = 0, r0 = 0; i < n; r0 += (size_t)im[i].nh * im[i].nw, i++) {
        const size_t np = (size_t)im[i].nh * im[i].nw;
        const struct idf2_attn a = {
            .q = q + r0 * ld,
            .q_stride = ld,
            .k = k + r0 * ld,
            .v = v + r0 * ld,
            .kv_head_stride = (size_t)hd,
            .kv_row_stride = ld,
            .n_q = np,
            .n_kv = np,
            .n_heads = H,
            .n_kv_heads = H,
            .head_dim = hd,
            .scale = (float)pow(hd, -0.5), /* HF: head_dim ** -0.5 */
        };
        o->attention(s->att + r0 * D, &a, ex);
    }
    /* The residual adds and GELU in the matmuls' stores where the row
     * fuses them (idf2_mm_ep): one pass over their outputs, not two. */
    idf2_mm_ep(ex, s->x, s->att, P, &L->o, L->o_b, IDF2_EP_ADD, cfg->hidden_act, s->h);

    o->layernorm(s->h, s->x, P, D, L->ln2_w, L->ln2_b, eps, ex);
    /* The MLP in row chunks: h rows are read once, then overwritten. */
    for (size_t c = 0, nc = mlp_chunks(P); c < nc; c++) {
        const size_t i = P * c / nc, r = P * (c + 1) / nc - i;
        idf2_mm_ep(ex, s->mlp, s->h + i * D, r, &L->fc1, L->fc1_b, IDF2_EP_ACT, cfg->hidden_act,
                   NULL);
        idf2_mm_ep(ex, s->x + i * D, s->mlp, r, &L->fc2, L->fc2_b, IDF2_EP_ADD, cfg->hidden_act,
                   s->h + i * D);
    }
}

size_t idf2_vision_pass_images(const struct idf2_vision_image *im, size_t n, size_t max_patches)
{
    size_t k = 1, total = (size_t)im[0].nh * im[0].nw;
    for (; k < n; k++) {
        const size_t np = (size_t)im[k].nh * im[k].nw;
        if (total + np > max_patches)
            break;
        total += np;
    }
    return k;
}

/* Conv2d(kernel = stride = p) as a matmul: each patch of the real nh x nw
 * block flattened in (channel, ky, kx) order, the conv weight's own order,
 * into dst rows. */
static void vision_patches(float *dst, const float *pixels, size_t C, size_t p, size_t H, size_t W,
                           size_t nh, size_t nw)
{
    const size_t plen = C * p * p;
    for (size_t r = 0; r < nh; r++)
        for (size_t c = 0; c < nw; c++) {
            float *d = dst + (r * nw + c) * plen;
            for (size_t ch = 0; ch < C; ch++)
                for (size_t ky = 0; ky < p; ky++)
                    memcpy(d + (ch * p + ky) * p, pixels + (ch * H + r * p + ky) * W + c * p,
                           p * sizeof(float));
        }
}

enum vc_status idf2_vision_encode(const struct idf2_exec *ex, const struct idf2_vision_config *cfg,
                                  const struct idf2_vision_weights *w,
                                  struct idf2_vision_scratch *s, const struct idf2_vision_image *im,
                                  size_t n, float *out, struct vc_err *err)
{
    const int p = cfg->patch_size, N = cfg->image_size / cfg->patch_size;
    const size_t C = (size_t)cfg->num_channels, D = (size_t)cfg->hidden_size;
    const size_t plen = C * (size_t)p * (size_t)p;
    size_t P = 0;
    for (size_t i = 0; i < n; i++) {
        const uint32_t nh = im[i].nh, nw = im[i].nw, H = im[i].height, W = im[i].width;
        if (nh == 0 || nw == 0 || nh > (uint32_t)N || nw > (uint32_t)N || (uint64_t)nh * p > H ||
            (uint64_t)nw * p > W || (size_t)nh * nw > s->max_patches - P)
            return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec,
                              "vision: image %zu's %ux%u patch grid does not fit a %ux%u canvas / "
                              "%dx%d table / the %zu-patch scratch after %zu patches",
                              i + 1, nh, nw, H, W, N, N, s->max_patches, P);
        vision_patches(s->h + P * plen, im[i].pixels, C, (size_t)p, H, W, nh, nw);
        idf2_vision_position_ids(N, (int)nh, (int)nw, s->pos + P);
        P += (size_t)nh * nw;
    }
    if (P == 0)
        return VC_OK;
    idf2_mm(ex, s->x, s->h, P, &w->patch, w->patch_b);
    for (size_t i = 0; i < P; i++)
        ex->ops->add(s->x + i * D, w->pos + (size_t)s->pos[i] * D, D, ex);

    /* ep_apart: the row without its fused matmuls, so idf2_mm_ep makes
     * its two calls (the same bits). */
    struct idf2_ops apart = *ex->ops;
    memset(apart.matmul_ep, 0, sizeof apart.matmul_ep);
    const struct idf2_exec ex_apart = { &apart, ex->nt, ex->ws, ex->ws_bytes };
    for (int l = 0; l < cfg->num_hidden_layers; l++)
        vision_layer(s->ep_apart ? &ex_apart : ex, cfg, &w->layers[l], s, im, n, P);
    ex->ops->layernorm(out, s->x, P, D, w->post_ln_w, w->post_ln_b, (float)cfg->layer_norm_eps, ex);
    return VC_OK;
}
