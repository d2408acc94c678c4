/* idf2_weights: builds the per-layer weight view from a tensor set, checks
 * it against the config, converts dtypes, and keeps the bf16 cache.
 *
 * Owns: the tensor set it opened, every converted buffer, the layer
 * arrays.  Never computes with the weights.  Memory: a tensor is used in
 * place when it already has the wanted dtype and alignment; otherwise it is
 * converted into a 64-byte aligned owned buffer and its source pages are
 * dropped right away, so the peak is the converted model plus one tensor. */
#include "idf2_weights.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/vc_fs.h"
#include "core/vc_mem.h"

#define IDF2_CACHE_NAME ".vlmcurate-bf16.safetensors"
/* Owned buffers are aligned for 512-bit vector loads. */
#define IDF2_ALIGN 64
/* Tensors above this many elements are converted by all threads. */
#define IDF2_PAR_CONVERT_MIN (1 << 20)

/* One tensor as the model uses it, in the order loaded: what the cache
 * file is written from. */
struct idf2_entry {
    char name[128];
    enum st_dtype dtype;
    int n_dims;
    int64_t shape[4];
    const void *data;
    size_t n_bytes;
};

struct idf2_weights_store {
    struct st_set *set; /* owned when the load opened it */
    void **bufs;        /* owned converted buffers */
    size_t n_bufs;
    struct idf2_entry *entries;
    size_t n_entries, cap_entries;
};

struct idf2_loader {
    const struct st_set *set;
    enum st_dtype compute;
    struct idf2_weights *w;
    struct vc_err *err;
};

static enum vc_status idf2_oom(struct idf2_loader *ld, const char *name)
{
    return vc_err_set(ld->err, VC_EFATAL, VC_REASON_out_of_memory,
                      "no memory to convert tensor '%s'", name);
}

static enum vc_status idf2_record(struct idf2_loader *ld, const char *name, enum st_dtype dtype,
                                  int n_dims, const int64_t *shape, const void *data,
                                  size_t n_bytes)
{
    struct idf2_weights_store *s = ld->w->store;
    if (s->n_entries == s->cap_entries) {
        size_t cap = s->cap_entries ? 2 * s->cap_entries : 256;
        struct idf2_entry *e = vc_realloc_array(s->entries, cap, sizeof *e);
        if (!e)
            return idf2_oom(ld, name);
        s->entries = e;
        s->cap_entries = cap;
    }
    struct idf2_entry *e = &s->entries[s->n_entries++];
    snprintf(e->name, sizeof e->name, "%s", name);
    e->dtype = dtype;
    e->n_dims = n_dims;
    for (int i = 0; i < n_dims; i++)
        e->shape[i] = shape[i];
    e->data = data;
    e->n_bytes = n_bytes;
    return VC_OK;
}

/* An owned 64-byte aligned buffer; `weights` says whether it counts in
 * bytes_owned (converted tensors) or is bookkeeping (layer arrays). */
static void *idf2_own(struct idf2_loader *ld, size_t n_bytes, bool weights)
{
    struct idf2_weights_store *s = ld->w->store;
    void **bufs = vc_realloc_array(s->bufs, s->n_bufs + 1, sizeof *bufs);
    if (!bufs)
        return NULL;
    s->bufs = bufs;
    void *p = NULL;
    if (posix_memalign(&p, IDF2_ALIGN, n_bytes ? n_bytes : IDF2_ALIGN) != 0)
        return NULL;
    s->bufs[s->n_bufs++] = p;
    if (weights)
        ld->w->bytes_owned += n_bytes;
    return p;
}

/* dst (dtype `to`, F32 or BF16) = src, element-wise; exact when widening,
 * round-to-nearest-even when narrowing to BF16. */
static void idf2_convert(const struct st_tensor *t, enum st_dtype to, void *dst)
{
    const unsigned char *src = t->data;
    size_t es = st_dtype_size(t->dtype);
    int64_t n = t->n_elems;
#pragma omp parallel for schedule(static) if (n >= IDF2_PAR_CONVERT_MIN)
    for (int64_t i = 0; i < n; i++) {
        float v;
        if (t->dtype == ST_F32) {
            memcpy(&v, src + (size_t)i * es, sizeof v);
        } else {
            uint16_t h;
            memcpy(&h, src + (size_t)i * es, sizeof h);
            v = t->dtype == ST_BF16 ? st_bf16_to_f32(h) : st_f16_to_f32(h);
        }
        if (to == ST_F32)
            ((float *)dst)[i] = v;
        else
            ((uint16_t *)dst)[i] = st_f32_to_bf16(v);
    }
}

