/* Unit tests of pipeline/demo: the generated dataset is checked with the
 * project's independent readers (wds_reader, img_probe/img_decode, the
 * ingest UTF-8 check, cJSON), so a defect that the generator claims to
 * have planted is shown to be exactly that defect, and every good picture
 * is what its metadata says. */
#include "vc_test.h"

#include "core/img.h"
#include "core/vc_utf8.h"
#include "core/vc_fs.h"
#include "core/vc_mem.h"
#include "pipeline/demo.h"
#include "stages/st_ingest.h"
#include "stages/stage.h"
#include "stages/wds_read.h"

#include <cjson/cJSON.h>
#include <ftw.h>
#include <omp.h>
#include <stdlib.h>

/* ---- helpers ------------------------------------------------------------ */

static void gen(const char *dir, uint64_t seed, uint32_t n, struct demo_summary *s)
{
    struct vc_err err = { 0 };
    enum vc_status rc = demo_generate_n(dir, seed, n, s, &err);
    if (rc < 0)
        fprintf(stderr, "demo_generate_n: %s\n", err.msg);
    CHECK_INT(rc, VC_OK);
}

static cJSON *read_json(const char *path)
{
    char *text = NULL;
    size_t size;
    struct vc_err err;
    if (vc_fs_read_file(path, 1 << 24, &text, &size, &err) < 0) {
        fprintf(stderr, "%s\n", err.msg);
        return NULL;
    }
    cJSON *j = cJSON_Parse(text);
    free(text);
    return j;
}

static const char *jstr(const cJSON *o, const char *key)
{
    return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, key));
}

static double jnum(const cJSON *o, const char *key)
{
    return cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(o, key));
}

/* The files under a tree, relative paths, for comparing two trees. */
static char walk_list[1 << 16];
static size_t walk_len, walk_root;
static int walk_add(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    if (type == FTW_F)
        walk_len += (size_t)snprintf(walk_list + walk_len, sizeof walk_list - walk_len, "%s\n",
                                     path + walk_root);
    return 0;
}

static void list_tree(const char *root, char *out, size_t cap)
{
    walk_len = 0;
    walk_root = strlen(root);
    walk_list[0] = '\0';
    nftw(root, walk_add, 16, FTW_PHYS);
    /* nftw order is the directory order, which differs between trees:
     * sort the lines. */
    size_t n = 0;
    char *lines[2048];
    for (char *p = strtok(walk_list, "\n"); p && n < 2048; p = strtok(NULL, "\n"))
        lines[n++] = p;
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && strcmp(lines[j - 1], lines[j]) > 0; j--) {
            char *t = lines[j];
            lines[j] = lines[j - 1];
            lines[j - 1] = t;
        }
    size_t len = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(out + len, cap - len, "%s\n", lines[i]);
}

static bool same_file(const char *a, const char *b)
{
    size_t na, nb;
    unsigned char *da = vc_test_read_file(a, &na), *db = vc_test_read_file(b, &nb);
    bool same = da && db && na == nb && memcmp(da, db, na) == 0;
    free(da);
    free(db);
    return same;
}

/* One sample of a shard, by key, through wds_reader (fields in `arena`). */
static bool shard_sample(const char *shard, const char *key, struct arena *arena,
                         struct sample *out)
{
    struct wds_reader *r;
    struct vc_err err;
    if (wds_reader_open(shard, NULL, &r, &err) < 0)
        return false;
    bool found = false;
    for (;;) {
        sample_init(out, arena);
        enum vc_status rc = wds_reader_next(r, out, &err);
        if (rc == VC_EOF || rc == VC_ESHARD)
            break;
        if (out->orig_key && !strcmp(out->orig_key, key)) {
            found = rc == VC_OK;
            break;
        }
        sample_fini(out);
    }
    wds_reader_close(r);
    return found;
}

/* ---- cases -------------------------------------------------------------- */

/* Same seed: the same bytes in every file, whatever the thread count.
 * Another seed: other pictures. */
