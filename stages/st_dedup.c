/* st_dedup: the dedup stage (see the header for params).
 *
 * MAP never rejects: it only writes signatures; a sample whose image
 * cannot be decoded for its pHash is an error (VC_ESAMPLE) naming why.
 * Signature files live in WORK/rR-dedup-sig-<unit> and are complete
 * (fsynced, renamed) before task_end returns, so the unit's commit covers
 * them.  Each reduce part writes WORK/rR-dedup-edges-<part>; PLAN reads
 * them back in partition order.  A duplicate's method and distance are
 * those of the strongest pair that reached it (which may join it to
 * another member of its cluster than the kept one).  Memory of MAP: the unit's signatures (32
 * bytes each, ~20 per sample); of the reduce: memory_mb; of the plan: the
 * samples a pair or a document edit names (nodes, ~80 bytes each plus the
 * key), never the round's other records, which it only streams past. */
#include "st_dedup.h"

#include "core/extsort.h"
#include "core/sha256.h"
#include "core/vc_fs.h"
#include "core/vc_mem.h"
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
struct dedup_task {
    struct dedup_sig *v;
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
        return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "out of memory");
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

static enum vc_status dedup_task_begin(void *state, struct stage_task_ctx *ctx, struct vc_err *err)
{
    (void)state;
    ctx->task_state = calloc(1, sizeof(struct dedup_task));
    if (!ctx->task_state)
        return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "out of memory");
    return VC_OK;
}

static enum vc_status push(struct dedup_task *t, struct dedup_sig sig, struct vc_err *err)
{
    if (t->n == t->cap) {
        size_t cap = t->cap ? 2 * t->cap : 1024;
        struct dedup_sig *v = vc_realloc_array(t->v, cap, sizeof *v);
        if (!v)
            return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "out of memory");
        t->v = v;
        t->cap = cap;
    }
    t->v[t->n++] = sig;
    return VC_OK;
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
            return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "out of memory");
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
    if (j->n_seen == j->cap_seen) {
        size_t cap = j->cap_seen ? 2 * j->cap_seen : 16;
        uint64_t *p = vc_realloc_array(j->seen, cap, sizeof *p);
        if (!p) {
            *rc = vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "out of memory");
            return 0;
        }
        j->seen = p, j->cap_seen = cap;
    }
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
            return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "out of memory");
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
            return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "out of memory");
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
        return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "out of memory");
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
    char path[4096];
    enum vc_status rc = work_path(ctx->run, "sig", ctx->unit, path, sizeof path, err);
    if (rc == VC_OK)
        rc = dedup_sig_write(path, t->v, t->n, d->ro.part_bits, err);
    free(t->v);
    free(t);
    ctx->task_state = NULL;
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
    enum vc_status rc =
        paths ? VC_OK : vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "out of memory");
    for (size_t u = 0; rc == VC_OK && u < ctx->n_units; u++) {
        char path[4096];
        rc = work_path(ctx, "sig", u, path, sizeof path, err);
        if (rc == VC_OK && vc_fs_exists(path) && !(paths[n++] = vc_strdup(path)))
            rc = vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "out of memory");
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
        return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "out of memory");
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

/* The plan works on the samples that a pair or a document edit names
 * (the nodes), not on the run: everything else is kept untouched.  Node
 * ids are unit << 32 | index (dedup_map refuses larger indices), sorted;
 * the pass over the round's records fills in what the nodes need. */
struct plan_nodes {
    uint64_t *id;
    size_t n, cap;
    bool *alive; /* in the round's records (a pair may name a sample that
                  * failed after dedup's map wrote its signatures) */
    uint32_t *source, *repeats;
    char **key;
    bool *dup;
    uint64_t repeats_all; /* dedup_repeats over every record of the round */
};

static int u64_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static void nodes_compact(struct plan_nodes *v)
{
    if (v->n > 1)
        qsort(v->id, v->n, sizeof *v->id, u64_cmp);
    size_t k = 0;
    for (size_t i = 0; i < v->n; i++)
        if (k == 0 || v->id[k - 1] != v->id[i])
            v->id[k++] = v->id[i];
    v->n = k;
}

/* Adds an id; duplicates are squeezed out whenever the array fills, so it
 * holds at most twice the distinct ids. */
