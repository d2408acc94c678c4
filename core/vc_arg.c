/* vc_arg: whole-number command-line values (see vc_arg.h). */
#include "vc_arg.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>

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
