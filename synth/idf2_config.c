/* idf2_config: reads the JSON configuration files of a checkpoint folder
 * into plain structs, applying the transformers class defaults and
 * refusing values no real model has (limits in idf2_config.h).  Unknown keys
 * are ignored (configs carry many training-only fields); known keys of the
 * wrong type are errors that name the key. */
#include "idf2_config.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/vc_fs.h"
#include "core/vc_mem.h"

/* The 8B config.json is 684 bytes and its tokenizer_config.json ~2 KB
 * (newer ones inline every added token and a long template, ~50 KB). */
#define IDF2_MAX_CONFIG_BYTES      (1u << 20)
#define IDF2_MAX_TOK_CONFIG_BYTES  (16u << 20)
#define IDF2_MAX_CHAT_TEMPLATE_LEN (1u << 20)
/* 4096 latent tokens per image would be 64x the released model. */
#define IDF2_MAX_IMAGE_SEQ_LEN 4096

struct idf2_json_ctx {
    const char *label; /* file name, for messages */
    struct vc_err *err;
};

static enum vc_status idf2_bad(const struct idf2_json_ctx *c, const char *key, const char *what)
{
    return vc_err_set(c->err, VC_EUSAGE, VC_REASON_bad_checkpoint, "%s: \"%s\" %s", c->label, key,
                      what);
}

/* An item that is absent or JSON null counts as "not given". */
static const cJSON *idf2_get(const cJSON *obj, const char *key)
{
    const cJSON *it = cJSON_IsObject(obj) ? cJSON_GetObjectItemCaseSensitive(obj, key) : NULL;
    return cJSON_IsNull(it) ? NULL : it;
}

/* Reads an integer in [lo, hi] into *out (untouched when absent). */
static enum vc_status idf2_int(const struct idf2_json_ctx *c, const cJSON *obj, const char *key,
                               long lo, long hi, int *out)
{
    const cJSON *it = idf2_get(obj, key);
    if (!it)
        return VC_OK;
    double v = cJSON_IsNumber(it) ? it->valuedouble : NAN;
    if (!(v == floor(v)))
        return idf2_bad(c, key, "is not an integer");
    if (v < (double)lo || v > (double)hi) {
        char what[96];
        snprintf(what, sizeof what, "is out of range [%ld, %ld]", lo, hi);
        return idf2_bad(c, key, what);
    }
    *out = (int)v;
    return VC_OK;
}

/* A real number in (lo, hi) exclusive (the epsilons, theta, factors). */
static enum vc_status idf2_real(const struct idf2_json_ctx *c, const cJSON *obj, const char *key,
                                double lo, double hi, double *out)
{
    const cJSON *it = idf2_get(obj, key);
    if (!it)
        return VC_OK;
    if (!cJSON_IsNumber(it))
        return idf2_bad(c, key, "is not a number");
    if (!(it->valuedouble > lo && it->valuedouble < hi))
        return idf2_bad(c, key, "is out of range");
    *out = it->valuedouble;
    return VC_OK;
}

static enum vc_status idf2_bool(const struct idf2_json_ctx *c, const cJSON *obj, const char *key,
                                bool *out)
{
    const cJSON *it = idf2_get(obj, key);
    if (!it)
        return VC_OK;
    if (!cJSON_IsBool(it))
        return idf2_bad(c, key, "is not true or false");
    *out = cJSON_IsTrue(it);
    return VC_OK;
}

static enum vc_status idf2_act_parse(const struct idf2_json_ctx *c, const cJSON *obj,
                                     const char *key, enum idf2_act *out)
{
    static const struct {
        const char *name;
        enum idf2_act act;
    } acts[] = {
        { "silu", IDF2_ACT_SILU },
        { "swish", IDF2_ACT_SILU },
        { "gelu_pytorch_tanh", IDF2_ACT_GELU_TANH },
        { "gelu_new", IDF2_ACT_GELU_TANH },
        { "gelu_fast", IDF2_ACT_GELU_TANH },
        { "gelu", IDF2_ACT_GELU },
    };
    const cJSON *it = idf2_get(obj, key);
    if (!it)
        return VC_OK;
    if (cJSON_IsString(it))
        for (size_t i = 0; i < sizeof acts / sizeof acts[0]; i++)
            if (strcmp(it->valuestring, acts[i].name) == 0) {
                *out = acts[i].act;
                return VC_OK;
            }
    return idf2_bad(c, key, "is not a supported activation (silu, gelu, gelu_pytorch_tanh)");
}

