/* wds_write: writes one webdataset shard that every reader accepts: plain
 * ustar members (no pax or GNU long-name records), ASCII names of at most
 * 100 bytes held in the ustar name field alone (the prefix field stays
 * empty), the members of a sample contiguous, fixed metadata (mtime 0,
 * uid/gid 0, mode 0644, empty user/group names) so identical samples give
 * identical bytes.  The archive ends with two zero blocks and is padded to
 * GNU tar's 10240-byte record, as tar and Python's tarfile write it.
 * Optionally the whole shard is gzip- (zlib, level 6, header mtime 0, no
 * file name) or zstd-compressed (level 3, one thread, checksum on); both are
 * deterministic for a given library version.
 *
 * Crash safety: bytes go to "<path>.tmp"; wds_writer_commit fsyncs, renames
 * onto <path> and fsyncs the folder.  Alongside it writes the DALI index
 * (see wds_dali_index_path; uncompressed, non-empty shards only: DALI needs
 * offsets into the raw tar and rejects an index of 0 samples).  The index is
 * committed before the shard, so a visible shard always has its index.
 * Nothing is visible under the final names before commit. */
#ifndef VC_STAGES_WDS_WRITE_H
#define VC_STAGES_WDS_WRITE_H

#include <stddef.h>
#include <stdint.h>

#include "core/sample.h"
#include "core/vc_err.h"

enum wds_compression {
    WDS_COMPRESS_NONE = 0,
    WDS_COMPRESS_GZIP,
    WDS_COMPRESS_ZSTD,
};
/* "none" | "gz" | "zst"; -1 cast when unknown.  The shard suffix is
 * ".tar", ".tar.gz" or ".tar.zst". */
enum wds_compression wds_compression_from_name(const char *name);
const char *wds_compression_suffix(enum wds_compression c);

/* The ustar name field: a member name ("<key>.<field>") is at most this. */
enum { WDS_MAX_MEMBER_NAME = 100 };
/* ustar's 11 octal digits of size: a member is at most 8 GiB - 1. */
#define WDS_MAX_MEMBER_BYTES 077777777777ull

struct wds_shard_stats {
    uint64_t n_samples;
    uint64_t n_bytes;     /* size of the file on disk */
    uint64_t n_tar_bytes; /* size of the uncompressed tar */
    char sha256[65];      /* of the file on disk, lowercase hex */
};

struct wds_writer;

/* Size of the uncompressed tar whose members take member_bytes (headers and
 * padded data): plus the two end blocks, padded to the 10240-byte record,
 * exactly what the writer produces.  The shard cut's byte target uses it. */
uint64_t wds_tar_file_bytes(uint64_t member_bytes);

/* Owned: finish with wds_writer_commit or wds_writer_abort.  VC_EUSAGE for
 * an unknown compression, VC_EFATAL (io_error) when the temporary file
 * cannot be created. */
enum vc_status wds_writer_open(const char *path, enum wds_compression c, struct wds_writer **out,
                               struct vc_err *err);

/* Appends every field of `s` as "<s->key>.<field name>" in the order given.
 * VC_ESAMPLE (field_too_long) when a member name would exceed 100 bytes
 * or the key contains a dot; VC_ESAMPLE (unsafe_path) when the key is empty
 * or holds anything but ASCII letters, digits, '_' and '-', or a field name
 * is empty, starts with a dot or holds anything but those and '.';
 * VC_ESAMPLE (missing_field) for a sample without fields, (repeated_field)
 * for a field name given twice, (entry_too_large) for a field over
 * WDS_MAX_MEMBER_BYTES.  The shard is unchanged in those cases.
 * VC_EFATAL (io_error) when writing fails; the writer is then dead and
 * only wds_writer_abort (or a failing commit) remains.
 * *tar_offset (may be NULL) receives the byte offset of the sample's first
 * header in the uncompressed tar. */
enum vc_status wds_writer_add(struct wds_writer *w, const struct sample *s, uint64_t *tar_offset,
                              struct vc_err *err);

/* Ends the archive, fsyncs, writes the DALI index, renames into place,
 * fills *stats (may be NULL) and frees the writer whatever the outcome. */
enum vc_status wds_writer_commit(struct wds_writer *w, struct wds_shard_stats *stats,
                                 struct vc_err *err);
/* Removes the temporary file and frees the writer.  NULL is a no-op. */
void wds_writer_abort(struct wds_writer *w);

/* Where the DALI index of `shard_path` goes: the path with its ".tar",
 * ".tar.gz" or ".tar.zst" suffix replaced by ".idx" (".idx" appended when
 * there is none).  Returns the length it needs, as snprintf does; the
 * result is complete only when that is below out_cap. */
size_t wds_dali_index_path(const char *shard_path, char *out, size_t out_cap);

/* One shard in a wids index. */
struct wds_index_entry {
    const char *url; /* borrowed; wids resolves it against the index's folder */
    uint64_t n_samples;
    uint64_t filesize; /* bytes on disk */
};
/* Writes a webdataset "wids-shard-index-v1" file atomically:
 * {"__kind__": "wids-shard-index-v1", "wids_version": 1,
 *  "shardlist": [{"url": ..., "nsamples": ..., "filesize": ...}, ...]}
 * with the shards in the order given (callers pass them sorted by url, as
 * wids's own index tool writes them).  VC_EFATAL on I/O failure. */
enum vc_status wds_write_wids_index(const char *path, const struct wds_index_entry *shards,
                                    size_t n, struct vc_err *err);

#endif
