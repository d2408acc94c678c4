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
#include <sys/sysmacros.h>
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
        return errno == ENOENT ? VC_OK : vc_err_io(err, dir);
    enum vc_status rc = VC_OK;
    struct dirent *de;
    while (rc == VC_OK && (de = readdir(d))) {
        if (de->d_name[0] == '.' || (pick && !pick(de->d_name)))
            continue;
        char *p = path_join(dir, de->d_name);
        struct stat st;
        if (p && lstat(p, &st) == 0 && S_ISREG(st.st_mode) && unlink(p) != 0)
            rc = vc_err_io(err, p);
        free(p);
    }
    closedir(d);
    return rc;
}

/* *found = the first input file of the spec that lies directly in `dir`
 * and that pick accepts (any when pick is NULL), else NULL: --force must
 * never remove what the run itself reads (a spec reading a folder of
 * `*-NNNNNN.tar` shards, run with --out at that folder). */
static enum vc_status input_in(const struct spec *s, const char *dir, bool (*pick)(const char *),
                               const char **found, struct vc_err *err)
{
    *found = NULL;
    char *real_dir = realpath(dir, NULL);
    if (!real_dir)
        return errno == ENOMEM ? vc_err_oom(err) : VC_OK; /* no folder, nothing to remove */
    enum vc_status rc = VC_OK;
    const char *prev = NULL;
    for (size_t j = 0; j < s->n_sources; j++) {
        for (size_t i = 0; !*found && rc == VC_OK && i < s->sources[j].n_units; i++) {
            const char *file = s->sources[j].units[i].file;
            if (prev && !strcmp(prev, file))
                continue; /* the units of one list file */
            prev = file;
            char *real = realpath(file, NULL);
            if (!real) {
                if (errno == ENOMEM)
                    rc = vc_err_oom(err);
                continue;
            }
            char *slash = strrchr(real, '/');
            *slash = '\0';
            if (!strcmp(slash == real ? "/" : real, real_dir) && (!pick || pick(slash + 1)))
                *found = file;
            free(real);
        }
    }
    free(real_dir);
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
        return vc_err_oom(err);
    enum vc_status rc = VC_OK;
    cJSON *held = NULL;
    bool same = commit_valid(marker, s->hash, NULL);
    if (!same && (vc_fs_exists(marker) || dir_has_foreign(s->out_dir))) {
        /* A run of an edited spec: saying what changed lets the user undo
         * an edit instead of reaching for --force, which throws the work
         * away. */
        char at[256];
        bool known =
            commit_read_json(marker, &held, err) == VC_OK &&
            spec_first_difference(s, cJSON_GetObjectItemCaseSensitive(held, "spec"), at, sizeof at);
        if (!force && known) {
            rc = vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec,
                            "%s holds a run of another spec (the first difference: '%s'); undo "
                            "the change to resume it, pass --force to delete its outputs and "
                            "start over, or choose another --out",
                            s->out_dir, at);
        } else if (!force) {
            rc = vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec,
                            "%s is not empty and holds no run of this spec; pass --force to "
                            "replace the run outputs in it, or choose another --out",
                            s->out_dir);
        } else {
            const char *in;
            rc = input_in(s, s->work_dir, NULL, &in, err);
            if (rc == VC_OK && !in)
                rc = input_in(s, s->out_dir, is_run_output, &in, err);
            if (rc == VC_OK && in)
                rc = vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec,
                                "--force would delete '%s', an input of this spec, from %s; "
                                "choose another --out",
                                in, s->out_dir);
        }
        if (rc == VC_OK && force) {
            rc = remove_files(s->work_dir, NULL, err);
            if (rc == VC_OK)
                rc = remove_files(s->out_dir, is_run_output, err);
        }
    }
    /* The marker also says where the spec's relative paths resolve, so a
     * task started elsewhere (vlmcurate task) rebuilds the same spec. */
    char *dir = rc == VC_OK ? realpath(s->spec_dir[0] ? s->spec_dir : ".", NULL) : NULL;
    if (rc == VC_OK && !dir)
        rc = vc_err_set(err, VC_EFATAL, VC_REASON_io_error, "spec folder '%s': %s", s->spec_dir,
                        strerror(errno));
    if (rc == VC_OK) {
        cJSON *doc = cJSON_CreateObject();
        if (!doc || !cJSON_AddStringToObject(doc, "spec_hash", s->hash) ||
            !cJSON_AddStringToObject(doc, "spec_dir", dir) ||
            !cJSON_AddItemToObject(doc, "spec", cJSON_Duplicate(s->json, 1)))
            rc = vc_err_oom(err);
        if (rc == VC_OK)
            rc = commit_write_json(marker, doc, true, err);
        cJSON_Delete(doc);
    }
    free(dir);
    free(marker);
    cJSON_Delete(held);
    return rc;
}

/* An exclusive holder (a run) writes its pid into the lock file, for the
 * refusal message, and empties it when done; shared holders (tasks) leave
 * it empty. */
