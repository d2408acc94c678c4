/* cmd_run: argument parsing and the summary; everything else is exec's. */
#include "cmd_run.h"

#include "core/vc_mem.h"
#include "executor.h"
#include "spec.h"

#include <stdlib.h>
#include <string.h>

enum vc_status run_spec(const char *spec_path, const struct run_opts *opts, struct exec_result *res,
                        char **out_dir_used, struct vc_err *err)
{
    struct spec_overrides ov = { .out_dir = opts->out_dir,
                                 .threads = opts->threads,
                                 .max_error_rate = opts->max_error_rate,
                                 .executor = opts->executor };
    struct spec *spec;
    struct exec_result local;
    VC_TRY(spec_load(spec_path, &ov, &spec, err));
    struct exec_opts eo = { .force = opts->force, .log = opts->log };
    enum vc_status rc = exec_run(spec, &eo, res ? res : &local, err);
    if (out_dir_used)
        *out_dir_used = vc_strdup(spec->out_dir);
    spec_free(spec);
    return rc;
}

void run_print_summary(FILE *out, const char *out_dir, const struct exec_result *res)
{
    const struct ledger_totals *t = &res->totals;
    fprintf(out, "output: %s\n", out_dir);
    fprintf(out, "samples: %llu in = %llu written + %llu rejected + %llu duplicate + %llu error\n",
            (unsigned long long)t->input, (unsigned long long)t->written,
            (unsigned long long)t->rejected, (unsigned long long)t->duplicate,
            (unsigned long long)t->error);
    fprintf(out, "shards: %llu (%.1f MB); ledger: %s/ledger.jsonl; manifest: %s/run.json\n",
            (unsigned long long)res->n_shards, (double)res->bytes_written / 1e6, out_dir, out_dir);
    if (res->units_skipped || res->shards_skipped)
        fprintf(out, "resumed: %llu input units and %llu shards were already done\n",
                (unsigned long long)res->units_skipped, (unsigned long long)res->shards_skipped);
    fprintf(out, "time: map %.2fs, plan %.2fs, write %.2fs, finish %.2fs\n", res->seconds_map,
            res->seconds_plan, res->seconds_reduce, res->seconds_finish);
}

static void usage(FILE *out)
{
    fprintf(out, "usage: vlmcurate run SPEC.json [--threads N] [--out DIR] [--force] [--quiet]\n"
                 "                     [--max-error-rate X] [--executor NAME]\n"
                 "Runs the pipeline a JSON spec describes (see README, \"Pipeline spec\").\n"
                 "  --threads N  worker threads (default: the spec's \"threads\", else all cores)\n"
                 "  --out DIR    output folder (default: the spec's output.dir)\n"
                 "  --force      reuse an output folder that holds another run or other files\n"
                 "               (removes that run's outputs first)\n"
                 "  --quiet      no progress or per-sample error lines on stderr\n"
                 "  --max-error-rate X  fail the run when more than this fraction (0..1) of\n"
                 "               the input samples are errors (default: the spec's\n"
                 "               \"max_error_rate\", else 1 = never)\n"
                 "  --executor NAME  how tasks are scheduled (default: the spec's\n"
                 "               \"executor\", else local):\n");
    for (size_t i = 0; executor_table[i]; i++)
        fprintf(out, "                 %-8s %s\n", executor_table[i]->name,
                executor_table[i]->summary);
    fprintf(out, "A rerun of the same spec into the same folder resumes: finished tasks are\n"
                 "skipped.  Exit status: 0 done, 1 failed (an input unit could not be read:\n"
                 "rerun to retry it; a source yielded no sample; too many errors), 2 usage\n"
                 "or spec error, or the output folder is in use by another run.\n");
}

int cmd_run_main(int argc, char **argv)
{
    struct run_opts o = { .log = stderr };
    double max_error_rate;
    const char *spec_path = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--threads") && i + 1 < argc) {
            char *end;
            long v = strtol(argv[++i], &end, 10);
            if (*end || v < 1 || v > 4096) {
                fprintf(stderr, "vlmcurate run: --threads wants a number from 1 to 4096\n");
                return 2;
            }
            o.threads = (int)v;
        } else if (!strcmp(a, "--max-error-rate") && i + 1 < argc) {
            char *end;
            max_error_rate = strtod(argv[++i], &end);
            if (*end || end == argv[i] || !(max_error_rate >= 0 && max_error_rate <= 1)) {
                fprintf(stderr, "vlmcurate run: --max-error-rate wants a number from 0 to 1\n");
                return 2;
            }
            o.max_error_rate = &max_error_rate;
        } else if (!strcmp(a, "--executor") && i + 1 < argc) {
            o.executor = argv[++i];
        } else if (!strcmp(a, "--out") && i + 1 < argc) {
            o.out_dir = argv[++i];
        } else if (!strcmp(a, "--force")) {
            o.force = true;
        } else if (!strcmp(a, "--quiet")) {
            o.log = NULL;
        } else if (a[0] == '-' || spec_path) {
            fprintf(stderr, "vlmcurate run: unexpected argument '%s'\n", a);
            usage(stderr);
            return 2;
        } else {
            spec_path = a;
        }
    }
    if (!spec_path) {
        usage(stderr);
        return 2;
    }
    struct vc_err err = { 0 };
    struct exec_result res;
    char *out_dir = NULL;
    enum vc_status rc = run_spec(spec_path, &o, &res, &out_dir, &err);
    if (rc < 0) {
        fprintf(stderr, "vlmcurate run: %s: %s\n", vc_reason_name(err.reason), err.msg);
        free(out_dir);
        return rc == VC_EUSAGE ? 2 : 1;
    }
    run_print_summary(stdout, out_dir, &res);
    free(out_dir);
    return 0;
}
