/* idefics2: the public interface of the bundled Idefics2 engine.  Load a
 * Hugging Face checkpoint folder as published, then caption / answer /
 * score (image, prompt) requests.  The engine knows nothing of the
 * pipeline: requests carry encoded image bytes and UTF-8 text, results
 * carry token ids and text.
 *
 * Exactness first: in IDF2_COMPUTE_F32 every activation is float32 and the
 * outputs match the float32 reference of the Hugging Face implementation
 * (tests/golden/test_idefics2.c).  IDF2_COMPUTE_BF16 keeps the weights in
 * bf16 (half the memory: the float32 idefics2-8b is converted at load) and
 * still computes activations in float32.
 *
 * Model and contexts: a loaded model is immutable and may be shared by any
 * number of inference contexts (struct idf2_ctx), each used by one thread at
 * a time.  A context preallocates everything a forward pass touches (a
 * scratch arena sized for the largest image, the KV caches of its slots,
 * the decode buffers): generation allocates per request (prompt, pixels,
 * result) and never per token.  The model-level calls below make a context
 * for the call.
 *
 * Batching and determinism: a context decodes up to n_slots requests
 * together, reading every weight once per step for all of them, and refills
 * a slot as soon as its request stops.  A request's logits, and so its
 * tokens, are bit-identical whatever the batch size, the other requests in
 * it, the thread count or the order of requests (the kernels reduce in a
 * fixed order per output element, synth/idf2_backend.h). */
#ifndef VC_SYNTH_IDEFICS2_H
#define VC_SYNTH_IDEFICS2_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/vc_err.h"

struct idf2_model;

enum idf2_compute {
    IDF2_COMPUTE_F32 = 0, /* weights widened to float32: the golden mode */
    IDF2_COMPUTE_BF16,    /* weights kept/converted to bf16 */
};

/* The text decoder's matrices (and the LM head) in a block format, made at
 * load from the checkpoint (synth/idf2_quantize.h); the vision tower and
 * the connector keep the compute dtype. */
enum idf2_text_quant {
    IDF2_TEXT_QUANT_NONE = 0,
    IDF2_TEXT_QUANT_Q8_0, /* int8 in blocks of 32, a half scale each */
    IDF2_TEXT_QUANT_Q4_0, /* 4-bit in blocks of 32, a half scale each */
};

/* Where the text decoder's matrices (and the LM head) are read from at
 * every decode step.  Outputs are the same bytes either way. */
enum idf2_weights_place {
    IDF2_WEIGHTS_DEFAULT = 0, /* IDF2_WEIGHTS_COPY (the faster, README) */
    IDF2_WEIGHTS_MAP,         /* in place in the mapped checkpoint / cache files: the
                               * page cache in 4 KiB pages, which the kernel may evict */
    IDF2_WEIGHTS_COPY,        /* copied at load into anonymous memory advised for
                               * transparent huge pages, source pages dropped; when
                               * MemAvailable cannot hold the copy with a reserve,
                               * the mapping is kept and the load report says so */
};

/* "copy" or "map" (the command line's and the stage spec's names); false
 * for anything else. */
bool idf2_weights_place_parse(const char *s, enum idf2_weights_place *out);

struct idf2_load_opts {
    enum idf2_compute compute;
    int n_threads;  /* default for contexts; 0: OpenMP's default */
    bool use_cache; /* read/write the bf16 conversion cache and the quantized
                     * text cache (.vlmcurate-q8_0.bin / -q4_0.bin) next to
                     * the weights */
    enum idf2_text_quant text_quant;
    /* Kernel row (synth/idf2_backend.h): NULL or "" picks the fastest this
     * CPU runs; "ref" is the scalar reference, "vec" the portable one. */
    const char *backend;
    enum idf2_weights_place weights;
};

/* Reads every file of the checkpoint folder `dir` (config, generation,
 * preprocessor and processor configs, tokenizer.json, the weights).
 * `opts` may be NULL (f32, default threads, no cache).  Owned:
 * idf2_model_free.  Errors: VC_EUSAGE bad_checkpoint / bad_tokenizer with
 * the file and field named; VC_EFATAL out_of_memory / io_error. */
enum vc_status idf2_model_load(const char *dir, const struct idf2_load_opts *opts,
                               struct idf2_model **out, struct vc_err *err);