/* The tensor `name` with exactly the given shape and a float dtype. */
static enum vc_status idf2_find(struct idf2_loader *ld, const char *name, int n_dims,
                                const int64_t *shape, const struct st_tensor **out)
{
    const struct st_tensor *t = st_set_find(ld->set, name);
    if (!t)
        return vc_err_set(ld->err, VC_EUSAGE, VC_REASON_bad_checkpoint,
                          "tensor '%s' is missing from the checkpoint", name);
    if (t->dtype != ST_F32 && t->dtype != ST_BF16 && t->dtype != ST_F16)
        return vc_err_set(ld->err, VC_EUSAGE, VC_REASON_bad_checkpoint,
                          "tensor '%s' has dtype %s; the model needs F32, BF16 or F16", name,
                          st_dtype_name(t->dtype));
    bool same = t->n_dims == n_dims;
    for (int i = 0; same && i < n_dims; i++)
        same = t->shape[i] == shape[i];
    if (!same) {
        char have[160] = "", want[160] = "";
        for (int i = 0; i < t->n_dims; i++)
            snprintf(have + strlen(have), sizeof have - strlen(have), "%s%lld", i ? ", " : "",
                     (long long)t->shape[i]);
        for (int i = 0; i < n_dims; i++)
            snprintf(want + strlen(want), sizeof want - strlen(want), "%s%lld", i ? ", " : "",
                     (long long)shape[i]);
        return vc_err_set(ld->err, VC_EUSAGE, VC_REASON_bad_checkpoint,
                          "tensor '%s' has shape [%s], the config needs [%s]", name, have, want);
    }
    *out = t;
    return VC_OK;
}

/* Data of t in dtype `to`: the mapped bytes when they already qualify, an
 * owned converted copy otherwise (then the source pages are dropped). */
static enum vc_status idf2_data_as(struct idf2_loader *ld, const struct st_tensor *t,
                                   enum st_dtype to, const void **out)
{
    size_t es = st_dtype_size(to);
    if (t->dtype == to && (uintptr_t)t->data % es == 0) {
        *out = t->data;
        ld->w->bytes_mapped += t->n_bytes;
        return VC_OK;
    }
    size_t n_bytes;
    if (!vc_mul_ok((size_t)t->n_elems, es, &n_bytes))
        return idf2_oom(ld, t->name);
    void *dst = idf2_own(ld, n_bytes, true);
    if (!dst)
        return idf2_oom(ld, t->name);
    idf2_convert(t, to, dst);
    st_set_drop_pages(ld->set, t);
    *out = dst;
    return VC_OK;
}

