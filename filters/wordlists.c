/* wordlists: the built-in lists (facts from the OBELICS repository, written
 * out here) and an immutable open-addressing hash set of UTF-8 words.  Owns
 * each set's single byte blob.  Never keeps the lines of a loaded file
 * other than the words themselves. */
#include "wordlists.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/vc_fs.h"
#include "core/vc_mem.h"
#include "core/vc_utf8.h"
#include "textstats.h"

/* OBELICS STOPWORDS, obelics/utils/filtering_utils.py.  Entries with
 * inner punctuation ("a.k.a", "and/or", "w/o") are kept as published; the
 * tokenizer strips only word edges, so they can match. */
static const char *const stop_words[] = {
    "a",          "a.k.a",     "aboard",     "about",     "above",
    "abt",        "accord",    "according",  "across",    "after",
    "against",    "ago",       "aground",    "ahead",     "aka",
    "ala",        "albeit",    "all",        "along",     "alongside",
    "although",   "am",        "amid",       "amidst",    "among",
    "amongst",    "amoung",    "an",         "and",       "and/or",
    "another",    "any",       "any1",       "anybody",   "anyone",
    "anything",   "are",       "around",     "as",        "aside",
    "astride",    "at",        "atop",       "away",      "b",
    "b/c",        "b/t",       "back",       "base",      "based",
    "bc",         "be",        "because",    "been",      "before",
    "behind",     "being",     "below",      "beneath",   "beside",
    "besides",    "between",   "beyond",     "board",     "both",
    "btwn",       "but",       "by",         "can",       "cause",
    "circa",      "cos",       "could",      "coz",       "cus",
    "depend",     "depending", "despite",    "did",       "do",
    "does",       "down",      "due",        "during",    "each",
    "either",     "else",      "even",       "ever",      "every",
    "everybody",  "everyone",  "everything", "except",    "for",
    "forth",      "from",      "get",        "gets",      "getting",
    "give",       "given",     "got",        "had",       "half",
    "has",        "hav",       "have",       "having",    "he",
    "her",        "hers",      "herself",    "him",       "himself",
    "his",        "how",       "however",    "i",         "i'd",
    "if",         "in",        "include",    "including", "inside",
    "instead",    "into",      "is",         "it",        "it's",
    "its",        "itself",    "lest",       "like",      "made",
    "many",       "may",       "me",         "might",     "mine",
    "minus",      "most",      "much",       "must",      "my",
    "myself",     "nary",      "near",       "nearby",    "neither",
    "next",       "nigh",      "no",         "nobody",    "none",
    "noone",      "nor",       "not",        "nothing",   "notwithstanding",
    "of",         "off",       "on",         "onboard",   "once",
    "one",        "ones",      "oneself",    "only",      "onto",
    "opposite",   "or",        "other",      "others",    "ought",
    "our",        "ours",      "ourselves",  "out",       "outside",
    "over",       "overt",     "own",        "past",      "per",
    "plus",       "prior",     "quite",      "rather",    "re",
    "regard",     "regarding", "regardless", "round",     "s/he",
    "save",       "self",      "shall",      "she",       "should",
    "side",       "since",     "so",         "some",      "somebody",
    "someone",    "something", "such",       "sure",      "teh",
    "than",       "thanks",    "that",       "the",       "their",
    "theirs",     "them",      "themselves", "then",      "there",
    "these",      "they",      "they're",    "thier",     "this",
    "tho",        "those",     "thou",       "though",    "through",
    "throughout", "thru",      "thy",        "til",       "till",
    "to",         "together",  "too",        "toward",    "towards",
    "u",          "under",     "underneath", "unless",    "unlike",
    "until",      "unto",      "up",         "upon",      "ur",
    "us",         "use",       "versus",     "via",       "vs",
    "vs.",        "w/",        "w/o",        "w/out",     "was",
    "we",         "were",      "what",       "whatever",  "whatnot",
    "when",       "whenever",  "where",      "whereas",   "wherever",
    "whether",    "which",     "while",      "whilst",    "whither",
    "who",        "who's",     "whoever",    "whom",      "whomever",
    "whose",      "why",       "will",       "with",      "within",
    "without",    "wo",        "worth",      "would",     "wud",
    "y'all",      "ya",        "yet",        "yo",        "you",
    "you're",     "your",      "youre",      "yours",     "yourself",
    "yourselves",
};

