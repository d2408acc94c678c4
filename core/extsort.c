/* extsort: buffered runs and a heap merge.  The buffer (and, for byte
 * records, its index) is allocated once at the budget (pages are touched
 * only as records come), so a small sort costs what it holds and a large
 * one the budget.  Runs are read through windows that pread fills, and
 * records are handed out where they lie in the window: no copy and no
 * stdio call per record, which is what lets the dedup reduce merge
 * signatures several times faster than GNU sort. */
#include "extsort.h"

#include "core/vc_fs.h"
#include "core/vc_mem.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A read window smaller than this costs more in pread calls than the
 * records it brings. */
enum { MIN_WINDOW = 32u << 10 };

struct run {
    char *path;
    uint64_t off, bytes;
    bool temp; /* written by this sort: removed once merged, or at close */
};

/* One run being merged: a window of it and its current record. */
struct src {
    int fd;
    const char *path;
    uint64_t next, end; /* file offsets: the next byte to read, the run's end */
    uint8_t *buf;
    size_t cap, pos, len;
    const uint8_t *rec;
    size_t n;
};

struct extsort {
    char *prefix;
    size_t mem, rec_size, fanin;
    extsort_cmp_fn cmp;
    uint8_t *buf; /* byte records: u32 length (host order) + bytes; fixed: the records */
    size_t used, cap;
    uint8_t **idx; /* byte records: where each one starts */
    size_t n, cap_idx;
    uint64_t count;
    struct run *runs; /* in creation order */
    size_t n_runs, cap_runs, next_id;
    bool reading, merging;
    size_t pos;
    struct src *src;
    size_t *heap, n_heap, n_src;
    bool pending; /* the heap's top was returned: advance it first */
};

void extsort_put_be(uint8_t *p, uint64_t v, int bytes)
{
    for (int i = bytes - 1; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

uint64_t extsort_get_be(const uint8_t *p, int bytes)
{
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++)
        v = (v << 8) | p[i];
    return v;
}

static int bytes_cmp(const uint8_t *a, size_t na, const uint8_t *b, size_t nb)
{
    int c = memcmp(a, b, na < nb ? na : nb);
    return c ? c : (na > nb) - (na < nb);
}

static uint32_t rec_len(const uint8_t *r)
{
    uint32_t n;
    memcpy(&n, r, 4);
    return n;
}

static int idx_cmp(const void *a, const void *b)
{
    const uint8_t *x = *(uint8_t *const *)a, *y = *(uint8_t *const *)b;
    return bytes_cmp(x + 4, rec_len(x), y + 4, rec_len(y));
}

static char *run_path(const struct extsort *s, size_t id)
{
    size_t n = strlen(s->prefix) + 32;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s.%zu", s->prefix, id);
    return p;
}

/* Removes PREFIX.N files a sort of the same prefix left when its process
 * was killed: runs are never read across processes. */
static void sweep(const char *prefix)
{
    const char *slash = strrchr(prefix, '/');
    size_t dl = slash ? (size_t)(slash - prefix) : 0;
    const char *base = slash ? slash + 1 : prefix;
    size_t bl = strlen(base);
    char *dir = slash ? strndup(prefix, dl ? dl : 1) : vc_strdup(".");
    DIR *d = dir ? opendir(dir) : NULL;
    for (struct dirent *e; d && (e = readdir(d));) {
        const char *n = e->d_name;
        if (strncmp(n, base, bl) != 0 || n[bl] != '.' || !n[bl + 1] ||
            strspn(n + bl + 1, "0123456789") != strlen(n + bl + 1))
            continue;
        size_t len = strlen(dir) + strlen(n) + 2;
        char *p = malloc(len);
        if (p) {
            snprintf(p, len, "%s/%s", dir, n);
            unlink(p);
        }
        free(p);
    }
    if (d)
        closedir(d);
    free(dir);
}

enum vc_status extsort_open_with(struct extsort **out, const char *tmp_prefix, size_t mem_bytes,
                                 const struct extsort_opts *o, struct vc_err *err)
{
    struct extsort *s = calloc(1, sizeof *s);
    *out = NULL;
    if (mem_bytes < (1u << 20))
        mem_bytes = 1u << 20;
    if (o->rec_size && !o->cmp)
        return vc_err_set(err, VC_EFATAL, VC_REASON_none, "a fixed-size sort without an order");
    if (s) {
        s->mem = mem_bytes;
        s->rec_size = o->rec_size;
        s->cmp = o->cmp;
        s->fanin = o->max_fanin ? o->max_fanin : EXTSORT_FANIN;
        if (s->fanin > mem_bytes / MIN_WINDOW)
            s->fanin = mem_bytes / MIN_WINDOW;
        if (s->fanin < 2)
            s->fanin = 2;
        s->prefix = vc_strdup(tmp_prefix);
        if (s->rec_size) {
            s->cap = mem_bytes / s->rec_size * s->rec_size;
        } else {
            s->cap = mem_bytes / 4 * 3;
            s->cap_idx = mem_bytes / 4 / sizeof *s->idx;
            s->idx = malloc(s->cap_idx * sizeof *s->idx);
        }
        s->buf = malloc(s->cap);
    }
    if (!s || !s->prefix || !s->buf || (!s->rec_size && !s->idx)) {
        extsort_close(s);
        return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "sort buffer for %s",
                          tmp_prefix);
    }
    sweep(tmp_prefix);
    *out = s;
    return VC_OK;
}

