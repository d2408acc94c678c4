/* idf2_tokenizer: tokenizer.json loading, BPE encode, Rust-tokenizers decode.
 *
 * Owns: the id -> piece tables, the piece -> id and merge-pair hash maps,
 * the added-token list and the post-processor's special ids.  It never
 * reads tokenizer_config.json (idf2_config does; the engine passes the
 * result to idf2_tokenizer_set_specials) and never sees the model.
 *
 * Every quirk below that looks arbitrary is there because Rust
 * `tokenizers` (what transformers runs) does the same; the comments say
 * which of its behaviours is being reproduced. */
#include "synth/idf2_tokenizer.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/vc_buf.h"
#include "core/vc_fs.h"
#include "core/vc_mem.h"
#include "core/vc_utf8.h"

/* Added tokens are matched by a scan at every text position; 65536 is ten
 * times what any published tokenizer declares. */
#define TOK_MAX_ADDED 65536
/* Post-processor specials around $A; real templates have one or two. */
#define TOK_MAX_TEMPLATE 8

#define METASPACE     "\xE2\x96\x81" /* U+2581 "▁" */
#define METASPACE_LEN 3

enum { TOK_PRESENT = 1, TOK_ADDED = 2, TOK_SPECIAL = 4 };

struct tok_merge {
    int32_t a, b; /* pair of ids; a == -1 marks an empty slot */
    int32_t rank, id;
};

/* tokenizers' AddedToken options (its AddedVocabulary::find_matches). */
enum { TOK_LSTRIP = 1, TOK_RSTRIP = 2, TOK_SINGLE_WORD = 4 };

struct tok_added {
    const char *s; /* what is matched: the content, or its normalized form */
    uint32_t len;
    int32_t id;
    uint8_t opts; /* TOK_LSTRIP ... */
};

/* Added tokens sorted by first byte, then longest first; v[first[c] ..
 * first[c+1]) start with byte c. */
struct tok_matcher {
    struct tok_added *v;
    size_t n;
    uint32_t first[257];
};

/* Where the "▁" before a text piece comes from.  The legacy layout's
 * normalizer prepends it to every piece between added tokens; the Metaspace
 * pre-tokenizer (newer files, transformers' legacy=False) prepends it only
 * when the piece does not already start with one, and with prepend_scheme
 * "first" only to the piece that starts the text. */
enum tok_prefix {
    TOK_PREFIX_NEVER,
    TOK_PREFIX_NORMALIZER, /* legacy: Prepend("▁") normalizer */
    TOK_PREFIX_ALWAYS,     /* Metaspace prepend_scheme "always" */
    TOK_PREFIX_FIRST,      /* Metaspace prepend_scheme "first" */
};

struct idf2_tokenizer {
    int32_t n_ids;
    const char **model_piece; /* [n_ids]: the BPE vocab string, NULL if none */
    uint32_t *model_len;
    const char **piece; /* [n_ids]: what decode emits (added content first) */
    uint32_t *piece_len;
    uint8_t *flags; /* [n_ids] TOK_* */
    char *pool;     /* every string above points in here */

    int32_t *vocab_tab; /* open addressing over model pieces; -1 = empty */
    size_t vocab_mask;
    struct tok_merge *merge_tab;
    size_t merge_mask;

    /* Matched on the raw text first, then (normalized: true) on each
     * normalized piece between those, as tokenizers' two tries are. */
    struct tok_matcher added, norm_added;

    /* The pre-tokenization: a Metaspace pre-tokenizer (normalizer null)
     * rather than the legacy normalizer, which "▁" prefix, and whether
     * Metaspace splits the piece into words before each "▁". */
    bool metaspace, meta_split;
    uint8_t prefix_mode; /* enum tok_prefix */
    /* The decoder: Sequence[Replace, ByteFallback, Fuse, Strip?] (strip:
     * one leading space of the text), or a lone Metaspace decoder (no byte
     * fallback; the first token loses its "▁"s unless prepend_scheme is
     * "never"). */
    bool dec_metaspace, dec_strip, dec_drop_first;

    int32_t byte_id[256]; /* <0xXX> pieces; -1 when absent */
    int32_t unk_id;       /* -1 when the model has none */
    bool byte_fallback, fuse_unk, ignore_merges;

    int32_t prefix[TOK_MAX_TEMPLATE], suffix[TOK_MAX_TEMPLATE];
    int n_prefix, n_suffix;
    bool clean_up; /* transformers' clean_up_tokenization after decoding */
};

/* ---------------------------------------------------------------- hashing */

static uint64_t hash_bytes(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    return h;
}

static uint64_t hash_pair(int32_t a, int32_t b)
{
    uint64_t h = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    h ^= h >> 33; /* murmur3 finalizer: ids are small and dense */
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return h;
}

static size_t table_size_for(size_t n)
{
    size_t cap = 16;
    while (cap < 2 * n + 1)
        cap <<= 1;
    return cap;
}

static int32_t vocab_get(const struct idf2_tokenizer *t, const char *s, size_t n)
{
    for (size_t i = hash_bytes(s, n) & t->vocab_mask;; i = (i + 1) & t->vocab_mask) {
        int32_t id = t->vocab_tab[i];
        if (id < 0)
            return -1;
        if (t->model_len[id] == n && memcmp(t->model_piece[id], s, n) == 0)
            return id;
    }
}

/* Returns false when the piece is already present (duplicate key). */
static bool vocab_put(struct idf2_tokenizer *t, int32_t id)
{
    const char *s = t->model_piece[id];
    size_t n = t->model_len[id];
    size_t i = hash_bytes(s, n) & t->vocab_mask;
    for (; t->vocab_tab[i] >= 0; i = (i + 1) & t->vocab_mask) {
        int32_t o = t->vocab_tab[i];
        if (t->model_len[o] == n && memcmp(t->model_piece[o], s, n) == 0)
            return false;
    }
    t->vocab_tab[i] = id;
    return true;
}

static const struct tok_merge *merge_get(const struct idf2_tokenizer *t, int32_t a, int32_t b)
{
    if (!t->merge_tab)
        return NULL;
    for (size_t i = hash_pair(a, b) & t->merge_mask;; i = (i + 1) & t->merge_mask) {
        const struct tok_merge *m = &t->merge_tab[i];
        if (m->a < 0)
            return NULL;
        if (m->a == a && m->b == b)
            return m;
    }
}

/* A repeated pair overwrites the earlier rank, as Rust's HashMap collect
 * does. */
