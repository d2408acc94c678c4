/* dedup_reduce: key groups to duplicate pairs (see the header).
 *
 * Memory: the merge's buffers plus, for a pHash band group, its distinct
 * hashes (32 bytes each).  A group holds about n / 2^(64 / (r + 1))
 * records for n random images, so the radius, not the budget, sets this:
 * README "Deduplication" gives the figures.  Time: at most
 * DEDUP_PHASH_WINDOW checks per hash and band. */
#include "dedup_reduce.h"

#include "core/extsort.h"
#include "core/vc_fs.h"
#include "core/vc_mem.h"
#include "dedup_hash.h"
#include "dedup_sig.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const method_names[DEDUP_M_COUNT] = {
    [DEDUP_M_IMAGE_SHA256] = "image_sha256",   [DEDUP_M_IMAGE_PIXELS] = "image_pixels",
    [DEDUP_M_IMAGE_PHASH] = "image_phash",     [DEDUP_M_TEXT_EXACT] = "text_exact",
    [DEDUP_M_TEXT_MINHASH] = "text_minhash",   [DEDUP_M_DOC_URL] = "doc_url",
    [DEDUP_M_DOC_IMAGE_SET] = "doc_image_set", [DEDUP_M_DOC_IMAGE_URL] = "doc_image_url",
    [DEDUP_M_DOC_PARAGRAPH] = "doc_paragraph", [DEDUP_M_DOC_IMAGE_REPEAT] = "doc_image_repeat",
};

const char *dedup_method_name(unsigned m)
{
    return m < DEDUP_M_COUNT && method_names[m] ? method_names[m] : "unknown";
}

struct dedup_sig dedup_sig_digest(enum dedup_method m, const uint8_t dg[32], uint32_t unit,
                                  uint32_t index, uint32_t weight)
{
    uint64_t a, b;
    memcpy(&a, dg, 8);
    memcpy(&b, dg + 8, 8);
    return (struct dedup_sig){ .key = dedup_mix64(a ^ (uint64_t)m),
                               .aux = b,
                               .unit = unit,
                               .index = index,
                               .weight = weight,
                               .kind = dedup_kind(m, 0) };
}

void dedup_sig_phash(uint64_t ph, int radius, uint32_t unit, uint32_t index, uint32_t weight,
                     struct dedup_sig *out)
{
    int nb = radius + 1;
    for (int j = 0; j < nb; j++)
        out[j] = (struct dedup_sig){
            .key = dedup_mix64(dedup_phash_band(ph, j, nb) ^ (uint64_t)(j + 1) << 56),
            .aux = ph,
            .unit = unit,
            .index = index,
            .weight = weight,
            .kind = dedup_kind(DEDUP_M_IMAGE_PHASH, (unsigned)j),
        };
}

struct reducer {
    const struct dedup_reduce_opts *o;
    struct dedup_reduce_stats *st;
    FILE *out;
    const char *out_path;
    bool have; /* a group is open */
    uint64_t key;
    uint16_t kind;
    uint64_t group_n;
    struct dedup_sig first;     /* exact / MinHash: the star's centre */
    struct dedup_sig *distinct; /* pHash: one record per distinct hash */
    size_t n_distinct, cap_distinct;
    /* Counted methods: the group's first records, until it reaches the
     * limit (held back: below the limit they are no edits). */
    struct dedup_sig *pending;
    size_t n_pending, cap_pending;
    struct extsort *edits; /* by sample, within a quarter of the budget */
};

static enum vc_status push_sig(struct dedup_sig **v, size_t *n, size_t *cap,
                               const struct dedup_sig *s, struct vc_err *err)
{
    struct dedup_sig *p = vc_grow_array(*v, cap, *n + 1, sizeof *p, 256);
    if (!p)
        return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "%zu signatures", *n + 1);
    *v = p;
    (*v)[(*n)++] = *s;
    return VC_OK;
}

