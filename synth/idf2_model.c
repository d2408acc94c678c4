/* idf2_model: loading and freeing a struct idf2_model.
 *
 * Owns the model's config, tokenizer and weights.  Never computes.  Checks
 * the files against each other before anyone runs the model: the
 * tokenizer's "<image>" must be the config's image_token_id.  The tokenizer
 * may know ids the embedding table lacks (a base model's vocabulary stops
 * before the chat's <end_of_utterance>): a prompt holding one is refused
 * by idf2_generate.c, naming the token. */
#include "idf2_model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "synth/idf2_prompt.h"

static double mono_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static enum vc_status check_files(const struct idf2_model *m, struct vc_err *err)
{
    const int32_t image_id = idf2_tokenizer_find(m->tok, IDF2_IMAGE_TOKEN);
    if (image_id != m->cfg.model.image_token_id)
        return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_checkpoint,
                          "tokenizer.json: %s has id %d but config.json says image_token_id %d",
                          IDF2_IMAGE_TOKEN, (int)image_id, m->cfg.model.image_token_id);
    if (idf2_tokenizer_find(m->tok, IDF2_FAKE_TOKEN) < 0)
        return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_checkpoint, "tokenizer.json: no %s token",
                          IDF2_FAKE_TOKEN);
    const struct idf2_processor_config *pc = &m->cfg.proc;
    idf2_tokenizer_set_clean_up(m->tok, pc->clean_up_tokenization_spaces);
    if (!pc->add_bos_token || pc->add_eos_token) {
        /* LlamaTokenizerFast rebuilds its post-processor from these flags. */
        const struct idf2_generation_config *g = &m->cfg.gen;
        return idf2_tokenizer_set_specials(m->tok, pc->add_bos_token ? g->bos_token_id : -1,
                                           pc->add_eos_token ? g->eos_token_ids[0] : -1, err);
    }
    return VC_OK;
}

enum vc_status idf2_model_load(const char *dir, const struct idf2_load_opts *opts,
                               struct idf2_model **out, struct vc_err *err)
{
    *out = NULL;
    const double t0 = mono_seconds();
    struct idf2_model *m = calloc(1, sizeof *m);
    if (!m)
        return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "model struct");
    const struct idf2_load_opts def = { 0 };
    if (!opts)
        opts = &def;
    m->nt = opts->n_threads;
    m->ops = opts->backend && opts->backend[0] ? idf2_backend_by_name(opts->backend)
                                               : idf2_backend_get(IDF2_BACKEND_AUTO);
    if (!m->ops) {
        free(m);
        return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec,
                          "kernel backend '%s' is unknown or does not run on this CPU",
                          opts->backend);
    }
    enum vc_status rc = idf2_config_load_dir(dir, &m->cfg, err);
    if (rc < 0) {
        free(m);
        return rc;
    }
    char path[4096];
    if (snprintf(path, sizeof path, "%s/tokenizer.json", dir) >= (int)sizeof path) {
        rc = vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec, "model folder path too long");
        goto fail;
    }
    rc = idf2_tokenizer_load(path, &m->tok, err);
    if (rc >= 0)
        rc = check_files(m, err);
    if (rc < 0)
        goto fail;
    const struct idf2_weights_opts wo = {
        .compute = opts->compute == IDF2_COMPUTE_BF16 ? ST_BF16 : ST_F32,
        .cache = opts->use_cache ? IDF2_CACHE_USE : IDF2_CACHE_OFF,
    };
    rc = idf2_weights_load(dir, &m->cfg.model, &wo, &m->w, err);
    if (rc >= 0 && opts->text_quant != IDF2_TEXT_QUANT_NONE)
        rc = idf2_weights_quantize(m->w, &m->cfg.model,
                                   opts->text_quant == IDF2_TEXT_QUANT_Q8_0 ? IDF2_WF_Q8_0X16
                                                                            : IDF2_WF_Q4_0X16,
                                   opts->use_cache ? dir : NULL, opts->n_threads, &m->quant, err);
    struct idf2_place_report placed = { 0 };
    if (rc >= 0 && opts->weights != IDF2_WEIGHTS_MAP)
        rc = idf2_place_copy(m->w, &m->cfg.model, m->quant, m->ops, opts->n_threads, &m->place,
                             &placed, err);
    struct idf2_place_report packed = { 0 };
    if (rc >= 0)
        rc =
            idf2_place_pack(m->w, &m->cfg.model, m->ops, opts->n_threads, &m->packed, &packed, err);
    if (rc >= 0)
        rc = idf2_rope_init(&m->rope, &m->cfg.model.text, IDF2_MAX_CONTEXT, err);
    if (rc < 0)
        goto fail;
    /* A folder without a template gets the Idefics2 one; a different
     * template is refused at chat time, not at load (raw prompts work). */
    struct vc_err ignored = { 0 };
    m->chat_template_ok = !m->cfg.proc.chat_template ||
                          idf2_chat_template_check(m->cfg.proc.chat_template, &ignored) == VC_OK;
    m->report = (struct idf2_load_report){
        .load_seconds = mono_seconds() - t0,
        .peak_rss_bytes = idf2_peak_rss_bytes(),
        .bytes_mapped = m->w->bytes_mapped,
        .bytes_owned = m->w->bytes_owned,
        .from_cache = m->w->from_cache != 0,
        .cache_written = m->w->cache_written != 0,
        .bytes_copied = placed.bytes_copied,
        .bytes_huge = placed.bytes_huge,
        .bytes_huge_faulted = placed.bytes_huge_faulted,
        .bytes_uncached = placed.bytes_uncached + (m->quant ? m->quant->bytes_uncached : 0),
        .bytes_packed = packed.bytes_copied,
        .bytes_packed_huge = packed.bytes_huge,
    };
    m->report.bytes_text_packed = placed.bytes_packed;
    if (m->quant && m->quant->owned) {
        m->report.bytes_quantized = m->quant->bytes;
        m->report.bytes_quantized_huge = m->quant->bytes_huge;
        m->report.bytes_quantized_huge_faulted = m->quant->bytes_huge_faulted;
        snprintf(m->report.quant_huge_note, sizeof m->report.quant_huge_note, "%s",
                 m->quant->huge_note);
    }
    snprintf(m->report.huge_note, sizeof m->report.huge_note, "%s", placed.huge_note);
    snprintf(m->report.pack_huge_note, sizeof m->report.pack_huge_note, "%s", packed.huge_note);
    snprintf(m->report.weights_note, sizeof m->report.weights_note, "%s", placed.note);
    snprintf(m->report.pack_note, sizeof m->report.pack_note, "%s", packed.note);
    *out = m;
    return VC_OK;
