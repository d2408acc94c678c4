/* idf2_prompt: the text side of Idefics2Processor (SPEC §3): the chat
 * template rendered in C with the exact semantics of the Jinja template the
 * checkpoints ship (not a general Jinja engine), the image placeholder
 * expansion, and the prompt's input_ids.
 *
 * The strings "<image>" and "<fake_token_around_image>" are the
 * processor's own constants; their ids come from the tokenizer.
 *
 * Limits: image_seq_len is at most IDF2_PROMPT_MAX_SEQ_LEN and an expanded
 * prompt at most IDF2_PROMPT_MAX_BYTES, so a request cannot blow the
 * expansion up.  This module never looks at pixels. */
#ifndef VC_SYNTH_IDF2_PROMPT_H
#define VC_SYNTH_IDF2_PROMPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/vc_err.h"
#include "synth/idf2_tokenizer.h"

#define IDF2_IMAGE_TOKEN "<image>"
#define IDF2_FAKE_TOKEN  "<fake_token_around_image>"

/* 64 for idefics2-8b; 4096 is far beyond any perceiver anyone trains. */
#define IDF2_PROMPT_MAX_SEQ_LEN 4096
/* 64 MiB of prompt text is ~16M tokens, beyond any context window. */
#define IDF2_PROMPT_MAX_BYTES ((size_t)64 << 20)

enum idf2_content_type {
    IDF2_CONTENT_TEXT = 0,
    IDF2_CONTENT_IMAGE,
};

struct idf2_content {
    enum idf2_content_type type;
    const char *text; /* IDF2_CONTENT_TEXT only; UTF-8, NUL-terminated */
};

struct idf2_message {
    const char *role; /* "user", "assistant", ...: ASCII, rendered capitalized */
    const struct idf2_content *content;
    size_t n_content; /* >= 1: the template reads content[0] */
};

/* Renders messages with the Idefics2 chat template: per message
 * "Role" + (":" if its first item is an image else ": ") + items (text
 * verbatim, image as "<image>") + "<end_of_utterance>\n"; then "Assistant:"
 * with `add_generation_prompt`.  No BOS.  *out is owned (free()).
 * VC_EUSAGE for an empty content list or a non-ASCII role. */
enum vc_status idf2_chat_render(const struct idf2_message *msgs, size_t n_msgs,
                                bool add_generation_prompt, char **out, struct vc_err *err);

/* VC_OK when `chat_template` (from processor_config.json or
 * tokenizer_config.json) is the Idefics2 template idf2_chat_render
 * implements, compared with the whitespace inside {{ }} / {% %} tags
 * ignored; VC_EUSAGE bad_checkpoint otherwise, so a fine-tune with another
 * template is refused instead of silently rendered wrong. */
enum vc_status idf2_chat_template_check(const char *chat_template, struct vc_err *err);

/* Idefics2Processor's expansion: every "<image>" in `prompt` becomes
 * F + I*image_seq_len + F (five times over with `image_splitting`), then
 * "FF" collapses to "F" in one left-to-right pass (F = fake token, I =
 * image token).  The number of "<image>" in the prompt must equal
 * `n_images` (VC_EUSAGE otherwise).  *out is owned (free()). */
enum vc_status idf2_prompt_expand(const char *prompt, size_t n_images, int image_seq_len,
                                  bool image_splitting, char **out, struct vc_err *err);

/* expand + encode with the tokenizer's special tokens (BOS): the
 * processor's input_ids.  *ids is owned (free()). */
enum vc_status idf2_prompt_ids(const struct idf2_tokenizer *tok, const char *prompt,
                               size_t n_images, int image_seq_len, bool image_splitting,
                               int32_t **ids, size_t *n_ids, struct vc_err *err);

#endif
