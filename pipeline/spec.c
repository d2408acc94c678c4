/* spec: parsing and validation.  The spec is small and read once, so
 * clarity beats speed here; what must be fast (units, stages) is built
 * once and handed to the executor. */
#include "spec.h"

#include "core/sha256.h"
#include "core/vc_fs.h"
#include "core/vc_mem.h"
#include "core/vc_utf8.h"
#include "stages/src_util.h"
#include "stages/stage_cfg.h"

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A spec file is written by hand: 16 MiB is generous. */
#define SPEC_MAX_BYTES (16u << 20)
/* Threads beyond this are a typo, not a machine. */
#define SPEC_MAX_THREADS 4096

void spec_free(struct spec *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n_stages; i++)
        if (s->stages[i].ops && s->stages[i].ops->destroy && s->stages[i].state)
            s->stages[i].ops->destroy(s->stages[i].state);
    for (size_t i = 0; i < s->n_sources; i++)
        if (s->sources[i].ops && s->sources[i].state)
            s->sources[i].ops->destroy(s->sources[i].state);
    free(s->stages);
    free(s->sources);
    free(s->source_info);
    free(s->spec_dir);
    free(s->out_dir);
    free(s->work_dir);
    free(s->prefix);
    cJSON_Delete(s->json);
    free(s);
}

/* "line L, column C" of byte `at` (1-based, columns in bytes), the way an
 * editor shows where to look. */
static void text_place(const char *text, size_t at, char *buf, size_t cap)
{
    size_t line = 1, col = 1;
    for (size_t i = 0; i < at; i++, col++)
        if (text[i] == '\n')
            line++, col = 0;
    snprintf(buf, cap, "line %zu, column %zu", line, col);
}

/* cJSON turns \u0000 into a NUL that silently ends the string, and stops at
 * a raw NUL byte: refuse both, so that the spec that runs is the one
 * written. */
static enum vc_status check_no_nul(const char *text, size_t n, struct vc_err *err)
{
    bool escaped;
    size_t at = vc_json_find_nul(text, n, &escaped);
    if (at == n)
        return VC_OK;
    char place[64];
    text_place(text, at, place, sizeof place);
    return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec, "%s: %s", place,
                      escaped ? "a NUL character (\\u0000) inside a string" : "a NUL byte");
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* A key given twice is a mistake whichever copy was meant (cJSON would
 * take the first, run.json would record both): refuse it, naming the
 * JSON path.  Sorting keeps a hostile object with many keys cheap. */
static enum vc_status check_unique_keys(const cJSON *node, const char *path, struct vc_err *err)
{
    size_t n = 0, i = 0;
    for (const cJSON *c = node->child; c; c = c->next)
        n++;
    if (cJSON_IsObject(node) && n > 1) {
        const char **names = malloc(n * sizeof *names);
        if (!names)
            return vc_err_oom(err);
        for (const cJSON *c = node->child; c; c = c->next)
            names[i++] = c->string;
        qsort(names, n, sizeof *names, cmp_names);
        const char *dup = NULL;
        for (i = 1; i < n && !dup; i++)
            if (strcmp(names[i - 1], names[i]) == 0)
                dup = names[i];
        enum vc_status rc = dup ? vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec,
                                             "%s: key '%s' appears twice", path, dup)
                                : VC_OK;
        free(names);
        VC_TRY(rc);
    }
    i = 0;
    for (const cJSON *c = node->child; c; c = c->next, i++) {
        char sub[256];
        if (cJSON_IsObject(node))
            snprintf(sub, sizeof sub, "%s.%s", path, c->string);
        else
            snprintf(sub, sizeof sub, "%s[%zu]", path, i);
        VC_TRY(check_unique_keys(c, sub, err));
    }
    return VC_OK;
}

/* Strict JSON for a hand-written file: one object, nothing after it but
 * white space, no NUL, no key twice.  *out owned. */
