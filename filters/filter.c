/* filter: parameter validation against a filter's schema, the threshold
 * comparison and the shared-resource cache.  Owns every struct filter and
 * the resolved parameter object inside it.  Never scores anything itself
 * and never reads a file: resources are loaded by the callbacks filters
 * hand to filter_env_get. */
#include "filter.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/vc_mem.h"

const char *filter_kind_name(enum filter_kind kind)
{
    switch (kind) {
    case FILTER_KIND_IMAGE:
        return "image";
    case FILTER_KIND_TEXT:
        return "paragraph";
    case FILTER_KIND_PAIR:
        return "pair";
    case FILTER_KIND_DOCUMENT:
        return "document";
    }
    return "unknown";
}

const char *filter_param_type_name(enum filter_param_type type)
{
    switch (type) {
    case FILTER_PARAM_NUMBER:
        return "number";
    case FILTER_PARAM_INT:
        return "integer";
    case FILTER_PARAM_BOOL:
        return "boolean";
    case FILTER_PARAM_STRING:
        return "string";
    case FILTER_PARAM_STRINGS:
        return "array of strings";
    }
    return "unknown";
}

/* Integral and exactly representable: 2^53 is where doubles stop counting. */
static bool is_integral(double v)
{
    return isfinite(v) && v == floor(v) && fabs(v) <= 9007199254740992.0;
}

static bool value_has_type(const cJSON *v, enum filter_param_type type)
{
    switch (type) {
    case FILTER_PARAM_NUMBER:
        return cJSON_IsNumber(v) && isfinite(v->valuedouble);
    case FILTER_PARAM_INT:
        return cJSON_IsNumber(v) && is_integral(v->valuedouble);
    case FILTER_PARAM_BOOL:
        return cJSON_IsBool(v);
    case FILTER_PARAM_STRING:
        return cJSON_IsString(v);
    case FILTER_PARAM_STRINGS: {
        if (!cJSON_IsArray(v))
            return false;
        const cJSON *e;
        cJSON_ArrayForEach(e, v)
        {
            if (!cJSON_IsString(e))
                return false;
        }
        return true;
    }
    }
    return false;
}

static bool is_numeric(enum filter_param_type type)
{
    return type == FILTER_PARAM_NUMBER || type == FILTER_PARAM_INT;
}

static const struct filter_param *find_param(const struct filter_ops *ops, const char *key)
{
    for (const struct filter_param *p = ops->params; p && p->key; p++)
        if (strcmp(p->key, key) == 0)
            return p;
    return NULL;
}

enum vc_status filter_ops_check(const struct filter_ops *ops, struct vc_err *err)
{
    if (!ops->name || !ops->summary || !ops->source || !ops->score || !ops->params)
        return vc_err_set(err, VC_EFATAL, VC_REASON_bad_spec,
                          "filter '%s': name, summary, source, params and score are required",
                          ops->name ? ops->name : "(unnamed)");
    double bound[2] = { -INFINITY, INFINITY };
    for (const struct filter_param *p = ops->params; p->key; p++) {
        if (!p->def || !p->doc || !*p->doc)
            return vc_err_set(err, VC_EFATAL, VC_REASON_bad_spec,
                              "filter '%s': parameter %s lacks a default or a description",
                              ops->name, p->key);
        if (strcmp(p->key, "name") == 0 || strcmp(p->key, "enabled") == 0 ||
            find_param(ops, p->key) != p)
            return vc_err_set(err, VC_EFATAL, VC_REASON_bad_spec,
                              "filter '%s': parameter %s is reserved or declared twice", ops->name,
                              p->key);
        cJSON *v = cJSON_Parse(p->def);
        bool ok = v && value_has_type(v, p->type);
        if (ok && is_numeric(p->type))
            ok = p->lo < p->hi && v->valuedouble >= p->lo && v->valuedouble <= p->hi;
        bool is_bound = strcmp(p->key, "min") == 0 || strcmp(p->key, "max") == 0;
        if (ok && is_bound) {
            ok = p->type == FILTER_PARAM_NUMBER || p->type == FILTER_PARAM_INT;
            if (ok)
                bound[p->key[1] == 'a'] = v->valuedouble;
        }
        cJSON_Delete(v);
        if (!ok)
            return vc_err_set(err, VC_EFATAL, VC_REASON_bad_spec,
                              "filter '%s': default of %s (%s) is not a %s in its range", ops->name,
                              p->key, p->def,
                              is_bound ? "number" : filter_param_type_name(p->type));
    }
    if (bound[0] > bound[1])
        return vc_err_set(err, VC_EFATAL, VC_REASON_bad_spec, "filter '%s': default min > max",
                          ops->name);
    return VC_OK;
}

