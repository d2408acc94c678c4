/* textstats: OBELICS's text measures in C.  Owns the scratch arrays of one
 * analysis (code points, words, n-gram hash tables), grown on demand and
 * reused, so a warm object allocates nothing per paragraph.  Never keeps
 * the caller's text.
 *
 * Where Python's Unicode behaviour is approximated (documented in the
 * README's filter section too):
 *  - str.lower(): simple case mapping of ASCII, Latin-1, Latin Extended-A,
 *    Greek, Cyrillic and fullwidth Latin; other scripts are unchanged.
 *  - the emoji package's single-code-point emoji, part of OBELICS's special
 *    characters: the blocks U+2300-23FF, U+2600-27BF, U+2B00-2BFF and
 *    U+1F000-1FAFF.
 *  - the standardised whitespace list: every Unicode space separator (Zs),
 *    U+200B and U+FFFC.
 *  - regex \w outside ASCII: any code point that is not a special
 *    character, a combining diacritic or a punctuation-block code point. */
#include "textstats.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/vc_mem.h"
#include "core/vc_utf8.h"
#include "wordlists.h"

/* OBELICS's other_special_characters (obelics/utils/filtering_utils.py),
 * minus the space characters, which special_space() covers; sorted. */
static const uint32_t special_cps[] = {
    0x00A1, 0x00A2, 0x00A3, 0x00A4, 0x00A5, 0x00A6, 0x00A7, 0x00A8, 0x00A9, 0x00AA, 0x00AB, 0x00AE,
    0x00AF, 0x00B0, 0x00B1, 0x00B2, 0x00B3, 0x00B4, 0x00B7, 0x00B8, 0x00B9, 0x00BA, 0x00BB, 0x00BC,
    0x00BD, 0x00BE, 0x00BF, 0x00D7, 0x00F7, 0x00F8, 0x0131, 0x026A, 0x02BA, 0x02BB, 0x02BC, 0x02C8,
    0x02CC, 0x02D0, 0x02D8, 0x02DA, 0x02DC, 0x03C0, 0x0413, 0x060C, 0x0647, 0x066A, 0x066C, 0x06E9,
    0x093E, 0x0940, 0x0947, 0x094D, 0x097D, 0x09BE, 0x0E51, 0x2010, 0x2011, 0x2013, 0x2014, 0x2015,
    0x2016, 0x2018, 0x2019, 0x201A, 0x201C, 0x201D, 0x201E, 0x201F, 0x2020, 0x2022, 0x2024, 0x2026,
    0x2030, 0x2032, 0x2033, 0x2039, 0x203A, 0x203F, 0x2043, 0x2044, 0x20A8, 0x20AA, 0x20AC, 0x2103,
    0x2122, 0x2190, 0x2191, 0x2192, 0x2193, 0x21D3, 0x2206, 0x2208, 0x2212, 0x221A, 0x221E, 0x221F,
    0x223C, 0x2248, 0x2256, 0x2264, 0x2265, 0x2295, 0x22C5, 0x2550, 0x25A0, 0x25AC, 0x25B2, 0x25B4,
    0x25B7, 0x25BA, 0x25BB, 0x25BC, 0x25C6, 0x25CF, 0x25E6, 0x2605, 0x2606, 0x261B, 0x263B, 0x2661,
    0x2665, 0x266B, 0x2713, 0x2726, 0x2731, 0x2756, 0x27A4, 0x27A9, 0x2800, 0x3001, 0x3002, 0x300A,
    0x300B, 0x300C, 0x300D, 0x3010, 0x3011, 0x309C, 0x30B7, 0x30C3, 0x30C4, 0x30F3, 0x30FB, 0x30FC,
    0x4E00, 0x4E0A, 0x58EB, 0xFD3E, 0xFD3F, 0xFF01, 0xFF08, 0xFF09, 0xFF0C, 0xFF0E, 0xFF11, 0xFF1A,
    0xFF1B, 0xFF1F, 0xFF3E, 0xFF5E, 0xFFFD,
};

/* Code points OBELICS's standardize_whitespace turns into ' '. */
static bool special_space(uint32_t cp)
{
    return cp == 0x00A0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200B) || cp == 0x202F ||
           cp == 0x205F || cp == 0x3000 || cp == 0xFFFC;
}

