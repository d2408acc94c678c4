/* Spec parsing: a valid spec loads with its defaults and implied stages;
 * every kind of mistake is refused with a message that names the place
 * and the key. */
#include "vc_test.h"

#include "pipeline/spec.h"

#include <cjson/cJSON.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

/* The folder the specs below sit in, with the files they name: shards
 * d-00..02.tar, x.tar, y.tar (empty: shards are read in MAP, but must
 * exist at load), a list and an image folder. */
static const char *spec_folder(void)
{
    static char dir[4096];
    if (dir[0])
        return dir;
    snprintf(dir, sizeof dir, "%s", vc_test_tmpdir());
    static const char *const files[] = { "d-00.tar", "d-01.tar", "d-02.tar",
                                         "x.tar",    "y.tar",    "list.jsonl" };
    char path[4200];
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        vc_test_write_file(path, "", 0);
    }
    snprintf(path, sizeof path, "%s/i", dir);
    mkdir(path, 0755);
    return dir;
}

/* A spec over one webdataset shard pattern, plus `extra` keys. */
static enum vc_status parse_with(const char *extra, struct spec **out, struct vc_err *err)
{
    char text[4096];
    snprintf(text, sizeof text,
             "{\"sources\": [{\"name\": \"web\", \"type\": \"webdataset\", \"urls\": "
             "\"d-{00..02}.tar\"}], \"output\": {\"dir\": \"out\"}%s}",
             extra);
    return spec_parse(text, strlen(text), spec_folder(), NULL, out, err);
}

static void expect_error_n(const char *text, size_t n, const char *needle1, const char *needle2)
{
    struct spec *s = NULL;
    struct vc_err err = { 0 };
    enum vc_status rc = spec_parse(text, n, spec_folder(), NULL, &s, &err);
    CHECK_INT(rc, VC_EUSAGE);
    CHECK_INT(err.reason, VC_REASON_bad_spec);
    CHECK(s == NULL);
    if (!strstr(err.msg, needle1) || (needle2 && !strstr(err.msg, needle2))) {
        fprintf(stderr, "message '%s' lacks '%s' / '%s'\n", err.msg, needle1,
                needle2 ? needle2 : "");
        vc_test_failures++;
    }
}

static void expect_error(const char *text, const char *needle1, const char *needle2)
{
    expect_error_n(text, strlen(text), needle1, needle2);
}

TEST(defaults_and_implied_stages)
{
    struct spec *s = NULL;
    struct vc_err err = { 0 };
    char want[4200];
    CHECK_INT(parse_with("", &s, &err), VC_OK);
    if (!s)
        return;
    CHECK_INT(s->n_sources, 1);
    CHECK_INT(s->sources[0].n_units, 3);
    snprintf(want, sizeof want, "%s/d-00.tar", spec_folder());
    CHECK_STR(s->sources[0].units[0].file, want);
    snprintf(want, sizeof want, "%s/d-02.tar", spec_folder());
    CHECK_STR(s->sources[0].units[2].file, want);
    CHECK_NEAR(s->source_info[0].weight, 1.0, 0);
    CHECK_INT(s->source_info[0].epochs, 0) /* not given */;
    /* ingest first and write last, though the spec lists no stage */
    CHECK_INT(s->n_stages, 2);
    CHECK_STR(s->stages[0].ops->name, "ingest");
    CHECK_STR(s->stages[1].ops->name, "write");
    snprintf(want, sizeof want, "%s/out", spec_folder());
    CHECK_STR(s->out_dir, want);
    snprintf(want, sizeof want, "%s/out/_work", spec_folder());
    CHECK_STR(s->work_dir, want);
    CHECK_STR(s->prefix, "shard");
    CHECK_INT(s->samples_per_shard, 1000);
    CHECK_INT(s->limits.max_text_bytes, 65536);
    CHECK_INT(strlen(s->hash), 64);
    CHECK_INT(spec_n_units(s), 3);
    spec_free(s);
}

