/* idf2_quantize: block quantization of the text decoder at load and its
 * cache file (layout and freshness rule in idf2_quantize.h).
 *
 * Cache file: "VCQUANT2", u32 format (enum idf2_wfmt), u32 matrix count,
 * 64 hex digits of the source key, then per matrix u64 rows, cols, offset,
 * bytes (little endian), then the blocks at 64-byte aligned offsets.  All matrices are
 * quantized into one buffer laid out exactly like the file's data, so the
 * write is the header plus that buffer.  VCQUANT1 files (Q8_0 / Q4_0 rows
 * in ggml's layout, before the x16 formats) are rejected by their magic
 * and format and rewritten, never read as the new layout. */
#include "idf2_quantize.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/sha256.h"
#include "core/vc_fs.h"
#include "core/vc_mem.h"
#include "synth/idf2_place.h"

#define QC_MAGIC      "VCQUANT2"
#define QC_ALIGN      64
#define QC_HEAD_BYTES 1024 * 1024
#define QC_SAMPLE     (64 * 1024)
#define QC_STRIDE     ((uint64_t)256 << 20)

/* Every matrix the decode streams, in a fixed order. */
static size_t align_up(size_t v)
{
    return (v + QC_ALIGN - 1) / QC_ALIGN * QC_ALIGN;
}

static void put_u64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void put_u32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get_u32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get_u64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void hash_range(struct sha256 *h, int fd, uint64_t off, size_t len, unsigned char *buf)
{
    ssize_t got = pread(fd, buf, len, (off_t)off);
    if (got > 0)
        sha256_update(h, buf, (size_t)got);
}

/* The source key (see the header); false when the folder cannot be read. */
static bool source_key(const char *dir, enum idf2_wfmt fmt, char hex[65])
{
    DIR *d = opendir(dir);
    if (!d)
        return false;
    char **names = NULL;
    size_t n = 0, cap = 0;
    for (struct dirent *e; (e = readdir(d));) {
        size_t len = strlen(e->d_name);
        bool source =
            strcmp(e->d_name, "config.json") == 0 ||
            strcmp(e->d_name, "model.safetensors.index.json") == 0 ||
            (e->d_name[0] != '.' && len > 12 && strcmp(e->d_name + len - 12, ".safetensors") == 0);
        if (!source)
            continue;
        char **nn = vc_grow_array(names, &cap, n + 1, sizeof *nn, 16);
        if (!nn)
            break;
        names = nn;
        names[n] = strdup(e->d_name);
        if (names[n])
            n++;
    }
    closedir(d);
    qsort(names, n, sizeof *names, cmp_names);
    struct sha256 h;
    sha256_init(&h);
    sha256_update(&h, "vlmcurate-quant-2", 17);
    sha256_update(&h, idf2_wfmt_name(fmt), strlen(idf2_wfmt_name(fmt)));
    unsigned char *buf = malloc(QC_HEAD_BYTES);
    bool ok = buf != NULL && n > 0;
    for (size_t i = 0; i < n; i++) {
        char path[4096];
        struct stat st;
        int fd = -1;
        if (ok && (size_t)snprintf(path, sizeof path, "%s/%s", dir, names[i]) < sizeof path &&
            (fd = open(path, O_RDONLY | O_CLOEXEC)) >= 0 && fstat(fd, &st) == 0) {
            const uint64_t size = (uint64_t)st.st_size;
            unsigned char sz[8];
            put_u64(sz, size);
            sha256_update(&h, names[i], strlen(names[i]) + 1);
            sha256_update(&h, sz, 8);
            hash_range(&h, fd, 0, QC_HEAD_BYTES, buf);
            for (uint64_t off = QC_STRIDE; off < size; off += QC_STRIDE)
                hash_range(&h, fd, off, QC_SAMPLE, buf);
            if (size > QC_SAMPLE)
                hash_range(&h, fd, size - QC_SAMPLE, QC_SAMPLE, buf);
        } else {
            ok = false;
        }
        if (fd >= 0)
            close(fd);
        free(names[i]);
    }
    free(names);
    free(buf);
    uint8_t digest[32];
    sha256_final(&h, digest);
    sha256_digest_to_hex(digest, hex);
    return ok;
}

