/* src_util: brace expansion and careful file reads for the sources.  The
 * only files opened are the ones a spec or a record names; a record's path
 * never leaves its images_dir through ".." or an absolute path, and never
 * reads a device or a folder. */
#include "src_util.h"

#include "core/img.h"
#include "core/vc_mem.h"
#include "core/vc_utf8.h"
#include "fetch.h"
#include "source.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void src_paths_free(char **paths, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(paths[i]);
    free(paths);
}

enum vc_status src_strv_push(char ***v, size_t *n, size_t *cap, const char *s, struct vc_err *err)
{
    char **g = vc_grow_array(*v, cap, *n + 1, sizeof *g, 16);
    if (!g)
        return vc_err_oom(err);
    *v = g;
    if (!((*v)[*n] = vc_strdup(s)))
        return vc_err_oom(err);
    (*n)++;
    return VC_OK;
}

void src_units_free(struct source_unit *units, size_t n)
{
    for (size_t i = 0; units && i < n; i++)
        free(units[i].file);
    free(units);
}

enum vc_status src_load_error(enum vc_status rc, const char *where, struct vc_err *err)
{
    if (rc == VC_ESHARD)
        err->status = VC_EUSAGE, err->reason = VC_REASON_bad_spec;
    /* The key readers and the column checks name the source already. */
    size_t n = strlen(where);
    if (strncmp(err->msg, where, n) == 0 && err->msg[n] == ':')
        return err->status;
    return vc_err_prefix(err, "%s", where);
}

static enum vc_status push(char ***paths, size_t *n, char *p, struct vc_err *err)
{
    if (!p)
        return vc_err_oom(err);
    if (*n >= SRC_MAX_EXPANSION) {
        free(p);
        return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec,
                          "pattern expands to more than %d paths", SRC_MAX_EXPANSION);
    }
    /* The list's capacity is not kept (src_brace_expand's callers hand over
     * only the array and its count): it is the power of two at or above n,
     * the series vc_grow_array doubles through from 1, so the array is full
     * exactly when n is 0 or a power of two (otherwise any cap above n
     * says "not full"). */
    size_t cap = (*n & (*n - 1)) == 0 ? *n : SIZE_MAX;
    char **g = vc_grow_array(*paths, &cap, *n + 1, sizeof *g, 1);
    if (!g) {
        free(p);
        return vc_err_oom(err);
    }
    *paths = g;
    (*paths)[(*n)++] = p;
    return VC_OK;
}

/* prefix + alt + rest, then expand the braces left in rest. */
static enum vc_status expand_with(const char *prefix, size_t np, const char *alt, size_t na,
                                  const char *rest, char ***paths, size_t *n, struct vc_err *err)
{
    size_t nr = strlen(rest);
    char *s = malloc(np + na + nr + 1);
    if (!s)
        return vc_err_oom(err);
    memcpy(s, prefix, np);
    memcpy(s + np, alt, na);
    memcpy(s + np + na, rest, nr + 1);
    enum vc_status rc = src_brace_expand(s, paths, n, err);
    free(s);
    return rc;
}

static int parse_range(const char *a, size_t len, long long *lo, long long *hi, int *width)
{
    char buf[64];
    if (len >= sizeof buf)
        return 0;
    memcpy(buf, a, len);
    buf[len] = '\0';
    char *dots = strstr(buf, "..");
    if (!dots || dots == buf || !dots[2])
        return 0;
    *dots = '\0';
    char *e1, *e2;
    *lo = strtoll(buf, &e1, 10);
    *hi = strtoll(dots + 2, &e2, 10);
    *width = (int)strlen(buf);
    return *e1 == '\0' && *e2 == '\0' && *lo >= 0 && *hi >= 0;
}

enum vc_status src_brace_expand(const char *pattern, char ***paths, size_t *n, struct vc_err *err)
{
    const char *open = strchr(pattern, '{');
    if (!open) {
        if (strchr(pattern, '}'))
            return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec, "unbalanced '}' in '%s'",
                              pattern);
        return push(paths, n, vc_strdup(pattern), err);
    }
    const char *close = strchr(open, '}');
    if (!close || memchr(open + 1, '{', (size_t)(close - open - 1)))
        return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec, "unbalanced or nested braces in '%s'",
                          pattern);
    size_t np = (size_t)(open - pattern), nb = (size_t)(close - open - 1);
    long long lo, hi;
    int width;
    if (parse_range(open + 1, nb, &lo, &hi, &width)) {
        if (hi - lo >= SRC_MAX_EXPANSION || lo - hi >= SRC_MAX_EXPANSION)
            return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec,
                              "range in '%s' expands to more than %d paths", pattern,
                              SRC_MAX_EXPANSION);
        long long step = lo <= hi ? 1 : -1;
        for (long long v = lo;; v += step) {
            char num[32];
            int k = snprintf(num, sizeof num, "%0*lld", width, v);
            VC_TRY(expand_with(pattern, np, num, (size_t)k, close + 1, paths, n, err));
            if (v == hi)
                break;
        }
        return VC_OK;
    }
    const char *a = open + 1;
    for (;;) {
        const char *comma = memchr(a, ',', (size_t)(close - a));
        const char *end = comma ? comma : close;
        VC_TRY(expand_with(pattern, np, a, (size_t)(end - a), close + 1, paths, n, err));
        if (!comma)
            break;
        a = comma + 1;
    }
    return VC_OK;
}