static void merge_put(struct idf2_tokenizer *t, int32_t a, int32_t b, int32_t rank, int32_t id)
{
    size_t i = hash_pair(a, b) & t->merge_mask;
    while (t->merge_tab[i].a >= 0 && !(t->merge_tab[i].a == a && t->merge_tab[i].b == b))
        i = (i + 1) & t->merge_mask;
    t->merge_tab[i] = (struct tok_merge){ a, b, rank, id };
}

/* ------------------------------------------------------------------ UTF-8 */

/* --------------------------------------------------------- growable arrays */

struct id_vec {
    int32_t *v;
    size_t n, cap;
};

static bool id_vec_push(struct id_vec *a, int32_t id)
{
    int32_t *v = vc_grow_array(a->v, &a->cap, a->n + 1, sizeof *v, 64);
    if (!v)
        return false;
    a->v = v;
    a->v[a->n++] = id;
    return true;
}

/* --------------------------------------------------------------- loading */

static enum vc_status bad(struct vc_err *err, const char *label, const char *what)
{
    return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_tokenizer, "%s: %s", label, what);
}

static bool json_str_is(const cJSON *obj, const char *key, const char *want)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(v) && strcmp(v->valuestring, want) == 0;
}

static bool json_null_or_absent(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return !v || cJSON_IsNull(v);
}

static bool json_flag(const cJSON *obj, const char *key)
{
    return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(obj, key));
}

/* {"type": "Replace", "pattern": {"String": from}, "content": to} */
static bool is_replace(const cJSON *n, const char *from, const char *to)
{
    return json_str_is(n, "type", "Replace") &&
           json_str_is(cJSON_GetObjectItemCaseSensitive(n, "pattern"), "String", from) &&
           json_str_is(n, "content", to);
}

/* The legacy normalizer: Sequence[Prepend("▁")?, Replace(" ", "▁")] (the
 * Prepend is left out when the converter ran with add_prefix_space false). */
static bool parse_normalizer(struct idf2_tokenizer *t, const cJSON *n)
{
    const cJSON *seq = cJSON_GetObjectItemCaseSensitive(n, "normalizers");
    int len = cJSON_GetArraySize(seq);
    if (!json_str_is(n, "type", "Sequence") || len < 1 || len > 2)
        return false;
    const cJSON *pre = cJSON_GetArrayItem(seq, 0);
    if (len == 2 &&
        !(json_str_is(pre, "type", "Prepend") && json_str_is(pre, "prepend", METASPACE)))
        return false;
    t->prefix_mode = len == 2 ? TOK_PREFIX_NORMALIZER : TOK_PREFIX_NEVER;
    return is_replace(cJSON_GetArrayItem(seq, len - 1), " ", METASPACE);
}

/* A Metaspace pre-tokenizer or decoder's prepend scheme: "prepend_scheme"
 * (tokenizers 0.19+) or the older "add_prefix_space" boolean, which
 * tokenizers reads as "always" / "never".  -1 when neither is valid. */
static int metaspace_scheme(const cJSON *m)
{
    if (!json_str_is(m, "type", "Metaspace") || !json_str_is(m, "replacement", METASPACE))
        return -1;
    const cJSON *scheme = cJSON_GetObjectItemCaseSensitive(m, "prepend_scheme");
    const cJSON *aps = cJSON_GetObjectItemCaseSensitive(m, "add_prefix_space");
    if (!scheme)
        return cJSON_IsBool(aps) ? (cJSON_IsTrue(aps) ? TOK_PREFIX_ALWAYS : TOK_PREFIX_NEVER) : -1;
    if (json_str_is(m, "prepend_scheme", "always"))
        return TOK_PREFIX_ALWAYS;
    if (json_str_is(m, "prepend_scheme", "first"))
        return TOK_PREFIX_FIRST;
    return json_str_is(m, "prepend_scheme", "never") ? TOK_PREFIX_NEVER : -1;
}

/* Metaspace pre-tokenizer; "split" is absent in files older than 0.19,
 * which always split. */
static bool parse_pre_tokenizer(struct idf2_tokenizer *t, const cJSON *p)
{
    int scheme = metaspace_scheme(p);
    const cJSON *split = cJSON_GetObjectItemCaseSensitive(p, "split");
    if (scheme < 0 || (split && !cJSON_IsBool(split)))
        return false;
    t->metaspace = true;
    t->prefix_mode = (uint8_t)scheme;
    t->meta_split = !split || cJSON_IsTrue(split);
    return true;
}

static bool parse_decoder(struct idf2_tokenizer *t, const cJSON *d)
{
    int scheme = metaspace_scheme(d);
    if (scheme >= 0) {
        t->dec_metaspace = true;
        t->dec_drop_first = scheme != TOK_PREFIX_NEVER;
        return true;
    }
    const cJSON *seq = cJSON_GetObjectItemCaseSensitive(d, "decoders");
    int len = cJSON_GetArraySize(seq);
    if (!json_str_is(d, "type", "Sequence") || len < 3 || len > 4)
        return false;
    if (len == 4) {
        const cJSON *strip = cJSON_GetArrayItem(seq, 3);
        const cJSON *start = cJSON_GetObjectItemCaseSensitive(strip, "start");
        const cJSON *stop = cJSON_GetObjectItemCaseSensitive(strip, "stop");
        if (!json_str_is(strip, "type", "Strip") || !json_str_is(strip, "content", " ") ||
            !cJSON_IsNumber(start) || start->valuedouble != 1 || !cJSON_IsNumber(stop) ||
            stop->valuedouble != 0)
            return false;
        t->dec_strip = true;
    }
    return is_replace(cJSON_GetArrayItem(seq, 0), METASPACE, " ") &&
           json_str_is(cJSON_GetArrayItem(seq, 1), "type", "ByteFallback") &&
           json_str_is(cJSON_GetArrayItem(seq, 2), "type", "Fuse");
}

/* text[0, len) with every space as "▁", after a "▁" when prefix; out
 * holds 3 * len + 3 bytes.  Returns the bytes written. */
static size_t to_metaspace(const char *text, size_t len, bool prefix, char *out)
{
    size_t o = 0;
    if (prefix) {
        memcpy(out, METASPACE, METASPACE_LEN);
        o = METASPACE_LEN;
    }
    for (size_t i = 0; i < len; i++) {
        if (text[i] == ' ') {
            memcpy(out + o, METASPACE, METASPACE_LEN);
            o += METASPACE_LEN;
        } else {
            out[o++] = text[i];
        }
    }
    return o;
}

