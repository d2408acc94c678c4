/* phase_plan: shard cuts, keys and slices, streamed.  The records of the
 * output order go through external sorts (extsort.h) within the spec's
 * memory_mb, never into one array:
 *
 *   order    the output order as records (position, unit, index, spill
 *            offset and length, tar bytes, source key): straight from the
 *            unit manifests, one at a time, when no global stage ordered
 *            the run; else the carried order sorted by (unit, index) and
 *            joined with the manifests, then sorted back by position;
 *   keys     (sanitised key, position) sorted: a position whose key an
 *            earlier one has is a repeat (sorted by position for the final
 *            pass), and the first position of every key shaped like a
 *            suffixed key ("x_12") goes to a fixed-width lookup file;
 *   slices   the order read again: shard cuts (found on the first read),
 *            each sample's key by plan_key_pick (taken = a repeat, a key
 *            renamed earlier, or a lookup hit before this position), one
 *            slice per shard.
 *
 * The renamed keys are the only set in memory: it grows with the samples
 * whose key repeats an earlier one, not with the run.  The slices file is
 * written before plan.json, so a committed plan always has all of its
 * slices. */
#include "phase_plan.h"

#include "core/sample.h"
#include "core/vc_mem.h"
#include "core/vc_utf8.h"
#include "manifests/commit.h"
#include "manifests/manifest.h"
#include "core/extsort.h"
#include "plan.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

bool phase_plan_done(const struct session *ss)
{
    char *path = session_work_path(ss, "plan.json");
    bool ok = path && commit_valid(path, ss->spec->hash, NULL);
    free(path);
    return ok;
}

enum vc_status phase_plan_read(const struct session *ss, cJSON **doc, size_t *n_shards,
                               struct vc_err *err)
{
    char *path = session_work_path(ss, "plan.json");
    *doc = NULL;
    enum vc_status rc = path ? VC_OK : vc_err_oom(err);
    if (rc == VC_OK && !commit_valid(path, ss->spec->hash, doc))
        rc = vc_err_set(err, VC_EFATAL, VC_REASON_io_error, "%s is missing or names another spec",
                        path);
    size_t *starts = NULL;
    if (rc == VC_OK)
        rc = manifest_plan_starts(*doc, &starts, n_shards, err);
    free(starts);
    free(path);
    if (rc != VC_OK) {
        cJSON_Delete(*doc);
        *doc = NULL;
    }
    return rc;
}

static char *slices_path(const struct session *ss)
{
    return session_work_path(ss, "plan-slices.bin");
}

enum vc_status phase_plan_slice(const struct session *ss, size_t shard, cJSON **doc,
                                struct vc_err *err)
{
    char *path = slices_path(ss);
    uint8_t *text = NULL;
    size_t n = 0;
    *doc = NULL;
    enum vc_status rc = path ? spill_index_read(path, shard, &text, &n, err) : vc_err_oom(err);
    if (rc == VC_OK)
        *doc = cJSON_ParseWithLength((const char *)text, n);
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(*doc, "spec_hash");
    if (rc == VC_OK && !(cJSON_IsString(h) && !strcmp(h->valuestring, ss->spec->hash)))
        rc = vc_err_set(err, VC_EFATAL, VC_REASON_io_error,
                        "%s: shard %zu's slice is malformed or names another spec", path, shard);
    if (rc != VC_OK) {
        cJSON_Delete(*doc);
        *doc = NULL;
    }
    free(text);
    free(path);
    return rc;
}

/* One record of the output order, as the order sort holds it after its
 * 8-byte position: u32 unit, u32 source, u64 index, off, len, tar bytes,
 * then the source key and a NUL. */
struct prec {
    uint32_t unit, source;
    uint64_t index, off, len, bytes;
    const char *key;
};
enum { PREC_POS = 8, PREC_HEAD = PREC_POS + 4 + 4 + 4 * 8 };

static size_t prec_put(uint8_t *p, uint64_t pos, const struct prec *r)
{
    extsort_put_be(p, pos, 8);
    extsort_put_be(p + 8, r->unit, 4);
    extsort_put_be(p + 12, r->source, 4);
    extsort_put_be(p + 16, r->index, 8);
    extsort_put_be(p + 24, r->off, 8);
    extsort_put_be(p + 32, r->len, 8);
    extsort_put_be(p + 40, r->bytes, 8);
    size_t kl = strlen(r->key);
    memcpy(p + PREC_HEAD, r->key, kl + 1);
    return PREC_HEAD + kl + 1;
}