static enum vc_status put_edit(struct reducer *r, const struct dedup_sig *s, struct vc_err *err)
{
    struct dedup_sig e = *s;
    e.key = (uint64_t)s->unit << 32 | s->index;
    e.aux = s->key;
    e.weight = 0;
    r->st->edits++;
    return extsort_add(r->edits, &e, sizeof e, err);
}

/* A counted method's record: held back until its group reaches the
 * limit, then every member of the group is an edit. */
static enum vc_status count_record(struct reducer *r, const struct dedup_sig *s, struct vc_err *err)
{
    unsigned m = s->kind >> 8;
    uint64_t limit =
        m == DEDUP_M_DOC_IMAGE_URL ? (uint64_t)r->o->image_url_max + 1 : r->o->paragraph_repeat;
    if (limit == 0)
        return VC_OK;
    if (r->group_n <= limit)
        VC_TRY(push_sig(&r->pending, &r->n_pending, &r->cap_pending, s, err));
    if (r->group_n == limit) {
        for (size_t i = 0; i < r->n_pending; i++)
            VC_TRY(put_edit(r, &r->pending[i], err));
        r->n_pending = 0;
        return VC_OK;
    }
    return r->group_n > limit ? put_edit(r, s, err) : VC_OK;
}

static enum vc_status put_edge(struct reducer *r, const struct dedup_sig *a,
                               const struct dedup_sig *b, unsigned score, struct vc_err *err)
{
    if (a->unit == b->unit && a->index == b->index)
        return VC_OK;
    struct dedup_edge e = {
        .unit_a = a->unit,
        .index_a = a->index,
        .unit_b = b->unit,
        .index_b = b->index,
        .weight_a = a->weight,
        .weight_b = b->weight,
        .method = (uint16_t)(a->kind >> 8),
        .score = (uint16_t)score,
    };
    if (fwrite(&e, sizeof e, 1, r->out) != 1)
        return vc_err_io(err, r->out_path);
    r->st->edges++;
    return VC_OK;
}

/* Every pair of distinct hashes in the group, or, past DEDUP_PHASH_WINDOW
 * of them, each hash with the next DEDUP_PHASH_WINDOW in hash order (the
 * rest are counted as skipped): a band value shared by a flood of
 * near-blank pictures would otherwise cost n^2 / 2 checks.  Equal hashes
 * were joined already (one record each in `distinct`). */
static enum vc_status flush_phash(struct reducer *r, struct vc_err *err)
{
    int n_bands = r->o->phash_radius + 1, band = r->kind & 0xff;
    size_t n = r->n_distinct;
    for (size_t i = 0; i < n; i++) {
        size_t end = n - i - 1 > DEDUP_PHASH_WINDOW ? i + 1 + DEDUP_PHASH_WINDOW : n;
        r->st->pairs_skipped += n - end;
        for (size_t j = i + 1; j < end; j++) {
            const struct dedup_sig *a = &r->distinct[i], *b = &r->distinct[j];
            r->st->pairs_checked++;
            int d = dedup_hamming(a->aux, b->aux);
            if (d <= r->o->phash_radius && dedup_phash_first_band(a->aux, b->aux, n_bands) == band)
                VC_TRY(put_edge(r, a, b, (unsigned)d, err));
        }
    }
    r->n_distinct = 0;
    return VC_OK;
}

static enum vc_status group_end(struct reducer *r, struct vc_err *err)
{
    if (!r->have)
        return VC_OK;
    r->st->groups++;
    if (r->group_n > r->st->largest_group)
        r->st->largest_group = r->group_n;
    r->have = false;
    r->n_pending = 0;
    return (r->kind >> 8) == DEDUP_M_IMAGE_PHASH ? flush_phash(r, err) : VC_OK;
}

