/* st_dedup: the dedup stage (see the header for params).
 *
 * MAP never rejects: it only writes signatures; a sample whose image
 * cannot be decoded for its pHash is an error (VC_ESAMPLE) naming why.
 * Signature files live in WORK/rR-dedup-sig-<unit> and are complete
 * (fsynced, renamed) before task_end returns, so the unit's commit covers
 * them.  Each reduce part writes WORK/rR-dedup-edges-<part>; PLAN reads
 * them back in partition order.  A duplicate's method and distance are
 * those of the strongest pair that reached it (which may join it to
 * another member of its cluster than the kept one).  Memory of MAP:
 * DEDUP_MAP_SORT_BYTES for the unit's signatures (32 bytes each, ~2 per
 * sample with the exact methods, ~20 with MinHash), sorted in memory up to
 * that and as an external sort beyond; of the reduce and of the plan: memory_mb,
 * whatever the number of samples, pairs and duplicates (the plan's steps
 * are external sorts and streams: see "The plan" below). */
#include "st_dedup.h"

#include "core/extsort.h"
#include "core/sha256.h"
#include "core/vc_fs.h"
#include "core/vc_mem.h"
#include "dedup_cc.h"
#include "dedup_doc.h"
#include "dedup_hash.h"
#include "dedup_reduce.h"
#include "dedup_sig.h"
#include "stage_cfg.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WHERE "stage 'dedup'"

enum keep_rule { KEEP_LARGEST = 0, KEEP_FIRST = 1 };

struct st_dedup {
    bool img_exact, img_pixels, img_phash, txt_exact, txt_minhash, doc_url, doc_imgset;
    bool doc_repeat; /* an image repeated inside a document is kept once */
    char why_url[96], why_par[96];
    int ngram, bands, rows;
    enum keep_rule keep;
    struct dedup_reduce_opts ro;
    struct img_limits limits;
};

/* Per task: the unit's signatures (MAP), or the unit's edits sorted by
 * sample (edit hooks of the next round). */
/* A MAP task sorts its unit's signatures in this much memory: 262,144 of
 * them, a 10,000-sample unit's with every method on, so a webdataset
 * shard of the usual size is sorted in memory and writes no run file; a
 * larger unit spills sorted runs of this size under _work and merges
 * them (extsort.h), so a task's memory does not follow its unit. */
#define DEDUP_MAP_SORT_BYTES ((size_t)8 << 20)

struct dedup_task {
    struct extsort *sort; /* MAP: the unit's signatures */
    struct dedup_sig *v;  /* edits: the unit's, from every part */
    size_t n, cap;
    size_t pos; /* edits: the first one not yet behind the current sample */
};

/* A sub-object that may be absent (on, defaults), false (off), true (on)
 * or an object of `allowed` keys. */
static enum vc_status cfg_section(const cJSON *cfg, const char *key, const char *where,
                                  const char *const *allowed, const cJSON **obj, bool *on,
                                  struct vc_err *err)
{
    const cJSON *v = cfg ? cJSON_GetObjectItemCaseSensitive(cfg, key) : NULL;
    *obj = NULL;
    *on = !cJSON_IsFalse(v);
    if (!v || cJSON_IsBool(v) || cJSON_IsNull(v))
        return VC_OK;
    if (!cJSON_IsObject(v))
        return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec,
                          "%s: '%s' must be an object, true or false", where, key);
    *obj = v;
    return stage_cfg_check_keys(v, where, allowed, err);
}

static enum vc_status parse(struct st_dedup *d, const cJSON *cfg, struct vc_err *err)
{
    static const char *const top[] = { "stage", "image",     "text",       "documents",
                                       "keep",  "memory_mb", "partitions", NULL };
    static const char *const img_keys[] = { "exact", "pixels", "phash", NULL };
    static const char *const ph_keys[] = { "radius", NULL };
    static const char *const txt_keys[] = { "exact", "minhash", NULL };
    static const char *const mh_keys[] = { "ngram", "bands", "rows", "threshold", NULL };
    static const char *const doc_keys[] = { "url",           "image_set",        "image_repeat",
                                            "image_url_max", "paragraph_repeat", NULL };
    static const char *const keep_names[] = { "largest", "first", NULL };
    VC_TRY(stage_cfg_check_keys(cfg, WHERE, top, err));
    const cJSON *img, *ph, *txt, *mh, *doc;
    bool img_on, txt_on, doc_on;
    VC_TRY(cfg_section(cfg, "image", WHERE " image", img_keys, &img, &img_on, err));
    VC_TRY(cfg_section(img, "phash", WHERE " image.phash", ph_keys, &ph, &d->img_phash, err));
    VC_TRY(cfg_section(cfg, "text", WHERE " text", txt_keys, &txt, &txt_on, err));
    VC_TRY(cfg_section(txt, "minhash", WHERE " text.minhash", mh_keys, &mh, &d->txt_minhash, err));
    VC_TRY(cfg_section(cfg, "documents", WHERE " documents", doc_keys, &doc, &doc_on, err));
    VC_TRY(stage_cfg_bool(img, WHERE " image", "exact", true, &d->img_exact, err));
    VC_TRY(stage_cfg_bool(img, WHERE " image", "pixels", false, &d->img_pixels, err));
    VC_TRY(stage_cfg_bool(txt, WHERE " text", "exact", true, &d->txt_exact, err));
    VC_TRY(stage_cfg_bool(doc, WHERE " documents", "url", true, &d->doc_url, err));
    VC_TRY(stage_cfg_bool(doc, WHERE " documents", "image_set", true, &d->doc_imgset, err));
    VC_TRY(stage_cfg_bool(doc, WHERE " documents", "image_repeat", true, &d->doc_repeat, err));
    uint64_t url_max, par_rep;
    /* 0 turns a counted rule off; the limits bound what a reduce holds
     * back per group (one signature each). */
    VC_TRY(stage_cfg_u64(doc, WHERE " documents", "image_url_max", 10, 0, 1000000, &url_max, err));
    VC_TRY(
        stage_cfg_u64(doc, WHERE " documents", "paragraph_repeat", 3, 0, 1000000, &par_rep, err));
    if (par_rep == 1)
        return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec,
                          "%s documents: 'paragraph_repeat' 1 would remove every paragraph; "
                          "use 0 to turn it off or 2 and more",
                          WHERE);
    d->doc_repeat &= doc_on;
    d->ro.image_url_max = doc_on ? (uint32_t)url_max : 0;
    d->ro.paragraph_repeat = doc_on ? (uint32_t)par_rep : 0;
    snprintf(d->why_url, sizeof d->why_url, "image URL in more than %llu documents",
             (unsigned long long)url_max);
    snprintf(d->why_par, sizeof d->why_par, "paragraph seen %llu or more times in its domain",
             (unsigned long long)par_rep);
    d->img_exact &= img_on, d->img_pixels &= img_on, d->img_phash &= img_on;
    d->txt_exact &= txt_on, d->txt_minhash &= txt_on;
    d->doc_url &= doc_on, d->doc_imgset &= doc_on;
    uint64_t radius, ngram, bands, rows, mem_mb, parts;
    /* 31: 32 bands of 2 bits would make every image a candidate of every
     * other; past ~20 pHash stops telling pictures apart anyway. */
    VC_TRY(stage_cfg_u64(ph, WHERE " image.phash", "radius", 10, 0, 31, &radius, err));
    VC_TRY(stage_cfg_u64(mh, WHERE " text.minhash", "ngram", 5, 1, 64, &ngram, err));
    VC_TRY(
        stage_cfg_u64(mh, WHERE " text.minhash", "bands", 14, 1, DEDUP_MH_BANDS_MAX, &bands, err));
    VC_TRY(stage_cfg_u64(mh, WHERE " text.minhash", "rows", 8, 1, DEDUP_MH_ROWS_MAX, &rows, err));
    VC_TRY(stage_cfg_double(mh, WHERE " text.minhash", "threshold", 0.8, 0, 1,
                            &d->ro.minhash_threshold, err));
    int keep;
    VC_TRY(stage_cfg_enum(cfg, WHERE, "keep", keep_names, KEEP_LARGEST, &keep, err));
    /* 4 MiB: a few buffers of 32 KiB per merged file still fit. */
    VC_TRY(stage_cfg_u64(cfg, WHERE, "memory_mb", 256, 4, 1u << 20, &mem_mb, err));
    VC_TRY(stage_cfg_u64(cfg, WHERE, "partitions", 16, 1, 1u << 16, &parts, err));
    unsigned bits = 0;
    while ((1ull << bits) < parts)
        bits++;
    if ((1ull << bits) != parts)
        return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec,
                          "%s: 'partitions' must be a power of two, not %llu", WHERE,
                          (unsigned long long)parts);
    d->ro.phash_radius = (int)radius;
    d->ngram = (int)ngram, d->bands = (int)bands, d->rows = (int)rows;
    d->keep = (enum keep_rule)keep;
    d->ro.mem_bytes = (size_t)mem_mb << 20;
    /* Far below the usual 1024 descriptors, with room for the executor's. */
    d->ro.max_open = 256;
    d->ro.part_bits = bits;
    return VC_OK;
}

