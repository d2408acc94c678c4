/* Fuzz target: the config.json / generation / preprocessor / processor
 * parsers over arbitrary text.  Whatever parses must satisfy the limits the
 * loaders size buffers from. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "synth/idf2_config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *json = malloc(size + 1);
    if (!json)
        return 0;
    memcpy(json, data, size);
    json[size] = '\0';
    struct vc_err err = { 0 };
    struct idf2_model_config m;
    if (idf2_config_parse_model(json, "fuzz", &m, &err) >= 0) {
        const struct idf2_text_config *t = &m.text;
        if (t->head_dim < 2 || t->head_dim % 2 || t->num_attention_heads % t->num_key_value_heads ||
            m.vision.hidden_size % m.vision.num_attention_heads ||
            m.vision.patch_size > m.vision.image_size || t->vocab_size > IDF2_MAX_VOCAB ||
            m.perceiver.hidden_size != t->hidden_size)
            abort();
    }
    struct idf2_generation_config g;
    if (idf2_config_parse_generation(json, "fuzz", &g, &err) >= 0 &&
        (g.n_eos > IDF2_MAX_EOS || g.n_bad_words > IDF2_MAX_BAD_WORDS))
        abort();
    struct idf2_preproc_config pp;
    if (idf2_config_parse_preproc(json, "fuzz", &pp, &err) >= 0 &&
        (pp.shortest_edge < 1 || pp.shortest_edge > pp.longest_edge || !(pp.image_std[0] > 0)))
        abort();
    struct idf2_processor_config pc;
    idf2_config_processor_defaults(&pc);
    if (idf2_config_parse_processor(json, "fuzz", &pc, &err) >= 0 && pc.image_seq_len < 1)
        abort();
    free(pc.chat_template);
    free(json);
    return 0;
}
