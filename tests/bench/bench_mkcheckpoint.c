/* Writes a random-weight Idefics2 checkpoint with the real idefics2-8b
 * shapes and on-disk layout, for the real-size engine benchmark: the
 * published config.json (which leans on the class defaults), the
 * generation / preprocessor / processor / tokenizer configs, a generated
 * 32003-id tokenizer.json of the Llama/Mistral layout, and the weights as
 * sharded safetensors (bf16 ~16.8 GB in 4 shards, or f32 ~33.6 GB in 7 as
 * published) with model.safetensors.index.json.
 *
 * Values are drawn from a 65536-entry table of N(0, 0.02) samples indexed
 * by a splitmix64 stream (norm weights are 1, as at initialisation), so
 * ~8.4e9 values come out at disk speed.  Deterministic for a seed.
 *
 * usage: bench_mkcheckpoint OUT_DIR [--dtype bf16|f32] [--shard-gb G (5)] [--seed S (1)]
 *                           [--configs-only]  (rewrite the JSON files, keep the weights)
 * OUT_DIR must be outside the repository (e.g. /work/bench-ckpt). */
#include "core/vc_fs.h"
#include "core/vc_mem.h"
#include "synth/idf2_config.h"
#include "synth/safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* The published HuggingFaceM4/idefics2-8b config.json (SPEC §1.3). */
static const char config_json[] =
    "{\n  \"architectures\": [\"Idefics2ForConditionalGeneration\"],\n"
    "  \"image_token_id\": 32001,\n  \"model_type\": \"idefics2\",\n"
    "  \"perceiver_config\": {\"model_type\": \"idefics2\"},\n"
    "  \"text_config\": {\"max_position_embeddings\": 32768, \"model_type\": \"mistral\", "
    "\"pad_token_id\": 0, \"rms_norm_eps\": 1e-05, \"vocab_size\": 32003},\n"
    "  \"tie_word_embeddings\": false,\n  \"torch_dtype\": \"%s\",\n"
    "  \"transformers_version\": \"4.40.0.dev0\",\n  \"use_cache\": true,\n"
    "  \"vision_config\": {\"hidden_size\": 1152, \"image_size\": 980, \"intermediate_size\": "
    "4304, \"model_type\": \"idefics2\", \"num_attention_heads\": 16, \"num_hidden_layers\": 27, "
    "\"patch_size\": 14}\n}\n";

static const char generation_json[] =
    "{\n  \"bad_words_ids\": [[32000], [32001]],\n  \"bos_token_id\": 1,\n"
    "  \"eos_token_id\": [2, 32002],\n  \"pad_token_id\": 0\n}\n";

static const char preprocessor_json[] =
    "{\n  \"do_convert_rgb\": true,\n  \"do_image_splitting\": true,\n  \"do_normalize\": true,\n"
    "  \"do_pad\": true,\n  \"do_rescale\": true,\n  \"do_resize\": true,\n"
    "  \"image_mean\": [0.5, 0.5, 0.5],\n  \"image_processor_type\": \"Idefics2ImageProcessor\",\n"
    "  \"image_std\": [0.5, 0.5, 0.5],\n  \"processor_class\": \"Idefics2Processor\",\n"
    "  \"resample\": 2,\n  \"rescale_factor\": 0.00392156862745098,\n"
    "  \"size\": {\"longest_edge\": 980, \"shortest_edge\": 378}\n}\n";

/* The Idefics2 chat template (as in the fixtures' processor_config.json). */
static const char chat_template[] =
    "{% for message in messages %}{{message['role'].capitalize()}}{% if "
    "message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}{% for line "
    "in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}{% elif line['type'] "
    "== 'image' %}{{ '<image>' }}{% endif %}{% endfor %}<end_of_utterance>\n{% endfor %}{% if "
    "add_generation_prompt %}{{ 'Assistant:' }}{% endif %}";

