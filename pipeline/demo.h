/* demo: generates a small but realistic input dataset for `vlmcurate demo`,
 * the end-to-end tests and the benchmarks, deterministically from a seed:
 *
 *   DIR/wds/demo-%06d.tar   webdataset shards (jpg/png/webp + txt + json);
 *                           the last two are the corrupt shard (truncated in
 *                           the middle of a member) and the hostile one
 *                           ("../" and absolute member names, a symlink,
 *                           a repeated extension);
 *   DIR/pairs/              images/ + pairs.jsonl + pairs.csv (same rows);
 *   DIR/docs/               images/ + docs.jsonl, OBELICS-style documents;
 *   DIR/model/              a tiny random Idefics2 checkpoint (Hugging Face
 *                           layout) that the spec's caption stage runs:
 *                           its captions are noise;
 *   DIR/spec.json           the default pipeline over all three sources;
 *   DIR/demo.json           what was generated, and every deliberate defect
 *                           (source, file, key, defect) so tests can check
 *                           each one ends up in the ledger.
 *
 * Pictures are painted procedurally (gradients, shapes, text-like lines,
 * noise) and encoded with img_encode, so they have web-like sizes instead
 * of compressing to nothing.  Generation never reads anything it did not
 * write and never touches DIR/out.  The same seed and sample count give
 * byte-identical files whatever the OpenMP thread count. */
#ifndef VC_PIPELINE_DEMO_H
#define VC_PIPELINE_DEMO_H

#include <stdint.h>

#include "core/vc_err.h"

/* The checkpoint folder inside DIR, and the word list its tokenizer is
 * made from (Debian's wamerican; absent: byte-level pieces only). */
#define DEMO_MODEL_DIR "model"
#define DEMO_WORDS     "/usr/share/dict/words"

/* Good webdataset samples in the default demo: a few hundred, so the demo
 * runs in seconds; benchmarks ask for thousands with demo_generate_n. */
enum { DEMO_DEFAULT_SAMPLES = 240 };
/* Enough samples to hold every planted defect at its own position. */
enum { DEMO_MIN_SAMPLES = 10 };
/* Upper bound accepted for n_samples: the generator keeps one shard's
 * pictures in memory at a time, so this bounds disk use, not memory. */
enum { DEMO_MAX_SAMPLES = 1000000 };
/* The over-long caption planted in the demo is this long: above the
 * pipeline's default text limit, so it must be refused with a clear
 * field_too_long error (a unit test holds the two numbers together). */
enum { DEMO_LONG_CAPTION_BYTES = 200000 };

struct demo_summary {
    char dir[4096];         /* absolute path of DIR */
    char spec_path[4096];   /* DIR/spec.json */
    uint32_t n_wds_shards;  /* all shards, the corrupt and hostile ones included */
    uint64_t n_wds_samples; /* keys written into the shards, broken ones included */
    uint64_t n_pairs;       /* data rows of pairs.jsonl (pairs.csv holds the same rows) */
    uint64_t n_docs;        /* lines of docs.jsonl */
    uint64_t n_images;      /* image files and image members written */
    uint64_t n_defects;     /* deliberate defects listed in demo.json */
    uint64_t n_bytes;       /* bytes written in all files */
};

/* Writes the default demo (DEMO_DEFAULT_SAMPLES) into `dir`, creating it.
 * Existing files of the same names are overwritten.  VC_EFATAL (io_error)
 * when a file cannot be written, VC_EUSAGE for a bad argument. */
enum vc_status demo_generate(const char *dir, uint64_t seed, struct demo_summary *out,
                             struct vc_err *err);
/* The same with `n_samples` good webdataset samples (DEMO_MIN_SAMPLES..DEMO_MAX_SAMPLES);
 * pairs and documents scale with it (a quarter and a twentieth). */
enum vc_status demo_generate_n(const char *dir, uint64_t seed, uint32_t n_samples,
                               struct demo_summary *out, struct vc_err *err);

#endif