static void dedup_destroy(void *state)
{
    struct st_dedup *d = state;
    if (!d)
        return;
    free(d);
}

static enum vc_status dedup_create(const cJSON *cfg, const struct stage_ctx *ctx, void **state,
                                   struct vc_err *err)
{
    struct st_dedup *d = calloc(1, sizeof *d);
    if (!d)
        return vc_err_oom(err);
    enum vc_status rc = parse(d, cfg, err);
    if (rc == VC_OK && ctx && ctx->limits) {
        d->limits.max_pixels = ctx->limits->max_pixels;
        d->limits.max_side = ctx->limits->max_side;
    }
    if (rc != VC_OK) {
        dedup_destroy(d);
        return rc;
    }
    dedup_hash_init();
    *state = d;
    return VC_OK;
}

static enum vc_status work_path(const struct stage_ctx *ctx, const char *what, size_t n, char *out,
                                size_t cap, struct vc_err *err);

static enum vc_status dedup_task_begin(void *state, struct stage_task_ctx *ctx, struct vc_err *err)
{
    (void)state;
    struct dedup_task *t = calloc(1, sizeof *t);
    if (!(ctx->task_state = t))
        return vc_err_oom(err);
    char prefix[4096];
    VC_TRY(work_path(ctx->run, "sigsort", ctx->unit, prefix, sizeof prefix, err));
    return dedup_sig_sorter(&t->sort, prefix, DEDUP_MAP_SORT_BYTES, 0, err);
}

static enum vc_status push(struct dedup_task *t, struct dedup_sig sig, struct vc_err *err)
{
    return extsort_add(t->sort, &sig, sizeof sig, err);
}

static void digest(const void *p, size_t n, uint8_t out[32])
{
    struct sha256 c;
    sha256_init(&c);
    sha256_update(&c, p, n);
    sha256_final(&c, out);
}

static enum vc_status sign_image(const struct st_dedup *d, struct dedup_task *t, struct sample *s,
                                 const struct stage_task_ctx *ctx, struct sample_field *f,
                                 uint32_t weight, struct vc_err *err)
{
    uint32_t idx = (uint32_t)s->src_index;
    if (d->img_exact)
        VC_TRY(push(
            t,
            dedup_sig_digest(DEDUP_M_IMAGE_SHA256, sample_field_sha256(f), ctx->unit, idx, weight),
            err));
    if (d->img_pixels) {
        struct img im;
        VC_TRY(img_decode(f->data, f->size, &d->limits, IMG_DECODE_NO_ORIENT, &im, err));
        uint32_t dims[2] = { im.w, im.h };
        uint8_t dg[32];
        struct sha256 c;
        sha256_init(&c);
        sha256_update(&c, dims, sizeof dims);
        sha256_update(&c, im.pixels, (size_t)im.w * im.h * im.ch);
        sha256_final(&c, dg);
        img_release(&im);
        VC_TRY(push(t, dedup_sig_digest(DEDUP_M_IMAGE_PIXELS, dg, ctx->unit, idx, weight), err));
    }
    if (d->img_phash) {
        uint64_t ph;
        VC_TRY(dedup_phash_image(f->data, f->size, &d->limits, &ph, err));
        /* Also in the output json, so users and `stats` can compare later
         * runs against this one. */
        char hex[17], sha[65];
        snprintf(hex, sizeof hex, "%016llx", (unsigned long long)ph);
        /* The decode checked every byte: write need not decode it again. */
        sha256_digest_to_hex(sample_field_sha256(f), sha);
        cJSON *meta = sample_meta(s);
        if (!meta || !cJSON_AddStringToObject(meta, "phash", hex) ||
            !cJSON_AddStringToObject(meta, SAMPLE_META_DECODED_SHA256, sha))
            return vc_err_oom(err);
        struct dedup_sig bands[32];
        dedup_sig_phash(ph, d->ro.phash_radius, ctx->unit, idx, weight, bands);
        for (int j = 0; j <= d->ro.phash_radius; j++)
            VC_TRY(push(t, bands[j], err));
    }
    return VC_OK;
}

