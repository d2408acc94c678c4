/* spill: the record codec and the temp-fsync-rename of spill files.  Never
 * trusts a length read back beyond the record it sits in: a damaged spill
 * is an error naming the file, never an out-of-bounds read. */
#include "spill.h"

#include "core/vc_fs.h"
#include "core/vc_mem.h"
#include "core/vc_utf8.h"
#include "plan.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum {
    SPILL_DIGEST_BIT = 0x8000,
    SPILL_LINK_BIT = 0x4000,
    SPILL_SRC_BIT = 0x2000,
    SPILL_NAME_MASK = 0x1fff
};

/* The trailer of a spill with source links: magic, size, mtime (ns). */
static const char spill_src_magic[8] = { 'v', 'c', 's', 'p', 's', 'r', 'c', '1' };
enum { SPILL_TRAILER = 24 };

static void put_le(uint8_t *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

enum vc_status spill_writer_open(struct spill_writer *w, const char *path, const char *src,
                                 struct vc_err *err)
{
    memset(w, 0, sizeof *w);
    w->path = vc_strdup(path);
    w->tmp = malloc(strlen(path) + 5);
    w->src = src ? vc_strdup(src) : NULL;
    if (!w->path || !w->tmp || (src && !w->src)) {
        free(w->path);
        free(w->tmp);
        free(w->src);
        return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "spill %s", path);
    }
    strcat(strcpy(w->tmp, path), ".tmp");
    if (!(w->f = fopen(w->tmp, "wb"))) {
        vc_err_io(err, w->tmp);
        free(w->path);
        free(w->tmp);
        free(w->src);
        return VC_EFATAL;
    }
    return VC_OK;
}

static uint64_t mtime_ns(const struct stat *st)
{
    return (uint64_t)st->st_mtim.tv_sec * 1000000000u + (uint64_t)st->st_mtim.tv_nsec;
}

/* Whether the field goes in as a link to the source: its bytes are still
 * the ones the source read, and the source's identity is known (taken at
 * the first such field, while the source is open for reading). */
static bool src_linked(struct spill_writer *w, const struct sample_field *f)
{
    if (!w->src || !f->src_data || f->src_data != f->data || f->size < SPILL_LINK_MIN)
        return false;
    if (!w->src_linked) {
        struct stat st;
        if (stat(w->src, &st) != 0 || (uint64_t)st.st_size < f->src_off + f->size)
            return false;
        w->src_size = (uint64_t)st.st_size;
        w->src_mtime_ns = mtime_ns(&st);
    }
    return f->src_off + f->size <= w->src_size;
}

/* The field's offset in the base file when it is to be linked there. */
static bool linked(const struct sample_field *f, const struct spill_base *base, uint64_t *at)
{
    if (!base || !base->buf || f->size < SPILL_LINK_MIN)
        return false;
    uintptr_t p = (uintptr_t)f->data, b = (uintptr_t)base->buf;
    if (p < b || p - b > base->len || f->size > base->len - (p - b))
        return false;
    *at = base->off + (p - b);
    return true;
}

enum vc_status spill_writer_add(struct spill_writer *w, const struct sample *s,
                                const struct spill_base *base, struct spill_rec *rec,
                                struct vc_err *err)
{
    uint8_t hdr[10];
    uint64_t len = 8, tar_bytes = 0;
    put_le(hdr, s->n_fields, 4);
    bool ok = fwrite(hdr, 1, 4, w->f) == 4;
    for (size_t i = 0; ok && i < s->n_fields; i++) {
        const struct sample_field *f = &s->fields[i];
        size_t nl = strlen(f->name);
        if (nl > SPILL_NAME_MASK)
            return vc_err_set(err, VC_EFATAL, VC_REASON_field_too_long,
                              "spill %s: a field name of %zu bytes (at most %d)", w->path, nl,
                              SPILL_NAME_MASK);
        /* The top bit of the name length says a cached SHA-256 of the
         * bytes follows the name, the next two that the bytes are linked
         * to the base or to the source. */
        uint64_t at = 0;
        bool dg = f->has_sha256, sl = src_linked(w, f), ln = sl || linked(f, base, &at);
        if (sl)
            at = f->src_off;
        w->src_linked += sl;
        w->linked += ln && !sl;
        uint8_t ref[8];
        put_le(ref, at, 8);
        put_le(hdr,
               nl | (dg ? SPILL_DIGEST_BIT : 0) |
                   (sl   ? SPILL_SRC_BIT
                    : ln ? SPILL_LINK_BIT
                         : 0),
               2);
        put_le(hdr + 2, f->size, 8);
        ok = fwrite(hdr, 1, 10, w->f) == 10 && fwrite(f->name, 1, nl, w->f) == nl &&
             (!dg || fwrite(f->sha256, 1, 32, w->f) == 32) &&
             (ln ? fwrite(ref, 1, 8, w->f) == 8 : fwrite(f->data, 1, f->size, w->f) == f->size);
        len += 10 + nl + (dg ? 32 : 0) + (ln ? 8 : f->size);
        tar_bytes += plan_tar_member_bytes(f->size);
    }
    char *meta = s->meta && s->meta->child ? cJSON_PrintUnformatted(s->meta) : NULL;
    if (s->meta && s->meta->child && !meta)
        return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "spill %s", w->path);
    size_t ml = meta ? strlen(meta) : 0;
    put_le(hdr, ml, 4);
    ok = ok && fwrite(hdr, 1, 4, w->f) == 4 && fwrite(meta ? meta : "", 1, ml, w->f) == ml;
    free(meta);
    len += ml;
    if (!ok)
        return vc_err_set(err, VC_EFATAL, VC_REASON_io_error, "writing %s: %s", w->tmp,
                          strerror(errno));
    *rec = (struct spill_rec){ .off = w->off, .len = len, .tar_bytes = tar_bytes };
    w->off += len;
    return VC_OK;
}

