/* flt_lang: language identification through libexttextcat (Debian's
 * libexttextcat + libexttextcat-data: Cavnar-Trenkle n-gram fingerprints
 * for ~160 languages), with a confidence score in [0, 1], and the
 * paragraph- and document-level language filters built on it.
 *
 * TextCat ranks languages by an "out-of-place" distance between the
 * text's n-gram profile and each language's; it reports no probability.
 * We turn the distances d_i of all languages into one:
 *
 *     conf_i = exp(-(d_i / d_best - 1) / T) / sum_j exp(-(d_j / d_best - 1) / T)
 *
 * a softmax over the relative gap to the best language.  TextCat itself
 * shortlists the languages within 3% of the best (its THRESHOLDVALUE
 * 1.03); T = LANGID_TEMPERATURE = 0.01 makes a rival at the edge of that
 * band weigh e^-3 (5%) of the winner, and one at a 1% gap e^-1.  A text
 * only one language explains gets a confidence near 1; a text two related
 * languages explain equally gets 1/2.  On tests/data/langid/ (12
 * languages, 294 paragraphs) every English paragraph scores >= 0.86 and
 * no other paragraph gives English more than 0.01, which is what makes
 * OBELICS's 0.8 a sensible threshold here (README, filters section).
 *
 * Languages can be left out of the ranking: by default Scots ("sco"),
 * whose fingerprint is English's with a few spellings changed (it is the
 * runner-up on every English paragraph of our set and wins 5 of 30).
 *
 * Limits: only the first LANGID_MAX_BYTES of a text are profiled (TextCat's
 * own documentation: "a few hundred bytes will suffice"); a text with no
 * letters gets confidence 0 for every language. */
#ifndef VC_FILTERS_FLT_LANG_H
#define VC_FILTERS_FLT_LANG_H

#include <stddef.h>

#include "core/vc_err.h"
#include "filter.h"

#define LANGID_DEFAULT_DIR "/usr/share/libexttextcat"
#define LANGID_TEMPERATURE 0.01
/* 1 KiB, about 170 English words: TextCat's authors find "a few hundred
 * bytes" enough, and building the profile (TextCat's fp_Create) is most
 * of the cost: 0.26 ms at 1 KiB against 1 ms at 4 KiB on this machine. */
enum { LANGID_MAX_BYTES = 1024 };
/* Languages one filter may leave out; a handful is all that makes sense. */
enum { LANGID_MAX_SKIP = 32 };

struct langid;

/* Loads every fingerprint listed in DIR/fpdb.conf except the languages in
 * skip[0..n_skip).  Languages are named by their fingerprint file ("en",
 * "de", "zh-Hans", "sr-Latn").  Owned: langid_free.  VC_EUSAGE naming the
 * file when DIR is not a TextCat fingerprint folder. */
enum vc_status langid_load(const char *dir, const char *const *skip, size_t n_skip,
                           struct langid **out, struct vc_err *err);
void langid_free(struct langid *m);
size_t langid_count(const struct langid *m);
/* Name of language i; borrowed until langid_free. */
const char *langid_name(const struct langid *m, size_t i);
/* Index of a language name; -1 when the fingerprints do not include it. */
long langid_find(const struct langid *m, const char *name);

struct langid_result {
    const char *best; /* most likely language; NULL when the text has no letters */
    double best_conf; /* its confidence */
    double conf;      /* confidence of the language asked for */
};

/* TextCat's out-of-place distance of `text` to every language (dist has
 * langid_count entries), equal to fp_Compare's.  *n_profile is the number
 * of n-grams in the text's profile (at most 400; 0 when the text has no
 * letters, dist then untouched).  Thread-safe. */
enum vc_status langid_distances(const struct langid *m, const char *text, size_t n, int *dist,
                                size_t *n_profile, struct vc_err *err);

/* Identifies `text` (UTF-8, n bytes) and gives the confidence of language
 * index `lang` (-1 for none).  Thread-safe on a shared model.  VC_EFATAL
 * on OOM. */
enum vc_status langid_identify(const struct langid *m, const char *text, size_t n, long lang,
                               struct langid_result *out, struct vc_err *err);

extern const struct filter_ops flt_par_lang;
extern const struct filter_ops flt_doc_lang;

#endif