static enum vc_status sign_text(const struct st_dedup *d, struct dedup_task *t,
                                const struct sample *s, const struct stage_task_ctx *ctx,
                                const char *text, size_t len, uint32_t weight, struct vc_err *err)
{
    uint32_t idx = (uint32_t)s->src_index;
    char *norm;
    size_t n;
    VC_TRY(dedup_text_normalize(text, len, &norm, &n, err));
    enum vc_status rc = VC_OK;
    if (n == 0) {
        free(norm);
        return VC_OK; /* an empty text duplicates nothing */
    }
    if (d->keep == KEEP_LARGEST && weight == 0)
        weight = n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;
    if (d->keep == KEEP_FIRST)
        weight = 0;
    if (d->txt_exact) {
        uint8_t dg[32];
        digest(norm, n, dg);
        rc = push(t, dedup_sig_digest(DEDUP_M_TEXT_EXACT, dg, ctx->unit, idx, weight), err);
    }
    struct dedup_minhash mh;
    if (rc == VC_OK && d->txt_minhash && dedup_minhash(norm, n, d->ngram, d->bands, d->rows, &mh))
        for (int b = 0; rc == VC_OK && b < mh.n_bands; b++)
            rc = push(t,
                      (struct dedup_sig){ .key = mh.band[b],
                                          .aux = mh.sketch,
                                          .unit = ctx->unit,
                                          .index = idx,
                                          .weight = weight,
                                          .kind = dedup_kind(DEDUP_M_TEXT_MINHASH, (unsigned)b) },
                      err);
    free(norm);
    return rc;
}

/* The signature of a counted document rule: the image's or paragraph's
 * key, apart per method. */
static struct dedup_sig count_sig(unsigned method, uint64_t key, uint32_t unit, uint32_t index)
{
    return (struct dedup_sig){ .key = dedup_mix64(key ^ (uint64_t)method << 56),
                               .unit = unit,
                               .index = index,
                               .kind = dedup_kind((enum dedup_method)method, 0) };
}

/* MAP's judge of a document's images and paragraphs: drops an image seen
 * before in the document, writes the counted rules' signatures. */
struct map_judge {
    const struct st_dedup *d;
    struct dedup_task *t;
    uint32_t unit, index;
    uint64_t *seen; /* the document's image keys so far */
    size_t n_seen, cap_seen;
    unsigned repeats;
};

static unsigned map_judge(void *ctx, unsigned kind, uint64_t key, enum vc_status *rc,
                          struct vc_err *err)
{
    struct map_judge *j = ctx;
    if (kind == DEDUP_M_DOC_PARAGRAPH) {
        if (j->d->ro.paragraph_repeat)
            *rc = push(j->t, count_sig(kind, key, j->unit, j->index), err);
        return 0;
    }
    /* Documents hold a few images: a linear scan. */
    for (size_t i = 0; i < j->n_seen; i++)
        if (j->seen[i] == key) {
            if (!j->d->doc_repeat)
                return 0;
            j->repeats++;
            return DEDUP_M_DOC_IMAGE_REPEAT;
        }
    uint64_t *p = vc_grow_array(j->seen, &j->cap_seen, j->n_seen + 1, sizeof *p, 16);
    if (!p) {
        *rc = vc_err_oom(err);
        return 0;
    }
    j->seen = p;
    j->seen[j->n_seen++] = key;
    /* Counted once per document: OBELICS's "seen in more than 10
     * documents". */
    if (j->d->ro.image_url_max)
        *rc = push(j->t, count_sig(kind, key, j->unit, j->index), err);
    return 0;
}

static void set_reasons(const struct st_dedup *d, struct dedup_doc *doc)
{
    doc->reason[DEDUP_M_DOC_IMAGE_REPEAT] = "image repeated in the document";
    doc->reason[DEDUP_M_DOC_IMAGE_URL] = d->why_url;
    doc->reason[DEDUP_M_DOC_PARAGRAPH] = d->why_par;
}

/* An OBELICS-style document (dedup_doc): images repeated inside it go
 * first, then its signatures: the counted rules', its URL, the set of its
 * image SHA-256s, its texts joined with blank lines. */
