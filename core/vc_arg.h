/* vc_arg: the one reader of whole-number command-line values (thread
 * counts, sizes, radii, seeds) for every subcommand, so that a value that
 * is not a number, has trailing characters or overflows is a usage error
 * everywhere, never silently 0 or a wrapped huge count. */
#ifndef VC_CORE_VC_ARG_H
#define VC_CORE_VC_ARG_H

#include <stdbool.h>

/* Whether s is exactly one decimal integer in [lo, hi] (digits with an
 * optional leading '-'; no white space, no '+'); then *out holds it
 * (untouched otherwise). */
bool vc_arg_long(const char *s, long long lo, long long hi, long long *out);

#endif