const char *idf2_act_name(enum idf2_act act)
{
    switch (act) {
    case IDF2_ACT_SILU:
        return "silu";
    case IDF2_ACT_GELU_TANH:
        return "gelu_pytorch_tanh";
    case IDF2_ACT_GELU:
        return "gelu";
    }
    return "unknown";
}

static const cJSON *idf2_sub(const struct idf2_json_ctx *c, const cJSON *root, const char *key,
                             enum vc_status *rc)
{
    const cJSON *it = idf2_get(root, key);
    if (it && !cJSON_IsObject(it))
        *rc = idf2_bad(c, key, "is not an object");
    return it;
}

void idf2_config_model_defaults(struct idf2_model_config *m)
{
    memset(m, 0, sizeof *m);
    m->vision = (struct idf2_vision_config){
        .hidden_size = 768,
        .intermediate_size = 3072,
        .num_hidden_layers = 12,
        .num_attention_heads = 12,
        .num_channels = 3,
        .image_size = 224,
        .patch_size = 32,
        .hidden_act = IDF2_ACT_GELU_TANH,
        .layer_norm_eps = 1e-6,
    };
    m->text = (struct idf2_text_config){
        .vocab_size = 32000,
        .hidden_size = 4096,
        .intermediate_size = 14336,
        .num_hidden_layers = 32,
        .num_attention_heads = 32,
        .num_key_value_heads = 8,
        .head_dim = 0, /* Dt / Ht, resolved after parsing */
        .hidden_act = IDF2_ACT_SILU,
        .rms_norm_eps = 1e-6,
        .rope_theta = 10000.0,
        .max_position_embeddings = 131072,
        .sliding_window = 4096,
    };
    m->perceiver = (struct idf2_perceiver_config){
        .hidden_size = 4096,
        .n_latents = 64,
        .depth = 3,
        .n_heads = 16,
        .head_dim = 96,
        .n_kv_heads = 4,
        .hidden_act = IDF2_ACT_SILU,
        .rms_norm_eps = 1e-6,
    };
    m->image_token_id = 32001;
    m->tie_word_embeddings = false;
}

#define IDF2_W  IDF2_MAX_WIDTH
#define IDF2_L  IDF2_MAX_LAYERS
#define IDF2_HD IDF2_MAX_HEADS

static enum vc_status idf2_parse_vision(const struct idf2_json_ctx *c, const cJSON *v,
                                        struct idf2_vision_config *o)
{
    VC_TRY(idf2_int(c, v, "hidden_size", 1, IDF2_W, &o->hidden_size));
    VC_TRY(idf2_int(c, v, "intermediate_size", 1, IDF2_W * 8L, &o->intermediate_size));
    VC_TRY(idf2_int(c, v, "num_hidden_layers", 1, IDF2_L, &o->num_hidden_layers));
    VC_TRY(idf2_int(c, v, "num_attention_heads", 1, IDF2_HD, &o->num_attention_heads));
    VC_TRY(idf2_int(c, v, "num_channels", 3, 3, &o->num_channels));
    VC_TRY(idf2_int(c, v, "image_size", 1, IDF2_MAX_IMAGE_SIZE, &o->image_size));
    VC_TRY(idf2_int(c, v, "patch_size", 1, IDF2_MAX_IMAGE_SIZE, &o->patch_size));
    VC_TRY(idf2_act_parse(c, v, "hidden_act", &o->hidden_act));
    VC_TRY(idf2_real(c, v, "layer_norm_eps", 0.0, 1.0, &o->layer_norm_eps));
    if (o->hidden_size % o->num_attention_heads != 0)
        return idf2_bad(c, "vision_config.hidden_size", "is not a multiple of num_attention_heads");
    if (o->patch_size > o->image_size)
        return idf2_bad(c, "vision_config.patch_size", "is larger than image_size");
    return VC_OK;
}

