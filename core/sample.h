/* sample: the webdataset view of one training example, a key plus named
 * fields ("jpg", "txt", "json", "0.png", ...), with the metadata that will be
 * written to its "json" field.  Interleaved documents are samples whose
 * "json" holds ordered texts/images and whose images are "0.jpg", "1.png".
 *
 * Field bytes and strings live in the worker's arena (reset after each
 * sample); only `meta` is heap memory, released by sample_fini. */
#ifndef VC_CORE_SAMPLE_H
#define VC_CORE_SAMPLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "img.h"
#include "vc_err.h"

struct arena;
struct cJSON;

struct sample_field {
    const char *name;    /* part of the member name after the key's first dot; arena */
    const uint8_t *data; /* arena */
    size_t size;
    /* SHA-256 of `data`, cached by sample_field_sha256 so dedup's
     * signature, write's check of dedup's decode and write's "sha256"
     * hash an image's bytes once (the spill carries it between rounds).
     * Valid while has_sha256; whoever points `data` at other bytes
     * clears has_sha256 (sample_add_field/sample_set_field do). */
    uint8_t sha256[32];
    bool has_sha256;
    /* The same bytes at src_off in the unit's source file (a plain tar
     * read by wds_read), so a spill can point there instead of copying
     * them.  Valid only while data == src_data: a stage that points data
     * at other bytes leaves it stale, never wrong. */
    const uint8_t *src_data;
    uint64_t src_off;
};

struct sample {
    const char *key;             /* output key: [A-Za-z0-9_%-]+, no dots; arena */
    const char *orig_key;        /* the key as the source spelled it; arena */
    const char *source;          /* source name from the spec; borrowed for the run */
    const char *src_file;        /* input file the sample came from; borrowed for the task */
    uint64_t src_index;          /* ordinal within its input unit: the stable sort key */
    struct sample_field *fields; /* arena */
    size_t n_fields, cap_fields;
    struct cJSON *meta;  /* owned: object merged into the output "json" field */
    struct arena *arena; /* borrowed */
};

/* Zeroes `s` and binds it to `arena`.  Allocates nothing. */
void sample_init(struct sample *s, struct arena *arena);
/* Releases `meta`; the arena memory is the arena owner's business. */
void sample_fini(struct sample *s);

/* Appends a field, copying name and bytes into the arena.  Fails with
 * VC_ESAMPLE (too_many_fields) past SAMPLE_MAX_FIELDS or when a field of
 * that name exists already, and with VC_ESAMPLE (mem_cap) when the arena cap
 * is reached. */
enum vc_status sample_add_field(struct sample *s, const char *name, const void *data, size_t size,
                                struct vc_err *err);
/* Replaces the bytes of an existing field (or adds it).  Copies. */
enum vc_status sample_set_field(struct sample *s, const char *name, const void *data, size_t size,
                                struct vc_err *err);
/* Removes a field if present (order of the others is kept). */
void sample_remove_field(struct sample *s, const char *name);
/* Borrowed until the fields change; NULL when absent.  Case-sensitive. */
struct sample_field *sample_field_get(const struct sample *s, const char *name);
/* The SHA-256 of the field's bytes, computed on first use and cached in
 * the field (see has_sha256). */
const uint8_t *sample_field_sha256(struct sample_field *f);
/* Whether a field name names an image, by webdataset's rule (the field is
 * the member name after the first dot of its basename, so "logo.v2.png"
 * has field "v2.png"): its last dot-separated part is an image extension,
 * one we decode (jpg, jpeg, png, webp) or one we do not (gif, tif, tiff,
 * bmp), case-insensitively.  The one place that decides what an image
 * field is. */
bool sample_field_name_is_image(const char *name);
/* Whether `f` is an image field (by its name, as above) and, when it is
 * and `format` is not NULL, its format judged by magic bytes, never by the
 * name: IMG_FORMAT_UNKNOWN for GIF, TIFF, garbage or a name that lies
 * about bytes we cannot read. */
bool sample_field_is_image(const struct sample_field *f, enum img_format *format);
/* False only when the JSON text in `f` cannot hold an object key `name`:
 * neither the quoted name nor any escape (which could spell it) is in its
 * bytes.  Lets a stage skip parsing the json of a pair, which most samples
 * are, when it looks only for a document's keys. */
bool sample_json_may_have_key(const struct sample_field *f, const char *name);
/* The main image: the first image field that is not a document image
 * ("0.png", "12.jpg": digits before the extension).  NULL when none. */
struct sample_field *sample_main_image(const struct sample *s);
/* The main text: "txt", else "caption", else "text".  NULL when none. */
struct sample_field *sample_main_text(const struct sample *s);
/* A metadata key, never written to a shard: a stage that decoded an image
 * field with img_decode's strictness (every byte read and checked: the
 * dedup stage's pHash decode) stores the hex SHA-256 of the bytes it
 * decoded, and `write` skips its own verification of a field whose bytes
 * still have that hash, then drops the key. */
#define SAMPLE_META_DECODED_SHA256 "decoded_sha256"
/* The metadata object, created on first use; NULL only on OOM. */
struct cJSON *sample_meta(struct sample *s);

/* A webdataset-safe output key.  ASCII letters, digits, '_' and '-' are
 * kept; each byte of a non-ASCII character, and '%', is percent-encoded
 * ("猫" -> "%E7%8C%AB"), so keys in any script stay distinct and can be
 * decoded back; other ASCII ('.', '/', ' ', ...) becomes '_' (the key as
 * the source spelled it is kept in the json).  A key that does not fit
 * out_cap - 1 bytes is cut, never inside a character, and ends in "-" plus 8
 * hex digits of a hash of the whole input (when out_cap leaves room for
 * them).  An empty input yields "_".  Returns the length written. */
size_t sample_key_sanitize(const char *in, char *out, size_t out_cap);

/* Limits on one sample, so a hostile shard cannot make us allocate without
 * bound.  A field this many or more is more likely an attack than data. */
enum { SAMPLE_MAX_FIELDS = 256 };
/* "-" and 8 hex digits closing a key that had to be cut. */
enum { SAMPLE_KEY_HASH_LEN = 9 };

#endif
