/* Sources: brace expansion, list-file splitting (records across unit
 * boundaries, quoted CSV newlines), safe record paths, and the pairs and
 * documents sources over small files written here. */
#include "vc_test.h"

#include "stages/source.h"
#include "stages/src_docs.h"
#include "stages/src_pairs.h"
#include "stages/src_lines.h"
#include "stages/src_util.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/vc_buf.h"
#include "core/vc_mem.h"

TEST(brace_expansion)
{
    char **p = NULL;
    size_t n = 0;
    struct vc_err err = { 0 };
    CHECK_INT(src_brace_expand("d-{008..011}-{a,b}.tar", &p, &n, &err), VC_OK);
    CHECK_INT(n, 8);
    if (n == 8) {
        CHECK_STR(p[0], "d-008-a.tar");
        CHECK_STR(p[1], "d-008-b.tar");
        CHECK_STR(p[7], "d-011-b.tar");
    }
    src_paths_free(p, n);
    p = NULL, n = 0;
    CHECK_INT(src_brace_expand("plain.tar", &p, &n, &err), VC_OK);
    CHECK_INT(n, 1);
    src_paths_free(p, n);
    p = NULL, n = 0;
    CHECK_INT(src_brace_expand("x{0..99999999}.tar", &p, &n, &err), VC_EUSAGE);
    src_paths_free(p, n);
    p = NULL, n = 0;
    CHECK_INT(src_brace_expand("x{a,b.tar", &p, &n, &err), VC_EUSAGE);
    src_paths_free(p, n);
}

TEST(relpath_safety)
{
    CHECK(src_relpath_safe("a/b.jpg"));
    CHECK(src_relpath_safe("..a/b..jpg"));
    CHECK(!src_relpath_safe("../a.jpg"));
    CHECK(!src_relpath_safe("a/../../b.jpg"));
    CHECK(!src_relpath_safe("/etc/passwd"));
    CHECK(!src_relpath_safe(""));
    CHECK(!src_relpath_safe("a\\..\\b"));
}

/* vc_test_tmpdir() empties the folder on every call: take it once. */
static const char *tdir;

static char *write_tmp(const char *name, const char *text)
{
    static char path[4096];
    snprintf(path, sizeof path, "%s/%s", tdir, name);
    vc_test_write_file(path, text, strlen(text));
    return path;
}

TEST(lines_split_and_read)
{
    /* 5 records, one CSV record holding a quoted newline, blank lines. */
    tdir = vc_test_tmpdir();
    const char *text = "h1,h2\n1,a\n\n2,\"b\nc\"\r\n3,\"d\"\"e\"\n4,f\n5,g";
    char *path = write_tmp("l.csv", text);
    struct source_unit *u;
    size_t n;
    struct vc_err err = { 0 };
    CHECK_INT(lines_split(path, LINES_CSV, 6, 2, &u, &n, &err), VC_OK);
    CHECK_INT(n, 3);
    CHECK_INT(u[0].first_record, 0);
    CHECK_INT(u[1].first_record, 2);
    CHECK_INT(u[2].first_record, 4);
    const char *expect[] = { "1,a", "2,\"b\nc\"", "3,\"d\"\"e\"", "4,f", "5,g" };
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        struct lines_reader *r;
        CHECK_INT(lines_open(path, LINES_CSV, u[i].begin, u[i].end, 100, &r, &err), VC_OK);
        char *rec;
        size_t len;
        while (lines_next(r, &rec, &len, &err) == VC_OK && k < 5)
            CHECK_STR(rec, expect[k++]);
        lines_close(r);
        free(u[i].file);
    }
    free(u);
    CHECK_INT(k, 5);
    char rec[] = "3,\"d\"\"e\",,\"x,y\"";
    char *f[8];
    CHECK_INT(lines_split_fields(rec, strlen(rec), ',', f, 8), 4);
    CHECK_STR(f[1], "d\"e");
    CHECK_STR(f[2], "");
    CHECK_STR(f[3], "x,y");
    enum lines_format fmt;
    CHECK_INT(lines_sniff(path, &fmt, &err), VC_OK);
    CHECK_INT(fmt, LINES_CSV);
    /* An over-long record is skipped with field_too_long; the next one reads. */
    path = write_tmp("long.jsonl", "{\"a\": \"0123456789012345678901234567890\"}\n{\"b\":1}\n");
    struct lines_reader *r;
    char *rp;
    size_t len;
    CHECK_INT(lines_open(path, LINES_JSONL, 0, UINT64_MAX, 20, &r, &err), VC_OK);
    CHECK_INT(lines_next(r, &rp, &len, &err), VC_ESAMPLE);
    CHECK_INT(err.reason, VC_REASON_field_too_long);
    CHECK_INT(lines_next(r, &rp, &len, &err), VC_OK);
    CHECK_STR(rp, "{\"b\":1}");
    CHECK_INT(lines_next(r, &rp, &len, &err), VC_EOF);
    lines_close(r);
}

