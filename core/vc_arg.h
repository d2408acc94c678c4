/* vc_arg: the one reader of numeric command-line values (thread counts,
 * sizes, radii, seeds, task indexes, rates, temperatures) for every
 * subcommand, so that a value that is not a number, has trailing
 * characters or overflows is a usage error everywhere, never silently 0 or
 * a wrapped huge count. */
#ifndef VC_CORE_VC_ARG_H
#define VC_CORE_VC_ARG_H

#include <stdbool.h>

/* Whether s is exactly one decimal integer in [lo, hi] (digits with an
 * optional leading '-'; no white space, no '+'); then *out holds it
 * (untouched otherwise). */
bool vc_arg_long(const char *s, long long lo, long long hi, long long *out);

/* Whether s is exactly one decimal number (digits, a point, an exponent;
 * no white space, hex, inf or nan) in [lo, hi]; then *out holds it
 * (untouched otherwise). */
bool vc_arg_double(const char *s, double lo, double hi, double *out);

#endif