TEST(hash_ignores_out_dir_and_threads)
{
    struct spec *a = NULL, *b = NULL, *c = NULL;
    struct vc_err err = { 0 };
    struct spec_overrides ov = { .out_dir = "/elsewhere", .threads = 7 };
    const char *t1 =
        "{\"sources\": [{\"name\": \"w\", \"type\": \"webdataset\", \"urls\": \"x.tar\"}],"
        " \"output\": {\"dir\": \"o1\"}, \"threads\": 2}";
    const char *t2 =
        "{\"sources\": [{\"name\": \"w\", \"type\": \"webdataset\", \"urls\": \"x.tar\"}],"
        " \"output\": {\"dir\": \"o2\"}}";
    const char *t3 =
        "{\"sources\": [{\"name\": \"w\", \"type\": \"webdataset\", \"urls\": \"y.tar\"}],"
        " \"output\": {\"dir\": \"o2\"}}";
    CHECK_INT(spec_parse(t1, strlen(t1), spec_folder(), &ov, &a, &err), VC_OK);
    CHECK_INT(spec_parse(t2, strlen(t2), spec_folder(), NULL, &b, &err), VC_OK);
    CHECK_INT(spec_parse(t3, strlen(t3), spec_folder(), NULL, &c, &err), VC_OK);
    if (a && b && c) {
        CHECK_STR(a->hash, b->hash);
        CHECK(strcmp(b->hash, c->hash) != 0);
        CHECK_STR(a->out_dir, "/elsewhere");
        CHECK_INT(a->threads, 7);
        char want[4200];
        snprintf(want, sizeof want, "%s/o2", spec_folder());
        CHECK_STR(b->out_dir, want);
    }
    spec_free(a);
    spec_free(b);
    spec_free(c);
}

TEST(errors_name_place_and_key)
{
    expect_error("[1]", "not a JSON object", NULL);
    expect_error("{\"sources\": [], \"output\": {\"dir\": \"o\"}}", "sources", NULL);
    expect_error("{\"sources\": [{\"name\": \"a\", \"type\": \"webdataset\", \"urls\": \"x.tar\"}],"
                 " \"output\": {\"dir\": \"o\"}, \"stages\": [{\"stage\": \"reshard\", "
                 "\"shufle\": \"global\"}]}",
                 "stage 1 (reshard): unknown key 'shufle'", NULL);
    expect_error("{\"sources\": [{\"name\": \"a\", \"type\": \"webdataset\", \"urls\": \"x.tar\"}],"
                 " \"output\": {\"dir\": \"o\"}, \"stages\": [{\"stage\": \"dedupe\"}]}",
                 "stage 1: key 'stage': unknown stage 'dedupe'", "(known: ingest, filter, ");
    expect_error("{\"sources\": [{\"name\": \"a\", \"type\": \"webdataset\", \"urls\": \"x.tar\"}],"
                 " \"output\": {\"dir\": \"o\"}, \"stages\": [{\"stage\": \"reshard\", "
                 "\"shuffle\": \"sometimes\"}]}",
                 "key 'shuffle'", "none|buffer|global");
    expect_error("{\"sources\": [{\"name\": \"a\", \"type\": \"webdataset\"}],"
                 " \"output\": {\"dir\": \"o\"}}",
                 "source 'a'", "urls");
    expect_error("{\"sources\": [{\"name\": \"a\", \"type\": \"tfrecord\", \"urls\": \"x\"}],"
                 " \"output\": {\"dir\": \"o\"}}",
                 "source 'a'", "key 'type'");
    expect_error("{\"sources\": [{\"name\": \"a\", \"type\": \"webdataset\", \"urls\": \"x.tar\","
                 " \"weight\": -1}], \"output\": {\"dir\": \"o\"}}",
                 "source 'a'", "key 'weight'");
    expect_error("{\"sources\": [{\"name\": \"a\", \"type\": \"webdataset\", \"urls\": \"x.tar\"},"
                 " {\"name\": \"a\", \"type\": \"webdataset\", \"urls\": \"y.tar\"}],"
                 " \"output\": {\"dir\": \"o\"}}",
                 "source 'a'", "used twice");
    expect_error("{\"sources\": [{\"name\": \"a\", \"type\": \"webdataset\", \"urls\": \"x.tar\"}],"
                 " \"output\": {\"dir\": \"o\", \"samples_per_shard\": 0}}",
                 "output", "samples_per_shard");
    expect_error("{\"sources\": [{\"name\": \"a\", \"type\": \"webdataset\", \"urls\": \"x.tar\"}],"
                 " \"output\": {}}",
                 "output", "dir");
    expect_error("{\"sources\": [{\"name\": \"a\", \"type\": \"webdataset\", \"urls\": \"x.tar\"}],"
                 " \"output\": {\"dir\": \"o\"}, \"limits\": {\"max_pixel\": 5}}",
                 "limits", "max_pixel");
    expect_error("{\"sources\": [{\"name\": \"a\", \"type\": \"webdataset\", \"urls\": "
                 "\"x{1..3.tar\"}], \"output\": {\"dir\": \"o\"}}",
                 "source 'a'", "urls");
    expect_error("{\"sources\": [{\"name\": \"a\", \"type\": \"webdataset\", \"urls\": \"x.tar\"}],"
                 " \"output\": {\"dir\": \"o\"}, \"stages\": [{\"stage\": \"write\"}, "
                 "{\"stage\": \"reshard\"}]}",
                 "write", "last");
    expect_error(
        "{\"sources\": [{\"name\": \"a\", \"type\": \"pairs\", \"list\": "
        "\"/nonexistent/list.jsonl\", \"images_dir\": \"i\"}], \"output\": {\"dir\": \"o\"}}",
        "source 'a'", "/nonexistent/list.jsonl");
}

