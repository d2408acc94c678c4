/* pq: parquet footer (thrift compact protocol), schema, row groups and a
 * streaming column cursor.  The structure follows the parquet-format spec
 * (parquet.thrift field ids; Encodings.md for the hybrid RLE).
 *
 * Trust boundary: every byte of the file is hostile.  The thrift reader
 * checks each varint, length and list size against the bytes left (a list
 * element takes at least one byte, so no list can claim more elements than
 * its footer has bytes), nesting is capped, column chunks must lie inside
 * the data area and agree with the schema, page sizes are capped and must
 * match what the codec produces exactly, dictionary indices are checked
 * against the dictionary, and values are pulled one at a time so a page
 * that claims 2^31 values costs nothing until they are read. */
#include "pq.h"

#include <errno.h>
#include <fcntl.h>
#include <snappy-c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include "core/vc_mem.h"

/* Thrift nesting in a parquet footer is at most ~6 deep; more is an attack
 * on the recursive skipper. */
enum { TR_MAX_DEPTH = 32 };

enum { CODEC_NONE = 0, CODEC_SNAPPY = 1, CODEC_GZIP = 2, CODEC_ZSTD = 6 };
enum { ENC_PLAIN = 0, ENC_PLAIN_DICT = 2, ENC_RLE = 3, ENC_RLE_DICT = 8 };
enum { PAGE_DATA = 0, PAGE_INDEX = 1, PAGE_DICT = 2, PAGE_DATA_V2 = 3 };

struct pq_chunk {
    uint64_t begin, end; /* byte range of the chunk's pages */
    int32_t codec;
};

struct pq_row_group {
    uint64_t rows;
    struct pq_chunk *chunks; /* one per column, into pq_file.chunks */
};

struct pq_file {
    const uint8_t *data;
    size_t size;
    bool mapped;
    char *label;
    uint64_t rows;
    struct pq_column *cols;
    size_t n_cols;
    char *names; /* NUL-separated; cols[i].name points here */
    struct pq_row_group *rgs;
    size_t n_rgs;
    struct pq_chunk *chunks;
};

const char *pq_type_name(enum pq_type t)
{
    static const char *const names[] = {
        "BOOLEAN", "INT32",  "INT64",      "INT96",
        "FLOAT",   "DOUBLE", "BYTE_ARRAY", "FIXED_LEN_BYTE_ARRAY"
    };
    return (unsigned)t < 8 ? names[t] : "unknown";
}

static const char *codec_name(int32_t c)
{
    static const char *const names[] = { "UNCOMPRESSED", "SNAPPY", "GZIP", "LZO",
                                         "BROTLI",       "LZ4",    "ZSTD", "LZ4_RAW" };
    return c >= 0 && c < 8 ? names[c] : "unknown";
}

static const char *encoding_name(int32_t e)
{
    static const char *const names[] = {
        "PLAIN",          "GROUP_VAR_INT",       "PLAIN_DICTIONARY",        "RLE",
        "BIT_PACKED",     "DELTA_BINARY_PACKED", "DELTA_LENGTH_BYTE_ARRAY", "DELTA_BYTE_ARRAY",
        "RLE_DICTIONARY", "BYTE_STREAM_SPLIT"
    };
    return e >= 0 && e < 10 ? names[e] : "unknown";
}

/* ---- thrift compact protocol ---- */

struct tr {
    const uint8_t *p, *end;
    int depth;
};

enum {
    TT_STOP = 0,
    TT_TRUE = 1,
    TT_FALSE = 2,
    TT_BYTE = 3,
    TT_I16 = 4,
    TT_I32 = 5,
    TT_I64 = 6,
    TT_DOUBLE = 7,
    TT_BINARY = 8,
    TT_LIST = 9,
    TT_SET = 10,
    TT_MAP = 11,
    TT_STRUCT = 12,
};

static bool tr_varint(struct tr *t, uint64_t *v)
{
    uint64_t r = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (t->p >= t->end)
            return false;
        uint8_t b = *t->p++;
        r |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = r;
            return true;
        }
    }
    return false;
}

static bool tr_i64(struct tr *t, int64_t *v)
{
    uint64_t u;
    if (!tr_varint(t, &u))
        return false;
    *v = (int64_t)(u >> 1) ^ -(int64_t)(u & 1);
    return true;
}

static bool tr_i32(struct tr *t, int32_t *v)
{
    int64_t w;
    if (!tr_i64(t, &w) || w < INT32_MIN || w > INT32_MAX)
        return false;
    *v = (int32_t)w;
    return true;
}

static bool tr_binary(struct tr *t, const uint8_t **p, size_t *n)
{
    uint64_t len;
    if (!tr_varint(t, &len) || len > (uint64_t)(t->end - t->p))
        return false;
    *p = t->p;
    *n = (size_t)len;
    t->p += len;
    return true;
}

/* A list or set header: element type and a count no larger than the
 * bytes left (every element takes at least one byte). */
static bool tr_list(struct tr *t, int *etype, uint64_t *n)
{
    if (t->p >= t->end)
        return false;
    uint8_t b = *t->p++;
    *etype = b & 15;
    *n = b >> 4;
    if (*n == 15 && !tr_varint(t, n))
        return false;
    return *n <= (uint64_t)(t->end - t->p);
}

/* The next field header; *type TT_STOP at the end of a struct.  Field ids
 * are deltas from the previous one unless the delta nibble is zero. */
static bool tr_field(struct tr *t, int16_t *id, int *type)
{
    if (t->p >= t->end)
        return false;
    uint8_t b = *t->p++;
    *type = b & 15;
    if (*type == TT_STOP)
        return true;
    if (b >> 4) {
        *id = (int16_t)(*id + (b >> 4));
        return true;
    }
    int32_t v;
    if (!tr_i32(t, &v) || v < INT16_MIN || v > INT16_MAX)
        return false;
    *id = (int16_t)v;
    return true;
}

/* Integer and bool fields 1..TR_MAX_ID of one struct, by field id; parquet
 * structs keep their scalars there. */
enum { TR_MAX_ID = 16 };
struct tr_ints {
    int64_t v[TR_MAX_ID];
    bool has[TR_MAX_ID];
};

/* Handles one non-scalar field: 1 read, 0 not wanted (skipped), -1 bad. */
typedef int (*tr_field_fn)(struct tr *t, int16_t id, int type, void *ctx);