static enum vc_status parse_strict(const char *text, size_t n, cJSON **out, struct vc_err *err)
{
    char place[64];
    VC_TRY(check_no_nul(text, n, err));
    const char *end = NULL;
    cJSON *json = cJSON_ParseWithLengthOpts(text, n, &end, 0);
    if (!cJSON_IsObject(json)) {
        const char *at = json ? text : cJSON_GetErrorPtr();
        cJSON_Delete(json);
        text_place(text, at && at >= text && at <= text + n ? (size_t)(at - text) : 0, place,
                   sizeof place);
        return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec,
                          json ? "not a JSON object" : "not a JSON object (parse error near %s)",
                          place);
    }
    size_t rest = (size_t)(end - text);
    while (rest < n && strchr(" \t\r\n", text[rest]))
        rest++;
    enum vc_status rc = VC_OK;
    if (rest < n) {
        text_place(text, rest, place, sizeof place);
        rc = vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec,
                        "%s: text after the end of the JSON object", place);
    }
    if (rc == VC_OK)
        rc = check_unique_keys(json, "spec", err);
    if (rc < 0) {
        cJSON_Delete(json);
        return rc;
    }
    *out = json;
    return VC_OK;
}

static const char *stage_name_at(size_t i)
{
    return stage_table[i] ? stage_table[i]->name : NULL;
}

static const char *source_name_at(size_t i)
{
    return source_table[i] ? source_table[i]->name : NULL;
}

/* "a, b, c": the names a registry knows, for "unknown ..." messages. */
static void join_names(char *buf, size_t cap, const char *(*name_at)(size_t))
{
    size_t len = 0;
    buf[0] = '\0';
    for (size_t i = 0; name_at(i) && len < cap; i++)
        len += (size_t)snprintf(buf + len, cap - len, "%s%s", i ? ", " : "", name_at(i));
}

static enum vc_status parse_limits(struct spec *s, const cJSON *lim, struct vc_err *err)
{
    static const char *const keys[] = { "max_entry_bytes", "max_pixels",       "max_side",
                                        "max_text_bytes",  "max_json_bytes",   "max_sample_bytes",
                                        "max_fields",      "max_decode_bytes", NULL };
    struct stage_limits *l = &s->limits;
    stage_limits_default(l);
    const char *w = "limits";
    uint64_t side, fields;
    VC_TRY(stage_cfg_check_keys(lim, w, keys, err));
    VC_TRY(stage_cfg_u64(lim, w, "max_entry_bytes", l->max_entry_bytes, 1, 1ull << 40,
                         &l->max_entry_bytes, err));
    VC_TRY(stage_cfg_u64(lim, w, "max_pixels", l->max_pixels, 1, 1ull << 40, &l->max_pixels, err));
    VC_TRY(stage_cfg_u64(lim, w, "max_side", l->max_side, 1, 65535, &side, err));
    VC_TRY(stage_cfg_u64(lim, w, "max_text_bytes", l->max_text_bytes, 1, 1ull << 32,
                         &l->max_text_bytes, err));
    VC_TRY(stage_cfg_u64(lim, w, "max_json_bytes", l->max_json_bytes, 1, 1ull << 32,
                         &l->max_json_bytes, err));
    VC_TRY(stage_cfg_u64(lim, w, "max_sample_bytes", l->max_sample_bytes, 1u << 20, 1ull << 40,
                         &l->max_sample_bytes, err));
    VC_TRY(stage_cfg_u64(lim, w, "max_fields", l->max_fields, 1, SAMPLE_MAX_FIELDS, &fields, err));
    VC_TRY(stage_cfg_u64(lim, w, "max_decode_bytes", l->max_decode_bytes, 1u << 20, 1ull << 44,
                         &l->max_decode_bytes, err));
    l->max_side = (uint32_t)side;
    l->max_fields = (uint32_t)fields;
    return VC_OK;
}

