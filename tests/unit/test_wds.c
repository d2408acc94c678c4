/* Unit tests of stages/wds_read, wds_write and wds_inspect.  Shards written
 * by the writer are read back by our reader, by GNU tar, by zstd/gzip and by
 * Python's tarfile (tests/tools/wds_tarcheck.py, which also walks the raw
 * headers), and compared with the bytes that went in.  Hostile archives are
 * built here header by header, so each one is exactly the attack named. */
#include "vc_test.h"

#include "core/sha256.h"
#include "core/vc_fs.h"
#include "core/vc_mem.h"
#include "stages/wds_inspect.h"
#include "stages/wds_read.h"
#include "stages/wds_write.h"

#include <dirent.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#define TARCHECK "/usr/bin/python3 " VC_SOURCE_DIR "/tests/tools/wds_tarcheck.py"

/* ---- helpers ------------------------------------------------------------ */

/* Runs a shell command; its stdout (owned, NUL-terminated) in *out. */
static int run(const char *cmd, char **out)
{
    FILE *p = popen(cmd, "r");
    if (!p)
        return -1;
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (len + 1 == cap)
            buf = realloc(buf, cap *= 2);
        size_t got = fread(buf + len, 1, cap - len - 1, p);
        if (got == 0)
            break;
        len += got;
    }
    buf[len] = '\0';
    int rc = pclose(p);
    if (out)
        *out = buf;
    else
        free(buf);
    return rc;
}

static void fill_bytes(uint8_t *p, size_t n, uint32_t seed)
{
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        p[i] = (uint8_t)x;
    }
}

/* Sizes around the 512-byte block edges, an empty member and one larger
 * than the writer's output buffer and zstd's chunk. */
static const size_t field_sizes[] = { 0, 1, 511, 512, 513, 1024, 100000, 3 << 20 };
enum { N_SAMPLES = 8 };

struct fixture {
    struct arena *arena;
    uint8_t *bytes; /* one big random pool the fields are cut from */
};

static struct fixture fixture_new(void)
{
    struct fixture f = { arena_new((size_t)64 << 20), malloc((size_t)8 << 20) };
    fill_bytes(f.bytes, (size_t)8 << 20, 7);
    return f;
}

static void fixture_free(struct fixture *f)
{
    arena_free(f->arena);
    free(f->bytes);
}

/* Sample i: key "s000i", fields jpg (size from field_sizes), txt, json and,
 * for odd i, an interleaved-document image "0.png". */
static void make_sample(struct fixture *fx, int i, struct sample *s, char key[16])
{
    struct vc_err err;
    sample_init(s, fx->arena);
    snprintf(key, 16, "s%04d", i);
    s->key = key;
    size_t n = field_sizes[i % (int)(sizeof field_sizes / sizeof field_sizes[0])];
    CHECK_INT(sample_add_field(s, "jpg", fx->bytes + i * 1000, n, &err), VC_OK);
    char txt[64];
    int tn = snprintf(txt, sizeof txt, "a caption for sample %d", i);
    CHECK_INT(sample_add_field(s, "txt", txt, (size_t)tn, &err), VC_OK);
    CHECK_INT(sample_add_field(s, "json", "{\"a\":1}", 7, &err), VC_OK);
    if (i % 2)
        CHECK_INT(sample_add_field(s, "0.png", fx->bytes + 77, 600 + (size_t)i, &err), VC_OK);
}

static struct wds_shard_stats write_shard(struct fixture *fx, const char *path,
                                          enum wds_compression c, uint64_t offsets[N_SAMPLES])
{
    struct wds_writer *w = NULL;
    struct vc_err err;
    struct wds_shard_stats st = { 0 };
    CHECK_INT(wds_writer_open(path, c, &w, &err), VC_OK);
    if (!w)
        return st;
    for (int i = 0; i < N_SAMPLES; i++) {
        struct sample s;
        char key[16];
        make_sample(fx, i, &s, key);
        uint64_t off = 0;
        CHECK_INT(wds_writer_add(w, &s, &off, &err), VC_OK);
        if (offsets)
            offsets[i] = off;
        arena_reset(fx->arena);
    }
    CHECK_INT(wds_writer_commit(w, &st, &err), VC_OK);
    return st;
}

/* The uncompressed size by the ustar rules, computed independently of the
 * writer: a header and whole data blocks per member, two zero blocks, then
 * padding to the 10240-byte record. */
static uint64_t expected_tar_size(void)
{
    uint64_t total = 0;
    for (int i = 0; i < N_SAMPLES; i++) {
        size_t n = field_sizes[i % (int)(sizeof field_sizes / sizeof field_sizes[0])];
        char txt[64];
        size_t sizes[4] = { n, (size_t)snprintf(txt, sizeof txt, "a caption for sample %d", i), 7,
                            600 + (size_t)i };
        for (int k = 0; k < (i % 2 ? 4 : 3); k++)
            total += 512 + (sizes[k] + 511) / 512 * 512;
    }
    total += 1024;
    return (total + 10239) / 10240 * 10240;
}

/* Reads the shard with wds_reader and compares every sample with what
 * make_sample gives. */
static void check_read_back(struct fixture *fx, const char *path)
{
    struct wds_reader *r = NULL;
    struct vc_err err;
    CHECK_INT(wds_reader_open(path, NULL, &r, &err), VC_OK);
    if (!r)
        return;
    struct arena *mine = arena_new((size_t)64 << 20);
    int i = 0;
    for (;; i++) {
        struct sample got, want;
        char key[16];
        sample_init(&got, mine);
        enum vc_status st = wds_reader_next(r, &got, &err);
        if (st == VC_EOF)
            break;
        CHECK_INT(st, VC_OK);
        if (st != VC_OK || i >= N_SAMPLES)
            break;
        make_sample(fx, i, &want, key);
        CHECK_STR(got.key, want.key);
        CHECK_STR(got.orig_key, want.key);
        CHECK_STR(got.src_file, path);
        CHECK_INT(got.src_index, i);
        CHECK_INT(got.n_fields, want.n_fields);
        for (size_t k = 0; k < got.n_fields && k < want.n_fields; k++) {
            CHECK_STR(got.fields[k].name, want.fields[k].name);
            CHECK_INT(got.fields[k].size, want.fields[k].size);
            CHECK(got.fields[k].size == want.fields[k].size &&
                  memcmp(got.fields[k].data, want.fields[k].data, got.fields[k].size) == 0);
        }
        arena_reset(fx->arena);
        arena_reset(mine);
    }
    CHECK_INT(i, N_SAMPLES);
    CHECK_INT(wds_reader_skipped(r), 0);
    wds_reader_close(r);
    arena_free(mine);
}

/* Every member extracted by an outside tool into `dir` equals its field. */
static void check_extracted(struct fixture *fx, const char *dir)
{
    int files = 0;
    for (int i = 0; i < N_SAMPLES; i++) {
        struct sample s;
        char key[16];
        make_sample(fx, i, &s, key);
        for (size_t k = 0; k < s.n_fields; k++) {
            char path[1024];
            snprintf(path, sizeof path, "%s/%s.%s", dir, s.key, s.fields[k].name);
            size_t n = 0;
            unsigned char *data = vc_test_read_file(path, &n);
            CHECK(data != NULL);
            if (data) {
                CHECK_INT(n, s.fields[k].size);
                CHECK(n == s.fields[k].size && memcmp(data, s.fields[k].data, n) == 0);
                files++;
            }
            free(data);
        }
        arena_reset(fx->arena);
    }
    /* Nothing else was extracted: samples 1, 3, 5, 7 have four fields. */
    DIR *d = opendir(dir);
    int entries = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        entries += e->d_name[0] != '.';
    if (d)
        closedir(d);
    CHECK_INT(entries, 3 * N_SAMPLES + N_SAMPLES / 2);
    CHECK_INT(files, entries);
}

