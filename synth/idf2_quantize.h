/* idf2_quantize: the text decoder's weights in a block format (Q8_0 or
 * Q4_0, synth/idf2_backend.h), made at load from the bf16 or f32
 * checkpoint, and their on-disk cache.
 *
 * What is quantized: every linear layer of the text decoder (q, k, v, o,
 * gate, up, down of each layer) and the LM head; decode streams exactly
 * these.  The vision tower, the connector and the embedding table keep the
 * compute dtype (they are compute-bound or read one row per token).
 *
 * The engine quantizes into the x16 formats (Q8_0X16 / Q4_0X16: the same
 * blocks, 16 rows interleaved for the VNNI kernels at every row count).
 *
 * Cache: `<dir>/.vlmcurate-<q8_0|q4_0>.bin`, one file per format: a header, a
 * table of matrices and their blocks (64-byte aligned), memory-mapped on
 * later loads.  It is fresh when its key equals the key of the current
 * source files: SHA-256 over, for config.json, the index and each
 * *.safetensors of the folder (sorted by name): the name, the size in
 * bytes, the first MiB (the safetensors header with every tensor's name,
 * dtype, shape and offsets) and 64 KiB every 256 MiB and at the end.  No
 * modification time is consulted; a re-download that changes any of those
 * bytes or a size invalidates the cache (an edit that keeps the size and
 * touches only unsampled bytes would not: delete the file after such an
 * edit).  Writing is best effort (temp file, fsync, rename; a read-only
 * folder only costs the shortcut), and a cache that does not match the
 * model's shapes is ignored.
 *
 * Memory: decode streams these blocks once per token, so they are held as
 * idf2_place holds copied text weights (synth/idf2_place.h): quantized
 * into one arena advised for transparent huge pages, each thread faulting
 * in the pages of its own rows, the source's pages dropped behind each
 * matrix (and from the page cache where the source and the arena do not
 * both fit in memory, so that the faults find whole free 2 MiB blocks),
 * the next matrix read ahead, and what the faults got in 4 KiB pages
 * collapsed into huge pages afterwards.  Mapped from the cache, the blocks
 * are a file's pages: idf2_place_copy copies them like any mapped weight. */
#ifndef VC_SYNTH_IDF2_QUANTIZE_H
#define VC_SYNTH_IDF2_QUANTIZE_H

#include <stddef.h>

#include "core/vc_err.h"
#include "synth/idf2_backend.h"
#include "synth/idf2_config.h"
#include "synth/idf2_weights.h"

/* Owns the quantized blocks (a buffer or the cache's mapping). */
struct idf2_quant {
    enum idf2_wfmt fmt;
    void *owned; /* quantized here (NULL when mapped) */
    void *map;   /* the cache file's mapping (NULL when quantized) */
    size_t map_bytes;
    size_t bytes;   /* block bytes of all matrices */
    int from_cache; /* 1 when the cache was used */
    int cache_written;
    /* Quantized here: of `owned`, bytes in huge pages after the collapse,
     * and as the faults left it (the rest collapsed); the source bytes
     * dropped from the page cache behind the quantization; why some of
     * `owned` stays in 4 KiB pages, or "". */
    size_t bytes_huge, bytes_huge_faulted, bytes_uncached;
    char huge_note[96];
};

/* Replaces the text decoder's matrices of `w` (their fmt and data) by
 * `fmt` (IDF2_WF_Q8_0, IDF2_WF_Q4_0 or their x16 twins) copies; `cache_dir` is the
 * checkpoint folder for the cache (NULL: no cache).  The old data stays
 * owned by w.  *out owns the new blocks and must outlive w's use (free it
 * with idf2_quant_free after the model).  Errors: VC_EUSAGE for a format
 * that is not a block format, VC_EFATAL out_of_memory. */
enum vc_status idf2_weights_quantize(struct idf2_weights *w, const struct idf2_model_config *cfg,
                                     enum idf2_wfmt fmt, const char *cache_dir, int nt,
                                     struct idf2_quant **out, struct vc_err *err);
void idf2_quant_free(struct idf2_quant *q);

#endif
