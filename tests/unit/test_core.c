/* Unit tests of core/: error messages, checked arithmetic, the arena cap,
 * sample fields, key sanitising, the checked close of a written file, the
 * append to a line file with a torn last line and JSON numbers written back
 * as read. */
#include "vc_test.h"

#include "core/sample.h"
#include "core/vc_err.h"
#include "core/vc_fs.h"
#include "core/vc_mem.h"
#include "core/vc_utf8.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

TEST(err_message_and_prefix)
{
    struct vc_err err;
    vc_err_clear(&err);
    CHECK_INT(vc_err_set(&err, VC_ESAMPLE, VC_REASON_decode_error, "bad %s", "jpeg"), VC_ESAMPLE);
    vc_err_prefix(&err, "shard.tar:%s", "k1");
    CHECK_STR(err.msg, "shard.tar:k1: bad jpeg");
    CHECK_STR(vc_reason_name(err.reason), "decode_error");
    CHECK_INT(vc_reason_from_name("unsafe_path"), VC_REASON_unsafe_path);
    CHECK_INT(vc_reason_from_name("no_such_reason"), -1);
}

TEST(checked_arithmetic)
{
    size_t out = 7;
    CHECK(vc_mul_ok(100000, 100000, &out) && out == 10000000000u);
    CHECK(!vc_mul_ok(SIZE_MAX / 2, 3, &out));
    CHECK(!vc_add_ok(SIZE_MAX, 1, &out));
    CHECK(vc_malloc_array(SIZE_MAX / 4, 8) == NULL);
}

TEST(grow_array_doubles_and_keeps_the_block_on_failure)
{
    size_t cap = 0;
    int *v = vc_grow_array(NULL, &cap, 1, sizeof *v, 4);
    CHECK(v != NULL && cap == 4);
    v[3] = 42;
    CHECK(vc_grow_array(v, &cap, 4, sizeof *v, 4) == v && cap == 4); /* room already */
    v = vc_grow_array(v, &cap, 5, sizeof *v, 4);
    CHECK(v != NULL && cap == 8 && v[3] == 42);
    v = vc_grow_array(v, &cap, 100, sizeof *v, 4); /* one jump past several doublings */
    CHECK(v != NULL && cap == 128 && v[3] == 42);
    CHECK(vc_grow_array(v, &cap, SIZE_MAX / 2, sizeof *v, 4) == NULL && cap == 128);
    CHECK(vc_grow_array(v, &cap, SIZE_MAX, 1, 4) == NULL && cap == 128); /* doubling overflows */
    CHECK(v[3] == 42);
    free(v);
    size_t c0 = 0;
    void *one = vc_grow_array(NULL, &c0, 1, 16, 0); /* no first capacity: start at 1 */
    CHECK(one != NULL && c0 == 1);
    free(one);
}

TEST(arena_cap_and_reset)
{
    struct arena *a = arena_new(1000);
    CHECK(arena_alloc(a, 600) != NULL);
    CHECK(arena_alloc(a, 600) == NULL); /* 1200 > cap */
    CHECK_INT(arena_used(a), 608);
    arena_reset(a);
    CHECK_INT(arena_used(a), 0);
    unsigned char *p = arena_alloc(a, 992);
    CHECK(p != NULL && ((uintptr_t)p & 15) == 0);
    CHECK(arena_alloc_array(a, SIZE_MAX / 2, 4) == NULL);
    arena_free(a);
}

TEST(sample_fields)
{
    struct arena *a = arena_new(1 << 20);
    struct sample s;
    struct vc_err err;
    sample_init(&s, a);
    CHECK_INT(sample_add_field(&s, "txt", "hi", 2, &err), VC_OK);
    CHECK_INT(sample_add_field(&s, "png", "\x89PNG", 4, &err), VC_OK);
    CHECK_INT(sample_add_field(&s, "txt", "again", 5, &err), VC_ESAMPLE);
    CHECK_INT(sample_set_field(&s, "txt", "hello", 5, &err), VC_OK);
    CHECK(sample_main_text(&s) && sample_main_text(&s)->size == 5);
    CHECK_STR(sample_main_image(&s)->name, "png");
    sample_remove_field(&s, "txt");
    CHECK(sample_main_text(&s) == NULL);
    CHECK_INT(s.n_fields, 1);
    cJSON_AddNumberToObject(sample_meta(&s), "width", 3);
    sample_fini(&s);
    arena_free(a);
}