static enum vc_status idf2_name(struct idf2_loader *ld, char *buf, size_t cap, const char *fmt,
                                int layer)
{
    /* The formats are this file's literals with at most one %d. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
    int n = snprintf(buf, cap, fmt, layer);
#pragma GCC diagnostic pop
    if (n < 0 || (size_t)n >= cap)
        return vc_err_set(ld->err, VC_EFATAL, VC_REASON_bad_checkpoint, "tensor name too long");
    return VC_OK;
}

/* A matrix viewed as [rows, cols] whose stored shape is `shape`. */
static enum vc_status idf2_mat_shaped(struct idf2_loader *ld, struct idf2_w *out, const char *fmt,
                                      int layer, int n_dims, const int64_t *shape, int64_t rows,
                                      int64_t cols)
{
    char name[128];
    const struct st_tensor *t = NULL;
    VC_TRY(idf2_name(ld, name, sizeof name, fmt, layer));
    VC_TRY(idf2_find(ld, name, n_dims, shape, &t));
    const void *data = NULL;
    VC_TRY(idf2_data_as(ld, t, ld->compute, &data));
    *out = (struct idf2_w){ .fmt = ld->compute == ST_BF16 ? IDF2_WF_BF16 : IDF2_WF_F32,
                            .data = data,
                            .rows = rows,
                            .cols = cols };
    return idf2_record(ld, name, ld->compute, n_dims, shape, data,
                       (size_t)t->n_elems * st_dtype_size(ld->compute));
}

static enum vc_status idf2_mat(struct idf2_loader *ld, struct idf2_w *out, const char *fmt,
                               int layer, int64_t rows, int64_t cols)
{
    int64_t shape[2] = { rows, cols };
    return idf2_mat_shaped(ld, out, fmt, layer, 2, shape, rows, cols);
}

/* A float32 tensor (vectors, position table, latents) of 1 or 2 dims. */
static enum vc_status idf2_f32(struct idf2_loader *ld, const float **out, const char *fmt,
                               int layer, int64_t d0, int64_t d1)
{
    char name[128];
    const struct st_tensor *t = NULL;
    int64_t shape[2] = { d0, d1 };
    int n_dims = d1 ? 2 : 1;
    VC_TRY(idf2_name(ld, name, sizeof name, fmt, layer));
    VC_TRY(idf2_find(ld, name, n_dims, shape, &t));
    const void *data = NULL;
    VC_TRY(idf2_data_as(ld, t, ST_F32, &data));
    *out = data;
    return idf2_record(ld, name, ST_F32, n_dims, shape, data, (size_t)t->n_elems * 4);
}

static void *idf2_layers(struct idf2_loader *ld, int n, size_t size)
{
    void *p = idf2_own(ld, (size_t)n * size, false);
    if (p)
        memset(p, 0, (size_t)n * size);
    return p;
}

#define VP "model.vision_model."

static enum vc_status idf2_load_vision(struct idf2_loader *ld, const struct idf2_vision_config *c)
{
    struct idf2_vision_weights *v = &ld->w->vision;
    int64_t D = c->hidden_size, I = c->intermediate_size, C = c->num_channels, p = c->patch_size;
    int64_t N = c->image_size / c->patch_size;
    int64_t pshape[4] = { D, C, p, p };
    VC_TRY(idf2_mat_shaped(ld, &v->patch, VP "embeddings.patch_embedding.weight", 0, 4, pshape, D,
                           C * p * p));
    VC_TRY(idf2_f32(ld, &v->patch_b, VP "embeddings.patch_embedding.bias", 0, D, 0));
    VC_TRY(idf2_f32(ld, &v->pos, VP "embeddings.position_embedding.weight", 0, N * N, D));
    v->layers = idf2_layers(ld, c->num_hidden_layers, sizeof *v->layers);
    if (!v->layers)
        return idf2_oom(ld, "vision layers");
    for (int i = 0; i < c->num_hidden_layers; i++) {
        struct idf2_vision_layer *l = &v->layers[i];
#define VL VP "encoder.layers.%d."
        VC_TRY(idf2_f32(ld, &l->ln1_w, VL "layer_norm1.weight", i, D, 0));
        VC_TRY(idf2_f32(ld, &l->ln1_b, VL "layer_norm1.bias", i, D, 0));
        VC_TRY(idf2_mat(ld, &l->q, VL "self_attn.q_proj.weight", i, D, D));
        VC_TRY(idf2_f32(ld, &l->q_b, VL "self_attn.q_proj.bias", i, D, 0));
        VC_TRY(idf2_mat(ld, &l->k, VL "self_attn.k_proj.weight", i, D, D));
        VC_TRY(idf2_f32(ld, &l->k_b, VL "self_attn.k_proj.bias", i, D, 0));
        VC_TRY(idf2_mat(ld, &l->v, VL "self_attn.v_proj.weight", i, D, D));
        VC_TRY(idf2_f32(ld, &l->v_b, VL "self_attn.v_proj.bias", i, D, 0));
        VC_TRY(idf2_mat(ld, &l->o, VL "self_attn.out_proj.weight", i, D, D));
        VC_TRY(idf2_f32(ld, &l->o_b, VL "self_attn.out_proj.bias", i, D, 0));
        VC_TRY(idf2_f32(ld, &l->ln2_w, VL "layer_norm2.weight", i, D, 0));
        VC_TRY(idf2_f32(ld, &l->ln2_b, VL "layer_norm2.bias", i, D, 0));
        VC_TRY(idf2_mat(ld, &l->fc1, VL "mlp.fc1.weight", i, I, D));
        VC_TRY(idf2_f32(ld, &l->fc1_b, VL "mlp.fc1.bias", i, I, 0));
        VC_TRY(idf2_mat(ld, &l->fc2, VL "mlp.fc2.weight", i, D, I));
        VC_TRY(idf2_f32(ld, &l->fc2_b, VL "mlp.fc2.bias", i, D, 0));
#undef VL
    }
    VC_TRY(idf2_f32(ld, &v->post_ln_w, VP "post_layernorm.weight", 0, D, 0));
    return idf2_f32(ld, &v->post_ln_b, VP "post_layernorm.bias", 0, D, 0);
}

#define CP "model.connector."

static enum vc_status idf2_load_connector(struct idf2_loader *ld, const struct idf2_model_config *m)
{
    struct idf2_connector_weights *c = &ld->w->connector;
    const struct idf2_perceiver_config *p = &m->perceiver;
    int64_t Dv = m->vision.hidden_size, Dt = m->text.hidden_size, It = m->text.intermediate_size;
    int64_t Q = (int64_t)p->n_heads * p->head_dim, KV = (int64_t)p->n_kv_heads * p->head_dim;
    VC_TRY(idf2_mat(ld, &c->mp_gate, CP "modality_projection.gate_proj.weight", 0, It, Dv));
    VC_TRY(idf2_mat(ld, &c->mp_up, CP "modality_projection.up_proj.weight", 0, It, Dv));
    VC_TRY(idf2_mat(ld, &c->mp_down, CP "modality_projection.down_proj.weight", 0, Dt, It));
    VC_TRY(idf2_f32(ld, &c->latents, CP "perceiver_resampler.latents", 0, p->n_latents, Dt));
    c->layers = idf2_layers(ld, p->depth, sizeof *c->layers);
    if (!c->layers)
        return idf2_oom(ld, "perceiver layers");
    for (int j = 0; j < p->depth; j++) {
        struct idf2_perceiver_layer *l = &c->layers[j];
#define PL CP "perceiver_resampler.layers.%d."
        VC_TRY(idf2_f32(ld, &l->latents_norm, PL "input_latents_norm.weight", j, Dt, 0));
        VC_TRY(idf2_f32(ld, &l->context_norm, PL "input_context_norm.weight", j, Dt, 0));
        VC_TRY(idf2_mat(ld, &l->q, PL "self_attn.q_proj.weight", j, Q, Dt));
        VC_TRY(idf2_mat(ld, &l->k, PL "self_attn.k_proj.weight", j, KV, Dt));
        VC_TRY(idf2_mat(ld, &l->v, PL "self_attn.v_proj.weight", j, KV, Dt));
        VC_TRY(idf2_mat(ld, &l->o, PL "self_attn.o_proj.weight", j, Dt, Q));
        VC_TRY(idf2_f32(ld, &l->post_attn_norm, PL "post_attention_layernorm.weight", j, Dt, 0));
        VC_TRY(idf2_mat(ld, &l->gate, PL "mlp.gate_proj.weight", j, 4 * Dt, Dt));
        VC_TRY(idf2_mat(ld, &l->up, PL "mlp.up_proj.weight", j, 4 * Dt, Dt));
        VC_TRY(idf2_mat(ld, &l->down, PL "mlp.down_proj.weight", j, Dt, 4 * Dt));
#undef PL
    }
    return idf2_f32(ld, &c->norm, CP "perceiver_resampler.norm.weight", 0, Dt, 0);
}

#define TP "model.text_model."

static enum vc_status idf2_load_text(struct idf2_loader *ld, const struct idf2_model_config *m)
{
    struct idf2_text_weights *t = &ld->w->text;
    const struct idf2_text_config *c = &m->text;
    int64_t V = c->vocab_size, D = c->hidden_size, I = c->intermediate_size;
    int64_t Q = (int64_t)c->num_attention_heads * c->head_dim;
    int64_t KV = (int64_t)c->num_key_value_heads * c->head_dim;
    VC_TRY(idf2_mat(ld, &t->embed, TP "embed_tokens.weight", 0, V, D));
    t->layers = idf2_layers(ld, c->num_hidden_layers, sizeof *t->layers);
    if (!t->layers)
        return idf2_oom(ld, "text layers");
    for (int i = 0; i < c->num_hidden_layers; i++) {
        struct idf2_text_layer *l = &t->layers[i];
#define TL TP "layers.%d."
        VC_TRY(idf2_f32(ld, &l->attn_norm, TL "input_layernorm.weight", i, D, 0));
        VC_TRY(idf2_mat(ld, &l->q, TL "self_attn.q_proj.weight", i, Q, D));
        VC_TRY(idf2_mat(ld, &l->k, TL "self_attn.k_proj.weight", i, KV, D));
        VC_TRY(idf2_mat(ld, &l->v, TL "self_attn.v_proj.weight", i, KV, D));
        VC_TRY(idf2_mat(ld, &l->o, TL "self_attn.o_proj.weight", i, D, Q));
        VC_TRY(idf2_f32(ld, &l->mlp_norm, TL "post_attention_layernorm.weight", i, D, 0));
        VC_TRY(idf2_mat(ld, &l->gate, TL "mlp.gate_proj.weight", i, I, D));
        VC_TRY(idf2_mat(ld, &l->up, TL "mlp.up_proj.weight", i, I, D));
        VC_TRY(idf2_mat(ld, &l->down, TL "mlp.down_proj.weight", i, D, I));
#undef TL
    }
    VC_TRY(idf2_f32(ld, &t->norm, TP "norm.weight", 0, D, 0));
    /* Tied models reuse the embedding as the head (HF ties the parameters,
     * so a stored lm_head is ignored there too). */
    if (m->tie_word_embeddings) {
        t->lm_head = t->embed;
        return VC_OK;
    }
    return idf2_mat(ld, &t->lm_head, "lm_head.weight", 0, V, D);
}

static struct idf2_weights *idf2_weights_new(enum st_dtype compute)
{
    struct idf2_weights *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    w->store = calloc(1, sizeof *w->store);
    if (!w->store) {
        free(w);
        return NULL;
    }
    w->compute = compute;
    return w;
}

/* Converted copies live in anonymous memory; Linux overcommits, so a load
 * that cannot fit would be OOM-killed halfway through a 34 GB conversion.
 * Refuse it up front instead, with the figures (an estimate: every
 * tensor of the set whose dtype differs is counted, at 4 bytes per element
 * unless it narrows to BF16). */
static enum vc_status idf2_fits_in_ram(const struct st_set *set, enum st_dtype compute,
                                       struct vc_err *err)
{
    size_t need = 0;
    for (size_t i = 0; i < st_set_count(set); i++) {
        const struct st_tensor *t = st_set_at(set, i);
        if (t->dtype != compute && t->dtype != ST_F32)
            need += (size_t)t->n_elems * 4; /* widened vectors, or converted matrices */
        else if (t->dtype != compute)
            need += (size_t)t->n_elems * st_dtype_size(compute);
    }
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    size_t ram = pages > 0 && page > 0 ? (size_t)pages * (size_t)page : 0;
    if (ram > 0 && need > ram)
        return vc_err_set(err, VC_EUSAGE, VC_REASON_out_of_memory,
                          "converting these weights to %s needs %.1f GiB, more than this "
                          "machine's %.1f GiB of RAM (compute in BF16 instead)",
                          st_dtype_name(compute), (double)need / (1u << 30),
                          (double)ram / (1u << 30));
    return VC_OK;
}

enum vc_status idf2_weights_from_set(const struct st_set *set, const struct idf2_model_config *cfg,
                                     enum st_dtype compute, struct idf2_weights **out,
                                     struct vc_err *err)
{
    *out = NULL;
    if (compute != ST_F32 && compute != ST_BF16)
        return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec,
                          "compute dtype must be F32 or BF16, not %s", st_dtype_name(compute));
    VC_TRY(idf2_fits_in_ram(set, compute, err));
    struct idf2_weights *w = idf2_weights_new(compute);
    if (!w)
        return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "no memory for the weights");
    struct idf2_loader ld = { .set = set, .compute = compute, .w = w, .err = err };
    enum vc_status rc = idf2_load_vision(&ld, &cfg->vision);
    if (rc >= 0)
        rc = idf2_load_connector(&ld, cfg);
    if (rc >= 0)
        rc = idf2_load_text(&ld, cfg);
    if (rc < 0) {
        idf2_weights_free(w);
        return rc;
    }
    *out = w;
    return VC_OK;
}

