/* safetensors: parses and validates .safetensors headers and sharded
 * checkpoint indexes, and hands out read-only views into the mmapped data.
 *
 * Validation follows the reference Rust reader: the tensors must tile the
 * data area exactly (sorted by offset, each starting where the previous one
 * ended, the last one ending at the end of the file), so overlaps, gaps and
 * trailing garbage are all errors.  Every number read from JSON is checked
 * to be a non-negative integer below 2^53 (where doubles stop being exact)
 * before it is used, and every product goes through vc_mul_ok.  This module
 * never writes files and never interprets tensor contents beyond
 * st_get_f32. */
#include "safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/vc_fs.h"
#include "core/vc_mem.h"

/* Doubles represent every integer up to 2^53 exactly; JSON numbers above
 * that cannot be trusted as offsets or dimensions. */
#define ST_MAX_JSON_INT 9007199254740992.0
/* The index names every tensor once; the 8B index is ~60 KB.  64 MB is
 * far beyond any real checkpoint and bounds what a hostile index costs. */
#define ST_MAX_INDEX_BYTES (64u << 20)
/* More shards than this is not a checkpoint (the largest published models
 * have a few hundred). */
#define ST_MAX_SHARDS 4096

struct st_file {
    const unsigned char *base; /* whole file (mapped or borrowed) */
    size_t size;
    bool mapped;
    struct st_tensor *tensors; /* sorted by name */
    size_t n;
    char *names; /* all names, NUL-separated; tensors[i].name points here */
};

struct st_set {
    struct st_file **files;
    size_t n_files;
    const struct st_tensor **by_name; /* all tensors of all files, sorted by name */
    size_t n;
};

static const struct {
    const char *name;
    enum st_dtype dtype;
    size_t size;
} st_dtypes[] = {
    { "F32", ST_F32, 4 }, { "F16", ST_F16, 2 },   { "BF16", ST_BF16, 2 }, { "F64", ST_F64, 8 },
    { "I64", ST_I64, 8 }, { "I32", ST_I32, 4 },   { "I16", ST_I16, 2 },   { "I8", ST_I8, 1 },
    { "U8", ST_U8, 1 },   { "BOOL", ST_BOOL, 1 },
};
enum { ST_N_DTYPES = sizeof st_dtypes / sizeof st_dtypes[0] };

size_t st_dtype_size(enum st_dtype t)
{
    for (size_t i = 0; i < ST_N_DTYPES; i++)
        if (st_dtypes[i].dtype == t)
            return st_dtypes[i].size;
    return 0;
}

const char *st_dtype_name(enum st_dtype t)
{
    for (size_t i = 0; i < ST_N_DTYPES; i++)
        if (st_dtypes[i].dtype == t)
            return st_dtypes[i].name;
    return "unknown";
}

static bool st_dtype_parse(const char *s, enum st_dtype *out)
{
    for (size_t i = 0; i < ST_N_DTYPES; i++)
        if (strcmp(st_dtypes[i].name, s) == 0) {
            *out = st_dtypes[i].dtype;
            return true;
        }
    return false;
}

static bool st_json_uint(const cJSON *item, uint64_t *out)
{
    if (!cJSON_IsNumber(item))
        return false;
    double v = item->valuedouble;
    if (!(v >= 0.0) || v > ST_MAX_JSON_INT || v != floor(v))
        return false;
    *out = (uint64_t)v;
    return true;
}

static int st_cmp_tensor_name(const void *a, const void *b)
{
    return strcmp(((const struct st_tensor *)a)->name, ((const struct st_tensor *)b)->name);
}

static int st_cmp_tensor_ptr_name(const void *a, const void *b)
{
    return strcmp((*(const struct st_tensor *const *)a)->name,
                  (*(const struct st_tensor *const *)b)->name);
}

/* Sort key for the tiling check: begin offset (then end, so an empty
 * tensor sorts before a non-empty one at the same place). */
struct st_span {
    uint64_t begin, end;
    size_t idx;
};

