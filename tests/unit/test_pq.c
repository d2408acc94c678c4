/* The parquet reader on files assembled byte by byte here (a thrift
 * compact encoder of a few lines, following parquet.thrift): a minimal
 * valid file reads back its values, and each hostile variant is refused
 * with the check that should catch it, naming the file and the problem:
 * offsets outside the data area, value counts that disagree, short pages,
 * list sizes beyond the footer, nesting bombs, refused codecs and
 * encodings, nested schemas, row counts that do not add up. */
#include "vc_test.h"

#include "stages/pq.h"

#include <stdlib.h>
#include <string.h>

struct tw {
    uint8_t b[4096];
    size_t n;
    int16_t last[64];
    int depth;
};

static void put(struct tw *w, uint8_t c)
{
    w->b[w->n++] = c;
}

static void varint(struct tw *w, uint64_t v)
{
    do {
        uint8_t c = v & 0x7f;
        v >>= 7;
        put(w, (uint8_t)(c | (v ? 0x80 : 0)));
    } while (v);
}

static void field(struct tw *w, int16_t id, int type)
{
    int16_t d = (int16_t)(id - w->last[w->depth]);
    if (d > 0 && d < 16) {
        put(w, (uint8_t)(d << 4 | type));
    } else {
        put(w, (uint8_t)type);
        varint(w, (uint64_t)((id << 1) ^ (id >> 15)));
    }
    w->last[w->depth] = id;
}

static void f_int(struct tw *w, int16_t id, int type, int64_t v)
{
    field(w, id, type);
    varint(w, (uint64_t)((v << 1) ^ (v >> 63)));
}

static void f_str(struct tw *w, int16_t id, const char *s)
{
    field(w, id, 8);
    varint(w, strlen(s));
    memcpy(w->b + w->n, s, strlen(s));
    w->n += strlen(s);
}

static void begin(struct tw *w, int16_t id) /* id 0: a list element */
{
    if (id)
        field(w, id, 12);
    w->last[++w->depth] = 0;
}

static void end(struct tw *w)
{
    put(w, 0);
    w->depth--;
}

static void list(struct tw *w, int16_t id, int etype, unsigned n)
{
    field(w, id, 9);
    put(w, (uint8_t)(n < 15 ? n << 4 | (unsigned)etype : 0xf0 | (unsigned)etype));
    if (n >= 15)
        varint(w, n);
}

/* What a variant changes in the minimal file (one required INT32 column
 * "x" holding 7, -1, 42 in one PLAIN data page). */
struct variant {
    int64_t data_off_delta, file_rows, page_values, codec, encoding;
    int schema_claim; /* elements the schema list claims (default 2) */
    size_t column;    /* the column read_all reads */
    /* nested: a group `g` holding a repeated INT32 `y` follows `x`, as
     * DataComp's face_bboxes list follows its flat columns. */
    bool nested, short_page, deep;
};

static size_t build(const struct variant *v, uint8_t *out)
{
    struct tw pg = { 0 };
    begin(&pg, 0);
    f_int(&pg, 1, 5, 0);  /* DATA_PAGE */
    f_int(&pg, 2, 5, 12); /* uncompressed size */
    f_int(&pg, 3, 5, v->short_page ? 8 : 12);
    begin(&pg, 5);
    f_int(&pg, 1, 5, v->page_values ? v->page_values : 3);
    f_int(&pg, 2, 5, v->encoding);
    f_int(&pg, 3, 5, 3);
    f_int(&pg, 4, 5, 3);
    end(&pg);
    end(&pg);
    static const int32_t vals[] = { 7, -1, 42 };
    size_t page_len = pg.n + (v->short_page ? 8 : 12);

    struct tw f = { 0 };
    begin(&f, 0);
    f_int(&f, 1, 5, 1);
    list(&f, 2, 12, v->schema_claim ? (unsigned)v->schema_claim : 2u + 2u * v->nested);
    begin(&f, 0);
    f_str(&f, 4, "schema");
    f_int(&f, 5, 5, v->nested ? 2 : 1);
    end(&f);
    begin(&f, 0);
    f_int(&f, 1, 5, 1); /* INT32 */
    f_int(&f, 3, 5, 0); /* REQUIRED */
    f_str(&f, 4, "x");
    end(&f);
    if (v->nested) {
        begin(&f, 0);
        f_str(&f, 4, "g");
        f_int(&f, 5, 5, 1);
        end(&f);
        begin(&f, 0);
        f_int(&f, 1, 5, 1); /* INT32 */
        f_int(&f, 3, 5, 2); /* REPEATED */
        f_str(&f, 4, "y");
        end(&f);
    }
    f_int(&f, 3, 6, v->file_rows ? v->file_rows : 3);
    list(&f, 4, 12, 1);
    begin(&f, 0);
    list(&f, 1, 12, 1u + v->nested);
    for (int col = 0; col < 1 + v->nested; col++) {
        begin(&f, 0);
        f_int(&f, 2, 6, 4);
        begin(&f, 3);
        f_int(&f, 1, 5, 1);
        list(&f, 2, 5, 1);
        varint(&f, 0);
        list(&f, 3, 8, 1u + (unsigned)col);
        varint(&f, 1);
        put(&f, col ? 'g' : 'x');
        if (col) {
            varint(&f, 1);
            put(&f, 'y');
        }
        f_int(&f, 4, 5, v->codec);
        /* A repeated column counts list elements, not rows. */
        f_int(&f, 5, 6, col ? 5 : 3);
        f_int(&f, 6, 6, (int64_t)page_len);
        f_int(&f, 7, 6, (int64_t)page_len);
        f_int(&f, 9, 6, 4 + v->data_off_delta);
        end(&f);
        end(&f);
    }
    f_int(&f, 3, 6, 3);
    end(&f);
    if (v->deep) { /* an unknown field nested 40 structs deep */
        for (int i = 0; i < 40; i++)
            begin(&f, 20);
        for (int i = 0; i < 40; i++)
            end(&f);
    }
    end(&f);

    size_t n = 0;
    memcpy(out, "PAR1", 4), n = 4;
    memcpy(out + n, pg.b, pg.n), n += pg.n;
    for (int i = 0; i < (v->short_page ? 2 : 3); i++, n += 4)
        for (int k = 0; k < 4; k++)
            out[n + k] = (uint8_t)((uint32_t)vals[i] >> (8 * k));
    memcpy(out + n, f.b, f.n), n += f.n;
    for (int k = 0; k < 4; k++)
        out[n++] = (uint8_t)(f.n >> (8 * k));
    memcpy(out + n, "PAR1", 4);
    return n + 4;
}