fail:
    idf2_model_free(m);
    return rc;
}

bool idf2_weights_place_parse(const char *s, enum idf2_weights_place *out)
{
    if (!strcmp(s, "copy"))
        *out = IDF2_WEIGHTS_COPY;
    else if (!strcmp(s, "map"))
        *out = IDF2_WEIGHTS_MAP;
    else
        return false;
    return true;
}

void idf2_model_free(struct idf2_model *m)
{
    if (!m)
        return;
    idf2_weights_free(m->w);
    idf2_quant_free(m->quant);
    idf2_place_free(m->place);
    idf2_place_free(m->packed);
    idf2_rope_release(&m->rope);
    idf2_tokenizer_free(m->tok);
    idf2_config_release(&m->cfg);
    free(m);
}

void idf2_model_report(const struct idf2_model *m, struct idf2_load_report *out)
{
    *out = m->report;
}

void idf2_model_info(const struct idf2_model *m, struct idf2_model_info *out)
{
    const struct idf2_text_config *t = &m->cfg.model.text;
    const double D = t->hidden_size, qw = (double)t->num_attention_heads * t->head_dim,
                 kvw = (double)t->num_key_value_heads * t->head_dim;
    *out = (struct idf2_model_info){
        .backend = m->ops->name,
        .vocab_size = m->cfg.model.text.vocab_size,
        .text_width = m->cfg.model.text.hidden_size,
        .vision_width = m->cfg.model.vision.hidden_size,
        .image_seq_len = m->cfg.proc.image_seq_len,
        .image_splitting = m->cfg.preproc.do_image_splitting,
        .default_max_new =
            m->cfg.gen.max_new_tokens > 0 ? m->cfg.gen.max_new_tokens : IDF2_DEFAULT_MAX_NEW,
        /* q, k, v, o, then gate, up, down */
        .text_row_flops = 2.0 * t->num_hidden_layers *
                          (D * (qw + 2 * kvw) + qw * D + 3 * D * t->intermediate_size),
    };
}
