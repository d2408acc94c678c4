/* sample_stats: per-sample observations for the audit.  Reads headers only
 * unless asked to decode; never changes the sample.  Document samples are
 * recognised by a "json" field holding "texts" and "images" arrays
 * (OBELICS layout), everything else is treated as an image-text pair. */
#include "sample_stats.h"

#include "core/img.h"
#include "filters/flt_lang.h"
#include "manifests/stats.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

void sample_stats_text_len(const char *text, size_t n, size_t *words, size_t *chars)
{
    size_t w = 0, c = 0;
    bool in_word = false;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)text[i];
        if ((ch & 0xC0) != 0x80)
            c++;
        bool space =
            ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\f' || ch == '\v';
        if (!space && !in_word)
            w++;
        in_word = !space;
    }
    *words = w;
    *chars = c;
}

struct groups {
    const char *names[2];
    int n;
};

static void observe(struct stats *st, const struct groups *g, const char *hist, double v)
{
    for (int i = 0; i < g->n; i++)
        stats_observe(st, g->names[i], hist, v);
}

static void count(struct stats *st, const struct groups *g, const char *family, const char *name,
                  const char *key)
{
    for (int i = 0; i < g->n; i++)
        stats_count(st, g->names[i], family, name, 1, key);
}

static enum vc_status observe_image(struct stats *st, const struct groups *g,
                                    const struct sample *s, const struct sample_field *f,
                                    bool decode, struct vc_err *err)
{
    struct img_info info;
    enum vc_status rc = img_probe(f->data, f->size, NULL, &info, err);
    /* Statistics need no pixels: the check reads every byte at the
     * smallest size the codec makes. */
    if (rc == VC_OK && decode)
        rc = img_verify(f->data, f->size, NULL, err);
    if (rc != VC_OK) {
        count(st, g, "error", vc_reason_name(err->reason), s->key);
        return VC_ESAMPLE;
    }
    count(st, g, "format", img_format_ext(info.format), NULL);
    observe(st, g, "width", info.width);
    observe(st, g, "height", info.height);
    observe(st, g, "aspect_ratio", info.height ? (double)info.width / info.height : 0);
    observe(st, g, "pixels", (double)info.width * info.height);
    observe(st, g, "bytes", (double)f->size);
    return VC_OK;
}

static void observe_text(struct stats *st, const struct groups *g, const char *text, size_t n,
                         const struct sample_stats_opts *opts)
{
    size_t words, chars;
    sample_stats_text_len(text, n, &words, &chars);
    observe(st, g, "text_words", (double)words);
    observe(st, g, "text_chars", (double)chars);
    if (opts->lang) {
        const char *lang = opts->lang(text, n, opts->lang_ctx);
        count(st, g, "language", lang ? lang : SAMPLE_STATS_LANG_UNDETERMINED, NULL);
    }
}

/* OBELICS documents: texts[] and images[] aligned, null where the other
 * kind stands.  Returns false when the json is not a document. */
static bool observe_document(struct stats *st, const struct groups *g, const struct sample *s,
                             const struct sample_stats_opts *opts)
{
    const struct sample_field *jf = sample_field_get(s, "json");
    if (!jf)
        return false;
    cJSON *doc = cJSON_ParseWithLength((const char *)jf->data, jf->size);
    const cJSON *texts = cJSON_GetObjectItemCaseSensitive(doc, "texts");
    const cJSON *images = cJSON_GetObjectItemCaseSensitive(doc, "images");
    if (!cJSON_IsArray(texts) || !cJSON_IsArray(images)) {
        cJSON_Delete(doc);
        return false;
    }
    int n_img = 0, n_txt = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, images)
    {
        n_img += !cJSON_IsNull(it);
    }
    size_t words = 0, chars = 0;
    const cJSON *longest = NULL;
    cJSON_ArrayForEach(it, texts)
    {
        if (!cJSON_IsString(it))
            continue;
        n_txt++;
        size_t w, c;
        sample_stats_text_len(it->valuestring, strlen(it->valuestring), &w, &c);
        words += w;
        chars += c;
        if (!longest || strlen(it->valuestring) > strlen(longest->valuestring))
            longest = it;
    }
    /* A kept document may have lost images (a missing file, a failed
     * download, a filter): the audit counts them by reason, or an OBELICS
     * run that lost most of its images would read like a healthy one. */
    const cJSON *dropped = cJSON_GetObjectItemCaseSensitive(doc, "dropped_images");
    cJSON_ArrayForEach(it, dropped)
    {
        const cJSON *why = cJSON_GetObjectItemCaseSensitive(it, "reason");
        if (cJSON_IsString(why))
            count(st, g, "dropped_image", why->valuestring, s->key);
    }
    observe(st, g, "doc_images", n_img);
    observe(st, g, "doc_texts", n_txt);
    observe(st, g, "text_words", (double)words);
    observe(st, g, "text_chars", (double)chars);
    if (opts->lang && longest) {
        const char *lang =
            opts->lang(longest->valuestring, strlen(longest->valuestring), opts->lang_ctx);
        count(st, g, "language", lang ? lang : SAMPLE_STATS_LANG_UNDETERMINED, NULL);
    }
    cJSON_Delete(doc);
    return true;
}

/* A language only when TextCat is sure: a short caption ("a red bus")
 * matches many fingerprints about equally, and its best guess would
 * scatter a dataset over dozens of spurious languages. */
static const char *lang_of(const char *text, size_t n, void *ctx)
{
    size_t words, chars;
    sample_stats_text_len(text, n, &words, &chars);
    if (chars < SAMPLE_STATS_LANG_MIN_CHARS)
        return NULL;
    struct langid_result r;
    struct vc_err err;
    if (langid_identify(ctx, text, n, -1, &r, &err) != VC_OK ||
        !(r.best_conf >= SAMPLE_STATS_LANG_MIN_CONF))
        return NULL;
    return r.best;
}

