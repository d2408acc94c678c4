#!/usr/bin/python3
"""Writes a GGUF file with random weights in the exact Mistral-7B-v0.1 shapes
(llama architecture: hidden 4096, 32 layers, 32 query / 8 KV heads of 128,
FFN 14336, vocabulary 32000, untied output), F16 or BF16 matrices and F32
norms, for llama.cpp's llama-bench.  Speed does not depend on the values:
matrices hold random signs and mantissas with a fixed exponent (|w| in
[2^-6, 2^-5)); norms are ones.

usage: mk_mistral_gguf.py LLAMA_SRC OUT.gguf [f16|bf16]
The gguf package is imported from LLAMA_SRC/gguf-py (the tree under test).
"""
import sys

import numpy as np

if len(sys.argv) < 3:
    sys.exit(__doc__)
src, out = sys.argv[1], sys.argv[2]
kind = sys.argv[3] if len(sys.argv) > 3 else "f16"
sys.path.insert(0, src + "/gguf-py")
import gguf  # noqa: E402

D, L, H, KV, F, V = 4096, 32, 32, 8, 14336, 32000
rng = np.random.default_rng(1)


def matrix(rows, cols):
    bits = rng.integers(0, 1 << 16, size=(rows, cols), dtype=np.uint16)
    if kind == "f16":  # exponent 9 of 15: 2^-6
        return ((bits & 0x83FF) | 0x2400).view(np.float16)
    return (bits & 0x807F) | 0x3C80  # bf16 bits, exponent 2^-6


shapes = [("token_embd.weight", (V, D)), ("output_norm.weight", (D,)), ("output.weight", (V, D))]
for i in range(L):
    b = "blk.%d." % i
    shapes += [(b + "attn_norm.weight", (D,)), (b + "attn_q.weight", (D, D)),
               (b + "attn_k.weight", (KV * 128, D)), (b + "attn_v.weight", (KV * 128, D)),
               (b + "attn_output.weight", (D, D)), (b + "ffn_norm.weight", (D,)),
               (b + "ffn_gate.weight", (F, D)), (b + "ffn_up.weight", (F, D)),
               (b + "ffn_down.weight", (D, F))]

w = gguf.GGUFWriter(out, "llama")
w.add_name("random-mistral-7b-shape")
w.add_context_length(32768)
w.add_embedding_length(D)
w.add_block_count(L)
w.add_feed_forward_length(F)
w.add_rope_dimension_count(128)
w.add_head_count(H)
w.add_head_count_kv(KV)
w.add_rope_freq_base(10000.0)
w.add_layer_norm_rms_eps(1e-5)
w.add_file_type(1 if kind == "f16" else 32)  # MOSTLY_F16 / MOSTLY_BF16
tokens = ["<unk>", "<s>", "</s>"] + ["<0x%02X>" % b for b in range(256)]
types = [2, 3, 3] + [6] * 256
tokens += ["\u2581" + chr(c) for c in range(0x41, 0x5B)] + [chr(c) for c in range(0x61, 0x7B)]
types += [1] * 52
tokens += ["tok%d" % i for i in range(V - len(tokens))]
types += [1] * (V - len(types))
w.add_tokenizer_model("llama")
w.add_token_list(tokens)
w.add_token_scores([-float(i) for i in range(V)])
w.add_token_types(types)
w.add_bos_token_id(1)
w.add_eos_token_id(2)
w.add_unk_token_id(0)
w.add_add_bos_token(True)
w.add_add_eos_token(False)
qt = gguf.GGMLQuantizationType
for name, shp in shapes:
    if len(shp) == 1:
        w.add_tensor_info(name, shp, np.dtype(np.float32), shp[0] * 4)
    elif kind == "f16":
        w.add_tensor_info(name, shp, np.dtype(np.float16), shp[0] * shp[1] * 2)
    else:
        w.add_tensor_info(name, shp, np.dtype(np.uint16), shp[0] * shp[1] * 2, raw_dtype=qt.BF16)
w.write_header_to_file()
w.write_kv_data_to_file()
w.write_ti_data_to_file()
for name, shp in shapes:
    w.write_tensor_data(np.ones(shp, dtype=np.float32) if len(shp) == 1 else matrix(*shp))
w.close()