#define METASPACE "\xe2\x96\x81" /* U+2581 */
#define N_VOCAB   32000          /* pieces; the 3 added tokens follow */

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int write_text(const char *dir, const char *name, const char *text)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    struct vc_err err = { 0 };
    if (vc_fs_write_atomic(path, text, strlen(text), &err) < 0) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    return 0;
}

static int write_json(const char *dir, const char *name, cJSON *root)
{
    char *text = cJSON_PrintUnformatted(root);
    int rc = text ? write_text(dir, name, text) : -1;
    free(text);
    cJSON_Delete(root);
    return rc;
}

/* ---- tokenizer.json ------------------------------------------------------------- */

static cJSON *added_token(int id, const char *content)
{
    cJSON *t = cJSON_CreateObject();
    cJSON_AddNumberToObject(t, "id", id);
    cJSON_AddStringToObject(t, "content", content);
    cJSON_AddFalseToObject(t, "single_word");
    cJSON_AddFalseToObject(t, "lstrip");
    cJSON_AddFalseToObject(t, "rstrip");
    cJSON_AddFalseToObject(t, "normalized");
    cJSON_AddTrueToObject(t, "special");
    return t;
}

static cJSON *replace_node(const char *from, const char *to)
{
    cJSON *n = cJSON_CreateObject();
    cJSON_AddStringToObject(n, "type", "Replace");
    cJSON *pat = cJSON_AddObjectToObject(n, "pattern");
    cJSON_AddStringToObject(pat, "String", from);
    cJSON_AddStringToObject(n, "content", to);
    return n;
}

/* Pieces already in the vocabulary (cJSON object lookups are linear):
 * open addressing over FNV-1a, sized well above N_VOCAB. */
static char *piece_set[1 << 16];

/* Adds s; false when it was already there. */
static bool piece_set_insert(const char *s)
{
    uint32_t h = 2166136261u;
    for (const char *c = s; *c; c++)
        h = (h ^ (uint8_t)*c) * 16777619u;
    for (uint32_t i = h & 0xffff;; i = (i + 1) & 0xffff) {
        if (!piece_set[i]) {
            piece_set[i] = vc_strdup(s);
            return true;
        }
        if (strcmp(piece_set[i], s) == 0)
            return false;
    }
}

/* The vocabulary: <unk> <s> </s>, the 256 byte tokens, "▁" and the
 * printable ASCII characters, then every prefix of "▁word" for the words
 * of /usr/share/dict/words (lowercase ASCII) until 32000 pieces, each
 * prefix with the merge (prefix minus last char, last char).  A valid BPE:
 * dictionary words encode to one token, anything else falls back to
 * shorter pieces and bytes. */