enum vc_status extsort_open(struct extsort **out, const char *tmp_prefix, size_t mem_bytes,
                            struct vc_err *err)
{
    return extsort_open_with(out, tmp_prefix, mem_bytes, &(struct extsort_opts){ 0 }, err);
}

static enum vc_status io_fail(const char *path, struct vc_err *err)
{
    return vc_err_set(err, VC_EFATAL, VC_REASON_io_error, "%s: %s", path,
                      errno ? strerror(errno) : "file ends inside a record");
}

/* Takes ownership of path (freed on failure). */
static enum vc_status run_push(struct extsort *s, char *path, uint64_t off, uint64_t bytes,
                               bool temp, struct vc_err *err)
{
    struct run *r = vc_grow_array(s->runs, &s->cap_runs, s->n_runs + 1, sizeof *r, 16);
    if (!r) {
        free(path);
        return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "sort runs");
    }
    s->runs = r;
    s->runs[s->n_runs++] = (struct run){ path, off, bytes, temp };
    return VC_OK;
}

static void sort_buffer(struct extsort *s)
{
    if (s->n < 2)
        return;
    if (s->rec_size)
        qsort(s->buf, s->n, s->rec_size, s->cmp);
    else
        qsort(s->idx, s->n, sizeof *s->idx, idx_cmp);
}

/* Sorts the buffer and writes it as the next run. */
static enum vc_status flush_run(struct extsort *s, struct vc_err *err)
{
    sort_buffer(s);
    char *path = run_path(s, s->next_id++);
    if (!path)
        return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "sort run");
    errno = 0;
    FILE *f = fopen(path, "wb");
    bool ok = f != NULL;
    if (ok && s->rec_size)
        ok = fwrite(s->buf, s->rec_size, s->n, f) == s->n;
    for (size_t i = 0; ok && !s->rec_size && i < s->n; i++)
        ok = fwrite(s->idx[i], 1, 4 + rec_len(s->idx[i]), f) == 4 + rec_len(s->idx[i]);
    if (f && fclose(f) != 0)
        ok = false;
    enum vc_status rc = VC_OK;
    if (!ok) {
        rc = io_fail(path, err);
        unlink(path);
        free(path);
    } else {
        rc = run_push(s, path, 0, s->used, true, err);
    }
    s->n = 0;
    s->used = 0;
    return rc;
}

enum vc_status extsort_add(struct extsort *s, const void *rec, size_t n, struct vc_err *err)
{
    size_t need = s->rec_size ? s->rec_size : 4 + n;
    if (s->rec_size ? n != s->rec_size : n > EXTSORT_MAX_REC)
        return vc_err_set(err, VC_EFATAL, VC_REASON_none, "a sort record of %zu bytes (a bug)", n);
    if (s->used + need > s->cap || (!s->rec_size && s->n == s->cap_idx))
        VC_TRY(flush_run(s, err));
    uint8_t *p = s->buf + s->used;
    if (!s->rec_size) {
        uint32_t len = (uint32_t)n;
        memcpy(p, &len, 4);
        s->idx[s->n] = p;
    }
    memcpy(p + need - n, rec, n);
    s->n++;
    s->used += need;
    s->count++;
    return VC_OK;
}

enum vc_status extsort_add_run(struct extsort *s, const char *path, uint64_t off, uint64_t bytes,
                               struct vc_err *err)
{
    if (s->reading || (s->rec_size && bytes % s->rec_size))
        return vc_err_set(err, VC_EFATAL, VC_REASON_none, "%s: not a run of this sort (a bug)",
                          path);
    if (!bytes)
        return VC_OK;
    char *p = vc_strdup(path);
    if (!p)
        return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "sort runs");
    return run_push(s, p, off, bytes, false, err);
}

