/* flt_lang: the libexttextcat shim and the language filters.  Owns the
 * fingerprints of every language, read from libexttextcat-data's files as
 * TextCat's fp_Read reads them, and held as one inverted index (n-gram ->
 * (language, rank) postings), so the out-of-place distance to all ~160
 * languages costs one look-up per n-gram of the text instead of ~160
 * profile merges; the distances are exactly fp_Compare's (a unit test
 * holds the two together).  The text's profile is TextCat's own
 * (fp_Create).  Never calls textcat_Classify: its result buffer lives in
 * the handle and is not thread-safe.  Never hands TextCat a string that is
 * not NUL-terminated (its buffer preparation reads up to the NUL). */
#include "flt_lang.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <fingerprint.h>
#include <textcat_properties.h>

#include "core/vc_mem.h"
#include "core/vc_utf8.h"
#include "textstats.h"

/* TextCat's limits: 400 n-grams per profile (MAXNGRAMS), an n-gram string
 * of at most 20 bytes (MAXNGRAMSIZE), 400 as the penalty for an n-gram the
 * language lacks (MAXOUTOFPLACE). */
enum { LANGID_NGRAMS = 400, LANGID_NGRAM_BYTES = 20, LANGID_OUT_OF_PLACE = 400 };
/* Languages the index can address (uint16_t); fpdb.conf lists ~160. */
enum { LANGID_MAX_LANGS = 4096 };

struct posting {
    uint16_t lang, rank;
};

struct gram {
    char str[LANGID_NGRAM_BYTES + 1];
    uint32_t first, count; /* its postings: postings[first .. first + count) */
};

struct langid {
    char **names; /* (n) owned */
    size_t n;
    struct gram *grams; /* (n_grams) distinct n-grams of all languages */
    size_t n_grams;
    uint32_t *slots; /* hash of grams: index + 1, 0 = empty; mask + 1 entries */
    size_t mask;
    struct posting *postings;
};

void langid_free(struct langid *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->n; i++)
        free(m->names[i]);
    free(m->names);
    free(m->grams);
    free(m->slots);
    free(m->postings);
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

/* One (n-gram, language, rank) triple while loading. */
struct entry {
    char str[LANGID_NGRAM_BYTES + 1];
    uint16_t lang, rank;
};

struct loader {
    struct entry *e;
    size_t n, cap;
    size_t name_cap;
};

/* Reads one fingerprint file the way fp_Read does: each line trimmed of
 * surrounding white space and cut at the first blank; strings longer than
 * TextCat's n-gram limit skipped; the first 400 kept, ranked in order. */
static enum vc_status read_lm(struct loader *ld, const char *path, uint16_t lang,
                              struct vc_err *err)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return vc_err_set(err, VC_EUSAGE, VC_REASON_io_error,
                          "language fingerprints: cannot read %s", path);
    char line[1024];
    uint16_t rank = 0;
    while (rank < LANGID_NGRAMS && fgets(line, sizeof line, f)) {
        char *b = line, *e = line + strlen(line);
        while (*b && isspace((unsigned char)*b))
            b++;
        while (e > b && isspace((unsigned char)e[-1]))
            e--;
        *e = '\0';
        b[strcspn(b, " \t")] = '\0';
        if (strlen(b) > LANGID_NGRAM_BYTES)
            continue;
        struct entry *ne = vc_grow_array(ld->e, &ld->cap, ld->n + 1, sizeof *ne, 1u << 16);
        if (!ne) {
            fclose(f);
            return vc_err_oom(err);
        }
        ld->e = ne;
        struct entry *en = &ld->e[ld->n++];
        strcpy(en->str, b);
        en->lang = lang;
        en->rank = rank++;
    }
    fclose(f);
    return VC_OK;
}