char *src_path_join(const char *base_dir, const char *path)
{
    if (!base_dir || !base_dir[0] || path[0] == '/')
        return vc_strdup(path);
    size_t nb = strlen(base_dir), np = strlen(path);
    char *s = malloc(nb + np + 2);
    if (s) {
        memcpy(s, base_dir, nb);
        s[nb] = '/';
        memcpy(s + nb + 1, path, np + 1);
    }
    return s;
}

bool src_shard_name(const char *name)
{
    static const char *const suffixes[] = { ".tar", ".tar.gz", ".tgz", ".tar.zst" };
    size_t n = strlen(name);
    for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
        size_t k = strlen(suffixes[i]);
        if (n > k && strcmp(name + n - k, suffixes[i]) == 0)
            return true;
    }
    return false;
}

/* A shard name cut around its last run of digits: "part-00042.tar" is
 * "part-", 42 (5 digits), ".tar". */
struct numbered {
    size_t pre_len, width;
    const char *post;
    unsigned long long number;
};

static bool numbered_split(const char *name, struct numbered *out)
{
    const char *end = NULL, *p;
    for (p = name; *p; p++)
        if (*p >= '0' && *p <= '9' && !(p[1] >= '0' && p[1] <= '9'))
            end = p + 1;
    if (!end)
        return false;
    const char *start = end;
    while (start > name && start[-1] >= '0' && start[-1] <= '9')
        start--;
    out->width = (size_t)(end - start);
    if (out->width > 18)
        return false;
    out->pre_len = (size_t)(start - name);
    out->post = end;
    out->number = strtoull(start, NULL, 10);
    return true;
}

static bool same_series(const char *a, const struct numbered *na, const char *b,
                        const struct numbered *nb)
{
    return na->pre_len == nb->pre_len && na->width == nb->width &&
           strncmp(a, b, na->pre_len) == 0 && strcmp(na->post, nb->post) == 0;
}

/* What to write instead of a folder in "urls": an img2dataset output
 * folder holds 00000.tar, 00001.tar, ... beside their parquet and stats
 * files, which a brace pattern names exactly.  Nothing is globbed at run
 * time (a folder's listing may change between a run's tasks), so the hint
 * spells the pattern out, when the folder's shards are one series
 * numbered without gaps; otherwise it says to list them. */
static void folder_hint(const char *dir, const char *shown, struct vc_err *err)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    char first[256] = "";
    struct numbered f = { 0 }, n;
    unsigned long long lo = ULLONG_MAX, hi = 0, count = 0;
    bool series = true;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        if (e->d_name[0] == '.' || !src_shard_name(e->d_name))
            continue;
        if (count++ == 0) {
            series = strlen(e->d_name) < sizeof first;
            snprintf(first, sizeof first, "%s", e->d_name);
            series = series && numbered_split(first, &f);
            n = f;
        } else {
            series =
                series && numbered_split(e->d_name, &n) && same_series(first, &f, e->d_name, &n);
        }
        if (series) {
            lo = n.number < lo ? n.number : lo;
            hi = n.number > hi ? n.number : hi;
        }
    }
    closedir(d);
    size_t len = strlen(err->msg), sl = strlen(shown);
    while (sl > 1 && shown[sl - 1] == '/')
        sl--;
    /* Names of one series are distinct numbers: a full range has no gap. */
    if (count == 0)
        snprintf(err->msg + len, sizeof err->msg - len,
                 " (it holds no .tar, .tar.gz, .tgz or .tar.zst file)");
    else if (series && hi - lo + 1 == count)
        snprintf(err->msg + len, sizeof err->msg - len,
                 "; for its %llu shards write \"%.*s/%.*s{%0*llu..%0*llu}%s\"", count, (int)sl,
                 shown, (int)f.pre_len, first, (int)f.width, lo, (int)f.width, hi, f.post);
    else
        snprintf(err->msg + len, sizeof err->msg - len,
                 "; list its %llu shards in the key (a path or a brace pattern each)", count);
}

