/* Fuzz target for idf2_tokenizer: the input is a tokenizer.json, optionally
 * followed by a NUL and a text.  Any bytes must load or be refused with
 * VC_EUSAGE (never crash, never leak); a loaded tokenizer must encode the
 * text (or refuse invalid UTF-8), give ids that all have pieces, and
 * decode them and arbitrary ids (negative, out of range) without error.
 * Exact round trips are the unit tests' job (tokenizer_cases.json). */
#include <stdlib.h>
#include <string.h>

#include "synth/idf2_tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void require(int cond)
{
    if (!cond)
        __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *json = (const char *)data;
    const uint8_t *nul = memchr(data, 0, size);
    size_t json_len = nul ? (size_t)(nul - data) : size;
    const char *text = nul ? (const char *)nul + 1 : "";
    size_t text_len = nul ? size - json_len - 1 : 0;

    struct vc_err err;
    struct idf2_tokenizer *tok = NULL;
    enum vc_status rc = idf2_tokenizer_load_json(json, json_len, "fuzz", &tok, &err);
    require((rc == VC_OK) == (tok != NULL));
    if (rc != VC_OK) {
        require(rc == VC_EUSAGE || (rc == VC_EFATAL && err.reason == VC_REASON_out_of_memory));
        return 0;
    }
    int32_t *ids = NULL;
    size_t n = 0;
    rc = idf2_tokenizer_encode(tok, text, text_len, false, &ids, &n, &err);
    if (rc == VC_OK) {
        for (size_t i = 0; i < n; i++)
            require(idf2_tokenizer_piece(tok, ids[i]) != NULL);
        char *back = NULL;
        size_t back_len = 0;
        require(idf2_tokenizer_decode(tok, ids, n, false, &back, &back_len, &err) == VC_OK);
        require(back && strlen(back) <= back_len);
        free(back);
    } else {
        require(rc == VC_EUSAGE && ids == NULL);
    }
    free(ids);

    /* Arbitrary ids (out of range and negative ones included) from the
     * text bytes. */
    int32_t raw[64];
    size_t n_raw = 0;
    for (size_t i = 0; i + 1 < text_len && n_raw < 64; i += 2)
        raw[n_raw++] =
            (int32_t)(((uint32_t)(uint8_t)text[i] << 8 | (uint8_t)text[i + 1]) % 700) - 10;
    char *out = NULL;
    require(idf2_tokenizer_decode(tok, raw, n_raw, true, &out, NULL, &err) == VC_OK);
    free(out);
    idf2_tokenizer_free(tok);
    return 0;
}