static enum vc_status parse_output(struct spec *s, const cJSON *o, const struct spec_overrides *ov,
                                   struct vc_err *err)
{
    static const char *const keys[] = { "dir",         "prefix",      "samples_per_shard",
                                        "shard_bytes", "compression", NULL };
    static const char *const comps[] = { "none", "gz", "zst", NULL };
    const char *w = "output", *dir, *prefix;
    int comp;
    if (!cJSON_IsObject(o))
        return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec, "key 'output' is required");
    VC_TRY(stage_cfg_check_keys(o, w, keys, err));
    VC_TRY(stage_cfg_str(o, w, "dir", NULL, &dir, err));
    VC_TRY(stage_cfg_str(o, w, "prefix", "shard", &prefix, err));
    VC_TRY(stage_cfg_u64(o, w, "samples_per_shard", 0, 1, UINT32_MAX, &s->samples_per_shard, err));
    VC_TRY(stage_cfg_u64(o, w, "shard_bytes", 0, 4096, 1ull << 50, &s->shard_bytes, err));
    VC_TRY(stage_cfg_enum(o, w, "compression", comps, 0, &comp, err));
    if (!s->samples_per_shard && !s->shard_bytes)
        s->samples_per_shard = 1000; /* webdataset's customary shard size */
    for (const char *p = prefix; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '_' || *p == '-' || *p == '.'))
            return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec,
                              "output: key 'prefix': use letters, digits, '_', '-', '.'");
    if (strlen(prefix) > 64)
        return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec,
                          "output: key 'prefix': at most 64 characters");
    if (ov && ov->out_dir)
        s->out_dir = vc_strdup(ov->out_dir);
    else if (dir)
        s->out_dir = src_path_join(s->spec_dir, dir);
    else
        return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec,
                          "output: key 'dir' is required (or pass --out DIR)");
    s->prefix = vc_strdup(prefix);
    s->compression = (enum wds_compression)comp;
    if (!s->out_dir || !s->prefix)
        return vc_err_oom(err);
    /* "--out o/" names the folder "o": every path made from it (the
     * summary's "o/ledger.jsonl", messages) reads as the user would write it. */
    for (size_t k = strlen(s->out_dir); k > 1 && s->out_dir[k - 1] == '/'; k--)
        s->out_dir[k - 1] = '\0';
    size_t n = strlen(s->out_dir) + 7;
    s->work_dir = malloc(n);
    if (!s->work_dir)
        return vc_err_oom(err);
    snprintf(s->work_dir, n, "%s/_work", s->out_dir);
    return VC_OK;
}

static enum vc_status parse_sources(struct spec *s, const cJSON *arr, struct vc_err *err)
{
    int n = cJSON_GetArraySize(arr);
    if (!cJSON_IsArray(arr) || n == 0)
        return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec,
                          "key 'sources': expected a non-empty list");
    s->sources = calloc((size_t)n, sizeof *s->sources);
    s->source_info = calloc((size_t)n, sizeof *s->source_info);
    if (!s->sources || !s->source_info)
        return vc_err_oom(err);
    int i = 0;
    for (const cJSON *src = arr->child; src; src = src->next, i++) {
        char where[160];
        const char *name, *type;
        snprintf(where, sizeof where, "sources[%d]", i);
        if (!cJSON_IsObject(src))
            return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec, "%s: expected an object", where);
        VC_TRY(stage_cfg_str(src, where, "name", NULL, &name, err));
        VC_TRY(stage_cfg_str(src, where, "type", NULL, &type, err));
        if (!name || !type)
            return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec, "%s: key '%s' is required", where,
                              name ? "type" : "name");
        snprintf(where, sizeof where, "source '%s'", name);
        for (int k = 0; k < i; k++)
            if (strcmp(s->source_info[k].name, name) == 0)
                return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec, "%s: key 'name': used twice",
                                  where);
        const struct source_ops *ops = source_find(type);
        if (!ops) {
            char known[256];
            join_names(known, sizeof known, source_name_at);
            return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec,
                              "%s: key 'type': unknown source type '%s' (known: %s)", where, type,
                              known);
        }
        struct stage_source_info *si = &s->source_info[i];
        uint64_t epochs;
        si->name = name;
        si->type = ops->name;
        VC_TRY(stage_cfg_double(src, where, "weight", 1.0, 1e-9, 1e9, &si->weight, err));
        VC_TRY(stage_cfg_u64(src, where, "max_samples", 0, 1, UINT64_MAX >> 11, &si->max_samples,
                             err));
        VC_TRY(stage_cfg_u64(src, where, "epochs", 0, 1, 1000, &epochs, err));
        si->epochs = (uint32_t)epochs;
        s->sources[i].ops = ops;
        s->n_sources = (size_t)i + 1;
        VC_TRY(ops->create(src, where, &s->ctx, &s->sources[i].state, err));
        s->sources[i].units = ops->units(s->sources[i].state, &s->sources[i].n_units);
    }
    return VC_OK;
}

/* Whether a source sets a key that only a mixture reads. */
static bool mixture_keys_given(const cJSON *json)
{
    static const char *const keys[] = { "weight", "max_samples", "epochs" };
    const cJSON *src;
    cJSON_ArrayForEach(src, cJSON_GetObjectItemCaseSensitive(json, "sources"))
    {
        for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
            if (cJSON_GetObjectItemCaseSensitive(src, keys[i]))
                return true;
    }
    return false;
}

