/* st_reshard: the output order of a run, decided once in PLAN over every
 * sample that survived MAP: a seeded weighted mixture of the sources (with
 * per-source caps and epochs), then a seeded shuffle (none, a bounded
 * shuffle buffer as webdataset streams it, or an exact global
 * permutation), and optionally its own shard sizing.  Deterministic: the
 * same records and seed give the same order on every machine.
 *
 * The RNG is splitmix64 (Steele, Lea, Flood 2014): tiny, seedable from one
 * integer, and good enough for sampling; integers below n are drawn by
 * rejection so no value is favoured. */
#ifndef VC_STAGES_ST_RESHARD_H
#define VC_STAGES_ST_RESHARD_H

#include <stddef.h>
#include <stdint.h>

#include "core/vc_err.h"
#include "stage.h"

extern const struct stage_ops st_reshard_ops;

struct reshard_rng {
    uint64_t state;
};
void reshard_rng_seed(struct reshard_rng *r, uint64_t seed);
uint64_t reshard_rng_next(struct reshard_rng *r);
/* Uniform in [0, n); n > 0. */
uint64_t reshard_rng_below(struct reshard_rng *r, uint64_t n);
/* Uniform in [0, 1), 53 bits. */
double reshard_rng_unit(struct reshard_rng *r);

/* Fisher-Yates over v[0..n). */
void reshard_shuffle_global(size_t *v, size_t n, uint64_t seed);
/* What a streaming shuffle buffer of `buffer` slots emits when v[0..n) is
 * fed through it (each arriving item swaps out a random slot once the
 * buffer is full; the rest is shuffled at the end).  In place.
 * VC_EFATAL on OOM. */
enum vc_status reshard_shuffle_buffer(size_t *v, size_t n, size_t buffer, uint64_t seed,
                                      struct vc_err *err);

#endif
