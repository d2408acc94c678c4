/* idf2_cpu_avx2: the "avx2" row of the backend table (synth/idf2_backend.h)
 * for CPUs without AVX-512: float32 and bf16 matmuls on 8-lane ymm
 * registers with FMA, an outer product on weight panels packed at load
 * (synth/idf2_cpu_avx2mm.h has the layout and the numerics).  Compiled with
 * per-function target attributes, so the library builds anywhere and the
 * row is chosen at run time when the CPU has AVX2 and FMA; everything else
 * is inherited from "vec". */
#ifndef VC_SYNTH_IDF2_CPU_AVX2_H
#define VC_SYNTH_IDF2_CPU_AVX2_H

#include <stdbool.h>

#include "synth/idf2_backend.h"

extern const struct idf2_ops idf2_avx2_ops;

bool idf2_avx2_usable(void);

#endif
