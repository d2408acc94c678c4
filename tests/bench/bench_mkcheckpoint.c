/* Writes a random-weight Idefics2 checkpoint with the real idefics2-8b
 * shapes and on-disk layout, for the real-size engine benchmark: the
 * published config.json (which leans on the class defaults), the
 * generation / preprocessor / processor / tokenizer configs, a generated
 * 32003-id tokenizer.json of the Llama/Mistral layout, and the weights as
 * sharded safetensors (bf16 ~16.8 GB in 4 shards, or f32 ~33.6 GB in 7 as
 * published) with model.safetensors.index.json.
 *
 * Values are drawn from a 65536-entry table of N(0, 0.02) samples indexed
 * by a splitmix64 stream (norm weights are 1, as at initialisation), so
 * ~8.4e9 values come out at disk speed.  Deterministic for a seed.
 *
 * usage: bench_mkcheckpoint OUT_DIR [--dtype bf16|f32] [--shard-gb G (5)] [--seed S (1)]
 *                           [--configs-only]  (rewrite the JSON files, keep the weights)
 * OUT_DIR must be outside the repository (e.g. /work/bench-ckpt). */
#include "bench_clock.h"
#include "core/vc_fs.h"
#include "core/vc_mem.h"
#include "synth/idf2_config.h"
#include "synth/idf2_mkmodel.h"
#include "synth/safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* The published HuggingFaceM4/idefics2-8b config.json (SPEC §1.3). */
static const char config_json[] =
    "{\n  \"architectures\": [\"Idefics2ForConditionalGeneration\"],\n"
    "  \"image_token_id\": 32001,\n  \"model_type\": \"idefics2\",\n"
    "  \"perceiver_config\": {\"model_type\": \"idefics2\"},\n"
    "  \"text_config\": {\"max_position_embeddings\": 32768, \"model_type\": \"mistral\", "
    "\"pad_token_id\": 0, \"rms_norm_eps\": 1e-05, \"vocab_size\": 32003},\n"
    "  \"tie_word_embeddings\": false,\n  \"torch_dtype\": \"%s\",\n"
    "  \"transformers_version\": \"4.40.0.dev0\",\n  \"use_cache\": true,\n"
    "  \"vision_config\": {\"hidden_size\": 1152, \"image_size\": 980, \"intermediate_size\": "
    "4304, \"model_type\": \"idefics2\", \"num_attention_heads\": 16, \"num_hidden_layers\": 27, "
    "\"patch_size\": 14}\n}\n";

#define N_VOCAB 32000 /* pieces; the 3 added tokens follow */

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static int write_text(const char *dir, const char *name, const char *text)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    struct vc_err err = { 0 };
    if (vc_fs_write_atomic(path, text, strlen(text), &err) < 0) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    return 0;
}

static int write_json(const char *dir, const char *name, cJSON *root)
{
    char *text = cJSON_PrintUnformatted(root);
    int rc = text ? write_text(dir, name, text) : -1;
    free(text);
    cJSON_Delete(root);
    return rc;
}

/* ---- weights ------------------------------------------------------------------- */

struct tensor_plan {
    struct idf2_mk_tensor t;
    size_t n_bytes;
    int shard;
    size_t offset; /* inside its shard's data area */
};

struct plan {
    struct tensor_plan *t;
    size_t n;
};

static int plan_model(struct plan *p, const struct idf2_model_config *m)
{
    struct idf2_mk_tensor *t;
    struct vc_err err = { 0 };
    if (idf2_mk_tensors(m, &t, &p->n, &err) < 0) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    p->t = calloc(p->n, sizeof *p->t);
    for (size_t i = 0; p->t && i < p->n; i++)
        p->t[i].t = t[i];
    free(t);
    return p->t ? 0 : -1;
}

/* Sequential packing into shards of at most shard_bytes (a tensor is never
 * split; an oversized one gets a shard of its own), as HF's sharding does. */
static int plan_shards(struct plan *p, enum st_dtype dt, size_t shard_bytes)
{
    int shard = 0;
    size_t used = 0;
    for (size_t i = 0; i < p->n; i++) {
        struct tensor_plan *t = &p->t[i];
        size_t n = 1;
        for (int d = 0; d < t->t.n_dims; d++)
            n *= (size_t)t->t.shape[d];
        t->n_bytes = n * st_dtype_size(dt);
        if (used > 0 && used + t->n_bytes > shard_bytes) {
            shard++;
            used = 0;
        }
        t->shard = shard;
        t->offset = used;
        used += t->n_bytes;
    }
    return shard + 1;
}

