/* vc_dl: dlopen once under a lock; the outcome is kept in the lib. */
#include "vc_dl.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

static pthread_mutex_t vc_dl_lock = PTHREAD_MUTEX_INITIALIZER;

static void vc_dl_open(struct vc_dl_lib *lib)
{
    void *h = dlopen(lib->soname, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *why = dlerror();
        snprintf(lib->why, sizeof lib->why, "%s", why ? why : lib->soname);
        return;
    }
    for (size_t i = 0; i < lib->n; i++) {
        /* dlsym on the handle also searches the library's dependencies
         * (cairo's and glib's functions through poppler-glib's). */
        void *p = dlsym(h, lib->fns[i].name);
        if (!p) {
            snprintf(lib->why, sizeof lib->why, "%s has no function %s", lib->soname,
                     lib->fns[i].name);
            return;
        }
        /* POSIX: a function's address comes back as a void *. */
        memcpy(lib->fns[i].slot, &p, sizeof p);
    }
    lib->ok = true;
}

enum vc_status vc_dl_load(struct vc_dl_lib *lib, struct vc_err *err)
{
    pthread_mutex_lock(&vc_dl_lock);
    if (!lib->tried) {
        lib->tried = true;
        vc_dl_open(lib);
    }
    bool ok = lib->ok;
    pthread_mutex_unlock(&vc_dl_lock);
    if (ok)
        return VC_OK;
    return vc_err_set(err, VC_EFATAL, VC_REASON_io_error, "cannot load %s: %s", lib->soname,
                      lib->why);
}
