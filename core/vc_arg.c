/* vc_arg: whole-number command-line values (see vc_arg.h). */
#include "vc_arg.h"

#include <errno.h>
#include <stdlib.h>

bool vc_arg_long(const char *s, long long lo, long long hi, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    /* strtoll saturates on overflow (errno ERANGE) and takes "" as 0. */
    if (errno || end == s || *end || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}