#define SRC_A "{\"sources\": [{\"name\": \"a\", \"type\": \"webdataset\", \"urls\": \"x.tar\"}]"
#define OUT_O "\"output\": {\"dir\": \"o\"}"

/* A hand-written spec means exactly what it says: no key twice, nothing
 * after the object, no NUL cutting a string short.  Each message names
 * the place. */
TEST(strict_json)
{
    expect_error(SRC_A ", " OUT_O ", \"threads\": 1, \"threads\": 2}", "spec: key 'threads'",
                 "appears twice");
    expect_error("{\"sources\": [{\"name\": \"a\", \"type\": \"webdataset\", \"urls\": "
                 "\"x.tar\", \"urls\": \"y.tar\"}], " OUT_O "}",
                 "spec.sources[0]: key 'urls'", "appears twice");
    expect_error(SRC_A ", " OUT_O ", \"stages\": [{\"stage\": \"filter\", \"filters\": "
                       "[{\"name\": \"img_width\", \"min\": 10, \"min\": 20}]}]}",
                 "spec.stages[0].filters[0]: key 'min'", "appears twice");
    expect_error(SRC_A ", " OUT_O "} x", "line 1, column ", "text after the end");
    expect_error(SRC_A ", " OUT_O "}\n{}\n", "line 2, column 1", "text after the end");
    expect_error(SRC_A ", \n" OUT_O ", \"description\": \"a\\u0000b\"}", "line 2, column ",
                 "NUL character");
    static const char raw_nul[] = SRC_A ", " OUT_O ", \"description\": \"a\0b\"}";
    expect_error_n(raw_nul, sizeof raw_nul - 1, "line 1, column ", "NUL byte");
    expect_error(SRC_A ", \n\n" OUT_O ",}", "line 3, column", "parse error");
    /* An escaped backslash before "u0000" is two ordinary characters. */
    const char *ok = SRC_A ", " OUT_O ", \"description\": \"C:\\\\u0000\"}  \n";
    struct spec *s = NULL;
    struct vc_err err = { 0 };
    CHECK_INT(spec_parse(ok, strlen(ok), spec_folder(), NULL, &s, &err), VC_OK);
    if (s)
        CHECK_STR(cJSON_GetObjectItemCaseSensitive(s->json, "description")->valuestring,
                  "C:\\u0000");
    spec_free(s);
}

/* Thresholds outside what the score can mean are refused, not read as
 * "keep everything". */