static bool is_emoji(uint32_t cp)
{
    return (cp >= 0x2300 && cp <= 0x23FF) || (cp >= 0x2600 && cp <= 0x27BF) ||
           (cp >= 0x2B00 && cp <= 0x2BFF) || (cp >= 0x1F000 && cp <= 0x1FAFF);
}

static bool ascii_special(uint32_t cp)
{
    /* string.punctuation + string.digits + string.whitespace */
    return (cp >= 9 && cp <= 13) || cp == ' ' || (cp >= '!' && cp <= '@') ||
           (cp >= '[' && cp <= '`') || (cp >= '{' && cp <= '~');
}

bool textstats_is_special(uint32_t cp)
{
    if (cp < 0x80)
        return ascii_special(cp);
    if (special_space(cp) || is_emoji(cp))
        return true;
    size_t lo = 0, hi = sizeof special_cps / sizeof special_cps[0];
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (special_cps[mid] < cp)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < sizeof special_cps / sizeof special_cps[0] && special_cps[lo] == cp;
}

uint32_t textstats_lower(uint32_t cp)
{
    if (cp < 0x80)
        return (cp >= 'A' && cp <= 'Z') ? cp + 32 : cp;
    if (cp >= 0xC0 && cp <= 0xDE && cp != 0xD7)
        return cp + 32;
    if (cp == 0x130) /* Python gives "i" + U+0307; the dot is dropped here */
        return 'i';
    if ((cp >= 0x100 && cp <= 0x137) || (cp >= 0x14A && cp <= 0x177))
        return (cp & 1) ? cp : cp + 1;
    if ((cp >= 0x139 && cp <= 0x148) || (cp >= 0x179 && cp <= 0x17E))
        return (cp & 1) ? cp + 1 : cp;
    if (cp == 0x178)
        return 0xFF;
    if (cp >= 0x391 && cp <= 0x3A9 && cp != 0x3A2)
        return cp + 32;
    if (cp == 0x386)
        return 0x3AC;
    if (cp >= 0x388 && cp <= 0x38A)
        return cp + 37;
    if (cp == 0x38C)
        return 0x3CC;
    if (cp == 0x38E || cp == 0x38F)
        return cp + 63;
    if (cp >= 0x410 && cp <= 0x42F)
        return cp + 32;
    if (cp >= 0x400 && cp <= 0x40F)
        return cp + 80;
    if (cp >= 0xFF21 && cp <= 0xFF3A)
        return cp + 32;
    return cp;
}

/* Python's \w, approximated outside ASCII as the file header says. */
static bool is_word_char(uint32_t cp)
{
    if (cp < 0x80)
        return (cp >= '0' && cp <= '9') || (cp >= 'A' && cp <= 'Z') || (cp >= 'a' && cp <= 'z') ||
               cp == '_';
    if (cp < 0xC0 || textstats_is_special(cp))
        return false;
    return !((cp >= 0x300 && cp <= 0x36F) || (cp >= 0x2000 && cp <= 0x206F) ||
             (cp >= 0x3000 && cp <= 0x303F) || (cp >= 0xFE30 && cp <= 0xFE4F) ||
             (cp >= 0xFF00 && cp <= 0xFF0F) || (cp >= 0xFF1A && cp <= 0xFF20) ||
             (cp >= 0xFF3B && cp <= 0xFF40) || (cp >= 0xFF5B && cp <= 0xFF65));
}

/* str.split() whitespace: ASCII whitespace, the separators U+001C-001F,
 * NEL, and the Unicode spaces (already ' ' after standardisation). */
static bool is_py_space(uint32_t cp)
{
    return (cp >= 9 && cp <= 13) || (cp >= 0x1C && cp <= 0x20) || cp == 0x85 || cp == 0x2028 ||
           cp == 0x2029;
}

static uint64_t mix64(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return h;
}

uint64_t textstats_hash(const void *data, size_t n)
{
    const unsigned char *p = data;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return mix64(h ^ n);
}

/* One slot of the n-gram and word tables; count 0 marks an empty slot. */
struct slot {
    uint32_t hash;  /* high bits of the 64-bit hash, checked before the full compare */
    uint32_t first; /* position of the first occurrence */
    uint32_t count;
};