static char *file_sha256(const char *path)
{
    char cmd[1100], *out = NULL;
    snprintf(cmd, sizeof cmd, "sha256sum '%s' | cut -c1-64", path);
    CHECK_INT(run(cmd, &out), 0);
    out[strcspn(out, "\n")] = '\0';
    return out;
}

static off_t file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? st.st_size : -1;
}

/* ---- the writer, read back by everyone ---------------------------------- */

TEST(roundtrip_reader)
{
    struct fixture fx = fixture_new();
    char path[1024];
    snprintf(path, sizeof path, "%s/shard-000000.tar", vc_test_tmpdir());
    struct wds_shard_stats st = write_shard(&fx, path, WDS_COMPRESS_NONE, NULL);
    CHECK_INT(st.n_samples, N_SAMPLES);
    CHECK_INT(st.n_tar_bytes, expected_tar_size());
    CHECK_INT(st.n_bytes, expected_tar_size());
    CHECK_INT(file_size(path), (off_t)expected_tar_size());
    char *sum = file_sha256(path);
    CHECK_STR(st.sha256, sum);
    free(sum);
    check_read_back(&fx, path);
    fixture_free(&fx);
}

TEST(gnu_tar_reads)
{
    struct fixture fx = fixture_new();
    const char *dir = vc_test_tmpdir();
    char path[1024], out[1024], cmd[16384];
    snprintf(path, sizeof path, "%s/shard.tar", dir);
    snprintf(out, sizeof out, "%s/x", dir);
    write_shard(&fx, path, WDS_COMPRESS_NONE, NULL);

    char *listing = NULL;
    snprintf(cmd, sizeof cmd, "tar -tvf '%s' 2>&1", path);
    CHECK_INT(run(cmd, &listing), 0);
    /* Line for line: mode, owner, size, the epoch, name, in write order. */
    char *line = listing;
    for (int i = 0; i < N_SAMPLES; i++) {
        struct sample s;
        char key[16];
        make_sample(&fx, i, &s, key);
        for (size_t k = 0; k < s.n_fields; k++) {
            char want[512];
            snprintf(want, sizeof want, "-rw-r--r-- 0/0 %zu 1970-01-01 00:00 %s.%s",
                     s.fields[k].size, s.key, s.fields[k].name);
            char *end = strchr(line, '\n');
            CHECK(end != NULL);
            if (!end)
                break;
            *end = '\0';
            /* Collapse tar's column padding before comparing. */
            char squeezed[512];
            size_t n = 0;
            for (const char *p = line; *p && n + 1 < sizeof squeezed; p++)
                if (!(*p == ' ' && n && squeezed[n - 1] == ' '))
                    squeezed[n++] = *p;
            squeezed[n] = '\0';
            CHECK_STR(squeezed, want);
            line = end + 1;
        }
        arena_reset(fx.arena);
    }
    CHECK_STR(line, "");
    free(listing);

    snprintf(cmd, sizeof cmd, "mkdir -p '%s' && tar -xf '%s' -C '%s' 2>&1", out, path, out);
    CHECK_INT(run(cmd, NULL), 0);
    check_extracted(&fx, out);
    fixture_free(&fx);
}

TEST(python_tarfile_reads)
{
    struct fixture fx = fixture_new();
    char path[1024], cmd[16384];
    snprintf(path, sizeof path, "%s/shard.tar", vc_test_tmpdir());
    write_shard(&fx, path, WDS_COMPRESS_NONE, NULL);
    char *rows = NULL;
    snprintf(cmd, sizeof cmd, TARCHECK " tar '%s'", path);
    CHECK_INT(run(cmd, &rows), 0);
    char *line = rows;
    for (int i = 0; i < N_SAMPLES; i++) {
        struct sample s;
        char key[16];
        make_sample(&fx, i, &s, key);
        for (size_t k = 0; k < s.n_fields; k++) {
            char hex[65], want[512];
            sha256_hex(s.fields[k].data, s.fields[k].size, hex);
            snprintf(want, sizeof want, "%s.%s\t%zu\t%s", s.key, s.fields[k].name, s.fields[k].size,
                     hex);
            char *end = strchr(line, '\n');
            if (end)
                *end = '\0';
            CHECK_STR(line, want);
            line = end ? end + 1 : line + strlen(line);
        }
        arena_reset(fx.arena);
    }
    CHECK_STR(line, "");
    free(rows);
    fixture_free(&fx);
}

static void check_compressed(enum wds_compression c, const char *unpack)
{
    struct fixture fx = fixture_new();
    const char *dir = vc_test_tmpdir();
    char path[1024], plain[1024], out[1024], cmd[16384];
    snprintf(path, sizeof path, "%s/shard%s", dir, wds_compression_suffix(c));
    snprintf(plain, sizeof plain, "%s/plain.tar", dir);
    snprintf(out, sizeof out, "%s/x", dir);
    struct wds_shard_stats st = write_shard(&fx, path, c, NULL);
    write_shard(&fx, plain, WDS_COMPRESS_NONE, NULL);
    CHECK_INT(st.n_samples, N_SAMPLES);
    CHECK_INT(st.n_tar_bytes, expected_tar_size());
    CHECK_INT(st.n_bytes, (uint64_t)file_size(path));
    CHECK(st.n_bytes < st.n_tar_bytes);
    char *sum = file_sha256(path);
    CHECK_STR(st.sha256, sum);
    free(sum);
    /* No DALI index for compressed shards: its offsets would be meaningless. */
    snprintf(cmd, sizeof cmd, "%s/shard.idx", dir);
    CHECK(!vc_fs_exists(cmd));

    snprintf(cmd, sizeof cmd, "mkdir -p '%s' && %s '%s' | tar -x -C '%s' 2>&1", out, unpack, path,
             out);
    CHECK_INT(run(cmd, NULL), 0);
    check_extracted(&fx, out);
    /* The compressed stream holds exactly the tar an uncompressed shard has. */
    snprintf(cmd, sizeof cmd, "%s '%s' | cmp - '%s'", unpack, path, plain);
    CHECK_INT(run(cmd, NULL), 0);
    check_read_back(&fx, path);
    fixture_free(&fx);
}

TEST(gzip_shard)
{
    check_compressed(WDS_COMPRESS_GZIP, "gzip -dc");
    /* RFC 1952 header: no FNAME flag, MTIME 0 (bytes 4..7). */
    char path[1024];
    snprintf(path, sizeof path, "%s/shard.tar.gz", vc_test_tmpdir());
    struct fixture fx = fixture_new();
    write_shard(&fx, path, WDS_COMPRESS_GZIP, NULL);
    size_t n = 0;
    unsigned char *gz = vc_test_read_file(path, &n);
    CHECK(gz && n > 10);
    if (gz && n > 10) {
        CHECK_INT(gz[0], 0x1f);
        CHECK_INT(gz[1], 0x8b);
        CHECK_INT(gz[3], 0);
        CHECK_INT(gz[4] | gz[5] | gz[6] | gz[7], 0);
    }
    free(gz);
    fixture_free(&fx);
}