/* A quote inside an unquoted field is text (RFC 4180, Python's csv): the
 * inch mark in `a 5" screen` made the scanner take the rest of the file as
 * one quoted record (5 records read as 1).  Quoted fields, doubled quotes
 * and text after a closing quote still read as Python's csv reads them. */
TEST(quote_inside_a_field_is_text)
{
    tdir = vc_test_tmpdir();
    const char *csv = "image,caption\na.jpg,a 5\" screen\nb.jpg,\"q\"\"x\" tail\n"
                      "c.jpg,\"two\nlines\"\nd.jpg,x\n";
    const char *tsv = "image\tcaption\na.jpg\tsaid \"hi\nb.jpg\t\"a\tb\"\nc.jpg\tok\n";
    const struct {
        const char *name, *text;
        enum lines_format fmt;
        char sep;
        const char *recs[4], *second[4];
    } cases[] = {
        { "q.csv",
          csv,
          LINES_CSV,
          ',',
          { "a.jpg,a 5\" screen", "b.jpg,\"q\"\"x\" tail", "c.jpg,\"two\nlines\"", "d.jpg,x" },
          { "a 5\" screen", "q\"x tail", "two\nlines", "x" } },
        { "q.tsv",
          tsv,
          LINES_TSV,
          '\t',
          { "a.jpg\tsaid \"hi", "b.jpg\t\"a\tb\"", "c.jpg\tok", NULL },
          { "said \"hi", "a\tb", "ok", NULL } },
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        char *path = write_tmp(cases[c].name, cases[c].text);
        struct source_unit *u;
        size_t n, want = cases[c].recs[3] ? 4 : 3;
        struct vc_err err = { 0 };
        CHECK_INT(lines_split(path, cases[c].fmt, 14, 1, &u, &n, &err), VC_OK);
        CHECK_INT(n, want);
        struct lines_reader *r;
        CHECK_INT(lines_open(path, cases[c].fmt, u[0].begin, UINT64_MAX, 100, &r, &err), VC_OK);
        char *rec, *f[4];
        size_t len, k = 0;
        while (k < want && lines_next(r, &rec, &len, &err) == VC_OK) {
            CHECK_STR(rec, cases[c].recs[k]);
            CHECK_INT(lines_split_fields(rec, len, cases[c].sep, f, 4), 2);
            CHECK_STR(f[1], cases[c].second[k++]);
        }
        CHECK_INT(k, want);
        CHECK_INT(lines_next(r, &rec, &len, &err), VC_EOF);
        lines_close(r);
        for (size_t i = 0; i < n; i++)
            free(u[i].file);
        free(u);
    }
}

/* A 1x1 PNG (from the PNG spec's minimal example, checked with file(1)). */
static const unsigned char tiny_png[] = {
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48,
    0x44, 0x52, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x02, 0x00, 0x00,
    0x00, 0x90, 0x77, 0x53, 0xde, 0x00, 0x00, 0x00, 0x0c, 0x49, 0x44, 0x41, 0x54, 0x08,
    0xd7, 0x63, 0xf8, 0xcf, 0xc0, 0x00, 0x00, 0x03, 0x01, 0x01, 0x00, 0x18, 0xdd, 0x8d,
    0xb0, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82
};

