/* filter: the one interface every quality filter implements (a name, a
 * kind, JSON parameters with typed defaults, a score and a threshold
 * comparison), the configured filter instance, and the shared-resource
 * cache (word lists, language fingerprints) filters load once per run.
 *
 * A filter never looks at a sample, a spec or a ledger: it scores one
 * image, one text span or one document described by struct filter_input.
 * The chain (filter_chain.h) decides what to feed it; a stage decides what
 * a rejection means for the sample.  The ledger reason of a rejection is
 * the filter's name.
 *
 * Thresholds are the parameters "min" and "max" of a filter, compared the
 * way OBELICS compares them: a score equal to a bound is kept (`score <
 * min` or `score > max` rejects), except for filters flagged
 * FILTER_MAX_EXCLUSIVE (`score >= max` rejects, as OBELICS's spam-word
 * cut does).  Limits on text and image sizes are the chain's. */
#ifndef VC_FILTERS_FILTER_H
#define VC_FILTERS_FILTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/vc_err.h"

struct cJSON;
struct img;
struct img_info;
struct textstats;

enum filter_kind {
    FILTER_KIND_IMAGE = 0, /* one image: header fields, optional pixels, source URL */
    FILTER_KIND_TEXT,      /* one paragraph of a document: failing paragraphs are removed */
    FILTER_KIND_PAIR,      /* the caption (alt text) of an image-text pair */
    FILTER_KIND_DOCUMENT,  /* a whole interleaved document: failing documents are removed */
};

const char *filter_kind_name(enum filter_kind kind);

enum filter_param_type {
    FILTER_PARAM_NUMBER = 0, /* JSON number */
    FILTER_PARAM_INT,        /* JSON number with an integral value */
    FILTER_PARAM_BOOL,       /* true / false */
    FILTER_PARAM_STRING,     /* JSON string */
    FILTER_PARAM_STRINGS,    /* JSON array of strings */
};

const char *filter_param_type_name(enum filter_param_type type);

/* One parameter of a filter.  `def` is the default written as JSON text
 * ("0.1", "true", "[\"jpg\",\"png\"]"), so the README shows exactly what a
 * spec would say.  Every filter also takes "name" and "enabled".
 * Numeric parameters (NUMBER, INT) declare the closed range [lo, hi] of
 * values that mean something (a ratio in 0..1, a width >= 0), so that a
 * threshold such as `min -100` is refused at spec load instead of silently
 * keeping everything; lo < hi is required for them. */
struct filter_param {
    const char *key;
    enum filter_param_type type;
    const char *def;
    const char *doc;
    double lo, hi;
};

/* Ends a parameter table (an entry with key NULL). */
#define FILTER_PARAMS_END                                                                          \
    {                                                                                              \
        NULL, 0, NULL, NULL, 0, 0                                                                  \
    }

enum filter_flags {
    FILTER_MAX_EXCLUSIVE = 1u << 0, /* reject at score >= max, not only above it */
    FILTER_NEEDS_PIXELS = 1u << 1,  /* scores decoded pixels: the chain decodes the image */
    FILTER_NEEDS_HEADER = 1u << 2,  /* scores the probed header (struct img_info) */
};

/* What a filter scores.  Fields a kind does not use are zero/NULL. */
struct filter_input {
    /* TEXT, PAIR and DOCUMENT: the text (UTF-8, not NUL-terminated) and its
     * analysis, already run by the caller (textstats_analyse). */
    const char *text;
    size_t text_len;
    struct textstats *ts;
    /* IMAGE: the encoded bytes, the probed header (NULL when the format is
     * not one we read), the decoded pixels (NULL unless some enabled filter
     * needs them; then NULL also when decoding failed) and the URL the
     * image came from (NULL when unknown). */
    const uint8_t *image;
    size_t image_size;
    const struct img_info *info;
    const struct img *pixels;
    const char *url;
    /* DOCUMENT: images left in the document after the image filters. */
    size_t n_images;
};

struct filter;
struct filter_env;