/* ---- cache ------------------------------------------------------------------- */

static bool idf2_mtime(const char *path, struct timespec *out)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return false;
    *out = st.st_mtim;
    return true;
}

static bool idf2_newer(struct timespec a, struct timespec b)
{
    return a.tv_sec > b.tv_sec || (a.tv_sec == b.tv_sec && a.tv_nsec > b.tv_nsec);
}

/* The cache is fresh when it is newer than config.json, the index and
 * every *.safetensors of the folder (a re-download of any of them
 * invalidates it). */
static bool idf2_cache_fresh(const char *dir, const char *cache_path)
{
    struct timespec cache, t;
    if (!idf2_mtime(cache_path, &cache))
        return false;
    DIR *d = opendir(dir);
    if (!d)
        return false;
    bool fresh = true;
    for (struct dirent *e; fresh && (e = readdir(d));) {
        size_t n = strlen(e->d_name);
        bool source =
            strcmp(e->d_name, "config.json") == 0 ||
            strcmp(e->d_name, "model.safetensors.index.json") == 0 ||
            (e->d_name[0] != '.' && n > 12 && strcmp(e->d_name + n - 12, ".safetensors") == 0);
        char path[4096];
        if (!source || (size_t)snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >= sizeof path)
            continue;
        fresh = idf2_mtime(path, &t) && idf2_newer(cache, t);
    }
    closedir(d);
    return fresh;
}

