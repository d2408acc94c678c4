/* Unit tests of synth/safetensors and synth/idf2_weights: files crafted
 * byte by byte here (good ones read back exactly, each malformed one a
 * clear error of the right kind), crafted sharded folders (missing shard,
 * wrong index), the fixture checkpoint against its own index and config,
 * F32 and F16 re-encodings of it through the converting loader, and the
 * bf16 cache. */
#include "vc_test.h"

#include "synth/idf2_config.h"
#include "synth/idf2_weights.h"
#include "synth/safetensors.h"

#include <cjson/cJSON.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define TINY "idefics2-tiny"

/* ---- crafting files ------------------------------------------------------- */

/* 8-byte little-endian length + header + data, as a malloc'd buffer. */
static unsigned char *st_craft(const char *header, const void *data, size_t data_len, size_t *size)
{
    size_t h = strlen(header);
    *size = 8 + h + data_len;
    unsigned char *buf = malloc(*size);
    for (int i = 0; i < 8; i++)
        buf[i] = (unsigned char)((uint64_t)h >> (8 * i));
    memcpy(buf + 8, header, h);
    if (data_len)
        memcpy(buf + 8 + h, data, data_len);
    return buf;
}

static void st_craft_file(const char *path, const char *header, const void *data, size_t data_len)
{
    size_t size;
    unsigned char *buf = st_craft(header, data, data_len, &size);
    CHECK(vc_test_write_file(path, buf, size) == 0);
    free(buf);
}

/* Opens the crafted bytes from memory and from a file; both must fail with
 * `reason` and a message containing `needle`. */
static void expect_bad(const char *header, const void *data, size_t data_len, enum vc_reason reason,
                       const char *needle)
{
    size_t size;
    unsigned char *buf = st_craft(header, data, data_len, &size);
    struct st_file *f = NULL;
    struct vc_err err = { 0 };
    CHECK(st_file_open_mem(buf, size, "crafted", &f, &err) < 0);
    CHECK(f == NULL);
    if (err.reason != reason || !strstr(err.msg, needle)) {
        fprintf(stderr, "  header %.120s\n  got [%s] %s, expected [%s] ...%s...\n", header,
                vc_reason_name(err.reason), err.msg, vc_reason_name(reason), needle);
        vc_test_failures++;
    }
    char path[4200];
    snprintf(path, sizeof path, "%s/bad.safetensors", vc_test_tmpdir());
    CHECK(vc_test_write_file(path, buf, size) == 0);
    struct vc_err err2 = { 0 };
    CHECK(st_file_open(path, &f, &err2) < 0);
    CHECK_INT(err2.reason, reason);
    free(buf);
}

/* ---- single files ---------------------------------------------------------- */

TEST(good_file_round_trip)
{
    /* a: F32 [2,3] = 0..5; b: BF16 [4] = 1, -2, 0.5, 3.140625; c: I64 [2];
     * h: F16 [4] = 1, -2, 2^-24 (smallest subnormal), +inf.  Written out of
     * name order and out of offset order, header padded with spaces. */
    unsigned char data[24 + 8 + 16 + 8];
    float a[6] = { 0, 1, 2, 3, 4, 5 };
    uint16_t b[4] = { 0x3f80, 0xc000, 0x3f00, 0x4049 };
    int64_t c[2] = { -7, 1LL << 40 };
    uint16_t h[4] = { 0x3c00, 0xc000, 0x0001, 0x7c00 };
    memcpy(data + 8, a, 24);
    memcpy(data, b, 8);
    memcpy(data + 32, c, 16);
    memcpy(data + 48, h, 8);
    const char *hdr = "{\"c\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[32,48]},"
                      "\"__metadata__\":{\"format\":\"pt\"},"
                      "\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[8,32]},"
                      "\"h\":{\"shape\":[4],\"dtype\":\"F16\",\"data_offsets\":[48,56]},"
                      "\"b\":{\"dtype\":\"BF16\",\"shape\":[4],\"data_offsets\":[0,8]}}     ";
    char path[4200];
    snprintf(path, sizeof path, "%s/good.safetensors", vc_test_tmpdir());
    st_craft_file(path, hdr, data, sizeof data);
    struct st_file *f = NULL;
    struct vc_err err = { 0 };
    CHECK_INT(st_file_open(path, &f, &err), VC_OK);
    if (!f) {
        fprintf(stderr, "%s\n", err.msg);
        return;
    }
    CHECK_INT(st_file_count(f), 4);
    CHECK_STR(st_file_at(f, 0)->name, "a"); /* sorted by name */
    CHECK_STR(st_file_at(f, 3)->name, "h");
    CHECK(st_file_at(f, 4) == NULL);
    const struct st_tensor *ta = st_file_find(f, "a"), *tb = st_file_find(f, "b");
    const struct st_tensor *tc = st_file_find(f, "c"), *th = st_file_find(f, "h");
    CHECK(st_file_find(f, "__metadata__") == NULL);
    CHECK(st_file_find(f, "z") == NULL);
    CHECK(ta && tb && tc && th);
    if (!ta || !tb || !tc || !th) {
        st_file_close(f);
        return;
    }
    CHECK_INT(ta->dtype, ST_F32);
    CHECK_INT(ta->n_dims, 2);
    CHECK_INT(ta->shape[0], 2);
    CHECK_INT(ta->shape[1], 3);
    CHECK_INT(ta->n_elems, 6);
    CHECK_INT(ta->n_bytes, 24);
    CHECK(memcmp(ta->data, a, 24) == 0);
    CHECK_NEAR(st_get_f32(ta, 5), 5.0, 0);
    CHECK_NEAR(st_get_f32(tb, 0), 1.0, 0);
    CHECK_NEAR(st_get_f32(tb, 1), -2.0, 0);
    CHECK_NEAR(st_get_f32(tb, 2), 0.5, 0);
    CHECK_NEAR(st_get_f32(tb, 3), 3.140625, 0);
    CHECK_INT(tc->dtype, ST_I64);
    int64_t c1;
    memcpy(&c1, (const unsigned char *)tc->data + 8, 8);
    CHECK_INT(c1, 1LL << 40);
    CHECK_NEAR(st_get_f32(th, 0), 1.0, 0);
    CHECK_NEAR(st_get_f32(th, 1), -2.0, 0);
    CHECK_NEAR(st_get_f32(th, 2), ldexp(1.0, -24), 0);
    CHECK(isinf(st_get_f32(th, 3)));
    st_file_close(f);
}

