/* st_write: a small safetensors writer (the format of synth/safetensors.h),
 * for engine-cases dumps and tests: tensors are added one by one (copied),
 * then saved in one go, atomically (temp file, fsync, rename).
 *
 * The header is {"__metadata__": {"format": "pt"}, name: {dtype, shape,
 * data_offsets}, ...} in insertion order, space-padded so the data starts
 * at a multiple of 8; tensors are laid out densely in insertion order.
 * Names must be unique.  Everything is held in memory until st_writer_save:
 * meant for debug-sized outputs, not checkpoints. */
#ifndef VC_SYNTH_ST_WRITE_H
#define VC_SYNTH_ST_WRITE_H

#include <stddef.h>
#include <stdint.h>

#include "core/vc_err.h"
#include "synth/safetensors.h"

struct st_writer;

/* Owned: st_writer_free. */
enum vc_status st_writer_new(struct st_writer **out, struct vc_err *err);
void st_writer_free(struct st_writer *w);

/* Copies prod(shape) elements of `dtype` from data.  VC_EUSAGE for a
 * duplicate or empty name, more than ST_MAX_DIMS dims or a negative dim;
 * VC_EFATAL out_of_memory. */
enum vc_status st_writer_add(struct st_writer *w, const char *name, enum st_dtype dtype,
                             const int64_t *shape, int n_dims, const void *data,
                             struct vc_err *err);

/* Writes the file; VC_EFATAL io_error naming the path on failure. */
enum vc_status st_writer_save(const struct st_writer *w, const char *path, struct vc_err *err);

#endif
