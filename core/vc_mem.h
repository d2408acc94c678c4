/* vc_mem: overflow-checked size arithmetic and the bump arena used for
 * per-sample scratch.  Every allocation that sizes itself from untrusted
 * input goes through vc_mul_ok/vc_add_ok first (stb's "mad" helpers are the
 * model), so a header that claims 100000 x 100000 pixels fails the check
 * instead of wrapping around. */
#ifndef VC_CORE_VC_MEM_H
#define VC_CORE_VC_MEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* *out = a * b; false (and *out untouched) on overflow of size_t. */
static inline bool vc_mul_ok(size_t a, size_t b, size_t *out)
{
    if (b != 0 && a > SIZE_MAX / b)
        return false;
    *out = a * b;
    return true;
}

static inline bool vc_add_ok(size_t a, size_t b, size_t *out)
{
    if (a > SIZE_MAX - b)
        return false;
    *out = a + b;
    return true;
}

/* malloc(n * size) with the overflow check; NULL on overflow or OOM.
 * Owned: free with free(). */
void *vc_malloc_array(size_t n, size_t size);
/* realloc with the same check; on failure the old block is untouched. */
void *vc_realloc_array(void *p, size_t n, size_t size);
/* The growable-array step every append shares: returns p when its *cap
 * elements already hold `need`, else p reallocated to the next capacity of
 * the doubling series that starts at `first` (or `need`, if larger) and
 * *cap updated; NULL on overflow or OOM, with p and *cap untouched (the
 * caller still owns p).  Doubling keeps n appends O(n). */
void *vc_grow_array(void *p, size_t *cap, size_t need, size_t elem, size_t first);
/* Owned copy of s (or of its first n bytes plus a NUL); NULL on OOM. */
char *vc_strdup(const char *s);
char *vc_strndup(const char *s, size_t n);

/* A bump allocator with a hard cap.  Memory handed out lives until
 * arena_reset() or arena_free(); nothing is freed individually.  Exceeding
 * the cap returns NULL, which callers turn into a VC_REASON_mem_cap
 * rejection of the sample rather than a crash. */
struct arena;

/* Owned: free with arena_free.  cap_bytes bounds the total handed out. */
struct arena *arena_new(size_t cap_bytes);
void arena_free(struct arena *a);
/* Forgets everything allocated so far; keeps one block for reuse. */
void arena_reset(struct arena *a);
/* 16-byte aligned; NULL when the cap would be exceeded or on OOM.
 * Arena memory: valid until the next arena_reset. */
void *arena_alloc(struct arena *a, size_t size);
void *arena_alloc_array(struct arena *a, size_t n, size_t size);
void *arena_memdup(struct arena *a, const void *p, size_t size);
/* Copies s plus a NUL terminator. */
char *arena_strndup(struct arena *a, const char *s, size_t n);
char *arena_strdup(struct arena *a, const char *s);
size_t arena_used(const struct arena *a);
size_t arena_cap(const struct arena *a);

#endif