/* The normalizer's output for a non-empty text: the legacy layout's
 * (Prepend when present, Replace); the Metaspace layout has none. */
static size_t normalize(const struct idf2_tokenizer *t, const char *text, size_t len, char *out)
{
    if (!t->metaspace)
        return to_metaspace(text, len, t->prefix_mode == TOK_PREFIX_NORMALIZER, out);
    memcpy(out, text, len);
    return len;
}

/* A JSON number that is an integer id in [0, IDF2_TOK_MAX_ID). */
static int32_t json_id(const cJSON *v)
{
    if (!cJSON_IsNumber(v))
        return -1;
    double d = v->valuedouble;
    if (!(d >= 0 && d < IDF2_TOK_MAX_ID) || d != (double)(int32_t)d)
        return -1;
    return (int32_t)d;
}

/* Copies every string the tables point at into one pool, so freeing is one
 * call and nothing dangles into the cJSON tree. */
struct pool_cursor {
    char *at;
};

static const char *pool_put(struct pool_cursor *c, const char *s, size_t n)
{
    char *p = c->at;
    memcpy(p, s, n);
    p[n] = '\0';
    c->at += n + 1;
    return p;
}

static int cmp_added(const void *pa, const void *pb)
{
    const struct tok_added *a = pa, *b = pb;
    unsigned char ca = (unsigned char)a->s[0], cb = (unsigned char)b->s[0];
    if (ca != cb)
        return ca < cb ? -1 : 1;
    if (a->len != b->len)
        return a->len > b->len ? -1 : 1; /* longest first: leftmost-longest */
    int c = memcmp(a->s, b->s, a->len);  /* equal contents end up adjacent */
    return c ? c : (a->id > b->id) - (a->id < b->id);
}

/* Sorts m and indexes it by first byte.  False when two tokens share the
 * same pattern: the scan would only ever see one of them, so the file is
 * ambiguous. */
static bool matcher_index(struct tok_matcher *m)
{
    qsort(m->v, m->n, sizeof *m->v, cmp_added);
    for (size_t i = 0, c = 0; c <= 256; c++) {
        while (i < m->n && (unsigned char)m->v[i].s[0] < c)
            i++;
        m->first[c] = (uint32_t)i;
    }
    for (size_t i = 1; i < m->n; i++)
        if (m->v[i].len == m->v[i - 1].len && memcmp(m->v[i].s, m->v[i - 1].s, m->v[i].len) == 0)
            return false;
    return true;
}

static enum vc_status parse_template(struct idf2_tokenizer *t, const cJSON *pp, const char *label,
                                     struct vc_err *err)
{
    if (!pp || cJSON_IsNull(pp))
        return VC_OK;
    if (!json_str_is(pp, "type", "TemplateProcessing"))
        return bad(err, label, "post_processor: only TemplateProcessing is supported");
    const cJSON *single = cJSON_GetObjectItemCaseSensitive(pp, "single");
    const cJSON *specials = cJSON_GetObjectItemCaseSensitive(pp, "special_tokens");
    if (!cJSON_IsArray(single))
        return bad(err, label, "post_processor: \"single\" is not a list");
    bool seen_seq = false;
    const cJSON *item;
    cJSON_ArrayForEach(item, single)
    {
        const cJSON *seq = cJSON_GetObjectItemCaseSensitive(item, "Sequence");
        const cJSON *sp = cJSON_GetObjectItemCaseSensitive(item, "SpecialToken");
        if (seq) {
            if (seen_seq || !json_str_is(seq, "id", "A"))
                return bad(err, label, "post_processor: \"single\" must hold $A exactly once");
            seen_seq = true;
            continue;
        }
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(sp, "id");
        if (!cJSON_IsString(name))
            return bad(err, label, "post_processor: unknown item in \"single\"");
        const cJSON *def = cJSON_GetObjectItemCaseSensitive(specials, name->valuestring);
        const cJSON *ids = cJSON_GetObjectItemCaseSensitive(def, "ids");
        if (!cJSON_IsArray(ids))
            return bad(err, label, "post_processor: special token without ids");
        const cJSON *idv;
        cJSON_ArrayForEach(idv, ids)
        {
            int32_t id = json_id(idv);
            int *n = seen_seq ? &t->n_suffix : &t->n_prefix;
            if (id < 0 || id >= t->n_ids || !(t->flags[id] & TOK_PRESENT))
                return bad(err, label, "post_processor: special token id not in the vocab");
            if (*n == TOK_MAX_TEMPLATE)
                return bad(err, label, "post_processor: too many special tokens");
            (seen_seq ? t->suffix : t->prefix)[(*n)++] = id;
        }
    }
    if (!seen_seq)
        return bad(err, label, "post_processor: \"single\" lacks $A");
    return VC_OK;
}

/* A merge is "a b" (older files) or ["a", "b"] (newer ones). */
static bool merge_parts(const cJSON *m, const char **a, size_t *alen, const char **b, size_t *blen)
{
    if (cJSON_IsString(m)) {
        const char *s = m->valuestring;
        const char *sp = strchr(s, ' ');
        if (!sp || strchr(sp + 1, ' '))
            return false; /* Rust splits on ' ' and wants exactly two parts */
        *a = s;
        *alen = (size_t)(sp - s);
        *b = sp + 1;
        *blen = strlen(sp + 1);
        return true;
    }
    if (cJSON_GetArraySize(m) != 2)
        return false;
    const cJSON *x = cJSON_GetArrayItem(m, 0), *y = cJSON_GetArrayItem(m, 1);
    if (!cJSON_IsString(x) || !cJSON_IsString(y))
        return false;
    *a = x->valuestring;
    *alen = strlen(*a);
    *b = y->valuestring;
    *blen = strlen(*b);
    return true;
}

static enum vc_status build_merges(struct idf2_tokenizer *t, const cJSON *merges, const char *label,
                                   struct vc_err *err)
{
    size_t n = (size_t)cJSON_GetArraySize(merges);
    if (n == 0)
        return VC_OK;
    size_t cap = table_size_for(n);
    t->merge_tab = vc_malloc_array(cap, sizeof *t->merge_tab);
    if (!t->merge_tab)
        return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "%s: merges", label);
    t->merge_mask = cap - 1;
    for (size_t i = 0; i < cap; i++)
        t->merge_tab[i].a = -1;
    char small[256];
    int32_t rank = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, merges)
    {
        const char *a, *b;
        size_t alen, blen;
        if (!merge_parts(m, &a, &alen, &b, &blen))
            return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_tokenizer,
                              "%s: merge %d is not a pair of pieces", label, (int)rank);
        int32_t ia = vocab_get(t, a, alen), ib = vocab_get(t, b, blen);
        char *joined = alen + blen <= sizeof small ? small : malloc(alen + blen);
        if (!joined)
            return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "%s: merges", label);
        memcpy(joined, a, alen);
        memcpy(joined + alen, b, blen);
        int32_t ij = vocab_get(t, joined, alen + blen);
        if (joined != small)
            free(joined);
        if (ia < 0 || ib < 0 || ij < 0)
            return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_tokenizer,
                              "%s: merge %d uses a piece missing from the vocab", label, (int)rank);
        merge_put(t, ia, ib, rank, ij);
        rank++;
    }
    return VC_OK;
}

