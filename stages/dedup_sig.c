/* dedup_sig: signature files and the bounded-memory k-way merge (see the
 * header).  Reads go through pread into fixed buffers, one per open run;
 * a binary heap picks the smallest head.  Nothing here grows with the
 * number of records: only with the number of runs merged at once, which
 * the memory budget caps. */
#include "dedup_sig.h"

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

static int sig_qsort_cmp(const void *a, const void *b)
{
    return dedup_sig_cmp(a, b);
}

enum vc_status dedup_sig_write(const char *path, struct dedup_sig *v, size_t n, unsigned part_bits,
                               struct vc_err *err)
{
    if (part_bits > SIG_MAX_PART_BITS)
        return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec, "%u partition bits", part_bits);
    /* A unit without images has no records and may have no array. */
    if (n)
        qsort(v, n, sizeof *v, sig_qsort_cmp);
    size_t n_parts = (size_t)1 << part_bits;
    size_t table = (n_parts + 1) * sizeof(uint64_t), recs, total;
    if (!vc_mul_ok(n, sizeof *v, &recs) || !vc_add_ok(SIG_HEADER + table, recs, &total))
        return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "%s: too many records", path);
    uint8_t *buf = malloc(total);
    if (!buf)
        return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "%s: %zu bytes", path, total);
    uint32_t bits = part_bits, size = sizeof *v;
    uint64_t n64 = n;
    memcpy(buf, sig_magic, 8);
    memcpy(buf + 8, &bits, 4);
    memcpy(buf + 12, &size, 4);
    memcpy(buf + 16, &n64, 8);
    size_t i = 0;
    for (size_t p = 0; p <= n_parts; p++) {
        while (i < n && dedup_sig_part(v[i].key, part_bits) < p)
            i++;
        uint64_t off = i;
        memcpy(buf + SIG_HEADER + p * sizeof off, &off, sizeof off);
    }
    if (n)
        memcpy(buf + SIG_HEADER + table, v, recs);
    enum vc_status rc = vc_fs_write_atomic(path, buf, total, err);
    free(buf);
    return rc;
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
        return vc_err_set(err, VC_EFATAL, VC_REASON_io_error, "%s: %s", path, strerror(errno));
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
        return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "out of memory");
    return VC_OK;
}

/* One open run: a window of `cap` records refilled by pread. */
struct cursor {
    int fd;
    const char *path;
    uint64_t next, left; /* file offset of the next unread record; records not yet read */
    struct dedup_sig *buf;
    size_t pos, len, cap;
};

static enum vc_status cursor_fill(struct cursor *c, struct vc_err *err)
{
    size_t n = c->left < c->cap ? (size_t)c->left : c->cap;
    VC_TRY(read_at(c->fd, c->path, c->buf, n * sizeof *c->buf, c->next, err));
    c->next += n * sizeof *c->buf;
    c->left -= n;
    c->pos = 0;
    c->len = n;
    return VC_OK;
}

static bool cursor_less(const struct cursor *a, const struct cursor *b)
{
    return dedup_sig_cmp(&a->buf[a->pos], &b->buf[b->pos]) < 0;
}

static void heap_down(struct cursor **h, size_t n, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, m = i;
        if (l < n && cursor_less(h[l], h[m]))
            m = l;
        if (l + 1 < n && cursor_less(h[l + 1], h[m]))
            m = l + 1;
        if (m == i)
            return;
        struct cursor *t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
    }
}

