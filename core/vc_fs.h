/* vc_fs: the file-system steps of crash safety, written once: create
 * folders, write a whole file atomically (temp name, fsync, rename, fsync
 * the folder), and read a small file with a size cap.  Every commit marker
 * and manifest in the project goes through vc_fs_write_atomic. */
#ifndef VC_CORE_VC_FS_H
#define VC_CORE_VC_FS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "vc_err.h"

/* mkdir -p; VC_EFATAL io_error naming the path on failure. */
enum vc_status vc_fs_mkdirs(const char *path, struct vc_err *err);
/* fsync of the folder that holds `path` (so a rename inside it is durable). */
enum vc_status vc_fs_fsync_parent(const char *path, struct vc_err *err);
/* Writes data to "<path>.tmp", fsyncs, renames onto path, fsyncs the folder.
 * Readers see either the old file or the whole new one, never a part. */
enum vc_status vc_fs_write_atomic(const char *path, const void *data, size_t size,
                                  struct vc_err *err);
/* Renames an already-written and fsynced temp file into place durably. */
enum vc_status vc_fs_commit_rename(const char *tmp_path, const char *path, struct vc_err *err);
/* The same two without the folder's fsync, for a task's side file (a spill,
 * a signature file) whose task commits afterwards with a marker written by
 * vc_fs_write_atomic into the same folder: that folder fsync makes every
 * rename before it durable as well, so a task pays one folder fsync, not
 * one per file.  Until the marker is durable a crash may lose the rename,
 * and the task, having no marker, is done again. */
enum vc_status vc_fs_rename_pending(const char *tmp_path, const char *path, struct vc_err *err);
enum vc_status vc_fs_write_pending(const char *path, const void *data, size_t size,
                                   struct vc_err *err);
/* Reads a whole file of at most max_bytes.  *out is owned (free()), with a
 * NUL appended (not counted in *size).  VC_ESAMPLE field_too_long when the
 * file is larger, VC_EFATAL io_error when it cannot be read. */
enum vc_status vc_fs_read_file(const char *path, size_t max_bytes, char **out, size_t *size,
                               struct vc_err *err);
/* Writes all n bytes to fd (retrying short writes and EINTR, in chunks of
 * at most 1 GiB); false on any error. */
bool vc_fs_write_all(int fd, const void *data, size_t n);
/* Ends a best-effort temp-file write: when ok, fsync and close fd and
 * rename tmp_path to path (vc_fs_commit_rename); otherwise (or on any
 * failure) close fd and delete tmp_path.  fd may be -1.  True when path now
 * holds the file. */
bool vc_fs_finish_tmp(int fd, const char *tmp_path, const char *path, bool ok);
/* Appends whole lines (data ends in '\n') to a line file, creating it
 * (0644), and fsyncs it.  A last line without its '\n' (the writer was
 * killed mid-append) is cut off first, as a model stage's cache is on
 * resume: appended after it, the new line would be glued onto the torn
 * one and misread.  VC_EFATAL io_error naming the path. */
enum vc_status vc_fs_append_lines(const char *path, const void *data, size_t size,
                                  struct vc_err *err);
/* 1 if path exists (any type), 0 otherwise. */
int vc_fs_exists(const char *path);

/* fclose(f) (nothing when f is NULL) as the last step of writing `path`:
 * a failed close (buffered data that never reached the file) becomes
 * VC_EFATAL io_error naming the path unless rc already says what failed
 * first.  Returns the resulting status. */
enum vc_status vc_fs_close(FILE *f, const char *path, enum vc_status rc, struct vc_err *err);
/* The end of a temp file that is about to be renamed into place: when keep
 * and rc is VC_OK, flushes and fsyncs f before the checked vc_fs_close, so
 * the rename never publishes a file whose data is still in a buffer;
 * otherwise (the temp file is about to be deleted) only closes it, and a
 * failure to close changes nothing.  Errors name path.  Returns the
 * resulting status. */
enum vc_status vc_fs_sync_close(FILE *f, const char *path, bool keep, enum vc_status rc,
                                struct vc_err *err);

#endif