enum vc_status spill_writer_close(struct spill_writer *w, bool ok, struct vc_err *err)
{
    enum vc_status rc = VC_OK;
    if (w->f) {
        uint8_t tr[SPILL_TRAILER];
        memcpy(tr, spill_src_magic, 8);
        put_le(tr + 8, w->src_size, 8);
        put_le(tr + 16, w->src_mtime_ns, 8);
        if (ok && w->src_linked && fwrite(tr, 1, sizeof tr, w->f) != sizeof tr)
            rc = vc_err_set(err, VC_EFATAL, VC_REASON_io_error, "writing %s: %s", w->tmp,
                            strerror(errno));
        rc = vc_fs_sync_close(w->f, w->tmp, ok, rc, err);
        if (ok && rc == VC_OK)
            rc = vc_fs_rename_pending(w->tmp, w->path, err);
        else
            unlink(w->tmp);
    }
    free(w->path);
    free(w->tmp);
    free(w->src);
    memset(w, 0, sizeof *w);
    return rc;
}

enum vc_status spill_reader_open(struct spill_reader *r, const char *path, const char *base_path,
                                 const char *src_path, struct vc_err *err)
{
    r->base_fd = r->src_fd = -1;
    r->path = vc_strdup(path);
    r->base_path = base_path ? vc_strdup(base_path) : NULL;
    r->src_path = src_path ? vc_strdup(src_path) : NULL;
    r->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (r->fd < 0 || !r->path || (base_path && !r->base_path) || (src_path && !r->src_path)) {
        vc_err_io(err, path);
        spill_reader_close(r);
        return VC_EFATAL;
    }
    return VC_OK;
}

static enum vc_status bad(const struct spill_reader *r, uint64_t off, struct vc_err *err)
{
    return vc_err_set(err, VC_EFATAL, VC_REASON_io_error, "%s: bad record at offset %llu", r->path,
                      (unsigned long long)off);
}

static enum vc_status pread_all(int fd, void *buf, size_t n, uint64_t off, const char *path,
                                struct vc_err *err)
{
    size_t got = 0;
    while (got < n) {
        ssize_t k = pread(fd, (uint8_t *)buf + got, n - got, (off_t)(off + got));
        if (k <= 0)
            return vc_err_set(err, VC_EFATAL, VC_REASON_io_error, "%s: %s", path,
                              k < 0 ? strerror(errno) : "shorter than its header says");
        got += (size_t)k;
    }
    return VC_OK;
}

/* Opens the source at the first source link: it must still be the file
 * the spill's trailer describes. */
static enum vc_status open_src(struct spill_reader *r, uint64_t off, struct vc_err *err)
{
    if (!r->src_path)
        return bad(r, off, err);
    struct stat st, sp;
    uint8_t tr[SPILL_TRAILER];
    int fd = open(r->src_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) != 0) {
        vc_err_set(err, VC_EFATAL, VC_REASON_io_error, "%s (the source of %s): %s", r->src_path,
                   r->path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return VC_EFATAL;
    }
    r->src_fd = fd;
    if (fstat(r->fd, &sp) != 0 || sp.st_size < SPILL_TRAILER ||
        pread_all(r->fd, tr, sizeof tr, (uint64_t)sp.st_size - SPILL_TRAILER, r->path, err) !=
            VC_OK ||
        memcmp(tr, spill_src_magic, 8) != 0)
        return vc_err_set(err, VC_EFATAL, VC_REASON_io_error,
                          "%s: links to its source but has no source trailer", r->path);
    if (get_le(tr + 8, 8) != (uint64_t)st.st_size || get_le(tr + 16, 8) != mtime_ns(&st))
        return vc_err_set(err, VC_EFATAL, VC_REASON_io_error,
                          "%s changed after a map task read it (%llu bytes then, %llu now, or "
                          "another mtime); the spill %s points into it: start the run over",
                          r->src_path, (unsigned long long)get_le(tr + 8, 8),
                          (unsigned long long)st.st_size, r->path);
    return VC_OK;
}

