/* wds_inspect: walks a shard member by member with the same libarchive
 * setup and the same name splitting as wds_read, so what it calls valid is
 * what the reader reads as written, and checks what the reader tolerates but
 * other readers may not (pax or GNU headers, long names, dotted keys,
 * scattered or repeated keys).
 *
 * Never decodes pixels (img_probe reads headers only) and never follows or
 * extracts a member.  Limits: member bytes are read only for image fields
 * and only up to WDS_DEFAULT_MAX_ENTRY_BYTES; problem lines stop after
 * INSPECT_MAX_PROBLEM_LINES, counting goes on. */
#include "wds_inspect.h"

#include "core/img.h"
#include "core/vc_buf.h"
#include "core/vc_mem.h"
#include "wds_read.h"
#include "wds_write.h"

#include <archive.h>
#include <archive_entry.h>
#include <ctype.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* A broken shard can have a problem per member; the first few tell the
 * story, the count tells the size. */
enum { INSPECT_MAX_PROBLEM_LINES = 50 };
/* One sample's listing line; longer ones are cut (the counts stay right). */
#define INSPECT_MAX_LINE_BYTES ((size_t)64 << 10)

/* Keys seen so far, as 64-bit FNV-1a hashes in an open-addressing table:
 * 16 bytes per sample whatever the key length.  A false "key twice" needs
 * a 64-bit collision within one shard. */
struct key_set {
    uint64_t *slots; /* 0 = empty; a hash of 0 is stored as 1 */
    size_t cap, n;
};

static uint64_t key_hash(const char *key, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)key[i];
        h *= 0x100000001b3ull;
    }
    return h ? h : 1;
}

/* true when h was already present; false after inserting it.  *oom on
 * failure to grow. */
static bool key_set_seen(struct key_set *ks, uint64_t h, bool *oom)
{
    if (2 * (ks->n + 1) > ks->cap) {
        size_t cap = ks->cap ? ks->cap * 2 : 1024;
        uint64_t *grown = vc_malloc_array(cap, sizeof *grown);
        if (!grown) {
            *oom = true;
            return false;
        }
        memset(grown, 0, cap * sizeof *grown);
        for (size_t i = 0; i < ks->cap; i++) {
            if (!ks->slots[i])
                continue;
            size_t j = ks->slots[i] & (cap - 1);
            while (grown[j])
                j = (j + 1) & (cap - 1);
            grown[j] = ks->slots[i];
        }
        free(ks->slots);
        ks->slots = grown;
        ks->cap = cap;
    }
    size_t j = h & (ks->cap - 1);
    while (ks->slots[j]) {
        if (ks->slots[j] == h)
            return true;
        j = (j + 1) & (ks->cap - 1);
    }
    ks->slots[j] = h;
    ks->n++;
    return false;
}

struct inspect {
    FILE *out;
    bool verbose;
    struct archive *a;
    uint64_t n_samples, n_members, n_data_bytes, n_problems;
    char first_problem[512];
    struct key_set keys;
    /* The sample being listed. */
    char *key; /* owned; NULL before the first sample */
    size_t key_cap;
    struct vc_buf line; /* its listing line */
    struct vc_buf exts; /* its lower-cased extensions, NUL-separated */
    uint8_t *data;      /* owned; one image member */
    size_t data_cap;
};