TEST(zstd_shard)
{
    check_compressed(WDS_COMPRESS_ZSTD, "zstd -dc");
}

TEST(deterministic_bytes)
{
    struct fixture fx = fixture_new();
    const char *dir = vc_test_tmpdir();
    for (int c = WDS_COMPRESS_NONE; c <= WDS_COMPRESS_ZSTD; c++) {
        char a[1024], b[1024];
        snprintf(a, sizeof a, "%s/a%s", dir, wds_compression_suffix((enum wds_compression)c));
        snprintf(b, sizeof b, "%s/b%s", dir, wds_compression_suffix((enum wds_compression)c));
        struct wds_shard_stats sa = write_shard(&fx, a, (enum wds_compression)c, NULL);
        sleep(c == WDS_COMPRESS_GZIP ? 1 : 0); /* a clock in the gzip header would show */
        struct wds_shard_stats sb = write_shard(&fx, b, (enum wds_compression)c, NULL);
        CHECK_STR(sa.sha256, sb.sha256);
        size_t na = 0, nb = 0;
        unsigned char *da = vc_test_read_file(a, &na), *db = vc_test_read_file(b, &nb);
        CHECK(da && db && na == nb && memcmp(da, db, na) == 0);
        free(da);
        free(db);
    }
    fixture_free(&fx);
}

/* ---- DALI and wids indexes ---------------------------------------------- */

TEST(dali_index)
{
    struct fixture fx = fixture_new();
    const char *dir = vc_test_tmpdir();
    char path[1024], idx[1024], cmd[16384];
    snprintf(path, sizeof path, "%s/shard-000003.tar", dir);
    CHECK_INT(wds_dali_index_path(path, idx, sizeof idx),
              strlen(dir) + strlen("/shard-000003.idx"));
    uint64_t offsets[N_SAMPLES];
    write_shard(&fx, path, WDS_COMPRESS_NONE, offsets);
    size_t tar_n = 0, idx_n = 0;
    unsigned char *tar = vc_test_read_file(path, &tar_n);
    char *text = (char *)vc_test_read_file(idx, &idx_n);
    CHECK(tar && text);
    if (!tar || !text)
        return;
    text = realloc(text, idx_n + 1);
    text[idx_n] = '\0';

    /* GNU tar's own block numbers (what DALI's wds2idx.py uses): the data of
     * the member listed at block B starts at (B + 1) * 512. */
    char *blocks = NULL;
    snprintf(cmd, sizeof cmd, "tar --list --block-number --file '%s'", path);
    CHECK_INT(run(cmd, &blocks), 0);
    char *bl = blocks;

    char *save = NULL;
    char *line = strtok_r(text, "\n", &save);
    char version[16];
    unsigned long long count = 0;
    CHECK(line && sscanf(line, "%15s %llu", version, &count) == 2);
    CHECK_STR(version, "v1.2");
    CHECK_INT(count, N_SAMPLES);
    for (int i = 0; i < N_SAMPLES; i++) {
        line = strtok_r(NULL, "\n", &save);
        CHECK(line != NULL);
        if (!line)
            break;
        struct sample s;
        char key[16];
        make_sample(&fx, i, &s, key);
        char *tsave = NULL;
        char *tok = strtok_r(line, " ", &tsave);
        for (size_t k = 0; k < s.n_fields; k++) {
            char *ext = tok;
            char *off = strtok_r(NULL, " ", &tsave);
            char *size = strtok_r(NULL, " ", &tsave);
            char *name = strtok_r(NULL, " ", &tsave);
            CHECK(ext && off && size && name);
            if (!name)
                break;
            char want_name[256];
            snprintf(want_name, sizeof want_name, "%s.%s", s.key, s.fields[k].name);
            CHECK_STR(ext, s.fields[k].name);
            CHECK_STR(name, want_name);
            unsigned long long o = strtoull(off, NULL, 10), n = strtoull(size, NULL, 10);
            CHECK_INT(o % 512, 0);
            CHECK_INT(n, s.fields[k].size);
            if (k == 0)
                CHECK_INT(o, offsets[i] + 512);
            CHECK(o + n <= tar_n && memcmp(tar + o, s.fields[k].data, n) == 0);
            unsigned long long b = 0;
            char bname[256];
            CHECK(sscanf(bl, "block %llu: %255s", &b, bname) == 2);
            CHECK_INT((b + 1) * 512, o);
            CHECK_STR(bname, want_name);
            bl = strchr(bl, '\n') ? strchr(bl, '\n') + 1 : bl + strlen(bl);
            tok = strtok_r(NULL, " ", &tsave);
        }
        CHECK(tok == NULL);
        arena_reset(fx.arena);
    }
    CHECK(strtok_r(NULL, "\n", &save) == NULL);
    free(blocks);
    free(tar);
    free(text);

    char out[64];
    CHECK_INT(wds_dali_index_path("a/b.tar.zst", out, sizeof out), 7);
    CHECK_STR(out, "a/b.idx");
    CHECK_INT(wds_dali_index_path("x.tar.gz", out, sizeof out), 5);
    CHECK_STR(out, "x.idx");
    CHECK_INT(wds_dali_index_path("v1.2/data", out, sizeof out), 13);
    CHECK_STR(out, "v1.2/data.idx");
    CHECK_INT(wds_dali_index_path("abc.tar", out, 3), 7);
    fixture_free(&fx);
}

TEST(wids_index)
{
    char path[1024], cmd[16384];
    snprintf(path, sizeof path, "%s/index.json", vc_test_tmpdir());
    struct wds_index_entry e[3] = {
        { "shard-000000.tar", 1000, 123456789 },
        { "odd \"name\"\\.tar", 0, 10240 },
        /* Above 2^53: a double would round it. */
        { "big.tar", 7, 9007199254740993ull },
    };
    struct vc_err err;
    CHECK_INT(wds_write_wids_index(path, e, 3, &err), VC_OK);
    char *rows = NULL;
    snprintf(cmd, sizeof cmd, TARCHECK " wids '%s'", path);
    CHECK_INT(run(cmd, &rows), 0);
    CHECK_STR(rows, "shard-000000.tar\t1000\t123456789\n"
                    "odd \"name\"\\.tar\t0\t10240\n"
                    "big.tar\t7\t9007199254740993\n");
    free(rows);
    CHECK(!vc_fs_exists(strcat(strcpy(cmd, path), ".tmp")));
}

/* ---- what the writer refuses -------------------------------------------- */

