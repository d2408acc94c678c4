/* flt_lang: the libexttextcat shim and the language filters.  Owns the
 * loaded fingerprints (one per language, read through TextCat's fp_* API
 * so that every language's distance is available, not only TextCat's
 * shortlist).  Never calls textcat_Classify: its result buffer lives in
 * the handle and is not thread-safe.  Never hands TextCat a string that
 * is not NUL-terminated (its buffer preparation reads up to the NUL). */
#include "flt_lang.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <fingerprint.h>
#include <textcat_properties.h>

#include "core/vc_mem.h"
#include "textstats.h"

/* TextCat's fingerprint files hold 400 n-grams (its MAXNGRAMS). */
enum { LANGID_NGRAMS = 400 };

struct langid {
    void **fp;    /* (n) TextCat fingerprints */
    char **names; /* (n) owned */
    size_t n;
};

void langid_free(struct langid *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->n; i++) {
        fp_Done(m->fp[i]);
        free(m->names[i]);
    }
    free(m->fp);
    free(m->names);
    free(m);
}

size_t langid_count(const struct langid *m)
{
    return m->n;
}

const char *langid_name(const struct langid *m, size_t i)
{
    return i < m->n ? m->names[i] : NULL;
}

long langid_find(const struct langid *m, const char *name)
{
    for (size_t i = 0; i < m->n; i++)
        if (strcmp(m->names[i], name) == 0)
            return (long)i;
    return -1;
}

/* Adds the fingerprint file `file` (relative to dir) as language `name`. */
static enum vc_status add_language(struct langid *m, const char *dir, const char *file, size_t *cap,
                                   struct vc_err *err)
{
    size_t flen = strlen(file);
    if (flen < 4 || strcmp(file + flen - 3, ".lm") != 0)
        return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec,
                          "language fingerprints: %s/fpdb.conf names \"%s\", not a .lm file", dir,
                          file);
    if (m->n == *cap) {
        size_t c = *cap ? *cap * 2 : 64;
        void **fp = vc_realloc_array(m->fp, c, sizeof *fp);
        if (fp)
            m->fp = fp;
        char **names = vc_realloc_array(m->names, c, sizeof *names);
        if (names)
            m->names = names;
        if (!fp || !names)
            return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "out of memory");
        *cap = c;
    }
    char path[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, file) >= sizeof path)
        return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec,
                          "language fingerprints: path too long");
    char *name = vc_strndup(file, flen - 3);
    void *fp = name ? fp_Init(name) : NULL;
    if (!fp) {
        free(name);
        return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "out of memory");
    }
    if (!fp_Read(fp, path, LANGID_NGRAMS)) {
        fp_Done(fp);
        free(name);
        return vc_err_set(err, VC_EUSAGE, VC_REASON_io_error,
                          "language fingerprints: cannot read %s", path);
    }
    m->fp[m->n] = fp;
    m->names[m->n] = name;
    m->n++;
    return VC_OK;
}

static bool skipped(const char *file, const char *const *skip, size_t n_skip)
{
    size_t len = strlen(file) - 3; /* without ".lm" */
    for (size_t i = 0; i < n_skip; i++)
        if (strlen(skip[i]) == len && memcmp(skip[i], file, len) == 0)
            return true;
    return false;
}