uint64_t extsort_count(const struct extsort *s)
{
    return s->count;
}

/* Makes at least `need` bytes of the run available at r->buf + r->pos:
 * 1, or 0 when the run ended exactly here, VC_EFATAL (< 0) when it ends
 * early or cannot be read. */
static int src_ensure(struct src *r, size_t need, struct vc_err *err)
{
    size_t have = r->len - r->pos;
    if (have >= need)
        return 1;
    if (have == 0 && r->next == r->end)
        return 0;
    memmove(r->buf, r->buf + r->pos, have);
    r->len = have;
    r->pos = 0;
    if (need > r->cap) { /* a byte record longer than the window */
        uint8_t *g = realloc(r->buf, need);
        if (!g)
            return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "sort record");
        r->buf = g;
        r->cap = need;
    }
    while (r->len < need) {
        uint64_t left = r->end - r->next;
        size_t want = r->cap - r->len < left ? r->cap - r->len : (size_t)left;
        errno = 0;
        ssize_t got = want ? pread(r->fd, r->buf + r->len, want, (off_t)r->next) : 0;
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            return io_fail(r->path, err);
        r->len += (size_t)got;
        r->next += (uint64_t)got;
    }
    return 1;
}

/* The source's next record: 1, 0 at its end, VC_EFATAL (< 0). */
static int src_read(const struct extsort *s, struct src *r, struct vc_err *err)
{
    if (s->rec_size) {
        int k = src_ensure(r, s->rec_size, err);
        if (k <= 0)
            return k;
        r->rec = r->buf + r->pos;
        r->n = s->rec_size;
        r->pos += s->rec_size;
        return 1;
    }
    int k = src_ensure(r, 4, err);
    if (k <= 0)
        return k;
    uint32_t len = rec_len(r->buf + r->pos);
    if (len > EXTSORT_MAX_REC)
        return vc_err_set(err, VC_EFATAL, VC_REASON_io_error, "%s: a record of %u bytes", r->path,
                          len);
    if ((k = src_ensure(r, 4 + (size_t)len, err)) <= 0)
        return k < 0 ? k : io_fail(r->path, err);
    r->rec = r->buf + r->pos + 4;
    r->n = len;
    r->pos += 4 + (size_t)len;
    return 1;
}

static int rec_cmp(const struct extsort *s, const struct src *x, const struct src *y)
{
    return s->rec_size ? s->cmp(x->rec, y->rec) : bytes_cmp(x->rec, x->n, y->rec, y->n);
}

static bool heap_less(const struct extsort *s, size_t a, size_t b)
{
    int c = rec_cmp(s, &s->src[s->heap[a]], &s->src[s->heap[b]]);
    return c < 0 || (c == 0 && s->heap[a] < s->heap[b]);
}

static void sift_down(struct extsort *s, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, m = i;
        if (l < s->n_heap && heap_less(s, l, m))
            m = l;
        if (l + 1 < s->n_heap && heap_less(s, l + 1, m))
            m = l + 1;
        if (m == i)
            return;
        size_t t = s->heap[i];
        s->heap[i] = s->heap[m];
        s->heap[m] = t;
        i = m;
    }
}

static void merge_close(struct extsort *s)
{
    for (size_t i = 0; i < s->n_src; i++) {
        if (s->src[i].fd >= 0)
            close(s->src[i].fd);
        free(s->src[i].buf);
    }
    free(s->src);
    free(s->heap);
    s->src = NULL;
    s->heap = NULL;
    s->n_src = s->n_heap = 0;
    s->pending = false;
}

/* Opens runs [0, k) for a merge, each with an equal share of the budget
 * (at least MIN_WINDOW, at most the run). */
static enum vc_status merge_open(struct extsort *s, size_t k, struct vc_err *err)
{
    s->src = calloc(k + 1, sizeof *s->src);
    s->heap = calloc(k + 1, sizeof *s->heap);
    if (!s->src || !s->heap)
        return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "sort merge");
    for (size_t i = 0; i < k; i++)
        s->src[i].fd = -1;
    s->n_src = k;
    size_t share = s->mem / (k + 1);
    if (share < MIN_WINDOW)
        share = MIN_WINDOW;
    if (s->rec_size)
        share = share / s->rec_size * s->rec_size + s->rec_size;
    enum vc_status rc = VC_OK;
    for (size_t i = 0; rc == VC_OK && i < k; i++) {
        const struct run *run = &s->runs[i];
        struct src *r = &s->src[i];
        r->path = run->path;
        r->next = run->off;
        r->end = run->off + run->bytes;
        r->cap = run->bytes < share ? (size_t)run->bytes : share;
        errno = 0;
        r->fd = open(run->path, O_RDONLY | O_CLOEXEC);
        r->buf = malloc(r->cap ? r->cap : 1);
        if (r->fd < 0)
            rc = io_fail(run->path, err);
        else if (!r->buf)
            rc = vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "sort merge");
        int got = rc == VC_OK ? src_read(s, r, err) : 0;
        if (got < 0)
            rc = (enum vc_status)got;
        else if (got)
            s->heap[s->n_heap++] = i;
    }
    for (size_t i = s->n_heap; rc == VC_OK && i-- > 0;)
        sift_down(s, i);
    return rc;
}