/* Writes every recorded tensor as one safetensors file, F32 ones first so
 * that with a 64-byte aligned data start every tensor is aligned to its
 * element size.  Best effort: returns false and leaves no file behind on
 * any failure. */
static bool idf2_cache_write(const struct idf2_weights_store *s, const char *path)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *meta = cJSON_AddObjectToObject(root, "__metadata__");
    cJSON_AddStringToObject(meta, "format", "pt");
    cJSON_AddStringToObject(meta, "writer", "vlmcurate bf16 cache");
    size_t off = 0;
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = 0; i < s->n_entries; i++) {
            const struct idf2_entry *e = &s->entries[i];
            if ((e->dtype == ST_F32) != (pass == 0))
                continue;
            cJSON *t = cJSON_AddObjectToObject(root, e->name);
            cJSON_AddStringToObject(t, "dtype", st_dtype_name(e->dtype));
            cJSON *shape = cJSON_AddArrayToObject(t, "shape");
            for (int d = 0; d < e->n_dims; d++)
                cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)e->shape[d]));
            /* Doubles hold these offsets exactly (below 2^53). */
            cJSON *offs = cJSON_AddArrayToObject(t, "data_offsets");
            cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)off));
            cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)(off + e->n_bytes)));
            off += e->n_bytes;
        }
    char *text = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (!text)
        return false;
    size_t len = strlen(text);
    size_t padded = (len + 8 + IDF2_ALIGN - 1) / IDF2_ALIGN * IDF2_ALIGN - 8;
    char *hdr = malloc(padded);
    if (!hdr) {
        free(text);
        return false;
    }
    memcpy(hdr, text, len);
    memset(hdr + len, ' ', padded - len);
    free(text);
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    bool ok = fd >= 0;
    unsigned char lenbuf[8];
    for (int i = 0; i < 8; i++)
        lenbuf[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    ok = ok && vc_fs_write_all(fd, lenbuf, 8) && vc_fs_write_all(fd, hdr, padded);
    for (int pass = 0; ok && pass < 2; pass++)
        for (size_t i = 0; ok && i < s->n_entries; i++)
            if ((s->entries[i].dtype == ST_F32) == (pass == 0))
                ok = vc_fs_write_all(fd, s->entries[i].data, s->entries[i].n_bytes);
    free(hdr);
    return vc_fs_finish_tmp(fd, tmp, path, ok);
}

