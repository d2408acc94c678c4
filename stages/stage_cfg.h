/* stage_cfg: typed, checked reads of a stage's (or source's) JSON params.
 * Every spec error names where it is ("stage 'reshard'", "source 'laion'")
 * and the key, so a user can fix the spec from the message alone.  All of
 * these fail with VC_EUSAGE bad_spec. */
#ifndef VC_STAGES_STAGE_CFG_H
#define VC_STAGES_STAGE_CFG_H

#include <stdbool.h>
#include <stdint.h>

#include "core/vc_err.h"

struct cJSON;

/* cfg must be an object whose keys are all in `allowed` (NULL-terminated). */
enum vc_status stage_cfg_check_keys(const struct cJSON *cfg, const char *where,
                                    const char *const *allowed, struct vc_err *err);
/* An integer in [min, max] and below 2^53 (where JSON numbers stop being
 * exact); `dflt` when the key is absent or null. */
enum vc_status stage_cfg_u64(const struct cJSON *cfg, const char *where, const char *key,
                             uint64_t dflt, uint64_t min, uint64_t max, uint64_t *out,
                             struct vc_err *err);
enum vc_status stage_cfg_double(const struct cJSON *cfg, const char *where, const char *key,
                                double dflt, double min, double max, double *out,
                                struct vc_err *err);
enum vc_status stage_cfg_bool(const struct cJSON *cfg, const char *where, const char *key,
                              bool dflt, bool *out, struct vc_err *err);
/* *out is borrowed from cfg (or is dflt, which may be NULL). */
enum vc_status stage_cfg_str(const struct cJSON *cfg, const char *where, const char *key,
                             const char *dflt, const char **out, struct vc_err *err);
/* One of `names` (NULL-terminated); *out is its index, dflt when absent. */
enum vc_status stage_cfg_enum(const struct cJSON *cfg, const char *where, const char *key,
                              const char *const *names, int dflt, int *out, struct vc_err *err);

#endif
