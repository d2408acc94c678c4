/* Unit tests of synth/idf2_config: the fixture's files, the published
 * idefics2-8b config.json (which leans on the class defaults), an empty
 * config (pure defaults, SPEC §1.3 table), the transformers 5.x spellings,
 * and absurd or ill-typed values, each a clear error naming the key. */
#include "vc_test.h"

#include "synth/idf2_config.h"

#include <stdio.h>
#include <stdlib.h>

static void expect_model_error(const char *json, const char *needle)
{
    struct idf2_model_config m;
    struct vc_err err = { 0 };
    CHECK(idf2_config_parse_model(json, "config.json", &m, &err) < 0);
    CHECK_INT(err.status, VC_EUSAGE);
    if (!strstr(err.msg, needle)) {
        fprintf(stderr, "  json %s\n  got: %s\n  expected ...%s...\n", json, err.msg, needle);
        vc_test_failures++;
    }
}

TEST(fixture_folder)
{
    struct idf2_config c;
    struct vc_err err = { 0 };
    CHECK_INT(idf2_config_load_dir(vc_test_fixture("idefics2-tiny"), &c, &err), VC_OK);
    if (err.status < 0) {
        fprintf(stderr, "%s\n", err.msg);
        return;
    }
    /* Values typed from the fixture's config.json by hand. */
    const struct idf2_vision_config *v = &c.model.vision;
    CHECK_INT(v->hidden_size, 48);
    CHECK_INT(v->intermediate_size, 96);
    CHECK_INT(v->num_hidden_layers, 2);
    CHECK_INT(v->num_attention_heads, 4);
    CHECK_INT(v->image_size, 84);
    CHECK_INT(v->patch_size, 14);
    CHECK_INT(v->hidden_act, IDF2_ACT_GELU_TANH);
    CHECK_NEAR(v->layer_norm_eps, 1e-6, 0);
    const struct idf2_text_config *t = &c.model.text;
    CHECK_INT(t->vocab_size, 579);
    CHECK_INT(t->hidden_size, 64);
    CHECK_INT(t->intermediate_size, 128);
    CHECK_INT(t->num_hidden_layers, 3);
    CHECK_INT(t->num_attention_heads, 4);
    CHECK_INT(t->num_key_value_heads, 2);
    CHECK_INT(t->head_dim, 16);
    CHECK_INT(t->hidden_act, IDF2_ACT_SILU);
    CHECK_NEAR(t->rms_norm_eps, 1e-5, 0);
    CHECK_NEAR(t->rope_theta, 10000.0, 0);
    CHECK_INT(t->max_position_embeddings, 4096);
    CHECK_INT(t->sliding_window, 4096);
    const struct idf2_perceiver_config *p = &c.model.perceiver;
    CHECK_INT(p->hidden_size, 64);
    CHECK_INT(p->n_latents, 8);
    CHECK_INT(p->depth, 2);
    CHECK_INT(p->n_heads, 4);
    CHECK_INT(p->head_dim, 12);
    CHECK_INT(p->n_kv_heads, 2);
    CHECK_NEAR(p->rms_norm_eps, 1e-5, 0);
    CHECK_INT(c.model.image_token_id, 577);
    CHECK(!c.model.tie_word_embeddings);
    /* generation_config.json */
    CHECK_INT(c.gen.bos_token_id, 1);
    CHECK_INT(c.gen.pad_token_id, 0);
    CHECK_INT(c.gen.n_eos, 2);
    CHECK_INT(c.gen.eos_token_ids[0], 2);
    CHECK_INT(c.gen.eos_token_ids[1], 578);
    CHECK_INT(c.gen.n_bad_words, 2);
    CHECK_INT(c.gen.bad_word_len[0], 1);
    CHECK_INT(c.gen.bad_words_ids[0][0], 576);
    CHECK_INT(c.gen.bad_words_ids[1][0], 577);
    /* preprocessor_config.json */
    CHECK_INT(c.preproc.longest_edge, 84);
    CHECK_INT(c.preproc.shortest_edge, 28);
    CHECK(!c.preproc.do_image_splitting);
    CHECK(c.preproc.do_convert_rgb && c.preproc.do_pad && c.preproc.do_normalize);
    CHECK_NEAR(c.preproc.rescale_factor, 0.00392156862745098, 0);
    CHECK_NEAR(c.preproc.image_mean[2], 0.5, 0);
    CHECK_NEAR(c.preproc.image_std[0], 0.5, 0);
    /* processor_config.json, tokenizer_config.json */
    CHECK_INT(c.proc.image_seq_len, 8);
    CHECK(c.proc.add_bos_token);
    CHECK(!c.proc.add_eos_token);
    CHECK(c.proc.chat_template &&
          strncmp(c.proc.chat_template, "{% for message in messages %}", 29) == 0);
    idf2_config_release(&c);
    CHECK(c.proc.chat_template == NULL);
}

