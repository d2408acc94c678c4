/* filter_registry: the table.  No self-registration, no constructors: the
 * list below is the whole truth (curl's scheme table is the model). */
#include "filter_registry.h"

#include <string.h>

#include "flt_image.h"
#include "flt_lang.h"
#include "flt_pair.h"
#include "flt_text.h"

#define FILTER_TABLE(X)                                                                            \
    X(flt_img_url_ban)                                                                             \
    X(flt_img_format)                                                                              \
    X(flt_img_width)                                                                               \
    X(flt_img_height)                                                                              \
    X(flt_img_aspect)                                                                              \
    X(flt_img_pixels)                                                                              \
    X(flt_img_bytes)                                                                               \
    X(flt_img_decodes)                                                                             \
    X(flt_img_uniform)                                                                             \
    X(flt_img_grayscale)                                                                           \
    X(flt_cap_words)                                                                               \
    X(flt_cap_chars)                                                                               \
    X(flt_cap_filename)                                                                            \
    X(flt_cap_url)                                                                                 \
    X(flt_cap_number)                                                                              \
    X(flt_cap_boilerplate)                                                                         \
    X(flt_par_word_count)                                                                          \
    X(flt_par_char_repetition)                                                                     \
    X(flt_par_word_repetition)                                                                     \
    X(flt_par_special_chars)                                                                       \
    X(flt_par_stopword_ratio)                                                                      \
    X(flt_par_flagged_ratio)                                                                       \
    X(flt_par_punctuation_ratio)                                                                   \
    X(flt_par_common_ratio)                                                                        \
    X(flt_par_lang)                                                                                \
    X(flt_par_spam_ratio)                                                                          \
    X(flt_doc_images)                                                                              \
    X(flt_doc_word_count)                                                                          \
    X(flt_doc_char_repetition)                                                                     \
    X(flt_doc_word_repetition)                                                                     \
    X(flt_doc_special_chars)                                                                       \
    X(flt_doc_stopword_ratio)                                                                      \
    X(flt_doc_flagged_ratio)                                                                       \
    X(flt_doc_punctuation_ratio)                                                                   \
    X(flt_doc_common_ratio)                                                                        \
    X(flt_doc_lang)

#define FILTER_ROW_(ops) &ops,
static const struct filter_ops *const table[] = { FILTER_TABLE(FILTER_ROW_) };
#undef FILTER_ROW_

size_t filter_registry_count(void)
{
    return sizeof table / sizeof table[0];
}

const struct filter_ops *filter_registry_at(size_t i)
{
    return i < filter_registry_count() ? table[i] : NULL;
}

const struct filter_ops *filter_registry_find(const char *name)
{
    for (size_t i = 0; i < filter_registry_count(); i++)
        if (strcmp(table[i]->name, name) == 0)
            return table[i];
    return NULL;
}

long filter_registry_index(const struct filter_ops *ops)
{
    for (size_t i = 0; i < filter_registry_count(); i++)
        if (table[i] == ops)
            return (long)i;
    return -1;
}