static enum vc_status sign_document(const struct st_dedup *d, struct dedup_task *t,
                                    struct sample *s, struct stage_task_ctx *ctx,
                                    struct dedup_doc *doc, struct vc_err *err)
{
    uint32_t idx = (uint32_t)s->src_index;
    struct map_judge j = { .d = d, .t = t, .unit = ctx->unit, .index = idx };
    set_reasons(d, doc);
    enum vc_status rc = dedup_doc_visit(doc, s, map_judge, &j, err);
    free(j.seen);
    VC_TRY(rc);
    VC_TRY(dedup_doc_store(doc, s, err));
    if (j.repeats) { /* for run.json's count */
        cJSON *x = stage_task_extra(ctx);
        if (!x || !cJSON_AddNumberToObject(x, "dedup_repeats", j.repeats))
            return vc_err_oom(err);
    }
    const cJSON *url = cJSON_GetObjectItemCaseSensitive(doc->json, "url");
    uint8_t dg[32];
    if (d->doc_url && cJSON_IsString(url) && url->valuestring[0]) {
        digest(url->valuestring, strlen(url->valuestring), dg);
        VC_TRY(push(t, dedup_sig_digest(DEDUP_M_DOC_URL, dg, ctx->unit, idx, 0), err));
    }
    if (d->doc_imgset) {
        uint8_t(*h)[32] = vc_malloc_array(s->n_fields ? s->n_fields : 1, 32);
        size_t n = 0;
        if (!h)
            return vc_err_oom(err);
        for (size_t i = 0; i < s->n_fields; i++) {
            const char *dot = strchr(s->fields[i].name, '.');
            if (dot && dot != s->fields[i].name && img_format_from_name(dot + 1))
                memcpy(h[n++], sample_field_sha256(&s->fields[i]), 32);
        }
        /* Insertion sort, then drop repeats: documents hold a few images. */
        for (size_t i = 1; i < n; i++)
            for (size_t k = i; k > 0 && memcmp(h[k - 1], h[k], 32) > 0; k--) {
                uint8_t tmp[32];
                memcpy(tmp, h[k], 32), memcpy(h[k], h[k - 1], 32), memcpy(h[k - 1], tmp, 32);
            }
        size_t u = 0;
        for (size_t i = 0; i < n; i++)
            if (u == 0 || memcmp(h[u - 1], h[i], 32) != 0)
                memmove(h[u++], h[i], 32);
        if (u > 0) {
            digest(h, u * 32, dg);
            rc = push(t, dedup_sig_digest(DEDUP_M_DOC_IMAGE_SET, dg, ctx->unit, idx, 0), err);
        }
        free(h);
        VC_TRY(rc);
    }
    if (!d->txt_exact && !d->txt_minhash)
        return VC_OK;
    size_t len = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, doc->texts) if (cJSON_IsString(it)) len += strlen(it->valuestring) + 2;
    char *text = malloc(len + 1), *p = text;
    if (!text)
        return vc_err_oom(err);
    cJSON_ArrayForEach(it, doc->texts) if (cJSON_IsString(it)) p +=
        sprintf(p, "%s%s", p == text ? "" : "\n\n", it->valuestring);
    rc = sign_text(d, t, s, ctx, text, (size_t)(p - text), 0, err);
    free(text);
    return rc;
}

static enum vc_status dedup_map(void *state, struct sample *s, struct stage_task_ctx *ctx,
                                struct vc_err *err)
{
    const struct st_dedup *d = state;
    struct dedup_task *t = ctx->task_state;
    if (s->src_index > UINT32_MAX)
        return vc_err_set(err, VC_EFATAL, VC_REASON_none,
                          "dedup: unit %u has more than 2^32 samples", ctx->unit);
    /* One weight per sample, whatever the method: its picture's pixels,
     * else (sign_text) its text's length. */
    struct sample_field *img = sample_main_image(s);
    uint32_t weight = 0;
    if (img && d->keep == KEEP_LARGEST) {
        struct img_info info;
        VC_TRY(img_probe(img->data, img->size, &d->limits, &info, err));
        uint64_t px = (uint64_t)info.width * info.height;
        weight = px > UINT32_MAX ? UINT32_MAX : (uint32_t)px;
    }
    if (img && (d->img_exact || d->img_pixels || d->img_phash))
        VC_TRY(sign_image(d, t, s, ctx, img, weight, err));
    struct dedup_doc doc;
    bool is_doc;
    enum vc_status rc = dedup_doc_open(&doc, s, &is_doc, err);
    if (rc == VC_OK && is_doc) {
        rc = sign_document(d, t, s, ctx, &doc, err);
    } else if (rc == VC_OK && (d->txt_exact || d->txt_minhash)) {
        const struct sample_field *txt = sample_main_text(s);
        if (txt)
            rc = sign_text(d, t, s, ctx, (const char *)txt->data, txt->size, weight, err);
    }
    if (is_doc)
        dedup_doc_close(&doc);
    return rc;
}

/* WORK/rR-dedup-WHAT-NNNNNN: "sig" of a unit, "edges" or "merge" of a
 * reduce part. */
static enum vc_status work_path(const struct stage_ctx *ctx, const char *what, size_t n, char *out,
                                size_t cap, struct vc_err *err)
{
    if (!stage_work_path(out, cap, ctx, "dedup", what, n))
        return vc_err_set(err, VC_EFATAL, VC_REASON_io_error, "work folder path too long");
    return VC_OK;
}

static enum vc_status dedup_task_end(void *state, struct stage_task_ctx *ctx, struct vc_err *err)
{
    const struct st_dedup *d = state;
    struct dedup_task *t = ctx->task_state;
    ctx->task_state = NULL;
    if (!t || !t->sort) { /* task_begin failed, and said why */
        free(t);
        return VC_OK;
    }
    char path[4096];
    enum vc_status rc = work_path(ctx->run, "sig", ctx->unit, path, sizeof path, err);
    if (rc == VC_OK)
        rc = dedup_sig_write_sorted(t->sort, path, d->ro.part_bits, err);
    extsort_close(t->sort);
    free(t);
    return rc;
}

static size_t dedup_reduce_parts(void *state, const struct stage_ctx *ctx)
{
    const struct st_dedup *d = state;
    (void)ctx;
    return (size_t)1 << d->ro.part_bits;
}

/* One partition: every unit's signature file (a unit whose MAP task never
 * reached the stage has none) merged into this partition's pairs. */
static enum vc_status dedup_reduce(void *state, const struct stage_ctx *ctx, size_t part,
                                   struct vc_err *err)
{
    const struct st_dedup *d = state;
    char **paths = calloc(ctx->n_units + 1, sizeof *paths), out[4096], tmp[4096], edits[4096];
    size_t n = 0;
    enum vc_status rc = paths ? VC_OK : vc_err_oom(err);
    for (size_t u = 0; rc == VC_OK && u < ctx->n_units; u++) {
        char path[4096];
        rc = work_path(ctx, "sig", u, path, sizeof path, err);
        if (rc == VC_OK && vc_fs_exists(path) && !(paths[n++] = vc_strdup(path)))
            rc = vc_err_oom(err);
    }
    if (rc == VC_OK)
        rc = work_path(ctx, "edges", part, out, sizeof out, err);
    if (rc == VC_OK)
        rc = work_path(ctx, "edits", part, edits, sizeof edits, err);
    if (rc == VC_OK)
        rc = work_path(ctx, "merge", part, tmp, sizeof tmp, err);
    struct dedup_reduce_stats st;
    if (rc == VC_OK)
        rc = dedup_reduce_part(paths, n, (uint32_t)part, &d->ro, tmp, out, edits, &st, err);
    for (size_t i = 0; paths && i < n; i++)
        free(paths[i]);
    free(paths);
    return rc;
}

/* The next round's edit task: this unit's edits from every reduce part,
 * in sample order. */
