/* idf2_config: the hyper-parameters of an Idefics2 checkpoint folder, read
 * from config.json (old "torch_dtype"/"rope_theta" and new
 * "dtype"/"rope_parameters" spellings), generation_config.json,
 * preprocessor_config.json, processor_config.json and tokenizer_config.json
 * (and the chat template from chat_template.jinja / chat_template.json).
 *
 * Missing keys take the transformers class defaults of SPEC §1.3 (not the
 * 8B values).  Every value is range-checked before anyone sizes a buffer
 * from it: the limits below are a few times the largest published model
 * dimension, so an absurd config is a clear VC_EUSAGE bad_checkpoint error
 * instead of a multi-terabyte allocation.  This module reads JSON only; it
 * never touches weights. */
#ifndef VC_SYNTH_IDF2_CONFIG_H
#define VC_SYNTH_IDF2_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/vc_err.h"

/* Widths/depths beyond these are not a model anyone ships (Mistral-7B has
 * 4096/14336/32 layers, the largest Llama 16384/53248/126): reject them. */
enum {
    IDF2_MAX_WIDTH = 65536,
    IDF2_MAX_LAYERS = 1024,
    IDF2_MAX_HEADS = 1024,
    IDF2_MAX_VOCAB = 1 << 22,
    IDF2_MAX_IMAGE_SIZE = 16384,
    IDF2_MAX_EOS = 8,
    IDF2_MAX_BAD_WORDS = 64,
    IDF2_MAX_BAD_WORD_LEN = 8,
};

/* The activations the checkpoints use; anything else is refused at load. */
enum idf2_act {
    IDF2_ACT_SILU = 0,  /* "silu", "swish" */
    IDF2_ACT_GELU_TANH, /* "gelu_pytorch_tanh", "gelu_new", "gelu_fast" */
    IDF2_ACT_GELU,      /* "gelu": exact erf form */
};

struct idf2_vision_config {
    int hidden_size;       /* Dv */
    int intermediate_size; /* Iv */
    int num_hidden_layers;
    int num_attention_heads; /* Hv; head dim = Dv / Hv */
    int num_channels;
    int image_size; /* N = image_size / patch_size patches per side */
    int patch_size; /* p */
    enum idf2_act hidden_act;
    double layer_norm_eps;
};

struct idf2_text_config {
    int vocab_size;        /* V */
    int hidden_size;       /* Dt */
    int intermediate_size; /* It */
    int num_hidden_layers;
    int num_attention_heads; /* Ht */
    int num_key_value_heads; /* Kt */
    int head_dim;            /* dt (Dt / Ht when absent or null) */
    enum idf2_act hidden_act;
    double rms_norm_eps;
    double rope_theta;
    int max_position_embeddings;
    int sliding_window; /* 0 = none (null in the file) */
};

struct idf2_perceiver_config {
    int hidden_size; /* always Dt after loading (SPEC §1.3 width rule) */
    int n_latents;   /* n_lat */
    int depth;
    int n_heads;    /* Hp */
    int head_dim;   /* dp */
    int n_kv_heads; /* Kp */
    enum idf2_act hidden_act;
    double rms_norm_eps; /* perceiver key if present, else the text one */
};

/* config.json */
struct idf2_model_config {
    struct idf2_vision_config vision;
    struct idf2_text_config text;
    struct idf2_perceiver_config perceiver;
    int image_token_id;
    bool tie_word_embeddings;
};

/* generation_config.json; defaults when the file is absent: bos 1, eos
 * {2}, pad 0, no bad words. */
struct idf2_generation_config {
    int bos_token_id;
    int pad_token_id; /* -1 when null */
    int n_eos;
    int eos_token_ids[IDF2_MAX_EOS];
    int n_bad_words;
    int bad_word_len[IDF2_MAX_BAD_WORDS];
    int bad_words_ids[IDF2_MAX_BAD_WORDS][IDF2_MAX_BAD_WORD_LEN];
    int max_new_tokens; /* 0 when the file does not say */
};

/* preprocessor_config.json; defaults = Idefics2ImageProcessor's. */
struct idf2_preproc_config {
    bool do_convert_rgb, do_resize, do_rescale, do_normalize, do_pad, do_image_splitting;
    int longest_edge, shortest_edge;
    int resample; /* PIL enum; only 2 (BILINEAR) is accepted */
    double rescale_factor;
    double image_mean[3], image_std[3];
};

/* processor_config.json + tokenizer_config.json (+ chat_template.jinja /
 * chat_template.json for the template). */
struct idf2_processor_config {
    int image_seq_len;                 /* default 64 */
    bool add_bos_token;                /* default true */
    bool add_eos_token;                /* default false */
    bool clean_up_tokenization_spaces; /* default false (LlamaTokenizerFast's) */
    char *chat_template; /* owned; chat_template.jinja, chat_template.json, processor_config,
                            tokenizer_config: the first that has one; NULL if none */
};

struct idf2_config {
    struct idf2_model_config model;
    struct idf2_generation_config gen;
    struct idf2_preproc_config preproc;
    struct idf2_processor_config proc;
};

/* Reads every config file of a checkpoint folder.  config.json is required;
 * the others are optional (defaults).  On success *cfg owns chat_template:
 * release it with idf2_config_release.  On failure *cfg holds nothing. */
enum vc_status idf2_config_load_dir(const char *dir, struct idf2_config *cfg, struct vc_err *err);
void idf2_config_release(struct idf2_config *cfg);

/* The per-file parsers (tests and fuzzers feed them text directly).  `json`
 * is NUL-terminated; `label` names the file in error messages.  Each fills
 * its struct with defaults first. */
enum vc_status idf2_config_parse_model(const char *json, const char *label,
                                       struct idf2_model_config *out, struct vc_err *err);
enum vc_status idf2_config_parse_generation(const char *json, const char *label,
                                            struct idf2_generation_config *out, struct vc_err *err);
enum vc_status idf2_config_parse_preproc(const char *json, const char *label,
                                         struct idf2_preproc_config *out, struct vc_err *err);
/* Merges one processor_config.json or tokenizer_config.json into *out
 * (keys present in the text override; a chat_template already set is kept).
 * Call idf2_config_processor_defaults first. */
void idf2_config_processor_defaults(struct idf2_processor_config *out);
enum vc_status idf2_config_parse_processor(const char *json, const char *label,
                                           struct idf2_processor_config *out, struct vc_err *err);

void idf2_config_model_defaults(struct idf2_model_config *out);
const char *idf2_act_name(enum idf2_act act);

#endif
