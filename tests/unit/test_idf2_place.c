/* Unit tests for synth/idf2_place's page handling at load: a copied
 * source leaves the page cache for exactly its own whole pages (mincore
 * of a file this test writes, the neighbours' pages stay cached), anonymous
 * memory is never advised, and the collapse into huge pages falls back
 * cleanly (data intact, the reason named) where the mapping refuses huge
 * pages, and where it succeeds /proc/self/smaps shows them. */
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "synth/idf2_place.h"
#include "tests/unit/vc_test.h"

#define NPAGES 64

/* Pages [0, NPAGES) of a file of this test's, each written on its own
 * (so the page cache holds them as single pages), synced and mapped. */
static unsigned char *cached_file(const char *name, size_t page, int *fd_out)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", vc_test_tmpdir(), name);
    const int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    CHECK(fd >= 0);
    if (fd < 0)
        return NULL;
    unsigned char *buf = malloc(page);
    for (size_t i = 0; i < NPAGES; i++) {
        memset(buf, (int)(i + 1), page);
        CHECK(pwrite(fd, buf, page, (off_t)(i * page)) == (ssize_t)page);
    }
    free(buf);
    CHECK(fsync(fd) == 0);
    unsigned char *m = mmap(NULL, NPAGES * page, PROT_READ, MAP_PRIVATE, fd, 0);
    CHECK(m != MAP_FAILED);
    *fd_out = fd;
    return m == MAP_FAILED ? NULL : m;
}

static void residency(const unsigned char *m, size_t page, unsigned char *vec)
{
    CHECK(mincore((void *)m, NPAGES * page, vec) == 0);
}

TEST(uncache_only_whole_pages_of_the_range)
{
    const size_t page = (size_t)sysconf(_SC_PAGESIZE);
    int fd = -1;
    unsigned char *m = cached_file("src", page, &fd);
    if (!m)
        return;
    unsigned char vec[NPAGES];
    residency(m, page, vec);
    int cached = 0;
    for (int i = 0; i < NPAGES; i++)
        cached += vec[i] & 1;
    CHECK_INT(cached, NPAGES); /* written and synced: all in the page cache */
    /* A tensor from the middle of page 8 to the middle of page 40: whole
     * pages 9..39 are its own; 8 and 40 are shared with neighbours. */
    const size_t lo = 8 * page + 100, hi = 40 * page + 7;
    CHECK_INT((long)idf2_place_drop_source(m + lo, hi - lo, true), (long)(31 * page));
    residency(m, page, vec);
    for (int i = 0; i < NPAGES; i++) {
        if ((vec[i] & 1) != (i < 9 || i > 39))
            fprintf(stderr, "page %d: cached %d\n", i, vec[i] & 1);
        CHECK((vec[i] & 1) == (i < 9 || i > 39));
    }
    /* The data stays valid: read again from the file. */
    CHECK_INT(m[20 * page + 5], 21);
    CHECK_INT(m[8 * page], 9);
    /* Without uncache the page cache keeps the pages. */
    CHECK_INT((long)idf2_place_drop_source(m + 48 * page, 4 * page, false), 0);
    residency(m, page, vec);
    CHECK(vec[49] & 1);
    munmap(m, NPAGES * page);
    close(fd);
}

TEST(uncache_skips_anonymous_memory)
{
    const size_t page = (size_t)sysconf(_SC_PAGESIZE);
    unsigned char *a =
        mmap(NULL, 8 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(a != MAP_FAILED);
    if (a == MAP_FAILED)
        return;
    memset(a, 7, 8 * page);
    CHECK_INT((long)idf2_place_drop_source(a, 8 * page, true), 0);
    CHECK_INT((long)idf2_place_drop_source(a + 1, page - 2, true), 0); /* no whole page */
    munmap(a, 8 * page);
}

/* 4 MiB of anonymous memory on a huge-page boundary, written through
 * 4 KiB pages (huge pages refused while writing), then `huge` advice. */
static unsigned char *small_pages(size_t bytes, int advice)
{
    unsigned char *raw =
        mmap(NULL, 2 * bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(raw != MAP_FAILED);
    if (raw == MAP_FAILED)
        return NULL;
    unsigned char *a = (unsigned char *)(((uintptr_t)raw + bytes - 1) / bytes * bytes);
    if (a > raw)
        munmap(raw, (size_t)(a - raw));
    munmap(a + bytes, (size_t)(raw + 2 * bytes - (a + bytes)));
    CHECK(madvise(a, bytes, MADV_NOHUGEPAGE) == 0);
    for (size_t i = 0; i < bytes; i++)
        a[i] = (unsigned char)(i * 31 + 7);
    CHECK(madvise(a, bytes, advice) == 0);
    return a;
}

static bool intact(const unsigned char *a, size_t bytes)
{
    for (size_t i = 0; i < bytes; i++)
        if (a[i] != (unsigned char)(i * 31 + 7))
            return false;
    return true;
}

/* Collapses 4 MiB written through 4 KiB pages, then given `advice`:
 * the data survives, the result is whole huge pages, and anything short
 * of all of it is named.  Returns the huge bytes. */
static size_t collapse_case(int advice, char *note, size_t cap)
{
    const size_t bytes = (size_t)4 << 20;
    unsigned char *a = small_pages(bytes, advice);
    if (!a)
        return 0;
    snprintf(note, cap, "stale");
    const size_t huge = idf2_place_collapse(a, bytes, note, cap);
    fprintf(stderr, "huge %zu of %zu, note '%s'\n", huge, bytes, note);
    CHECK(note[0] ? huge < bytes : huge == bytes);
    CHECK(huge % ((size_t)2 << 20) == 0);
    CHECK(intact(a, bytes));
    munmap(a, bytes);
    return huge;
}

TEST(collapse_refused_keeps_data_and_names_why)
{
    char note[96];
    CHECK_INT((long)collapse_case(MADV_NOHUGEPAGE, note, sizeof note), 0);
    CHECK(strstr(note, "MADV_COLLAPSE: ") == note);
}

TEST(collapse_gets_huge_pages_or_says_why)
{
    char note[96];
    collapse_case(MADV_HUGEPAGE, note, sizeof note);
}

#define TESTS(X)                                                                                   \
    X(uncache_only_whole_pages_of_the_range)                                                       \
    X(uncache_skips_anonymous_memory)                                                              \
    X(collapse_refused_keeps_data_and_names_why)                                                   \
    X(collapse_gets_huge_pages_or_says_why)
TEST_MAIN(TESTS)
