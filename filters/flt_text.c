/* flt_text: the OBELICS text filters as filter_ops tables.  Owns only each
 * filter's small parameter struct; word lists are the env's (one copy per
 * run however many filters use them).  Never tokenizes: the chain hands
 * every filter the same textstats analysis. */
#include "flt_text.h"

#include <stdio.h>
#include <stdlib.h>

#include "textstats.h"
#include "wordlists.h"

#define OBELICS_YAML "OBELICS config_filter_web_documents.yaml"

/* Parameters read once at init so scoring does no JSON look-ups. */
struct text_state {
    size_t n;                    /* n-gram length, or the punctuation exemption */
    const struct wordset *words; /* borrowed from the env */
};

/* The filter's state, owned by f (text_fini); NULL on OOM. */
static struct text_state *new_state(struct filter *f)
{
    f->state = calloc(1, sizeof(struct text_state));
    return f->state;
}

static void text_fini(struct filter *f)
{
    free(f->state);
}

static enum vc_status load_builtin(const void *arg, void **res, struct vc_err *err)
{
    size_t n;
    const char *const *list = wordlist_builtin(*(const enum wordlist_id *)arg, &n);
    struct wordset *set = NULL;
    VC_TRY(wordset_from_list(list, n, &set, err));
    *res = set;
    return VC_OK;
}

static enum vc_status load_file(const void *arg, void **res, struct vc_err *err)
{
    struct wordset *set = NULL;
    VC_TRY(wordset_load_file(arg, &set, err));
    *res = set;
    return VC_OK;
}

static void release_set(void *res)
{
    wordset_free(res);
}

static enum vc_status init_builtin(struct filter *f, struct filter_env *env, enum wordlist_id id,
                                   const char *key, struct vc_err *err)
{
    struct text_state *st = new_state(f);
    if (!st)
        return vc_err_oom(err);
    void *res = NULL;
    VC_TRY(filter_env_get(env, key, load_builtin, release_set, &id, &res, err));
    st->words = res;
    return VC_OK;
}

static enum vc_status init_stop(struct filter *f, struct filter_env *env, struct vc_err *err)
{
    return init_builtin(f, env, WORDLIST_STOP, "wordlist:stop", err);
}

static enum vc_status init_flagged(struct filter *f, struct filter_env *env, struct vc_err *err)
{
    return init_builtin(f, env, WORDLIST_FLAGGED, "wordlist:flagged", err);
}

static enum vc_status init_spam(struct filter *f, struct filter_env *env, struct vc_err *err)
{
    return init_builtin(f, env, WORDLIST_SPAM, "wordlist:spam", err);
}

static enum vc_status init_common(struct filter *f, struct filter_env *env, struct vc_err *err)
{
    struct text_state *st = new_state(f);
    if (!st)
        return vc_err_oom(err);
    const char *path = filter_param_string(f, "path");
    char key[4200];
    snprintf(key, sizeof key, "wordfile:%s", path);
    void *res = NULL;
    VC_TRY(filter_env_get(env, key, load_file, release_set, path, &res, err));
    st->words = res;
    return VC_OK;
}

/* "n" (n-gram length) or "min_tokens" (punctuation exemption), whichever
 * the filter has, as a count. */
static enum vc_status init_count(struct filter *f, struct filter_env *env, struct vc_err *err)
{
    (void)env;
    struct text_state *st = new_state(f);
    if (!st)
        return vc_err_oom(err);
    /* The parameter table bounds both (filter_check_config). */
    st->n = (size_t)(filter_param_number(f, "n") + filter_param_number(f, "min_tokens"));
    return VC_OK;
}

static enum vc_status score_words(const struct filter *f, const struct filter_input *in,
                                  double *score, struct vc_err *err)
{
    (void)f, (void)err;
    *score = (double)textstats_words(in->ts);
    return VC_OK;
}

static enum vc_status score_char_rep(const struct filter *f, const struct filter_input *in,
                                     double *score, struct vc_err *err)
{
    const struct text_state *st = f->state;
    return textstats_char_repetition(in->ts, st->n, score, err);
}

static enum vc_status score_word_rep(const struct filter *f, const struct filter_input *in,
                                     double *score, struct vc_err *err)
{
    const struct text_state *st = f->state;
    return textstats_word_repetition(in->ts, st->n, score, err);
}

static enum vc_status score_special(const struct filter *f, const struct filter_input *in,
                                    double *score, struct vc_err *err)
{
    (void)f, (void)err;
    *score = textstats_special_ratio(in->ts);
    return VC_OK;
}

