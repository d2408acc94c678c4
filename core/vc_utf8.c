/* vc_utf8: decoding by table-free range checks; the shortest-form and
 * surrogate rules are the second-byte ranges of RFC 3629's syntax (E0 A0..BF,
 * ED 80..9F, F0 90..BF, F4 80..8F), so one pass validates and decodes. */
#include "vc_utf8.h"

#include "vc_mem.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

size_t vc_utf8_decode(const unsigned char *s, size_t n, uint32_t *cp)
{
    unsigned c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    size_t len;
    unsigned lo = 0x80, hi = 0xBF;
    uint32_t v;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2, v = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3, v = c & 0x0F;
        lo = c == 0xE0 ? 0xA0 : lo;
        hi = c == 0xED ? 0x9F : hi;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4, v = c & 0x07;
        lo = c == 0xF0 ? 0x90 : lo;
        hi = c == 0xF4 ? 0x8F : hi;
    } else {
        *cp = 0xFFFD;
        return 0;
    }
    if (n < len || s[1] < lo || s[1] > hi) {
        *cp = 0xFFFD;
        return 0;
    }
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) {
            *cp = 0xFFFD;
            return 0;
        }
        v = (v << 6) | (s[i] & 0x3F);
    }
    *cp = v;
    return len;
}

size_t vc_utf8_next(const unsigned char *s, size_t n, uint32_t *cp)
{
    size_t k = vc_utf8_decode(s, n, cp);
    return k ? k : 1;
}

size_t vc_utf8_encode(uint32_t cp, char *out)
{
    unsigned char *o = (unsigned char *)out;
    if (cp < 0x80) {
        o[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (unsigned char)(0xC0 | (cp >> 6));
        o[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xE0 | (cp >> 12));
        o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (unsigned char)(0xF0 | (cp >> 18));
    o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

bool vc_utf8_valid(const void *s, size_t n, size_t *bad_at)
{
    const unsigned char *p = s;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t k = p[i] < 0x80 ? 1 : vc_utf8_decode(p + i, n - i, &cp);
        if (!k) {
            if (bad_at)
                *bad_at = i;
            return false;
        }
        i += k;
    }
    return true;
}

char *vc_utf8_json_text(const void *s, size_t n)
{
    const unsigned char *p = s;
    size_t cap;
    /* U+FFFD is 3 bytes for each invalid byte at worst. */
    if (!vc_mul_ok(n, 3, &cap) || !vc_add_ok(cap, 1, &cap))
        return NULL;
    char *out = malloc(cap), *o = out;
    if (!out)
        return NULL;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t k = vc_utf8_decode(p + i, n - i, &cp);
        if (k) {
            memcpy(o, p + i, k);
            o += k;
            i += k;
        } else {
            o += vc_utf8_encode(0xFFFD, o);
            i++;
        }
    }
    *o = '\0';
    return out;
}

char *vc_utf8_hex(const void *s, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    const unsigned char *p = s;
    size_t cap;
    if (!vc_mul_ok(n, 2, &cap) || !vc_add_ok(cap, 1, &cap))
        return NULL;
    char *out = malloc(cap);
    if (!out)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * n] = '\0';
    return out;
}

bool vc_utf8_json_add(cJSON *obj, const char *name, const char *s)
{
    return vc_utf8_json_add_bytes(obj, name, s, strlen(s));
}

bool vc_utf8_json_add_bytes(cJSON *obj, const char *name, const void *s, size_t n)
{
    char *text = vc_utf8_json_text(s, n);
    /* A NUL would end the JSON string early: such bytes need the hex too. */
    if (text && vc_utf8_valid(s, n, NULL) && !memchr(s, 0, n)) {
        bool ok = cJSON_AddStringToObject(obj, name, text) != NULL;
        free(text);
        return ok;
    }
    char *hex = vc_utf8_hex(s, n);
    char hex_name[256];
    snprintf(hex_name, sizeof hex_name, "%.251s_hex", name);
    bool ok = text && hex && cJSON_AddStringToObject(obj, name, text) &&
              cJSON_AddStringToObject(obj, hex_name, hex);
    free(text);
    free(hex);
    return ok;
}

char *vc_utf8_json_print(const cJSON *doc, bool pretty)
{
    char *text = pretty ? cJSON_Print(doc) : cJSON_PrintUnformatted(doc);
    if (!text || vc_utf8_valid(text, strlen(text), NULL))
        return text;
    char *fixed = vc_utf8_json_text(text, strlen(text));
    free(text);
    return fixed;
}

static int hex_digit(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

size_t vc_utf8_unhex(const char *hex, char *out, size_t cap)
{
    size_t n = strlen(hex);
    if (n % 2 || n / 2 >= cap)
        return (size_t)-1;
    for (size_t i = 0; i < n / 2; i++) {
        int hi = hex_digit(hex[2 * i]), lo = hex_digit(hex[2 * i + 1]);
        if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
            return (size_t)-1;
        out[i] = (char)(hi << 4 | lo);
    }
    out[n / 2] = '\0';
    return n / 2;
}

bool vc_utf8_json_restore(cJSON *obj, const char *name)
{
    char hex_name[128];
    snprintf(hex_name, sizeof hex_name, "%s_hex", name);
    const char *hex = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(obj, hex_name));
    cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (!hex || !cJSON_IsString(item))
        return true;
    char *raw = malloc(strlen(hex) / 2 + 1);
    bool ok = raw && vc_utf8_unhex(hex, raw, strlen(hex) / 2 + 1) != (size_t)-1 &&
              /* cJSON_SetValuestring copies: the raw bytes replace the text */
              cJSON_SetValuestring(item, raw) != NULL;
    free(raw);
    return ok;
}

