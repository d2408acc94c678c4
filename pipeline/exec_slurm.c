/* exec_slurm: phases as Slurm job arrays (see the header). */
#include "exec_slurm.h"

#include "core/vc_buf.h"
#include "core/vc_fs.h"
#include "core/vc_mem.h"
#include "manifests/commit.h"
#include "task.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Every array task's log gets this line, its job id and start time, before
 * the task runs. */
#define START_LINE "vlmcurate-task: start job"

/* A phase of this run: its tasks (total, when known) and name. */
struct phase {
    struct task_ref t;
    size_t n;
    bool known;
    char name[32];
};

static enum vc_status phases_list(const struct session *ss, struct phase **out, size_t *np,
                                  struct vc_err *err)
{
    struct task_ref *v = calloc(3 * ss->n_rounds + 3, sizeof *v);
    struct phase *p = calloc(3 * ss->n_rounds + 3, sizeof *p);
    if (!v || !p) {
        free(v);
        free(p);
        return vc_err_oom(err);
    }
    size_t n = 0;
    task_phases(ss, v, &n);
    for (size_t i = 0; i < n; i++) {
        size_t done;
        p[i].t = v[i];
        task_count(ss, &v[i], &p[i].n, &done, &p[i].known);
        task_phase_name(&v[i], p[i].name, sizeof p[i].name);
    }
    free(v);
    *out = p;
    *np = n;
    return VC_OK;
}

/* ---- options ---------------------------------------------------------- */

static char *slurm_path(const char *out_dir, const char *name)
{
    struct vc_buf b;
    vc_buf_init(&b, PATH_MAX * 2);
    vc_buf_printf(&b, "%s/_work/slurm%s%s", out_dir, *name ? "/" : "", name);
    if (b.failed) {
        vc_buf_free(&b);
        return NULL;
    }
    return b.data;
}