static enum vc_status lock(const struct spec *s, struct outdir *od, int mode, unsigned wait_ms,
                           struct vc_err *err)
{
    char *path = path_join(s->work_dir, ".lock");
    if (!path)
        return vc_err_oom(err);
    enum vc_status rc = VC_OK;
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    int got = fd < 0 ? -1 : flock(fd, mode | LOCK_NB);
    for (unsigned waited = 0; got != 0 && fd >= 0 && errno == EWOULDBLOCK && waited < wait_ms;
         waited += 50) {
        usleep(50 * 1000);
        got = flock(fd, mode | LOCK_NB);
    }
    if (fd < 0) {
        rc = vc_err_set(err, VC_EFATAL, VC_REASON_io_error, "cannot create '%s': %s", path,
                        strerror(errno));
    } else if (got != 0) {
        int e = errno;
        char pid[32] = "";
        ssize_t k = e == EWOULDBLOCK ? pread(fd, pid, sizeof pid - 1, 0) : 0;
        pid[k > 0 ? k : 0] = '\0';
        pid[strcspn(pid, "\n")] = '\0';
        if (e == EWOULDBLOCK)
            rc = vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec,
                            "%s is in use by another vlmcurate run (pid %s) or task; wait for "
                            "it to end or choose another --out",
                            s->out_dir, pid[0] ? pid : "unknown");
        else
            rc = vc_err_set(err, VC_EFATAL, VC_REASON_io_error, "cannot lock '%s': %s", path,
                            strerror(e));
        close(fd);
        fd = -1;
    } else if (mode == LOCK_EX) {
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
    VC_TRY(lock(s, od, LOCK_EX, 0, err));
    od->exclusive = true;
    return claim(s, force, err);
}

void outdir_share(struct outdir *od)
{
    if (od->lock_fd < 0 || !od->exclusive)
        return;
    /* Not atomic (flock(2)): for a moment nobody holds the lock, which
     * only lets a task in early; a `run` arriving then is refused by the
     * submission's own check of the queue. */
    int unused = ftruncate(od->lock_fd, 0);
    (void)unused;
    if (flock(od->lock_fd, LOCK_SH | LOCK_NB) == 0)
        od->exclusive = false;
}

enum vc_status outdir_attach(const struct spec *s, struct outdir *od, struct vc_err *err)
{
    od->lock_fd = -1;
    od->exclusive = false;
    char *marker = path_join(s->work_dir, "spec.json");
    bool ok = marker && commit_valid(marker, s->hash, NULL);
    free(marker);
    if (!ok)
        return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec,
                          "%s holds no run of this spec: start it with vlmcurate run", s->out_dir);
    /* A Slurm submission holds the lock exclusively for the milliseconds
     * of its claim (then shared, outdir_share): a task started meanwhile
     * waits that out instead of failing. */
    return lock(s, od, LOCK_SH, OUTDIR_ATTACH_WAIT_MS, err);
}

void outdir_release(struct outdir *od)
{
    if (od->lock_fd >= 0) {
        /* A stale pid would only make a later refusal message wrong. */
        int unused = od->exclusive ? ftruncate(od->lock_fd, 0) : 0;
        (void)unused;
        close(od->lock_fd);
    }
    od->lock_fd = -1;
}

void outdir_holders(const char *out_dir, long *run_pid, size_t *n_tasks)
{
    *run_pid = 0;
    *n_tasks = 0;
    char *work = path_join(out_dir, "_work");
    char *path = work ? path_join(work, ".lock") : NULL;
    struct stat st;
    bool have = path && stat(path, &st) == 0;
    free(path);
    free(work);
    FILE *f = have ? fopen("/proc/locks", "r") : NULL;
    if (!f)
        return;
    /* "1: FLOCK  ADVISORY  WRITE 12286 fe:00:10979523 0 EOF"; a waiter's
     * line has "->" after the number and holds nothing. */
    char line[256], kind[16], mode[16];
    long pid;
    unsigned maj, min;
    unsigned long long ino;
    while (fgets(line, sizeof line, f)) {
        int got =
            sscanf(line, "%*d: %15s %*s %15s %ld %x:%x:%llu", kind, mode, &pid, &maj, &min, &ino);
        if (got != 6 || strcmp(kind, "FLOCK") != 0 || maj != major(st.st_dev) ||
            min != minor(st.st_dev) || ino != (unsigned long long)st.st_ino)
            continue;
        if (!strcmp(mode, "WRITE"))
            *run_pid = pid;
        else
            ++*n_tasks;
    }
    fclose(f);
}

enum vc_status outdir_load_spec(const char *out_dir, const struct spec_overrides *ov,
                                struct spec **out, struct vc_err *err)
{
    size_t n = strlen(out_dir) + 32;
    char *marker = malloc(n);
    cJSON *doc = NULL;
    if (!marker)
        return vc_err_oom(err);
    snprintf(marker, n, "%s/_work/spec.json", out_dir);
    enum vc_status rc = commit_read_json(marker, &doc, err);
    const cJSON *spec = cJSON_GetObjectItemCaseSensitive(doc, "spec");
    const cJSON *dir = cJSON_GetObjectItemCaseSensitive(doc, "spec_dir");
    if (rc != VC_OK || !cJSON_IsObject(spec) || !cJSON_IsString(dir)) {
        if (rc == VC_EOF)
            vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec, "%s holds no run (no %s)", out_dir,
                       marker);
        else if (rc == VC_OK)
            vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec,
                       "%s holds no run that this version started (no spec_dir in %s)", out_dir,
                       marker);
        cJSON_Delete(doc);
        free(marker);
        return VC_EUSAGE;
    }
    char *text = cJSON_PrintUnformatted(spec);
    struct spec_overrides o = ov ? *ov : (struct spec_overrides){ 0 };
    o.out_dir = out_dir;
    o.inputs_checked = true; /* by the `run` that submitted it */
    rc = text ? spec_parse(text, strlen(text), dir->valuestring, &o, out, err) : vc_err_oom(err);
    if (rc < 0)
        vc_err_prefix(err, "%s", marker);
    free(text);
    cJSON_Delete(doc);
    free(marker);
    return rc;
}