void sample_stats_observe_scores(struct stats *st, const struct cJSON *meta)
{
    static const char *const groups[] = { "filter_scores", "model_scores" };
    for (size_t g = 0; g < sizeof groups / sizeof *groups; g++) {
        const cJSON *it;
        cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(meta, groups[g]))
        {
            if (!cJSON_IsNumber(it))
                continue;
            char name[160];
            snprintf(name, sizeof name, "score.%s", it->string);
            stats_observe(st, "all", name, it->valuedouble);
        }
    }
}

enum vc_status sample_stats_lang_on(struct sample_stats_opts *opts, struct vc_err *err)
{
    static const char *const skip[] = { "sco" };
    struct langid *m;
    VC_TRY(langid_load(LANGID_DEFAULT_DIR, skip, 1, &m, err));
    opts->lang = lang_of;
    opts->lang_ctx = m;
    return VC_OK;
}

void sample_stats_lang_off(struct sample_stats_opts *opts)
{
    langid_free(opts->lang_ctx);
    opts->lang = NULL;
    opts->lang_ctx = NULL;
}

/* A ledger line is a few hundred bytes; 1 MiB means a corrupt file. */
#define LEDGER_MAX_LINE (1u << 20)

static const char *json_str(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* One ledger line into the funnel: state counts overall and per source,
 * the reason (filter name for filter rejections) with the key as example,
 * and the score of a rejected sample into its filter's histogram. */
static void count_ledger_line(struct stats *st, const cJSON *line)
{
    const char *state = json_str(line, "state");
    const char *source = json_str(line, "source");
    const char *key = json_str(line, "key");
    if (!state)
        return;
    char group[160];
    snprintf(group, sizeof group, "source:%s", source ? source : "?");
    stats_count(st, "all", "funnel", "input", 1, NULL);
    stats_count(st, group, "funnel", "input", 1, NULL);
    stats_count(st, "all", "funnel", state, 1, NULL);
    stats_count(st, group, "funnel", state, 1, NULL);
    const char *filter = json_str(line, "filter");
    const char *reason = json_str(line, "reason");
    const char *why = filter ? filter : reason ? reason : "unknown";
    if (strcmp(state, "rejected") == 0) {
        stats_count(st, "all", "reject", why, 1, key);
        stats_count(st, group, "reject", why, 1, key);
        const cJSON *score = cJSON_GetObjectItemCaseSensitive(line, "score");
        if (filter && cJSON_IsNumber(score)) {
            char name[160];
            snprintf(name, sizeof name, "score.%s", filter);
            stats_observe(st, "all", name, score->valuedouble);
        }
    } else if (strcmp(state, "error") == 0) {
        stats_count(st, "all", "error", why, 1, key);
        stats_count(st, group, "error", why, 1, key);
    }
}

enum vc_status sample_stats_read_ledger(const char *path, struct stats *st, struct vc_err *err)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return vc_err_set(err, VC_EFATAL, VC_REASON_io_error, "cannot open ledger %s", path);
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    enum vc_status rc = VC_OK;
    while ((n = getline(&line, &cap, f)) > 0) {
        if ((size_t)n > LEDGER_MAX_LINE) {
            rc = vc_err_set(err, VC_EFATAL, VC_REASON_json_invalid, "%s: line over %u bytes", path,
                            LEDGER_MAX_LINE);
            break;
        }
        cJSON *j = cJSON_ParseWithLength(line, (size_t)n);
        if (!j) {
            rc = vc_err_set(err, VC_EFATAL, VC_REASON_json_invalid, "%s: a line is not JSON", path);
            break;
        }
        count_ledger_line(st, j);
        cJSON_Delete(j);
    }
    free(line);
    fclose(f);
    return rc;
}

/* The source a shard we wrote names in its json ("vlmcurate": {"source"}),
 * copied into buf; NULL for shards of other writers. */
static const char *written_source(const struct sample *s, char *buf, size_t cap)
{
    const struct sample_field *jf = sample_field_get(s, "json");
    cJSON *j = jf ? cJSON_ParseWithLength((const char *)jf->data, jf->size) : NULL;
    const cJSON *own = cJSON_GetObjectItemCaseSensitive(j, "vlmcurate");
    const char *src = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(own, "source"));
    if (src)
        snprintf(buf, cap, "%s", src);
    cJSON_Delete(j);
    return src ? buf : NULL;
}

enum vc_status sample_stats_observe(struct stats *st, const struct sample *s,
                                    const struct sample_stats_opts *opts, struct vc_err *err)
{
    char source_group[160], from_json[128];
    struct groups g = { { "all", NULL }, 1 };
    const char *source = s->source ? s->source : written_source(s, from_json, sizeof from_json);
    if (source) {
        snprintf(source_group, sizeof source_group, "source:%s", source);
        g.names[g.n++] = source_group;
        stats_count(st, "all", "source", source, 1, NULL);
    }
    enum vc_status rc = VC_OK;
    struct vc_err first;
    vc_err_clear(&first);
    for (size_t i = 0; i < s->n_fields; i++) {
        const struct sample_field *f = &s->fields[i];
        if (!sample_field_name_is_image(f->name))
            continue;
        struct vc_err e;
        if (observe_image(st, &g, s, f, opts->decode, &e) != VC_OK && rc == VC_OK) {
            rc = VC_ESAMPLE;
            first = e;
        }
    }
    if (!observe_document(st, &g, s, opts)) {
        const struct sample_field *t = sample_main_text(s);
        if (t)
            observe_text(st, &g, (const char *)t->data, t->size, opts);
    }
    if (rc != VC_OK && err)
        *err = first;
    return rc;
}