/* RoPE: "rope_theta" (transformers 4.x) or "rope_parameters" (5.x); only
 * the default rotary embedding is specified (SPEC §1.3). */
static enum vc_status idf2_parse_rope(const struct idf2_json_ctx *c, const cJSON *t,
                                      struct idf2_text_config *o)
{
    VC_TRY(idf2_real(c, t, "rope_theta", 0.0, 1e12, &o->rope_theta));
    const char *names[] = { "rope_parameters", "rope_scaling" };
    for (size_t i = 0; i < 2; i++) {
        const cJSON *rp = idf2_get(t, names[i]);
        if (!rp)
            continue;
        if (!cJSON_IsObject(rp))
            return idf2_bad(c, names[i], "is not an object");
        const cJSON *type = idf2_get(rp, "rope_type");
        if (!type)
            type = idf2_get(rp, "type");
        if (type && (!cJSON_IsString(type) || strcmp(type->valuestring, "default") != 0))
            return idf2_bad(c, names[i], "asks for a RoPE variant other than \"default\"");
        if (!type && i == 1)
            return idf2_bad(c, names[i], "has no rope_type (only \"default\" is supported)");
        VC_TRY(idf2_real(c, rp, "rope_theta", 0.0, 1e12, &o->rope_theta));
    }
    return VC_OK;
}

static enum vc_status idf2_parse_text(const struct idf2_json_ctx *c, const cJSON *t,
                                      struct idf2_text_config *o)
{
    /* Idefics2Config builds a config without text_config (absent or null)
     * with these two set apart from MistralConfig's own defaults. */
    if (!t) {
        o->rms_norm_eps = 1e-5;
        o->max_position_embeddings = 32768;
    }
    const cJSON *mt = idf2_get(t, "model_type");
    if (mt && (!cJSON_IsString(mt) || strcmp(mt->valuestring, "mistral") != 0))
        return idf2_bad(c, "text_config.model_type", "is not \"mistral\"");
    VC_TRY(idf2_int(c, t, "vocab_size", 1, IDF2_MAX_VOCAB, &o->vocab_size));
    VC_TRY(idf2_int(c, t, "hidden_size", 1, IDF2_W, &o->hidden_size));
    VC_TRY(idf2_int(c, t, "intermediate_size", 1, IDF2_W * 8L, &o->intermediate_size));
    VC_TRY(idf2_int(c, t, "num_hidden_layers", 1, IDF2_L, &o->num_hidden_layers));
    VC_TRY(idf2_int(c, t, "num_attention_heads", 1, IDF2_HD, &o->num_attention_heads));
    VC_TRY(idf2_int(c, t, "num_key_value_heads", 1, IDF2_HD, &o->num_key_value_heads));
    VC_TRY(idf2_int(c, t, "head_dim", 2, IDF2_W, &o->head_dim));
    VC_TRY(idf2_act_parse(c, t, "hidden_act", &o->hidden_act));
    VC_TRY(idf2_real(c, t, "rms_norm_eps", 0.0, 1.0, &o->rms_norm_eps));
    VC_TRY(idf2_parse_rope(c, t, o));
    VC_TRY(idf2_int(c, t, "max_position_embeddings", 1, 1L << 30, &o->max_position_embeddings));
    const cJSON *sw =
        cJSON_IsObject(t) ? cJSON_GetObjectItemCaseSensitive(t, "sliding_window") : NULL;
    if (cJSON_IsNull(sw))
        o->sliding_window = 0;
    else
        VC_TRY(idf2_int(c, t, "sliding_window", 1, 1L << 30, &o->sliding_window));
    if (o->head_dim == 0) {
        if (o->hidden_size % o->num_attention_heads != 0)
            return idf2_bad(c, "text_config.hidden_size",
                            "is not a multiple of num_attention_heads (and head_dim is absent)");
        o->head_dim = o->hidden_size / o->num_attention_heads;
    }
    if (o->head_dim % 2 != 0)
        return idf2_bad(c, "text_config.head_dim", "is odd (RoPE rotates pairs)");
    if ((long)o->head_dim * o->num_attention_heads > IDF2_W)
        return idf2_bad(c, "text_config.head_dim", "times num_attention_heads is absurd");
    if (o->num_attention_heads % o->num_key_value_heads != 0)
        return idf2_bad(c, "text_config.num_key_value_heads",
                        "does not divide num_attention_heads");
    return VC_OK;
}