/* Adds the fingerprint file `file` (relative to dir) as language `name`. */
static enum vc_status add_language(struct langid *m, struct loader *ld, const char *dir,
                                   const char *file, struct vc_err *err)
{
    size_t flen = strlen(file);
    if (flen < 4 || strcmp(file + flen - 3, ".lm") != 0)
        return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec,
                          "language fingerprints: %s/fpdb.conf names \"%s\", not a .lm file", dir,
                          file);
    if (m->n == LANGID_MAX_LANGS)
        return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec,
                          "language fingerprints: more than %d languages", LANGID_MAX_LANGS);
    char **names = vc_grow_array(m->names, &ld->name_cap, m->n + 1, sizeof *names, 64);
    if (!names)
        return vc_err_oom(err);
    m->names = names;
    char path[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, file) >= sizeof path)
        return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec,
                          "language fingerprints: path too long");
    VC_TRY(read_lm(ld, path, (uint16_t)m->n, err));
    if (!(m->names[m->n] = vc_strndup(file, flen - 3)))
        return vc_err_oom(err);
    m->n++;
    return VC_OK;
}

static uint32_t *find_slot(const struct langid *m, const char *str)
{
    size_t j = textstats_hash(str, strlen(str)) & m->mask;
    while (m->slots[j] && strcmp(m->grams[m->slots[j] - 1].str, str) != 0)
        j = (j + 1) & m->mask;
    return &m->slots[j];
}

/* Builds the inverted index from the loaded triples. */
static enum vc_status build_index(struct langid *m, const struct loader *ld, struct vc_err *err)
{
    size_t cap = 16;
    while (cap < 2 * ld->n)
        cap *= 2;
    m->slots = calloc(cap, sizeof *m->slots);
    m->grams = vc_malloc_array(ld->n ? ld->n : 1, sizeof *m->grams);
    m->postings = vc_malloc_array(ld->n ? ld->n : 1, sizeof *m->postings);
    uint32_t *gram_of = vc_malloc_array(ld->n ? ld->n : 1, sizeof *gram_of);
    if (!m->slots || !m->grams || !m->postings || !gram_of) {
        free(gram_of);
        return vc_err_oom(err);
    }
    m->mask = cap - 1;
    for (size_t i = 0; i < ld->n; i++) {
        uint32_t *slot = find_slot(m, ld->e[i].str);
        if (!*slot) {
            struct gram *g = &m->grams[m->n_grams];
            strcpy(g->str, ld->e[i].str);
            g->first = g->count = 0;
            *slot = (uint32_t)++m->n_grams;
        }
        gram_of[i] = *slot - 1;
        m->grams[*slot - 1].count++;
    }
    uint32_t next = 0;
    for (size_t g = 0; g < m->n_grams; g++) {
        m->grams[g].first = next;
        next += m->grams[g].count;
        m->grams[g].count = 0;
    }
    for (size_t i = 0; i < ld->n; i++) {
        struct gram *g = &m->grams[gram_of[i]];
        m->postings[g->first + g->count++] = (struct posting){ ld->e[i].lang, ld->e[i].rank };
    }
    free(gram_of);
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
    struct loader ld = { 0 };
    if (!m) {
        fclose(f);
        return vc_err_oom(err);
    }
    /* fpdb.conf: "<file>.lm <textcat name>" per line, '#' starts a comment. */
    char line[1024];
    enum vc_status rc = VC_OK;
    while (rc == VC_OK && fgets(line, sizeof line, f)) {
        char *hash = strchr(line, '#');
        if (hash)
            *hash = '\0';
        char file[512];
        if (sscanf(line, "%511s", file) == 1 && !(strlen(file) > 3 && skipped(file, skip, n_skip)))
            rc = add_language(m, &ld, dir, file, err);
    }
    fclose(f);
    if (rc == VC_OK && m->n == 0)
        rc = vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec,
                        "language fingerprints: %s lists no language", conf);
    if (rc == VC_OK)
        rc = build_index(m, &ld, err);
    free(ld.e);
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
        i += vc_utf8_next(s + i, n - i, &cp);
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

/* The text's TextCat profile, its n-grams in rank order, written by
 * fp_Print one per line into `buf` (a memory stream). */
