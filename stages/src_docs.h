/* src_docs: the "documents" source: OBELICS-style interleaved web
 * documents, one JSON object per line of a JSONL file:
 *   {"texts": [t0, null, t2], "images": [null, "a.jpg", null], ...metadata}
 * where position i holds a text or an image (a path under images_dir).
 * A document becomes one sample: image fields "0.jpg", "1.png", ... in
 * document order, and "json" = the document with each image path replaced
 * by its field name, metadata kept.  An image that cannot be read (missing,
 * not a file, too large, not an image) is dropped as OBELICS drops it: its
 * position leaves both lists and "dropped_images" records {index, path,
 * reason}; the document is kept.  An image path that escapes images_dir
 * makes the whole document an error (unsafe_path). */
#ifndef VC_STAGES_SRC_DOCS_H
#define VC_STAGES_SRC_DOCS_H

#include "source.h"

extern const struct source_ops src_docs_ops;

#endif