struct textstats {
    uint32_t *cp; /* (n_cp) code points, spaces standardised */
    size_t n_cp, cap_cp;
    char *wbuf; /* words, lower-cased UTF-8, back to back */
    size_t wlen, wcap;
    uint32_t *woff; /* (n_words + 1) word start offsets into wbuf */
    size_t n_words, cap_words;
    uint32_t *ids; /* (n_words) word ids for word n-grams */
    size_t cap_ids;
    struct slot *tab; /* open-addressing table, power-of-two size */
    size_t cap_tab;
    uint32_t *multi; /* counts above 1, for the top-k sum */
    size_t cap_multi;
};

struct textstats *textstats_new(void)
{
    return calloc(1, sizeof(struct textstats));
}

void textstats_free(struct textstats *ts)
{
    if (!ts)
        return;
    free(ts->cp);
    free(ts->wbuf);
    free(ts->woff);
    free(ts->ids);
    free(ts->tab);
    free(ts->multi);
    free(ts);
}

/* Grows *p to hold at least n elements of size sz. */
static bool reserve(void **p, size_t *cap, size_t n, size_t sz)
{
    void *q = vc_grow_array(*p, cap, n, sz, 64);
    if (q)
        *p = q;
    return q != NULL;
}

static enum vc_status oom(struct vc_err *err)
{
    return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "text analysis: out of memory");
}

/* Appends word cps[b..e) lower-cased and stripped; empty words vanish. */
static bool push_word(struct textstats *ts, size_t b, size_t e)
{
    while (b < e && textstats_is_special(textstats_lower(ts->cp[b])))
        b++;
    while (e > b && textstats_is_special(textstats_lower(ts->cp[e - 1])))
        e--;
    if (b == e)
        return true;
    if (!reserve((void **)&ts->wbuf, &ts->wcap, ts->wlen + 4 * (e - b), 1) ||
        !reserve((void **)&ts->woff, &ts->cap_words, ts->n_words + 2, sizeof *ts->woff))
        return false;
    ts->woff[ts->n_words] = (uint32_t)ts->wlen;
    for (size_t i = b; i < e; i++) {
        uint32_t c = ts->cp[i];
        if (c < 0x80) /* the common case, without the calls */
            ts->wbuf[ts->wlen++] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
        else
            ts->wlen += vc_utf8_encode(textstats_lower(c), ts->wbuf + ts->wlen);
    }
    ts->n_words++;
    ts->woff[ts->n_words] = (uint32_t)ts->wlen;
    return true;
}

enum vc_status textstats_analyse(struct textstats *ts, const char *text, size_t n,
                                 struct vc_err *err)
{
    ts->n_cp = ts->n_words = ts->wlen = 0;
    if (n > TEXTSTATS_MAX_BYTES)
        return vc_err_set(err, VC_ESAMPLE, VC_REASON_field_too_long,
                          "text of %zu bytes exceeds the filters' limit of %d", n,
                          TEXTSTATS_MAX_BYTES);
    if (!reserve((void **)&ts->cp, &ts->cap_cp, n + 1, sizeof *ts->cp))
        return oom(err);
    const unsigned char *s = (const unsigned char *)text;
    for (size_t i = 0; i < n;) {
        if (s[i] < 0x80) {
            ts->cp[ts->n_cp++] = s[i++];
            continue;
        }
        uint32_t c;
        i += vc_utf8_next(s + i, n - i, &c);
        ts->cp[ts->n_cp++] = special_space(c) ? ' ' : c;
    }
    size_t start = 0;
    for (size_t i = 0; i <= ts->n_cp; i++) {
        uint32_t c = i < ts->n_cp ? ts->cp[i] : ' ';
        if (c == ' ' || c == '\n' || c == '\t') {
            if (i > start && !push_word(ts, start, i))
                return oom(err);
            start = i + 1;
        }
    }
    return VC_OK;
}

size_t textstats_chars(const struct textstats *ts)
{
    return ts->n_cp;
}

size_t textstats_words(const struct textstats *ts)
{
    return ts->n_words;
}

