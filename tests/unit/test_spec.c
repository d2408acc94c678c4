/* Spec parsing: a valid spec loads with its defaults and implied stages;
 * every kind of mistake is refused with a message that names the place
 * and the key. */
#include "vc_test.h"

#include "pipeline/spec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A spec over one webdataset shard pattern (the files need not exist:
 * shards are opened in MAP, not at load), plus `extra` keys. */
static enum vc_status parse_with(const char *extra, struct spec **out, struct vc_err *err)
{
    char text[4096];
    snprintf(text, sizeof text,
             "{\"sources\": [{\"name\": \"web\", \"type\": \"webdataset\", \"urls\": "
             "\"d-{00..02}.tar\"}], \"output\": {\"dir\": \"out\"}%s}",
             extra);
    return spec_parse(text, strlen(text), "/data", NULL, out, err);
}

static void expect_error(const char *text, const char *needle1, const char *needle2)
{
    struct spec *s = NULL;
    struct vc_err err = { 0 };
    enum vc_status rc = spec_parse(text, strlen(text), NULL, NULL, &s, &err);
    CHECK_INT(rc, VC_EUSAGE);
    CHECK_INT(err.reason, VC_REASON_bad_spec);
    CHECK(s == NULL);
    if (!strstr(err.msg, needle1) || (needle2 && !strstr(err.msg, needle2))) {
        fprintf(stderr, "message '%s' lacks '%s' / '%s'\n", err.msg, needle1,
                needle2 ? needle2 : "");
        vc_test_failures++;
    }
}

TEST(defaults_and_implied_stages)
{
    struct spec *s = NULL;
    struct vc_err err = { 0 };
    CHECK_INT(parse_with("", &s, &err), VC_OK);
    if (!s)
        return;
    CHECK_INT(s->n_sources, 1);
    CHECK_INT(s->sources[0].n_units, 3);
    CHECK_STR(s->sources[0].units[0].file, "/data/d-00.tar");
    CHECK_STR(s->sources[0].units[2].file, "/data/d-02.tar");
    CHECK_NEAR(s->source_info[0].weight, 1.0, 0);
    CHECK_INT(s->source_info[0].epochs, 1);
    /* ingest first and write last, though the spec lists no stage */
    CHECK_INT(s->n_stages, 2);
    CHECK_STR(s->stages[0].ops->name, "ingest");
    CHECK_STR(s->stages[1].ops->name, "write");
    CHECK_STR(s->out_dir, "/data/out");
    CHECK_STR(s->work_dir, "/data/out/_work");
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
    CHECK_INT(spec_parse(t1, strlen(t1), NULL, &ov, &a, &err), VC_OK);
    CHECK_INT(spec_parse(t2, strlen(t2), NULL, NULL, &b, &err), VC_OK);
    CHECK_INT(spec_parse(t3, strlen(t3), NULL, NULL, &c, &err), VC_OK);
    if (a && b && c) {
        CHECK_STR(a->hash, b->hash);
        CHECK(strcmp(b->hash, c->hash) != 0);
        CHECK_STR(a->out_dir, "/elsewhere");
        CHECK_INT(a->threads, 7);
        CHECK_STR(b->out_dir, "o2"); /* no spec folder: relative to the cwd */
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
                 "stage 'reshard'", "shufle");
    expect_error("{\"sources\": [{\"name\": \"a\", \"type\": \"webdataset\", \"urls\": \"x.tar\"}],"
                 " \"output\": {\"dir\": \"o\"}, \"stages\": [{\"stage\": \"dedupe\"}]}",
                 "unknown stage 'dedupe'", NULL);
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

#define TESTS(X)                                                                                   \
    X(defaults_and_implied_stages)                                                                 \
    X(hash_ignores_out_dir_and_threads) X(errors_name_place_and_key) X(limits_and_output_options)
TEST_MAIN(TESTS)
