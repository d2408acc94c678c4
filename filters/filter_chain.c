/* filter_chain: builds the configured filters from the registry and runs
 * them in order.  Owns the filters and the shared resources (the env);
 * each filter_scratch owns one thread's text analysis and output buffer.
 * Never writes to the caller's text or image bytes.  Decoded pixels live
 * only for the duration of one filter_chain_image call. */
#include "filter_chain.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "core/img.h"
#include "core/vc_mem.h"
#include "filter_registry.h"
#include "textstats.h"

struct filter_chain {
    struct filter_env *env;
    struct filter *filters[FILTER_REPORT_MAX]; /* by registry position; NULL = absent */
    size_t n;                                  /* registry size */
};

struct filter_scratch {
    struct textstats *ts;
    char *out; /* paragraphs kept, joined */
    size_t out_cap;
};

static enum vc_status oom(struct vc_err *err)
{
    return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "filters: out of memory");
}

void filter_chain_free(struct filter_chain *chain)
{
    if (!chain)
        return;
    for (size_t i = 0; i < chain->n; i++)
        filter_free(chain->filters[i]);
    filter_env_free(chain->env);
    free(chain);
}

/* The spec entry for registry filter `ops`, checking every entry's shape
 * on the way; NULL when the filter is not mentioned. */
static enum vc_status find_entry(const cJSON *filters, const struct filter_ops *ops,
                                 const cJSON **entry, struct vc_err *err)
{
    *entry = NULL;
    const cJSON *e;
    cJSON_ArrayForEach(e, filters)
    {
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(e, "name");
        if (!cJSON_IsString(name) || strcmp(name->valuestring, ops->name) != 0)
            continue;
        if (*entry)
            return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec, "filters: \"%s\" is listed twice",
                              ops->name);
        *entry = e;
    }
    return VC_OK;
}

static enum vc_status check_entries(const cJSON *filters, struct vc_err *err)
{
    if (!filters)
        return VC_OK;
    if (!cJSON_IsArray(filters))
        return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec,
                          "filters: expected an array of {\"name\": ...} objects");
    const cJSON *e;
    int i = 0;
    cJSON_ArrayForEach(e, filters)
    {
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(e, "name");
        if (!cJSON_IsObject(e) || !cJSON_IsString(name))
            return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec,
                              "filters[%d]: expected an object with a \"name\" string", i);
        if (!filter_registry_find(name->valuestring))
            return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec,
                              "filters[%d]: unknown filter \"%s\"", i, name->valuestring);
        i++;
    }
    return VC_OK;
}

enum vc_status filter_chain_new(const struct cJSON *filters, bool use_defaults,
                                struct filter_chain **out, struct vc_err *err)
{
    *out = NULL;
    VC_TRY(check_entries(filters, err));
    struct filter_chain *chain = calloc(1, sizeof *chain);
    if (!chain || !(chain->env = filter_env_new())) {
        free(chain);
        return oom(err);
    }
    chain->n = filter_registry_count();
    if (chain->n > FILTER_REPORT_MAX) {
        filter_chain_free(chain);
        return vc_err_set(err, VC_EFATAL, VC_REASON_bad_spec,
                          "filters: registry outgrew FILTER_REPORT_MAX");
    }
    for (size_t i = 0; i < chain->n; i++) {
        const struct filter_ops *ops = filter_registry_at(i);
        const cJSON *entry;
        enum vc_status rc = find_entry(filters, ops, &entry, err);
        if (rc == VC_OK && entry)
            rc = filter_check_config(ops, entry, err);
        const cJSON *en = entry ? cJSON_GetObjectItemCaseSensitive(entry, "enabled") : NULL;
        bool enabled = en ? cJSON_IsTrue(en) : use_defaults ? ops->enabled : entry != NULL;
        /* Disabled filters are not built, so their resources never load. */
        if (rc == VC_OK && enabled) {
            rc = filter_new(ops, entry, chain->env, &chain->filters[i], err);
            if (rc == VC_OK)
                chain->filters[i]->enabled = true;
        }
        if (rc < 0) {
            filter_chain_free(chain);
            return rc;
        }
    }
    *out = chain;
    return VC_OK;
}