static int st_cmp_span(const void *a, const void *b)
{
    const struct st_span *x = a, *y = b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end)
        return x->end < y->end ? -1 : 1;
    return 0;
}

/* "<file>: tensor '<name>'<what>" as a bad_checkpoint usage error. */
static enum vc_status st_bad(struct vc_err *err, const char *label, const char *name,
                             const char *what)
{
    return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_checkpoint, "%s: tensor '%.200s'%s", label,
                      name, what);
}

/* Fills t from one header entry; `data` is the start of the data area. */
static enum vc_status st_parse_entry(const cJSON *e, const char *label, const unsigned char *data,
                                     uint64_t data_size, struct st_tensor *t, struct vc_err *err)
{
    const char *name = e->string;
    if (!cJSON_IsObject(e))
        return st_bad(err, label, name, " is not an object");
    const cJSON *dt = NULL, *shape = NULL, *offs = NULL;
    for (const cJSON *k = e->child; k; k = k->next) {
        if (strcmp(k->string, "dtype") == 0 && !dt)
            dt = k;
        else if (strcmp(k->string, "shape") == 0 && !shape)
            shape = k;
        else if (strcmp(k->string, "data_offsets") == 0 && !offs)
            offs = k;
        else
            return st_bad(err, label, name, " has an unknown or repeated field");
    }
    if (!dt || !shape || !offs)
        return st_bad(err, label, name, " lacks dtype, shape or data_offsets");
    if (!cJSON_IsString(dt) || !st_dtype_parse(dt->valuestring, &t->dtype))
        return vc_err_set(err, VC_EUSAGE, VC_REASON_unsupported_format,
                          "%s: tensor '%.200s' has unknown dtype '%.32s'", label, name,
                          cJSON_IsString(dt) ? dt->valuestring : "(not a string)");
    if (!cJSON_IsArray(shape))
        return st_bad(err, label, name, ": shape is not an array");
    int nd = cJSON_GetArraySize(shape);
    if (nd > ST_MAX_DIMS)
        return st_bad(err, label, name, " has more than 8 dimensions");
    t->n_dims = nd;
    size_t elems = 1;
    int d = 0;
    for (const cJSON *s = shape->child; s; s = s->next, d++) {
        uint64_t v;
        if (!st_json_uint(s, &v))
            return st_bad(err, label, name, ": a dimension is not a non-negative integer");
        t->shape[d] = (int64_t)v;
        if (!vc_mul_ok(elems, (size_t)v, &elems) || elems > (size_t)INT64_MAX)
            return st_bad(err, label, name, " has absurd dimensions (element count overflows)");
    }
    for (; d < ST_MAX_DIMS; d++)
        t->shape[d] = 0;
    t->n_elems = (int64_t)elems;
    size_t bytes;
    if (!vc_mul_ok(elems, st_dtype_size(t->dtype), &bytes))
        return st_bad(err, label, name, " has absurd dimensions (byte count overflows)");
    uint64_t b, en;
    if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2 || !st_json_uint(offs->child, &b) ||
        !st_json_uint(offs->child->next, &en))
        return st_bad(err, label, name, ": data_offsets is not two non-negative integers");
    if (b > en)
        return st_bad(err, label, name, ": data_offsets begin after end");
    if (en > data_size)
        return st_bad(err, label, name, ": data_offsets out of range (past the end of file)");
    if (en - b != bytes)
        return st_bad(err, label, name,
                      ": byte span does not match shape x dtype size (shape/size "
                      "mismatch)");
    t->data = data + b;
    t->n_bytes = bytes;
    return VC_OK;
}

static enum vc_status st_check_metadata(const cJSON *m, const char *label, struct vc_err *err)
{
    if (!cJSON_IsObject(m))
        return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_checkpoint,
                          "%s: __metadata__ is not an object", label);
    for (const cJSON *k = m->child; k; k = k->next)
        if (!cJSON_IsString(k))
            return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_checkpoint,
                              "%s: __metadata__ value '%.100s' is not a string", label, k->string);
    return VC_OK;
}

