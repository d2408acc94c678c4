/* idf2_prompt: chat template, placeholder expansion, prompt ids.
 *
 * Owns only string building; tokenization is idf2_tokenizer's.  The chat
 * template is the Idefics2 one hard-wired in C; idf2_chat_template_check is
 * the guard that keeps a checkpoint with another template from being
 * rendered with this one.  Sizes are capped by IDF2_PROMPT_MAX_BYTES. */
#include "synth/idf2_prompt.h"

#include <stdlib.h>
#include <string.h>

#include "core/vc_buf.h"
#include "core/vc_mem.h"

/* The template shipped in idefics2-8b's processor_config.json (and the
 * fixtures'), written here with no whitespace inside the tags. */
static const char idefics2_template[] =
    "{%formessageinmessages%}{{message['role'].capitalize()}}"
    "{%ifmessage['content'][0]['type']=='image'%}{{':'}}{%else%}{{': '}}{%endif%}"
    "{%forlineinmessage['content']%}{%ifline['type']=='text'%}{{line['text']}}"
    "{%elifline['type']=='image'%}{{'<image>'}}{%endif%}{%endfor%}<end_of_utterance>\n"
    "{%endfor%}{%ifadd_generation_prompt%}{{'Assistant:'}}{%endif%}";

static enum vc_status oom_or_cap(struct vc_buf *b, struct vc_err *err)
{
    size_t len = b->len;
    vc_buf_free(b);
    return vc_err_set(err, VC_EUSAGE, VC_REASON_field_too_long,
                      "prompt: longer than %zu bytes (or out of memory at %zu)",
                      (size_t)IDF2_PROMPT_MAX_BYTES, len);
}

enum vc_status idf2_chat_render(const struct idf2_message *msgs, size_t n_msgs,
                                bool add_generation_prompt, char **out, struct vc_err *err)
{
    *out = NULL;
    struct vc_buf b;
    vc_buf_init(&b, IDF2_PROMPT_MAX_BYTES);
    vc_buf_append(&b, "", 0);
    for (size_t m = 0; m < n_msgs; m++) {
        const struct idf2_message *msg = &msgs[m];
        /* Jinja's content[0] on an empty list is undefined, and the
         * template then fails: refuse it the same way. */
        if (msg->n_content == 0 || !msg->role || !msg->role[0]) {
            vc_buf_free(&b);
            return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec,
                              "chat message %zu has no role or no content", m);
        }
        /* Python's str.capitalize: first character upper, the rest lower.
         * Only ASCII roles are accepted, where that is unambiguous. */
        for (const char *r = msg->role; *r; r++) {
            unsigned char c = (unsigned char)*r;
            if (c >= 0x80) {
                vc_buf_free(&b);
                return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec,
                                  "chat message %zu: role is not ASCII", m);
            }
            char o = r == msg->role ? (c >= 'a' && c <= 'z' ? (char)(c - 32) : (char)c)
                                    : (c >= 'A' && c <= 'Z' ? (char)(c + 32) : (char)c);
            vc_buf_append(&b, &o, 1);
        }
        const char *sep = msg->content[0].type == IDF2_CONTENT_IMAGE ? ":" : ": ";
        vc_buf_append(&b, sep, strlen(sep));
        for (size_t i = 0; i < msg->n_content; i++) {
            const struct idf2_content *c = &msg->content[i];
            if (c->type == IDF2_CONTENT_IMAGE)
                vc_buf_append(&b, IDF2_IMAGE_TOKEN, strlen(IDF2_IMAGE_TOKEN));
            else if (c->text)
                vc_buf_append(&b, c->text, strlen(c->text));
        }
        vc_buf_append(&b, "<end_of_utterance>\n", strlen("<end_of_utterance>\n"));
    }
    if (add_generation_prompt)
        vc_buf_append(&b, "Assistant:", strlen("Assistant:"));
    if (b.failed)
        return oom_or_cap(&b, err);
    *out = b.data;
    return VC_OK;
}

