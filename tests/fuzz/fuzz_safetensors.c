/* Fuzz target: the safetensors header parser (st_file_open_mem) over
 * arbitrary bytes.  Whatever it accepts must be self-consistent: every
 * tensor findable by name, its bytes inside the input, its element count
 * matching its byte count, and reading its first and last elements must
 * not crash. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "synth/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct st_file *f = NULL;
    struct vc_err err = { 0 };
    if (st_file_open_mem(data, size, "fuzz", &f, &err) < 0) {
        if (err.msg[0] == '\0')
            abort(); /* every refusal must say why */
        return 0;
    }
    for (size_t i = 0; i < st_file_count(f); i++) {
        const struct st_tensor *t = st_file_at(f, i);
        const uint8_t *p = t->data;
        if (st_file_find(f, t->name) != t || p < data || p + t->n_bytes > data + size ||
            (size_t)t->n_elems * st_dtype_size(t->dtype) != t->n_bytes)
            abort();
        if (t->n_elems > 0 && (t->dtype == ST_F32 || t->dtype == ST_BF16 || t->dtype == ST_F16)) {
            volatile float first = st_get_f32(t, 0), last = st_get_f32(t, t->n_elems - 1);
            (void)first;
            (void)last;
        }
    }
    st_file_close(f);
    return 0;
}
