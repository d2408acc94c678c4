/* outdir: the folder lock and the claim.  Removes only regular files
 * whose names a run writes (never recurses, never follows a link), and
 * only under --force. */
#include "outdir.h"

#include "core/vc_fs.h"
#include "manifests/commit.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

static char *path_join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s", dir, name);
    return p;
}

/* Files a run writes at the top of OUT (and may remove under --force). */
static bool is_run_output(const char *name)
{
    if (!strcmp(name, OUTDIR_LEDGER_NAME) || !strcmp(name, OUTDIR_LEDGER_NAME ".tmp") ||
        !strcmp(name, OUTDIR_RUN_NAME) || !strcmp(name, OUTDIR_WIDS_NAME))
        return true;
    const char *dash = strrchr(name, '-');
    if (!dash)
        return false;
    for (int i = 1; i <= 6; i++)
        if (dash[i] < '0' || dash[i] > '9')
            return false;
    const char *ext = dash + 7;
    return !strcmp(ext, ".tar") || !strcmp(ext, ".tar.gz") || !strcmp(ext, ".tar.zst") ||
           !strcmp(ext, ".idx") || !strcmp(ext, ".json") || !strncmp(ext, ".tar.tmp", 8) ||
           !strcmp(ext, ".json.tmp");
}

/* Removes the regular files of `dir` that pick(name) accepts (all of them
 * when pick is NULL) but dot files (the lock); never recurses. */
static enum vc_status remove_files(const char *dir, bool (*pick)(const char *), struct vc_err *err)
{
    DIR *d = opendir(dir);
    if (!d)
        return errno == ENOENT
                   ? VC_OK
                   : vc_err_set(err, VC_EFATAL, VC_REASON_io_error, "%s: %s", dir, strerror(errno));
    enum vc_status rc = VC_OK;
    struct dirent *de;
    while (rc == VC_OK && (de = readdir(d))) {
        if (de->d_name[0] == '.' || (pick && !pick(de->d_name)))
            continue;
        char *p = path_join(dir, de->d_name);
        struct stat st;
        if (p && lstat(p, &st) == 0 && S_ISREG(st.st_mode) && unlink(p) != 0)
            rc = vc_err_set(err, VC_EFATAL, VC_REASON_io_error, "%s: %s", p, strerror(errno));
        free(p);
    }
    closedir(d);
    return rc;
}

static bool dir_has_foreign(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return false;
    bool found = false;
    struct dirent *de;
    while (!found && (de = readdir(d)))
        found = strcmp(de->d_name, ".") && strcmp(de->d_name, "..") && strcmp(de->d_name, "_work");
    closedir(d);
    return found;
}

/* Claims OUT for this spec: a folder of the same spec resumes, an empty
 * one starts, anything else needs --force (which clears our files only). */
static enum vc_status claim(const struct spec *s, bool force, struct vc_err *err)
{
    char *marker = path_join(s->work_dir, "spec.json");
    if (!marker)
        return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "out of memory");
    enum vc_status rc = VC_OK;
    bool same = commit_valid(marker, s->hash, NULL);
    if (!same && (vc_fs_exists(marker) || dir_has_foreign(s->out_dir))) {
        if (!force) {
            rc = vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec,
                            "%s is not empty and holds no run of this spec; pass --force to "
                            "replace the run outputs in it, or choose another --out",
                            s->out_dir);
        } else {
            rc = remove_files(s->work_dir, NULL, err);
            if (rc == VC_OK)
                rc = remove_files(s->out_dir, is_run_output, err);
        }
    }
    if (rc == VC_OK && !same) {
        cJSON *doc = cJSON_CreateObject();
        if (!doc || !cJSON_AddStringToObject(doc, "spec_hash", s->hash) ||
            !cJSON_AddItemToObject(doc, "spec", cJSON_Duplicate(s->json, 1)))
            rc = vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "out of memory");
        if (rc == VC_OK)
            rc = commit_write_json(marker, doc, true, err);
        cJSON_Delete(doc);
    }
    free(marker);
    return rc;
}

/* The holder writes its pid into the lock file, for the refusal message. */
static enum vc_status lock(const struct spec *s, struct outdir *od, struct vc_err *err)
{
    char *path = path_join(s->work_dir, ".lock");
    if (!path)
        return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "out of memory");
    enum vc_status rc = VC_OK;
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        rc = vc_err_set(err, VC_EFATAL, VC_REASON_io_error, "cannot create '%s': %s", path,
                        strerror(errno));
    } else if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        char pid[32] = "";
        ssize_t k = e == EWOULDBLOCK ? pread(fd, pid, sizeof pid - 1, 0) : 0;
        pid[k > 0 ? k : 0] = '\0';
        pid[strcspn(pid, "\n")] = '\0';
        if (e == EWOULDBLOCK)
            rc = vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec,
                            "%s is in use by another vlmcurate run (pid %s); wait for it to end "
                            "or choose another --out",
                            s->out_dir, pid[0] ? pid : "unknown");
        else
            rc = vc_err_set(err, VC_EFATAL, VC_REASON_io_error, "cannot lock '%s': %s", path,
                            strerror(e));
        close(fd);
        fd = -1;
    } else {
        char pid[32];
        int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
        if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)n, 0) != n)
            rc = vc_err_set(err, VC_EFATAL, VC_REASON_io_error, "cannot write '%s': %s", path,
                            strerror(errno));
    }
    od->lock_fd = fd;
    free(path);
    return rc;
}

enum vc_status outdir_claim(const struct spec *s, bool force, struct outdir *od, struct vc_err *err)
{
    od->lock_fd = -1;
    VC_TRY(vc_fs_mkdirs(s->work_dir, err));
    VC_TRY(lock(s, od, err));
    return claim(s, force, err);
}

void outdir_release(struct outdir *od)
{
    if (od->lock_fd >= 0)
        close(od->lock_fd);
    od->lock_fd = -1;
}