/* OBELICS FLAGGED_WORDS, obelics/utils/filtering_utils.py. */
static const char *const flagged_words[] = {
    "anal",       "bareback",     "bbw",          "bdsm",          "blowjob",     "blowjobs",
    "brazzers",   "bukkake",      "camgirl",      "camwhore",      "cocksucking", "creampie",
    "cuckold",    "cum",          "cumming",      "cums",          "cumshot",     "cumshots",
    "cumslut",    "cunnilingus",  "deepthroat",   "deepthroating", "dildo",       "dildos",
    "dogging",    "doggystyle",   "dominatrix",   "erotic",        "fellatio",    "femdom",
    "fingering",  "fisting",      "footjob",      "gangbang",      "handjob",     "hentai",
    "horney",     "horniest",     "horny",        "jism",          "jizz",        "masterbating",
    "masturbate", "masturbating", "masturbation", "milf",          "orgies",      "orgy",
    "pegging",    "porn",         "pornhub",      "porno",         "pornos",      "pornstar",
    "pornstars",  "redtube",      "rimming",      "slutty",        "squirting",   "strapon",
    "threesome",  "vibrator",     "xhamster",     "xnxx",          "xvideos",     "xxx",
    "youporn",
};

/* OBELICS SPAM_WORDS, build_obelics/13_final_processing.py ("newletter"
 * is spelled as published). */
static const char *const spam_words[] = {
    "facebook", "twitter",    "instagram", "reddit",   "youtube",   "pinterest", "flickr",
    "share",    "tweet",      "post",      "comment",  "subscribe", "newletter", "blogger",
    "bloggers", "interested", "might",     "like",     "sign-up",   "sign",      "log",
    "logged",   "access",     "contact",   "content",  "privacy",   "policy",    "website",
    "cookies",  "cookie",     "licensed",  "password", "account",   "follow",    "terms",
    "mailing",  "list",       "download",  "loading",  "click",
};

/* OBELICS URL_BAN_WORDS, build_obelics/04_merge_web_docs_with_images.py. */
static const char *const url_ban_words[] = {
    "logo", "button", "icon", "plugin", "widget", "porn", "xxx", "sex",
};

/* Captions that describe no image: placeholders CMSs and cameras write and
 * alt texts people type to satisfy a validator.  Ours (no published list);
 * compared against the whole caption, lower-cased and trimmed. */
static const char *const boilerplate_phrases[] = {
    "image",
    "images",
    "photo",
    "photos",
    "picture",
    "pic",
    "img",
    "untitled",
    "untitled image",
    "no title",
    "thumbnail",
    "thumb",
    "placeholder",
    "image placeholder",
    "default image",
    "no image",
    "no image available",
    "image not found",
    "image unavailable",
    "photo unavailable",
    "click to enlarge",
    "click here",
    "enlarge",
    "view larger",
    "view image",
    "see image",
    "alt",
    "alt text",
    "logo",
    "icon",
    "banner",
    "avatar",
    "profile picture",
    "featured image",
    "screenshot",
    "screen shot",
    "spacer",
    "blank",
    "null",
    "undefined",
    "none",
    "n/a",
    "na",
    "description",
    "caption",
    "image description",
    "photo credit",
    "stock photo",
};

const char *const *wordlist_builtin(enum wordlist_id id, size_t *n)
{
#define LIST_(a)                                                                                   \
    do {                                                                                           \
        *n = sizeof(a) / sizeof(a)[0];                                                             \
        return (a);                                                                                \
    } while (0)
    switch (id) {
    case WORDLIST_STOP:
        LIST_(stop_words);
    case WORDLIST_FLAGGED:
        LIST_(flagged_words);
    case WORDLIST_SPAM:
        LIST_(spam_words);
    case WORDLIST_URL_BAN:
        LIST_(url_ban_words);
    case WORDLIST_BOILERPLATE:
        LIST_(boilerplate_phrases);
    }
#undef LIST_
    *n = 0;
    return NULL;
}

struct wordset {
    char *blob;      /* the words, lower-cased, each followed by NUL */
    uint32_t *slots; /* offset + 1 into blob; 0 = empty; power-of-two size */
    uint32_t *lens;  /* parallel to slots */
    size_t mask, count;
};

void wordset_free(struct wordset *set)
{
    if (!set)
        return;
    free(set->blob);
    free(set->slots);
    free(set->lens);
    free(set);
}

static enum vc_status oom(struct vc_err *err)
{
    return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "word set: out of memory");
}

