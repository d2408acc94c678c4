/* src_lines: a byte-at-a-time record scanner over stdio (buffered, so a
 * list of millions of lines splits at disk speed).  Quote state is the
 * only thing carried between bytes; a record that passes max_record is
 * scanned to its end without being kept. */
#include "src_lines.h"

#include "core/vc_buf.h"
#include "core/vc_mem.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct lines_reader {
    FILE *f;
    enum lines_format fmt;
    uint64_t pos, end, max, count;
    uint64_t nl, rec_nl; /* newlines read; newlines before the last record began */
    struct vc_buf buf;
    char *path;
};

enum vc_status lines_sniff(const char *path, enum lines_format *out, struct vc_err *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return vc_err_set(err, VC_ESHARD, VC_REASON_io_error, "%s: %s", path, strerror(errno));
    int c;
    while ((c = getc(f)) == ' ' || c == '\n' || c == '\r' || c == '\t' || c == 0xEF || c == 0xBB ||
           c == 0xBF)
        ;
    if (c == '[') {
        /* One JSON document holding a list (LLaVA-style annotation files),
         * which a line reader would take for a CSV header or for one
         * record per line of the list. */
        fclose(f);
        return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec,
                          "%s: a JSON array, not JSON Lines (one object per line): convert it, "
                          "e.g. jq -c '.[]' FILE > FILE.jsonl",
                          path);
    }
    if (c == '{') {
        *out = LINES_JSONL;
    } else {
        *out = LINES_CSV;
        for (; c != EOF && c != '\n'; c = getc(f))
            if (c == '\t')
                *out = LINES_TSV;
    }
    fclose(f);
    return VC_OK;
}

enum vc_status lines_refuse_packed(const char *where, const char *path, uint8_t head[4],
                                   size_t *n_head, struct vc_err *err)
{
    uint8_t m[4] = { 0 };
    FILE *f = fopen(path, "rb");
    if (!f)
        return vc_err_set(err, VC_ESHARD, VC_REASON_io_error, "%s: %s", path, strerror(errno));
    const size_t got = fread(m, 1, sizeof m, f);
    fclose(f);
    if (head) {
        memcpy(head, m, sizeof m);
        *n_head = got;
    }
    const char *packed = got >= 2 && m[0] == 0x1f && m[1] == 0x8b            ? "gzip"
                         : got == 4 && memcmp(m, "\x28\xb5\x2f\xfd", 4) == 0 ? "zstd"
                         : got == 4 && memcmp(m, "BZh", 3) == 0 && m[3] >= '1' && m[3] <= '9'
                             ? "bzip2"
                             : NULL;
    if (!packed)
        return VC_OK;
    return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec,
                      "%s: %s is %s-compressed; list files are read as plain CSV/TSV/JSONL "
                      "(units are byte ranges): decompress it first",
                      where, path, packed);
}

enum vc_status lines_open(const char *path, enum lines_format fmt, uint64_t begin, uint64_t end,
                          uint64_t max_record, struct lines_reader **out, struct vc_err *err)
{
    struct lines_reader *r = calloc(1, sizeof *r);
    if (!r || !(r->path = vc_strdup(path))) {
        free(r);
        return vc_err_oom(err);
    }
    r->f = fopen(path, "rb");
    if (!r->f || fseeko(r->f, (off_t)begin, SEEK_SET) != 0) {
        vc_err_set(err, VC_ESHARD, VC_REASON_io_error, "%s: %s", path, strerror(errno));
        lines_close(r);
        return VC_ESHARD;
    }
    r->fmt = fmt;
    r->pos = begin;
    r->end = end;
    r->max = max_record;
    vc_buf_init(&r->buf, max_record + 1 < max_record ? max_record : max_record + 1);
    *out = r;
    return VC_OK;
}

/* Where a CSV/TSV scanner stands within a field.  As in RFC 4180 and
 * Python's csv module, a quote opens a quoted field only as the field's
 * first character: one inside an unquoted field (`a 5" screen`) is text,
 * and must not make the next newline part of the record. */
enum csv_state { CSV_FIELD_START, CSV_UNQUOTED, CSV_QUOTED, CSV_QUOTE_IN_QUOTED };

