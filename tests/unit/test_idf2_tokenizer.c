/* idf2_tokenizer against the fixture's tokenizer_cases.json (every encode
 * and decode case, exact), plus small hand-built tokenizer.json files whose
 * BPE results are worked out by hand in the comments. */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "synth/idf2_mkmodel.h"
#include "synth/idf2_tokenizer.h"
#include "tests/unit/vc_test.h"

static struct idf2_tokenizer *load_fixture(void)
{
    struct vc_err err = { 0 };
    struct idf2_tokenizer *tok = NULL;
    if (idf2_tokenizer_load(vc_test_fixture("idefics2-tiny/tokenizer.json"), &tok, &err) != VC_OK)
        fprintf(stderr, "load: %s\n", err.msg);
    return tok;
}

static cJSON *load_cases(void)
{
    size_t n;
    unsigned char *data =
        vc_test_read_file(vc_test_fixture("idefics2-tiny/tokenizer_cases.json"), &n);
    cJSON *root = data ? cJSON_ParseWithLength((const char *)data, n) : NULL;
    free(data);
    return root;
}

/* Compares ids against a JSON list of integers, reporting the case. */
static void check_ids(const char *what, const char *text, const int32_t *ids, size_t n,
                      const cJSON *want)
{
    size_t nw = (size_t)cJSON_GetArraySize(want);
    bool same = n == nw;
    for (size_t i = 0; same && i < n; i++)
        same = ids[i] == (int32_t)cJSON_GetArrayItem(want, (int)i)->valuedouble;
    if (!same) {
        fprintf(stderr, "%s of \"%s\": got", what, text);
        for (size_t i = 0; i < n; i++)
            fprintf(stderr, " %d", (int)ids[i]);
        fprintf(stderr, " (%zu ids, expected %zu)\n", n, nw);
        vc_test_failures++;
    }
}

static int32_t *json_ids(const cJSON *list, size_t *n)
{
    *n = (size_t)cJSON_GetArraySize(list);
    int32_t *ids = malloc((*n + 1) * sizeof *ids);
    for (size_t i = 0; i < *n; i++)
        ids[i] = (int32_t)cJSON_GetArrayItem(list, (int)i)->valuedouble;
    return ids;
}

static void check_decode(const struct idf2_tokenizer *tok, const int32_t *ids, size_t n, bool skip,
                         const char *want)
{
    struct vc_err err = { 0 };
    char *text = NULL;
    size_t len = 0;
    CHECK_INT(idf2_tokenizer_decode(tok, ids, n, skip, &text, &len, &err), VC_OK);
    CHECK_STR(text, want);
    CHECK_INT(len, strlen(want));
    free(text);
}

TEST(fixture_encode_cases)
{
    struct idf2_tokenizer *tok = load_fixture();
    cJSON *root = load_cases();
    CHECK(tok && root);
    if (!tok || !root)
        return;
    const cJSON *c;
    int n_cases = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(root, "encode"))
    {
        const char *text = cJSON_GetObjectItem(c, "text")->valuestring;
        struct vc_err err = { 0 };
        int32_t *ids;
        size_t n;
        CHECK_INT(idf2_tokenizer_encode(tok, text, strlen(text), true, &ids, &n, &err), VC_OK);
        check_ids("encode", text, ids, n, cJSON_GetObjectItem(c, "ids"));
        const cJSON *tokens = cJSON_GetObjectItem(c, "tokens");
        for (size_t i = 0; i < n && i < (size_t)cJSON_GetArraySize(tokens); i++)
            CHECK_STR(idf2_tokenizer_piece(tok, ids[i]),
                      cJSON_GetArrayItem(tokens, (int)i)->valuestring);
        check_decode(tok, ids, n, false, cJSON_GetObjectItem(c, "decoded")->valuestring);
        check_decode(tok, ids, n, true,
                     cJSON_GetObjectItem(c, "decoded_skip_special")->valuestring);
        free(ids);
        CHECK_INT(idf2_tokenizer_encode(tok, text, strlen(text), false, &ids, &n, &err), VC_OK);
        CHECK(ids != NULL);
        check_ids("encode(no special)", text, ids, n, cJSON_GetObjectItem(c, "ids_no_special"));
        free(ids);
        n_cases++;
    }
    CHECK(n_cases >= 20);
    cJSON_Delete(root);
    idf2_tokenizer_free(tok);
}

