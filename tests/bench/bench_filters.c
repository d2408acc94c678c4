/* Benchmark of the filters, single thread (the pipeline runs one sample per
 * worker, so these are per-core figures):
 *
 *  1. samples/s through the `filter` stage on the demo data (webdataset
 *     shards, pairs and OBELICS documents from demo_generate_n), with the
 *     default chain (full decode for img_decodes/img_uniform) and with the
 *     header-only image checks (those two off);
 *  2. MB/s of English text through the paragraph + document text filters,
 *     and the cost of the tokenizer and of each text filter alone, in ms per
 *     MB of text, on generated web-like documents.
 *
 * usage: bench_filters [N_DEMO_SAMPLES (2000)] [WORK_DIR (a new /tmp dir; demo data
 *        already there is reused)] */
#include "bench_clock.h"
#include "core/sample.h"
#include "core/vc_mem.h"
#include "filters/filter_chain.h"
#include "filters/filter_registry.h"
#include "filters/textstats.h"
#include "pipeline/demo.h"
#include "stages/source.h"
#include "stages/st_filter.h"
#include "stages/stage.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static _Noreturn void die(const char *what, const struct vc_err *err)
{
    fprintf(stderr, "bench_filters: %s: %s\n", what, err ? err->msg : "failed");
    exit(1);
}

/* ---- the demo data, held in memory ---- */

struct stored_field {
    char *name;
    uint8_t *data;
    size_t size;
};

struct stored_sample {
    int source;
    struct stored_field *fields;
    size_t n_fields;
};

struct corpus {
    struct stored_sample *s;
    size_t n, cap;
    char names[3][32];
    int n_sources;
};

static void keep_sample(struct corpus *c, int source, const struct sample *s)
{
    if (c->n == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 256;
        c->s = realloc(c->s, c->cap * sizeof *c->s);
    }
    struct stored_sample *o = &c->s[c->n++];
    o->source = source;
    o->n_fields = s->n_fields;
    o->fields = calloc(s->n_fields ? s->n_fields : 1, sizeof *o->fields);
    for (size_t i = 0; i < s->n_fields; i++) {
        o->fields[i].name = strdup(s->fields[i].name);
        o->fields[i].size = s->fields[i].size;
        o->fields[i].data = malloc(s->fields[i].size + 1);
        memcpy(o->fields[i].data, s->fields[i].data, s->fields[i].size);
    }
}

static void load_demo(const char *dir, uint32_t n_samples, struct corpus *c)
{
    struct demo_summary sum;
    struct vc_err err;
    size_t size;
    char path[4200];
    snprintf(path, sizeof path, "%s/spec.json", dir);
    /* A folder that already holds demo data is reused as it is. */
    FILE *f = fopen(path, "rb");
    if (!f && demo_generate_n(dir, 1, n_samples, &sum, &err) != VC_OK)
        die("demo_generate_n", &err);
    if (!f)
        f = fopen(path, "rb");
    if (!f)
        die("spec.json", NULL);
    fseek(f, 0, SEEK_END);
    size = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    char *text = malloc(size + 1);
    text[fread(text, 1, size, f)] = '\0';
    fclose(f);
    cJSON *spec = cJSON_Parse(text);
    free(text);
    struct stage_limits limits;
    stage_limits_default(&limits);
    struct stage_ctx ctx = { .limits = &limits, .spec_dir = dir };
    struct arena *arena = arena_new(limits.max_sample_bytes);
    const cJSON *src;
    cJSON_ArrayForEach(src, cJSON_GetObjectItemCaseSensitive(spec, "sources"))
    {
        const struct source_ops *ops =
            source_find(cJSON_GetObjectItemCaseSensitive(src, "type")->valuestring);
        int id = c->n_sources++;
        snprintf(c->names[id], sizeof c->names[id], "%s",
                 cJSON_GetObjectItemCaseSensitive(src, "name")->valuestring);
        void *state;
        if (!ops || ops->create(src, c->names[id], &ctx, &state, &err) != VC_OK)
            die("source create", &err);
        size_t n_units;
        const struct source_unit *units = ops->units(state, &n_units);
        for (size_t u = 0; u < n_units; u++) {
            void *cur;
            if (ops->open(state, &units[u], &cur, &err) != VC_OK)
                continue;
            for (;;) {
                struct sample s;
                arena_reset(arena);
                sample_init(&s, arena);
                enum vc_status rc = ops->next(cur, &s, &err);
                if (rc == VC_OK)
                    keep_sample(c, id, &s);
                sample_fini(&s);
                if (rc == VC_EOF || rc == VC_ESHARD || rc == VC_EFATAL)
                    break;
            }
            ops->close(cur);
        }
        ops->destroy(state);
    }
    arena_free(arena);
    cJSON_Delete(spec);
}

