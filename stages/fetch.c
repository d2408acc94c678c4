/* fetch: libcurl multi loop, per-host scheduling, retries and the
 * crawler's manners.  libcurl because it is the HTTP client every Linux
 * has (Debian libcurl4-openssl-dev): HTTP/1.1 and 2, TLS through OpenSSL
 * with the system trust store, redirects, decompression and connection
 * reuse across thousands of transfers on one thread; nothing here speaks
 * HTTP itself.
 *
 * Scheduling: a URL starts when a slot is free, its host has fewer than
 * per_host transfers running, and its retry time (if any) has come.  The
 * loop ends when every URL has a result; each transfer is bounded by the
 * total timeout and each URL by retries + 1 attempts, so it always ends. */
#include "fetch.h"

#include <cjson/cJSON.h>
#include <ctype.h>
/* The calls go through pointers (vc_dl), which curl's type-checking
 * macros would not let through. */
#define CURL_DISABLE_TYPECHECK
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "core/vc_dl.h"
#include "core/vc_mem.h"
#include "src_util.h"
#include "stage_cfg.h"

static const char *const default_directives[] = { "noai", "noimageai", "noindex", "noimageindex",
                                                  NULL };

/* libcurl, loaded when a spec fetches URLs (vc_dl). */
// clang-format off
#define CURL_FNS(X, t)                                                                             \
    X(t, curl_easy_cleanup) X(t, curl_easy_getinfo) X(t, curl_easy_init) X(t, curl_easy_reset)     \
    X(t, curl_easy_setopt) X(t, curl_easy_strerror) X(t, curl_free) X(t, curl_global_init)         \
    X(t, curl_multi_add_handle) X(t, curl_multi_cleanup) X(t, curl_multi_info_read)                \
    X(t, curl_multi_init) X(t, curl_multi_perform) X(t, curl_multi_poll)                           \
    X(t, curl_multi_remove_handle) X(t, curl_multi_setopt) X(t, curl_slist_append)                 \
    X(t, curl_slist_free_all) X(t, curl_url) X(t, curl_url_cleanup) X(t, curl_url_get)             \
    X(t, curl_url_set)
// clang-format on
static struct {
    CURL_FNS(VC_DL_MEMBER, )
} lc;
static const struct vc_dl_fn curl_fns[] = { CURL_FNS(VC_DL_ENTRY, lc) };
static struct vc_dl_lib curl_dl = VC_DL_LIB(VC_SONAME_CURL, curl_fns);

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void lower(char *s)
{
    for (; *s; s++)
        *s = (char)tolower((unsigned char)*s);
}

static char *trim(char *s)
{
    while (*s && isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

void fetch_url_trim(char *url)
{
    char *s = trim(url);
    if (s != url)
        memmove(url, s, strlen(s) + 1);
}

/* One entry a line: a URL (has "://") or a domain, which also covers its
 * subdomains.  Blank lines and '#' comments are skipped. */
static enum vc_status load_optout(struct fetch_cfg *cfg, const char *where, const char *path,
                                  struct vc_err *err)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec, "%s: fetch.opt_out '%s': %s", where,
                          path, strerror(errno));
    char *line = NULL;
    size_t lcap = 0, ucap = 0, dcap = 0;
    enum vc_status rc = VC_OK;
    while (rc == VC_OK && getline(&line, &lcap, f) >= 0) {
        char *s = trim(line);
        if (!*s || *s == '#')
            continue;
        if (strstr(s, "://")) {
            rc = src_strv_push(&cfg->optout_urls, &cfg->n_optout_urls, &ucap, s, err);
        } else {
            while (*s == '*' || *s == '.')
                s++;
            lower(s);
            if (*s)
                rc = src_strv_push(&cfg->optout_domains, &cfg->n_optout_domains, &dcap, s, err);
        }
    }
    if (rc == VC_OK && ferror(f))
        rc = vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec, "%s: fetch.opt_out '%s': read error",
                        where, path);
    free(line);
    fclose(f);
    if (cfg->n_optout_urls)
        qsort(cfg->optout_urls, cfg->n_optout_urls, sizeof(char *), cmp_str);
    if (cfg->n_optout_domains)
        qsort(cfg->optout_domains, cfg->n_optout_domains, sizeof(char *), cmp_str);
    return rc;
}