/* The published HuggingFaceM4/idefics2-8b config.json, as SPEC §1.3 lists
 * its keys: everything else must come from the class defaults. */
static const char *const config_8b =
    "{\"architectures\":[\"Idefics2ForConditionalGeneration\"],\"image_token_id\":32001,"
    "\"model_type\":\"idefics2\",\"perceiver_config\":{\"model_type\":\"idefics2\"},"
    "\"text_config\":{\"max_position_embeddings\":32768,\"model_type\":\"mistral\","
    "\"pad_token_id\":0,\"rms_norm_eps\":1e-05,\"vocab_size\":32003},"
    "\"tie_word_embeddings\":false,\"torch_dtype\":\"float32\",\"transformers_version\":"
    "\"4.40.0.dev0\",\"use_cache\":true,\"vision_config\":{\"hidden_size\":1152,"
    "\"image_size\":980,\"intermediate_size\":4304,\"model_type\":\"idefics2\","
    "\"num_attention_heads\":16,\"num_hidden_layers\":27,\"patch_size\":14}}";

TEST(published_8b_config)
{
    struct idf2_model_config m;
    struct vc_err err = { 0 };
    CHECK_INT(idf2_config_parse_model(config_8b, "config.json", &m, &err), VC_OK);
    CHECK_INT(m.vision.hidden_size, 1152);
    CHECK_INT(m.vision.intermediate_size, 4304);
    CHECK_INT(m.vision.num_hidden_layers, 27);
    CHECK_INT(m.vision.num_attention_heads, 16);
    CHECK_INT(m.vision.image_size / m.vision.patch_size, 70);
    CHECK_INT(m.vision.num_channels, 3);
    CHECK_INT(m.text.vocab_size, 32003);
    CHECK_INT(m.text.hidden_size, 4096);
    CHECK_INT(m.text.intermediate_size, 14336);
    CHECK_INT(m.text.num_hidden_layers, 32);
    CHECK_INT(m.text.num_attention_heads, 32);
    CHECK_INT(m.text.num_key_value_heads, 8);
    CHECK_INT(m.text.head_dim, 128);
    CHECK_NEAR(m.text.rms_norm_eps, 1e-5, 0);
    CHECK_NEAR(m.text.rope_theta, 10000.0, 0);
    CHECK_INT(m.text.max_position_embeddings, 32768);
    CHECK_INT(m.text.sliding_window, 4096);
    CHECK_INT(m.perceiver.hidden_size, 4096);
    CHECK_INT(m.perceiver.n_latents, 64);
    CHECK_INT(m.perceiver.depth, 3);
    CHECK_INT(m.perceiver.n_heads, 16);
    CHECK_INT(m.perceiver.head_dim, 96);
    CHECK_INT(m.perceiver.n_kv_heads, 4);
    CHECK_INT(m.perceiver.hidden_act, IDF2_ACT_SILU);
    /* Release behaviour: no perceiver epsilon -> the text one (1e-5). */
    CHECK_NEAR(m.perceiver.rms_norm_eps, 1e-5, 0);
    CHECK_INT(m.image_token_id, 32001);
    CHECK(!m.tie_word_embeddings);
}