/* Parses the vocab and added tokens into the id tables (strings in one
 * pool). */
static enum vc_status build_tables(struct idf2_tokenizer *t, const cJSON *vocab, const cJSON *added,
                                   const char *label, struct vc_err *err)
{
    int32_t max_id = -1;
    size_t pool_bytes = 0, n_vocab = 0, n_added = 0;
    const cJSON *v;
    cJSON_ArrayForEach(v, vocab)
    {
        int32_t id = json_id(v);
        if (id < 0 || !v->string)
            return bad(err, label, "vocab: an id is not an integer in range");
        max_id = id > max_id ? id : max_id;
        pool_bytes += strlen(v->string) + 1;
        n_vocab++;
    }
    cJSON_ArrayForEach(v, added)
    {
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(v, "content");
        int32_t id = json_id(cJSON_GetObjectItemCaseSensitive(v, "id"));
        if (id < 0 || !cJSON_IsString(content) || content->valuestring[0] == '\0')
            return bad(err, label, "added_tokens: entry without a valid id and content");
        max_id = id > max_id ? id : max_id;
        /* The content, and its normalized form (at most 3x + "▁"). */
        pool_bytes += 4 * strlen(content->valuestring) + 5;
        n_added++;
    }
    if (n_vocab == 0)
        return bad(err, label, "model.vocab is empty");
    if (n_added > TOK_MAX_ADDED)
        return bad(err, label, "too many added tokens");
    /* The id tables are dense; real files number their pieces 0..n-1, so
     * ids far beyond the entry count only serve to make us allocate. */
    if ((size_t)max_id >= 2 * (n_vocab + n_added) + 256)
        return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_tokenizer,
                          "%s: id %d is far beyond the %zu pieces (sparse ids)", label, (int)max_id,
                          n_vocab + n_added);

    size_t n_ids = (size_t)max_id + 1;
    t->n_ids = (int32_t)n_ids;
    t->model_piece = calloc(n_ids, sizeof *t->model_piece);
    t->model_len = calloc(n_ids, sizeof *t->model_len);
    t->piece = calloc(n_ids, sizeof *t->piece);
    t->piece_len = calloc(n_ids, sizeof *t->piece_len);
    t->flags = calloc(n_ids, 1);
    t->pool = malloc(pool_bytes);
    size_t vcap = table_size_for(n_vocab);
    t->vocab_tab = vc_malloc_array(vcap, sizeof *t->vocab_tab);
    t->added.v = vc_malloc_array(n_added ? n_added : 1, sizeof *t->added.v);
    t->norm_added.v = vc_malloc_array(n_added ? n_added : 1, sizeof *t->norm_added.v);
    if (!t->model_piece || !t->model_len || !t->piece || !t->piece_len || !t->flags || !t->pool ||
        !t->vocab_tab || !t->added.v || !t->norm_added.v)
        return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "%s: vocab tables", label);
    memset(t->vocab_tab, 0xff, vcap * sizeof *t->vocab_tab);
    t->vocab_mask = vcap - 1;

    struct pool_cursor pc = { t->pool };
    cJSON_ArrayForEach(v, vocab)
    {
        int32_t id = json_id(v);
        size_t len = strlen(v->string);
        if (t->flags[id] & TOK_PRESENT)
            return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_tokenizer,
                              "%s: vocab id %d is used twice", label, (int)id);
        if (len == 0 || len > UINT32_MAX || !vc_utf8_valid(v->string, len, NULL))
            return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_tokenizer,
                              "%s: vocab id %d: empty or invalid UTF-8 piece", label, (int)id);
        t->model_piece[id] = t->piece[id] = pool_put(&pc, v->string, len);
        t->model_len[id] = t->piece_len[id] = (uint32_t)len;
        t->flags[id] = TOK_PRESENT;
        if (!vocab_put(t, id))
            return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_tokenizer,
                              "%s: vocab piece of id %d appears twice", label, (int)id);
    }
    cJSON_ArrayForEach(v, added)
    {
        const char *content = cJSON_GetObjectItemCaseSensitive(v, "content")->valuestring;
        int32_t id = json_id(cJSON_GetObjectItemCaseSensitive(v, "id"));
        size_t len = strlen(content);
        if (t->flags[id] & TOK_ADDED)
            return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_tokenizer,
                              "%s: added token id %d appears twice", label, (int)id);
        if (!vc_utf8_valid(content, len, NULL))
            return bad(err, label, "added token is not valid UTF-8");
        /* Decoding prefers the added content over the model piece of the
         * same id (Rust: added_tokens_map_r first). */
        t->piece[id] = pool_put(&pc, content, len);
        t->piece_len[id] = (uint32_t)len;
        t->flags[id] |= TOK_PRESENT | TOK_ADDED | (json_flag(v, "special") ? TOK_SPECIAL : 0);
        struct tok_added a = { t->piece[id], (uint32_t)len, id,
                               (uint8_t)((json_flag(v, "lstrip") ? TOK_LSTRIP : 0) |
                                         (json_flag(v, "rstrip") ? TOK_RSTRIP : 0) |
                                         (json_flag(v, "single_word") ? TOK_SINGLE_WORD : 0)) };
        if (json_flag(v, "normalized")) {
            /* tokenizers matches the normalized content in normalized
             * text: under the legacy normalizer "<x>" is looked for as
             * "▁<x>". */
            a.s = pc.at;
            a.len = (uint32_t)normalize(t, content, len, pc.at);
            pc.at[a.len] = '\0';
            pc.at += a.len + 1;
            t->norm_added.v[t->norm_added.n++] = a;
        } else {
            t->added.v[t->added.n++] = a;
        }
    }
    if (!matcher_index(&t->added) || !matcher_index(&t->norm_added))
        return bad(err, label, "two added tokens share the same content");
    return VC_OK;
}