static enum vc_status score_word_ratio(const struct filter *f, const struct filter_input *in,
                                       double *score, struct vc_err *err)
{
    (void)err;
    const struct text_state *st = f->state;
    *score = textstats_word_ratio(in->ts, st->words);
    return VC_OK;
}

static enum vc_status score_punct(const struct filter *f, const struct filter_input *in,
                                  double *score, struct vc_err *err)
{
    (void)err;
    const struct text_state *st = f->state;
    *score = textstats_punctuation_ratio(in->ts, st->n);
    return VC_OK;
}

static enum vc_status score_images(const struct filter *f, const struct filter_input *in,
                                   double *score, struct vc_err *err)
{
    (void)f, (void)err;
    *score = (double)in->n_images;
    return VC_OK;
}

#define NGRAM_PARAM(def)                                                                           \
    {                                                                                              \
        "n", FILTER_PARAM_INT, def, "n-gram length", 1, 1000                                       \
    }
#define COMMON_PATH_PARAM                                                                          \
    {                                                                                              \
        "path", FILTER_PARAM_STRING, "\"" WORDSET_DEFAULT_DICT "\"",                               \
            "word list, one word per line (Debian wamerican by default)", 0, 0                     \
    }

/* ---- paragraph level ---- */

static const struct filter_param par_word_count_params[] = {
    { "min", FILTER_PARAM_INT, "4", "fewest words kept", 0, 1e9 },
    { "max", FILTER_PARAM_INT, "1000", "most words kept", 0, 1e9 },
    FILTER_PARAMS_END,
};
const struct filter_ops flt_par_word_count = {
    .name = "par_word_count",
    .kind = FILTER_KIND_TEXT,
    .summary = "words in the paragraph",
    .source = OBELICS_YAML " number_words_node_level_{min,max}_cutoff",
    .enabled = true,
    .params = par_word_count_params,
    .score = score_words,
};

static const struct filter_param par_char_rep_params[] = {
    { "max", FILTER_PARAM_NUMBER, "0.1", "highest repetition ratio kept", 0, 1 },
    NGRAM_PARAM("10"),
    FILTER_PARAMS_END,
};
const struct filter_ops flt_par_char_repetition = {
    .name = "par_char_repetition",
    .kind = FILTER_KIND_TEXT,
    .summary = "share of character n-grams held by the sqrt(distinct) most repeated ones",
    .source = OBELICS_YAML " character_repetition_node_level_max_cutoff, length 10",
    .enabled = true,
    .params = par_char_rep_params,
    .init = init_count,
    .fini = text_fini,
    .score = score_char_rep,
};

static const struct filter_param par_word_rep_params[] = {
    { "max", FILTER_PARAM_NUMBER, "0.1", "highest repetition ratio kept", 0, 1 },
    NGRAM_PARAM("5"),
    FILTER_PARAMS_END,
};
const struct filter_ops flt_par_word_repetition = {
    .name = "par_word_repetition",
    .kind = FILTER_KIND_TEXT,
    .summary = "share of word n-grams that occur more than once",
    .source = OBELICS_YAML " word_repetition_node_level_max_cutoff, length 5",
    .enabled = true,
    .params = par_word_rep_params,
    .init = init_count,
    .fini = text_fini,
    .score = score_word_rep,
};

static const struct filter_param par_special_params[] = {
    { "max", FILTER_PARAM_NUMBER, "0.3", "highest special-character ratio kept", 0, 1 },
    FILTER_PARAMS_END,
};
const struct filter_ops flt_par_special_chars = {
    .name = "par_special_chars",
    .kind = FILTER_KIND_TEXT,
    .summary = "share of characters that are digits, punctuation, spaces, symbols or emoji",
    .source = OBELICS_YAML " special_character_ratio_node_level_max_cutoff",
    .enabled = true,
    .params = par_special_params,
    .score = score_special,
};

static const struct filter_param par_stop_params[] = {
    { "min", FILTER_PARAM_NUMBER, "0.3", "lowest stop-word ratio kept", 0, 1 },
    FILTER_PARAMS_END,
};
const struct filter_ops flt_par_stopword_ratio = {
    .name = "par_stopword_ratio",
    .kind = FILTER_KIND_TEXT,
    .summary = "share of words that are OBELICS stop words",
    .source = OBELICS_YAML " stopword_ratio_node_level_min_cutoff",
    .enabled = true,
    .params = par_stop_params,
    .init = init_stop,
    .fini = text_fini,
    .score = score_word_ratio,
};

