/* wds_write: ustar headers written by hand (the format is 512 bytes of
 * fixed fields; doing it here makes offsets and determinism exact and keeps
 * pax or GNU records out by construction), streamed through zlib or libzstd
 * into a temporary file whose bytes are hashed on the way out.
 *
 * Never: write a member name the ustar name field cannot hold whole, emit
 * anything time- or host-dependent, or leave a partial file under the final
 * name.  Limits come from the ustar format (100-byte names, 11 octal digits
 * of size) and from WDS_MAX_INDEX_BYTES below. */
#include "wds_write.h"

#include "core/vc_utf8.h"
#include "core/sha256.h"
#include "core/vc_buf.h"
#include "core/vc_fs.h"
#include "core/vc_mem.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

enum {
    TAR_BLOCK = 512,
    /* GNU tar's default blocking factor 20: tar and tarfile pad to it. */
    TAR_RECORD = 20 * TAR_BLOCK,
    /* Bytes staged before a write(2): a few syscalls per megabyte. */
    WDS_OUT_BUF = 256 * 1024,
    /* gzip's own default level; images are already compressed, more effort
     * buys almost nothing on shards. */
    WDS_GZIP_LEVEL = 6,
    /* zstd's default level, for the same reason. */
    WDS_ZSTD_LEVEL = 3,
};
/* The DALI index is ~40 bytes per member: 256 MiB is millions of members,
 * far beyond any shard the pipeline writes. */
#define WDS_MAX_INDEX_BYTES ((size_t)256 << 20)

struct wds_writer {
    char *path, *tmp_path; /* owned */
    int fd;
    enum wds_compression comp;
    z_stream z;
    bool z_live;
    ZSTD_CCtx *zc;
    uint8_t *out; /* WDS_OUT_BUF bytes on their way to fd */
    size_t n_out;
    uint8_t *zbuf; /* compressor output chunk */
    size_t zbuf_cap;
    struct sha256 sha;
    uint64_t n_samples, tar_bytes, file_bytes;
    struct vc_buf idx; /* DALI index lines, uncompressed shards only */
    bool tmp_live;     /* the temporary file exists and is ours to remove */
    bool dead;         /* an I/O error happened: `fail` says which */
    struct vc_err fail;
};

enum wds_compression wds_compression_from_name(const char *name)
{
    if (name && strcmp(name, "none") == 0)
        return WDS_COMPRESS_NONE;
    if (name && strcmp(name, "gz") == 0)
        return WDS_COMPRESS_GZIP;
    if (name && strcmp(name, "zst") == 0)
        return WDS_COMPRESS_ZSTD;
    return (enum wds_compression) - 1;
}

const char *wds_compression_suffix(enum wds_compression c)
{
    switch (c) {
    case WDS_COMPRESS_NONE:
        return ".tar";
    case WDS_COMPRESS_GZIP:
        return ".tar.gz";
    case WDS_COMPRESS_ZSTD:
        return ".tar.zst";
    }
    return ".tar";
}

size_t wds_dali_index_path(const char *shard_path, char *out, size_t out_cap)
{
    static const char *const suffixes[] = { ".tar.gz", ".tar.zst", ".tar" };
    size_t n = strlen(shard_path);
    for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
        size_t k = strlen(suffixes[i]);
        if (n > k && strcmp(shard_path + n - k, suffixes[i]) == 0) {
            n -= k;
            break;
        }
    }
    if (out_cap > 0)
        snprintf(out, out_cap, "%.*s.idx", (int)n, shard_path);
    return n + 4;
}

/* Marks the writer dead with an I/O error; every later call repeats it. */
static enum vc_status die(struct wds_writer *w, struct vc_err *err, const char *what, int e)
{
    if (!w->dead) {
        w->dead = true;
        vc_err_set(&w->fail, VC_EFATAL, VC_REASON_io_error, "%s '%s': %s", what, w->tmp_path,
                   e ? strerror(e) : "failed");
    }
    if (err)
        *err = w->fail;
    return VC_EFATAL;
}

static enum vc_status flush_out(struct wds_writer *w, struct vc_err *err)
{
    size_t done = 0;
    while (done < w->n_out) {
        ssize_t put = write(w->fd, w->out + done, w->n_out - done);
        if (put < 0 && errno == EINTR)
            continue;
        if (put <= 0)
            return die(w, err, "cannot write", put < 0 ? errno : ENOSPC);
        done += (size_t)put;
    }
    w->n_out = 0;
    return VC_OK;
}