TEST(scalar_and_empty_tensors)
{
    /* A 0-d tensor has one element; a [0, 5] tensor has none and takes no
     * bytes, so it may sit at any offset. */
    float one = 42.0f;
    const char *hdr = "{\"s\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]},"
                      "\"e\":{\"dtype\":\"F32\",\"shape\":[0,5],\"data_offsets\":[4,4]}}";
    size_t size;
    unsigned char *buf = st_craft(hdr, &one, 4, &size);
    struct st_file *f = NULL;
    struct vc_err err = { 0 };
    CHECK_INT(st_file_open_mem(buf, size, "mem", &f, &err), VC_OK);
    if (f) {
        CHECK_INT(st_file_find(f, "s")->n_elems, 1);
        CHECK_INT(st_file_find(f, "s")->n_dims, 0);
        CHECK_NEAR(st_get_f32(st_file_find(f, "s"), 0), 42.0, 0);
        CHECK_INT(st_file_find(f, "e")->n_elems, 0);
        st_file_close(f);
    }
    free(buf);
}

TEST(truncated_and_header_length)
{
    unsigned char five[5] = { 1, 2, 3, 4, 5 };
    struct st_file *f = NULL;
    struct vc_err err = { 0 };
    CHECK(st_file_open_mem(five, 5, "five", &f, &err) < 0);
    CHECK_INT(err.reason, VC_REASON_truncated);
    CHECK(strstr(err.msg, "truncated") != NULL);

    /* Header length 1000 in a 40-byte file. */
    unsigned char past[40] = { 0xe8, 0x03 };
    memcpy(past + 8, "{}", 2);
    CHECK(st_file_open_mem(past, sizeof past, "past", &f, &err) < 0);
    CHECK_INT(err.reason, VC_REASON_truncated);
    CHECK(strstr(err.msg, "past the end") != NULL);

    /* 2^63: would wrap any 8 + H sum. */
    unsigned char huge[16] = { 0, 0, 0, 0, 0, 0, 0, 0x80 };
    CHECK(st_file_open_mem(huge, sizeof huge, "huge", &f, &err) < 0);
    CHECK(strstr(err.msg, "100 MB") != NULL);

    /* A real header whose last tensor's data was cut off. */
    float d[3] = { 1, 2, 3 };
    expect_bad("{\"x\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", d, 12,
               VC_REASON_bad_checkpoint, "out of range");
    /* Empty file on disk. */
    char path[4200];
    snprintf(path, sizeof path, "%s/empty.safetensors", vc_test_tmpdir());
    CHECK(vc_test_write_file(path, "", 0) == 0);
    CHECK(st_file_open(path, &f, &err) < 0);
    CHECK_INT(err.reason, VC_REASON_truncated);
    CHECK(st_file_open("/nonexistent/x.safetensors", &f, &err) < 0);
    CHECK_INT(err.reason, VC_REASON_io_error);
}

TEST(offsets_overlap_gap_range)
{
    unsigned char d[16] = { 0 };
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
               "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
               d, 12, VC_REASON_bad_checkpoint, "overlaps");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
               "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}",
               d, 12, VC_REASON_bad_checkpoint, "gap");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", d, 8,
               VC_REASON_bad_checkpoint, "trailing bytes");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,4]}}", d, 8,
               VC_REASON_bad_checkpoint, "begin after end");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[1000000,1000004]}}", d, 8,
               VC_REASON_bad_checkpoint, "out of range");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", d, 4,
               VC_REASON_bad_checkpoint, "data_offsets");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", d, 4,
               VC_REASON_bad_checkpoint, "data_offsets");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4.5]}}", d, 4,
               VC_REASON_bad_checkpoint, "data_offsets");
}

