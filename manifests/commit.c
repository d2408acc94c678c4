/* commit: markers through vc_fs only, so every one of them gets the same
 * temp-fsync-rename-fsync treatment. */
#include "commit.h"

#include "core/vc_utf8.h"
#include "core/vc_fs.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

enum vc_status commit_write_json(const char *path, const cJSON *doc, bool pretty,
                                 struct vc_err *err)
{
    char *s = vc_utf8_json_print(doc, pretty);
    if (!s)
        return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "%s: out of memory", path);
    size_t n = strlen(s);
    char *t = realloc(s, n + 2);
    if (!t) {
        free(s);
        return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "%s: out of memory", path);
    }
    t[n] = '\n';
    enum vc_status rc = vc_fs_write_atomic(path, t, n + 1, err);
    free(t);
    return rc;
}

enum vc_status commit_read_json(const char *path, cJSON **out, struct vc_err *err)
{
    if (!vc_fs_exists(path))
        return VC_EOF;
    char *text;
    size_t n;
    VC_TRY(vc_fs_read_file(path, COMMIT_MAX_BYTES, &text, &n, err));
    *out = cJSON_ParseWithLength(text, n);
    free(text);
    if (!*out)
        return vc_err_set(err, VC_ESAMPLE, VC_REASON_json_invalid, "%s: not JSON", path);
    return VC_OK;
}

bool commit_valid(const char *path, const char *hash, cJSON **out)
{
    struct vc_err err;
    cJSON *doc = NULL;
    if (commit_read_json(path, &doc, &err) != VC_OK)
        return false;
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(doc, "spec_hash");
    bool ok = cJSON_IsString(h) && strcmp(h->valuestring, hash) == 0;
    if (ok && out)
        *out = doc;
    else
        cJSON_Delete(doc);
    return ok;
}
