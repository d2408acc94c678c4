/* stats: mergeable dataset statistics for the audit (the `stats` stage and
 * `vlmcurate stats DIR`).  A stats object holds groups ("all", and one per
 * source, "source:<name>"); each group holds counter families (funnel,
 * format, language, reject reasons, each counter with a few example keys)
 * and fixed-bin histograms (image width, height, aspect ratio, pixels,
 * bytes, text length, images per document, filter scores).
 *
 * Bins are fixed by the histogram's name, never by the data, so per-shard
 * stats merge exactly and the merged result does not depend on the order
 * or the number of tasks.  Everything is emitted sorted by name. */
#ifndef VC_MANIFESTS_STATS_H
#define VC_MANIFESTS_STATS_H

#include <stdbool.h>
#include <stdint.h>

#include "core/vc_err.h"

struct cJSON;
struct stats;

/* Example keys kept per counter: enough to find a few culprits by hand. */
enum { STATS_MAX_EXAMPLES = 5 };

/* The JSON schema name written into every stats document. */
#define STATS_SCHEMA "vlmcurate-stats-v1"

/* Owned: free with stats_free.  NULL on OOM. */
struct stats *stats_new(void);
void stats_free(struct stats *s);

/* Adds n to counter `family`/`name` of `group` and remembers example_key
 * (may be NULL) among the first STATS_MAX_EXAMPLES in key order.
 * Families used by the project: "funnel" (input, written, rejected,
 * duplicate, error, and per stage), "reject" (reason or filter name),
 * "error" (reason), "format", "language", "source".  VC_EFATAL on OOM. */
enum vc_status stats_count(struct stats *s, const char *group, const char *family, const char *name,
                           uint64_t n, const char *example_key);

/* Records one value in histogram `hist` of `group`.  Known histogram names
 * (width, height, aspect_ratio, pixels, bytes, text_words, text_chars,
 * doc_images, doc_texts) have fixed log or linear bins; any name starting
 * with "score." gets the ratio-then-octaves layout (STATS_SCALE_RATIO_LOG2)
 * so ratio and count scores share one mergeable layout.
 * Non-finite values are counted in `n_nan` and otherwise ignored. */
enum vc_status stats_observe(struct stats *s, const char *group, const char *hist, double value);

/* Adds every counter, example and histogram of `from` into `into`. */
enum vc_status stats_merge(struct stats *into, const struct stats *from, struct vc_err *err);

/* Owned cJSON tree (cJSON_Delete); NULL on OOM.  Schema in the README. */
struct cJSON *stats_to_json(const struct stats *s);
/* Parses what stats_to_json wrote; VC_ESAMPLE json_invalid on a document
 * of another schema or with inconsistent bins. */
enum vc_status stats_from_json(const struct cJSON *json, struct stats **out, struct vc_err *err);

/* Reads a counter (0 when absent) and a histogram's total count. */
uint64_t stats_counter(const struct stats *s, const char *group, const char *family,
                       const char *name);
uint64_t stats_hist_total(const struct stats *s, const char *group, const char *hist);

/* Writes stats_to_json to `path` atomically (temp file, fsync, rename). */
enum vc_status stats_write_json(const struct stats *s, const char *path, struct vc_err *err);
/* Loads a file written by stats_write_json. */
enum vc_status stats_read_json(const char *path, struct stats **out, struct vc_err *err);

/* Bin layouts: equal widths, equal widths in log2(value), or (filter
 * scores) ten linear bins over [0, 1) followed by one bin per octave. */
enum { STATS_SCALE_LINEAR = 0, STATS_SCALE_LOG2 = 1, STATS_SCALE_RATIO_LOG2 = 2 };

/* Read-only walk for renderers.  Groups, families, counters and histograms
 * come sorted by name; pointers are borrowed until the stats change. */
struct stats_hist_view {
    const char *name;
    int log_scale; /* STATS_SCALE_*: how bins are laid out */
    double lo, hi; /* range covered by the regular bins */
    int n_bins;
    const uint64_t *counts; /* n_bins + 2: [0] underflow, [n_bins + 1] overflow */
    uint64_t n, n_nan;
    double sum, min, max;
};
struct stats_counter_view {
    const char *family, *name;
    uint64_t count;
    const char *const *examples;
    int n_examples;
};
size_t stats_group_count(const struct stats *s);
const char *stats_group_name(const struct stats *s, size_t i);
size_t stats_counter_count(const struct stats *s, size_t group);
void stats_counter_at(const struct stats *s, size_t group, size_t i,
                      struct stats_counter_view *out);
size_t stats_hist_count(const struct stats *s, size_t group);
void stats_hist_at(const struct stats *s, size_t group, size_t i, struct stats_hist_view *out);
/* Index of group `name` for the walk above, -1 when absent. */
long stats_group_find(const struct stats *s, const char *name);
/* Histogram `hist` of `group` into *out (borrowed as above); false when
 * absent. */
bool stats_hist_find(const struct stats *s, const char *group, const char *hist,
                     struct stats_hist_view *out);
/* Lower edge of bin b (0 <= b <= n_bins) of a histogram view. */
double stats_hist_edge(const struct stats_hist_view *h, int b);

/* The percentiles stats.json and the report give for every histogram. */
enum { STATS_N_PERCENTILES = 7 };
extern const int stats_percentiles[STATS_N_PERCENTILES];
/* The q-quantile (0 < q <= 1) by nearest rank (the value of rank
 * ceil(q*n) in sorted order), estimated from the bins: it lies in the bin
 * holding that rank, placed within the bin as if the bin's values were
 * evenly spread from its lower edge, and kept within [min, max]; the
 * first and last ranks are min and max exactly.  So it is exact to one bin's
 * width, the price of statistics that merge exactly.  0 when n is 0. */
double stats_hist_percentile(const struct stats_hist_view *h, double q);

#endif