static enum vc_status idf2_parse_perceiver(const struct idf2_json_ctx *c, const cJSON *p,
                                           const struct idf2_text_config *text,
                                           struct idf2_perceiver_config *o)
{
    VC_TRY(idf2_int(c, p, "hidden_size", 1, IDF2_W, &o->hidden_size));
    VC_TRY(idf2_int(c, p, "resampler_n_latents", 1, IDF2_MAX_IMAGE_SEQ_LEN, &o->n_latents));
    VC_TRY(idf2_int(c, p, "resampler_depth", 1, IDF2_L, &o->depth));
    VC_TRY(idf2_int(c, p, "resampler_n_heads", 1, IDF2_HD, &o->n_heads));
    VC_TRY(idf2_int(c, p, "resampler_head_dim", 1, IDF2_W, &o->head_dim));
    VC_TRY(idf2_int(c, p, "num_key_value_heads", 1, IDF2_HD, &o->n_kv_heads));
    VC_TRY(idf2_act_parse(c, p, "hidden_act", &o->hidden_act));
    /* Release behaviour (SPEC §1.3): the perceiver's own epsilon when the
     * file gives one, the text epsilon otherwise; width is always Dt. */
    o->rms_norm_eps = text->rms_norm_eps;
    VC_TRY(idf2_real(c, p, "rms_norm_eps", 0.0, 1.0, &o->rms_norm_eps));
    o->hidden_size = text->hidden_size;
    if (o->n_heads % o->n_kv_heads != 0)
        return idf2_bad(c, "perceiver_config.num_key_value_heads",
                        "does not divide resampler_n_heads");
    if ((long)o->n_heads * o->head_dim > IDF2_W)
        return idf2_bad(c, "perceiver_config.resampler_head_dim", "times n_heads is absurd");
    return VC_OK;
}

static enum vc_status idf2_parse_root(const char *json, const char *label, struct vc_err *err,
                                      cJSON **root)
{
    *root = cJSON_Parse(json);
    if (!*root || !cJSON_IsObject(*root)) {
        cJSON_Delete(*root);
        *root = NULL;
        return vc_err_set(err, VC_EUSAGE, VC_REASON_json_invalid, "%s: not a JSON object", label);
    }
    return VC_OK;
}

enum vc_status idf2_config_parse_model(const char *json, const char *label,
                                       struct idf2_model_config *out, struct vc_err *err)
{
    idf2_config_model_defaults(out);
    struct idf2_json_ctx c = { label, err };
    cJSON *root;
    VC_TRY(idf2_parse_root(json, label, err, &root));
    enum vc_status rc = VC_OK;
    const cJSON *mt = idf2_get(root, "model_type");
    if (mt && (!cJSON_IsString(mt) || strcmp(mt->valuestring, "idefics2") != 0))
        rc = idf2_bad(&c, "model_type", "is not \"idefics2\"");
    const cJSON *vis = idf2_sub(&c, root, "vision_config", &rc);
    const cJSON *txt = idf2_sub(&c, root, "text_config", &rc);
    const cJSON *per = idf2_sub(&c, root, "perceiver_config", &rc);
    /* "torch_dtype" (4.x) and "dtype" (5.x) only describe the storage; the
     * safetensors headers are authoritative.  Still, a non-string is a
     * broken file. */
    const cJSON *dt = idf2_get(root, "torch_dtype");
    if (!dt)
        dt = idf2_get(root, "dtype");
    if (rc >= 0 && dt && !cJSON_IsString(dt))
        rc = idf2_bad(&c, "torch_dtype", "is not a string");
    if (rc >= 0)
        rc = idf2_parse_vision(&c, vis, &out->vision);
    if (rc >= 0)
        rc = idf2_parse_text(&c, txt, &out->text);
    if (rc >= 0)
        rc = idf2_parse_perceiver(&c, per, &out->text, &out->perceiver);
    if (rc >= 0) {
        /* Newer files may carry tie_word_embeddings inside text_config. */
        rc = idf2_bool(&c, txt, "tie_word_embeddings", &out->tie_word_embeddings);
        if (rc >= 0)
            rc = idf2_bool(&c, root, "tie_word_embeddings", &out->tie_word_embeddings);
    }
    if (rc >= 0) {
        rc = idf2_int(&c, root, "image_token_index", 0, IDF2_MAX_VOCAB, &out->image_token_id);
        if (rc >= 0)
            rc = idf2_int(&c, root, "image_token_id", 0, IDF2_MAX_VOCAB, &out->image_token_id);
    }
    cJSON_Delete(root);
    return rc;
}

