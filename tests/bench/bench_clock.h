/* bench_clock.h: the timers every benchmark in tests/bench shares.  Wall
 * time (CLOCK_MONOTONIC) is what a user waits; CPU time of this process
 * (all threads) lets a run on a loaded machine estimate the unloaded
 * speed, since wall time there measures the other tenants too. */
#ifndef BENCH_CLOCK_H
#define BENCH_CLOCK_H

#include <time.h>

static inline double bench_ts_s(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Seconds on the monotonic clock. */
static inline double bench_wall_s(void)
{
    return bench_ts_s(CLOCK_MONOTONIC);
}

/* CPU seconds used so far by all threads of this process. */
static inline double bench_cpu_s(void)
{
    return bench_ts_s(CLOCK_PROCESS_CPUTIME_ID);
}

#endif