/* A linked field's bytes, from the base or the source into the sample's
 * arena; a source link stays on the field for the next spill. */
static enum vc_status load_linked(struct spill_reader *r, uint64_t off, struct sample_field *f,
                                  bool src, uint64_t at, struct arena *arena, struct vc_err *err)
{
    if (src && r->src_fd < 0)
        VC_TRY(open_src(r, off, err));
    if (!src && !r->base_path)
        return bad(r, off, err);
    if (!src && r->base_fd < 0 && (r->base_fd = open(r->base_path, O_RDONLY | O_CLOEXEC)) < 0)
        return vc_err_set(err, VC_EFATAL, VC_REASON_io_error, "%s (the base of %s): %s",
                          r->base_path, r->path, strerror(errno));
    uint8_t *data = arena_alloc(arena, (size_t)f->size);
    if (!data)
        return vc_err_set(err, VC_EFATAL, VC_REASON_mem_cap,
                          "%s: a field of the record at offset %llu exceeds the sample arena",
                          r->path, (unsigned long long)off);
    f->data = data;
    if (src) {
        f->src_data = data;
        f->src_off = at;
    }
    return pread_all(src ? r->src_fd : r->base_fd, data, (size_t)f->size, at,
                     src ? r->src_path : r->base_path, err);
}

enum vc_status spill_reader_load(struct spill_reader *r, uint64_t off, uint64_t len,
                                 struct sample *s, struct spill_base *at, struct vc_err *err)
{
    uint8_t *buf = len >= 8 ? arena_alloc(s->arena, (size_t)len) : NULL;
    if (len < 8)
        return bad(r, off, err);
    if (!buf)
        return vc_err_set(err, VC_EFATAL, VC_REASON_mem_cap,
                          "%s: the record at offset %llu exceeds the sample arena", r->path,
                          (unsigned long long)off);
    VC_TRY(pread_all(r->fd, buf, (size_t)len, off, r->path, err));
    if (at)
        *at = (struct spill_base){ .buf = buf, .off = off, .len = len };
    size_t nf = (size_t)get_le(buf, 4), pos = 4;
    if (nf > SAMPLE_MAX_FIELDS)
        return bad(r, off, err);
    s->fields = arena_alloc_array(s->arena, nf ? nf : 1, sizeof *s->fields);
    if (!s->fields)
        return vc_err_set(err, VC_EFATAL, VC_REASON_mem_cap, "%s: record fields", r->path);
    for (size_t i = 0; i < nf; i++) {
        if (pos + 10 > len)
            return bad(r, off, err);
        size_t flags = (size_t)get_le(buf + pos, 2);
        uint64_t size = get_le(buf + pos + 2, 8);
        bool dg = flags & SPILL_DIGEST_BIT, sl = flags & SPILL_SRC_BIT;
        bool ln = sl || (flags & SPILL_LINK_BIT);
        size_t nl = flags & SPILL_NAME_MASK;
        pos += 10;
        size_t dl = dg ? 32 : 0;
        uint64_t body = ln ? 8 : size; /* what the record holds of the bytes */
        if (nl + dl > len - pos || body > len - pos - nl - dl)
            return bad(r, off, err);
        char *name = arena_strndup(s->arena, (const char *)buf + pos, nl);
        if (!name)
            return vc_err_set(err, VC_EFATAL, VC_REASON_mem_cap, "%s: field name", r->path);
        struct sample_field *f = &s->fields[i];
        *f = (struct sample_field){
            .name = name, .data = buf + pos + nl + dl, .size = size, .has_sha256 = dg
        };
        if (dg)
            memcpy(f->sha256, buf + pos + nl, 32);
        if (ln)
            VC_TRY(load_linked(r, off, f, sl, get_le(buf + pos + nl + dl, 8), s->arena, err));
        pos += nl + dl + (size_t)body;
    }
    s->n_fields = s->cap_fields = nf;
    if (pos + 4 > len)
        return bad(r, off, err);
    size_t ml = (size_t)get_le(buf + pos, 4);
    pos += 4;
    if (ml != len - pos)
        return bad(r, off, err);
    if (ml) {
        cJSON_Delete(s->meta);
        /* Exact: numbers a double cannot hold (a seed near 2^53, an id
         * column) come back with the digits the stages wrote. */
        s->meta = vc_json_parse_exact((const char *)buf + pos, ml);
        if (!cJSON_IsObject(s->meta))
            return bad(r, off, err);
    }
    return VC_OK;
}