static bool tr_skip(struct tr *t, int type, bool in_list);

/* Reads one struct: scalars into *ints (may be NULL), other fields through
 * fn (may be NULL), the rest skipped.  Nesting is capped. */
static bool tr_struct(struct tr *t, struct tr_ints *ints, tr_field_fn fn, void *ctx)
{
    if (ints)
        memset(ints, 0, sizeof *ints);
    if (++t->depth > TR_MAX_DEPTH)
        return false;
    int16_t id = 0;
    for (;;) {
        int type;
        if (!tr_field(t, &id, &type))
            return false;
        if (type == TT_STOP)
            break;
        bool scalar = type == TT_TRUE || type == TT_FALSE || type == TT_BYTE || type == TT_I16 ||
                      type == TT_I32 || type == TT_I64;
        if (ints && scalar && id > 0 && id < TR_MAX_ID) {
            ints->has[id] = true;
            if (type == TT_TRUE || type == TT_FALSE)
                ints->v[id] = type == TT_TRUE;
            else if (type == TT_BYTE) {
                if (t->p >= t->end)
                    return false;
                ints->v[id] = (int8_t)*t->p++;
            } else if (!tr_i64(t, &ints->v[id]))
                return false;
            continue;
        }
        int r = fn ? fn(t, id, type, ctx) : 0;
        if (r < 0 || (r == 0 && !tr_skip(t, type, false)))
            return false;
    }
    t->depth--;
    return true;
}

/* The field as an int32, or dflt when absent or out of range (callers
 * treat the default as invalid where it matters). */
static int32_t tr_get32(const struct tr_ints *in, int id, int32_t dflt)
{
    return in->has[id] && in->v[id] >= INT32_MIN && in->v[id] <= INT32_MAX ? (int32_t)in->v[id]
                                                                           : dflt;
}

static int64_t tr_get64(const struct tr_ints *in, int id, int64_t dflt)
{
    return in->has[id] ? in->v[id] : dflt;
}

static bool tr_skip(struct tr *t, int type, bool in_list)
{
    uint64_t u, n;
    const uint8_t *p;
    size_t len;
    int et;
    switch (type) {
    case TT_TRUE:
    case TT_FALSE:
    case TT_BYTE:
        /* A struct field's bool lives in its type nibble; a list's takes
         * one byte like a BYTE. */
        if (type != TT_BYTE && !in_list)
            return true;
        if (t->p >= t->end)
            return false;
        t->p++;
        return true;
    case TT_I16:
    case TT_I32:
    case TT_I64:
        return tr_varint(t, &u);
    case TT_DOUBLE:
        if (t->end - t->p < 8)
            return false;
        t->p += 8;
        return true;
    case TT_BINARY:
        return tr_binary(t, &p, &len);
    case TT_LIST:
    case TT_SET:
        if (!tr_list(t, &et, &n) || ++t->depth > TR_MAX_DEPTH)
            return false;
        for (uint64_t i = 0; i < n; i++)
            if (!tr_skip(t, et, true))
                return false;
        t->depth--;
        return true;
    case TT_MAP:
        if (!tr_varint(t, &n) || n > (uint64_t)(t->end - t->p) / 2)
            return false;
        if (n == 0)
            return true;
        if (t->p >= t->end || ++t->depth > TR_MAX_DEPTH)
            return false;
        et = *t->p++;
        for (uint64_t i = 0; i < n; i++)
            if (!tr_skip(t, et >> 4, true) || !tr_skip(t, et & 15, true))
                return false;
        t->depth--;
        return true;
    case TT_STRUCT:
        return tr_struct(t, NULL, NULL, NULL);
    default:
        return false;
    }
}

/* ---- footer ---- */

static enum vc_status pq_bad(struct vc_err *err, const struct pq_file *f, const char *what)
{
    return vc_err_set(err, VC_ESHARD, VC_REASON_corrupt_archive,
                      "%s: not a valid parquet file (%s)", f->label, what);
}

static enum vc_status pq_refuse(struct vc_err *err, const char *label, const char *feature,
                                const char *detail)
{
    return vc_err_set(err, VC_ESHARD, VC_REASON_unsupported_format,
                      "%s: parquet feature not supported: %s%s", label, feature, detail);
}

/* One SchemaElement; the name points into the footer. */
struct pq_schema_el {
    const uint8_t *name;
    size_t name_len;
    int32_t type, type_length, repetition, num_children, converted;
    bool has_type, has_name, logical_string;
};

static int logical_field(struct tr *t, int16_t id, int type, void *ctx)
{
    (void)t;
    /* STRING (1), ENUM (4) and JSON (12) annotate text. */
    if (type == TT_STRUCT && (id == 1 || id == 4 || id == 12))
        *(bool *)ctx = true;
    return 0;
}

static int schema_field(struct tr *t, int16_t id, int type, void *ctx)
{
    struct pq_schema_el *e = ctx;
    if (id == 4 && type == TT_BINARY) {
        e->has_name = true;
        return tr_binary(t, &e->name, &e->name_len) ? 1 : -1;
    }
    if (id == 10 && type == TT_STRUCT)
        return tr_struct(t, NULL, logical_field, &e->logical_string) ? 1 : -1;
    return 0;
}

static bool parse_schema_el(struct tr *t, struct pq_schema_el *e)
{
    memset(e, 0, sizeof *e);
    struct tr_ints in;
    if (!tr_struct(t, &in, schema_field, e))
        return false;
    e->has_type = in.has[1];
    e->type = tr_get32(&in, 1, -1);
    e->type_length = tr_get32(&in, 2, 0);
    e->repetition = tr_get32(&in, 3, -1);
    e->num_children = tr_get32(&in, 5, 0);
    e->converted = tr_get32(&in, 6, -1);
    return true;
}

/* The schema is a depth-first list of elements.  Every leaf is a column
 * chunk in each row group, so every leaf becomes a column; one inside a
 * group, or a repeated one, takes its top-level field's name and is marked
 * `nested`, to be refused when read.  DataComp ships a list<list<float>>
 * `face_bboxes` next to its flat url and text: the file must stay usable
 * for the flat columns. */
