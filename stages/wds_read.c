/* wds_read: libarchive's streaming tar reader plus webdataset's grouping of
 * members into samples.  One member header of lookahead is kept (the member
 * that ended the previous sample), and only its name is copied; the bytes of
 * a member go straight into the caller's arena, so per-sample memory is
 * bounded by the arena cap and per-member memory by max_entry_bytes.
 *
 * Never: extract, follow a link, or trust a header size before checking it
 * against the limit.  Formats are tar only (ustar, pax, GNU, v7); filters
 * are the compressors libarchive has built in, never the external-program
 * fallbacks that archive_read_support_filter_all would also enable, so a
 * hostile shard cannot make us spawn a process. */
#include "wds_read.h"

#include "core/vc_mem.h"

#include <archive.h>
#include <archive_entry.h>
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* libarchive's read granularity for files; large enough that a shard on a
 * network file system is read in few round trips. */
enum { WDS_READ_BLOCK = 64 * 1024 };

/* A member no sample can hold (webdataset's reader ignores it: no key or
 * no field in its name, a name too long, top-level shard metadata), kept
 * until it can be returned as an error entry of its own.  The name is cut
 * to what a ledger line should carry. */
enum { WDS_ORPHAN_NAME = 200 };
struct wds_orphan {
    char name[WDS_ORPHAN_NAME + 4]; /* "..." appended when cut */
    size_t name_len;                /* of the full name */
    enum vc_reason reason;
    const char *why; /* static */
};
/* Orphans met while one sample is being assembled wait here; a hostile
 * shard with more than this many in a row ends the sample early instead of
 * growing the queue. */
enum { WDS_MAX_ORPHANS = 1024 };

struct wds_reader {
    struct archive *a;
    char *path; /* owned; what s->src_file points to */
    struct wds_read_limits limits;
    uint64_t n_samples, n_skipped;

    /* The next member, already read from its header but not its data. */
    bool have_pending;
    char *pending_name; /* owned; the full member name */
    size_t pending_cap;
    struct wds_member_name pending;
    int64_t pending_size;
    uint64_t pending_off; /* where its data starts in the (uncompressed) archive */
    bool pending_sparse;
    const char *pending_irregular; /* "symbolic link", ...: not a regular file */

    struct wds_orphan *orphans; /* owned: a FIFO of n_orphans from orphan_head */
    size_t n_orphans, orphan_head;

    char *cur_key; /* owned; the key of the sample being assembled */
    size_t cur_cap;

    bool from_file; /* opened by path, not over memory */
    bool offsets;   /* fields carry their offset in the file (wds_reader_keep_offsets) */
    bool at_eof;
    bool broken; /* corruption seen: every later call is VC_ESHARD */
    char broken_msg[256];
};

/* Why webdataset's reader ignores a member name; NULL when it keys it. */
static const char *unkeyed_why(const char *name)
{
    while (name[0] == '.' && name[1] == '/')
        name += 2;
    const char *slash = strrchr(name, '/');
    const char *last = slash ? slash + 1 : name;
    const char *dot = strchr(last, '.');
    if (!slash && strlen(name) >= 4 && strncmp(name, "__", 2) == 0 &&
        strcmp(name + strlen(name) - 2, "__") == 0)
        return "a top-level __name__ member is shard metadata, not a sample";
    if (!dot)
        return "no extension: the name has no field";
    if (dot == last)
        return "the basename starts with a dot: the name has no key";
    if (dot[1] == '\0')
        return "nothing after the dot: the name has no field";
    return NULL;
}

bool wds_member_split(const char *name, struct wds_member_name *out)
{
    if (unkeyed_why(name))
        return false;
    while (name[0] == '.' && name[1] == '/')
        name += 2;
    const char *slash = strrchr(name, '/');
    const char *dot = strchr(slash ? slash + 1 : name, '.');
    out->key = name;
    out->key_len = (size_t)(dot - name);
    out->ext = dot + 1;
    return true;
}

bool wds_member_unsafe(const char *name)
{
    if (name[0] == '/')
        return true;
    for (const char *p = name; *p;) {
        const char *end = strchr(p, '/');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n == 2 && p[0] == '.' && p[1] == '.')
            return true;
        p += n;
        if (*p == '/')
            p++;
    }
    return false;
}