/* Bytes as they will be on disk: hashed, counted, staged. */
static enum vc_status file_put(struct wds_writer *w, const uint8_t *p, size_t n, struct vc_err *err)
{
    sha256_update(&w->sha, p, n);
    w->file_bytes += n;
    while (n > 0) {
        size_t k = WDS_OUT_BUF - w->n_out;
        if (k > n)
            k = n;
        memcpy(w->out + w->n_out, p, k);
        w->n_out += k;
        p += k;
        n -= k;
        if (w->n_out == WDS_OUT_BUF)
            VC_TRY(flush_out(w, err));
    }
    return VC_OK;
}

/* Runs the compressor over n bytes of tar (finish: and ends its stream). */
static enum vc_status compress_put(struct wds_writer *w, const uint8_t *p, size_t n, bool finish,
                                   struct vc_err *err)
{
    if (w->comp == WDS_COMPRESS_GZIP) {
        w->z.next_in = (Bytef *)(uintptr_t)p;
        w->z.avail_in = (uInt)n;
        for (;;) {
            w->z.next_out = w->zbuf;
            w->z.avail_out = (uInt)w->zbuf_cap;
            int rc = deflate(&w->z, finish ? Z_FINISH : Z_NO_FLUSH);
            if (rc == Z_STREAM_ERROR)
                return die(w, err, "gzip failed on", 0);
            VC_TRY(file_put(w, w->zbuf, w->zbuf_cap - w->z.avail_out, err));
            if (finish ? rc == Z_STREAM_END : (w->z.avail_in == 0 && w->z.avail_out != 0))
                return VC_OK;
        }
    }
    ZSTD_inBuffer in = { p, n, 0 };
    for (;;) {
        ZSTD_outBuffer zo = { w->zbuf, w->zbuf_cap, 0 };
        size_t left = ZSTD_compressStream2(w->zc, &zo, &in, finish ? ZSTD_e_end : ZSTD_e_continue);
        if (ZSTD_isError(left))
            return die(w, err, "zstd failed on", 0);
        VC_TRY(file_put(w, w->zbuf, zo.pos, err));
        if (finish ? left == 0 : in.pos == in.size)
            return VC_OK;
    }
}

/* Bytes of the uncompressed tar. */
static enum vc_status tar_put(struct wds_writer *w, const void *p, size_t n, struct vc_err *err)
{
    w->tar_bytes += n;
    if (w->comp == WDS_COMPRESS_NONE)
        return file_put(w, p, n, err);
    /* zlib counts in uInt: feed huge members in slices. */
    const uint8_t *b = p;
    while (n > 0) {
        size_t k = n > (1u << 30) ? (1u << 30) : n;
        VC_TRY(compress_put(w, b, k, false, err));
        b += k;
        n -= k;
    }
    return VC_OK;
}

static void octal(char *field, size_t width, uint64_t v)
{
    /* width - 1 digits, zero-padded, then the NUL tar expects. */
    field[width - 1] = '\0';
    for (size_t i = width - 1; i-- > 0;) {
        field[i] = (char)('0' + (v & 7));
        v >>= 3;
    }
}

static void ustar_header(uint8_t h[TAR_BLOCK], const char *key, const char *field, uint64_t size)
{
    memset(h, 0, TAR_BLOCK);
    char *c = (char *)h;
    size_t kn = strlen(key), fn = strlen(field);
    /* Exactly 100 bytes is allowed: the field then has no NUL, as POSIX
     * permits and every reader handles. */
    memcpy(c, key, kn);
    c[kn] = '.';
    memcpy(c + kn + 1, field, fn);
    octal(c + 100, 8, 0644);
    octal(c + 108, 8, 0);
    octal(c + 116, 8, 0);
    octal(c + 124, 12, size);
    octal(c + 136, 12, 0);
    c[156] = '0';
    memcpy(c + 257, "ustar", 6); /* magic with its NUL */
    memcpy(c + 263, "00", 2);
    octal(c + 329, 8, 0);
    octal(c + 337, 8, 0);
    /* The checksum is taken with its own field read as eight spaces. */
    memset(c + 148, ' ', 8);
    unsigned sum = 0;
    for (size_t i = 0; i < TAR_BLOCK; i++)
        sum += h[i];
    octal(c + 148, 7, sum);
    c[155] = ' ';
}