struct stage_result {
    double seconds[3];
    size_t n[3], kept, rejected, errors;
    size_t by_filter[FILTER_REPORT_MAX]; /* rejections per registry position */
};

static struct stage_result run_stage(const struct corpus *c, const char *cfg_json)
{
    struct stage_result r = { 0 };
    struct stage_limits limits;
    stage_limits_default(&limits);
    struct stage_ctx run = { .limits = &limits };
    struct stage_task_ctx task = { .run = &run };
    struct vc_err err;
    void *state;
    cJSON *cfg = cJSON_Parse(cfg_json);
    if (st_filter_ops.create(cfg, &run, &state, &err) != VC_OK ||
        st_filter_ops.task_begin(state, &task, &err) != VC_OK)
        die("filter stage", &err);
    cJSON_Delete(cfg);
    struct arena *arena = arena_new(limits.max_sample_bytes);
    for (size_t i = 0; i < c->n; i++) {
        const struct stored_sample *o = &c->s[i];
        struct sample s;
        arena_reset(arena);
        sample_init(&s, arena);
        for (size_t k = 0; k < o->n_fields; k++)
            sample_add_field(&s, o->fields[k].name, o->fields[k].data, o->fields[k].size, &err);
        double t0 = bench_wall_s();
        enum vc_status rc = st_filter_ops.map(state, &s, &task, &err);
        r.seconds[o->source] += bench_wall_s() - t0;
        r.n[o->source]++;
        r.kept += rc == VC_OK;
        r.rejected += rc == VC_REJECT;
        if (rc == VC_REJECT)
            r.by_filter[filter_registry_index(filter_registry_find(task.verdict.filter))]++;
        r.errors += rc != VC_OK && rc != VC_REJECT;
        sample_fini(&s);
    }
    arena_free(arena);
    st_filter_ops.task_end(state, &task, &err);
    st_filter_ops.destroy(state);
    return r;
}

static void print_stage(const struct corpus *c, const char *label, const struct stage_result *r)
{
    double total = 0;
    size_t n = 0;
    printf("%-34s", label);
    for (int k = 0; k < c->n_sources; k++) {
        printf(" %8.0f", r->n[k] / (r->seconds[k] > 0 ? r->seconds[k] : 1e-9));
        total += r->seconds[k];
        n += r->n[k];
    }
    printf(" %8.0f   (kept %zu, rejected %zu, errors %zu)\n", n / total, r->kept, r->rejected,
           r->errors);
    printf("%-34s", "  rejected by:");
    for (size_t i = 0; i < filter_registry_count(); i++)
        if (r->by_filter[i])
            printf(" %s %zu", filter_registry_at(i)->name, r->by_filter[i]);
    printf("\n");
}

/* ---- English web-like documents ---- */