static enum vc_status parse_schema(struct tr *t, struct pq_file *f, struct vc_err *err)
{
    int et;
    uint64_t n;
    if (!tr_list(t, &et, &n) || et != TT_STRUCT || n == 0)
        return pq_bad(err, f, "schema is not a list of elements");
    if (n - 1 > PQ_MAX_COLUMNS)
        return pq_refuse(err, f->label, "more than 4096 columns", "");
    f->cols = calloc(n, sizeof *f->cols);
    /* Names live in the footer, so their total is below its size. */
    f->names = malloc((size_t)(t->end - t->p) + (size_t)n + 1);
    if (!f->cols || !f->names)
        return vc_err_oom(err);
    /* left[d]: children still to come of the open group at depth d. */
    int32_t left[PQ_MAX_DEPTH + 1];
    size_t depth = 0, used = 0;
    const char *top = NULL;
    for (uint64_t i = 0; i < n; i++) {
        struct pq_schema_el e;
        if (!parse_schema_el(t, &e) || (i > 0 && !e.has_name))
            return pq_bad(err, f, i ? "unreadable schema element" : "unreadable schema root");
        if (i > 0 && depth == 0)
            return pq_bad(err, f, "schema elements beyond the root's children");
        if (i > 0)
            left[depth]--;
        if (e.num_children < 0 || (i == 0 && e.num_children == 0 && n > 1))
            return pq_bad(err, f, "schema element with a bad child count");
        /* A root may come without a name: e.name is NULL then. */
        if (e.name_len && memchr(e.name, 0, e.name_len))
            return pq_bad(err, f, "bad column name");
        char *name = f->names + used;
        if (e.name_len)
            memcpy(name, e.name, e.name_len);
        name[e.name_len] = '\0';
        used += e.name_len + 1;
        if (depth == 1)
            top = name;
        if (i == 0 || e.num_children > 0 || !e.has_type) {
            if (e.num_children > 0) {
                if (depth == PQ_MAX_DEPTH)
                    return pq_refuse(err, f->label, "schema nested more than 16 levels", "");
                left[++depth] = e.num_children;
            }
        } else {
            if (e.type < 0 || e.type > PQ_FIXED_LEN_BYTE_ARRAY || e.repetition < 0 ||
                e.repetition > 2)
                return pq_bad(err, f, "unknown column type or repetition");
            if (e.type == PQ_FIXED_LEN_BYTE_ARRAY &&
                (e.type_length <= 0 || e.type_length > (int32_t)PQ_MAX_PAGE_BYTES))
                return pq_bad(err, f, "fixed-length column without a valid length");
            struct pq_column *c = &f->cols[f->n_cols++];
            c->name = top;
            c->nested = depth > 1 || e.repetition == 2;
            c->type = (enum pq_type)e.type;
            c->type_length = e.type_length;
            c->optional = e.repetition == 1;
            /* Converted types UTF8 (0), ENUM (4), JSON (19) annotate text. */
            c->utf8 = c->type == PQ_BYTE_ARRAY && (e.logical_string || e.converted == 0 ||
                                                   e.converted == 4 || e.converted == 19);
            /* UINT_8 .. UINT_64 (11..14): arrow's uint32/uint64 columns,
             * stored in the signed physical type. */
            c->is_unsigned = (c->type == PQ_INT32 || c->type == PQ_INT64) && e.converted >= 11 &&
                             e.converted <= 14;
        }
        while (depth > 0 && left[depth] == 0)
            depth--;
    }
    if (depth > 0)
        return pq_bad(err, f, "schema ends inside a group");
    return VC_OK;
}

/* A chunk's path_in_schema: its first element names the top-level field;
 * a flat column's path is that name alone, a nested one's goes deeper. */
static bool parse_path(struct tr *t, const struct pq_column *col, bool *match)
{
    int et;
    uint64_t n;
    if (!tr_list(t, &et, &n) || et != TT_BINARY)
        return false;
    *match = col->nested ? n >= 1 : n == 1;
    for (uint64_t i = 0; i < n; i++) {
        const uint8_t *p;
        size_t len;
        if (!tr_binary(t, &p, &len))
            return false;
        if (i == 0 && (len != strlen(col->name) || memcmp(p, col->name, len) != 0))
            *match = false;
    }
    return true;
}

struct path_ctx {
    const struct pq_column *col;
    bool has, match;
};

static int path_field(struct tr *t, int16_t id, int type, void *ctx)
{
    struct path_ctx *pc = ctx;
    if (id != 3 || type != TT_LIST)
        return 0;
    pc->has = true;
    return parse_path(t, pc->col, &pc->match) ? 1 : -1;
}

/* ColumnMetaData: checked against the schema and the data area. */
static enum vc_status parse_column_meta(struct tr *t, struct pq_file *f, size_t col,
                                        uint64_t rg_rows, struct pq_chunk *ch, struct vc_err *err)
{
    struct tr_ints in;
    struct path_ctx pc = { .col = &f->cols[col] };
    if (!tr_struct(t, &in, path_field, &pc))
        return pq_bad(err, f, "unreadable column metadata");
    int64_t num_values = tr_get64(&in, 5, -1), compressed = tr_get64(&in, 7, -1);
    int64_t data_off = tr_get64(&in, 9, -1), dict_off = tr_get64(&in, 11, -1);
    int32_t codec = tr_get32(&in, 4, -1);
    if (!pc.has || !pc.match)
        return pq_bad(err, f, "column chunk path does not match the schema");
    if (tr_get32(&in, 1, -1) != (int32_t)f->cols[col].type)
        return pq_bad(err, f, "column chunk type differs from the schema");
    /* A nested column holds one value per list element, not per row. */
    if (num_values < 0 || (!f->cols[col].nested && (uint64_t)num_values != rg_rows))
        return pq_bad(err, f, "column chunk value count differs from the row group's rows");
    if (codec < 0 || codec > 7)
        return pq_bad(err, f, "unknown compression codec");
    int64_t begin = dict_off > 0 && dict_off < data_off ? dict_off : data_off;
    /* The data area is [4, size - 8 - footer); pq_open set f->size to its end. */
    if (begin < 4 || compressed < 0 || (uint64_t)begin > f->size ||
        (uint64_t)compressed > f->size - (uint64_t)begin)
        return pq_bad(err, f, "column chunk outside the data area");
    ch->begin = (uint64_t)begin;
    ch->end = (uint64_t)begin + (uint64_t)compressed;
    ch->codec = codec;
    return VC_OK;
}