/* A stage's create names it ("stage 'filter': ..."), which does not say
 * which one when a spec lists a stage twice: the message names its place
 * in "stages" instead ("stage 2 (filter): filter 'img_width': ..."). */
static void name_stage_place(struct vc_err *err, int place, const char *name)
{
    char own[96];
    int n = snprintf(own, sizeof own, "stage '%s': ", name);
    if (n > 0 && (size_t)n < sizeof own && strncmp(err->msg, own, (size_t)n) == 0)
        memmove(err->msg, err->msg + n, strlen(err->msg + n) + 1);
    vc_err_prefix(err, "stage %d (%s)", place, name);
}

static enum vc_status parse_stages(struct spec *s, const cJSON *arr, struct vc_err *err)
{
    if (arr && !cJSON_IsArray(arr))
        return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec, "key 'stages': expected a list");
    size_t n = arr ? (size_t)cJSON_GetArraySize(arr) : 0;
    /* Room for the implied ingest, reshard and write. */
    s->stages = calloc(n + 3, sizeof *s->stages);
    const cJSON **cfgs = calloc(n + 3, sizeof *cfgs);
    int *place = calloc(n + 3, sizeof *place); /* 1-based in "stages"; 0: implied */
    enum vc_status rc = VC_OK;
    if (!s->stages || !cfgs || !place) {
        free(cfgs);
        free(place);
        return vc_err_oom(err);
    }
    size_t k = 0;
    int i = 0;
    const cJSON *st = arr ? arr->child : NULL;
    for (; st && rc == VC_OK; st = st->next, i++) {
        const char *name;
        char where[64];
        snprintf(where, sizeof where, "stage %d", i + 1);
        if ((rc = stage_cfg_str(st, where, "stage", NULL, &name, err)) < 0)
            break;
        const struct stage_ops *ops = name ? stage_find(name) : NULL;
        if (!name || !cJSON_IsObject(st)) {
            rc = vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec,
                            "%s: expected an object with key 'stage'", where);
        } else if (!ops) {
            char known[256];
            join_names(known, sizeof known, stage_name_at);
            rc = vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec,
                            "%s: key 'stage': unknown stage '%s' (known: %s)", where, name, known);
        } else {
            if (k == 0 && !(ops->caps & STAGE_CAP_FIRST))
                s->stages[k++].ops = stage_find("ingest"), cfgs[k - 1] = NULL;
            cfgs[k] = st;
            place[k] = i + 1;
            s->stages[k++].ops = ops;
        }
    }
    if (rc == VC_OK && k == 0)
        s->stages[k++].ops = stage_find("ingest");
    if (rc == VC_OK && !(s->stages[k - 1].ops->caps & STAGE_CAP_LAST))
        s->stages[k++].ops = stage_find("write");
    /* Mixture keys without a reshard stage: the mixture is applied with its
     * defaults just before write, rather than the keys silently doing
     * nothing (the README's "Mixture"). */
    const struct stage_ops *reshard = stage_find("reshard");
    bool has_reshard = false;
    for (size_t a = 0; a < k; a++)
        has_reshard |= s->stages[a].ops == reshard;
    if (rc == VC_OK && !has_reshard && mixture_keys_given(s->json)) {
        s->stages[k] = s->stages[k - 1];
        cfgs[k] = cfgs[k - 1];
        place[k] = place[k - 1];
        s->stages[k - 1] = (struct spec_stage){ .ops = reshard };
        cfgs[k - 1] = NULL;
        place[k - 1] = 0;
        k++;
    }
    for (size_t a = 0; rc == VC_OK && a < k; a++) {
        const struct stage_ops *ops = s->stages[a].ops;
        if ((ops->caps & STAGE_CAP_FIRST) && a != 0)
            rc = vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec, "stage '%s' must come first",
                            ops->name);
        if ((ops->caps & STAGE_CAP_LAST) && a != k - 1)
            rc = vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec, "stage '%s' must come last",
                            ops->name);
        for (size_t b = 0; rc == VC_OK && b < a; b++)
            if ((ops->caps & STAGE_CAP_ONCE) && s->stages[b].ops == ops)
                rc = vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec,
                                "stage '%s' may appear only once", ops->name);
    }
    for (size_t a = 0; rc == VC_OK && a < k; a++) {
        s->n_stages = a + 1;
        rc = s->stages[a].ops->create(cfgs[a], &s->ctx, &s->stages[a].state, err);
        if (rc < 0 && place[a])
            name_stage_place(err, place[a], s->stages[a].ops->name);
    }
    free(cfgs);
    free(place);
    return rc;
}