static void prec_get(const uint8_t *p, struct prec *r)
{
    *r = (struct prec){ .unit = (uint32_t)extsort_get_be(p + 8, 4),
                        .source = (uint32_t)extsort_get_be(p + 12, 4),
                        .index = extsort_get_be(p + 16, 8),
                        .off = extsort_get_be(p + 24, 8),
                        .len = extsort_get_be(p + 32, 8),
                        .bytes = extsort_get_be(p + 40, 8),
                        .key = (const char *)p + PREC_HEAD };
}

/* Longest source key an order record carries. */
enum { PREC_MAX_KEY = EXTSORT_MAX_REC - PREC_HEAD - 1 };

/* The kept records of one unit's last round, walked in index order (one
 * record in memory at a time). */
struct unit_cursor {
    const struct session *ss;
    size_t round, unit, source;
    struct session_kept kept;
};

static enum vc_status cursor_load(struct unit_cursor *c, size_t u, struct vc_err *err)
{
    session_kept_close(&c->kept);
    c->unit = u;
    spec_unit(c->ss->spec, u, &c->source);
    return session_kept_open(&c->kept, c->ss, c->round, u, err);
}

static enum vc_status cursor_rec(const struct unit_cursor *c, struct prec *r, struct vc_err *err)
{
    const struct manifest_kept *k = &c->kept.k;
    *r = (struct prec){ .unit = (uint32_t)c->unit,
                        .source = (uint32_t)c->source,
                        .index = k->index,
                        .off = k->off,
                        .len = k->len,
                        .bytes = k->tar_bytes,
                        .key = k->key ? k->key : "" };
    if (strlen(r->key) > PREC_MAX_KEY)
        return vc_err_set(err, VC_EFATAL, VC_REASON_field_too_long,
                          "unit %zu record %llu: a key of more than %d bytes", c->unit,
                          (unsigned long long)k->index, PREC_MAX_KEY);
    return VC_OK;
}

static enum vc_status order_add(struct extsort *out, uint64_t pos, const struct prec *r,
                                struct vc_err *err)
{
    uint8_t buf[EXTSORT_MAX_REC];
    size_t n = prec_put(buf, pos, r);
    return extsort_add(out, buf, n, err);
}

/* No global stage ordered the run: every kept record, unit by unit. */
static enum vc_status order_units(struct unit_cursor *c, struct extsort *out, struct vc_err *err)
{
    uint64_t pos = 0;
    enum vc_status rc = VC_OK;
    for (size_t u = 0; rc == VC_OK && u < c->ss->n_units; u++) {
        rc = cursor_load(c, u, err);
        while (rc == VC_OK && c->kept.item) {
            struct prec r;
            rc = cursor_rec(c, &r, err);
            if (rc == VC_OK)
                rc = order_add(out, pos++, &r, err);
            if (rc == VC_OK)
                rc = session_kept_next(&c->kept, err);
        }
    }
    return rc;
}

/* The carried order (unit, index, position) sorted by record, joined with
 * the manifests: a record the last round rejected has no match and drops
 * out; one the order holds twice (a mixture's repeat) matches twice. */
