/* sample_stats: what the audit records about one sample (image format and
 * geometry from the header, byte sizes, caption or document text length,
 * images per document, language), shared by the `stats` stage and by
 * `vlmcurate stats` so both describe data the same way. */
#ifndef VC_STAGES_SAMPLE_STATS_H
#define VC_STAGES_SAMPLE_STATS_H

#include <stdbool.h>
#include <stddef.h>

#include "core/sample.h"
#include "core/vc_err.h"

struct cJSON;
struct stats;

struct sample_stats_opts {
    bool decode; /* also decode every image fully (slow); header only otherwise */
    /* Optional language identification: ISO code or NULL when unsure. */
    const char *(*lang)(const char *text, size_t n, void *ctx);
    void *lang_ctx;
};

/* Records `s` into group "all" and, when s->source is set, into
 * "source:<name>".  Images that fail the probe (or the decode) are counted
 * under family "error" with their reason and the sample key; the return is
 * then VC_ESAMPLE with the first such error in `err`, else VC_OK.  The
 * caller counts the funnel. */
enum vc_status sample_stats_observe(struct stats *st, const struct sample *s,
                                    const struct sample_stats_opts *opts, struct vc_err *err);

/* Turns on language counting: loads the TextCat fingerprints the language
 * filter uses (without Scots, a near copy of English) into opts->lang_ctx.
 * A text (a caption, a document's longest text) gets a language only with
 * at least SAMPLE_STATS_LANG_MIN_CHARS characters and a TextCat confidence
 * of at least SAMPLE_STATS_LANG_MIN_CONF (more likely than all other
 * languages together); otherwise it counts as "und" (undetermined, the
 * ISO 639 code).  Release with sample_stats_lang_off. */
#define SAMPLE_STATS_LANG_MIN_CHARS    25
#define SAMPLE_STATS_LANG_MIN_CONF     0.5
#define SAMPLE_STATS_LANG_UNDETERMINED "und"
enum vc_status sample_stats_lang_on(struct sample_stats_opts *opts, struct vc_err *err);
void sample_stats_lang_off(struct sample_stats_opts *opts);

/* Adds the funnel of a run from its ledger (OUT/ledger.jsonl): every
 * input sample's state overall and per source ("source:<name>"), reject
 * and error reasons (the filter's name for filter rejections) with example
 * keys, and the scores of rejected samples as "score.<filter>". */
enum vc_status sample_stats_read_ledger(const char *path, struct stats *st, struct vc_err *err);

/* Filter and model scores ({name: score} under meta's "filter_scores"
 * and "model_scores", as the filter and score stages write them) into
 * histograms "score.<name>" of group "all".  NULL meta: nothing. */
void sample_stats_observe_scores(struct stats *st, const struct cJSON *meta);

/* Words (runs of non-space bytes) and UTF-8 characters in a text. */
void sample_stats_text_len(const char *text, size_t n, size_t *words, size_t *chars);

#endif