TEST(class_defaults)
{
    struct idf2_model_config m;
    struct vc_err err = { 0 };
    CHECK_INT(idf2_config_parse_model("{}", "config.json", &m, &err), VC_OK);
    CHECK_INT(m.vision.hidden_size, 768);
    CHECK_INT(m.vision.intermediate_size, 3072);
    CHECK_INT(m.vision.num_hidden_layers, 12);
    CHECK_INT(m.vision.num_attention_heads, 12);
    CHECK_INT(m.vision.image_size, 224);
    CHECK_INT(m.vision.patch_size, 32); /* SPEC pitfall 16: not 14 */
    CHECK_NEAR(m.vision.layer_norm_eps, 1e-6, 0);
    CHECK_INT(m.text.vocab_size, 32000);
    /* No text_config at all: Idefics2Config's own fallback, MistralConfig
     * with rms_norm_eps 1e-5 and 4096 * 8 positions (the perceiver follows
     * the text epsilon, SPEC 1.3)... */
    CHECK_NEAR(m.text.rms_norm_eps, 1e-5, 0);
    CHECK_INT(m.text.max_position_embeddings, 32768);
    CHECK_INT(m.text.head_dim, 128);
    CHECK_NEAR(m.perceiver.rms_norm_eps, 1e-5, 0);
    CHECK_INT(m.image_token_id, 32001);
    CHECK_INT(idf2_config_parse_model("{\"text_config\":null}", "config.json", &m, &err), VC_OK);
    CHECK_NEAR(m.text.rms_norm_eps, 1e-5, 0);
    /* ...while a text_config that omits them takes MistralConfig's. */
    CHECK_INT(idf2_config_parse_model("{\"text_config\":{}}", "config.json", &m, &err), VC_OK);
    CHECK_NEAR(m.text.rms_norm_eps, 1e-6, 0);
    CHECK_INT(m.text.max_position_embeddings, 131072);
    CHECK_NEAR(m.perceiver.rms_norm_eps, 1e-6, 0);

    struct idf2_generation_config g;
    CHECK_INT(idf2_config_parse_generation("{}", "g", &g, &err), VC_OK);
    CHECK_INT(g.bos_token_id, 1);
    CHECK_INT(g.n_eos, 1);
    CHECK_INT(g.eos_token_ids[0], 2);
    CHECK_INT(g.n_bad_words, 0);
    CHECK_INT(g.max_new_tokens, 0);

    struct idf2_preproc_config pp;
    CHECK_INT(idf2_config_parse_preproc("{}", "p", &pp, &err), VC_OK);
    CHECK_INT(pp.longest_edge, 980);
    CHECK_INT(pp.shortest_edge, 378);
    CHECK(!pp.do_image_splitting);
    CHECK_INT(pp.resample, 2);
    CHECK_NEAR(pp.rescale_factor, 1.0 / 255.0, 0);
    CHECK_NEAR(pp.image_mean[1], 0.5, 0);

    struct idf2_processor_config pc;
    idf2_config_processor_defaults(&pc);
    CHECK_INT(idf2_config_parse_processor("{}", "p", &pc, &err), VC_OK);
    CHECK_INT(pc.image_seq_len, 64);
    CHECK(pc.chat_template == NULL);
}

TEST(new_key_spellings)
{
    /* transformers 5.x: "dtype", rope_parameters, head_dim null,
     * tie_word_embeddings inside text_config, sliding_window null. */
    const char *json = "{\"dtype\":\"bfloat16\",\"model_type\":\"idefics2\",\"text_config\":{"
                       "\"hidden_size\":256,\"num_attention_heads\":8,\"num_key_value_heads\":2,"
                       "\"head_dim\":null,\"sliding_window\":null,\"tie_word_embeddings\":true,"
                       "\"rope_parameters\":{\"rope_theta\":1000000.0,\"rope_type\":\"default\"}},"
                       "\"perceiver_config\":{\"rms_norm_eps\":2e-6,\"hidden_size\":999}}";
    struct idf2_model_config m;
    struct vc_err err = { 0 };
    CHECK_INT(idf2_config_parse_model(json, "config.json", &m, &err), VC_OK);
    CHECK_INT(m.text.head_dim, 32);
    CHECK_INT(m.text.sliding_window, 0);
    CHECK(m.tie_word_embeddings);
    CHECK_NEAR(m.text.rope_theta, 1e6, 0);
    CHECK_NEAR(m.perceiver.rms_norm_eps, 2e-6, 0);
    CHECK_INT(m.perceiver.hidden_size, 256); /* always the text width */
    /* Old spelling of the same thing. */
    CHECK_INT(idf2_config_parse_model("{\"torch_dtype\":\"float32\",\"text_config\":{"
                                      "\"rope_theta\":500000.0,\"rope_scaling\":null}}",
                                      "config.json", &m, &err),
              VC_OK);
    CHECK_NEAR(m.text.rope_theta, 5e5, 0);
    /* A top-level tie flag overrides the one in text_config. */
    CHECK_INT(idf2_config_parse_model("{\"tie_word_embeddings\":false,"
                                      "\"text_config\":{\"tie_word_embeddings\":true}}",
                                      "config.json", &m, &err),
              VC_OK);
    CHECK(!m.tie_word_embeddings);
}

