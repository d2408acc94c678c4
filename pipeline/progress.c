/* progress: rate lines.  The ETA assumes the units left cost what the
 * units done did on average, which holds for shards of similar size; a
 * model round, whose units take minutes to hours each, also counts the
 * share done of the unit in flight. */
#include "progress.h"

#include <time.h>
#include <unistd.h>

uint64_t progress_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void progress_begin(struct progress *p, FILE *out, const char *phase, uint64_t units_total,
                    uint64_t interval_s)
{
    p->phase = phase;
    p->units_total = units_total;
    atomic_store(&p->units_done, 0);
    atomic_store(&p->samples, 0);
    atomic_store(&p->bytes, 0);
    atomic_store(&p->tokens, 0);
    atomic_store(&p->images, 0);
    p->one_unit = false;
    p->out = out;
    p->tty = out && isatty(fileno(out));
    p->start_ns = progress_now_ns();
    p->interval_ns = p->tty ? 200000000ull : interval_s * 1000000000ull;
    atomic_store(&p->next_print_ns, p->start_ns + p->interval_ns);
    p->printed = false;
}

/* The units done, counting the share done of a model round's unit in
 * flight: its samples (or images, whichever is further) over what it
 * expects, held below 1 until it is committed. */
static double units_eff(struct progress *p, uint64_t done)
{
    if (!p->one_unit || done >= p->units_total)
        return (double)done;
    uint64_t expected = atomic_load(&p->unit_expected);
    uint64_t in_unit = atomic_load(&p->unit_samples), img = atomic_load(&p->unit_images);
    if (!expected && done)
        expected = (atomic_load(&p->samples) - in_unit) / done;
    if (!expected)
        return (double)done;
    double part = (double)(in_unit > img ? in_unit : img) / (double)expected;
    return (double)done + (part < 0.99 ? part : 0.99);
}

static void print_line(struct progress *p, uint64_t now, bool final)
{
    double secs = (double)(now - p->start_ns) / 1e9;
    uint64_t done = atomic_load(&p->units_done), n = atomic_load(&p->samples);
    double mb = (double)atomic_load(&p->bytes) / 1e6;
    double rate = secs > 0 ? (double)n / secs : 0, mbs = secs > 0 ? mb / secs : 0;
    char eta[32] = "-", tok[64] = "";
    uint64_t n_tok = atomic_load(&p->tokens), n_img = atomic_load(&p->images);
    if (n_tok || n_img)
        snprintf(tok, sizeof tok, ", %.2f img/s, %.1f tok/s", secs > 0 ? (double)n_img / secs : 0,
                 secs > 0 ? (double)n_tok / secs : 0);
    double eff = units_eff(p, done);
    if (eff > 0 && done < p->units_total)
        snprintf(eta, sizeof eta, "%.0fs", secs / eff * ((double)p->units_total - eff));
    fprintf(p->out, "%s%s: %llu/%llu units, %llu samples, %.1f samples/s%s, %.1f MB/s, ETA %s%s",
            p->tty ? "\r\033[K" : "", p->phase, (unsigned long long)done,
            (unsigned long long)p->units_total, (unsigned long long)n, rate, tok, mbs,
            final ? "0s" : eta, p->tty && !final ? "" : "\n");
    fflush(p->out);
    p->printed = true;
}

static void maybe_print(struct progress *p)
{
    if (!p->out)
        return;
    uint64_t now = progress_now_ns();
    uint_fast64_t due = atomic_load(&p->next_print_ns);
    if (now < due)
        return;
    /* One worker wins the interval; the others go back to work. */
    if (atomic_compare_exchange_strong(&p->next_print_ns, &due, now + p->interval_ns))
        print_line(p, now, false);
}

void progress_add(struct progress *p, uint64_t samples, uint64_t bytes)
{
    atomic_fetch_add(&p->samples, samples);
    atomic_fetch_add(&p->bytes, bytes);
    atomic_fetch_add(&p->unit_samples, samples);
    maybe_print(p);
}

void progress_add_model(struct progress *p, uint64_t images, uint64_t tokens)
{
    atomic_fetch_add(&p->images, images);
    atomic_fetch_add(&p->unit_images, images);
    atomic_fetch_add(&p->tokens, tokens);
    maybe_print(p);
}

void progress_unit_begin(struct progress *p, uint64_t expected)
{
    p->one_unit = true;
    atomic_store(&p->unit_expected, expected);
    atomic_store(&p->unit_samples, 0);
    atomic_store(&p->unit_images, 0);
}

void progress_unit_done(struct progress *p)
{
    atomic_fetch_add(&p->units_done, 1);
    maybe_print(p);
}

void progress_end(struct progress *p)
{
    if (p->out && (p->printed || p->tty))
        print_line(p, progress_now_ns(), true);
}
