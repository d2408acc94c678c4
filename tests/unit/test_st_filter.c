/* Unit tests of the filter stage: spec errors, image-text pairs kept and
 * rejected with the filter's name, score and threshold, and interleaved
 * documents rewritten the OBELICS way (failing images and paragraphs
 * removed, metadata kept aligned, the whole document rejected by the
 * document filters). */
#include "vc_test.h"

#include "core/img.h"
#include "core/sample.h"
#include "core/vc_mem.h"
#include "stages/st_filter.h"
#include "stages/stage.h"

#include <cjson/cJSON.h>
#include <stdlib.h>

static const char *const good1 =
    "The museum has just opened a new exhibition about the history of printing and early "
    "newspapers, and it is worth a visit.";
static const char *const good2 =
    "After the match, the players thanked the crowd and walked slowly back to the changing rooms "
    "before the long trip home.";

struct fixture {
    struct stage_limits limits;
    struct stage_ctx run;
    struct stage_task_ctx task;
    void *state;
    struct arena *arena;
    struct sample s;
};

static enum vc_status setup(struct fixture *fx, const char *cfg_json, struct vc_err *err)
{
    memset(fx, 0, sizeof *fx);
    stage_limits_default(&fx->limits);
    fx->run.limits = &fx->limits;
    fx->task.run = &fx->run;
    cJSON *cfg = cJSON_Parse(cfg_json);
    enum vc_status rc = st_filter_ops.create(cfg, &fx->run, &fx->state, err);
    cJSON_Delete(cfg);
    if (rc != VC_OK)
        return rc;
    CHECK_INT(st_filter_ops.task_begin(fx->state, &fx->task, err), VC_OK);
    fx->arena = arena_new(64 << 20);
    sample_init(&fx->s, fx->arena);
    return VC_OK;
}

static void teardown(struct fixture *fx)
{
    struct vc_err err;
    sample_fini(&fx->s);
    arena_free(fx->arena);
    CHECK_INT(st_filter_ops.task_end(fx->state, &fx->task, &err), VC_OK);
    st_filter_ops.destroy(fx->state);
}

/* A w x h PNG, left half black, right half orange (not uniform). */
static uint8_t *picture(uint32_t w, uint32_t h, size_t *size)
{
    struct img im = { w, h, 3, malloc((size_t)w * h * 3), 0 };
    for (uint32_t y = 0; y < h; y++)
        for (uint32_t x = 0; x < w; x++) {
            uint8_t *p = im.pixels + 3 * ((size_t)y * w + x);
            p[0] = x < w / 2 ? 0 : 230;
            p[1] = x < w / 2 ? 0 : 120;
            p[2] = x < w / 2 ? 0 : 20;
        }
    uint8_t *out = NULL;
    struct vc_err err;
    CHECK_INT(img_encode(&im, IMG_FORMAT_PNG, 90, &out, size, &err), VC_OK);
    free(im.pixels);
    return out;
}

static void add(struct fixture *fx, const char *name, const void *data, size_t n)
{
    struct vc_err err;
    CHECK_INT(sample_add_field(&fx->s, name, data, n, &err), VC_OK);
}

static void add_str(struct fixture *fx, const char *name, const char *text)
{
    add(fx, name, text, strlen(text));
}

static void add_picture(struct fixture *fx, const char *name, uint32_t w, uint32_t h)
{
    size_t n;
    uint8_t *png = picture(w, h, &n);
    add(fx, name, png, n);
    free(png);
}

static enum vc_status run(struct fixture *fx, struct vc_err *err)
{
    memset(&fx->task.verdict, 0, sizeof fx->task.verdict);
    return st_filter_ops.map(fx->state, &fx->s, &fx->task, err);
}

