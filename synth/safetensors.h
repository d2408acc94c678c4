/* safetensors: validating, mmap-based reader of .safetensors files and of
 * sharded checkpoints (model.safetensors.index.json + shards).
 *
 * Every header field is checked before use, as GGUF loaders do: header
 * length within the file and below ST_MAX_HEADER_BYTES, valid JSON, known
 * dtypes, shapes whose element count times dtype size equals the offset
 * span (overflow-checked), offsets inside the data area, no two tensors
 * overlapping.  A malformed file is a clear error, never a crash. */
#ifndef VC_SYNTH_SAFETENSORS_H
#define VC_SYNTH_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "core/vc_err.h"

enum st_dtype {
    ST_F32 = 0,
    ST_F16,
    ST_BF16,
    ST_F64,
    ST_I64,
    ST_I32,
    ST_I16,
    ST_I8,
    ST_U8,
    ST_BOOL,
};
size_t st_dtype_size(enum st_dtype t);
const char *st_dtype_name(enum st_dtype t);

enum { ST_MAX_DIMS = 8 };
/* 100 MB: the format's own recommended cap on the JSON header. */
#define ST_MAX_HEADER_BYTES (100u << 20)

struct st_tensor {
    const char *name; /* borrowed until the file/set is closed */
    enum st_dtype dtype;
    int n_dims;
    int64_t shape[ST_MAX_DIMS];
    int64_t n_elems;
    const void *data; /* mmapped, read-only; borrowed until close */
    size_t n_bytes;
};

struct st_file;
/* Owned: st_file_close. */
enum vc_status st_file_open(const char *path, struct st_file **out, struct vc_err *err);
/* Same validation over a memory buffer (the fuzz target uses it); the
 * buffer must outlive the st_file. */
enum vc_status st_file_open_mem(const void *data, size_t size, const char *label,
                                struct st_file **out, struct vc_err *err);
void st_file_close(struct st_file *f);
size_t st_file_count(const struct st_file *f);
const struct st_tensor *st_file_at(const struct st_file *f, size_t i);
/* NULL when absent; borrowed until close. */
const struct st_tensor *st_file_find(const struct st_file *f, const char *name);

/* A checkpoint folder: model.safetensors, or the index and every shard it
 * names (a missing shard, a tensor missing from its shard, or a tensor
 * listed in two shards is an error). */
struct st_set;
enum vc_status st_set_open(const char *dir, struct st_set **out, struct vc_err *err);
/* A set of one file at an arbitrary path (e.g. a converted-weights cache). */
enum vc_status st_set_open_file(const char *path, struct st_set **out, struct vc_err *err);
void st_set_close(struct st_set *s);
const struct st_tensor *st_set_find(const struct st_set *s, const char *name);
size_t st_set_count(const struct st_set *s);
const struct st_tensor *st_set_at(const struct st_set *s, size_t i);

/* Tells the kernel that t's mmapped pages will not be read again (after a
 * tensor was converted into an owned copy), so they leave the resident set:
 * a float32 checkpoint converted at load never has all its pages resident
 * at once.  Touching the tensor later re-reads it from the file. */
void st_set_drop_pages(const struct st_set *s, const struct st_tensor *t);

/* Exact widening and round-to-nearest-even narrowing (NaN kept). */
float st_bf16_to_f32(uint16_t h);
float st_f16_to_f32(uint16_t h);
uint16_t st_f32_to_bf16(float f);
uint16_t st_f32_to_f16(float f);

/* Element i of a tensor of any float dtype as float (BF16/F16 widened exactly). */
float st_get_f32(const struct st_tensor *t, int64_t i);

#endif
