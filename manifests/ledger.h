/* ledger: the account of every input sample.  Each input sample ends in
 * exactly one state, written as one JSON line of OUT/ledger.jsonl:
 *
 *   written   source, file, index, key  + shard, out_key (copies when a
 *             mixture drew it more than once)
 *   rejected  ... + stage, reason (+ filter, score, threshold, message)
 *   duplicate ... + stage, reason, dup_of {source, file, key, out_key}
 *             (the sample kept instead: where it was read, its key there and
 *             the output key it was written under) + method and distance or
 *             similarity when the stage gave them
 *   error     ... + stage, reason, message
 *
 * `index` is the sample's ordinal in its input unit (a shard's sample
 * number, a list's record number); `key` the key as the source spelled
 * it.  Reasons are the stable names of enum vc_reason.  The totals over a
 * ledger satisfy input == written + rejected + duplicate + error. */
#ifndef VC_MANIFESTS_LEDGER_H
#define VC_MANIFESTS_LEDGER_H

#include <stdbool.h>
#include <stdint.h>

#include "core/vc_buf.h"
#include "core/vc_err.h"

struct cJSON;

enum ledger_state {
    LEDGER_WRITTEN = 0,
    LEDGER_REJECTED,
    LEDGER_DUPLICATE,
    LEDGER_ERROR,
};
#define LEDGER_N_STATES 4

/* All strings borrowed; NULL means absent.  `file` and `key` are raw
 * bytes; a line shows them as valid UTF-8 and adds "file_hex" / "key_hex"
 * with the exact bytes when they are not (key_hex / file_hex here carry
 * those of a line read back, so a rewrite keeps them). */
struct ledger_entry {
    const char *source, *file, *file_hex;
    uint64_t index;
    const char *key, *key_hex;
    enum ledger_state state;
    const char *shard, *out_key; /* written */
    uint64_t copies;             /* written; 0 or 1 are not printed */
    const char *stage;           /* rejected, duplicate, error */
    enum vc_reason reason;
    const char *message;
    const char *filter;
    bool has_score;
    double score, threshold;
    /* duplicate: the kept sample (out key only when it was written), how
     * it was found (method) and how close it is (`measure` names the
     * value: "distance" or "similarity"). */
    const char *dup_source, *dup_file, *dup_key, *dup_of;
    bool has_dup_index;
    uint64_t dup_index;
    const char *dup_method, *dup_measure;
    double dup_value;
};

/* Error lines are also counted by reason, for run.json's breakdown. */
enum { LEDGER_MAX_REASONS = 128 };
struct ledger_totals {
    uint64_t input, written, rejected, duplicate, error;
    uint64_t errors[LEDGER_MAX_REASONS]; /* error lines by enum vc_reason */
};

/* "written", "rejected", "duplicate", "error"; -1 from the reverse when
 * the name is unknown. */
const char *ledger_state_name(enum ledger_state s);
int ledger_state_from_name(const char *name);

/* The entry as an owned cJSON object (keys in a fixed order), NULL on OOM. */
struct cJSON *ledger_entry_to_json(const struct ledger_entry *e);
/* Reads an entry back; strings borrow from `obj`.  VC_ESAMPLE json_invalid
 * when a required key is missing or has the wrong type. */
enum vc_status ledger_entry_from_json(const struct cJSON *obj, struct ledger_entry *e,
                                      struct vc_err *err);
/* Appends the entry's line (compact JSON + '\n') to `out`. */
enum vc_status ledger_append_line(struct vc_buf *out, const struct ledger_entry *e,
                                  struct vc_err *err);

void ledger_totals_add(struct ledger_totals *t, enum ledger_state s);
/* ledger_totals_add, and for an error line its reason too. */
void ledger_totals_add_entry(struct ledger_totals *t, const struct ledger_entry *e);
/* Adds "success_rate" (written / input; 0 without input) and "errors"
 * ({reason: error lines}, in reason-code order) to the object `into`. */
void ledger_totals_breakdown(const struct ledger_totals *t, struct cJSON *into);
bool ledger_totals_balanced(const struct ledger_totals *t);
/* {"input":..,"written":..,"rejected":..,"duplicate":..,"error":..}; owned. */
struct cJSON *ledger_totals_to_json(const struct ledger_totals *t);
/* Counts the states of a ledger file line by line.  VC_ESAMPLE
 * json_invalid (naming the line) on a line that is not an entry. */
enum vc_status ledger_count_file(const char *path, struct ledger_totals *t, struct vc_err *err);

#endif
