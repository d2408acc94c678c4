/* cmd_engine: argument handling and file plumbing around synth/idefics2.h.
 *
 * Owns nothing beyond one command's run.  Never computes model math itself:
 * it reads files, builds requests, and prints or writes what the engine
 * returns.  Limits: images and cases.json are read with caps (below) so a
 * stray path cannot make us slurp a huge file. */
#include "cmd_engine.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "core/vc_arg.h"
#include "core/vc_fs.h"
#include "core/vc_mem.h"
#include "synth/idefics2.h"
#include "synth/idf2_prompt.h"
#include "synth/st_write.h"

/* An encoded web image above 256 MiB is not a photo anyone captions. */
#define CMD_ENGINE_MAX_IMAGE_BYTES ((size_t)256 << 20)
/* cases.json of the fixtures is 14 KB; 64 MiB leaves room for big suites. */
#define CMD_ENGINE_MAX_CASES_BYTES ((size_t)64 << 20)
/* More images per prompt than this is a mistake on the command line. */
#define CMD_ENGINE_MAX_IMAGES 64

static const char generate_usage[] =
    "usage: vlmcurate generate --model DIR [--image PATH]... (--prompt TEXT | --chat TEXT)\n"
    "         [--max-new-tokens N] [--image-splitting on|off]\n"
    "         [--temperature T --top-p P --seed S] [--threads N] [--bf16] [--cache] [--stats]\n"
    "         [--backend NAME] [--ids] [--quant q8_0|q4_0] [--weights copy|map]\n"
    "Runs the Idefics2 checkpoint in DIR on the images and prints the generated text.\n"
    "  --prompt TEXT   the raw processor prompt, one literal <image> per --image\n"
    "  --chat TEXT     one user turn: the images, then TEXT, then 'Assistant:'\n"
    "  --max-new-tokens N      default: generation_config.json, else 256\n"
    "  --image-splitting on|off  default: preprocessor_config.json\n"
    "  --temperature T  0 (default) is greedy; T > 0 samples with --top-p P (default 1)\n"
    "                   from a PRNG seeded with --seed S (default 0)\n"
    "  --threads N      OpenMP threads (default: all)\n"
    "  --bf16           keep weights in bf16 (half the memory of float32)\n"
    "  --cache          write/read the bf16 copy (with --bf16) and the --quant\n"
    "                   blocks next to the weights\n"
    "  --quant q8_0|q4_0  the text decoder's weights in int8 or 4-bit blocks of 32,\n"
    "                   quantized at load (vision tower and connector unchanged)\n"
    "  --weights copy|map  copy (default): the text decoder's weights are copied at\n"
    "                   load into anonymous huge-page memory when MemAvailable holds\n"
    "                   them (else they stay mapped, with a message); map: read in\n"
    "                   place from the mapped files (page cache)\n"
    "  --stats          print load and timing figures to stderr\n"
    "  --backend NAME   kernel row: ref (scalar reference), vec, avx512, ... (default:\n"
    "                   the fastest exact one); avx512bf16 or fast: bf16 activations,\n"
    "                   ~2x faster prefill and vision, ~1e-2 relative off float32\n"
    "  --ids            print the generated token ids on a second line\n";

/* The whole run's peak, mapped weight pages included (the load report's
 * figure is taken before the weights are first touched). */
static double peak_rss_gib(void)
{
    struct rusage ru;
    return getrusage(RUSAGE_SELF, &ru) == 0 ? (double)ru.ru_maxrss / 1048576.0 : 0;
}

static void print_load_stats(const struct idf2_model *m)
{
    struct idf2_load_report r;
    struct idf2_model_info info;
    idf2_model_report(m, &r);
    idf2_model_info(m, &info);
    fprintf(stderr,
            "load: %.2f s, peak RSS %.1f MiB, weights mapped %.1f MiB, converted %.1f MiB%s%s, "
            "text weights copied %.1f MiB (%.1f MiB in huge pages), quantized at load %.1f MiB "
            "(%.1f MiB in huge pages), image weights packed %.1f MiB, kernels %s\n",
            r.load_seconds, (double)r.peak_rss_bytes / 1048576.0,
            (double)r.bytes_mapped / 1048576.0, (double)r.bytes_owned / 1048576.0,
            r.from_cache ? ", from cache" : "", r.cache_written ? ", cache written" : "",
            (double)r.bytes_copied / 1048576.0, (double)r.bytes_huge / 1048576.0,
            (double)r.bytes_quantized / 1048576.0, (double)r.bytes_quantized_huge / 1048576.0,
            (double)r.bytes_packed / 1048576.0, info.backend);
    if (r.weights_note[0])
        fprintf(stderr, "load: %s\n", r.weights_note);
    if (r.pack_note[0])
        fprintf(stderr, "load: %s\n", r.pack_note);
    if (r.quant_huge_note[0])
        fprintf(stderr, "load: quantized weights: %s\n", r.quant_huge_note);
}