void spill_reader_close(struct spill_reader *r)
{
    if (r->fd >= 0)
        close(r->fd);
    if (r->base_fd >= 0)
        close(r->base_fd);
    if (r->src_fd >= 0)
        close(r->src_fd);
    free(r->path);
    free(r->base_path);
    free(r->src_path);
    *r = (struct spill_reader)SPILL_READER_CLOSED;
}

/* The header: u64 n, then n + 1 u64 part starts. */
static uint64_t index_head(size_t n)
{
    return 8 * ((uint64_t)n + 2);
}

enum vc_status spill_index_open(struct spill_index_writer *w, const char *path, size_t n,
                                struct vc_err *err)
{
    memset(w, 0, sizeof *w);
    w->n = n;
    if (!(w->start = calloc(n + 1, sizeof *w->start)))
        return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "%s", path);
    enum vc_status rc = spill_writer_open(&w->w, path, NULL, err);
    /* The header is written last, at close, once the starts are known. */
    if (rc == VC_OK && fseeko(w->w.f, (off_t)index_head(n), SEEK_SET) != 0)
        rc = vc_err_io(err, w->w.tmp);
    if (rc != VC_OK) {
        if (w->w.f)
            spill_writer_close(&w->w, false, err);
        free(w->start);
        w->start = NULL;
    }
    return rc;
}

enum vc_status spill_index_add(struct spill_index_writer *w, const void *data, size_t len,
                               struct vc_err *err)
{
    if (w->k >= w->n || fwrite(data, 1, len, w->w.f) != len)
        return vc_err_set(err, VC_EFATAL, VC_REASON_io_error, "%s: %s", w->w.tmp,
                          w->k >= w->n ? "more parts than announced" : strerror(errno));
    w->start[w->k + 1] = w->start[w->k] + len;
    w->k++;
    return VC_OK;
}

enum vc_status spill_index_close(struct spill_index_writer *w, bool ok, struct vc_err *err)
{
    enum vc_status rc = VC_OK;
    if (ok && w->k != w->n)
        rc = vc_err_set(err, VC_EFATAL, VC_REASON_io_error, "%s: %zu of %zu parts", w->w.tmp, w->k,
                        w->n);
    uint8_t b[8];
    bool wrote = rc == VC_OK && ok && fseeko(w->w.f, 0, SEEK_SET) == 0;
    put_le(b, w->n, 8);
    wrote = wrote && fwrite(b, 1, 8, w->w.f) == 8;
    for (size_t i = 0; wrote && i <= w->n; i++) {
        put_le(b, w->start[i], 8);
        wrote = fwrite(b, 1, 8, w->w.f) == 8;
    }
    if (rc == VC_OK && ok && !wrote)
        rc = vc_err_io(err, w->w.tmp);
    enum vc_status crc = spill_writer_close(&w->w, ok && rc == VC_OK, err);
    free(w->start);
    memset(w, 0, sizeof *w);
    return rc != VC_OK ? rc : crc;
}

enum vc_status spill_index_read(const char *path, size_t k, uint8_t **out, size_t *n,
                                struct vc_err *err)
{
    *out = NULL;
    *n = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return vc_err_io(err, path);
    uint8_t hdr[16];
    enum vc_status rc = pread_all(fd, hdr, 8, 0, path, err);
    size_t n_parts = rc == VC_OK ? (size_t)get_le(hdr, 8) : 0;
    if (rc == VC_OK && k >= n_parts)
        rc = vc_err_set(err, VC_EFATAL, VC_REASON_io_error, "%s: no part %zu", path, k);
    if (rc == VC_OK)
        rc = pread_all(fd, hdr, 16, 8 * ((uint64_t)k + 1), path, err);
    uint64_t a = get_le(hdr, 8), b = get_le(hdr + 8, 8);
    if (rc == VC_OK && (b < a || b - a > SIZE_MAX / 2))
        rc = vc_err_set(err, VC_EFATAL, VC_REASON_io_error, "%s: bad part range", path);
    if (rc == VC_OK && !(*out = malloc(b - a + 1)))
        rc = vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "%s", path);
    if (rc == VC_OK)
        rc = pread_all(fd, *out, (size_t)(b - a), index_head(n_parts) + a, path, err);
    close(fd);
    if (rc != VC_OK) {
        free(*out);
        *out = NULL;
        return rc;
    }
    (*out)[b - a] = 0; /* a part holding text can be parsed in place */
    *n = (size_t)(b - a);
    return VC_OK;
}