const char *textstats_word(const struct textstats *ts, size_t i, size_t *len)
{
    *len = ts->woff[i + 1] - ts->woff[i];
    return ts->wbuf + ts->woff[i];
}

size_t textstats_whitespace_words(const struct textstats *ts)
{
    size_t words = 0;
    bool in_word = false;
    for (size_t i = 0; i < ts->n_cp; i++) {
        bool space = is_py_space(ts->cp[i]);
        if (!space && !in_word)
            words++;
        in_word = !space;
    }
    return words;
}

/* A table of at least 2 * n slots (load <= 1/2), cleared. */
static bool table_for(struct textstats *ts, size_t n, size_t *mask)
{
    size_t cap = 16;
    while (cap < 2 * n)
        cap *= 2;
    if (!reserve((void **)&ts->tab, &ts->cap_tab, cap, sizeof *ts->tab))
        return false;
    memset(ts->tab, 0, cap * sizeof *ts->tab);
    *mask = cap - 1;
    return true;
}

/* Rolling polynomial hash modulo the Mersenne prime 2^61 - 1: O(1) per
 * window whatever k, and (unlike arithmetic modulo 2^64) no cheap family of
 * colliding inputs.  Collisions only cost a compare: windows are verified. */
#define P61       ((1ull << 61) - 1)
#define HASH_BASE 0x1FFFFFFFFFFFFFull /* any base in [2, P61) works; fixed for determinism */

static uint64_t mulmod61(uint64_t a, uint64_t b)
{
    __extension__ unsigned __int128 p = (unsigned __int128)a * b;
    uint64_t r = (uint64_t)(p & P61) + (uint64_t)(p >> 61);
    return r >= P61 ? r - P61 : r;
}

static uint64_t addmod61(uint64_t a, uint64_t b)
{
    uint64_t r = a + b;
    return r >= P61 ? r - P61 : r;
}

/* Counts the distinct k-grams of seq[0..len) in ts->tab; sets *distinct and
 * fills ts->multi with the counts above 1 (*n_multi of them). */
static enum vc_status count_ngrams(struct textstats *ts, const uint32_t *seq, size_t len, size_t k,
                                   size_t *distinct, size_t *n_multi, struct vc_err *err)
{
    size_t windows = len - k + 1, mask;
    if (!table_for(ts, windows, &mask))
        return oom(err);
    uint64_t h = 0, top = 1; /* top = BASE^(k-1), the weight of the outgoing element */
    for (size_t j = 0; j < k; j++) {
        h = addmod61(mulmod61(h, HASH_BASE), seq[j]);
        if (j + 1 < k)
            top = mulmod61(top, HASH_BASE);
    }
    *distinct = 0;
    for (size_t i = 0; i < windows; i++) {
        if (i > 0) {
            h = addmod61(h, P61 - mulmod61(seq[i - 1], top));
            h = addmod61(mulmod61(h, HASH_BASE), seq[i + k - 1]);
        }
        uint64_t mixed = mix64(h);
        uint32_t tag = (uint32_t)(mixed >> 32);
        for (size_t j = mixed & mask;; j = (j + 1) & mask) {
            struct slot *sl = &ts->tab[j];
            if (sl->count == 0) {
                *sl = (struct slot){ tag, (uint32_t)i, 1 };
                ++*distinct;
                break;
            }
            if (sl->hash == tag && memcmp(seq + sl->first, seq + i, k * sizeof *seq) == 0) {
                sl->count++;
                break;
            }
        }
    }
    *n_multi = 0;
    for (size_t j = 0; j <= mask; j++) {
        if (ts->tab[j].count > 1) {
            if (!reserve((void **)&ts->multi, &ts->cap_multi, *n_multi + 1, sizeof *ts->multi))
                return oom(err);
            ts->multi[(*n_multi)++] = ts->tab[j].count;
        }
    }
    return VC_OK;
}

static int cmp_desc(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x < y) - (x > y);
}