/* Merges runs[0..n) (n small enough to open at once) into emit. */
static enum vc_status merge_group(struct dedup_run *runs, size_t n, size_t per_run,
                                  dedup_emit_fn emit, void *ctx, struct vc_err *err)
{
    struct cursor *cs = calloc(n ? n : 1, sizeof *cs);
    struct cursor **heap = calloc(n ? n : 1, sizeof *heap);
    /* A run smaller than its share needs no more than itself. */
    uint64_t longest = 1;
    for (size_t i = 0; i < n; i++)
        longest = runs[i].n > longest ? runs[i].n : longest;
    if (per_run > longest)
        per_run = (size_t)longest;
    struct dedup_sig *bufs = vc_malloc_array(n ? n * per_run : 1, sizeof *bufs);
    enum vc_status rc = VC_OK;
    size_t h = 0, opened = 0;
    if (!cs || !heap || !bufs)
        rc = vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "merge of %zu runs", n);
    for (; rc == VC_OK && opened < n; opened++) {
        struct cursor *c = &cs[opened];
        c->path = runs[opened].path;
        c->fd = open(c->path, O_RDONLY | O_CLOEXEC);
        if (c->fd < 0) {
            rc = vc_err_set(err, VC_EFATAL, VC_REASON_io_error, "%s: %s", c->path, strerror(errno));
            break;
        }
        c->next = runs[opened].base;
        c->left = runs[opened].n;
        c->buf = bufs + opened * per_run;
        c->cap = per_run;
        rc = cursor_fill(c, err);
        if (rc == VC_OK && c->len)
            heap[h++] = c;
    }
    for (size_t i = h; rc == VC_OK && i-- > 0;)
        heap_down(heap, h, i);
    while (rc == VC_OK && h) {
        struct cursor *c = heap[0];
        rc = emit(ctx, &c->buf[c->pos], err);
        bool done = false;
        if (rc == VC_OK && ++c->pos == c->len) {
            if (c->left)
                rc = cursor_fill(c, err);
            else
                done = true;
        }
        if (rc != VC_OK)
            break;
        if (done)
            heap[0] = heap[--h];
        heap_down(heap, h, 0);
    }
    for (size_t i = 0; i < opened && cs; i++)
        if (cs[i].fd > 0)
            close(cs[i].fd);
    free(cs);
    free(heap);
    free(bufs);
    return rc;
}

struct spill {
    FILE *f;
    const char *path;
    uint64_t n;
};

static enum vc_status spill_emit(void *ctx, const struct dedup_sig *s, struct vc_err *err)
{
    struct spill *sp = ctx;
    if (fwrite(s, sizeof *s, 1, sp->f) != 1)
        return vc_err_set(err, VC_EFATAL, VC_REASON_io_error, "%s: %s", sp->path, strerror(errno));
    sp->n++;
    return VC_OK;
}

static void runs_free(struct dedup_run *runs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(runs[i].path);
        runs[i].path = NULL;
    }
}

/* 1,024 records (32 KiB) per run is where pread calls stop costing more
 * than the records they bring. */
enum { MERGE_MIN_BUF = 1024 };

enum vc_status dedup_merge(struct dedup_run *runs, size_t n_runs, size_t mem_bytes, size_t max_open,
                           const char *tmp_prefix, dedup_emit_fn emit, void *ctx,
                           struct vc_err *err)
{
    size_t rec = sizeof(struct dedup_sig);
    size_t fan = mem_bytes / (MERGE_MIN_BUF * rec);
    if (fan > max_open)
        fan = max_open;
    if (fan < 2)
        fan = 2;
    enum vc_status rc = VC_OK;
    unsigned pass = 0;
    /* Runs this function created (temp files to unlink), tracked by flag. */
    bool *tmp = calloc(n_runs ? n_runs : 1, sizeof *tmp);
    if (!tmp)
        rc = vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "out of memory");
    while (rc == VC_OK && n_runs > fan) {
        size_t n_out = 0;
        for (size_t g = 0; rc == VC_OK && g < n_runs; g += fan, pass++) {
            size_t k = n_runs - g < fan ? n_runs - g : fan;
            char path[4096];
            snprintf(path, sizeof path, "%s.%u", tmp_prefix, pass);
            struct spill sp = { fopen(path, "wb"), path, 0 };
            if (!sp.f) {
                rc =
                    vc_err_set(err, VC_EFATAL, VC_REASON_io_error, "%s: %s", path, strerror(errno));
                break;
            }
            rc = merge_group(runs + g, k, mem_bytes / ((k + 1) * rec) + 1, spill_emit, &sp, err);
            if (fclose(sp.f) != 0 && rc == VC_OK)
                rc =
                    vc_err_set(err, VC_EFATAL, VC_REASON_io_error, "%s: %s", path, strerror(errno));
            for (size_t i = g; i < g + k; i++)
                if (tmp[i])
                    unlink(runs[i].path);
            runs_free(runs + g, k);
            runs[n_out].path = vc_strdup(path);
            runs[n_out].base = 0;
            runs[n_out].n = sp.n;
            tmp[n_out++] = true;
            if (!runs[n_out - 1].path && rc == VC_OK)
                rc = vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "out of memory");
        }
        n_runs = rc == VC_OK ? n_out : n_runs;
    }
    if (rc == VC_OK) {
        size_t per_run = mem_bytes / ((n_runs + 1) * rec) + 1;
        if (per_run < MERGE_MIN_BUF)
            per_run = MERGE_MIN_BUF;
        rc = merge_group(runs, n_runs, per_run, emit, ctx, err);
    }
    for (size_t i = 0; i < n_runs; i++)
        if (tmp && tmp[i] && runs[i].path)
            unlink(runs[i].path);
    runs_free(runs, n_runs);
    free(tmp);
    return rc;
}