static const struct filter_param par_flagged_params[] = {
    { "max", FILTER_PARAM_NUMBER, "0.01", "highest flagged-word ratio kept", 0, 1 },
    FILTER_PARAMS_END,
};
const struct filter_ops flt_par_flagged_ratio = {
    .name = "par_flagged_ratio",
    .kind = FILTER_KIND_TEXT,
    .summary = "share of words on OBELICS's flagged (adult) word list",
    .source = OBELICS_YAML " flagged_word_ratio_node_level_max_cutoff",
    .enabled = true,
    .params = par_flagged_params,
    .init = init_flagged,
    .fini = text_fini,
    .score = score_word_ratio,
};

static const struct filter_param par_punct_params[] = {
    { "min", FILTER_PARAM_NUMBER, "0.001", "lowest punctuation ratio kept", 0, 1 },
    { "min_tokens", FILTER_PARAM_INT, "12",
      "paragraphs with fewer word/punctuation tokens score 1.0 (not judged)", 0, 1e6 },
    FILTER_PARAMS_END,
};
const struct filter_ops flt_par_punctuation_ratio = {
    .name = "par_punctuation_ratio",
    .kind = FILTER_KIND_TEXT,
    .summary = "share of , ; : ? ! . among word and punctuation tokens",
    .source = OBELICS_YAML " punctuation_ratio_node_level_min_cutoff, "
                           "min_number_words_to_check_punctuation_ratio_node_level 12",
    .enabled = true,
    .params = par_punct_params,
    .init = init_count,
    .fini = text_fini,
    .score = score_punct,
};

static const struct filter_param par_spam_params[] = {
    { "max", FILTER_PARAM_NUMBER, "0.12", "paragraphs at or above this spam-word ratio go", 0, 1 },
    FILTER_PARAMS_END,
};
const struct filter_ops flt_par_spam_ratio = {
    .name = "par_spam_ratio",
    .kind = FILTER_KIND_TEXT,
    .summary = "share of words on OBELICS's spam list (share, cookie, subscribe, click, ...)",
    .source = "OBELICS build_obelics/13_final_processing.py SPAM_WORD_RATIO_CUTOFF (kept only "
              "below it)",
    .enabled = true,
    .flags = FILTER_MAX_EXCLUSIVE,
    .params = par_spam_params,
    .init = init_spam,
    .fini = text_fini,
    .score = score_word_ratio,
};

static const struct filter_param par_common_params[] = {
    { "min", FILTER_PARAM_NUMBER, "0.8", "lowest common-word ratio kept", 0, 1 },
    COMMON_PATH_PARAM,
    FILTER_PARAMS_END,
};
const struct filter_ops flt_par_common_ratio = {
    .name = "par_common_ratio",
    .kind = FILTER_KIND_TEXT,
    .summary = "share of words found in an English dictionary",
    .source = OBELICS_YAML " common_word_ratio_node_level_min_cutoff (OSCAR word list there, "
                           "wamerican here)",
    .enabled = true,
    .params = par_common_params,
    .init = init_common,
    .fini = text_fini,
    .score = score_word_ratio,
};

/* ---- document level ---- */

static const struct filter_param doc_images_params[] = {
    { "min", FILTER_PARAM_INT, "1", "fewest images kept", 0, 1e6 },
    { "max", FILTER_PARAM_INT, "30", "most images kept", 0, 1e6 },
    FILTER_PARAMS_END,
};
const struct filter_ops flt_doc_images = {
    .name = "doc_images",
    .kind = FILTER_KIND_DOCUMENT,
    .summary = "images left in the document after the image filters",
    .source = OBELICS_YAML " number_images_{min,max}_cutoff",
    .enabled = true,
    .params = doc_images_params,
    .score = score_images,
};

static const struct filter_param doc_word_count_params[] = {
    { "min", FILTER_PARAM_INT, "10", "fewest words kept", 0, 1e9 },
    { "max", FILTER_PARAM_INT, "2000", "most words kept", 0, 1e9 },
    FILTER_PARAMS_END,
};
const struct filter_ops flt_doc_word_count = {
    .name = "doc_word_count",
    .kind = FILTER_KIND_DOCUMENT,
    .summary = "words in the whole document text",
    .source = OBELICS_YAML " number_words_doc_level_{min,max}_cutoff",
    .enabled = true,
    .params = doc_word_count_params,
    .score = score_words,
};

static const struct filter_param doc_char_rep_params[] = {
    { "max", FILTER_PARAM_NUMBER, "0.1", "highest repetition ratio kept", 0, 1 },
    NGRAM_PARAM("10"),
    FILTER_PARAMS_END,
};
const struct filter_ops flt_doc_char_repetition = {
    .name = "doc_char_repetition",
    .kind = FILTER_KIND_DOCUMENT,
    .summary = "share of character n-grams held by the sqrt(distinct) most repeated ones",
    .source = OBELICS_YAML " character_repetition_doc_level_max_cutoff, length 10",
    .enabled = true,
    .params = doc_char_rep_params,
    .init = init_count,
    .fini = text_fini,
    .score = score_char_rep,
};

