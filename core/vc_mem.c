/* vc_mem: the checked allocation wrappers and the per-sample arena.  The
 * arena keeps a list of blocks; reset keeps the largest block so a worker
 * that processes millions of samples settles into zero malloc calls. */
#include "vc_mem.h"

#include <stdlib.h>
#include <string.h>

void *vc_malloc_array(size_t n, size_t size)
{
    size_t total;
    if (!vc_mul_ok(n, size, &total))
        return NULL;
    return malloc(total ? total : 1);
}

void *vc_realloc_array(void *p, size_t n, size_t size)
{
    size_t total;
    if (!vc_mul_ok(n, size, &total))
        return NULL;
    return realloc(p, total ? total : 1);
}

void *vc_grow_array(void *p, size_t *cap, size_t need, size_t elem, size_t first)
{
    if (need <= *cap)
        return p;
    size_t c = *cap ? *cap : first ? first : 1;
    while (c < need)
        if (!vc_mul_ok(c, 2, &c))
            return NULL;
    void *g = vc_realloc_array(p, c, elem);
    if (g)
        *cap = c;
    return g;
}

char *vc_strndup(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (!d)
        return NULL;
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

char *vc_strdup(const char *s)
{
    return vc_strndup(s, strlen(s));
}

struct arena_block {
    struct arena_block *next;
    size_t size; /* usable bytes after the header */
    size_t used;
    _Alignas(16) unsigned char data[];
};

struct arena {
    struct arena_block *head; /* current block first */
    size_t cap;               /* bound on bytes handed out since reset */
    size_t handed;            /* bytes handed out since reset */
};

/* Blocks grow geometrically from 64 KiB; small enough for thousands of idle
 * workers, large enough that a typical web image needs one or two blocks. */
enum { ARENA_MIN_BLOCK = 64 * 1024 };

struct arena *arena_new(size_t cap_bytes)
{
    struct arena *a = calloc(1, sizeof *a);
    if (a)
        a->cap = cap_bytes;
    return a;
}

void arena_free(struct arena *a)
{
    if (!a)
        return;
    struct arena_block *b = a->head;
    while (b) {
        struct arena_block *next = b->next;
        free(b);
        b = next;
    }
    free(a);
}

void arena_reset(struct arena *a)
{
    struct arena_block *keep = NULL;
    struct arena_block *b = a->head;
    while (b) {
        struct arena_block *next = b->next;
        if (!keep || b->size > keep->size) {
            free(keep);
            keep = b;
        } else {
            free(b);
        }
        b = next;
    }
    if (keep) {
        keep->next = NULL;
        keep->used = 0;
    }
    a->head = keep;
    a->handed = 0;
}

void *arena_alloc(struct arena *a, size_t size)
{
    size_t rounded;
    if (!vc_add_ok(size, 15, &rounded))
        return NULL;
    rounded &= ~(size_t)15;
    if (rounded == 0)
        rounded = 16;
    size_t after;
    if (!vc_add_ok(a->handed, rounded, &after) || after > a->cap)
        return NULL;
    struct arena_block *b = a->head;
    if (!b || b->size - b->used < rounded) {
        size_t want = b ? b->size * 2 : ARENA_MIN_BLOCK;
        if (want < rounded)
            want = rounded;
        size_t bytes;
        if (!vc_add_ok(want, sizeof *b, &bytes))
            return NULL;
        struct arena_block *nb = malloc(bytes);
        if (!nb)
            return NULL;
        nb->size = want;
        nb->used = 0;
        nb->next = b;
        a->head = nb;
        b = nb;
    }
    void *p = b->data + b->used;
    b->used += rounded;
    a->handed = after;
    return p;
}

void *arena_alloc_array(struct arena *a, size_t n, size_t size)
{
    size_t total;
    if (!vc_mul_ok(n, size, &total))
        return NULL;
    return arena_alloc(a, total);
}

void *arena_memdup(struct arena *a, const void *p, size_t size)
{
    void *d = arena_alloc(a, size);
    if (d && size)
        memcpy(d, p, size);
    return d;
}

char *arena_strndup(struct arena *a, const char *s, size_t n)
{
    size_t total;
    if (!vc_add_ok(n, 1, &total))
        return NULL;
    char *d = arena_alloc(a, total);
    if (!d)
        return NULL;
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

char *arena_strdup(struct arena *a, const char *s)
{
    return arena_strndup(a, s, strlen(s));
}

size_t arena_used(const struct arena *a)
{
    return a->handed;
}

size_t arena_cap(const struct arena *a)
{
    return a->cap;
}
