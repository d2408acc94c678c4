/* idf2_place: the text decoder's weights copied, and the image path's
 * packed, into anonymous huge-page arenas at load (see the header for why
 * and when). */
#include "idf2_place.h"

#include <errno.h>
#include <fcntl.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/vc_mem.h"

#define HUGE_PAGE ((size_t)2 << 20)
/* Linux >= 6.1 (<linux/mman.h>); glibc 2.36's <sys/mman.h> lacks it. */
#ifndef MADV_COLLAPSE
#    define MADV_COLLAPSE 25
#endif
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

bool idf2_place_fits_now(size_t bytes)
{
    size_t avail, total;
    read_meminfo(&avail, &total);
    return idf2_place_fits(bytes, avail, total);
}

size_t idf2_place_huge_bytes(const void *p)
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

/* The file behind the mapped address a (/proc/self/maps): its path and
 * the offset of a in it, and the end of that mapping; false for anonymous
 * memory, a deleted file or an unreadable maps. */
static bool mapped_file(uintptr_t a, char *path, size_t cap, off_t *off, uintptr_t *end)
{
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f)
        return false;
    char line[4352];
    bool found = false;
    while (!found && fgets(line, sizeof line, f)) {
        unsigned long long lo, hi, fo;
        int at = 0;
        if (sscanf(line, "%llx-%llx %*s %llx %*s %*s %n", &lo, &hi, &fo, &at) < 3 || at == 0 ||
            a < (uintptr_t)lo || a >= (uintptr_t)hi)
            continue;
        char *name = line + at;
        name[strcspn(name, "\n")] = 0;
        found = name[0] == '/' && !strstr(name, " (deleted)") && strlen(name) < cap;
        if (found) {
            strcpy(path, name);
            *off = (off_t)(fo + (a - (uintptr_t)lo));
            *end = (uintptr_t)hi;
        }
        break;
    }
    fclose(f);
    return found;
}

/* Gives `advice` (posix_fadvise) for the file pages behind the whole
 * pages [lo, hi) of a file mapping; the bytes advised. */
static size_t advise_file(uintptr_t lo, uintptr_t hi, int advice)
{
    char path[4096];
    off_t off;
    uintptr_t end;
    if (hi <= lo || !mapped_file(lo, path, sizeof path, &off, &end))
        return 0;
    if (hi > end)
        hi = end;
    const int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    const bool ok = posix_fadvise(fd, off, (off_t)(hi - lo), advice) == 0;
    close(fd);
    return ok ? hi - lo : 0;
}

static void page_span(const void *p, size_t n, uintptr_t *lo, uintptr_t *hi)
{
    const size_t page = (size_t)sysconf(_SC_PAGESIZE);
    *lo = align_up((uintptr_t)p, page);
    *hi = ((uintptr_t)p + n) / page * page;
}

size_t idf2_place_drop_source(const void *p, size_t n, bool uncache)
{
    uintptr_t lo, hi;
    page_span(p, n, &lo, &hi);
    if (hi <= lo)
        return 0;
    madvise((void *)lo, hi - lo, MADV_DONTNEED);
    return uncache ? advise_file(lo, hi, POSIX_FADV_DONTNEED) : 0;
}

void idf2_place_prefetch_source(const void *p, size_t n)
{
    uintptr_t lo, hi;
    page_span(p, n, &lo, &hi);
    advise_file(lo, hi, POSIX_FADV_WILLNEED);
}

size_t idf2_place_collapse(void *p, size_t bytes, char *note, size_t cap)
{
    if (note && cap)
        note[0] = 0;
    size_t huge = idf2_place_huge_bytes(p);
    if (huge >= bytes)
        return huge;
    /* The kernel goes on over the range after a page it cannot collapse
     * and returns the last failure: what got collapsed stays. */
    if (madvise(p, bytes, MADV_COLLAPSE) != 0 && note && cap) {
        const int e = errno;
        snprintf(note, cap, "MADV_COLLAPSE: %s",
                 e == EINVAL ? "refused (Linux < 6.1, or no huge pages for this mapping)"
                 : e == EAGAIN || e == ENOMEM ? "no free huge page for some of it"
                                              : strerror(e));
    }
    return idf2_place_huge_bytes(p);
}