/* A fresh tdir holding folder/png_name, a copy of tiny_png. */
static void image_dir(const char *folder, const char *png_name)
{
    char p[4200];
    tdir = vc_test_tmpdir();
    snprintf(p, sizeof p, "%s/%s", tdir, folder);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/%s/%s", tdir, folder, png_name);
    vc_test_write_file(p, tiny_png, sizeof tiny_png);
}

/* The messages and source keys of the errors drain saw, in order. */
static char messages[8][512];
static char err_keys[8][64];

/* Drains every unit of a source; returns OK count, fills errs with reasons. */
static size_t drain(const struct source_ops *ops, const char *cfg_text, int *reasons, size_t cap,
                    size_t *n_err, char **last_json)
{
    struct stage_limits lim;
    stage_limits_default(&lim);
    struct stage_ctx ctx = { .limits = &lim, .spec_dir = tdir };
    cJSON *cfg = cJSON_Parse(cfg_text);
    void *st = NULL;
    struct vc_err err = { 0 };
    size_t ok = 0;
    *n_err = 0;
    CHECK_INT(ops->create(cfg, "source 't'", &ctx, &st, &err), VC_OK);
    if (!st) {
        fprintf(stderr, "%s\n", err.msg);
        cJSON_Delete(cfg);
        return 0;
    }
    size_t nu;
    const struct source_unit *u = ops->units(st, &nu);
    struct arena *a = arena_new(1 << 24);
    for (size_t i = 0; i < nu; i++) {
        void *cur;
        CHECK_INT(ops->open(st, &u[i], &cur, &err), VC_OK);
        for (;;) {
            struct sample s;
            arena_reset(a);
            sample_init(&s, a);
            enum vc_status rc = ops->next(cur, &s, &err);
            if (rc == VC_EOF) {
                sample_fini(&s);
                break;
            }
            if (rc == VC_OK) {
                ok++;
                struct sample_field *j = sample_field_get(&s, "json");
                if (j && last_json) {
                    free(*last_json);
                    *last_json = vc_strndup((const char *)j->data, j->size);
                }
            } else if (*n_err < cap) {
                snprintf(messages[*n_err], sizeof messages[0], "%s", err.msg);
                snprintf(err_keys[*n_err], sizeof err_keys[0], "%s", s.orig_key ? s.orig_key : "");
                reasons[(*n_err)++] = err.reason;
            }
            sample_fini(&s);
        }
        ops->close(cur);
    }
    arena_free(a);
    ops->destroy(st);
    cJSON_Delete(cfg);
    return ok;
}

TEST(pairs_source_csv_and_jsonl)
{
    image_dir("img", "a.png");
    write_tmp("img/not.jpg", "hello");
    /* Saved with a UTF-8 byte order mark, as Excel's "CSV UTF-8" does: the
     * first column is still named "url" (Python's utf-8-sig reads it so). */
    write_tmp("p.csv", "\xEF\xBB\xBFurl,caption,license\n"
                       "a.png,\"a cat, sitting\",cc-by\n"
                       "missing.png,x,y\n"
                       "../a.png,x,y\n"
                       "not.jpg,x,y\n"
                       "a.png,too,many,columns\n");
    int reasons[8];
    size_t n_err;
    char *json = NULL;
    size_t ok = drain(&src_pairs_ops,
                      "{\"type\": \"pairs\", \"list\": \"p.csv\", \"images_dir\": \"img\", "
                      "\"records_per_unit\": 2}",
                      reasons, 8, &n_err, &json);
    CHECK_INT(ok, 1);
    CHECK_INT(n_err, 4);
    CHECK_INT(reasons[0], VC_REASON_missing_image);
    CHECK_INT(reasons[1], VC_REASON_unsafe_path);
    CHECK_INT(reasons[2], VC_REASON_unsupported_format);
    CHECK_INT(reasons[3], VC_REASON_missing_field);
    /* Every error names its record's key, the row of the wrong width too
     * (its key was "" before). */
    CHECK_STR(err_keys[0], "missing");
    CHECK_STR(err_keys[3], "a");
    CHECK_STR(json, "{\"license\":\"cc-by\",\"image_path\":\"a.png\"}");
    free(json);
    json = NULL;
    write_tmp("p.jsonl", "{\"image\": \"a.png\", \"text\": \"hi\", \"n\": 3}\nnot json\n"
                         "{\"caption\": \"no image\", \"key\": \"k9\"}\n");
    ok = drain(&src_pairs_ops,
               "{\"type\": \"pairs\", \"list\": \"p.jsonl\", \"images_dir\": \"img\"}", reasons, 8,
               &n_err, &json);
    CHECK_INT(ok, 1);
    CHECK_INT(n_err, 2);
    CHECK_INT(reasons[0], VC_REASON_json_invalid);
    CHECK_INT(reasons[1], VC_REASON_missing_field);
    CHECK_STR(err_keys[1], "k9");
    CHECK_STR(json, "{\"n\":3,\"image_path\":\"a.png\"}");
    free(json);
}