TEST(filter_thresholds_in_range)
{
    expect_error(SRC_A ", " OUT_O ", \"stages\": [{\"stage\": \"filter\", \"filters\": "
                       "[{\"name\": \"img_width\", \"min\": -100}]}]}",
                 "stage 1 (filter): filter 'img_width': parameter \"min\": -100 is outside [0, ",
                 NULL);
    /* With a stage listed twice, the message says which one. */
    expect_error(SRC_A ", " OUT_O ", \"stages\": [{\"stage\": \"filter\"}, {\"stage\": \"dedup\"}, "
                       "{\"stage\": \"filter\", \"filters\": [{\"name\": \"img_height\", "
                       "\"max\": -1}]}]}",
                 "stage 3 (filter): filter 'img_height': parameter \"max\": -1 is outside", NULL);
    expect_error(SRC_A ", " OUT_O ", \"stages\": [{\"stage\": \"filter\", \"filters\": "
                       "[{\"name\": \"par_stopword_ratio\", \"min\": 1.5}]}]}",
                 "parameter \"min\": 1.5 is outside [0, 1]", NULL);
    expect_error(SRC_A ", " OUT_O ", \"stages\": [{\"stage\": \"filter\", \"filters\": "
                       "[{\"name\": \"par_char_repetition\", \"n\": 0}]}]}",
                 "parameter \"n\": 0 is outside [1, 1000]", NULL);
    struct spec *s = NULL;
    struct vc_err err = { 0 };
    CHECK_INT(parse_with(", \"stages\": [{\"stage\": \"filter\", \"filters\": [{\"name\": "
                         "\"img_width\", \"min\": 0}, {\"name\": \"par_stopword_ratio\", "
                         "\"min\": 1}]}]",
                         &s, &err),
              VC_OK);
    spec_free(s);
}

/* Every path a spec names is looked at when it loads: a typo is exit 2
 * with the source and the path, not a run that writes nothing. */
TEST(source_paths_checked_at_load)
{
    expect_error("{\"sources\": [{\"name\": \"a\", \"type\": \"webdataset\", \"urls\": "
                 "[\"x.tar\", \"nope.tar\"]}], " OUT_O "}",
                 "source 'a': key 'urls'", "nope.tar': No such file");
    expect_error("{\"sources\": [{\"name\": \"a\", \"type\": \"webdataset\", \"urls\": "
                 "\"d-{03..05}.tar\"}], " OUT_O "}",
                 "source 'a': key 'urls'", "/d-03.tar': No such file");
    expect_error("{\"sources\": [{\"name\": \"a\", \"type\": \"webdataset\", \"urls\": "
                 "\"d-*.tar\"}], " OUT_O "}",
                 "source 'a': key 'urls'", "wildcards are not expanded");
    expect_error("{\"sources\": [{\"name\": \"a\", \"type\": \"webdataset\", \"urls\": "
                 "\"i\"}], " OUT_O "}",
                 "source 'a': key 'urls'", "/i': a folder, not a file");
    expect_error("{\"sources\": [{\"name\": \"p\", \"type\": \"pairs\", \"list\": "
                 "\"list.jsonl\", \"images_dir\": \"imgs\"}], " OUT_O "}",
                 "source 'p': key 'images_dir'", "/imgs': No such file");
    expect_error("{\"sources\": [{\"name\": \"p\", \"type\": \"pairs\", \"list\": "
                 "\"list.jsonl\", \"images_dir\": \"x.tar\"}], " OUT_O "}",
                 "source 'p': key 'images_dir'", "/x.tar': not a folder");
    expect_error("{\"sources\": [{\"name\": \"d\", \"type\": \"documents\", \"path\": "
                 "\"docs.jsonl\", \"images_dir\": \"i\"}], " OUT_O "}",
                 "source 'd': key 'path'", "/docs.jsonl': No such file");
    /* A million missing shards: refused at the first, in well under the
     * time a million error units would take. */
    clock_t t0 = clock();
    expect_error("{\"sources\": [{\"name\": \"big\", \"type\": \"webdataset\", \"urls\": "
                 "\"m-{000000..999999}.tar\"}], " OUT_O "}",
                 "source 'big': key 'urls'", "/m-000000.tar': No such file");
    fprintf(stderr, "a million missing shards refused in %.2f s of CPU\n",
            (double)(clock() - t0) / CLOCKS_PER_SEC);
}

/* A folder in "urls" (an img2dataset output folder: NNNNN.tar beside
 * NNNNN.parquet and NNNNN_stats.json) is refused, as nothing is globbed,
 * with the brace pattern that names its shards when they are one series
 * without gaps; otherwise the message says to list them, or that it holds
 * no shard. */