static const char *const sentences[] = {
    "The bakery on the corner opens at six, and by seven there is already a line outside.",
    "We spent the whole afternoon walking along the river and watching the boats drift by.",
    "If you want to repair the bicycle yourself, start by removing the wheel carefully.",
    "The committee will meet again next Thursday to discuss the budget for the new library.",
    "My grandmother kept every letter she ever received in a wooden box under her bed.",
    "Heavy rain is expected across the northern regions tonight, with strong winds on the coast.",
    "This recipe needs two cups of flour, a pinch of salt, three eggs and a little warm milk.",
    "The museum has just opened a new exhibition about the history of printing.",
    "After the match, the players thanked the crowd and walked back to the changing rooms.",
    "Researchers found that children who read for pleasure also do better in mathematics.",
    "Please make sure that all windows are closed before you leave the office in the evening.",
    "The old lighthouse was painted white with a red stripe and could be seen from miles away.",
    "She learned to play the piano at the age of five and gave her first concert at twelve.",
    "Our train was delayed by almost an hour because of a signal failure near the station.",
    "The garden looks best in late spring, when the roses and the lavender are in bloom.",
    "Most of the software on this computer was installed years ago and never updated.",
    "He picked up the phone, listened for a moment, and then put it back on the table.",
    "The village school has only forty pupils, but the teacher knows every one of them.",
    "Scientists are still trying to understand why some birds migrate so far every year.",
    "The hotel room was small but clean, and the view of the mountains made up for it.",
    "Before you sign the contract, read every page carefully and ask about anything unclear.",
    "The city council has promised to build more cycle lanes and to plant trees downtown.",
    "Our neighbours have a large grey dog that barks at every car that drives past.",
    "The painting shows a quiet harbour at sunset, with fishing boats and a few gulls.",
    "It took them three weeks to cross the desert, travelling mostly at night.",
    "The new phone has a better camera, a larger screen and a battery that lasts two days.",
    "When the power went out, we lit candles and told stories until everyone fell asleep.",
    "The company reported higher profits this year, mainly thanks to strong sales abroad.",
    "A good night's sleep is one of the simplest ways to improve your mood and memory.",
    "The bridge was closed for repairs, so we had to drive around the lake to reach town.",
    "Fresh tomatoes, basil and a drizzle of olive oil are all this salad really needs.",
    "The author spent ten years researching the book before writing a single chapter.",
    "Volunteers cleaned the beach on Saturday and collected more than two hundred bags.",
    "The bus stops running at midnight, so plan your journey home before the concert ends.",
    "Children under twelve must be accompanied by an adult at all times in the pool area.",
    "The river flooded twice last winter, and several houses near the bank were damaged.",
    "Our team won the regional final after a long and difficult season on the road.",
    "The doctor recommended a short walk every day and fewer cups of coffee in the evening.",
    "In the morning the valley was covered in fog, but by noon the sky was perfectly clear.",
    "The festival brings together musicians, painters and writers from all over the country.",
    "Every spring the farmers plant potatoes in the fields behind the old stone church.",
    "The new bridge will connect the two halves of the city and shorten many commutes.",
    "Students can borrow up to ten books at a time and keep them for three weeks.",
    "The recipe was handed down from my great aunt, who never wrote anything down.",
    "Traffic was light on the motorway, and we reached the coast shortly after lunch.",
    "The exhibition closes at the end of the month, so there is still time to see it.",
    "Our cat sleeps most of the day and only wakes up when she hears the fridge door.",
    "The report suggests that small changes in diet can have a large effect on health.",
    "Tickets for the evening performance sold out within an hour of going on sale.",
    "The old mill by the stream has been turned into a small museum and a tea room.",
    "A strong wind blew the leaves across the square and into the open doors of the cafe.",
    "The engineers tested the new design for six months before they were satisfied.",
    "Many visitors come to the island for the walking trails and the quiet beaches.",
    "The shop on the high street sells hand-made furniture and second-hand books.",
    "He finally finished painting the fence just before the first drops of rain fell.",
    "The climbers set out before dawn so that they could reach the summit by midday.",
    "Our local library now offers free computer classes for adults on Monday evenings.",
    "The orchestra rehearsed the symphony for weeks, and the performance was a triumph.",
    "On clear nights you can see thousands of stars from the top of the hill.",
    "The garden centre will deliver plants and compost to your door for a small fee.",
};
enum { N_SENTENCES = sizeof sentences / sizeof sentences[0] };

struct doc {
    char **paras;
    size_t n_paras;
    char *text; /* the paragraphs joined by "\n\n" */
    size_t len;
};

static uint32_t lcg(uint32_t *s)
{
    *s = *s * 1664525u + 1013904223u;
    return *s >> 8;
}

/* Documents of 8..14 paragraphs of 2..4 sentences, no sentence twice in a
 * document (so they pass the repetition filters as real text does). */