/* Parses and validates the header of the file held in f->base/f->size. */
static enum vc_status st_parse(struct st_file *f, const char *label, struct vc_err *err)
{
    if (f->size < 8)
        return vc_err_set(err, VC_EUSAGE, VC_REASON_truncated,
                          "%s: truncated: %zu bytes, not even the 8-byte header length", label,
                          f->size);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = (hlen << 8) | f->base[i];
    if (hlen > ST_MAX_HEADER_BYTES)
        return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_checkpoint,
                          "%s: header length %llu is over the 100 MB limit", label,
                          (unsigned long long)hlen);
    if (hlen > f->size - 8)
        return vc_err_set(err, VC_EUSAGE, VC_REASON_truncated,
                          "%s: truncated: header length %llu runs past the end of the %zu-byte "
                          "file",
                          label, (unsigned long long)hlen, f->size);
    const char *hdr = (const char *)f->base + 8;
    if (hlen < 2 || hdr[0] != '{')
        return vc_err_set(err, VC_EUSAGE, VC_REASON_json_invalid, "%s: header is not a JSON object",
                          label);
    if (memchr(hdr, '\0', hlen))
        return vc_err_set(err, VC_EUSAGE, VC_REASON_json_invalid, "%s: header contains a NUL byte",
                          label);
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(hdr, hlen, &end, false);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return vc_err_set(err, VC_EUSAGE, VC_REASON_json_invalid, "%s: header is not valid JSON",
                          label);
    }
    for (const char *p = end; p < hdr + hlen; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            cJSON_Delete(root);
            return vc_err_set(err, VC_EUSAGE, VC_REASON_json_invalid,
                              "%s: header has bytes after the JSON object", label);
        }

    const unsigned char *data = f->base + 8 + hlen;
    uint64_t data_size = f->size - 8 - hlen;
    size_t n = 0, names_len = 0;
    enum vc_status rc = VC_OK;
    for (const cJSON *e = root->child; e; e = e->next) {
        if (strcmp(e->string, "__metadata__") == 0)
            continue;
        n++;
        names_len += strlen(e->string) + 1;
    }
    struct st_span *spans = vc_malloc_array(n ? n : 1, sizeof *spans);
    f->tensors = vc_malloc_array(n ? n : 1, sizeof *f->tensors);
    f->names = malloc(names_len ? names_len : 1);
    if (!spans || !f->tensors || !f->names) {
        rc = vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "%s: no memory for the header",
                        label);
        goto done;
    }
    size_t i = 0, pos = 0;
    bool seen_meta = false;
    for (const cJSON *e = root->child; e; e = e->next) {
        if (strcmp(e->string, "__metadata__") == 0) {
            if (seen_meta) {
                rc = vc_err_set(err, VC_EUSAGE, VC_REASON_bad_checkpoint,
                                "%s: __metadata__ appears twice", label);
                goto done;
            }
            seen_meta = true;
            rc = st_check_metadata(e, label, err);
            if (rc < 0)
                goto done;
            continue;
        }
        struct st_tensor *t = &f->tensors[i];
        size_t len = strlen(e->string) + 1;
        memcpy(f->names + pos, e->string, len);
        t->name = f->names + pos;
        pos += len;
        rc = st_parse_entry(e, label, data, data_size, t, err);
        if (rc < 0)
            goto done;
        i++;
    }
    f->n = n;

    qsort(f->tensors, n, sizeof *f->tensors, st_cmp_tensor_name);
    for (size_t k = 1; k < n; k++)
        if (strcmp(f->tensors[k - 1].name, f->tensors[k].name) == 0) {
            rc = st_bad(err, label, f->tensors[k].name, " is defined twice");
            goto done;
        }
    for (size_t k = 0; k < n; k++) {
        spans[k].begin = (uint64_t)((const unsigned char *)f->tensors[k].data - data);
        spans[k].end = spans[k].begin + f->tensors[k].n_bytes;
        spans[k].idx = k;
    }
    qsort(spans, n, sizeof *spans, st_cmp_span);
    uint64_t expect = 0;
    for (size_t k = 0; k < n; k++) {
        const char *nm = f->tensors[spans[k].idx].name;
        if (spans[k].begin < expect) {
            rc = st_bad(err, label, nm, " overlaps the previous tensor's data");
            goto done;
        }
        if (spans[k].begin > expect) {
            rc = st_bad(err, label, nm, " starts after a gap in the data area");
            goto done;
        }
        expect = spans[k].end;
    }
    if (expect != data_size)
        rc = vc_err_set(err, VC_EUSAGE, VC_REASON_bad_checkpoint,
                        "%s: the tensors cover %llu of %llu data bytes (trailing bytes or "
                        "total size mismatch)",
                        label, (unsigned long long)expect, (unsigned long long)data_size);
