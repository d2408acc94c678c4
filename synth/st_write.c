/* st_write: builds a safetensors file in memory and writes it atomically.
 *
 * Owns copies of every tensor added.  Never writes a partial file under
 * the final name (vc_fs_commit_rename).  Sizes are overflow-checked; the
 * JSON header is built with cJSON so names are escaped correctly. */
#include "st_write.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/vc_fs.h"
#include "core/vc_mem.h"

struct st_wtensor {
    char *name;
    enum st_dtype dtype;
    int n_dims;
    int64_t shape[ST_MAX_DIMS];
    void *data;
    size_t n_bytes;
};

struct st_writer {
    struct st_wtensor *t;
    size_t n, cap;
};

enum vc_status st_writer_new(struct st_writer **out, struct vc_err *err)
{
    *out = calloc(1, sizeof **out);
    return *out ? VC_OK : vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "st_writer");
}

void st_writer_free(struct st_writer *w)
{
    if (!w)
        return;
    for (size_t i = 0; i < w->n; i++) {
        free(w->t[i].name);
        free(w->t[i].data);
    }
    free(w->t);
    free(w);
}

enum vc_status st_writer_add(struct st_writer *w, const char *name, enum st_dtype dtype,
                             const int64_t *shape, int n_dims, const void *data, struct vc_err *err)
{
    if (!name || !*name || n_dims < 0 || n_dims > ST_MAX_DIMS || st_dtype_size(dtype) == 0)
        return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec, "st_writer: bad tensor '%s'",
                          name ? name : "");
    for (size_t i = 0; i < w->n; i++)
        if (strcmp(w->t[i].name, name) == 0)
            return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec,
                              "st_writer: tensor '%s' added twice", name);
    size_t bytes = st_dtype_size(dtype);
    for (int d = 0; d < n_dims; d++)
        if (shape[d] < 0 || !vc_mul_ok(bytes, (size_t)shape[d], &bytes))
            return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec,
                              "st_writer: tensor '%s' has a bad shape", name);
    struct st_wtensor *grown = vc_grow_array(w->t, &w->cap, w->n + 1, sizeof *grown, 16);
    if (!grown)
        return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "st_writer");
    w->t = grown;
    struct st_wtensor *t = &w->t[w->n];
    memset(t, 0, sizeof *t);
    t->name = vc_strdup(name);
    t->data = malloc(bytes ? bytes : 1);
    if (!t->name || !t->data) {
        free(t->name);
        free(t->data);
        return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "st_writer: %s", name);
    }
    if (bytes)
        memcpy(t->data, data, bytes);
    t->dtype = dtype;
    t->n_dims = n_dims;
    for (int d = 0; d < n_dims; d++)
        t->shape[d] = shape[d];
    t->n_bytes = bytes;
    w->n++;
    return VC_OK;
}

/* The JSON header, unpadded; owned (cJSON's allocator = malloc). */
static char *header_json(const struct st_writer *w)
{
    cJSON *root = cJSON_CreateObject(), *meta = cJSON_AddObjectToObject(root, "__metadata__");
    bool ok = meta && cJSON_AddStringToObject(meta, "format", "pt");
    size_t off = 0;
    for (size_t i = 0; ok && i < w->n; i++) {
        const struct st_wtensor *t = &w->t[i];
        cJSON *o = cJSON_AddObjectToObject(root, t->name);
        cJSON *shape = o ? cJSON_AddArrayToObject(o, "shape") : NULL;
        cJSON *offs = o ? cJSON_AddArrayToObject(o, "data_offsets") : NULL;
        ok = shape && offs && cJSON_AddStringToObject(o, "dtype", st_dtype_name(t->dtype));
        for (int d = 0; ok && d < t->n_dims; d++)
            ok = cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)t->shape[d]));
        ok = ok && cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)off)) &&
             cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)(off + t->n_bytes)));
        off += t->n_bytes;
    }
    char *s = ok ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    return s;
}

enum vc_status st_writer_save(const struct st_writer *w, const char *path, struct vc_err *err)
{
    char *json = header_json(w);
    if (!json)
        return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "st_writer: header");
    size_t hlen = strlen(json), padded = (hlen + 7) & ~(size_t)7;
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) {
        free(json);
        return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec, "%s: path too long", path);
    }
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        free(json);
        return vc_err_io(err, tmp);
    }
    bool ok = true;
    unsigned char len8[8];
    for (int i = 0; i < 8; i++)
        len8[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    ok = ok && fwrite(len8, 1, 8, f) == 8 && fwrite(json, 1, hlen, f) == hlen;
    for (size_t i = hlen; ok && i < padded; i++)
        ok = fputc(' ', f) != EOF;
    for (size_t i = 0; ok && i < w->n; i++)
        ok = fwrite(w->t[i].data, 1, w->t[i].n_bytes, f) == w->t[i].n_bytes;
    enum vc_status rc = ok ? VC_OK : vc_err_io(err, tmp);
    free(json);
    rc = vc_fs_sync_close(f, tmp, true, rc, err);
    if (rc != VC_OK) {
        unlink(tmp);
        return rc;
    }
    return vc_fs_commit_rename(tmp, path, err);
}