/* The next number literal of t[0..n) from *pos, outside strings: its
 * start and length; false when none is left. */
static bool next_number(const char *t, size_t n, size_t *pos, size_t *start, size_t *len)
{
    size_t i = *pos;
    while (i < n) {
        char c = t[i];
        if (c == '"') {
            for (i++; i < n && t[i] != '"'; i++)
                i += t[i] == '\\';
            i++;
        } else if (c == '-' || (c >= '0' && c <= '9')) {
            *start = i;
            while (i < n && t[i] && strchr("+-.eE0123456789", t[i]))
                i++;
            *len = i - *start;
            *pos = i;
            return true;
        } else {
            i++;
        }
    }
    *pos = i;
    return false;
}

/* Whether a double holds the literal's value as cJSON prints it back. */
static bool double_holds(const char *lit, size_t len, double v)
{
    if (v != v || v > 1.7976931348623157e308 || v < -1.7976931348623157e308)
        return false;
    size_t digits = 0;
    for (size_t i = 0; i < len; i++) {
        if (lit[i] == '.' || lit[i] == 'e' || lit[i] == 'E')
            return true; /* a fraction: printed to 17 digits, the same double */
        digits += lit[i] != '-';
    }
    return digits <= 15;
}

/* Walks the items in document order (cJSON's parse order) beside the
 * text's number literals; false when they do not line up or on OOM. */
static bool keep_literals(cJSON *it, const char *t, size_t n, size_t *pos)
{
    for (; it; it = it->next) {
        if (cJSON_IsNumber(it)) {
            size_t start, len;
            if (!next_number(t, n, pos, &start, &len))
                return false;
            if (double_holds(t + start, len, it->valuedouble))
                continue;
            char *lit = cJSON_malloc(len + 1);
            if (!lit)
                return false;
            memcpy(lit, t + start, len);
            lit[len] = '\0';
            it->type = cJSON_Raw;
            it->valuestring = lit;
        } else if (it->child && !keep_literals(it->child, t, n, pos)) {
            return false;
        }
    }
    return true;
}

struct named_item {
    cJSON *item;
    size_t order;
};

static int cmp_named_items(const void *a, const void *b)
{
    const struct named_item *x = a, *y = b;
    int c = strcmp(x->item->string, y->item->string);
    return c ? c : (x->order > y->order) - (x->order < y->order);
}

/* A key given twice in one object: Python's json and JavaScript's
 * JSON.parse keep the last value, cJSON finds the first.  Only the last
 * stays, so what a stage reads and replaces is what a reader of the output
 * sees (an input json with "vlmcurate" twice kept its second copy past our
 * replacement of the first, and Python read that one).  Sorting keeps an
 * object with many keys cheap; false on OOM. */
static bool keep_last_keys(cJSON *node)
{
    size_t n = 0;
    for (cJSON *c = node->child; c; c = c->next, n++)
        if (c->child && !keep_last_keys(c))
            return false;
    if (!cJSON_IsObject(node) || n < 2)
        return true;
    struct named_item *v = vc_malloc_array(n, sizeof *v);
    if (!v)
        return false;
    n = 0;
    for (cJSON *c = node->child; c; c = c->next, n++)
        v[n] = (struct named_item){ c, n };
    qsort(v, n, sizeof *v, cmp_named_items);
    for (size_t i = 0; i + 1 < n; i++)
        if (strcmp(v[i].item->string, v[i + 1].item->string) == 0)
            cJSON_Delete(cJSON_DetachItemViaPointer(node, v[i].item));
    free(v);
    return true;
}

size_t vc_json_find_nul(const char *text, size_t n, bool *escaped)
{
    bool in_string = false;
    for (size_t i = 0; i < n; i++) {
        if (text[i] == '\0') {
            *escaped = false;
            return i;
        }
        if (text[i] == '"') {
            in_string = !in_string;
        } else if (in_string && text[i] == '\\' && i + 1 < n) {
            if (text[i + 1] == 'u' && i + 6 <= n && memcmp(text + i + 2, "0000", 4) == 0) {
                *escaped = true;
                return i;
            }
            i++; /* the escaped character, which may be a quote */
        }
    }
    return n;
}

/* The first JSON value of text[0..n) (owned), and in *extra the offset of
 * the first byte after it that is not JSON white space (n when none):
 * cJSON stops after one value and ignores what follows. */
static cJSON *parse_first(const char *text, size_t n, size_t *extra)
{
    const char *end = NULL;
    cJSON *doc = cJSON_ParseWithLengthOpts(text, n, &end, 0);
    size_t at = doc && end ? (size_t)(end - text) : n;
    while (at < n && (text[at] == ' ' || text[at] == '\t' || text[at] == '\n' || text[at] == '\r'))
        at++;
    *extra = at;
    return doc;
}

size_t vc_json_extra_at(const char *text, size_t n)
{
    size_t extra;
    cJSON_Delete(parse_first(text, n, &extra));
    return extra;
}

cJSON *vc_json_parse_exact(const char *text, size_t n)
{
    bool escaped;
    if (vc_json_find_nul(text, n, &escaped) < n)
        return NULL;
    size_t extra;
    cJSON *doc = parse_first(text, n, &extra);
    size_t pos = 0;
    if (doc && (extra < n || !keep_literals(doc, text, n, &pos) || !keep_last_keys(doc))) {
        cJSON_Delete(doc);
        return NULL;
    }
    return doc;
}