static enum vc_status dedup_edit_begin(void *state, struct stage_task_ctx *ctx, struct vc_err *err)
{
    struct dedup_task *t = calloc(1, sizeof *t);
    if (!t)
        return vc_err_oom(err);
    ctx->task_state = t;
    size_t n_parts = dedup_reduce_parts(state, ctx->run);
    uint64_t lo = (uint64_t)ctx->unit << 32, hi = lo | UINT32_MAX;
    for (size_t part = 0; part < n_parts; part++) {
        char path[4096];
        VC_TRY(work_path(ctx->run, "edits", part, path, sizeof path, err));
        VC_TRY(dedup_sig_range(path, lo, hi, &t->v, &t->n, &t->cap, err));
    }
    dedup_sig_sort(t->v, t->n);
    return VC_OK;
}

static enum vc_status dedup_edit_end(void *state, struct stage_task_ctx *ctx, struct vc_err *err)
{
    (void)state, (void)err;
    struct dedup_task *t = ctx->task_state;
    if (t)
        free(t->v);
    free(t);
    ctx->task_state = NULL;
    return VC_OK;
}

/* The edits of one sample: v[a, b). */
struct edit_judge {
    const struct dedup_sig *v;
    size_t a, b;
};

static unsigned edit_judge(void *ctx, unsigned kind, uint64_t key, enum vc_status *rc,
                           struct vc_err *err)
{
    (void)rc, (void)err;
    const struct edit_judge *j = ctx;
    uint64_t want = count_sig(kind, key, 0, 0).key;
    for (size_t i = j->a; i < j->b; i++)
        if (j->v[i].kind >> 8 == kind && j->v[i].aux == want)
            return kind;
    return 0;
}

static enum vc_status dedup_edit(void *state, struct sample *s, struct stage_task_ctx *ctx,
                                 struct vc_err *err)
{
    struct dedup_task *t = ctx->task_state;
    uint64_t key = (uint64_t)ctx->unit << 32 | (uint32_t)s->src_index;
    while (t->pos < t->n && t->v[t->pos].key < key)
        t->pos++;
    struct edit_judge j = { t->v, t->pos, t->pos };
    while (j.b < t->n && t->v[j.b].key == key)
        j.b++;
    if (j.a == j.b)
        return VC_OK;
    struct dedup_doc doc;
    bool is_doc;
    enum vc_status rc = dedup_doc_open(&doc, s, &is_doc, err);
    if (rc == VC_OK && !is_doc)
        rc = vc_err_set(err, VC_EFATAL, VC_REASON_io_error,
                        "dedup: edits for a sample that is no document (unit %u)", ctx->unit);
    if (rc == VC_OK) {
        set_reasons(state, &doc);
        rc = dedup_doc_visit(&doc, s, edit_judge, &j, err);
    }
    if (rc == VC_OK)
        rc = dedup_doc_store(&doc, s, err);
    /* OBELICS drops a document left with nothing. */
    if (rc == VC_OK && dedup_doc_positions(&doc) == 0) {
        ctx->verdict = (struct stage_verdict){ .reason = VC_REASON_duplicate };
        rc = vc_err_set(err, VC_REJECT, VC_REASON_duplicate,
                        "every image and paragraph removed by the document rules");
    }
    if (is_doc)
        dedup_doc_close(&doc);
    return rc;
}

/* The plan, in memory_mb whatever the number of samples and duplicates:
 * each step is an external sort, a stream over files under WORK
 * (rR-dedup-plan*-000000, removed at the end; a plan step killed midway is
 * run again from the start and rewrites them) or a pass over the round's
 * records (p->each, in (unit, index) order).  A sample is its node id,
 * unit << 32 | index (dedup_map refuses larger indices), so node order is
 * record order.
 *   1. each pair's two nodes with the pair's number, sorted by node; a
 *      pass over the records lists the pairs that name a sample no longer
 *      alive (it failed after dedup's map wrote its signatures);
 *   2. the other pairs: their nodes go to the components' input, what
 *      each says of its nodes (weight, method, score) to a sort by node;
 *   3. connected components (dedup_cc): each node's label, the smallest
 *      node of its cluster;
 *   4. a pass over the records adds each labelled node's source and key:
 *      sorted by label then the keep rule, the first of a label is its
 *      cluster's keeper, the others are duplicates, sorted by node;
 *   5. a last pass writes the drops in record order, and counts the
 *      document edits of the samples that stay.
 * Each of the steps holds at most two sorts, of half the budget each. */
struct plan_note {
    uint64_t node, seq; /* seq: the pair's number, so equals keep pair order */
    uint32_t weight;
    uint16_t method, score;
};

static int note_order(const void *x, const void *y)
{
    const struct plan_note *a = x, *b = y;
    if (a->node != b->node)
        return a->node < b->node ? -1 : 1;
    unsigned sa = dedup_strength(a->method, a->score), sb = dedup_strength(b->method, b->score);
    if (sa != sb)
        return sa < sb ? -1 : 1;
    return (a->seq > b->seq) - (a->seq < b->seq);
}

/* Reading a sort one record at a time, beside the records' pass. */
struct cursor {
    struct extsort *s;
    const uint8_t *rec; /* valid until the next step */
    size_t n;
    int have;
};

static enum vc_status cursor_next(struct cursor *c, struct vc_err *err)
{
    c->have = extsort_next(c->s, &c->rec, &c->n, err);
    if (c->have < 0) {
        c->have = 0;
        return VC_EFATAL;
    }
    return VC_OK;
}

static enum vc_status cursor_start(struct cursor *c, struct vc_err *err)
{
    VC_TRY(extsort_done(c->s, err));
    return cursor_next(c, err);
}

static uint64_t cursor_u64(const struct cursor *c)
{
    uint64_t v;
    memcpy(&v, c->rec, sizeof v);
    return v;
}

enum { TOP_CLUSTERS = 10 };

struct top_cluster {
    uint64_t size, keeper;
    uint32_t source;
    char *key; /* owned */
};

