/* Ledger lines: round trip through JSON, stable names, totals that add up,
 * and counting a ledger file written by hand. */
#include "vc_test.h"

#include "manifests/ledger.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

TEST(line_round_trip)
{
    struct ledger_entry w = { .source = "web",
                              .file = "a.tar",
                              .index = 7,
                              .key = "k.1",
                              .state = LEDGER_WRITTEN,
                              .shard = "s-000001.tar",
                              .out_key = "k_1",
                              .copies = 2 };
    struct ledger_entry r = { .source = "web",
                              .file = "a.tar",
                              .index = 8,
                              .key = "k2",
                              .state = LEDGER_REJECTED,
                              .stage = "filter",
                              .reason = VC_REASON_filtered,
                              .filter = "img_width",
                              .has_score = true,
                              .score = 12,
                              .threshold = 150 };
    struct vc_buf b;
    struct vc_err err = { 0 };
    vc_buf_init(&b, 1 << 20);
    CHECK_INT(ledger_append_line(&b, &w, &err), VC_OK);
    CHECK_INT(ledger_append_line(&b, &r, &err), VC_OK);
    const char *expect =
        "{\"source\":\"web\",\"file\":\"a.tar\",\"index\":7,\"key\":\"k.1\",\"state\":\"written\","
        "\"shard\":\"s-000001.tar\",\"out_key\":\"k_1\",\"copies\":2}\n"
        "{\"source\":\"web\",\"file\":\"a.tar\",\"index\":8,\"key\":\"k2\",\"state\":\"rejected\","
        "\"stage\":\"filter\",\"reason\":\"filtered\",\"filter\":\"img_width\",\"score\":12,"
        "\"threshold\":150}\n";
    CHECK_STR(b.data, expect);
    cJSON *o = cJSON_Parse(strchr(b.data, '\n') + 1);
    struct ledger_entry back;
    CHECK_INT(ledger_entry_from_json(o, &back, &err), VC_OK);
    CHECK_INT(back.state, LEDGER_REJECTED);
    CHECK_INT(back.reason, VC_REASON_filtered);
    CHECK_STR(back.filter, "img_width");
    CHECK(back.has_score);
    CHECK_NEAR(back.threshold, 150, 0);
    CHECK_INT(back.index, 8);
    cJSON_Delete(o);
    vc_buf_free(&b);
}

/* Raw bytes that are not UTF-8 (a Latin-1 member name, a folder name):
 * the line is valid UTF-8 with U+FFFD shown, the exact bytes in *_hex, and
 * a line read back and written again is the same line. */
TEST(non_utf8_names_escaped_reversibly)
{
    struct ledger_entry e = { .source = "web",
                              .file = "d\xff/x.tar",
                              .index = 3,
                              .key = "caf\xe9",
                              .state = LEDGER_ERROR,
                              .stage = "read",
                              .reason = VC_REASON_bad_member_name,
                              .message = "member 'caf\xe9' skipped" };
    struct vc_buf b, b2;
    vc_buf_init(&b, 1 << 16);
    vc_buf_init(&b2, 1 << 16);
    struct vc_err err;
    CHECK_INT(ledger_append_line(&b, &e, &err), VC_OK);
    CHECK_STR(
        b.data,
        "{\"source\":\"web\",\"file\":\"d\xEF\xBF\xBD/x.tar\",\"file_hex\":\"64ff2f782e746172\","
        "\"index\":3,\"key\":\"caf\xEF\xBF\xBD\",\"key_hex\":\"636166e9\",\"state\":\"error\","
        "\"stage\":\"read\",\"reason\":\"bad_member_name\","
        "\"message\":\"member 'caf\xEF\xBF\xBD' skipped\"}\n");
    cJSON *j = cJSON_ParseWithLength(b.data, b.len);
    struct ledger_entry back;
    CHECK_INT(ledger_entry_from_json(j, &back, &err), VC_OK);
    CHECK_INT(ledger_append_line(&b2, &back, &err), VC_OK);
    CHECK_STR(b2.data, b.data);
    cJSON_Delete(j);
    vc_buf_free(&b);
    vc_buf_free(&b2);
}

TEST(state_names_are_stable)
{
    CHECK_STR(ledger_state_name(LEDGER_WRITTEN), "written");
    CHECK_STR(ledger_state_name(LEDGER_REJECTED), "rejected");
    CHECK_STR(ledger_state_name(LEDGER_DUPLICATE), "duplicate");
    CHECK_STR(ledger_state_name(LEDGER_ERROR), "error");
    CHECK_INT(ledger_state_from_name("error"), LEDGER_ERROR);
    CHECK_INT(ledger_state_from_name("lost"), -1);
}

TEST(count_file_adds_up)
{
    const char *dir = vc_test_tmpdir();
    char path[4096];
    snprintf(path, sizeof path, "%s/ledger.jsonl", dir);
    const char *text =
        "{\"source\":\"a\",\"file\":\"f\",\"index\":0,\"key\":\"x\",\"state\":\"written\","
        "\"shard\":\"s.tar\",\"out_key\":\"x\"}\n"
        "{\"source\":\"a\",\"file\":\"f\",\"index\":1,\"key\":\"y\",\"state\":\"error\","
        "\"stage\":\"read\",\"reason\":\"corrupt_archive\"}\n"
        "{\"source\":\"a\",\"file\":\"f\",\"index\":2,\"key\":\"z\",\"state\":\"duplicate\","
        "\"stage\":\"dedup\",\"reason\":\"duplicate\",\"dup_of\":{\"key\":\"x\"}}\n"
        "{\"source\":\"a\",\"file\":\"f\",\"index\":3,\"key\":\"w\",\"state\":\"rejected\","
        "\"stage\":\"mix\",\"reason\":\"mix_unused\"}\n"
        "{\"source\":\"a\",\"file\":\"f\",\"index\":4,\"key\":\"v\",\"state\":\"written\","
        "\"shard\":\"s.tar\",\"out_key\":\"v\"}\n";
    CHECK_INT(vc_test_write_file(path, text, strlen(text)), 0);
    struct ledger_totals t;
    struct vc_err err = { 0 };
    CHECK_INT(ledger_count_file(path, &t, &err), VC_OK);
    CHECK_INT(t.input, 5);
    CHECK_INT(t.written, 2);
    CHECK_INT(t.error, 1);
    CHECK_INT(t.duplicate, 1);
    CHECK_INT(t.rejected, 1);
    CHECK(ledger_totals_balanced(&t));
    t.written++;
    CHECK(!ledger_totals_balanced(&t));
    /* A written line without its shard is not a ledger entry. */
    const char *bad = "{\"source\":\"a\",\"file\":\"f\",\"index\":0,\"key\":\"x\","
                      "\"state\":\"written\"}\n";
    CHECK_INT(vc_test_write_file(path, bad, strlen(bad)), 0);
    CHECK_INT(ledger_count_file(path, &t, &err), VC_ESAMPLE);
    CHECK(strstr(err.msg, ":1") != NULL);
}

#define TESTS(X)                                                                                   \
    X(line_round_trip)                                                                             \
    X(non_utf8_names_escaped_reversibly) X(state_names_are_stable) X(count_file_adds_up)
TEST_MAIN(TESTS)
