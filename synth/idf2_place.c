/* idf2_place: the text decoder's weights copied, and the image path's
 * packed, into anonymous huge-page arenas at load (see the header for why
 * and when). */
#include "idf2_place.h"

#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/vc_mem.h"

#define HUGE_PAGE ((size_t)2 << 20)
/* Matrices start on cache lines, as the kernels' loads expect. */
#define PLACE_ALIGN 64

struct idf2_place {
    void *arena;
    size_t bytes;
};

static size_t align_up(size_t v, size_t a)
{
    return (v + a - 1) / a * a;
}

size_t idf2_place_meminfo(const char *meminfo, const char *key)
{
    const size_t kl = strlen(key);
    for (const char *p = meminfo; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        unsigned long long kb;
        if (strncmp(p, key, kl) == 0 && sscanf(p + kl, " %llu kB", &kb) == 1)
            return (size_t)kb * 1024;
    }
    return 0;
}

bool idf2_place_fits(size_t bytes, size_t avail, size_t total)
{
    const size_t reserve = total / 8 > ((size_t)2 << 30) ? total / 8 : (size_t)2 << 30;
    return avail > reserve && bytes <= avail - reserve;
}

static void read_meminfo(size_t *avail, size_t *total)
{
    char buf[8192];
    FILE *f = fopen("/proc/meminfo", "r");
    const size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f)
        fclose(f);
    buf[n] = 0;
    *avail = idf2_place_meminfo(buf, "MemAvailable:");
    *total = idf2_place_meminfo(buf, "MemTotal:");
}

/* AnonHugePages of the mapping that holds p (/proc/self/smaps; the
 * kernel may have merged a neighbour into it). */