void idf2_model_free(struct idf2_model *m);

/* What the load did. */
struct idf2_load_report {
    double load_seconds;
    size_t peak_rss_bytes; /* process peak RSS right after the load */
    size_t bytes_mapped;   /* weight bytes used in place from the mmap */
    size_t bytes_owned;    /* weight bytes converted into owned buffers */
    bool from_cache, cache_written;
    size_t bytes_copied;       /* text weight bytes copied into anonymous memory */
    size_t bytes_huge;         /* of them, in transparent huge pages after the copy */
    size_t bytes_huge_faulted; /* of those, what the copy's page faults got (the rest: collapsed) */
    size_t bytes_uncached;     /* checkpoint bytes dropped from the page cache behind the copy
                                  and the quantization */
    char weights_note[192];    /* why IDF2_WEIGHTS_COPY copied nothing, or "" */
    char huge_note[96];        /* why some copied weights stay in 4 KiB pages, or "" */
    size_t bytes_packed;       /* vision + connector weights packed into the kernel row's layout */
    size_t bytes_packed_huge;  /* of them, in transparent huge pages */
    char pack_huge_note[96];   /* why some packed weights stay in 4 KiB pages, or "" */
    char pack_note[192];       /* why a row with a packed layout packed nothing, or "" */

    /* Of the text weights, bytes written at load in the kernel row's packed
     * layout instead of copied as stored (synth/idf2_place.h). */
    size_t bytes_text_packed;

    /* Text weights quantized at load (--quant without a usable cache) stay
     * in the quantizer's own arena, which the copy above skips: its bytes,
     * of them those in transparent huge pages after the collapse and those
     * the quantizer's faults got; why some stay in 4 KiB pages, or "".
     * All 0 when the blocks came from the cache (then they are copied). */
    size_t bytes_quantized, bytes_quantized_huge, bytes_quantized_huge_faulted;
    char quant_huge_note[96];
};
void idf2_model_report(const struct idf2_model *m, struct idf2_load_report *out);

/* Hyper-parameters a caller may want to print or size things from. */
struct idf2_model_info {
    const char *backend; /* the kernel row in use */
    int vocab_size, text_width, vision_width;
    int image_seq_len;     /* <image> tokens per image (per crop when splitting) */
    bool image_splitting;  /* preprocessor_config.json's default */
    int default_max_new;   /* generation_config.json's max_new_tokens, or IDF2_DEFAULT_MAX_NEW */
    double text_row_flops; /* 2 x the multiply-adds of the decoder layers' matmuls per token
                              row (what a pass's FLOP rate is counted in) */
};
void idf2_model_info(const struct idf2_model *m, struct idf2_model_info *out);

/* Used when neither the request nor generation_config.json says:
 * a caption or an OCR transcript rarely needs more. */
#define IDF2_DEFAULT_MAX_NEW 256
/* Hard cap on prompt + generated tokens for one request: Mistral's sliding
 * window (4096) is the longest span SPEC §8.4 pins down. */
#define IDF2_MAX_CONTEXT 4096

struct idf2_image_bytes {
    const uint8_t *data; /* JPEG, PNG or WebP (detected by magic bytes) */
    size_t size;
    const char *name; /* what messages call it (its path); NULL: "image N" */
};

/* Decoding: temperature 0 is greedy (argmax, first index on ties); > 0
 * samples from softmax(logits / temperature) restricted to the smallest
 * top-p nucleus (HF's TopPLogitsWarper), drawing from a PRNG seeded with
 * `seed`, so the same request and seed give the same text. */
struct idf2_gen_params {
    int max_new_tokens; /* 0: the model's default (idf2_model_info) */
    float temperature;  /* 0: greedy */
    float top_p;        /* (0, 1]; 0 means 1 (off) */
    uint64_t seed;
};