static const char *opt_str(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* Appends s single-quoted for the shell. */
static void sh_quote(struct vc_buf *b, const char *s)
{
    vc_buf_append(b, "'", 1);
    for (; *s; s++)
        if (*s == '\'')
            vc_buf_append(b, "'\\''", 4);
        else
            vc_buf_append(b, s, 1);
    vc_buf_append(b, "'", 1);
}

/* ---- submission ------------------------------------------------------- */

/* Runs argv, its stdout into out (NUL-terminated, trailing newline cut). */
static enum vc_status run_capture(char *const argv[], char *out, size_t n, struct vc_err *err)
{
    int fd[2];
    if (pipe(fd) != 0)
        return vc_err_set(err, VC_EFATAL, VC_REASON_io_error, "pipe: %s", strerror(errno));
    pid_t pid = fork();
    if (pid < 0) {
        close(fd[0]);
        close(fd[1]);
        return vc_err_set(err, VC_EFATAL, VC_REASON_io_error, "fork: %s", strerror(errno));
    }
    if (pid == 0) {
        dup2(fd[1], 1);
        close(fd[0]);
        close(fd[1]);
        execvp(argv[0], argv);
        fprintf(stderr, "vlmcurate: cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(fd[1]);
    size_t len = 0;
    ssize_t r;
    char drain[256];
    /* Past n - 1 bytes the rest is read and dropped, so the child never
     * blocks on a full pipe. */
    while ((r = read(fd[0], len + 1 < n ? out + len : drain,
                     len + 1 < n ? n - 1 - len : sizeof drain)) > 0 ||
           (r < 0 && errno == EINTR))
        if (r > 0 && len + 1 < n)
            len += (size_t)r;
    close(fd[0]);
    out[len] = 0;
    while (len && (out[len - 1] == '\n' || out[len - 1] == ' '))
        out[--len] = 0;
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return vc_err_set(err, VC_EFATAL, VC_REASON_io_error, "%s failed (exit %d)", argv[0],
                          WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    return VC_OK;
}

/* Slurm array index list of the pending tasks, runs collapsed (0-9,12). */
static void index_list(struct vc_buf *b, const bool *pending, size_t n)
{
    bool first = true;
    for (size_t i = 0; i < n;) {
        if (!pending[i]) {
            i++;
            continue;
        }
        size_t j = i;
        while (j + 1 < n && pending[j + 1])
            j++;
        vc_buf_printf(b, j > i ? "%s%zu-%zu" : "%s%zu", first ? "" : ",", i, j);
        first = false;
        i = j + 1;
    }
}

static void job_name(const struct session *ss, const struct phase *p, char *out, size_t n)
{
    snprintf(out, n, "vc-%.8s-%s", ss->spec->hash, p->name);
}

/* This run's queued array tasks, one "NAME INDEX STATE" line each (squeue
 * asked for this run's job names only). */
static enum vc_status queue_read(const struct session *ss, const struct phase *ph, size_t np,
                                 char *out, size_t n, struct vc_err *err)
{
    struct vc_buf names;
    vc_buf_init(&names, 1 << 16);
    vc_buf_printf(&names, "--name=vc-%.8s-reduce,vc-%.8s-finish", ss->spec->hash, ss->spec->hash);
    for (size_t k = 0; k < np; k++) {
        char name[64];
        job_name(ss, &ph[k], name, sizeof name);
        vc_buf_printf(&names, ",%s", name);
    }
    if (names.failed) {
        vc_buf_free(&names);
        return vc_err_oom(err);
    }
    char *argv[] = { "squeue", "-h", "-r", "-o", "%j %K %t", names.data, NULL };
    enum vc_status rc = run_capture(argv, out, n, err);
    vc_buf_free(&names);
    return rc;
}

static void sbatch_script(const struct session *ss, const cJSON *o, const struct phase *p,
                          const bool *pending, struct vc_buf *b)
{
    char name[64];
    job_name(ss, p, name, sizeof name);
    const char *logs = opt_str(o, "logs");
    vc_buf_printf(b, "#!/bin/bash\n#SBATCH --job-name=%s\n#SBATCH --array=", name);
    index_list(b, pending, p->n);
    const cJSON *maxr = cJSON_GetObjectItemCaseSensitive(o, "max_running");
    if (cJSON_IsNumber(maxr) && maxr->valuedouble >= 1)
        vc_buf_printf(b, "%%%d", maxr->valueint);
    vc_buf_printf(b, "\n#SBATCH --output=%s/%s-%%a.log\n#SBATCH --open-mode=append\n", logs,
                  p->name);
    vc_buf_printf(b, "#SBATCH --kill-on-invalid-dep=yes\n#SBATCH --nodes=1\n");
    static const char *const keys[][2] = {
        { "partition", "partition" }, { "account", "account" }, { "qos", "qos" },
        { "time", "time" },           { "mem", "mem" },         { NULL, NULL }
    };
    for (size_t i = 0; keys[i][0]; i++)
        if (opt_str(o, keys[i][0]))
            vc_buf_printf(b, "#SBATCH --%s=%s\n", keys[i][1], opt_str(o, keys[i][0]));
    const cJSON *cpus = cJSON_GetObjectItemCaseSensitive(o, "cpus_per_task");
    if (cJSON_IsNumber(cpus))
        vc_buf_printf(b, "#SBATCH --cpus-per-task=%d\n", cpus->valueint);
    const cJSON *line;
    cJSON_ArrayForEach(
        line, cJSON_GetObjectItemCaseSensitive(o, "sbatch_lines")) if (cJSON_IsString(line))
        vc_buf_printf(b, "#SBATCH %s\n", line->valuestring);
    /* The line `status` finds a task's latest attempt by (exec_slurm_status). */
    vc_buf_printf(b,
                  "echo \"%s ${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID} at $(date +%%s) on "
                  "$(hostname)\"\n",
                  START_LINE);
    sh_quote(b, opt_str(o, "binary"));
    vc_buf_printf(b, " task ");
    sh_quote(b, ss->spec->out_dir);
    vc_buf_printf(b,
                  " %s \"$SLURM_ARRAY_TASK_ID\" ${SLURM_CPUS_PER_TASK:+--threads "
                  "\"$SLURM_CPUS_PER_TASK\"}",
                  p->name);
    /* The PLAN job submits the phases whose size the plan decides, by the
     * same `run` command (its options are those of this submission). */
    if (p->t.phase == TASK_PLAN) {
        vc_buf_printf(b, " &&\n  exec ");
        sh_quote(b, opt_str(o, "binary"));
        vc_buf_printf(b, " run ");
        sh_quote(b, opt_str(o, "spec"));
        vc_buf_printf(b, " --quiet --executor slurm --out ");
        sh_quote(b, ss->spec->out_dir);
        static const char *const flags[][2] = { { "partition", "--partition" },
                                                { "account", "--account" },
                                                { "qos", "--qos" },
                                                { "time", "--time" },
                                                { "mem", "--mem" },
                                                { "logs", "--logs" },
                                                { NULL, NULL } };
        for (size_t i = 0; flags[i][0]; i++)
            if (opt_str(o, flags[i][0])) {
                vc_buf_printf(b, " %s ", flags[i][1]);
                sh_quote(b, opt_str(o, flags[i][0]));
            }
        if (cJSON_IsNumber(cpus))
            vc_buf_printf(b, " --cpus-per-task %d", cpus->valueint);
        if (cJSON_IsNumber(maxr))
            vc_buf_printf(b, " --max-running %d", maxr->valueint);
        cJSON_ArrayForEach(line, cJSON_GetObjectItemCaseSensitive(o, "sbatch_lines"))
        {
            vc_buf_printf(b, " --sbatch-line ");
            sh_quote(b, cJSON_IsString(line) ? line->valuestring : "");
        }
    }
    vc_buf_printf(b, "\n");
}

/* Appends "PHASE JOBID EPOCH INDICES" to OUT/_work/slurm/jobs.txt: which
 * array job runs which tasks of a phase, for `status` (a later line for
 * the same task supersedes an earlier one). */
static enum vc_status jobs_append(const struct session *ss, const struct phase *p, const char *job,
                                  const bool *pending, struct vc_err *err)
{
    struct vc_buf line;
    vc_buf_init(&line, (size_t)1 << 30);
    vc_buf_printf(&line, "%s %s %lld ", p->name, job, (long long)time(NULL));
    index_list(&line, pending, p->n);
    vc_buf_printf(&line, "\n");
    char *path = slurm_path(ss->spec->out_dir, "jobs.txt");
    enum vc_status rc = line.failed || !path ? vc_err_oom(err) : VC_OK;
    if (rc == VC_OK && (rc = vc_fs_append_lines(path, line.data, line.len, err)) != VC_OK)
        vc_err_prefix(err, "job %s was submitted", job);
    free(path);
    vc_buf_free(&line);
    return rc;
}

/* Submits every phase from the first task not committed on, up to the
 * last one whose size is known.  From one of this run's jobs (the PLAN
 * job) the queue is not checked: that job is in it. */
static enum vc_status submit(struct session *ss, const cJSON *o, bool dry_run, struct vc_err *err)
{
    char prefix[32];
    snprintf(prefix, sizeof prefix, "vc-%.8s-", ss->spec->hash);
    const char *self = getenv("SLURM_JOB_NAME");
    bool from_job = self && !strncmp(self, prefix, strlen(prefix));
    struct phase *ph;
    size_t np;
    VC_TRY(phases_list(ss, &ph, &np, err));
    char *dir = slurm_path(ss->spec->out_dir, "");
    enum vc_status rc = dir ? VC_OK : vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "oom");
    if (rc == VC_OK && !dry_run)
        rc = vc_fs_mkdirs(dir, err);
    if (rc == VC_OK && !dry_run)
        rc = vc_fs_mkdirs(opt_str(o, "logs"), err);
    if (rc == VC_OK && !from_job && !dry_run) {
        char q[256];
        rc = queue_read(ss, ph, np, q, sizeof q, err);
        if (rc == VC_OK && *q)
            rc = vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec,
                            "jobs of this run are still queued (squeue: %s): wait for them or "
                            "scancel them before resubmitting",
                            q);
    }
    char dep[64] = "";
    size_t submitted = 0;
    for (size_t k = 0; rc == VC_OK && k < np; k++) {
        const struct phase *p = &ph[k];
        if (!p->known)
            break;
        bool *pending = calloc(p->n + 1, sizeof *pending);
        size_t n_pending = 0;
        if (!pending) {
            rc = vc_err_oom(err);
            break;
        }
        for (size_t i = 0; i < p->n; i++)
            if ((pending[i] = !task_done(ss, &p->t, i)))
                n_pending++;
        if (n_pending) {
            struct vc_buf s;
            vc_buf_init(&s, (size_t)1 << 30);
            sbatch_script(ss, o, p, pending, &s);
            char *path = vc_malloc_array(strlen(dir) + strlen(p->name) + 8, 1);
            if (s.failed || !path) {
                rc = vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "sbatch script");
            } else if (dry_run) {
                printf("# %s: %zu of %zu tasks%s%s\n%s\n", p->name, n_pending, p->n,
                       *dep ? ", after " : "", dep, s.data);
                snprintf(dep, sizeof dep, "%s", p->name);
            } else {
                sprintf(path, "%s/%s.sh", dir, p->name);
                char depopt[96];
                snprintf(depopt, sizeof depopt, "--dependency=afterok:%s", dep);
                char *argv[] = { "sbatch", "--parsable", depopt, path, NULL };
                if (!*dep)
                    argv[2] = path, argv[3] = NULL;
                rc = vc_fs_write_atomic(path, s.data, s.len, err);
                if (rc == VC_OK)
                    rc = run_capture(argv, dep, sizeof dep, err);
                /* --parsable prints JOBID[;CLUSTER] */
                dep[strcspn(dep, ";")] = 0;
                if (rc == VC_OK)
                    rc = jobs_append(ss, p, dep, pending, err);
                if (rc == VC_OK && ss->log)
                    fprintf(ss->log, "vlmcurate: submitted %s: job %s, %zu of %zu tasks\n", p->name,
                            dep, n_pending, p->n);
            }
            free(path);
            vc_buf_free(&s);
            submitted++;
        }
        free(pending);
    }
    if (rc == VC_OK && !submitted && ss->log)
        fprintf(ss->log, "vlmcurate: every task of this run is committed\n");
    free(dir);
    free(ph);
    return rc;
}

static enum vc_status slurm_run(struct session *ss, struct exec_result *res, struct vc_err *err)
{
    res->submitted = true;
    cJSON *o = ss->executor_opts ? cJSON_Duplicate(ss->executor_opts, true) : cJSON_CreateObject();
    char *logs_default = slurm_path(ss->spec->out_dir, "logs");
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    enum vc_status rc = VC_OK;
    if (!o || !logs_default || n <= 0)
        rc = vc_err_set(err, VC_EFATAL, VC_REASON_io_error, "cannot find our own binary");
    if (rc == VC_OK) {
        self[n] = 0;
        cJSON_DeleteItemFromObjectCaseSensitive(o, "binary");
        cJSON_AddStringToObject(o, "binary", self);
        if (!opt_str(o, "logs"))
            cJSON_AddStringToObject(o, "logs", logs_default);
    }
    const cJSON *dry = cJSON_GetObjectItemCaseSensitive(o, "dry_run");
    bool dry_run = cJSON_IsTrue(dry);
    cJSON_DeleteItemFromObjectCaseSensitive(o, "dry_run");
    char *path = slurm_path(ss->spec->out_dir, "options.json");
    char *dir = slurm_path(ss->spec->out_dir, "");
    if (rc == VC_OK && !dry_run)
        rc = vc_fs_mkdirs(dir, err);
    if (rc == VC_OK && !dry_run)
        rc = commit_write_json(path, o, true, err);
    if (rc == VC_OK)
        rc = submit(ss, o, dry_run, err);
    free(dir);
    free(path);
    free(logs_default);
    cJSON_Delete(o);
    return rc;
}

const struct executor_ops exec_slurm_ops = {
    .name = "slurm",
    .submits = true,
    .summary = "one Slurm job array per phase (sbatch; see `vlmcurate status`)",
    .run = slurm_run,
};

/* ---- status ------------------------------------------------------------- */

/* One line of jobs.txt (jobs_append). */
struct job_rec {
    char phase[32], job[32];
    const char *indices; /* into the file's text */
};

/* Whether i is in a Slurm index list such as "0-3,7". */
static bool list_has(const char *list, size_t i)
{
    for (const char *p = list; *p;) {
        char *end;
        unsigned long long a = strtoull(p, &end, 10), b = a;
        if (end == p)
            return false;
        if (*end == '-')
            b = strtoull(end + 1, &end, 10);
        if (i >= a && i <= b)
            return true;
        if (*end != ',')
            return false;
        p = end + 1;
    }
    return false;
}

/* *text owned (the records point into it). */
static size_t jobs_read(const struct session *ss, char **text, struct job_rec **out)
{
    char *path = slurm_path(ss->spec->out_dir, "jobs.txt");
    size_t size = 0, n = 0;
    struct vc_err err;
    *text = NULL;
    *out = NULL;
    if (!path || vc_fs_read_file(path, (size_t)1 << 30, text, &size, &err) != VC_OK) {
        free(path);
        return 0;
    }
    free(path);
    size_t lines = 0;
    for (size_t i = 0; i < size; i++)
        lines += (*text)[i] == '\n';
    struct job_rec *v = calloc(lines + 1, sizeof *v);
    for (char *line = *text; v && *line;) {
        char *nl = strchr(line, '\n');
        if (!nl)
            break;
        *nl = 0;
        int at = 0;
        if (sscanf(line, "%31s %31s %*d %n", v[n].phase, v[n].job, &at) == 2 && at > 0) {
            v[n].indices = line + at;
            n++;
        }
        line = nl + 1;
    }
    *out = v;
    return v ? n : 0;
}

/* What a task's log says of its latest attempt (the last START_LINE). */
struct attempt {
    bool started, committed;
    char job[48]; /* ARRAYJOB_INDEX */
    long long start_s;
    unsigned long long samples;
    double secs;
    const char *why; /* how it ended when it did not commit, NULL: unknown */
};

static void attempt_read(const char *log, struct attempt *a)
{
    memset(a, 0, sizeof *a);
    int fd = open(log, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    /* The tail is enough: an attempt's own lines are few. */
    static char buf[1 << 16];
    off_t end = lseek(fd, 0, SEEK_END);
    off_t from = end > (off_t)sizeof buf - 1 ? end - (off_t)sizeof buf + 1 : 0;
    ssize_t r = end > 0 ? pread(fd, buf, (size_t)(end - from), from) : 0;
    close(fd);
    buf[r > 0 ? r : 0] = 0;
    const char *last = NULL;
    for (const char *h = strstr(buf, START_LINE); h; h = strstr(h + 1, START_LINE))
        last = h;
    if (!last || sscanf(last + strlen(START_LINE), " %47s at %lld", a->job, &a->start_s) != 2)
        return;
    a->started = true;
    const char *c = strstr(last, ": committed, ");
    if (c && sscanf(c, ": committed, %llu samples in %lf s", &a->samples, &a->secs) == 2)
        a->committed = true;
    else if (strstr(last, "exceeded memory limit") || strstr(last, "Exceeded job memory") ||
             strstr(last, "oom-kill") || strstr(last, "oom_kill"))
        a->why = "out of memory";
    else if (strstr(last, "DUE TO TIME LIMIT"))
        a->why = "time limit";
    else if (strstr(last, "CANCELLED"))
        a->why = "cancelled";
}

/* One phase's tasks by state, from the commit markers, the queue, the
 * submissions and the tasks' logs. */
struct phase_state {
    size_t done, running, pending, failed, cancelled, unsubmitted;
    unsigned long long samples; /* of the committed attempts with a log */
    long long first_s;          /* their earliest start */
    double last_s;              /* their latest end */
    size_t timed;
};

static void task_state(const struct session *ss, const struct phase *p, size_t i, const char *q,
                       const struct job_rec *jobs, size_t n_jobs, const char *logs,
                       struct phase_state *st, struct vc_buf *lines)
{
    char log[PATH_MAX];
    snprintf(log, sizeof log, "%s/%s-%zu.log", logs, p->name, i);
    struct attempt a;
    attempt_read(log, &a);
    if (task_done(ss, &p->t, i)) {
        st->done++;
        if (a.committed) {
            if (!st->timed || a.start_s < st->first_s)
                st->first_s = a.start_s;
            if ((double)a.start_s + a.secs > st->last_s)
                st->last_s = (double)a.start_s + a.secs;
            st->samples += a.samples;
            st->timed++;
        }
        return;
    }
    char name[64], line[96];
    job_name(ss, p, name, sizeof name);
    snprintf(line, sizeof line, "%s %zu ", name, i);
    const char *hit = strstr(q, line);
    while (hit && hit != q && hit[-1] != '\n')
        hit = strstr(hit + 1, line);
    if (hit) {
        char state = hit[strlen(line)];
        if (state == 'R' || state == 'C')
            st->running++;
        else
            st->pending++;
        return;
    }
    const struct job_rec *j = NULL;
    for (size_t k = n_jobs; k-- > 0 && !j;)
        if (!strcmp(jobs[k].phase, p->name) && list_has(jobs[k].indices, i))
            j = &jobs[k];
    if (!j) {
        st->unsubmitted++;
        return;
    }
    size_t jl = strlen(j->job);
    bool ran = a.started && !strncmp(a.job, j->job, jl) && a.job[jl] == '_';
    const char *why = !ran    ? "never started: cancelled while queued or after an earlier phase "
                                "failed"
                      : a.why ? a.why
                              : "it ran and committed nothing: see the log";
    bool cancelled = !ran || (a.why && !strcmp(a.why, "cancelled"));
    if (cancelled)
        st->cancelled++;
    else
        st->failed++;
    vc_buf_printf(lines, "    %s %s %zu: %s (job %s_%zu, %s)\n", cancelled ? "cancelled" : "failed",
                  p->name, i, log, j->job, i, why);
}

void exec_slurm_status(const struct session *ss, FILE *out)
{
    char *path = slurm_path(ss->spec->out_dir, "options.json");
    cJSON *o = NULL;
    struct vc_err err;
    bool slurm = path && vc_fs_exists(path) && commit_read_json(path, &o, &err) == VC_OK &&
                 opt_str(o, "logs");
    free(path);
    struct phase *ph = NULL;
    size_t np = 0;
    if (!slurm || phases_list(ss, &ph, &np, &err) < 0) {
        cJSON_Delete(o);
        return;
    }
    /* Bounded: past it, queued tasks would show as cancelled. */
    static char q[1 << 22];
    q[0] = 0;
    if (queue_read(ss, ph, np, q, sizeof q, &err) < 0)
        fprintf(out, "slurm: squeue failed (%s): queued tasks show as failed or cancelled\n",
                err.msg);
    char *text;
    struct job_rec *jobs;
    size_t n_jobs = jobs_read(ss, &text, &jobs);
    long long now = (long long)time(NULL);
    for (size_t k = 0; k < np && ph[k].known; k++) {
        const struct phase *p = &ph[k];
        struct phase_state st = { 0 };
        struct vc_buf fl;
        vc_buf_init(&fl, 1 << 20);
        for (size_t i = 0; i < p->n; i++)
            task_state(ss, p, i, q, jobs, n_jobs, opt_str(o, "logs"), &st, &fl);
        fprintf(out,
                "slurm %-10s %zu done, %zu running, %zu pending, %zu failed, %zu cancelled, %zu "
                "not submitted",
                p->name, st.done, st.running, st.pending, st.failed, st.cancelled, st.unsubmitted);
        /* The rate of the committed attempts, start of the first to end of
         * the last; the ETA assumes the tasks left cost what those did. */
        if (st.timed) {
            double span = st.last_s - (double)st.first_s;
            fprintf(out, "; %.1f samples/s", (double)st.samples / (span > 1 ? span : 1));
            if (st.done < p->n && st.running + st.pending)
                fprintf(out, ", ETA %.0f s",
                        (double)(now - st.first_s) / (double)st.done * (double)(p->n - st.done));
        }
        fprintf(out, "\n%s", fl.data ? fl.data : "");
        vc_buf_free(&fl);
    }
    free(jobs);
    free(text);
    free(ph);
    cJSON_Delete(o);
}
