/* progress: what a long run tells the person waiting for it, on stderr:
 * on a terminal one line rewritten in place (samples/s, MB/s, units done,
 * ETA from the units left; in a model round also images/s, tokens/s and
 * an ETA that counts the share done of the unit in flight); otherwise a plain log line every few
 * seconds, so logs of batch jobs stay readable.  Thread-safe: workers add counts with atomics and
 * whichever worker finds the interval elapsed prints. */
#ifndef VC_PIPELINE_PROGRESS_H
#define VC_PIPELINE_PROGRESS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

struct progress {
    const char *phase;
    uint64_t units_total;
    atomic_uint_fast64_t units_done, samples, bytes, tokens, images;
    /* A model round runs one unit at a time: the samples it expects (0:
     * unknown) and what it did so far, for an ETA inside the unit. */
    bool one_unit;
    atomic_uint_fast64_t unit_expected, unit_samples, unit_images;
    atomic_uint_fast64_t next_print_ns;
    uint64_t start_ns, interval_ns;
    bool tty, printed;
    FILE *out;
};

/* Starts a phase.  interval_s applies to the log lines (a terminal line
 * refreshes every 200 ms).  out is usually stderr (borrowed). */
void progress_begin(struct progress *p, FILE *out, const char *phase, uint64_t units_total,
                    uint64_t interval_s);
void progress_add(struct progress *p, uint64_t samples, uint64_t bytes);
/* Samples a model stage computed and the tokens it generated or scored:
 * a phase with any shows img/s and tok/s. */
void progress_add_model(struct progress *p, uint64_t images, uint64_t tokens);
/* A model round starts its next unit (they run one at a time), expecting
 * `expected` samples (0: unknown, then the average of the units done). */
void progress_unit_begin(struct progress *p, uint64_t expected);
void progress_unit_done(struct progress *p);
/* Prints the phase's closing line. */
void progress_end(struct progress *p);
uint64_t progress_now_ns(void);

#endif
