/* The decoder allocates nothing per token: this suite replaces the C
 * allocator (forwarding to glibc's __libc_* entry points) to count every
 * allocation in the process, then runs the same request on one context
 * with max_new_tokens 3 and 10.  The ten-token run makes seven more
 * decoder passes (checked through idf2_ctx_stats) and must make exactly as
 * many allocations as the three-token one.  Sanitizer builds own the
 * allocator, so there the count is not taken (the optimised tree runs it). */
#include <stdlib.h>

#include "synth/idefics2.h"
#include "tests/unit/vc_test.h"

#if defined(__SANITIZE_ADDRESS__)
#    define ALLOC_COUNTING 0
#elif defined(__has_feature)
#    if __has_feature(address_sanitizer)
#        define ALLOC_COUNTING 0
#    endif
#endif
#ifndef ALLOC_COUNTING
#    define ALLOC_COUNTING 1
#endif

static size_t n_allocs;

#if ALLOC_COUNTING
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void __libc_free(void *);

/* Relaxed atomics: OpenMP worker threads allocate too. */
static void *counted(void *p)
{
    __atomic_add_fetch(&n_allocs, 1, __ATOMIC_RELAXED);
    return p;
}

void *malloc(size_t n)
{
    return counted(__libc_malloc(n));
}

void *calloc(size_t n, size_t s)
{
    return counted(__libc_calloc(n, s));
}

void *realloc(void *p, size_t n)
{
    return counted(__libc_realloc(p, n));
}

void *aligned_alloc(size_t a, size_t n)
{
    return counted(__libc_memalign(a, n));
}

int posix_memalign(void **out, size_t a, size_t n)
{
    *out = counted(__libc_memalign(a, n));
    return *out ? 0 : 12; /* ENOMEM */
}

void free(void *p)
{
    __libc_free(p);
}
#endif

TEST(no_allocation_per_token)
{
    struct idf2_model *m = NULL;
    struct vc_err err = { 0 };
    if (idf2_model_load(vc_test_fixture("idefics2-tiny"), NULL, &m, &err) != VC_OK) {
        fprintf(stderr, "%s\n", err.msg);
        vc_test_failures++;
        return;
    }
    /* Greedy from this prompt runs past ten tokens without a stop token
     * (the fixture's raw_wide_split case without its image). */
    struct idf2_request req = { .prompt = "Describe:", .image_splitting = 0 };
    const struct idf2_ctx_params p = { .n_slots = 2, .n_ctx = 64, .n_threads = 2 };
    struct idf2_ctx *c = NULL;
    CHECK_INT(idf2_ctx_new(m, &p, &c, &err), VC_OK);
    size_t allocs[2], passes[2];
    const int max_new[2] = { 3, 10 };
    for (int r = 0; r < 2 && c; r++) {
        struct idf2_result res;
        req.gen.max_new_tokens = max_new[r];
        struct idf2_ctx_stats st0, st1;
        idf2_ctx_stats(c, &st0);
        const size_t a0 = __atomic_load_n(&n_allocs, __ATOMIC_RELAXED);
        CHECK_INT(idf2_ctx_generate(c, &req, 1, &res, &err), VC_OK);
        allocs[r] = __atomic_load_n(&n_allocs, __ATOMIC_RELAXED) - a0;
        idf2_ctx_stats(c, &st1);
        passes[r] = st1.passes - st0.passes;
        CHECK_INT(res.status, VC_OK);
        CHECK_INT(res.n_ids, (size_t)max_new[r]);
        CHECK(!res.stopped_on_eos);
        idf2_result_release(&res);
    }
    if (c) {
        CHECK_INT(passes[1], passes[0] + 7);
        printf("allocations: %zu for 3 tokens, %zu for 10 tokens\n", allocs[0], allocs[1]);
        if (ALLOC_COUNTING) {
            CHECK(allocs[0] > 0); /* the counter works: a request allocates its prompt */
            CHECK_INT(allocs[1], allocs[0]);
        }
    }
    idf2_ctx_free(c);
    idf2_model_free(m);
}

#define TESTS(X) X(no_allocation_per_token)
TEST_MAIN(TESTS)
