/* idf2_cpu_avx2: the "avx2" row for CPUs with AVX2 + FMA and no AVX-512:
 * its table of operations and the CPU test that chooses it.  The f32 and
 * bf16 matmul and its panel packing live in idf2_cpu_avx2mm.c, the block
 * formats' matmul in idf2_cpu_avx2q.c, attention, norms and SiLU/GELU-tanh
 * in idf2_cpu_avx2ops.c; everything this row leaves NULL is inherited from
 * "vec". */
#include "idf2_cpu_avx2.h"

#include "synth/idf2_cpu_avx2mm.h"
#include "synth/idf2_cpu_avx2ops.h"
#include "synth/idf2_cpu_avx2q.h"

bool idf2_avx2_usable(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

/* f32 and bf16 pack per call what was not packed at load; the block
 * formats quantize the activations into int8 blocks. */
static size_t avx2_matmul_ws(size_t n, const struct idf2_w *w, int nt)
{
    return w->fmt == IDF2_WF_F32 || w->fmt == IDF2_WF_BF16 ? idf2_avx2mm_ws(w, nt)
                                                           : idf2_avx2q_matmul_ws(n, w);
}

/* Float32 chains of 256 inputs, their sums added: well inside 1e-5 of the
 * sum of magnitudes.  Block formats: the int8 activation codes (1/254 of a
 * block's largest activation each), as the avx512 row. */
const struct idf2_ops idf2_avx2_ops = {
    .name = "avx2",
    .tol = { [IDF2_WF_F32] = 1e-5,
             [IDF2_WF_BF16] = 1e-5,
             [IDF2_WF_Q8_0] = 3e-2,
             [IDF2_WF_Q4_0] = 3e-2,
             [IDF2_WF_Q8_0X16] = 3e-2,
             [IDF2_WF_Q4_0X16] = 3e-2 },
    .matmul = { [IDF2_WF_F32] = idf2_avx2mm_matmul,
                [IDF2_WF_BF16] = idf2_avx2mm_matmul,
                [IDF2_WF_Q8_0] = idf2_avx2q_matmul,
                [IDF2_WF_Q4_0] = idf2_avx2q_matmul,
                [IDF2_WF_Q8_0X16] = idf2_avx2q_matmul,
                [IDF2_WF_Q4_0X16] = idf2_avx2q_matmul },
    .matmul_ws = avx2_matmul_ws,
    .pack_bytes = idf2_avx2mm_pack_bytes,
    .pack = idf2_avx2mm_pack,
    .attention = idf2_avx2ops_attention,
    .attention_ws = idf2_avx2ops_attention_ws,
    .layernorm = idf2_avx2ops_layernorm,
    .rmsnorm = idf2_avx2ops_rmsnorm,
    .act = idf2_avx2ops_act,
    .act_mul = idf2_avx2ops_act_mul,
};