static enum vc_status reduce_emit(void *ctx, const struct dedup_sig *s, struct vc_err *err)
{
    struct reducer *r = ctx;
    r->st->records++;
    if (r->have && (s->key != r->key || s->kind != r->kind))
        VC_TRY(group_end(r, err));
    bool fresh = !r->have;
    if (fresh) {
        r->have = true;
        r->key = s->key;
        r->kind = s->kind;
        r->group_n = 0;
        r->first = *s;
    }
    r->group_n++;
    unsigned m = s->kind >> 8;
    if (m == DEDUP_M_DOC_IMAGE_URL || m == DEDUP_M_DOC_PARAGRAPH)
        return count_record(r, s, err);
    if (m == DEDUP_M_IMAGE_PHASH) {
        if (r->n_distinct && r->distinct[r->n_distinct - 1].aux == s->aux)
            return (s->kind & 0xff) == 0 ? put_edge(r, &r->distinct[r->n_distinct - 1], s, 0, err)
                                         : VC_OK;
        if (r->n_distinct == r->cap_distinct) {
            size_t cap = r->cap_distinct ? 2 * r->cap_distinct : 256;
            struct dedup_sig *p = realloc(r->distinct, cap * sizeof *p);
            if (!p)
                return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory,
                                  "pHash band group of %zu hashes", r->n_distinct);
            r->distinct = p;
            r->cap_distinct = cap;
        }
        r->distinct[r->n_distinct++] = *s;
        return VC_OK;
    }
    if (fresh)
        return VC_OK;
    if (m == DEDUP_M_TEXT_MINHASH) {
        double sim = dedup_sketch_similarity(r->first.aux, s->aux);
        if (sim + 1e-9 < r->o->minhash_threshold)
            return VC_OK;
        return put_edge(r, &r->first, s, (unsigned)(sim * 1000 + 0.5), err);
    }
    if (s->aux != r->first.aux) { /* same key, another digest: a new run */
        r->first = *s;
        return VC_OK;
    }
    return put_edge(r, &r->first, s, 0, err);
}

enum vc_status dedup_reduce_part(char *const *paths, size_t n_paths, uint32_t part,
                                 const struct dedup_reduce_opts *o, const char *tmp_prefix,
                                 const char *edges_path, const char *edits_path,
                                 struct dedup_reduce_stats *stats, struct vc_err *err)
{
    memset(stats, 0, sizeof *stats);
    char tmp[4096], edits_prefix[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", edges_path);
    snprintf(edits_prefix, sizeof edits_prefix, "%s.e", tmp_prefix);
    struct reducer r = { .o = o, .st = stats, .out_path = tmp };
    struct extsort *merge = NULL;
    enum vc_status rc =
        dedup_sig_sorter(&merge, tmp_prefix, o->mem_bytes - o->mem_bytes / 4, o->max_open, err);
    if (rc == VC_OK)
        rc = dedup_sig_sorter(&r.edits, edits_prefix, o->mem_bytes / 4, o->max_open, err);
    for (size_t i = 0; rc == VC_OK && i < n_paths; i++)
        rc = dedup_sig_add_part(merge, paths[i], o->part_bits, part, err);
    if (rc == VC_OK && !(r.out = fopen(tmp, "wb")))
        rc = vc_err_io(err, tmp);
    if (rc == VC_OK)
        rc = dedup_sig_drain(merge, reduce_emit, &r, err);
    extsort_close(merge);
    if (rc == VC_OK)
        rc = group_end(&r, err);
    if (rc == VC_OK && edits_path)
        rc = dedup_sig_write_sorted(r.edits, edits_path, 0, err);
    rc = vc_fs_sync_close(r.out, tmp, true, rc, err);
    if (rc == VC_OK)
        rc = vc_fs_rename_pending(tmp, edges_path, err);
    extsort_close(r.edits);
    free(r.distinct);
    free(r.pending);
    return rc;
}

enum vc_status dedup_clusters_init(struct dedup_clusters *c, size_t n, struct vc_err *err)
{
    *c = (struct dedup_clusters){
        .n = n,
        .parent = vc_malloc_array(n + 1, sizeof *c->parent),
        .weight = calloc(n + 1, sizeof *c->weight),
        .size = calloc(n + 1, sizeof *c->size),
        .method = calloc(n + 1, sizeof *c->method),
        .score = calloc(n + 1, sizeof *c->score),
    };
    if (!c->parent || !c->weight || !c->size || !c->method || !c->score) {
        dedup_clusters_free(c);
        return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "clusters of %zu samples", n);
    }
    for (size_t i = 0; i < n; i++)
        c->parent[i] = i;
    return VC_OK;
}