/* What the footer's field handlers share: the file, the error and a
 * status that a handler's -1 leaves behind (VC_OK: the bytes were bad). */
struct footer_ctx {
    struct pq_file *f;
    struct vc_err *err;
    enum vc_status rc;
    size_t col;
    uint64_t rows;
    struct pq_chunk *ch;
    bool have_meta, has_schema, has_rgs;
    const uint8_t *cols_at, *cols_end;
};

static int chunk_field(struct tr *t, int16_t id, int type, void *ctx)
{
    struct footer_ctx *fc = ctx;
    if (id == 1 && type == TT_BINARY)
        fc->rc = pq_refuse(fc->err, fc->f->label, "column chunks in another file (file_path)", "");
    else if ((id == 8 || id == 9) && type == TT_STRUCT)
        fc->rc = pq_refuse(fc->err, fc->f->label, "encrypted columns", "");
    else if (id == 3 && type == TT_STRUCT && !fc->have_meta) {
        fc->rc = parse_column_meta(t, fc->f, fc->col, fc->rows, fc->ch, fc->err);
        fc->have_meta = true;
        return fc->rc < 0 ? -1 : 1;
    } else
        return 0;
    return -1;
}

static int row_group_field(struct tr *t, int16_t id, int type, void *ctx)
{
    /* Rows come after the columns in the struct, so the columns are
     * only located here and parsed once rows are known. */
    struct footer_ctx *fc = ctx;
    if (id != 1 || type != TT_LIST || fc->cols_at)
        return 0;
    fc->cols_at = t->p;
    if (!tr_skip(t, type, false))
        return -1;
    fc->cols_end = t->p;
    return 1;
}

static enum vc_status parse_row_group(struct tr *t, struct pq_file *f, struct pq_row_group *rg,
                                      struct vc_err *err)
{
    struct footer_ctx fc = { .f = f, .err = err };
    struct tr_ints in;
    if (!tr_struct(t, &in, row_group_field, &fc))
        return pq_bad(err, f, "unreadable row group");
    int64_t rows = tr_get64(&in, 3, -1);
    if (!fc.cols_at || rows < 0)
        return pq_bad(err, f, "row group without columns or row count");
    rg->rows = (uint64_t)rows;
    struct tr ct = { fc.cols_at, fc.cols_end, t->depth };
    int et;
    uint64_t n;
    if (!tr_list(&ct, &et, &n) || et != TT_STRUCT || n != f->n_cols)
        return pq_bad(err, f, "row group column count differs from the schema");
    for (size_t c = 0; c < f->n_cols; c++) {
        struct footer_ctx cc = {
            .f = f, .err = err, .col = c, .rows = rg->rows, .ch = &rg->chunks[c]
        };
        if (!tr_struct(&ct, NULL, chunk_field, &cc))
            return cc.rc < 0 ? cc.rc : pq_bad(err, f, "unreadable column chunk");
        if (!cc.have_meta)
            return pq_bad(err, f, "column chunk without metadata");
    }
    return VC_OK;
}

static enum vc_status parse_row_groups(struct tr *t, struct pq_file *f, struct vc_err *err)
{
    int et;
    uint64_t n;
    if (!tr_list(t, &et, &n) || et != TT_STRUCT)
        return pq_bad(err, f, "row groups are not a list");
    if (n > PQ_MAX_ROW_GROUPS)
        return pq_refuse(err, f->label, "more than 2^20 row groups", "");
    /* n and n_cols are each below the footer size; their product is
     * bounded by what the chunks' bytes could hold. */
    size_t total;
    if (!vc_mul_ok((size_t)n, f->n_cols, &total) || total > (size_t)(t->end - t->p))
        return pq_bad(err, f, "more column chunks than the footer could describe");
    f->rgs = calloc(n ? (size_t)n : 1, sizeof *f->rgs);
    f->chunks = calloc(total ? total : 1, sizeof *f->chunks);
    if (!f->rgs || !f->chunks)
        return vc_err_oom(err);
    f->n_rgs = (size_t)n;
    for (size_t g = 0; g < f->n_rgs; g++) {
        f->rgs[g].chunks = f->chunks + g * f->n_cols;
        VC_TRY(parse_row_group(t, f, &f->rgs[g], err));
    }
    return VC_OK;
}

static int footer_field(struct tr *t, int16_t id, int type, void *ctx)
{
    struct footer_ctx *fc = ctx;
    if (id == 2 && type == TT_LIST && !fc->has_schema) {
        fc->has_schema = true;
        fc->rc = parse_schema(t, fc->f, fc->err);
    } else if (id == 4 && type == TT_LIST && !fc->has_rgs) {
        fc->has_rgs = true;
        fc->rc = fc->has_schema ? parse_row_groups(t, fc->f, fc->err)
                                : pq_bad(fc->err, fc->f, "row groups before the schema");
    } else if (id == 8 && type == TT_STRUCT) {
        fc->rc = pq_refuse(fc->err, fc->f->label, "encryption", "");
    } else {
        return 0;
    }
    return fc->rc < 0 ? -1 : 1;
}

static enum vc_status parse_footer(struct tr *t, struct pq_file *f, struct vc_err *err)
{
    struct footer_ctx fc = { .f = f, .err = err };
    struct tr_ints in;
    if (!tr_struct(t, &in, footer_field, &fc))
        return fc.rc < 0 ? fc.rc : pq_bad(err, f, "unreadable footer");
    int64_t rows = tr_get64(&in, 3, -1);
    if (!fc.has_schema || rows < 0)
        return pq_bad(err, f, "footer lacks schema or row count");
    f->rows = (uint64_t)rows;
    uint64_t sum = 0;
    for (size_t g = 0; g < f->n_rgs; g++) {
        if (f->rgs[g].rows > UINT64_MAX - sum)
            return pq_bad(err, f, "row counts overflow");
        sum += f->rgs[g].rows;
    }
    if (sum != f->rows)
        return pq_bad(err, f, "row groups do not add up to the file's rows");
    return VC_OK;
}