/* ---- generation_config.json ------------------------------------------------ */

static enum vc_status idf2_id_list(const struct idf2_json_ctx *c, const cJSON *it, const char *key,
                                   int max, int *ids, int *n)
{
    if (cJSON_IsNumber(it)) {
        double v = it->valuedouble;
        if (!(v == floor(v)) || v < 0 || v >= IDF2_MAX_VOCAB)
            return idf2_bad(c, key, "is not a token id");
        ids[0] = (int)v;
        *n = 1;
        return VC_OK;
    }
    if (!cJSON_IsArray(it))
        return idf2_bad(c, key, "is not a token id or a list of them");
    int k = 0;
    for (const cJSON *e = it->child; e; e = e->next) {
        if (k == max)
            return idf2_bad(c, key, "lists too many ids");
        double v = cJSON_IsNumber(e) ? e->valuedouble : -1;
        if (!(v == floor(v)) || v < 0 || v >= IDF2_MAX_VOCAB)
            return idf2_bad(c, key, "contains something that is not a token id");
        ids[k++] = (int)v;
    }
    *n = k;
    return VC_OK;
}

enum vc_status idf2_config_parse_generation(const char *json, const char *label,
                                            struct idf2_generation_config *out, struct vc_err *err)
{
    memset(out, 0, sizeof *out);
    out->bos_token_id = 1;
    out->pad_token_id = 0;
    out->n_eos = 1;
    out->eos_token_ids[0] = 2;
    struct idf2_json_ctx c = { label, err };
    cJSON *root;
    VC_TRY(idf2_parse_root(json, label, err, &root));
    enum vc_status rc =
        idf2_int(&c, root, "bos_token_id", 0, IDF2_MAX_VOCAB - 1, &out->bos_token_id);
    const cJSON *pad = cJSON_GetObjectItemCaseSensitive(root, "pad_token_id");
    if (rc >= 0 && cJSON_IsNull(pad))
        out->pad_token_id = -1;
    else if (rc >= 0)
        rc = idf2_int(&c, root, "pad_token_id", 0, IDF2_MAX_VOCAB - 1, &out->pad_token_id);
    const cJSON *eos = idf2_get(root, "eos_token_id");
    if (rc >= 0 && eos)
        rc = idf2_id_list(&c, eos, "eos_token_id", IDF2_MAX_EOS, out->eos_token_ids, &out->n_eos);
    const cJSON *bad = idf2_get(root, "bad_words_ids");
    if (rc >= 0 && bad) {
        if (!cJSON_IsArray(bad))
            rc = idf2_bad(&c, "bad_words_ids", "is not a list of lists");
        for (const cJSON *w = bad ? bad->child : NULL; rc >= 0 && w; w = w->next) {
            int k = out->n_bad_words;
            if (k == IDF2_MAX_BAD_WORDS) {
                rc = idf2_bad(&c, "bad_words_ids", "lists too many words");
                break;
            }
            if (!cJSON_IsArray(w) || cJSON_GetArraySize(w) == 0)
                rc = idf2_bad(&c, "bad_words_ids", "has an entry that is not a non-empty list");
            else
                rc = idf2_id_list(&c, w, "bad_words_ids", IDF2_MAX_BAD_WORD_LEN,
                                  out->bad_words_ids[k], &out->bad_word_len[k]);
            out->n_bad_words++;
        }
    }
    if (rc >= 0)
        rc = idf2_int(&c, root, "max_new_tokens", 1, 1L << 30, &out->max_new_tokens);
    cJSON_Delete(root);
    return rc;
}