TEST(image_fields_by_webdataset_rule)
{
    /* webdataset: "logo.v2.png" is key "logo", field "v2.png", a PNG. */
    CHECK(sample_field_name_is_image("v2.png"));
    CHECK(sample_field_name_is_image("JPG"));
    CHECK(sample_field_name_is_image("0.webp"));
    CHECK(sample_field_name_is_image("thumb.gif"));
    CHECK(!sample_field_name_is_image("png.txt"));
    CHECK(!sample_field_name_is_image("json"));
    struct arena *a = arena_new(1 << 20);
    struct sample s;
    struct vc_err err;
    sample_init(&s, a);
    /* Bytes decide the format: a "jpg" holding a PNG signature is a PNG. */
    CHECK_INT(sample_add_field(&s, "0.png", "\x89PNG\r\n\x1A\n", 8, &err), VC_OK);
    CHECK_INT(sample_add_field(&s, "v2.jpg", "\x89PNG\r\n\x1A\n", 8, &err), VC_OK);
    CHECK_INT(sample_add_field(&s, "gif", "GIF89a", 6, &err), VC_OK);
    enum img_format f = IMG_FORMAT_JPEG;
    CHECK(sample_field_is_image(&s.fields[1], &f));
    CHECK_INT(f, IMG_FORMAT_PNG);
    CHECK(sample_field_is_image(&s.fields[2], &f));
    CHECK_INT(f, IMG_FORMAT_UNKNOWN);
    /* "0.png" is a document image; the main image is the next one. */
    CHECK_STR(sample_main_image(&s)->name, "v2.jpg");
    sample_fini(&s);
    arena_free(a);
}

TEST(key_sanitize)
{
    char out[64];
    /* ASCII punctuation to '_'; each byte of a non-ASCII character, and
     * '%' itself, percent-encoded (é is C3 A9). */
    CHECK_INT(sample_key_sanitize("a.b/c d-é%", out, sizeof out), 17);
    CHECK_STR(out, "a_b_c_d-%C3%A9%25");
    sample_key_sanitize("", out, sizeof out);
    CHECK_STR(out, "_");
    /* Too small for the hash: a plain cut. */
    sample_key_sanitize("0123456789abcdefghij", out, 8);
    CHECK_STR(out, "0123456");
    /* Cut to 31 bytes: 22 for whole characters (2 of 3 bytes each, never a
     * broken one), "-" and the FNV-1a hash of the whole UTF-8 key,
     * computed with Python. */
    sample_key_sanitize("猫の写真", out, 32);
    CHECK_STR(out, "%E7%8C%AB%E3%81%AE-E546B279");
    /* Non-Latin keys no longer collapse into the same run of '_'. */
    char other[64];
    sample_key_sanitize("犬の写真", other, 64);
    sample_key_sanitize("猫の写真", out, 64);
    CHECK(strcmp(out, other) != 0);
    CHECK_STR(out, "%E7%8C%AB%E3%81%AE%E5%86%99%E7%9C%9F");
}

/* The cached digest: FIPS 180-4's "abc" vector, then the digest of
 * bytes that sample_set_field put in place, never the stale one. */