enum vc_status filter_check_config(const struct filter_ops *ops, const struct cJSON *cfg,
                                   struct vc_err *err)
{
    if (cfg && !cJSON_IsObject(cfg))
        return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec, "filter '%s': expected an object",
                          ops->name);
    double bound[2] = { -INFINITY, INFINITY };
    for (const struct filter_param *p = ops->params; p->key; p++) {
        if (strcmp(p->key, "min") != 0 && strcmp(p->key, "max") != 0)
            continue;
        cJSON *v = cJSON_Parse(p->def);
        if (v)
            bound[p->key[1] == 'a'] = v->valuedouble;
        cJSON_Delete(v);
    }
    /* Every key must be known and well typed, so a typo is reported
     * rather than ignored. */
    const cJSON *item;
    cJSON_ArrayForEach(item, cfg)
    {
        const char *key = item->string;
        if (strcmp(key, "name") == 0 || strcmp(key, "enabled") == 0) {
            if (key[0] == 'n' ? !cJSON_IsString(item) : !cJSON_IsBool(item))
                return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec,
                                  "filter '%s': \"%s\" must be a %s", ops->name, key,
                                  key[0] == 'n' ? "string" : "boolean");
            continue;
        }
        const struct filter_param *p = find_param(ops, key);
        if (!p)
            return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec,
                              "filter '%s': unknown parameter \"%s\"", ops->name, key);
        if (!value_has_type(item, p->type))
            return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec,
                              "filter '%s': parameter \"%s\" must be of type %s", ops->name, key,
                              filter_param_type_name(p->type));
        if (is_numeric(p->type) && !(item->valuedouble >= p->lo && item->valuedouble <= p->hi))
            return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec,
                              "filter '%s': parameter \"%s\": %.15g is outside [%.15g, %.15g]",
                              ops->name, key, item->valuedouble, p->lo, p->hi);
        if (strcmp(key, "min") == 0 || strcmp(key, "max") == 0)
            bound[key[1] == 'a'] = item->valuedouble;
    }
    if (bound[0] > bound[1])
        return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec,
                          "filter '%s': \"min\" %g exceeds \"max\" %g", ops->name, bound[0],
                          bound[1]);
    return VC_OK;
}

enum vc_status filter_new(const struct filter_ops *ops, const struct cJSON *cfg,
                          struct filter_env *env, struct filter **out, struct vc_err *err)
{
    *out = NULL;
    VC_TRY(filter_check_config(ops, cfg, err));
    struct filter *f = calloc(1, sizeof *f);
    cJSON *params = cJSON_CreateObject();
    if (!f || !params) {
        free(f);
        cJSON_Delete(params);
        return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "filter '%s': out of memory",
                          ops->name);
    }
    f->ops = ops;
    f->params = params;
    f->min = -INFINITY;
    f->max = INFINITY;
    const cJSON *en = cfg ? cJSON_GetObjectItemCaseSensitive(cfg, "enabled") : NULL;
    f->enabled = en ? cJSON_IsTrue(en) : ops->enabled;

    for (const struct filter_param *p = ops->params; p->key; p++) {
        const cJSON *given = cfg ? cJSON_GetObjectItemCaseSensitive(cfg, p->key) : NULL;
        cJSON *v = given ? cJSON_Duplicate(given, 1) : cJSON_Parse(p->def);
        if (!v || !cJSON_AddItemToObject(params, p->key, v)) {
            cJSON_Delete(v);
            filter_free(f);
            return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "filter '%s': out of memory",
                              ops->name);
        }
        if (strcmp(p->key, "min") == 0)
            f->min = v->valuedouble;
        else if (strcmp(p->key, "max") == 0)
            f->max = v->valuedouble;
    }
    if (ops->init) {
        enum vc_status rc = ops->init(f, env, err);
        if (rc < 0) {
            vc_err_prefix(err, "filter '%s'", ops->name);
            filter_free(f);
            return rc;
        }
    }
    *out = f;
    return VC_OK;
}