static enum vc_status str_list(const cJSON *obj, const char *where, const char *key,
                               const char *const *dflt, char ***v, size_t *n, bool lowercase,
                               struct vc_err *err)
{
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(obj, key);
    size_t cap = 0;
    if (!a || cJSON_IsNull(a)) {
        for (size_t i = 0; dflt && dflt[i]; i++)
            VC_TRY(src_strv_push(v, n, &cap, dflt[i], err));
        return VC_OK;
    }
    if (!cJSON_IsArray(a))
        return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec,
                          "%s: fetch.%s must be a list of strings", where, key);
    for (const cJSON *it = a->child; it; it = it->next) {
        if (!cJSON_IsString(it) || !it->valuestring[0])
            return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec,
                              "%s: fetch.%s must be a list of non-empty strings", where, key);
        VC_TRY(src_strv_push(v, n, &cap, it->valuestring, err));
        if (lowercase)
            lower((*v)[*n - 1]);
    }
    return VC_OK;
}

enum vc_status fetch_cfg_parse(const cJSON *obj, const char *where, const char *spec_dir,
                               uint64_t max_entry, struct fetch_cfg *cfg, struct vc_err *err)
{
    static const char *const keys[] = { "concurrency",
                                        "per_host",
                                        "connect_timeout_s",
                                        "timeout_s",
                                        "retries",
                                        "retry_backoff_s",
                                        "max_retry_after_s",
                                        "max_redirects",
                                        "max_bytes",
                                        "user_agent_token",
                                        "disallowed_header_directives",
                                        "opt_out",
                                        "ca_file",
                                        "resolve",
                                        NULL };
    memset(cfg, 0, sizeof *cfg);
    VC_TRY(vc_dl_load(&curl_dl, err));
    cJSON *empty = NULL;
    if (!obj)
        obj = empty = cJSON_CreateObject();
    if (!obj)
        return vc_err_oom(err);
    char w[300];
    snprintf(w, sizeof w, "%s: fetch", where);
    uint64_t conc, per_host, retries, redirects, max_bytes;
    double cto, to, backoff, max_ra;
    const char *token, *optout, *ca;
    enum vc_status rc = stage_cfg_check_keys(obj, w, keys, err);
    if (rc == VC_OK)
        rc = stage_cfg_u64(obj, w, "concurrency", 64, 1, 4096, &conc, err);
    if (rc == VC_OK)
        rc = stage_cfg_u64(obj, w, "per_host", 16, 1, 4096, &per_host, err);
    if (rc == VC_OK)
        rc = stage_cfg_double(obj, w, "connect_timeout_s", 10, 0.01, 600, &cto, err);
    if (rc == VC_OK)
        rc = stage_cfg_double(obj, w, "timeout_s", 30, 0.01, 3600, &to, err);
    if (rc == VC_OK)
        rc = stage_cfg_u64(obj, w, "retries", 2, 0, 10, &retries, err);
    if (rc == VC_OK)
        rc = stage_cfg_double(obj, w, "retry_backoff_s", 1, 0, 600, &backoff, err);
    if (rc == VC_OK)
        rc = stage_cfg_double(obj, w, "max_retry_after_s", 60, 0, 3600, &max_ra, err);
    if (rc == VC_OK)
        rc = stage_cfg_u64(obj, w, "max_redirects", 5, 0, 50, &redirects, err);
    if (rc == VC_OK)
        rc = stage_cfg_u64(obj, w, "max_bytes", max_entry, 1, UINT64_MAX, &max_bytes, err);
    if (rc == VC_OK)
        rc = stage_cfg_str(obj, w, "user_agent_token", NULL, &token, err);
    if (rc == VC_OK)
        rc = stage_cfg_str(obj, w, "opt_out", NULL, &optout, err);
    if (rc == VC_OK)
        rc = stage_cfg_str(obj, w, "ca_file", NULL, &ca, err);
    if (rc == VC_OK)
        rc = str_list(obj, where, "disallowed_header_directives", default_directives,
                      &cfg->directives, &cfg->n_directives, true, err);
    char **resolve = NULL;
    size_t n_resolve = 0;
    if (rc == VC_OK)
        rc = str_list(obj, where, "resolve", NULL, &resolve, &n_resolve, false, err);
    for (size_t i = 0; rc == VC_OK && i < n_resolve; i++) {
        struct curl_slist *g = lc.curl_slist_append(cfg->resolve, resolve[i]);
        if (!g)
            rc = vc_err_oom(err);
        else
            cfg->resolve = g;
    }
    src_paths_free(resolve, n_resolve);
    if (rc == VC_OK) {
        cfg->concurrency = (uint32_t)conc;
        cfg->per_host = (uint32_t)per_host;
        cfg->retries = (uint32_t)retries;
        cfg->max_redirects = (uint32_t)redirects;
        cfg->connect_timeout_ms = (long)(cto * 1000);
        cfg->timeout_ms = (long)(to * 1000);
        cfg->backoff_ms = (long)(backoff * 1000);
        cfg->max_retry_after_s = (long)max_ra;
        cfg->max_bytes = max_bytes < max_entry ? max_bytes : max_entry;
        char ua[256];
        if (token && (strpbrk(token, "\r\n()") || strlen(token) > 128))
            rc = vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec,
                            "%s: fetch.user_agent_token must be one short line without ( )", where);
        snprintf(ua, sizeof ua, "vlmcurate/%s%s%s%s", VC_VERSION, token ? " (compatible; " : "",
                 token ? token : "", token ? ")" : "");
        cfg->user_agent = vc_strdup(ua);
        cfg->token = token ? vc_strdup(token) : NULL;
        if (cfg->token)
            lower(cfg->token);
        if (rc == VC_OK && (!cfg->user_agent || (token && !cfg->token)))
            rc = vc_err_oom(err);
    }
    if (rc == VC_OK && ca) {
        cfg->ca_file = src_path_join(spec_dir, ca);
        if (!cfg->ca_file)
            rc = vc_err_oom(err);
        else if (access(cfg->ca_file, R_OK) != 0)
            rc = vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec, "%s: fetch.ca_file '%s': %s", where,
                            cfg->ca_file, strerror(errno));
    }
    if (rc == VC_OK && optout) {
        char *p = src_path_join(spec_dir, optout);
        rc = p ? load_optout(cfg, where, p, err) : vc_err_oom(err);
        free(p);
    }
    /* Once, at spec load, before any worker thread exists. */
    if (rc == VC_OK && lc.curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        rc = vc_err_set(err, VC_EFATAL, VC_REASON_io_error, "libcurl failed to initialise");
    cJSON_Delete(empty);
    if (rc < 0)
        fetch_cfg_free(cfg);
    return rc;
}