static size_t huge_bytes(const void *p)
{
    FILE *f = fopen("/proc/self/smaps", "r");
    if (!f)
        return 0;
    char line[512];
    bool in = false;
    size_t out = 0;
    while (fgets(line, sizeof line, f)) {
        unsigned long long lo, hi, kb;
        if (sscanf(line, "%llx-%llx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' '))
            in = (uintptr_t)lo <= (uintptr_t)p && (uintptr_t)p < (uintptr_t)hi;
        else if (in && sscanf(line, "AnonHugePages: %llu kB", &kb) == 1)
            out += (size_t)kb * 1024;
    }
    fclose(f);
    return out;
}

/* Drops this process's pages of a mapped source, only pages wholly inside
 * it (a neighbour may still be read in place). */
static void drop_source(const void *p, size_t n)
{
    const size_t page = (size_t)sysconf(_SC_PAGESIZE);
    const uintptr_t lo = align_up((uintptr_t)p, page), hi = ((uintptr_t)p + n) / page * page;
    if (hi > lo)
        madvise((void *)lo, hi - lo, MADV_DONTNEED);
}

static bool anonymous(const struct idf2_weights *w, const struct idf2_quant *q, const void *p)
{
    const char *c = p, *o = q ? q->owned : NULL;
    return idf2_weights_owns(w, p) || (o && c >= o && c < o + q->bytes);
}

void *idf2_place_map_huge(size_t bytes)
{
    bytes = align_up(bytes ? bytes : 1, HUGE_PAGE);
    const size_t span = bytes + HUGE_PAGE;
    char *raw = mmap(NULL, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED)
        return NULL;
    char *a = (char *)align_up((uintptr_t)raw, HUGE_PAGE);
    if (a > raw)
        munmap(raw, (size_t)(a - raw));
    const size_t tail = (size_t)(raw + span - (a + bytes));
    if (tail)
        munmap(a + bytes, tail);
    madvise(a, bytes, MADV_HUGEPAGE);
    return a;
}

void idf2_place_unmap_huge(void *p, size_t bytes)
{
    if (p)
        munmap(p, align_up(bytes ? bytes : 1, HUGE_PAGE));
}

typedef size_t mats_fn(struct idf2_weights *w, const struct idf2_model_config *cfg,
                       struct idf2_w **out);

/* The matrices `list` gives, and room for a place each; false (nothing
 * allocated) when out of memory. */
static bool list_mats(mats_fn *list, struct idf2_weights *w, const struct idf2_model_config *cfg,
                      struct idf2_w ***mats, size_t **offs, size_t *n)
{
    *n = list(w, cfg, NULL);
    *mats = vc_malloc_array(*n, sizeof **mats);
    *offs = vc_malloc_array(*n, sizeof **offs);
    if (!*mats || !*offs) {
        free(*mats);
        free(*offs);
        return false;
    }
    list(w, cfg, *mats);
    return true;
}

/* An arena of `total` bytes in a new place, or NULL with rep's note
 * (starting with `what`) saying why not. */
static struct idf2_place *new_place(size_t total, const char *what, struct idf2_place_report *rep)
{
    size_t avail, mem_total;
    read_meminfo(&avail, &mem_total);
    struct idf2_place *p = NULL;
    if (!idf2_place_fits(total, avail, mem_total))
        snprintf(rep->note, sizeof rep->note,
                 "%s %.1f GiB needs that plus a reserve of MemAvailable (%.1f GiB)", what,
                 (double)total / (1 << 30), (double)avail / (1 << 30));
    else if (!(p = calloc(1, sizeof *p)) || !(p->arena = idf2_place_map_huge(total))) {
        snprintf(rep->note, sizeof rep->note, "%s: no anonymous mapping of %.1f GiB", what,
                 (double)total / (1 << 30));
        free(p);
        return NULL;
    }
    if (p)
        p->bytes = align_up(total, HUGE_PAGE);
    return p;
}

/* Bytes of m in the arena: in ops' packed layout where it has one for m
 * (*packs set), else as stored. */
static size_t placed_bytes(const struct idf2_ops *ops, const struct idf2_w *m, bool *packs)
{
    const size_t pb = ops && ops->pack && ops->pack_bytes ? ops->pack_bytes(m) : 0;
    *packs = pb > 0;
    return pb ? pb : (size_t)m->rows * idf2_wfmt_row_bytes(m->fmt, (size_t)m->cols);
}

enum vc_status idf2_place_copy(struct idf2_weights *w, const struct idf2_model_config *cfg,
                               const struct idf2_quant *q, const struct idf2_ops *ops, int nt,
                               struct idf2_place **out, struct idf2_place_report *rep,
                               struct vc_err *err)
{
    *out = NULL;
    *rep = (struct idf2_place_report){ 0 };
    size_t n, *offs;
    struct idf2_w **mats;
    if (!list_mats(idf2_weights_text_mats, w, cfg, &mats, &offs, &n))
        return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "weights: out of memory");
    /* offs[i]: the matrix's place, or SIZE_MAX (stays: anonymous already,
     * or the same data as an earlier matrix, a tied head). */
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        offs[i] = anonymous(w, q, mats[i]->data) ? SIZE_MAX : total;
        for (size_t j = 0; j < i && offs[i] != SIZE_MAX; j++)
            if (mats[j]->data == mats[i]->data)
                offs[i] = SIZE_MAX;
        bool packs;
        if (offs[i] != SIZE_MAX)
            total = align_up(total + placed_bytes(ops, mats[i], &packs), PLACE_ALIGN);
    }
    struct idf2_place *p = NULL;
    char *arena = NULL;
    if (total == 0)
        snprintf(rep->note, sizeof rep->note, "text weights already in anonymous memory");
    else
        p = new_place(total, "text weights stay mapped: copying", rep);
    if (!p) {
        free(offs);
        free(mats);
        return VC_OK;
    }
    arena = p->arena;
    const void *embed = w->text.embed.data;
    for (size_t i = 0; i < n; i++) {
        if (offs[i] == SIZE_MAX)
            continue;
        struct idf2_w *m = mats[i];
        const size_t bytes = (size_t)m->rows * idf2_wfmt_row_bytes(m->fmt, (size_t)m->cols);
        const char *src = m->data;
        char *dst = arena + offs[i];
        bool packs;
        const size_t placed = placed_bytes(ops, m, &packs);
        if (packs) {
            /* Instead of the copy: the row reads only the packed layout
             * (data stays on the mapping, for other rows and a tied
             * embedding), the same bytes. */
            ops->pack(dst, m, nt > 0 ? nt : omp_get_max_threads());
            for (size_t j = i + 1; j < n; j++)
                if (mats[j]->data == m->data) {
                    mats[j]->packed = dst;
                    mats[j]->packed_by = ops->pack;
                }
            m->packed = dst;
            m->packed_by = ops->pack;
            drop_source(src, bytes);
            rep->bytes_copied += bytes;
            rep->bytes_packed += placed;
            continue;
        }
        /* Huge pages are zeroed on first touch: that, not the copy, is
         * most of the time, and it splits over threads. */
#pragma omp parallel for schedule(static) num_threads(nt > 0 ? nt : omp_get_max_threads())
        for (long c = 0; c < (long)((bytes + HUGE_PAGE - 1) / HUGE_PAGE); c++) {
            const size_t at = (size_t)c * HUGE_PAGE;
            memcpy(dst + at, src + at, bytes - at < HUGE_PAGE ? bytes - at : HUGE_PAGE);
        }
        for (size_t j = i + 1; j < n; j++)
            if (mats[j]->data == m->data)
                mats[j]->data = dst;
        if (embed == m->data)
            w->text.embed.data = dst;
        m->data = dst;
        drop_source(src, bytes);
        rep->bytes_copied += bytes;
    }
    mprotect(arena, p->bytes, PROT_READ);
    rep->bytes_huge = huge_bytes(arena);
    free(offs);
    free(mats);
    *out = p;
    return VC_OK;
}