static bool key_char_ok(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '_' || ch == '-';
}

/* Everything that can reject a sample, checked before a byte is written. */
static enum vc_status check_sample(const struct sample *s, struct vc_err *err)
{
    const char *key = s->key ? s->key : "";
    size_t kn = strlen(key);
    if (strchr(key, '.'))
        return vc_err_set(err, VC_ESAMPLE, VC_REASON_field_too_long,
                          "key '%s' contains a dot (webdataset keys end at the first dot)", key);
    if (kn == 0)
        return vc_err_set(err, VC_ESAMPLE, VC_REASON_unsafe_path, "empty sample key");
    for (size_t i = 0; i < kn; i++)
        if (!key_char_ok(key[i]) && key[i] != '%') /* '%': sample_key_sanitize's escapes */
            return vc_err_set(err, VC_ESAMPLE, VC_REASON_unsafe_path,
                              "key '%s' holds a character other than [A-Za-z0-9_%%-]", key);
    if (s->n_fields == 0)
        return vc_err_set(err, VC_ESAMPLE, VC_REASON_missing_field, "sample '%s' has no fields",
                          key);
    for (size_t i = 0; i < s->n_fields; i++) {
        const struct sample_field *f = &s->fields[i];
        size_t fn = strlen(f->name);
        if (kn + 1 + fn > WDS_MAX_MEMBER_NAME)
            return vc_err_set(err, VC_ESAMPLE, VC_REASON_field_too_long,
                              "member name '%s.%s' is over %d bytes", key, f->name,
                              WDS_MAX_MEMBER_NAME);
        if (fn == 0 || f->name[0] == '.')
            return vc_err_set(err, VC_ESAMPLE, VC_REASON_unsafe_path,
                              "field name '%s' of sample '%s' is empty or starts with a dot",
                              f->name, key);
        for (size_t k = 0; k < fn; k++)
            if (!key_char_ok(f->name[k]) && f->name[k] != '.')
                return vc_err_set(err, VC_ESAMPLE, VC_REASON_unsafe_path,
                                  "field name '%s' of sample '%s' holds a character other than "
                                  "[A-Za-z0-9_.-]",
                                  f->name, key);
        if ((uint64_t)f->size > WDS_MAX_MEMBER_BYTES)
            return vc_err_set(err, VC_ESAMPLE, VC_REASON_entry_too_large,
                              "field '%s' of sample '%s' is %zu bytes, over ustar's limit", f->name,
                              key, f->size);
        for (size_t j = 0; j < i; j++)
            if (strcmp(s->fields[j].name, f->name) == 0)
                return vc_err_set(err, VC_ESAMPLE, VC_REASON_repeated_field,
                                  "field '%s' given twice in sample '%s'", f->name, key);
    }
    return VC_OK;
}

enum vc_status wds_writer_add(struct wds_writer *w, const struct sample *s, uint64_t *tar_offset,
                              struct vc_err *err)
{
    if (w->dead) {
        if (err)
            *err = w->fail;
        return VC_EFATAL;
    }
    VC_TRY(check_sample(s, err));
    if (tar_offset)
        *tar_offset = w->tar_bytes;
    static const uint8_t zeros[TAR_BLOCK];
    bool index = w->comp == WDS_COMPRESS_NONE;
    for (size_t i = 0; i < s->n_fields; i++) {
        const struct sample_field *f = &s->fields[i];
        uint8_t h[TAR_BLOCK];
        ustar_header(h, s->key, f->name, f->size);
        uint64_t data_at = w->tar_bytes + TAR_BLOCK;
        VC_TRY(tar_put(w, h, TAR_BLOCK, err));
        if (f->size)
            VC_TRY(tar_put(w, f->data, f->size, err));
        size_t pad = (TAR_BLOCK - f->size % TAR_BLOCK) % TAR_BLOCK;
        VC_TRY(tar_put(w, zeros, pad, err));
        /* DALI v1.2: "<ext> <data offset> <size> <member name>" per member. */
        if (index && vc_buf_printf(&w->idx, "%s%s %" PRIu64 " %zu %s.%s", i ? " " : "", f->name,
                                   data_at, f->size, s->key, f->name) != 0)
            return die(w, err, "DALI index too large for", ENOMEM);
    }
    if (index && vc_buf_append(&w->idx, "\n", 1) != 0)
        return die(w, err, "DALI index too large for", ENOMEM);
    w->n_samples++;
    return VC_OK;
}