enum vc_status src_urls_expand(const cJSON *urls, const char *where, const char *key,
                               const struct stage_ctx *ctx, char ***paths, size_t *n,
                               struct vc_err *err)
{
    char **raw = NULL;
    size_t n_raw = 0;
    enum vc_status rc = VC_OK;
    if (cJSON_IsString(urls)) {
        rc = src_brace_expand(urls->valuestring, &raw, &n_raw, err);
    } else if (cJSON_IsArray(urls) && cJSON_GetArraySize(urls) > 0) {
        const cJSON *it;
        cJSON_ArrayForEach(it, urls)
        {
            if (!cJSON_IsString(it)) {
                rc = vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec, "expected strings");
                break;
            }
            if ((rc = src_brace_expand(it->valuestring, &raw, &n_raw, err)) < 0)
                break;
        }
    } else {
        rc = vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec,
                        "expected a path, a brace pattern or a list of them");
    }
    /* Every path must name a file now: a typo found at load costs a
     * message, found in MAP it costs a run (and a brace range over a
     * million missing files a million error units).  The first missing
     * one ends the check.  A task re-reading the spec skips it: the run's
     * submission checked, and its own unit's file is opened anyway. */
    for (size_t i = 0; rc == VC_OK && i < n_raw; i++) {
        rc = push(paths, n, src_path_join(ctx->spec_dir, raw[i]), err);
        if (rc == VC_OK && !ctx->inputs_checked) {
            struct stat st;
            rc = src_check_path((*paths)[*n - 1], false, err);
            if (rc < 0 && stat((*paths)[*n - 1], &st) == 0 && S_ISDIR(st.st_mode))
                folder_hint((*paths)[*n - 1], raw[i], err);
        }
    }
    src_paths_free(raw, n_raw);
    if (rc < 0) {
        src_paths_free(*paths, *n);
        *paths = NULL, *n = 0;
        vc_err_prefix(err, "%s: key '%s'", where, key);
    }
    return rc;
}

enum vc_status src_check_path(const char *path, bool want_dir, struct vc_err *err)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        bool glob = strpbrk(path, "*?[") != NULL;
        return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec, "'%s': %s%s", path, strerror(errno),
                          glob ? " (wildcards are not expanded: use a brace pattern such as "
                                 "'shard-{000..127}.tar' or a list)"
                               : "");
    }
    if (want_dir && !S_ISDIR(st.st_mode))
        return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec, "'%s': not a folder", path);
    if (!want_dir && S_ISDIR(st.st_mode))
        return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec, "'%s': a folder, not a file", path);
    return VC_OK;
}

enum vc_status src_check_spec_paths(const char *list_key, const char *list, const char *images_dir,
                                    const struct stage_ctx *ctx, struct vc_err *err)
{
    if (src_check_path(list, false, err) < 0)
        return vc_err_prefix(err, "key '%s'", list_key);
    if (!ctx->inputs_checked && src_check_path(images_dir, true, err) < 0)
        return vc_err_prefix(err, "key 'images_dir'");
    return VC_OK;
}

/* How deep the brackets of a JSON text nest (outside strings). */
static size_t json_depth(const char *text, size_t n)
{
    size_t depth = 0, max = 0;
    bool in_string = false;
    for (size_t i = 0; i < n; i++) {
        char c = text[i];
        if (in_string) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_string = false;
        } else if (c == '"') {
            in_string = true;
        } else if (c == '[' || c == '{') {
            if (++depth > max)
                max = depth;
        } else if ((c == ']' || c == '}') && depth) {
            depth--;
        }
    }
    return max;
}

enum vc_status src_doc_positions(const cJSON *texts, const cJSON *images, struct vc_err *err)
{
    if (!cJSON_IsArray(texts) || !cJSON_IsArray(images) ||
        cJSON_GetArraySize(texts) != cJSON_GetArraySize(images))
        return vc_err_set(err, VC_ESAMPLE, VC_REASON_json_invalid,
                          "'texts' and 'images' must be lists of the same length");
    int pos = 0;
    for (const cJSON *t = texts->child, *im = images->child; t; t = t->next, im = im->next, pos++) {
        if (!(cJSON_IsString(t) || cJSON_IsNull(t)) || !(cJSON_IsString(im) || cJSON_IsNull(im)))
            return vc_err_set(err, VC_ESAMPLE, VC_REASON_json_invalid,
                              "'texts' and 'images' entries must be strings or null");
        if (cJSON_IsString(t) == cJSON_IsString(im))
            return vc_err_set(err, VC_ESAMPLE, VC_REASON_json_invalid, "position %d holds %s", pos,
                              cJSON_IsString(t) ? "both a text and an image"
                                                : "neither a text nor an image");
    }
    return VC_OK;
}

