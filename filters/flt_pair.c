/* flt_pair: caption filter tables and scores.  Owns the boilerplate phrase
 * set of each configured cap_boilerplate filter.  Never changes the
 * caption.  Captions longer than CAP_NORM_BYTES cannot be a file name or a
 * boilerplate phrase, so normalised copies never need more room. */
#include "flt_pair.h"

#include <ctype.h>
#include <string.h>

#include "core/vc_utf8.h"
#include "textstats.h"
#include "wordlists.h"

#define DATACOMP "DataComp baselines/apply_filter.py basic filter"

/* Longer than any file name or stock phrase worth recognising. */
enum { CAP_NORM_BYTES = 256 };

static bool is_ascii_space(int c)
{
    return c == ' ' || (c >= '\t' && c <= '\r');
}

/* Trimmed span of the caption. */
static void trim(const struct filter_input *in, const char **b, const char **e)
{
    *b = in->text;
    *e = in->text + in->text_len;
    while (*b < *e && is_ascii_space((unsigned char)**b))
        (*b)++;
    while (*e > *b && is_ascii_space((unsigned char)(*e)[-1]))
        (*e)--;
}

static bool has_space(const char *b, const char *e)
{
    for (; b < e; b++)
        if (is_ascii_space((unsigned char)*b))
            return true;
    return false;
}

/* Decoration that never changes what a caption says: "Image:" is "image". */
static bool is_edge_punct(char c)
{
    return c && strchr(".:;,!?-_|*\"'()[]{}<>#~", c) != NULL;
}

/* Lower-cases the caption, collapses blank runs to one space and strips
 * edge punctuation into out; false when it does not fit. */
static bool normalise(const struct filter_input *in, char *out, size_t cap, size_t *len)
{
    const char *b, *e;
    trim(in, &b, &e);
    while (b < e && is_edge_punct(*b))
        b++;
    while (e > b && is_edge_punct(e[-1]))
        e--;
    size_t n = 0;
    bool blank = false;
    for (const char *p = b; p < e;) {
        uint32_t cp;
        p += vc_utf8_next((const unsigned char *)p, (size_t)(e - p), &cp);
        if (is_ascii_space((int)cp)) {
            blank = true;
            continue;
        }
        if (n + 5 > cap)
            return false;
        if (blank)
            out[n++] = ' ';
        blank = false;
        n += vc_utf8_encode(textstats_lower(cp), out + n);
    }
    out[n] = '\0';
    *len = n;
    return true;
}

static enum vc_status words_score(const struct filter *f, const struct filter_input *in,
                                  double *score, struct vc_err *err)
{
    (void)f, (void)err;
    *score = (double)textstats_whitespace_words(in->ts);
    return VC_OK;
}

static enum vc_status chars_score(const struct filter *f, const struct filter_input *in,
                                  double *score, struct vc_err *err)
{
    (void)f, (void)err;
    *score = (double)textstats_chars(in->ts);
    return VC_OK;
}

static bool ends_with(const char *s, size_t n, const char *suffix)
{
    size_t k = strlen(suffix);
    return n >= k && memcmp(s + n - k, suffix, k) == 0;
}

static bool starts_with(const char *s, size_t n, const char *prefix)
{
    size_t k = strlen(prefix);
    return n >= k && memcmp(s, prefix, k) == 0;
}

/* "photo.JPG", "banner-2.webp", "IMG_1234", "DSC01234", "PXL_20230101_1200". */
static enum vc_status filename_score(const struct filter *f, const struct filter_input *in,
                                     double *score, struct vc_err *err)
{
    (void)f, (void)err;
    static const char *const exts[] = { ".jpg",  ".jpeg", ".png",  ".gif", ".webp",
                                        ".bmp",  ".tif",  ".tiff", ".svg", ".heic",
                                        ".heif", ".avif", ".jfif", ".ico", ".pdf" };
    static const char *const camera[] = { "img",  "dsc",        "dscn",  "dscf",  "dcim",
                                          "pict", "pxl",        "mvimg", "image", "photo",
                                          "pic",  "screenshot", "scan" };
    char s[CAP_NORM_BYTES];
    size_t n;
    *score = 0.0;
    const char *b, *e;
    trim(in, &b, &e);
    if (b == e || has_space(b, e) || !normalise(in, s, sizeof s, &n))
        return VC_OK;
    /* normalise() stripped a trailing '.', so test the trimmed text. */
    size_t tn = (size_t)(e - b);
    char t[CAP_NORM_BYTES];
    if (tn >= sizeof t)
        return VC_OK;
    for (size_t i = 0; i < tn; i++)
        t[i] = (char)tolower((unsigned char)b[i]);
    for (size_t i = 0; i < sizeof exts / sizeof exts[0]; i++) {
        if (ends_with(t, tn, exts[i]) && tn > strlen(exts[i])) {
            *score = 1.0;
            return VC_OK;
        }
    }
    for (size_t i = 0; i < sizeof camera / sizeof camera[0]; i++) {
        if (!starts_with(s, n, camera[i]))
            continue;
        size_t digits = 0, j = strlen(camera[i]);
        bool only = true;
        for (; j < n; j++) {
            digits += isdigit((unsigned char)s[j]) != 0;
            only = only && (isdigit((unsigned char)s[j]) || s[j] == '_' || s[j] == '-');
        }
        if (only && digits >= 2) {
            *score = 1.0;
            return VC_OK;
        }
    }
    return VC_OK;
}