TEST(spec_errors_name_filter_and_key)
{
    struct fixture fx;
    struct vc_err err = { 0 };
    CHECK_INT(setup(&fx,
                    "{\"stage\": \"filter\", \"filters\": [{\"name\": \"img_width\", "
                    "\"minimum\": 3}]}",
                    &err),
              VC_EUSAGE);
    CHECK(strstr(err.msg, "stage 'filter'") && strstr(err.msg, "img_width") &&
          strstr(err.msg, "minimum"));
    CHECK_INT(setup(&fx, "{\"stage\": \"filter\", \"filter\": []}", &err), VC_EUSAGE);
    CHECK(strstr(err.msg, "filter") != NULL);
    CHECK_INT(setup(&fx, "{\"stage\": \"filter\", \"defaults\": 1}", &err), VC_EUSAGE);
    CHECK(strstr(err.msg, "defaults") != NULL);
    CHECK_INT(setup(&fx,
                    "{\"stage\": \"filter\", \"filters\": [{\"name\": \"cap_words\", \"min\": "
                    "\"3\"}]}",
                    &err),
              VC_EUSAGE);
    CHECK(strstr(err.msg, "cap_words") && strstr(err.msg, "min"));
}

TEST(pair_kept_with_scores)
{
    struct fixture fx;
    struct vc_err err;
    CHECK_INT(setup(&fx, "{\"stage\": \"filter\"}", &err), VC_OK);
    add_picture(&fx, "png", 320, 200);
    add_str(&fx, "txt", "A red bicycle leaning against a brick wall");
    add_str(&fx, "json", "{\"url\": \"https://example.org/photos/bike.png\"}");
    CHECK_INT(run(&fx, &err), VC_OK);
    cJSON *scores = cJSON_GetObjectItemCaseSensitive(fx.s.meta, "filter_scores");
    CHECK(cJSON_IsObject(scores));
    CHECK(cJSON_GetObjectItemCaseSensitive(scores, "img_width")->valuedouble == 320);
    CHECK(cJSON_GetObjectItemCaseSensitive(scores, "img_aspect")->valuedouble == 1.6);
    CHECK(cJSON_GetObjectItemCaseSensitive(scores, "cap_words")->valuedouble == 8);
    CHECK(cJSON_GetObjectItemCaseSensitive(scores, "img_url_ban")->valuedouble == 0);
    teardown(&fx);
}

TEST(pair_rejections)
{
    struct fixture fx;
    struct vc_err err;
    CHECK_INT(setup(&fx, "{\"stage\": \"filter\"}", &err), VC_OK);
    add_picture(&fx, "png", 480, 150);
    add_str(&fx, "txt", "A red bicycle leaning against a brick wall");
    CHECK_INT(run(&fx, &err), VC_REJECT);
    CHECK_STR(fx.task.verdict.filter, "img_aspect");
    CHECK(fx.task.verdict.has_score && fx.task.verdict.score == 3.2 &&
          fx.task.verdict.threshold == 2);
    CHECK_INT(fx.task.verdict.reason, VC_REASON_filtered);
    sample_fini(&fx.s);
    sample_init(&fx.s, fx.arena);

    add_picture(&fx, "png", 320, 200);
    add_str(&fx, "txt", "IMG_1234.jpg");
    CHECK_INT(run(&fx, &err), VC_REJECT);
    CHECK_STR(fx.task.verdict.filter, "cap_words"); /* 1 word, before the file-name check */
    sample_fini(&fx.s);
    sample_init(&fx.s, fx.arena);

    /* The URL ban reads the json's "url". */
    add_picture(&fx, "png", 320, 200);
    add_str(&fx, "txt", "A red bicycle leaning against a brick wall");
    add_str(&fx, "json", "{\"url\": \"https://example.org/widget/bike.png\"}");
    CHECK_INT(run(&fx, &err), VC_REJECT);
    CHECK_STR(fx.task.verdict.filter, "img_url_ban");
    teardown(&fx);

    /* Without a text field a sample is an image alone: no caption filter
     * runs.  An empty caption is judged. */
    CHECK_INT(setup(&fx,
                    "{\"stage\": \"filter\", \"defaults\": false, \"filters\": "
                    "[{\"name\": \"cap_chars\"}]}",
                    &err),
              VC_OK);
    add_picture(&fx, "png", 10, 10);
    CHECK_INT(run(&fx, &err), VC_OK);
    add_str(&fx, "caption", "");
    CHECK_INT(run(&fx, &err), VC_REJECT);
    CHECK_STR(fx.task.verdict.filter, "cap_chars");
    CHECK(fx.task.verdict.score == 0 && fx.task.verdict.threshold == 6);
    teardown(&fx);
}