struct plan {
    const struct st_dedup *d;
    struct stage_plan_stream *p;
    size_t half;        /* the budget of one sort */
    struct cursor in;   /* the sort read beside the records */
    struct cursor more; /* a second one (edits) */
    struct extsort *out;
    FILE *f; /* pairs written (step 2) or labels read (step 4) */
    char f_path[4096];
    struct dedup_pair label;
    bool have_label;
    uint64_t seq, pairs, n_dup, n_clusters, repeats_all, dup_repeats;
    uint64_t by_method[DEDUP_M_COUNT], edits[DEDUP_M_COUNT];
    /* step 4: the cluster being read */
    uint64_t c_label, c_size, c_keeper;
    uint32_t c_source;
    char c_key[EXTSORT_MAX_REC];
    uint8_t rec[EXTSORT_MAX_REC];
    struct top_cluster top[TOP_CLUSTERS];
    size_t n_top;
};

static uint64_t node_id(uint32_t unit, uint64_t index)
{
    return (uint64_t)unit << 32 | index;
}

static enum vc_status plan_path(const struct plan *pl, const char *what, char *out,
                                struct vc_err *err)
{
    return work_path(pl->p->run, what, 0, out, 4096, err);
}

/* Calls fn on the pairs of every reduce part in order, numbering them. */
static enum vc_status each_pair(struct plan *pl, dedup_edge_fn fn, struct vc_err *err)
{
    pl->seq = 0;
    for (size_t part = 0; part < dedup_reduce_parts((void *)pl->d, NULL); part++) {
        char path[4096];
        VC_TRY(work_path(pl->p->run, "edges", part, path, sizeof path, err));
        VC_TRY(dedup_edges_each(path, fn, pl, err));
    }
    return VC_OK;
}

static enum vc_status pair_sort(struct extsort **s, const struct plan *pl, const char *what,
                                size_t rec_size, extsort_cmp_fn cmp, struct vc_err *err)
{
    char prefix[4096];
    VC_TRY(plan_path(pl, what, prefix, err));
    struct extsort_opts o = { rec_size, cmp, 0 };
    return extsort_open_with(s, prefix, pl->half, &o, err);
}

static enum vc_status end_add(void *ctx, const struct dedup_edge *e, struct vc_err *err)
{
    struct plan *pl = ctx;
    struct dedup_pair a = { node_id(e->unit_a, e->index_a), pl->seq },
                      b = { node_id(e->unit_b, e->index_b), pl->seq++ };
    VC_TRY(extsort_add(pl->in.s, &a, sizeof a, err));
    return extsort_add(pl->in.s, &b, sizeof b, err);
}

static enum vc_status dead_add(struct plan *pl, struct vc_err *err)
{
    struct dedup_pair e;
    memcpy(&e, pl->in.rec, sizeof e);
    struct dedup_pair dead = { e.b, 0 };
    VC_TRY(extsort_add(pl->out, &dead, sizeof dead, err));
    return cursor_next(&pl->in, err);
}

/* Step 1's pass: the ends that name no alive record are dead. */
static enum vc_status rec_alive(void *ctx, const struct stage_rec *r, struct vc_err *err)
{
    struct plan *pl = ctx;
    uint64_t id = node_id(r->unit, r->index);
    while (pl->in.have && cursor_u64(&pl->in) < id)
        VC_TRY(dead_add(pl, err));
    while (pl->in.have && cursor_u64(&pl->in) == id)
        VC_TRY(cursor_next(&pl->in, err));
    return VC_OK;
}

static enum vc_status note_add(struct plan *pl, uint64_t node, uint64_t seq, uint32_t weight,
                               const struct dedup_edge *e, struct vc_err *err)
{
    struct plan_note n = { node, seq, weight, e->method, e->score };
    return extsort_add(pl->out, &n, sizeof n, err);
}

/* Step 2: a pair of two alive, distinct samples. */
static enum vc_status pair_live(void *ctx, const struct dedup_edge *e, struct vc_err *err)
{
    struct plan *pl = ctx;
    uint64_t seq = pl->seq++;
    while (pl->in.have && cursor_u64(&pl->in) < seq)
        VC_TRY(cursor_next(&pl->in, err));
    uint64_t a = node_id(e->unit_a, e->index_a), b = node_id(e->unit_b, e->index_b);
    if ((pl->in.have && cursor_u64(&pl->in) == seq) || a == b)
        return VC_OK;
    pl->pairs++;
    struct dedup_pair pr = { a < b ? a : b, a < b ? b : a };
    VC_TRY(dedup_pairs_write(pl->f, pl->f_path, &pr, 1, err));
    VC_TRY(note_add(pl, a, seq, e->weight_a, e, err));
    return note_add(pl, b, seq, e->weight_b, e, err);
}

/* Steps 1 and 2: the live pairs to pl->f_path, their notes sorted in
 * pl->in. */
static enum vc_status plan_pairs(struct plan *pl, struct vc_err *err)
{
    VC_TRY(pair_sort(&pl->in.s, pl, "plan-ends", sizeof(struct dedup_pair), dedup_pair_order, err));
    VC_TRY(pair_sort(&pl->out, pl, "plan-dead", sizeof(struct dedup_pair), dedup_pair_order, err));
    VC_TRY(each_pair(pl, end_add, err));
    VC_TRY(cursor_start(&pl->in, err));
    VC_TRY(pl->p->each(pl->p, rec_alive, pl, err));
    while (pl->in.have)
        VC_TRY(dead_add(pl, err));
    extsort_close(pl->in.s);
    pl->in = (struct cursor){ .s = pl->out };
    pl->out = NULL;
    VC_TRY(cursor_start(&pl->in, err));
    VC_TRY(pair_sort(&pl->out, pl, "plan-notes", sizeof(struct plan_note), note_order, err));
    VC_TRY(plan_path(pl, "plan-pairs", pl->f_path, err));
    if (!(pl->f = fopen(pl->f_path, "wb")))
        return vc_err_io(err, pl->f_path);
    enum vc_status rc = each_pair(pl, pair_live, err);
    rc = vc_fs_close(pl->f, pl->f_path, rc, err);
    pl->f = NULL;
    VC_TRY(rc);
    extsort_close(pl->in.s);
    pl->in = (struct cursor){ .s = pl->out };
    pl->out = NULL;
    return VC_OK;
}

static enum vc_status label_next(struct plan *pl, struct vc_err *err)
{
    pl->have_label = fread(&pl->label, sizeof pl->label, 1, pl->f) == 1;
    if (!pl->have_label && ferror(pl->f))
        return vc_err_set(err, VC_EFATAL, VC_REASON_io_error, "%s: read error", pl->f_path);
    return VC_OK;
}