TEST(field_digest_cached_until_replaced)
{
    static const uint8_t abc[32] = { 0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea,
                                     0x41, 0x41, 0x40, 0xde, 0x5d, 0xae, 0x22, 0x23,
                                     0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17, 0x7a, 0x9c,
                                     0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad };
    /* sha256("hello"), from sha256sum. */
    static const uint8_t hello[32] = { 0x2c, 0xf2, 0x4d, 0xba, 0x5f, 0xb0, 0xa3, 0x0e,
                                       0x26, 0xe8, 0x3b, 0x2a, 0xc5, 0xb9, 0xe2, 0x9e,
                                       0x1b, 0x16, 0x1e, 0x5c, 0x1f, 0xa7, 0x42, 0x5e,
                                       0x73, 0x04, 0x33, 0x62, 0x93, 0x8b, 0x98, 0x24 };
    struct arena *a = arena_new(1 << 20);
    struct sample s;
    struct vc_err err;
    sample_init(&s, a);
    CHECK_INT(sample_add_field(&s, "jpg", "abc", 3, &err), VC_OK);
    struct sample_field *f = sample_field_get(&s, "jpg");
    CHECK(!f->has_sha256);
    CHECK(memcmp(sample_field_sha256(f), abc, 32) == 0);
    CHECK(f->has_sha256);
    /* A second call reads the cache: a marked cache comes back as is. */
    f->sha256[0] ^= 1;
    CHECK(sample_field_sha256(f)[0] == (abc[0] ^ 1));
    CHECK_INT(sample_set_field(&s, "jpg", "hello", 5, &err), VC_OK);
    f = sample_field_get(&s, "jpg");
    CHECK(!f->has_sha256);
    CHECK(memcmp(sample_field_sha256(f), hello, 32) == 0);
    sample_fini(&s);
    arena_free(a);
}

/* The prefilter may say "maybe" for a json without the key, never "no" for
 * one with it: each case is checked against cJSON's own parse. */
TEST(json_key_prefilter_never_misses_a_key)
{
    static const struct {
        const char *json;
        bool maybe;
    } cases[] = {
        { "{\"caption\": \"a cat\", \"width\": 3}", false },
        { "{\"texts\": [\"a\"], \"images\": [null]}", true },
        /* "\u0074exts" is the key "texts" once parsed. */
        { "{\"\\u0074exts\": [\"a\"], \"images\": [null]}", true },
        /* The quoted word as a value: a needless parse, no wrong answer. */
        { "{\"caption\": \"texts\"}", true },
        { "", false },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *j = cases[i].json;
        struct sample_field f = { .name = "json", .data = (const uint8_t *)j, .size = strlen(j) };
        bool maybe = sample_json_may_have_key(&f, "texts");
        CHECK_INT(maybe, cases[i].maybe);
        cJSON *doc = cJSON_Parse(j);
        bool has = cJSON_GetObjectItemCaseSensitive(doc, "texts") != NULL;
        cJSON_Delete(doc);
        CHECK(maybe || !has);
    }
}

/* The close of a written file: on /dev/full the data buffered by stdio
 * fails at the flush (ENOSPC) and the error names the file; an earlier
 * error is kept; a file about to be deleted closes without a verdict. */
TEST(sync_close_names_the_file)
{
    struct vc_err err = { 0 };
    FILE *f = fopen("/dev/full", "w");
    CHECK(f && fputs("bytes that never reach the disk", f) >= 0);
    CHECK_INT(vc_fs_sync_close(f, "/dev/full", true, VC_OK, &err), VC_EFATAL);
    CHECK_INT(err.reason, VC_REASON_io_error);
    CHECK(strncmp(err.msg, "/dev/full: ", 11) == 0 && strstr(err.msg, "space") != NULL);
    f = fopen("/dev/full", "w");
    CHECK(f && fputs("x", f) >= 0);
    vc_err_set(&err, VC_ESAMPLE, VC_REASON_decode_error, "first");
    CHECK_INT(vc_fs_sync_close(f, "/dev/full", true, VC_ESAMPLE, &err), VC_ESAMPLE);
    CHECK_STR(err.msg, "first");
    f = fopen("/dev/full", "w");
    CHECK(f && fputs("x", f) >= 0);
    vc_err_clear(&err);
    CHECK_INT(vc_fs_sync_close(f, "/dev/full", false, VC_OK, &err), VC_OK);
    CHECK_INT(vc_fs_sync_close(NULL, "none", true, VC_OK, &err), VC_OK);
    errno = ENOENT;
    CHECK(vc_err_io(&err, "p") == VC_EFATAL &&
          strcmp(err.msg, "p: No such file or directory") == 0);
}

/* Whether the file at path holds exactly `want`. */
static bool file_is(const char *path, const char *want)
{
    size_t size = 0;
    unsigned char *got = vc_test_read_file(path, &size);
    bool same = got && size == strlen(want) && memcmp(got, want, size) == 0;
    free(got);
    return same;
}

