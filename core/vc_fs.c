/* vc_fs: durable writes.  The rename trick is only crash-safe with an
 * fsync of the data before the rename and of the folder after it (see
 * shared/research/reliability-anchors.md §5.1); both are here so no caller
 * can forget one. */
#include "vc_fs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum vc_status vc_fs_mkdirs(const char *path, struct vc_err *err)
{
    char buf[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof buf)
        return vc_err_set(err, VC_EFATAL, VC_REASON_io_error, "bad folder path '%s'", path);
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != '\0')
            continue;
        char saved = buf[i];
        buf[i] = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST)
            return vc_err_set(err, VC_EFATAL, VC_REASON_io_error, "cannot create folder '%s': %s",
                              buf, strerror(errno));
        buf[i] = saved;
    }
    return VC_OK;
}

enum vc_status vc_fs_fsync_parent(const char *path, struct vc_err *err)
{
    char dir[4096];
    const char *slash = strrchr(path, '/');
    if (!slash) {
        dir[0] = '.';
        dir[1] = '\0';
    } else {
        size_t n = (size_t)(slash - path);
        if (n >= sizeof dir)
            return vc_err_set(err, VC_EFATAL, VC_REASON_io_error, "path too long: '%s'", path);
        memcpy(dir, path, n ? n : 1);
        dir[n ? n : 1] = '\0';
    }
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0)
        return vc_err_set(err, VC_EFATAL, VC_REASON_io_error, "cannot open folder '%s': %s", dir,
                          strerror(errno));
    int rc = fsync(fd);
    close(fd);
    if (rc != 0)
        return vc_err_set(err, VC_EFATAL, VC_REASON_io_error, "fsync of folder '%s' failed: %s",
                          dir, strerror(errno));
    return VC_OK;
}

enum vc_status vc_fs_rename_pending(const char *tmp_path, const char *path, struct vc_err *err)
{
    if (rename(tmp_path, path) != 0)
        return vc_err_set(err, VC_EFATAL, VC_REASON_io_error, "cannot rename '%s' to '%s': %s",
                          tmp_path, path, strerror(errno));
    return VC_OK;
}

enum vc_status vc_fs_commit_rename(const char *tmp_path, const char *path, struct vc_err *err)
{
    VC_TRY(vc_fs_rename_pending(tmp_path, path, err));
    return vc_fs_fsync_parent(path, err);
}