TEST(dtype_and_shape_errors)
{
    unsigned char d[64] = { 0 };
    expect_bad("{\"a\":{\"dtype\":\"F8_E4M3\",\"shape\":[4],\"data_offsets\":[0,4]}}", d, 4,
               VC_REASON_unsupported_format, "unknown dtype 'F8_E4M3'");
    expect_bad("{\"a\":{\"dtype\":7,\"shape\":[4],\"data_offsets\":[0,4]}}", d, 4,
               VC_REASON_unsupported_format, "unknown dtype");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", d, 8,
               VC_REASON_bad_checkpoint, "does not match shape");
    expect_bad("{\"a\":{\"dtype\":\"BF16\",\"shape\":[2,2],\"data_offsets\":[0,16]}}", d, 16,
               VC_REASON_bad_checkpoint, "does not match shape");
    /* 2^40 x 2^40 elements: the product overflows. */
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1099511627776,1099511627776],"
               "\"data_offsets\":[0,4]}}",
               d, 4, VC_REASON_bad_checkpoint, "absurd dimensions");
    /* 2^62 elements of 4 bytes: the byte count overflows. */
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904],"
               "\"data_offsets\":[0,4]}}",
               d, 4, VC_REASON_bad_checkpoint, "dimension");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}",
               d, 4, VC_REASON_bad_checkpoint, "more than 8 dimensions");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", d, 4,
               VC_REASON_bad_checkpoint, "dimension");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", d, 4,
               VC_REASON_bad_checkpoint, "dimension");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":\"4\",\"data_offsets\":[0,4]}}", d, 4,
               VC_REASON_bad_checkpoint, "shape is not an array");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", d, 4, VC_REASON_bad_checkpoint,
               "lacks");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"x\":1}}", d, 4,
               VC_REASON_bad_checkpoint, "unknown or repeated field");
    expect_bad("{\"a\":[1,2]}", d, 4, VC_REASON_bad_checkpoint, "not an object");
}

TEST(header_json_errors)
{
    unsigned char d[8] = { 0 };
    expect_bad("{\"a\":{\"dtype\":\"F32\",", d, 4, VC_REASON_json_invalid, "not valid JSON");
    expect_bad("[1,2,3]", d, 0, VC_REASON_json_invalid, "not a JSON object");
    expect_bad("{}  x", d, 0, VC_REASON_json_invalid, "after the JSON object");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
               "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
               d, 8, VC_REASON_bad_checkpoint, "defined twice");
    expect_bad("{\"__metadata__\":{\"format\":1}}", d, 0, VC_REASON_bad_checkpoint, "not a string");
    /* A NUL inside the header would end the JSON text early. */
    size_t size;
    unsigned char *buf = st_craft("{}      ", NULL, 0, &size);
    buf[10] = 0;
    struct st_file *f = NULL;
    struct vc_err err = { 0 };
    CHECK(st_file_open_mem(buf, size, "nul", &f, &err) < 0);
    CHECK(strstr(err.msg, "NUL") != NULL);
    free(buf);
    /* An empty header object is a valid file with no tensors. */
    buf = st_craft("{}", NULL, 0, &size);
    CHECK_INT(st_file_open_mem(buf, size, "empty", &f, &err), VC_OK);
    if (f) {
        CHECK_INT(st_file_count(f), 0);
        st_file_close(f);
    }
    free(buf);
}

/* ---- sharded sets ----------------------------------------------------------- */

/* Two shards: s1 holds a (F32 [2]) and b (BF16 [2]); s2 holds c (F32 [1]). */
static const char *make_sharded(const char *index)
{
    const char *dir = vc_test_tmpdir();
    char path[4200];
    float ab[2] = { 1.5f, -3.0f }, c = 7.0f;
    uint16_t bb[2] = { 0x4000, 0x4040 }; /* 2, 3 */
    unsigned char d1[12];
    memcpy(d1, ab, 8);
    memcpy(d1 + 8, bb, 4);
    snprintf(path, sizeof path, "%s/model-00001-of-00002.safetensors", dir);
    st_craft_file(path,
                  "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                  "\"b\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[8,12]}}",
                  d1, sizeof d1);
    snprintf(path, sizeof path, "%s/model-00002-of-00002.safetensors", dir);
    st_craft_file(path, "{\"c\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", &c, 4);
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    CHECK(vc_test_write_file(path, index, strlen(index)) == 0);
    return dir;
}

#define S1 "\"model-00001-of-00002.safetensors\""
#define S2 "\"model-00002-of-00002.safetensors\""

static void expect_bad_index(const char *index, const char *needle)
{
    const char *dir = make_sharded(index);
    struct st_set *s = NULL;
    struct vc_err err = { 0 };
    CHECK(st_set_open(dir, &s, &err) < 0);
    CHECK(s == NULL);
    if (!strstr(err.msg, needle)) {
        fprintf(stderr, "  index %s\n  got: %s\n  expected ...%s...\n", index, err.msg, needle);
        vc_test_failures++;
    }
}