static enum vc_status parse_model(struct idf2_tokenizer *t, const cJSON *model, const char *label,
                                  struct vc_err *err)
{
    if (!json_str_is(model, "type", "BPE"))
        return bad(err, label, "model.type must be \"BPE\"");
    const cJSON *dropout = cJSON_GetObjectItemCaseSensitive(model, "dropout");
    if (dropout && !cJSON_IsNull(dropout) &&
        !(cJSON_IsNumber(dropout) && dropout->valuedouble == 0))
        return bad(err, label, "BPE dropout is not supported");
    const char *affix[] = { "continuing_subword_prefix", "end_of_word_suffix" };
    for (size_t i = 0; i < 2; i++) {
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(model, affix[i]);
        if (a && !cJSON_IsNull(a) && !(cJSON_IsString(a) && a->valuestring[0] == '\0'))
            return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_tokenizer,
                              "%s: model.%s is not supported", label, affix[i]);
    }
    t->byte_fallback = json_flag(model, "byte_fallback");
    t->fuse_unk = json_flag(model, "fuse_unk");
    t->ignore_merges = json_flag(model, "ignore_merges");

    for (int b = 0; b < 256; b++) {
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", b);
        t->byte_id[b] = vocab_get(t, name, 6);
    }
    t->unk_id = -1;
    const cJSON *unk = cJSON_GetObjectItemCaseSensitive(model, "unk_token");
    if (cJSON_IsString(unk)) {
        t->unk_id = vocab_get(t, unk->valuestring, strlen(unk->valuestring));
        if (t->unk_id < 0)
            return bad(err, label, "model.unk_token is not in the vocab");
    } else if (unk && !cJSON_IsNull(unk)) {
        return bad(err, label, "model.unk_token is not a string");
    }
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    if (merges && !cJSON_IsArray(merges))
        return bad(err, label, "model.merges is not a list");
    return build_merges(t, merges, label, err);
}

enum vc_status idf2_tokenizer_load_json(const char *json, size_t len, const char *label,
                                        struct idf2_tokenizer **out, struct vc_err *err)
{
    *out = NULL;
    if (len > IDF2_TOK_MAX_JSON_BYTES)
        return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_tokenizer,
                          "%s: %zu bytes, more than the %zu allowed", label, len,
                          IDF2_TOK_MAX_JSON_BYTES);
    cJSON *root = cJSON_ParseWithLength(json, len);
    if (!root)
        return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_tokenizer, "%s: not valid JSON", label);
    struct idf2_tokenizer *t = calloc(1, sizeof *t);
    enum vc_status rc;
    if (!t) {
        rc = vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "%s", label);
        goto done;
    }
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    const cJSON *norm = cJSON_GetObjectItemCaseSensitive(root, "normalizer");
    if (!cJSON_IsObject(root) || !cJSON_IsObject(vocab) || (added && !cJSON_IsArray(added))) {
        rc = bad(err, label, "not a tokenizer.json (model.vocab / added_tokens)");
        goto done;
    }
    const cJSON *pre = cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer");
    if (json_null_or_absent(root, "pre_tokenizer") ? !parse_normalizer(t, norm)
                                                   : !json_null_or_absent(root, "normalizer")) {
        rc = bad(err, label,
                 "normalizer must be Sequence[Prepend(\"▁\")?, Replace(\" \", \"▁\")], or null "
                 "under a Metaspace pre_tokenizer");
        goto done;
    }
    if (!json_null_or_absent(root, "pre_tokenizer") && !parse_pre_tokenizer(t, pre)) {
        rc = bad(err, label,
                 "pre_tokenizer must be null or Metaspace(\"▁\") with a known prepend_scheme");
        goto done;
    }
    if (!parse_decoder(t, cJSON_GetObjectItemCaseSensitive(root, "decoder"))) {
        rc = bad(err, label,
                 "decoder must be Sequence[Replace(\"▁\", \" \"), ByteFallback, Fuse, Strip?] or "
                 "Metaspace(\"▁\")");
        goto done;
    }
    rc = build_tables(t, vocab, added, label, err);
    if (rc == VC_OK)
        rc = parse_model(t, model, label, err);
    if (rc == VC_OK)
        rc =
            parse_template(t, cJSON_GetObjectItemCaseSensitive(root, "post_processor"), label, err);
done:
    cJSON_Delete(root);
    if (rc != VC_OK) {
        idf2_tokenizer_free(t);
        return rc;
    }
    *out = t;
    return VC_OK;
}

enum vc_status idf2_tokenizer_load(const char *path, struct idf2_tokenizer **out,
                                   struct vc_err *err)
{
    char *json;
    size_t len;
    *out = NULL;
    enum vc_status rc = vc_fs_read_file(path, IDF2_TOK_MAX_JSON_BYTES, &json, &len, err);
    if (rc != VC_OK)
        return vc_err_prefix(err, "tokenizer");
    rc = idf2_tokenizer_load_json(json, len, path, out, err);
    free(json);
    return rc;
}

void idf2_tokenizer_free(struct idf2_tokenizer *tok)
{
    if (!tok)
        return;
    free(tok->model_piece);
    free(tok->model_len);
    free(tok->piece);
    free(tok->piece_len);
    free(tok->flags);
    free(tok->pool);
    free(tok->vocab_tab);
    free(tok->merge_tab);
    free(tok->added.v);
    free(tok->norm_added.v);
    free(tok);
}

enum vc_status idf2_tokenizer_set_specials(struct idf2_tokenizer *tok, int32_t bos_id,
                                           int32_t eos_id, struct vc_err *err)
{
    int32_t ids[2] = { bos_id, eos_id };
    for (int i = 0; i < 2; i++)
        if (ids[i] != -1 &&
            (ids[i] < 0 || ids[i] >= tok->n_ids || !(tok->flags[ids[i]] & TOK_PRESENT)))
            return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_tokenizer,
                              "special token id %d is not in the vocab", (int)ids[i]);
    tok->n_prefix = bos_id >= 0;
    tok->prefix[0] = bos_id;
    tok->n_suffix = eos_id >= 0;
    tok->suffix[0] = eos_id;
    return VC_OK;
}

void idf2_tokenizer_set_clean_up(struct idf2_tokenizer *tok, bool on)
{
    tok->clean_up = on;
}

/* transformers' clean_up_tokenization on s[0, *len), in place: its ten
 * str.replace calls in their order, each one non-overlapping pass left to
 * right (every one drops a space, so the text only shrinks). */
