/* plan: shard cutting and key uniqueness.  The key set is an open-address
 * hash table of borrowed strings sized to twice the key count, so a plan
 * over millions of samples stays linear. */
#include "plan.h"

#include "core/sample.h"
#include "core/vc_mem.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

uint64_t plan_tar_member_bytes(uint64_t size)
{
    return 512 + (size + 511) / 512 * 512;
}

enum vc_status plan_shards(const uint64_t *bytes, size_t n, uint64_t per_shard, uint64_t max_bytes,
                           size_t **starts, size_t *n_shards, struct vc_err *err)
{
    size_t *st = vc_malloc_array(n + 2, sizeof *st);
    if (!st)
        return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "shard plan");
    size_t k = 0, count = 0;
    uint64_t cur = 0;
    for (size_t i = 0; i < n; i++) {
        bool full = (per_shard && count == per_shard) ||
                    (max_bytes && count > 0 && cur + bytes[i] > max_bytes);
        if (i == 0 || full) {
            st[k++] = i;
            count = 0;
            cur = 0;
        }
        count++;
        cur += bytes[i];
    }
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

struct key_set {
    const char **slots;
    size_t mask;
};

/* True when s was absent (and is now in). */
static bool set_add(struct key_set *ks, const char *s)
{
    for (size_t i = hash_str(s) & ks->mask;; i = (i + 1) & ks->mask) {
        if (!ks->slots[i]) {
            ks->slots[i] = s;
            return true;
        }
        if (strcmp(ks->slots[i], s) == 0)
            return false;
    }
}

enum vc_status plan_unique_keys(char **keys, size_t n, struct vc_err *err)
{
    size_t cap = 16;
    while (cap < 2 * n + 16)
        cap *= 2;
    struct key_set ks = { calloc(cap, sizeof(char *)), cap - 1 };
    if (!ks.slots)
        return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "key set");
    enum vc_status rc = VC_OK;
    /* Sanitise every key first, so a later original cannot collide with an
     * earlier suffixed one unnoticed: originals are claimed in order. */
    for (size_t i = 0; i < n && rc == VC_OK; i++) {
        char clean[PLAN_MAX_KEY + 1];
        sample_key_sanitize(keys[i], clean, sizeof clean);
        if (strcmp(clean, keys[i]) != 0) {
            char *c = vc_strdup(clean);
            if (!c)
                rc = vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "key set");
            else
                free(keys[i]), keys[i] = c;
        }
    }
    for (size_t i = 0; i < n && rc == VC_OK; i++) {
        if (set_add(&ks, keys[i]))
            continue;
        char buf[PLAN_MAX_KEY + 24];
        for (uint64_t suffix = 1;; suffix++) {
            char tail[24];
            int tl = snprintf(tail, sizeof tail, "_%llu", (unsigned long long)suffix);
            size_t base = strlen(keys[i]);
            if (base + (size_t)tl > PLAN_MAX_KEY)
                base = PLAN_MAX_KEY - (size_t)tl;
            memcpy(buf, keys[i], base);
            memcpy(buf + base, tail, (size_t)tl + 1);
            char *cand = vc_strdup(buf);
            if (!cand) {
                rc = vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "key set");
                break;
            }
            if (set_add(&ks, cand)) {
                free(keys[i]);
                keys[i] = cand;
                break;
            }
            free(cand);
        }
    }
    free(ks.slots);
    return rc;
}
