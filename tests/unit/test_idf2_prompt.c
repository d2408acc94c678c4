/* idf2_prompt: every case of the fixture's cases.json (rendered_prompt from
 * the chat messages, processor_prompt from the expansion, input_ids against
 * expected.safetensors), the template guard, and the expansion's edge
 * cases worked out by hand from Python's str.replace semantics. */
#include <cjson/cJSON.h>
#include <stdlib.h>

#include "synth/idf2_config.h"
#include "synth/idf2_prompt.h"
#include "synth/safetensors.h"
#include "tests/unit/vc_test.h"

static cJSON *load_cases(void)
{
    size_t n;
    unsigned char *data = vc_test_read_file(vc_test_fixture("idefics2-tiny/cases.json"), &n);
    cJSON *root = data ? cJSON_ParseWithLength((const char *)data, n) : NULL;
    free(data);
    return root;
}

/* Renders a cases.json "messages" list through idf2_chat_render. */
static char *render_messages(const cJSON *messages, bool add_gen)
{
    size_t n_msgs = (size_t)cJSON_GetArraySize(messages);
    struct idf2_message *msgs = calloc(n_msgs, sizeof *msgs);
    struct idf2_content *items[16] = { 0 };
    size_t m = 0;
    const cJSON *jm;
    cJSON_ArrayForEach(jm, messages)
    {
        const cJSON *content = cJSON_GetObjectItem(jm, "content");
        size_t n_items = (size_t)cJSON_GetArraySize(content);
        items[m] = calloc(n_items, sizeof *items[m]);
        size_t i = 0;
        const cJSON *jc;
        cJSON_ArrayForEach(jc, content)
        {
            bool image = strcmp(cJSON_GetObjectItem(jc, "type")->valuestring, "image") == 0;
            items[m][i].type = image ? IDF2_CONTENT_IMAGE : IDF2_CONTENT_TEXT;
            items[m][i].text = image ? NULL : cJSON_GetObjectItem(jc, "text")->valuestring;
            i++;
        }
        msgs[m] = (struct idf2_message){ cJSON_GetObjectItem(jm, "role")->valuestring, items[m],
                                         n_items };
        m++;
    }
    struct vc_err err = { 0 };
    char *out = NULL;
    CHECK_INT(idf2_chat_render(msgs, n_msgs, add_gen, &out, &err), VC_OK);
    for (size_t i = 0; i < m; i++)
        free(items[i]);
    free(msgs);
    return out;
}

TEST(fixture_cases)
{
    struct vc_err err = { 0 };
    struct idf2_config cfg;
    struct idf2_tokenizer *tok = NULL;
    struct st_file *expected = NULL;
    cJSON *root = load_cases();
    CHECK_INT(idf2_config_load_dir(vc_test_fixture("idefics2-tiny"), &cfg, &err), VC_OK);
    CHECK_INT(idf2_tokenizer_load(vc_test_fixture("idefics2-tiny/tokenizer.json"), &tok, &err),
              VC_OK);
    CHECK_INT(st_file_open(vc_test_fixture("idefics2-tiny/expected.safetensors"), &expected, &err),
              VC_OK);
    CHECK(root != NULL);
    if (!root || !tok || !expected) {
        fprintf(stderr, "%s\n", err.msg);
        return;
    }
    CHECK_INT(cfg.proc.image_seq_len, 8);
    int n_cases = 0, n_chat = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(root, "cases"))
    {
        const char *name = cJSON_GetObjectItem(c, "name")->valuestring;
        const char *rendered = cJSON_GetObjectItem(c, "rendered_prompt")->valuestring;
        const cJSON *messages = cJSON_GetObjectItem(c, "messages");
        if (messages) {
            char *mine = render_messages(
                messages, cJSON_IsTrue(cJSON_GetObjectItem(c, "add_generation_prompt")));
            CHECK_STR(mine, rendered);
            free(mine);
            n_chat++;
        } else {
            CHECK_STR(cJSON_GetObjectItem(c, "prompt")->valuestring, rendered);
        }
        size_t n_images = (size_t)cJSON_GetArraySize(cJSON_GetObjectItem(c, "images"));
        bool split = cJSON_IsTrue(cJSON_GetObjectItem(c, "do_image_splitting"));
        char *expanded = NULL;
        CHECK_INT(
            idf2_prompt_expand(rendered, n_images, cfg.proc.image_seq_len, split, &expanded, &err),
            VC_OK);
        CHECK_STR(expanded, cJSON_GetObjectItem(c, "processor_prompt")->valuestring);
        free(expanded);

        int32_t *ids = NULL;
        size_t n_ids = 0;
        CHECK_INT(idf2_prompt_ids(tok, rendered, n_images, cfg.proc.image_seq_len, split, &ids,
                                  &n_ids, &err),
                  VC_OK);
        char tname[256];
        snprintf(tname, sizeof tname, "%s.input_ids", name);
        const struct st_tensor *want = st_file_find(expected, tname);
        CHECK(want && want->dtype == ST_I64 && want->n_dims == 2);
        if (want) {
            CHECK_INT(n_ids, want->shape[1]);
            CHECK_INT(n_ids, cJSON_GetObjectItem(c, "num_input_tokens")->valuedouble);
            size_t bad = 0;
            for (size_t i = 0; i < n_ids && i < (size_t)want->shape[1]; i++) {
                int64_t w; /* tensor data in a .safetensors need not be aligned */
                memcpy(&w, (const char *)want->data + 8 * i, 8);
                bad += ids[i] != w;
            }
            if (bad)
                fprintf(stderr, "%s: %zu input ids differ\n", name, bad);
            CHECK_INT(bad, 0);
        }
        size_t n_img_tok = 0;
        for (size_t i = 0; i < n_ids; i++)
            n_img_tok += ids[i] == cfg.model.image_token_id;
        CHECK_INT(n_img_tok, cJSON_GetObjectItem(c, "num_image_tokens")->valuedouble);
        free(ids);
        n_cases++;
    }
    CHECK_INT(n_cases, 6);
    CHECK(n_chat >= 3);
    cJSON_Delete(root);
    st_file_close(expected);
    idf2_tokenizer_free(tok);
    idf2_config_release(&cfg);
}

