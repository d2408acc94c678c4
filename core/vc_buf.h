/* vc_buf: a growable byte buffer with a hard size cap (curl's dynbuf), for
 * building reports, JSON lines and headers without fixed-size arrays. */
#ifndef VC_CORE_VC_BUF_H
#define VC_CORE_VC_BUF_H

#include <stddef.h>

#include "vc_err.h"

struct vc_buf {
    char *data; /* owned; NUL-terminated while non-NULL */
    size_t len, cap;
    size_t max; /* appends that would pass this fail */
    int failed; /* sticky: an append failed; the contents are incomplete */
};

/* max_bytes bounds the buffer; nothing is allocated until the first append. */
void vc_buf_init(struct vc_buf *b, size_t max_bytes);
void vc_buf_free(struct vc_buf *b);
/* Both return 0, or -1 (and set b->failed) on OOM or when the cap is hit. */
int vc_buf_append(struct vc_buf *b, const void *data, size_t n);
int vc_buf_printf(struct vc_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends s with &, <, >, " and ' escaped for HTML text and attributes,
 * and each byte that is not valid UTF-8 as U+FFFD. */
int vc_buf_append_html(struct vc_buf *b, const char *s);

#endif