TEST(same_seed_same_bytes)
{
    char a[4200], b[4200], c[4200];
    const char *tmp = vc_test_tmpdir();
    snprintf(a, sizeof a, "%s/a", tmp);
    snprintf(b, sizeof b, "%s/b", tmp);
    snprintf(c, sizeof c, "%s/c", tmp);
    struct demo_summary sa, sb, sc;
    omp_set_num_threads(1);
    gen(a, 7, 12, &sa);
    omp_set_num_threads(2);
    gen(b, 7, 12, &sb);
    gen(c, 8, 12, &sc);
    static char la[1 << 16], lb[1 << 16];
    list_tree(a, la, sizeof la);
    list_tree(b, lb, sizeof lb);
    CHECK_STR(la, lb);
    CHECK(strstr(la, "/wds/demo-000005.tar\n") && strstr(la, "/pairs/pairs.csv\n") &&
          strstr(la, "/docs/docs.jsonl\n") && strstr(la, "/spec.json\n"));
    int n_files = 0, n_diff = 0;
    for (char *p = strtok(la, "\n"); p; p = strtok(NULL, "\n")) {
        char fa[4400], fb[4400], fc[4400];
        snprintf(fa, sizeof fa, "%s%s", a, p);
        snprintf(fb, sizeof fb, "%s%s", b, p);
        snprintf(fc, sizeof fc, "%s%s", c, p);
        n_files++;
        if (!same_file(fa, fb)) {
            fprintf(stderr, "differs between thread counts: %s\n", p);
            n_diff++;
        }
        if (!strcmp(p, "/wds/demo-000000.tar"))
            CHECK(!same_file(fa, fc));
    }
    CHECK_INT(n_diff, 0);
    CHECK(n_files > 25);
    CHECK_INT(sa.n_bytes, sb.n_bytes);
    CHECK_INT(sa.n_images, sb.n_images);
}

/* What our streaming reader sees, shard by shard: good shards whole, the
 * corrupt one up to the cut, the hostile one's unsafe names, repeated
 * extension and symlink as sample errors. */
TEST(shards_read_back)
{
    const char *dir = vc_test_tmpdir();
    struct demo_summary s;
    gen(dir, 3, 10, &s);
    CHECK_INT(s.n_wds_shards, 6);
    struct arena *arena = arena_new(64u << 20);
    uint64_t total = 0;
    for (uint32_t shard = 0; shard < s.n_wds_shards; shard++) {
        char path[4200];
        snprintf(path, sizeof path, "%s/wds/demo-%06u.tar", dir, shard);
        struct wds_reader *r;
        struct vc_err err;
        CHECK_INT(wds_reader_open(path, NULL, &r, &err), VC_OK);
        int n_ok = 0, n_bad = 0, n_shard_err = 0;
        char reasons[256] = "";
        for (;;) {
            struct sample smp;
            sample_init(&smp, arena);
            enum vc_status rc = wds_reader_next(r, &smp, &err);
            sample_fini(&smp);
            arena_reset(arena);
            if (rc == VC_EOF)
                break;
            if (rc == VC_ESHARD) {
                n_shard_err++;
                break;
            }
            if (rc == VC_OK) {
                n_ok++;
                continue;
            }
            n_bad++;
            strncat(reasons, vc_reason_name(err.reason), sizeof reasons - strlen(reasons) - 2);
            strcat(reasons, " ");
        }
        uint64_t skipped = wds_reader_skipped(r);
        wds_reader_close(r);
        total += (uint64_t)(n_ok + n_bad);
        if (shard < 4) {
            /* 10 samples over 4 shards: 2, 3, 2, 3. */
            CHECK_INT(n_ok, shard % 2 ? 3 : 2);
            CHECK_INT(n_bad + n_shard_err, 0);
        } else if (shard == 4) {
            CHECK_INT(n_ok, 5);
            CHECK_INT(n_bad, 1);
            CHECK_STR(reasons, "corrupt_archive ");
            CHECK_INT(n_shard_err, 1);
        } else {
            CHECK_INT(n_ok, 3);
            CHECK_STR(reasons, "unsafe_path not_regular_file unsafe_path repeated_field ");
            CHECK_INT(skipped, 0);
        }
    }
    CHECK_INT(total, s.n_wds_samples);
    CHECK_INT(s.n_wds_samples, 10 + 6 + 7);
    arena_free(arena);
}

/* Each planted defect is the defect its name says, checked with the
 * codecs and limits the pipeline uses. */
