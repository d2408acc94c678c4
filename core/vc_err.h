/* vc_err: the one status enum of the project, the stable reason codes written
 * into ledgers, and the error struct that carries a message back to the
 * caller.  Library code never prints and never exits: it fills a
 * struct vc_err owned by the caller and returns a status.
 *
 * Values of enum vc_status and enum vc_reason are pinned: they are written
 * to ledgers and manifests by name and compared across runs.  Add new
 * reasons at the end of VC_REASON_LIST; never renumber or rename one. */
#ifndef VC_CORE_VC_ERR_H
#define VC_CORE_VC_ERR_H

#include <stddef.h>

/* Graded like libarchive's: >= 0 is success, the more negative the wider the
 * blast radius of the failure. */
enum vc_status {
    VC_OK = 0,
    VC_EOF = 1,       /* no more items: not an error */
    VC_REJECT = -10,  /* this sample is filtered out (quality, policy) */
    VC_ESAMPLE = -15, /* this sample is broken input; record it, go on */
    VC_ESHARD = -25,  /* this input shard cannot continue; others can */
    VC_EUSAGE = -30,  /* bad spec, arguments or configuration */
    VC_EFATAL = -40,  /* the run must stop: I/O failure, out of memory, bug */
};

/* Stable reason codes.  X(name, code): `name` is what ledgers print. */
#define VC_REASON_LIST(X)                                                                          \
    X(none, 0)                                                                                     \
    X(io_error, 1)                                                                                 \
    X(out_of_memory, 2)                                                                            \
    X(bad_spec, 3)                                                                                 \
    X(corrupt_archive, 4)                                                                          \
    X(unsafe_path, 5)                                                                              \
    X(entry_too_large, 6)                                                                          \
    X(image_too_large, 7)                                                                          \
    X(decode_error, 8)                                                                             \
    X(unsupported_format, 9)                                                                       \
    X(truncated, 10)                                                                               \
    X(text_not_utf8, 11)                                                                           \
    X(field_too_long, 12)                                                                          \
    X(json_invalid, 13)                                                                            \
    X(missing_field, 14)                                                                           \
    X(missing_image, 15)                                                                           \
    X(too_many_fields, 16)                                                                         \
    X(mem_cap, 17)                                                                                 \
    X(filtered, 18)                                                                                \
    X(mix_unused, 19)                                                                              \
    X(duplicate, 20)                                                                               \
    X(bad_checkpoint, 21)                                                                          \
    X(bad_tokenizer, 22)                                                                           \
    X(encode_error, 23)                                                                            \
    X(not_a_file, 24)                                                                              \
    X(error_rate, 25)                                                                              \
    X(http_403, 26)                                                                                \
    X(http_404, 27)                                                                                \
    X(http_429, 28)                                                                                \
    X(http_4xx, 29)                                                                                \
    X(http_5xx, 30)                                                                                \
    X(http_other, 31)                                                                              \
    X(timeout, 32)                                                                                 \
    X(dns, 33)                                                                                     \
    X(tls, 34)                                                                                     \
    X(connect_failed, 35)                                                                          \
    X(too_many_redirects, 36)                                                                      \
    X(too_large, 37)                                                                               \
    X(not_an_image, 38)                                                                            \
    X(disallowed_by_header, 39)                                                                    \
    X(opted_out, 40)                                                                               \
    X(bad_url, 41)                                                                                 \
    X(network_error, 42)                                                                           \
    X(engine_error, 43)                                                                            \
    X(too_long, 44)                                                                                \
    X(bad_member_name, 45)                                                                         \
    X(not_regular_file, 46)                                                                        \
    X(not_fetched, 47)                                                                             \
    X(empty, 60)                                                                                   \
    X(repeated_field, 61)

enum vc_reason {
#define VC_REASON_ENUM_(name, code) VC_REASON_##name = code,
    VC_REASON_LIST(VC_REASON_ENUM_)
#undef VC_REASON_ENUM_
};

/* Filled by the callee, owned by the caller (usually on its stack). */
struct vc_err {
    enum vc_status status;
    enum vc_reason reason;
    char msg[512];
};

/* Records status, reason and a printf-style message; returns `status` so a
 * callee can write `return vc_err_set(err, VC_ESAMPLE, ...)`.  `err` may be
 * NULL.  Appends nothing: the newest message wins. */
enum vc_status vc_err_set(struct vc_err *err, enum vc_status status, enum vc_reason reason,
                          const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "out of memory"):
 * the one failure every module reports the same way. */
enum vc_status vc_err_oom(struct vc_err *err);
/* VC_EFATAL io_error "path: strerror(errno)": a file step that failed just
 * now (errno still set by it). */
enum vc_status vc_err_io(struct vc_err *err, const char *path);

/* Prepends "context: " to the message already in `err` (e.g. a file name or
 * a sample key) and returns err->status. */
enum vc_status vc_err_prefix(struct vc_err *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

void vc_err_clear(struct vc_err *err);

/* Stable names; "unknown" for values outside the list. */
const char *vc_reason_name(enum vc_reason reason);
const char *vc_status_name(enum vc_status status);
/* Reverse lookup for ledger readers; returns -1 when unknown. */
int vc_reason_from_name(const char *name);

#define VC_TRY(expr)                                                                               \
    do {                                                                                           \
        enum vc_status vc_try_rc_ = (expr);                                                        \
        if (vc_try_rc_ < 0)                                                                        \
            return vc_try_rc_;                                                                     \
    } while (0)

#endif