static void clean_up_spaces(char *s, size_t *len)
{
    static const char *const from[] = { " .",   " ?",  " !",  " ,",   " ' ",
                                        " n't", " 'm", " 's", " 've", " 're" };
    static const char *const to[] = { ".", "?", "!", ",", "'", "n't", "'m", "'s", "'ve", "'re" };
    for (size_t r = 0; r < sizeof from / sizeof from[0]; r++) {
        const size_t nf = strlen(from[r]), nt = strlen(to[r]);
        size_t w = 0;
        for (size_t i = 0; i < *len;) {
            if (i + nf <= *len && memcmp(s + i, from[r], nf) == 0) {
                memcpy(s + w, to[r], nt);
                w += nt;
                i += nf;
            } else {
                s[w++] = s[i++];
            }
        }
        *len = w;
    }
    s[*len] = '\0';
}

/* ---------------------------------------------------------------- lookups */

/* The longest token of m that starts at text[0], or NULL. */
static const struct tok_added *match_added(const struct tok_matcher *m, const char *text,
                                           size_t len)
{
    if (len == 0)
        return NULL;
    unsigned char c = (unsigned char)text[0];
    for (uint32_t i = m->first[c]; i < m->first[c + 1]; i++) {
        const struct tok_added *a = &m->v[i];
        if (a->len <= len && memcmp(a->s, text, a->len) == 0)
            return a; /* sorted longest first */
    }
    return NULL;
}

int32_t idf2_tokenizer_n_ids(const struct idf2_tokenizer *tok)
{
    return tok->n_ids;
}

int32_t idf2_tokenizer_find(const struct idf2_tokenizer *tok, const char *piece)
{
    size_t n = strlen(piece);
    const struct tok_added *a = match_added(&tok->added, piece, n);
    if (a && a->len == n)
        return a->id;
    /* Normalized ones are indexed by their normalized form. */
    for (size_t i = 0; i < tok->norm_added.n; i++) {
        int32_t id = tok->norm_added.v[i].id;
        if (tok->piece_len[id] == n && memcmp(tok->piece[id], piece, n) == 0)
            return id;
    }
    return n ? vocab_get(tok, piece, n) : -1;
}

const char *idf2_tokenizer_piece(const struct idf2_tokenizer *tok, int32_t id)
{
    return id >= 0 && id < tok->n_ids ? tok->piece[id] : NULL;
}

bool idf2_tokenizer_is_special(const struct idf2_tokenizer *tok, int32_t id)
{
    return id >= 0 && id < tok->n_ids && (tok->flags[id] & TOK_SPECIAL);
}

/* --------------------------------------------------------------- encoding */

struct bpe_sym {
    int32_t id;
    int32_t prev, next; /* -1 at the ends */
    uint32_t len;       /* bytes covered; 0 once merged into its left neighbour */
};

struct bpe_cand {
    int32_t rank, pos, id;
};

/* Min-heap on (rank, pos): Rust's Merge ordering, lowest rank first and the
 * leftmost pair on ties. */
static bool cand_less(const struct bpe_cand *a, const struct bpe_cand *b)
{
    return a->rank != b->rank ? a->rank < b->rank : a->pos < b->pos;
}

static void heap_push(struct bpe_cand *h, size_t *n, struct bpe_cand c)
{
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!cand_less(&c, &h[p]))
            break;
        h[i] = h[p];
        i = p;
    }
    h[i] = c;
}

static struct bpe_cand heap_pop(struct bpe_cand *h, size_t *n)
{
    struct bpe_cand top = h[0], last = h[--*n];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, m = i;
        const struct bpe_cand *best = &last;
        if (l < *n && cand_less(&h[l], best))
            best = &h[m = l];
        if (l + 1 < *n && cand_less(&h[l + 1], best))
            m = l + 1;
        if (m == i)
            break;
        h[i] = h[m];
        i = m;
    }
    if (*n > 0)
        h[i] = last;
    return top;
}

static void push_pair(const struct idf2_tokenizer *t, const struct bpe_sym *s, int32_t pos,
                      struct bpe_cand *heap, size_t *n_heap)
{
    const struct tok_merge *m = merge_get(t, s[pos].id, s[s[pos].next].id);
    if (m)
        heap_push(heap, n_heap, (struct bpe_cand){ m->rank, pos, m->id });
}

static void sym_add(struct bpe_sym *s, size_t *n, int32_t id, uint32_t len)
{
    s[*n] = (struct bpe_sym){ id, (int32_t)*n - 1, -1, len };
    if (*n > 0)
        s[*n - 1].next = (int32_t)*n;
    (*n)++;
}

/* BPE over one normalized word (Rust BPE::merge_word + Word::merge_all). */
static enum vc_status bpe_word(const struct idf2_tokenizer *t, const char *w, size_t len,
                               struct id_vec *out, struct vc_err *err)
{
    if (t->ignore_merges) {
        int32_t whole = vocab_get(t, w, len);
        if (whole >= 0)
            return id_vec_push(out, whole)
                       ? VC_OK
                       : vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "encode");
    }
    /* At most one symbol per byte; each merge pushes at most two
     * candidates on top of the initial len - 1. */
    size_t heap_cap;
    struct bpe_sym *s = vc_malloc_array(len, sizeof *s);
    struct bpe_cand *heap =
        vc_mul_ok(len, 3, &heap_cap) ? vc_malloc_array(heap_cap, sizeof *heap) : NULL;
    enum vc_status rc = VC_OK;
    if (!s || !heap) {
        rc = vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "encode: %zu bytes", len);
        goto done;
    }
    size_t n = 0;
    size_t unk_len = 0; /* pending (fused) unknown run, in bytes; 0 = none */
    for (size_t i = 0; i < len;) {
        uint32_t cp; /* the text was validated: every sequence is whole */
        size_t k = vc_utf8_next((const unsigned char *)w + i, len - i, &cp);
        int32_t id = vocab_get(t, w + i, k);
        if (id >= 0) {
            if (unk_len)
                sym_add(s, &n, t->unk_id, (uint32_t)unk_len);
            unk_len = 0;
            sym_add(s, &n, id, (uint32_t)k);
            i += k;
            continue;
        }
        bool bytes_ok = t->byte_fallback;
        for (size_t j = 0; bytes_ok && j < k; j++)
            bytes_ok = t->byte_id[(unsigned char)w[i + j]] >= 0;
        if (bytes_ok) {
            /* Rust does not flush a pending unk before byte tokens. */
            for (size_t j = 0; j < k; j++)
                sym_add(s, &n, t->byte_id[(unsigned char)w[i + j]], 1);
            i += k;
            continue;
        }
        if (t->unk_id < 0) {
            rc = vc_err_set(err, VC_EUSAGE, VC_REASON_encode_error,
                            "encode: a character has no token and the model has no unk_token");
            goto done;
        }
        if (unk_len && !t->fuse_unk) {
            sym_add(s, &n, t->unk_id, (uint32_t)unk_len);
            unk_len = 0;
        }
        unk_len += k;
        i += k;
    }
    if (unk_len)
        sym_add(s, &n, t->unk_id, (uint32_t)unk_len);

    size_t n_heap = 0;
    for (size_t i = 0; i + 1 < n; i++)
        push_pair(t, s, (int32_t)i, heap, &n_heap);
    while (n_heap > 0) {
        struct bpe_cand c = heap_pop(heap, &n_heap);
        struct bpe_sym *left = &s[c.pos];
        if (left->len == 0 || left->next < 0)
            continue;
        const struct tok_merge *m = merge_get(t, left->id, s[left->next].id);
        if (!m || m->id != c.id)
            continue; /* stale: the pair at pos changed since it was queued */
        struct bpe_sym *right = &s[left->next];
        left->id = c.id;
        left->len += right->len;
        left->next = right->next;
        right->len = 0;
        if (left->next >= 0)
            s[left->next].prev = c.pos;
        if (left->prev >= 0)
            push_pair(t, s, left->prev, heap, &n_heap);
        if (left->next >= 0)
            push_pair(t, s, c.pos, heap, &n_heap);
    }
    for (int32_t i = n ? 0 : -1; i >= 0; i = s[i].next)
        if (!id_vec_push(out, s[i].id)) {
            rc = vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "encode");
            goto done;
        }
