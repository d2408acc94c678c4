/* progress: what a long run tells the person waiting for it, on stderr:
 * on a terminal one line rewritten in place (samples/s, MB/s, units done,
 * ETA from the units left); otherwise a plain log line every few seconds,
 * so logs of batch jobs stay readable.  Thread-safe: workers add counts
 * with atomics and whichever worker finds the interval elapsed prints. */
#ifndef VC_PIPELINE_PROGRESS_H
#define VC_PIPELINE_PROGRESS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

struct progress {
    const char *phase;
    uint64_t units_total;
    atomic_uint_fast64_t units_done, samples, bytes, tokens;
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
/* Tokens a model stage generated or scored: a phase with any shows tok/s. */
void progress_add_tokens(struct progress *p, uint64_t tokens);
void progress_unit_done(struct progress *p);
/* Prints the phase's closing line. */
void progress_end(struct progress *p);
uint64_t progress_now_ns(void);

#endif
