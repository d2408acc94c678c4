/* vc_dl: optional shared libraries opened at their first use (dlopen), not
 * at process start.  Tesseract and poppler (with cairo and glib) pull in
 * some 60 libraries whose loading and relocation cost about 30 ms of every
 * process, more than a whole run's reduce on a few thousand samples, while
 * only a spec with an OCR stage or a PDF source calls into them.
 *
 * A user lists the functions it calls with an X-macro and keeps them in a
 * struct of pointers typed from the library's own header:
 *
 *   #define TESS_FNS(X, t) X(t, TessVersion) X(t, TessBaseAPICreate)
 *   static struct { TESS_FNS(VC_DL_MEMBER, ) } tess;
 *   static const struct vc_dl_fn tess_fns[] = { TESS_FNS(VC_DL_ENTRY, tess) };
 *   static struct vc_dl_lib tess_lib = VC_DL_LIB(VC_SONAME_TESSERACT, tess_fns);
 *   ... VC_TRY(vc_dl_load(&tess_lib, err)); tess.TessBaseAPICreate();
 *
 * The library stays loaded for the life of the process. */
#ifndef VC_CORE_VC_DL_H
#define VC_CORE_VC_DL_H

#include <stdbool.h>
#include <stddef.h>

#include "vc_err.h"

struct vc_dl_fn {
    const char *name;
    void *slot; /* the address of the function pointer to fill */
};

struct vc_dl_lib {
    const char *soname;
    const struct vc_dl_fn *fns;
    size_t n;
    bool tried, ok;
    char why[256];
};

#define VC_DL_MEMBER(t, f) __typeof__(f) *f;
#define VC_DL_ENTRY(t, f)  { #f, &t.f },
#define VC_DL_LIB(soname, fns)                                                                     \
    {                                                                                              \
        soname, fns, sizeof fns / sizeof fns[0], false, false, ""                                  \
    }

/* Opens lib->soname and fills every function pointer, once per process
 * (thread-safe); later calls only report the outcome.  VC_EFATAL naming
 * the library and what is missing when it cannot be opened or lacks a
 * function. */
enum vc_status vc_dl_load(struct vc_dl_lib *lib, struct vc_err *err);

#endif