/* Step 4's pass: a labelled node's record for the keeper sort:
 * label, the keep rule's weight (largest first), source, key, node, then
 * the method and score of its strongest pair. */
static enum vc_status rec_label(void *ctx, const struct stage_rec *r, struct vc_err *err)
{
    struct plan *pl = ctx;
    uint64_t id = node_id(r->unit, r->index);
    while (pl->have_label && pl->label.a < id)
        VC_TRY(label_next(pl, err));
    if (!pl->have_label || pl->label.a != id)
        return VC_OK;
    while (pl->in.have && cursor_u64(&pl->in) < id)
        VC_TRY(cursor_next(&pl->in, err));
    struct plan_note best = { 0 }, n;
    uint32_t weight = 0;
    for (bool first = true; pl->in.have && cursor_u64(&pl->in) == id; first = false) {
        memcpy(&n, pl->in.rec, sizeof n);
        if (first)
            best = n;
        if (n.weight > weight)
            weight = n.weight;
        VC_TRY(cursor_next(&pl->in, err));
    }
    size_t klen = strlen(r->key);
    if (klen + 29 > sizeof pl->rec)
        return vc_err_set(err, VC_EFATAL, VC_REASON_none, "dedup: key of %zu bytes (unit %u)", klen,
                          r->unit);
    uint8_t *p = pl->rec;
    extsort_put_be(p, pl->label.b, 8);
    extsort_put_be(p + 8, pl->d->keep == KEEP_LARGEST ? UINT32_MAX - weight : 0, 4);
    extsort_put_be(p + 12, r->source, 4);
    memcpy(p + 16, r->key, klen + 1);
    p += 17 + klen;
    extsort_put_be(p, id, 8);
    extsort_put_be(p + 8, best.method, 2);
    extsort_put_be(p + 10, best.score, 2);
    VC_TRY(extsort_add(pl->out, pl->rec, (size_t)(p + 12 - pl->rec), err));
    return label_next(pl, err);
}

/* The largest clusters, biggest first, ties in label (record) order. */
static enum vc_status top_add(struct plan *pl, struct vc_err *err)
{
    size_t pos = pl->n_top;
    while (pos > 0 && pl->top[pos - 1].size < pl->c_size)
        pos--;
    if (pos == TOP_CLUSTERS)
        return VC_OK;
    char *key = vc_strdup(pl->c_key);
    if (!key)
        return vc_err_oom(err);
    if (pl->n_top == TOP_CLUSTERS)
        free(pl->top[TOP_CLUSTERS - 1].key);
    else
        pl->n_top++;
    memmove(pl->top + pos + 1, pl->top + pos, (pl->n_top - 1 - pos) * sizeof *pl->top);
    pl->top[pos] = (struct top_cluster){ pl->c_size, pl->c_keeper, pl->c_source, key };
    return VC_OK;
}

/* Step 4's walk over the keeper sort: a duplicate's record for the drop
 * sort is node, method, score, its keeper's node and key. */
static enum vc_status keep_rec(struct plan *pl, const uint8_t *rec, struct vc_err *err)
{
    uint64_t label = extsort_get_be(rec, 8);
    const char *key = (const char *)rec + 16;
    size_t klen = strlen(key);
    const uint8_t *tail = rec + 17 + klen;
    uint64_t id = extsort_get_be(tail, 8);
    if (pl->c_size == 0 || label != pl->c_label) {
        if (pl->c_size)
            VC_TRY(top_add(pl, err));
        pl->n_clusters++;
        pl->c_label = label;
        pl->c_size = 1;
        pl->c_keeper = id;
        pl->c_source = (uint32_t)extsort_get_be(rec + 12, 4);
        memcpy(pl->c_key, key, klen + 1);
        return VC_OK;
    }
    pl->c_size++;
    size_t kk = strlen(pl->c_key);
    uint8_t *p = pl->rec;
    extsort_put_be(p, id, 8);
    memcpy(p + 8, tail + 8, 4); /* method, score */
    extsort_put_be(p + 12, pl->c_keeper, 8);
    memcpy(p + 20, pl->c_key, kk + 1);
    unsigned m = (unsigned)extsort_get_be(tail + 8, 2);
    pl->by_method[m < DEDUP_M_COUNT ? m : 0]++;
    pl->n_dup++;
    return extsort_add(pl->out, pl->rec, 21 + kk, err);
}

/* Steps 3 and 4: the duplicates sorted by node in pl->in. */
static enum vc_status plan_clusters(struct plan *pl, struct vc_err *err)
{
    char labels[4096], prefix[4096], pairs[4096];
    uint64_t n_nodes;
    memcpy(pairs, pl->f_path, sizeof pairs);
    VC_TRY(plan_path(pl, "plan-labels", labels, err));
    VC_TRY(plan_path(pl, "plan-cc", prefix, err));
    VC_TRY(dedup_cc_labels(pairs, prefix, pl->half, labels, &n_nodes, err));
    remove(pairs);
    VC_TRY(cursor_start(&pl->in, err));
    char kprefix[4096];
    VC_TRY(plan_path(pl, "plan-keep", kprefix, err));
    VC_TRY(extsort_open(&pl->out, kprefix, pl->half, err));
    memcpy(pl->f_path, labels, sizeof labels);
    if (!(pl->f = fopen(labels, "rb")))
        return vc_err_io(err, labels);
    enum vc_status rc = label_next(pl, err);
    if (rc == VC_OK)
        rc = pl->p->each(pl->p, rec_label, pl, err);
    fclose(pl->f);
    pl->f = NULL;
    remove(labels);
    VC_TRY(rc);
    extsort_close(pl->in.s);
    pl->in = (struct cursor){ .s = pl->out };
    VC_TRY(plan_path(pl, "plan-drops", prefix, err));
    VC_TRY(extsort_open(&pl->out, prefix, pl->half, err));
    VC_TRY(cursor_start(&pl->in, err));
    while (pl->in.have) {
        VC_TRY(keep_rec(pl, pl->in.rec, err));
        VC_TRY(cursor_next(&pl->in, err));
    }
    if (pl->c_size)
        VC_TRY(top_add(pl, err));
    extsort_close(pl->in.s);
    pl->in = (struct cursor){ .s = pl->out };
    pl->out = NULL;
    return VC_OK;
}