static cJSON *make_tokenizer(void)
{
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "version", "1.0");
    cJSON_AddNullToObject(root, "truncation");
    cJSON_AddNullToObject(root, "padding");
    cJSON *added = cJSON_AddArrayToObject(root, "added_tokens");
    const char *specials[] = { "<unk>", "<s>", "</s>" };
    for (int i = 0; i < 3; i++)
        cJSON_AddItemToArray(added, added_token(i, specials[i]));
    cJSON_AddItemToArray(added, added_token(32000, "<fake_token_around_image>"));
    cJSON_AddItemToArray(added, added_token(32001, "<image>"));
    cJSON_AddItemToArray(added, added_token(32002, "<end_of_utterance>"));

    cJSON *norm = cJSON_AddObjectToObject(root, "normalizer");
    cJSON_AddStringToObject(norm, "type", "Sequence");
    cJSON *norms = cJSON_AddArrayToObject(norm, "normalizers");
    cJSON *prepend = cJSON_CreateObject();
    cJSON_AddStringToObject(prepend, "type", "Prepend");
    cJSON_AddStringToObject(prepend, "prepend", METASPACE);
    cJSON_AddItemToArray(norms, prepend);
    cJSON_AddItemToArray(norms, replace_node(" ", METASPACE));
    cJSON_AddNullToObject(root, "pre_tokenizer");

    cJSON *pp = cJSON_AddObjectToObject(root, "post_processor");
    cJSON_AddStringToObject(pp, "type", "TemplateProcessing");
    cJSON *single = cJSON_AddArrayToObject(pp, "single");
    cJSON *bos = cJSON_CreateObject(), *seq = cJSON_CreateObject();
    cJSON *bos_in = cJSON_AddObjectToObject(bos, "SpecialToken");
    cJSON_AddStringToObject(bos_in, "id", "<s>");
    cJSON_AddNumberToObject(bos_in, "type_id", 0);
    cJSON *seq_in = cJSON_AddObjectToObject(seq, "Sequence");
    cJSON_AddStringToObject(seq_in, "id", "A");
    cJSON_AddNumberToObject(seq_in, "type_id", 0);
    cJSON_AddItemToArray(single, bos);
    cJSON_AddItemToArray(single, seq);
    cJSON *sp = cJSON_AddObjectToObject(pp, "special_tokens");
    cJSON *s_def = cJSON_AddObjectToObject(sp, "<s>");
    cJSON_AddStringToObject(s_def, "id", "<s>");
    cJSON *ids = cJSON_AddArrayToObject(s_def, "ids");
    cJSON_AddItemToArray(ids, cJSON_CreateNumber(1));
    cJSON *toks = cJSON_AddArrayToObject(s_def, "tokens");
    cJSON_AddItemToArray(toks, cJSON_CreateString("<s>"));

    cJSON *dec = cJSON_AddObjectToObject(root, "decoder");
    cJSON_AddStringToObject(dec, "type", "Sequence");
    cJSON *decs = cJSON_AddArrayToObject(dec, "decoders");
    cJSON_AddItemToArray(decs, replace_node(METASPACE, " "));
    cJSON *d2 = cJSON_CreateObject(), *d3 = cJSON_CreateObject(), *d4 = cJSON_CreateObject();
    cJSON_AddStringToObject(d2, "type", "ByteFallback");
    cJSON_AddStringToObject(d3, "type", "Fuse");
    cJSON_AddStringToObject(d4, "type", "Strip");
    cJSON_AddStringToObject(d4, "content", " ");
    cJSON_AddNumberToObject(d4, "start", 1);
    cJSON_AddNumberToObject(d4, "stop", 0);
    cJSON_AddItemToArray(decs, d2);
    cJSON_AddItemToArray(decs, d3);
    cJSON_AddItemToArray(decs, d4);

    cJSON *model = cJSON_AddObjectToObject(root, "model");
    cJSON_AddStringToObject(model, "type", "BPE");
    cJSON_AddNullToObject(model, "dropout");
    cJSON_AddStringToObject(model, "unk_token", "<unk>");
    cJSON_AddNullToObject(model, "continuing_subword_prefix");
    cJSON_AddNullToObject(model, "end_of_word_suffix");
    cJSON_AddTrueToObject(model, "fuse_unk");
    cJSON_AddTrueToObject(model, "byte_fallback");
    cJSON_AddFalseToObject(model, "ignore_merges");
    cJSON *vocab = cJSON_AddObjectToObject(model, "vocab");
    cJSON *merges = cJSON_AddArrayToObject(model, "merges");
    int n = 0;
    for (int i = 0; i < 3; i++)
        cJSON_AddNumberToObject(vocab, specials[i], n++);
    for (int b = 0; b < 256; b++) {
        char piece[8];
        snprintf(piece, sizeof piece, "<0x%02X>", b);
        cJSON_AddNumberToObject(vocab, piece, n++);
    }
    cJSON_AddNumberToObject(vocab, METASPACE, n++);
    for (int c = 33; c < 127; c++) {
        char piece[2] = { (char)c, 0 };
        cJSON_AddNumberToObject(vocab, piece, n++);
    }
    FILE *words = fopen("/usr/share/dict/words", "r");
    char line[256];
    while (words && n < N_VOCAB && fgets(line, sizeof line, words)) {
        size_t len = strcspn(line, "\r\n");
        line[len] = 0;
        bool plain = len > 0 && len < 40;
        for (size_t i = 0; i < len; i++)
            plain = plain && line[i] >= 'a' && line[i] <= 'z';
        if (!plain)
            continue;
        char piece[64] = METASPACE;
        size_t base = strlen(METASPACE);
        for (size_t k = 1; k <= len && n < N_VOCAB; k++) {
            memcpy(piece + base, line, k);
            piece[base + k] = 0;
            if (!piece_set_insert(piece))
                continue;
            char merge[80];
            snprintf(merge, sizeof merge, "%.*s %c", (int)(base + k - 1), piece, line[k - 1]);
            cJSON_AddNumberToObject(vocab, piece, n++);
            cJSON_AddItemToArray(merges, cJSON_CreateString(merge));
        }
    }
    if (words)
        fclose(words);
    /* Without a word list, pad with unreachable pieces to keep the ids. */
    for (char piece[32]; n < N_VOCAB;) {
        snprintf(piece, sizeof piece, "<unused%d>", n);
        cJSON_AddNumberToObject(vocab, piece, n++);
    }
    return root;
}

