/* idf2_place: where the weights live in anonymous memory at load.
 *
 * The text decoder's, while decode streams them (IDF2_WEIGHTS_COPY of
 * synth/idefics2.h): a decode step reads every text matrix once; read in
 * place from the mapped checkpoint they come from the page cache in 4 KiB
 * pages, which costs TLB walks on every step and lets the kernel evict
 * them under memory pressure (a major fault each page back).  Copied once
 * at load into one anonymous arena advised for transparent huge pages,
 * they are read from 2 MiB pages and stay resident (no swap on the
 * machines this runs on).  Matrices already in anonymous memory (converted
 * or quantized at load) stay where they are.
 *
 * The image path's (vision tower, connector), in the kernel row's packed
 * layout (idf2_place_pack): every image pass reads them at prefill-sized
 * row counts, and a row with a packed layout would otherwise repack each
 * weight on every call.
 *
 * Owns the arenas.  Each is only made when /proc/meminfo's MemAvailable
 * holds it plus a reserve for the contexts (idf2_place_fits); otherwise,
 * or when the arena cannot be mapped, the weights stay as they are and the
 * report's note says why: never an OOM. */
#ifndef VC_SYNTH_IDF2_PLACE_H
#define VC_SYNTH_IDF2_PLACE_H

#include <stdbool.h>
#include <stddef.h>

#include "synth/idf2_config.h"
#include "synth/idf2_quantize.h"
#include "synth/idf2_weights.h"

struct idf2_place;

struct idf2_place_report {
    size_t bytes_copied;       /* matrix bytes moved into the arena (as stored) */
    size_t bytes_huge;         /* arena bytes backed by huge pages (smaps AnonHugePages) */
    size_t bytes_huge_faulted; /* of those, what the copy's faults got (the rest: collapsed) */
    size_t bytes_packed;       /* arena bytes of those written in the row's packed layout */
    size_t bytes_uncached;     /* source bytes dropped from the page cache behind the copy */
    char note[192];            /* why nothing was copied, or "" */
    char huge_note[96];        /* why some of the arena stays in 4 KiB pages, or "" */
};

/* MemAvailable or MemTotal ("MemTotal:") of a /proc/meminfo text, in
 * bytes; 0 when the line is absent. */
size_t idf2_place_meminfo(const char *meminfo, const char *key);
/* Whether a copy of `bytes` fits in `avail` bytes of MemAvailable on a
 * machine of `total` bytes, keeping max(2 GiB, total / 8) free for the
 * contexts' arenas and KV caches and the rest of the process. */
bool idf2_place_fits(size_t bytes, size_t avail, size_t total);
/* idf2_place_fits of `bytes` against this machine's /proc/meminfo now. */
bool idf2_place_fits_now(size_t bytes);

/* Copies the text matrices of w (idf2_weights_text_mats) that are not in
 * anonymous memory (w's owned buffers, q's quantized blocks) into the
 * arena, points them (and a tied embedding) there and drops the source
 * pages from this process, and from the page cache too where the copy and
 * its source would not both fit in memory (idf2_place_fits of twice the
 * copy): a 24 GiB machine reading a 16.8 GB checkpoint through the page
 * cache would otherwise have no whole free 2 MiB blocks left for the
 * arena's huge pages.  What the faults could not get in huge pages is
 * collapsed into them afterwards (idf2_place_collapse).  A matrix that
 * `ops` (the kernel row, or NULL) has a packed layout for is written in
 * that layout instead of the copy (the same bytes; its `packed`/`packed_by`
 * set, data left on the mapping for other rows and a tied embedding): the
 * row then runs every row count from it, decode included, and packs no
 * text weight per call (rep->bytes_packed: their bytes in the arena, the
 * layout's padding included).  *out is NULL when nothing was copied (the
 * note says why).  nt: copy threads.  Errors: none but VC_EFATAL
 * out_of_memory for the small bookkeeping array; a short machine is a note. */
enum vc_status idf2_place_copy(struct idf2_weights *w, const struct idf2_model_config *cfg,
                               const struct idf2_quant *q, const struct idf2_ops *ops, int nt,
                               struct idf2_place **out, struct idf2_place_report *rep,
                               struct vc_err *err);
/* Packs the vision tower's and connector's matrices
 * (idf2_weights_image_mats) that `ops` has a packed layout for
 * (ops->pack_bytes > 0) into one such arena, sets their `packed` and
 * `packed_by`, and drops their mapped source pages from this process (data
 * stays valid: another row reading it gets the pages back from the page
 * cache).  rep->bytes_copied: the packed bytes.  *out is NULL when nothing
 * was packed (a row without packing, or the note says why).  Errors: none
 * but VC_EFATAL out_of_memory for the bookkeeping arrays. */
enum vc_status idf2_place_pack(struct idf2_weights *w, const struct idf2_model_config *cfg,
                               const struct idf2_ops *ops, int nt, struct idf2_place **out,
                               struct idf2_place_report *rep, struct vc_err *err);
void idf2_place_free(struct idf2_place *p);

/* `bytes` (rounded up to whole 2 MiB pages) of anonymous memory on a
 * huge-page boundary, advised for transparent huge pages before anything
 * touches it: Debian's THP is "madvise" only, so a plain allocation gets
 * 4 KiB pages, and decode streams these weights once per token.  NULL when
 * it cannot be mapped.  Release with idf2_place_unmap_huge(p, bytes). */
void *idf2_place_map_huge(size_t bytes);
void idf2_place_unmap_huge(void *p, size_t bytes);
/* Bytes of idf2_place_map_huge(bytes)'s mapping: whole 2 MiB pages. */
size_t idf2_place_huge_span(size_t bytes);

/* Collapses the anonymous [p, p + bytes) (2 MiB aligned, its own mapping)
 * into huge pages in place (MADV_COLLAPSE, Linux >= 6.1, compacting
 * memory as it goes), where the faults that wrote it got 4 KiB pages.
 * Returns the mapping's bytes in huge pages afterwards; note (cap bytes)
 * is "" or why not all of it: no MADV_COLLAPSE in this kernel, no free
 * huge page for some of it, the mapping refuses huge pages. */
size_t idf2_place_collapse(void *p, size_t bytes, char *note, size_t cap);
/* AnonHugePages of the mapping that holds p (/proc/self/smaps; the kernel
 * may have merged a neighbour into it), bytes. */
size_t idf2_place_huge_bytes(const void *p);

/* Drops the whole pages of the mapped [p, p + n) from this process and,
 * with `uncache`, where they are a file's, from the page cache
 * (posix_fadvise DONTNEED on the file range behind exactly those pages;
 * other processes mapping them keep them).  The data stays valid: read
 * again, it comes back from the file.  Returns the bytes advised out of
 * the page cache (0: anonymous memory, or !uncache). */
size_t idf2_place_drop_source(const void *p, size_t n, bool uncache);
/* Starts reading the file pages behind the mapped [p, p + n) (the next
 * matrix a load writes) while the current one is written; nothing for
 * anonymous memory. */
void idf2_place_prefetch_source(const void *p, size_t n);

#endif