enum vc_status pq_open_mem(const uint8_t *data, size_t size, const char *label,
                           struct pq_file **out, struct vc_err *err)
{
    *out = NULL;
    struct pq_file *f = calloc(1, sizeof *f);
    if (!f || !(f->label = vc_strdup(label))) {
        free(f);
        return vc_err_oom(err);
    }
    f->data = data;
    f->size = size;
    enum vc_status rc = VC_OK;
    if (size >= 4 && memcmp(data, "PARE", 4) == 0)
        rc = pq_refuse(err, label, "encrypted footer", "");
    else if (size >= 24 && memcmp(data, "version https://git-lfs", 23) == 0)
        rc = pq_bad(err, f, "a Git LFS pointer, not the file: run 'git lfs pull'");
    else if (size < 12 || memcmp(data, "PAR1", 4) != 0 || memcmp(data + size - 4, "PAR1", 4) != 0)
        rc = pq_bad(err, f, "no PAR1 magic at both ends");
    if (rc == VC_OK) {
        const uint8_t *l = data + size - 8;
        uint32_t flen =
            (uint32_t)l[0] | (uint32_t)l[1] << 8 | (uint32_t)l[2] << 16 | (uint32_t)l[3] << 24;
        if (flen > PQ_MAX_FOOTER_BYTES || flen > size - 12) {
            rc = pq_bad(err, f, "footer length out of range");
        } else {
            /* Chunks must end before the footer starts. */
            f->size = size - 8 - flen;
            struct tr t = { data + f->size, data + size - 8, 0 };
            rc = parse_footer(&t, f, err);
            f->size = size;
        }
    }
    if (rc < 0) {
        pq_close(f);
        return rc;
    }
    *out = f;
    return VC_OK;
}

enum vc_status pq_open(const char *path, struct pq_file **out, struct vc_err *err)
{
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        return vc_err_set(err, VC_ESHARD, VC_REASON_io_error, "%s: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode) || st.st_size < 12) {
        close(fd);
        return vc_err_set(err, VC_ESHARD, VC_REASON_corrupt_archive,
                          "%s: not a valid parquet file (%s)", path,
                          S_ISREG(st.st_mode) ? "too short" : "not a regular file");
    }
    void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (m == MAP_FAILED)
        return vc_err_set(err, VC_ESHARD, VC_REASON_io_error, "%s: mmap: %s", path, strerror(e));
    enum vc_status rc = pq_open_mem(m, (size_t)st.st_size, path, out, err);
    if (rc < 0)
        munmap(m, (size_t)st.st_size);
    else
        (*out)->mapped = true;
    return rc;
}

void pq_close(struct pq_file *f)
{
    if (!f)
        return;
    if (f->mapped)
        munmap((void *)f->data, f->size);
    free(f->label);
    free(f->cols);
    free(f->names);
    free(f->rgs);
    free(f->chunks);
    free(f);
}

uint64_t pq_num_rows(const struct pq_file *f)
{
    return f->rows;
}

size_t pq_num_columns(const struct pq_file *f)
{
    return f->n_cols;
}

const struct pq_column *pq_column_at(const struct pq_file *f, size_t i)
{
    return i < f->n_cols ? &f->cols[i] : NULL;
}

int pq_column_find(const struct pq_file *f, const char *name)
{
    for (size_t i = 0; i < f->n_cols; i++)
        if (strcmp(f->cols[i].name, name) == 0)
            return (int)i;
    return -1;
}

/* ---- pages ---- */

/* RLE/bit-packed hybrid, read one value at a time. */
struct rle {
    const uint8_t *p, *end;
    uint32_t bw, left;
    bool packed;
    uint32_t value;
    const uint8_t *bits, *bits_end;
    uint64_t bitpos;
};

static void rle_init(struct rle *r, const uint8_t *p, const uint8_t *end, uint32_t bw)
{
    memset(r, 0, sizeof *r);
    r->p = p;
    r->end = end;
    r->bw = bw;
}

static bool rle_next(struct rle *r, uint32_t *out)
{
    if (r->left == 0) {
        struct tr t = { r->p, r->end, 0 };
        uint64_t h;
        if (!tr_varint(&t, &h))
            return false;
        r->p = t.p;
        if (h & 1) {
            uint64_t groups = h >> 1;
            if (groups == 0 || groups > (UINT32_MAX >> 3))
                return false;
            r->left = (uint32_t)(groups * 8);
            r->packed = true;
            r->bits = r->p;
            r->bitpos = 0;
            /* The last run may stop short of its declared groups; each
             * value's bits are checked as it is read. */
            uint64_t bytes = groups * r->bw, avail = (uint64_t)(r->end - r->p);
            r->p += bytes < avail ? bytes : avail;
            r->bits_end = r->p;
        } else {
            uint64_t n = h >> 1;
            size_t nb = (r->bw + 7) / 8;
            if (n == 0 || n > UINT32_MAX || (size_t)(r->end - r->p) < nb)
                return false;
            uint32_t v = 0;
            for (size_t i = 0; i < nb; i++)
                v |= (uint32_t)r->p[i] << (8 * i);
            if (r->bw < 32 && v >> r->bw)
                return false;
            r->p += nb;
            r->left = (uint32_t)n;
            r->packed = false;
            r->value = v;
        }
    }
    if (r->packed) {
        uint64_t first = r->bitpos >> 3, last = (r->bitpos + r->bw + 7) >> 3;
        if (r->bw && last > (uint64_t)(r->bits_end - r->bits))
            return false;
        uint64_t acc = 0;
        for (uint64_t i = first; i < last; i++)
            acc |= (uint64_t)r->bits[i] << (8 * (i - first));
        acc >>= r->bitpos & 7;
        *out = (uint32_t)(acc & ((1ull << r->bw) - 1));
        r->bitpos += r->bw;
    } else {
        *out = r->value;
    }
    r->left--;
    return true;
}

struct pq_cursor {
    struct pq_file *f;
    size_t col;
    const struct pq_column *cd;
    size_t rg;
    uint64_t skip;
    const uint8_t *pos, *end; /* pages of the current chunk */
    uint64_t rg_left;         /* values of the chunk not yet paged in */
    int32_t codec;
    /* dictionary of the current chunk */
    uint8_t *dict_buf;
    size_t dict_cap;
    struct pq_value *dict;
    size_t dict_n, dict_alloc;
    bool have_dict, seen_data;
    /* current data page */
    uint8_t *page_buf;
    size_t page_cap;
    uint32_t page_left; /* values (nulls included) left in the page */
    bool has_def, dict_enc, bool_rle;
    struct rle def, idx, bools;
    const uint8_t *vp, *vend;
    uint64_t bit; /* PLAIN booleans */
    struct vc_err err;
};