/* Opens and reads column 0 to the end; the first failure's message. */
static enum vc_status read_all(const struct variant *v, int64_t *got, size_t *n_got,
                               struct vc_err *err)
{
    static uint8_t buf[8192];
    size_t n = build(v, buf);
    struct pq_file *f;
    *n_got = 0;
    VC_TRY(pq_open_mem(buf, n, "t.parquet", &f, err));
    struct pq_cursor *c;
    enum vc_status rc = pq_cursor_open(f, v->column, 0, &c, err);
    struct pq_value val;
    while (rc == VC_OK && (rc = pq_cursor_next(c, &val, err)) == VC_OK)
        got[(*n_got)++] = val.v.i;
    if (rc != VC_OK && rc != VC_EOF)
        pq_cursor_close(c), c = NULL;
    if (c)
        pq_cursor_close(c);
    pq_close(f);
    return rc == VC_EOF ? VC_OK : rc;
}

static void refused(const struct variant *v, enum vc_reason reason, const char *msg_has)
{
    int64_t got[16];
    size_t n;
    struct vc_err err = { 0 };
    enum vc_status rc = read_all(v, got, &n, &err);
    CHECK_INT(rc, VC_ESHARD);
    CHECK_INT(err.reason, reason);
    if (!strstr(err.msg, msg_has) || !strstr(err.msg, "t.parquet")) {
        fprintf(stderr, "message '%s' lacks '%s' or the file name\n", err.msg, msg_has);
        vc_test_failures++;
    }
}

TEST(minimal_file_reads_back)
{
    struct variant v = { 0 };
    int64_t got[16];
    size_t n;
    struct vc_err err = { 0 };
    CHECK_INT(read_all(&v, got, &n, &err), VC_OK);
    CHECK_INT(n, 3);
    CHECK_INT(got[0], 7);
    CHECK_INT(got[1], -1);
    CHECK_INT(got[2], 42);
}

TEST(hostile_variants_refused)
{
    refused(&(struct variant){ .data_off_delta = 100000 }, VC_REASON_corrupt_archive,
            "outside the data area");
    refused(&(struct variant){ .data_off_delta = -3 }, VC_REASON_corrupt_archive,
            "outside the data area");
    refused(&(struct variant){ .page_values = 4 }, VC_REASON_corrupt_archive,
            "more values than its row group");
    refused(&(struct variant){ .short_page = true }, VC_REASON_corrupt_archive,
            "uncompressed page size differs");
    refused(&(struct variant){ .schema_claim = 100000 }, VC_REASON_corrupt_archive,
            "schema is not a list");
    refused(&(struct variant){ .deep = true }, VC_REASON_corrupt_archive, "unreadable footer");
    refused(&(struct variant){ .file_rows = 5 }, VC_REASON_corrupt_archive, "do not add up");
    refused(&(struct variant){ .codec = 4 }, VC_REASON_unsupported_format, "codec BROTLI");
    refused(&(struct variant){ .codec = 9 }, VC_REASON_corrupt_archive, "unknown compression");
    refused(&(struct variant){ .encoding = 5 }, VC_REASON_unsupported_format,
            "DELTA_BINARY_PACKED");
    refused(&(struct variant){ .nested = true, .column = 1 }, VC_REASON_unsupported_format,
            "column 'g': parquet feature not supported: nested or repeated field");
}

/* A list column beside flat ones (DataComp's face_bboxes) must not make
 * the flat ones unreadable: the file opened to nothing before. */
TEST(flat_column_beside_a_nested_one)
{
    int64_t got[16];
    size_t n;
    struct vc_err err = { 0 };
    CHECK_INT(read_all(&(struct variant){ .nested = true }, got, &n, &err), VC_OK);
    CHECK_INT(n, 3);
    CHECK_INT(got[0], 7);
    CHECK_INT(got[2], 42);
}

#define TESTS(X)                                                                                   \
    X(minimal_file_reads_back) X(hostile_variants_refused) X(flat_column_beside_a_nested_one)
TEST_MAIN(TESTS)
