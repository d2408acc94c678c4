/* cmd_run: argument parsing and the summary; everything else is exec's. */
#include "cmd_run.h"

#include "core/vc_arg.h"
#include "core/vc_fs.h"
#include "core/vc_mem.h"
#include "executor.h"
#include "outdir.h"
#include "spec.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* An input unit's place: its file (by device and inode, however the spec
 * spelled the path) and byte range (0, 0: the whole file). */
struct unit_place {
    dev_t dev;
    ino_t ino;
    uint64_t begin, end;
    size_t global;
};

static int place_cmp(const void *a, const void *b)
{
    const struct unit_place *x = a, *y = b;
    if (x->dev != y->dev)
        return x->dev < y->dev ? -1 : 1;
    if (x->ino != y->ino)
        return x->ino < y->ino ? -1 : 1;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    return x->global < y->global ? -1 : x->global > y->global;
}

/* An input listed twice (a path repeated, overlapping brace ranges, two
 * sources on one file) is read twice and each of its samples written twice
 * under two keys; the run is what the spec says, so it goes on, but the
 * user hears of it before the hours it may take. */
static void warn_repeated_inputs(const struct spec *spec)
{
    size_t n = spec_n_units(spec), k = 0, repeated = 0, first_a = 0, first_b = 0;
    struct unit_place *v = vc_malloc_array(n ? n : 1, sizeof *v);
    for (size_t g = 0; v && g < n; g++) {
        size_t src;
        const struct source_unit *u = spec_unit(spec, g, &src);
        struct stat st;
        if (stat(u->file, &st) == 0)
            v[k++] = (struct unit_place){ st.st_dev, st.st_ino, u->begin, u->end, g };
    }
    if (v)
        qsort(v, k, sizeof *v, place_cmp);
    for (size_t i = 1; v && i < k; i++) {
        const struct unit_place *a = &v[i - 1], *b = &v[i];
        bool whole = (!a->begin && !a->end) || (!b->begin && !b->end);
        if (a->dev == b->dev && a->ino == b->ino && (whole || b->begin < a->end) && !repeated++) {
            first_a = a->global < b->global ? a->global : b->global;
            first_b = a->global < b->global ? b->global : a->global;
        }
    }
    free(v);
    if (!repeated)
        return;
    size_t sa, sb;
    const struct source_unit *ua = spec_unit(spec, first_a, &sa);
    spec_unit(spec, first_b, &sb);
    fprintf(stderr,
            "vlmcurate run: warning: %zu input unit%s read what another unit reads too "
            "(first: '%s', in source '%s' and source '%s'): their samples are read and "
            "written twice; list each input once (a source's epochs repeat it on purpose)\n",
            repeated, repeated == 1 ? "" : "s", ua->file, spec->source_info[sa].name,
            spec->source_info[sb].name);
}

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
    warn_repeated_inputs(spec);
    struct exec_opts eo = { .force = opts->force,
                            .log = opts->log,
                            .executor_opts = opts->executor_opts };
    enum vc_status rc = exec_run(spec, &eo, res ? res : &local, err);
    if (out_dir_used)
        *out_dir_used = vc_strdup(spec->out_dir);
    spec_free(spec);
    return rc;
}

/* Per source, what the mixture made of it, from the run's manifest
 * (run.json "mix"): "used N of M (weight w)", and a warning when most of a
 * source was left out, which otherwise shows only as mix_unused lines. */
static void print_mix(FILE *out, const char *out_dir)
{
    char path[4096], *text;
    size_t n;
    struct vc_err err = { 0 };
    snprintf(path, sizeof path, "%s/%s", out_dir, OUTDIR_RUN_NAME);
    if (vc_fs_read_file(path, 64u << 20, &text, &n, &err) < 0)
        return;
    cJSON *doc = cJSON_ParseWithLength(text, n);
    free(text);
    const cJSON *mix = cJSON_GetObjectItemCaseSensitive(doc, "mix"), *src;
    cJSON_ArrayForEach(src, cJSON_GetObjectItemCaseSensitive(mix, "sources"))
    {
        double used = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(src, "used"));
        double avail = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(src, "available"));
        double drawn = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(src, "drawn"));
        double epochs = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(src, "epochs"));
        double weight = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(src, "weight"));
        fprintf(out, "mix: source '%s': used %.0f of %.0f (weight %g)", src->string, used, avail,
                weight);
        if (drawn > used)
            fprintf(out, ", drawn %.0f times over %.0f epochs", drawn, epochs);
        fputc('\n', out);
        if (avail > 0 && used < avail / 2)
            fprintf(out,
                    "warning: source '%s': %.0f%% of its samples were not used (ledger: rejected, "
                    "mix_unused); see README \"Mixture\" for stop, epochs and total_samples\n",
                    src->string, 100 * (avail - used) / avail);
    }
    cJSON_Delete(doc);
}