TEST(documents_source_drops_missing_images)
{
    image_dir("dimg", "x.png");
    write_tmp("d.jsonl",
              "{\"id\": \"d1\", \"texts\": [\"t0\", null, null, \"t3\", null], \"images\": [null, "
              "\"x.png\", \"gone.jpg\", null, \"\"], \"url\": \"u\"}\n"
              "{\"id\": \"d2\", \"texts\": [null], \"images\": [\"../x.png\"]}\n"
              "{\"id\": \"d3\", \"texts\": [\"a\"], \"images\": []}\n");
    int reasons[4];
    size_t n_err;
    char *json = NULL;
    /* d1 ok (gone.jpg and the empty path dropped: an empty path names no
     * file, so it is missing, not unsafe as it was), d2 unsafe, d3
     * mismatched lists */
    size_t ok = drain(&src_docs_ops,
                      "{\"type\": \"documents\", \"path\": \"d.jsonl\", \"images_dir\": \"dimg\"}",
                      reasons, 4, &n_err, &json);
    CHECK_INT(ok, 1);
    CHECK_INT(n_err, 2);
    CHECK_INT(reasons[0], VC_REASON_unsafe_path);
    CHECK_INT(reasons[1], VC_REASON_json_invalid);
    CHECK_STR(json,
              "{\"id\":\"d1\",\"texts\":[\"t0\",null,\"t3\"],\"images\":[null,\"0.png\",null],"
              "\"url\":\"u\",\"dropped_images\":[{\"index\":2,\"path\":\"gone.jpg\","
              "\"reason\":\"missing_image\"},{\"index\":4,\"path\":\"\",\"reason\":"
              "\"missing_image\"}]}");
    free(json);
}

static void check_msg(size_t i, const char *needle)
{
    if (!strstr(messages[i], needle)) {
        fprintf(stderr, "error %zu: '%s' lacks '%s'\n", i, messages[i], needle);
        vc_test_failures++;
    }
}

/* A URL where a file is expected is `not_fetched`, not a file missing
 * from the images folder: the fix is a "fetch" or a urls source. */
TEST(urls_without_fetch_are_not_fetched)
{
    image_dir("uimg", "x.png");
    write_tmp("u.jsonl", "{\"id\": \"d1\", \"texts\": [\"t0\", null, null], \"images\": [null, "
                         "\"https://cdn.example.org/a.jpg\", \"x.png\"]}\n");
    int reasons[2];
    size_t n_err;
    char *json = NULL;
    size_t ok = drain(&src_docs_ops,
                      "{\"type\": \"documents\", \"path\": \"u.jsonl\", \"images_dir\": \"uimg\"}",
                      reasons, 2, &n_err, &json);
    CHECK_INT(ok, 1);
    CHECK_INT(n_err, 0);
    CHECK_STR(json, "{\"id\":\"d1\",\"texts\":[\"t0\",null],\"images\":[null,\"0.png\"],"
                    "\"dropped_images\":[{\"index\":1,\"path\":\"https://cdn.example.org/"
                    "a.jpg\",\"reason\":\"not_fetched\"}]}");
    free(json);
    json = NULL;
    write_tmp("up.jsonl", "{\"image\": \"HTTP://example.org/b.png\", \"text\": \"a cat\"}\n"
                          "{\"image\": \"x.png\", \"text\": \"a dog\"}\n");
    ok = drain(&src_pairs_ops,
               "{\"type\": \"pairs\", \"list\": \"up.jsonl\", \"images_dir\": \"uimg\"}", reasons,
               2, &n_err, &json);
    CHECK_INT(ok, 1);
    CHECK_INT(n_err, 1);
    CHECK_INT(reasons[0], VC_REASON_not_fetched);
    check_msg(0, "'HTTP://example.org/b.png' is an http(s) URL");
    free(json);
}