TEST(fixture_decode_cases)
{
    struct idf2_tokenizer *tok = load_fixture();
    cJSON *root = load_cases();
    CHECK(tok && root);
    if (!tok || !root)
        return;
    const cJSON *c;
    int n_cases = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(root, "decode"))
    {
        size_t n;
        int32_t *ids = json_ids(cJSON_GetObjectItem(c, "ids"), &n);
        check_decode(tok, ids, n, false, cJSON_GetObjectItem(c, "decoded")->valuestring);
        check_decode(tok, ids, n, true,
                     cJSON_GetObjectItem(c, "decoded_skip_special")->valuestring);
        free(ids);
        n_cases++;
    }
    CHECK(n_cases >= 8);
    cJSON_Delete(root);
    idf2_tokenizer_free(tok);
}

TEST(fixture_lookups)
{
    struct idf2_tokenizer *tok = load_fixture();
    CHECK(tok);
    if (!tok)
        return;
    /* README: 579 ids, special ids 0/1/2 and 576/577/578. */
    CHECK_INT(idf2_tokenizer_n_ids(tok), 579);
    CHECK_INT(idf2_tokenizer_find(tok, "<image>"), 577);
    CHECK_INT(idf2_tokenizer_find(tok, "<fake_token_around_image>"), 576);
    CHECK_INT(idf2_tokenizer_find(tok, "<end_of_utterance>"), 578);
    CHECK_INT(idf2_tokenizer_find(tok, "</s>"), 2);
    CHECK_INT(idf2_tokenizer_find(tok, "<0x0A>"), 3 + 10);
    CHECK_INT(idf2_tokenizer_find(tok, "no such piece"), -1);
    CHECK(idf2_tokenizer_is_special(tok, 1));
    CHECK(idf2_tokenizer_is_special(tok, 577));
    CHECK(!idf2_tokenizer_is_special(tok, 261));
    CHECK(idf2_tokenizer_piece(tok, 579) == NULL);
    CHECK(idf2_tokenizer_piece(tok, -1) == NULL);
    idf2_tokenizer_free(tok);
}

TEST(fixture_set_specials)
{
    struct idf2_tokenizer *tok = load_fixture();
    CHECK(tok);
    if (!tok)
        return;
    struct vc_err err = { 0 };
    int32_t *ids;
    size_t n;
    /* add_bos_token false, add_eos_token true: "a" -> ▁a </s>. */
    CHECK_INT(idf2_tokenizer_set_specials(tok, -1, 2, &err), VC_OK);
    CHECK_INT(idf2_tokenizer_encode(tok, "a", 1, true, &ids, &n, &err), VC_OK);
    CHECK_INT(n, 2);
    if (n == 2) {
        CHECK_INT(ids[0], idf2_tokenizer_find(tok, "▁a"));
        CHECK_INT(ids[1], 2);
    }
    free(ids);
    CHECK_INT(idf2_tokenizer_set_specials(tok, 100000, -1, &err), VC_EUSAGE);
    idf2_tokenizer_free(tok);
}

/* The legacy Llama layout: Prepend/Replace normalizer, no pre-tokenizer,
 * the Replace/ByteFallback/Fuse/Strip decoder. */
#define LEGACY_LAYOUT                                                                              \
    "\"normalizer\":{\"type\":\"Sequence\",\"normalizers\":["                                      \
    "{\"type\":\"Prepend\",\"prepend\":\"\\u2581\"},"                                              \
    "{\"type\":\"Replace\",\"pattern\":{\"String\":\" \"},\"content\":\"\\u2581\"}]},"             \
    "\"pre_tokenizer\":null,"                                                                      \
    "\"decoder\":{\"type\":\"Sequence\",\"decoders\":["                                            \
    "{\"type\":\"Replace\",\"pattern\":{\"String\":\"\\u2581\"},\"content\":\" \"},"               \
    "{\"type\":\"ByteFallback\"},{\"type\":\"Fuse\"},"                                             \
    "{\"type\":\"Strip\",\"content\":\" \",\"start\":1,\"stop\":0}]},"