void fetch_cfg_free(struct fetch_cfg *cfg)
{
    free(cfg->user_agent);
    free(cfg->token);
    src_paths_free(cfg->directives, cfg->n_directives);
    free(cfg->ca_file);
    if (cfg->resolve) /* only a parsed spec has one, and libcurl loaded */
        lc.curl_slist_free_all(cfg->resolve);
    src_paths_free(cfg->optout_urls, cfg->n_optout_urls);
    src_paths_free(cfg->optout_domains, cfg->n_optout_domains);
    memset(cfg, 0, sizeof *cfg);
}

enum vc_reason fetch_curl_reason(int code)
{
    switch (code) {
    case CURLE_OPERATION_TIMEDOUT:
        return VC_REASON_timeout;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
        return VC_REASON_dns;
    case CURLE_COULDNT_CONNECT:
        return VC_REASON_connect_failed;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_SHUTDOWN_FAILED:
        return VC_REASON_tls;
    case CURLE_TOO_MANY_REDIRECTS:
        return VC_REASON_too_many_redirects;
    case CURLE_FILESIZE_EXCEEDED:
        return VC_REASON_too_large;
    case CURLE_PARTIAL_FILE:
        return VC_REASON_truncated;
    case CURLE_BAD_CONTENT_ENCODING:
        return VC_REASON_decode_error;
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
        return VC_REASON_bad_url;
    default:
        return VC_REASON_network_error;
    }
}