done:
    free(spans);
    cJSON_Delete(root);
    return rc;
}

enum vc_status st_file_open_mem(const void *data, size_t size, const char *label,
                                struct st_file **out, struct vc_err *err)
{
    *out = NULL;
    struct st_file *f = calloc(1, sizeof *f);
    if (!f)
        return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "%s: no memory", label);
    f->base = data;
    f->size = size;
    enum vc_status rc = st_parse(f, label, err);
    if (rc < 0) {
        st_file_close(f);
        return rc;
    }
    *out = f;
    return VC_OK;
}

enum vc_status st_file_open(const char *path, struct st_file **out, struct vc_err *err)
{
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return vc_err_set(err, VC_EUSAGE, VC_REASON_io_error, "cannot open '%s': %s", path,
                          strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return vc_err_set(err, VC_EUSAGE, VC_REASON_not_a_file, "'%s' is not a regular file", path);
    }
    size_t size = (size_t)st.st_size;
    void *map = NULL;
    if (size > 0) {
        map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) {
            int e = errno;
            close(fd);
            return vc_err_set(err, VC_EFATAL, VC_REASON_io_error, "cannot mmap '%s': %s", path,
                              strerror(e));
        }
    }
    close(fd);
    struct st_file *f = calloc(1, sizeof *f);
    if (!f) {
        if (map)
            munmap(map, size);
        return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "no memory for '%s'", path);
    }
    f->base = map;
    f->size = size;
    f->mapped = map != NULL;
    enum vc_status rc = st_parse(f, path, err);
    if (rc < 0) {
        st_file_close(f);
        return rc;
    }
    *out = f;
    return VC_OK;
}

void st_file_close(struct st_file *f)
{
    if (!f)
        return;
    if (f->mapped)
        munmap((void *)f->base, f->size);
    free(f->tensors);
    free(f->names);
    free(f);
}

size_t st_file_count(const struct st_file *f)
{
    return f->n;
}

const struct st_tensor *st_file_at(const struct st_file *f, size_t i)
{
    return i < f->n ? &f->tensors[i] : NULL;
}

const struct st_tensor *st_file_find(const struct st_file *f, const char *name)
{
    struct st_tensor key = { .name = name };
    return bsearch(&key, f->tensors, f->n, sizeof *f->tensors, st_cmp_tensor_name);
}

/* ---- sets ---------------------------------------------------------------- */

static enum vc_status st_set_add_file(struct st_set *s, struct st_file *f)
{
    struct st_file **files = vc_realloc_array(s->files, s->n_files + 1, sizeof *files);
    if (!files)
        return VC_EFATAL;
    s->files = files;
    s->files[s->n_files++] = f;
    return VC_OK;
}