TEST(sharded_set_good)
{
    const char *dir = make_sharded("{\"metadata\":{\"total_size\":16},\"weight_map\":{"
                                   "\"a\":" S1 ",\"b\":" S1 ",\"c\":" S2 "}}");
    struct st_set *s = NULL;
    struct vc_err err = { 0 };
    CHECK_INT(st_set_open(dir, &s, &err), VC_OK);
    if (!s) {
        fprintf(stderr, "%s\n", err.msg);
        return;
    }
    CHECK_INT(st_set_count(s), 3);
    CHECK_STR(st_set_at(s, 2)->name, "c");
    CHECK_NEAR(st_get_f32(st_set_find(s, "a"), 1), -3.0, 0);
    CHECK_NEAR(st_get_f32(st_set_find(s, "b"), 1), 3.0, 0);
    CHECK_NEAR(st_get_f32(st_set_find(s, "c"), 0), 7.0, 0);
    CHECK(st_set_find(s, "d") == NULL);
    st_set_close(s);
    /* A total_size that is not the tensor bytes (here the shard files'
     * sizes, as some conversion scripts write it) is ignored, as
     * transformers ignores it. */
    dir = make_sharded("{\"metadata\":{\"total_size\":300},\"weight_map\":{"
                       "\"a\":" S1 ",\"b\":" S1 ",\"c\":" S2 "}}");
    CHECK_INT(st_set_open(dir, &s, &err), VC_OK);
    CHECK(s && st_set_count(s) == 3);
    st_set_close(s);
}

TEST(sharded_set_errors)
{
    /* A shard named by the index is not there. */
    expect_bad_index("{\"weight_map\":{\"a\":" S1 ",\"b\":" S1 ",\"c\":" S2
                     ",\"d\":\"model-00003-of-00003.safetensors\"}}",
                     "model-00003-of-00003.safetensors' named by");
    /* Wrong index: c said to be in shard 1. */
    expect_bad_index("{\"weight_map\":{\"a\":" S1 ",\"b\":" S1 ",\"c\":" S1 "}}",
                     "tensor 'c' is not in shard");
    /* Wrong index: a tensor of the shards is not listed. */
    expect_bad_index("{\"weight_map\":{\"a\":" S1 ",\"c\":" S2 "}}", "lists 2 tensors");
    /* Wrong index: a name that no shard holds. */
    expect_bad_index("{\"weight_map\":{\"a\":" S1 ",\"b\":" S1 ",\"c\":" S2 ",\"zz\":" S2 "}}",
                     "tensor 'zz' is not in shard");
    /* Wrong index: a name listed twice. */
    expect_bad_index("{\"weight_map\":{\"a\":" S1 ",\"b\":" S1 ",\"c\":" S2 ",\"a\":" S1 "}}",
                     "listed twice");
    expect_bad_index("{\"weight_map\":{\"a\":\"../model-00001-of-00002.safetensors\"}}",
                     "invalid shard file name");
    expect_bad_index("{\"weight_map\":[]}", "weight_map");
    expect_bad_index("not json", "weight_map");
    /* The same tensor stored in two shards (and listed once). */
    const char *dir = make_sharded("{\"weight_map\":{\"a\":" S1 ",\"b\":" S1 ",\"c\":" S2 "}}");
    char path[4200];
    float two[2] = { 0, 0 };
    snprintf(path, sizeof path, "%s/model-00002-of-00002.safetensors", dir);
    st_craft_file(path,
                  "{\"c\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                  "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
                  two, 8);
    struct st_set *s = NULL;
    struct vc_err err = { 0 };
    CHECK(st_set_open(dir, &s, &err) < 0);
    CHECK(strstr(err.msg, "stored in two shards") != NULL);
    /* A folder with no weights at all. */
    CHECK(st_set_open(vc_test_tmpdir(), &s, &err) < 0);
    CHECK(strstr(err.msg, "no model.safetensors") != NULL);
    /* A broken shard is reported as itself, naming the file. */
    dir = make_sharded("{\"weight_map\":{\"a\":" S1 ",\"b\":" S1 ",\"c\":" S2 "}}");
    snprintf(path, sizeof path, "%s/model-00002-of-00002.safetensors", dir);
    CHECK(vc_test_write_file(path, "abc", 3) == 0);
    CHECK(st_set_open(dir, &s, &err) < 0);
    CHECK(strstr(err.msg, "model-00002-of-00002.safetensors") != NULL);
    CHECK_INT(err.reason, VC_REASON_truncated);
}

/* ---- the fixture checkpoint -------------------------------------------------- */

