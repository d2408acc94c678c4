/* idf2_mkmodel: random-weight Idefics2 checkpoints in the exact Hugging
 * Face layout (SPEC §1), for the demo and the benchmarks: the tensor list
 * of a config, a generated Llama/Mistral-layout BPE tokenizer.json, the
 * side configs (generation, preprocessor, processor, tokenizer), and for
 * small models the whole folder in one call.  The weights are N(0, 0.02)
 * noise (norm weights 1, as at initialisation): a model made here
 * generates noise, never captions. */
#ifndef VC_SYNTH_IDF2_MKMODEL_H
#define VC_SYNTH_IDF2_MKMODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/vc_err.h"
#include "synth/idf2_config.h"

struct cJSON;

struct idf2_mk_tensor {
    char name[128];
    int n_dims;
    int64_t shape[4];
    bool ones; /* a norm weight: 1.0 everywhere */
};

/* The tensors of SPEC §1.2 for `m`, in Hugging Face's state-dict order.
 * *out is owned (free()). */
enum vc_status idf2_mk_tensors(const struct idf2_model_config *m, struct idf2_mk_tensor **out,
                               size_t *n, struct vc_err *err);

/* tokenizer.json for a vocabulary of n_pieces pieces (<unk> <s> </s>, the
 * 256 byte tokens, "▁" and printable ASCII, then every prefix of "▁word"
 * for the lowercase words of `words_path` (may be NULL or missing:
 * unreachable filler pieces then) with its merge), followed by the added
 * tokens <fake_token_around_image>, <image>, <end_of_utterance>.  A valid
 * BPE: a listed word is one token, anything else falls back to shorter
 * pieces and bytes.  NULL on OOM.  n_pieces >= 512. */
struct cJSON *idf2_mk_tokenizer(int n_pieces, const char *words_path);

/* generation_config.json, preprocessor_config.json, processor_config.json
 * and tokenizer_config.json for a model of vocabulary `vocab` (its last
 * three ids the added tokens), written into dir. */
struct idf2_mk_side {
    int vocab, image_seq_len;
    int longest_edge, shortest_edge;
    bool image_splitting;
};
enum vc_status idf2_mk_side_configs(const char *dir, const struct idf2_mk_side *s,
                                    struct vc_err *err);

/* The demo's tiny model (vision 48 wide, 2 layers; perceiver 8 latents;
 * text 64 wide, 2 layers; 1000 pieces + 3 added tokens; images resized to
 * at most 84 px): config.json, model.safetensors (f32), tokenizer.json
 * from `words_path` and the side configs, written into dir (created).
 * Deterministic for a seed; a few hundred KB. */
enum vc_status idf2_mk_tiny(const char *dir, uint64_t seed, const char *words_path,
                            struct vc_err *err);

#endif