int cmd_generate_main(int argc, char **argv)
{
    const char *model_dir = NULL, *prompt = NULL, *chat = NULL;
    const char *image_paths[CMD_ENGINE_MAX_IMAGES];
    size_t n_images = 0;
    struct idf2_load_opts lo = { .compute = IDF2_COMPUTE_F32 };
    struct idf2_request req = { .image_splitting = -1 };
    bool stats = false, ids = false, top_p_given = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        long long n;
        double d;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(generate_usage, stdout);
            return 0;
        } else if (!strcmp(a, "--bf16")) {
            lo.compute = IDF2_COMPUTE_BF16;
        } else if (!strcmp(a, "--cache")) {
            lo.use_cache = true;
        } else if (!strcmp(a, "--stats")) {
            stats = true;
        } else if (!strcmp(a, "--ids")) {
            ids = true;
        } else if (!v) {
            fprintf(stderr, "vlmcurate generate: '%s' needs a value or is unknown\n%s", a,
                    generate_usage);
            return 2;
        } else if (!strcmp(a, "--model")) {
            model_dir = argv[++i];
        } else if (!strcmp(a, "--backend")) {
            lo.backend = argv[++i];
        } else if (!strcmp(a, "--quant")) {
            if (!strcmp(v, "q8_0"))
                lo.text_quant = IDF2_TEXT_QUANT_Q8_0;
            else if (!strcmp(v, "q4_0"))
                lo.text_quant = IDF2_TEXT_QUANT_Q4_0;
            else {
                fprintf(stderr, "vlmcurate generate: --quant takes q8_0 or q4_0, not '%s'\n", v);
                return 2;
            }
            i++;
        } else if (!strcmp(a, "--weights")) {
            if (!idf2_weights_place_parse(v, &lo.weights)) {
                fprintf(stderr, "vlmcurate generate: --weights takes copy or map, not '%s'\n", v);
                return 2;
            }
            i++;
        } else if (!strcmp(a, "--prompt")) {
            prompt = argv[++i];
        } else if (!strcmp(a, "--chat")) {
            chat = argv[++i];
        } else if (!strcmp(a, "--image")) {
            if (n_images == CMD_ENGINE_MAX_IMAGES) {
                fprintf(stderr, "vlmcurate generate: more than %d images\n", CMD_ENGINE_MAX_IMAGES);
                return 2;
            }
            image_paths[n_images++] = argv[++i];
        } else if (!strcmp(a, "--max-new-tokens") && vc_arg_long(v, 1, IDF2_MAX_CONTEXT, &n)) {
            req.gen.max_new_tokens = (int)n;
            i++;
        } else if (!strcmp(a, "--image-splitting") && (!strcmp(v, "on") || !strcmp(v, "off"))) {
            req.image_splitting = !strcmp(v, "on");
            i++;
        } else if (!strcmp(a, "--temperature") && vc_arg_double(v, 0, 100, &d)) {
            req.gen.temperature = (float)d;
            i++;
        } else if (!strcmp(a, "--top-p") && vc_arg_double(v, 1e-9, 1, &d)) {
            req.gen.top_p = (float)d;
            top_p_given = true;
            i++;
        } else if (!strcmp(a, "--seed") && vc_arg_long(v, 0, LLONG_MAX, &n)) {
            req.gen.seed = (uint64_t)n;
            i++;
        } else if (!strcmp(a, "--threads") && vc_arg_long(v, 1, 4096, &n)) {
            lo.n_threads = (int)n;
            i++;
        } else {
            fprintf(stderr, "vlmcurate generate: bad option or value: %s %s\n%s", a, v,
                    generate_usage);
            return 2;
        }
    }
    /* A sampling option that greedy decoding would ignore is a mistake. */
    if (top_p_given && req.gen.temperature == 0) {
        fprintf(stderr,
                "vlmcurate generate: --top-p only applies when sampling: give --temperature "
                "T > 0 as well (temperature 0 is greedy)\n");
        return 2;
    }
    if (!model_dir || !prompt == !chat) {
        fprintf(stderr, "vlmcurate generate: need --model and one of --prompt/--chat\n%s",
                generate_usage);
        return 2;
    }

    int status = 1;
    struct vc_err err = { 0 };
    struct idf2_image_bytes images[CMD_ENGINE_MAX_IMAGES];
    char *bufs[CMD_ENGINE_MAX_IMAGES] = { 0 };
    struct idf2_model *m = NULL;
    struct idf2_result res = { 0 };
    for (size_t i = 0; i < n_images; i++) {
        if (vc_fs_read_file(image_paths[i], CMD_ENGINE_MAX_IMAGE_BYTES, &bufs[i], &images[i].size,
                            &err) < 0) {
            fprintf(stderr, "vlmcurate generate: %s: %s\n", image_paths[i], err.msg);
            goto out;
        }
        images[i].data = (const uint8_t *)bufs[i];
        images[i].name = image_paths[i];
    }
    if (idf2_model_load(model_dir, &lo, &m, &err) < 0) {
        fprintf(stderr, "vlmcurate generate: %s: %s: %s\n", model_dir, vc_reason_name(err.reason),
                err.msg);
        goto out;
    }
    if (stats)
        print_load_stats(m);
    req.images = images;
    req.n_images = n_images;
    req.prompt = prompt;
    req.chat = chat;
    if (idf2_generate(m, &req, &res, &err) < 0) {
        fprintf(stderr, "vlmcurate generate: %s: %s\n", vc_reason_name(err.reason), err.msg);
        goto out;
    }
    printf("%s\n", res.text);
    if (ids) {
        for (size_t i = 0; i < res.n_ids; i++)
            printf("%s%d", i ? " " : "", (int)res.ids[i]);
        printf("\n");
    }
    if (stats) {
        const double dec_tok = res.n_ids > 1 ? (double)(res.n_ids - 1) : 0;
        fprintf(stderr,
                "prompt %zu tokens (%zu images after splitting), generated %zu%s; vision %.3f s, "
                "prefill %.3f s (%.1f tok/s), decode %.3f s (%.2f tok/s); peak RSS %.2f GiB\n",
                res.n_prompt_tokens, res.n_images_after_split, res.n_ids,
                res.stopped_on_eos ? " (stop token)" : "", res.vision_seconds, res.prefill_seconds,
                res.prefill_seconds > 0 ? (double)res.n_prompt_tokens / res.prefill_seconds : 0,
                res.decode_seconds, res.decode_seconds > 0 ? dec_tok / res.decode_seconds : 0,
                peak_rss_gib());
    }
    status = 0;
