/* Dedup building blocks: pHash against a direct floating-point DCT,
 * text normalisation against hand-written answers, MinHash against
 * Jaccard similarities known by construction, the external merge against
 * qsort, and the reduce's pairs against hand-placed hashes. */
#include "vc_test.h"

#include "core/extsort.h"
#include "core/img.h"
#include "stages/dedup_cc.h"
#include "stages/dedup_hash.h"
#include "stages/dedup_reduce.h"
#include "stages/dedup_sig.h"

#include <stdbool.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int img_new(struct img *im, uint32_t w, uint32_t h, uint8_t ch)
{
    *im = (struct img){ .w = w, .h = h, .ch = ch, .pixels = malloc((size_t)w * h * ch) };
    return im->pixels ? 0 : -1;
}

static uint64_t lcg(uint64_t *s)
{
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return *s >> 33;
}

/* A smooth picture with some texture: what photos look like to pHash. */
static void fill_scene(struct img *im, uint32_t w, uint32_t h, uint8_t ch, uint64_t seed)
{
    CHECK(img_new(im, w, h, ch) == 0);
    uint64_t s = seed;
    double fx = 1 + (double)(lcg(&s) % 5), fy = 1 + (double)(lcg(&s) % 5);
    for (uint32_t y = 0; y < h; y++)
        for (uint32_t x = 0; x < w; x++)
            for (uint8_t c = 0; c < ch; c++) {
                double v = 128 + 60 * sin(fx * 6.28 * x / w + c) * cos(fy * 6.28 * y / h) +
                           40.0 * x / w - 30.0 * y / h + (double)(lcg(&s) % 16);
                im->pixels[((size_t)y * w + x) * ch + c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
}

/* The pHash definition written the slow, obvious way in double. */
static uint64_t phash_reference(const uint8_t *lum32)
{
    double d[64], s[64];
    for (int u = 0; u < 8; u++)
        for (int v = 0; v < 8; v++) {
            double acc = 0;
            for (int y = 0; y < 32; y++)
                for (int x = 0; x < 32; x++)
                    acc += lum32[y * 32 + x] * cos(M_PI * (2 * y + 1) * u / 64.0) *
                           cos(M_PI * (2 * x + 1) * v / 64.0);
            acc *= (u ? sqrt(2 / 32.0) : sqrt(1 / 32.0)) * (v ? sqrt(2 / 32.0) : sqrt(1 / 32.0));
            d[u * 8 + v] = s[u * 8 + v] = acc;
        }
    for (int i = 1; i < 64; i++) /* insertion sort */
        for (int j = i; j > 0 && s[j - 1] > s[j]; j--) {
            double t = s[j];
            s[j] = s[j - 1], s[j - 1] = t;
        }
    double med = (s[31] + s[32]) / 2;
    uint64_t bits = 0;
    for (int i = 0; i < 64; i++)
        bits = bits << 1 | (d[i] > med);
    return bits;
}

TEST(phash_matches_float_dct)
{
    for (uint64_t seed = 1; seed <= 20; seed++) {
        struct img im;
        fill_scene(&im, 32, 32, 1, seed);
        CHECK_INT(dedup_phash_luma(&im), phash_reference(im.pixels));
        img_release(&im);
    }
    /* A 64x64 picture of 2x2 blocks area-averages to exactly its blocks. */
    struct img small, big;
    fill_scene(&small, 32, 32, 1, 99);
    CHECK(img_new(&big, 64, 64, 1) == 0);
    for (int y = 0; y < 64; y++)
        for (int x = 0; x < 64; x++)
            big.pixels[y * 64 + x] = small.pixels[(y / 2) * 32 + x / 2];
    CHECK_INT(dedup_phash_luma(&big), dedup_phash_luma(&small));
    img_release(&small);
    img_release(&big);
}

/* The area average at sizes that do not divide 32 (and below it): the
 * hashes the first, division-per-pixel implementation gave, so a faster
 * resampler changes no decision of an existing run. */
TEST(phash_resample_unchanged_at_odd_sizes)
{
    static const struct {
        uint32_t w, h;
        uint64_t hash;
    } want[] = {
        { 100, 75, 0x80ea409db69f4f95ull },  { 47, 33, 0x88fc2ddc54abd08bull },
        { 20, 10, 0xa0c8c8b43ebab2bdull },   { 160, 120, 0xa0d426dcfc83f8a3ull },
        { 33, 1000, 0x80d37fb02a9b1af1ull }, { 1, 1, 0x8000000000000000ull },
        { 64, 31, 0xaad557a8a38089feull },   { 127, 95, 0xa2eb9aca82ca55eaull },
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        struct img im;
        fill_scene(&im, want[i].w, want[i].h, 1, 100 + i);
        CHECK_INT(dedup_phash_luma(&im), want[i].hash);
        img_release(&im);
    }
}

TEST(phash_reduced_jpeg_decode_close_to_full)
{
    struct img rgb;
    fill_scene(&rgb, 1024, 768, 3, 7);
    uint8_t *jpg;
    size_t n;
    CHECK(img_encode(&rgb, IMG_FORMAT_JPEG, 90, &jpg, &n, NULL) == VC_OK);
    struct img luma;
    CHECK(img_decode_reduced(jpg, n, NULL, 64, IMG_DECODE_LUMA | IMG_DECODE_NO_ORIENT, &luma,
                             NULL) == VC_OK);
    /* 1024x768 at 1/8 is 128x96: the smallest scale with both sides >= 64. */
    CHECK_INT(luma.w, 128);
    CHECK_INT(luma.h, 96);
    CHECK_INT(luma.ch, 1);
    uint64_t reduced = dedup_phash_luma(&luma);
    img_release(&luma);
    struct img full;
    CHECK(img_decode(jpg, n, NULL, 0, &full, NULL) == VC_OK);
    for (size_t i = 0; i < (size_t)full.w * full.h; i++) {
        const uint8_t *p = full.pixels + 3 * i;
        full.pixels[i] = (uint8_t)((p[0] * 19595u + p[1] * 38470u + p[2] * 7471u + 0x8000u) >> 16);
    }
    full.ch = 1;
    CHECK(dedup_hamming(reduced, dedup_phash_luma(&full)) <= 4);
    /* Through the sample path too. */
    uint64_t via;
    CHECK(dedup_phash_image(jpg, n, NULL, &via, NULL) == VC_OK);
    CHECK_INT(via, reduced);
    img_release(&full);
    img_release(&rgb);
    free(jpg);
}

/* PNG and WebP take the reduced decode too (PNG: 12 x 12 blocks of a
 * 1024x768 picture, 86x64; WebP: libwebp's scaler), and hash within a few
 * bits of the full decode's grey picture, which is exactly the RGB decode
 * through Pillow's "L" weights at full size. */
TEST(phash_reduced_png_webp_close_to_full)
{
    /* Blocks of colour over a gradient: a picture with structure at every
     * scale, so its 64 low frequencies are well apart from their median. */
    struct img rgb;
    CHECK(img_new(&rgb, 1024, 768, 3) == 0);
    uint64_t seed = 11;
    for (uint32_t y = 0; y < 768; y++)
        for (uint32_t x = 0; x < 1024; x++)
            for (int c = 0; c < 3; c++)
                rgb.pixels[((size_t)y * 1024 + x) * 3 + c] = (uint8_t)(x / 8 + y / 6 + 40 * c);
    for (int r = 0; r < 12; r++) {
        uint32_t x0 = (uint32_t)(lcg(&seed) % 900), y0 = (uint32_t)(lcg(&seed) % 650);
        uint32_t w = 40 + (uint32_t)(lcg(&seed) % 200), h = 40 + (uint32_t)(lcg(&seed) % 200);
        uint8_t col[3] = { (uint8_t)lcg(&seed), (uint8_t)lcg(&seed), (uint8_t)lcg(&seed) };
        for (uint32_t y = y0; y < y0 + h && y < 768; y++)
            for (uint32_t x = x0; x < x0 + w && x < 1024; x++)
                memcpy(rgb.pixels + ((size_t)y * 1024 + x) * 3, col, 3);
    }
    enum img_format fmts[2] = { IMG_FORMAT_PNG, IMG_FORMAT_WEBP };
    for (int f = 0; f < 2; f++) {
        uint8_t *buf;
        size_t n;
        CHECK(img_encode(&rgb, fmts[f], 100, &buf, &n, NULL) == VC_OK);
        struct img luma, full, full_luma;
        unsigned fl = IMG_DECODE_LUMA | IMG_DECODE_NO_ORIENT;
        CHECK(img_decode_reduced(buf, n, NULL, 64, fl, &luma, NULL) == VC_OK);
        CHECK_INT(luma.ch, 1);
        CHECK(luma.w >= 64 && luma.h >= 64 && luma.w <= 128 && luma.h <= 96);
        if (fmts[f] == IMG_FORMAT_PNG) {
            CHECK_INT(luma.w, 86);
            CHECK_INT(luma.h, 64);
        }
        CHECK(img_decode_reduced(buf, n, NULL, 0, fl, &full_luma, NULL) == VC_OK);
        CHECK(img_decode(buf, n, NULL, IMG_DECODE_NO_ORIENT, &full, NULL) == VC_OK);
        CHECK_INT(full_luma.w, 1024);
        size_t same = 0, px = (size_t)full.w * full.h;
        for (size_t i = 0; i < px; i++) {
            const uint8_t *p = full.pixels + 3 * i;
            same += full_luma.pixels[i] ==
                    (uint8_t)((p[0] * 19595u + p[1] * 38470u + p[2] * 7471u + 0x8000u) >> 16);
        }
        CHECK_INT(same, px);
        CHECK(dedup_hamming(dedup_phash_luma(&luma), dedup_phash_luma(&full_luma)) <= 4);
        img_release(&luma);
        img_release(&full);
        img_release(&full_luma);
        free(buf);
    }
    img_release(&rgb);
}

TEST(phash_bands_pigeonhole)
{
    /* Two hashes at distance r agree on some band of r + 1; at r + 1 flips
     * spread one per band they may not. */
    uint64_t a = 0x0123456789abcdefull;
    for (int r = 0; r <= 16; r++) {
        uint64_t b = a;
        for (int k = 0; k < r; k++)
            b ^= 1ull << ((k * 37) % 64);
        CHECK(dedup_phash_first_band(a, b, r + 1) <= r);
    }
    uint64_t spread = a;
    for (int j = 0; j < 5; j++)
        spread ^= 1ull << (64 * j / 5);
    CHECK_INT(dedup_phash_first_band(a, spread, 5), 5);
}

static void check_norm(const char *in, const char *want)
{
    char *out;
    size_t n;
    CHECK(dedup_text_normalize(in, strlen(in), &out, &n, NULL) == VC_OK);
    CHECK_STR(out, want);
    CHECK_INT(n, strlen(want));
    free(out);
}

TEST(text_normalize)
{
    check_norm("  Hello\t\tWORLD \n", "hello world");
    /* U+0065 U+0301 (decomposed) composes to U+00E9; U+00DF folds to "ss";
     * U+00A0 and U+2003 are white space. */
    check_norm("Caf\x65\xcc\x81\xc2\xa0STRA\xc3\x9f\x45\xe2\x80\x83x", "caf\xc3\xa9 strasse x");
    check_norm("\xce\xa3\xce\x99\xce\xa3\xce\xa5\xce\xa6\xce\x9f\xce\xa3",
               "\xcf\x83\xce\xb9\xcf\x83\xcf\x85\xcf\x86\xce\xbf\xcf\x83"); /* Greek sigma folds to
                                                                               U+03C3 */
    check_norm("bad \xff byte", "bad \xef\xbf\xbd byte");
    check_norm(" \t\n", "");
}

/* "w0 w1 ... w{n-1}" with words from `base` + i. */
static void words(char *buf, int n, int base, int change_from, int change_base)
{
    char *p = buf;
    for (int i = 0; i < n; i++)
        p += sprintf(p, "%sw%d", i ? " " : "", i >= change_from ? change_base + i : base + i);
}

static int shared_bands(const struct dedup_minhash *a, const struct dedup_minhash *b)
{
    int k = 0;
    for (int i = 0; i < a->n_bands; i++)
        k += a->band[i] == b->band[i];
    return k;
}

TEST(minhash_similarity)
{
    static char a[8192], b[8192], c[8192];
    /* 200 words, the last 10 replaced: 5-gram sets of 196 each, 186
     * shared, so Jaccard = 186 / 206 = 0.903. */
    words(a, 200, 0, 1000, 0);
    words(b, 200, 0, 190, 5000);
    words(c, 200, 9000, 1000, 0); /* no word in common */
    struct dedup_minhash ma, mb, mc, ma2;
    CHECK_INT(dedup_minhash(a, strlen(a), 5, 14, 8, &ma), 1);
    CHECK_INT(dedup_minhash(a, strlen(a), 5, 14, 8, &ma2), 1);
    CHECK_INT(dedup_minhash(b, strlen(b), 5, 14, 8, &mb), 1);
    CHECK_INT(dedup_minhash(c, strlen(c), 5, 14, 8, &mc), 1);
    CHECK_INT(shared_bands(&ma, &ma2), 14);
    CHECK(ma.sketch == ma2.sketch);
    /* P(band equal) = 0.903^8 = 0.44: ~6 of 14 expected; P(0 of 14) < 1e-3. */
    CHECK(shared_bands(&ma, &mb) >= 1);
    CHECK_INT(shared_bands(&ma, &mc), 0);
    double sim = dedup_sketch_similarity(ma.sketch, mb.sketch);
    CHECK(sim > 0.65 && sim <= 1.0);
    CHECK(dedup_sketch_similarity(ma.sketch, mc.sketch) < 0.4);
    /* Fewer words than the n-gram: one shingle of the whole text. */
    struct dedup_minhash s1, s2;
    CHECK_INT(dedup_minhash("a red car", 9, 5, 14, 8, &s1), 1);
    CHECK_INT(dedup_minhash("a red car", 9, 5, 14, 8, &s2), 1);
    CHECK_INT(shared_bands(&s1, &s2), 14);
    CHECK_INT(dedup_minhash("", 0, 5, 14, 8, &s1), 0);
}

static int sig_cmp_q(const void *a, const void *b)
{
    return dedup_sig_cmp(a, b);
}

struct collect {
    struct dedup_sig *v;
    size_t n;
};

static enum vc_status collect_emit(void *ctx, const struct dedup_sig *s, struct vc_err *err)
{
    (void)err;
    struct collect *c = ctx;
    c->v[c->n++] = *s;
    return VC_OK;
}

/* A unit none of whose samples reached dedup has no signatures (NULL, 0):
 * sorting and writing them is a no-op, which UBSan checks in the ASan
 * tree (qsort must not be handed NULL); their partition is an empty run. */
TEST(empty_signature_sets)
{
    dedup_sig_sort(NULL, 0);
    const char *dir = vc_test_tmpdir();
    char path[4200], tmp[4200];
    snprintf(path, sizeof path, "%s/empty.sig", dir);
    snprintf(tmp, sizeof tmp, "%s/merge", dir);
    struct vc_err err = { 0 };
    CHECK_INT(dedup_sig_write(path, NULL, 0, 0, &err), VC_OK);
    struct extsort *s = NULL;
    CHECK_INT(dedup_sig_sorter(&s, tmp, 1u << 20, 4, &err), VC_OK);
    CHECK_INT(dedup_sig_add_part(s, path, 0, 0, &err), VC_OK);
    struct collect c = { NULL, 0 };
    CHECK_INT(dedup_sig_drain(s, collect_emit, &c, &err), VC_OK);
    CHECK_INT(c.n, 0);
    extsort_close(s);
    unlink(path);
    rmdir(dir);
}

/* Partitions of nine signature files plus records added one by one (a
 * run of their own once they outgrow the 1 MiB budget) merge, three runs
 * at a time, into the order qsort gives the same records; the sort's
 * temporary runs are gone once it is closed. */
TEST(merge_matches_qsort_in_passes)
{
    const char *dir = vc_test_tmpdir();
    enum { FILES = 9, PER = 3000, BITS = 2, LOOSE = 40000 };
    static struct dedup_sig all[FILES * PER + LOOSE], got[FILES * PER + LOOSE], loose[LOOSE];
    uint64_t s = 5;
    static char paths[FILES][4200];
    for (int f = 0; f <= FILES; f++) {
        int n = f < FILES ? PER : LOOSE;
        struct dedup_sig *v = f < FILES ? malloc(PER * sizeof *v) : loose;
        for (int i = 0; i < n; i++) {
            v[i] = (struct dedup_sig){ .key = lcg(&s) << 40 | lcg(&s) % 50,
                                       .aux = lcg(&s) % 3,
                                       .unit = (uint32_t)f,
                                       .index = (uint32_t)i,
                                       .kind = 1 };
            all[f * PER + i] = v[i];
        }
        if (f == FILES)
            break;
        snprintf(paths[f], sizeof paths[f], "%s/sig-%d.bin", dir, f);
        CHECK(dedup_sig_write(paths[f], v, PER, BITS, NULL) == VC_OK);
        free(v);
    }
    qsort(all, FILES * PER + LOOSE, sizeof *all, sig_cmp_q);
    size_t pos = 0;
    for (uint32_t part = 0; part < (1u << BITS); part++) {
        struct extsort *m = NULL;
        char tmp[4200];
        snprintf(tmp, sizeof tmp, "%s/merge", dir);
        CHECK(dedup_sig_sorter(&m, tmp, 1u << 20, 3, NULL) == VC_OK);
        for (int f = 0; f < FILES; f++)
            CHECK(dedup_sig_add_part(m, paths[f], BITS, part, NULL) == VC_OK);
        for (int i = 0; i < LOOSE; i++)
            if (dedup_sig_part(loose[i].key, BITS) == part)
                CHECK(extsort_add(m, &loose[i], sizeof loose[i], NULL) == VC_OK);
        struct collect c = { got, 0 };
        CHECK(dedup_sig_drain(m, collect_emit, &c, NULL) == VC_OK);
        extsort_close(m);
        for (size_t i = 0; i < c.n; i++) {
            CHECK_INT(dedup_sig_part(got[i].key, BITS), part);
            CHECK(memcmp(&got[i], &all[pos + i], sizeof *got) == 0);
        }
        pos += c.n;
    }
    CHECK_INT(pos, FILES * PER + LOOSE);
    int left = 0; /* the nine signature files alone */
    DIR *d = opendir(dir);
    for (struct dirent *e; d && (e = readdir(d));)
        left += e->d_name[0] != '.';
    if (d)
        closedir(d);
    CHECK_INT(left, FILES);
    /* A wrong partition count is refused, naming the file. */
    struct dedup_run r;
    struct vc_err e = { 0 };
    CHECK(dedup_sig_run(paths[0], 3, 0, &r, &e) == VC_EFATAL);
    CHECK(strstr(e.msg, "sig-0.bin") != NULL);
    char cmd[4300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0);
}

/* A scratch folder holding one signature file (every signature in one
 * partition) and the names a reduce part writes beside it. */
struct reduce_dir {
    char sig[4200], edges[4200], edits[4200], tmp[4200];
    const char *dir;
};

static void reduce_dir_new(struct reduce_dir *d, struct dedup_sig *v, size_t n)
{
    d->dir = vc_test_tmpdir();
    snprintf(d->sig, sizeof d->sig, "%s/sig.bin", d->dir);
    snprintf(d->edges, sizeof d->edges, "%s/edges.bin", d->dir);
    snprintf(d->edits, sizeof d->edits, "%s/edits.bin", d->dir);
    snprintf(d->tmp, sizeof d->tmp, "%s/merge", d->dir);
    CHECK(dedup_sig_write(d->sig, v, n, 0, NULL) == VC_OK);
}

/* Runs the only reduce part over d's signatures (writing edits too when
 * asked) and reads its edges back: a malloc'd array of *n. */
static struct dedup_edge *reduce_dir_run(struct reduce_dir *d, const struct dedup_reduce_opts *o,
                                         bool edits, struct dedup_reduce_stats *st, size_t *n)
{
    char *paths[1] = { d->sig };
    *n = 0;
    CHECK(dedup_reduce_part(paths, 1, 0, o, d->tmp, d->edges, edits ? d->edits : NULL, st, NULL) ==
          VC_OK);
    size_t size = 0;
    unsigned char *bytes = vc_test_read_file(d->edges, &size);
    CHECK(bytes != NULL && size % sizeof(struct dedup_edge) == 0);
    if (bytes)
        *n = size / sizeof(struct dedup_edge);
    return (struct dedup_edge *)bytes;
}

static void reduce_dir_free(struct reduce_dir *d)
{
    char cmd[4300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", d->dir);
    CHECK(system(cmd) == 0);
}

static struct dedup_sig phash_sig(uint64_t ph, uint32_t index, int band, int n_bands)
{
    uint64_t key = dedup_mix64(dedup_phash_band(ph, band, n_bands) ^ (uint64_t)(band + 1) << 56);
    return (struct dedup_sig){ .key = key,
                               .aux = ph,
                               .unit = 0,
                               .index = index,
                               .weight = index,
                               .kind = dedup_kind(DEDUP_M_IMAGE_PHASH, (unsigned)band) };
}

TEST(reduce_finds_pairs_within_radius_once)
{
    const int r = 4, nb = r + 1;
    uint64_t base = 0xf0f0f0f0a5a5a5a5ull;
    /* 0: base; 1: base + 3 flips (pair 0-1 at 3); 2: base + 4 flips (0-2 at
     * 4, 1-2 at 7 > r); 3: base + 9 flips, one per band and more (none);
     * 4: exactly base again (0-4 at 0); 5: a sha256 twin pair with 6. */
    uint64_t h[5] = { base, base ^ 0x7, base ^ 0xf00000000000ull, base, base };
    h[2] = base ^ (1ull << 20 | 1ull << 30 | 1ull << 40 | 1ull << 50);
    h[3] = base ^ 0x8040201008040201ull ^ 0x0100000000000000ull;
    struct dedup_sig v[64];
    size_t n = 0;
    for (uint32_t i = 0; i < 5; i++)
        for (int b = 0; b < nb; b++)
            v[n++] = phash_sig(h[i], i, b, nb);
    v[n++] = (struct dedup_sig){
        .key = 77, .aux = 1, .index = 5, .kind = dedup_kind(DEDUP_M_IMAGE_SHA256, 0)
    };
    v[n++] = (struct dedup_sig){
        .key = 77, .aux = 1, .index = 6, .kind = dedup_kind(DEDUP_M_IMAGE_SHA256, 0)
    };
    v[n++] = (struct dedup_sig){ .key = 77,
                                 .aux = 2,
                                 .index = 7, /* same key, other digest */
                                 .kind = dedup_kind(DEDUP_M_IMAGE_SHA256, 0) };
    struct reduce_dir d;
    reduce_dir_new(&d, v, n);
    struct dedup_reduce_opts o = {
        .phash_radius = r, .part_bits = 0, .mem_bytes = 1 << 20, .max_open = 8
    };
    struct dedup_reduce_stats st;
    size_t got;
    struct dedup_edge *e = reduce_dir_run(&d, &o, false, &st, &got);
    /* Expected: 0-1 (3), 0-2 (4), 0-4 (0), 5-6 (sha).  4 has 0's very hash,
     * so it joins 0's pairs through the 0-4 edge, not with its own. */
    int seen[8][8] = { { 0 } };
    for (size_t i = 0; i < got; i++) {
        uint32_t a = e[i].index_a < e[i].index_b ? e[i].index_a : e[i].index_b;
        uint32_t b = e[i].index_a ^ e[i].index_b ^ a;
        CHECK(a < 8 && b < 8);
        if (a < 8 && b < 8)
            seen[a][b]++;
        if (e[i].method == DEDUP_M_IMAGE_PHASH)
            CHECK_INT(e[i].score, dedup_hamming(h[a], h[b]));
    }
    CHECK_INT(got, 4);
    CHECK_INT(seen[0][1], 1);
    CHECK_INT(seen[0][2], 1);
    CHECK_INT(seen[0][4], 1);
    CHECK_INT(seen[1][4], 0);
    CHECK_INT(seen[5][6], 1);
    CHECK_INT(seen[1][2], 0);
    CHECK_INT(seen[0][3], 0);
    free(e);
    reduce_dir_free(&d);
}

/* The counted document rules: a group of at least the limit makes every
 * member an edit, a smaller one none; edits come out sorted by sample even
 * when they outgrow their memory (sorted runs merged back). */
TEST(reduce_counts_edits_in_bounded_memory)
{
    enum { BIG = 5000 };
    struct dedup_sig *v = calloc(BIG + 64, sizeof *v);
    CHECK(v != NULL);
    if (!v)
        return;
    size_t n = 0;
    uint16_t par = dedup_kind(DEDUP_M_DOC_PARAGRAPH, 0), url = dedup_kind(DEDUP_M_DOC_IMAGE_URL, 0);
    /* A: a paragraph in 5,000 documents of 5 units (edits: all);  B: one
     * in 2 (limit 3: none); C: an image URL in 10 documents (not more than
     * 10: none); D: one in 11 (all). */
    for (uint32_t i = 0; i < BIG; i++)
        v[n++] = (struct dedup_sig){ .key = 0xA, .unit = i % 5, .index = i / 5, .kind = par };
    for (uint32_t i = 0; i < 2; i++)
        v[n++] = (struct dedup_sig){ .key = 0xB, .unit = 7, .index = i, .kind = par };
    for (uint32_t i = 0; i < 10; i++)
        v[n++] = (struct dedup_sig){ .key = 0xC, .unit = 8, .index = i, .kind = url };
    for (uint32_t i = 0; i < 11; i++)
        v[n++] = (struct dedup_sig){ .key = 0xD, .unit = 2, .index = 2000 + i, .kind = url };
    struct reduce_dir d;
    reduce_dir_new(&d, v, n);
    /* 64 KiB: 1,024 edits in memory, so 5,011 make 5 runs. */
    struct dedup_reduce_opts o = { .part_bits = 0,
                                   .mem_bytes = 64 << 10,
                                   .max_open = 4,
                                   .image_url_max = 10,
                                   .paragraph_repeat = 3 };
    struct dedup_reduce_stats st;
    size_t n_edges;
    free(reduce_dir_run(&d, &o, true, &st, &n_edges));
    CHECK_INT(n_edges, 0); /* no image hashes: no pair */
    CHECK_INT(st.edits, BIG + 11);
    struct dedup_sig *got = NULL;
    size_t n_got = 0, cap = 0;
    CHECK(dedup_sig_range(d.edits, 0, UINT64_MAX, &got, &n_got, &cap, NULL) == VC_OK);
    CHECK_INT(n_got, BIG + 11);
    size_t from_a = 0, from_d = 0, sorted = 1;
    for (size_t i = 0; i < n_got; i++) {
        CHECK(got[i].key == ((uint64_t)got[i].unit << 32 | got[i].index));
        if (i && got[i - 1].key > got[i].key)
            sorted = 0;
        from_a += got[i].aux == 0xA && got[i].kind == par;
        from_d += got[i].aux == 0xD && got[i].kind == url;
    }
    CHECK_INT(sorted, 1);
    CHECK_INT(from_a, BIG);
    CHECK_INT(from_d, 11);
    /* One unit's slice: unit 2 has 1,000 of A and all of D. */
    n_got = 0;
    CHECK(dedup_sig_range(d.edits, 2ull << 32, 2ull << 32 | UINT32_MAX, &got, &n_got, &cap, NULL) ==
          VC_OK);
    CHECK_INT(n_got, BIG / 5 + 11);
    /* No temp run is left behind. */
    char cmd[4300];
    snprintf(cmd, sizeof cmd, "test $(ls '%s' | wc -l) -eq 3", d.dir);
    CHECK(system(cmd) == 0);
    free(got);
    free(v);
    reduce_dir_free(&d);
}

/* Flooded band groups stay linear: 10,000 copies of one hash are joined
 * (a star, no pair checks), and 20,000 distinct hashes sharing their low
 * 38 bits (three of five bands) cost at most DEDUP_PHASH_WINDOW checks per
 * hash and band, while each planted twin (one bit apart, neighbours in
 * hash order) is still found. */
TEST(reduce_bounds_flooded_band_groups)
{
    enum { SAME = 10000, TWINS = 10000, NB = 5 };
    size_t n_hash = SAME + 2 * TWINS, n = 0;
    struct dedup_sig *v = calloc(n_hash * NB, sizeof *v);
    uint64_t *h = calloc(n_hash, sizeof *h);
    CHECK(v && h);
    if (!v || !h)
        return;
    for (uint32_t i = 0; i < SAME; i++)
        h[i] = 0x0123456789abcdefull;
    for (uint32_t i = 0; i < TWINS; i++) {
        /* Distinct high bits (a multiplier odd and below 2^26 keeps them
         * distinct), bits 0..37 clear, the twin with bit 0 set. */
        uint64_t hi = ((uint64_t)i * 40503u & ((1u << 26) - 1)) << 38;
        h[SAME + 2 * i] = hi;
        h[SAME + 2 * i + 1] = hi | 1;
    }
    for (uint32_t i = 0; i < n_hash; i++)
        for (int b = 0; b < NB; b++)
            v[n++] = phash_sig(h[i], i, b, NB);
    struct reduce_dir d;
    reduce_dir_new(&d, v, n);
    struct dedup_reduce_opts o = {
        .phash_radius = NB - 1, .part_bits = 0, .mem_bytes = 4 << 20, .max_open = 8
    };
    struct dedup_reduce_stats st;
    size_t n_edges;
    struct dedup_edge *e = reduce_dir_run(&d, &o, false, &st, &n_edges);
    /* 1,024 written out: the bound holds whatever the constant says. */
    CHECK(st.pairs_checked <= (uint64_t)(n_hash - SAME + 1) * 1024 * NB);
    CHECK(st.pairs_skipped > 0);
    size_t star = 0, twins = 0, bad = 0;
    for (size_t i = 0; i < n_edges; i++) {
        uint32_t a = e[i].index_a < e[i].index_b ? e[i].index_a : e[i].index_b;
        uint32_t b = e[i].index_a ^ e[i].index_b ^ a;
        bad += dedup_hamming(h[a], h[b]) > NB - 1 || e[i].score != dedup_hamming(h[a], h[b]);
        star += a == 0 && b < SAME;
        twins += a >= SAME && b == a + 1 && (a - SAME) % 2 == 0;
    }
    CHECK_INT(bad, 0);
    CHECK_INT(star, SAME - 1);
    CHECK_INT(twins, TWINS);
    free(e);
    free(v);
    free(h);
    reduce_dir_free(&d);
}

/* Node i's id: five units, ordinals scrambled (an odd multiplier mod
 * 2^32 is a bijection), so a component's smallest id is not its first
 * member. */
static uint64_t cc_id(uint32_t i)
{
    return (uint64_t)(i % 5) << 32 | (uint32_t)(i * 2654435761u);
}

/* Components known by construction (blocks of consecutive members: long
 * chains, cliques, stars, pairs) joined by pairs given in a random order,
 * repeated and reversed, in a budget that takes ~15 chunks: every node
 * gets its block's smallest id, computed here by a scan. */
TEST(components_in_chunks_match_construction)
{
    enum { N = 120000 };
    const char *dir = vc_test_tmpdir();
    char pairs_path[4200], labels_path[4200], prefix[4200];
    snprintf(pairs_path, sizeof pairs_path, "%s/cc-pairs", dir);
    snprintf(labels_path, sizeof labels_path, "%s/cc-labels", dir);
    snprintf(prefix, sizeof prefix, "%s/cc-tmp", dir);
    uint32_t *block = malloc(N * sizeof *block);
    size_t cap = 8 * (size_t)N, n = 0;
    struct dedup_pair *v = malloc(cap * sizeof *v);
    CHECK(block && v);
    uint64_t seed = 7;
    uint32_t b = 0;
    for (uint32_t i = 0; i < N; b++) {
        uint32_t kind = b % 4, len = kind == 0   ? 3000 + (uint32_t)lcg(&seed) % 3000
                                     : kind == 1 ? 2 + (uint32_t)lcg(&seed) % 30
                                     : kind == 2 ? 2 + (uint32_t)lcg(&seed) % 200
                                                 : 2;
        if (len > N - i)
            len = N - i;
        for (uint32_t k = 0; k < len; k++) {
            block[i + k] = b;
            if (k == 0)
                continue;
            uint32_t other = kind == 0   ? i + k - 1                    /* chain */
                             : kind == 1 ? i + (uint32_t)lcg(&seed) % k /* random tree */
                                         : i;                           /* star, pair */
            v[n++] = (struct dedup_pair){ cc_id(i + k), cc_id(other) };
            if (kind == 1) /* and more edges: towards a clique */
                for (uint32_t j = 0; j < k && n < cap; j++)
                    v[n++] = (struct dedup_pair){ cc_id(i + j), cc_id(i + k) };
        }
        if (len == 1) /* a lone node at the end joins no pair */
            block[i] = UINT32_MAX;
        i += len;
    }
    for (size_t k = n; k > 1; k--) { /* Fisher-Yates */
        size_t j = lcg(&seed) % k;
        struct dedup_pair t = v[k - 1];
        v[k - 1] = v[j];
        v[j] = t;
    }
    FILE *f = fopen(pairs_path, "wb");
    CHECK(f && dedup_pairs_write(f, pairs_path, v, n, NULL) == VC_OK && fclose(f) == 0);
    uint64_t *want = malloc(b * sizeof *want), n_want = 0;
    CHECK(want != NULL);
    for (uint32_t k = 0; k < b; k++)
        want[k] = UINT64_MAX;
    for (uint32_t i = 0; i < N; i++)
        if (block[i] != UINT32_MAX && cc_id(i) < want[block[i]])
            want[block[i]] = cc_id(i);
    uint64_t n_nodes = 0;
    struct vc_err err;
    CHECK_INT(dedup_cc_labels(pairs_path, prefix, 1u << 20, labels_path, &n_nodes, &err), VC_OK);
    /* Every labelled node, in id order: sort the expected (id, label). */
    struct dedup_pair *exp = malloc(N * sizeof *exp);
    CHECK(exp != NULL);
    for (uint32_t i = 0; i < N; i++)
        if (block[i] != UINT32_MAX)
            exp[n_want++] = (struct dedup_pair){ cc_id(i), want[block[i]] };
    qsort(exp, n_want, sizeof *exp, dedup_pair_order);
    CHECK(n_nodes == n_want);
    f = fopen(labels_path, "rb");
    CHECK(f != NULL);
    struct dedup_pair got;
    size_t k = 0, bad = 0;
    while (fread(&got, sizeof got, 1, f) == 1) {
        bad += k >= n_want || got.a != exp[k].a || got.b != exp[k].b;
        k++;
    }
    fclose(f);
    CHECK(k == n_want && bad == 0);
    /* The input stays; the passes' files are gone. */
    struct stat st;
    CHECK(stat(pairs_path, &st) == 0 && (size_t)st.st_size == n * sizeof *v);
    DIR *dd = opendir(dir);
    struct dirent *de;
    size_t left = 0;
    while (dd && (de = readdir(dd)) != NULL)
        left += strncmp(de->d_name, "cc-tmp", 6) == 0;
    if (dd)
        closedir(dd);
    CHECK(left == 0);
    free(exp);
    free(want);
    free(v);
    free(block);
}

#define TESTS(X)                                                                                   \
    X(phash_matches_float_dct)                                                                     \
    X(phash_resample_unchanged_at_odd_sizes)                                                       \
    X(phash_reduced_jpeg_decode_close_to_full)                                                     \
    X(phash_reduced_png_webp_close_to_full)                                                        \
    X(phash_bands_pigeonhole)                                                                      \
    X(text_normalize)                                                                              \
    X(minhash_similarity)                                                                          \
    X(empty_signature_sets)                                                                        \
    X(merge_matches_qsort_in_passes)                                                               \
    X(reduce_finds_pairs_within_radius_once)                                                       \
    X(reduce_counts_edits_in_bounded_memory)                                                       \
    X(reduce_bounds_flooded_band_groups)                                                           \
    X(components_in_chunks_match_construction)
TEST_MAIN(TESTS)