TEST(fixture_index_and_shapes)
{
    struct st_set *s = NULL;
    struct vc_err err = { 0 };
    CHECK_INT(st_set_open(vc_test_fixture(TINY), &s, &err), VC_OK);
    if (!s) {
        fprintf(stderr, "%s\n", err.msg);
        return;
    }
    size_t size;
    char path[4200];
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", vc_test_fixture(TINY));
    char *json = (char *)vc_test_read_file(path, &size);
    CHECK(json != NULL);
    if (!json)
        return;
    json = realloc(json, size + 1);
    json[size] = 0;
    cJSON *root = cJSON_Parse(json);
    const cJSON *map = cJSON_GetObjectItem(root, "weight_map");
    int listed = 0;
    for (const cJSON *e = map ? map->child : NULL; e; e = e->next, listed++) {
        const struct st_tensor *t = st_set_find(s, e->string);
        if (!t) {
            fprintf(stderr, "  %s not found\n", e->string);
            vc_test_failures++;
            continue;
        }
        CHECK_INT(t->dtype, ST_BF16); /* README: weights are bfloat16 */
    }
    CHECK_INT(listed, (int)st_set_count(s));
    CHECK(listed > 80);
    /* Shapes against config.json (README: vision 48 wide, 2 layers, patch
     * 14, image 84; perceiver 8 latents x 4 heads x 12; text 64 wide,
     * vocab 579, 4 heads of 16, 2 kv heads, MLP 128). */
    struct {
        const char *name;
        int n;
        int64_t d[4];
    } want[] = {
        { "model.vision_model.embeddings.patch_embedding.weight", 4, { 48, 3, 14, 14 } },
        { "model.vision_model.embeddings.position_embedding.weight", 2, { 36, 48 } },
        { "model.vision_model.encoder.layers.1.mlp.fc1.weight", 2, { 96, 48 } },
        { "model.connector.modality_projection.down_proj.weight", 2, { 64, 128 } },
        { "model.connector.perceiver_resampler.latents", 2, { 8, 64 } },
        { "model.connector.perceiver_resampler.layers.1.self_attn.q_proj.weight", 2, { 48, 64 } },
        { "model.connector.perceiver_resampler.layers.0.self_attn.k_proj.weight", 2, { 24, 64 } },
        { "model.connector.perceiver_resampler.layers.0.mlp.up_proj.weight", 2, { 256, 64 } },
        { "model.text_model.embed_tokens.weight", 2, { 579, 64 } },
        { "model.text_model.layers.2.self_attn.v_proj.weight", 2, { 32, 64 } },
        { "model.text_model.layers.2.mlp.down_proj.weight", 2, { 64, 128 } },
        { "lm_head.weight", 2, { 579, 64 } },
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const struct st_tensor *t = st_set_find(s, want[i].name);
        CHECK(t != NULL);
        if (!t)
            continue;
        CHECK_INT(t->n_dims, want[i].n);
        for (int k = 0; k < want[i].n; k++)
            CHECK_INT(t->shape[k], want[i].d[k]);
    }
    cJSON_Delete(root);
    free(json);
    st_set_close(s);
}

static struct idf2_config tiny_config(void)
{
    struct idf2_config cfg;
    struct vc_err err = { 0 };
    if (idf2_config_load_dir(vc_test_fixture(TINY), &cfg, &err) < 0) {
        fprintf(stderr, "%s\n", err.msg);
        vc_test_failures++;
    }
    return cfg;
}

/* Every matrix and vector of w equals the stored tensor, element by
 * element, widened from the checkpoint (bf16 rounding when `bf16`). */
static void check_weights_equal_fixture(const struct idf2_weights *w, const struct st_set *s)
{
    struct {
        const char *name;
        const struct idf2_w *m;
        const float *v;
    } probe[] = {
        { "model.vision_model.embeddings.patch_embedding.weight", &w->vision.patch, NULL },
        { "model.vision_model.embeddings.position_embedding.weight", NULL, w->vision.pos },
        { "model.vision_model.encoder.layers.1.self_attn.out_proj.bias", NULL,
          w->vision.layers[1].o_b },
        { "model.vision_model.encoder.layers.0.mlp.fc2.weight", &w->vision.layers[0].fc2, NULL },
        { "model.connector.perceiver_resampler.latents", NULL, w->connector.latents },
        { "model.connector.perceiver_resampler.layers.1.mlp.gate_proj.weight",
          &w->connector.layers[1].gate, NULL },
        { "model.connector.perceiver_resampler.norm.weight", NULL, w->connector.norm },
        { "model.text_model.layers.2.self_attn.o_proj.weight", &w->text.layers[2].o, NULL },
        { "model.text_model.layers.0.input_layernorm.weight", NULL, w->text.layers[0].attn_norm },
        { "model.text_model.embed_tokens.weight", &w->text.embed, NULL },
        { "lm_head.weight", &w->text.lm_head, NULL },
    };
    for (size_t i = 0; i < sizeof probe / sizeof probe[0]; i++) {
        const struct st_tensor *t = st_set_find(s, probe[i].name);
        if (!t) {
            vc_test_failures++;
            continue;
        }
        int bad = 0;
        for (int64_t k = 0; k < t->n_elems; k++) {
            float want = st_get_f32(t, k), got;
            if (probe[i].v) {
                got = probe[i].v[k];
            } else if (probe[i].m->fmt == IDF2_WF_F32) {
                got = ((const float *)probe[i].m->data)[k];
            } else {
                got = st_bf16_to_f32(((const uint16_t *)probe[i].m->data)[k]);
                want = st_bf16_to_f32(st_f32_to_bf16(want));
            }
            bad += got != want;
        }
        if (probe[i].m)
            CHECK_INT(probe[i].m->rows * probe[i].m->cols, t->n_elems);
        if (bad) {
            fprintf(stderr, "  %s: %d elements differ\n", probe[i].name, bad);
            vc_test_failures++;
        }
    }
}