enum vc_status idf2_chat_template_check(const char *chat_template, struct vc_err *err)
{
    if (!chat_template)
        return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_checkpoint, "no chat template");
    /* Walk the template dropping whitespace inside {{ }} and {% %} tags but
     * outside quotes, and compare against the canonical text on the fly. */
    const char *want = idefics2_template;
    bool in_tag = false;
    char quote = 0;
    for (const char *p = chat_template; *p; p++) {
        if (!quote && !in_tag && p[0] == '{' && (p[1] == '{' || p[1] == '%')) {
            in_tag = true;
        } else if (!quote && in_tag && (p[0] == '}' || p[0] == '%') && p[1] == '}') {
            in_tag = false;
        } else if (in_tag && !quote && (*p == '\'' || *p == '"')) {
            quote = *p;
        } else if (in_tag && quote && *p == quote) {
            quote = 0;
        } else if (in_tag && !quote && (*p == ' ' || *p == '\t' || *p == '\n')) {
            continue;
        }
        /* Jinja strings may use either quote: compare them as one. */
        char c = *p == '"' && in_tag ? '\'' : *p;
        if (*want != c)
            return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_checkpoint,
                              "chat template differs from the Idefics2 one at byte %zu",
                              (size_t)(p - chat_template));
        want++;
    }
    if (*want)
        return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_checkpoint,
                          "chat template is a truncated Idefics2 template");
    return VC_OK;
}

static size_t count_occurrences(const char *s, const char *needle)
{
    size_t n = 0, len = strlen(needle);
    for (const char *p = strstr(s, needle); p; p = strstr(p + len, needle))
        n++;
    return n;
}

enum vc_status idf2_prompt_expand(const char *prompt, size_t n_images, int image_seq_len,
                                  bool image_splitting, char **out, struct vc_err *err)
{
    *out = NULL;
    if (image_seq_len < 1 || image_seq_len > IDF2_PROMPT_MAX_SEQ_LEN)
        return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_checkpoint,
                          "image_seq_len %d outside [1, %d]", image_seq_len,
                          IDF2_PROMPT_MAX_SEQ_LEN);
    size_t found = count_occurrences(prompt, IDF2_IMAGE_TOKEN);
    if (found != n_images)
        return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec,
                          "the prompt has %zu %s markers for %zu images", found, IDF2_IMAGE_TOKEN,
                          n_images);

    /* One image block: F I*S F, five times over when splitting. */
    const size_t flen = strlen(IDF2_FAKE_TOKEN), ilen = strlen(IDF2_IMAGE_TOKEN);
    struct vc_buf block;
    vc_buf_init(&block, IDF2_PROMPT_MAX_BYTES);
    for (int rep = 0; rep < (image_splitting ? 5 : 1); rep++) {
        vc_buf_append(&block, IDF2_FAKE_TOKEN, flen);
        for (int i = 0; i < image_seq_len; i++)
            vc_buf_append(&block, IDF2_IMAGE_TOKEN, ilen);
        vc_buf_append(&block, IDF2_FAKE_TOKEN, flen);
    }
    if (block.failed)
        return oom_or_cap(&block, err);

    /* str.replace(image, block), then str.replace(FF, F): one pass each,
     * left to right, non-overlapping. */
    struct vc_buf mid;
    vc_buf_init(&mid, IDF2_PROMPT_MAX_BYTES);
    vc_buf_append(&mid, "", 0);
    for (const char *p = prompt; *p;) {
        if (strncmp(p, IDF2_IMAGE_TOKEN, ilen) == 0) {
            vc_buf_append(&mid, block.data, block.len);
            p += ilen;
        } else {
            vc_buf_append(&mid, p++, 1);
        }
    }
    vc_buf_free(&block);
    if (mid.failed)
        return oom_or_cap(&mid, err);
    struct vc_buf res;
    vc_buf_init(&res, IDF2_PROMPT_MAX_BYTES);
    vc_buf_append(&res, "", 0);
    for (const char *p = mid.data; *p;) {
        if (strncmp(p, IDF2_FAKE_TOKEN, flen) == 0 &&
            strncmp(p + flen, IDF2_FAKE_TOKEN, flen) == 0) {
            vc_buf_append(&res, IDF2_FAKE_TOKEN, flen);
            p += 2 * flen;
        } else {
            vc_buf_append(&res, p++, 1);
        }
    }
    vc_buf_free(&mid);
    if (res.failed)
        return oom_or_cap(&res, err);
    *out = res.data;
    return VC_OK;
}

enum vc_status idf2_prompt_ids(const struct idf2_tokenizer *tok, const char *prompt,
                               size_t n_images, int image_seq_len, bool image_splitting,
                               int32_t **ids, size_t *n_ids, struct vc_err *err)
{
    char *text;
    *ids = NULL;
    *n_ids = 0;
    enum vc_status rc =
        idf2_prompt_expand(prompt, n_images, image_seq_len, image_splitting, &text, err);
    if (rc != VC_OK)
        return rc;
    rc = idf2_tokenizer_encode(tok, text, strlen(text), true, ids, n_ids, err);
    free(text);
    return rc;
}