/* Builds the json of a document: texts[i] / images[i] / metadata[i]. */
static char *document(const char *const *texts, const char *const *images, const char *const *src,
                      int n)
{
    cJSON *o = cJSON_CreateObject(), *t = cJSON_AddArrayToObject(o, "texts");
    cJSON *im = cJSON_AddArrayToObject(o, "images"), *meta = cJSON_CreateArray();
    for (int i = 0; i < n; i++) {
        cJSON_AddItemToArray(t, texts[i] ? cJSON_CreateString(texts[i]) : cJSON_CreateNull());
        cJSON_AddItemToArray(im, images[i] ? cJSON_CreateString(images[i]) : cJSON_CreateNull());
        cJSON *m = src[i] ? cJSON_CreateObject() : cJSON_CreateNull();
        if (src[i])
            cJSON_AddStringToObject(m, "src", src[i]);
        cJSON_AddItemToArray(meta, m);
    }
    char *meta_s = cJSON_PrintUnformatted(meta);
    cJSON_AddStringToObject(o, "metadata", meta_s);
    cJSON_AddStringToObject(o, "title", "kept as is");
    char *out = cJSON_PrintUnformatted(o);
    free(meta_s);
    cJSON_Delete(meta);
    cJSON_Delete(o);
    return out;
}

TEST(document_rewritten_obelics_way)
{
    struct fixture fx;
    struct vc_err err;
    CHECK_INT(setup(&fx, "{\"stage\": \"filter\"}", &err), VC_OK);
    char mixed[1024];
    snprintf(mixed, sizeof mixed, "too short\n\n%s", good2);
    const char *texts[] = { good1, NULL, mixed, NULL, "tiny", NULL };
    const char *images[] = { NULL, "0.png", NULL, "1.png", NULL, "2.png" };
    const char *src[] = { NULL, "https://example.org/a.png",
                          NULL, "https://example.org/site-logo.png",
                          NULL, "https://example.org/c.png" };
    char *json = document(texts, images, src, 6);
    add_str(&fx, "json", json);
    free(json);
    add_picture(&fx, "0.png", 300, 200);
    add_picture(&fx, "1.png", 300, 200); /* banned URL */
    add_picture(&fx, "2.png", 100, 100); /* too small */
    CHECK_INT(run(&fx, &err), VC_OK);

    /* Images 1 and 2 and the "tiny" node leave all three lists; the
     * short paragraph leaves its node. */
    CHECK(sample_field_get(&fx.s, "0.png") != NULL);
    CHECK(sample_field_get(&fx.s, "1.png") == NULL);
    CHECK(sample_field_get(&fx.s, "2.png") == NULL);
    struct sample_field *jf = sample_field_get(&fx.s, "json");
    cJSON *doc = cJSON_ParseWithLength((const char *)jf->data, jf->size);
    cJSON *t = cJSON_GetObjectItemCaseSensitive(doc, "texts");
    cJSON *im = cJSON_GetObjectItemCaseSensitive(doc, "images");
    CHECK_INT(cJSON_GetArraySize(t), 3);
    CHECK_INT(cJSON_GetArraySize(im), 3);
    CHECK_STR(cJSON_GetArrayItem(t, 0)->valuestring, good1);
    CHECK_STR(cJSON_GetArrayItem(im, 1)->valuestring, "0.png");
    CHECK_STR(cJSON_GetArrayItem(t, 2)->valuestring, good2);
    cJSON *meta = cJSON_Parse(cJSON_GetObjectItemCaseSensitive(doc, "metadata")->valuestring);
    CHECK_INT(cJSON_GetArraySize(meta), 3);
    CHECK_STR(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(meta, 1), "src")->valuestring,
              "https://example.org/a.png");
    CHECK_STR(cJSON_GetObjectItemCaseSensitive(doc, "title")->valuestring, "kept as is");
    cJSON_Delete(meta);
    cJSON_Delete(doc);

    cJSON *removed = cJSON_GetObjectItemCaseSensitive(fx.s.meta, "filter_removed");
    CHECK(cJSON_GetObjectItemCaseSensitive(removed, "img_url_ban")->valuedouble == 1);
    CHECK(cJSON_GetObjectItemCaseSensitive(removed, "img_width")->valuedouble == 1);
    CHECK(cJSON_GetObjectItemCaseSensitive(removed, "par_word_count")->valuedouble == 2);
    cJSON *scores = cJSON_GetObjectItemCaseSensitive(fx.s.meta, "filter_scores");
    CHECK(cJSON_GetObjectItemCaseSensitive(scores, "doc_images")->valuedouble == 1);
    CHECK(cJSON_GetObjectItemCaseSensitive(scores, "img_width") == NULL);
    teardown(&fx);
}