out:
    idf2_result_release(&res);
    idf2_model_free(m);
    for (size_t i = 0; i < n_images; i++)
        free(bufs[i]);
    return status;
}

/* --------------------------------------------------------- engine-cases */

static const char cases_usage[] =
    "usage: vlmcurate engine-cases FIXTURE_DIR --out FILE.safetensors [--threads N] [--bf16]\n"
    "Runs every case of FIXTURE_DIR/cases.json with the checkpoint in FIXTURE_DIR and writes\n"
    "<case>.input_ids, .pixel_values, .pixel_attention_mask, .patch_attention_mask,\n"
    ".vision_position_ids, .vision_last_hidden_state, .modality_projection,\n"
    ".image_hidden_states, .inputs_embeds, .logits, .step_logits and .generated_ids\n"
    "(the names of expected.safetensors).  A case is a JSON object with name, images (paths\n"
    "relative to FIXTURE_DIR), either prompt or messages (+ add_generation_prompt), and\n"
    "optionally do_image_splitting and max_new_tokens.  Prints one line per case; exit\n"
    "status 1 if a case fails to run or differs from its expected_generated_ids.\n";

struct case_sink {
    struct st_writer *w;
    const char *case_name;
    enum vc_status status;
    struct vc_err err;
};

static void sink_tensor(void *ctx, const char *name, enum idf2_trace_dtype dtype,
                        const int64_t *shape, int n_dims, const void *data)
{
    struct case_sink *s = ctx;
    char full[512];
    snprintf(full, sizeof full, "%s.%s", s->case_name, name);
    if (s->status >= 0)
        s->status = st_writer_add(s->w, full, dtype == IDF2_TRACE_F32 ? ST_F32 : ST_I64, shape,
                                  n_dims, data, &s->err);
}

/* The rendered prompt of a case: messages through the chat template, or
 * its raw prompt.  Owned (free()). */