void filter_free(struct filter *f)
{
    if (!f)
        return;
    if (f->ops->fini)
        f->ops->fini(f);
    cJSON_Delete(f->params);
    free(f);
}

static const cJSON *param_value(const struct filter *f, const char *key,
                                enum filter_param_type type)
{
    const struct filter_param *p = find_param(f->ops, key);
    if (!p || p->type != type)
        return NULL;
    return cJSON_GetObjectItemCaseSensitive(f->params, key);
}

double filter_param_number(const struct filter *f, const char *key)
{
    const cJSON *v = param_value(f, key, FILTER_PARAM_NUMBER);
    if (!v)
        v = param_value(f, key, FILTER_PARAM_INT);
    return v ? v->valuedouble : 0.0;
}

bool filter_param_bool(const struct filter *f, const char *key)
{
    return cJSON_IsTrue(param_value(f, key, FILTER_PARAM_BOOL));
}

const char *filter_param_string(const struct filter *f, const char *key)
{
    const cJSON *v = param_value(f, key, FILTER_PARAM_STRING);
    return v ? v->valuestring : NULL;
}

size_t filter_param_strings_count(const struct filter *f, const char *key)
{
    const cJSON *v = param_value(f, key, FILTER_PARAM_STRINGS);
    return v ? (size_t)cJSON_GetArraySize(v) : 0;
}

const char *filter_param_strings_at(const struct filter *f, const char *key, size_t i)
{
    const cJSON *v = param_value(f, key, FILTER_PARAM_STRINGS);
    const cJSON *e = v && i < (size_t)cJSON_GetArraySize(v) ? cJSON_GetArrayItem(v, (int)i) : NULL;
    return e ? e->valuestring : NULL;
}

bool filter_keeps(const struct filter *f, double score, double *threshold)
{
    if (isnan(score)) {
        if (threshold)
            *threshold = isfinite(f->min) ? f->min : f->max;
        return false;
    }
    bool below = score < f->min;
    bool above = (f->ops->flags & FILTER_MAX_EXCLUSIVE) ? score >= f->max : score > f->max;
    if (threshold)
        *threshold = below ? f->min : f->max;
    return !below && !above;
}

/* ---- shared resources ---- */

struct env_entry {
    char *key;
    void *res;
    void (*release)(void *res);
};

struct filter_env {
    struct env_entry *entries;
    size_t n, cap;
};

struct filter_env *filter_env_new(void)
{
    return calloc(1, sizeof(struct filter_env));
}

void filter_env_free(struct filter_env *env)
{
    if (!env)
        return;
    for (size_t i = 0; i < env->n; i++) {
        if (env->entries[i].release)
            env->entries[i].release(env->entries[i].res);
        free(env->entries[i].key);
    }
    free(env->entries);
    free(env);
}

enum vc_status
filter_env_get(struct filter_env *env, const char *key,
               enum vc_status (*load)(const void *arg, void **res, struct vc_err *err),
               void (*release)(void *res), const void *arg, void **out, struct vc_err *err)
{
    for (size_t i = 0; i < env->n; i++) {
        if (strcmp(env->entries[i].key, key) == 0) {
            *out = env->entries[i].res;
            return VC_OK;
        }
    }
    struct env_entry *grown = vc_grow_array(env->entries, &env->cap, env->n + 1, sizeof *grown, 4);
    if (!grown)
        return vc_err_oom(err);
    env->entries = grown;
    char *k = vc_strdup(key);
    if (!k)
        return vc_err_oom(err);
    void *res = NULL;
    enum vc_status rc = load(arg, &res, err);
    if (rc < 0) {
        free(k);
        return rc;
    }
    env->entries[env->n++] = (struct env_entry){ k, res, release };
    *out = res;
    return VC_OK;
}