/* A bad record names its line in the list file (blank lines, the header
 * and quoted newlines counted, across unit boundaries) and says what is
 * wrong: a deep array is "nested", a 0-byte image is `empty`. */
TEST(list_errors_name_line_and_reason)
{
    image_dir("img", "a.png");
    write_tmp("img/zero.png", "");
    enum { DEEP = 100000 };
    char *deep = malloc(2 * DEEP + 2);
    memset(deep, '[', DEEP);
    memset(deep + DEEP, ']', DEEP);
    deep[2 * DEEP] = '\n';
    deep[2 * DEEP + 1] = '\0';
    struct vc_buf text;
    vc_buf_init(&text, 1 << 20);
    vc_buf_printf(&text,
                  "{\"image\": \"a.png\", \"text\": \"fine\"}\n\nnot json\n%s"
                  "{\"image\": \"zero.png\", \"text\": \"x\"}\n[1, 2]\n",
                  deep);
    free(deep);
    write_tmp("bad.jsonl", text.data);
    vc_buf_free(&text);
    int reasons[8];
    size_t n_err;
    size_t ok = drain(&src_pairs_ops,
                      "{\"type\": \"pairs\", \"list\": \"bad.jsonl\", \"images_dir\": \"img\", "
                      "\"records_per_unit\": 2}",
                      reasons, 8, &n_err, NULL);
    CHECK_INT(ok, 1);
    CHECK_INT(n_err, 4);
    CHECK_INT(reasons[0], VC_REASON_json_invalid);
    check_msg(0, "line 3: not valid JSON");
    CHECK_INT(reasons[1], VC_REASON_json_invalid);
    check_msg(1, "line 4: JSON nested deeper than 1000 levels");
    CHECK_INT(reasons[2], VC_REASON_empty);
    check_msg(2, "line 5: zero.png: empty file (0 bytes)");
    CHECK_INT(reasons[3], VC_REASON_json_invalid);
    check_msg(3, "line 6: a JSON array, not an object");
    write_tmp("q.csv", "url,caption\r\na.png,\"two\nlines\"\r\n\r\nmissing.png,x\r\n");
    ok = drain(&src_pairs_ops,
               "{\"type\": \"pairs\", \"list\": \"q.csv\", \"images_dir\": \"img\", "
               "\"records_per_unit\": 1}",
               reasons, 8, &n_err, NULL);
    CHECK_INT(ok, 1);
    CHECK_INT(n_err, 1);
    CHECK_INT(reasons[0], VC_REASON_missing_image);
    check_msg(0, "line 5: ");
    write_tmp("d.jsonl", "\n{\"id\": \"d1\", \"texts\": [\"a\"], \"images\": []}\n");
    ok = drain(&src_docs_ops,
               "{\"type\": \"documents\", \"path\": \"d.jsonl\", \"images_dir\": \"img\"}", reasons,
               8, &n_err, NULL);
    CHECK_INT(n_err, 1);
    check_msg(0, "line 2: ");
}

#define TESTS(X)                                                                                   \
    X(brace_expansion)                                                                             \
    X(relpath_safety)                                                                              \
    X(lines_split_and_read)                                                                        \
    X(quote_inside_a_field_is_text)                                                                \
    X(pairs_source_csv_and_jsonl)                                                                  \
    X(documents_source_drops_missing_images)                                                       \
    X(urls_without_fetch_are_not_fetched)                                                          \
    X(list_errors_name_line_and_reason)
TEST_MAIN(TESTS)
