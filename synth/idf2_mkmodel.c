/* idf2_mkmodel: the random checkpoint writer.  Owns the generated
 * tokenizer's vocabulary rules and the demo's tiny config; tensor names
 * and shapes follow SPEC §1.2, and config parsing is idf2_config's. */
#include "idf2_mkmodel.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/vc_fs.h"
#include "core/vc_mem.h"
#include "synth/st_write.h"

#define METASPACE "\xe2\x96\x81" /* U+2581 */

static enum vc_status oom(struct vc_err *err)
{
    return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "mkmodel: out of memory");
}

/* ---------------------------------------------------------------- tensors */

struct tensor_list {
    struct idf2_mk_tensor *t;
    size_t n, cap;
    bool failed;
};

static void add(struct tensor_list *l, bool ones, int nd, int64_t a, int64_t b, int64_t c,
                int64_t d, const char *fmt, ...) __attribute__((format(printf, 8, 9)));

static void add(struct tensor_list *l, bool ones, int nd, int64_t a, int64_t b, int64_t c,
                int64_t d, const char *fmt, ...)
{
    if (l->failed)
        return;
    struct idf2_mk_tensor *grown = vc_grow_array(l->t, &l->cap, l->n + 1, sizeof *grown, 256);
    if (!grown) {
        l->failed = true;
        return;
    }
    l->t = grown;
    struct idf2_mk_tensor *t = &l->t[l->n++];
    memset(t, 0, sizeof *t);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->name, sizeof t->name, fmt, ap);
    va_end(ap);
    t->ones = ones;
    t->n_dims = nd;
    const int64_t dims[4] = { a, b, c, d };
    memcpy(t->shape, dims, sizeof dims);
}

static void vision_tensors(struct tensor_list *l, const struct idf2_vision_config *v)
{
    const int64_t Dv = v->hidden_size, Iv = v->intermediate_size, P = v->patch_size;
    const int64_t N = v->image_size / v->patch_size;
#define VE "model.vision_model."
    add(l, false, 4, Dv, 3, P, P, VE "embeddings.patch_embedding.weight");
    add(l, false, 1, Dv, 0, 0, 0, VE "embeddings.patch_embedding.bias");
    add(l, false, 2, N * N, Dv, 0, 0, VE "embeddings.position_embedding.weight");
    for (int i = 0; i < v->num_hidden_layers; i++) {
        static const char *const proj[] = { "k", "v", "q", "out" };
        for (int k = 0; k < 4; k++) {
            add(l, false, 2, Dv, Dv, 0, 0, VE "encoder.layers.%d.self_attn.%s_proj.weight", i,
                proj[k]);
            add(l, false, 1, Dv, 0, 0, 0, VE "encoder.layers.%d.self_attn.%s_proj.bias", i,
                proj[k]);
        }
        add(l, true, 1, Dv, 0, 0, 0, VE "encoder.layers.%d.layer_norm1.weight", i);
        add(l, false, 1, Dv, 0, 0, 0, VE "encoder.layers.%d.layer_norm1.bias", i);
        add(l, false, 2, Iv, Dv, 0, 0, VE "encoder.layers.%d.mlp.fc1.weight", i);
        add(l, false, 1, Iv, 0, 0, 0, VE "encoder.layers.%d.mlp.fc1.bias", i);
        add(l, false, 2, Dv, Iv, 0, 0, VE "encoder.layers.%d.mlp.fc2.weight", i);
        add(l, false, 1, Dv, 0, 0, 0, VE "encoder.layers.%d.mlp.fc2.bias", i);
        add(l, true, 1, Dv, 0, 0, 0, VE "encoder.layers.%d.layer_norm2.weight", i);
        add(l, false, 1, Dv, 0, 0, 0, VE "encoder.layers.%d.layer_norm2.bias", i);
    }
    add(l, true, 1, Dv, 0, 0, 0, VE "post_layernorm.weight");
    add(l, false, 1, Dv, 0, 0, 0, VE "post_layernorm.bias");
#undef VE
}