const struct filter *filter_chain_filter(const struct filter_chain *chain, size_t i)
{
    return i < chain->n ? chain->filters[i] : NULL;
}

static bool active(const struct filter *f, enum filter_kind kind)
{
    return f && f->enabled && f->ops->kind == kind;
}

bool filter_chain_has_kind(const struct filter_chain *chain, enum filter_kind kind)
{
    for (size_t i = 0; i < chain->n; i++)
        if (active(chain->filters[i], kind))
            return true;
    return false;
}

bool filter_chain_needs_pixels(const struct filter_chain *chain)
{
    for (size_t i = 0; i < chain->n; i++)
        if (active(chain->filters[i], FILTER_KIND_IMAGE) &&
            (chain->filters[i]->ops->flags & FILTER_NEEDS_PIXELS))
            return true;
    return false;
}

struct filter_scratch *filter_scratch_new(void)
{
    struct filter_scratch *s = calloc(1, sizeof *s);
    if (s && !(s->ts = textstats_new())) {
        free(s);
        return NULL;
    }
    return s;
}

void filter_scratch_free(struct filter_scratch *s)
{
    if (!s)
        return;
    textstats_free(s->ts);
    free(s->out);
    free(s);
}

void filter_report_clear(struct filter_report *rep)
{
    memset(rep, 0, sizeof *rep);
}

/* Runs filter i; true when kept.  Records the score in `rep`. */
static enum vc_status run_one(const struct filter_chain *chain, size_t i,
                              const struct filter_input *in, struct filter_verdict *v,
                              struct filter_report *rep, struct vc_err *err)
{
    const struct filter *f = chain->filters[i];
    double score, threshold;
    VC_TRY(f->ops->score(f, in, &score, err));
    if (rep) {
        rep->score[i] = score;
        rep->scored[i] = 1;
    }
    if (filter_keeps(f, score, &threshold))
        return VC_OK;
    *v = (struct filter_verdict){ f, score, threshold };
    return VC_REJECT;
}

/* Runs every enabled filter of `kind` in order until one rejects. */
static enum vc_status run_kind(const struct filter_chain *chain, enum filter_kind kind,
                               const struct filter_input *in, struct filter_verdict *v,
                               struct filter_report *rep, struct vc_err *err)
{
    for (size_t i = 0; i < chain->n; i++) {
        if (!active(chain->filters[i], kind))
            continue;
        enum vc_status rc = run_one(chain, i, in, v, rep, err);
        if (rc != VC_OK)
            return rc;
    }
    return VC_OK;
}

enum vc_status filter_chain_image(const struct filter_chain *chain, struct filter_scratch *s,
                                  const struct filter_image *img, struct filter_verdict *v,
                                  struct filter_report *rep, struct vc_err *err)
{
    (void)s;
    *v = (struct filter_verdict){ NULL, 0, 0 };
    if (!filter_chain_has_kind(chain, FILTER_KIND_IMAGE))
        return VC_OK;
    /* The header is read without limits: img_pixels and the size filters
     * judge it, with a reason the ledger can count. */
    struct img_limits open = { UINT64_MAX, UINT32_MAX };
    struct img_info info;
    struct vc_err perr;
    bool have_info =
        img->data && img->size > 0 && img_probe(img->data, img->size, &open, &info, &perr) == VC_OK;
    struct filter_input in = {
        .image = img->data,
        .image_size = img->size,
        .info = have_info ? &info : NULL,
        .url = img->url,
    };
    struct img pixels = { 0 };
    bool decoded = false;
    enum vc_status rc = VC_OK;
    for (size_t i = 0; i < chain->n && rc == VC_OK; i++) {
        const struct filter *f = chain->filters[i];
        if (!active(f, FILTER_KIND_IMAGE))
            continue;
        if (!have_info && (f->ops->flags & FILTER_NEEDS_HEADER)) {
            if (!img->data || img->size == 0)
                return vc_err_set(err, VC_ESAMPLE, VC_REASON_missing_image, "image is empty");
            *err = perr;
            return perr.status < 0 ? perr.status : VC_ESAMPLE;
        }
        if ((f->ops->flags & FILTER_NEEDS_PIXELS) && !decoded) {
            struct vc_err derr;
            decoded = true;
            if (img_decode(img->data, img->size, NULL, IMG_DECODE_NO_ORIENT, &pixels, &derr) ==
                VC_OK)
                in.pixels = &pixels;
            else if (derr.status == VC_EFATAL) {
                *err = derr;
                return VC_EFATAL;
            }
        }
        rc = run_one(chain, i, &in, v, rep, err);
    }
    if (in.pixels)
        img_release(&pixels);
    return rc;
}