void dedup_clusters_free(struct dedup_clusters *c)
{
    free(c->parent);
    free(c->weight);
    free(c->size);
    free(c->method);
    free(c->score);
    memset(c, 0, sizeof *c);
}

size_t dedup_clusters_root(struct dedup_clusters *c, size_t i)
{
    while (c->parent[i] != i) {
        c->parent[i] = c->parent[c->parent[i]];
        i = c->parent[i];
    }
    return i;
}

unsigned dedup_strength(unsigned method, unsigned score)
{
    unsigned s = method == DEDUP_M_TEXT_MINHASH ? 1000 - (score > 1000 ? 1000 : score) : score;
    return method << 16 | s;
}

static void note_pair(struct dedup_clusters *c, size_t i, uint32_t weight, unsigned method,
                      unsigned score)
{
    if (weight > c->weight[i])
        c->weight[i] = weight;
    if (c->method[i] == 0 ||
        dedup_strength(method, score) < dedup_strength(c->method[i], c->score[i])) {
        c->method[i] = (uint16_t)method;
        c->score[i] = (uint16_t)score;
    }
}

enum vc_status dedup_edges_each(const char *path, dedup_edge_fn fn, void *ctx, struct vc_err *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return vc_err_io(err, path);
    struct dedup_edge buf[1024];
    size_t got;
    enum vc_status rc = VC_OK;
    while (rc == VC_OK && (got = fread(buf, sizeof *buf, 1024, f)) > 0)
        for (size_t k = 0; rc == VC_OK && k < got; k++)
            rc = fn(ctx, &buf[k], err);
    bool bad = ferror(f);
    fclose(f);
    if (rc == VC_OK && bad)
        return vc_err_set(err, VC_EFATAL, VC_REASON_io_error, "%s: read error", path);
    return rc;
}

struct clusters_feed {
    struct dedup_clusters *c;
    unsigned method;
    dedup_id_fn id;
    const void *ctx;
};

static enum vc_status clusters_edge(void *ctx, const struct dedup_edge *e, struct vc_err *err)
{
    (void)err;
    const struct clusters_feed *f = ctx;
    struct dedup_clusters *c = f->c;
    if (f->method && e->method != f->method)
        return VC_OK;
    size_t a = f->id(f->ctx, e->unit_a, e->index_a), b = f->id(f->ctx, e->unit_b, e->index_b);
    if (a >= c->n || b >= c->n || a == b)
        return VC_OK;
    c->pairs++;
    note_pair(c, a, e->weight_a, e->method, e->score);
    note_pair(c, b, e->weight_b, e->method, e->score);
    size_t ra = dedup_clusters_root(c, a), rb = dedup_clusters_root(c, b);
    if (ra != rb)
        c->parent[ra > rb ? ra : rb] = ra < rb ? ra : rb;
    return VC_OK;
}

enum vc_status dedup_clusters_add(struct dedup_clusters *c, const char *path, unsigned method,
                                  dedup_id_fn id, const void *ctx, struct vc_err *err)
{
    struct clusters_feed f = { c, method, id, ctx };
    return dedup_edges_each(path, clusters_edge, &f, err);
}

void dedup_clusters_count(struct dedup_clusters *c)
{
    for (size_t i = 0; i < c->n; i++)
        c->size[dedup_clusters_root(c, i)]++;
}
