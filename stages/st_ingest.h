/* st_ingest: the first stage of every pipeline.  Checks each sample of a
 * source against the run's limits before anything else looks at it: field
 * names, entry sizes, image headers (probe only, or a full decode when
 * "decode": true), UTF-8 and length of text fields, well-formed json.
 * It changes nothing; a bad sample is VC_ESAMPLE with a stable reason. */
#ifndef VC_STAGES_ST_INGEST_H
#define VC_STAGES_ST_INGEST_H

#include <stdbool.h>
#include <stddef.h>

#include "stage.h"

extern const struct stage_ops st_ingest_ops;

/* Fields by role, from the part of the field name after its last dot:
 * images as sample_field_name_is_image says, "txt"/"text"/"caption"
 * texts, "json" json. */
enum ingest_kind { INGEST_OTHER = 0, INGEST_IMAGE, INGEST_TEXT, INGEST_JSON };
enum ingest_kind ingest_field_kind(const char *field_name);

#endif
