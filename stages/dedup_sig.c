/* dedup_sig: signature files (see the header): written whole, read as
 * partitions (runs for core/extsort) or by binary search (the edits). */
#include "dedup_sig.h"

#include "core/extsort.h"
#include "core/vc_fs.h"
#include "core/vc_mem.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char sig_magic[8] = { 'V', 'C', 'D', 'S', 'I', 'G', '0', '1' };
enum { SIG_HEADER = 24, SIG_MAX_PART_BITS = 16 };

int dedup_sig_cmp(const struct dedup_sig *a, const struct dedup_sig *b)
{
    if (a->key != b->key)
        return a->key < b->key ? -1 : 1;
    if (a->kind != b->kind)
        return a->kind < b->kind ? -1 : 1;
    if (a->aux != b->aux)
        return a->aux < b->aux ? -1 : 1;
    if (a->unit != b->unit)
        return a->unit < b->unit ? -1 : 1;
    if (a->index != b->index)
        return a->index < b->index ? -1 : 1;
    return 0;
}

int dedup_sig_order(const void *a, const void *b)
{
    return dedup_sig_cmp(a, b);
}

enum vc_status dedup_sig_write(const char *path, struct dedup_sig *v, size_t n, unsigned part_bits,
                               struct vc_err *err)
{
    struct dedup_sig_stream w;
    VC_TRY(dedup_sig_stream_open(&w, path, part_bits, err));
    dedup_sig_sort(v, n);
    enum vc_status rc = VC_OK;
    for (size_t i = 0; rc == VC_OK && i < n; i++)
        rc = dedup_sig_stream_add(&w, &v[i], err);
    enum vc_status crc = dedup_sig_stream_close(&w, rc == VC_OK, err);
    return rc == VC_OK ? crc : rc;
}

static enum vc_status read_at(int fd, const char *path, void *dst, size_t n, uint64_t off,
                              struct vc_err *err)
{
    uint8_t *p = dst;
    while (n) {
        ssize_t got = pread(fd, p, n, (off_t)off);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            return vc_err_set(err, VC_EFATAL, VC_REASON_io_error, "%s: %s", path,
                              got < 0 ? strerror(errno) : "file ends early");
        p += got;
        n -= (size_t)got;
        off += (uint64_t)got;
    }
    return VC_OK;
}

enum vc_status dedup_sig_run(const char *path, unsigned part_bits, uint32_t part,
                             struct dedup_run *out, struct vc_err *err)
{
    memset(out, 0, sizeof *out);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return vc_err_io(err, path);
    uint8_t head[SIG_HEADER];
    uint64_t off[2];
    enum vc_status rc = read_at(fd, path, head, sizeof head, 0, err);
    uint32_t bits = 0, size = 0;
    uint64_t n = 0;
    if (rc == VC_OK) {
        memcpy(&bits, head + 8, 4);
        memcpy(&size, head + 12, 4);
        memcpy(&n, head + 16, 8);
        if (memcmp(head, sig_magic, 8) != 0 || bits != part_bits ||
            size != sizeof(struct dedup_sig) || part >> part_bits)
            rc = vc_err_set(err, VC_EFATAL, VC_REASON_corrupt_archive,
                            "%s: not a signature file with %u partition bits", path, part_bits);
    }
    if (rc == VC_OK)
        rc = read_at(fd, path, off, sizeof off, SIG_HEADER + (uint64_t)part * sizeof *off, err);
    if (rc == VC_OK && (off[0] > off[1] || off[1] > n))
        rc = vc_err_set(err, VC_EFATAL, VC_REASON_corrupt_archive, "%s: bad partition table", path);
    close(fd);
    if (rc != VC_OK)
        return rc;
    uint64_t table = (((uint64_t)1 << part_bits) + 1) * sizeof(uint64_t);
    out->base = SIG_HEADER + table + off[0] * sizeof(struct dedup_sig);
    out->n = off[1] - off[0];
    out->path = vc_strdup(path);
    if (!out->path)
        return vc_err_oom(err);
    return VC_OK;
}

enum vc_status dedup_sig_sorter(struct extsort **out, const char *tmp_prefix, size_t mem_bytes,
                                size_t max_fanin, struct vc_err *err)
{
    struct extsort_opts o = { sizeof(struct dedup_sig), dedup_sig_order, max_fanin };
    return extsort_open_with(out, tmp_prefix, mem_bytes, &o, err);
}

enum vc_status dedup_sig_add_part(struct extsort *s, const char *path, unsigned part_bits,
                                  uint32_t part, struct vc_err *err)
{
    struct dedup_run r;
    VC_TRY(dedup_sig_run(path, part_bits, part, &r, err));
    enum vc_status rc = extsort_add_run(s, r.path, r.base, r.n * sizeof(struct dedup_sig), err);
    free(r.path);
    return rc;
}

enum vc_status dedup_sig_drain(struct extsort *s, dedup_sig_fn fn, void *ctx, struct vc_err *err)
{
    VC_TRY(extsort_done(s, err));
    const uint8_t *rec;
    size_t n;
    int got;
    while ((got = extsort_next(s, &rec, &n, err)) > 0)
        VC_TRY(fn(ctx, (const struct dedup_sig *)(const void *)rec, err));
    return (enum vc_status)got;
}