TEST(document_rejected_whole)
{
    struct fixture fx;
    struct vc_err err;
    CHECK_INT(setup(&fx, "{\"stage\": \"filter\"}", &err), VC_OK);
    /* Its only image is too small: no image left, doc_images rejects. */
    const char *texts[] = { good1, NULL, good2 };
    const char *images[] = { NULL, "0.png", NULL };
    const char *src[] = { NULL, NULL, NULL };
    char *json = document(texts, images, src, 3);
    add_str(&fx, "json", json);
    free(json);
    add_picture(&fx, "0.png", 100, 100);
    CHECK_INT(run(&fx, &err), VC_REJECT);
    CHECK_STR(fx.task.verdict.filter, "doc_images");
    CHECK(fx.task.verdict.score == 0 && fx.task.verdict.threshold == 1);
    sample_fini(&fx.s);
    sample_init(&fx.s, fx.arena);

    /* French text: the English stop-word ratio removes its paragraph, and
     * the document, left without text, fails its word count. */
    const char *fr[] = { "Le conseil municipal se réunira de nouveau jeudi prochain pour discuter "
                         "du budget de la nouvelle bibliothèque.",
                         NULL };
    const char *fr_images[] = { NULL, "0.png" };
    json = document(fr, fr_images, src, 2);
    add_str(&fx, "json", json);
    free(json);
    add_picture(&fx, "0.png", 300, 200);
    CHECK_INT(run(&fx, &err), VC_REJECT);
    CHECK_STR(fx.task.verdict.filter, "doc_word_count");
    teardown(&fx);

    /* Without the paragraph filters the language filter is what rejects. */
    CHECK_INT(setup(&fx,
                    "{\"stage\": \"filter\", \"defaults\": false, \"filters\": "
                    "[{\"name\": \"doc_lang\"}]}",
                    &err),
              VC_OK);
    json = document(fr, fr_images, src, 2);
    add_str(&fx, "json", json);
    free(json);
    add_picture(&fx, "0.png", 300, 200);
    CHECK_INT(run(&fx, &err), VC_REJECT);
    CHECK_STR(fx.task.verdict.filter, "doc_lang");
    CHECK(fx.task.verdict.score < 0.01 && fx.task.verdict.threshold == 0.8);
    teardown(&fx);
}

#define TESTS(X)                                                                                   \
    X(spec_errors_name_filter_and_key)                                                             \
    X(pair_kept_with_scores)                                                                       \
    X(pair_rejections)                                                                             \
    X(document_rewritten_obelics_way)                                                              \
    X(document_rejected_whole)
TEST_MAIN(TESTS)