static struct doc *make_docs(size_t target_bytes, size_t *n_docs, size_t *bytes)
{
    size_t cap = 64, n = 0;
    struct doc *docs = malloc(cap * sizeof *docs);
    uint32_t seed = 12345;
    *bytes = 0;
    while (*bytes < target_bytes) {
        if (n == cap)
            docs = realloc(docs, (cap *= 2) * sizeof *docs);
        int order[N_SENTENCES];
        for (int i = 0; i < N_SENTENCES; i++)
            order[i] = i;
        for (int i = N_SENTENCES - 1; i > 0; i--) {
            int j = (int)(lcg(&seed) % (uint32_t)(i + 1)), t = order[i];
            order[i] = order[j];
            order[j] = t;
        }
        struct doc *d = &docs[n++];
        d->n_paras = 8 + lcg(&seed) % 7;
        d->paras = calloc(d->n_paras, sizeof *d->paras);
        d->text = calloc(1, 16384);
        int used = 0;
        for (size_t p = 0; p < d->n_paras; p++) {
            char buf[2048] = "";
            int k = 2 + (int)(lcg(&seed) % 3);
            for (int s = 0; s < k && used < N_SENTENCES; s++)
                snprintf(buf + strlen(buf), sizeof buf - strlen(buf), "%s%s", s ? " " : "",
                         sentences[order[used++]]);
            d->paras[p] = strdup(buf);
            snprintf(d->text + strlen(d->text), 16384 - strlen(d->text), "%s%s", p ? "\n\n" : "",
                     buf);
        }
        d->len = strlen(d->text);
        *bytes += d->len;
    }
    *n_docs = n;
    return docs;
}

/* Seconds to run the chain over every document: each paragraph as its own
 * text node, then the document check. */
static double time_chain(struct filter_chain *chain, struct filter_scratch *s,
                         const struct doc *docs, size_t n, size_t *rejected)
{
    struct vc_err err;
    double t0 = bench_wall_s();
    *rejected = 0;
    for (size_t i = 0; i < n; i++) {
        for (size_t p = 0; p < docs[i].n_paras; p++) {
            const char *out;
            size_t out_len, removed;
            if (filter_chain_paragraphs(chain, s, docs[i].paras[p], strlen(docs[i].paras[p]), &out,
                                        &out_len, &removed, NULL, &err) != VC_OK)
                die("paragraphs", &err);
            *rejected += removed;
        }
        struct filter_verdict v;
        enum vc_status rc =
            filter_chain_document(chain, s, docs[i].text, docs[i].len, 1, &v, NULL, &err);
        if (rc != VC_OK && rc != VC_REJECT)
            die("document", &err);
        *rejected += rc == VC_REJECT;
    }
    return bench_wall_s() - t0;
}

static struct filter_chain *chain_of(const char *json)
{
    cJSON *j = cJSON_Parse(json);
    struct filter_chain *chain;
    struct vc_err err;
    if (filter_chain_new(j, false, &chain, &err) != VC_OK)
        die("chain", &err);
    cJSON_Delete(j);
    return chain;
}