TEST(writer_rejects)
{
    struct fixture fx = fixture_new();
    const char *dir = vc_test_tmpdir();
    char good[1024], bad[1024];
    snprintf(good, sizeof good, "%s/good.tar", dir);
    snprintf(bad, sizeof bad, "%s/bad.tar", dir);
    struct wds_writer *g = NULL, *w = NULL;
    struct vc_err err;
    CHECK_INT(wds_writer_open(good, WDS_COMPRESS_NONE, &g, &err), VC_OK);
    CHECK_INT(wds_writer_open(bad, WDS_COMPRESS_NONE, &w, &err), VC_OK);
    if (!g || !w)
        return;
    /* Before commit nothing is visible under the final names. */
    CHECK(!vc_fs_exists(bad));

    struct sample s;
    sample_init(&s, fx.arena);
    CHECK_INT(sample_add_field(&s, "jpg", "x", 1, &err), VC_OK);
    char name[128];

    /* 100 bytes exactly is the ustar name field's whole width. */
    memset(name, 'k', 96);
    name[96] = '\0';
    s.key = name;
    CHECK_INT(wds_writer_add(g, &s, NULL, &err), VC_OK);
    CHECK_INT(wds_writer_add(w, &s, NULL, &err), VC_OK);
    name[96] = 'k';
    name[97] = '\0';
    CHECK_INT(wds_writer_add(w, &s, NULL, &err), VC_ESAMPLE);
    CHECK_INT(err.reason, VC_REASON_field_too_long);

    s.key = "a.b";
    CHECK_INT(wds_writer_add(w, &s, NULL, &err), VC_ESAMPLE);
    CHECK_INT(err.reason, VC_REASON_field_too_long);
    const char *unsafe_keys[] = { "", "/abs", "a/b", "sp ace", "caf\xc3\xa9" };
    for (size_t i = 0; i < sizeof unsafe_keys / sizeof unsafe_keys[0]; i++) {
        s.key = unsafe_keys[i];
        CHECK_INT(wds_writer_add(w, &s, NULL, &err), VC_ESAMPLE);
        CHECK_INT(err.reason, VC_REASON_unsafe_path);
    }
    s.key = "ok";
    const char *unsafe_fields[] = { ".jpg", "a/b", "", "j pg" };
    for (size_t i = 0; i < sizeof unsafe_fields / sizeof unsafe_fields[0]; i++) {
        s.fields[0].name = unsafe_fields[i];
        CHECK_INT(wds_writer_add(w, &s, NULL, &err), VC_ESAMPLE);
        CHECK_INT(err.reason, VC_REASON_unsafe_path);
    }
    s.fields[0].name = "jpg";
    struct sample twice = s;
    struct sample_field two[2] = { s.fields[0], s.fields[0] };
    twice.fields = two;
    twice.n_fields = 2;
    CHECK_INT(wds_writer_add(w, &twice, NULL, &err), VC_ESAMPLE);
    CHECK_INT(err.reason, VC_REASON_repeated_field);
    struct sample empty;
    sample_init(&empty, fx.arena);
    empty.key = "e";
    CHECK_INT(wds_writer_add(w, &empty, NULL, &err), VC_ESAMPLE);
    CHECK_INT(err.reason, VC_REASON_missing_field);
    struct sample huge = s;
    struct sample_field hf = { .name = "bin",
                               .data = (const uint8_t *)"",
                               .size = WDS_MAX_MEMBER_BYTES + 1 };
    huge.fields = &hf;
    CHECK_INT(wds_writer_add(w, &huge, NULL, &err), VC_ESAMPLE);
    CHECK_INT(err.reason, VC_REASON_entry_too_large);

    /* A rejected sample leaves no trace: both shards end up identical. */
    uint64_t og = 0, ow = 0;
    CHECK_INT(wds_writer_add(g, &s, &og, &err), VC_OK);
    CHECK_INT(wds_writer_add(w, &s, &ow, &err), VC_OK);
    CHECK_INT(og, 1024);
    CHECK_INT(ow, 1024);
    struct wds_shard_stats sg, sw;
    CHECK_INT(wds_writer_commit(g, &sg, &err), VC_OK);
    CHECK_INT(wds_writer_commit(w, &sw, &err), VC_OK);
    CHECK_INT(sw.n_samples, 2);
    CHECK_STR(sg.sha256, sw.sha256);

    char cmd[16384], *list = NULL;
    snprintf(cmd, sizeof cmd, "tar -tf '%s'", bad);
    CHECK_INT(run(cmd, &list), 0);
    char want[256];
    memset(want, 'k', 96);
    snprintf(want + 96, sizeof want - 96, ".jpg\nok.jpg\n");
    CHECK_STR(list, want);
    free(list);
    snprintf(cmd, sizeof cmd, TARCHECK " tar '%s' > /dev/null", bad);
    CHECK_INT(run(cmd, NULL), 0);
    CHECK((int)wds_compression_from_name("lz4") == -1);
    CHECK_INT(wds_writer_open(bad, (enum wds_compression)7, &w, &err), VC_EUSAGE);
    fixture_free(&fx);
}

