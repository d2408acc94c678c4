/* fetch: downloads a batch of URLs with libcurl's multi interface, the
 * way a polite crawler does: many transfers on one thread, a cap per host,
 * connect and total timeouts, retries with exponential backoff for
 * timeouts, 429 and 5xx (a Retry-After is honoured up to a cap), a
 * redirect limit over http/https only, a size cap checked on
 * Content-Length and again while the body streams, a user agent naming the
 * tool and the user's token, X-Robots-Tag directives, and a local opt-out
 * list of URLs and domains.
 *
 * Bodies go to a spool file the caller owns, never to memory beyond the
 * transfers in flight: peak memory is about concurrency x max_bytes.
 * Every URL ends with a stable reason (VC_REASON_none when its body is in
 * the spool). */
#ifndef VC_STAGES_FETCH_H
#define VC_STAGES_FETCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/vc_err.h"

struct cJSON;
struct curl_slist;

struct fetch_cfg {
    uint32_t concurrency, per_host, retries, max_redirects;
    long connect_timeout_ms, timeout_ms, backoff_ms, max_retry_after_s;
    uint64_t max_bytes;
    char *user_agent, *token; /* token lower-cased; NULL when none */
    char **directives;        /* lower-cased */
    size_t n_directives;
    char *ca_file;
    struct curl_slist *resolve;
    char **optout_urls, **optout_domains; /* sorted */
    size_t n_optout_urls, n_optout_domains;
};

/* Reads the "fetch" object (NULL = all defaults; keys and defaults in the
 * README) of source `where`; paths resolve against spec_dir.  max_bytes is
 * also capped by `max_entry`.  VC_EUSAGE bad_spec naming the key. */
enum vc_status fetch_cfg_parse(const struct cJSON *obj, const char *where, const char *spec_dir,
                               uint64_t max_entry, struct fetch_cfg *cfg, struct vc_err *err);
void fetch_cfg_free(struct fetch_cfg *cfg);

struct fetch_result {
    enum vc_reason reason; /* none: the body is spool[off, off + len) */
    long http_code;        /* of the last response, 0 when none came */
    uint32_t attempts;
    uint64_t off, len;
    char content_type[64];
    char msg[160];
};

/* Fetches urls[i] for every i < n whose urls[i] is non-NULL (NULL entries
 * are left as they are), appending bodies to spool_fd from offset 0.
 * Per-URL outcomes go to res[i]; only VC_EFATAL (spool I/O, out of memory,
 * libcurl unusable) is returned as an error. */
enum vc_status fetch_run(const struct fetch_cfg *cfg, char *const *urls, size_t n, int spool_fd,
                         struct fetch_result *res, struct vc_err *err);

/* An unlinked read-write file in dir for fetch_run's bodies (closed by the
 * caller), or -1 with VC_EFATAL io_error in err. */
int fetch_spool_open(const char *dir, struct vc_err *err);
/* Reads res's body from the spool into *buf (grown as needed, owned by
 * the caller).  VC_EFATAL on a failed read or OOM. */
enum vc_status fetch_spool_read(int spool_fd, const struct fetch_result *res, uint8_t **buf,
                                size_t *cap, struct vc_err *err);
/* True when s starts with http:// or https:// (case-insensitive). */
bool fetch_is_url(const char *s);
/* Strips the white space around a URL in place (CSV/TSV lists often pad
 * their cells; img2dataset-style tools strip it); inner spaces stay. */
void fetch_url_trim(char *url);

/* The pieces of policy, exposed for tests. */
enum vc_reason fetch_curl_reason(int curl_code);
enum vc_reason fetch_http_reason(long http_code);
/* One X-Robots-Tag value ("noai, noimageai" or "token: noindex"): true
 * when it applies to us (no user-agent token, or ours) and names one of the
 * configured directives. */
bool fetch_robots_disallowed(const struct fetch_cfg *cfg, const char *value);
/* True when the URL or its host (or a parent domain of it) is listed. */
bool fetch_opted_out(const struct fetch_cfg *cfg, const char *url);

#endif
