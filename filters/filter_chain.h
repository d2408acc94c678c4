/* filter_chain: a configured set of filters and the OBELICS way of applying
 * them: image filters to each image, caption filters to a pair's caption,
 * paragraph filters to each paragraph of a document text (paragraphs are
 * split on "\n\n"; failing ones are removed, the rest re-joined with
 * "\n\n"), document filters to the whole document afterwards.  Within a
 * kind, filters run in registry order and the first rejection decides
 * (OBELICS's `continue`), so the reason recorded is that filter's name.
 *
 * The chain is built once per run and is read-only afterwards: one chain
 * serves every thread.  Each thread brings its own struct filter_scratch.
 * The chain knows nothing of samples, spec files or ledgers; the filter
 * stage (stages/st_filter.c) adapts it. */
#ifndef VC_FILTERS_FILTER_CHAIN_H
#define VC_FILTERS_FILTER_CHAIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/vc_err.h"
#include "filter.h"

struct cJSON;
struct filter_chain;
struct filter_scratch;

/* Room in struct filter_report; the registry test checks the table fits. */
enum { FILTER_REPORT_MAX = 64 };

/* OBELICS's end-of-document marker paragraph, which no filter judges. */
#define FILTER_EOD_TOKEN "END_OF_DOCUMENT_TOKEN_TO_BE_REPLACED"

/* Builds a chain.  `filters` is a JSON array of objects {"name": ...,
 * params...} (NULL: none).  With use_defaults every filter starts as its
 * table says (enabled or not, default parameters) and the entries adjust
 * them; without, only the listed filters exist, enabled unless they say
 * "enabled": false.  VC_EUSAGE (bad_spec) naming the filter and key for an
 * unknown filter, a repeated one, a bad parameter; errors of resource
 * loading (word list, fingerprints) name the file.  *out is owned
 * (filter_chain_free). */
enum vc_status filter_chain_new(const struct cJSON *filters, bool use_defaults,
                                struct filter_chain **out, struct vc_err *err);
void filter_chain_free(struct filter_chain *chain);

/* The configured filter of registry position i, or NULL when the chain
 * does not have it; borrowed until filter_chain_free. */
const struct filter *filter_chain_filter(const struct filter_chain *chain, size_t i);
/* Whether any enabled filter is of that kind / needs decoded pixels. */
bool filter_chain_has_kind(const struct filter_chain *chain, enum filter_kind kind);
bool filter_chain_needs_pixels(const struct filter_chain *chain);

/* Per-thread scratch (text analysis, joined text).  Owned. */
struct filter_scratch *filter_scratch_new(void);
void filter_scratch_free(struct filter_scratch *s);

/* Outcome of one check.  `by` is NULL when kept. */
struct filter_verdict {
    const struct filter *by;
    double score, threshold;
};

/* What a sample's checks computed, indexed by registry position:
 * the last score of each filter that ran, and how many paragraphs or
 * images each filter removed from a document.  Clear before a sample. */
struct filter_report {
    double score[FILTER_REPORT_MAX];
    unsigned char scored[FILTER_REPORT_MAX];
    uint32_t removed[FILTER_REPORT_MAX];
};
void filter_report_clear(struct filter_report *rep);

/* One image: the encoded bytes and its source URL (NULL when unknown). */
struct filter_image {
    const uint8_t *data;
    size_t size;
    const char *url;
};

/* Runs the image filters.  VC_OK (kept) or VC_REJECT with *v filled;
 * VC_ESAMPLE (with img_probe's reason) when the header of a recognised
 * format cannot be read, or when the format is unknown and img_format is
 * off; VC_EFATAL on OOM.  `rep` may be NULL. */
enum vc_status filter_chain_image(const struct filter_chain *chain, struct filter_scratch *s,
                                  const struct filter_image *img, struct filter_verdict *v,
                                  struct filter_report *rep, struct vc_err *err);

/* Runs the caption filters on text[0..n).  VC_OK or VC_REJECT. */
enum vc_status filter_chain_caption(const struct filter_chain *chain, struct filter_scratch *s,
                                    const char *text, size_t n, struct filter_verdict *v,
                                    struct filter_report *rep, struct vc_err *err);

/* Runs the paragraph filters on one text node of a document.  *out is the
 * text with failing paragraphs removed (kept paragraphs byte-identical,
 * joined by "\n\n"); borrowed until the next call with `s`.  *n_removed
 * counts removed paragraphs; an empty *out means the whole node goes. */
enum vc_status filter_chain_paragraphs(const struct filter_chain *chain, struct filter_scratch *s,
                                       const char *text, size_t n, const char **out,
                                       size_t *out_len, size_t *n_removed,
                                       struct filter_report *rep, struct vc_err *err);

/* Runs the document filters on the document's text (its remaining text
 * nodes joined by "\n\n", as OBELICS does) and its remaining image count.
 * VC_OK or VC_REJECT. */
enum vc_status filter_chain_document(const struct filter_chain *chain, struct filter_scratch *s,
                                     const char *text, size_t n, size_t n_images,
                                     struct filter_verdict *v, struct filter_report *rep,
                                     struct vc_err *err);

#endif