enum vc_status filter_chain_caption(const struct filter_chain *chain, struct filter_scratch *s,
                                    const char *text, size_t n, struct filter_verdict *v,
                                    struct filter_report *rep, struct vc_err *err)
{
    *v = (struct filter_verdict){ NULL, 0, 0 };
    if (!filter_chain_has_kind(chain, FILTER_KIND_PAIR))
        return VC_OK;
    VC_TRY(textstats_analyse(s->ts, text ? text : "", text ? n : 0, err));
    struct filter_input in = { .text = text ? text : "", .text_len = text ? n : 0, .ts = s->ts };
    return run_kind(chain, FILTER_KIND_PAIR, &in, v, rep, err);
}

static bool append(struct filter_scratch *s, size_t *len, const char *p, size_t n)
{
    size_t need;
    if (!vc_add_ok(*len, n + 1, &need))
        return false;
    if (need > s->out_cap) {
        size_t cap = s->out_cap ? s->out_cap : 256;
        while (cap < need)
            cap *= 2;
        char *q = realloc(s->out, cap);
        if (!q)
            return false;
        s->out = q;
        s->out_cap = cap;
    }
    memcpy(s->out + *len, p, n);
    *len += n;
    s->out[*len] = '\0';
    return true;
}

enum vc_status filter_chain_paragraphs(const struct filter_chain *chain, struct filter_scratch *s,
                                       const char *text, size_t n, const char **out,
                                       size_t *out_len, size_t *n_removed,
                                       struct filter_report *rep, struct vc_err *err)
{
    size_t len = 0, kept = 0;
    *n_removed = 0;
    if (!append(s, &len, "", 0))
        return oom(err);
    bool any = filter_chain_has_kind(chain, FILTER_KIND_TEXT);
    const char *end = text + n;
    for (const char *p = text;;) {
        const char *q = p;
        while (q + 1 < end && !(q[0] == '\n' && q[1] == '\n'))
            q++;
        if (q + 1 >= end)
            q = end;
        size_t plen = (size_t)(q - p);
        bool keep = true;
        bool eod = plen == strlen(FILTER_EOD_TOKEN) && memcmp(p, FILTER_EOD_TOKEN, plen) == 0;
        if (any && !eod) {
            VC_TRY(textstats_analyse(s->ts, p, plen, err));
            struct filter_input in = { .text = p, .text_len = plen, .ts = s->ts };
            struct filter_verdict v = { NULL, 0, 0 };
            enum vc_status rc = run_kind(chain, FILTER_KIND_TEXT, &in, &v, NULL, err);
            if (rc < 0 && rc != VC_REJECT)
                return rc;
            if (rc == VC_REJECT) {
                keep = false;
                ++*n_removed;
                if (rep)
                    rep->removed[filter_registry_index(v.by->ops)]++;
            }
        }
        if (keep && ((kept++ && !append(s, &len, "\n\n", 2)) || !append(s, &len, p, plen)))
            return oom(err);
        if (q == end)
            break;
        p = q + 2;
    }
    *out = s->out;
    *out_len = len;
    return VC_OK;
}

enum vc_status filter_chain_document(const struct filter_chain *chain, struct filter_scratch *s,
                                     const char *text, size_t n, size_t n_images,
                                     struct filter_verdict *v, struct filter_report *rep,
                                     struct vc_err *err)
{
    *v = (struct filter_verdict){ NULL, 0, 0 };
    if (!filter_chain_has_kind(chain, FILTER_KIND_DOCUMENT))
        return VC_OK;
    VC_TRY(textstats_analyse(s->ts, text ? text : "", text ? n : 0, err));
    struct filter_input in = {
        .text = text ? text : "", .text_len = text ? n : 0, .ts = s->ts, .n_images = n_images
    };
    return run_kind(chain, FILTER_KIND_DOCUMENT, &in, v, rep, err);
}