static void connector_tensors(struct tensor_list *l, const struct idf2_model_config *m)
{
    const struct idf2_perceiver_config *r = &m->perceiver;
    const int64_t Dv = m->vision.hidden_size, Dt = m->text.hidden_size;
    const int64_t It = m->text.intermediate_size;
    const int64_t Qp = (int64_t)r->n_heads * r->head_dim, Kp = (int64_t)r->n_kv_heads * r->head_dim;
#define CO "model.connector."
#define PR CO "perceiver_resampler.layers.%d."
    add(l, false, 2, It, Dv, 0, 0, CO "modality_projection.gate_proj.weight");
    add(l, false, 2, It, Dv, 0, 0, CO "modality_projection.up_proj.weight");
    add(l, false, 2, Dt, It, 0, 0, CO "modality_projection.down_proj.weight");
    add(l, false, 2, r->n_latents, Dt, 0, 0, CO "perceiver_resampler.latents");
    for (int j = 0; j < r->depth; j++) {
        add(l, true, 1, Dt, 0, 0, 0, PR "input_latents_norm.weight", j);
        add(l, true, 1, Dt, 0, 0, 0, PR "input_context_norm.weight", j);
        add(l, false, 2, Qp, Dt, 0, 0, PR "self_attn.q_proj.weight", j);
        add(l, false, 2, Kp, Dt, 0, 0, PR "self_attn.k_proj.weight", j);
        add(l, false, 2, Kp, Dt, 0, 0, PR "self_attn.v_proj.weight", j);
        add(l, false, 2, Dt, Qp, 0, 0, PR "self_attn.o_proj.weight", j);
        add(l, true, 1, Dt, 0, 0, 0, PR "post_attention_layernorm.weight", j);
        add(l, false, 2, 4 * Dt, Dt, 0, 0, PR "mlp.gate_proj.weight", j);
        add(l, false, 2, 4 * Dt, Dt, 0, 0, PR "mlp.up_proj.weight", j);
        add(l, false, 2, Dt, 4 * Dt, 0, 0, PR "mlp.down_proj.weight", j);
    }
    add(l, true, 1, Dt, 0, 0, 0, CO "perceiver_resampler.norm.weight");
#undef PR
#undef CO
}

static void text_tensors(struct tensor_list *l, const struct idf2_text_config *t)
{
    const int64_t Dt = t->hidden_size, It = t->intermediate_size, V = t->vocab_size;
    const int64_t Q = (int64_t)t->num_attention_heads * t->head_dim;
    const int64_t KV = (int64_t)t->num_key_value_heads * t->head_dim;
#define TL "model.text_model.layers.%d."
    add(l, false, 2, V, Dt, 0, 0, "model.text_model.embed_tokens.weight");
    for (int i = 0; i < t->num_hidden_layers; i++) {
        add(l, false, 2, Q, Dt, 0, 0, TL "self_attn.q_proj.weight", i);
        add(l, false, 2, KV, Dt, 0, 0, TL "self_attn.k_proj.weight", i);
        add(l, false, 2, KV, Dt, 0, 0, TL "self_attn.v_proj.weight", i);
        add(l, false, 2, Dt, Q, 0, 0, TL "self_attn.o_proj.weight", i);
        add(l, false, 2, It, Dt, 0, 0, TL "mlp.gate_proj.weight", i);
        add(l, false, 2, It, Dt, 0, 0, TL "mlp.up_proj.weight", i);
        add(l, false, 2, Dt, It, 0, 0, TL "mlp.down_proj.weight", i);
        add(l, true, 1, Dt, 0, 0, 0, TL "input_layernorm.weight", i);
        add(l, true, 1, Dt, 0, 0, 0, TL "post_attention_layernorm.weight", i);
    }
    add(l, true, 1, Dt, 0, 0, 0, "model.text_model.norm.weight");
    add(l, false, 2, V, Dt, 0, 0, "lm_head.weight");
#undef TL
}

enum vc_status idf2_mk_tensors(const struct idf2_model_config *m, struct idf2_mk_tensor **out,
                               size_t *n, struct vc_err *err)
{
    struct tensor_list l = { 0 };
    vision_tensors(&l, &m->vision);
    connector_tensors(&l, m);
    text_tensors(&l, &m->text);
    if (l.failed) {
        free(l.t);
        return oom(err);
    }
    *out = l.t;
    *n = l.n;
    return VC_OK;
}

/* -------------------------------------------------------------- tokenizer */

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

static cJSON *typed(const char *type)
{
    cJSON *n = cJSON_CreateObject();
    cJSON_AddStringToObject(n, "type", type);
    return n;
}

static cJSON *replace_node(const char *from, const char *to)
{
    cJSON *n = typed("Replace");
    cJSON *pat = cJSON_AddObjectToObject(n, "pattern");
    cJSON_AddStringToObject(pat, "String", from);
    cJSON_AddStringToObject(n, "content", to);
    return n;
}