static enum vc_status order_carried(struct unit_cursor *c, const char *order_path,
                                    struct extsort *by_id, struct extsort *out, struct vc_err *err)
{
    struct spill_order_reader rd;
    VC_TRY(spill_order_open(&rd, order_path, err));
    struct spill_id id;
    uint8_t key[20];
    int got;
    enum vc_status rc = VC_OK;
    for (uint64_t pos = 0; rc == VC_OK && (got = spill_order_next(&rd, &id, err)) != 0; pos++) {
        if (got < 0) {
            rc = (enum vc_status)got;
            break;
        }
        extsort_put_be(key, id.unit, 4);
        extsort_put_be(key + 4, id.index, 8);
        extsort_put_be(key + 12, pos, 8);
        rc = extsort_add(by_id, key, sizeof key, err);
    }
    spill_order_close(&rd);
    if (rc == VC_OK)
        rc = extsort_done(by_id, err);
    const uint8_t *p;
    size_t n;
    c->unit = SIZE_MAX;
    while (rc == VC_OK && (got = extsort_next(by_id, &p, &n, err)) != 0) {
        if (got < 0) {
            rc = (enum vc_status)got;
            break;
        }
        size_t u = (size_t)extsort_get_be(p, 4);
        uint64_t index = extsort_get_be(p + 4, 8);
        if (u >= c->ss->n_units)
            return vc_err_set(err, VC_EFATAL, VC_REASON_io_error, "%s names unit %zu of %zu",
                              order_path, u, c->ss->n_units);
        if (u != c->unit)
            rc = cursor_load(c, u, err);
        while (rc == VC_OK && c->kept.item && c->kept.k.index < index)
            rc = session_kept_next(&c->kept, err);
        struct prec r;
        if (rc == VC_OK && c->kept.item && c->kept.k.index == index &&
            (rc = cursor_rec(c, &r, err)) == VC_OK)
            rc = order_add(out, extsort_get_be(p + 12, 8), &r, err);
    }
    return rc;
}

/* The lookup file: the first position of every suffix-shaped key, sorted
 * by key, fixed width (key NUL-padded, then the position) for a binary
 * search by pread. */
enum { LOOKUP_KEY = PLAN_MAX_KEY + 1, LOOKUP_REC = LOOKUP_KEY + 8 };

struct keys {
    struct extsort *sorted;  /* (clean key NUL, position) */
    struct extsort *repeats; /* positions whose key an earlier one has */
    FILE *lookup_w;
    int lookup_fd;
    uint64_t n_lookup;
    struct plan_keyset *renamed;
    uint64_t pos;      /* the position being planned */
    const char *clean; /* its sanitised key */
    bool repeat;       /* it is a repeat */
    char *lookup_path;
    struct vc_err *err; /* a lookup's read error, reported after the pick */
    bool failed;
};

/* The first position of `key`, UINT64_MAX when no suffix-shaped key is. */
static uint64_t lookup_first(struct keys *k, const char *key)
{
    uint8_t rec[LOOKUP_REC], want[LOOKUP_KEY] = { 0 };
    memcpy(want, key, strlen(key));
    uint64_t lo = 0, hi = k->n_lookup;
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        if (pread(k->lookup_fd, rec, LOOKUP_REC, (off_t)(mid * LOOKUP_REC)) != LOOKUP_REC) {
            k->failed = true;
            return UINT64_MAX;
        }
        int c = memcmp(rec, want, LOOKUP_KEY);
        if (c == 0)
            return extsort_get_be(rec + LOOKUP_KEY, 8);
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return UINT64_MAX;
}

static bool key_taken(void *ctx, const char *key)
{
    struct keys *k = ctx;
    if (plan_keyset_has(k->renamed, key))
        return true;
    if (!strcmp(key, k->clean))
        return k->repeat;
    return plan_key_suffixed(key) && lookup_first(k, key) < k->pos;
}

/* Walks the sorted keys: repeats and the lookup file. */
static enum vc_status keys_scan(struct keys *k, struct vc_err *err)
{
    VC_TRY(extsort_done(k->sorted, err));
    char prev[LOOKUP_KEY + 1] = "";
    bool have = false;
    const uint8_t *p;
    size_t n;
    int got;
    enum vc_status rc = VC_OK;
    while (rc == VC_OK && (got = extsort_next(k->sorted, &p, &n, err)) != 0) {
        if (got < 0)
            return (enum vc_status)got;
        size_t kl = n - 9;
        if (have && !strcmp(prev, (const char *)p)) {
            rc = extsort_add(k->repeats, p + kl + 1, 8, err);
            continue;
        }
        memcpy(prev, p, kl + 1);
        have = true;
        if (!plan_key_suffixed(prev))
            continue;
        uint8_t rec[LOOKUP_REC] = { 0 };
        memcpy(rec, p, kl);
        memcpy(rec + LOOKUP_KEY, p + kl + 1, 8);
        if (fwrite(rec, 1, LOOKUP_REC, k->lookup_w) != LOOKUP_REC)
            rc = vc_err_io(err, k->lookup_path);
        k->n_lookup++;
    }
    if (rc == VC_OK && fflush(k->lookup_w) != 0)
        rc = vc_err_io(err, k->lookup_path);
    if (rc == VC_OK)
        rc = extsort_done(k->repeats, err);
    return rc;
}

