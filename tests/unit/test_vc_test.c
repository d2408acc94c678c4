/* The harness's own contract (tests/unit/vc_test.h): a case that calls
 * vc_test_skip is reported as skipped, and a run whose cases all skipped
 * exits 77, ctest's SKIP_RETURN_CODE.  `skips_itself` is not a TEST line
 * (it would show as a skipped ctest entry on every machine): the
 * unit.vc_test.skip_exits_77 entry of tests/CMakeLists.txt runs it and
 * checks the exit status. */
#include "vc_test.h"

TEST(a_passing_case)
{
    CHECK_INT(vc_test_failures, 0);
}

static void test_skips_itself(void)
{
    vc_test_skip("skips on every machine: what unit.vc_test.skip_exits_77 checks");
}

#define TESTS(X) X(a_passing_case) X(skips_itself)
TEST_MAIN(TESTS)