TEST(absurd_and_wrong_values)
{
    expect_model_error("{\"vision_config\":{\"hidden_size\":1000000000}}",
                       "\"hidden_size\" is out of range");
    expect_model_error("{\"text_config\":{\"num_hidden_layers\":0}}", "num_hidden_layers");
    expect_model_error("{\"text_config\":{\"vocab_size\":-1}}", "vocab_size");
    expect_model_error("{\"text_config\":{\"hidden_size\":\"big\"}}",
                       "\"hidden_size\" is not an integer");
    expect_model_error("{\"text_config\":{\"hidden_size\":64.5}}", "not an integer");
    expect_model_error("{\"text_config\":{\"rms_norm_eps\":0}}", "rms_norm_eps");
    expect_model_error("{\"text_config\":{\"num_attention_heads\":32,\"num_key_value_heads\":5}}",
                       "does not divide");
    expect_model_error("{\"text_config\":{\"head_dim\":15}}", "odd");
    expect_model_error("{\"vision_config\":{\"hidden_size\":100,\"num_attention_heads\":3}}",
                       "multiple of num_attention_heads");
    expect_model_error("{\"vision_config\":{\"image_size\":10,\"patch_size\":14}}",
                       "larger than image_size");
    expect_model_error("{\"vision_config\":{\"num_channels\":4}}", "num_channels");
    expect_model_error("{\"text_config\":{\"hidden_act\":\"relu\"}}", "supported activation");
    expect_model_error("{\"text_config\":{\"rope_scaling\":{\"type\":\"linear\",\"factor\":2}}}",
                       "RoPE variant");
    expect_model_error("{\"text_config\":{\"rope_parameters\":{\"rope_type\":\"yarn\"}}}",
                       "RoPE variant");
    expect_model_error("{\"text_config\":{\"model_type\":\"llama\"}}", "mistral");
    expect_model_error("{\"model_type\":\"idefics3\"}", "idefics2");
    expect_model_error("{\"vision_config\":[1]}", "not an object");
    expect_model_error("{\"image_token_id\":-3}", "image_token_id");
    expect_model_error("{\"perceiver_config\":{\"resampler_n_heads\":16,"
                       "\"num_key_value_heads\":3}}",
                       "does not divide");
    expect_model_error("[1,2]", "not a JSON object");
    expect_model_error("{\"text_config\":", "not a JSON object");
}