static enum vc_status cur_bad(struct pq_cursor *c, struct vc_err *err, const char *what)
{
    return vc_err_set(err, VC_ESHARD, VC_REASON_corrupt_archive,
                      "%s: column '%.100s', row group %zu: %s", c->f->label, c->cd->name, c->rg,
                      what);
}

static enum vc_status cur_refuse(struct pq_cursor *c, struct vc_err *err, const char *feature,
                                 const char *name)
{
    return vc_err_set(err, VC_ESHARD, VC_REASON_unsupported_format,
                      "%s: column '%.100s': parquet feature not supported: %s %s", c->f->label,
                      c->cd->name, feature, name);
}

/* A page or dictionary scratch buffer grows to exactly the largest size
 * seen so far, not along vc_grow_array's doubling: it is refilled whole for
 * each page, never appended to, and doubling a 64 MiB page would hold up to
 * twice the bytes any page needs. */
static enum vc_status grow(uint8_t **buf, size_t *cap, size_t want, struct vc_err *err)
{
    if (want <= *cap)
        return VC_OK;
    uint8_t *g = realloc(*buf, want);
    if (!g)
        return vc_err_oom(err);
    *buf = g;
    *cap = want;
    return VC_OK;
}

/* src (n bytes, codec c->codec) -> exactly `want` bytes; *out points at
 * them (into the mapping when uncompressed, else into *buf). */
static enum vc_status decompress(struct pq_cursor *c, const uint8_t *src, size_t n, size_t want,
                                 uint8_t **buf, size_t *cap, const uint8_t **out,
                                 struct vc_err *err)
{
    if (c->codec == CODEC_NONE) {
        if (n != want)
            return cur_bad(c, err, "uncompressed page size differs from its stored size");
        *out = src;
        return VC_OK;
    }
    VC_TRY(grow(buf, cap, want ? want : 1, err));
    bool ok = false;
    if (c->codec == CODEC_SNAPPY) {
        size_t len;
        ok = snappy_uncompressed_length((const char *)src, n, &len) == SNAPPY_OK && len == want &&
             snappy_uncompress((const char *)src, n, (char *)*buf, &len) == SNAPPY_OK &&
             len == want;
    } else if (c->codec == CODEC_GZIP) {
        z_stream z = { 0 };
        if (inflateInit2(&z, 15 + 32) == Z_OK) { /* gzip or zlib header */
            z.next_in = (Bytef *)(uintptr_t)src;
            z.avail_in = (uInt)n;
            z.next_out = *buf;
            z.avail_out = (uInt)want;
            int zr = inflate(&z, Z_FINISH);
            ok = zr == Z_STREAM_END && z.total_out == want;
            inflateEnd(&z);
        }
    } else if (c->codec == CODEC_ZSTD) {
        size_t r = ZSTD_decompress(*buf, want, src, n);
        ok = !ZSTD_isError(r) && r == want;
    }
    if (!ok)
        return cur_bad(c, err, "a page does not decompress to its declared size");
    *out = *buf;
    return VC_OK;
}

/* One PLAIN value from [*p, end); false when the bytes run out. */
static bool plain_value(const struct pq_column *cd, const uint8_t **p, const uint8_t *end,
                        uint64_t *bit, struct pq_value *v)
{
    size_t avail = (size_t)(end - *p);
    v->null = false;
    v->type = cd->type;
    uint64_t u = 0;
    switch (cd->type) {
    case PQ_BOOLEAN:
        if ((*bit >> 3) >= avail)
            return false;
        v->v.b = ((*p)[*bit >> 3] >> (*bit & 7)) & 1;
        ++*bit;
        return true;
    case PQ_INT32:
    case PQ_FLOAT:
        if (avail < 4)
            return false;
        for (int i = 0; i < 4; i++)
            u |= (uint64_t)(*p)[i] << (8 * i);
        *p += 4;
        if (cd->type == PQ_INT32) {
            v->v.i = (int32_t)(uint32_t)u;
        } else {
            uint32_t w = (uint32_t)u;
            float fl;
            memcpy(&fl, &w, 4);
            v->v.d = fl;
        }
        return true;
    case PQ_INT64:
    case PQ_DOUBLE:
        if (avail < 8)
            return false;
        for (int i = 0; i < 8; i++)
            u |= (uint64_t)(*p)[i] << (8 * i);
        *p += 8;
        if (cd->type == PQ_INT64)
            v->v.i = (int64_t)u;
        else
            memcpy(&v->v.d, &u, 8);
        return true;
    case PQ_BYTE_ARRAY:
        if (avail < 4)
            return false;
        u = (uint64_t)(*p)[0] | (uint64_t)(*p)[1] << 8 | (uint64_t)(*p)[2] << 16 |
            (uint64_t)(*p)[3] << 24;
        if (u > avail - 4)
            return false;
        v->v.s.p = *p + 4;
        v->v.s.n = (uint32_t)u;
        *p += 4 + u;
        return true;
    case PQ_FIXED_LEN_BYTE_ARRAY:
        if (avail < (size_t)cd->type_length)
            return false;
        v->v.s.p = *p;
        v->v.s.n = (uint32_t)cd->type_length;
        *p += cd->type_length;
        return true;
    default:
        return false;
    }
}

static enum vc_status read_dict(struct pq_cursor *c, const uint8_t *src, size_t n, uint32_t size,
                                int32_t nvals, int32_t enc, struct vc_err *err)
{
    if (c->have_dict || c->seen_data)
        return cur_bad(c, err, "a dictionary page that is not the chunk's first page");
    if (enc != ENC_PLAIN && enc != ENC_PLAIN_DICT)
        return cur_refuse(c, err, "dictionary encoding", encoding_name(enc));
    if (c->cd->type == PQ_BOOLEAN)
        return cur_bad(c, err, "a dictionary for a boolean column");
    const uint8_t *d;
    VC_TRY(decompress(c, src, n, size, &c->dict_buf, &c->dict_cap, &d, err));
    /* The decompressed bytes must outlive the page buffer. */
    if (d != c->dict_buf) {
        VC_TRY(grow(&c->dict_buf, &c->dict_cap, size ? size : 1, err));
        memcpy(c->dict_buf, d, size);
    }
    /* Every dictionary value takes at least one byte. */
    if (nvals < 0 || (uint64_t)nvals > size)
        return cur_bad(c, err, "dictionary claims more values than its bytes hold");
    if ((size_t)nvals > c->dict_alloc) { /* exact, like grow(): rebuilt per dictionary */
        struct pq_value *g = vc_realloc_array(c->dict, (size_t)nvals, sizeof *g);
        if (!g)
            return vc_err_oom(err);
        c->dict = g;
        c->dict_alloc = (size_t)nvals;
    }
    const uint8_t *p = c->dict_buf, *end = c->dict_buf + size;
    uint64_t bit = 0;
    for (int32_t i = 0; i < nvals; i++)
        if (!plain_value(c->cd, &p, end, &bit, &c->dict[i]))
            return cur_bad(c, err, "dictionary page shorter than its values");
    c->dict_n = (size_t)nvals;
    c->have_dict = true;
    return VC_OK;
}