TEST(fixture_weights_both_dtypes)
{
    struct idf2_config cfg = tiny_config();
    struct st_set *s = NULL;
    struct vc_err err = { 0 };
    CHECK_INT(st_set_open(vc_test_fixture(TINY), &s, &err), VC_OK);
    if (!s)
        return;
    for (int k = 0; k < 2; k++) {
        struct idf2_weights *w = NULL;
        struct idf2_weights_opts o = { k ? ST_BF16 : ST_F32, IDF2_CACHE_OFF };
        CHECK_INT(idf2_weights_load(vc_test_fixture(TINY), &cfg.model, &o, &w, &err), VC_OK);
        if (!w) {
            fprintf(stderr, "%s\n", err.msg);
            continue;
        }
        check_weights_equal_fixture(w, s);
        CHECK_INT(w->vision.patch.rows, 48);
        CHECK_INT(w->vision.patch.cols, 3 * 14 * 14);
        CHECK_INT(w->text.layers[1].k.rows, 32);
        CHECK_INT(w->connector.mp_gate.rows, 128);
        CHECK_INT(w->connector.mp_gate.cols, 48);
        CHECK(w->text.lm_head.data != w->text.embed.data);
        CHECK_INT(w->from_cache, 0);
        if (k == 0) {
            /* Everything widened: 782688 bf16 bytes -> twice that. */
            CHECK_INT(w->bytes_mapped, 0);
            CHECK_INT(w->bytes_owned, 2 * 782688);
        } else {
            /* Matrices in place (zero copy), only vectors widened. */
            const struct st_tensor *q =
                st_set_find(s, "model.text_model.layers.0.self_attn.q_proj.weight");
            CHECK(q != NULL);
            CHECK(w->bytes_mapped + w->bytes_owned / 2 == 782688);
            CHECK(w->bytes_owned < 782688 / 20);
            CHECK(q && memcmp(w->text.layers[0].q.data, q->data, q->n_bytes) == 0);
        }
        idf2_weights_free(w);
    }
    st_set_close(s);
    idf2_config_release(&cfg);
    CHECK(idf2_peak_rss_bytes() > 1000000);
    CHECK(idf2_rss_bytes() > 100000);
    CHECK(idf2_rss_bytes() <= idf2_peak_rss_bytes() + 4096 * 16);
}

/* ---- re-encoded copies of the fixture ---------------------------------------------- */

/* Writes every tensor of the fixture as one model.safetensors in `dtype`
 * (F32, F16 or BF16), applying `edit` to one tensor: "drop", "transpose"
 * (swap a 2-d shape) or "i64" (store it as I64 zeros).  Config files are
 * copied alongside. */
static void write_reencoded(const char *dir, enum st_dtype dtype, const char *edit_name,
                            const char *edit)
{
    struct st_set *s = NULL;
    struct vc_err err = { 0 };
    if (st_set_open(vc_test_fixture(TINY), &s, &err) < 0) {
        vc_test_failures++;
        return;
    }
    size_t n = st_set_count(s), cap = 256 + n * 256, len = 0, off = 0, total = 0;
    for (size_t i = 0; i < n; i++)
        total += (size_t)st_set_at(s, i)->n_elems * 8;
    char *hdr = malloc(cap);
    unsigned char *data = malloc(total);
    len += (size_t)snprintf(hdr, cap, "{\"__metadata__\":{\"format\":\"pt\"}");
    for (size_t i = 0; i < n; i++) {
        const struct st_tensor *t = st_set_at(s, i);
        bool is_edit = edit_name && strcmp(t->name, edit_name) == 0;
        if (is_edit && strcmp(edit, "drop") == 0)
            continue;
        enum st_dtype dt = is_edit && strcmp(edit, "i64") == 0 ? ST_I64 : dtype;
        size_t es = st_dtype_size(dt);
        int64_t d0 = t->shape[0], d1 = t->shape[1];
        if (is_edit && strcmp(edit, "transpose") == 0) {
            d0 = t->shape[1];
            d1 = t->shape[0];
        }
        len += (size_t)snprintf(hdr + len, cap - len, ",\"%s\":{\"dtype\":\"%s\",\"shape\":[",
                                t->name, st_dtype_name(dt));
        for (int k = 0; k < t->n_dims; k++)
            len += (size_t)snprintf(hdr + len, cap - len, "%s%lld", k ? "," : "",
                                    (long long)(k == 0   ? d0
                                                : k == 1 ? d1
                                                         : t->shape[k]));
        len += (size_t)snprintf(hdr + len, cap - len, "],\"data_offsets\":[%zu,%zu]}", off,
                                off + (size_t)t->n_elems * es);
        for (int64_t k = 0; k < t->n_elems; k++) {
            float v = st_get_f32(t, k);
            unsigned char *p = data + off + (size_t)k * es;
            if (dt == ST_F32) {
                memcpy(p, &v, 4);
            } else if (dt == ST_I64) {
                memset(p, 0, 8);
            } else if (dt == ST_BF16) {
                uint16_t h = st_f32_to_bf16(v);
                memcpy(p, &h, 2);
            } else {
                /* F16: the fixture's bf16 values have 8 significant
                 * bits, so the half is built by hand: normal range by
                 * bit moves, subnormals as multiples of 2^-24, and the
                 * rare values below that flushed to zero (counted). */
                uint32_t u;
                memcpy(&u, &v, 4);
                int e = (int)((u >> 23) & 0xff) - 127 + 15;
                uint16_t h = (uint16_t)((u >> 16) & 0x8000u);
                double sub = ldexp(fabs((double)v), 24);
                if (e > 0 && e < 31)
                    h |= (uint16_t)((e << 10) | ((u >> 13) & 0x3ff));
                else if (e <= 0 && sub == floor(sub))
                    h |= (uint16_t)sub;
                memcpy(p, &h, 2);
            }
        }
        off += (size_t)t->n_elems * es;
    }
    len += (size_t)snprintf(hdr + len, cap - len, "}");
    while ((8 + len) % 8 != 0) /* keep F32 data 4-byte aligned, as HF does */
        hdr[len++] = ' ';
    hdr[len] = 0;
    char path[4200];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    st_craft_file(path, hdr, data, off);
    const char *copy[] = { "config.json", "generation_config.json", "preprocessor_config.json",
                           "processor_config.json", "tokenizer_config.json" };
    for (int i = 0; i < 5; i++) {
        char src[4200];
        snprintf(src, sizeof src, "%s/%s", vc_test_fixture(TINY), copy[i]);
        unsigned char *b = vc_test_read_file(src, &total);
        snprintf(path, sizeof path, "%s/%s", dir, copy[i]);
        CHECK(b && vc_test_write_file(path, b, total) == 0);
        free(b);
    }
    free(hdr);
    free(data);
    st_set_close(s);
}