TEST(defects_are_what_they_claim)
{
    const char *dir = vc_test_tmpdir();
    struct demo_summary s;
    gen(dir, 11, 20, &s);
    char path[4200];
    snprintf(path, sizeof path, "%s/demo.json", dir);
    cJSON *m = read_json(path);
    CHECK(m != NULL);
    const cJSON *defects = cJSON_GetObjectItemCaseSensitive(m, "defects");
    CHECK_INT(cJSON_GetArraySize(defects), s.n_defects);
    struct stage_limits lim;
    stage_limits_default(&lim);
    struct img_limits il = { .max_pixels = lim.max_pixels, .max_side = lim.max_side };
    struct arena *arena = arena_new(64u << 20);
    int n_checked = 0;
    const cJSON *d;
    cJSON_ArrayForEach(d, defects)
    {
        const char *kind = jstr(d, "defect"), *key = jstr(d, "key");
        if (strcmp(jstr(d, "source"), "web") != 0 || !strncmp(kind, "unsafe_path", 11) ||
            !strcmp(kind, "truncated_tar") || !strcmp(kind, "repeated_extension") ||
            !strcmp(kind, "symlink_member"))
            continue; /* reader-level defects: see shards_read_back */
        snprintf(path, sizeof path, "%s/%s", dir, jstr(d, "file"));
        struct sample smp;
        CHECK(shard_sample(path, key, arena, &smp));
        const struct sample_field *im = sample_main_image(&smp);
        const struct sample_field *txt = sample_field_get(&smp, "txt");
        CHECK(im != NULL && txt != NULL);
        if (!im || !txt)
            continue;
        struct img_info info;
        struct img pix = { 0 };
        struct vc_err err;
        enum vc_status probe = img_probe(im->data, im->size, &il, &info, &err);
        enum vc_reason probe_reason = err.reason;
        enum vc_status dec = probe < 0 ? probe : img_decode(im->data, im->size, &il, 0, &pix, &err);
        img_release(&pix);
        bool utf8 = vc_utf8_valid(txt->data, txt->size, NULL);
        if (!strcmp(kind, "truncated_jpeg") || !strcmp(kind, "corrupt_png_chunk")) {
            CHECK_INT(probe, VC_OK);
            CHECK_INT(dec, VC_ESAMPLE);
            CHECK_INT(info.format,
                      !strcmp(kind, "truncated_jpeg") ? IMG_FORMAT_JPEG : IMG_FORMAT_PNG);
        } else if (!strcmp(kind, "huge_dimensions")) {
            CHECK_INT(probe, VC_ESAMPLE);
            CHECK_INT(probe_reason, VC_REASON_image_too_large);
        } else if (!strcmp(kind, "caption_not_utf8")) {
            CHECK_INT(dec, VC_OK);
            CHECK(!utf8);
        } else if (!strcmp(kind, "caption_too_long")) {
            CHECK_INT(dec, VC_OK);
            CHECK(utf8);
            CHECK(txt->size > lim.max_text_bytes);
        } else {
            fprintf(stderr, "unexpected defect %s\n", kind);
            CHECK(0);
        }
        sample_fini(&smp);
        arena_reset(arena);
        n_checked++;
    }
    CHECK_INT(n_checked, 5);
    arena_free(arena);
    cJSON_Delete(m);
}

/* Good webdataset samples: each picture probes and decodes to the size its
 * json states, in the format its extension names; captions are UTF-8
 * but for the planted one. */
TEST(pictures_match_metadata)
{
    const char *dir = vc_test_tmpdir();
    struct demo_summary s;
    gen(dir, 5, 40, &s);
    struct arena *arena = arena_new(64u << 20);
    int n_good = 0, n_formats[4] = { 0 }, n_checked_json = 0, n_not_utf8 = 0;
    for (uint32_t shard = 0; shard < 4; shard++) {
        char path[4200];
        snprintf(path, sizeof path, "%s/wds/demo-%06u.tar", dir, shard);
        struct wds_reader *r;
        struct vc_err err;
        CHECK_INT(wds_reader_open(path, NULL, &r, &err), VC_OK);
        struct sample smp;
        for (sample_init(&smp, arena); wds_reader_next(r, &smp, &err) == VC_OK;
             sample_fini(&smp), arena_reset(arena), sample_init(&smp, arena)) {
            const struct sample_field *im = sample_main_image(&smp);
            struct img_info info;
            struct img pix = { 0 };
            if (!im || img_probe(im->data, im->size, NULL, &info, &err) < 0 ||
                img_decode(im->data, im->size, NULL, IMG_DECODE_NO_ORIENT, &pix, &err) < 0)
                continue; /* the planted defects */
            n_good++;
            n_formats[info.format]++;
            CHECK_STR(img_format_ext(info.format), im->name);
            CHECK_INT(pix.w, info.width);
            CHECK_INT(pix.h, info.height);
            CHECK(info.width >= 16 && info.width <= 1200 && info.height >= 16 &&
                  info.height <= 1200);
            img_release(&pix);
            const struct sample_field *js = sample_field_get(&smp, "json");
            if (js) {
                cJSON *j = cJSON_ParseWithLength((const char *)js->data, js->size);
                CHECK(j != NULL);
                CHECK_INT(jnum(j, "width"), info.width);
                CHECK_INT(jnum(j, "height"), info.height);
                cJSON_Delete(j);
                n_checked_json++;
            }
            const struct sample_field *txt = sample_field_get(&smp, "txt");
            if (txt && !vc_utf8_valid(txt->data, txt->size, NULL))
                n_not_utf8++;
        }
        sample_fini(&smp);
        arena_reset(arena);
        wds_reader_close(r);
    }
    /* 40 samples less the 3 whose pictures are broken. */
    CHECK_INT(n_good, 37);
    CHECK(n_checked_json >= 30);
    CHECK_INT(n_not_utf8, 1); /* only the planted Latin-1 caption */
    CHECK(n_formats[IMG_FORMAT_JPEG] > 0 && n_formats[IMG_FORMAT_PNG] > 0 &&
          n_formats[IMG_FORMAT_WEBP] > 0);
    arena_free(arena);
}

