/* Fuzz target: the parquet reader (stages/pq) over arbitrary bytes.  A
 * refusal must say why; an accepted file must let every column be read to
 * its end (or to a page error that says why) without reading outside the
 * input, with exactly pq_num_rows values per column when no error comes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "stages/pq.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct pq_file *f = NULL;
    struct vc_err err = { 0 };
    if (pq_open_mem(data, size, "fuzz", &f, &err) < 0) {
        if (err.msg[0] == '\0')
            abort();
        return 0;
    }
    for (size_t c = 0; c < pq_num_columns(f); c++) {
        for (uint64_t first = 0; first <= 1; first++) {
            struct pq_cursor *cur;
            vc_err_clear(&err);
            if (pq_cursor_open(f, c, first, &cur, &err) < 0) {
                if (err.msg[0] == '\0')
                    abort();
                continue;
            }
            uint64_t n = 0;
            struct pq_value v;
            enum vc_status rc;
            while ((rc = pq_cursor_next(cur, &v, &err)) == VC_OK) {
                n++;
                if (!v.null && (v.type == PQ_BYTE_ARRAY || v.type == PQ_FIXED_LEN_BYTE_ARRAY) &&
                    v.v.s.n) {
                    volatile uint8_t a = v.v.s.p[0], b = v.v.s.p[v.v.s.n - 1];
                    (void)a;
                    (void)b;
                }
            }
            if (rc < 0 && err.msg[0] == '\0')
                abort();
            uint64_t rows = pq_num_rows(f);
            if (rc == VC_EOF && n != (rows > first ? rows - first : 0))
                abort();
            pq_cursor_close(cur);
        }
    }
    pq_close(f);
    return 0;
}
