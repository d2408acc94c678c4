/* exec: a run from start to end: the session, the output folder's lock
 * and claim, and the executor the spec or the command line names.  The
 * phases themselves are phase_*.c; scheduling them is the executor's. */
#include "exec.h"

#include "executor.h"
#include "outdir.h"
#include "session.h"

#include <cjson/cJSON.h>
#include <string.h>

enum vc_status exec_run(struct spec *spec, const struct exec_opts *opts, struct exec_result *res,
                        struct vc_err *err)
{
    memset(res, 0, sizeof *res);
    const char *name = spec->executor ? spec->executor : "local";
    const struct executor_ops *ex = executor_find(name);
    if (!ex) {
        char known[256] = "";
        for (size_t i = 0; executor_table[i]; i++)
            snprintf(known + strlen(known), sizeof known - strlen(known), "%s%s", i ? ", " : "",
                     executor_table[i]->name);
        return vc_err_set(err, VC_EUSAGE, VC_REASON_bad_spec, "unknown executor '%s' (known: %s)",
                          name, known);
    }
    struct session ss;
    struct outdir od = { .lock_fd = -1 };
    enum vc_status rc = session_init(&ss, spec, opts->log, err);
    ss.executor_opts = opts->executor_opts;
    if (rc == VC_OK)
        rc = outdir_claim(spec, opts->force, &od, err);
    if (rc == VC_OK && ex->submits)
        outdir_share(&od);
    if (rc == VC_OK)
        rc = ex->run(&ss, res, err);
    outdir_release(&od);
    session_fini(&ss);
    return rc;
}