static void problem(struct inspect *in, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void problem(struct inspect *in, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (in->n_problems == 0)
        snprintf(in->first_problem, sizeof in->first_problem, "%s", msg);
    if (in->n_problems < INSPECT_MAX_PROBLEM_LINES)
        fprintf(in->out, "problem: %s\n", msg);
    else if (in->n_problems == INSPECT_MAX_PROBLEM_LINES)
        fprintf(in->out, "problem: ... (further problems counted, not listed)\n");
    in->n_problems++;
}

static void end_sample(struct inspect *in)
{
    if (in->key && in->line.data)
        fprintf(in->out, "%s\n", in->line.data);
    vc_buf_free(&in->line);
    vc_buf_free(&in->exts);
}

static bool ext_seen(const struct inspect *in, const char *ext)
{
    for (size_t i = 0; i < in->exts.len; i += strlen(in->exts.data + i) + 1)
        if (strcmp(in->exts.data + i, ext) == 0)
            return true;
    return false;
}

static bool is_current(const struct inspect *in, const struct wds_member_name *m)
{
    return in->key && strlen(in->key) == m->key_len && memcmp(in->key, m->key, m->key_len) == 0;
}

/* Starts the listing line of a new sample (the previous one is printed
 * already) and runs the per-sample checks. */
static enum vc_status start_sample(struct inspect *in, const struct wds_member_name *m,
                                   const char *name, bool unsafe, struct vc_err *err)
{
    if (m->key_len + 1 > in->key_cap) {
        char *grown = realloc(in->key, m->key_len + 1);
        if (!grown)
            return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "no memory");
        in->key = grown;
        in->key_cap = m->key_len + 1;
    }
    memcpy(in->key, m->key, m->key_len);
    in->key[m->key_len] = '\0';
    in->n_samples++;
    vc_buf_init(&in->line, INSPECT_MAX_LINE_BYTES);
    vc_buf_init(&in->exts, INSPECT_MAX_LINE_BYTES);
    vc_buf_printf(&in->line, "%s", in->key);
    bool oom = false;
    if (key_set_seen(&in->keys, key_hash(m->key, m->key_len), &oom))
        problem(in,
                "key '%s' appears again at member '%s': a sample's members must be "
                "contiguous and keys unique",
                in->key, name);
    if (oom)
        return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "no memory");
    /* A ".." component is reported as unsafe already. */
    if (!unsafe && memchr(m->key, '.', m->key_len))
        problem(in, "key '%s' contains a dot", in->key);
    return VC_OK;
}

/* " jpg:1234" plus, for images, " (jpeg 640x480)" from the header. */
static enum vc_status list_field(struct inspect *in, const char *ext, int64_t size,
                                 struct vc_err *err)
{
    vc_buf_printf(&in->line, " %s:%" PRId64, ext, size);
    if (!sample_field_name_is_image(ext) || size <= 0)
        return VC_OK;
    if ((uint64_t)size > WDS_DEFAULT_MAX_ENTRY_BYTES) {
        vc_buf_printf(&in->line, " (not probed: over %llu bytes)",
                      (unsigned long long)WDS_DEFAULT_MAX_ENTRY_BYTES);
        return VC_OK;
    }
    size_t n = (size_t)size;
    if (n > in->data_cap) {
        uint8_t *grown = realloc(in->data, n);
        if (!grown)
            return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "no memory");
        in->data = grown;
        in->data_cap = n;
    }
    size_t got = 0;
    while (got < n) {
        la_ssize_t k = archive_read_data(in->a, in->data + got, n - got);
        if (k <= 0)
            return vc_err_set(err, VC_ESHARD, VC_REASON_corrupt_archive, "%s",
                              archive_error_string(in->a) ? archive_error_string(in->a)
                                                          : "truncated member");
        got += (size_t)k;
    }
    struct img_info info;
    struct vc_err why = { 0 };
    if (img_probe(in->data, n, NULL, &info, &why) == VC_OK)
        vc_buf_printf(&in->line, " (%s %ux%u)", img_format_ext(info.format), info.width,
                      info.height);
    else
        vc_buf_printf(&in->line, " (bad image: %s)", vc_reason_name(why.reason));
    return VC_OK;
}

static const char *header_format(int f)
{
    switch (f) {
    case ARCHIVE_FORMAT_TAR_USTAR:
        return "ustar";
    case ARCHIVE_FORMAT_TAR_PAX_INTERCHANGE:
    case ARCHIVE_FORMAT_TAR_PAX_RESTRICTED:
        return "pax";
    case ARCHIVE_FORMAT_TAR_GNUTAR:
        return "gnu";
    default:
        return "v7";
    }
}

/* One member: checks, verbose line, listing.  Members of a sample are
 * listed on one line printed when the sample ends, after the member lines
 * and problems that belong to it.  VC_ESHARD on corruption. */