static bool anonymous(const struct idf2_weights *w, const struct idf2_quant *q, const void *p)
{
    const char *c = p, *o = q ? q->owned : NULL;
    return idf2_weights_owns(w, p) || (o && c >= o && c < o + q->bytes);
}

void *idf2_place_map_huge(size_t bytes)
{
    bytes = idf2_place_huge_span(bytes);
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

size_t idf2_place_huge_span(size_t bytes)
{
    return align_up(bytes ? bytes : 1, HUGE_PAGE);
}

void idf2_place_unmap_huge(void *p, size_t bytes)
{
    if (p)
        munmap(p, idf2_place_huge_span(bytes));
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
    return pb ? pb : idf2_w_bytes(m);
}

/* The arena written: what its faults got in huge pages, the rest
 * collapsed into them where the kernel can, then read-only. */
static void settle(struct idf2_place *p, struct idf2_place_report *rep)
{
    rep->bytes_huge_faulted = idf2_place_huge_bytes(p->arena);
    rep->bytes_huge =
        idf2_place_collapse(p->arena, p->bytes, rep->huge_note, sizeof rep->huge_note);
    mprotect(p->arena, p->bytes, PROT_READ);
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
    /* Where the copy and the page cache's copy of its source do not both
     * fit, the source leaves the page cache behind the copy: memory the
     * kernel would otherwise free later, page by page from its LRU, all
     * over the machine, while the arena's faults need it in whole free
     * 2 MiB blocks. */
    const bool uncache = !idf2_place_fits_now(2 * total);
    const void *embed = w->text.embed.data;
    for (size_t i = 0, next = 0; i < n; i++) {
        if (offs[i] == SIZE_MAX)
            continue;
        struct idf2_w *m = mats[i];
        const size_t bytes = idf2_w_bytes(m);
        for (next = i + 1; next < n && offs[next] == SIZE_MAX; next++)
            ;
        if (next < n)
            idf2_place_prefetch_source(mats[next]->data, idf2_w_bytes(mats[next]));
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
            /* A tied embedding still reads its rows from the mapping. */
            rep->bytes_uncached += idf2_place_drop_source(src, bytes, uncache && embed != src);
            rep->bytes_copied += bytes;
            rep->bytes_packed += placed;
            continue;
        }
        /* Huge pages are zeroed on first touch: that, not the copy, is
         * most of the time, and it splits over threads, each faulting in
         * its own pages of the arena. */
        const size_t first = offs[i] / HUGE_PAGE, last = (offs[i] + bytes - 1) / HUGE_PAGE;
#pragma omp parallel for schedule(static) num_threads(nt > 0 ? nt : omp_get_max_threads())
        for (long c = 0; c <= (long)(last - first); c++) {
            const size_t lo = ((size_t)c + first) * HUGE_PAGE, hi = lo + HUGE_PAGE;
            const size_t a = lo > offs[i] ? lo - offs[i] : 0;
            const size_t b = hi < offs[i] + bytes ? hi - offs[i] : bytes;
            memcpy(dst + a, src + a, b - a);
        }
        for (size_t j = i + 1; j < n; j++)
            if (mats[j]->data == m->data)
                mats[j]->data = dst;
        if (embed == m->data)
            w->text.embed.data = dst;
        m->data = dst;
        rep->bytes_uncached += idf2_place_drop_source(src, bytes, uncache);
        rep->bytes_copied += bytes;
    }
    settle(p, rep);
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
            idf2_place_drop_source(m->data, idf2_w_bytes(m), false);
        rep->bytes_copied += ops->pack_bytes(m);
    }
    if (p)
        settle(p, rep);
    free(offs);
    free(mats);
    *out = p;
    return VC_OK;
}