/* Step 5's pass: drops in record order; edits of the samples that stay. */
static enum vc_status rec_drop(void *ctx, const struct stage_rec *r, struct vc_err *err)
{
    struct plan *pl = ctx;
    const cJSON *rep = cJSON_GetObjectItemCaseSensitive(r->extra, "dedup_repeats");
    uint32_t repeats = cJSON_IsNumber(rep) ? (uint32_t)rep->valuedouble : 0;
    uint64_t id = node_id(r->unit, r->index);
    pl->repeats_all += repeats;
    bool dup = false;
    while (pl->in.have && extsort_get_be(pl->in.rec, 8) < id)
        VC_TRY(cursor_next(&pl->in, err));
    if (pl->in.have && extsort_get_be(pl->in.rec, 8) == id) {
        const uint8_t *x = pl->in.rec;
        unsigned m = (unsigned)extsort_get_be(x + 8, 2),
                 score = (unsigned)extsort_get_be(x + 10, 2);
        uint64_t kp = extsort_get_be(x + 12, 8);
        m = m < DEDUP_M_COUNT ? m : 0;
        struct stage_drop sd = { .unit = r->unit,
                                 .index = r->index,
                                 .key = r->key,
                                 .state = STAGE_REC_DUPLICATE,
                                 .stage = "dedup",
                                 .reason = VC_REASON_duplicate,
                                 .dup_unit = (uint32_t)(kp >> 32),
                                 .dup_index = (uint32_t)kp,
                                 .dup_key = (const char *)x + 20,
                                 .dup_method = dedup_method_name(m) };
        if (m == DEDUP_M_IMAGE_PHASH) {
            sd.dup_measure = "distance";
            sd.dup_value = score;
        } else if (m == DEDUP_M_TEXT_MINHASH) {
            sd.dup_measure = "similarity";
            sd.dup_value = score / 1000.0;
        }
        VC_TRY(stage_plan_drop(pl->p, &sd, err));
        dup = true;
        pl->dup_repeats += repeats;
        VC_TRY(cursor_next(&pl->in, err));
    }
    const struct dedup_sig *s;
    while (pl->more.have && (s = (const void *)pl->more.rec)->key <= id) {
        if (s->key == id && !dup && (s->kind >> 8) < DEDUP_M_COUNT)
            pl->edits[s->kind >> 8]++;
        VC_TRY(cursor_next(&pl->more, err));
    }
    return VC_OK;
}

static enum vc_status plan_drops(struct plan *pl, struct vc_err *err)
{
    char prefix[4096];
    VC_TRY(cursor_start(&pl->in, err));
    VC_TRY(plan_path(pl, "plan-edits", prefix, err));
    VC_TRY(dedup_sig_sorter(&pl->more.s, prefix, pl->half, 0, err));
    for (size_t part = 0; part < dedup_reduce_parts((void *)pl->d, NULL); part++) {
        char path[4096];
        VC_TRY(work_path(pl->p->run, "edits", part, path, sizeof path, err));
        VC_TRY(dedup_sig_add_part(pl->more.s, path, 0, 0, err));
    }
    VC_TRY(cursor_start(&pl->more, err));
    VC_TRY(pl->p->each(pl->p, rec_drop, pl, err));
    pl->edits[DEDUP_M_DOC_IMAGE_REPEAT] = pl->repeats_all - pl->dup_repeats;
    return VC_OK;
}

static void add_report(const struct plan *pl)
{
    cJSON *o = cJSON_AddObjectToObject(pl->p->report, "dedup");
    if (!o)
        return;
    cJSON *e = cJSON_AddObjectToObject(o, "document_edits");
    for (unsigned k = DEDUP_M_DOC_IMAGE_URL; e && k <= DEDUP_M_DOC_IMAGE_REPEAT; k++)
        cJSON_AddNumberToObject(e, dedup_method_name(k), (double)pl->edits[k]);
    cJSON_AddNumberToObject(o, "duplicates", (double)pl->n_dup);
    cJSON_AddNumberToObject(o, "clusters", (double)pl->n_clusters);
    cJSON_AddNumberToObject(o, "pairs", (double)pl->pairs);
    cJSON *m = cJSON_AddObjectToObject(o, "by_method");
    for (unsigned k = 1; m && k < DEDUP_M_COUNT; k++)
        if (pl->by_method[k])
            cJSON_AddNumberToObject(m, dedup_method_name(k), (double)pl->by_method[k]);
    cJSON *arr = cJSON_AddArrayToObject(o, "largest_clusters");
    for (size_t k = 0; arr && k < pl->n_top; k++) {
        const struct top_cluster *t = &pl->top[k];
        cJSON *c = cJSON_CreateObject();
        cJSON_AddNumberToObject(c, "size", (double)t->size);
        cJSON_AddStringToObject(c, "source", pl->p->sources[t->source].name);
        cJSON_AddNumberToObject(c, "unit", (double)(t->keeper >> 32));
        cJSON_AddStringToObject(c, "kept", t->key);
        cJSON_AddItemToArray(arr, c);
    }
}

static enum vc_status dedup_plan(void *state, struct stage_plan_stream *p, struct vc_err *err)
{
    const struct st_dedup *d = state;
    struct plan *pl = calloc(1, sizeof *pl);
    if (!pl)
        return vc_err_oom(err);
    *pl = (struct plan){ .d = d, .p = p, .half = d->ro.mem_bytes / 2 };
    enum vc_status rc = plan_pairs(pl, err);
    if (rc == VC_OK)
        rc = plan_clusters(pl, err);
    if (rc == VC_OK)
        rc = plan_drops(pl, err);
    if (rc == VC_OK)
        add_report(pl);
    if (pl->f)
        fclose(pl->f);
    extsort_close(pl->in.s);
    extsort_close(pl->more.s);
    extsort_close(pl->out);
    for (size_t k = 0; k < pl->n_top; k++)
        free(pl->top[k].key);
    free(pl);
    return rc;
}

const struct stage_ops st_dedup_ops = {
    .name = "dedup",
    .create = dedup_create,
    .task_begin = dedup_task_begin,
    .map = dedup_map,
    .task_end = dedup_task_end,
    .reduce_parts = dedup_reduce_parts,
    .reduce = dedup_reduce,
    .edit_begin = dedup_edit_begin,
    .edit = dedup_edit,
    .edit_end = dedup_edit_end,
    .plan_stream = dedup_plan,
    .destroy = dedup_destroy,
};
