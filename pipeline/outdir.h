/* outdir: who owns an output folder.  A run holds an exclusive lock
 * (flock on OUT/_work/.lock) from start to end, so a second run on the same
 * folder is refused instead of corrupting the first one's files; and a
 * folder is claimed for one spec (OUT/_work/spec.json), so a rerun of the
 * same spec resumes while anything else needs --force.
 *
 * Tasks of a run started one by one (vlmcurate task) take the lock
 * shared.  The lock is advisory and local to the machine that holds the folder's
 * file system (flock on NFS is per client): cluster tasks coordinate
 * through commit markers, not through it. */
#ifndef VC_PIPELINE_OUTDIR_H
#define VC_PIPELINE_OUTDIR_H

#include <stdbool.h>

#include "core/vc_err.h"
#include "spec.h"

/* Names of the files a run writes in OUT besides the shards, for docs and
 * for --force. */
#define OUTDIR_LEDGER_NAME "ledger.jsonl"
#define OUTDIR_RUN_NAME    "run.json"
#define OUTDIR_WIDS_NAME   "wids-index.json"

struct outdir {
    int lock_fd; /* -1 when not held */
    bool exclusive;
};

/* Creates OUT/_work, takes the lock and claims the folder: one that holds
 * a run of this spec resumes, an empty one starts; anything else is
 * VC_EUSAGE unless `force`, which removes the run outputs found there (our
 * file names only, never other files).  VC_EUSAGE naming the folder and
 * the pid of the holder when another run has the lock.  Release with
 * outdir_release, also after a failure. */
enum vc_status outdir_claim(const struct spec *s, bool force, struct outdir *od,
                            struct vc_err *err);
/* Turns a claim's exclusive lock shared: an executor that only submits
 * the tasks (exec_slurm.h) lets them start while it submits. */
void outdir_share(struct outdir *od);

/* How long a task waits for an exclusive holder before it is refused: a
 * submission's claim lasts milliseconds; a local `run` much longer. */
#define OUTDIR_ATTACH_WAIT_MS 3000

/* For one task of a run (vlmcurate task): a shared lock, so tasks run
 * side by side while a `run` on the folder is refused, and the check that
 * the folder was claimed for this spec.  VC_EUSAGE when it was not, or
 * when a run holds the folder. */
enum vc_status outdir_attach(const struct spec *s, struct outdir *od, struct vc_err *err);
void outdir_release(struct outdir *od);

/* Who holds OUT's lock now, from the kernel's table of locks (/proc/locks)
 * without taking it, so a look never delays a run: *run_pid the pid of an
 * exclusive holder (0: none), *n_tasks the shared holders.  Both 0 when
 * the table cannot be read.  Local to this machine, as the lock is. */
void outdir_holders(const char *out_dir, long *run_pid, size_t *n_tasks);

/* Rebuilds the spec a run of OUT was started with (OUT/_work/spec.json
 * keeps it and the canonical folder its relative paths resolve against),
 * with `ov` applied and OUT as its output folder; the input files are not
 * looked at (stage_ctx.inputs_checked).  *out owned: spec_free.
 * VC_EUSAGE when OUT holds no run started by this version. */
enum vc_status outdir_load_spec(const char *out_dir, const struct spec_overrides *ov,
                                struct spec **out, struct vc_err *err);

#endif