TEST(template_guard)
{
    struct vc_err err = { 0 };
    struct idf2_config cfg;
    CHECK_INT(idf2_config_load_dir(vc_test_fixture("idefics2-tiny"), &cfg, &err), VC_OK);
    CHECK_INT(idf2_chat_template_check(cfg.proc.chat_template, &err), VC_OK);
    idf2_config_release(&cfg);
    /* Whitespace inside tags and the quote style do not matter ... */
    const char *respaced =
        "{%for message in messages%}{{ message[\"role\"].capitalize() }}{% if "
        "message['content'][0]['type'] == 'image' %}{{ ':' }}{% else %}{{ ': ' }}{% endif %}"
        "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{ line['text'] }}"
        "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}"
        "<end_of_utterance>\n{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}"
        "{% endif %}";
    CHECK_INT(idf2_chat_template_check(respaced, &err), VC_OK);
    /* ... but text outside tags and inside quotes does. */
    const char *other_sep = "{% for message in messages %}{{message['role'].capitalize()}}{% if "
                            "message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{':'}}";
    CHECK_INT(idf2_chat_template_check(other_sep, &err), VC_EUSAGE);
    CHECK_INT(err.reason, VC_REASON_bad_checkpoint);
    const char *chatml = "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
                         "{{ message['content'] }}<|im_end|>\n{% endfor %}";
    CHECK_INT(idf2_chat_template_check(chatml, &err), VC_EUSAGE);
    CHECK_INT(idf2_chat_template_check(NULL, &err), VC_EUSAGE);
}

TEST(render_rules)
{
    struct vc_err err = { 0 };
    char *out = NULL;
    /* capitalize(): "sYSTEM" -> "System"; text-first message gets ": ". */
    struct idf2_content text = { IDF2_CONTENT_TEXT, "hi" }, image = { IDF2_CONTENT_IMAGE, NULL };
    struct idf2_content mixed[] = { image, text, image };
    struct idf2_message msgs[] = { { "sYSTEM", &text, 1 }, { "user", mixed, 3 } };
    CHECK_INT(idf2_chat_render(msgs, 2, false, &out, &err), VC_OK);
    CHECK_STR(out, "System: hi<end_of_utterance>\nUser:<image>hi<image><end_of_utterance>\n");
    free(out);
    CHECK_INT(idf2_chat_render(msgs, 0, true, &out, &err), VC_OK);
    CHECK_STR(out, "Assistant:");
    free(out);
    struct idf2_message empty = { "user", NULL, 0 };
    CHECK_INT(idf2_chat_render(&empty, 1, true, &out, &err), VC_EUSAGE);
    CHECK(out == NULL);
    struct idf2_message nonascii = { "\xc3\xbcser", &text, 1 };
    CHECK_INT(idf2_chat_render(&nonascii, 1, true, &out, &err), VC_EUSAGE);
}

TEST(expand_rules)
{
    struct vc_err err = { 0 };
    char *out = NULL;
#define F "<fake_token_around_image>"
#define I "<image>"
    /* Two adjacent images share the middle F; seq_len 2. */
    CHECK_INT(idf2_prompt_expand("a" I I "b", 2, 2, false, &out, &err), VC_OK);
    CHECK_STR(out, "a" F I I F I I F "b");
    free(out);
    /* Splitting: 5 blocks, 6 F in all. */
    CHECK_INT(idf2_prompt_expand(I, 1, 1, true, &out, &err), VC_OK);
    CHECK_STR(out, F I F I F I F I F I F);
    free(out);
    /* A user-written "FFF" collapses once, left to right: FF|F -> F F. */
    CHECK_INT(idf2_prompt_expand(F F F, 0, 1, false, &out, &err), VC_OK);
    CHECK_STR(out, F F);
    free(out);
    /* Marker count must match the images given. */
    CHECK_INT(idf2_prompt_expand("x" I, 2, 8, false, &out, &err), VC_EUSAGE);
    CHECK(out == NULL);
    CHECK_INT(idf2_prompt_expand("x", 1, 8, false, &out, &err), VC_EUSAGE);
    CHECK_INT(idf2_prompt_expand(I, 1, 0, false, &out, &err), VC_EUSAGE);
    CHECK_INT(idf2_prompt_expand(I, 1, IDF2_PROMPT_MAX_SEQ_LEN + 1, false, &out, &err), VC_EUSAGE);
#undef F
#undef I
}

#define TESTS(X) X(fixture_cases) X(template_guard) X(render_rules) X(expand_rules)
TEST_MAIN(TESTS)