/* Header bytes for n matrices. */
static size_t header_bytes(size_t n)
{
    return align_up(8 + 4 + 4 + 64 + n * 32);
}

/* Maps the cache and points the matrices into it when it is fresh and
 * matches every shape; false otherwise (nothing changed). */
static bool cache_map(const char *path, const char key[65], enum idf2_wfmt fmt,
                      struct idf2_w **mats, size_t n, const size_t *offs, const size_t *sizes,
                      struct idf2_quant *q)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    struct stat st;
    void *map = MAP_FAILED;
    if (fstat(fd, &st) == 0 && (size_t)st.st_size >= header_bytes(n))
        map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (map == MAP_FAILED)
        return false;
    const unsigned char *p = map;
    const size_t hb = header_bytes(n);
    bool ok = memcmp(p, QC_MAGIC, 8) == 0 && get_u32(p + 8) == (uint32_t)fmt &&
              get_u32(p + 12) == (uint32_t)n && memcmp(p + 16, key, 64) == 0;
    for (size_t i = 0; ok && i < n; i++) {
        const unsigned char *e = p + 80 + i * 32;
        ok = get_u64(e) == (uint64_t)mats[i]->rows && get_u64(e + 8) == (uint64_t)mats[i]->cols &&
             get_u64(e + 16) == (uint64_t)(hb + offs[i]) && get_u64(e + 24) == sizes[i] &&
             hb + offs[i] + sizes[i] <= (size_t)st.st_size;
    }
    if (!ok) {
        munmap(map, (size_t)st.st_size);
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        mats[i]->fmt = fmt;
        mats[i]->data = p + hb + offs[i];
    }
    q->map = map;
    q->map_bytes = (size_t)st.st_size;
    q->from_cache = 1;
    return true;
}

static bool cache_write(const char *path, const char key[65], enum idf2_wfmt fmt,
                        struct idf2_w **mats, size_t n, const size_t *offs, const size_t *sizes,
                        const void *data, size_t bytes)
{
    const size_t hb = header_bytes(n);
    unsigned char *h = calloc(1, hb);
    if (!h)
        return false;
    memcpy(h, QC_MAGIC, 8);
    put_u32(h + 8, (uint32_t)fmt);
    put_u32(h + 12, (uint32_t)n);
    memcpy(h + 16, key, 64);
    for (size_t i = 0; i < n; i++) {
        unsigned char *e = h + 80 + i * 32;
        put_u64(e, (uint64_t)mats[i]->rows);
        put_u64(e + 8, (uint64_t)mats[i]->cols);
        put_u64(e + 16, (uint64_t)(hb + offs[i]));
        put_u64(e + 24, sizes[i]);
    }
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    const bool ok = fd >= 0 && vc_fs_write_all(fd, h, hb) && vc_fs_write_all(fd, data, bytes);
    free(h);
    return vc_fs_finish_tmp(fd, tmp, path, ok);
}

