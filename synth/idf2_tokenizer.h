/* idf2_tokenizer: the Llama/Mistral SentencePiece-BPE tokenizer of an
 * Idefics2 checkpoint, read from tokenizer.json (SPEC §2), with the encode
 * and decode semantics of the Rust `tokenizers` library that transformers
 * uses.
 *
 * Supported layouts (anything else is refused at load, VC_EUSAGE
 * bad_tokenizer): legacy, normalizer Sequence[Prepend("▁")?, Replace(" "
 * -> "▁")] with pre_tokenizer null; or normalizer null with a Metaspace("▁")
 * pre_tokenizer (prepend_scheme first/always/never or the older
 * add_prefix_space, split true/false).  Model BPE (byte_fallback, fuse_unk,
 * merges as "a b" strings or ["a", "b"] pairs), post_processor
 * TemplateProcessing with special tokens around $A (or null), decoder
 * Sequence[Replace("▁" -> " "), ByteFallback, Fuse, Strip(" ", 1, 0)?] or
 * Metaspace("▁"), added tokens with any of normalized/lstrip/rstrip/
 * single_word.
 *
 * Limits: tokenizer.json is read with a 64 MiB cap; ids above
 * IDF2_TOK_MAX_ID, or far beyond the number of pieces (sparse numbering),
 * are refused, so a hostile file cannot make us allocate more than a small
 * multiple of its own size.  Encoding is O(n log n) in the text
 * length (heap-driven merges), so long texts are safe.
 *
 * A loaded tokenizer is immutable apart from idf2_tokenizer_set_specials;
 * encode/decode on it may run from several threads at once. */
#ifndef VC_SYNTH_IDF2_TOKENIZER_H
#define VC_SYNTH_IDF2_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/vc_err.h"

/* The largest real vocabularies are ~256k; 4M leaves room and bounds the
 * id -> piece table a hostile file can make us allocate (32 MiB). */
#define IDF2_TOK_MAX_ID (1 << 22)
/* Real tokenizer.json files are 2-10 MB. */
#define IDF2_TOK_MAX_JSON_BYTES ((size_t)64 << 20)

struct idf2_tokenizer;

/* Loads `path` (a tokenizer.json).  Owned: idf2_tokenizer_free. */
enum vc_status idf2_tokenizer_load(const char *path, struct idf2_tokenizer **out,
                                   struct vc_err *err);
/* The same from a buffer (need not be NUL-terminated; copied); `label`
 * names it in error messages.  The fuzz target uses this. */
enum vc_status idf2_tokenizer_load_json(const char *json, size_t len, const char *label,
                                        struct idf2_tokenizer **out, struct vc_err *err);
void idf2_tokenizer_free(struct idf2_tokenizer *tok);

/* Overrides the special tokens that encode(add_special=true) puts around
 * the text, as LlamaTokenizerFast does from tokenizer_config.json's
 * add_bos_token / add_eos_token: `bos_id` first (-1: none), `eos_id` last
 * (-1: none).  VC_EUSAGE when an id is not a known token.  Not thread-safe
 * against concurrent encodes. */
enum vc_status idf2_tokenizer_set_specials(struct idf2_tokenizer *tok, int32_t bos_id,
                                           int32_t eos_id, struct vc_err *err);

/* tokenizer_config.json's clean_up_tokenization_spaces (off by default,
 * LlamaTokenizerFast's default): decode then drops the space before
 * . ? ! , and English contractions ('s 're n't ...) as transformers'
 * clean_up_tokenization does.  Not thread-safe against concurrent decodes. */
void idf2_tokenizer_set_clean_up(struct idf2_tokenizer *tok, bool on);

/* One past the largest id of the vocab and the added tokens. */
int32_t idf2_tokenizer_n_ids(const struct idf2_tokenizer *tok);
/* The id of a piece or added token written exactly as in the file
 * ("▁the", "<image>"); -1 when absent. */
int32_t idf2_tokenizer_find(const struct idf2_tokenizer *tok, const char *piece);
/* The piece of an id, NUL-terminated; NULL for an unknown id.  Borrowed
 * until idf2_tokenizer_free. */
const char *idf2_tokenizer_piece(const struct idf2_tokenizer *tok, int32_t id);
/* True for added tokens marked "special" (dropped by skip_special). */
bool idf2_tokenizer_is_special(const struct idf2_tokenizer *tok, int32_t id);

/* Encodes `len` bytes of UTF-8 text (embedded NULs allowed; invalid UTF-8
 * is VC_EUSAGE text_not_utf8).  Added tokens written literally in the text
 * are recognised first (leftmost-longest; normalized ones in each
 * normalized piece), every text piece between them is normalized,
 * pre-tokenized and BPE-encoded separately, and with `add_special` the
 * post-processor's special tokens are added.  *ids is owned (free()); it is
 * non-NULL on success even when *n_ids is 0. */
enum vc_status idf2_tokenizer_encode(const struct idf2_tokenizer *tok, const char *text, size_t len,
                                     bool add_special, int32_t **ids, size_t *n_ids,
                                     struct vc_err *err);

/* Decodes ids to UTF-8 as Rust `tokenizers` does: "▁" -> " ", runs of byte
 * tokens <0xXX> joined (a run that is not valid UTF-8 becomes one U+FFFD per
 * byte), one leading space stripped.  Unknown ids are skipped, special
 * tokens too with `skip_special`.  *text is owned (free()), NUL-terminated,
 * and *text_len (optional) excludes the NUL; decoded text may contain NUL
 * bytes (<0x00>). */
enum vc_status idf2_tokenizer_decode(const struct idf2_tokenizer *tok, const int32_t *ids,
                                     size_t n_ids, bool skip_special, char **text, size_t *text_len,
                                     struct vc_err *err);

#endif
