/* wordlists: the word lists behind the text and caption filters (OBELICS's
 * stop words, flagged words and spam words; OBELICS's image-URL ban words;
 * our caption boilerplate phrases) and the hash set they are looked up in,
 * including the common-word list loaded at run time from a dictionary file
 * (Debian's wamerican, /usr/share/dict/american-english, by default).
 *
 * The built-in lists are facts taken from the OBELICS repository
 * (obelics/utils/filtering_utils.py, build_obelics/13_final_processing.py,
 * build_obelics/04_merge_web_docs_with_images.py); wordlists.c names each
 * list's source.  A set never changes after it is built, so one set is
 * shared by every thread.  Limit: WORDSET_MAX_FILE_BYTES per loaded file. */
#ifndef VC_FILTERS_WORDLISTS_H
#define VC_FILTERS_WORDLISTS_H

#include <stdbool.h>
#include <stddef.h>

#include "core/vc_err.h"

/* wamerican is 1 MB; 64 MB leaves room for any real dictionary and stops a
 * wrong path (a disk image, a log) from being read whole. */
enum { WORDSET_MAX_FILE_BYTES = 64 << 20 };

#define WORDSET_DEFAULT_DICT "/usr/share/dict/american-english"

enum wordlist_id {
    WORDLIST_STOP = 0,    /* OBELICS STOPWORDS */
    WORDLIST_FLAGGED,     /* OBELICS FLAGGED_WORDS (adult content) */
    WORDLIST_SPAM,        /* OBELICS SPAM_WORDS (web boilerplate) */
    WORDLIST_URL_BAN,     /* OBELICS URL_BAN_WORDS (image URL substrings) */
    WORDLIST_BOILERPLATE, /* captions that say nothing about the image */
};

/* The built-in list `id`: a static array of *n lower-case strings. */
const char *const *wordlist_builtin(enum wordlist_id id, size_t *n);

struct wordset;

/* Builds a set from n strings, each lower-cased the way the tokenizer does
 * (textstats_lower).  Owned: wordset_free.  VC_EFATAL on OOM. */
enum vc_status wordset_from_list(const char *const *words, size_t n, struct wordset **out,
                                 struct vc_err *err);
/* Loads one word per line (UTF-8, '\r' and surrounding blanks ignored,
 * empty lines skipped), lower-cased.  VC_EUSAGE naming the path when the
 * file cannot be read or is larger than WORDSET_MAX_FILE_BYTES. */
enum vc_status wordset_load_file(const char *path, struct wordset **out, struct vc_err *err);
void wordset_free(struct wordset *set);

/* Exact byte comparison of an already lower-cased word. */
bool wordset_contains(const struct wordset *set, const char *word, size_t len);
size_t wordset_size(const struct wordset *set);

#endif
