/* src_lines: records of a list file (JSONL, or CSV/TSV with RFC 4180
 * quoting, where a quoted field may hold newlines), read from a byte range
 * so a big list splits into units without loading it: a unit is
 * [begin, end) and owns every record that starts inside it.
 * Blank lines are not records. */
#ifndef VC_STAGES_SRC_LINES_H
#define VC_STAGES_SRC_LINES_H

#include <stddef.h>
#include <stdint.h>

#include "core/vc_err.h"
#include "source.h"

enum lines_format { LINES_JSONL = 0, LINES_CSV, LINES_TSV };

/* The format from the content: '{' first means JSONL, otherwise a tab in
 * the first line means TSV, else CSV.  VC_ESHARD io_error if unreadable;
 * VC_EUSAGE bad_spec when the file is a JSON array ('[' first). */
enum vc_status lines_sniff(const char *path, enum lines_format *out, struct vc_err *err);

/* VC_EUSAGE bad_spec naming the compression when the file starts with a
 * gzip, zstd or bzip2 magic (img2dataset reads cc12m.tsv.gz): units are
 * byte ranges of the plain text, so a packed list would be read as binary
 * noise ("a NUL byte at byte 3").  VC_ESHARD io_error when it cannot be
 * opened.  The first bytes read go to head[0..*n_head) unless head is NULL
 * (the urls source looks there for parquet's "PAR1"). */
enum vc_status lines_refuse_packed(const char *where, const char *path, uint8_t head[4],
                                   size_t *n_head, struct vc_err *err);

struct lines_reader;

/* Owned: free with lines_close.  max_record bounds one record's bytes. */
enum vc_status lines_open(const char *path, enum lines_format f, uint64_t begin, uint64_t end,
                          uint64_t max_record, struct lines_reader **out, struct vc_err *err);
/* The next record: *rec borrowed until the next call, NUL-terminated,
 * without its line end.  VC_EOF past the range; VC_ESAMPLE field_too_long
 * for an over-long record (skipped; call again); VC_ESHARD io_error. */
enum vc_status lines_next(struct lines_reader *r, char **rec, size_t *len, struct vc_err *err);
/* The byte offset just past the last record read. */
uint64_t lines_pos(const struct lines_reader *r);
/* Records returned or skipped so far. */
uint64_t lines_count(const struct lines_reader *r);
void lines_close(struct lines_reader *r);

/* Splits path (from byte `begin`, e.g. after a header) into units of
 * per_unit records.  *units owned (free each .file and the array). */
enum vc_status lines_split(const char *path, enum lines_format f, uint64_t begin, uint64_t per_unit,
                           struct source_unit **units, size_t *n, struct vc_err *err);

/* Reads the header record of a CSV/TSV list: *header owned (free), split
 * into at most max_cols column names pointing into it; *data_begin is the
 * offset of the first data record.  VC_EUSAGE bad_spec (naming `where`)
 * when the file is empty. */
enum vc_status lines_read_header(const char *path, enum lines_format f, uint64_t max_record,
                                 const char *where, char **header, char **cols, size_t max_cols,
                                 size_t *n_cols, uint64_t *data_begin, struct vc_err *err);

/* Splits one CSV/TSV record in place (quotes removed, "" unescaped) into
 * at most max fields; returns the number found (more are dropped). */
size_t lines_split_fields(char *rec, size_t len, char sep, char **fields, size_t max);

/* A cursor over one unit of a list file, as the list sources (pairs,
 * documents) use it: the reader, and a buffer for the image files that
 * records name (grown by src_read_file). */
struct lines_cursor {
    const void *src; /* the source's state, borrowed */
    const struct source_unit *u;
    struct lines_reader *r;
    uint8_t *buf; /* owned */
    size_t cap;
};

/* A source_ops.open for a list source: *cursor is a struct lines_cursor
 * (owned, free with lines_cursor_close) over u, read as format f. */
enum vc_status lines_cursor_open(const void *src, const struct source_unit *u, enum lines_format f,
                                 uint64_t max_record, void **cursor, struct vc_err *err);
/* lines_next on c's reader; also names the record in s (src_file,
 * src_index), whatever the outcome, so a rejected one can be traced. */
enum vc_status lines_cursor_next(struct lines_cursor *c, struct sample *s, char **rec, size_t *len,
                                 struct vc_err *err);
/* For a record the source refuses (err filled, VC_ESAMPLE): prefixes the
 * record's 1-based line in the list file, counting blank lines and the
 * header, so a user can open the file at the bad record.  Returns
 * err->status.  lines_cursor_next does this for its own errors. */
enum vc_status lines_cursor_error(const struct lines_cursor *c, struct vc_err *err);
/* A source_ops.close: frees a cursor from lines_cursor_open. */
void lines_cursor_close(void *cursor);

#endif