/* ---- weights ------------------------------------------------------------------- */

struct tensor_plan {
    char name[128];
    int n_dims;
    int64_t shape[4];
    bool ones; /* a norm weight: 1.0 everywhere */
    size_t n_bytes;
    int shard;
    size_t offset; /* inside its shard's data area */
};

struct plan {
    struct tensor_plan *t;
    size_t n, cap;
};

static void plan_add(struct plan *p, const char *name, bool ones, int n_dims, int64_t d0,
                     int64_t d1, int64_t d2, int64_t d3)
{
    if (p->n == p->cap) {
        p->cap = p->cap ? 2 * p->cap : 512;
        p->t = realloc(p->t, p->cap * sizeof *p->t);
    }
    struct tensor_plan *t = &p->t[p->n++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->ones = ones;
    t->n_dims = n_dims;
    int64_t d[4] = { d0, d1, d2, d3 };
    for (int i = 0; i < n_dims; i++)
        t->shape[i] = d[i];
}

/* The tensors of SPEC §1.2 in Hugging Face's state-dict order. */
static void plan_model(struct plan *p, const struct idf2_model_config *m)
{
    char nm[128];
    const struct idf2_vision_config *v = &m->vision;
    int64_t Dv = v->hidden_size, Iv = v->intermediate_size, P = v->patch_size;
    int64_t N = v->image_size / v->patch_size;
#define ADD(ones, nd, a, b, c, d, ...)                                                             \
    do {                                                                                           \
        snprintf(nm, sizeof nm, __VA_ARGS__);                                                      \
        plan_add(p, nm, ones, nd, a, b, c, d);                                                     \
    } while (0)
    ADD(false, 4, Dv, 3, P, P, "model.vision_model.embeddings.patch_embedding.weight");
    ADD(false, 1, Dv, 0, 0, 0, "model.vision_model.embeddings.patch_embedding.bias");
    ADD(false, 2, N * N, Dv, 0, 0, "model.vision_model.embeddings.position_embedding.weight");
    for (int i = 0; i < v->num_hidden_layers; i++) {
        const char *proj[] = { "k", "v", "q", "out" };
        for (int k = 0; k < 4; k++) {
            ADD(false, 2, Dv, Dv, 0, 0,
                "model.vision_model.encoder.layers.%d.self_attn.%s_proj.weight", i, proj[k]);
            ADD(false, 1, Dv, 0, 0, 0,
                "model.vision_model.encoder.layers.%d.self_attn.%s_proj.bias", i, proj[k]);
        }
        ADD(true, 1, Dv, 0, 0, 0, "model.vision_model.encoder.layers.%d.layer_norm1.weight", i);
        ADD(false, 1, Dv, 0, 0, 0, "model.vision_model.encoder.layers.%d.layer_norm1.bias", i);
        ADD(false, 2, Iv, Dv, 0, 0, "model.vision_model.encoder.layers.%d.mlp.fc1.weight", i);
        ADD(false, 1, Iv, 0, 0, 0, "model.vision_model.encoder.layers.%d.mlp.fc1.bias", i);
        ADD(false, 2, Dv, Iv, 0, 0, "model.vision_model.encoder.layers.%d.mlp.fc2.weight", i);
        ADD(false, 1, Dv, 0, 0, 0, "model.vision_model.encoder.layers.%d.mlp.fc2.bias", i);
        ADD(true, 1, Dv, 0, 0, 0, "model.vision_model.encoder.layers.%d.layer_norm2.weight", i);
        ADD(false, 1, Dv, 0, 0, 0, "model.vision_model.encoder.layers.%d.layer_norm2.bias", i);
    }
    ADD(true, 1, Dv, 0, 0, 0, "model.vision_model.post_layernorm.weight");
    ADD(false, 1, Dv, 0, 0, 0, "model.vision_model.post_layernorm.bias");

    const struct idf2_text_config *t = &m->text;
    const struct idf2_perceiver_config *r = &m->perceiver;
    int64_t Dt = t->hidden_size, It = t->intermediate_size, V = t->vocab_size;
    ADD(false, 2, It, Dv, 0, 0, "model.connector.modality_projection.gate_proj.weight");
    ADD(false, 2, It, Dv, 0, 0, "model.connector.modality_projection.up_proj.weight");
    ADD(false, 2, Dt, It, 0, 0, "model.connector.modality_projection.down_proj.weight");
    ADD(false, 2, r->n_latents, Dt, 0, 0, "model.connector.perceiver_resampler.latents");
    int64_t Qp = (int64_t)r->n_heads * r->head_dim, Kp = (int64_t)r->n_kv_heads * r->head_dim;
    for (int j = 0; j < r->depth; j++) {
#define PR "model.connector.perceiver_resampler.layers.%d."
        ADD(true, 1, Dt, 0, 0, 0, PR "input_latents_norm.weight", j);
        ADD(true, 1, Dt, 0, 0, 0, PR "input_context_norm.weight", j);
        ADD(false, 2, Qp, Dt, 0, 0, PR "self_attn.q_proj.weight", j);
        ADD(false, 2, Kp, Dt, 0, 0, PR "self_attn.k_proj.weight", j);
        ADD(false, 2, Kp, Dt, 0, 0, PR "self_attn.v_proj.weight", j);
        ADD(false, 2, Dt, Qp, 0, 0, PR "self_attn.o_proj.weight", j);
        ADD(true, 1, Dt, 0, 0, 0, PR "post_attention_layernorm.weight", j);
        ADD(false, 2, 4 * Dt, Dt, 0, 0, PR "mlp.gate_proj.weight", j);
        ADD(false, 2, 4 * Dt, Dt, 0, 0, PR "mlp.up_proj.weight", j);
        ADD(false, 2, Dt, 4 * Dt, 0, 0, PR "mlp.down_proj.weight", j);
#undef PR
    }
    ADD(true, 1, Dt, 0, 0, 0, "model.connector.perceiver_resampler.norm.weight");

    int64_t Q = (int64_t)t->num_attention_heads * t->head_dim;
    int64_t KV = (int64_t)t->num_key_value_heads * t->head_dim;
    ADD(false, 2, V, Dt, 0, 0, "model.text_model.embed_tokens.weight");
    for (int l = 0; l < t->num_hidden_layers; l++) {
#define TL "model.text_model.layers.%d."
        ADD(false, 2, Q, Dt, 0, 0, TL "self_attn.q_proj.weight", l);
        ADD(false, 2, KV, Dt, 0, 0, TL "self_attn.k_proj.weight", l);
        ADD(false, 2, KV, Dt, 0, 0, TL "self_attn.v_proj.weight", l);
        ADD(false, 2, Dt, Q, 0, 0, TL "self_attn.o_proj.weight", l);
        ADD(false, 2, It, Dt, 0, 0, TL "mlp.gate_proj.weight", l);
        ADD(false, 2, It, Dt, 0, 0, TL "mlp.up_proj.weight", l);
        ADD(false, 2, Dt, It, 0, 0, TL "mlp.down_proj.weight", l);
        ADD(true, 1, Dt, 0, 0, 0, TL "input_layernorm.weight", l);
        ADD(true, 1, Dt, 0, 0, 0, TL "post_attention_layernorm.weight", l);
#undef TL
    }
    ADD(true, 1, Dt, 0, 0, 0, "model.text_model.norm.weight");
    ADD(false, 2, V, Dt, 0, 0, "lm_head.weight");
#undef ADD
}

/* Sequential packing into shards of at most shard_bytes (a tensor is never
 * split; an oversized one gets a shard of its own), as HF's sharding does. */
static int plan_shards(struct plan *p, enum st_dtype dt, size_t shard_bytes)
{
    int shard = 0;
    size_t used = 0;
    for (size_t i = 0; i < p->n; i++) {
        struct tensor_plan *t = &p->t[i];
        size_t n = 1;
        for (int d = 0; d < t->n_dims; d++)
            n *= (size_t)t->shape[d];
        t->n_bytes = n * st_dtype_size(dt);
        if (used > 0 && used + t->n_bytes > shard_bytes) {
            shard++;
            used = 0;
        }
        t->shard = shard;
        t->offset = used;
        used += t->n_bytes;
    }
    return shard + 1;
}

static void shard_name(char *buf, size_t cap, int k, int n)
{
    snprintf(buf, cap, "model-%05d-of-%05d.safetensors", k + 1, n);
}

/* Fills n values of tensor t into buf (dtype dt) from the table. */
static void fill(void *buf, size_t n, enum st_dtype dt, bool ones, const float *table,
                 uint64_t seed)
{
    if (ones) {
        for (size_t i = 0; i < n; i++) {
            if (dt == ST_BF16)
                ((uint16_t *)buf)[i] = 0x3f80;
            else
                ((float *)buf)[i] = 1.0f;
        }
        return;
    }
    /* One stream per 1 Mi-value block, so threads agree with one thread. */
    size_t blocks = (n + (1u << 20) - 1) >> 20;
#pragma omp parallel for schedule(static)
    for (size_t b = 0; b < blocks; b++) {
        uint64_t s = seed ^ (b * 0xd1342543de82ef95ull);
        size_t lo = b << 20, hi = lo + (1u << 20) < n ? lo + (1u << 20) : n;
        for (size_t i = lo; i < hi; i += 4) {
            uint64_t r = splitmix(&s);
            for (size_t k = 0; k < 4 && i + k < hi; k++) {
                float v = table[(r >> (16 * k)) & 0xffff];
                if (dt == ST_BF16)
                    ((uint16_t *)buf)[i + k] = st_f32_to_bf16(v);
                else
                    ((float *)buf)[i + k] = v;
            }
        }
    }
}

static bool write_all(int fd, const void *data, size_t n)
{
    const unsigned char *p = data;
    while (n > 0) {
        ssize_t w = write(fd, p, n < (1u << 30) ? n : (1u << 30));
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        p += w;
        n -= (size_t)w;
    }
    return true;
}

static int write_shard(const char *dir, const struct plan *p, int k, int n_shards, enum st_dtype dt,
                       const float *table, uint64_t seed)
{
    cJSON *hdr = cJSON_CreateObject();
    cJSON *meta = cJSON_AddObjectToObject(hdr, "__metadata__");
    cJSON_AddStringToObject(meta, "format", "pt");
    size_t biggest = 0;
    for (size_t i = 0; i < p->n; i++) {
        const struct tensor_plan *t = &p->t[i];
        if (t->shard != k)
            continue;
        cJSON *e = cJSON_AddObjectToObject(hdr, t->name);
        cJSON_AddStringToObject(e, "dtype", st_dtype_name(dt));
        cJSON *shape = cJSON_AddArrayToObject(e, "shape");
        for (int d = 0; d < t->n_dims; d++)
            cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)t->shape[d]));
        cJSON *offs = cJSON_AddArrayToObject(e, "data_offsets");
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)t->offset));
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)(t->offset + t->n_bytes)));
        if (t->n_bytes > biggest)
            biggest = t->n_bytes;
    }
    char *text = cJSON_PrintUnformatted(hdr);
    cJSON_Delete(hdr);
    size_t len = strlen(text), padded = (len + 8 + 7) / 8 * 8 - 8; /* data 8-aligned, as HF */
    char name[64], path[4096], tmp[4200];
    shard_name(name, sizeof name, k, n_shards);
    snprintf(path, sizeof path, "%s/%s", dir, name);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    unsigned char lenbuf[8];
    for (int i = 0; i < 8; i++)
        lenbuf[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    char *hdr_buf = malloc(padded);
    memset(hdr_buf, ' ', padded);
    memcpy(hdr_buf, text, len);
    bool ok = fd >= 0 && write_all(fd, lenbuf, 8) && write_all(fd, hdr_buf, padded);
    free(text);
    free(hdr_buf);
    void *buf = malloc(biggest ? biggest : 1);
    for (size_t i = 0; ok && buf && i < p->n; i++) {
        const struct tensor_plan *t = &p->t[i];
        if (t->shard != k)
            continue;
        fill(buf, t->n_bytes / st_dtype_size(dt), dt, t->ones, table, seed + i);
        ok = write_all(fd, buf, t->n_bytes);
    }
    free(buf);
    ok = ok && fsync(fd) == 0;
    if (fd >= 0)
        ok = close(fd) == 0 && ok;
    struct vc_err err = { 0 };
    if (!ok || vc_fs_commit_rename(tmp, path, &err) < 0) {
        fprintf(stderr, "cannot write %s: %s\n", path, ok ? err.msg : strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

static int write_index(const char *dir, const struct plan *p, int n_shards)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *meta = cJSON_AddObjectToObject(root, "metadata");
    double total = 0;
    for (size_t i = 0; i < p->n; i++)
        total += (double)p->t[i].n_bytes;
    cJSON_AddNumberToObject(meta, "total_size", total);
    cJSON *map = cJSON_AddObjectToObject(root, "weight_map");
    for (size_t i = 0; i < p->n; i++) {
        char name[64];
        shard_name(name, sizeof name, p->t[i].shard, n_shards);
        cJSON_AddStringToObject(map, p->t[i].name, name);
    }
    return write_json(dir, "model.safetensors.index.json", root);
}

static void usage(void)
{
    fprintf(stderr, "usage: bench_mkcheckpoint OUT_DIR [--dtype bf16|f32] [--shard-gb G (5)] "
                    "[--seed S (1)] [--configs-only]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    if (argc < 2 || argv[1][0] == '-')
        usage();
    const char *dir = argv[1];
    enum st_dtype dt = ST_BF16;
    double shard_gb = 5.0;
    uint64_t seed = 1;
    bool configs_only = false;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--dtype") && i + 1 < argc) {
            const char *d = argv[++i];
            if (!strcmp(d, "bf16"))
                dt = ST_BF16;
            else if (!strcmp(d, "f32"))
                dt = ST_F32;
            else
                usage();
        } else if (!strcmp(argv[i], "--shard-gb") && i + 1 < argc) {
            shard_gb = atof(argv[++i]);
        } else if (!strcmp(argv[i], "--configs-only")) {
            configs_only = true;
        } else if (!strcmp(argv[i], "--seed") && i + 1 < argc) {
            seed = strtoull(argv[++i], NULL, 10);
        } else {
            usage();
        }
    }
    if (!(shard_gb > 0))
        usage();
    struct vc_err err = { 0 };
    if (vc_fs_mkdirs(dir, &err) < 0) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    double t0 = now_s();
    char config[sizeof config_json + 32];
    snprintf(config, sizeof config, config_json, dt == ST_BF16 ? "bfloat16" : "float32");
    struct idf2_model_config m;
    if (idf2_config_parse_model(config, "config.json", &m, &err) < 0) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    cJSON *proc = cJSON_CreateObject();
    cJSON_AddNumberToObject(proc, "image_seq_len", m.perceiver.n_latents);
    cJSON_AddStringToObject(proc, "processor_class", "Idefics2Processor");
    cJSON_AddStringToObject(proc, "chat_template", chat_template);
    cJSON *tokcfg = cJSON_CreateObject();
    cJSON_AddTrueToObject(tokcfg, "add_bos_token");
    cJSON_AddFalseToObject(tokcfg, "add_eos_token");
    cJSON_AddStringToObject(tokcfg, "bos_token", "<s>");
    cJSON_AddStringToObject(tokcfg, "eos_token", "</s>");
    cJSON_AddStringToObject(tokcfg, "unk_token", "<unk>");
    cJSON_AddStringToObject(tokcfg, "tokenizer_class", "LlamaTokenizer");
    cJSON_AddStringToObject(tokcfg, "chat_template", chat_template);
    if (write_text(dir, "config.json", config) ||
        write_text(dir, "generation_config.json", generation_json) ||
        write_text(dir, "preprocessor_config.json", preprocessor_json) ||
        write_json(dir, "processor_config.json", proc) ||
        write_json(dir, "tokenizer_config.json", tokcfg) ||
        write_json(dir, "tokenizer.json", make_tokenizer()))
        return 1;
    printf("configs and tokenizer written in %.1f s\n", now_s() - t0);
    if (configs_only)
        return 0;

    struct plan p = { 0 };
    plan_model(&p, &m);
    int n_shards = plan_shards(&p, dt, (size_t)(shard_gb * 1e9));
    float *table = malloc(65536 * sizeof *table);
    uint64_t s = seed;
    for (int i = 0; i < 65536; i += 2) {
        /* Box-Muller from two uniforms in (0, 1]. */
        double u1 = ((double)(splitmix(&s) >> 11) + 1.0) * 0x1p-53;
        double u2 = (double)(splitmix(&s) >> 11) * 0x1p-53;
        double r = sqrt(-2.0 * log(u1)) * 0.02;
        table[i] = (float)(r * cos(2 * M_PI * u2));
        table[i + 1] = (float)(r * sin(2 * M_PI * u2));
    }
    size_t total = 0, params = 0;
    for (size_t i = 0; i < p.n; i++) {
        total += p.t[i].n_bytes;
        params += p.t[i].n_bytes / st_dtype_size(dt);
    }
    printf("writing %zu tensors, %.3f B parameters, %.2f GB of %s in %d shards to %s\n", p.n,
           (double)params * 1e-9, (double)total * 1e-9, st_dtype_name(dt), n_shards, dir);
    fflush(stdout);
    for (int k = 0; k < n_shards; k++) {
        double ts = now_s();
        if (write_shard(dir, &p, k, n_shards, dt, table, seed * 1000003u) < 0)
            return 1;
        printf("  shard %d/%d written in %.1f s\n", k + 1, n_shards, now_s() - ts);
        fflush(stdout);
    }
    if (write_index(dir, &p, n_shards) < 0)
        return 1;
    double secs = now_s() - t0;
    printf("done in %.1f s (%.2f GB/s)\n", secs, (double)total * 1e-9 / secs);
    free(table);
    free(p.t);
    return 0;
}
