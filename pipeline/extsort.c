/* extsort: buffered runs and a heap merge.  The buffer and its index are
 * allocated once at the budget (pages are touched only as records come),
 * so a small sort costs what it holds and a large one the budget. */
#include "extsort.h"

#include "core/vc_mem.h"

#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* One run being merged: its file and its current record. */
struct src {
    FILE *f;
    char *vbuf;
    uint8_t *rec;
    size_t n, cap;
};

struct extsort {
    char *prefix;
    size_t mem;
    uint8_t *buf; /* records: u32 length (host order) + bytes */
    size_t used, cap;
    uint8_t **idx;
    size_t n, cap_idx;
    uint64_t count;
    size_t *runs; /* ids of the runs on disk, in creation order */
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

static int rec_cmp(const uint8_t *a, size_t na, const uint8_t *b, size_t nb)
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
    return rec_cmp(x + 4, rec_len(x), y + 4, rec_len(y));
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

enum vc_status extsort_open(struct extsort **out, const char *tmp_prefix, size_t mem_bytes,
                            struct vc_err *err)
{
    struct extsort *s = calloc(1, sizeof *s);
    *out = NULL;
    if (mem_bytes < (1u << 20))
        mem_bytes = 1u << 20;
    if (s) {
        s->mem = mem_bytes;
        s->cap = mem_bytes / 4 * 3;
        s->cap_idx = mem_bytes / 4 / sizeof *s->idx;
        s->prefix = vc_strdup(tmp_prefix);
        s->buf = malloc(s->cap);
        s->idx = malloc(s->cap_idx * sizeof *s->idx);
    }
    if (!s || !s->prefix || !s->buf || !s->idx) {
        extsort_close(s);
        return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "sort buffer for %s",
                          tmp_prefix);
    }
    sweep(tmp_prefix);
    *out = s;
    return VC_OK;
}

static enum vc_status io_fail(const char *path, struct vc_err *err)
{
    return vc_err_set(err, VC_EFATAL, VC_REASON_io_error, "%s: %s", path,
                      errno ? strerror(errno) : "short read");
}

static enum vc_status run_push(struct extsort *s, size_t id, struct vc_err *err)
{
    if (s->n_runs == s->cap_runs) {
        size_t cap = s->cap_runs ? 2 * s->cap_runs : 16;
        size_t *r = vc_realloc_array(s->runs, cap, sizeof *r);
        if (!r)
            return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "sort runs");
        s->runs = r;
        s->cap_runs = cap;
    }
    s->runs[s->n_runs++] = id;
    return VC_OK;
}

/* Sorts the buffer and writes it as the next run. */
static enum vc_status flush_run(struct extsort *s, struct vc_err *err)
{
    qsort(s->idx, s->n, sizeof *s->idx, idx_cmp);
    size_t id = s->next_id++;
    char *path = run_path(s, id);
    if (!path)
        return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "sort run");
    errno = 0;
    FILE *f = fopen(path, "wb");
    bool ok = f != NULL;
    for (size_t i = 0; ok && i < s->n; i++)
        ok = fwrite(s->idx[i], 1, 4 + rec_len(s->idx[i]), f) == 4 + rec_len(s->idx[i]);
    if (f && fclose(f) != 0)
        ok = false;
    enum vc_status rc = ok ? run_push(s, id, err) : io_fail(path, err);
    if (!ok)
        unlink(path);
    free(path);
    s->n = 0;
    s->used = 0;
    return rc;
}

enum vc_status extsort_add(struct extsort *s, const void *rec, size_t n, struct vc_err *err)
{
    if (n > EXTSORT_MAX_REC)
        return vc_err_set(err, VC_EFATAL, VC_REASON_none, "a sort record of %zu bytes (a bug)", n);
    if (s->used + 4 + n > s->cap || s->n == s->cap_idx)
        VC_TRY(flush_run(s, err));
    uint8_t *p = s->buf + s->used;
    uint32_t len = (uint32_t)n;
    memcpy(p, &len, 4);
    memcpy(p + 4, rec, n);
    s->idx[s->n++] = p;
    s->used += 4 + n;
    s->count++;
    return VC_OK;
}

uint64_t extsort_count(const struct extsort *s)
{
    return s->count;
}

/* Reads the source's next record; false at its end (or on an error:
 * *rc set). */
static bool src_read(struct src *r, enum vc_status *rc, const char *what, struct vc_err *err)
{
    uint32_t len;
    errno = 0;
    if (fread(&len, 1, 4, r->f) != 4) {
        if (ferror(r->f))
            *rc = io_fail(what, err);
        return false;
    }
    if (len > r->cap) {
        uint8_t *g = realloc(r->rec, len);
        if (!g) {
            *rc = vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "sort record");
            return false;
        }
        r->rec = g;
        r->cap = len;
    }
    if (fread(r->rec, 1, len, r->f) != len) {
        *rc = io_fail(what, err);
        return false;
    }
    r->n = len;
    return true;
}