enum vc_reason fetch_http_reason(long code)
{
    if (code >= 200 && code < 300)
        return VC_REASON_none;
    if (code == 403)
        return VC_REASON_http_403;
    if (code == 404 || code == 410)
        return VC_REASON_http_404;
    if (code == 429)
        return VC_REASON_http_429;
    if (code >= 400 && code < 500)
        return VC_REASON_http_4xx;
    if (code >= 500 && code < 600)
        return VC_REASON_http_5xx;
    return VC_REASON_http_other;
}

bool fetch_robots_disallowed(const struct fetch_cfg *cfg, const char *value)
{
    char buf[512];
    snprintf(buf, sizeof buf, "%s", value);
    lower(buf);
    char *dirs = buf;
    /* "token: directives" when the part before the first colon is one
     * word; "unavailable_after: date" style values are directives. */
    char *colon = strchr(buf, ':');
    if (colon) {
        *colon = '\0';
        char *tok = trim(buf);
        if (*tok && !strpbrk(tok, " ,")) {
            bool known = false;
            for (size_t i = 0; i < cfg->n_directives; i++)
                known |= strcmp(cfg->directives[i], tok) == 0;
            if (!known) {
                if (!cfg->token || strcmp(tok, cfg->token) != 0)
                    return false;
                dirs = colon + 1;
            } else {
                *colon = ':';
            }
        } else {
            *colon = ':';
        }
    }
    for (char *save = NULL, *d = strtok_r(dirs, ",", &save); d; d = strtok_r(NULL, ",", &save)) {
        d = trim(d);
        for (size_t i = 0; i < cfg->n_directives; i++)
            if (strcmp(d, cfg->directives[i]) == 0)
                return true;
    }
    return false;
}

static bool sorted_has(char *const *v, size_t n, const char *s)
{
    return n && bsearch(&s, v, n, sizeof *v, cmp_str) != NULL;
}

/* Scheme checked (http, https) and lower-cased host of url, or NULL. */
static char *url_host(const char *url)
{
    CURLU *u = lc.curl_url();
    char *host = NULL, *scheme = NULL, *out = NULL;
    if (u && lc.curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
        lc.curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
        (strcmp(scheme, "http") == 0 || strcmp(scheme, "https") == 0) &&
        lc.curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK) {
        out = vc_strdup(host);
        if (out)
            lower(out);
    }
    lc.curl_free(host);
    lc.curl_free(scheme);
    lc.curl_url_cleanup(u);
    return out;
}

bool fetch_opted_out(const struct fetch_cfg *cfg, const char *url)
{
    if (sorted_has(cfg->optout_urls, cfg->n_optout_urls, url))
        return true;
    if (!cfg->n_optout_domains)
        return false;
    char *host = url_host(url);
    bool hit = false;
    for (const char *h = host; h && !hit; h = strchr(h, '.'), h = h ? h + 1 : NULL)
        hit = sorted_has(cfg->optout_domains, cfg->n_optout_domains, h);
    free(host);
    return hit;
}

/* ---- the transfer loop ---- */