/* Intermediate tensors, for engine-cases and the golden tests.  Each
 * tensor is reported once per request, under the names of the fixtures'
 * expected.safetensors without the "<case>." prefix: input_ids (I64
 * [1,L]), pixel_values (F32 [1,n,3,H,W]), pixel_attention_mask (I64
 * [1,n,H,W]), patch_attention_mask (I64 [n,H/p,W/p]), vision_position_ids
 * (I64 [n,P]), vision_last_hidden_state (F32 [n,P,Dv]),
 * modality_projection (F32 [n,P,Dt]), image_hidden_states (F32
 * [n,n_lat,Dt]), inputs_embeds (F32 [1,L,Dt]), logits (F32 [1,L,V], only
 * with all_logits: it costs a vocabulary projection per prompt token),
 * step_logits (F32 [G,V]: the raw logits each generated token was chosen
 * from), generated_ids (I64 [1,G]).  Rows of padding patches are zero (the
 * engine never computes them).  `data` is borrowed for the call only. */
enum idf2_trace_dtype {
    IDF2_TRACE_F32 = 0,
    IDF2_TRACE_I64,
};
struct idf2_trace {
    void (*tensor)(void *ctx, const char *name, enum idf2_trace_dtype dtype, const int64_t *shape,
                   int n_dims, const void *data);
    void *ctx;
    bool all_logits;
};

/* One request.  Exactly one of `prompt` and `chat` is set:
 *  - prompt: the processor prompt as is, one literal "<image>" per image in
 *    order (e.g. "<image>Caption:"); BOS is added;
 *  - chat: the text of one user turn, rendered with the chat template as
 *    [images..., text] followed by the generation prompt "Assistant:".
 * image_splitting: -1 follows preprocessor_config.json, 0 off, 1 on. */
struct idf2_request {
    const struct idf2_image_bytes *images;
    size_t n_images;
    const char *prompt;
    const char *chat;
    int image_splitting;
    struct idf2_gen_params gen;
    const struct idf2_trace *trace; /* NULL: none */
};

/* The outcome of one request.  A request that fails (undecodable image,
 * prompt too long, ...) has status < 0 and its own err; the other requests
 * of the batch are unaffected.  ids/text are owned: idf2_result_release. */
struct idf2_result {
    enum vc_status status;
    struct vc_err err;
    int32_t *ids; /* generated ids, the stop token included when one was hit */
    size_t n_ids;
    char *text; /* decode(ids, skip_special_tokens) */
    bool stopped_on_eos;
    size_t n_prompt_tokens;
    size_t n_images_after_split;
    double vision_seconds;  /* vision encoder + connector */
    double prefill_seconds; /* merge + prompt pass */
    double decode_seconds;  /* every later step */
};
void idf2_result_release(struct idf2_result *r);

/* ------------------------------------------------------------ contexts */

struct idf2_ctx;

struct idf2_ctx_params {
    int n_slots;   /* requests decoded together; 0: IDF2_DEFAULT_SLOTS */
    int n_ctx;     /* positions per slot (prompt + generated); 0: IDF2_DEFAULT_CTX */
    int n_threads; /* 0: the model's load option */
    int max_rows;  /* token rows per forward pass (prompts are prefilled in chunks of
                      at most this); 0: IDF2_DEFAULT_ROWS; raised to n_slots */
};
#define IDF2_DEFAULT_SLOTS 16
#define IDF2_DEFAULT_CTX   512
#define IDF2_DEFAULT_ROWS  512

/* Allocates the context's arena and caches (KV: n_slots x n_ctx x 2 x
 * layers x kv_heads x head_dim floats, 256 KiB per position for
 * idefics2-8b).  `p` may be NULL (defaults).  The model must outlive the
 * context.  Errors: VC_EUSAGE bad_spec for parameters out of range
 * (n_ctx > IDF2_MAX_CONTEXT), VC_EFATAL out_of_memory. */
enum vc_status idf2_ctx_new(const struct idf2_model *m, const struct idf2_ctx_params *p,
                            struct idf2_ctx **out, struct vc_err *err);
void idf2_ctx_free(struct idf2_ctx *c);

/* What a context holds, and what its calls did so far. */
struct idf2_ctx_stats {
    size_t n_slots, n_ctx, max_rows;
    size_t arena_bytes; /* everything preallocated, KV included */
    size_t passes;      /* decoder forward passes */
    size_t rows;        /* token rows through the decoder */
    size_t max_batch;   /* most sequences in one pass */
    /* Where the time went: image encoding (preprocessing, vision tower and
     * connector; the images of the requests admitted together share
     * passes), in vision_passes passes of vision_images images; then the
     * decoder passes of prompt rows only (prefill), of decoding rows only
     * (decode), and of both (mixed: a prompt beside other slots' next
     * tokens), each with its pass count and token rows. */
    double vision_seconds;
    size_t vision_passes, vision_images;
    struct idf2_pass_stats {
        double seconds;
        size_t passes, rows;
    } prefill, decode, mixed;
};
void idf2_ctx_stats(const struct idf2_ctx *c, struct idf2_ctx_stats *out);