done:
    free(s);
    free(heap);
    return rc;
}

/* Rust's char::is_whitespace (Unicode White_Space), which lstrip and
 * rstrip trim. */
static bool is_space_cp(uint32_t c)
{
    return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
           c == 0x205F || c == 0x3000;
}

/* regex's \w, which single_word tests on either side of a match: exact for
 * ASCII; beyond it every code point that is neither whitespace nor in the
 * Latin-1 or general / CJK punctuation and symbol blocks counts as a
 * letter (an approximation of Unicode's word classes). */
static bool is_word_cp(uint32_t c)
{
    if (c < 0x80)
        return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
               c == '_';
    return !is_space_cp(c) && !(c >= 0xA1 && c <= 0xBF) && c != 0xD7 && c != 0xF7 &&
           !(c >= 0x2000 && c <= 0x2BFF) && !(c >= 0x3000 && c <= 0x303F);
}

/* The code point that ends at text[at) (at > 0; the text is valid UTF-8);
 * *start gets its first byte. */
static uint32_t cp_before(const char *text, size_t at, size_t *start)
{
    size_t i = at - 1;
    while (i > 0 && ((unsigned char)text[i] & 0xC0) == 0x80)
        i--;
    uint32_t cp;
    vc_utf8_next((const unsigned char *)text + i, at - i, &cp);
    *start = i;
    return cp;
}

/* The next added token of m in text[*from, len), with tokenizers'
 * semantics: leftmost-longest, non-overlapping; a single_word match
 * touching a word character is dropped (the scan goes on after it); lstrip
 * takes the whitespace before it (not before floor, where the previous
 * match ended) and rstrip the whitespace after it into the match.  On a
 * match, [*start, *stop) is what it covers and *from moves past it. */
static const struct tok_added *next_added(const struct tok_matcher *m, const char *text, size_t len,
                                          size_t floor, size_t *from, size_t *start, size_t *stop)
{
    for (size_t p = *from; m->n && p < len;) {
        const struct tok_added *a = match_added(m, text + p, len - p);
        if (!a) {
            p++;
            continue;
        }
        size_t s = p, e = p + a->len, k;
        uint32_t cp;
        if (a->opts & TOK_SINGLE_WORD) {
            bool word_before = s > 0 && is_word_cp(cp_before(text, s, &k));
            bool word_after = e < len &&
                              (vc_utf8_next((const unsigned char *)text + e, len - e, &cp), true) &&
                              is_word_cp(cp);
            if (word_before || word_after) {
                p = e;
                continue;
            }
        }
        if (a->opts & TOK_LSTRIP)
            while (s > floor && is_space_cp(cp_before(text, s, &k)))
                s = k;
        if (a->opts & TOK_RSTRIP)
            while (e < len && (k = vc_utf8_next((const unsigned char *)text + e, len - e, &cp)) &&
                   is_space_cp(cp))
                e += k;
        *start = s;
        *stop = e;
        *from = e;
        return a;
    }
    return NULL;
}

/* Runs the Metaspace pre-tokenizer on one piece that starts at byte off of
 * the text (spaces to "▁", the scheme's prefix unless the piece already
 * starts with "▁", then words split before every "▁" when meta_split),
 * or takes the legacy normalizer's output as one word; then BPE. */
static enum vc_status encode_piece(const struct idf2_tokenizer *t, const char *p, size_t n,
                                   size_t off, struct id_vec *out, struct vc_err *err)
{
    if (!t->metaspace)
        return bpe_word(t, p, n, out, err);
    size_t cap;
    if (!vc_mul_ok(n, METASPACE_LEN, &cap) || !vc_add_ok(cap, METASPACE_LEN, &cap))
        return vc_err_set(err, VC_EUSAGE, VC_REASON_field_too_long, "encode: text too long");
    char *w = malloc(cap);
    if (!w)
        return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "encode: %zu bytes", cap);
    bool prefix =
        (t->prefix_mode == TOK_PREFIX_ALWAYS || (t->prefix_mode == TOK_PREFIX_FIRST && off == 0)) &&
        !(n >= METASPACE_LEN && memcmp(p, METASPACE, METASPACE_LEN) == 0) && p[0] != ' ';
    size_t len = to_metaspace(p, n, prefix, w);
    enum vc_status rc = VC_OK;
    for (size_t s = 0, i = 1; rc == VC_OK && s < len; i++) {
        bool cut = i >= len || (t->meta_split && i + METASPACE_LEN <= len &&
                                memcmp(w + i, METASPACE, METASPACE_LEN) == 0);
        if (cut) {
            rc = bpe_word(t, w + s, i - s, out, err);
            s = i;
        }
    }
    free(w);
    return rc;
}

/* One text piece between raw-matched added tokens, at byte off of the
 * text: normalized, split at the normalized added tokens, each part
 * encoded. */