static void add_pipeline(cJSON *root)
{
    cJSON *norm = cJSON_AddObjectToObject(root, "normalizer");
    cJSON_AddStringToObject(norm, "type", "Sequence");
    cJSON *norms = cJSON_AddArrayToObject(norm, "normalizers");
    cJSON *prepend = typed("Prepend");
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
    cJSON *s_def = cJSON_AddObjectToObject(cJSON_AddObjectToObject(pp, "special_tokens"), "<s>");
    cJSON_AddStringToObject(s_def, "id", "<s>");
    cJSON_AddItemToArray(cJSON_AddArrayToObject(s_def, "ids"), cJSON_CreateNumber(1));
    cJSON_AddItemToArray(cJSON_AddArrayToObject(s_def, "tokens"), cJSON_CreateString("<s>"));

    cJSON *dec = cJSON_AddObjectToObject(root, "decoder");
    cJSON_AddStringToObject(dec, "type", "Sequence");
    cJSON *decs = cJSON_AddArrayToObject(dec, "decoders");
    cJSON_AddItemToArray(decs, replace_node(METASPACE, " "));
    cJSON_AddItemToArray(decs, typed("ByteFallback"));
    cJSON_AddItemToArray(decs, typed("Fuse"));
    cJSON *strip = typed("Strip");
    cJSON_AddStringToObject(strip, "content", " ");
    cJSON_AddNumberToObject(strip, "start", 1);
    cJSON_AddNumberToObject(strip, "stop", 0);
    cJSON_AddItemToArray(decs, strip);
}

/* Pieces already in the vocabulary (cJSON object lookups are linear):
 * open addressing over FNV-1a, at most half full. */
struct piece_set {
    char **slot;
    size_t mask;
};

static bool piece_set_insert(struct piece_set *s, const char *p, bool *oom_hit)
{
    uint32_t h = 2166136261u;
    for (const char *c = p; *c; c++)
        h = (h ^ (uint8_t)*c) * 16777619u;
    for (size_t i = h & s->mask;; i = (i + 1) & s->mask) {
        if (!s->slot[i]) {
            if (!(s->slot[i] = vc_strdup(p)))
                *oom_hit = true;
            return s->slot[i] != NULL;
        }
        if (strcmp(s->slot[i], p) == 0)
            return false;
    }
}

/* A real 32k BPE vocabulary holds the frequent words whole, so a prompt
 * of plain English is about one piece a word.  A dictionary taken in order
 * runs out of pieces by "def...", which made "Describe this image in one
 * sentence." 36 pieces and a caption prompt half again as long as a real
 * tokenizer's: these words go first (the chat roles, the words of the
 * model stages' built-in prompts, then the most frequent English words). */
static const char *const frequent_words[] = {
    "User",     "Assistant", "Describe", "this",     "image",   "in",         "one",
    "sentence", "detail",    "What",     "is",       "written", "Transcribe", "the",
    "text",     "exactly",   "a",        "an",       "and",     "of",         "to",
    "it",       "that",      "for",      "on",       "with",    "as",         "was",
    "at",       "by",        "be",       "are",      "from",    "or",         "his",
    "her",      "they",      "we",       "you",      "he",      "she",        "I",
    "The",      "A",         "This",     "It",       "In",      "There",      "there",
    "have",     "has",       "had",      "not",      "but",     "all",        "can",
    "will",     "would",     "which",    "their",    "what",    "when",       "who",
    "were",     "been",      "more",     "some",     "two",     "three",      "photo",
    "picture",  "man",       "woman",    "people",   "person",  "white",      "black",
    "red",      "blue",      "green",    "small",    "large",   "front",      "background",
    "table",    "sitting",   "standing", "holding",  "wearing", "next",       "top",
    "side",     "water",     "street",   "building", "sign",    "shows",      NULL,
};

/* Adds "▁" + word's prefixes (or the bare word's, for a word that follows
 * a newline, as "Assistant:" does) as pieces with their merges. */