/* Copies n bytes plus a NUL into a reusable heap buffer. */
static bool set_str(char **dst, size_t *cap, const char *src, size_t n)
{
    if (n + 1 > *cap) {
        char *grown = realloc(*dst, n + 1);
        if (!grown)
            return false;
        *dst = grown;
        *cap = n + 1;
    }
    memcpy(*dst, src, n);
    (*dst)[n] = '\0';
    return true;
}

static enum vc_status mark_broken(struct wds_reader *r, struct vc_err *err, const char *what)
{
    const char *why = archive_error_string(r->a);
    r->broken = true;
    snprintf(r->broken_msg, sizeof r->broken_msg, "%s: %s", what, why ? why : "unknown error");
    return vc_err_set(err, VC_ESHARD, VC_REASON_corrupt_archive, "%s: %s", r->path, r->broken_msg);
}

/* What a member that is not a regular file is, for messages; NULL for a
 * regular file.  libarchive gives hard links the type of their target. */
static const char *irregular_kind(struct archive_entry *e)
{
    if (archive_entry_hardlink(e))
        return "hard link";
    switch (archive_entry_filetype(e)) {
    case AE_IFREG:
        return NULL;
    case AE_IFLNK:
        return "symbolic link";
    case AE_IFIFO:
        return "FIFO";
    case AE_IFCHR:
        return "character device";
    case AE_IFBLK:
        return "block device";
    case AE_IFSOCK:
        return "socket";
    default:
        return "special file";
    }
}

static void orphan_add(struct wds_reader *r, const char *name, enum vc_reason reason,
                       const char *why)
{
    struct wds_orphan *o = &r->orphans[(r->orphan_head + r->n_orphans++) % WDS_MAX_ORPHANS];
    size_t n = name ? strlen(name) : 0;
    o->name_len = n;
    o->reason = reason;
    o->why = why;
    if (n > WDS_ORPHAN_NAME) {
        /* Cut on a UTF-8 boundary so the ledger's escaping sees whole
         * characters. */
        size_t cut = WDS_ORPHAN_NAME;
        while (cut > 0 && ((unsigned char)name[cut] & 0xC0) == 0x80)
            cut--;
        memcpy(o->name, name, cut);
        memcpy(o->name + cut, "...", 4);
    } else {
        memcpy(o->name, name ? name : "", n + 1);
    }
}

/* Reads headers until the next member that can belong to a sample.  VC_OK
 * with have_pending set, VC_OK without it when the orphan queue is full
 * (the caller ends its sample and drains the queue), VC_EOF, or VC_ESHARD
 * (r->broken set).  Directories are skipped (they hold no data); every
 * other member that cannot be keyed becomes an orphan. */
static enum vc_status fetch_member(struct wds_reader *r, struct vc_err *err)
{
    while (r->n_orphans < WDS_MAX_ORPHANS) {
        struct archive_entry *e;
        int rc = archive_read_next_header(r->a, &e);
        if (rc == ARCHIVE_EOF) {
            r->at_eof = true;
            return VC_EOF;
        }
        /* ARCHIVE_WARN is a recoverable oddity (a name in an unknown
         * charset, a bad pax attribute); RETRY means libarchive skipped
         * damaged bytes to resynchronise, which we call corruption. */
        if (rc != ARCHIVE_OK && rc != ARCHIVE_WARN)
            return mark_broken(r, err, "bad member header");
        const char *name = archive_entry_pathname(e);
        if (archive_entry_filetype(e) == AE_IFDIR && !archive_entry_hardlink(e)) {
            r->n_skipped++;
            continue;
        }
        const char *irregular = irregular_kind(e);
        size_t name_len = name ? strlen(name) : 0;
        if (!name || name_len == 0) {
            orphan_add(r, name, VC_REASON_bad_member_name, "the member has no name");
            continue;
        }
        if (name_len > WDS_MAX_NAME_BYTES) {
            orphan_add(r, name, VC_REASON_bad_member_name, "the name is over 4096 bytes");
            continue;
        }
        const char *why = unkeyed_why(name);
        if (why) {
            orphan_add(r, name, irregular ? VC_REASON_not_regular_file : VC_REASON_bad_member_name,
                       irregular ? irregular : why);
            continue;
        }
        if (!set_str(&r->pending_name, &r->pending_cap, name, name_len))
            return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "no memory for a name");
        wds_member_split(r->pending_name, &r->pending);
        r->pending_size = archive_entry_size_is_set(e) ? archive_entry_size(e) : 0;
        /* Filter 0's position is what the tar reader consumed: the
         * member's headers (pax and GNU long names included), not its data. */
        r->pending_off = (uint64_t)archive_filter_bytes(r->a, 0);
        r->pending_sparse = archive_entry_sparse_count(e) > 0;
        r->pending_irregular = irregular;
        r->have_pending = true;
        return VC_OK;
    }
    return VC_OK;
}