void dedup_sig_sort(struct dedup_sig *v, size_t n)
{
    if (n > 1) /* v may be NULL when empty, which qsort does not allow */
        qsort(v, n, sizeof *v, sig_qsort_cmp);
}

enum vc_status dedup_sig_put_run(const char *path, struct dedup_sig *v, size_t n,
                                 struct dedup_run *out, struct vc_err *err)
{
    dedup_sig_sort(v, n);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    bool ok = fd >= 0 && vc_fs_write_all(fd, v, n * sizeof *v);
    if (fd >= 0 && close(fd) != 0)
        ok = false;
    if (!ok)
        return vc_err_set(err, VC_EFATAL, VC_REASON_io_error, "%s: %s", path, strerror(errno));
    *out = (struct dedup_run){ .path = vc_strdup(path), .base = 0, .n = n };
    if (!out->path)
        return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "out of memory");
    return VC_OK;
}

/* Header and the two offsets of partition 0. */
enum { SIG_HEAD0 = SIG_HEADER + 2 * sizeof(uint64_t) };

enum vc_status dedup_sig_stream_open(struct dedup_sig_stream *w, const char *path,
                                     struct vc_err *err)
{
    *w = (struct dedup_sig_stream){ 0 };
    size_t len = strlen(path);
    w->path = vc_strdup(path);
    w->tmp = malloc(len + 5);
    if (!w->path || !w->tmp) {
        dedup_sig_stream_close(w, false, err);
        return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "out of memory");
    }
    memcpy(w->tmp, path, len);
    memcpy(w->tmp + len, ".tmp", 5);
    static const uint8_t zero[SIG_HEAD0];
    if (!(w->f = fopen(w->tmp, "wb")) || fwrite(zero, sizeof zero, 1, w->f) != 1) {
        vc_err_set(err, VC_EFATAL, VC_REASON_io_error, "%s: %s", w->tmp, strerror(errno));
        dedup_sig_stream_close(w, false, NULL);
        return VC_EFATAL;
    }
    return VC_OK;
}

enum vc_status dedup_sig_stream_add(void *ctx, const struct dedup_sig *s, struct vc_err *err)
{
    struct dedup_sig_stream *w = ctx;
    if (fwrite(s, sizeof *s, 1, w->f) != 1)
        return vc_err_set(err, VC_EFATAL, VC_REASON_io_error, "%s: %s", w->tmp, strerror(errno));
    w->n++;
    return VC_OK;
}

enum vc_status dedup_sig_stream_close(struct dedup_sig_stream *w, bool commit, struct vc_err *err)
{
    enum vc_status rc = VC_OK;
    if (w->f) {
        uint8_t head[SIG_HEAD0];
        uint32_t bits = 0, size = sizeof(struct dedup_sig);
        uint64_t off[2] = { 0, w->n };
        memcpy(head, sig_magic, 8);
        memcpy(head + 8, &bits, 4);
        memcpy(head + 12, &size, 4);
        memcpy(head + 16, &w->n, 8);
        memcpy(head + SIG_HEADER, off, sizeof off);
        if (commit && (fflush(w->f) != 0 ||
                       pwrite(fileno(w->f), head, sizeof head, 0) != (ssize_t)sizeof head))
            rc = vc_err_set(err, VC_EFATAL, VC_REASON_io_error, "%s: %s", w->tmp, strerror(errno));
        if (commit && rc == VC_OK && fsync(fileno(w->f)) != 0)
            rc = vc_err_set(err, VC_EFATAL, VC_REASON_io_error, "%s: %s", w->tmp, strerror(errno));
        if (fclose(w->f) != 0 && rc == VC_OK && commit)
            rc = vc_err_set(err, VC_EFATAL, VC_REASON_io_error, "%s: %s", w->tmp, strerror(errno));
        if (commit && rc == VC_OK)
            rc = vc_fs_commit_rename(w->tmp, w->path, err);
        else
            unlink(w->tmp);
    }
    free(w->path);
    free(w->tmp);
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
        return vc_err_set(err, VC_EFATAL, VC_REASON_io_error, "%s: %s", path, strerror(errno));
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
        if (*n == *cap) {
            size_t c = *cap ? 2 * *cap : 64;
            struct dedup_sig *p = vc_realloc_array(*v, c, sizeof *p);
            if (!p) {
                rc = vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "out of memory");
                break;
            }
            *v = p, *cap = c;
        }
        (*v)[(*n)++] = s;
    }
    close(fd);
    return rc;
}
