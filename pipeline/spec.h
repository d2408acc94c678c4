/* spec: the pipeline spec (JSON) -> a validated, ready-to-run description:
 * sources (with their units enumerated), stages (created in spec order,
 * ingest implied first and write implied last), output, limits and the
 * spec hash that names the run's outputs for resume.
 *
 * Every error is VC_EUSAGE bad_spec and names the place and the key
 * ("source 'laion': key 'urls': ...", "stage 'reshard': unknown key ...").
 * Relative paths inside the spec resolve against the spec file's folder;
 * --out resolves against the current folder. */
#ifndef VC_PIPELINE_SPEC_H
#define VC_PIPELINE_SPEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/vc_err.h"
#include "stages/source.h"
#include "stages/stage.h"
#include "stages/wds_write.h"

struct cJSON;

/* The default "memory_mb". */
enum { SPEC_MEMORY_MB = 64 };

struct spec_source {
    const struct source_ops *ops;
    void *state; /* owned by ops */
    const struct source_unit *units;
    size_t n_units;
};

struct spec_stage {
    const struct stage_ops *ops;
    void *state; /* owned by ops */
};

/* Command-line overrides; zero/NULL = take the spec's value. */
struct spec_overrides {
    const char *out_dir;
    int threads;
    const double *max_error_rate; /* NULL: the spec's */
    const char *executor;         /* NULL: the spec's (borrowed for the spec's life) */
    /* Skip the sources' checks of their input files (stage_ctx). */
    bool inputs_checked;
};

struct spec {
    struct cJSON *json; /* owned: the document as run (overrides applied) */
    char *spec_dir;
    struct stage_limits limits;
    struct spec_source *sources;
    struct stage_source_info *source_info; /* parallel to sources */
    size_t n_sources;
    struct spec_stage *stages;
    size_t n_stages;
    char *out_dir, *work_dir, *prefix;
    uint64_t samples_per_shard, shard_bytes;
    enum wds_compression compression;
    int threads;
    uint64_t log_interval_s;
    /* The memory budget, in MiB, of the steps that see every record of the
     * run (PLAN, FINISH): beyond it they sort on disk.  Not in the hash. */
    uint64_t memory_mb;
    /* The run fails when more than this fraction of its input samples end
     * in error (1 = never); not part of the hash. */
    double max_error_rate;
    /* Which executor runs it (pipeline/executor.h): a name, checked when
     * the run starts; not part of the hash.  Borrowed from json or the
     * overrides. */
    const char *executor;
    char hash[65]; /* sha256 of the spec without output.dir and threads */
    struct stage_ctx ctx;
};

/* Parses `text`.  spec_dir anchors relative paths (NULL = cwd).  *out
 * owned: spec_free. */
enum vc_status spec_parse(const char *text, size_t n, const char *spec_dir,
                          const struct spec_overrides *ov, struct spec **out, struct vc_err *err);
/* Reads and parses a spec file. */
enum vc_status spec_load(const char *path, const struct spec_overrides *ov, struct spec **out,
                         struct vc_err *err);
void spec_free(struct spec *s);

/* Where this spec and `other` (another spec's JSON, as a run's
 * _work/spec.json keeps it) first differ in what the spec hash covers,
 * as a path such as "stages[2].seed" or "output.samples_per_shard", into
 * path (cap bytes); false when they do not differ there. */
bool spec_first_difference(const struct spec *s, const struct cJSON *other, char *path, size_t cap);

/* Total units over all sources; unit numbers run over sources in spec
 * order.  spec_unit maps a global unit number to (source, unit). */
size_t spec_n_units(const struct spec *s);
const struct source_unit *spec_unit(const struct spec *s, size_t global, size_t *source);

#endif