/* Appending to a line file (jobs.txt) after a kill tore its last line: the
 * torn bytes go, the new line stands alone; a whole file only grows, and a
 * missing one is created.  The torn tail is longer than one read block
 * back from the end, and an all-torn file ends up holding the new lines. */
TEST(append_lines_cuts_a_torn_last_line)
{
    struct vc_err err = { 0 };
    char path[4096], text[6100];
    snprintf(path, sizeof path, "%s/jobs.txt", vc_test_tmpdir());
    CHECK_INT(vc_fs_append_lines(path, "map 11 5 0-3\n", 13, &err), VC_OK);
    CHECK_INT(vc_fs_append_lines(path, "plan 12 6 0\n", 12, &err), VC_OK);
    CHECK(file_is(path, "map 11 5 0-3\nplan 12 6 0\n"));
    int n = snprintf(text, sizeof text, "map 11 5 0-3\nplan 12 6 0\nmap 13 7 ");
    memset(text + n, '7', sizeof text - (size_t)n);
    CHECK_INT(vc_test_write_file(path, text, sizeof text), 0);
    CHECK_INT(vc_fs_append_lines(path, "map 14 8 2\n", 11, &err), VC_OK);
    CHECK(file_is(path, "map 11 5 0-3\nplan 12 6 0\nmap 14 8 2\n"));
    CHECK_INT(vc_test_write_file(path, "map 1", 5), 0);
    CHECK_INT(vc_fs_append_lines(path, "a\nb\n", 4, &err), VC_OK);
    CHECK(file_is(path, "a\nb\n"));
    snprintf(path, sizeof path, "%s/no-such-dir/jobs.txt", vc_test_tmpdir());
    CHECK_INT(vc_fs_append_lines(path, "a\n", 2, &err), VC_EFATAL);
    CHECK(strncmp(err.msg, path, strlen(path)) == 0);
}

/* Input JSON written back keeps its numbers: 64-bit ids and hashes (beyond
 * 2^53, where a double rounds them: 1234567890123456789 became
 * 1.2345678901234568e+18) and a literal out of double range come back as
 * written, also inside arrays, nested objects and after strings holding
 * digits and escaped quotes; ordinary numbers stay numbers. */
TEST(json_numbers_written_back_as_read)
{
    const char *in = "{\"s\": \"1 \\\" 2\", \"id\": 1234567890123456789, \"f\": 0.5, "
                     "\"n\": [-9223372036854775808, 7, {\"h\": 18446744073709551615}], "
                     "\"e\": 1e400, \"k\": 123456789012345}";
    cJSON *doc = vc_json_parse_exact(in, strlen(in));
    CHECK(doc != NULL);
    char *out = cJSON_PrintUnformatted(doc);
    CHECK_STR(out, "{\"s\":\"1 \\\" 2\",\"id\":1234567890123456789,\"f\":0.5,"
                   "\"n\":[-9223372036854775808,7,{\"h\":18446744073709551615}],"
                   "\"e\":1e400,\"k\":123456789012345}");
    CHECK(cJSON_IsNumber(cJSON_GetObjectItem(doc, "k")));
    CHECK(cJSON_IsNumber(cJSON_GetObjectItem(doc, "f")));
    free(out);
    cJSON_Delete(doc);
    CHECK(vc_json_parse_exact("{\"a\": 1", 7) == NULL);
}

/* A key given twice keeps its last value, as Python's json.loads reads it,
 * at every depth, with the big-number literals still lined up: cJSON alone
 * finds the first, so a stage replacing "vlmcurate" left the input's
 * second copy for Python to read. */
TEST(json_key_twice_keeps_the_last)
{
    const char *in = "{\"vlmcurate\": 1, \"a\": {\"x\": 1, \"y\": 2, \"x\": 3}, "
                     "\"vlmcurate\": {\"source\": \"forged\"}, \"a\": [{\"z\": 1, \"z\": "
                     "12345678901234567890}], \"b\": 0, \"vlmcurate\": 3}";
    cJSON *doc = vc_json_parse_exact(in, strlen(in));
    CHECK(doc != NULL);
    char *out = cJSON_PrintUnformatted(doc);
    CHECK_STR(out, "{\"a\":[{\"z\":12345678901234567890}],\"b\":0,\"vlmcurate\":3}");
    free(out);
    cJSON_Delete(doc);
}