static enum vc_status profile(const char *text, size_t len, char **buf, size_t *size,
                              struct vc_err *err)
{
    char stack[LANGID_MAX_BYTES + 1];
    memcpy(stack, text, len);
    stack[len] = '\0';
    /* TextCat stops at the first NUL; embedded ones become spaces. */
    for (size_t i = 0; i < len; i++)
        if (stack[i] == '\0')
            stack[i] = ' ';
    void *u = fp_Init(NULL);
    FILE *mem = u ? open_memstream(buf, size) : NULL;
    if (!mem) {
        if (u)
            fp_Done(u);
        return vc_err_oom(err);
    }
    fp_SetProperty(u, TCPROP_UTF8AWARE, TC_TRUE);
    if (fp_Create(u, stack, (uint4)len, LANGID_NGRAMS))
        fp_Print(u, mem);
    fp_Done(u);
    if (fclose(mem) != 0)
        return vc_err_oom(err);
    return VC_OK;
}

enum vc_status langid_distances(const struct langid *m, const char *text, size_t n, int *dist,
                                size_t *n_profile, struct vc_err *err)
{
    *n_profile = 0;
    size_t len = utf8_prefix(text, n, LANGID_MAX_BYTES);
    if (!has_letters(text, len))
        return VC_OK;
    char *buf = NULL;
    size_t size = 0;
    VC_TRY(profile(text, len, &buf, &size, err));
    int *matched = calloc(m->n, sizeof *matched);
    if (!matched) {
        free(buf);
        return vc_err_oom(err);
    }
    memset(dist, 0, m->n * sizeof *dist);
    /* Out-of-place distance, fp_Compare's: |rank difference| for an
     * n-gram both profiles hold, the full penalty for one the language
     * lacks. */
    int rank = 0;
    for (char *p = buf, *nl; p < buf + size; p = nl + 1, rank++) {
        nl = memchr(p, '\n', (size_t)(buf + size - p));
        if (!nl)
            break;
        *nl = '\0';
        uint32_t slot = *find_slot(m, p);
        if (!slot)
            continue;
        const struct gram *g = &m->grams[slot - 1];
        for (uint32_t k = 0; k < g->count; k++) {
            const struct posting *ps = &m->postings[g->first + k];
            dist[ps->lang] += abs((int)ps->rank - rank);
            matched[ps->lang]++;
        }
    }
    for (size_t i = 0; i < m->n; i++)
        dist[i] += LANGID_OUT_OF_PLACE * (rank - matched[i]);
    *n_profile = (size_t)rank;
    free(matched);
    free(buf);
    return VC_OK;
}

enum vc_status langid_identify(const struct langid *m, const char *text, size_t n, long lang,
                               struct langid_result *out, struct vc_err *err)
{
    *out = (struct langid_result){ NULL, 0.0, 0.0 };
    int dist_stack[256];
    int *dist = m->n <= 256 ? dist_stack : vc_malloc_array(m->n, sizeof *dist);
    if (!dist)
        return vc_err_oom(err);
    size_t n_profile;
    enum vc_status rc = langid_distances(m, text, n, dist, &n_profile, err);
    if (rc == VC_OK && n_profile > 0) {
        size_t best = 0;
        for (size_t i = 1; i < m->n; i++)
            if (dist[i] < dist[best])
                best = i;
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
    if (dist != dist_stack)
        free(dist);
    return rc;
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
    struct langid *m = NULL;
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
    void *res = NULL;
    VC_TRY(filter_env_get(env, key, load_model, release_model, &a, &res, err));
    const char *lang = filter_param_string(f, "lang");
    long idx = langid_find(res, lang);
    if (idx < 0)
        return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec,
                          "parameter \"lang\": no fingerprint for \"%s\" in %s", lang, a.dir);
    struct lang_state *st = malloc(sizeof *st);
    if (!st)
        return vc_err_oom(err);
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
    { "min", FILTER_PARAM_NUMBER, "0.8", "minimum confidence (0..1) that the text is in `lang`", 0,
      1 },
    { "lang", FILTER_PARAM_STRING, "\"en\"",
      "language wanted: a fingerprint name of libexttextcat-data", 0, 0 },
    { "dir", FILTER_PARAM_STRING, "\"" LANGID_DEFAULT_DIR "\"",
      "folder holding TextCat's fpdb.conf and *.lm fingerprints", 0, 0 },
    { "ignore", FILTER_PARAM_STRINGS, "[\"sco\"]",
      "languages left out of the ranking (Scots: a near copy of English's fingerprint)", 0, 0 },
    FILTER_PARAMS_END,
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
