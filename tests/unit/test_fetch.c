/* The download policy of stages/fetch that needs no network: which
 * X-Robots-Tag values forbid use (img2dataset's semantics: directives for
 * every crawler, or for our token), the opt-out list (exact URLs, domains
 * and their subdomains, never a mere suffix), libcurl and HTTP outcomes
 * mapped to the ledger's stable reasons (DNS failures included, which the
 * loopback tests cannot provoke without a resolver), and spec errors that
 * name the key. */
#include "vc_test.h"

#include "stages/fetch.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <stdio.h>
#include <string.h>

static void parse(const char *json, const char *spec_dir, struct fetch_cfg *cfg,
                  enum vc_status want, const char *msg_has)
{
    cJSON *o = cJSON_Parse(json);
    struct vc_err err = { 0 };
    enum vc_status rc = fetch_cfg_parse(o, "source 'web'", spec_dir, 1000, cfg, &err);
    CHECK_INT(rc, want);
    if (msg_has && !strstr(err.msg, msg_has)) {
        fprintf(stderr, "message '%s' lacks '%s'\n", err.msg, msg_has);
        vc_test_failures++;
    }
    cJSON_Delete(o);
}

TEST(robots_directives)
{
    struct fetch_cfg c;
    parse("{\"user_agent_token\": \"MyLab\"}", NULL, &c, VC_OK, NULL);
    CHECK(fetch_robots_disallowed(&c, "noai"));
    CHECK(fetch_robots_disallowed(&c, "NoImageIndex"));
    CHECK(fetch_robots_disallowed(&c, "nofollow, noindex"));
    CHECK(!fetch_robots_disallowed(&c, "nofollow, noarchive"));
    CHECK(!fetch_robots_disallowed(&c, "googlebot: noai"));
    CHECK(fetch_robots_disallowed(&c, "mylab: noimageai"));
    CHECK(!fetch_robots_disallowed(&c, "unavailable_after: 25 Jun 2010 15:00:00 PST"));
    CHECK(!fetch_robots_disallowed(&c, "noai-not"));
    CHECK(strstr(c.user_agent, "vlmcurate/") == c.user_agent && strstr(c.user_agent, "MyLab"));
    CHECK_INT(c.max_bytes, 1000); /* capped by limits.max_entry_bytes */
    fetch_cfg_free(&c);
    parse("{\"disallowed_header_directives\": [\"NoArchive\"]}", NULL, &c, VC_OK, NULL);
    CHECK(fetch_robots_disallowed(&c, "noarchive"));
    CHECK(!fetch_robots_disallowed(&c, "noai"));
    CHECK(!fetch_robots_disallowed(&c, "somebot: noarchive")); /* no token configured */
    fetch_cfg_free(&c);
}

TEST(opt_out_list)
{
    const char *dir = vc_test_tmpdir();
    char path[512];
    snprintf(path, sizeof path, "%s/optout.txt", dir);
    const char *list = "# comment\n\n  Example.COM  \n*.cdn.net\nhttp://a.org/x.jpg\n";
    CHECK_INT(vc_test_write_file(path, list, strlen(list)), 0);
    struct fetch_cfg c;
    parse("{\"opt_out\": \"optout.txt\"}", dir, &c, VC_OK, NULL);
    CHECK(fetch_opted_out(&c, "http://example.com/a.jpg"));
    CHECK(fetch_opted_out(&c, "https://img.EXAMPLE.com:8443/a.jpg"));
    CHECK(!fetch_opted_out(&c, "http://notexample.com/a.jpg"));
    CHECK(!fetch_opted_out(&c, "http://example.com.evil.org/a.jpg"));
    CHECK(fetch_opted_out(&c, "http://x.cdn.net/a.jpg"));
    CHECK(fetch_opted_out(&c, "http://a.org/x.jpg"));
    CHECK(!fetch_opted_out(&c, "http://a.org/y.jpg"));
    fetch_cfg_free(&c);
}

TEST(reasons)
{
    CHECK_INT(fetch_curl_reason(CURLE_COULDNT_RESOLVE_HOST), VC_REASON_dns);
    CHECK_INT(fetch_curl_reason(CURLE_OPERATION_TIMEDOUT), VC_REASON_timeout);
    CHECK_INT(fetch_curl_reason(CURLE_PEER_FAILED_VERIFICATION), VC_REASON_tls);
    CHECK_INT(fetch_curl_reason(CURLE_SSL_CONNECT_ERROR), VC_REASON_tls);
    CHECK_INT(fetch_curl_reason(CURLE_COULDNT_CONNECT), VC_REASON_connect_failed);
    CHECK_INT(fetch_curl_reason(CURLE_TOO_MANY_REDIRECTS), VC_REASON_too_many_redirects);
    CHECK_INT(fetch_curl_reason(CURLE_PARTIAL_FILE), VC_REASON_truncated);
    CHECK_INT(fetch_curl_reason(CURLE_GOT_NOTHING), VC_REASON_network_error);
    CHECK_INT(fetch_http_reason(200), VC_REASON_none);
    CHECK_INT(fetch_http_reason(410), VC_REASON_http_404);
    CHECK_INT(fetch_http_reason(451), VC_REASON_http_4xx);
    CHECK_INT(fetch_http_reason(503), VC_REASON_http_5xx);
    CHECK_INT(fetch_http_reason(304), VC_REASON_http_other);
    CHECK_STR(vc_reason_name(VC_REASON_disallowed_by_header), "disallowed_by_header");
    CHECK_STR(vc_reason_name(VC_REASON_opted_out), "opted_out");
}

TEST(spec_errors)
{
    struct fetch_cfg c;
    parse("{\"concurency\": 4}", NULL, &c, VC_EUSAGE, "concurency");
    parse("{\"per_host\": 0}", NULL, &c, VC_EUSAGE, "per_host");
    parse("{\"opt_out\": \"/nonexistent/optout.txt\"}", NULL, &c, VC_EUSAGE, "opt_out");
    parse("{\"ca_file\": \"/nonexistent/ca.pem\"}", NULL, &c, VC_EUSAGE, "ca_file");
    parse("{\"resolve\": \"a:1:127.0.0.1\"}", NULL, &c, VC_EUSAGE, "resolve");
    parse("{\"user_agent_token\": \"a\\r\\nX-Evil: 1\"}", NULL, &c, VC_EUSAGE, "user_agent_token");
}

#define TESTS(X) X(robots_directives) X(opt_out_list) X(reasons) X(spec_errors)
TEST_MAIN(TESTS)