static const struct filter_param doc_word_rep_params[] = {
    { "max", FILTER_PARAM_NUMBER, "0.2", "highest repetition ratio kept", 0, 1 },
    NGRAM_PARAM("5"),
    FILTER_PARAMS_END,
};
const struct filter_ops flt_doc_word_repetition = {
    .name = "doc_word_repetition",
    .kind = FILTER_KIND_DOCUMENT,
    .summary = "share of word n-grams that occur more than once",
    .source = OBELICS_YAML " word_repetition_doc_level_max_cutoff, length 5",
    .enabled = true,
    .params = doc_word_rep_params,
    .init = init_count,
    .fini = text_fini,
    .score = score_word_rep,
};

static const struct filter_param doc_special_params[] = {
    { "max", FILTER_PARAM_NUMBER, "0.275", "highest special-character ratio kept", 0, 1 },
    FILTER_PARAMS_END,
};
const struct filter_ops flt_doc_special_chars = {
    .name = "doc_special_chars",
    .kind = FILTER_KIND_DOCUMENT,
    .summary = "share of characters that are digits, punctuation, spaces, symbols or emoji",
    .source = OBELICS_YAML " special_character_ratio_doc_level_max_cutoff",
    .enabled = true,
    .params = doc_special_params,
    .score = score_special,
};

static const struct filter_param doc_stop_params[] = {
    { "min", FILTER_PARAM_NUMBER, "0.35", "lowest stop-word ratio kept", 0, 1 },
    FILTER_PARAMS_END,
};
const struct filter_ops flt_doc_stopword_ratio = {
    .name = "doc_stopword_ratio",
    .kind = FILTER_KIND_DOCUMENT,
    .summary = "share of words that are OBELICS stop words",
    .source = OBELICS_YAML " stopword_ratio_doc_level_min_cutoff",
    .enabled = true,
    .params = doc_stop_params,
    .init = init_stop,
    .fini = text_fini,
    .score = score_word_ratio,
};

static const struct filter_param doc_flagged_params[] = {
    { "max", FILTER_PARAM_NUMBER, "0.01", "highest flagged-word ratio kept", 0, 1 },
    FILTER_PARAMS_END,
};
const struct filter_ops flt_doc_flagged_ratio = {
    .name = "doc_flagged_ratio",
    .kind = FILTER_KIND_DOCUMENT,
    .summary = "share of words on OBELICS's flagged (adult) word list",
    .source = OBELICS_YAML " flagged_word_ratio_doc_level_max_cutoff",
    .enabled = true,
    .params = doc_flagged_params,
    .init = init_flagged,
    .fini = text_fini,
    .score = score_word_ratio,
};

static const struct filter_param doc_punct_params[] = {
    { "min", FILTER_PARAM_NUMBER, "0.03", "lowest punctuation ratio kept", 0, 1 },
    { "min_tokens", FILTER_PARAM_INT, "0",
      "documents with fewer tokens score 1.0; 0 = no exemption (OBELICS at document level)", 0,
      1e6 },
    FILTER_PARAMS_END,
};
const struct filter_ops flt_doc_punctuation_ratio = {
    .name = "doc_punctuation_ratio",
    .kind = FILTER_KIND_DOCUMENT,
    .summary = "share of , ; : ? ! . among word and punctuation tokens",
    .source = OBELICS_YAML " punctuation_ratio_doc_level_min_cutoff",
    .enabled = true,
    .params = doc_punct_params,
    .init = init_count,
    .fini = text_fini,
    .score = score_punct,
};

static const struct filter_param doc_common_params[] = {
    { "min", FILTER_PARAM_NUMBER, "0.9", "lowest common-word ratio kept", 0, 1 },
    COMMON_PATH_PARAM,
    FILTER_PARAMS_END,
};
const struct filter_ops flt_doc_common_ratio = {
    .name = "doc_common_ratio",
    .kind = FILTER_KIND_DOCUMENT,
    .summary = "share of words found in an English dictionary",
    .source = OBELICS_YAML " common_word_ratio_doc_level_min_cutoff (OSCAR word list there, "
                           "wamerican here)",
    .enabled = true,
    .params = doc_common_params,
    .init = init_common,
    .fini = text_fini,
    .score = score_word_ratio,
};