/* Sets up the value stream [p, end) of a data page with encoding enc. */
static enum vc_status start_values(struct pq_cursor *c, const uint8_t *p, const uint8_t *end,
                                   int32_t enc, struct vc_err *err)
{
    c->dict_enc = c->bool_rle = false;
    c->vp = p;
    c->vend = end;
    c->bit = 0;
    if (enc == ENC_PLAIN_DICT || enc == ENC_RLE_DICT) {
        if (!c->have_dict)
            return cur_bad(c, err, "dictionary-encoded page without a dictionary");
        if (p >= end) {
            /* An all-null page may carry no index stream at all. */
            rle_init(&c->idx, p, end, 0);
        } else {
            if (*p > 32)
                return cur_bad(c, err, "dictionary index bit width above 32");
            rle_init(&c->idx, p + 1, end, *p);
        }
        c->dict_enc = true;
        return VC_OK;
    }
    if (enc == ENC_RLE && c->cd->type == PQ_BOOLEAN) {
        if (end - p < 4)
            return cur_bad(c, err, "RLE boolean page without its length");
        uint32_t len =
            (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
        if (len > (size_t)(end - p - 4))
            return cur_bad(c, err, "RLE boolean length past the page");
        rle_init(&c->bools, p + 4, p + 4 + len, 1);
        c->bool_rle = true;
        return VC_OK;
    }
    if (enc != ENC_PLAIN)
        return cur_refuse(c, err, "encoding", encoding_name(enc));
    return VC_OK;
}

/* A page header's sub-headers: DataPageHeader (5), DictionaryPageHeader
 * (7), DataPageHeaderV2 (8), as in[0..2]. */
struct page_hdr {
    struct tr_ints in[3];
    bool has[3];
};

static int page_field(struct tr *t, int16_t id, int type, void *ctx)
{
    struct page_hdr *h = ctx;
    int k = id == 5 ? 0 : id == 7 ? 1 : id == 8 ? 2 : -1;
    if (k < 0 || type != TT_STRUCT || h->has[k])
        return 0;
    h->has[k] = true;
    return tr_struct(t, &h->in[k], NULL, NULL) ? 1 : -1;
}

/* Parses the page header at c->pos and loads the page (dictionary pages are
 * consumed whole; the loop returns once a data page is loaded). */
static enum vc_status next_page(struct pq_cursor *c, struct vc_err *err)
{
    for (;;) {
        if (c->rg_left == 0)
            return VC_EOF;
        struct tr t = { c->pos, c->end, 0 };
        struct page_hdr h = { 0 };
        struct tr_ints in;
        if (!tr_struct(&t, &in, page_field, &h))
            return cur_bad(c, err, "unreadable page header");
        int32_t ptype = tr_get32(&in, 1, -1), usize = tr_get32(&in, 2, -1),
                csize = tr_get32(&in, 3, -1);
        bool has_v1 = h.has[0], has_dict = h.has[1], has_v2 = h.has[2];
        /* DataPageHeader 1-3, DictionaryPageHeader 1-2, DataPageHeaderV2 1-7 */
        int32_t nvals = has_v2 ? tr_get32(&h.in[2], 1, -1) : tr_get32(&h.in[0], 1, -1);
        int32_t enc = has_v2 ? tr_get32(&h.in[2], 4, -1) : tr_get32(&h.in[0], 2, -1);
        int32_t def_enc = tr_get32(&h.in[0], 3, -1);
        int32_t dict_nvals = tr_get32(&h.in[1], 1, -1), dict_enc = tr_get32(&h.in[1], 2, -1);
        int32_t nnulls = tr_get32(&h.in[2], 2, -1), nrows = tr_get32(&h.in[2], 3, -1);
        int32_t dlen = tr_get32(&h.in[2], 5, -1), rlen = tr_get32(&h.in[2], 6, -1);
        bool is_compressed = !h.in[2].has[7] || h.in[2].v[7] != 0;
        if (usize < 0 || csize < 0 || (uint32_t)usize > PQ_MAX_PAGE_BYTES ||
            (uint32_t)csize > PQ_MAX_PAGE_BYTES)
            return cur_bad(c, err, "page size negative or above the 64 MiB cap");
        if ((size_t)csize > (size_t)(c->end - t.p))
            return cur_bad(c, err, "page runs past its column chunk");
        const uint8_t *body = t.p;
        c->pos = t.p + csize;
        if (ptype == PAGE_INDEX)
            continue;
        if (ptype == PAGE_DICT) {
            if (!has_dict)
                return cur_bad(c, err, "dictionary page without its header");
            VC_TRY(read_dict(c, body, (size_t)csize, (uint32_t)usize, dict_nvals, dict_enc, err));
            continue;
        }
        if (ptype != PAGE_DATA && ptype != PAGE_DATA_V2)
            return cur_bad(c, err, "unknown page type");
        if ((ptype == PAGE_DATA && !has_v1) || (ptype == PAGE_DATA_V2 && !has_v2))
            return cur_bad(c, err, "data page without its header");
        if (nvals < 0 || (uint64_t)nvals > c->rg_left)
            return cur_bad(c, err, "page holds more values than its row group");
        c->seen_data = true;
        c->has_def = c->cd->optional;
        if (ptype == PAGE_DATA) {
            const uint8_t *p;
            VC_TRY(decompress(c, body, (size_t)csize, (size_t)usize, &c->page_buf, &c->page_cap, &p,
                              err));
            const uint8_t *end = p + usize;
            if (c->has_def) {
                if (def_enc != ENC_RLE)
                    return cur_refuse(c, err, "definition level encoding", encoding_name(def_enc));
                if (end - p < 4)
                    return cur_bad(c, err, "page too short for its definition levels");
                uint32_t len = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                               (uint32_t)p[3] << 24;
                if (len > (size_t)(end - p - 4))
                    return cur_bad(c, err, "definition levels past the page");
                rle_init(&c->def, p + 4, p + 4 + len, 1);
                p += 4 + len;
            }
            VC_TRY(start_values(c, p, end, enc, err));
        } else {
            if (nrows != nvals || nnulls < 0 || nnulls > nvals || dlen < 0 || rlen != 0)
                return cur_bad(c, err, "inconsistent v2 page header (rows, nulls or levels)");
            if (dlen > csize || dlen > usize || (!c->has_def && dlen != 0))
                return cur_bad(c, err, "v2 definition levels out of range");
            if (c->has_def)
                rle_init(&c->def, body, body + dlen, 1);
            const uint8_t *p;
            size_t vin = (size_t)(csize - dlen), vout = (size_t)(usize - dlen);
            if (is_compressed) {
                VC_TRY(decompress(c, body + dlen, vin, vout, &c->page_buf, &c->page_cap, &p, err));
            } else {
                if (vin != vout)
                    return cur_bad(c, err, "uncompressed page size differs from its stored size");
                p = body + dlen;
            }
            VC_TRY(start_values(c, p, p + vout, enc, err));
        }
        c->page_left = (uint32_t)nvals;
        c->rg_left -= (uint64_t)nvals;
        if (nvals > 0)
            return VC_OK;
    }
}

static enum vc_status open_rg(struct pq_cursor *c, struct vc_err *err)
{
    const struct pq_chunk *ch = &c->f->rgs[c->rg].chunks[c->col];
    c->pos = c->f->data + ch->begin;
    c->end = c->f->data + ch->end;
    c->rg_left = c->f->rgs[c->rg].rows;
    c->codec = ch->codec;
    c->have_dict = c->seen_data = false;
    c->dict_n = 0;
    c->page_left = 0;
    if (c->codec != CODEC_NONE && c->codec != CODEC_SNAPPY && c->codec != CODEC_GZIP &&
        c->codec != CODEC_ZSTD)
        return cur_refuse(c, err, "codec", codec_name(c->codec));
    return VC_OK;
}

enum vc_status pq_cursor_open(struct pq_file *f, size_t column, uint64_t first,
                              struct pq_cursor **out, struct vc_err *err)
{
    *out = NULL;
    if (column >= f->n_cols)
        return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec, "%s: no column %zu", f->label,
                          column);
    struct pq_cursor *c = calloc(1, sizeof *c);
    if (!c)
        return vc_err_oom(err);
    c->f = f;
    c->col = column;
    c->cd = &f->cols[column];
    if (c->cd->nested || c->cd->type == PQ_INT96) {
        enum vc_status rc = c->cd->nested ? cur_refuse(c, err, "nested or repeated", "field")
                                          : cur_refuse(c, err, "type", "INT96");
        free(c);
        return rc;
    }
    /* Whole row groups before `first` are skipped by their row counts. */
    while (c->rg < f->n_rgs && f->rgs[c->rg].rows <= first)
        first -= f->rgs[c->rg++].rows;
    c->skip = first;
    enum vc_status rc = c->rg < f->n_rgs ? open_rg(c, err) : VC_OK;
    if (rc < 0) {
        pq_cursor_close(c);
        return rc;
    }
    *out = c;
    return VC_OK;
}