/* ---- preprocessor_config.json ---------------------------------------------- */

static enum vc_status idf2_triple(const struct idf2_json_ctx *c, const cJSON *root, const char *key,
                                  bool positive, double out[3])
{
    const cJSON *it = idf2_get(root, key);
    if (!it)
        return VC_OK;
    if (cJSON_IsNumber(it)) {
        out[0] = out[1] = out[2] = it->valuedouble;
    } else if (cJSON_IsArray(it) && cJSON_GetArraySize(it) == 3) {
        int k = 0;
        for (const cJSON *e = it->child; e; e = e->next) {
            if (!cJSON_IsNumber(e))
                return idf2_bad(c, key, "is not a list of 3 numbers");
            out[k++] = e->valuedouble;
        }
    } else {
        return idf2_bad(c, key, "is not a number or a list of 3 numbers");
    }
    for (int k = 0; k < 3; k++)
        if (!isfinite(out[k]) || (positive && !(out[k] > 0)))
            return idf2_bad(c, key, positive ? "must be positive" : "must be finite");
    return VC_OK;
}

enum vc_status idf2_config_parse_preproc(const char *json, const char *label,
                                         struct idf2_preproc_config *out, struct vc_err *err)
{
    *out = (struct idf2_preproc_config){
        .do_convert_rgb = true,
        .do_resize = true,
        .do_rescale = true,
        .do_normalize = true,
        .do_pad = true,
        .do_image_splitting = false,
        .longest_edge = 980,
        .shortest_edge = 378,
        .resample = 2,
        .rescale_factor = 1.0 / 255.0,
        .image_mean = { 0.5, 0.5, 0.5 },
        .image_std = { 0.5, 0.5, 0.5 },
    };
    struct idf2_json_ctx c = { label, err };
    cJSON *root;
    VC_TRY(idf2_parse_root(json, label, err, &root));
    enum vc_status rc = VC_OK;
    const char *flags[] = { "do_convert_rgb", "do_resize", "do_rescale",
                            "do_normalize",   "do_pad",    "do_image_splitting" };
    bool *dst[] = { &out->do_convert_rgb, &out->do_resize, &out->do_rescale,
                    &out->do_normalize,   &out->do_pad,    &out->do_image_splitting };
    for (size_t i = 0; i < 6 && rc >= 0; i++)
        rc = idf2_bool(&c, root, flags[i], dst[i]);
    const cJSON *size = rc >= 0 ? idf2_sub(&c, root, "size", &rc) : NULL;
    if (rc >= 0 && size) {
        if (!idf2_get(size, "longest_edge") || !idf2_get(size, "shortest_edge"))
            rc = idf2_bad(&c, "size", "needs longest_edge and shortest_edge");
        if (rc >= 0)
            rc = idf2_int(&c, size, "longest_edge", 1, IDF2_MAX_IMAGE_SIZE, &out->longest_edge);
        if (rc >= 0)
            rc = idf2_int(&c, size, "shortest_edge", 1, IDF2_MAX_IMAGE_SIZE, &out->shortest_edge);
        if (rc >= 0 && out->shortest_edge > out->longest_edge)
            rc = idf2_bad(&c, "size", "has shortest_edge above longest_edge");
    }
    if (rc >= 0)
        rc = idf2_int(&c, root, "resample", 2, 2, &out->resample);
    if (rc >= 0)
        rc = idf2_real(&c, root, "rescale_factor", 0.0, 1e6, &out->rescale_factor);
    if (rc >= 0)
        rc = idf2_triple(&c, root, "image_mean", false, out->image_mean);
    if (rc >= 0)
        rc = idf2_triple(&c, root, "image_std", true, out->image_std);
    cJSON_Delete(root);
    return rc;
}

/* ---- processor_config.json / tokenizer_config.json -------------------------- */