/* Builds the merged name table; a name defined in two files is an error. */
static enum vc_status st_set_index(struct st_set *s, const char *dir, struct vc_err *err)
{
    size_t n = 0;
    for (size_t i = 0; i < s->n_files; i++)
        n += s->files[i]->n;
    s->by_name = vc_malloc_array(n ? n : 1, sizeof *s->by_name);
    if (!s->by_name)
        return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "%s: no memory", dir);
    size_t k = 0;
    for (size_t i = 0; i < s->n_files; i++)
        for (size_t j = 0; j < s->files[i]->n; j++)
            s->by_name[k++] = &s->files[i]->tensors[j];
    s->n = n;
    qsort(s->by_name, n, sizeof *s->by_name, st_cmp_tensor_ptr_name);
    for (size_t i = 1; i < n; i++)
        if (strcmp(s->by_name[i - 1]->name, s->by_name[i]->name) == 0)
            return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_checkpoint,
                              "%s: tensor '%.200s' is stored in two shards", dir,
                              s->by_name[i]->name);
    return VC_OK;
}

static bool st_shard_name_ok(const char *s)
{
    return s[0] != '\0' && s[0] != '.' && !strchr(s, '/') && strlen(s) < 256;
}

static int st_cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static enum vc_status st_open_in_dir(const char *dir, const char *name, struct st_file **out,
                                     struct vc_err *err)
{
    char path[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, name) >= sizeof path)
        return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_checkpoint, "path too long: %s/%s", dir,
                          name);
    return st_file_open(path, out, err);
}

/* Opens every shard the index names and checks the index against them. */
static enum vc_status st_set_open_index(struct st_set *s, const char *dir, const char *json,
                                        struct vc_err *err)
{
    const char *label = "model.safetensors.index.json";
    cJSON *root = cJSON_Parse(json);
    const cJSON *map = root ? cJSON_GetObjectItemCaseSensitive(root, "weight_map") : NULL;
    const char **shards = NULL, **keys = NULL;
    enum vc_status rc = VC_OK;
    if (!cJSON_IsObject(map)) {
        rc = vc_err_set(err, VC_EUSAGE, VC_REASON_bad_checkpoint,
                        "%s/%s: not JSON with a \"weight_map\" object", dir, label);
        goto done;
    }
    size_t n_entries = (size_t)cJSON_GetArraySize(map), n_shards = 0;
    shards = vc_malloc_array(n_entries ? n_entries : 1, sizeof *shards);
    keys = vc_malloc_array(n_entries ? n_entries : 1, sizeof *keys);
    if (!shards || !keys) {
        rc = vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "%s: no memory", dir);
        goto done;
    }
    for (const cJSON *e = map->child; e; e = e->next) {
        if (!cJSON_IsString(e) || !st_shard_name_ok(e->valuestring)) {
            rc = vc_err_set(err, VC_EUSAGE, VC_REASON_bad_checkpoint,
                            "%s/%s: tensor '%.200s' maps to an invalid shard file name", dir, label,
                            e->string);
            goto done;
        }
        shards[n_shards++] = e->valuestring;
    }
    qsort(shards, n_shards, sizeof *shards, st_cmp_str);
    size_t uniq = 0;
    for (size_t i = 0; i < n_shards; i++)
        if (uniq == 0 || strcmp(shards[uniq - 1], shards[i]) != 0)
            shards[uniq++] = shards[i];
    if (uniq == 0 || uniq > ST_MAX_SHARDS) {
        rc = vc_err_set(err, VC_EUSAGE, VC_REASON_bad_checkpoint, "%s/%s: names %zu shards", dir,
                        label, uniq);
        goto done;
    }
    for (size_t i = 0; i < uniq; i++) {
        struct st_file *f;
        rc = st_open_in_dir(dir, shards[i], &f, err);
        if (rc < 0) {
            if (err && err->reason == VC_REASON_io_error)
                vc_err_set(err, VC_EUSAGE, VC_REASON_bad_checkpoint,
                           "%s: shard '%.200s' named by %s is missing or unreadable", dir,
                           shards[i], label);
            goto done;
        }
        if (st_set_add_file(s, f) < 0) {
            st_file_close(f);
            rc = vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "%s: no memory", dir);
            goto done;
        }
    }
    rc = st_set_index(s, dir, err);
    if (rc < 0)
        goto done;
    /* The index and the shards must agree exactly: no key twice, every
     * listed tensor in its shard, every stored tensor listed. */
    size_t n_keys = 0;
    for (const cJSON *e = map->child; e; e = e->next)
        keys[n_keys++] = e->string;
    qsort(keys, n_keys, sizeof *keys, st_cmp_str);
    for (size_t i = 1; i < n_keys; i++)
        if (strcmp(keys[i - 1], keys[i]) == 0) {
            rc = vc_err_set(err, VC_EUSAGE, VC_REASON_bad_checkpoint,
                            "%s: wrong index: tensor '%.200s' is listed twice", dir, keys[i]);
            goto done;
        }
    size_t listed = 0;
    for (const cJSON *e = map->child; e; e = e->next, listed++) {
        const struct st_tensor *t = st_set_find(s, e->string);
        const struct st_file *in = NULL;
        for (size_t i = 0; t && i < s->n_files && !in; i++)
            if (strcmp(shards[i], e->valuestring) == 0)
                in = s->files[i];
        if (!t || !in || st_file_find(in, e->string) != t) {
            rc = vc_err_set(err, VC_EUSAGE, VC_REASON_bad_checkpoint,
                            "%s: wrong index: tensor '%.200s' is not in shard '%.200s'", dir,
                            e->string, e->valuestring);
            goto done;
        }
    }
    if (listed != s->n) {
        rc = vc_err_set(err, VC_EUSAGE, VC_REASON_bad_checkpoint,
                        "%s: wrong index: it lists %zu tensors, the shards hold %zu", dir, listed,
                        s->n);
        goto done;
    }
    /* metadata.total_size is not checked: transformers never reads it, and
     * indexes written by other tools count other things (file sizes with
     * their headers, shared tensors once or twice); the shards' own
     * headers and sizes are what st_file_open verifies. */