static enum vc_status url_score(const struct filter *f, const struct filter_input *in,
                                double *score, struct vc_err *err)
{
    (void)f, (void)err;
    const char *b, *e;
    trim(in, &b, &e);
    *score = 0.0;
    if (b == e || has_space(b, e))
        return VC_OK;
    char head[9] = { 0 };
    size_t n = (size_t)(e - b) < 8 ? (size_t)(e - b) : 8;
    for (size_t i = 0; i < n; i++)
        head[i] = (char)tolower((unsigned char)b[i]);
    bool scheme = false;
    for (const char *p = b; p + 2 < e; p++)
        scheme = scheme || (p[0] == ':' && p[1] == '/' && p[2] == '/');
    if (scheme || starts_with(head, n, "www."))
        *score = 1.0;
    return VC_OK;
}

/* Nothing but digits, spaces, punctuation and symbols, with a digit:
 * "12345", "2019-05-01", "#3", "1/250 s". */
static enum vc_status number_score(const struct filter *f, const struct filter_input *in,
                                   double *score, struct vc_err *err)
{
    (void)f, (void)err;
    bool digit = false;
    *score = 0.0;
    const unsigned char *p = (const unsigned char *)in->text;
    for (size_t i = 0; i < in->text_len;) {
        uint32_t cp;
        i += vc_utf8_next(p + i, in->text_len - i, &cp);
        if (cp >= '0' && cp <= '9')
            digit = true;
        else if (!textstats_is_special(cp))
            return VC_OK;
    }
    *score = digit ? 1.0 : 0.0;
    return VC_OK;
}

static enum vc_status boiler_init(struct filter *f, struct filter_env *env, struct vc_err *err)
{
    (void)env;
    size_t n_builtin, n_extra = filter_param_strings_count(f, "extra");
    const char *const *builtin = wordlist_builtin(WORDLIST_BOILERPLATE, &n_builtin);
    const char *all[256];
    if (n_builtin + n_extra > sizeof all / sizeof all[0])
        return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec,
                          "parameter \"extra\": at most %zu phrases",
                          sizeof all / sizeof all[0] - n_builtin);
    memcpy(all, builtin, n_builtin * sizeof *all);
    for (size_t i = 0; i < n_extra; i++)
        all[n_builtin + i] = filter_param_strings_at(f, "extra", i);
    struct wordset *set = NULL;
    VC_TRY(wordset_from_list(all, n_builtin + n_extra, &set, err));
    f->state = set;
    return VC_OK;
}

static void boiler_fini(struct filter *f)
{
    wordset_free(f->state);
}

static enum vc_status boiler_score(const struct filter *f, const struct filter_input *in,
                                   double *score, struct vc_err *err)
{
    (void)err;
    char s[CAP_NORM_BYTES];
    size_t n;
    *score = normalise(in, s, sizeof s, &n) && wordset_contains(f->state, s, n) ? 1.0 : 0.0;
    return VC_OK;
}

static const struct filter_param words_params[] = {
    { "min", FILTER_PARAM_INT, "3", "fewest whitespace-separated words kept (DataComp: > 2)", 0,
      1e6 },
    FILTER_PARAMS_END,
};
const struct filter_ops flt_cap_words = {
    .name = "cap_words",
    .kind = FILTER_KIND_PAIR,
    .summary = "whitespace-separated words in the caption (Python str.split())",
    .source = DATACOMP " (caption_num_words > 2)",
    .enabled = true,
    .params = words_params,
    .score = words_score,
};

static const struct filter_param chars_params[] = {
    { "min", FILTER_PARAM_INT, "6", "fewest characters kept (DataComp: > 5)", 0, 1e6 },
    FILTER_PARAMS_END,
};
const struct filter_ops flt_cap_chars = {
    .name = "cap_chars",
    .kind = FILTER_KIND_PAIR,
    .summary = "characters (code points) in the caption",
    .source = DATACOMP " (caption_num_chars > 5)",
    .enabled = true,
    .params = chars_params,
    .score = chars_score,
};

static const struct filter_param bool_params[] = {
    { "max", FILTER_PARAM_NUMBER, "0", "1 = the caption is only that", 0, 1 },
    FILTER_PARAMS_END,
};
const struct filter_ops flt_cap_filename = {
    .name = "cap_filename",
    .kind = FILTER_KIND_PAIR,
    .summary = "1 when the caption is only a file name (photo.jpg, IMG_1234, DSC01234)",
    .source = "ours (the issue's list of junk captions)",
    .enabled = true,
    .params = bool_params,
    .score = filename_score,
};

const struct filter_ops flt_cap_url = {
    .name = "cap_url",
    .kind = FILTER_KIND_PAIR,
    .summary = "1 when the caption is only a URL (scheme:// or www.)",
    .source = "ours (the issue's list of junk captions)",
    .enabled = true,
    .params = bool_params,
    .score = url_score,
};

const struct filter_ops flt_cap_number = {
    .name = "cap_number",
    .kind = FILTER_KIND_PAIR,
    .summary = "1 when the caption has digits and no letters (12345, 2019-05-01)",
    .source = "ours (the issue's list of junk captions)",
    .enabled = true,
    .params = bool_params,
    .score = number_score,
};

static const struct filter_param boiler_params[] = {
    { "max", FILTER_PARAM_NUMBER, "0", "1 = the caption is a boilerplate phrase", 0, 1 },
    { "extra", FILTER_PARAM_STRINGS, "[]", "phrases added to the built-in list (wordlists.c)", 0,
      0 },
    FILTER_PARAMS_END,
};
const struct filter_ops flt_cap_boilerplate = {
    .name = "cap_boilerplate",
    .kind = FILTER_KIND_PAIR,
    .summary = "1 when the whole caption, lower-cased and trimmed of punctuation, is a "
               "placeholder phrase (image, photo, untitled, click to enlarge, ...)",
    .source = "ours (the issue's list; phrases in filters/wordlists.c)",
    .enabled = true,
    .params = boiler_params,
    .init = boiler_init,
    .fini = boiler_fini,
    .score = boiler_score,
};
