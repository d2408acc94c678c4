/* vc_arg: numeric command-line values (see vc_arg.h). */
#include "vc_arg.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

bool vc_arg_long(const char *s, long long lo, long long hi, long long *out)
{
    /* strtoll also takes leading white space and a '+': not a number as
     * typed (a quoted " 3" is a slip, not 3). */
    if (!isdigit((unsigned char)*s) && !(*s == '-' && isdigit((unsigned char)s[1])))
        return false;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    /* strtoll saturates on overflow (errno ERANGE). */
    if (errno || *end || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

bool vc_arg_double(const char *s, double lo, double hi, double *out)
{
    /* strtod also takes white space, hex floats, "inf" and "nan". */
    if (!(isdigit((unsigned char)*s) || *s == '.' || *s == '-') ||
        s[strspn(s, "0123456789.eE+-")] != '\0')
        return false;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || !(v >= lo && v <= hi))
        return false;
    *out = v;
    return true;
}
