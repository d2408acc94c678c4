/* wds_write: writes one webdataset shard that every reader accepts: plain
 * ustar members (no pax or GNU long-name records), ASCII names of at most
 * 100 bytes, the members of a sample contiguous, fixed metadata (mtime 0,
 * uid/gid 0, mode 0644, empty user/group names) so identical samples give
 * identical bytes.  Optionally the whole shard is gzip- or zstd-compressed.
 *
 * Crash safety: bytes go to "<path>.tmp"; wds_writer_commit fsyncs, renames
 * onto <path> and fsyncs the folder.  Alongside it writes the DALI index
 * "<path without .tar*>.idx" (uncompressed shards only: DALI needs
 * offsets into the raw tar).  Nothing is visible under the final names
 * before commit. */
#ifndef VC_STAGES_WDS_WRITE_H
#define VC_STAGES_WDS_WRITE_H

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

struct wds_shard_stats {
    uint64_t n_samples;
    uint64_t n_bytes;     /* size of the file on disk */
    uint64_t n_tar_bytes; /* size of the uncompressed tar */
    char sha256[65];      /* of the file on disk, lowercase hex */
};

struct wds_writer;

/* Owned: finish with wds_writer_commit or wds_writer_abort. */
enum vc_status wds_writer_open(const char *path, enum wds_compression c, struct wds_writer **out,
                               struct vc_err *err);

/* Appends every field of `s` as "<s->key>.<field name>" in the order given.
 * VC_ESAMPLE (field_too_long) when a member name would exceed 100 bytes
 * or the key contains a dot; the shard is unchanged in that case.
 * *tar_offset (may be NULL) receives the byte offset of the sample's first
 * header in the uncompressed tar. */
enum vc_status wds_writer_add(struct wds_writer *w, const struct sample *s, uint64_t *tar_offset,
                              struct vc_err *err);

/* Ends the archive, fsyncs, renames into place, writes the DALI index,
 * fills *stats (may be NULL) and frees the writer whatever the outcome. */
enum vc_status wds_writer_commit(struct wds_writer *w, struct wds_shard_stats *stats,
                                 struct vc_err *err);
/* Removes the temporary file and frees the writer. */
void wds_writer_abort(struct wds_writer *w);

#endif
