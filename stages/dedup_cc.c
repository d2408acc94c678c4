/* dedup_cc: external connected components (see the header).
 *
 * Why names stay correct: a name is always a node still present in the
 * pairs left, or a finished component's smallest node.  A chunk renames
 * only nodes it holds, to the smallest node of their component in it, and
 * the same renaming is applied to the pairs left and to every name given
 * before, so no pair or name ever points at a node that was renamed. */
#include "dedup_cc.h"

#include "core/extsort.h"
#include "core/vc_fs.h"
#include "core/vc_mem.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int dedup_pair_order(const void *x, const void *y)
{
    const struct dedup_pair *a = x, *b = y;
    if (a->a != b->a)
        return a->a < b->a ? -1 : 1;
    return (a->b > b->b) - (a->b < b->b);
}

enum vc_status dedup_pairs_write(FILE *f, const char *path, const struct dedup_pair *v, size_t n,
                                 struct vc_err *err)
{
    if (n && fwrite(v, sizeof *v, n, f) != n)
        return vc_err_io(err, path);
    return VC_OK;
}

/* One chunk joined in memory: its distinct nodes, sorted, and for each the
 * index of its component's smallest node. */
struct chunk {
    struct dedup_pair *buf; /* the chunk's pairs, then a read buffer */
    size_t cap;             /* pairs */
    uint64_t *node;         /* 2 * cap */
    uint32_t *parent;
    size_t n_node;
};

static int u64_order(const void *x, const void *y)
{
    uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
    return (a > b) - (a < b);
}

static size_t node_of(const struct chunk *c, uint64_t id)
{
    size_t lo = 0, hi = c->n_node;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (c->node[mid] < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < c->n_node && c->node[lo] == id ? lo : SIZE_MAX;
}

static uint32_t root_of(uint32_t *p, uint32_t i)
{
    while (p[i] != i) {
        p[i] = p[p[i]];
        i = p[i];
    }
    return i;
}

/* Joins buf[0..n); afterwards parent[k] is k's root for every node. */
static void chunk_join(struct chunk *c, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        c->node[2 * i] = c->buf[i].a;
        c->node[2 * i + 1] = c->buf[i].b;
    }
    qsort(c->node, 2 * n, sizeof *c->node, u64_order);
    size_t m = 0;
    for (size_t i = 0; i < 2 * n; i++)
        if (m == 0 || c->node[m - 1] != c->node[i])
            c->node[m++] = c->node[i];
    c->n_node = m;
    for (size_t k = 0; k < m; k++)
        c->parent[k] = (uint32_t)k;
    for (size_t i = 0; i < n; i++) {
        uint32_t ra = root_of(c->parent, (uint32_t)node_of(c, c->buf[i].a));
        uint32_t rb = root_of(c->parent, (uint32_t)node_of(c, c->buf[i].b));
        /* Nodes are sorted: the smaller index is the smaller node. */
        if (ra != rb)
            c->parent[ra > rb ? ra : rb] = ra < rb ? ra : rb;
    }
    for (size_t k = 0; k < m; k++)
        c->parent[k] = root_of(c->parent, (uint32_t)k);
}

static uint64_t renamed(const struct chunk *c, uint64_t id)
{
    size_t k = node_of(c, id);
    return k == SIZE_MAX ? id : c->node[c->parent[k]];
}

/* Streams the pairs left in `in` into `out` renamed by the chunk, without
 * those it joined into one name. */
static enum vc_status pass_pairs(struct chunk *c, FILE *in, const char *in_path, FILE *out,
                                 const char *out_path, struct vc_err *err)
{
    size_t got;
    while ((got = fread(c->buf, sizeof *c->buf, c->cap, in)) > 0) {
        size_t k = 0;
        for (size_t i = 0; i < got; i++) {
            uint64_t a = renamed(c, c->buf[i].a), b = renamed(c, c->buf[i].b);
            if (a != b)
                c->buf[k++] = (struct dedup_pair){ a < b ? a : b, a < b ? b : a };
        }
        VC_TRY(dedup_pairs_write(out, out_path, c->buf, k, err));
    }
    return ferror(in) ? vc_err_io(err, in_path) : VC_OK;
}