static int merge_next(struct extsort *s, const uint8_t **rec, size_t *n, struct vc_err *err)
{
    if (s->pending && s->n_heap) {
        int got = src_read(s, &s->src[s->heap[0]], err);
        if (got < 0)
            return got;
        if (!got)
            s->heap[0] = s->heap[--s->n_heap];
        sift_down(s, 0);
    }
    s->pending = true;
    if (!s->n_heap)
        return 0;
    *rec = s->src[s->heap[0]].rec;
    *n = s->src[s->heap[0]].n;
    return 1;
}

/* Drops runs [0, k) from the list, removing the files this sort wrote. */
static void runs_remove(struct extsort *s, size_t k)
{
    for (size_t i = 0; i < k; i++) {
        if (s->runs[i].temp)
            unlink(s->runs[i].path);
        free(s->runs[i].path);
    }
    if (k < s->n_runs)
        memmove(s->runs, s->runs + k, (s->n_runs - k) * sizeof *s->runs);
    s->n_runs -= k;
}

/* Merges the oldest s->fanin runs into one new run. */
static enum vc_status merge_pass(struct extsort *s, struct vc_err *err)
{
    char *path = run_path(s, s->next_id++);
    errno = 0;
    FILE *f = path ? fopen(path, "wb") : NULL;
    enum vc_status rc = f      ? merge_open(s, s->fanin, err)
                        : path ? io_fail(path, err)
                               : vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "sort");
    const uint8_t *rec = NULL;
    size_t n = 0;
    uint64_t bytes = 0;
    int got;
    while (rc == VC_OK && (got = merge_next(s, &rec, &n, err)) != 0) {
        uint32_t len = (uint32_t)n;
        if (got < 0)
            rc = (enum vc_status)got;
        else if ((!s->rec_size && fwrite(&len, 1, 4, f) != 4) || fwrite(rec, 1, n, f) != n)
            rc = io_fail(path, err);
        bytes += (s->rec_size ? 0 : 4) + n;
    }
    merge_close(s);
    rc = vc_fs_close(f, path, rc, err);
    if (rc == VC_OK) {
        runs_remove(s, s->fanin);
        return run_push(s, path, 0, bytes, true, err);
    }
    if (path)
        unlink(path);
    free(path);
    return rc;
}

enum vc_status extsort_done(struct extsort *s, struct vc_err *err)
{
    s->reading = true;
    if (s->n_runs == 0) {
        sort_buffer(s);
        return VC_OK;
    }
    if (s->n)
        VC_TRY(flush_run(s, err));
    free(s->buf);
    free(s->idx);
    s->buf = NULL;
    s->idx = NULL;
    s->merging = true;
    while (s->n_runs > s->fanin)
        VC_TRY(merge_pass(s, err));
    return merge_open(s, s->n_runs, err);
}

enum vc_status extsort_rewind(struct extsort *s, struct vc_err *err)
{
    s->pos = 0;
    if (!s->merging)
        return VC_OK;
    merge_close(s);
    return merge_open(s, s->n_runs, err);
}

int extsort_next(struct extsort *s, const uint8_t **rec, size_t *n, struct vc_err *err)
{
    if (s->merging)
        return merge_next(s, rec, n, err);
    if (s->pos >= s->n)
        return 0;
    if (s->rec_size) {
        *rec = s->buf + s->pos * s->rec_size;
        *n = s->rec_size;
    } else {
        *rec = s->idx[s->pos] + 4;
        *n = rec_len(s->idx[s->pos]);
    }
    s->pos++;
    return 1;
}

void extsort_close(struct extsort *s)
{
    if (!s)
        return;
    merge_close(s);
    runs_remove(s, s->n_runs);
    free(s->runs);
    free(s->buf);
    free(s->idx);
    free(s->prefix);
    free(s);
}
