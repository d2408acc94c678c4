/* vc_utf8: the project's one UTF-8 decoder and validator (RFC 3629: no
 * overlong forms, no surrogates, nothing above U+10FFFF), the escapes
 * that make arbitrary bytes safe inside the JSON we write, and the parse
 * that writes input JSON's numbers back as they were.
 *
 * Every JSON file the tool writes must be valid UTF-8, while member names,
 * paths and keys arrive as raw bytes: vc_utf8_json_text gives the readable
 * form and vc_utf8_hex the exact bytes for a separate field, so nothing is
 * lost and no reader chokes. */
#ifndef VC_CORE_VC_UTF8_H
#define VC_CORE_VC_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The code point at s (n > 0 bytes available) into *cp; returns the length
 * of its valid sequence (1..4), or 0 when the bytes at s are not valid
 * UTF-8 (then *cp = U+FFFD and the caller skips one byte). */
size_t vc_utf8_decode(const unsigned char *s, size_t n, uint32_t *cp);
/* The same for scanning text: returns 1 with *cp = U+FFFD on an invalid
 * byte, so a loop `i += vc_utf8_next(...)` always advances. */
size_t vc_utf8_next(const unsigned char *s, size_t n, uint32_t *cp);
/* Writes cp (<= U+10FFFF, not a surrogate) as 1..4 bytes; returns the count. */
size_t vc_utf8_encode(uint32_t cp, char *out);
/* Whether s[0..n) is valid UTF-8; *bad_at (may be NULL) gets the offset of
 * the first invalid byte. */
bool vc_utf8_valid(const void *s, size_t n, size_t *bad_at);

/* A NUL-terminated copy of s[0..n) that is valid UTF-8: valid sequences
 * kept, each invalid byte replaced by U+FFFD.  Owned (free); NULL on OOM. */
char *vc_utf8_json_text(const void *s, size_t n);
/* Lower-case hex of s[0..n), NUL-terminated.  Owned (free); NULL on OOM. */
char *vc_utf8_hex(const void *s, size_t n);

struct cJSON;
/* Adds `name`: s to the object as valid UTF-8 (vc_utf8_json_text) and, only
 * when s is not valid UTF-8, `name`_hex: its exact bytes (vc_utf8_hex), so
 * the original can be rebuilt.  false on OOM. */
bool vc_utf8_json_add(struct cJSON *obj, const char *name, const char *s);
/* The same for n bytes that may hold NULs (a parquet BINARY value): a NUL
 * also makes `name`_hex appear, as the JSON string ends there. */
bool vc_utf8_json_add_bytes(struct cJSON *obj, const char *name, const void *s, size_t n);
/* Decodes lower-case hex (vc_utf8_hex's output) into out[0..cap), NUL
 * terminated; returns the byte count, or (size_t)-1 when the hex is
 * malformed, decodes to a NUL byte or does not fit. */
size_t vc_utf8_unhex(const char *hex, char *out, size_t cap);
/* The reverse of vc_utf8_json_add on a parsed object: when `name`_hex is
 * present, obj[name] gets the exact bytes back (decoded from the hex).
 * false on OOM or malformed hex (obj unchanged). */
bool vc_utf8_json_restore(struct cJSON *obj, const char *name);
/* cJSON_Print (pretty) or cJSON_PrintUnformatted of `doc`, with any byte
 * that is not valid UTF-8 replaced by U+FFFD: the last guard before a JSON
 * file is written, for strings that no field-level escape has seen (a
 * message quoting a file name, a spec string).  Owned (free); NULL on OOM. */
char *vc_utf8_json_print(const struct cJSON *doc, bool pretty);
/* cJSON_ParseWithLength of text[0..n), keeping the number literals a
 * double cannot hold as they were written: an integer of more than 15
 * digits (a 64-bit id or hash) and a literal out of double range become
 * raw items that print their literal again, so JSON read from the input
 * is written back with the same numbers; a key given twice in one object
 * keeps only its last value (as Python's json reads it).  NULL when it
 * does not parse, when it holds a NUL (vc_json_find_nul), which cJSON
 * would silently cut its string at ("a\u0000b" read back as "a"), and when
 * anything but white space follows the value (vc_json_extra_at), which
 * cJSON would silently ignore (two JSONL records on one line). */
struct cJSON *vc_json_parse_exact(const char *text, size_t n);
/* The offset of the first byte that is not white space after the first
 * JSON value of text[0..n), as Python's json reports "Extra data"; n when
 * the value ends the text or the text does not parse. */
size_t vc_json_extra_at(const char *text, size_t n);
/* The offset of the first NUL cJSON cannot hold in JSON text[0..n): a NUL
 * byte, or a \u0000 escape inside a string (*escaped set); n when there
 * is none. */
size_t vc_json_find_nul(const char *text, size_t n, bool *escaped);

#endif