TEST(folder_in_urls_gets_its_pattern)
{
    static const char *const files[] = { "i2d/00000.tar",        "i2d/00001.tar",
                                         "i2d/00002.tar",        "i2d/00000.parquet",
                                         "i2d/00000_stats.json", "gaps/p-7.tar.gz",
                                         "gaps/p-9.tar.gz",      "none/a.parquet" };
    char path[4200];
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(path, sizeof path, "%s/%.*s", spec_folder(),
                 (int)(strchr(files[i], '/') - files[i]), files[i]);
        mkdir(path, 0755);
        snprintf(path, sizeof path, "%s/%s", spec_folder(), files[i]);
        vc_test_write_file(path, "", 0);
    }
    expect_error("{\"sources\": [{\"name\": \"a\", \"type\": \"webdataset\", \"urls\": "
                 "\"i2d/\"}], " OUT_O "}",
                 "/i2d/': a folder, not a file",
                 "; for its 3 shards write \"i2d/{00000..00002}.tar\"");
    expect_error("{\"sources\": [{\"name\": \"a\", \"type\": \"webdataset\", \"urls\": "
                 "[\"x.tar\", \"gaps\"]}], " OUT_O "}",
                 "/gaps': a folder, not a file", "; list its 2 shards in the key");
    expect_error("{\"sources\": [{\"name\": \"a\", \"type\": \"webdataset\", \"urls\": "
                 "\"none\"}], " OUT_O "}",
                 "/none': a folder, not a file",
                 "(it holds no .tar, .tar.gz, .tgz or .tar.zst file)");
}

/* A list file holding one JSON array (LLaVA-style annotations) is not
 * JSON Lines: the pairs source took it for a CSV and asked for an
 * 'image_column' it already had; the documents source read each line of
 * it as a record.  Every list source refuses it at load, saying what to
 * do. */
TEST(json_array_list_refused)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/arr.json", spec_folder());
    const char *arr = "\n  [\n  {\"image\": \"a.jpg\", \"caption\": \"x\", \"texts\": []}\n]\n";
    vc_test_write_file(path, arr, strlen(arr));
    const char *const sources[] = {
        "{\"name\": \"s\", \"type\": \"pairs\", \"list\": \"arr.json\", \"images_dir\": \"i\"}",
        "{\"name\": \"s\", \"type\": \"documents\", \"path\": \"arr.json\", \"images_dir\": \".\"}",
        "{\"name\": \"s\", \"type\": \"urls\", \"files\": \"arr.json\"}",
    };
    for (size_t i = 0; i < sizeof sources / sizeof sources[0]; i++) {
        char text[512];
        snprintf(text, sizeof text, "{\"sources\": [%s], " OUT_O "}", sources[i]);
        expect_error(text, "source 's'", "arr.json: a JSON array, not JSON Lines");
    }
}

/* A gzip, zstd or bzip2 packed list is refused when the spec loads,
 * naming the compression, by every list source (before, pairs and
 * documents read it as text and failed on "a NUL byte"). */
TEST(packed_lists_refused)
{
    /* The first bytes are what counts: gzip 1f 8b, zstd 28 b5 2f fd, BZh9. */
    static const struct {
        const char *file, *bytes, *name;
    } packs[] = { { "l.gz", "\x1f\x8b\x08\x00rest", "gzip" },
                  { "l.zst", "\x28\xb5\x2f\xfdrest", "zstd" },
                  { "l.bz2", "BZh91AY&SY", "bzip2" } };
    /* Each source object around the list's name. */
    static const char *const sources[][2] = {
        { "{\"name\": \"s\", \"type\": \"pairs\", \"list\": \"", "\", \"images_dir\": \"i\"}" },
        { "{\"name\": \"s\", \"type\": \"documents\", \"path\": \"", "\", \"images_dir\": \".\"}" },
        { "{\"name\": \"s\", \"type\": \"urls\", \"files\": \"", "\"}" },
    };
    for (size_t i = 0; i < sizeof packs / sizeof packs[0]; i++) {
        char path[4200], src[256], text[512], want[64];
        snprintf(path, sizeof path, "%s/%s", spec_folder(), packs[i].file);
        vc_test_write_file(path, packs[i].bytes, strlen(packs[i].bytes));
        snprintf(want, sizeof want, "%s is %s-compressed", packs[i].file, packs[i].name);
        for (size_t k = 0; k < sizeof sources / sizeof sources[0]; k++) {
            snprintf(src, sizeof src, "%s%s%s", sources[k][0], packs[i].file, sources[k][1]);
            snprintf(text, sizeof text, "{\"sources\": [%s], " OUT_O "}", src);
            expect_error(text, "source 's'", want);
        }
    }
}