static bool add_chain(cJSON *vocab, cJSON *merges, int *n, int n_pieces, struct piece_set *set,
                      const char *word, size_t len, bool space)
{
    char piece[64] = METASPACE;
    const size_t base = space ? strlen(METASPACE) : 0;
    bool oom_hit = false;
    for (size_t k = space ? 1 : 2; k <= len && *n < n_pieces && !oom_hit; k++) {
        memcpy(piece + base, word, k);
        piece[base + k] = 0;
        if (!piece_set_insert(set, piece, &oom_hit))
            continue;
        char merge[80];
        snprintf(merge, sizeof merge, "%.*s %c", (int)(base + k - 1), piece, word[k - 1]);
        cJSON_AddNumberToObject(vocab, piece, (*n)++);
        cJSON_AddItemToArray(merges, cJSON_CreateString(merge));
    }
    return !oom_hit;
}

/* The frequent words, then every prefix of "▁word" for the plain lowercase
 * words of the list. */
static bool add_words(cJSON *vocab, cJSON *merges, int *n, int n_pieces, const char *words_path)
{
    FILE *words = words_path ? fopen(words_path, "r") : NULL;
    if (!words)
        return true;
    size_t cap = 1;
    while (cap < 2 * (size_t)n_pieces)
        cap <<= 1;
    struct piece_set set = { calloc(cap, sizeof(char *)), cap - 1 };
    bool ok = set.slot != NULL;
    for (size_t i = 0; ok && frequent_words[i]; i++)
        ok = add_chain(vocab, merges, n, n_pieces, &set, frequent_words[i],
                       strlen(frequent_words[i]), true);
    ok = ok && add_chain(vocab, merges, n, n_pieces, &set, "Assistant", 9, false);
    char line[256];
    while (ok && *n < n_pieces && fgets(line, sizeof line, words)) {
        size_t len = strcspn(line, "\r\n");
        line[len] = 0;
        bool plain = len > 0 && len < 40;
        for (size_t i = 0; i < len; i++)
            plain = plain && line[i] >= 'a' && line[i] <= 'z';
        if (plain)
            ok = add_chain(vocab, merges, n, n_pieces, &set, line, len, true);
    }
    fclose(words);
    for (size_t i = 0; set.slot && i <= set.mask; i++)
        free(set.slot[i]);
    free(set.slot);
    return ok;
}

cJSON *idf2_mk_tokenizer(int n_pieces, const char *words_path)
{
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "version", "1.0");
    cJSON_AddNullToObject(root, "truncation");
    cJSON_AddNullToObject(root, "padding");
    cJSON *added = cJSON_AddArrayToObject(root, "added_tokens");
    static const char *const specials[] = { "<unk>", "<s>", "</s>" };
    static const char *const extra[] = { "<fake_token_around_image>", "<image>",
                                         "<end_of_utterance>" };
    for (int i = 0; i < 3; i++)
        cJSON_AddItemToArray(added, added_token(i, specials[i]));
    for (int i = 0; i < 3; i++)
        cJSON_AddItemToArray(added, added_token(n_pieces + i, extra[i]));
    add_pipeline(root);

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
        const char piece[2] = { (char)c, 0 };
        cJSON_AddNumberToObject(vocab, piece, n++);
    }
    if (!add_words(vocab, merges, &n, n_pieces, words_path)) {
        cJSON_Delete(root);
        return NULL;
    }
    /* Without a word list, unreachable pieces keep the ids. */
    for (char piece[32]; n < n_pieces;) {
        snprintf(piece, sizeof piece, "<unused%d>", n);
        cJSON_AddNumberToObject(vocab, piece, n++);
    }
    return root;
}

/* ----------------------------------------------------------- side configs */

/* The Idefics2 chat template (as published in processor_config.json). */
static const char chat_template[] =
    "{% for message in messages %}{{message['role'].capitalize()}}{% if "
    "message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}{% for line "
    "in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}{% elif line['type'] "
    "== 'image' %}{{ '<image>' }}{% endif %}{% endfor %}<end_of_utterance>\n{% endfor %}{% if "
    "add_generation_prompt %}{{ 'Assistant:' }}{% endif %}";

static enum vc_status write_json(const char *dir, const char *name, cJSON *root, struct vc_err *err)
{
    char *text = root ? cJSON_Print(root) : NULL;
    cJSON_Delete(root);
    char *path = text ? vc_malloc_array(strlen(dir) + strlen(name) + 2, 1) : NULL;
    enum vc_status rc = path ? VC_OK : oom(err);
    if (rc >= 0) {
        sprintf(path, "%s/%s", dir, name);
        rc = vc_fs_write_atomic(path, text, strlen(text), err);
    }
    free(path);
    free(text);
    return rc;
}