static void writer_free(struct wds_writer *w)
{
    if (w->fd >= 0)
        close(w->fd);
    if (w->z_live)
        deflateEnd(&w->z);
    ZSTD_freeCCtx(w->zc);
    vc_buf_free(&w->idx);
    free(w->out);
    free(w->zbuf);
    free(w->path);
    free(w->tmp_path);
    free(w);
}

void wds_writer_abort(struct wds_writer *w)
{
    if (!w)
        return;
    if (w->tmp_live)
        unlink(w->tmp_path);
    writer_free(w);
}

static enum vc_status compressor_init(struct wds_writer *w, struct vc_err *err)
{
    if (w->comp == WDS_COMPRESS_NONE)
        return VC_OK;
    w->zbuf_cap = w->comp == WDS_COMPRESS_GZIP ? WDS_OUT_BUF : ZSTD_CStreamOutSize();
    w->zbuf = malloc(w->zbuf_cap);
    if (!w->zbuf)
        return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "no memory for a compressor");
    if (w->comp == WDS_COMPRESS_GZIP) {
        /* windowBits 15 + 16 asks zlib for a gzip wrapper; zlib writes mtime
         * 0 and no file name unless given a header, which we never do. */
        if (deflateInit2(&w->z, WDS_GZIP_LEVEL, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
            return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "cannot start gzip");
        w->z_live = true;
        return VC_OK;
    }
    w->zc = ZSTD_createCCtx();
    if (!w->zc ||
        ZSTD_isError(ZSTD_CCtx_setParameter(w->zc, ZSTD_c_compressionLevel, WDS_ZSTD_LEVEL)) ||
        ZSTD_isError(ZSTD_CCtx_setParameter(w->zc, ZSTD_c_checksumFlag, 1)))
        return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "cannot start zstd");
    return VC_OK;
}

enum vc_status wds_writer_open(const char *path, enum wds_compression c, struct wds_writer **out,
                               struct vc_err *err)
{
    *out = NULL;
    if (c != WDS_COMPRESS_NONE && c != WDS_COMPRESS_GZIP && c != WDS_COMPRESS_ZSTD)
        return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec, "unknown compression %d", (int)c);
    struct wds_writer *w = calloc(1, sizeof *w);
    if (!w)
        return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "no memory for a writer");
    w->fd = -1;
    w->comp = c;
    vc_buf_init(&w->idx, WDS_MAX_INDEX_BYTES);
    sha256_init(&w->sha);
    size_t n = strlen(path);
    w->path = vc_strdup(path);
    w->tmp_path = malloc(n + 5);
    w->out = malloc(WDS_OUT_BUF);
    if (!w->path || !w->tmp_path || !w->out) {
        writer_free(w);
        return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "no memory for a writer");
    }
    memcpy(w->tmp_path, path, n);
    memcpy(w->tmp_path + n, ".tmp", 5);
    enum vc_status st = compressor_init(w, err);
    if (st != VC_OK) {
        writer_free(w);
        return st;
    }
    w->fd = open(w->tmp_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (w->fd < 0) {
        vc_err_set(err, VC_EFATAL, VC_REASON_io_error, "cannot create '%s': %s", w->tmp_path,
                   strerror(errno));
        writer_free(w);
        return VC_EFATAL;
    }
    w->tmp_live = true;
    *out = w;
    return VC_OK;
}

uint64_t wds_tar_file_bytes(uint64_t member_bytes)
{
    uint64_t end = member_bytes + 2 * TAR_BLOCK;
    return end + (TAR_RECORD - end % TAR_RECORD) % TAR_RECORD;
}

/* The end of the archive, the compressor's trailer, and the data on disk. */
static enum vc_status finish_file(struct wds_writer *w, struct vc_err *err)
{
    static const uint8_t zeros[TAR_RECORD];
    size_t pad = (size_t)(wds_tar_file_bytes(w->tar_bytes) - w->tar_bytes - 2 * TAR_BLOCK);
    VC_TRY(tar_put(w, zeros, 2 * TAR_BLOCK, err));
    VC_TRY(tar_put(w, zeros, pad, err));
    if (w->comp != WDS_COMPRESS_NONE)
        VC_TRY(compress_put(w, NULL, 0, true, err));
    VC_TRY(flush_out(w, err));
    if (fsync(w->fd) != 0)
        return die(w, err, "cannot fsync", errno);
    int rc = close(w->fd);
    w->fd = -1;
    if (rc != 0)
        return die(w, err, "cannot close", errno);
    return VC_OK;
}