void idf2_config_processor_defaults(struct idf2_processor_config *out)
{
    *out = (struct idf2_processor_config){
        .image_seq_len = 64,
        .add_bos_token = true,
        .add_eos_token = false,
        .chat_template = NULL,
    };
}

/* chat_template is a string, or (tokenizer_config of some uploads) a list
 * of {"name", "template"} of which "default" is the one to use. */
static const char *idf2_template_text(const cJSON *it)
{
    if (cJSON_IsString(it))
        return it->valuestring;
    if (!cJSON_IsArray(it))
        return NULL;
    for (const cJSON *e = it->child; e; e = e->next) {
        const cJSON *name = idf2_get(e, "name"), *tpl = idf2_get(e, "template");
        if (cJSON_IsString(name) && strcmp(name->valuestring, "default") == 0 &&
            cJSON_IsString(tpl))
            return tpl->valuestring;
    }
    return NULL;
}

static enum vc_status idf2_take_template(const struct idf2_json_ctx *c, const char *text,
                                         struct idf2_processor_config *out)
{
    if (strlen(text) > IDF2_MAX_CHAT_TEMPLATE_LEN)
        return idf2_bad(c, "chat_template", "is longer than 1 MB");
    if (!(out->chat_template = vc_strdup(text)))
        return vc_err_set(c->err, VC_EFATAL, VC_REASON_out_of_memory, "%s: no memory", c->label);
    return VC_OK;
}

enum vc_status idf2_config_parse_processor(const char *json, const char *label,
                                           struct idf2_processor_config *out, struct vc_err *err)
{
    struct idf2_json_ctx c = { label, err };
    cJSON *root;
    VC_TRY(idf2_parse_root(json, label, err, &root));
    enum vc_status rc =
        idf2_int(&c, root, "image_seq_len", 1, IDF2_MAX_IMAGE_SEQ_LEN, &out->image_seq_len);
    if (rc >= 0)
        rc = idf2_bool(&c, root, "add_bos_token", &out->add_bos_token);
    if (rc >= 0)
        rc = idf2_bool(&c, root, "add_eos_token", &out->add_eos_token);
    if (rc >= 0)
        rc =
            idf2_bool(&c, root, "clean_up_tokenization_spaces", &out->clean_up_tokenization_spaces);
    /* LlamaTokenizerFast given add_prefix_space (true or false; null is
     * "not given") rebuilds itself from tokenizer.model through its
     * sentencepiece converter and drops tokenizer.json; vlmcurate encodes
     * with tokenizer.json only, so its ids could differ. */
    const cJSON *aps = idf2_get(root, "add_prefix_space");
    if (rc >= 0 && cJSON_IsBool(aps))
        rc = idf2_bad(&c, "add_prefix_space",
                      "is set: transformers then rebuilds the tokenizer from tokenizer.model "
                      "(sentencepiece) instead of tokenizer.json, which is the only one vlmcurate "
                      "reads; remove the key (or set it to null) to tokenize as tokenizer.json "
                      "does");
    const cJSON *tpl = idf2_get(root, "chat_template");
    if (rc >= 0 && tpl && !out->chat_template) {
        const char *text = idf2_template_text(tpl);
        if (!text)
            rc = idf2_bad(&c, "chat_template", "is neither a string nor a list with \"default\"");
        else
            rc = idf2_take_template(&c, text, out);
    }
    cJSON_Delete(root);
    return rc;
}

/* ---- the folder ---------------------------------------------------------------- */

/* Reads <dir>/<name>; *json is NULL (and VC_OK) when the file is optional
 * and absent. */
static enum vc_status idf2_read_json(const char *dir, const char *name, size_t cap, bool required,
                                     char **json, struct vc_err *err)
{
    *json = NULL;
    char path[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, name) >= sizeof path)
        return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_checkpoint, "path too long: %s", dir);
    if (!vc_fs_exists(path)) {
        if (!required)
            return VC_OK;
        return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_checkpoint, "%s: no %s", dir, name);
    }
    size_t len;
    struct vc_err why = { 0 };
    if (vc_fs_read_file(path, cap, json, &len, &why) < 0)
        return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_checkpoint, "%s: cannot read %s: %s", dir,
                          name, why.msg);
    return VC_OK;
}