TEST(abort_and_empty)
{
    struct fixture fx = fixture_new();
    const char *dir = vc_test_tmpdir();
    char path[1024], tmp[1100], idx[1100];
    snprintf(path, sizeof path, "%s/s.tar", dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    snprintf(idx, sizeof idx, "%s/s.idx", dir);
    struct wds_writer *w = NULL;
    struct vc_err err;
    CHECK_INT(wds_writer_open(path, WDS_COMPRESS_ZSTD, &w, &err), VC_OK);
    struct sample s;
    char key[16];
    make_sample(&fx, 2, &s, key);
    CHECK_INT(wds_writer_add(w, &s, NULL, &err), VC_OK);
    CHECK(vc_fs_exists(tmp));
    wds_writer_abort(w);
    CHECK(!vc_fs_exists(tmp));
    CHECK(!vc_fs_exists(path));

    /* A stale index from an earlier run goes when the shard is rewritten empty. */
    vc_test_write_file(idx, "v1.2 9\n", 7);
    CHECK_INT(wds_writer_open(path, WDS_COMPRESS_NONE, &w, &err), VC_OK);
    struct wds_shard_stats st;
    CHECK_INT(wds_writer_commit(w, &st, &err), VC_OK);
    CHECK_INT(st.n_samples, 0);
    CHECK_INT(st.n_bytes, 10240);
    CHECK(!vc_fs_exists(idx));
    char cmd[16384], *list = NULL;
    snprintf(cmd, sizeof cmd, "tar -tf '%s'", path);
    CHECK_INT(run(cmd, &list), 0);
    CHECK_STR(list, "");
    free(list);
    struct wds_reader *r = NULL;
    CHECK_INT(wds_reader_open(path, NULL, &r, &err), VC_OK);
    struct sample got;
    sample_init(&got, fx.arena);
    if (r)
        CHECK_INT(wds_reader_next(r, &got, &err), VC_EOF);
    wds_reader_close(r);
    fixture_free(&fx);
}

/* ---- foreign and hostile archives --------------------------------------- */

/* Builds tars header by header, including what no honest writer emits. */
struct rawtar {
    uint8_t *buf;
    size_t len, cap;
};

static void raw_put(struct rawtar *t, const void *p, size_t n)
{
    while (t->len + n > t->cap) {
        t->cap = t->cap ? t->cap * 2 : 1 << 16;
        t->buf = realloc(t->buf, t->cap);
    }
    memcpy(t->buf + t->len, p, n);
    t->len += n;
}

/* A ustar header claiming `claimed` bytes, then `n` bytes of data padded to
 * the block. */
static void raw_member(struct rawtar *t, const char *name, char type, const char *link,
                       const void *data, size_t n, size_t claimed)
{
    uint8_t h[512] = { 0 };
    char *c = (char *)h;
    strncpy(c, name, 100);
    snprintf(c + 100, 8, "%07o", 0644);
    snprintf(c + 108, 8, "%07o", 0);
    snprintf(c + 116, 8, "%07o", 0);
    /* ustar's size field holds 11 octal digits: 8 GiB - 1 at most. */
    snprintf(c + 124, 12, "%011zo", claimed & (size_t)077777777777);
    snprintf(c + 136, 12, "%011o", 0);
    c[156] = type;
    if (link)
        strncpy(c + 157, link, 100);
    memcpy(c + 257, "ustar", 6);
    memcpy(c + 263, "00", 2);
    memset(c + 148, ' ', 8);
    unsigned sum = 0;
    for (int i = 0; i < 512; i++)
        sum += h[i];
    snprintf(c + 148, 8, "%06o", sum);
    raw_put(t, h, 512);
    raw_put(t, data, n);
    static const uint8_t zeros[512];
    raw_put(t, zeros, (512 - n % 512) % 512);
}

static void raw_file(struct rawtar *t, const char *name, const char *text)
{
    raw_member(t, name, '0', NULL, text, strlen(text), strlen(text));
}

static void raw_end(struct rawtar *t)
{
    static const uint8_t zeros[1024];
    raw_put(t, zeros, sizeof zeros);
}

struct got {
    enum vc_status st;
    enum vc_reason reason;
    char key[64], orig[64], fields[128];
};

/* Reads every sample of a memory archive into `out` (at most n); returns
 * how many calls were made, stopping after VC_EOF or the second VC_ESHARD. */
static int read_all(const struct rawtar *t, const struct wds_read_limits *lim, struct arena *arena,
                    struct got *out, int n, uint64_t *skipped)
{
    struct wds_reader *r = NULL;
    struct vc_err err;
    enum vc_status st = wds_reader_open_mem(t->buf, t->len, "mem.tar", lim, &r, &err);
    if (st != VC_OK) {
        out[0].st = st;
        out[0].reason = err.reason;
        return 1;
    }
    int i = 0, eshard = 0;
    while (i < n) {
        struct sample s;
        sample_init(&s, arena);
        struct got *g = &out[i++];
        memset(g, 0, sizeof *g);
        g->st = wds_reader_next(r, &s, &err);
        g->reason = g->st == VC_OK || g->st == VC_EOF ? VC_REASON_none : err.reason;
        if (g->st == VC_OK || g->st == VC_ESAMPLE) {
            snprintf(g->key, sizeof g->key, "%s", s.key);
            snprintf(g->orig, sizeof g->orig, "%s", s.orig_key);
            for (size_t k = 0; k < s.n_fields; k++) {
                size_t used = strlen(g->fields);
                snprintf(g->fields + used, sizeof g->fields - used, "%s%s=%.*s", k ? " " : "",
                         s.fields[k].name, (int)(s.fields[k].size > 8 ? 8 : s.fields[k].size),
                         (const char *)s.fields[k].data);
            }
        }
        arena_reset(arena);
        if (g->st == VC_EOF || (g->st == VC_ESHARD && ++eshard == 2))
            break;
    }
    if (skipped)
        *skipped = wds_reader_skipped(r);
    wds_reader_close(r);
    return i;
}

static void check_got(const struct got *g, enum vc_status st, enum vc_reason reason,
                      const char *orig, const char *fields)
{
    CHECK_INT(g->st, st);
    CHECK_INT(g->reason, reason);
    if (orig)
        CHECK_STR(g->orig, orig);
    if (fields)
        CHECK_STR(g->fields, fields);
}

/* Lists `dir` and its parent: hostile names must create nothing anywhere. */
static char *listing(const char *dir)
{
    char cmd[16384], *out = NULL;
    /* Only the names the hostile members carry: the parent folder is shared
     * with tests running in parallel, whose own files come and go. */
    snprintf(cmd, sizeof cmd,
             "ls -a '%s'; ls -a '%s/..' | grep -cE '^(evil[.](jpg|txt)|b[.]txt)$';"
             " ls -a / | grep -c abs.jpg",
             dir, dir);
    run(cmd, &out);
    return out;
}

TEST(hostile_names)
{
    const char *dir = vc_test_tmpdir();
    char *before = listing(dir);
    struct rawtar t = { 0 };
    raw_file(&t, "ok1.txt", "one");
    raw_file(&t, "../evil.jpg", "E");
    raw_file(&t, "../evil.txt", "E");
    raw_file(&t, "/abs.jpg", "A");
    raw_file(&t, "a/../../b.txt", "B");
    raw_file(&t, "ok2.txt", "two");
    raw_end(&t);
    struct arena *arena = arena_new(1 << 20);
    struct got g[10];
    uint64_t skipped = 0;
    int n = read_all(&t, NULL, arena, g, 10, &skipped);
    CHECK_INT(n, 6);
    check_got(&g[0], VC_OK, VC_REASON_none, "ok1", "txt=one");
    /* The members of one unsafe sample make one error, not two. */
    check_got(&g[1], VC_ESAMPLE, VC_REASON_unsafe_path, "../evil", "");
    CHECK_STR(g[1].key, "___evil");
    check_got(&g[2], VC_ESAMPLE, VC_REASON_unsafe_path, "/abs", "");
    check_got(&g[3], VC_ESAMPLE, VC_REASON_unsafe_path, "a/../../b", "");
    check_got(&g[4], VC_OK, VC_REASON_none, "ok2", "txt=two");
    check_got(&g[5], VC_EOF, VC_REASON_none, NULL, NULL);
    CHECK_INT(skipped, 0);
    char *after = listing(dir);
    CHECK_STR(after, before);
    free(before);
    free(after);
    free(t.buf);
    arena_free(arena);

    CHECK(wds_member_unsafe("/x.jpg"));
    CHECK(wds_member_unsafe(".."));
    CHECK(wds_member_unsafe("a/.."));
    CHECK(!wds_member_unsafe("a/..b.txt"));
    CHECK(!wds_member_unsafe("...txt"));
}

TEST(links_and_devices_are_errors_dirs_skipped)
{
    struct rawtar t = { 0 };
    raw_member(&t, "d/", '5', NULL, "", 0, 0);
    raw_member(&t, "x.jpg", '2', "/etc/passwd", "", 0, 0);
    raw_file(&t, "x.txt", "text");
    raw_member(&t, "x.json", '1', "x.txt", "", 0, 0);
    raw_member(&t, "x.dev", '3', NULL, "", 0, 0);
    raw_member(&t, "x.fifo", '6', NULL, "", 0, 0);
    raw_file(&t, "x.cls", "7");
    raw_member(&t, "y.jpg", '2', "/etc/passwd", "", 0, 0);
    raw_member(&t, "y.png", '4', NULL, "", 0, 0);
    raw_member(&t, "lonely", '6', NULL, "", 0, 0);
    raw_file(&t, "z.txt", "z");
    raw_end(&t);
    struct arena *arena = arena_new(1 << 20);
    struct got g[6];
    uint64_t skipped = 0;
    CHECK_INT(read_all(&t, NULL, arena, g, 6, &skipped), 5);
    /* Links and devices belong to their sample, which they make an error
     * (the first one named); they never end a sample. */
    check_got(&g[0], VC_ESAMPLE, VC_REASON_not_regular_file, "x", NULL);
    /* A sample made of links only still comes out, as an error. */
    check_got(&g[1], VC_ESAMPLE, VC_REASON_not_regular_file, "y", NULL);
    /* A FIFO without a key: an entry of its own. */
    check_got(&g[2], VC_ESAMPLE, VC_REASON_not_regular_file, "lonely", "");
    check_got(&g[3], VC_OK, VC_REASON_none, "z", "txt=z");
    check_got(&g[4], VC_EOF, VC_REASON_none, NULL, NULL);
    CHECK_INT(skipped, 1); /* the directory: it holds no data */
    free(t.buf);
    arena_free(arena);
}

TEST(foreign_names)
{
    struct rawtar t = { 0 };
    raw_file(&t, "./a.jpg", "J");
    raw_file(&t, "./a.TXT", "T");
    raw_file(&t, "dir/img 1.jpg", "D");
    raw_file(&t, "dir/img 1.seg.png", "S");
    raw_file(&t, "__key__", "meta");
    raw_file(&t, "README", "no extension");
    raw_file(&t, "a.jpg", "again");
    raw_file(&t, "b.JPG", "1");
    raw_file(&t, "b.jpg", "2");
    raw_file(&t, "c.txt", "c");
    raw_end(&t);
    struct arena *arena = arena_new(1 << 20);
    struct got g[10];
    uint64_t skipped = 0;
    CHECK_INT(read_all(&t, NULL, arena, g, 10, &skipped), 8);
    check_got(&g[0], VC_OK, VC_REASON_none, "a", "jpg=J txt=T");
    check_got(&g[1], VC_OK, VC_REASON_none, "dir/img 1", "jpg=D seg.png=S");
    CHECK_STR(g[1].key, "dir_img_1");
    /* Members webdataset ignores are entries of their own, after the
     * sample they were met in. */
    check_got(&g[2], VC_ESAMPLE, VC_REASON_bad_member_name, "__key__", "");
    check_got(&g[3], VC_ESAMPLE, VC_REASON_bad_member_name, "README", "");
    /* The same key again, not adjacent: a sample of its own. */
    check_got(&g[4], VC_OK, VC_REASON_none, "a", "jpg=again");
    /* Extensions are lower-cased as webdataset does, so this is "jpg" twice. */
    check_got(&g[5], VC_ESAMPLE, VC_REASON_repeated_field, "b", NULL);
    check_got(&g[6], VC_OK, VC_REASON_none, "c", "txt=c");
    check_got(&g[7], VC_EOF, VC_REASON_none, NULL, NULL);
    CHECK_INT(skipped, 0);
    free(t.buf);
    arena_free(arena);

    struct wds_member_name m;
    CHECK(wds_member_split("x/y.z/k.a.b", &m));
    CHECK_INT(m.key_len, 7);
    CHECK_STR(m.ext, "a.b");
    CHECK(!wds_member_split("dir.x/abc", &m));
    CHECK(!wds_member_split("d/.hidden", &m));
    CHECK(!wds_member_split("trailing.", &m));
}

TEST(gnu_tar_of_a_folder)
{
    /* An ordinary tar made by GNU tar from files on disk: no __key__, a
     * directory entry, names with folders. */
    const char *dir = vc_test_tmpdir();
    char cmd[16384];
    snprintf(cmd, sizeof cmd,
             "cd '%s' && mkdir -p data && printf J > data/img1.jpg && printf T > data/img1.txt "
             "&& printf K > data/img2.jpg && tar --sort=name -cf plain.tar data",
             dir);
    CHECK_INT(run(cmd, NULL), 0);
    char path[1024];
    snprintf(path, sizeof path, "%s/plain.tar", dir);
    struct wds_reader *r = NULL;
    struct vc_err err;
    CHECK_INT(wds_reader_open(path, NULL, &r, &err), VC_OK);
    if (!r)
        return;
    struct arena *arena = arena_new(1 << 20);
    struct sample s;
    sample_init(&s, arena);
    CHECK_INT(wds_reader_next(r, &s, &err), VC_OK);
    CHECK_STR(s.orig_key, "data/img1");
    CHECK_STR(s.key, "data_img1");
    CHECK_INT(s.n_fields, 2);
    CHECK(sample_field_get(&s, "jpg") && sample_field_get(&s, "txt"));
    arena_reset(arena);
    sample_init(&s, arena);
    CHECK_INT(wds_reader_next(r, &s, &err), VC_OK);
    CHECK_STR(s.orig_key, "data/img2");
    CHECK_INT(s.src_index, 1);
    sample_init(&s, arena);
    CHECK_INT(wds_reader_next(r, &s, &err), VC_EOF);
    CHECK_INT(wds_reader_skipped(r), 1);
    wds_reader_close(r);
    arena_free(arena);
}

TEST(truncated_archives)
{
    struct rawtar t = { 0 };
    uint8_t big[3000];
    fill_bytes(big, sizeof big, 3);
    raw_file(&t, "a.txt", "first");
    raw_member(&t, "b.txt", '0', NULL, "ok", 2, 2);
    size_t b_end = t.len;
    raw_member(&t, "b.bin", '0', NULL, big, sizeof big, sizeof big);
    raw_file(&t, "c.txt", "last");
    raw_end(&t);
    struct arena *arena = arena_new(1 << 20);
    struct got g[6];

    /* Cut in the middle of b.bin's data. */
    struct rawtar cut = { t.buf, b_end + 512 + 1000, t.cap };
    CHECK_INT(read_all(&cut, NULL, arena, g, 6, NULL), 4);
    check_got(&g[0], VC_OK, VC_REASON_none, "a", "txt=first");
    /* The sample that was being assembled is reported first... */
    check_got(&g[1], VC_ESAMPLE, VC_REASON_corrupt_archive, "b", NULL);
    /* ...then the shard is over, and stays over. */
    check_got(&g[2], VC_ESHARD, VC_REASON_corrupt_archive, NULL, NULL);
    check_got(&g[3], VC_ESHARD, VC_REASON_corrupt_archive, NULL, NULL);

    /* Cut in the middle of a header, right after a complete sample. */
    struct rawtar cut2 = { t.buf, 1024 + 100, t.cap };
    CHECK_INT(read_all(&cut2, NULL, arena, g, 6, NULL), 3);
    check_got(&g[0], VC_ESAMPLE, VC_REASON_corrupt_archive, "a", "txt=first");
    check_got(&g[1], VC_ESHARD, VC_REASON_corrupt_archive, NULL, NULL);

    /* A header checksum broken in the middle of the archive. */
    struct rawtar bad = { malloc(t.len), t.len, t.len };
    memcpy(bad.buf, t.buf, t.len);
    bad.buf[b_end + 150] ^= 0x55;
    CHECK_INT(read_all(&bad, NULL, arena, g, 6, NULL), 4);
    check_got(&g[0], VC_OK, VC_REASON_none, "a", NULL);
    check_got(&g[1], VC_ESAMPLE, VC_REASON_corrupt_archive, "b", "txt=ok");
    check_got(&g[2], VC_ESHARD, VC_REASON_corrupt_archive, NULL, NULL);
    free(bad.buf);

    /* A header claiming far more bytes than the file holds. */
    struct rawtar liar = { 0 };
    raw_member(&liar, "x.bin", '0', NULL, "tiny", 4, (size_t)1 << 30);
    CHECK_INT(read_all(&liar, NULL, arena, g, 6, NULL), 3);
    check_got(&g[0], VC_ESAMPLE, VC_REASON_corrupt_archive, "x", "");
    check_got(&g[1], VC_ESHARD, VC_REASON_corrupt_archive, NULL, NULL);
    free(liar.buf);
    free(t.buf);
    arena_free(arena);
}

TEST(truncated_compressed)
{
    struct fixture fx = fixture_new();
    const char *dir = vc_test_tmpdir();
    for (int c = WDS_COMPRESS_GZIP; c <= WDS_COMPRESS_ZSTD; c++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/s%s", dir, wds_compression_suffix((enum wds_compression)c));
        write_shard(&fx, path, (enum wds_compression)c, NULL);
        size_t n = 0;
        unsigned char *data = vc_test_read_file(path, &n);
        /* Cut inside sample 7's 3 MiB of incompressible bytes. */
        struct rawtar cut = { data, n - 200000, n };
        struct got g[12];
        int calls = read_all(&cut, NULL, fx.arena, g, 12, NULL);
        CHECK_INT(calls, N_SAMPLES + 2);
        for (int i = 0; i < N_SAMPLES - 1; i++)
            CHECK_INT(g[i].st, VC_OK);
        check_got(&g[N_SAMPLES - 1], VC_ESAMPLE, VC_REASON_corrupt_archive, "s0007", NULL);
        check_got(&g[N_SAMPLES], VC_ESHARD, VC_REASON_corrupt_archive, NULL, NULL);
        /* Cut before the first tar header is whole, or the stream's magic
         * followed by garbage: the same corruption met while opening is a
         * corrupt shard too, never an I/O error (which a run leaves
         * uncommitted and retries on every rerun, for ever). */
        struct rawtar head = { data, 100, n };
        CHECK_INT(read_all(&head, NULL, fx.arena, g, 12, NULL), 1);
        check_got(&g[0], VC_ESHARD, VC_REASON_corrupt_archive, NULL, NULL);
        uint8_t junk[3000];
        fill_bytes(junk, sizeof junk, 9);
        memcpy(junk, data, 4);
        struct rawtar garbled = { junk, sizeof junk, sizeof junk };
        CHECK_INT(read_all(&garbled, NULL, fx.arena, g, 12, NULL), 1);
        check_got(&g[0], VC_ESHARD, VC_REASON_corrupt_archive, NULL, NULL);
        free(data);
    }
    fixture_free(&fx);
    /* A shard that cannot be read at all is the I/O error. */
    char gone[4200];
    snprintf(gone, sizeof gone, "%s/no-such-shard.tar.gz", dir);
    struct wds_reader *r = NULL;
    struct vc_err err = { 0 };
    CHECK_INT(wds_reader_open(gone, NULL, &r, &err), VC_ESHARD);
    CHECK_INT(err.reason, VC_REASON_io_error);
    CHECK(strstr(err.msg, "no-such-shard.tar.gz") != NULL);
}

TEST(limits)
{
    struct rawtar t = { 0 };
    uint8_t big[5000];
    fill_bytes(big, sizeof big, 5);
    raw_file(&t, "a.txt", "small");
    raw_member(&t, "b.bin", '0', NULL, big, sizeof big, sizeof big);
    raw_file(&t, "b.txt", "after the big one");
    raw_file(&t, "c.txt", "c");
    for (int i = 0; i < 5; i++) {
        char name[16];
        snprintf(name, sizeof name, "d.f%d", i);
        raw_file(&t, name, "x");
    }
    raw_file(&t, "e.txt", "e");
    raw_end(&t);
    struct arena *arena = arena_new(1 << 20);
    struct got g[8];
    struct wds_read_limits lim = { .max_entry_bytes = 4096, .max_fields = 4 };
    CHECK_INT(read_all(&t, &lim, arena, g, 8, NULL), 6);
    check_got(&g[0], VC_OK, VC_REASON_none, "a", "txt=small");
    /* Too big: skipped unread, the rest of its sample skipped with it. */
    check_got(&g[1], VC_ESAMPLE, VC_REASON_entry_too_large, "b", "");
    check_got(&g[2], VC_OK, VC_REASON_none, "c", "txt=c");
    check_got(&g[3], VC_ESAMPLE, VC_REASON_too_many_fields, "d", NULL);
    check_got(&g[4], VC_OK, VC_REASON_none, "e", "txt=e");
    check_got(&g[5], VC_EOF, VC_REASON_none, NULL, NULL);
    arena_free(arena);

    /* The arena cap bounds a sample even under the entry limit. */
    struct arena *tiny = arena_new(2048);
    CHECK_INT(read_all(&t, NULL, tiny, g, 8, NULL), 6);
    check_got(&g[0], VC_OK, VC_REASON_none, "a", "txt=small");
    check_got(&g[1], VC_ESAMPLE, VC_REASON_mem_cap, "b", "");
    check_got(&g[2], VC_OK, VC_REASON_none, "c", "txt=c");
    arena_free(tiny);
    free(t.buf);
}

TEST(not_archives)
{
    const char *dir = vc_test_tmpdir();
    struct vc_err err;
    struct wds_reader *r = NULL;
    char path[1024];
    uint8_t junk[5000];
    fill_bytes(junk, sizeof junk, 11);
    snprintf(path, sizeof path, "%s/junk.tar", dir);
    vc_test_write_file(path, junk, sizeof junk);
    CHECK_INT(wds_reader_open(path, NULL, &r, &err), VC_ESHARD);
    CHECK_INT(err.reason, VC_REASON_corrupt_archive);
    CHECK(r == NULL);
    snprintf(path, sizeof path, "%s/empty.tar", dir);
    vc_test_write_file(path, "", 0);
    CHECK_INT(wds_reader_open(path, NULL, &r, &err), VC_ESHARD);
    CHECK_INT(err.reason, VC_REASON_corrupt_archive);
    /* Said as it is, not libarchive's "Unrecognized archive format". */
    CHECK(strstr(err.msg, "empty.tar': an empty file (0 bytes)") != NULL);
    snprintf(path, sizeof path, "%s/missing.tar", dir);
    CHECK_INT(wds_reader_open(path, NULL, &r, &err), VC_ESHARD);
    CHECK_INT(err.reason, VC_REASON_io_error);
    /* Gzip around garbage is still garbage. */
    char cmd[16384];
    snprintf(cmd, sizeof cmd, "head -c 3000 /dev/urandom | gzip > '%s/junk.tar.gz'", dir);
    CHECK_INT(run(cmd, NULL), 0);
    snprintf(path, sizeof path, "%s/junk.tar.gz", dir);
    CHECK_INT(wds_reader_open(path, NULL, &r, &err), VC_ESHARD);
    CHECK_INT(err.reason, VC_REASON_corrupt_archive);
    /* Only zero blocks: a valid, empty tar. */
    static const uint8_t zeros[10240];
    CHECK_INT(wds_reader_open_mem(zeros, sizeof zeros, "zeros", NULL, &r, &err), VC_OK);
    struct arena *arena = arena_new(4096);
    struct sample s;
    sample_init(&s, arena);
    if (r)
        CHECK_INT(wds_reader_next(r, &s, &err), VC_EOF);
    wds_reader_close(r);
    arena_free(arena);
}

/* ---- inspect ------------------------------------------------------------ */

static enum vc_status inspect_to(const char *path, bool verbose, char **text, struct vc_err *err)
{
    char out[1100];
    snprintf(out, sizeof out, "%s.inspect", path);
    FILE *f = fopen(out, "w");
    enum vc_status st = wds_inspect(path, f, verbose, err);
    fclose(f);
    size_t n = 0;
    *text = (char *)vc_test_read_file(out, &n);
    *text = realloc(*text, n + 1);
    (*text)[n] = '\0';
    return st;
}

TEST(inspect_valid)
{
    const char *dir = vc_test_tmpdir();
    char path[1024], png[1100], cmd[16384];
    snprintf(path, sizeof path, "%s/s.tar", dir);
    snprintf(png, sizeof png, "%s/p.png", dir);
    snprintf(cmd, sizeof cmd, TARCHECK " png 7 5 '%s'", png);
    CHECK_INT(run(cmd, NULL), 0);
    size_t png_n = 0;
    unsigned char *png_bytes = vc_test_read_file(png, &png_n);
    struct arena *arena = arena_new(1 << 20);
    struct wds_writer *w = NULL;
    struct vc_err err;
    CHECK_INT(wds_writer_open(path, WDS_COMPRESS_NONE, &w, &err), VC_OK);
    struct sample s;
    sample_init(&s, arena);
    s.key = "k0";
    CHECK_INT(sample_add_field(&s, "png", png_bytes, png_n, &err), VC_OK);
    CHECK_INT(sample_add_field(&s, "txt", "hello", 5, &err), VC_OK);
    CHECK_INT(wds_writer_add(w, &s, NULL, &err), VC_OK);
    sample_init(&s, arena);
    s.key = "k1";
    CHECK_INT(sample_add_field(&s, "json", "{}", 2, &err), VC_OK);
    CHECK_INT(sample_add_field(&s, "0.png", "notapng", 7, &err), VC_OK);
    CHECK_INT(wds_writer_add(w, &s, NULL, &err), VC_OK);
    CHECK_INT(wds_writer_commit(w, NULL, &err), VC_OK);

    char *text = NULL;
    CHECK_INT(inspect_to(path, false, &text, &err), VC_OK);
    char want[8192];
    snprintf(want, sizeof want,
             "shard: %s\n"
             "k0 png:%zu (png 7x5) txt:5\n"
             "k1 json:2 0.png:7 (bad image: unsupported_format)\n"
             "verdict: ok: 2 samples, 4 members, %zu bytes of member data, 0 problems\n",
             path, png_n, png_n + 5 + 2 + 7);
    CHECK_STR(text, want);
    free(text);

    CHECK_INT(inspect_to(path, true, &text, &err), VC_OK);
    snprintf(want, sizeof want,
             "shard: %s\n"
             "  member @0 ustar k0.png %zu\n"
             "  member @%zu ustar k0.txt 5\n"
             "k0 png:%zu (png 7x5) txt:5\n",
             path, png_n, 512 + (png_n + 511) / 512 * 512, png_n);
    CHECK(strncmp(text, want, strlen(want)) == 0);
    free(text);
    free(png_bytes);
    arena_free(arena);
}

TEST(inspect_problems)
{
    const char *dir = vc_test_tmpdir();
    char path[1024];
    snprintf(path, sizeof path, "%s/bad.tar", dir);
    struct rawtar t = { 0 };
    raw_file(&t, "a.txt", "1");
    raw_file(&t, "a.jpg", "2");
    raw_file(&t, "v1.2/b.txt", "dotted key");        /* 1: dot in the key */
    raw_member(&t, "l.jpg", '2', "a.txt", "", 0, 0); /* 2: symlink */
    raw_file(&t, "a.json", "again");                 /* 3: key twice */
    raw_file(&t, "c.txt", "1");
    raw_file(&t, "c.TXT", "2");     /* 4: extension twice */
    raw_file(&t, "../up.txt", "u"); /* 5: unsafe */
    raw_file(&t, "noext", "n");     /* 6: no extension */
    raw_end(&t);
    vc_test_write_file(path, t.buf, t.len);
    free(t.buf);
    char *text = NULL;
    struct vc_err err;
    CHECK_INT(inspect_to(path, false, &text, &err), VC_ESHARD);
    CHECK_INT(err.reason, VC_REASON_unsupported_format);
    CHECK(strstr(text, "problem: key 'v1.2/b' contains a dot\n") != NULL);
    CHECK(strstr(text, "problem: member 'l.jpg' is not a regular file\n") != NULL);
    CHECK(strstr(text, "problem: key 'a' appears again at member 'a.json'") != NULL);
    CHECK(strstr(text, "problem: sample 'c' has extension 'txt' twice\n") != NULL);
    CHECK(strstr(text, "problem: member name '../up.txt' is absolute") != NULL);
    CHECK(strstr(text, "problem: member 'noext' has no key and extension") != NULL);
    CHECK(strstr(text, "verdict: invalid: 5 samples, 9 members, 20 bytes of member data, "
                       "6 problems\n") != NULL);
    free(text);

    /* pax and GNU long names, as Python writes them. */
    char cmd[16384];
    snprintf(cmd, sizeof cmd,
             "cd '%s' && /usr/bin/python3 -c \"\nimport tarfile, io\n"
             "for fmt, out in ((tarfile.PAX_FORMAT, 'pax.tar'), (tarfile.GNU_FORMAT, 'gnu.tar')):\n"
             "    with tarfile.open(out, 'w', format=fmt) as t:\n"
             "        i = tarfile.TarInfo('k' * 120 + '.txt'); i.size = 1\n"
             "        t.addfile(i, io.BytesIO(b'x'))\n\"",
             dir);
    CHECK_INT(run(cmd, NULL), 0);
    const char *kinds[] = { "pax", "gnu" };
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s/%s.tar", dir, kinds[i]);
        CHECK_INT(inspect_to(path, false, &text, &err), VC_ESHARD);
        char want[128];
        snprintf(want, sizeof want, "has a %s header, not plain ustar", kinds[i]);
        CHECK(strstr(text, want) != NULL);
        CHECK(strstr(text, "is over 100 bytes") != NULL);
        CHECK(strstr(text, "verdict: invalid: 1 samples, 1 members, 1 bytes of member data, 2 "
                           "problems\n") != NULL);
        free(text);
        /* Our reader takes them all the same. */
        struct wds_reader *r = NULL;
        CHECK_INT(wds_reader_open(path, NULL, &r, &err), VC_OK);
        struct arena *arena = arena_new(4096);
        struct sample s;
        sample_init(&s, arena);
        if (r)
            CHECK_INT(wds_reader_next(r, &s, &err), VC_OK);
        CHECK_INT(strlen(s.orig_key), 120);
        wds_reader_close(r);
        arena_free(arena);
    }

    snprintf(path, sizeof path, "%s/junk.tar", dir);
    vc_test_write_file(path, "this is not a tar file at all", 29);
    CHECK_INT(inspect_to(path, false, &text, &err), VC_ESHARD);
    CHECK_INT(err.reason, VC_REASON_corrupt_archive);
    CHECK(strstr(text, "verdict: invalid: 0 samples") != NULL);
    free(text);
}

#define TESTS(X)                                                                                   \
    X(roundtrip_reader)                                                                            \
    X(gnu_tar_reads)                                                                               \
    X(python_tarfile_reads)                                                                        \
    X(gzip_shard)                                                                                  \
    X(zstd_shard)                                                                                  \
    X(deterministic_bytes)                                                                         \
    X(dali_index)                                                                                  \
    X(wids_index)                                                                                  \
    X(writer_rejects)                                                                              \
    X(abort_and_empty)                                                                             \
    X(hostile_names)                                                                               \
    X(links_and_devices_are_errors_dirs_skipped)                                                   \
    X(foreign_names)                                                                               \
    X(gnu_tar_of_a_folder)                                                                         \
    X(truncated_archives)                                                                          \
    X(truncated_compressed)                                                                        \
    X(limits)                                                                                      \
    X(not_archives)                                                                                \
    X(inspect_valid)                                                                               \
    X(inspect_problems)
TEST_MAIN(TESTS)