static void expect_weights_error(const char *edit_name, const char *edit, const char *needle)
{
    const char *dir = vc_test_tmpdir();
    write_reencoded(dir, ST_F32, edit_name, edit);
    struct idf2_config cfg = tiny_config();
    struct idf2_weights *w = NULL;
    struct vc_err err = { 0 };
    struct idf2_weights_opts o = { ST_F32, IDF2_CACHE_OFF };
    CHECK(idf2_weights_load(dir, &cfg.model, &o, &w, &err) < 0);
    CHECK(w == NULL);
    CHECK_INT(err.reason, VC_REASON_bad_checkpoint);
    if (!strstr(err.msg, edit_name) || !strstr(err.msg, needle)) {
        fprintf(stderr, "  got: %s\n  expected the name and ...%s...\n", err.msg, needle);
        vc_test_failures++;
    }
    idf2_config_release(&cfg);
}

TEST(weights_mismatch_with_config)
{
    expect_weights_error("model.vision_model.encoder.layers.1.mlp.fc1.weight", "transpose",
                         "has shape [48, 96], the config needs [96, 48]");
    expect_weights_error("model.text_model.layers.2.self_attn.k_proj.weight", "i64",
                         "has dtype I64");
    expect_weights_error("model.connector.perceiver_resampler.layers.1.input_context_norm.weight",
                         "drop", "missing");
    expect_weights_error("lm_head.weight", "drop", "missing");
}

TEST(f32_and_f16_checkpoints_convert)
{
    /* The fixture re-encoded as one F32 (resp. F16) model.safetensors must
     * load to exactly the fixture's values in both compute dtypes: F32 is
     * exact, and bf16 -> f32 -> bf16 is the identity. */
    struct st_set *orig = NULL;
    struct vc_err err = { 0 };
    CHECK_INT(st_set_open(vc_test_fixture(TINY), &orig, &err), VC_OK);
    struct idf2_config cfg = tiny_config();
    for (int f16 = 0; f16 < 2 && orig; f16++) {
        const char *dir = vc_test_tmpdir();
        write_reencoded(dir, f16 ? ST_F16 : ST_F32, NULL, NULL);
        struct st_set *re = NULL;
        CHECK_INT(st_set_open(dir, &re, &err), VC_OK);
        /* F16 lost nothing except the tiny values it flushed: count them. */
        size_t flushed = 0;
        for (size_t i = 0; re && i < st_set_count(re); i++) {
            const struct st_tensor *t = st_set_at(re, i), *o = st_set_find(orig, t->name);
            for (int64_t k = 0; k < t->n_elems; k++)
                flushed += st_get_f32(t, k) != st_get_f32(o, k);
        }
        CHECK(flushed <= 32); /* of ~390000 (16 with this fixture) */
        for (int k = 0; k < 2 && re; k++) {
            struct idf2_weights *w = NULL;
            struct idf2_weights_opts o = { k ? ST_BF16 : ST_F32, IDF2_CACHE_OFF };
            CHECK_INT(idf2_weights_load(dir, &cfg.model, &o, &w, &err), VC_OK);
            if (!w)
                continue;
            check_weights_equal_fixture(w, re);
            /* F32 data maps in place where F32 is wanted (everything in
             * F32 mode, the 17344 bytes of vectors in BF16 mode); F16
             * always converts. */
            if (!f16 && k == 0)
                CHECK_INT(w->bytes_owned, 0);
            else
                CHECK_INT(w->bytes_mapped, f16 ? 0 : 17344);
            idf2_weights_free(w);
        }
        st_set_close(re);
    }
    st_set_close(orig);
    idf2_config_release(&cfg);
}