enum vc_status dedup_sig_write_sorted(struct extsort *s, const char *path, unsigned part_bits,
                                      struct vc_err *err)
{
    struct dedup_sig_stream w;
    VC_TRY(dedup_sig_stream_open(&w, path, part_bits, err));
    enum vc_status rc = dedup_sig_drain(s, dedup_sig_stream_add, &w, err);
    enum vc_status crc = dedup_sig_stream_close(&w, rc == VC_OK, err);
    return rc == VC_OK ? crc : rc;
}

void dedup_sig_sort(struct dedup_sig *v, size_t n)
{
    if (n > 1) /* v may be NULL when empty, which qsort does not allow */
        qsort(v, n, sizeof *v, dedup_sig_order);
}

enum vc_status dedup_sig_stream_open(struct dedup_sig_stream *w, const char *path,
                                     unsigned part_bits, struct vc_err *err)
{
    *w = (struct dedup_sig_stream){ .part_bits = part_bits };
    if (part_bits > SIG_MAX_PART_BITS)
        return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec, "%u partition bits", part_bits);
    size_t len = strlen(path), n_parts = (size_t)1 << part_bits;
    w->path = vc_strdup(path);
    w->tmp = malloc(len + 5);
    w->start = calloc(n_parts + 1, sizeof *w->start);
    if (!w->path || !w->tmp || !w->start) {
        dedup_sig_stream_close(w, false, err);
        return vc_err_oom(err);
    }
    memcpy(w->tmp, path, len);
    memcpy(w->tmp + len, ".tmp", 5);
    /* The header and table, zero until the close knows them. */
    size_t head = SIG_HEADER + (n_parts + 1) * sizeof *w->start;
    bool ok = (w->f = fopen(w->tmp, "wb")) != NULL;
    for (size_t i = 0; ok && i < head; i++)
        ok = fputc(0, w->f) != EOF;
    if (!ok) {
        vc_err_io(err, w->tmp);
        dedup_sig_stream_close(w, false, NULL);
        return VC_EFATAL;
    }
    return VC_OK;
}

enum vc_status dedup_sig_stream_add(void *ctx, const struct dedup_sig *s, struct vc_err *err)
{
    struct dedup_sig_stream *w = ctx;
    uint32_t p = dedup_sig_part(s->key, w->part_bits);
    if (p < w->part)
        return vc_err_set(err, VC_EFATAL, VC_REASON_none, "%s: a signature out of order (a bug)",
                          w->tmp);
    for (; w->part < p; w->part++)
        w->start[w->part + 1] = w->n;
    if (fwrite(s, sizeof *s, 1, w->f) != 1)
        return vc_err_io(err, w->tmp);
    w->n++;
    return VC_OK;
}

enum vc_status dedup_sig_stream_close(struct dedup_sig_stream *w, bool commit, struct vc_err *err)
{
    enum vc_status rc = VC_OK;
    if (w->f) {
        size_t n_parts = (size_t)1 << w->part_bits;
        for (size_t p = w->part + 1; p <= n_parts; p++)
            w->start[p] = w->n;
        uint8_t head[SIG_HEADER];
        uint32_t bits = w->part_bits, size = sizeof(struct dedup_sig);
        memcpy(head, sig_magic, 8);
        memcpy(head + 8, &bits, 4);
        memcpy(head + 12, &size, 4);
        memcpy(head + 16, &w->n, 8);
        size_t table = (n_parts + 1) * sizeof *w->start;
        if (commit && (fflush(w->f) != 0 ||
                       pwrite(fileno(w->f), head, sizeof head, 0) != (ssize_t)sizeof head ||
                       pwrite(fileno(w->f), w->start, table, SIG_HEADER) != (ssize_t)table))
            rc = vc_err_io(err, w->tmp);
        rc = vc_fs_sync_close(w->f, w->tmp, commit, rc, err);
        if (commit && rc == VC_OK)
            rc = vc_fs_rename_pending(w->tmp, w->path, err);
        else
            unlink(w->tmp);
    }
    free(w->path);
    free(w->tmp);
    free(w->start);
    *w = (struct dedup_sig_stream){ 0 };
    return rc;
}

enum vc_status dedup_sig_range(const char *path, uint64_t lo, uint64_t hi, struct dedup_sig **v,
                               size_t *n, size_t *cap, struct vc_err *err)
{
    struct dedup_run run;
    VC_TRY(dedup_sig_run(path, 0, 0, &run, err));
    free(run.path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return vc_err_io(err, path);
    enum vc_status rc = VC_OK;
    uint64_t a = 0, b = run.n; /* the first record with key >= lo */
    while (rc == VC_OK && a < b) {
        uint64_t mid = a + (b - a) / 2;
        struct dedup_sig s;
        rc = read_at(fd, path, &s, sizeof s, run.base + mid * sizeof s, err);
        if (s.key < lo)
            a = mid + 1;
        else
            b = mid;
    }
    for (; rc == VC_OK && a < run.n; a++) {
        struct dedup_sig s;
        rc = read_at(fd, path, &s, sizeof s, run.base + a * sizeof s, err);
        if (rc != VC_OK || s.key > hi)
            break;
        struct dedup_sig *p = vc_grow_array(*v, cap, *n + 1, sizeof *p, 64);
        if (!p) {
            rc = vc_err_oom(err);
            break;
        }
        *v = p;
        (*v)[(*n)++] = s;
    }
    close(fd);
    return rc;
}