done:
    free(shards);
    free(keys);
    cJSON_Delete(root);
    return rc;
}

enum vc_status st_set_open(const char *dir, struct st_set **out, struct vc_err *err)
{
    *out = NULL;
    struct st_set *s = calloc(1, sizeof *s);
    if (!s)
        return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "%s: no memory", dir);
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    enum vc_status rc;
    if (vc_fs_exists(path)) {
        char *json = NULL;
        size_t len;
        rc = vc_fs_read_file(path, ST_MAX_INDEX_BYTES, &json, &len, err);
        if (rc >= 0)
            rc = st_set_open_index(s, dir, json, err);
        free(json);
    } else {
        struct st_file *f;
        rc = st_open_in_dir(dir, "model.safetensors", &f, err);
        if (rc < 0 && err && err->reason == VC_REASON_io_error)
            vc_err_set(err, VC_EUSAGE, VC_REASON_bad_checkpoint,
                       "%s: no model.safetensors and no model.safetensors.index.json", dir);
        if (rc >= 0 && st_set_add_file(s, f) < 0) {
            st_file_close(f);
            rc = vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "%s: no memory", dir);
        }
        if (rc >= 0)
            rc = st_set_index(s, dir, err);
    }
    if (rc < 0) {
        st_set_close(s);
        return rc;
    }
    *out = s;
    return VC_OK;
}

enum vc_status st_set_open_file(const char *path, struct st_set **out, struct vc_err *err)
{
    *out = NULL;
    struct st_set *s = calloc(1, sizeof *s);
    if (!s)
        return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "%s: no memory", path);
    struct st_file *f;
    enum vc_status rc = st_file_open(path, &f, err);
    if (rc >= 0 && st_set_add_file(s, f) < 0) {
        st_file_close(f);
        rc = vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "%s: no memory", path);
    }
    if (rc >= 0)
        rc = st_set_index(s, path, err);
    if (rc < 0) {
        st_set_close(s);
        return rc;
    }
    *out = s;
    return VC_OK;
}

void st_set_close(struct st_set *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n_files; i++)
        st_file_close(s->files[i]);
    free(s->files);
    free(s->by_name);
    free(s);
}