TEST(bf16_cache)
{
    const char *dir = vc_test_tmpdir();
    write_reencoded(dir, ST_F32, NULL, NULL);
    struct idf2_config cfg = tiny_config();
    struct vc_err err = { 0 };
    struct idf2_weights_opts o = { ST_BF16, IDF2_CACHE_USE };
    struct idf2_weights *first = NULL, *second = NULL, *third = NULL;
    CHECK_INT(idf2_weights_load(dir, &cfg.model, &o, &first, &err), VC_OK);
    if (!first)
        return;
    CHECK_INT(first->from_cache, 0);
    CHECK_INT(first->cache_written, 1);
    char cache[4200];
    snprintf(cache, sizeof cache, "%s/.vlmcurate-bf16.safetensors", dir);
    struct st_file *cf = NULL;
    CHECK_INT(st_file_open(cache, &cf, &err), VC_OK); /* a valid safetensors file */
    if (cf) {
        const struct st_tensor *t = st_file_find(cf, "model.text_model.embed_tokens.weight");
        CHECK(t && t->dtype == ST_BF16);
        t = st_file_find(cf, "model.text_model.norm.weight");
        CHECK(t && t->dtype == ST_F32);
        st_file_close(cf);
    }

    CHECK_INT(idf2_weights_load(dir, &cfg.model, &o, &second, &err), VC_OK);
    if (second) {
        CHECK_INT(second->from_cache, 1);
        CHECK_INT(second->cache_written, 0);
        CHECK_INT(second->bytes_owned, 0); /* all in place */
        const struct idf2_w *a = &first->text.layers[1].gate, *b = &second->text.layers[1].gate;
        CHECK(memcmp(a->data, b->data, (size_t)(a->rows * a->cols * 2)) == 0);
        CHECK(memcmp(first->vision.pos, second->vision.pos, 36 * 48 * 4) == 0);
        CHECK(memcmp(first->text.lm_head.data, second->text.lm_head.data, 579 * 64 * 2) == 0);
    }
    /* F32 compute never uses the cache. */
    struct idf2_weights_opts o32 = { ST_F32, IDF2_CACHE_USE };
    CHECK_INT(idf2_weights_load(dir, &cfg.model, &o32, &third, &err), VC_OK);
    CHECK(third && third->from_cache == 0);
    idf2_weights_free(third);
    third = NULL;

    /* A source newer than the cache makes it stale: rebuilt, not read. */
    char src[4200];
    snprintf(src, sizeof src, "%s/model.safetensors", dir);
    struct timespec later[2];
    clock_gettime(CLOCK_REALTIME, &later[0]);
    later[0].tv_sec += 10;
    later[1] = later[0];
    CHECK(utimensat(AT_FDCWD, src, later, 0) == 0);
    CHECK_INT(idf2_weights_load(dir, &cfg.model, &o, &third, &err), VC_OK);
    CHECK(third && third->from_cache == 0 && third->cache_written == 1);
    idf2_weights_free(third);
    third = NULL;

    /* A damaged cache (but fresh by date) is ignored, not an error. */
    CHECK(vc_test_write_file(cache, "garbage!garbage!", 16) == 0);
    later[0].tv_sec += 10;
    later[1] = later[0];
    CHECK(utimensat(AT_FDCWD, cache, later, 0) == 0);
    CHECK_INT(idf2_weights_load(dir, &cfg.model, &o, &third, &err), VC_OK);
    CHECK(third && third->from_cache == 0);
    idf2_weights_free(third);

    idf2_weights_free(first);
    idf2_weights_free(second);
    idf2_config_release(&cfg);
}

TEST(bf16_rounding)
{
    /* Round to nearest even at the 16-bit boundary, hand-computed. */
    float f;
    uint32_t u = 0x3f808000u; /* exactly halfway between 0x3f80 and 0x3f81 */
    memcpy(&f, &u, 4);
    CHECK_INT(st_f32_to_bf16(f), 0x3f80); /* ties to even */
    u = 0x3f818000u;
    memcpy(&f, &u, 4);
    CHECK_INT(st_f32_to_bf16(f), 0x3f82);
    u = 0x3f808001u;
    memcpy(&f, &u, 4);
    CHECK_INT(st_f32_to_bf16(f), 0x3f81);
    CHECK_INT(st_f32_to_bf16(-2.0f), 0xc000);
    CHECK_INT(st_f32_to_bf16(INFINITY), 0x7f80);
    CHECK(isnan(st_bf16_to_f32(st_f32_to_bf16(NAN))));
    /* The largest float rounds up to bf16 infinity, as torch does. */
    CHECK_INT(st_f32_to_bf16(3.4028235e38f), 0x7f80);
    CHECK_NEAR(st_f16_to_f32(0x7bff), 65504.0, 0);
    CHECK_NEAR(st_f16_to_f32(0x0400), ldexp(1.0, -14), 0);
    CHECK_NEAR(st_f16_to_f32(0x03ff), 1023 * ldexp(1.0, -24), 0);
    CHECK_NEAR(st_f16_to_f32(0x8000), 0.0, 0);
    CHECK(signbit(st_f16_to_f32(0x8000)));
}

#define TESTS(X)                                                                                   \
    X(good_file_round_trip)                                                                        \
    X(scalar_and_empty_tensors)                                                                    \
    X(truncated_and_header_length)                                                                 \
    X(offsets_overlap_gap_range)                                                                   \
    X(dtype_and_shape_errors)                                                                      \
    X(header_json_errors)                                                                          \
    X(sharded_set_good)                                                                            \
    X(sharded_set_errors)                                                                          \
    X(fixture_index_and_shapes)                                                                    \
    X(fixture_weights_both_dtypes)                                                                 \
    X(weights_mismatch_with_config)                                                                \
    X(f32_and_f16_checkpoints_convert)                                                             \
    X(bf16_cache)                                                                                  \
    X(bf16_rounding)
TEST_MAIN(TESTS)
