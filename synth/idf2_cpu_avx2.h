/* idf2_cpu_avx2: the "avx2" row of the backend table (synth/idf2_backend.h)
 * for CPUs without AVX-512: float32 and bf16 matmuls on 8-lane ymm
 * registers with FMA, in register tiles of 4 activation rows x 3 weight
 * rows.  Compiled with per-function target attributes, so the library
 * builds anywhere and the row is chosen at run time when the CPU has AVX2
 * and FMA; everything else is inherited from "vec".
 *
 * Numerics: bf16 weights are widened exactly; output (i, j) is one chain of
 * FMAs per lane (lane l takes inputs k = l mod 8, the tail as a zero-filled
 * vector) folded in a fixed order, the same for any tile shape, batch size
 * or thread count (batch invariance), within float32 accumulation error of
 * the reference. */
#ifndef VC_SYNTH_IDF2_CPU_AVX2_H
#define VC_SYNTH_IDF2_CPU_AVX2_H

#include <stdbool.h>

#include "synth/idf2_backend.h"

extern const struct idf2_ops idf2_avx2_ops;

bool idf2_avx2_usable(void);

#endif