/* The spec as a task re-reads it from OUT (inputs_checked): the missing
 * shard and images folder are left to the one task that opens them, so
 * the other units' tasks still run. */
TEST(input_checks_skipped_for_tasks)
{
    const char *text = "{\"sources\": [{\"name\": \"a\", \"type\": \"webdataset\", \"urls\": "
                       "[\"x.tar\", \"nope.tar\"]}, {\"name\": \"p\", \"type\": \"pairs\", "
                       "\"list\": \"list.jsonl\", \"format\": \"jsonl\", \"images_dir\": "
                       "\"imgs\"}], " OUT_O "}";
    struct spec_overrides ov = { .inputs_checked = true };
    struct spec *s = NULL;
    struct vc_err err = { 0 };
    CHECK_INT(spec_parse(text, strlen(text), spec_folder(), &ov, &s, &err), VC_OK);
    if (s) {
        size_t source;
        CHECK(spec_n_units(s) >= 2);
        CHECK(strstr(spec_unit(s, 1, &source)->file, "/nope.tar") != NULL);
        CHECK_INT(source, 0);
    }
    spec_free(s);
    expect_error(text, "source 'a': key 'urls'", "nope.tar': No such file");
}

TEST(limits_and_output_options)
{
    struct spec *s = NULL;
    struct vc_err err = { 0 };
    CHECK_INT(parse_with(", \"limits\": {\"max_pixels\": 1000, \"max_text_bytes\": 10},"
                         " \"stages\": [{\"stage\": \"reshard\", \"shuffle\": \"global\"}]",
                         &s, &err),
              VC_OK);
    if (!s)
        return;
    CHECK_INT(s->limits.max_pixels, 1000);
    CHECK_INT(s->limits.max_text_bytes, 10);
    CHECK_INT(s->n_stages, 3);
    CHECK_STR(s->stages[1].ops->name, "reshard");
    spec_free(s);
}

/* A source's load error names the source once, whether a key check, a
 * column check or a missing file refused it. */
TEST(source_errors_name_it_once)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/nocol.csv", spec_folder());
    vc_test_write_file(path, "caption,other\nx,y\n", 19);
    static const char *const specs[][2] = {
        { "{\"name\": \"u\", \"type\": \"urls\", \"files\": \"list.jsonl\", "
          "\"urls_per_unit\": 0}",
          "source 'u': key 'urls_per_unit': 0 is outside [1, 1000000]" },
        { "{\"name\": \"u\", \"type\": \"urls\", \"files\": \"nocol.csv\"}", "source 'u': " },
        { "{\"name\": \"u\", \"type\": \"urls\", \"files\": \"gone.jsonl\"}",
          "source 'u': key 'files': " },
        { "{\"name\": \"p\", \"type\": \"pairs\", \"list\": \"nocol.csv\", "
          "\"images_dir\": \"i\"}",
          "source 'p': " },
    };
    for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++) {
        char text[1024];
        snprintf(text, sizeof text, "{\"sources\": [%s], \"output\": {\"dir\": \"o\"}}",
                 specs[i][0]);
        expect_error(text, specs[i][1], NULL);
        struct spec *s = NULL;
        struct vc_err err = { 0 };
        spec_parse(text, strlen(text), spec_folder(), NULL, &s, &err);
        const char *first = strstr(err.msg, "source '");
        if (!first || strstr(first + 1, "source '")) {
            fprintf(stderr, "message '%s' names the source %s\n", err.msg,
                    first ? "twice" : "nowhere");
            vc_test_failures++;
        }
        spec_free(s);
    }
}

#define TESTS(X)                                                                                   \
    X(defaults_and_implied_stages)                                                                 \
    X(hash_ignores_out_dir_and_threads)                                                            \
    X(errors_name_place_and_key)                                                                   \
    X(limits_and_output_options)                                                                   \
    X(strict_json)                                                                                 \
    X(filter_thresholds_in_range)                                                                  \
    X(source_paths_checked_at_load)                                                                \
    X(folder_in_urls_gets_its_pattern)                                                             \
    X(json_array_list_refused)                                                                     \
    X(packed_lists_refused)                                                                        \
    X(input_checks_skipped_for_tasks) X(source_errors_name_it_once)
TEST_MAIN(TESTS)