static enum vc_status nodes_push(struct plan_nodes *v, uint64_t id, struct vc_err *err)
{
    if (v->n == v->cap) {
        nodes_compact(v);
        if (2 * v->n >= v->cap) {
            size_t cap = v->cap ? 2 * v->cap : 4096;
            uint64_t *p = vc_realloc_array(v->id, cap, sizeof *p);
            if (!p)
                return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "%zu dedup nodes", cap);
            v->id = p;
            v->cap = cap;
        }
    }
    v->id[v->n++] = id;
    return VC_OK;
}

static size_t node_find(const struct plan_nodes *v, uint32_t unit, uint64_t index)
{
    if (index > UINT32_MAX || v->n == 0)
        return SIZE_MAX;
    uint64_t id = (uint64_t)unit << 32 | index;
    const uint64_t *p = bsearch(&id, v->id, v->n, sizeof id, u64_cmp);
    return p ? (size_t)(p - v->id) : SIZE_MAX;
}

static void nodes_free(struct plan_nodes *v)
{
    for (size_t i = 0; v->key && i < v->n; i++)
        free(v->key[i]);
    free(v->id);
    free(v->alive);
    free(v->source);
    free(v->repeats);
    free(v->key);
    free(v->dup);
}

static enum vc_status edge_nodes(void *ctx, const struct dedup_edge *e, struct vc_err *err)
{
    struct plan_nodes *v = ctx;
    VC_TRY(nodes_push(v, (uint64_t)e->unit_a << 32 | e->index_a, err));
    return nodes_push(v, (uint64_t)e->unit_b << 32 | e->index_b, err);
}

static enum vc_status edit_nodes(void *ctx, const struct dedup_sig *s, struct vc_err *err)
{
    return nodes_push(ctx, s->key, err);
}

/* Reads a part's edit file (a signature file sorted by sample) in order. */
static enum vc_status edits_each(const struct stage_ctx *run, size_t part, dedup_sig_fn fn,
                                 void *ctx, struct vc_err *err)
{
    char path[4096], tmp[4096];
    struct extsort *s = NULL;
    enum vc_status rc = work_path(run, "edits", part, path, sizeof path, err);
    if (rc == VC_OK)
        rc = work_path(run, "count", part, tmp, sizeof tmp, err);
    if (rc == VC_OK)
        rc = dedup_sig_sorter(&s, tmp, 1u << 20, 1, err);
    if (rc == VC_OK)
        rc = dedup_sig_add_part(s, path, 0, 0, err);
    if (rc == VC_OK)
        rc = dedup_sig_drain(s, fn, ctx, err);
    extsort_close(s);
    return rc;
}

static enum vc_status node_rec(void *ctx, const struct stage_rec *r, struct vc_err *err)
{
    struct plan_nodes *v = ctx;
    const cJSON *rep = cJSON_GetObjectItemCaseSensitive(r->extra, "dedup_repeats");
    uint32_t repeats = cJSON_IsNumber(rep) ? (uint32_t)rep->valuedouble : 0;
    v->repeats_all += repeats;
    size_t k = node_find(v, r->unit, r->index);
    if (k == SIZE_MAX)
        return VC_OK;
    v->alive[k] = true;
    v->source[k] = r->source;
    v->repeats[k] = repeats;
    if (!(v->key[k] = vc_strdup(r->key)))
        return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "out of memory");
    return VC_OK;
}

/* The nodes of every edge and edit file, then what the records say of
 * them. */
static enum vc_status nodes_load(const struct st_dedup *d, const struct stage_plan_stream *p,
                                 struct plan_nodes *v, struct vc_err *err)
{
    size_t n_parts = dedup_reduce_parts((void *)d, NULL);
    for (size_t part = 0; part < n_parts; part++) {
        char path[4096];
        VC_TRY(work_path(p->run, "edges", part, path, sizeof path, err));
        VC_TRY(dedup_edges_each(path, edge_nodes, v, err));
        VC_TRY(edits_each(p->run, part, edit_nodes, v, err));
    }
    nodes_compact(v);
    size_t n = v->n + 1;
    v->alive = calloc(n, sizeof *v->alive);
    v->dup = calloc(n, sizeof *v->dup);
    v->source = calloc(n, sizeof *v->source);
    v->repeats = calloc(n, sizeof *v->repeats);
    v->key = calloc(n, sizeof *v->key);
    if (!v->alive || !v->dup || !v->source || !v->repeats || !v->key)
        return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "%zu dedup nodes", v->n);
    return p->each(p, node_rec, v, err);
}