struct xfer {
    CURL *h;
    struct fetch_run *run;
    size_t idx; /* URL index; SIZE_MAX when the slot is free */
    uint8_t *buf;
    size_t len, cap;
    long status; /* of the response whose headers are arriving */
    bool too_large, disallowed;
    char ctype[64];
};

struct fetch_run {
    const struct fetch_cfg *cfg;
    char *const *urls;
    struct fetch_result *res;
    size_t n;
    int spool;
    uint64_t spool_off;
    uint32_t *host;     /* host id per URL */
    uint32_t *busy;     /* transfers running per host id */
    int64_t *ready_at;  /* ms: when a retry may start */
    uint8_t *state;     /* 0 waiting, 1 running, 2 done */
    size_t first_wait;  /* no waiting URL before this index */
    struct xfer *slots; /* concurrency of them */
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
    struct xfer *x = ud;
    size_t len = size * n;
    char line[600];
    size_t k = len < sizeof line - 1 ? len : sizeof line - 1;
    memcpy(line, p, k);
    line[k] = '\0';
    if (strncmp(line, "HTTP/", 5) == 0) {
        /* A new response (after a redirect or a 100): its own headers. */
        const char *sp = strchr(line, ' ');
        x->status = sp ? strtol(sp + 1, NULL, 10) : 0;
        x->disallowed = false;
        x->ctype[0] = '\0';
        return len;
    }
    char *colon = strchr(line, ':');
    if (!colon)
        return len;
    *colon = '\0';
    char *value = trim(colon + 1);
    bool ok = x->status >= 200 && x->status < 300;
    if (strcasecmp(line, "x-robots-tag") == 0 && ok && fetch_robots_disallowed(x->run->cfg, value))
        x->disallowed = true;
    else if (strcasecmp(line, "content-type") == 0)
        snprintf(x->ctype, sizeof x->ctype, "%s", value);
    else if (strcasecmp(line, "content-length") == 0 && ok) {
        char *end;
        errno = 0;
        unsigned long long cl = strtoull(value, &end, 10);
        if (errno == 0 && end != value && cl > x->run->cfg->max_bytes) {
            x->too_large = true;
            return 0; /* abort before the body */
        }
        if (errno == 0 && end != value && cl > x->cap && cl <= x->run->cfg->max_bytes) {
            uint8_t *g = realloc(x->buf, (size_t)cl);
            if (g)
                x->buf = g, x->cap = (size_t)cl;
        }
    }
    return len;
}

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    struct xfer *x = ud;
    size_t len = size * n;
    if (x->disallowed)
        return 0; /* the headers said no: do not take the body */
    if (len > x->run->cfg->max_bytes - x->len) {
        x->too_large = true;
        return 0;
    }
    if (x->len + len > x->cap) {
        size_t nc = x->cap ? x->cap : 65536;
        while (nc < x->len + len)
            nc *= 2;
        if (nc > x->run->cfg->max_bytes)
            nc = (size_t)x->run->cfg->max_bytes;
        uint8_t *g = realloc(x->buf, nc);
        if (!g)
            return 0; /* ends as a network error; memory is the caller's cap */
        x->buf = g;
        x->cap = nc;
    }
    memcpy(x->buf + x->len, p, len);
    x->len += len;
    return len;
}