/* The DALI index goes in place before the shard, so a visible shard always
 * has a matching one; an empty uncompressed shard removes a stale index. */
static enum vc_status commit_index(struct wds_writer *w, struct vc_err *err)
{
    if (w->comp != WDS_COMPRESS_NONE)
        return VC_OK;
    size_t need = wds_dali_index_path(w->path, NULL, 0);
    char *idx_path = malloc(need + 1);
    if (!idx_path)
        return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "no memory for a path");
    wds_dali_index_path(w->path, idx_path, need + 1);
    enum vc_status st = VC_OK;
    if (w->n_samples == 0) {
        if (unlink(idx_path) != 0 && errno != ENOENT)
            st = vc_err_set(err, VC_EFATAL, VC_REASON_io_error, "cannot remove stale '%s': %s",
                            idx_path, strerror(errno));
    } else {
        struct vc_buf head;
        vc_buf_init(&head, WDS_MAX_INDEX_BYTES + 64);
        /* Version and sample count first, then the lines gathered in add. */
        if (vc_buf_printf(&head, "v1.2 %" PRIu64 "\n", w->n_samples) != 0 ||
            vc_buf_append(&head, w->idx.data, w->idx.len) != 0)
            st = vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "no memory for the index");
        if (st == VC_OK)
            st = vc_fs_write_atomic(idx_path, head.data, head.len, err);
        vc_buf_free(&head);
    }
    free(idx_path);
    return st;
}

enum vc_status wds_writer_commit(struct wds_writer *w, struct wds_shard_stats *stats,
                                 struct vc_err *err)
{
    enum vc_status st = VC_EFATAL;
    if (w->dead && err)
        *err = w->fail;
    if (!w->dead)
        st = finish_file(w, err);
    if (st == VC_OK)
        st = commit_index(w, err);
    if (st == VC_OK)
        st = vc_fs_commit_rename(w->tmp_path, w->path, err);
    if (st != VC_OK) {
        wds_writer_abort(w);
        return st;
    }
    w->tmp_live = false;
    if (stats) {
        uint8_t digest[32];
        sha256_final(&w->sha, digest);
        sha256_digest_to_hex(digest, stats->sha256);
        stats->n_samples = w->n_samples;
        stats->n_bytes = w->file_bytes;
        stats->n_tar_bytes = w->tar_bytes;
    }
    writer_free(w);
    return VC_OK;
}

/* cJSON prints numbers as doubles; raw text keeps 64-bit counts exact. */
static bool add_u64(cJSON *obj, const char *name, uint64_t v)
{
    char num[24];
    snprintf(num, sizeof num, "%" PRIu64, v);
    return cJSON_AddRawToObject(obj, name, num) != NULL;
}

enum vc_status wds_write_wids_index(const char *path, const struct wds_index_entry *shards,
                                    size_t n, struct vc_err *err)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *list = NULL;
    bool ok = root && cJSON_AddStringToObject(root, "__kind__", "wids-shard-index-v1") &&
              add_u64(root, "wids_version", 1) &&
              (list = cJSON_AddArrayToObject(root, "shardlist")) != NULL;
    for (size_t i = 0; ok && i < n; i++) {
        cJSON *e = cJSON_CreateObject();
        if (!e || !cJSON_AddItemToArray(list, e)) {
            cJSON_Delete(e);
            ok = false;
            break;
        }
        ok = cJSON_AddStringToObject(e, "url", shards[i].url) &&
             add_u64(e, "nsamples", shards[i].n_samples) &&
             add_u64(e, "filesize", shards[i].filesize);
    }
    char *text = ok ? vc_utf8_json_print(root, true) : NULL;
    cJSON_Delete(root);
    if (!text)
        return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "no memory for '%s'", path);
    size_t len = strlen(text);
    text[len] = '\n'; /* cJSON leaves no final newline; its NUL is ours to reuse */
    enum vc_status st = vc_fs_write_atomic(path, text, len + 1, err);
    cJSON_free(text);
    return st;
}