enum vc_status src_json_object(const char *text, size_t n, cJSON **out, struct vc_err *err)
{
    *out = vc_json_parse_exact(text, n);
    if (cJSON_IsObject(*out))
        return VC_OK;
    bool parsed = *out != NULL, array = cJSON_IsArray(*out);
    cJSON_Delete(*out);
    *out = NULL;
    if (parsed)
        return vc_err_set(err, VC_ESAMPLE, VC_REASON_json_invalid, "a JSON %s, not an object",
                          array ? "array" : "scalar");
    size_t extra = vc_json_extra_at(text, n);
    if (extra < n)
        return vc_err_set(err, VC_ESAMPLE, VC_REASON_json_invalid,
                          "more after the JSON value, at byte %zu (two records on one line?)",
                          extra);
    bool escaped;
    size_t at = vc_json_find_nul(text, n, &escaped);
    if (at < n)
        return vc_err_set(err, VC_ESAMPLE, VC_REASON_json_invalid,
                          "%s at byte %zu: it would cut its string short",
                          escaped ? "a NUL character (\\u0000)" : "a NUL byte", at);
    if (json_depth(text, n) > CJSON_NESTING_LIMIT)
        return vc_err_set(err, VC_ESAMPLE, VC_REASON_json_invalid,
                          "JSON nested deeper than %d levels", CJSON_NESTING_LIMIT);
    return vc_err_set(err, VC_ESAMPLE, VC_REASON_json_invalid, "not valid JSON");
}

enum vc_status src_image_format(const uint8_t *data, size_t n, const char *path, enum img_format *f,
                                struct vc_err *err)
{
    if (n == 0)
        return vc_err_set(err, VC_ESAMPLE, VC_REASON_empty, "%s: empty file (0 bytes)", path);
    *f = img_sniff(data, n);
    if (*f == IMG_FORMAT_UNKNOWN)
        return vc_err_set(err, VC_ESAMPLE, VC_REASON_unsupported_format,
                          "%s: not a JPEG, PNG or WebP file", path);
    return VC_OK;
}

int src_relpath_safe(const char *path)
{
    if (!path[0] || path[0] == '/' || strchr(path, '\\'))
        return 0;
    for (const char *p = path; *p;) {
        const char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        if (len == 2 && p[0] == '.' && p[1] == '.')
            return 0;
        p += len + (slash ? 1 : 0);
    }
    return 1;
}

enum vc_status src_read_file(const char *dir, const char *rel, uint64_t max_bytes, uint8_t **buf,
                             size_t *cap, size_t *size, struct vc_err *err)
{
    if (!rel[0])
        return vc_err_set(err, VC_ESAMPLE, VC_REASON_missing_image, "empty image path");
    /* Looked up under the folder, a URL is merely "no such file", which
     * hides that the source was asked to download nothing. */
    if (fetch_is_url(rel))
        return vc_err_set(err, VC_ESAMPLE, VC_REASON_not_fetched,
                          "image '%s' is an http(s) URL and this source downloads nothing "
                          "(documents: give the source \"fetch\"; a list of URLs: a \"urls\" "
                          "source)",
                          rel);
    if (!src_relpath_safe(rel))
        return vc_err_set(err, VC_ESAMPLE, VC_REASON_unsafe_path,
                          "image path '%s' is absolute or leaves the images folder", rel);
    char *path = src_path_join(dir, rel);
    if (!path)
        return vc_err_oom(err);
    enum vc_status rc = VC_OK;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    struct stat st;
    if (fd < 0) {
        rc = errno == ENOENT || errno == ENOTDIR
                 ? vc_err_set(err, VC_ESAMPLE, VC_REASON_missing_image, "%s: no such file", path)
                 : vc_err_set(err, VC_ESAMPLE, VC_REASON_io_error, "%s: %s", path, strerror(errno));
        free(path);
        return rc;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        rc = vc_err_set(err, VC_ESAMPLE, VC_REASON_not_a_file, "%s: not a regular file", path);
    } else if ((uint64_t)st.st_size > max_bytes) {
        rc = vc_err_set(err, VC_ESAMPLE, VC_REASON_entry_too_large,
                        "%s: %lld bytes, the limit is %llu", path, (long long)st.st_size,
                        (unsigned long long)max_bytes);
    } else {
        size_t want = (size_t)st.st_size;
        if (want > *cap || !*buf) {
            uint8_t *g = realloc(*buf, want ? want : 1);
            if (!g)
                rc = vc_err_oom(err);
            else
                *buf = g, *cap = want;
        }
        size_t got = 0;
        while (rc == VC_OK && got < want) {
            ssize_t k = read(fd, *buf + got, want - got);
            if (k < 0 && errno == EINTR)
                continue;
            if (k <= 0)
                rc = vc_err_set(err, VC_ESAMPLE, VC_REASON_io_error, "%s: short read", path);
            else
                got += (size_t)k;
        }
        *size = got;
    }
    close(fd);
    free(path);
    return rc;
}