/* Skips whole data pages before c->skip without decompressing them. */
static enum vc_status fetch_page(struct pq_cursor *c, struct vc_err *err)
{
    for (;;) {
        if (c->rg >= c->f->n_rgs)
            return VC_EOF;
        enum vc_status rc = next_page(c, err);
        if (rc == VC_OK) {
            if (c->skip >= c->page_left) {
                c->skip -= c->page_left;
                c->page_left = 0;
                continue;
            }
            return VC_OK;
        }
        if (rc != VC_EOF)
            return rc;
        if (++c->rg < c->f->n_rgs)
            VC_TRY(open_rg(c, err));
    }
}

static enum vc_status read_one(struct pq_cursor *c, struct pq_value *v, struct vc_err *err)
{
    uint32_t u;
    c->page_left--;
    if (c->has_def) {
        if (!rle_next(&c->def, &u) || u > 1)
            return cur_bad(c, err, "bad definition levels");
        if (u == 0) {
            memset(v, 0, sizeof *v);
            v->null = true;
            v->type = c->cd->type;
            return VC_OK;
        }
    }
    if (c->dict_enc) {
        if (!rle_next(&c->idx, &u) || u >= c->dict_n)
            return cur_bad(c, err, "dictionary index out of range or missing");
        *v = c->dict[u];
        return VC_OK;
    }
    if (c->bool_rle) {
        if (!rle_next(&c->bools, &u) || u > 1)
            return cur_bad(c, err, "bad RLE booleans");
        memset(v, 0, sizeof *v);
        v->type = PQ_BOOLEAN;
        v->v.b = u;
        return VC_OK;
    }
    if (!plain_value(c->cd, &c->vp, c->vend, &c->bit, v))
        return cur_bad(c, err, "page shorter than its values");
    return VC_OK;
}

enum vc_status pq_cursor_next(struct pq_cursor *c, struct pq_value *v, struct vc_err *err)
{
    if (c->err.status < 0)
        return *err = c->err, c->err.status;
    enum vc_status rc = VC_OK;
    for (;;) {
        if (c->page_left == 0 && (rc = fetch_page(c, err)) != VC_OK)
            break;
        if ((rc = read_one(c, v, err)) < 0 || c->skip == 0)
            break;
        c->skip--;
    }
    if (rc == VC_OK && !v->null && c->cd->is_unsigned)
        v->v.u = c->cd->type == PQ_INT32 ? (uint32_t)v->v.i : (uint64_t)v->v.i;
    v->is_unsigned = c->cd->is_unsigned;
    if (rc < 0)
        c->err = *err;
    return rc;
}

void pq_cursor_close(struct pq_cursor *c)
{
    if (!c)
        return;
    free(c->dict_buf);
    free(c->dict);
    free(c->page_buf);
    free(c);
}
