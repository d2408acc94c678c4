/* pq: a reader for the parquet files that URL-list datasets ship (LAION,
 * DataComp, COYO metadata): flat columns, PLAIN and dictionary encodings
 * (RLE/bit-packed hybrid indices), data pages v1 and v2, definition levels
 * of optional columns, and the codecs uncompressed, snappy, gzip and zstd.
 * Anything else (nested or repeated columns, delta or byte-stream-split encodings,
 * brotli/lz4/lzo, encryption, INT96) is refused with a message naming the
 * feature.
 *
 * The file is mapped read-only.  Every offset and length read from the
 * footer or a page header is checked against the bytes it claims before
 * use, sizes are capped (PQ_MAX_* below), and values are decoded one at a
 * time from at most one decompressed data page and one dictionary per
 * column cursor, so memory stays bounded whatever the file says. */
#ifndef VC_STAGES_PQ_H
#define VC_STAGES_PQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/vc_err.h"

/* A footer larger than this is not URL-list metadata (LAION's are a few
 * KB); a page larger than this is not what any writer emits (they cut
 * pages at about 1 MB). */
#define PQ_MAX_FOOTER_BYTES (64u << 20)
#define PQ_MAX_PAGE_BYTES   (64u << 20)
#define PQ_MAX_COLUMNS      4096
#define PQ_MAX_ROW_GROUPS   (1u << 20)
#define PQ_MAX_DEPTH        16 /* schema group levels (DataComp's lists take 4) */

enum pq_type {
    PQ_BOOLEAN = 0,
    PQ_INT32 = 1,
    PQ_INT64 = 2,
    PQ_INT96 = 3,
    PQ_FLOAT = 4,
    PQ_DOUBLE = 5,
    PQ_BYTE_ARRAY = 6,
    PQ_FIXED_LEN_BYTE_ARRAY = 7,
};

struct pq_column {
    const char *name;
    enum pq_type type;
    int32_t type_length; /* FIXED_LEN_BYTE_ARRAY */
    bool optional;
    bool nested;      /* a leaf of a group or a repeated field: named by its top-level field,
                       * refused by pq_cursor_open */
    bool utf8;        /* BYTE_ARRAY annotated as a string (UTF8 / STRING / JSON / ENUM) */
    bool is_unsigned; /* INT32/INT64 annotated UINT_8..UINT_64: the value is v.u */
};

/* One value; bytes borrowed from the cursor until its next call. */
struct pq_value {
    bool null;
    bool is_unsigned; /* v.u, not v.i */
    enum pq_type type;
    union {
        bool b;
        int64_t i;  /* INT32 and INT64 */
        uint64_t u; /* the same annotated unsigned (arrow's uint32, uint64) */
        double d;   /* FLOAT and DOUBLE */
        struct {
            const uint8_t *p;
            uint32_t n;
        } s; /* BYTE_ARRAY, FIXED_LEN_BYTE_ARRAY */
    } v;
};

struct pq_file;
struct pq_cursor;

/* Maps and validates path.  Errors are VC_ESHARD corrupt_archive (naming
 * path and what is wrong), unsupported_format (naming the feature) or
 * io_error; VC_EFATAL on OOM.  Owned: pq_close. */
enum vc_status pq_open(const char *path, struct pq_file **out, struct vc_err *err);
/* The same over bytes the caller keeps alive until pq_close. */
enum vc_status pq_open_mem(const uint8_t *data, size_t size, const char *label,
                           struct pq_file **out, struct vc_err *err);
void pq_close(struct pq_file *f);

uint64_t pq_num_rows(const struct pq_file *f);
size_t pq_num_columns(const struct pq_file *f);
const struct pq_column *pq_column_at(const struct pq_file *f, size_t i);
/* The column's index, or -1. */
int pq_column_find(const struct pq_file *f, const char *name);

/* A cursor over one column from row `first` to the end of the file,
 * crossing row groups.  Refuses (VC_ESHARD unsupported_format) a column
 * whose type or codec is not supported; page-level problems surface from
 * pq_cursor_next.  Owned: pq_cursor_close. */
enum vc_status pq_cursor_open(struct pq_file *f, size_t column, uint64_t first,
                              struct pq_cursor **out, struct vc_err *err);
/* The next value: VC_OK, VC_EOF after the last row, VC_ESHARD when a page
 * is corrupt or uses a refused encoding (the cursor is then unusable). */
enum vc_status pq_cursor_next(struct pq_cursor *c, struct pq_value *v, struct vc_err *err);
void pq_cursor_close(struct pq_cursor *c);

const char *pq_type_name(enum pq_type t);

#endif