/* A complete tokenizer.json around a given layout (normalizer,
 * pre_tokenizer, decoder) and vocab / merges / added list. */
static char *layout_json(const char *layout, const char *vocab, const char *merges,
                         const char *added, const char *model_extra)
{
    static const char fmt[] =
        "{\"version\":\"1.0\",\"added_tokens\":[%s],%s"
        "\"post_processor\":{\"type\":\"TemplateProcessing\",\"single\":["
        "{\"SpecialToken\":{\"id\":\"<s>\",\"type_id\":0}},{\"Sequence\":{\"id\":\"A\","
        "\"type_id\":0}}],\"special_tokens\":{\"<s>\":{\"id\":\"<s>\",\"ids\":[1],"
        "\"tokens\":[\"<s>\"]}}},"
        "\"model\":{\"type\":\"BPE\",\"unk_token\":\"<unk>\","
        "\"fuse_unk\":true,\"byte_fallback\":false%s,\"vocab\":{%s},\"merges\":[%s]}}";
    size_t n = sizeof fmt + strlen(layout) + strlen(vocab) + strlen(merges) + strlen(added) +
               strlen(model_extra);
    char *s = malloc(n);
    snprintf(s, n, fmt, added, layout, model_extra, vocab, merges);
    return s;
}

static char *mini_json(const char *vocab, const char *merges, const char *added,
                       const char *model_extra)
{
    return layout_json(LEGACY_LAYOUT, vocab, merges, added, model_extra);
}

static enum vc_status load_mini(const char *json, struct idf2_tokenizer **tok, struct vc_err *err)
{
    return idf2_tokenizer_load_json(json, strlen(json), "mini", tok, err);
}

#define MINI_VOCAB                                                                                 \
    "\"<unk>\":0,\"<s>\":1,\"</s>\":2,\"\\u2581\":3,\"a\":4,\"b\":5,\"c\":6,\"ab\":7,\"bc\":8,"    \
    "\"abc\":9,\"\\u2581a\":10"

TEST(bpe_rank_order_and_ties)
{
    struct vc_err err = { 0 };
    struct idf2_tokenizer *tok = NULL;
    /* Ranks: "b c" 0, "a b" 1, "a bc" 2.  "abc" -> ▁ a b c: (b,c) has the
     * lowest rank -> ▁ a bc, then (a,bc) -> ▁ abc; "▁ a" has no merge. */
    char *json = mini_json(MINI_VOCAB, "\"b c\",\"a b\",[\"a\",\"bc\"]", "", "");
    CHECK_INT(load_mini(json, &tok, &err), VC_OK);
    free(json);
    if (!tok) {
        fprintf(stderr, "%s\n", err.msg);
        return;
    }
    int32_t *ids;
    size_t n;
    CHECK_INT(idf2_tokenizer_encode(tok, "abc", 3, false, &ids, &n, &err), VC_OK);
    CHECK_INT(n, 2);
    if (n == 2) {
        CHECK_INT(ids[0], 3);
        CHECK_INT(ids[1], 9);
    }
    free(ids);
    /* "bcbc": four symbols ▁ b c b c; (b,c) rank 0 at positions 1 and 3:
     * leftmost first, both merge -> ▁ bc bc. */
    CHECK_INT(idf2_tokenizer_encode(tok, "bcbc", 4, true, &ids, &n, &err), VC_OK);
    CHECK_INT(n, 4);
    if (n == 4) {
        CHECK_INT(ids[0], 1);
        CHECK_INT(ids[1], 3);
        CHECK_INT(ids[2], 8);
        CHECK_INT(ids[3], 8);
    }
    free(ids);
    idf2_tokenizer_free(tok);
}