struct filter_ops {
    const char *name; /* [a-z0-9_]+, unique; the ledger reason of a rejection */
    enum filter_kind kind;
    const char *summary; /* one line: what the score is */
    const char *source;  /* where the default threshold comes from */
    bool enabled;        /* part of the default chain */
    unsigned flags;      /* enum filter_flags */
    /* Parameters, terminated by an entry with key NULL.  "min" and "max"
     * (FILTER_PARAM_NUMBER or _INT) are the thresholds. */
    const struct filter_param *params;
    /* Optional: reads parameters, loads resources through `env`, sets
     * f->state.  Called once per chain, single-threaded. */
    enum vc_status (*init)(struct filter *f, struct filter_env *env, struct vc_err *err);
    /* Optional: releases f->state (resources from `env` are the env's). */
    void (*fini)(struct filter *f);
    /* Computes the score.  Must be safe to call from several threads at
     * once on the same filter (state is read-only after init).  Fails only
     * on resource exhaustion. */
    enum vc_status (*score)(const struct filter *f, const struct filter_input *in, double *score,
                            struct vc_err *err);
};

/* A configured filter. */
struct filter {
    const struct filter_ops *ops; /* borrowed: static */
    bool enabled;
    double min, max;      /* -INFINITY / INFINITY when the filter has no such bound */
    struct cJSON *params; /* owned: every parameter with its value (defaults filled in) */
    void *state;          /* owned by ops->fini */
};

/* Builds a filter from its spec entry `cfg` (an object with "name" and any
 * of the filter's parameters; NULL for all defaults) and runs its init.
 * VC_EUSAGE (bad_spec) naming the filter and the key for an unknown key, a
 * value of the wrong type, a number outside the parameter's range, or
 * min > max.  On success *out is owned
 * (filter_free). */
enum vc_status filter_new(const struct filter_ops *ops, const struct cJSON *cfg,
                          struct filter_env *env, struct filter **out, struct vc_err *err);
void filter_free(struct filter *f);
/* The checks filter_new makes on `cfg`, without building anything (for
 * filters a spec mentions but disables). */
enum vc_status filter_check_config(const struct filter_ops *ops, const struct cJSON *cfg,
                                   struct vc_err *err);

/* Resolved parameter values, for init functions.  The key must be one of
 * the filter's parameters of that type (a programming error otherwise,
 * answered with 0 / false / NULL).  Strings are borrowed until
 * filter_free. */
double filter_param_number(const struct filter *f, const char *key);
bool filter_param_bool(const struct filter *f, const char *key);
const char *filter_param_string(const struct filter *f, const char *key);
size_t filter_param_strings_count(const struct filter *f, const char *key);
const char *filter_param_strings_at(const struct filter *f, const char *key, size_t i);

/* The threshold comparison.  Returns true when `score` is kept; otherwise
 * *threshold (may be NULL) is the bound it crossed.  NaN is rejected
 * against min (or max when there is no min). */
bool filter_keeps(const struct filter *f, double score, double *threshold);

/* Checks a parameter table: unique keys, defaults that parse as JSON of the
 * declared type and lie in the declared range, min <= max.  VC_EFATAL naming the filter otherwise
 * (a defect in the table, caught by the registry test). */
enum vc_status filter_ops_check(const struct filter_ops *ops, struct vc_err *err);

/* Shared, read-only resources loaded once per chain and keyed by name (for
 * example "wordset:/usr/share/dict/american-english"), so two filters that
 * read the same word list share one copy.  Owned: filter_env_free releases
 * every resource. */
struct filter_env *filter_env_new(void);
void filter_env_free(struct filter_env *env);
/* Returns the resource `key`, loading it with load(arg, &res, err) the
 * first time.  The resource is borrowed until filter_env_free. */
enum vc_status
filter_env_get(struct filter_env *env, const char *key,
               enum vc_status (*load)(const void *arg, void **res, struct vc_err *err),
               void (*release)(void *res), const void *arg, void **out, struct vc_err *err);

#endif
