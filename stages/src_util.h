/* src_util: what the sources share: expanding "urls" (a path, a brace
 * pattern such as "data-{000000..000127}.tar" or "{a,b}", or a list of
 * those), resolving spec paths, refusing record paths that escape their
 * folder, and reading an image file named by a record with a size cap. */
#ifndef VC_STAGES_SRC_UTIL_H
#define VC_STAGES_SRC_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/img.h"
#include "core/vc_err.h"

struct cJSON;
struct source_unit;
struct stage_ctx;

/* A brace pattern may not expand to more paths than this: a typo such as
 * {0..99999999} should fail at spec load, not exhaust memory. */
enum { SRC_MAX_EXPANSION = 1000000 };

/* Appends the expansion of `pattern` to (*paths, *n) (owned strings in an
 * owned array; free with src_paths_free).  Ranges keep the zero padding of
 * their first bound.  VC_EUSAGE bad_spec on an unbalanced or too large
 * pattern. */
enum vc_status src_brace_expand(const char *pattern, char ***paths, size_t *n, struct vc_err *err);
/* The source's key `key` ("urls", "files") as a string or an array of
 * strings, expanded in order and each resolved against ctx->spec_dir;
 * unless ctx->inputs_checked, every path must exist and not be a folder
 * (src_check_path; a folder's message says how to name its shards).  Errors name `where` and the
 * key, and leave nothing in
 * (*paths, *n). */
enum vc_status src_urls_expand(const struct cJSON *urls, const char *where, const char *key,
                               const struct stage_ctx *ctx, char ***paths, size_t *n,
                               struct vc_err *err);
void src_paths_free(char **paths, size_t n);
/* Appends a copy of s to the string vector (*v, *n) of capacity *cap
 * (grown by doubling; free with src_paths_free).  VC_EFATAL on OOM. */
enum vc_status src_strv_push(char ***v, size_t *n, size_t *cap, const char *s, struct vc_err *err);

/* Whether a file name is a webdataset shard's by its suffix: .tar,
 * .tar.gz, .tgz or .tar.zst (how a folder's shards are told from its other
 * files; a shard's content is still judged by its bytes). */
bool src_shard_name(const char *name);

/* A path a spec names, checked at load: it exists and is a folder
 * (want_dir) or not a folder.  VC_EUSAGE bad_spec naming the path and the
 * cause; a path with wildcards gets a hint, since nothing is globbed. */
enum vc_status src_check_path(const char *path, bool want_dir, struct vc_err *err);

/* The two paths of a list source (pairs, documents): a list file (under
 * the key list_key) and a folder of images (not looked at when
 * ctx->inputs_checked; the list is read to split it anyway).  Errors name
 * the key. */
enum vc_status src_check_spec_paths(const char *list_key, const char *list, const char *images_dir,
                                    const struct stage_ctx *ctx, struct vc_err *err);

/* An OBELICS document's positions: `texts` and `images` lists of one
 * length, entries strings or null, each position exactly one of a text
 * and an image (anything else cannot be laid out as a sequence).
 * VC_ESAMPLE json_invalid naming the position. */
enum vc_status src_doc_positions(const struct cJSON *texts, const struct cJSON *images,
                                 struct vc_err *err);

/* Parses a record or field that must be a JSON object into *out (owned,
 * NULL on failure).  VC_ESAMPLE json_invalid saying why: not valid JSON,
 * an array or scalar instead of an object, or nested deeper than cJSON's
 * limit (a hostile 100,000-deep array gets that, not a parse error). */
enum vc_status src_json_object(const char *text, size_t n, struct cJSON **out, struct vc_err *err);

/* The format of an image file a record names, by magic bytes: VC_ESAMPLE
 * `empty` for a 0-byte file, `unsupported_format` when it is not a JPEG,
 * PNG or WebP.  Messages name `path`. */
enum vc_status src_image_format(const uint8_t *data, size_t n, const char *path, enum img_format *f,
                                struct vc_err *err);

/* base_dir/path unless path is absolute or base_dir is NULL/empty.  Owned. */
char *src_path_join(const char *base_dir, const char *path);

/* A path from inside a record is acceptable when it is relative and has no
 * ".." component (and no NUL, no backslash). */
int src_relpath_safe(const char *path);

/* Reads dir/rel (rel checked with src_relpath_safe) into *buf (grown as
 * needed, owned by the caller, free()), at most max_bytes.  VC_ESAMPLE
 * with not_fetched (rel is an http(s) URL), unsafe_path, missing_image,
 * not_a_file, entry_too_large or io_error. */
enum vc_status src_read_file(const char *dir, const char *rel, uint64_t max_bytes, uint8_t **buf,
                             size_t *cap, size_t *size, struct vc_err *err);

/* Frees units[i].file for each of the n units, then the array (as
 * lines_split and src_urls_expand hand them over).  NULL is fine. */
void src_units_free(struct source_unit *units, size_t n);

/* For a create that failed with rc (< 0, err filled): at spec load an
 * unreadable input (VC_ESHARD) is a spec problem, so that becomes
 * VC_EUSAGE bad_spec.  Prefixes `where` unless the message starts with it
 * already; returns err->status. */
enum vc_status src_load_error(enum vc_status rc, const char *where, struct vc_err *err);

#endif