TEST(bpe_unknown_chars_fuse)
{
    struct vc_err err = { 0 };
    struct idf2_tokenizer *tok = NULL;
    /* No byte fallback: "axyb" -> ▁ a <unk>(xy fused) b, and "▁ a" merges
     * ("\u2581 a" rank 0) -> ▁a <unk> b. */
    char *json = mini_json(MINI_VOCAB, "\"\\u2581 a\"", "", "");
    CHECK_INT(load_mini(json, &tok, &err), VC_OK);
    free(json);
    if (!tok)
        return;
    int32_t *ids;
    size_t n;
    CHECK_INT(idf2_tokenizer_encode(tok, "axyb", 4, false, &ids, &n, &err), VC_OK);
    CHECK_INT(n, 3);
    if (n == 3) {
        CHECK_INT(ids[0], 10);
        CHECK_INT(ids[1], 0);
        CHECK_INT(ids[2], 5);
    }
    free(ids);
    /* Invalid UTF-8 input is refused, not guessed at. */
    CHECK_INT(idf2_tokenizer_encode(tok, "a\xff", 2, false, &ids, &n, &err), VC_EUSAGE);
    CHECK_INT(err.reason, VC_REASON_text_not_utf8);
    CHECK(ids == NULL);
    idf2_tokenizer_free(tok);
}

TEST(ignore_merges_takes_whole_words)
{
    struct vc_err err = { 0 };
    /* No merges at all: "a" -> ▁ a, unless ignore_merges lets the whole
     * normalized word "▁a" (id 10) through as one piece. */
    for (int ignore = 0; ignore < 2; ignore++) {
        struct idf2_tokenizer *tok = NULL;
        char *json = mini_json(MINI_VOCAB, "", "", ignore ? ",\"ignore_merges\":true" : "");
        CHECK_INT(load_mini(json, &tok, &err), VC_OK);
        free(json);
        if (!tok)
            return;
        int32_t *ids;
        size_t n;
        CHECK_INT(idf2_tokenizer_encode(tok, "a", 1, false, &ids, &n, &err), VC_OK);
        CHECK_INT(n, ignore ? 1 : 2);
        CHECK_INT(ids[0], ignore ? 10 : 3);
        free(ids);
        idf2_tokenizer_free(tok);
    }
}

TEST(added_tokens_leftmost_longest)
{
    struct vc_err err = { 0 };
    struct idf2_tokenizer *tok = NULL;
    /* Two added tokens "<x>" (11) and "<x><y>" (12, not special): in
     * "a<x><y>b<x>" the longer one wins at position 1, and each text piece
     * gets its own leading ▁: ▁a <x><y> ▁ b <x>. */
    char *json = mini_json(MINI_VOCAB, "\"\\u2581 a\"",
                           "{\"id\":11,\"content\":\"<x>\",\"special\":true},"
                           "{\"id\":12,\"content\":\"<x><y>\",\"special\":false}",
                           "");
    CHECK_INT(load_mini(json, &tok, &err), VC_OK);
    free(json);
    if (!tok) {
        fprintf(stderr, "%s\n", err.msg);
        return;
    }
    int32_t *ids;
    size_t n;
    const char *text = "a<x><y>b<x>";
    CHECK_INT(idf2_tokenizer_encode(tok, text, strlen(text), false, &ids, &n, &err), VC_OK);
    int32_t want[] = { 10, 12, 3, 5, 11 };
    CHECK_INT(n, 5);
    for (size_t i = 0; i < n && i < 5; i++)
        CHECK_INT(ids[i], want[i]);
    /* skip_special drops <x> but keeps the non-special <x><y>. */
    check_decode(tok, ids, n, true, "a<x><y> b");
    check_decode(tok, ids, n, false, "a<x><y> b<x>");
    free(ids);
    idf2_tokenizer_free(tok);
}

