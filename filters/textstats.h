/* textstats: the one tokenizer and the text measures behind the OBELICS
 * paragraph and document filters (word splitting, character and word
 * n-gram repetition, special-character, punctuation and word-list
 * ratios), on a reusable per-thread scratch object.
 *
 * Semantics follow OBELICS's FilteringFunctions (huggingface/OBELICS,
 * obelics/processors/web_document_filtering.py): characters are Unicode
 * code points; Unicode space characters are standardised to ' ' first;
 * words are split on ' ', '\n' and '\t', lower-cased and stripped of
 * OBELICS's special characters at both ends, empty ones dropped.  Where
 * Python's Unicode tables are approximated (lower-casing, `\w`, the emoji
 * list), the header of textstats.c says how.
 *
 * Never allocates per call once warm; never keeps a pointer to the text.
 * Limit: TEXTSTATS_MAX_BYTES per text (a bigger one is an error, not a
 * silent truncation). */
#ifndef VC_FILTERS_TEXTSTATS_H
#define VC_FILTERS_TEXTSTATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/vc_err.h"

struct wordset;

/* 16 MiB: four times the pipeline's default json limit (a document's text
 * lives in its json field) and far beyond OBELICS's 2,000-word documents;
 * the scratch of one analysis (4 bytes per code point, a 12-byte hash slot
 * per two n-grams) then stays under half a GB even with the word-count
 * filters off. */
enum { TEXTSTATS_MAX_BYTES = 16 << 20 };

struct textstats;

/* Owned: free with textstats_free.  NULL on OOM. */
struct textstats *textstats_new(void);
void textstats_free(struct textstats *ts);

/* Analyses `text` (UTF-8, n bytes, NUL not needed; invalid bytes count as
 * U+FFFD).  Every query below describes the latest analysed text.
 * VC_ESAMPLE field_too_long past TEXTSTATS_MAX_BYTES, VC_EFATAL on OOM. */
enum vc_status textstats_analyse(struct textstats *ts, const char *text, size_t n,
                                 struct vc_err *err);

/* Code points of the text. */
size_t textstats_chars(const struct textstats *ts);
/* OBELICS words (lower-cased, stripped, non-empty). */
size_t textstats_words(const struct textstats *ts);
/* Word i as UTF-8 (not NUL-terminated); borrowed until the next analyse. */
const char *textstats_word(const struct textstats *ts, size_t i, size_t *len);
/* Runs of non-whitespace code points, as Python's str.split() counts them
 * (DataComp's caption word count). */
size_t textstats_whitespace_words(const struct textstats *ts);

/* OBELICS character repetition ratio: over the code-point n-grams, the
 * share held by the min(floor(sqrt(distinct)), distinct - singletons) most
 * frequent ones; 0 when the text is shorter than n.  VC_EFATAL on OOM. */
enum vc_status textstats_char_repetition(struct textstats *ts, size_t n, double *out,
                                         struct vc_err *err);
/* OBELICS word repetition ratio: share of word n-grams that occur more
 * than once (counting every occurrence); 0 with fewer than n words. */
enum vc_status textstats_word_repetition(struct textstats *ts, size_t n, double *out,
                                         struct vc_err *err);
/* Share of code points that are OBELICS special characters; 0 when empty. */
double textstats_special_ratio(const struct textstats *ts);
/* Share of words found in `set`; 0 when there are no words. */
double textstats_word_ratio(const struct textstats *ts, const struct wordset *set);
/* OBELICS punctuation ratio: tokens matching [\w']+|[,;:?!.], share of the
 * single punctuation marks among them; 0 with no tokens, and 1.0 when
 * min_tokens > 0 and there are fewer tokens than that (short paragraphs
 * are not judged by punctuation). */
double textstats_punctuation_ratio(const struct textstats *ts, size_t min_tokens);

/* The lower-casing the tokenizer applies to one code point. */
uint32_t textstats_lower(uint32_t cp);
/* Whether a code point is one of OBELICS's special characters. */
bool textstats_is_special(uint32_t cp);
/* The hash the tokenizer and the word sets share (64-bit, seeded FNV-1a
 * followed by a final avalanche). */
uint64_t textstats_hash(const void *data, size_t n);

#endif