static enum vc_status slot_start(struct fetch_run *r, struct xfer *x, size_t i, CURLM *m,
                                 struct vc_err *err)
{
    const struct fetch_cfg *c = r->cfg;
    if (!x->h && !(x->h = lc.curl_easy_init()))
        return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "curl_easy_init failed");
    CURL *h = x->h;
    lc.curl_easy_reset(h);
    x->idx = i;
    x->len = 0;
    x->status = 0;
    x->too_large = x->disallowed = false;
    x->ctype[0] = '\0';
    lc.curl_easy_setopt(h, CURLOPT_URL, r->urls[i]);
    lc.curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    lc.curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    lc.curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
    lc.curl_easy_setopt(h, CURLOPT_MAXREDIRS, (long)c->max_redirects);
    lc.curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, c->connect_timeout_ms);
    lc.curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, c->timeout_ms);
    lc.curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    lc.curl_easy_setopt(h, CURLOPT_USERAGENT, c->user_agent);
    lc.curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "");
    lc.curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)c->max_bytes);
    lc.curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    lc.curl_easy_setopt(h, CURLOPT_HEADERDATA, x);
    lc.curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    lc.curl_easy_setopt(h, CURLOPT_WRITEDATA, x);
    lc.curl_easy_setopt(h, CURLOPT_PRIVATE, x);
    if (c->ca_file)
        lc.curl_easy_setopt(h, CURLOPT_CAINFO, c->ca_file);
    if (c->resolve)
        lc.curl_easy_setopt(h, CURLOPT_RESOLVE, c->resolve);
    r->state[i] = 1;
    r->busy[r->host[i]]++;
    r->res[i].attempts++;
    if (lc.curl_multi_add_handle(m, h) != CURLM_OK)
        return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "curl_multi_add_handle failed");
    return VC_OK;
}

/* Starts what may start now; returns the ms until a waiting retry is due
 * (or -1 when none waits on time). */
static enum vc_status schedule(struct fetch_run *r, CURLM *m, size_t *free_slots, int64_t *wait,
                               struct vc_err *err)
{
    int64_t t = now_ms();
    *wait = -1;
    while (r->first_wait < r->n && r->state[r->first_wait] != 0)
        r->first_wait++;
    for (size_t i = r->first_wait; i < r->n && *free_slots; i++) {
        if (r->state[i] != 0 || r->busy[r->host[i]] >= r->cfg->per_host)
            continue;
        if (r->ready_at[i] > t) {
            int64_t d = r->ready_at[i] - t;
            if (*wait < 0 || d < *wait)
                *wait = d;
            continue;
        }
        struct xfer *x = NULL;
        for (size_t s = 0; s < r->cfg->concurrency && !x; s++)
            if (r->slots[s].idx == SIZE_MAX)
                x = &r->slots[s];
        VC_TRY(slot_start(r, x, i, m, err));
        (*free_slots)--;
    }
    return VC_OK;
}

static enum vc_status finish(struct fetch_run *r, struct xfer *x, CURLcode cc, CURLM *m,
                             struct vc_err *err)
{
    size_t i = x->idx;
    struct fetch_result *res = &r->res[i];
    long code = 0;
    lc.curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &code);
    curl_off_t retry_after = 0;
    lc.curl_easy_getinfo(x->h, CURLINFO_RETRY_AFTER, &retry_after);
    lc.curl_multi_remove_handle(m, x->h);
    r->busy[r->host[i]]--;
    x->idx = SIZE_MAX;
    res->http_code = code;
    snprintf(res->content_type, sizeof res->content_type, "%s", x->ctype);
    bool retry = false;
    if (x->disallowed) {
        res->reason = VC_REASON_disallowed_by_header;
        snprintf(res->msg, sizeof res->msg, "X-Robots-Tag forbids use");
    } else if (x->too_large || cc == CURLE_FILESIZE_EXCEEDED) {
        res->reason = VC_REASON_too_large;
        snprintf(res->msg, sizeof res->msg, "body larger than %llu bytes",
                 (unsigned long long)r->cfg->max_bytes);
    } else if (cc != CURLE_OK) {
        res->reason = fetch_curl_reason(cc);
        snprintf(res->msg, sizeof res->msg, "%s", lc.curl_easy_strerror(cc));
        retry = res->reason == VC_REASON_timeout;
    } else if ((res->reason = fetch_http_reason(code)) != VC_REASON_none) {
        snprintf(res->msg, sizeof res->msg, "HTTP status %ld", code);
        retry = code == 429 || (code >= 500 && code < 600);
    }
    if (retry && res->attempts <= r->cfg->retries) {
        int64_t delay = r->cfg->backoff_ms << (res->attempts - 1);
        if (retry_after > r->cfg->max_retry_after_s) {
            snprintf(res->msg, sizeof res->msg,
                     "HTTP status %ld, Retry-After %lld s is above %ld s", code,
                     (long long)retry_after, r->cfg->max_retry_after_s);
        } else {
            if (retry_after * 1000 > delay)
                delay = retry_after * 1000;
            r->ready_at[i] = now_ms() + delay;
            r->state[i] = 0;
            if (i < r->first_wait)
                r->first_wait = i;
            return VC_OK;
        }
    }
    r->state[i] = 2;
    if (res->reason != VC_REASON_none)
        return VC_OK;
    /* The body goes to the spool; the slot keeps its buffer for the next. */
    for (size_t done = 0; done < x->len;) {
        ssize_t w = pwrite(r->spool, x->buf + done, x->len - done, (off_t)(r->spool_off + done));
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return vc_err_set(err, VC_EFATAL, VC_REASON_io_error, "download spool: %s",
                              strerror(errno));
        done += (size_t)w;
    }
    res->off = r->spool_off;
    res->len = x->len;
    r->spool_off += x->len;
    if (x->cap > (1u << 20)) { /* do not keep a huge buffer for small images */
        free(x->buf);
        x->buf = NULL;
        x->cap = 0;
    }
    return VC_OK;
}