/* The node of (unit, index) when that sample is alive in the round;
 * SIZE_MAX otherwise (dedup_clusters skips the pair). */
static size_t node_alive(const void *ctx, uint32_t unit, uint32_t index)
{
    const struct plan_nodes *v = ctx;
    size_t k = node_find(v, unit, index);
    return k != SIZE_MAX && v->alive[k] ? k : SIZE_MAX;
}

/* Does node i make a better keeper than node j? */
static bool keeper_better(const struct st_dedup *d, const struct plan_nodes *v,
                          const struct dedup_clusters *u, size_t i, size_t j)
{
    if (d->keep == KEEP_LARGEST && u->weight[i] != u->weight[j])
        return u->weight[i] > u->weight[j];
    if (v->source[i] != v->source[j])
        return v->source[i] < v->source[j];
    int c = strcmp(v->key[i], v->key[j]);
    if (c)
        return c < 0;
    return i < j; /* nodes are in (unit, index) order */
}

enum { TOP_CLUSTERS = 10 };

/* Document edits of the samples that stay: what the next round will
 * remove, counted by method. */
struct edit_count {
    const struct plan_nodes *v;
    uint64_t *by_method;
};

static enum vc_status count_edit(void *ctx, const struct dedup_sig *s, struct vc_err *err)
{
    (void)err;
    struct edit_count *c = ctx;
    size_t k = node_find(c->v, (uint32_t)(s->key >> 32), (uint32_t)s->key);
    if (k != SIZE_MAX && c->v->alive[k] && !c->v->dup[k] && (s->kind >> 8) < DEDUP_M_COUNT)
        c->by_method[s->kind >> 8]++;
    return VC_OK;
}

static enum vc_status count_edits(const struct st_dedup *d, const struct stage_plan_stream *p,
                                  const struct plan_nodes *v, uint64_t *by_method,
                                  struct vc_err *err)
{
    by_method[DEDUP_M_DOC_IMAGE_REPEAT] = v->repeats_all;
    for (size_t k = 0; k < v->n; k++)
        if (v->dup[k])
            by_method[DEDUP_M_DOC_IMAGE_REPEAT] -= v->repeats[k];
    struct edit_count c = { v, by_method };
    for (size_t part = 0; part < dedup_reduce_parts((void *)d, NULL); part++)
        VC_TRY(edits_each(p->run, part, count_edit, &c, err));
    return VC_OK;
}

static void add_report(const struct stage_plan_stream *p, const struct plan_nodes *v,
                       const struct dedup_clusters *u, const size_t *keeper,
                       const uint64_t *by_method, uint64_t n_dup, uint64_t n_clusters,
                       const uint64_t *edits)
{
    cJSON *o = cJSON_AddObjectToObject(p->report, "dedup");
    if (!o)
        return;
    cJSON *e = cJSON_AddObjectToObject(o, "document_edits");
    for (unsigned k = DEDUP_M_DOC_IMAGE_URL; e && k <= DEDUP_M_DOC_IMAGE_REPEAT; k++)
        cJSON_AddNumberToObject(e, dedup_method_name(k), (double)edits[k]);
    cJSON_AddNumberToObject(o, "duplicates", (double)n_dup);
    cJSON_AddNumberToObject(o, "clusters", (double)n_clusters);
    cJSON_AddNumberToObject(o, "pairs", (double)u->pairs);
    cJSON *m = cJSON_AddObjectToObject(o, "by_method");
    for (unsigned k = 1; m && k < DEDUP_M_COUNT; k++)
        if (by_method[k])
            cJSON_AddNumberToObject(m, dedup_method_name(k), (double)by_method[k]);
    /* The largest clusters: a small sorted array of roots, biggest first,
     * ties in record order, so the list is deterministic. */
    size_t top[TOP_CLUSTERS], n_top = 0;
    for (size_t i = 0; i < v->n; i++) {
        if (u->parent[i] != i || u->size[i] < 2)
            continue;
        size_t pos = n_top;
        while (pos > 0 && u->size[top[pos - 1]] < u->size[i])
            pos--;
        if (pos == TOP_CLUSTERS)
            continue;
        if (n_top < TOP_CLUSTERS)
            n_top++;
        memmove(top + pos + 1, top + pos, (n_top - 1 - pos) * sizeof *top);
        top[pos] = i;
    }
    cJSON *arr = cJSON_AddArrayToObject(o, "largest_clusters");
    for (size_t k = 0; arr && k < n_top; k++) {
        size_t r = keeper[top[k]];
        cJSON *c = cJSON_CreateObject();
        cJSON_AddNumberToObject(c, "size", u->size[top[k]]);
        cJSON_AddStringToObject(c, "source", p->sources[v->source[r]].name);
        cJSON_AddNumberToObject(c, "unit", (double)(v->id[r] >> 32));
        cJSON_AddStringToObject(c, "kept", v->key[r]);
        cJSON_AddItemToArray(arr, c);
    }
}

