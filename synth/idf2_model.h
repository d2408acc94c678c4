/* idf2_model: what a loaded struct idf2_model (synth/idefics2.h) holds, and
 * its loading.  Private to synth/: the generation module reads it, nothing
 * outside synth/ sees it.  Owns the config, the weights, the tokenizer and
 * the RoPE tables; immutable once loaded (contexts only read it). */
#ifndef VC_SYNTH_IDF2_MODEL_H
#define VC_SYNTH_IDF2_MODEL_H

#include "synth/idefics2.h"
#include "synth/idf2_backend.h"
#include "synth/idf2_config.h"
#include "synth/idf2_place.h"
#include "synth/idf2_quantize.h"
#include "synth/idf2_text.h"
#include "synth/idf2_tokenizer.h"
#include "synth/idf2_weights.h"

struct idf2_model {
    struct idf2_config cfg;
    struct idf2_weights *w;     /* owned */
    struct idf2_quant *quant;   /* owned: the text decoder's blocks, or NULL */
    struct idf2_place *place;   /* owned: the text weights' anonymous copy, or NULL */
    struct idf2_place *packed;  /* owned: the image weights in the row's layout, or NULL */
    struct idf2_tokenizer *tok; /* owned */
    const struct idf2_ops *ops; /* the kernel row */
    struct idf2_rope rope;      /* IDF2_MAX_CONTEXT positions */
    int nt;                     /* default threads of a context; 0 = OpenMP's default */
    bool chat_template_ok;      /* the folder's template is the one idf2_chat_render implements */
    struct idf2_load_report report;
};

#endif