enum vc_status idf2_weights_load(const char *dir, const struct idf2_model_config *cfg,
                                 const struct idf2_weights_opts *opts, struct idf2_weights **out,
                                 struct vc_err *err)
{
    *out = NULL;
    char cache_path[4096];
    if ((size_t)snprintf(cache_path, sizeof cache_path, "%s/%s", dir, IDF2_CACHE_NAME) >=
        sizeof cache_path)
        return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_checkpoint, "path too long: %s", dir);
    bool use_cache = opts->cache == IDF2_CACHE_USE && opts->compute == ST_BF16;
    struct st_set *set = NULL;
    enum vc_status rc;
    if (use_cache && idf2_cache_fresh(dir, cache_path)) {
        struct vc_err cache_err;
        if (st_set_open_file(cache_path, &set, &cache_err) >= 0 &&
            idf2_weights_from_set(set, cfg, ST_BF16, out, &cache_err) >= 0) {
            (*out)->store->set = set;
            (*out)->from_cache = 1;
            return VC_OK;
        }
        /* A stale or damaged cache is only a missed shortcut. */
        st_set_close(set);
        set = NULL;
    }
    rc = st_set_open(dir, &set, err);
    if (rc < 0)
        return rc;
    rc = idf2_weights_from_set(set, cfg, opts->compute, out, err);
    if (rc < 0) {
        st_set_close(set);
        return rc;
    }
    (*out)->store->set = set;
    /* Only a conversion is worth caching: a bf16 checkpoint maps as is. */
    size_t converted_matrices = 0;
    const struct idf2_weights_store *s = (*out)->store;
    for (size_t i = 0; i < s->n_entries; i++) {
        const struct st_tensor *t = st_set_find(set, s->entries[i].name);
        if (s->entries[i].dtype == ST_BF16 && t && t->dtype != ST_BF16)
            converted_matrices += s->entries[i].n_bytes;
    }
    if (use_cache && converted_matrices > 0)
        (*out)->cache_written = idf2_cache_write(s, cache_path);
    return VC_OK;
}