enum vc_status spill_alive_write(const char *path, size_t n_units, const size_t *first,
                                 const uint8_t *alive, struct vc_err *err)
{
    struct spill_index_writer w;
    VC_TRY(spill_index_open(&w, path, n_units, err));
    enum vc_status rc = VC_OK;
    for (size_t u = 0; rc == VC_OK && u < n_units; u++)
        rc = spill_index_add(&w, alive + first[u], first[u + 1] - first[u], err);
    enum vc_status crc = spill_index_close(&w, rc == VC_OK, err);
    return rc != VC_OK ? rc : crc;
}

#define SPILL_ID_BYTES 12

enum vc_status spill_order_add(struct spill_writer *w, const struct spill_id *id,
                               struct vc_err *err)
{
    uint8_t rec[SPILL_ID_BYTES];
    put_le(rec, id->unit, 4);
    put_le(rec + 4, id->index, 8);
    if (fwrite(rec, 1, sizeof rec, w->f) != sizeof rec)
        return vc_err_io(err, w->tmp);
    w->off += sizeof rec;
    return VC_OK;
}

enum vc_status spill_order_write(const char *path, const struct spill_id *ids, size_t n,
                                 struct vc_err *err)
{
    struct spill_writer w;
    VC_TRY(spill_writer_open(&w, path, NULL, err));
    enum vc_status rc = VC_OK;
    for (size_t i = 0; rc == VC_OK && i < n; i++)
        rc = spill_order_add(&w, &ids[i], err);
    enum vc_status crc = spill_writer_close(&w, rc == VC_OK, err);
    return rc != VC_OK ? rc : crc;
}

enum vc_status spill_order_open(struct spill_order_reader *r, const char *path, struct vc_err *err)
{
    memset(r, 0, sizeof *r);
    r->path = vc_strdup(path);
    errno = 0;
    r->f = r->path ? fopen(path, "rb") : NULL;
    off_t size = r->f && fseeko(r->f, 0, SEEK_END) == 0 ? ftello(r->f) : -1;
    enum vc_status rc = VC_OK;
    if (!r->f || size < 0 || fseeko(r->f, 0, SEEK_SET) != 0)
        rc = vc_err_set(err, VC_EFATAL, VC_REASON_io_error, "%s: %s", path,
                        errno ? strerror(errno) : "out of memory");
    else if (size % SPILL_ID_BYTES)
        rc = vc_err_set(err, VC_EFATAL, VC_REASON_io_error, "%s: truncated", path);
    r->n = size > 0 ? (uint64_t)size / SPILL_ID_BYTES : 0;
    if (rc != VC_OK)
        spill_order_close(r);
    return rc;
}

int spill_order_next(struct spill_order_reader *r, struct spill_id *id, struct vc_err *err)
{
    uint8_t p[SPILL_ID_BYTES];
    if (r->i == r->n)
        return 0;
    if (fread(p, 1, SPILL_ID_BYTES, r->f) != SPILL_ID_BYTES)
        return vc_err_set(err, VC_EFATAL, VC_REASON_io_error, "%s: shorter than it was", r->path);
    *id = (struct spill_id){ (uint32_t)get_le(p, 4), get_le(p + 4, 8) };
    r->i++;
    return 1;
}

void spill_order_close(struct spill_order_reader *r)
{
    if (r->f)
        fclose(r->f);
    free(r->path);
    memset(r, 0, sizeof *r);
}

enum vc_status spill_order_read(const char *path, struct spill_id **out, size_t *n,
                                struct vc_err *err)
{
    struct spill_order_reader r;
    *out = NULL;
    *n = 0;
    VC_TRY(spill_order_open(&r, path, err));
    struct spill_id *ids = vc_malloc_array(r.n + 1, sizeof *ids);
    int got = ids ? 1 : vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "%s", path);
    size_t k = 0;
    while (got > 0 && (got = spill_order_next(&r, &ids[k], err)) > 0)
        k++;
    spill_order_close(&r);
    if (got < 0) {
        free(ids);
        return (enum vc_status)got;
    }
    *out = ids;
    *n = k;
    return VC_OK;
}