/* The names so far (`in`, NULL on the first pass) renamed by the chunk,
 * then the chunk's own renamed nodes, into `out`. */
static enum vc_status pass_names(struct chunk *c, FILE *in, const char *in_path, FILE *out,
                                 const char *out_path, struct vc_err *err)
{
    size_t got;
    while (in && (got = fread(c->buf, sizeof *c->buf, c->cap, in)) > 0) {
        for (size_t i = 0; i < got; i++)
            c->buf[i].b = renamed(c, c->buf[i].b);
        VC_TRY(dedup_pairs_write(out, out_path, c->buf, got, err));
    }
    if (in && ferror(in))
        return vc_err_io(err, in_path);
    size_t k = 0;
    for (size_t i = 0; i < c->n_node; i++) {
        if (c->parent[i] == i)
            continue;
        c->buf[k++] = (struct dedup_pair){ c->node[i], c->node[c->parent[i]] };
        if (k == c->cap) {
            VC_TRY(dedup_pairs_write(out, out_path, c->buf, k, err));
            k = 0;
        }
    }
    return dedup_pairs_write(out, out_path, c->buf, k, err);
}

/* One chunk: reads it from pairs[cur], writes pairs[!cur] and names[!cur].
 * *more: a chunk was found (false: the pairs are all joined). */
static enum vc_status pass(struct chunk *c, char *const pairs[2], char *const names[2], int cur,
                           bool first, bool *more, struct vc_err *err)
{
    FILE *in = fopen(pairs[cur], "rb"), *out = NULL, *nin = NULL, *nout = NULL;
    if (!in)
        return vc_err_io(err, pairs[cur]);
    enum vc_status rc = VC_OK;
    size_t n = fread(c->buf, sizeof *c->buf, c->cap, in);
    *more = n > 0;
    if (ferror(in))
        rc = vc_err_io(err, pairs[cur]);
    if (rc == VC_OK && *more) {
        chunk_join(c, n);
        if (!(out = fopen(pairs[!cur], "wb")))
            rc = vc_err_io(err, pairs[!cur]);
        if (rc == VC_OK)
            rc = pass_pairs(c, in, pairs[cur], out, pairs[!cur], err);
        if (rc == VC_OK && !first && !(nin = fopen(names[cur], "rb")))
            rc = vc_err_io(err, names[cur]);
        if (rc == VC_OK && !(nout = fopen(names[!cur], "wb")))
            rc = vc_err_io(err, names[!cur]);
        if (rc == VC_OK)
            rc = pass_names(c, nin, names[cur], nout, names[!cur], err);
    }
    fclose(in);
    if (nin)
        fclose(nin);
    rc = vc_fs_close(out, pairs[!cur], rc, err);
    return vc_fs_close(nout, names[!cur], rc, err);
}

/* Every named node with its label, and each label with itself, sorted and
 * without repeats. */
static enum vc_status write_labels(const char *names_path, const char *tmp_prefix, size_t mem_bytes,
                                   const char *labels_path, uint64_t *n_nodes, struct vc_err *err)
{
    struct extsort_opts o = { sizeof(struct dedup_pair), dedup_pair_order, 0 };
    struct extsort *s = NULL;
    FILE *in = NULL, *out = NULL;
    VC_TRY(extsort_open_with(&s, tmp_prefix, mem_bytes, &o, err));
    enum vc_status rc = VC_OK;
    if (names_path && !(in = fopen(names_path, "rb")))
        rc = vc_err_io(err, names_path);
    struct dedup_pair p;
    while (rc == VC_OK && in && fread(&p, sizeof p, 1, in) == 1) {
        struct dedup_pair self = { p.b, p.b };
        rc = extsort_add(s, &p, sizeof p, err);
        if (rc == VC_OK)
            rc = extsort_add(s, &self, sizeof self, err);
    }
    if (rc == VC_OK && in && ferror(in))
        rc = vc_err_io(err, names_path);
    if (rc == VC_OK)
        rc = extsort_done(s, err);
    if (rc == VC_OK && !(out = fopen(labels_path, "wb")))
        rc = vc_err_io(err, labels_path);
    const uint8_t *rec;
    size_t len;
    int got = 0;
    struct dedup_pair last = { 0 };
    *n_nodes = 0;
    while (rc == VC_OK && (got = extsort_next(s, &rec, &len, err)) > 0) {
        memcpy(&p, rec, sizeof p);
        if (*n_nodes && p.a == last.a)
            continue;
        last = p;
        ++*n_nodes;
        rc = dedup_pairs_write(out, labels_path, &p, 1, err);
    }
    if (rc == VC_OK && got < 0)
        rc = (enum vc_status)got;
    if (in)
        fclose(in);
    extsort_close(s);
    return vc_fs_close(out, labels_path, rc, err);
}