void idf2_place_free(struct idf2_place *p)
{
    if (!p)
        return;
    idf2_place_unmap_huge(p->arena, p->bytes);
    free(p);
}

enum vc_status idf2_place_pack(struct idf2_weights *w, const struct idf2_model_config *cfg,
                               const struct idf2_ops *ops, int nt, struct idf2_place **out,
                               struct idf2_place_report *rep, struct vc_err *err)
{
    *out = NULL;
    *rep = (struct idf2_place_report){ 0 };
    if (!ops->pack || !ops->pack_bytes)
        return VC_OK;
    size_t n, *offs;
    struct idf2_w **mats;
    if (!list_mats(idf2_weights_image_mats, w, cfg, &mats, &offs, &n))
        return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "weights: out of memory");
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        const size_t b = ops->pack_bytes(mats[i]);
        offs[i] = b ? total : SIZE_MAX;
        total = align_up(total + b, PLACE_ALIGN);
    }
    struct idf2_place *p =
        total ? new_place(total, "image weights not packed: packing", rep) : NULL;
    for (size_t i = 0; p && i < n; i++) {
        if (offs[i] == SIZE_MAX)
            continue;
        struct idf2_w *m = mats[i];
        char *dst = (char *)p->arena + offs[i];
        ops->pack(dst, m, nt > 0 ? nt : omp_get_max_threads());
        m->packed = dst;
        m->packed_by = ops->pack;
        /* The row reads the packed copy only; mapped pages of the source
         * leave this process (data stays valid for other rows: it reads
         * back from the page cache). */
        if (!idf2_weights_owns(w, m->data))
            drop_source(m->data, (size_t)m->rows * idf2_wfmt_row_bytes(m->fmt, (size_t)m->cols));
        rep->bytes_copied += ops->pack_bytes(m);
    }
    if (p) {
        mprotect(p->arena, p->bytes, PROT_READ);
        rep->bytes_huge = huge_bytes(p->arena);
    }
    free(offs);
    free(mats);
    *out = p;
    return VC_OK;
}