static void shard_name(char *buf, size_t cap, int k, int n)
{
    snprintf(buf, cap, "model-%05d-of-%05d.safetensors", k + 1, n);
}

/* Fills n values of tensor t into buf (dtype dt) from the table. */
static void fill(void *buf, size_t n, enum st_dtype dt, bool ones, const float *table,
                 uint64_t seed)
{
    if (ones) {
        for (size_t i = 0; i < n; i++) {
            if (dt == ST_BF16)
                ((uint16_t *)buf)[i] = 0x3f80;
            else
                ((float *)buf)[i] = 1.0f;
        }
        return;
    }
    /* One stream per 1 Mi-value block, so threads agree with one thread. */
    size_t blocks = (n + (1u << 20) - 1) >> 20;
#pragma omp parallel for schedule(static)
    for (size_t b = 0; b < blocks; b++) {
        uint64_t s = seed ^ (b * 0xd1342543de82ef95ull);
        size_t lo = b << 20, hi = lo + (1u << 20) < n ? lo + (1u << 20) : n;
        for (size_t i = lo; i < hi; i += 4) {
            uint64_t r = splitmix(&s);
            for (size_t k = 0; k < 4 && i + k < hi; k++) {
                float v = table[(r >> (16 * k)) & 0xffff];
                if (dt == ST_BF16)
                    ((uint16_t *)buf)[i + k] = st_f32_to_bf16(v);
                else
                    ((float *)buf)[i + k] = v;
            }
        }
    }
}

