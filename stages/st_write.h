/* st_write: the last per-sample stage.  Optionally resizes and re-encodes
 * images (img2dataset's modes and formats), then composes the sample's
 * output "json": the input json object (if any), what earlier stages put
 * in sample->meta, and one key, "vlmcurate", holding the facts of the
 * written bytes (source, original key, width, height, format, sha256 of
 * each image), so no input column named like them is overwritten.  Every image
 * is verified to decode fully unless "verify": "header".  The shard files
 * themselves are written by the executor's REDUCE phase from the bytes
 * this stage leaves in the sample. */
#ifndef VC_STAGES_ST_WRITE_H
#define VC_STAGES_ST_WRITE_H

#include "stage.h"

extern const struct stage_ops st_write_ops;

#endif