TEST(generation_preproc_processor_files)
{
    struct idf2_generation_config g;
    struct vc_err err = { 0 };
    CHECK_INT(idf2_config_parse_generation("{\"eos_token_id\":7,\"pad_token_id\":null,"
                                           "\"bad_words_ids\":[[5,6],[9]],\"max_new_tokens\":20}",
                                           "g", &g, &err),
              VC_OK);
    CHECK_INT(g.n_eos, 1);
    CHECK_INT(g.eos_token_ids[0], 7);
    CHECK_INT(g.pad_token_id, -1);
    CHECK_INT(g.n_bad_words, 2);
    CHECK_INT(g.bad_word_len[0], 2);
    CHECK_INT(g.bad_words_ids[0][1], 6);
    CHECK_INT(g.max_new_tokens, 20);
    CHECK(idf2_config_parse_generation("{\"eos_token_id\":\"x\"}", "g", &g, &err) < 0);
    CHECK(idf2_config_parse_generation("{\"eos_token_id\":[1,2,3,4,5,6,7,8,9]}", "g", &g, &err) <
          0);
    CHECK(strstr(err.msg, "too many") != NULL);
    CHECK(idf2_config_parse_generation("{\"bad_words_ids\":[[]]}", "g", &g, &err) < 0);
    CHECK(idf2_config_parse_generation("{\"bad_words_ids\":[1]}", "g", &g, &err) < 0);

    struct idf2_preproc_config pp;
    CHECK_INT(idf2_config_parse_preproc("{\"image_mean\":0.25,\"image_std\":[1,2,3],"
                                        "\"do_image_splitting\":true,\"size\":{\"longest_edge\":"
                                        "490,\"shortest_edge\":100}}",
                                        "p", &pp, &err),
              VC_OK);
    CHECK_NEAR(pp.image_mean[2], 0.25, 0);
    CHECK_NEAR(pp.image_std[2], 3.0, 0);
    CHECK(pp.do_image_splitting);
    CHECK_INT(pp.longest_edge, 490);
    CHECK_INT(pp.shortest_edge, 100);
    CHECK(idf2_config_parse_preproc("{\"resample\":3}", "p", &pp, &err) < 0);
    CHECK(strstr(err.msg, "resample") != NULL);
    CHECK(idf2_config_parse_preproc("{\"size\":{\"height\":10,\"width\":10}}", "p", &pp, &err) < 0);
    CHECK(idf2_config_parse_preproc("{\"size\":{\"longest_edge\":10,\"shortest_edge\":20}}", "p",
                                    &pp, &err) < 0);
    CHECK(idf2_config_parse_preproc("{\"image_std\":[1,0,1]}", "p", &pp, &err) < 0);
    CHECK(idf2_config_parse_preproc("{\"do_pad\":1}", "p", &pp, &err) < 0);

    /* processor_config wins over tokenizer_config for the template; the
     * list form picks "default". */
    struct idf2_processor_config pc;
    idf2_config_processor_defaults(&pc);
    CHECK_INT(idf2_config_parse_processor("{\"image_seq_len\":16,\"chat_template\":\"A\"}", "pc",
                                          &pc, &err),
              VC_OK);
    CHECK_INT(idf2_config_parse_processor("{\"add_bos_token\":false,\"chat_template\":\"B\"}", "tc",
                                          &pc, &err),
              VC_OK);
    CHECK_STR(pc.chat_template, "A");
    CHECK(!pc.add_bos_token);
    CHECK_INT(pc.image_seq_len, 16);
    CHECK(!pc.clean_up_tokenization_spaces);
    CHECK_INT(
        idf2_config_parse_processor("{\"clean_up_tokenization_spaces\":true}", "tc", &pc, &err),
        VC_OK);
    CHECK(pc.clean_up_tokenization_spaces);
    free(pc.chat_template);
    idf2_config_processor_defaults(&pc);
    CHECK_INT(idf2_config_parse_processor("{\"chat_template\":[{\"name\":\"tool_use\",\"template\":"
                                          "\"T\"},{\"name\":\"default\",\"template\":\"D\"}]}",
                                          "tc", &pc, &err),
              VC_OK);
    CHECK_STR(pc.chat_template, "D");
    free(pc.chat_template);
    idf2_config_processor_defaults(&pc);
    CHECK(idf2_config_parse_processor("{\"image_seq_len\":0}", "pc", &pc, &err) < 0);
    /* add_prefix_space makes transformers tokenize from tokenizer.model:
     * refused naming the file and the key, whichever value; null is the
     * key left out. */
    for (int v = 0; v < 2; v++) {
        CHECK_INT(idf2_config_parse_processor(v ? "{\"add_prefix_space\":true}"
                                                : "{\"add_prefix_space\":false}",
                                              "tokenizer_config.json", &pc, &err),
                  VC_EUSAGE);
        CHECK(strstr(err.msg, "tokenizer_config.json") && strstr(err.msg, "add_prefix_space") &&
              strstr(err.msg, "tokenizer.model"));
    }
    CHECK_INT(idf2_config_parse_processor("{\"add_prefix_space\":null}", "tokenizer_config.json",
                                          &pc, &err),
              VC_OK);
}

static void write_text(const char *dir, const char *name, const char *text)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    CHECK(vc_test_write_file(path, text, strlen(text)) == 0);
}