static enum vc_status encode_segment(const struct idf2_tokenizer *t, const char *text, size_t len,
                                     size_t off, struct id_vec *out, struct vc_err *err)
{
    if (len == 0)
        return VC_OK;
    size_t cap;
    if (!vc_mul_ok(len, METASPACE_LEN, &cap) || !vc_add_ok(cap, METASPACE_LEN, &cap))
        return vc_err_set(err, VC_EUSAGE, VC_REASON_field_too_long, "encode: text too long");
    char *w = malloc(cap);
    if (!w)
        return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "encode: %zu bytes", cap);
    size_t n = normalize(t, text, len, w);
    /* Offsets into w are offsets into the text only without a normalizer,
     * which is the one case (Metaspace) that reads them. */
    enum vc_status rc = VC_OK;
    size_t seg = 0, from = 0, s, e;
    const struct tok_added *a;
    while (rc == VC_OK && (a = next_added(&t->norm_added, w, n, seg, &from, &s, &e))) {
        if (s > seg)
            rc = encode_piece(t, w + seg, s - seg, off + seg, out, err);
        if (rc == VC_OK && !id_vec_push(out, a->id))
            rc = vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "encode");
        seg = e;
    }
    if (rc == VC_OK && seg < n)
        rc = encode_piece(t, w + seg, n - seg, off + seg, out, err);
    free(w);
    return rc;
}

enum vc_status idf2_tokenizer_encode(const struct idf2_tokenizer *tok, const char *text, size_t len,
                                     bool add_special, int32_t **ids, size_t *n_ids,
                                     struct vc_err *err)
{
    *ids = NULL;
    *n_ids = 0;
    if (!vc_utf8_valid(text, len, NULL))
        return vc_err_set(err, VC_EUSAGE, VC_REASON_text_not_utf8, "encode: invalid UTF-8");
    struct id_vec out = { 0 };
    enum vc_status rc = VC_OK;
    bool ok = id_vec_push(&out, 0); /* reserve: *ids is non-NULL even when empty */
    out.n = 0;
    for (int i = 0; ok && add_special && i < tok->n_prefix; i++)
        ok = id_vec_push(&out, tok->prefix[i]);
    size_t seg = 0, from = 0, s, e;
    const struct tok_added *a;
    while (ok && rc == VC_OK && (a = next_added(&tok->added, text, len, seg, &from, &s, &e))) {
        rc = encode_segment(tok, text + seg, s - seg, seg, &out, err);
        ok = rc == VC_OK && id_vec_push(&out, a->id);
        seg = e;
    }
    if (ok && rc == VC_OK)
        rc = encode_segment(tok, text + seg, len - seg, seg, &out, err);
    for (int i = 0; ok && rc == VC_OK && add_special && i < tok->n_suffix; i++)
        ok = id_vec_push(&out, tok->suffix[i]);
    if (rc == VC_OK && !ok)
        rc = vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "encode");
    if (rc != VC_OK) {
        free(out.v);
        return rc;
    }
    *ids = out.v;
    *n_ids = out.n;
    return VC_OK;
}

/* --------------------------------------------------------------- decoding */

/* Rust ByteFallback: a token is a byte iff it is exactly 6 bytes "<0x??>"
 * and u8::from_str_radix(??, 16) accepts it (which also takes "+F"). */
static int byte_value(const char *p, size_t n)
{
    if (n != 6 || memcmp(p, "<0x", 3) != 0 || p[5] != '>')
        return -1;
    int v = 0;
    for (int i = p[3] == '+' ? 4 : 3; i < 5; i++) {
        char c = p[i];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0)
            return -1;
        v = v * 16 + d;
    }
    return v;
}

static bool flush_bytes(struct vc_buf *out, const char *run, size_t n)
{
    if (vc_utf8_valid(run, n, NULL))
        return vc_buf_append(out, run, n) == 0;
    for (size_t i = 0; i < n; i++)
        if (vc_buf_append(out, "\xEF\xBF\xBD", 3) != 0) /* U+FFFD per byte of the run */
            return false;
    return true;
}

enum vc_status idf2_tokenizer_decode(const struct idf2_tokenizer *tok, const int32_t *ids,
                                     size_t n_ids, bool skip_special, char **text, size_t *text_len,
                                     struct vc_err *err)
{
    *text = NULL;
    struct vc_buf out, run;
    vc_buf_init(&out, SIZE_MAX);
    vc_buf_init(&run, SIZE_MAX);
    bool ok = vc_buf_append(&out, "", 0) == 0;
    size_t n_tokens = 0; /* tokens the decoder has seen (after skip_special) */
    for (size_t i = 0; ok && i < n_ids; i++) {
        int32_t id = ids[i];
        if (id < 0 || id >= tok->n_ids || !(tok->flags[id] & TOK_PRESENT))
            continue; /* Rust: an id without a token yields nothing */
        if (skip_special && (tok->flags[id] & TOK_SPECIAL))
            continue;
        const char *p = tok->piece[id];
        size_t n = tok->piece_len[id];
        bool drop_meta = tok->dec_drop_first && n_tokens++ == 0;
        int b = tok->dec_metaspace ? -1 : byte_value(p, n);
        if (b >= 0) {
            unsigned char c = (unsigned char)b;
            ok = vc_buf_append(&run, &c, 1) == 0;
            continue;
        }
        if (run.len) {
            ok = flush_bytes(&out, run.data, run.len);
            run.len = 0;
        }
        for (size_t j = 0; ok && j < n;) {
            if (j + METASPACE_LEN <= n && memcmp(p + j, METASPACE, METASPACE_LEN) == 0) {
                ok = drop_meta || vc_buf_append(&out, " ", 1) == 0;
                j += METASPACE_LEN;
            } else {
                size_t k = j + 1;
                while (k < n && !(k + METASPACE_LEN <= n && !memcmp(p + k, METASPACE, 3)))
                    k++;
                ok = vc_buf_append(&out, p + j, k - j) == 0;
                j = k;
            }
        }
    }
    if (ok && run.len)
        ok = flush_bytes(&out, run.data, run.len);
    vc_buf_free(&run);
    if (!ok) {
        vc_buf_free(&out);
        return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "decode");
    }
    size_t skip = tok->dec_strip && out.len > 0 && out.data[0] == ' '; /* Strip(" ", 1) */
    size_t len = out.len - skip;
    memmove(out.data, out.data + skip, len + 1);
    if (tok->clean_up)
        clean_up_spaces(out.data, &len);
    *text = out.data;
    if (text_len)
        *text_len = len;
    return VC_OK;
}