static enum csv_state csv_step(enum csv_state st, int c, char sep)
{
    switch (st) {
    case CSV_QUOTED:
        return c == '"' ? CSV_QUOTE_IN_QUOTED : CSV_QUOTED;
    case CSV_QUOTE_IN_QUOTED: /* a closing quote, or the first of a doubled one */
        if (c == '"')
            return CSV_QUOTED;
        return c == sep ? CSV_FIELD_START : CSV_UNQUOTED;
    case CSV_FIELD_START:
        if (c == '"')
            return CSV_QUOTED;
        return c == sep ? CSV_FIELD_START : CSV_UNQUOTED;
    case CSV_UNQUOTED:
        break;
    }
    return c == sep ? CSV_FIELD_START : CSV_UNQUOTED;
}

/* Scans one record; keeps its bytes when `keep`.  *start gets its offset.
 * Returns 1 for a record, 0 at end of file, -1 on a read error. */
static int scan(struct lines_reader *r, bool keep, uint64_t *start, bool *too_long)
{
    bool any = false;
    enum csv_state st = CSV_FIELD_START;
    char sep = r->fmt == LINES_TSV ? '\t' : ',';
    int c;
    r->buf.len = 0;
    r->buf.failed = 0;
    *too_long = false;
    for (;;) {
        c = getc_unlocked(r->f);
        if (c == EOF)
            break;
        r->pos++;
        if (!any) {
            r->nl += c == '\n';
            if (c == '\n' || c == '\r')
                continue; /* blank lines are not records */
            any = true;
            *start = r->pos - 1;
            r->rec_nl = r->nl;
        } else {
            r->nl += c == '\n';
        }
        if (c == '\n' && (r->fmt == LINES_JSONL || st != CSV_QUOTED))
            break;
        if (r->fmt != LINES_JSONL)
            st = csv_step(st, c, sep);
        if (!keep || *too_long)
            continue;
        char ch = (char)c;
        if (r->buf.len >= r->max || vc_buf_append(&r->buf, &ch, 1) != 0)
            *too_long = true;
    }
    if (ferror(r->f))
        return -1;
    if (!any)
        return 0;
    while (r->buf.len && r->buf.data[r->buf.len - 1] == '\r')
        r->buf.data[--r->buf.len] = '\0';
    return 1;
}

enum vc_status lines_next(struct lines_reader *r, char **rec, size_t *len, struct vc_err *err)
{
    if (r->pos >= r->end)
        return VC_EOF;
    uint64_t start = 0;
    bool too_long;
    int k = scan(r, true, &start, &too_long);
    if (k < 0)
        return vc_err_set(err, VC_ESHARD, VC_REASON_io_error, "%s: read error", r->path);
    if (k == 0 || start >= r->end)
        return VC_EOF;
    r->count++;
    if (too_long)
        return vc_err_set(err, VC_ESAMPLE, VC_REASON_field_too_long,
                          "record at byte %llu is longer than %llu bytes",
                          (unsigned long long)start, (unsigned long long)r->max);
    if (!r->buf.data && vc_buf_append(&r->buf, "", 0) != 0)
        return vc_err_oom(err);
    /* A CSV cell becomes a C string (a json member, the caption, the URL),
     * which a NUL would end there in silence.  JSONL is JSON's to judge
     * (vc_json_find_nul). */
    const char *nul = r->fmt == LINES_JSONL ? NULL : memchr(r->buf.data, '\0', r->buf.len);
    if (nul)
        return vc_err_set(err, VC_ESAMPLE, VC_REASON_text_not_utf8,
                          "a NUL byte at byte %zu of the record: it would cut its text short",
                          (size_t)(nul - r->buf.data));
    *rec = r->buf.data;
    *len = r->buf.len;
    return VC_OK;
}

uint64_t lines_pos(const struct lines_reader *r)
{
    return r->pos;
}

uint64_t lines_count(const struct lines_reader *r)
{
    return r->count;
}

void lines_close(struct lines_reader *r)
{
    if (!r)
        return;
    if (r->f)
        fclose(r->f);
    vc_buf_free(&r->buf);
    free(r->path);
    free(r);
}