TEST(folder_cross_checks)
{
    struct idf2_config c;
    struct vc_err err = { 0 };
    const char *dir = vc_test_tmpdir();
    CHECK(idf2_config_load_dir(dir, &c, &err) < 0);
    CHECK(strstr(err.msg, "no config.json") != NULL);
    /* Only config.json: every other file takes its defaults. */
    write_text(dir, "config.json", config_8b);
    CHECK_INT(idf2_config_load_dir(dir, &c, &err), VC_OK);
    CHECK_INT(c.proc.image_seq_len, 64);
    CHECK_INT(c.gen.eos_token_ids[0], 2);
    CHECK_INT(c.preproc.longest_edge, 980);
    idf2_config_release(&c);
    /* image_seq_len must equal the perceiver's latents. */
    write_text(dir, "processor_config.json", "{\"image_seq_len\":32}");
    CHECK(idf2_config_load_dir(dir, &c, &err) < 0);
    CHECK(strstr(err.msg, "processor_config.json: image_seq_len 32") != NULL);
    /* No file gives it: the message says the 64 is the default, not a
     * file's value (a small checkpoint without processor_config.json). */
    write_text(dir, "processor_config.json", "{}");
    write_text(dir, "config.json", "{\"perceiver_config\":{\"resampler_n_latents\":8}}");
    CHECK(idf2_config_load_dir(dir, &c, &err) < 0);
    CHECK(strstr(err.msg, "no processor_config.json gives image_seq_len; the processor's "
                          "default image_seq_len 64 differs from the perceiver's 8") != NULL);
    write_text(dir, "config.json", config_8b);
    write_text(dir, "processor_config.json", "{\"image_seq_len\":64}");
    /* bos must exist in the vocabulary (32003); a stop or banned id the
     * head cannot produce is harmless (a base model's files name the
     * chat's <end_of_utterance> its vocabulary lacks). */
    write_text(dir, "generation_config.json", "{\"bos_token_id\":32003}");
    CHECK(idf2_config_load_dir(dir, &c, &err) < 0);
    CHECK(strstr(err.msg, "vocab_size 32003") != NULL);
    write_text(dir, "generation_config.json",
               "{\"eos_token_id\":[2,32003],\"bad_words_ids\":[[32003]]}");
    CHECK_INT(idf2_config_load_dir(dir, &c, &err), VC_OK);
    CHECK_INT(c.gen.n_eos, 2);
    idf2_config_release(&c);
    /* A broken optional file is an error naming it, not a silent default. */
    write_text(dir, "preprocessor_config.json", "{\"size\":");
    CHECK(idf2_config_load_dir(dir, &c, &err) < 0);
    CHECK(strstr(err.msg, "preprocessor_config.json") != NULL);
}

/* The template is taken from chat_template.jinja, else chat_template.json,
 * else processor_config.json, else tokenizer_config.json (transformers'
 * processor order; newer transformers saves only the first two). */
TEST(chat_template_files)
{
    struct idf2_config c;
    struct vc_err err = { 0 };
    const char *dir = vc_test_tmpdir();
    char path[4200];
    write_text(dir, "config.json", config_8b);
    write_text(dir, "tokenizer_config.json", "{\"chat_template\":\"T\"}");
    write_text(dir, "processor_config.json", "{\"chat_template\":\"P\"}");
    write_text(dir, "chat_template.json", "{\"chat_template\":\"J\"}");
    write_text(dir, "chat_template.jinja", "{{ 'K' }}");
    const char *want[] = { "{{ 'K' }}", "J", "P", "T" };
    const char *drop[] = { "chat_template.jinja", "chat_template.json", "processor_config.json" };
    for (int k = 0; k < 4; k++) {
        CHECK_INT(idf2_config_load_dir(dir, &c, &err), VC_OK);
        CHECK(c.proc.chat_template && strcmp(c.proc.chat_template, want[k]) == 0);
        idf2_config_release(&c);
        if (k < 3) {
            snprintf(path, sizeof path, "%s/%s", dir, drop[k]);
            CHECK(remove(path) == 0);
        }
    }
    write_text(dir, "chat_template.json", "{\"chat_template\":7}");
    CHECK(idf2_config_load_dir(dir, &c, &err) < 0);
    CHECK(strstr(err.msg, "chat_template.json") != NULL);
}

#define TESTS(X)                                                                                   \
    X(fixture_folder)                                                                              \
    X(published_8b_config)                                                                         \
    X(class_defaults)                                                                              \
    X(new_key_spellings)                                                                           \
    X(absurd_and_wrong_values)                                                                     \
    X(generation_preproc_processor_files)                                                          \
    X(folder_cross_checks)                                                                         \
    X(chat_template_files)
TEST_MAIN(TESTS)