/* The oldest orphan as an error entry of its own: VC_ESAMPLE with its
 * name as the key and the next sample ordinal as its index. */
static enum vc_status orphan_next(struct wds_reader *r, struct sample *s, struct vc_err *err)
{
    const struct wds_orphan *o = &r->orphans[r->orphan_head];
    r->orphan_head = (r->orphan_head + 1) % WDS_MAX_ORPHANS;
    r->n_orphans--;
    s->src_file = r->path;
    s->src_index = r->n_samples++;
    char *orig = arena_strdup(s->arena, o->name);
    char *key = arena_alloc(s->arena, 3 * strlen(o->name) + 2);
    if (orig && key) {
        sample_key_sanitize(orig, key, 3 * strlen(o->name) + 2);
        s->orig_key = orig;
        s->key = key;
    } else {
        s->orig_key = "";
        s->key = "_";
    }
    if (o->reason == VC_REASON_not_regular_file)
        return vc_err_set(err, VC_ESAMPLE, o->reason,
                          "%s: member of %zu-byte name is a %s, not a regular file", r->path,
                          o->name_len, o->why);
    return vc_err_set(err, VC_ESAMPLE, o->reason,
                      "%s: member of %zu-byte name skipped, as webdataset skips it: %s", r->path,
                      o->name_len, o->why);
}

static enum vc_status reader_start(struct wds_reader *r, struct wds_reader **out,
                                   struct vc_err *err)
{
    if (r->limits.max_entry_bytes == 0)
        r->limits.max_entry_bytes = WDS_DEFAULT_MAX_ENTRY_BYTES;
    if (r->limits.max_fields == 0 || r->limits.max_fields > SAMPLE_MAX_FIELDS)
        r->limits.max_fields = SAMPLE_MAX_FIELDS;
    enum vc_status st = fetch_member(r, err);
    if (st < 0) {
        wds_reader_close(r);
        return st;
    }
    *out = r;
    return VC_OK;
}

struct archive *wds_archive_read_new(void)
{
    struct archive *a = archive_read_new();
    if (!a)
        return NULL;
    archive_read_support_format_tar(a);
    archive_read_support_filter_gzip(a);
    archive_read_support_filter_zstd(a);
    archive_read_support_filter_bzip2(a);
    archive_read_support_filter_xz(a);
    return a;
}

static struct wds_reader *reader_new(const char *name, const struct wds_read_limits *limits,
                                     struct vc_err *err)
{
    struct wds_reader *r = calloc(1, sizeof *r);
    if (!r || !(r->path = vc_strdup(name)) || !(r->a = wds_archive_read_new())) {
        wds_reader_close(r);
        vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "no memory to open '%s'", name);
        return NULL;
    }
    if (limits)
        r->limits = *limits;
    r->orphans = calloc(WDS_MAX_ORPHANS, sizeof *r->orphans);
    if (!r->orphans) {
        wds_reader_close(r);
        vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "no memory to open '%s'", name);
        return NULL;
    }
    return r;
}

/* libarchive picks the format while opening: a file it cannot read is an
 * I/O error (a run retries it), content it cannot decode is a corrupt shard
 * (recorded once, for good).  libarchive gives a system errno for the
 * former; the latter is EILSEQ for content that is no tar (its private
 * ARCHIVE_ERRNO_FILE_FORMAT on systems without EFTYPE, Linux included) or
 * its ARCHIVE_ERRNO_MISC (-1) for a gzip or zstd stream that is cut or
 * damaged before the first header. */
static enum vc_status open_error(struct archive *a, const char *name, struct vc_err *err)
{
    const char *why = archive_error_string(a);
    int no = archive_errno(a);
    enum vc_reason reason = no > 0 && no != EILSEQ ? VC_REASON_io_error : VC_REASON_corrupt_archive;
    /* A 0-byte shard (a writer killed before its first flush) is no
     * "Unrecognized archive format": say what it is. */
    struct stat st;
    if (reason == VC_REASON_corrupt_archive && stat(name, &st) == 0 && S_ISREG(st.st_mode) &&
        st.st_size == 0)
        why = "an empty file (0 bytes)";
    return vc_err_set(err, VC_ESHARD, reason, "cannot open shard '%s': %s", name,
                      why ? why : "unknown error");
}