/* Host ids: URLs sorted by host, equal hosts share an id.  A URL whose
 * host cannot be parsed is finished as bad_url here. */
static int cmp_host(const void *a, const void *b, void *hosts)
{
    char **h = hosts;
    return strcmp(h[*(const size_t *)a], h[*(const size_t *)b]);
}

static enum vc_status assign_hosts(struct fetch_run *r, size_t *pending, struct vc_err *err)
{
    char **hosts = calloc(r->n ? r->n : 1, sizeof *hosts);
    size_t *ord = calloc(r->n ? r->n : 1, sizeof *ord);
    enum vc_status rc = VC_OK;
    if (!hosts || !ord)
        rc = vc_err_oom(err);
    size_t k = 0;
    for (size_t i = 0; rc == VC_OK && i < r->n; i++) {
        if (!r->urls[i]) {
            r->state[i] = 2;
            continue;
        }
        if (!(hosts[i] = url_host(r->urls[i]))) {
            r->state[i] = 2;
            r->res[i].reason = VC_REASON_bad_url;
            snprintf(r->res[i].msg, sizeof r->res[i].msg, "not an http(s) URL");
            continue;
        }
        ord[k++] = i;
    }
    if (rc == VC_OK) {
        qsort_r(ord, k, sizeof *ord, cmp_host, hosts);
        uint32_t id = 0;
        for (size_t j = 0; j < k; j++) {
            if (j && strcmp(hosts[ord[j]], hosts[ord[j - 1]]) != 0)
                id++;
            r->host[ord[j]] = id;
        }
    }
    *pending = k;
    for (size_t i = 0; hosts && i < r->n; i++)
        free(hosts[i]);
    free(hosts);
    free(ord);
    return rc;
}