enum vc_status lines_split(const char *path, enum lines_format f, uint64_t begin, uint64_t per_unit,
                           struct source_unit **units, size_t *n, struct vc_err *err)
{
    /* From the top, so that line numbers count the header's lines too. */
    struct lines_reader *r;
    VC_TRY(lines_open(path, f, 0, UINT64_MAX, 0, &r, err));
    struct source_unit *u = NULL;
    size_t nu = 0, cap = 0;
    uint64_t start = 0, records = 0;
    bool too_long;
    int k;
    enum vc_status rc = VC_OK;
    while ((k = scan(r, false, &start, &too_long)) > 0) {
        if (start < begin || records++ % per_unit)
            continue;
        struct source_unit *g = vc_grow_array(u, &cap, nu + 1, sizeof *g, 16);
        if (!g) {
            rc = vc_err_oom(err);
            break;
        }
        u = g;
        if (nu)
            u[nu - 1].end = start;
        u[nu] = (struct source_unit){
            .file = vc_strdup(path),
            .begin = start,
            .end = UINT64_MAX,
            .first_record = records - 1,
            .first_line = r->rec_nl + 1,
        };
        if (!u[nu++].file) {
            rc = vc_err_oom(err);
            break;
        }
    }
    if (rc == VC_OK && k < 0)
        rc = vc_err_set(err, VC_ESHARD, VC_REASON_io_error, "%s: read error", path);
    lines_close(r);
    if (rc < 0) {
        for (size_t i = 0; i < nu; i++)
            free(u[i].file);
        free(u);
        return rc;
    }
    *units = u;
    *n = nu;
    return VC_OK;
}

size_t lines_split_fields(char *rec, size_t len, char sep, char **fields, size_t max)
{
    size_t nf = 0, i = 0;
    while (i <= len && nf < max) {
        char *w = rec + i, *out = w;
        fields[nf++] = out;
        bool quoted = i < len && rec[i] == '"';
        if (quoted)
            i++;
        for (; i < len; i++) {
            char c = rec[i];
            if (quoted && c == '"') {
                if (i + 1 < len && rec[i + 1] == '"') {
                    *out++ = '"';
                    i++;
                    continue;
                }
                quoted = false;
                continue;
            }
            if (!quoted && c == sep)
                break;
            *out++ = c;
        }
        *out = '\0';
        i++; /* past the separator (or the end) */
    }
    return nf;
}

enum vc_status lines_read_header(const char *path, enum lines_format f, uint64_t max_record,
                                 const char *where, char **header, char **cols, size_t max_cols,
                                 size_t *n_cols, uint64_t *data_begin, struct vc_err *err)
{
    struct lines_reader *r;
    VC_TRY(lines_open(path, f, 0, UINT64_MAX, max_record, &r, err));
    char *rec;
    size_t len;
    enum vc_status rc = lines_next(r, &rec, &len, err);
    /* Excel's "CSV UTF-8" and Windows tools start the file with a byte
     * order mark, which would otherwise become part of the first column's
     * name. */
    if (rc == VC_OK && len >= 3 && memcmp(rec, "\xEF\xBB\xBF", 3) == 0) {
        rec += 3;
        len -= 3;
    }
    if (rc == VC_OK) {
        *header = vc_strndup(rec, len);
        if (!*header)
            rc = vc_err_oom(err);
    } else if (rc == VC_EOF) {
        rc =
            vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec, "%s: %s has no header row", where, path);
    }
    if (rc == VC_OK) {
        *data_begin = lines_pos(r);
        *n_cols = lines_split_fields(*header, strlen(*header), f == LINES_TSV ? '\t' : ',', cols,
                                     max_cols);
    }
    lines_close(r);
    return rc;
}

enum vc_status lines_cursor_open(const void *src, const struct source_unit *u, enum lines_format f,
                                 uint64_t max_record, void **cursor, struct vc_err *err)
{
    struct lines_cursor *c = calloc(1, sizeof *c);
    if (!c)
        return vc_err_oom(err);
    c->src = src;
    c->u = u;
    enum vc_status rc = lines_open(u->file, f, u->begin, u->end, max_record, &c->r, err);
    if (rc < 0) {
        free(c);
        return rc;
    }
    *cursor = c;
    return VC_OK;
}

enum vc_status lines_cursor_next(struct lines_cursor *c, struct sample *s, char **rec, size_t *len,
                                 struct vc_err *err)
{
    enum vc_status rc = lines_next(c->r, rec, len, err);
    s->src_file = c->u->file;
    s->src_index = c->u->first_record + lines_count(c->r) - 1;
    return rc == VC_ESAMPLE ? lines_cursor_error(c, err) : rc;
}

enum vc_status lines_cursor_error(const struct lines_cursor *c, struct vc_err *err)
{
    return vc_err_prefix(err, "line %llu", (unsigned long long)(c->u->first_line + c->r->rec_nl));
}

void lines_cursor_close(void *cursor)
{
    struct lines_cursor *c = cursor;
    lines_close(c->r);
    free(c->buf);
    free(c);
}