void run_print_summary(FILE *out, const char *out_dir, const struct exec_result *res)
{
    if (res->submitted) {
        fprintf(out, "output: %s\nsubmitted; follow it with: vlmcurate status %s\n", out_dir,
                out_dir);
        return;
    }
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
    print_mix(out, out_dir);
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
    fprintf(out, "  slurm executor (one job array per phase, see README \"On a Slurm cluster\"):\n"
                 "  --partition P --account A --qos Q --time T --mem M --cpus-per-task N\n"
                 "               passed to sbatch for every task\n"
                 "  --max-running N  at most N tasks of a phase at once (array %%N)\n"
                 "  --sbatch-line L  one more #SBATCH line (repeatable)\n"
                 "  --logs DIR   task logs (default OUT/_work/slurm/logs)\n"
                 "  --dry-run    print the sbatch scripts, submit nothing\n");
    for (size_t i = 0; executor_table[i]; i++)
        fprintf(out, "                 %-8s %s\n", executor_table[i]->name,
                executor_table[i]->summary);
    fprintf(out, "A rerun of the same spec into the same folder resumes: finished tasks are\n"
                 "skipped.  Exit status: 0 done, 1 failed (an input unit could not be read:\n"
                 "rerun to retry it; a source yielded no sample; too many errors), 2 usage\n"
                 "or spec error, or the output folder is in use by another run.\n");
}

/* The slurm executor's options, into xo (vlmcurate run's, the executor
 * reads them).  True when argv[*i] was one; *i = -1 on a bad value. */
static bool slurm_opt(int argc, char **argv, int *i, cJSON *xo)
{
    static const char *const str[][2] = { { "--partition", "partition" },
                                          { "--account", "account" },
                                          { "--qos", "qos" },
                                          { "--time", "time" },
                                          { "--mem", "mem" },
                                          { "--logs", "logs" },
                                          { NULL, NULL } };
    const char *a = argv[*i];
    if (!strcmp(a, "--dry-run")) {
        cJSON_AddTrueToObject(xo, "dry_run");
        return true;
    }
    if (*i + 1 >= argc)
        return false;
    const char *v = argv[*i + 1];
    for (size_t k = 0; str[k][0]; k++)
        if (!strcmp(a, str[k][0])) {
            char abs[PATH_MAX];
            if (!strcmp(a, "--logs") && realpath(".", abs))
                v = v[0] == '/' ? v
                                : (strncat(strncat(abs, "/", 2), v, PATH_MAX - strlen(abs) - 2));
            cJSON_DeleteItemFromObjectCaseSensitive(xo, str[k][1]);
            cJSON_AddStringToObject(xo, str[k][1], v);
            ++*i;
            return true;
        }
    if (!strcmp(a, "--sbatch-line")) {
        cJSON *l = cJSON_GetObjectItemCaseSensitive(xo, "sbatch_lines");
        if (!l)
            l = cJSON_AddArrayToObject(xo, "sbatch_lines");
        cJSON_AddItemToArray(l, cJSON_CreateString(v));
        ++*i;
        return true;
    }
    if (!strcmp(a, "--cpus-per-task") || !strcmp(a, "--max-running")) {
        long long n;
        if (!vc_arg_long(v, 1, 100000, &n)) {
            fprintf(stderr, "vlmcurate run: %s wants a positive number\n", a);
            *i = -1;
            return true;
        }
        cJSON_AddNumberToObject(xo, a[2] == 'c' ? "cpus_per_task" : "max_running", (double)n);
        ++*i;
        return true;
    }
    return false;
}

int cmd_run_main(int argc, char **argv)
{
    struct run_opts o = { .log = stderr };
    cJSON *xo = cJSON_CreateObject();
    if (!xo)
        return 1;
    double max_error_rate;
    const char *spec_path = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            cJSON_Delete(xo);
            return 0;
        } else if (!strcmp(a, "--threads") && i + 1 < argc) {
            long long v;
            if (!vc_arg_long(argv[++i], 1, 4096, &v)) {
                fprintf(stderr, "vlmcurate run: --threads wants a number from 1 to 4096\n");
                cJSON_Delete(xo);
                return 2;
            }
            o.threads = (int)v;
        } else if (!strcmp(a, "--max-error-rate") && i + 1 < argc) {
            if (!vc_arg_double(argv[++i], 0, 1, &max_error_rate)) {
                fprintf(stderr, "vlmcurate run: --max-error-rate wants a number from 0 to 1\n");
                cJSON_Delete(xo);
                return 2;
            }
            o.max_error_rate = &max_error_rate;
        } else if (slurm_opt(argc, argv, &i, xo)) {
            if (i < 0) {
                cJSON_Delete(xo);
                return 2;
            }
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
            cJSON_Delete(xo);
            return 2;
        } else {
            spec_path = a;
        }
    }
    if (!spec_path) {
        usage(stderr);
        cJSON_Delete(xo);
        return 2;
    }
    /* A cluster task loads the spec again, from wherever it runs. */
    char spec_abs[PATH_MAX];
    if (realpath(spec_path, spec_abs))
        cJSON_AddStringToObject(xo, "spec", spec_abs);
    o.executor_opts = xo;
    struct vc_err err = { 0 };
    struct exec_result res;
    char *out_dir = NULL;
    enum vc_status rc = run_spec(spec_path, &o, &res, &out_dir, &err);
    if (rc < 0) {
        fprintf(stderr, "vlmcurate run: %s: %s\n", vc_reason_name(err.reason), err.msg);
        free(out_dir);
        cJSON_Delete(xo);
        return rc == VC_EUSAGE ? 2 : 1;
    }
    run_print_summary(stdout, out_dir, &res);
    free(out_dir);
    cJSON_Delete(xo);
    return 0;
}
