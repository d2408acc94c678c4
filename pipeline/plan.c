/* plan: shard cutting and key uniqueness, both online (one sample at a
 * time, in output order) so PLAN can stream; the in-memory forms over
 * arrays are kept for the unit tests and small callers.  The key set is an
 * open-address hash table of owned strings that doubles when half full. */
#include "plan.h"

#include "core/sample.h"
#include "core/vc_mem.h"
#include "stages/wds_write.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

uint64_t plan_tar_member_bytes(uint64_t size)
{
    return 512 + (size + 511) / 512 * 512;
}

bool plan_cut_next(struct plan_cut *c, uint64_t bytes)
{
    /* The target bounds the file a reader downloads, so the tar's end
     * blocks and record padding count, not only the members. */
    bool full = (c->per_shard && c->count == c->per_shard) ||
                (c->max_bytes && c->count > 0 && wds_tar_file_bytes(c->cur + bytes) > c->max_bytes);
    bool opens = !c->started || full;
    if (opens) {
        c->started = true;
        c->count = 0;
        c->cur = 0;
    }
    c->count++;
    c->cur += bytes;
    return opens;
}

enum vc_status plan_shards(const uint64_t *bytes, size_t n, uint64_t per_shard, uint64_t max_bytes,
                           size_t **starts, size_t *n_shards, struct vc_err *err)
{
    size_t *st = vc_malloc_array(n + 2, sizeof *st);
    if (!st)
        return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "shard plan");
    struct plan_cut c = { .per_shard = per_shard, .max_bytes = max_bytes };
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (plan_cut_next(&c, bytes[i]))
            st[k++] = i;
    st[k] = n;
    *starts = st;
    *n_shards = k;
    return VC_OK;
}

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

struct plan_keyset {
    char **slots;
    size_t mask, n;
};

struct plan_keyset *plan_keyset_new(void)
{
    struct plan_keyset *ks = calloc(1, sizeof *ks);
    if (ks && !(ks->slots = calloc(16, sizeof *ks->slots))) {
        free(ks);
        return NULL;
    }
    if (ks)
        ks->mask = 15;
    return ks;
}

void plan_keyset_free(struct plan_keyset *ks)
{
    for (size_t i = 0; ks && i <= ks->mask; i++)
        free(ks->slots[i]);
    if (ks)
        free(ks->slots);
    free(ks);
}

static char **slot_of(char **slots, size_t mask, const char *s)
{
    size_t i = hash_str(s) & mask;
    while (slots[i] && strcmp(slots[i], s) != 0)
        i = (i + 1) & mask;
    return &slots[i];
}

bool plan_keyset_has(const struct plan_keyset *ks, const char *key)
{
    return *slot_of(ks->slots, ks->mask, key) != NULL;
}

enum vc_status plan_keyset_add(struct plan_keyset *ks, const char *key, struct vc_err *err)
{
    if (2 * (ks->n + 1) > ks->mask + 1) {
        size_t cap = 2 * (ks->mask + 1);
        char **g = calloc(cap, sizeof *g);
        if (!g)
            return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "key set");
        for (size_t i = 0; i <= ks->mask; i++)
            if (ks->slots[i])
                *slot_of(g, cap - 1, ks->slots[i]) = ks->slots[i];
        free(ks->slots);
        ks->slots = g;
        ks->mask = cap - 1;
    }
    char **s = slot_of(ks->slots, ks->mask, key);
    if (*s)
        return VC_OK;
    if (!(*s = vc_strdup(key)))
        return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "key set");
    ks->n++;
    return VC_OK;
}

void plan_key_pick(const char *clean, plan_taken_fn taken, void *ctx, char out[PLAN_MAX_KEY + 1])
{
    if (!taken(ctx, clean)) {
        snprintf(out, PLAN_MAX_KEY + 1, "%s", clean);
        return;
    }
    for (uint64_t suffix = 1;; suffix++) {
        char tail[24];
        int tl = snprintf(tail, sizeof tail, "_%llu", (unsigned long long)suffix);
        size_t base = strlen(clean);
        if (base + (size_t)tl > PLAN_MAX_KEY)
            base = PLAN_MAX_KEY - (size_t)tl;
        memcpy(out, clean, base);
        memcpy(out + base, tail, (size_t)tl + 1);
        if (!taken(ctx, out))
            return;
    }
}

bool plan_key_suffixed(const char *key)
{
    size_t n = strlen(key), d = n;
    while (d > 0 && key[d - 1] >= '0' && key[d - 1] <= '9')
        d--;
    return d < n && d > 0 && key[d - 1] == '_';
}

static bool in_set(void *ctx, const char *key)
{
    return plan_keyset_has(ctx, key);
}

enum vc_status plan_unique_keys(char **keys, size_t n, struct vc_err *err)
{
    struct plan_keyset *ks = plan_keyset_new();
    enum vc_status rc = ks ? VC_OK : vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "key set");
    for (size_t i = 0; i < n && rc == VC_OK; i++) {
        char clean[PLAN_MAX_KEY + 1], out[PLAN_MAX_KEY + 1];
        sample_key_sanitize(keys[i], clean, sizeof clean);
        plan_key_pick(clean, in_set, ks, out);
        rc = plan_keyset_add(ks, out, err);
        if (rc == VC_OK && strcmp(out, keys[i]) != 0) {
            char *c = vc_strdup(out);
            if (!c)
                rc = vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "key set");
            else
                free(keys[i]), keys[i] = c;
        }
    }
    plan_keyset_free(ks);
    return rc;
}