/* Lower-cases src[0..n) into dst (4 * n bytes of room); returns the length. */
static size_t lower_utf8(const char *src, size_t n, char *dst)
{
    size_t out = 0;
    const unsigned char *s = (const unsigned char *)src;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        i += vc_utf8_next(s + i, n - i, &cp);
        out += vc_utf8_encode(textstats_lower(cp), dst + out);
    }
    return out;
}

static bool set_find(const struct wordset *set, const char *w, size_t len, size_t *slot)
{
    size_t j = textstats_hash(w, len) & set->mask;
    for (;; j = (j + 1) & set->mask) {
        if (set->slots[j] == 0) {
            *slot = j;
            return false;
        }
        if (set->lens[j] == len && memcmp(set->blob + set->slots[j] - 1, w, len) == 0) {
            *slot = j;
            return true;
        }
    }
}

bool wordset_contains(const struct wordset *set, const char *word, size_t len)
{
    size_t slot;
    return set->count > 0 && set_find(set, word, len, &slot);
}

size_t wordset_size(const struct wordset *set)
{
    return set->count;
}

/* Builds the set from `n_words` words given as (start, length) pairs into
 * `text`, lower-casing each. */
static enum vc_status build(const char *text, const size_t *spans, size_t n_words,
                            struct wordset **out, struct vc_err *err)
{
    size_t bytes = 1, cap = 16;
    for (size_t i = 0; i < n_words; i++) {
        size_t w;
        if (!vc_mul_ok(spans[2 * i + 1], 4, &w) || !vc_add_ok(bytes, w + 1, &bytes))
            return oom(err);
    }
    while (cap < 2 * n_words)
        cap *= 2;
    struct wordset *set = calloc(1, sizeof *set);
    if (!set)
        return oom(err);
    set->blob = malloc(bytes);
    set->slots = calloc(cap, sizeof *set->slots);
    set->lens = calloc(cap, sizeof *set->lens);
    if (!set->blob || !set->slots || !set->lens || bytes > UINT32_MAX) {
        wordset_free(set);
        return oom(err);
    }
    set->mask = cap - 1;
    size_t used = 0;
    for (size_t i = 0; i < n_words; i++) {
        char *w = set->blob + used;
        size_t len = lower_utf8(text + spans[2 * i], spans[2 * i + 1], w);
        size_t slot;
        if (set_find(set, w, len, &slot))
            continue; /* "Apple" and "apple" are one word here */
        w[len] = '\0';
        set->slots[slot] = (uint32_t)used + 1;
        set->lens[slot] = (uint32_t)len;
        set->count++;
        used += len + 1;
    }
    *out = set;
    return VC_OK;
}

enum vc_status wordset_from_list(const char *const *words, size_t n, struct wordset **out,
                                 struct vc_err *err)
{
    /* One contiguous copy so build() sees (start, length) spans like a file. */
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += strlen(words[i]);
    char *text = malloc(total + 1);
    size_t *spans = vc_malloc_array(2 * n + 1, sizeof *spans);
    if (!text || !spans) {
        free(text);
        free(spans);
        return oom(err);
    }
    size_t pos = 0;
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(words[i]);
        memcpy(text + pos, words[i], len);
        spans[2 * i] = pos;
        spans[2 * i + 1] = len;
        pos += len;
    }
    enum vc_status rc = build(text, spans, n, out, err);
    free(text);
    free(spans);
    return rc;
}

static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r';
}

enum vc_status wordset_load_file(const char *path, struct wordset **out, struct vc_err *err)
{
    char *text = NULL;
    size_t size = 0;
    enum vc_status rc = vc_fs_read_file(path, WORDSET_MAX_FILE_BYTES, &text, &size, err);
    if (rc < 0) {
        vc_err_prefix(err, "word list %s", path);
        err->status = VC_EUSAGE;
        return VC_EUSAGE;
    }
    size_t lines = 1;
    for (size_t i = 0; i < size; i++)
        lines += text[i] == '\n';
    size_t *spans = vc_malloc_array(lines, 2 * sizeof *spans);
    if (!spans) {
        free(text);
        return oom(err);
    }
    size_t n = 0;
    for (size_t b = 0; b < size;) {
        size_t e = b;
        while (e < size && text[e] != '\n')
            e++;
        size_t next = e + 1, s = b;
        while (s < e && is_blank(text[s]))
            s++;
        while (e > s && is_blank(text[e - 1]))
            e--;
        if (e > s) {
            spans[2 * n] = s;
            spans[2 * n + 1] = e - s;
            n++;
        }
        b = next;
    }
    rc = build(text, spans, n, out, err);
    free(text);
    free(spans);
    return rc;
}