static cJSON *int_list(const int *v, int n)
{
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < n; i++)
        cJSON_AddItemToArray(a, cJSON_CreateNumber(v[i]));
    return a;
}

enum vc_status idf2_mk_side_configs(const char *dir, const struct idf2_mk_side *s,
                                    struct vc_err *err)
{
    const int fake = s->vocab - 3, image = s->vocab - 2, eou = s->vocab - 1;
    cJSON *gen = cJSON_CreateObject();
    cJSON *bad = cJSON_AddArrayToObject(gen, "bad_words_ids");
    cJSON_AddItemToArray(bad, int_list(&fake, 1));
    cJSON_AddItemToArray(bad, int_list(&image, 1));
    cJSON_AddNumberToObject(gen, "bos_token_id", 1);
    cJSON_AddItemToObject(gen, "eos_token_id", int_list((const int[]){ 2, eou }, 2));
    cJSON_AddNumberToObject(gen, "pad_token_id", 0);
    VC_TRY(write_json(dir, "generation_config.json", gen, err));

    cJSON *pre = cJSON_CreateObject();
    cJSON_AddTrueToObject(pre, "do_convert_rgb");
    cJSON_AddBoolToObject(pre, "do_image_splitting", s->image_splitting);
    cJSON_AddTrueToObject(pre, "do_normalize");
    cJSON_AddTrueToObject(pre, "do_pad");
    cJSON_AddTrueToObject(pre, "do_rescale");
    cJSON_AddTrueToObject(pre, "do_resize");
    static const double half[3] = { 0.5, 0.5, 0.5 };
    cJSON_AddItemToObject(pre, "image_mean", cJSON_CreateDoubleArray(half, 3));
    cJSON_AddStringToObject(pre, "image_processor_type", "Idefics2ImageProcessor");
    cJSON_AddItemToObject(pre, "image_std", cJSON_CreateDoubleArray(half, 3));
    cJSON_AddStringToObject(pre, "processor_class", "Idefics2Processor");
    cJSON_AddNumberToObject(pre, "resample", 2);
    cJSON_AddNumberToObject(pre, "rescale_factor", 1.0 / 255.0);
    cJSON *size = cJSON_AddObjectToObject(pre, "size");
    cJSON_AddNumberToObject(size, "longest_edge", s->longest_edge);
    cJSON_AddNumberToObject(size, "shortest_edge", s->shortest_edge);
    VC_TRY(write_json(dir, "preprocessor_config.json", pre, err));

    cJSON *proc = cJSON_CreateObject();
    cJSON_AddNumberToObject(proc, "image_seq_len", s->image_seq_len);
    cJSON_AddStringToObject(proc, "processor_class", "Idefics2Processor");
    cJSON_AddStringToObject(proc, "chat_template", chat_template);
    VC_TRY(write_json(dir, "processor_config.json", proc, err));

    cJSON *tok = cJSON_CreateObject();
    cJSON_AddTrueToObject(tok, "add_bos_token");
    cJSON_AddFalseToObject(tok, "add_eos_token");
    cJSON_AddStringToObject(tok, "bos_token", "<s>");
    cJSON_AddStringToObject(tok, "eos_token", "</s>");
    cJSON_AddStringToObject(tok, "unk_token", "<unk>");
    cJSON_AddStringToObject(tok, "tokenizer_class", "LlamaTokenizer");
    cJSON_AddStringToObject(tok, "chat_template", chat_template);
    return write_json(dir, "tokenizer_config.json", tok, err);
}

/* ------------------------------------------------------------ tiny model */

#define TINY_PIECES 1000