enum vc_status langid_load(const char *dir, const char *const *skip, size_t n_skip,
                           struct langid **out, struct vc_err *err)
{
    *out = NULL;
    char conf[4096];
    if ((size_t)snprintf(conf, sizeof conf, "%s/fpdb.conf", dir) >= sizeof conf)
        return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec,
                          "language fingerprints: path too long");
    FILE *f = fopen(conf, "r");
    if (!f)
        return vc_err_set(err, VC_EUSAGE, VC_REASON_io_error,
                          "language fingerprints: cannot open %s (install libexttextcat-data or "
                          "set \"dir\")",
                          conf);
    struct langid *m = calloc(1, sizeof *m);
    if (!m) {
        fclose(f);
        return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "out of memory");
    }
    /* fpdb.conf: "<file>.lm <textcat name>" per line, '#' starts a comment. */
    char line[1024];
    size_t cap = 0;
    enum vc_status rc = VC_OK;
    while (rc == VC_OK && fgets(line, sizeof line, f)) {
        char *hash = strchr(line, '#');
        if (hash)
            *hash = '\0';
        char file[512];
        if (sscanf(line, "%511s", file) == 1 && !(strlen(file) > 3 && skipped(file, skip, n_skip)))
            rc = add_language(m, dir, file, &cap, err);
    }
    fclose(f);
    if (rc == VC_OK && m->n == 0)
        rc = vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec,
                        "language fingerprints: %s lists no language", conf);
    if (rc < 0) {
        langid_free(m);
        return rc;
    }
    *out = m;
    return VC_OK;
}

/* True when the text has something TextCat can profile: a code point that
 * is neither a special character (space, digit, punctuation) nor control. */
static bool has_letters(const char *text, size_t n)
{
    const unsigned char *s = (const unsigned char *)text;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        i += textstats_utf8_decode(s + i, n - i, &cp);
        if (cp >= 0x20 && cp != 0x7F && !textstats_is_special(cp))
            return true;
    }
    return false;
}

/* Longest prefix of at most `max` bytes that ends on a UTF-8 boundary. */
static size_t utf8_prefix(const char *text, size_t n, size_t max)
{
    if (n <= max)
        return n;
    size_t k = max;
    while (k > 0 && ((unsigned char)text[k] & 0xC0) == 0x80)
        k--;
    return k;
}

enum vc_status langid_identify(const struct langid *m, const char *text, size_t n, long lang,
                               struct langid_result *out, struct vc_err *err)
{
    *out = (struct langid_result){ NULL, 0.0, 0.0 };
    size_t len = utf8_prefix(text, n, LANGID_MAX_BYTES);
    if (!has_letters(text, len))
        return VC_OK;
    char buf[LANGID_MAX_BYTES + 1];
    memcpy(buf, text, len);
    buf[len] = '\0';
    /* TextCat stops at the first NUL; replace embedded ones by spaces. */
    for (size_t i = 0; i < len; i++)
        if (buf[i] == '\0')
            buf[i] = ' ';

    int dist_stack[256];
    int *dist = m->n <= 256 ? dist_stack : vc_malloc_array(m->n, sizeof *dist);
    void *unknown = fp_Init(NULL);
    if (!dist || !unknown) {
        if (dist != dist_stack)
            free(dist);
        if (unknown)
            fp_Done(unknown);
        return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "out of memory");
    }
    fp_SetProperty(unknown, TCPROP_UTF8AWARE, TC_TRUE);
    if (fp_Create(unknown, buf, (uint4)len, LANGID_NGRAMS)) {
        size_t best = 0;
        for (size_t i = 0; i < m->n; i++) {
            dist[i] = fp_Compare(m->fp[i], unknown, INT_MAX);
            if (dist[i] < dist[best])
                best = i;
        }
        /* Softmax over relative gaps (see the header).  A zero best
         * distance only happens for a text identical to a fingerprint. */
        double d0 = dist[best] > 0 ? (double)dist[best] : 1.0, sum = 0.0;
        for (size_t i = 0; i < m->n; i++)
            sum += exp(-((double)dist[i] / d0 - 1.0) / LANGID_TEMPERATURE);
        out->best = m->names[best];
        out->best_conf = 1.0 / sum;
        if (lang >= 0 && (size_t)lang < m->n)
            out->conf = exp(-((double)dist[lang] / d0 - 1.0) / LANGID_TEMPERATURE) / sum;
    }
    fp_Done(unknown);
    if (dist != dist_stack)
        free(dist);
    return VC_OK;
}

/* ---- the filters ---- */

struct lang_state {
    const struct langid *model; /* borrowed from the env */
    long lang;
};

struct model_args {
    const char *dir;
    const char *skip[LANGID_MAX_SKIP];
    size_t n_skip;
};