TEST(decode_byte_runs)
{
    struct vc_err err = { 0 };
    struct idf2_tokenizer *tok = NULL;
    char *json = mini_json("\"<unk>\":0,\"<s>\":1,\"a\":2,\"<0xC3>\":3,\"<0xA9>\":4,\"<0xFF>\":5",
                           "", "", "");
    CHECK_INT(load_mini(json, &tok, &err), VC_OK);
    free(json);
    if (!tok)
        return;
    /* C3 A9 is "é"; C3 A9 FF is one invalid run: three U+FFFD, not "é�". */
    int32_t ok[] = { 2, 3, 4, 2 }, badrun[] = { 3, 4, 5 }, split[] = { 3, 2, 4 };
    check_decode(tok, ok, 4, false,
                 "a\xC3\xA9"
                 "a");
    check_decode(tok, badrun, 3, false, "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
    /* A piece between two byte tokens ends the run: each lone byte is
     * invalid on its own. */
    check_decode(tok, split, 3, false,
                 "\xEF\xBF\xBD"
                 "a\xEF\xBF\xBD");
    /* Unknown ids are skipped, as Rust's id_to_token -> None. */
    int32_t unknown[] = { 2, 99, -5, 2 };
    check_decode(tok, unknown, 4, false, "aa");
    idf2_tokenizer_free(tok);
}

/* clean_up_tokenization_spaces: off, decode gives the text back; on, the
 * ten replacements of transformers' clean_up_tokenization, in order
 * (expected text worked out by hand from them). */
TEST(decode_clean_up_spaces)
{
    struct idf2_tokenizer *tok = load_fixture();
    if (!tok)
        return;
    const char *text = "Hello , it 's a test . Is it ? n't rock ' n roll !";
    struct vc_err err = { 0 };
    int32_t *ids = NULL;
    size_t n = 0;
    CHECK_INT(idf2_tokenizer_encode(tok, text, strlen(text), false, &ids, &n, &err), VC_OK);
    check_decode(tok, ids, n, true, text);
    idf2_tokenizer_set_clean_up(tok, true);
    check_decode(tok, ids, n, true, "Hello, it's a test. Is it?n't rock'n roll!");
    idf2_tokenizer_set_clean_up(tok, false);
    check_decode(tok, ids, n, true, text);
    free(ids);
    idf2_tokenizer_free(tok);
}

/* Encodes text without specials and compares with the ids in want, a
 * JSON list. */
static void check_encode(const struct idf2_tokenizer *tok, const char *text, const char *want)
{
    struct vc_err err = { 0 };
    int32_t *ids = NULL;
    size_t n = 0;
    cJSON *w = cJSON_Parse(want);
    CHECK_INT(idf2_tokenizer_encode(tok, text, strlen(text), false, &ids, &n, &err), VC_OK);
    check_ids("encode", text, ids, n, w);
    cJSON_Delete(w);
    free(ids);
}

/* The layout of newer files (transformers' legacy=False): no normalizer, a
 * Metaspace pre-tokenizer, and the given decoder. */
#define META_LAYOUT(scheme, split, decoder)                                                        \
    "\"normalizer\":null,\"pre_tokenizer\":{\"type\":\"Metaspace\",\"replacement\":\"\\u2581\","   \
    "\"prepend_scheme\":\"" scheme "\",\"split\":" split "},\"decoder\":" decoder ","
#define SEQ_DECODER                                                                                \
    "{\"type\":\"Sequence\",\"decoders\":["                                                        \
    "{\"type\":\"Replace\",\"pattern\":{\"String\":\"\\u2581\"},\"content\":\" \"},"               \
    "{\"type\":\"ByteFallback\"},{\"type\":\"Fuse\"},"                                             \
    "{\"type\":\"Strip\",\"content\":\" \",\"start\":1,\"stop\":0}]}"
#define META_DECODER                                                                               \
    "{\"type\":\"Metaspace\",\"replacement\":\"\\u2581\",\"prepend_scheme\":\"first\","            \
    "\"split\":false}"

/* Ids worked out by hand.  Merges: "b ▁" rank 0, "▁ a" rank 1.  "ab a" is
 * ▁ a b ▁ a as one word: (b,▁) first -> ▁ a b▁ a, then (▁,a) -> ▁a b▁ a
 * = 10 11 4; split into words "▁ab" "▁a" (split true) no pair crosses the
 * "▁": 10 5 10.  " a": the legacy normalizer prepends regardless -> ▁ ▁a
 * = 3 10; Metaspace sees it starts with "▁" already -> 10.  "<x>a": the
 * legacy normalizer prefixes every piece -> 12 10; "first" only the piece
 * at the start of the text -> 12 4; "always" every piece -> 12 10. */
TEST(metaspace_layout_ids)
{
    static const struct {
        const char *layout, *ab_a, *space_a, *x_a;
    } cases[] = {
        { LEGACY_LAYOUT, "[10,11,4]", "[3,10]", "[12,10]" },
        { META_LAYOUT("first", "false", SEQ_DECODER), "[10,11,4]", "[10]", "[12,4]" },
        { META_LAYOUT("always", "false", SEQ_DECODER), "[10,11,4]", "[10]", "[12,10]" },
        { META_LAYOUT("first", "true", SEQ_DECODER), "[10,5,10]", "[10]", "[12,4]" },
        { META_LAYOUT("never", "false", SEQ_DECODER), "[4,11,4]", "[10]", "[12,4]" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct vc_err err = { 0 };
        struct idf2_tokenizer *tok = NULL;
        char *json = layout_json(cases[i].layout, MINI_VOCAB ",\"b\\u2581\":11",
                                 "\"b \\u2581\",\"\\u2581 a\"",
                                 "{\"id\":12,\"content\":\"<x>\",\"special\":true}", "");
        CHECK_INT(load_mini(json, &tok, &err), VC_OK);
        free(json);
        if (!tok) {
            fprintf(stderr, "layout %zu: %s\n", i, err.msg);
            continue;
        }
        check_encode(tok, "ab a", cases[i].ab_a);
        check_encode(tok, " a", cases[i].space_a);
        check_encode(tok, "<x>a", cases[i].x_a);
        idf2_tokenizer_free(tok);
    }
}

/* The Metaspace decoder: every "▁" of the first token it sees is dropped,
 * the others become spaces, and with no ByteFallback a <0x41> piece is
 * text (a skipped <s> is not seen, so "▁a" after it is first); the legacy
 * decoder strips one leading space of the whole text and turns <0x41>
 * into "A". */
TEST(metaspace_decoder)
{
    for (int meta = 0; meta < 2; meta++) {
        struct vc_err err = { 0 };
        struct idf2_tokenizer *tok = NULL;
        char *json = layout_json(meta ? META_LAYOUT("first", "false", META_DECODER) : LEGACY_LAYOUT,
                                 MINI_VOCAB ",\"<0x41>\":11", "",
                                 "{\"id\":1,\"content\":\"<s>\",\"special\":true}", "");
        CHECK_INT(load_mini(json, &tok, &err), VC_OK);
        free(json);
        if (!tok)
            continue;
        const int32_t a_a[] = { 10, 3, 10 }, s_a[] = { 1, 10 }, byte[] = { 10, 11 };
        check_decode(tok, a_a, 3, false, "a  a");
        check_decode(tok, s_a, 2, true, "a");
        check_decode(tok, s_a, 2, false, "<s> a");
        check_decode(tok, byte, 2, false, meta ? "a<0x41>" : "aA");
        idf2_tokenizer_free(tok);
    }
}

/* Added-token options, by hand on the legacy layout (merge "▁ a"):
 * lstrip: "a <l>" -> piece "a" (the space is the token's) -> 10 11, where
 * a plain token leaves "a " -> ▁a ▁ -> 10 3 11.  rstrip: "<r> a" -> 12,
 * piece "a" -> 10.  single_word: "a<w>b" touches letters, so the text is
 * one piece ▁ a <unk>(<w> fused) b -> 10 0 5; "a <w> b" -> "a " 10 3, 13,
 * " b" 3 3 5 (Metaspace: " b" is "▁b" already, 3 5).  normalized: "<n>" is looked for as "▁<n>" in
 * the normalized piece: "a<n>" -> ▁a<n> holds none -> 10 0; "a <n>" -> ▁a▁<n> -> 10 14; under the
 * Metaspace layout it is "<n>" itself: "a<n>" -> 10 14. */
TEST(added_token_options)
{
    const char *added = "{\"id\":11,\"content\":\"<l>\",\"lstrip\":true},"
                        "{\"id\":12,\"content\":\"<r>\",\"rstrip\":true},"
                        "{\"id\":13,\"content\":\"<w>\",\"single_word\":true},"
                        "{\"id\":14,\"content\":\"<n>\",\"normalized\":true},"
                        "{\"id\":15,\"content\":\"<p>\"}";
    for (int meta = 0; meta < 2; meta++) {
        struct vc_err err = { 0 };
        struct idf2_tokenizer *tok = NULL;
        char *json = layout_json(meta ? META_LAYOUT("always", "false", SEQ_DECODER) : LEGACY_LAYOUT,
                                 MINI_VOCAB, "\"\\u2581 a\"", added, "");
        CHECK_INT(load_mini(json, &tok, &err), VC_OK);
        free(json);
        if (!tok) {
            fprintf(stderr, "%s\n", err.msg);
            continue;
        }
        check_encode(tok, "a <l>", "[10,11]");
        check_encode(tok, "a <p>", "[10,3,15]");
        check_encode(tok, "<r> a", "[12,10]");
        check_encode(tok, "a<w>b", "[10,0,5]");
        check_encode(tok, "a <w> b", meta ? "[10,3,13,3,5]" : "[10,3,13,3,3,5]");
        check_encode(tok, "a<n>", meta ? "[10,14]" : "[10,0]");
        if (!meta)
            check_encode(tok, "a <n>", "[10,14]");
        CHECK_INT(idf2_tokenizer_find(tok, "<n>"), 14);
        idf2_tokenizer_free(tok);
    }
}

TEST(malformed_files_refused)
{
    static const struct {
        const char *vocab, *merges, *added, *extra;
        const char *why;
    } bad[] = {
        { MINI_VOCAB, "\"a x\"", "", "", "merge of a piece missing from the vocab" },
        { MINI_VOCAB, "\"a b c\"", "", "", "merge with three parts" },
        { MINI_VOCAB, "\"c a\"", "", "", "merge result missing from the vocab" },
        { "\"<unk>\":0,\"a\":0", "", "", "", "id used twice" },
        { "\"<unk>\":0,\"a\":-3", "", "", "", "negative id" },
        { "\"<unk>\":0,\"a\":1e9", "", "", "", "absurd id" },
        { "\"<unk>\":0,\"a\":100000", "", "", "", "sparse ids" },
        { "\"<unk>\":0,\"a\":1.5", "", "", "", "fractional id" },
        { MINI_VOCAB, "", "{\"id\":11,\"content\":\"\"}", "", "empty added token" },
        { MINI_VOCAB, "", "", ",\"dropout\":0.1", "BPE dropout" },
        { MINI_VOCAB, "", "", ",\"continuing_subword_prefix\":\"##\"", "WordPiece prefix" },
        { "\"a\":0", "", "", "", "unk_token missing from the vocab" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct vc_err err = { 0 };
        struct idf2_tokenizer *tok = NULL;
        char *json = mini_json(bad[i].vocab, bad[i].merges, bad[i].added, bad[i].extra);
        enum vc_status rc = load_mini(json, &tok, &err);
        if (rc != VC_EUSAGE || err.reason != VC_REASON_bad_tokenizer || tok) {
            fprintf(stderr, "not refused: %s (rc %d: %s)\n", bad[i].why, rc, err.msg);
            vc_test_failures++;
        }
        idf2_tokenizer_free(tok);
        free(json);
    }
    /* Metaspace layouts tokenizers would read differently: an unknown
     * scheme, another replacement, a normalizer besides the pre-tokenizer. */
    const char *layouts[] = {
        META_LAYOUT("sometimes", "false", SEQ_DECODER),
        "\"normalizer\":null,\"pre_tokenizer\":{\"type\":\"Metaspace\",\"replacement\":\"_\","
        "\"prepend_scheme\":\"first\"},\"decoder\":" SEQ_DECODER ",",
        "\"normalizer\":{\"type\":\"Replace\",\"pattern\":{\"String\":\" \"},\"content\":\"_\"},"
        "\"pre_tokenizer\":{\"type\":\"Metaspace\",\"replacement\":\"\\u2581\","
        "\"prepend_scheme\":\"first\"},\"decoder\":" SEQ_DECODER ",",
    };
    for (size_t i = 0; i < sizeof layouts / sizeof layouts[0]; i++) {
        struct vc_err err = { 0 };
        struct idf2_tokenizer *tok = NULL;
        char *json = layout_json(layouts[i], MINI_VOCAB, "", "", "");
        CHECK_INT(load_mini(json, &tok, &err), VC_EUSAGE);
        CHECK(tok == NULL);
        free(json);
    }
    /* Not JSON, JSON but not a tokenizer, and no normalizer nor
     * pre-tokenizer. */
    const char *junk[] = { "{", "[]", "{\"model\":{\"type\":\"BPE\",\"vocab\":{}}}" };
    for (size_t i = 0; i < 3; i++) {
        struct vc_err err = { 0 };
        struct idf2_tokenizer *tok = NULL;
        CHECK_INT(load_mini(junk[i], &tok, &err), VC_EUSAGE);
        CHECK(tok == NULL);
    }
    struct vc_err err = { 0 };
    struct idf2_tokenizer *tok = NULL;
    CHECK_INT(idf2_tokenizer_load("/nonexistent/tokenizer.json", &tok, &err), VC_EFATAL);
    CHECK(strstr(err.msg, "tokenizer") != NULL);
}

/* The vocabulary bench_mkcheckpoint and the demo generate holds the model
 * stages' prompt words whole, as a real 32k vocabulary does: counted by
 * hand, one piece per word and one per punctuation mark, and "Assistant"
 * after the newline of the chat template one piece without the space (the
 * text after an added token is its own segment and gets its own "▁"). */
TEST(generated_vocab_holds_prompt_words)
{
    cJSON *root = idf2_mk_tokenizer(32000, "/usr/share/dict/words");
    char *json = root ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    CHECK(json != NULL);
    if (!json)
        return;
    struct idf2_tokenizer *tok = NULL;
    struct vc_err err = { 0 };
    CHECK_INT(idf2_tokenizer_load_json(json, strlen(json), "generated", &tok, &err), VC_OK);
    static const struct {
        const char *text;
        size_t n;
    } cases[] = {
        { "Describe this image in one sentence.", 7 },
        { "Describe this image in detail.", 6 },
        { "What is written in this image? Transcribe the text exactly.", 12 },
        { "User:", 2 },
        { "\nAssistant:", 4 } /* the segment's prepended "▁", the newline byte */,
    };
    for (size_t i = 0; tok && i < sizeof cases / sizeof cases[0]; i++) {
        int32_t *ids = NULL;
        size_t n = 0;
        CHECK_INT(
            idf2_tokenizer_encode(tok, cases[i].text, strlen(cases[i].text), false, &ids, &n, &err),
            VC_OK);
        if (n != cases[i].n)
            fprintf(stderr, "\"%s\": %zu pieces, want %zu\n", cases[i].text, n, cases[i].n);
        CHECK(n == cases[i].n);
        free(ids);
    }
    idf2_tokenizer_free(tok);
    free(json);
}

#define TESTS(X)                                                                                   \
    X(fixture_encode_cases)                                                                        \
    X(fixture_decode_cases)                                                                        \
    X(fixture_lookups)                                                                             \
    X(fixture_set_specials)                                                                        \
    X(metaspace_layout_ids)                                                                        \
    X(metaspace_decoder)                                                                           \
    X(added_token_options)                                                                         \
    X(bpe_rank_order_and_ties)                                                                     \
    X(bpe_unknown_chars_fuse)                                                                      \
    X(ignore_merges_takes_whole_words)                                                             \
    X(added_tokens_leftmost_longest)                                                               \
    X(decode_byte_runs)                                                                            \
    X(decode_clean_up_spaces)                                                                      \
    X(malformed_files_refused)                                                                     \
    X(generated_vocab_holds_prompt_words)
TEST_MAIN(TESTS)