/* What the hash covers, a copy (owned; NULL on OOM): everything that
 * determines the output bytes, so not where the output goes nor how many
 * threads (and how much memory) make it. */
static cJSON *hashed_view(const cJSON *json)
{
    cJSON *copy = cJSON_Duplicate(json, 1);
    if (!copy)
        return NULL;
    cJSON_DeleteItemFromObjectCaseSensitive(copy, "threads");
    cJSON_DeleteItemFromObjectCaseSensitive(copy, "log_interval_s");
    cJSON_DeleteItemFromObjectCaseSensitive(copy, "memory_mb");
    cJSON_DeleteItemFromObjectCaseSensitive(copy, "max_error_rate");
    cJSON_DeleteItemFromObjectCaseSensitive(copy, "executor");
    cJSON_DeleteItemFromObjectCaseSensitive(cJSON_GetObjectItemCaseSensitive(copy, "output"),
                                            "dir");
    return copy;
}

static enum vc_status compute_hash(struct spec *s, struct vc_err *err)
{
    cJSON *copy = hashed_view(s->json);
    char *text = copy ? cJSON_PrintUnformatted(copy) : NULL;
    cJSON_Delete(copy);
    if (!text)
        return vc_err_oom(err);
    sha256_hex(text, strlen(text), s->hash);
    free(text);
    return VC_OK;
}

/* Appends ".key" or "[i]" to path[0..len) within cap; the new length. */
static size_t path_push(char *path, size_t len, size_t cap, const cJSON *item, size_t i)
{
    int n = item->string ? snprintf(path + len, cap - len, "%s%s", len ? "." : "", item->string)
                         : snprintf(path + len, cap - len, "[%zu]", i);
    return n < 0 || (size_t)n >= cap - len ? cap - 1 : len + (size_t)n;
}

/* The first place, in a's order, where a and b differ (a key or an
 * element one of them lacks, or another value): its path is written from
 * path[len] on.  False when they are equal. */
static bool first_difference(const cJSON *a, const cJSON *b, char *path, size_t len, size_t cap)
{
    bool obj = cJSON_IsObject(a) && cJSON_IsObject(b);
    if (!obj && !(cJSON_IsArray(a) && cJSON_IsArray(b)))
        return !cJSON_Compare(a, b, true); /* the caller's path names this place */
    size_t i = 0;
    const cJSON *y = b->child;
    for (const cJSON *x = a->child; x; x = x->next, y = y ? y->next : NULL, i++) {
        const cJSON *other = obj ? cJSON_GetObjectItemCaseSensitive(b, x->string) : y;
        size_t at = path_push(path, len, cap, x, i);
        if (!other || first_difference(x, other, path, at, cap))
            return true;
    }
    size_t n_a = i;
    i = 0;
    for (const cJSON *x = b->child; x; x = x->next, i++)
        if (obj ? !cJSON_GetObjectItemCaseSensitive(a, x->string) : i >= n_a) {
            path_push(path, len, cap, x, i);
            return true;
        }
    return false;
}

bool spec_first_difference(const struct spec *s, const cJSON *other, char *path, size_t cap)
{
    cJSON *a = hashed_view(s->json), *b = hashed_view(other);
    path[0] = '\0';
    bool found = a && b && first_difference(a, b, path, 0, cap);
    cJSON_Delete(a);
    cJSON_Delete(b);
    return found && path[0];
}