static enum vc_status load_model(const void *arg, void **res, struct vc_err *err)
{
    const struct model_args *a = arg;
    struct langid *m;
    VC_TRY(langid_load(a->dir, a->skip, a->n_skip, &m, err));
    *res = m;
    return VC_OK;
}

static void release_model(void *res)
{
    langid_free(res);
}

static enum vc_status lang_init(struct filter *f, struct filter_env *env, struct vc_err *err)
{
    struct model_args a = { .dir = filter_param_string(f, "dir") };
    a.n_skip = filter_param_strings_count(f, "ignore");
    if (a.n_skip > LANGID_MAX_SKIP)
        return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec,
                          "parameter \"ignore\": at most %d languages", LANGID_MAX_SKIP);
    /* The env shares one model per (dir, ignore list). */
    char key[8192];
    size_t used = (size_t)snprintf(key, sizeof key, "langid:%s", a.dir);
    for (size_t i = 0; i < a.n_skip && used < sizeof key; i++) {
        a.skip[i] = filter_param_strings_at(f, "ignore", i);
        used += (size_t)snprintf(key + used, sizeof key - used, "|%s", a.skip[i]);
    }
    if (used >= sizeof key)
        return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec,
                          "parameters \"dir\"/\"ignore\" too long");
    void *res;
    VC_TRY(filter_env_get(env, key, load_model, release_model, &a, &res, err));
    const char *lang = filter_param_string(f, "lang");
    long idx = langid_find(res, lang);
    if (idx < 0)
        return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec,
                          "parameter \"lang\": no fingerprint for \"%s\" in %s", lang, a.dir);
    struct lang_state *st = malloc(sizeof *st);
    if (!st)
        return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "out of memory");
    *st = (struct lang_state){ res, idx };
    f->state = st;
    return VC_OK;
}

static void lang_fini(struct filter *f)
{
    free(f->state);
}

static enum vc_status lang_score(const struct filter *f, const struct filter_input *in,
                                 double *score, struct vc_err *err)
{
    const struct lang_state *st = f->state;
    struct langid_result r;
    VC_TRY(langid_identify(st->model, in->text, in->text_len, st->lang, &r, err));
    *score = r.conf;
    return VC_OK;
}

/* One table for both levels: OBELICS uses 0.8 at both. */
static const struct filter_param lang_params[] = {
    { "min", FILTER_PARAM_NUMBER, "0.8", "minimum confidence (0..1) that the text is in `lang`" },
    { "lang", FILTER_PARAM_STRING, "\"en\"",
      "language wanted: a fingerprint name of libexttextcat-data" },
    { "dir", FILTER_PARAM_STRING, "\"" LANGID_DEFAULT_DIR "\"",
      "folder holding TextCat's fpdb.conf and *.lm fingerprints" },
    { "ignore", FILTER_PARAM_STRINGS, "[\"sco\"]",
      "languages left out of the ranking (Scots: a near copy of English's fingerprint)" },
    { NULL, 0, NULL, NULL },
};

const struct filter_ops flt_par_lang = {
    .name = "par_lang",
    .kind = FILTER_KIND_TEXT,
    .summary = "TextCat confidence that the paragraph is in the wanted language",
    .source = "OBELICS lang_id_node_level_min_cutoff 0.8 (disabled in OBELICS's config, so here "
              "too)",
    .enabled = false,
    .params = lang_params,
    .init = lang_init,
    .fini = lang_fini,
    .score = lang_score,
};

const struct filter_ops flt_doc_lang = {
    .name = "doc_lang",
    .kind = FILTER_KIND_DOCUMENT,
    .summary = "TextCat confidence that the document is in the wanted language",
    .source = "OBELICS lang_id_doc_level_min_cutoff 0.8 (FastText there; TextCat confidence here, "
              "see flt_lang.h)",
    .enabled = true,
    .params = lang_params,
    .init = lang_init,
    .fini = lang_fini,
    .score = lang_score,
};