static enum vc_status write_whole(const char *path, const void *data, size_t size, bool durable,
                                  struct vc_err *err)
{
    char tmp[4096];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp", path) >= sizeof tmp)
        return vc_err_set(err, VC_EFATAL, VC_REASON_io_error, "path too long: '%s'", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return vc_err_set(err, VC_EFATAL, VC_REASON_io_error, "cannot create '%s': %s", tmp,
                          strerror(errno));
    const unsigned char *p = data;
    size_t left = size;
    while (left > 0) {
        ssize_t put = write(fd, p, left);
        if (put < 0 && errno == EINTR)
            continue;
        if (put <= 0) {
            int e = errno;
            close(fd);
            unlink(tmp);
            return vc_err_set(err, VC_EFATAL, VC_REASON_io_error, "cannot write '%s': %s", tmp,
                              strerror(e));
        }
        p += put;
        left -= (size_t)put;
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        int e = errno;
        unlink(tmp);
        return vc_err_set(err, VC_EFATAL, VC_REASON_io_error, "cannot flush '%s': %s", tmp,
                          strerror(e));
    }
    return durable ? vc_fs_commit_rename(tmp, path, err) : vc_fs_rename_pending(tmp, path, err);
}

enum vc_status vc_fs_write_atomic(const char *path, const void *data, size_t size,
                                  struct vc_err *err)
{
    return write_whole(path, data, size, true, err);
}

enum vc_status vc_fs_write_pending(const char *path, const void *data, size_t size,
                                   struct vc_err *err)
{
    return write_whole(path, data, size, false, err);
}

enum vc_status vc_fs_read_file(const char *path, size_t max_bytes, char **out, size_t *size,
                               struct vc_err *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return vc_err_set(err, VC_EFATAL, VC_REASON_io_error, "cannot open '%s': %s", path,
                          strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return vc_err_set(err, VC_EFATAL, VC_REASON_not_a_file, "'%s' is not a regular file", path);
    }
    if ((uint64_t)st.st_size > max_bytes) {
        close(fd);
        return vc_err_set(err, VC_ESAMPLE, VC_REASON_field_too_long,
                          "'%s' is %lld bytes, over the limit of %zu", path, (long long)st.st_size,
                          max_bytes);
    }
    size_t len = (size_t)st.st_size;
    char *buf = malloc(len + 1);
    if (!buf) {
        close(fd);
        return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "no memory for '%s'", path);
    }
    size_t got = 0;
    while (got < len) {
        ssize_t r = read(fd, buf + got, len - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    if (got != len) {
        free(buf);
        return vc_err_set(err, VC_EFATAL, VC_REASON_io_error, "short read of '%s'", path);
    }
    buf[len] = '\0';
    *out = buf;
    *size = len;
    return VC_OK;
}

int vc_fs_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

bool vc_fs_write_all(int fd, const void *data, size_t n)
{
    const unsigned char *p = data;
    while (n > 0) {
        /* Linux caps one write at ~2 GiB anyway. */
        ssize_t w = write(fd, p, n < (1u << 30) ? n : (1u << 30));
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        p += w;
        n -= (size_t)w;
    }
    return true;
}

/* *end = the length of fd's first size bytes up to and including their last
 * '\n' (0: none); false when they cannot be read. */
static bool whole_lines_end(int fd, off_t size, off_t *end)
{
    char buf[4096];
    for (off_t to = size; to > 0;) {
        off_t from = to > (off_t)sizeof buf ? to - (off_t)sizeof buf : 0;
        ssize_t r = pread(fd, buf, (size_t)(to - from), from);
        if (r < 0 && errno == EINTR)
            continue;
        if (r != to - from)
            return false;
        for (off_t i = r; i > 0; i--)
            if (buf[i - 1] == '\n') {
                *end = from + i;
                return true;
            }
        to = from;
    }
    *end = 0;
    return true;
}

enum vc_status vc_fs_append_lines(const char *path, const void *data, size_t size,
                                  struct vc_err *err)
{
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    struct stat st;
    off_t end = 0;
    bool ok = fd >= 0 && fstat(fd, &st) == 0 && whole_lines_end(fd, st.st_size, &end) &&
              (end == st.st_size || ftruncate(fd, end) == 0) && lseek(fd, end, SEEK_SET) == end &&
              vc_fs_write_all(fd, data, size) && fsync(fd) == 0;
    enum vc_status rc = ok ? VC_OK : vc_err_io(err, path);
    if (fd >= 0)
        close(fd);
    return rc;
}

bool vc_fs_finish_tmp(int fd, const char *tmp_path, const char *path, bool ok)
{
    ok = ok && fd >= 0 && fsync(fd) == 0;
    if (fd >= 0)
        ok = close(fd) == 0 && ok;
    struct vc_err ignored;
    if (ok)
        ok = vc_fs_commit_rename(tmp_path, path, &ignored) >= 0;
    if (!ok)
        unlink(tmp_path);
    return ok;
}

enum vc_status vc_fs_close(FILE *f, const char *path, enum vc_status rc, struct vc_err *err)
{
    if (f && fclose(f) != 0 && rc == VC_OK)
        return vc_err_io(err, path);
    return rc;
}

enum vc_status vc_fs_sync_close(FILE *f, const char *path, bool keep, enum vc_status rc,
                                struct vc_err *err)
{
    if (!f)
        return rc;
    if (!keep || rc != VC_OK) {
        fclose(f);
        return rc;
    }
    if (fflush(f) != 0 || fsync(fileno(f)) != 0) {
        rc = vc_err_io(err, path);
        fclose(f);
        return rc;
    }
    return vc_fs_close(f, path, rc, err);
}