enum vc_status spec_parse(const char *text, size_t n, const char *spec_dir,
                          const struct spec_overrides *ov, struct spec **out, struct vc_err *err)
{
    static const char *const keys[] = { "sources",        "stages",   "output",
                                        "limits",         "threads",  "log_interval_s",
                                        "max_error_rate", "executor", "description",
                                        "memory_mb",      NULL };
    struct spec *s = calloc(1, sizeof *s);
    if (!s)
        return vc_err_oom(err);
    enum vc_status rc = VC_OK;
    if ((rc = parse_strict(text, n, &s->json, err)) < 0)
        goto fail;
    s->spec_dir = vc_strdup(spec_dir ? spec_dir : "");
    if (!s->spec_dir) {
        rc = vc_err_oom(err);
        goto fail;
    }
    uint64_t threads, interval, memory_mb;
    if ((rc = stage_cfg_check_keys(s->json, "spec", keys, err)) < 0 ||
        (rc = stage_cfg_u64(s->json, "spec", "threads", 0, 0, SPEC_MAX_THREADS, &threads, err)) <
            0 ||
        (rc = stage_cfg_u64(s->json, "spec", "log_interval_s", 10, 1, 86400, &interval, err)) < 0 ||
        (rc = stage_cfg_u64(s->json, "spec", "memory_mb", SPEC_MEMORY_MB, 1, 1u << 20, &memory_mb,
                            err)) < 0 ||
        (rc = stage_cfg_double(s->json, "spec", "max_error_rate", 1, 0, 1, &s->max_error_rate,
                               err)) < 0 ||
        (rc = stage_cfg_str(s->json, "spec", "executor", "local", &s->executor, err)) < 0 ||
        (rc = parse_limits(s, cJSON_GetObjectItemCaseSensitive(s->json, "limits"), err)) < 0 ||
        (rc = parse_output(s, cJSON_GetObjectItemCaseSensitive(s->json, "output"), ov, err)) < 0)
        goto fail;
    s->threads = ov && ov->threads > 0 ? ov->threads : (int)threads;
    s->log_interval_s = interval;
    s->memory_mb = memory_mb;
    if (ov && ov->max_error_rate)
        s->max_error_rate = *ov->max_error_rate;
    if (ov && ov->executor)
        s->executor = ov->executor;
    s->ctx.limits = &s->limits;
    s->ctx.spec_dir = s->spec_dir;
    s->ctx.out_dir = s->out_dir;
    s->ctx.work_dir = s->work_dir;
    s->ctx.inputs_checked = ov && ov->inputs_checked;
    s->ctx.sources = s->source_info;
    if ((rc = parse_sources(s, cJSON_GetObjectItemCaseSensitive(s->json, "sources"), err)) < 0)
        goto fail;
    s->ctx.sources = s->source_info;
    s->ctx.n_sources = s->n_sources;
    if ((rc = parse_stages(s, cJSON_GetObjectItemCaseSensitive(s->json, "stages"), err)) < 0 ||
        (rc = compute_hash(s, err)) < 0)
        goto fail;
    if (ov && ov->out_dir) {
        cJSON *o = cJSON_GetObjectItemCaseSensitive(s->json, "output");
        cJSON_DeleteItemFromObjectCaseSensitive(o, "dir");
        cJSON_AddStringToObject(o, "dir", ov->out_dir);
    }
    *out = s;
    return VC_OK;
fail:
    if (rc != VC_EFATAL && err && err->status != VC_EUSAGE)
        err->status = rc = VC_EUSAGE;
    spec_free(s);
    return rc;
}

enum vc_status spec_load(const char *path, const struct spec_overrides *ov, struct spec **out,
                         struct vc_err *err)
{
    char *text;
    size_t n;
    enum vc_status rc = vc_fs_read_file(path, SPEC_MAX_BYTES, &text, &n, err);
    if (rc < 0) {
        err->status = VC_EUSAGE;
        return vc_err_prefix(err, "spec %s", path);
    }
    const char *slash = strrchr(path, '/');
    char *dir = slash ? vc_strndup(path, (size_t)(slash - path) + (slash == path)) : NULL;
    rc = spec_parse(text, n, dir, ov, out, err);
    free(dir);
    free(text);
    if (rc < 0)
        vc_err_prefix(err, "%s", path);
    return rc;
}

size_t spec_n_units(const struct spec *s)
{
    size_t n = 0;
    for (size_t i = 0; i < s->n_sources; i++)
        n += s->sources[i].n_units;
    return n;
}

const struct source_unit *spec_unit(const struct spec *s, size_t global, size_t *source)
{
    for (size_t i = 0; i < s->n_sources; i++) {
        if (global < s->sources[i].n_units) {
            *source = i;
            return &s->sources[i].units[global];
        }
        global -= s->sources[i].n_units;
    }
    return NULL;
}