void idf2_weights_free(struct idf2_weights *w)
{
    if (!w)
        return;
    if (w->store) {
        for (size_t i = 0; i < w->store->n_bufs; i++)
            free(w->store->bufs[i]);
        free(w->store->bufs);
        free(w->store->entries);
        st_set_close(w->store->set);
        free(w->store);
    }
    free(w);
}

size_t idf2_weights_text_mats(struct idf2_weights *w, const struct idf2_model_config *cfg,
                              struct idf2_w **out)
{
    size_t n = 0;
    for (int l = 0; l < cfg->text.num_hidden_layers; l++) {
        struct idf2_text_layer *t = &w->text.layers[l];
        struct idf2_w *m[] = { &t->q, &t->k, &t->v, &t->o, &t->gate, &t->up, &t->down };
        for (size_t i = 0; i < sizeof m / sizeof m[0]; i++, n++)
            if (out)
                out[n] = m[i];
    }
    if (out)
        out[n] = &w->text.lm_head;
    return n + 1;
}

size_t idf2_weights_image_mats(struct idf2_weights *w, const struct idf2_model_config *cfg,
                               struct idf2_w **out)
{
    size_t n = 0;
    struct idf2_connector_weights *c = &w->connector;
    struct idf2_w *top[] = { &w->vision.patch, &c->mp_gate, &c->mp_up, &c->mp_down };
    for (size_t i = 0; i < sizeof top / sizeof top[0]; i++, n++)
        if (out)
            out[n] = top[i];
    for (int l = 0; l < cfg->vision.num_hidden_layers; l++) {
        struct idf2_vision_layer *v = &w->vision.layers[l];
        struct idf2_w *m[] = { &v->q, &v->k, &v->v, &v->o, &v->fc1, &v->fc2 };
        for (size_t i = 0; i < sizeof m / sizeof m[0]; i++, n++)
            if (out)
                out[n] = m[i];
    }
    for (int l = 0; l < cfg->perceiver.depth; l++) {
        struct idf2_perceiver_layer *p = &c->layers[l];
        struct idf2_w *m[] = { &p->q, &p->k, &p->v, &p->o, &p->gate, &p->up, &p->down };
        for (size_t i = 0; i < sizeof m / sizeof m[0]; i++, n++)
            if (out)
                out[n] = m[i];
    }
    return n;
}

bool idf2_weights_owns(const struct idf2_weights *w, const void *p)
{
    for (size_t i = 0; w->store && i < w->store->n_bufs; i++)
        if (w->store->bufs[i] == p)
            return true;
    return false;
}

size_t idf2_peak_rss_bytes(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return 0;
    return (size_t)ru.ru_maxrss * 1024; /* Linux reports KiB */
}

size_t idf2_rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f)
        return 0;
    unsigned long size = 0, resident = 0;
    int n = fscanf(f, "%lu %lu", &size, &resident);
    fclose(f);
    long page = sysconf(_SC_PAGESIZE);
    return n == 2 && page > 0 ? (size_t)resident * (size_t)page : 0;
}