enum vc_status wds_archive_open_file(struct archive *a, const char *path, struct vc_err *err)
{
    if (archive_read_open_filename(a, path, WDS_READ_BLOCK) != ARCHIVE_OK)
        return open_error(a, path, err);
    return VC_OK;
}

static enum vc_status open_failed(struct wds_reader *r, struct vc_err *err)
{
    open_error(r->a, r->path, err);
    wds_reader_close(r);
    return VC_ESHARD;
}

enum vc_status wds_reader_open(const char *path, const struct wds_read_limits *limits,
                               struct wds_reader **out, struct vc_err *err)
{
    *out = NULL;
    struct wds_reader *r = reader_new(path, limits, err);
    if (!r)
        return VC_EFATAL;
    enum vc_status st = wds_archive_open_file(r->a, path, err);
    if (st != VC_OK) {
        wds_reader_close(r);
        return st;
    }
    r->from_file = true;
    return reader_start(r, out, err);
}

void wds_reader_keep_offsets(struct wds_reader *r)
{
    struct stat st;
    r->offsets = r->from_file && archive_filter_count(r->a) == 1 &&
                 archive_filter_code(r->a, 0) == ARCHIVE_FILTER_NONE && stat(r->path, &st) == 0 &&
                 S_ISREG(st.st_mode);
}

enum vc_status wds_reader_open_mem(const void *data, size_t size, const char *name,
                                   const struct wds_read_limits *limits, struct wds_reader **out,
                                   struct vc_err *err)
{
    *out = NULL;
    struct wds_reader *r = reader_new(name, limits, err);
    if (!r)
        return VC_EFATAL;
    /* libarchive takes a non-const pointer but only reads through it. */
    if (archive_read_open_memory(r->a, (void *)(uintptr_t)data, size) != ARCHIVE_OK)
        return open_failed(r, err);
    return reader_start(r, out, err);
}

/* The sample's first error wins; later members of a bad sample are skipped. */
static void poison(enum vc_status *st, struct vc_err *first, struct vc_err *now)
{
    if (*st == VC_OK) {
        *st = VC_ESAMPLE;
        *first = *now;
    }
}

/* Consumes the pending member into `s`.  VC_OK, VC_ESAMPLE (recorded in
 * *why, the member's bytes skipped) or VC_ESHARD on corruption. */
static enum vc_status take_member(struct wds_reader *r, struct sample *s, bool skip,
                                  struct vc_err *why, struct vc_err *err)
{
    r->have_pending = false;
    const char *name = r->pending_name;
    char field[WDS_MAX_NAME_BYTES + 1];
    size_t n = strlen(r->pending.ext);
    for (size_t i = 0; i <= n; i++)
        field[i] = (char)tolower((unsigned char)r->pending.ext[i]);

    enum vc_status st = VC_OK;
    if (skip)
        st = VC_ESAMPLE;
    else if (r->pending_irregular)
        st = vc_err_set(why, VC_ESAMPLE, VC_REASON_not_regular_file,
                        "member '%s' is a %s, not a regular file", name, r->pending_irregular);
    else if (wds_member_unsafe(name))
        st = vc_err_set(why, VC_ESAMPLE, VC_REASON_unsafe_path, "unsafe member name '%s'", name);
    else if (r->pending_size < 0 || (uint64_t)r->pending_size > r->limits.max_entry_bytes)
        st = vc_err_set(why, VC_ESAMPLE, VC_REASON_entry_too_large,
                        "member '%s' of %lld bytes is over the limit of %llu", name,
                        (long long)r->pending_size, (unsigned long long)r->limits.max_entry_bytes);
    else if (sample_field_get(s, field))
        st = vc_err_set(why, VC_ESAMPLE, VC_REASON_repeated_field,
                        "field '%s' appears twice in sample '%s'", field, s->orig_key);
    else if (s->n_fields >= r->limits.max_fields)
        st = vc_err_set(why, VC_ESAMPLE, VC_REASON_too_many_fields,
                        "more than %u fields in sample '%s'", (unsigned)r->limits.max_fields,
                        s->orig_key);
    if (st != VC_OK) {
        if (archive_read_data_skip(r->a) != ARCHIVE_OK)
            return mark_broken(r, err, "cannot skip member data");
        return VC_ESAMPLE;
    }