static enum vc_status inspect_member(struct inspect *in, struct archive_entry *e,
                                     struct vc_err *err)
{
    const char *name = archive_entry_pathname(e);
    if (!name)
        name = "(unnamed)";
    int64_t size = archive_entry_size(e);
    const char *fmt = header_format(archive_format(in->a));
    bool regular = archive_entry_filetype(e) == AE_IFREG && !archive_entry_hardlink(e) &&
                   !archive_entry_symlink(e);
    bool sane = strlen(name) <= WDS_MAX_NAME_BYTES; /* as wds_reader, which skips others */
    struct wds_member_name m;
    bool split = regular && sane && wds_member_split(name, &m);
    /* Skipped members do not end a sample, as no reader sees them. */
    bool starts = split && !is_current(in, &m);
    if (starts)
        end_sample(in);
    in->n_members++;
    if (in->verbose)
        fprintf(in->out, "  member @%" PRId64 " %s %s %" PRId64 "\n",
                archive_read_header_position(in->a), fmt, name, size);
    if (strcmp(fmt, "ustar") != 0)
        problem(in, "member '%s' has a %s header, not plain ustar", name, fmt);
    if (strlen(name) > WDS_MAX_MEMBER_NAME)
        problem(in, "member name '%.120s...' is over %d bytes", name, WDS_MAX_MEMBER_NAME);
    bool unsafe = wds_member_unsafe(name);
    if (unsafe)
        problem(in, "member name '%s' is absolute or climbs with '..'", name);
    if (!regular) {
        problem(in, "member '%s' is not a regular file", name);
        return VC_OK;
    }
    if (!split) {
        problem(in, "member '%.120s' has no key and extension, or a name over %d bytes (skipped)",
                name, WDS_MAX_NAME_BYTES);
        return VC_OK;
    }
    if (starts)
        VC_TRY(start_sample(in, &m, name, unsafe, err));
    char ext[WDS_MAX_NAME_BYTES + 1];
    size_t n = strlen(m.ext);
    for (size_t i = 0; i <= n; i++)
        ext[i] = (char)tolower((unsigned char)m.ext[i]);
    if (ext_seen(in, ext))
        problem(in, "sample '%s' has extension '%s' twice", in->key, ext);
    vc_buf_append(&in->exts, ext, n + 1);
    in->n_data_bytes += size > 0 ? (uint64_t)size : 0;
    return list_field(in, ext, size, err);
}

static void inspect_free(struct inspect *in)
{
    if (in->a)
        archive_read_free(in->a);
    vc_buf_free(&in->line);
    vc_buf_free(&in->exts);
    free(in->keys.slots);
    free(in->key);
    free(in->data);
}

enum vc_status wds_inspect(const char *path, FILE *out, bool verbose, struct vc_err *err)
{
    struct inspect in = { .out = out, .verbose = verbose };
    in.a = wds_archive_read_new();
    if (!in.a)
        return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "no memory");
    fprintf(out, "shard: %s\n", path);
    enum vc_status st = wds_archive_open_file(in.a, path, err);
    while (st == VC_OK) {
        struct archive_entry *e;
        int rc = archive_read_next_header(in.a, &e);
        if (rc == ARCHIVE_EOF)
            break;
        if (rc != ARCHIVE_OK && rc != ARCHIVE_WARN) {
            const char *why = archive_error_string(in.a);
            st = vc_err_set(err, VC_ESHARD, VC_REASON_corrupt_archive, "%s",
                            why ? why : "bad member header");
            break;
        }
        st = inspect_member(&in, e, err);
        if (st == VC_OK && archive_read_data_skip(in.a) != ARCHIVE_OK) {
            const char *why = archive_error_string(in.a);
            st = vc_err_set(err, VC_ESHARD, VC_REASON_corrupt_archive, "%s",
                            why ? why : "truncated member");
        }
    }
    end_sample(&in);
    if (st == VC_ESHARD) {
        /* A file that is gone or unreadable is not a damaged archive. */
        problem(&in, "%s: %s",
                err->reason == VC_REASON_io_error ? "file cannot be read" : "archive is damaged",
                err->msg);
        if (!strstr(err->msg, path))
            vc_err_prefix(err, "%s", path);
    }
    if (st == VC_OK && in.n_problems > 0)
        st = vc_err_set(err, VC_ESHARD, VC_REASON_unsupported_format,
                        "%s: %" PRIu64 " problems, first: %s", path, in.n_problems,
                        in.first_problem);
    fprintf(out,
            "verdict: %s: %" PRIu64 " samples, %" PRIu64 " members, %" PRIu64
            " bytes of member data, %" PRIu64 " problems\n",
            st == VC_OK ? "ok" : "invalid", in.n_samples, in.n_members, in.n_data_bytes,
            in.n_problems);
    inspect_free(&in);
    return st;
}