enum vc_status textstats_char_repetition(struct textstats *ts, size_t n, double *out,
                                         struct vc_err *err)
{
    *out = 0.0;
    if (n == 0 || ts->n_cp < n)
        return VC_OK;
    size_t distinct = 0, n_multi = 0;
    VC_TRY(count_ngrams(ts, ts->cp, ts->n_cp, n, &distinct, &n_multi, err));
    /* OBELICS: the top min(int(sqrt(distinct)), distinct - singletons). */
    size_t top = (size_t)sqrt((double)distinct);
    if (top > n_multi)
        top = n_multi;
    if (n_multi > 1) /* ts->multi may still be NULL when there are none */
        qsort(ts->multi, n_multi, sizeof *ts->multi, cmp_desc);
    uint64_t sum = 0;
    for (size_t i = 0; i < top; i++)
        sum += ts->multi[i];
    *out = (double)sum / (double)(ts->n_cp - n + 1);
    return VC_OK;
}

/* Gives every distinct word an id so word n-grams compare as integers. */
static enum vc_status word_ids(struct textstats *ts, struct vc_err *err)
{
    size_t mask;
    if (!table_for(ts, ts->n_words, &mask) ||
        !reserve((void **)&ts->ids, &ts->cap_ids, ts->n_words, sizeof *ts->ids))
        return oom(err);
    uint32_t next = 0;
    for (size_t i = 0; i < ts->n_words; i++) {
        size_t len;
        const char *w = textstats_word(ts, i, &len);
        uint64_t h = textstats_hash(w, len);
        uint32_t tag = (uint32_t)(h >> 32);
        for (size_t j = h & mask;; j = (j + 1) & mask) {
            struct slot *sl = &ts->tab[j];
            if (sl->count == 0) {
                /* here `count` holds id + 1 and `first` the word index */
                *sl = (struct slot){ tag, (uint32_t)i, ++next };
                ts->ids[i] = next - 1;
                break;
            }
            size_t olen;
            const char *o = textstats_word(ts, sl->first, &olen);
            if (sl->hash == tag && olen == len && memcmp(o, w, len) == 0) {
                ts->ids[i] = sl->count - 1;
                break;
            }
        }
    }
    return VC_OK;
}

enum vc_status textstats_word_repetition(struct textstats *ts, size_t n, double *out,
                                         struct vc_err *err)
{
    *out = 0.0;
    if (n == 0 || ts->n_words < n)
        return VC_OK;
    VC_TRY(word_ids(ts, err));
    size_t distinct = 0, n_multi = 0;
    VC_TRY(count_ngrams(ts, ts->ids, ts->n_words, n, &distinct, &n_multi, err));
    uint64_t sum = 0;
    for (size_t i = 0; i < n_multi; i++)
        sum += ts->multi[i];
    *out = (double)sum / (double)(ts->n_words - n + 1);
    return VC_OK;
}

double textstats_special_ratio(const struct textstats *ts)
{
    if (ts->n_cp == 0)
        return 0.0;
    size_t special = 0;
    for (size_t i = 0; i < ts->n_cp; i++)
        special += textstats_is_special(ts->cp[i]);
    return (double)special / (double)ts->n_cp;
}

double textstats_word_ratio(const struct textstats *ts, const struct wordset *set)
{
    if (ts->n_words == 0)
        return 0.0;
    size_t hits = 0;
    for (size_t i = 0; i < ts->n_words; i++) {
        size_t len;
        const char *w = textstats_word(ts, i, &len);
        hits += wordset_contains(set, w, len);
    }
    return (double)hits / (double)ts->n_words;
}

static bool is_punct_mark(uint32_t cp)
{
    return cp == ',' || cp == ';' || cp == ':' || cp == '?' || cp == '!' || cp == '.';
}

double textstats_punctuation_ratio(const struct textstats *ts, size_t min_tokens)
{
    size_t tokens = 0, marks = 0;
    for (size_t i = 0; i < ts->n_cp;) {
        uint32_t c = ts->cp[i];
        if (is_word_char(c) || c == '\'') {
            while (i < ts->n_cp && (is_word_char(ts->cp[i]) || ts->cp[i] == '\''))
                i++;
            tokens++;
        } else {
            marks += is_punct_mark(c);
            tokens += is_punct_mark(c);
            i++;
        }
    }
    if (tokens == 0)
        return 0.0;
    if (min_tokens > 0 && tokens < min_tokens)
        return 1.0;
    return (double)marks / (double)tokens;
}
