/* dedup_doc: the dedup stage's view of one interleaved document (OBELICS
 * layout: json "texts" and "images" lists of equal length, image fields
 * "0.jpg", ..., an optional "metadata" list aligned with them, as a list or
 * a JSON string): the identity of each image, the document's domain, its
 * paragraphs, and the edit that removes images and paragraphs while texts,
 * images and metadata stay aligned.
 *
 *   image key      a hash of the image's URL (the OBELICS metadata "src"
 *                  of its position) or, without one, of its bytes;
 *   domain         the lower-cased host of the document's "url" (or of
 *                  "general_metadata"'s url), "" when it has none;
 *   paragraph key  a hash of the domain and the paragraph's exact bytes;
 *                  paragraphs are a text node split on "\n\n" as the filter
 *                  stage splits them; empty ones and OBELICS's
 *                  END_OF_DOCUMENT_TOKEN_TO_BE_REPLACED are never judged.
 *
 * Every removal is written to the sample's metadata, list "dedup_removed":
 * {"method", "reason", "position" (in the document as it was read),
 * "field" and "src" (images) or "bytes" (paragraphs)}. */
#ifndef VC_STAGES_DEDUP_DOC_H
#define VC_STAGES_DEDUP_DOC_H

#include <stdbool.h>
#include <stdint.h>

#include "core/sample.h"
#include "core/vc_err.h"

struct cJSON;

/* What dedup_doc_visit asks about each image (kind DEDUP_M_DOC_IMAGE_URL)
 * and paragraph (DEDUP_M_DOC_PARAGRAPH): 0 keeps it, a method number
 * removes it and names the method.  Errors go to err with a non-OK
 * return through *rc. */
typedef unsigned (*dedup_doc_judge_fn)(void *ctx, unsigned kind, uint64_t key, enum vc_status *rc,
                                       struct vc_err *err);

struct dedup_doc {
    struct cJSON *json;           /* owned */
    struct cJSON *texts, *images; /* borrowed from json */
    struct cJSON *meta;           /* the aligned metadata list (owned), or NULL */
    char domain[256];
    bool changed;
    /* The "reason" text of a removal, by method; set by the caller. */
    const char *reason[16];
};

/* Parses the sample's json.  *is_doc false (and nothing to close) when it
 * is no document. */
enum vc_status dedup_doc_open(struct dedup_doc *d, const struct sample *s, bool *is_doc,
                              struct vc_err *err);
void dedup_doc_close(struct dedup_doc *d);

/* Walks the images and paragraphs in document order, asking judge; what
 * it refuses leaves the document (an image with its field; a paragraph
 * out of its text node, and a node left empty with its position) and is
 * recorded in the sample's metadata. */
enum vc_status dedup_doc_visit(struct dedup_doc *d, struct sample *s, dedup_doc_judge_fn judge,
                               void *ctx, struct vc_err *err);

/* Positions left in the document. */
int dedup_doc_positions(const struct dedup_doc *d);

/* When the visit changed the document: its json (and metadata, in the
 * form the document used) written back to the sample. */
enum vc_status dedup_doc_store(struct dedup_doc *d, struct sample *s, struct vc_err *err);

#endif