    size_t size = (size_t)r->pending_size;
    uint8_t *buf = arena_alloc(s->arena, size);
    if (!buf) {
        vc_err_set(why, VC_ESAMPLE, VC_REASON_mem_cap,
                   "member '%s' of %zu bytes exceeds the per-sample memory cap", name, size);
        if (archive_read_data_skip(r->a) != ARCHIVE_OK)
            return mark_broken(r, err, "cannot skip member data");
        return VC_ESAMPLE;
    }
    size_t got = 0;
    while (got < size) {
        la_ssize_t k = archive_read_data(r->a, buf + got, size - got);
        if (k <= 0)
            return mark_broken(r, err, "truncated member data");
        got += (size_t)k;
    }
    /* The bytes are already in the arena: add the field empty and point it
     * at them, so a member is never copied twice. */
    if (sample_add_field(s, field, buf, 0, why) != VC_OK)
        return VC_ESAMPLE;
    struct sample_field *f = sample_field_get(s, field);
    f->data = buf;
    f->size = size;
    if (r->offsets && !r->pending_sparse) {
        f->src_data = buf;
        f->src_off = r->pending_off;
    }
    return VC_OK;
}

enum vc_status wds_reader_next(struct wds_reader *r, struct sample *s, struct vc_err *err)
{
    if (r->n_orphans)
        return orphan_next(r, s, err);
    if (r->broken)
        return vc_err_set(err, VC_ESHARD, VC_REASON_corrupt_archive, "%s: %s", r->path,
                          r->broken_msg);
    if (!r->have_pending && r->at_eof)
        return VC_EOF;

    enum vc_status sample_st = VC_OK;
    struct vc_err first = { 0 }, why = { 0 };
    bool started = false;
    for (;;) {
        if (!r->have_pending) {
            enum vc_status st = fetch_member(r, err);
            if (st == VC_EOF || (st == VC_OK && !r->have_pending))
                break;
            if (st == VC_EFATAL)
                return st;
            if (st < 0) {
                if (!started) /* orphans met before the damage come first */
                    return r->n_orphans ? orphan_next(r, s, err) : st;
                return vc_err_set(err, VC_ESAMPLE, VC_REASON_corrupt_archive,
                                  "%s: sample '%s' cut short: %s", r->path, s->orig_key,
                                  r->broken_msg);
            }
        }
        const struct wds_member_name *m = &r->pending;
        if (started &&
            (strlen(r->cur_key) != m->key_len || memcmp(r->cur_key, m->key, m->key_len) != 0))
            break;
        if (!started) {
            started = true;
            if (!set_str(&r->cur_key, &r->cur_cap, m->key, m->key_len))
                return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "no memory for a key");
            s->src_file = r->path;
            s->src_index = r->n_samples;
            r->n_samples++;
            char *orig = arena_strdup(s->arena, r->cur_key);
            char *key = arena_alloc(s->arena, 3 * m->key_len + 2);
            if (!orig || !key) {
                s->orig_key = "";
                s->key = "_";
                vc_err_set(&why, VC_ESAMPLE, VC_REASON_mem_cap, "per-sample memory cap reached");
                poison(&sample_st, &first, &why);
            } else {
                sample_key_sanitize(orig, key, 3 * m->key_len + 2);
                s->orig_key = orig;
                s->key = key;
            }
        }
        enum vc_status st = take_member(r, s, sample_st != VC_OK, &why, err);
        if (st == VC_ESHARD)
            return vc_err_set(err, VC_ESAMPLE, VC_REASON_corrupt_archive,
                              "%s: sample '%s' cut short: %s", r->path, s->orig_key, r->broken_msg);
        if (st == VC_ESAMPLE)
            poison(&sample_st, &first, &why);
    }
    if (!started)
        return r->n_orphans ? orphan_next(r, s, err) : VC_EOF;
    if (sample_st != VC_OK) {
        if (err)
            *err = first;
        return vc_err_prefix(err, "%s", r->path);
    }
    return VC_OK;
}

uint64_t wds_reader_skipped(const struct wds_reader *r)
{
    return r->n_skipped;
}

void wds_reader_close(struct wds_reader *r)
{
    if (!r)
        return;
    if (r->a)
        archive_read_free(r->a);
    free(r->path);
    free(r->pending_name);
    free(r->cur_key);
    free(r->orphans);
    free(r);
}