/* pairs.jsonl rows point at pictures of the stated size (except the
 * planted rows); documents are OBELICS-shaped: texts and images of equal
 * length, exactly one of the two set at each position. */
TEST(pairs_and_documents)
{
    const char *dir = vc_test_tmpdir();
    struct demo_summary s;
    gen(dir, 9, 40, &s);
    char path[4200];
    snprintf(path, sizeof path, "%s/pairs/pairs.jsonl", dir);
    char *text = NULL;
    size_t size;
    struct vc_err err;
    CHECK_INT(vc_fs_read_file(path, 1 << 24, &text, &size, &err), VC_OK);
    uint64_t rows = 0, ok = 0, missing = 0, unsafe = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n"), rows++) {
        cJSON *row = cJSON_Parse(line);
        CHECK(row && jstr(row, "image") && jstr(row, "caption") && jstr(row, "url") &&
              jstr(row, "license"));
        if (!row || !jstr(row, "image"))
            continue;
        if (jstr(row, "image")[0] == '/' || strstr(jstr(row, "image"), "..")) {
            unsafe++; /* never to be followed, not even here */
            cJSON_Delete(row);
            continue;
        }
        char img_path[4400];
        snprintf(img_path, sizeof img_path, "%s/pairs/images/%s", dir, jstr(row, "image"));
        size_t n;
        unsigned char *bytes = vc_test_read_file(img_path, &n);
        struct img_info info;
        if (bytes && n > 0 && img_probe(bytes, n, NULL, &info, &err) == VC_OK) {
            CHECK_INT(info.width, jnum(row, "width"));
            CHECK_INT(info.height, jnum(row, "height"));
            ok++;
        } else {
            missing++;
        }
        free(bytes);
        cJSON_Delete(row);
    }
    free(text);
    CHECK_INT(rows, s.n_pairs);
    CHECK_INT(ok, 10);     /* a quarter of 40 */
    CHECK_INT(missing, 2); /* a missing file, an empty file */
    CHECK_INT(unsafe, 2);  /* "../", absolute */

    snprintf(path, sizeof path, "%s/docs/docs.jsonl", dir);
    CHECK_INT(vc_fs_read_file(path, 1 << 24, &text, &size, &err), VC_OK);
    uint64_t docs = 0, images = 0, absent = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n"), docs++) {
        cJSON *doc = cJSON_Parse(line);
        const cJSON *texts = cJSON_GetObjectItemCaseSensitive(doc, "texts");
        const cJSON *imgs = cJSON_GetObjectItemCaseSensitive(doc, "images");
        CHECK(cJSON_IsArray(texts) && cJSON_IsArray(imgs));
        CHECK_INT(cJSON_GetArraySize(texts), cJSON_GetArraySize(imgs));
        CHECK(cJSON_IsString(cJSON_GetArrayItem(texts, 0)));
        CHECK(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(doc, "general_metadata")));
        for (int i = 0; i < cJSON_GetArraySize(texts); i++) {
            const cJSON *t = cJSON_GetArrayItem(texts, i), *im = cJSON_GetArrayItem(imgs, i);
            CHECK(cJSON_IsNull(t) != cJSON_IsNull(im));
            if (cJSON_IsString(im)) {
                char img_path[4400];
                snprintf(img_path, sizeof img_path, "%s/docs/images/%s", dir,
                         cJSON_GetStringValue(im));
                images++;
                absent += !vc_fs_exists(img_path);
            }
        }
        cJSON_Delete(doc);
    }
    free(text);
    CHECK_INT(docs, s.n_docs);
    CHECK_INT(absent, 1);
    /* Every picture file counts once: wds members (the symlink sample has
     * none) + pairs + documents. */
    CHECK_INT(s.n_images, s.n_wds_samples - 1 + 10 + images - absent);
}

TEST(rejects_bad_arguments)
{
    struct demo_summary s;
    struct vc_err err;
    CHECK_INT(demo_generate_n(vc_test_tmpdir(), 1, DEMO_MIN_SAMPLES - 1, &s, &err), VC_EUSAGE);
    CHECK(strstr(err.msg, "--samples") != NULL);
    CHECK_INT(demo_generate_n("", 1, 100, &s, &err), VC_EUSAGE);
}

#define TESTS(X)                                                                                   \
    X(same_seed_same_bytes)                                                                        \
    X(shards_read_back)                                                                            \
    X(defects_are_what_they_claim)                                                                 \
    X(pictures_match_metadata)                                                                     \
    X(pairs_and_documents)                                                                         \
    X(rejects_bad_arguments)
TEST_MAIN(TESTS)
