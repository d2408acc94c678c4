/* wds_read: streams samples out of one webdataset shard (.tar, .tar.gz,
 * .tar.zst, detected by content through libarchive), grouping consecutive
 * members that share a key.  Never holds more than one sample in memory:
 * each member is read straight into the caller's sample arena, so the arena
 * cap bounds a sample and nothing bounds it by the shard size.
 *
 * Every member is accounted for.  Member names that are absolute or contain
 * a ".." component make their sample an error (unsafe_path); symlinks, hard
 * links, FIFOs and devices make their sample an error (not_regular_file),
 * never followed; a member webdataset cannot key (no extension, a basename
 * starting with a dot, nothing after the dot, a top-level "__name__", a
 * name over WDS_MAX_NAME_BYTES) comes back as an error entry of its own
 * (bad_member_name) after the sample it was met in; only directories are
 * skipped (they hold no data) and counted; a member larger than
 * limits.max_entry_bytes is an error for its sample (the bytes are skipped,
 * not read); a corrupt archive ends the shard with VC_ESHARD after the
 * samples read so far.  Nothing here ever creates a file: members are bytes
 * in memory, their names only keys. */
#ifndef VC_STAGES_WDS_READ_H
#define VC_STAGES_WDS_READ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/sample.h"
#include "core/vc_err.h"

struct wds_read_limits {
    uint64_t max_entry_bytes; /* one member; 0 = WDS_DEFAULT_MAX_ENTRY_BYTES */
    uint32_t max_fields;      /* members per sample; 0 = SAMPLE_MAX_FIELDS */
};
/* 256 MiB: larger than any web image or document page we keep, small
 * enough that a worker per core fits in a few GiB. */
#define WDS_DEFAULT_MAX_ENTRY_BYTES (256ull << 20)
/* Member names longer than PATH_MAX are not file names any tool could have
 * written; such members are error entries (bad_member_name), never keys. */
#define WDS_MAX_NAME_BYTES 4096

struct wds_reader;

/* Opens `path` for streaming and reads the first member header, so a file
 * that is not an archive fails here.  Owned: close with wds_reader_close.
 * VC_ESHARD when the file cannot be opened or is not an archive (an empty
 * file is not an archive; a tar holding no members is an empty shard). */
enum vc_status wds_reader_open(const char *path, const struct wds_read_limits *limits,
                               struct wds_reader **out, struct vc_err *err);
/* The same over `size` bytes in memory (borrowed until wds_reader_close);
 * `name` stands in for the path in s->src_file and messages. */
enum vc_status wds_reader_open_mem(const void *data, size_t size, const char *name,
                                   const struct wds_read_limits *limits, struct wds_reader **out,
                                   struct vc_err *err);

/* Fills `s` (freshly sample_init'ed on the caller's arena) with the next
 * sample: key = member name up to the first dot of its last path component
 * (directories included, as webdataset does; leading "./" dropped), sanitised
 * into s->key with the original in s->orig_key; fields named by the rest of
 * the member name, lower-cased as webdataset does.  s->src_file is the shard
 * path (borrowed until close), s->src_index the sample ordinal from 0.
 * Members with the same key that are not adjacent make separate samples.
 * A member that cannot be keyed is returned as VC_ESAMPLE bad_member_name
 * (or not_regular_file) with its name, cut to 200 bytes, as s->orig_key
 * and a sample ordinal of its own.
 * Returns VC_OK, VC_EOF at the end, VC_ESAMPLE when this sample is bad
 * (s->orig_key and s->src_index are still set so it can be recorded, the
 * fields may be partial; call again for the next one), or VC_ESHARD when the
 * archive is corrupt.  A sample that was being assembled when the corruption
 * hit comes back first as VC_ESAMPLE corrupt_archive; the call after that
 * returns VC_ESHARD, as does every later call. */
enum vc_status wds_reader_next(struct wds_reader *r, struct sample *s, struct vc_err *err);

/* From now on, the fields of a plain (uncompressed) tar in a regular file
 * carry where their bytes lie in it (sample_field's src_data and src_off),
 * so a spill can point there; a compressed or in-memory shard's fields,
 * and a sparse member's, carry none.  Call right after opening. */
void wds_reader_keep_offsets(struct wds_reader *r);

/* Members skipped: directories (every other member reaches a sample or an
 * error entry). */
uint64_t wds_reader_skipped(const struct wds_reader *r);
void wds_reader_close(struct wds_reader *r);

/* How webdataset splits a member name.  Pointers borrow from the name. */
struct wds_member_name {
    const char *key; /* after any leading "./"; not NUL-terminated at key_len */
    size_t key_len;
    const char *ext; /* everything after the first dot of the last component */
};
/* false when webdataset would ignore the member: no dot in the last
 * component, nothing before or after that dot, or a top-level "__x__". */
bool wds_member_split(const char *name, struct wds_member_name *out);
/* true for absolute names and names with a ".." component. */
bool wds_member_unsafe(const char *name);

/* A libarchive reader with exactly the formats and filters wds_reader
 * accepts, for tools that walk members themselves (wds_inspect).  Owned:
 * release with archive_read_free.  NULL on OOM. */
struct archive;
struct archive *wds_archive_read_new(void);
/* Opens `path` on such a reader.  VC_ESHARD with reason io_error when the
 * file cannot be read, corrupt_archive when its content is no tar. */
enum vc_status wds_archive_open_file(struct archive *a, const char *path, struct vc_err *err);

#endif