enum vc_status dedup_cc_labels(const char *pairs_path, const char *tmp_prefix, size_t mem_bytes,
                               const char *labels_path, uint64_t *n_nodes, struct vc_err *err)
{
    size_t budget = mem_bytes < (1u << 20) ? 1u << 20 : mem_bytes;
    struct chunk c = { .cap = budget / (sizeof(struct dedup_pair) + 2 * sizeof(uint64_t) +
                                        2 * sizeof(uint32_t)) };
    if (c.cap > UINT32_MAX / 2) /* node indices are 32-bit */
        c.cap = UINT32_MAX / 2;
    size_t plen = strlen(tmp_prefix) + 8, len0 = strlen(pairs_path) + 1;
    char *pairs[2] = { malloc(len0 > plen ? len0 : plen), malloc(plen) };
    bool own[2] = { false, true }; /* pairs[0] starts as the caller's file */
    char *names[2] = { malloc(plen), malloc(plen) }, *sort_prefix = malloc(plen);
    c.buf = vc_malloc_array(c.cap, sizeof *c.buf);
    c.node = vc_malloc_array(2 * c.cap, sizeof *c.node);
    c.parent = vc_malloc_array(2 * c.cap, sizeof *c.parent);
    enum vc_status rc = VC_OK;
    if (!pairs[0] || !pairs[1] || !names[0] || !names[1] || !sort_prefix || !c.buf || !c.node ||
        !c.parent)
        rc = vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "components: out of memory");
    /* The passes alternate between .p0/.p1 (pairs) and .n0/.n1 (names). */
    int cur = 0;
    bool first = true, more = true;
    for (int k = 0; rc == VC_OK && k < 2; k++) {
        snprintf(names[k], plen, "%s.n%d", tmp_prefix, k);
        snprintf(pairs[k], k ? plen : len0, "%s", k ? "" : pairs_path);
    }
    bool named = rc == VC_OK;
    if (named)
        snprintf(pairs[1], plen, "%s.p1", tmp_prefix);
    while (rc == VC_OK && more) {
        rc = pass(&c, pairs, names, cur, first, &more, err);
        if (rc != VC_OK || !more)
            break;
        if (!first)
            remove(names[cur]);
        if (own[cur])
            remove(pairs[cur]);
        else /* the caller's file stays; .p0 from now on */
            snprintf(pairs[cur], plen, "%s.p0", tmp_prefix);
        own[cur] = true;
        cur = !cur;
        first = false;
    }
    free(c.buf);
    free(c.node);
    free(c.parent);
    if (rc == VC_OK) {
        snprintf(sort_prefix, plen, "%s.s", tmp_prefix);
        rc = write_labels(first ? NULL : names[cur], sort_prefix, mem_bytes, labels_path, n_nodes,
                          err);
    }
    for (int k = 0; named && k < 2; k++) {
        remove(names[k]);
        if (own[k])
            remove(pairs[k]);
    }
    free(pairs[0]);
    free(pairs[1]);
    free(names[0]);
    free(names[1]);
    free(sort_prefix);
    return rc;
}