static const char tiny_config[] =
    "{\"architectures\": [\"Idefics2ForConditionalGeneration\"], \"image_token_id\": %d,\n"
    " \"model_type\": \"idefics2\", \"tie_word_embeddings\": false, \"torch_dtype\": "
    "\"float32\",\n"
    " \"perceiver_config\": {\"hidden_act\": \"silu\", \"hidden_size\": 64, "
    "\"model_type\": \"idefics2_perceiver\",\n"
    "   \"num_key_value_heads\": 2, \"resampler_depth\": 2, \"resampler_head_dim\": 12,\n"
    "   \"resampler_n_heads\": 4, \"resampler_n_latents\": 8, \"rms_norm_eps\": 1e-05},\n"
    " \"text_config\": {\"head_dim\": 16, \"hidden_act\": \"silu\", \"hidden_size\": 64, "
    "\"intermediate_size\": 128,\n"
    "   \"max_position_embeddings\": 4096, \"model_type\": \"mistral\", "
    "\"num_attention_heads\": 4,\n"
    "   \"num_hidden_layers\": 2, \"num_key_value_heads\": 2, \"pad_token_id\": 0, "
    "\"rms_norm_eps\": 1e-05,\n"
    "   \"rope_theta\": 10000.0, \"sliding_window\": 4096, \"vocab_size\": %d},\n"
    " \"vision_config\": {\"hidden_act\": \"gelu_pytorch_tanh\", \"hidden_size\": 48, "
    "\"image_size\": 84,\n"
    "   \"intermediate_size\": 96, \"layer_norm_eps\": 1e-06, \"model_type\": "
    "\"idefics2_vision\",\n"
    "   \"num_attention_heads\": 4, \"num_channels\": 3, \"num_hidden_layers\": 2, "
    "\"patch_size\": 14}}\n";

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* N(0, 0.02) by Box-Muller, one splitmix stream per tensor. */
static void fill_normal(float *v, size_t n, uint64_t seed)
{
    for (size_t i = 0; i < n; i += 2) {
        double u1 = ((double)(splitmix(&seed) >> 11) + 1.0) * 0x1p-53;
        double u2 = (double)(splitmix(&seed) >> 11) * 0x1p-53;
        double r = sqrt(-2.0 * log(u1)) * 0.02;
        v[i] = (float)(r * cos(2 * M_PI * u2));
        if (i + 1 < n)
            v[i + 1] = (float)(r * sin(2 * M_PI * u2));
    }
}

static enum vc_status write_weights(const char *dir, const struct idf2_model_config *m,
                                    uint64_t seed, struct vc_err *err)
{
    struct idf2_mk_tensor *t = NULL;
    size_t n = 0;
    VC_TRY(idf2_mk_tensors(m, &t, &n, err));
    struct st_writer *w = NULL;
    enum vc_status rc = st_writer_new(&w, err);
    for (size_t i = 0; rc >= 0 && i < n; i++) {
        size_t count = 1;
        for (int d = 0; d < t[i].n_dims; d++)
            count *= (size_t)t[i].shape[d];
        float *v = vc_malloc_array(count, sizeof *v);
        if (!v) {
            rc = oom(err);
            break;
        }
        if (t[i].ones)
            for (size_t k = 0; k < count; k++)
                v[k] = 1.0f;
        else
            fill_normal(v, count, seed * 1000003u + i);
        rc = st_writer_add(w, t[i].name, ST_F32, t[i].shape, t[i].n_dims, v, err);
        free(v);
    }
    char *path = rc >= 0 ? vc_malloc_array(strlen(dir) + 32, 1) : NULL;
    if (rc >= 0 && !path)
        rc = oom(err);
    if (rc >= 0) {
        sprintf(path, "%s/model.safetensors", dir);
        rc = st_writer_save(w, path, err);
    }
    free(path);
    st_writer_free(w);
    free(t);
    return rc;
}

enum vc_status idf2_mk_tiny(const char *dir, uint64_t seed, const char *words_path,
                            struct vc_err *err)
{
    const int vocab = TINY_PIECES + 3;
    char config[sizeof tiny_config + 32];
    snprintf(config, sizeof config, tiny_config, vocab - 2, vocab);
    struct idf2_model_config m;
    VC_TRY(idf2_config_parse_model(config, "config.json", &m, err));
    VC_TRY(vc_fs_mkdirs(dir, err));
    char *path = vc_malloc_array(strlen(dir) + 32, 1);
    if (!path)
        return oom(err);
    sprintf(path, "%s/config.json", dir);
    enum vc_status rc = vc_fs_write_atomic(path, config, strlen(config), err);
    free(path);
    VC_TRY(rc);
    const struct idf2_mk_side side = {
        .vocab = vocab,
        .image_seq_len = m.perceiver.n_latents,
        .longest_edge = m.vision.image_size,
        .shortest_edge = m.vision.patch_size * 2,
        .image_splitting = false,
    };
    VC_TRY(idf2_mk_side_configs(dir, &side, err));
    cJSON *tok = idf2_mk_tokenizer(TINY_PIECES, words_path);
    if (!tok)
        return oom(err);
    VC_TRY(write_json(dir, "tokenizer.json", tok, err));
    return write_weights(dir, &m, seed, err);
}