static enum vc_status case_prompt(const cJSON *c, char **out, struct vc_err *err)
{
    const cJSON *msgs = cJSON_GetObjectItem(c, "messages");
    const char *raw = cJSON_GetStringValue(cJSON_GetObjectItem(c, "prompt"));
    if (!msgs) {
        if (!raw)
            return vc_err_set(err, VC_EUSAGE, VC_REASON_missing_field,
                              "neither prompt nor messages");
        *out = vc_strdup(raw);
        return *out ? VC_OK : vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "prompt");
    }
    const int nm = cJSON_GetArraySize(msgs);
    int total = 0;
    const cJSON *msg;
    cJSON_ArrayForEach(msg, msgs)
    {
        total += cJSON_GetArraySize(cJSON_GetObjectItem(msg, "content"));
    }
    struct idf2_message *m = vc_malloc_array((size_t)nm + 1, sizeof *m);
    struct idf2_content *content = vc_malloc_array((size_t)total + 1, sizeof *content);
    if (!m || !content) {
        free(m);
        free(content);
        return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "messages");
    }
    enum vc_status rc = VC_OK;
    size_t k = 0, i = 0;
    cJSON_ArrayForEach(msg, msgs)
    {
        if (rc < 0)
            break;
        const char *role = cJSON_GetStringValue(cJSON_GetObjectItem(msg, "role"));
        const size_t first = k;
        const cJSON *item;
        cJSON_ArrayForEach(item, cJSON_GetObjectItem(msg, "content"))
        {
            const char *type = cJSON_GetStringValue(cJSON_GetObjectItem(item, "type"));
            const char *text = cJSON_GetStringValue(cJSON_GetObjectItem(item, "text"));
            if (type && !strcmp(type, "image"))
                content[k++] = (struct idf2_content){ IDF2_CONTENT_IMAGE, NULL };
            else if (type && !strcmp(type, "text") && text)
                content[k++] = (struct idf2_content){ IDF2_CONTENT_TEXT, text };
            else
                rc = vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec,
                                "message content item is neither image nor text");
        }
        if (!role)
            rc = vc_err_set(err, VC_EUSAGE, VC_REASON_missing_field, "message without a role");
        m[i++] = (struct idf2_message){ role, content + first, k - first };
    }
    const cJSON *agp = cJSON_GetObjectItem(c, "add_generation_prompt");
    if (rc >= 0)
        rc = idf2_chat_render(m, i, agp ? cJSON_IsTrue(agp) : true, out, err);
    free(m);
    free(content);
    return rc;
}

/* expected_generated_ids, when the case has them, against what we got. */
static bool ids_match(const cJSON *c, const struct idf2_result *r)
{
    const cJSON *ids = cJSON_GetObjectItem(c, "expected_generated_ids");
    if (!ids)
        return true;
    if ((size_t)cJSON_GetArraySize(ids) != r->n_ids)
        return false;
    for (size_t i = 0; i < r->n_ids; i++)
        if (cJSON_GetNumberValue(cJSON_GetArrayItem(ids, (int)i)) != (double)r->ids[i])
            return false;
    return true;
}

