/* Checkpoint folders shaped like the published Idefics2 ones where they
 * differ from our fixture: made at test time from the demo's tiny model
 * (synth/idf2_mkmodel.h), then edited the way a real folder differs.
 *  - base_vocab_without_chat_tokens: idefics2-8b-base's vocab_size (32002)
 *    stops before the <end_of_utterance> (32002) that its tokenizer and
 *    generation_config still name: transformers loads it and runs raw
 *    prompts; only a chat prompt cannot run.
 *  - clean_up_spaces_from_tokenizer_config: a tokenizer_config.json that
 *    sets clean_up_tokenization_spaces changes the decoded text. */
#include <cjson/cJSON.h>
#include <stdlib.h>

#include "synth/idefics2.h"
#include "synth/idf2_mkmodel.h"
#include "synth/idf2_model.h"
#include "synth/safetensors.h"
#include "synth/st_write.h"
#include "tests/unit/vc_test.h"

static cJSON *read_json(const char *dir, const char *name)
{
    char path[1100];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    size_t n = 0;
    unsigned char *data = vc_test_read_file(path, &n);
    cJSON *j = data ? cJSON_ParseWithLength((const char *)data, n) : NULL;
    free(data);
    CHECK(j != NULL);
    return j;
}

static void write_json(const char *dir, const char *name, const cJSON *j)
{
    char path[1100];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    char *text = cJSON_Print(j);
    CHECK(text && vc_test_write_file(path, text, strlen(text)) == 0);
    free(text);
}

/* The demo's tiny model in <tmp>/<name>; its vocabulary size in *vocab. */
static bool make_tiny(const char *name, char *dir, size_t cap, int *vocab)
{
    struct vc_err err = { 0 };
    snprintf(dir, cap, "%s/%s", vc_test_tmpdir(), name);
    CHECK_INT(idf2_mk_tiny(dir, 11, NULL, &err), VC_OK);
    cJSON *cfg = read_json(dir, "config.json");
    const cJSON *v = cJSON_GetObjectItem(cJSON_GetObjectItem(cfg, "text_config"), "vocab_size");
    *vocab = cJSON_IsNumber(v) ? v->valueint : 0;
    cJSON_Delete(cfg);
    return err.status >= 0 && *vocab > 0;
}

/* Rewrites dir/model.safetensors with the embedding and the LM head cut
 * to their first `rows` rows, and config.json's vocab_size to `rows`. */
static bool cut_vocab(const char *dir, int rows)
{
    char path[1100];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    struct vc_err err = { 0 };
    struct st_file *f = NULL;
    struct st_writer *w = NULL;
    bool ok = st_file_open(path, &f, &err) >= 0 && st_writer_new(&w, &err) >= 0;
    for (size_t i = 0; ok && i < st_file_count(f); i++) {
        const struct st_tensor *t = st_file_at(f, i);
        int64_t shape[ST_MAX_DIMS];
        memcpy(shape, t->shape, sizeof shape);
        if (!strcmp(t->name, "model.text_model.embed_tokens.weight") ||
            !strcmp(t->name, "lm_head.weight"))
            shape[0] = rows;
        ok = st_writer_add(w, t->name, t->dtype, shape, t->n_dims, t->data, &err) >= 0;
    }
    ok = ok && st_writer_save(w, path, &err) >= 0;
    st_writer_free(w);
    st_file_close(f);
    cJSON *cfg = read_json(dir, "config.json");
    cJSON *v = cJSON_GetObjectItem(cJSON_GetObjectItem(cfg, "text_config"), "vocab_size");
    ok = ok && v && cJSON_SetNumberValue(v, rows) == rows;
    write_json(dir, "config.json", cfg);
    cJSON_Delete(cfg);
    CHECK(ok);
    return ok;
}

TEST(base_vocab_without_chat_tokens)
{
    char dir[1024];
    int vocab = 0;
    if (!make_tiny("base", dir, sizeof dir, &vocab) || !cut_vocab(dir, vocab - 1))
        return;
    /* As published: the tokenizer's last id (<end_of_utterance>) and the
     * generation_config's second eos are the id the model lacks. */
    struct vc_err err = { 0 };
    struct idf2_model *m = NULL;
    CHECK_INT(idf2_model_load(dir, NULL, &m, &err), VC_OK);
    if (!m) {
        fprintf(stderr, "  load: %s\n", err.msg);
        return;
    }
    struct idf2_model_info info;
    idf2_model_info(m, &info);
    CHECK_INT(info.vocab_size, vocab - 1);
    struct idf2_request req = { .prompt = "Caption: a", .image_splitting = -1 };
    req.gen.max_new_tokens = 3;
    struct idf2_result r;
    CHECK_INT(idf2_generate(m, &req, &r, &err), VC_OK);
    CHECK_INT(r.status, VC_OK);
    CHECK_INT((int)r.n_ids, 3);
    for (size_t i = 0; i < r.n_ids; i++)
        CHECK(r.ids[i] >= 0 && r.ids[i] < vocab - 1);
    idf2_result_release(&r);
    /* A chat needs <end_of_utterance>: refused up front, naming it. */
    const struct idf2_request chat = { .chat = "Describe.", .image_splitting = -1 };
    size_t n_tokens = 1;
    CHECK(idf2_request_tokens(m, &chat, &n_tokens, &err) < 0);
    CHECK_INT(err.status, VC_EUSAGE);
    CHECK(strstr(err.msg, "<end_of_utterance>") && strstr(err.msg, "raw prompt"));
    CHECK(idf2_generate(m, &chat, &r, &err) < 0 || r.status < 0);
    idf2_result_release(&r);
    idf2_model_free(m);
}

/* tokenizer_config.json's clean_up_tokenization_spaces reaches the
 * model's decode (transformers applies it in processor.decode). */
TEST(clean_up_spaces_from_tokenizer_config)
{
    char dir[1024];
    int vocab = 0;
    if (!make_tiny("clean", dir, sizeof dir, &vocab))
        return;
    for (int on = 0; on < 2; on++) {
        cJSON *tc = read_json(dir, "tokenizer_config.json");
        cJSON_DeleteItemFromObject(tc, "clean_up_tokenization_spaces");
        cJSON_AddBoolToObject(tc, "clean_up_tokenization_spaces", on);
        write_json(dir, "tokenizer_config.json", tc);
        cJSON_Delete(tc);
        struct vc_err err = { 0 };
        struct idf2_model *m = NULL;
        CHECK_INT(idf2_model_load(dir, NULL, &m, &err), VC_OK);
        if (!m)
            return;
        int32_t *ids = NULL;
        size_t n = 0;
        char *text = NULL;
        CHECK_INT(idf2_tokenizer_encode(m->tok, "a test .", 8, false, &ids, &n, &err), VC_OK);
        CHECK_INT(idf2_tokenizer_decode(m->tok, ids, n, true, &text, NULL, &err), VC_OK);
        CHECK_STR(text, on ? "a test." : "a test .");
        free(ids);
        free(text);
        idf2_model_free(m);
    }
}

#define TESTS(X)                                                                                   \
    X(base_vocab_without_chat_tokens)                                                              \
    X(clean_up_spaces_from_tokenizer_config)
TEST_MAIN(TESTS)