static bool heap_less(const struct extsort *s, size_t a, size_t b)
{
    const struct src *x = &s->src[s->heap[a]], *y = &s->src[s->heap[b]];
    int c = rec_cmp(x->rec, x->n, y->rec, y->n);
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
        if (s->src[i].f)
            fclose(s->src[i].f);
        free(s->src[i].vbuf);
        free(s->src[i].rec);
    }
    free(s->src);
    free(s->heap);
    s->src = NULL;
    s->heap = NULL;
    s->n_src = s->n_heap = 0;
    s->pending = false;
}

/* Opens runs [0, k) for a merge, each with an equal share of the budget. */
static enum vc_status merge_open(struct extsort *s, size_t k, struct vc_err *err)
{
    s->src = calloc(k + 1, sizeof *s->src);
    s->heap = calloc(k + 1, sizeof *s->heap);
    if (!s->src || !s->heap)
        return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "sort merge");
    s->n_src = k;
    size_t share = s->mem / (k + 1);
    enum vc_status rc = VC_OK;
    for (size_t i = 0; rc == VC_OK && i < k; i++) {
        char *path = run_path(s, s->runs[i]);
        struct src *r = &s->src[i];
        errno = 0;
        r->f = path ? fopen(path, "rb") : NULL;
        r->vbuf = r->f ? malloc(share) : NULL;
        if (!r->f)
            rc = path ? io_fail(path, err)
                      : vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "sort merge");
        else if (r->vbuf)
            setvbuf(r->f, r->vbuf, _IOFBF, share);
        if (rc == VC_OK && src_read(r, &rc, path, err))
            s->heap[s->n_heap++] = i;
        free(path);
    }
    for (size_t i = s->n_heap; rc == VC_OK && i-- > 0;)
        sift_down(s, i);
    return rc;
}

static int merge_next(struct extsort *s, const uint8_t **rec, size_t *n, struct vc_err *err)
{
    enum vc_status rc = VC_OK;
    if (s->pending && s->n_heap) {
        if (!src_read(&s->src[s->heap[0]], &rc, s->prefix, err))
            s->heap[0] = s->heap[--s->n_heap];
        if (rc != VC_OK)
            return rc;
        sift_down(s, 0);
    }
    s->pending = true;
    if (!s->n_heap)
        return 0;
    *rec = s->src[s->heap[0]].rec;
    *n = s->src[s->heap[0]].n;
    return 1;
}

static void runs_remove(struct extsort *s, size_t k)
{
    for (size_t i = 0; i < k; i++) {
        char *path = run_path(s, s->runs[i]);
        if (path)
            unlink(path);
        free(path);
    }
    if (k < s->n_runs)
        memmove(s->runs, s->runs + k, (s->n_runs - k) * sizeof *s->runs);
    s->n_runs -= k;
}

/* Merges the oldest EXTSORT_FANIN runs into one new run. */
static enum vc_status merge_pass(struct extsort *s, struct vc_err *err)
{
    size_t id = s->next_id++;
    char *path = run_path(s, id);
    errno = 0;
    FILE *f = path ? fopen(path, "wb") : NULL;
    enum vc_status rc = f      ? merge_open(s, EXTSORT_FANIN, err)
                        : path ? io_fail(path, err)
                               : vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "sort");
    const uint8_t *rec = NULL;
    size_t n = 0;
    int got;
    while (rc == VC_OK && (got = merge_next(s, &rec, &n, err)) != 0) {
        uint32_t len = (uint32_t)n;
        if (got < 0)
            rc = (enum vc_status)got;
        else if (fwrite(&len, 1, 4, f) != 4 || fwrite(rec, 1, n, f) != n)
            rc = io_fail(path, err);
    }
    merge_close(s);
    if (f && fclose(f) != 0 && rc == VC_OK)
        rc = io_fail(path, err);
    if (rc == VC_OK) {
        runs_remove(s, EXTSORT_FANIN);
        rc = run_push(s, id, err);
    } else if (path) {
        unlink(path);
    }
    free(path);
    return rc;
}

enum vc_status extsort_done(struct extsort *s, struct vc_err *err)
{
    s->reading = true;
    if (s->n_runs == 0) {
        qsort(s->idx, s->n, sizeof *s->idx, idx_cmp);
        return VC_OK;
    }
    if (s->n)
        VC_TRY(flush_run(s, err));
    free(s->buf);
    free(s->idx);
    s->buf = NULL;
    s->idx = NULL;
    s->merging = true;
    while (s->n_runs > EXTSORT_FANIN)
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
    *rec = s->idx[s->pos] + 4;
    *n = rec_len(s->idx[s->pos]);
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