const struct st_tensor *st_set_find(const struct st_set *s, const char *name)
{
    struct st_tensor key = { .name = name };
    const struct st_tensor *kp = &key;
    const struct st_tensor *const *hit =
        bsearch(&kp, s->by_name, s->n, sizeof *s->by_name, st_cmp_tensor_ptr_name);
    return hit ? *hit : NULL;
}

size_t st_set_count(const struct st_set *s)
{
    return s->n;
}

const struct st_tensor *st_set_at(const struct st_set *s, size_t i)
{
    return i < s->n ? s->by_name[i] : NULL;
}

void st_set_drop_pages(const struct st_set *s, const struct st_tensor *t)
{
    long page = sysconf(_SC_PAGESIZE);
    if (page <= 0 || t->n_bytes == 0)
        return;
    for (size_t i = 0; i < s->n_files; i++) {
        const struct st_file *f = s->files[i];
        const unsigned char *p = t->data;
        if (!f->mapped || p < f->base || p >= f->base + f->size)
            continue;
        /* Only pages wholly inside the tensor: neighbours may be in use. */
        uintptr_t lo = ((uintptr_t)p + (uintptr_t)page - 1) & ~((uintptr_t)page - 1);
        uintptr_t hi = ((uintptr_t)p + t->n_bytes) & ~((uintptr_t)page - 1);
        if (hi > lo)
            madvise((void *)lo, hi - lo, MADV_DONTNEED);
        return;
    }
}

/* ---- element access ------------------------------------------------------- */

float st_bf16_to_f32(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

float st_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu, man = h & 0x3ffu, u;
    if (exp == 0x1f) {
        u = sign | 0x7f800000u | (man << 13);
    } else if (exp != 0) {
        u = sign | ((exp + 112u) << 23) | (man << 13);
    } else if (man == 0) {
        u = sign;
    } else {
        /* Subnormal half: normalise the mantissa into a float exponent. */
        int e = -1;
        do {
            man <<= 1;
            e++;
        } while (!(man & 0x400u));
        u = sign | ((uint32_t)(112 - e) << 23) | ((man & 0x3ffu) << 13);
    }
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

uint16_t st_f32_to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((u >> 16) | 0x40u); /* NaN stays a quiet NaN */
    /* Round to nearest, ties to even: torch's and numpy-bf16's rounding. */
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

uint16_t st_f32_to_f16(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    const uint32_t sign = (u >> 16) & 0x8000u, a = u & 0x7fffffffu;
    if (a > 0x7f800000u)
        return (uint16_t)(sign | 0x7e00u);
    if (a >= 0x477ff000u) /* 65520 and up round past the largest half */
        return (uint16_t)(sign | 0x7c00u);
    if (a < 0x38800000u) {
        /* Subnormal half: units of 2^-24; the scaling is exact and lrintf
         * rounds to nearest even. */
        float v;
        memcpy(&v, &a, sizeof v);
        return (uint16_t)(sign | (uint32_t)lrintf(v * 16777216.0f));
    }
    /* Round to nearest even at bit 13, then rebias the exponent 127 -> 15. */
    const uint32_t r = a + 0xfffu + ((a >> 13) & 1u) - 0x38000000u;
    return (uint16_t)(sign | (r >> 13));
}

float st_get_f32(const struct st_tensor *t, int64_t i)
{
    const unsigned char *p = t->data;
    size_t off = (size_t)i * st_dtype_size(t->dtype);
    switch (t->dtype) {
    case ST_F32: {
        float v;
        memcpy(&v, p + off, sizeof v);
        return v;
    }
    case ST_F64: {
        double v;
        memcpy(&v, p + off, sizeof v);
        return (float)v;
    }
    case ST_BF16:
    case ST_F16: {
        uint16_t h;
        memcpy(&h, p + off, sizeof h);
        return t->dtype == ST_BF16 ? st_bf16_to_f32(h) : st_f16_to_f32(h);
    }
    default:
        return NAN;
    }
}