static void bench_text(void)
{
    size_t n_docs, bytes;
    struct doc *docs = make_docs(4u << 20, &n_docs, &bytes);
    double mb = (double)bytes / (1 << 20);
    struct filter_scratch *s = filter_scratch_new();
    struct vc_err err;

    /* Tokenizer alone: each paragraph, then the whole document, as the
     * chain analyses them. */
    struct textstats *ts = textstats_new();
    double t0 = bench_wall_s();
    for (size_t i = 0; i < n_docs; i++) {
        for (size_t p = 0; p < docs[i].n_paras; p++)
            textstats_analyse(ts, docs[i].paras[p], strlen(docs[i].paras[p]), &err);
        textstats_analyse(ts, docs[i].text, docs[i].len, &err);
    }
    double t_tok = bench_wall_s() - t0;
    textstats_free(ts);

    /* Every text filter the default chain runs, plus doc_lang. */
    char all[4096] = "[";
    for (size_t i = 0; i < filter_registry_count(); i++) {
        const struct filter_ops *o = filter_registry_at(i);
        if ((o->kind == FILTER_KIND_TEXT || o->kind == FILTER_KIND_DOCUMENT) && o->enabled)
            snprintf(all + strlen(all), sizeof all - strlen(all), "%s{\"name\": \"%s\"}",
                     all[1] ? ", " : "", o->name);
    }
    strcat(all, "]");
    struct filter_chain *chain = chain_of(all);
    size_t rejected;
    double t_all = time_chain(chain, s, docs, n_docs, &rejected);
    filter_chain_free(chain);
    printf("\ntext: %zu documents, %.2f MB of English text (each byte judged twice: in its "
           "paragraph and in its document)\n",
           n_docs, mb);
    printf("  default text chain (paragraph + document filters): %.1f MB/s, %.0f ms per MB "
           "(%zu paragraphs or documents removed)\n",
           mb / t_all, 1000 * t_all / mb, rejected);
    printf("  tokenizer alone (textstats_analyse):              %.1f MB/s, %.0f ms per MB\n",
           mb / t_tok, 1000 * t_tok / mb);
    printf("  each filter alone, tokenizer included (ms per MB):\n");
    for (size_t i = 0; i < filter_registry_count(); i++) {
        const struct filter_ops *o = filter_registry_at(i);
        if (o->kind != FILTER_KIND_TEXT && o->kind != FILTER_KIND_DOCUMENT)
            continue;
        if (strcmp(o->name, "doc_images") == 0)
            continue;
        char one[256];
        snprintf(one, sizeof one, "[{\"name\": \"%s\"}]", o->name);
        chain = chain_of(one);
        double t = time_chain(chain, s, docs, n_docs, &rejected);
        filter_chain_free(chain);
        printf("    %-24s %7.0f%s\n", o->name, 1000 * t / mb,
               o->enabled ? "" : "  (off by default)");
    }
    filter_scratch_free(s);
    for (size_t i = 0; i < n_docs; i++) {
        for (size_t p = 0; p < docs[i].n_paras; p++)
            free(docs[i].paras[p]);
        free(docs[i].paras);
        free(docs[i].text);
    }
    free(docs);
}

int main(int argc, char **argv)
{
    char *end = NULL;
    uint32_t n = argc > 1 ? (uint32_t)strtoul(argv[1], &end, 10) : 2000;
    if (argc > 3 || (end && (end == argv[1] || *end))) {
        fprintf(stderr, "usage: bench_filters [N_DEMO_SAMPLES (2000)] [WORK_DIR]\n");
        return 2;
    }
    char dir[4096];
    if (argc > 2)
        snprintf(dir, sizeof dir, "%s", argv[2]);
    else {
        snprintf(dir, sizeof dir, "/tmp/vc-bench-filters-XXXXXX");
        if (!mkdtemp(dir))
            die("mkdtemp", NULL);
    }
    struct corpus c = { 0 };
    double t0 = bench_wall_s();
    load_demo(dir, n, &c);
    printf("demo data: %zu samples read from %s in %.1f s (1 thread, time in the filter stage "
           "only)\n\n",
           c.n, dir, bench_wall_s() - t0);
    printf("%-34s", "samples/s per core");
    for (int k = 0; k < c.n_sources; k++)
        printf(" %8s", c.names[k]);
    printf(" %8s\n", "all");
    struct stage_result full = run_stage(&c, "{\"stage\": \"filter\"}");
    print_stage(&c, "default chain (full decode)", &full);
    struct stage_result header = run_stage(
        &c, "{\"stage\": \"filter\", \"filters\": [{\"name\": \"img_decodes\", \"enabled\": false},"
            " {\"name\": \"img_uniform\", \"enabled\": false}]}");
    print_stage(&c, "header-only image checks", &header);
    bench_text();
    for (size_t i = 0; i < c.n; i++) {
        for (size_t k = 0; k < c.s[i].n_fields; k++) {
            free(c.s[i].fields[k].name);
            free(c.s[i].fields[k].data);
        }
        free(c.s[i].fields);
    }
    free(c.s);
    return 0;
}