/* The ids every prompt starts with (bos) or is padded with must exist in
 * the vocabulary, and the image_seq_len a file gives (seq_given), or else
 * the processor's default, must be the perceiver's latent count.  Stop and
 * banned ids need not: a base checkpoint's vocabulary may leave out the
 * chat's <end_of_utterance> that its generation and tokenizer files still
 * name (idefics2-8b-base: vocab_size 32002, <end_of_utterance> 32002), and
 * an id the head cannot produce never stops or needs banning (transformers
 * loads such a folder too). */
static enum vc_status idf2_check_ids(const struct idf2_config *cfg, bool seq_given,
                                     struct vc_err *err)
{
    int v = cfg->model.text.vocab_size;
    const struct idf2_generation_config *g = &cfg->gen;
    if (g->bos_token_id >= v || g->pad_token_id >= v)
        return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_checkpoint,
                          "generation_config.json: bos_token_id %d or pad_token_id %d is not "
                          "below vocab_size %d",
                          g->bos_token_id, g->pad_token_id, v);
    if (cfg->proc.image_seq_len != cfg->model.perceiver.n_latents)
        return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_checkpoint,
                          "%s image_seq_len %d differs from the perceiver's %d latents",
                          seq_given ? "processor_config.json:"
                                    : "no processor_config.json gives image_seq_len; the "
                                      "processor's default",
                          cfg->proc.image_seq_len, cfg->model.perceiver.n_latents);
    return VC_OK;
}

enum vc_status idf2_config_load_dir(const char *dir, struct idf2_config *cfg, struct vc_err *err)
{
    memset(cfg, 0, sizeof *cfg);
    idf2_config_processor_defaults(&cfg->proc);
    /* 0 until a file gives it, so that a mismatch can say where it came from. */
    const int default_seq_len = cfg->proc.image_seq_len;
    cfg->proc.image_seq_len = 0;
    /* The chat template: the first of chat_template.jinja (transformers
     * 4.5x saves it there as is), chat_template.json (4.43+), then the
     * processor's and the tokenizer's configs, as transformers' processor
     * takes it. */
    static const char *const files[] = {
        "config.json",          "generation_config.json", "preprocessor_config.json",
        "chat_template.jinja",  "chat_template.json",     "processor_config.json",
        "tokenizer_config.json"
    };
    const size_t n_files = sizeof files / sizeof files[0];
    enum vc_status rc = VC_OK;
    for (size_t i = 0; i < n_files && rc >= 0; i++) {
        char *json;
        rc = idf2_read_json(dir, files[i],
                            i == n_files - 1 ? IDF2_MAX_TOK_CONFIG_BYTES : IDF2_MAX_CONFIG_BYTES,
                            i == 0, &json, err);
        if (rc < 0)
            break;
        const char *text = json ? json : "{}";
        switch (i) {
        case 0:
            rc = idf2_config_parse_model(text, files[i], &cfg->model, err);
            break;
        case 1:
            rc = idf2_config_parse_generation(text, files[i], &cfg->gen, err);
            break;
        case 2:
            rc = idf2_config_parse_preproc(text, files[i], &cfg->preproc, err);
            break;
        case 3:
            if (json) {
                const struct idf2_json_ctx c = { files[i], err };
                rc = idf2_take_template(&c, json, &cfg->proc);
            }
            break;
        default:
            rc = idf2_config_parse_processor(text, files[i], &cfg->proc, err);
            break;
        }
        free(json);
    }
    const bool seq_given = cfg->proc.image_seq_len != 0;
    if (!seq_given)
        cfg->proc.image_seq_len = default_seq_len;
    if (rc >= 0)
        rc = idf2_check_ids(cfg, seq_given, err);
    if (rc < 0) {
        idf2_config_release(cfg);
        return rc;
    }
    return VC_OK;
}

void idf2_config_release(struct idf2_config *cfg)
{
    free(cfg->proc.chat_template);
    cfg->proc.chat_template = NULL;
}