/* cJSON cuts a string at \u0000 ("a\u0000b" read back as "a"), so JSON
 * holding a NUL does not parse: a NUL escape in a string or a NUL byte
 * anywhere is found, also after an escaped quote; an escaped backslash
 * before "u0000" (plain text) and a \u0000 cut off by the length are not. */
TEST(json_nul_refused)
{
    bool escaped = false;
    const char *esc = "{\"a\": \"x\\u0000y\"}";
    CHECK(vc_json_find_nul(esc, strlen(esc), &escaped) == 8 && escaped);
    CHECK(vc_json_parse_exact(esc, strlen(esc)) == NULL);
    const char raw[] = "{\"a\": \"x\0y\"}";
    CHECK(vc_json_find_nul(raw, sizeof raw - 1, &escaped) == 8 && !escaped);
    CHECK(vc_json_parse_exact(raw, sizeof raw - 1) == NULL);
    const char *text = "{\"a\": \"x\\\\u0000y\", \"b\": \"\\\"\\u0000\"}";
    CHECK(vc_json_find_nul(text, strlen(text), &escaped) == 27 && escaped);
    CHECK(vc_json_find_nul(text, 30, &escaped) == 30);
    cJSON *doc = vc_json_parse_exact(text, 30);
    CHECK(doc == NULL); /* cut inside a string: not JSON, but not for a NUL */
    const char *ok = "{\"a\": \"x\\\\u0000y\"}";
    CHECK(vc_json_find_nul(ok, strlen(ok), &escaped) == strlen(ok));
    doc = vc_json_parse_exact(ok, strlen(ok));
    CHECK(doc != NULL);
    CHECK_STR(cJSON_GetObjectItem(doc, "a")->valuestring, "x\\u0000y");
    cJSON_Delete(doc);
}

/* cJSON reads one value and ignores what follows it, so two JSONL records
 * joined on one line (a file concatenated to one without a final newline)
 * read as the first alone: JSON with more than white space after its
 * value does not parse, as Python's json says "Extra data". */
TEST(json_extra_after_value_refused)
{
    const char *two = "{\"a\": 1}{\"b\": 2}";
    CHECK(vc_json_parse_exact(two, strlen(two)) == NULL);
    CHECK_INT(vc_json_extra_at(two, strlen(two)), 8);
    const char *tail = "[1, 2] x";
    CHECK(vc_json_parse_exact(tail, strlen(tail)) == NULL);
    CHECK_INT(vc_json_extra_at(tail, strlen(tail)), 7);
    const char *blank = " {\"a\": \"} {\"} \r\n\t ";
    CHECK_INT(vc_json_extra_at(blank, strlen(blank)), strlen(blank));
    cJSON *doc = vc_json_parse_exact(blank, strlen(blank));
    CHECK(doc != NULL);
    CHECK_STR(cJSON_GetObjectItem(doc, "a")->valuestring, "} {");
    cJSON_Delete(doc);
    /* Cut by the length: what lies beyond n is not looked at. */
    CHECK_INT(vc_json_extra_at(two, 8), 8);
    CHECK_INT(vc_json_extra_at("{", 1), 1);
}

#define TESTS(X)                                                                                   \
    X(err_message_and_prefix)                                                                      \
    X(checked_arithmetic)                                                                          \
    X(grow_array_doubles_and_keeps_the_block_on_failure)                                           \
    X(sync_close_names_the_file)                                                                   \
    X(append_lines_cuts_a_torn_last_line)                                                          \
    X(arena_cap_and_reset)                                                                         \
    X(sample_fields)                                                                               \
    X(field_digest_cached_until_replaced)                                                          \
    X(image_fields_by_webdataset_rule)                                                             \
    X(key_sanitize)                                                                                \
    X(json_key_prefilter_never_misses_a_key)                                                       \
    X(json_numbers_written_back_as_read)                                                           \
    X(json_key_twice_keeps_the_last) X(json_nul_refused) X(json_extra_after_value_refused)
TEST_MAIN(TESTS)
