/* vc_err: status and reason names, and the message buffer helpers.  No
 * global state: every message lives in the caller's struct vc_err. */
#include "vc_err.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

enum vc_status vc_err_set(struct vc_err *err, enum vc_status status, enum vc_reason reason,
                          const char *fmt, ...)
{
    if (!err)
        return status;
    err->status = status;
    err->reason = reason;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    return status;
}

enum vc_status vc_err_oom(struct vc_err *err)
{
    return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "out of memory");
}

enum vc_status vc_err_io(struct vc_err *err, const char *path)
{
    return vc_err_set(err, VC_EFATAL, VC_REASON_io_error, "%s: %s", path, strerror(errno));
}

enum vc_status vc_err_prefix(struct vc_err *err, const char *fmt, ...)
{
    if (!err)
        return VC_EFATAL;
    char head[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(head, sizeof head, fmt, ap);
    va_end(ap);
    /* Built by hand: snprintf of two bounded strings into one trips
     * -Wformat-truncation, and truncation is exactly what we want here. */
    char old[sizeof err->msg];
    memcpy(old, err->msg, sizeof old);
    size_t hn = strlen(head), cap = sizeof err->msg - 1;
    if (hn > cap)
        hn = cap;
    memcpy(err->msg, head, hn);
    size_t pos = hn;
    for (const char *p = ": "; *p && pos < cap; p++)
        err->msg[pos++] = *p;
    size_t on = strnlen(old, sizeof old);
    if (on > cap - pos)
        on = cap - pos;
    memcpy(err->msg + pos, old, on);
    err->msg[pos + on] = '\0';
    return err->status;
}

void vc_err_clear(struct vc_err *err)
{
    if (!err)
        return;
    err->status = VC_OK;
    err->reason = VC_REASON_none;
    err->msg[0] = '\0';
}

const char *vc_reason_name(enum vc_reason reason)
{
    switch (reason) {
#define VC_REASON_CASE_(name, code)                                                                \
    case code:                                                                                     \
        return #name;
        VC_REASON_LIST(VC_REASON_CASE_)
#undef VC_REASON_CASE_
    }
    return "unknown";
}

int vc_reason_from_name(const char *name)
{
#define VC_REASON_CMP_(rname, code)                                                                \
    if (strcmp(name, #rname) == 0)                                                                 \
        return code;
    VC_REASON_LIST(VC_REASON_CMP_)
#undef VC_REASON_CMP_
    return -1;
}

const char *vc_status_name(enum vc_status status)
{
    switch (status) {
    case VC_OK:
        return "ok";
    case VC_EOF:
        return "eof";
    case VC_REJECT:
        return "reject";
    case VC_ESAMPLE:
        return "sample_error";
    case VC_ESHARD:
        return "shard_error";
    case VC_EUSAGE:
        return "usage_error";
    case VC_EFATAL:
        return "fatal";
    }
    return "unknown";
}