/* The slices, one shard at a time, from the order read a second time. */
struct slicer {
    const struct session *ss;
    struct spill_index_writer w;
    cJSON *doc;
    size_t shard;
};

static enum vc_status slice_flush(struct slicer *sl, struct vc_err *err)
{
    char *text = sl->doc ? vc_utf8_json_print(sl->doc, false) : NULL;
    enum vc_status rc = text ? spill_index_add(&sl->w, text, strlen(text), err) : vc_err_oom(err);
    free(text);
    cJSON_Delete(sl->doc);
    sl->doc = NULL;
    return rc;
}

static enum vc_status write_slices(const struct session *ss, struct extsort *order, struct keys *k,
                                   const size_t *starts, size_t n_shards, struct vc_err *err)
{
    struct slicer sl = { .ss = ss };
    char *path = slices_path(ss);
    enum vc_status rc = path ? spill_index_open(&sl.w, path, n_shards, err) : vc_err_oom(err);
    free(path);
    VC_TRY(rc);
    rc = extsort_rewind(order, err);
    const uint8_t *p, *rp = NULL;
    size_t n, rn;
    int got, rgot = rc == VC_OK ? extsort_next(k->repeats, &rp, &rn, err) : 0;
    if (rgot < 0)
        rc = (enum vc_status)rgot;
    for (k->pos = 0; rc == VC_OK && (got = extsort_next(order, &p, &n, err)) != 0; k->pos++) {
        if (got < 0) {
            rc = (enum vc_status)got;
            break;
        }
        struct prec r;
        prec_get(p, &r);
        char clean[PLAN_MAX_KEY + 1], out[PLAN_MAX_KEY + 1];
        sample_key_sanitize(r.key, clean, sizeof clean);
        k->clean = clean;
        k->repeat = rgot > 0 && extsort_get_be(rp, 8) == k->pos;
        if (k->repeat && (rgot = extsort_next(k->repeats, &rp, &rn, err)) < 0)
            rc = (enum vc_status)rgot;
        if (rc != VC_OK)
            break;
        plan_key_pick(clean, key_taken, k, out);
        if (k->failed)
            rc = vc_err_set(err, VC_EFATAL, VC_REASON_io_error, "%s: short read", k->lookup_path);
        else if (strcmp(out, clean) != 0)
            rc = plan_keyset_add(k->renamed, out, err);
        if (rc == VC_OK && sl.shard < n_shards && k->pos == starts[sl.shard]) {
            if (sl.doc)
                rc = slice_flush(&sl, err);
            if (rc == VC_OK && !(sl.doc = manifest_slice_new(ss->spec->hash, sl.shard, k->pos)))
                rc = vc_err_oom(err);
            sl.shard++;
        }
        struct manifest_slot s = { .unit = r.unit,
                                   .source = r.source,
                                   .index = r.index,
                                   .off = r.off,
                                   .len = r.len,
                                   .key = out };
        if (rc == VC_OK)
            rc = manifest_slice_add(sl.doc, &s, err);
    }
    if (rc == VC_OK && sl.doc)
        rc = slice_flush(&sl, err);
    cJSON_Delete(sl.doc);
    enum vc_status crc = spill_index_close(&sl.w, rc == VC_OK, err);
    return rc != VC_OK ? rc : crc;
}

/* First read of the order: the shard cuts (*starts owned) and every
 * sanitised key with its position into k->sorted. */