/* Runs one case into the writer; returns 0 ok, 1 failed or differs. */
static int run_case(struct idf2_model *m, const char *dir, const cJSON *c, struct st_writer *w)
{
    const char *name = cJSON_GetStringValue(cJSON_GetObjectItem(c, "name"));
    struct vc_err err = { 0 };
    if (!name) {
        fprintf(stderr, "vlmcurate engine-cases: a case without a name\n");
        return 1;
    }
    const cJSON *imgs = cJSON_GetObjectItem(c, "images");
    const size_t n = (size_t)cJSON_GetArraySize(imgs);
    struct idf2_image_bytes *images = vc_malloc_array(n + 1, sizeof *images);
    char **bufs = calloc(n + 1, sizeof *bufs);
    char *prompt = NULL;
    int status = 1;
    if (!images || !bufs) {
        free(images);
        free(bufs);
        fprintf(stderr, "vlmcurate engine-cases: %s: out of memory\n", name);
        return 1;
    }
    enum vc_status rc = VC_OK;
    for (size_t i = 0; i < n && rc >= 0; i++) {
        const char *rel = cJSON_GetStringValue(cJSON_GetArrayItem(imgs, (int)i));
        char path[4096];
        if (!rel || snprintf(path, sizeof path, "%s/%s", dir, rel) >= (int)sizeof path) {
            rc = vc_err_set(&err, VC_EUSAGE, VC_REASON_bad_spec, "bad image entry %zu", i);
            break;
        }
        rc = vc_fs_read_file(path, CMD_ENGINE_MAX_IMAGE_BYTES, &bufs[i], &images[i].size, &err);
        images[i].data = (const uint8_t *)bufs[i];
        images[i].name = rel;
    }
    if (rc >= 0)
        rc = case_prompt(c, &prompt, &err);
    struct idf2_result res = { 0 };
    if (rc >= 0) {
        struct case_sink sink = { .w = w, .case_name = name };
        const struct idf2_trace tr = { sink_tensor, &sink, true };
        const cJSON *split = cJSON_GetObjectItem(c, "do_image_splitting");
        const cJSON *mnt = cJSON_GetObjectItem(c, "max_new_tokens");
        const struct idf2_request req = {
            .images = images,
            .n_images = n,
            .prompt = prompt,
            .image_splitting = cJSON_IsBool(split) ? cJSON_IsTrue(split) : -1,
            .gen = { .max_new_tokens = cJSON_IsNumber(mnt) ? (int)mnt->valuedouble : 0 },
            .trace = &tr,
        };
        rc = idf2_generate(m, &req, &res, &err);
        if (rc >= 0 && sink.status < 0) {
            rc = sink.status;
            err = sink.err;
        }
    }
    if (rc < 0) {
        fprintf(stderr, "vlmcurate engine-cases: %s: %s: %s\n", name, vc_reason_name(err.reason),
                err.msg);
    } else {
        const bool same = ids_match(c, &res);
        printf("%-32s %4zu prompt tokens, %2zu generated%s  %s\n", name, res.n_prompt_tokens,
               res.n_ids, res.stopped_on_eos ? " (eos)" : "",
               same ? "ok" : "DIFFERS from expected_generated_ids");
        status = same ? 0 : 1;
    }
    idf2_result_release(&res);
    for (size_t i = 0; i < n; i++)
        free(bufs[i]);
    free(bufs);
    free(images);
    free(prompt);
    return status;
}

int cmd_engine_cases_main(int argc, char **argv)
{
    const char *dir = NULL, *out = NULL;
    struct idf2_load_opts lo = { .compute = IDF2_COMPUTE_F32 };
    for (int i = 1; i < argc; i++) {
        long long n;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(cases_usage, stdout);
            return 0;
        } else if (!strcmp(argv[i], "--out") && i + 1 < argc) {
            out = argv[++i];
        } else if (!strcmp(argv[i], "--bf16")) {
            lo.compute = IDF2_COMPUTE_BF16;
        } else if (!strcmp(argv[i], "--threads") && i + 1 < argc &&
                   vc_arg_long(argv[i + 1], 1, 4096, &n)) {
            lo.n_threads = (int)n;
            i++;
        } else if (argv[i][0] != '-' && !dir) {
            dir = argv[i];
        } else {
            fprintf(stderr, "vlmcurate engine-cases: bad argument '%s'\n%s", argv[i], cases_usage);
            return 2;
        }
    }
    if (!dir || !out) {
        fputs(cases_usage, stderr);
        return 2;
    }
    struct vc_err err = { 0 };
    char path[4096], *text = NULL;
    size_t len;
    cJSON *root = NULL;
    struct idf2_model *m = NULL;
    struct st_writer *w = NULL;
    int status = 1;
    if (snprintf(path, sizeof path, "%s/cases.json", dir) >= (int)sizeof path ||
        vc_fs_read_file(path, CMD_ENGINE_MAX_CASES_BYTES, &text, &len, &err) < 0) {
        fprintf(stderr, "vlmcurate engine-cases: %s: %s\n", path, err.msg);
        goto done;
    }
    root = cJSON_ParseWithLength(text, len);
    const cJSON *cases = cJSON_GetObjectItem(root, "cases");
    if (!cJSON_IsArray(cases)) {
        fprintf(stderr, "vlmcurate engine-cases: %s: no \"cases\" array\n", path);
        goto done;
    }
    if (idf2_model_load(dir, &lo, &m, &err) < 0 || st_writer_new(&w, &err) < 0) {
        fprintf(stderr, "vlmcurate engine-cases: %s: %s: %s\n", dir, vc_reason_name(err.reason),
                err.msg);
        goto done;
    }
    int failed = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, cases)
    {
        failed += run_case(m, dir, c, w);
    }
    if (st_writer_save(w, out, &err) < 0) {
        fprintf(stderr, "vlmcurate engine-cases: %s\n", err.msg);
        goto done;
    }
    printf("%d cases, %d failed or differ; tensors in %s\n", cJSON_GetArraySize(cases), failed,
           out);
    status = failed ? 1 : 0;
done:
    st_writer_free(w);
    idf2_model_free(m);
    cJSON_Delete(root);
    free(text);
    return status;
}
