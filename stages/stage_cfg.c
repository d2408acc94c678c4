/* stage_cfg: checked param reads.  Numbers must be JSON numbers (no
 * strings that look like numbers): a spec is written by hand and a typo
 * should fail loudly, not be guessed at. */
#include "stage_cfg.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

static enum vc_status bad(struct vc_err *err, const char *where, const char *key, const char *what)
{
    return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec, "%s: key '%s': %s", where, key, what);
}

enum vc_status stage_cfg_check_keys(const cJSON *cfg, const char *where, const char *const *allowed,
                                    struct vc_err *err)
{
    if (!cfg)
        return VC_OK;
    if (!cJSON_IsObject(cfg))
        return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec, "%s: expected a JSON object", where);
    for (const cJSON *it = cfg->child; it; it = it->next) {
        bool ok = false;
        for (size_t i = 0; allowed && allowed[i]; i++)
            if (strcmp(it->string, allowed[i]) == 0)
                ok = true;
        if (!ok) {
            char known[512] = "";
            size_t n = 0;
            for (size_t i = 0; allowed && allowed[i] && n < sizeof known; i++)
                n += (size_t)snprintf(known + n, sizeof known - n, "%s%s", i ? ", " : "",
                                      allowed[i]);
            return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec,
                              "%s: unknown key '%s' (known: %s)", where, it->string, known);
        }
    }
    return VC_OK;
}

static const cJSON *get(const cJSON *cfg, const char *key)
{
    const cJSON *v = cfg ? cJSON_GetObjectItemCaseSensitive(cfg, key) : NULL;
    return cJSON_IsNull(v) ? NULL : v;
}

enum vc_status stage_cfg_u64(const cJSON *cfg, const char *where, const char *key, uint64_t dflt,
                             uint64_t min, uint64_t max, uint64_t *out, struct vc_err *err)
{
    const cJSON *v = get(cfg, key);
    if (!v) {
        *out = dflt;
        return VC_OK;
    }
    /* A JSON number reaches us as a double: from 2^53 on, neighbouring
     * integers read the same (9007199254740993 arrives as ...992), so a
     * seed there would silently be another seed. */
    double d = cJSON_IsNumber(v) ? v->valuedouble : NAN;
    if (!(d >= 0) || d != floor(d))
        return bad(err, where, key, "expected a non-negative integer");
    if (d >= 9007199254740992.0)
        return bad(err, where, key,
                   "must be below 2^53 (9007199254740992), where JSON numbers "
                   "stop being exact integers");
    if ((uint64_t)d < min || (uint64_t)d > max) {
        char msg[128];
        snprintf(msg, sizeof msg, "%.0f is outside [%llu, %llu]", d, (unsigned long long)min,
                 (unsigned long long)max);
        return bad(err, where, key, msg);
    }
    *out = (uint64_t)d;
    return VC_OK;
}

enum vc_status stage_cfg_double(const cJSON *cfg, const char *where, const char *key, double dflt,
                                double min, double max, double *out, struct vc_err *err)
{
    const cJSON *v = get(cfg, key);
    if (!v) {
        *out = dflt;
        return VC_OK;
    }
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
        return bad(err, where, key, "expected a number");
    if (v->valuedouble < min || v->valuedouble > max) {
        char msg[128];
        snprintf(msg, sizeof msg, "%g is outside [%g, %g]", v->valuedouble, min, max);
        return bad(err, where, key, msg);
    }
    *out = v->valuedouble;
    return VC_OK;
}

enum vc_status stage_cfg_bool(const cJSON *cfg, const char *where, const char *key, bool dflt,
                              bool *out, struct vc_err *err)
{
    const cJSON *v = get(cfg, key);
    if (!v) {
        *out = dflt;
        return VC_OK;
    }
    if (!cJSON_IsBool(v))
        return bad(err, where, key, "expected true or false");
    *out = cJSON_IsTrue(v);
    return VC_OK;
}

enum vc_status stage_cfg_str(const cJSON *cfg, const char *where, const char *key, const char *dflt,
                             const char **out, struct vc_err *err)
{
    const cJSON *v = get(cfg, key);
    if (!v) {
        *out = dflt;
        return VC_OK;
    }
    if (!cJSON_IsString(v) || !v->valuestring[0])
        return bad(err, where, key, "expected a non-empty string");
    *out = v->valuestring;
    return VC_OK;
}

enum vc_status stage_cfg_enum(const cJSON *cfg, const char *where, const char *key,
                              const char *const *names, int dflt, int *out, struct vc_err *err)
{
    const char *s;
    VC_TRY(stage_cfg_str(cfg, where, key, NULL, &s, err));
    if (!s) {
        *out = dflt;
        return VC_OK;
    }
    char known[256] = "";
    size_t n = 0;
    for (int i = 0; names[i]; i++) {
        if (strcmp(s, names[i]) == 0) {
            *out = i;
            return VC_OK;
        }
        if (n < sizeof known)
            n += (size_t)snprintf(known + n, sizeof known - n, "%s%s", i ? "|" : "", names[i]);
    }
    char msg[320];
    snprintf(msg, sizeof msg, "'%s' is not one of %s", s, known);
    return bad(err, where, key, msg);
}