/* Runs n requests (ragged: each its own images, prompt length, stop state
 * and parameters) in one batch: up to n_slots at a time, one weight pass
 * per decode step for all of them, a finished request's slot refilled from
 * the queue at once.  Fills results[0..n) (request i's result in
 * results[i]).  Returns VC_OK once every request was attempted: look at each
 * result's status.  A request whose prompt does not fit the context
 * (n_ctx) fails alone (VC_ESAMPLE field_too_long); max_new_tokens is cut
 * to the room left.  VC_EUSAGE only for NULL arrays. */
enum vc_status idf2_ctx_generate(struct idf2_ctx *c, const struct idf2_request *reqs, size_t n,
                                 struct idf2_result *results, struct vc_err *err);

/* Called by idf2_ctx_generate / idf2_ctx_score on the calling thread as
 * soon as request (or item) i has its final result, in the order requests
 * finish: a caller can commit each result while the rest of the batch
 * runs.  From then on results[i] (items[i]) is the caller's: the engine
 * never reads or writes it again, so the callback may release it.  Stays
 * set for later calls; fn NULL removes it. */
typedef void (*idf2_done_fn)(void *arg, size_t i);
void idf2_ctx_on_done(struct idf2_ctx *c, idf2_done_fn fn, void *arg);

/* The number of prompt tokens (input_ids, BOS and image tokens included)
 * of a request, without reading its images: what a caller sizes n_ctx
 * from.  Errors as idf2_generate's for the prompt. */
enum vc_status idf2_request_tokens(const struct idf2_model *m, const struct idf2_request *req,
                                   size_t *n_tokens, struct vc_err *err);

/* One scoring request: the log-likelihood of a continuation after req's
 * prompt (see idf2_score); `continuation` text, or when NULL the ids. */
struct idf2_score_item {
    struct idf2_request req; /* gen and trace are ignored */
    const char *continuation;
    const int32_t *ids;
    size_t n_ids;
    /* out */
    enum vc_status status;
    struct vc_err err;
    double logprob;
    size_t n_tokens;
};
/* Scores n items in one batch (as idf2_ctx_generate: slots, one weight pass
 * per step, per-item status).  VC_EUSAGE only for a NULL array. */
enum vc_status idf2_ctx_score(struct idf2_ctx *c, struct idf2_score_item *items, size_t n,
                              struct vc_err *err);

/* ------------------------------------------------- model-level shortcuts */

/* idf2_ctx_generate on a context made for the call: min(n,
 * IDF2_DEFAULT_SLOTS) slots, each just long enough for the longest
 * request (at most IDF2_MAX_CONTEXT). */
enum vc_status idf2_generate_batch(struct idf2_model *m, const struct idf2_request *reqs, size_t n,
                                   struct idf2_result *results, struct vc_err *err);
/* One request; returns the result's status, with err filled on failure. */
enum vc_status idf2_generate(struct idf2_model *m, const struct idf2_request *req,
                             struct idf2_result *result, struct vc_err *err);

/* The log-likelihood of `continuation` after the request's prompt (images
 * included): the sum over its tokens of log p(token | everything before),
 * in natural log.  The continuation is encoded on its own without BOS, as
 * tokenizer(continuation, add_special_tokens=False) does (so it gets the
 * normalizer's leading "▁").  gen and trace fields of req are ignored.
 * *n_tokens (optional) receives the number of continuation tokens; an empty
 * continuation scores 0. */
enum vc_status idf2_score(struct idf2_model *m, const struct idf2_request *req,
                          const char *continuation, double *logprob, size_t *n_tokens,
                          struct vc_err *err);
/* The same for continuation token ids (VC_EUSAGE for an id outside the
 * vocabulary). */
enum vc_status idf2_score_ids(struct idf2_model *m, const struct idf2_request *req,
                              const int32_t *ids, size_t n_ids, double *logprob,
                              struct vc_err *err);

#endif