static int write_shard(const char *dir, const struct plan *p, int k, int n_shards, enum st_dtype dt,
                       const float *table, uint64_t seed)
{
    cJSON *hdr = cJSON_CreateObject();
    cJSON *meta = cJSON_AddObjectToObject(hdr, "__metadata__");
    cJSON_AddStringToObject(meta, "format", "pt");
    size_t biggest = 0;
    for (size_t i = 0; i < p->n; i++) {
        const struct tensor_plan *t = &p->t[i];
        if (t->shard != k)
            continue;
        cJSON *e = cJSON_AddObjectToObject(hdr, t->t.name);
        cJSON_AddStringToObject(e, "dtype", st_dtype_name(dt));
        cJSON *shape = cJSON_AddArrayToObject(e, "shape");
        for (int d = 0; d < t->t.n_dims; d++)
            cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)t->t.shape[d]));
        cJSON *offs = cJSON_AddArrayToObject(e, "data_offsets");
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)t->offset));
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)(t->offset + t->n_bytes)));
        if (t->n_bytes > biggest)
            biggest = t->n_bytes;
    }
    char *text = cJSON_PrintUnformatted(hdr);
    cJSON_Delete(hdr);
    size_t len = strlen(text), padded = (len + 8 + 7) / 8 * 8 - 8; /* data 8-aligned, as HF */
    char name[64], path[4096], tmp[4200];
    shard_name(name, sizeof name, k, n_shards);
    snprintf(path, sizeof path, "%s/%s", dir, name);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    unsigned char lenbuf[8];
    for (int i = 0; i < 8; i++)
        lenbuf[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    char *hdr_buf = malloc(padded);
    memset(hdr_buf, ' ', padded);
    memcpy(hdr_buf, text, len);
    bool ok = fd >= 0 && vc_fs_write_all(fd, lenbuf, 8) && vc_fs_write_all(fd, hdr_buf, padded);
    free(text);
    free(hdr_buf);
    void *buf = malloc(biggest ? biggest : 1);
    for (size_t i = 0; ok && buf && i < p->n; i++) {
        const struct tensor_plan *t = &p->t[i];
        if (t->shard != k)
            continue;
        fill(buf, t->n_bytes / st_dtype_size(dt), dt, t->t.ones, table, seed + i);
        ok = vc_fs_write_all(fd, buf, t->n_bytes);
    }
    free(buf);
    ok = ok && fsync(fd) == 0;
    if (fd >= 0)
        ok = close(fd) == 0 && ok;
    struct vc_err err = { 0 };
    if (!ok || vc_fs_commit_rename(tmp, path, &err) < 0) {
        fprintf(stderr, "cannot write %s: %s\n", path, ok ? err.msg : strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

static int write_index(const char *dir, const struct plan *p, int n_shards)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *meta = cJSON_AddObjectToObject(root, "metadata");
    double total = 0;
    for (size_t i = 0; i < p->n; i++)
        total += (double)p->t[i].n_bytes;
    cJSON_AddNumberToObject(meta, "total_size", total);
    cJSON *map = cJSON_AddObjectToObject(root, "weight_map");
    for (size_t i = 0; i < p->n; i++) {
        char name[64];
        shard_name(name, sizeof name, p->t[i].shard, n_shards);
        cJSON_AddStringToObject(map, p->t[i].t.name, name);
    }
    return write_json(dir, "model.safetensors.index.json", root);
}

static void usage(void)
{
    fprintf(stderr, "usage: bench_mkcheckpoint OUT_DIR [--dtype bf16|f32] [--shard-gb G (5)] "
                    "[--seed S (1)] [--configs-only]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    if (argc < 2 || argv[1][0] == '-')
        usage();
    const char *dir = argv[1];
    enum st_dtype dt = ST_BF16;
    double shard_gb = 5.0;
    uint64_t seed = 1;
    bool configs_only = false;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--dtype") && i + 1 < argc) {
            const char *d = argv[++i];
            if (!strcmp(d, "bf16"))
                dt = ST_BF16;
            else if (!strcmp(d, "f32"))
                dt = ST_F32;
            else
                usage();
        } else if (!strcmp(argv[i], "--shard-gb") && i + 1 < argc) {
            shard_gb = atof(argv[++i]);
        } else if (!strcmp(argv[i], "--configs-only")) {
            configs_only = true;
        } else if (!strcmp(argv[i], "--seed") && i + 1 < argc) {
            seed = strtoull(argv[++i], NULL, 10);
        } else {
            usage();
        }
    }
    if (!(shard_gb > 0))
        usage();
    struct vc_err err = { 0 };
    if (vc_fs_mkdirs(dir, &err) < 0) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    double t0 = bench_wall_s();
    char config[sizeof config_json + 32];
    snprintf(config, sizeof config, config_json, dt == ST_BF16 ? "bfloat16" : "float32");
    struct idf2_model_config m;
    if (idf2_config_parse_model(config, "config.json", &m, &err) < 0) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    const struct idf2_mk_side side = {
        .vocab = m.text.vocab_size,
        .image_seq_len = m.perceiver.n_latents,
        .longest_edge = 980,
        .shortest_edge = 378,
        .image_splitting = true,
    };
    if (write_text(dir, "config.json", config) || idf2_mk_side_configs(dir, &side, &err) < 0 ||
        write_json(dir, "tokenizer.json", idf2_mk_tokenizer(N_VOCAB, "/usr/share/dict/words"))) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    printf("configs and tokenizer written in %.1f s\n", bench_wall_s() - t0);
    if (configs_only)
        return 0;

    struct plan p = { 0 };
    if (plan_model(&p, &m) < 0)
        return 1;
    int n_shards = plan_shards(&p, dt, (size_t)(shard_gb * 1e9));
    float *table = malloc(65536 * sizeof *table);
    uint64_t s = seed;
    for (int i = 0; i < 65536; i += 2) {
        /* Box-Muller from two uniforms in (0, 1]. */
        double u1 = ((double)(splitmix(&s) >> 11) + 1.0) * 0x1p-53;
        double u2 = (double)(splitmix(&s) >> 11) * 0x1p-53;
        double r = sqrt(-2.0 * log(u1)) * 0.02;
        table[i] = (float)(r * cos(2 * M_PI * u2));
        table[i + 1] = (float)(r * sin(2 * M_PI * u2));
    }
    size_t total = 0, params = 0;
    for (size_t i = 0; i < p.n; i++) {
        total += p.t[i].n_bytes;
        params += p.t[i].n_bytes / st_dtype_size(dt);
    }
    printf("writing %zu tensors, %.3f B parameters, %.2f GB of %s in %d shards to %s\n", p.n,
           (double)params * 1e-9, (double)total * 1e-9, st_dtype_name(dt), n_shards, dir);
    fflush(stdout);
    for (int k = 0; k < n_shards; k++) {
        double ts = bench_wall_s();
        if (write_shard(dir, &p, k, n_shards, dt, table, seed * 1000003u) < 0)
            return 1;
        printf("  shard %d/%d written in %.1f s\n", k + 1, n_shards, bench_wall_s() - ts);
        fflush(stdout);
    }
    if (write_index(dir, &p, n_shards) < 0)
        return 1;
    double secs = bench_wall_s() - t0;
    printf("done in %.1f s (%.2f GB/s)\n", secs, (double)total * 1e-9 / secs);
    free(table);
    free(p.t);
    return 0;
}