enum vc_status idf2_weights_quantize(struct idf2_weights *w, const struct idf2_model_config *cfg,
                                     enum idf2_wfmt fmt, const char *cache_dir, int nt,
                                     struct idf2_quant **out, struct vc_err *err)
{
    *out = NULL;
    if (idf2_wfmt_base(fmt) != IDF2_WF_Q8_0 && idf2_wfmt_base(fmt) != IDF2_WF_Q4_0)
        return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec,
                          "weights: %s is not a block format (q8_0, q4_0 or their x16 twins)",
                          idf2_wfmt_name(fmt));
    const size_t n = idf2_weights_text_mats(w, cfg, NULL);
    struct idf2_w **mats = vc_malloc_array(n, sizeof *mats);
    size_t *offs = vc_malloc_array(n, sizeof *offs), *sizes = vc_malloc_array(n, sizeof *sizes);
    struct idf2_quant *q = calloc(1, sizeof *q);
    enum vc_status rc = VC_OK;
    if (!mats || !offs || !sizes || !q) {
        rc = vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "weights: out of memory");
        goto done;
    }
    q->fmt = fmt;
    idf2_weights_text_mats(w, cfg, mats);
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        offs[i] = total;
        sizes[i] = (size_t)mats[i]->rows * idf2_wfmt_row_bytes(fmt, (size_t)mats[i]->cols);
        total = align_up(total + sizes[i]);
    }
    q->bytes = total;
    char key[65] = { 0 }, path[4096] = { 0 };
    bool cache = cache_dir && source_key(cache_dir, fmt, key) &&
                 (size_t)snprintf(path, sizeof path, "%s/.vlmcurate-%s.bin", cache_dir,
                                  idf2_wfmt_name(idf2_wfmt_base(fmt))) < sizeof path;
    if (cache && cache_map(path, key, fmt, mats, n, offs, sizes, q)) {
        *out = q;
        q = NULL;
        goto done;
    }
    if (!(q->owned = idf2_place_map_huge(total))) {
        rc = vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory,
                        "weights: out of memory for %zu bytes of %s blocks", total,
                        idf2_wfmt_name(fmt));
        goto done;
    }
    bool ok = true;
    size_t done_mats = 0, src_total = 0;
    for (size_t i = 0; i < n; i++)
        src_total += idf2_w_bytes(mats[i]);
    /* As idf2_place_copy: the checkpoint's pages in the page cache and the
     * arena, if both do not fit, leave the arena's faults no free 2 MiB
     * blocks; the source then leaves the page cache behind each matrix. */
    const bool uncache = !idf2_place_fits_now(total + src_total);
    const void *embed = w->text.embed.data;
    struct idf2_w *saved = vc_malloc_array(n, sizeof *saved);
    if (!saved)
        ok = false;
    for (size_t i = 0; i < n && ok; i++) {
        struct idf2_w *m = mats[i];
        saved[i] = *m;
        const size_t K = (size_t)m->cols, R = (size_t)m->rows;
        unsigned char *dst = (unsigned char *)q->owned + offs[i];
        if (i + 1 < n && !idf2_weights_owns(w, mats[i + 1]->data))
            idf2_place_prefetch_source(mats[i + 1]->data, idf2_w_bytes(mats[i + 1]));
#pragma omp parallel num_threads(nt > 0 ? nt : 1)
        {
            float *row = vc_malloc_array(K ? K : 1, sizeof *row);
            if (!row) {
#pragma omp atomic write
                ok = false;
            }
            /* Rows in contiguous shares: each thread faults in the huge
             * pages of its own rows (an x16 group's rows are one span). */
#pragma omp for schedule(static)
            for (long r = 0; r < (long)m->rows; r++) {
                if (!row)
                    continue;
                idf2_w_dequantize_row(m->fmt, m->data, R, K, (size_t)r, row);
                idf2_w_quantize_row(fmt, dst, R, K, (size_t)r, row);
            }
            free(row);
        }
        memset(dst + sizes[i], 0, align_up(offs[i] + sizes[i]) - offs[i] - sizes[i]);
        /* Mapped source pages leave this process (the data stays valid: a
         * restore below or a tied embedding reads them back from the file);
         * a tied embedding's stay in the page cache. */
        if (!idf2_weights_owns(w, m->data))
            q->bytes_uncached +=
                idf2_place_drop_source(m->data, idf2_w_bytes(m), uncache && m->data != embed);
        m->fmt = fmt;
        m->data = dst;
        done_mats = i + 1;
    }
    if (!ok) {
        /* The model stays as it was: no matrix may point into freed blocks. */
        for (size_t i = 0; i < done_mats; i++)
            *mats[i] = saved[i];
        free(saved);
        rc = vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "weights: out of memory");
        goto done;
    }
    free(saved);
    q->bytes_huge_faulted = idf2_place_huge_bytes(q->owned);
    q->bytes_huge = idf2_place_collapse(q->owned, idf2_place_huge_span(total), q->huge_note,
                                        sizeof q->huge_note);
    if (cache)
        q->cache_written = cache_write(path, key, fmt, mats, n, offs, sizes, q->owned, total);
    *out = q;
    q = NULL;
done:
    idf2_quant_free(q);
    free(sizes);
    free(offs);
    free(mats);
    return rc;
}

void idf2_quant_free(struct idf2_quant *q)
{
    if (!q)
        return;
    idf2_place_unmap_huge(q->owned, q->bytes);
    if (q->map)
        munmap(q->map, q->map_bytes);
    free(q);
}