enum vc_status fetch_run(const struct fetch_cfg *cfg, char *const *urls, size_t n, int spool_fd,
                         struct fetch_result *res, struct vc_err *err)
{
    struct fetch_run r = { .cfg = cfg, .urls = urls, .res = res, .n = n, .spool = spool_fd };
    size_t m1 = n ? n : 1;
    r.host = calloc(m1, sizeof *r.host);
    r.busy = calloc(m1, sizeof *r.busy);
    r.ready_at = calloc(m1, sizeof *r.ready_at);
    r.state = calloc(m1, sizeof *r.state);
    r.slots = calloc(cfg->concurrency, sizeof *r.slots);
    CURLM *m = lc.curl_multi_init();
    enum vc_status rc = VC_OK;
    if (!r.host || !r.busy || !r.ready_at || !r.state || !r.slots || !m)
        rc = vc_err_oom(err);
    for (size_t s = 0; rc == VC_OK && s < cfg->concurrency; s++) {
        r.slots[s].idx = SIZE_MAX;
        r.slots[s].run = &r;
    }
    size_t pending = 0;
    if (rc == VC_OK)
        rc = assign_hosts(&r, &pending, err);
    if (rc == VC_OK) {
        lc.curl_multi_setopt(m, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)cfg->concurrency);
        lc.curl_multi_setopt(m, CURLMOPT_MAX_HOST_CONNECTIONS, (long)cfg->per_host);
    }
    size_t free_slots = cfg->concurrency;
    while (rc == VC_OK && pending > 0) {
        int64_t wait;
        rc = schedule(&r, m, &free_slots, &wait, err);
        if (rc < 0)
            break;
        int running = 0;
        if (lc.curl_multi_perform(m, &running) != CURLM_OK) {
            rc = vc_err_set(err, VC_EFATAL, VC_REASON_io_error, "curl_multi_perform failed");
            break;
        }
        CURLMsg *msg;
        int left;
        bool freed = false;
        while (rc == VC_OK && (msg = lc.curl_multi_info_read(m, &left))) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            struct xfer *x;
            lc.curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
            size_t i = x->idx;
            rc = finish(&r, x, msg->data.result, m, err);
            free_slots++;
            freed = true;
            if (r.state[i] == 2)
                pending--;
        }
        if (rc < 0 || pending == 0 || freed)
            continue;
        /* Sleep until curl has work, or the next retry is due. */
        int ms = wait >= 0 && wait < 1000 ? (int)wait : 1000;
        if (lc.curl_multi_poll(m, NULL, 0, ms, NULL) != CURLM_OK)
            rc = vc_err_set(err, VC_EFATAL, VC_REASON_io_error, "curl_multi_poll failed");
    }
    for (size_t s = 0; r.slots && s < cfg->concurrency; s++) {
        if (r.slots[s].h) {
            if (r.slots[s].idx != SIZE_MAX)
                lc.curl_multi_remove_handle(m, r.slots[s].h);
            lc.curl_easy_cleanup(r.slots[s].h);
        }
        free(r.slots[s].buf);
    }
    lc.curl_multi_cleanup(m);
    free(r.host);
    free(r.busy);
    free(r.ready_at);
    free(r.state);
    free(r.slots);
    return rc;
}

int fetch_spool_open(const char *dir, struct vc_err *err)
{
    int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd >= 0)
        return fd;
    char path[4096];
    snprintf(path, sizeof path, "%s/fetch-spool-XXXXXX", dir);
    fd = mkstemp(path);
    if (fd >= 0)
        unlink(path);
    else
        vc_err_set(err, VC_EFATAL, VC_REASON_io_error, "%s: cannot make a download spool: %s", dir,
                   strerror(errno));
    return fd;
}

enum vc_status fetch_spool_read(int spool_fd, const struct fetch_result *res, uint8_t **buf,
                                size_t *cap, struct vc_err *err)
{
    if (res->len > *cap) {
        uint8_t *g = realloc(*buf, (size_t)res->len);
        if (!g)
            return vc_err_oom(err);
        *buf = g;
        *cap = (size_t)res->len;
    }
    if (pread(spool_fd, *buf, (size_t)res->len, (off_t)res->off) != (ssize_t)res->len)
        return vc_err_set(err, VC_EFATAL, VC_REASON_io_error, "download spool: read failed");
    return VC_OK;
}

bool fetch_is_url(const char *s)
{
    return strncasecmp(s, "http://", 7) == 0 || strncasecmp(s, "https://", 8) == 0;
}