/* The duplicates of the clusters, in node order. */
static enum vc_status plan_drops(struct stage_plan_stream *p, struct plan_nodes *v,
                                 const struct dedup_clusters *u, const size_t *keeper,
                                 uint64_t *by_method, uint64_t *n_dup, uint64_t *n_clusters,
                                 struct vc_err *err)
{
    for (size_t i = 0; i < v->n; i++) {
        size_t r = u->parent[i], kp = keeper[r];
        if (u->size[r] < 2)
            continue;
        if (kp == i) {
            ++*n_clusters;
            continue;
        }
        unsigned m = u->method[i] < DEDUP_M_COUNT ? u->method[i] : 0;
        struct stage_drop sd = { .unit = (uint32_t)(v->id[i] >> 32),
                                 .index = (uint32_t)v->id[i],
                                 .key = v->key[i],
                                 .state = STAGE_REC_DUPLICATE,
                                 .stage = "dedup",
                                 .reason = VC_REASON_duplicate,
                                 .dup_unit = (uint32_t)(v->id[kp] >> 32),
                                 .dup_index = (uint32_t)v->id[kp],
                                 .dup_key = v->key[kp],
                                 .dup_method = dedup_method_name(m) };
        if (m == DEDUP_M_IMAGE_PHASH) {
            sd.dup_measure = "distance";
            sd.dup_value = u->score[i];
        } else if (m == DEDUP_M_TEXT_MINHASH) {
            sd.dup_measure = "similarity";
            sd.dup_value = u->score[i] / 1000.0;
        }
        VC_TRY(stage_plan_drop(p, &sd, err));
        v->dup[i] = true;
        by_method[m]++;
        ++*n_dup;
    }
    return VC_OK;
}

static enum vc_status dedup_plan(void *state, struct stage_plan_stream *p, struct vc_err *err)
{
    const struct st_dedup *d = state;
    struct plan_nodes v = { 0 };
    struct dedup_clusters u = { 0 };
    size_t *keeper = NULL;
    enum vc_status rc = nodes_load(d, p, &v, err);
    if (rc == VC_OK)
        rc = dedup_clusters_init(&u, v.n, err);
    if (rc == VC_OK && !(keeper = vc_malloc_array(v.n + 1, sizeof *keeper)))
        rc = vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "dedup plan of %zu nodes", v.n);
    for (size_t part = 0; rc == VC_OK && part < dedup_reduce_parts(state, NULL); part++) {
        char path[4096];
        rc = work_path(p->run, "edges", part, path, sizeof path, err);
        if (rc == VC_OK)
            rc = dedup_clusters_add(&u, path, 0, node_alive, &v, err);
    }
    uint64_t by_method[DEDUP_M_COUNT] = { 0 }, n_dup = 0, n_clusters = 0;
    if (rc == VC_OK) {
        dedup_clusters_count(&u);
        for (size_t i = 0; i < v.n; i++) {
            size_t r = u.parent[i]; /* compressed by dedup_clusters_count */
            if (r == i || keeper_better(d, &v, &u, i, keeper[r]))
                keeper[r] = i;
        }
        rc = plan_drops(p, &v, &u, keeper, by_method, &n_dup, &n_clusters, err);
    }
    uint64_t edits[DEDUP_M_COUNT] = { 0 };
    if (rc == VC_OK)
        rc = count_edits(d, p, &v, edits, err);
    if (rc == VC_OK)
        add_report(p, &v, &u, keeper, by_method, n_dup, n_clusters, edits);
    free(keeper);
    dedup_clusters_free(&u);
    nodes_free(&v);
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
