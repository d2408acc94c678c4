/* vc_test: the in-house test harness.  A suite file defines cases with
 * TEST(name) { ... } at the start of a line (CMake reads those lines and
 * registers each case as its own ctest entry), lists them once in
 *     #define TESTS(X) X(name_a) X(name_b)
 *     TEST_MAIN(TESTS)
 * and runs as `test_suite CASE` (one case) or with no argument (all).  A
 * case listed nowhere is an unused static function and fails the build. */
#ifndef VC_TESTS_VC_TEST_H
#define VC_TESTS_VC_TEST_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

struct vc_test_case {
    const char *name;
    void (*fn)(void);
};

extern int vc_test_failures;

#define TEST(name)         static void test_##name(void)
#define VC_TEST_ROW_(name) { #name, test_##name },
#define TEST_MAIN(LIST)                                                                            \
    int main(int argc, char **argv)                                                                \
    {                                                                                              \
        static const struct vc_test_case cases[] = { LIST(VC_TEST_ROW_) };                         \
        return vc_test_run(cases, sizeof cases / sizeof cases[0], argc, argv);                     \
    }

int vc_test_run(const struct vc_test_case *cases, size_t n, int argc, char **argv);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);               \
            vc_test_failures++;                                                                    \
        }                                                                                          \
    } while (0)

#define CHECK_INT(a, b)                                                                            \
    do {                                                                                           \
        long long va_ = (long long)(a), vb_ = (long long)(b);                                      \
        if (va_ != vb_) {                                                                          \
            fprintf(stderr, "%s:%d: %s == %lld, expected %s == %lld\n", __FILE__, __LINE__, #a,    \
                    va_, #b, vb_);                                                                 \
            vc_test_failures++;                                                                    \
        }                                                                                          \
    } while (0)

#define CHECK_STR(a, b)                                                                            \
    do {                                                                                           \
        const char *sa_ = (a), *sb_ = (b);                                                         \
        if (!sa_ || !sb_ || strcmp(sa_, sb_) != 0) {                                               \
            fprintf(stderr, "%s:%d: %s == \"%s\", expected \"%s\"\n", __FILE__, __LINE__, #a,      \
                    sa_ ? sa_ : "(null)", sb_ ? sb_ : "(null)");                                   \
            vc_test_failures++;                                                                    \
        }                                                                                          \
    } while (0)

#define CHECK_NEAR(a, b, tol)                                                                      \
    do {                                                                                           \
        double da_ = (double)(a), db_ = (double)(b);                                               \
        if (!(fabs(da_ - db_) <= (double)(tol))) {                                                 \
            fprintf(stderr, "%s:%d: %s == %.9g, expected %.9g (tol %g)\n", __FILE__, __LINE__, #a, \
                    da_, db_, (double)(tol));                                                      \
            vc_test_failures++;                                                                    \
        }                                                                                          \
    } while (0)

/* Marks the running case skipped (what it tests cannot run here, e.g. the
 * CPU lacks the instructions), `why` printed with it; the case should return
 * right after.  A run whose cases all skipped, none failing, exits 77: the
 * SKIP_RETURN_CODE tests/CMakeLists.txt gives every case, so ctest reports
 * it skipped rather than passed. */
void vc_test_skip(const char *why);

/* A fresh empty folder for this case under the build tree; owned by the
 * harness (valid until exit).  Deleted and recreated on every call. */
const char *vc_test_tmpdir(void);
/* "<shared>/fixtures/<rel>"; static buffer, valid until the next call. */
const char *vc_test_fixture(const char *rel);
/* Reads a whole file into a malloc'd buffer (owned); NULL on failure. */
unsigned char *vc_test_read_file(const char *path, size_t *size);
int vc_test_write_file(const char *path, const void *data, size_t size);

#endif
