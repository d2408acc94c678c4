/* vc_buf: growth by doubling up to the cap; the failure flag is sticky so
 * a caller can append many pieces and check once at the end. */
#include "vc_buf.h"

#include "vc_utf8.h"

#include "vc_mem.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void vc_buf_init(struct vc_buf *b, size_t max_bytes)
{
    memset(b, 0, sizeof *b);
    b->max = max_bytes;
}

void vc_buf_free(struct vc_buf *b)
{
    free(b->data);
    memset(b, 0, sizeof *b);
}

static int reserve(struct vc_buf *b, size_t extra)
{
    size_t need;
    if (b->failed || !vc_add_ok(b->len, extra, &need) || !vc_add_ok(need, 1, &need) ||
        need > b->max) {
        b->failed = 1;
        return -1;
    }
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    char *grown = realloc(b->data, cap);
    if (!grown) {
        b->failed = 1;
        return -1;
    }
    b->data = grown;
    b->cap = cap;
    return 0;
}

int vc_buf_append(struct vc_buf *b, const void *data, size_t n)
{
    if (reserve(b, n) != 0)
        return -1;
    if (n)
        memcpy(b->data + b->len, data, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int vc_buf_printf(struct vc_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || reserve(b, (size_t)n) != 0) {
        b->failed = 1;
        return -1;
    }
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

int vc_buf_append_html(struct vc_buf *b, const char *s)
{
    for (; *s; s++) {
        const char *rep = NULL;
        uint32_t cp;
        size_t k =
            (unsigned char)*s < 0x80 ? 1 : vc_utf8_decode((const unsigned char *)s, strlen(s), &cp);
        if (k > 1) { /* a whole character: as it is */
            if (vc_buf_append(b, s, k))
                return -1;
            s += k - 1;
            continue;
        }
        if (k == 0)
            rep = "\xEF\xBF\xBD"; /* U+FFFD for a byte that is no UTF-8 */
        switch (*s) {
        case '&':
            rep = "&amp;";
            break;
        case '<':
            rep = "&lt;";
            break;
        case '>':
            rep = "&gt;";
            break;
        case '"':
            rep = "&quot;";
            break;
        case '\'':
            rep = "&#39;";
            break;
        default:
            break;
        }
        if (rep ? vc_buf_append(b, rep, strlen(rep)) : vc_buf_append(b, s, 1))
            return -1;
    }
    return 0;
}