static enum vc_status cut_and_key(struct extsort *order, const struct session_carry *carry,
                                  struct keys *k, size_t **starts, size_t *n_shards,
                                  struct vc_err *err)
{
    struct plan_cut cut = { .per_shard = carry->samples_per_shard,
                            .max_bytes = carry->shard_bytes };
    size_t cap = 0, ns = 0;
    size_t *st = vc_grow_array(NULL, &cap, 1, sizeof *st, 16);
    enum vc_status rc = st ? extsort_done(order, err) : vc_err_oom(err);
    const uint8_t *p;
    size_t n;
    int got;
    uint64_t pos = 0;
    while (rc == VC_OK && (got = extsort_next(order, &p, &n, err)) != 0) {
        if (got < 0) {
            rc = (enum vc_status)got;
            break;
        }
        struct prec r;
        prec_get(p, &r);
        if (plan_cut_next(&cut, r.bytes)) {
            size_t *g = vc_grow_array(st, &cap, ns + 2, sizeof *g, 16);
            if (!g) {
                rc = vc_err_oom(err);
                break;
            }
            st = g;
            st[ns++] = pos;
        }
        uint8_t rec[PLAN_MAX_KEY + 1 + 8];
        size_t kl = sample_key_sanitize(r.key, (char *)rec, PLAN_MAX_KEY + 1);
        extsort_put_be(rec + kl + 1, pos, 8);
        rc = extsort_add(k->sorted, rec, kl + 9, err);
        pos++;
    }
    if (st)
        st[ns] = pos;
    *starts = st;
    *n_shards = ns;
    return rc;
}

enum vc_status phase_plan(const struct session *ss, struct vc_err *err)
{
    size_t last = ss->n_rounds - 1, *starts = NULL, n_shards = 0;
    size_t budget = (size_t)ss->spec->memory_mb << 20;
    struct session_carry carry;
    struct unit_cursor cur = { .ss = ss, .round = last };
    struct extsort *order = NULL, *by_id = NULL;
    struct keys k = { .lookup_fd = -1 };
    char *tmp[5] = { session_work_path(ss, "plan-order.tmp"), session_work_path(ss, "plan-ids.tmp"),
                     session_work_path(ss, "plan-keys.tmp"), session_work_path(ss, "plan-rep.tmp"),
                     session_work_path(ss, "plan-lookup.tmp") };
    k.lookup_path = tmp[4];
    enum vc_status rc = session_carry_load(ss, last, false, &carry, err);
    for (size_t i = 0; rc == VC_OK && i < 5; i++)
        if (!tmp[i])
            rc = vc_err_oom(err);
    /* The order and the key sorts are read at the same time: a third each. */
    if (rc == VC_OK)
        rc = extsort_open(&order, tmp[0], budget / 3, err);
    if (rc == VC_OK && carry.ordered) {
        char *op = session_work_path(ss, "r%zu-order.bin", last - 1);
        rc = op ? extsort_open(&by_id, tmp[1], budget / 3, err) : vc_err_oom(err);
        if (rc == VC_OK)
            rc = order_carried(&cur, op, by_id, order, err);
        extsort_close(by_id);
        free(op);
    } else if (rc == VC_OK) {
        rc = order_units(&cur, order, err);
    }
    session_kept_close(&cur.kept);
    if (rc == VC_OK)
        rc = extsort_open(&k.sorted, tmp[2], budget / 3, err);
    if (rc == VC_OK)
        rc = extsort_open(&k.repeats, tmp[3], budget / 3, err);
    if (rc == VC_OK && !(k.renamed = plan_keyset_new()))
        rc = vc_err_oom(err);
    if (rc == VC_OK && !(k.lookup_w = fopen(tmp[4], "w+b")))
        rc = vc_err_io(err, tmp[4]);
    if (rc == VC_OK)
        rc = cut_and_key(order, &carry, &k, &starts, &n_shards, err);
    if (rc == VC_OK)
        rc = keys_scan(&k, err);
    extsort_close(k.sorted);
    k.sorted = NULL;
    if (rc == VC_OK)
        k.lookup_fd = fileno(k.lookup_w);
    if (rc == VC_OK)
        rc = write_slices(ss, order, &k, starts, n_shards, err);
    if (rc == VC_OK) {
        cJSON *doc = manifest_plan_new(ss->spec->hash, starts, n_shards, carry.report);
        char *path = session_work_path(ss, "plan.json");
        rc = doc && path ? commit_write_json(path, doc, false, err) : vc_err_oom(err);
        cJSON_Delete(doc);
        free(path);
    }
    if (k.lookup_w)
        fclose(k.lookup_w);
    extsort_close(k.repeats);
    plan_keyset_free(k.renamed);
    extsort_close(order);
    if (tmp[4])
        unlink(tmp[4]);
    for (size_t i = 0; i < 5; i++)
        free(tmp[i]);
    free(starts);
    session_carry_free(&carry);
    return rc;
}
