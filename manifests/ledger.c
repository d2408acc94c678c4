/* ledger: entries <-> JSON lines, and counting.  cJSON prints objects in
 * insertion order with a fixed number format, so the same entries give the
 * same bytes: the ledger is one of the byte-identical outputs of a run. */
#include "ledger.h"

#include "core/vc_utf8.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const state_names[LEDGER_N_STATES] = { "written", "rejected", "duplicate",
                                                          "error" };

const char *ledger_state_name(enum ledger_state s)
{
    return (unsigned)s < LEDGER_N_STATES ? state_names[s] : "unknown";
}

int ledger_state_from_name(const char *name)
{
    for (int i = 0; i < LEDGER_N_STATES; i++)
        if (strcmp(name, state_names[i]) == 0)
            return i;
    return -1;
}

static bool add_str(cJSON *o, const char *k, const char *v)
{
    return !v || cJSON_AddStringToObject(o, k, v);
}

static bool add_dup(cJSON *o, const struct ledger_entry *e)
{
    if (!e->dup_key && !e->dup_of)
        return true;
    cJSON *d = cJSON_AddObjectToObject(o, "dup_of");
    return d && add_str(d, "source", e->dup_source) && add_str(d, "file", e->dup_file) &&
           (!e->has_dup_index || cJSON_AddNumberToObject(d, "index", (double)e->dup_index)) &&
           add_str(d, "key", e->dup_key) && add_str(d, "out_key", e->dup_of) &&
           add_str(o, "method", e->dup_method) &&
           (!e->dup_measure || cJSON_AddNumberToObject(o, e->dup_measure, e->dup_value));
}

/* A raw string as its valid-UTF-8 text plus "<k>_hex" when needed; a
 * string read back from a line comes with its hex already. */
static bool add_bytes(cJSON *o, const char *k, const char *v, const char *hex)
{
    if (!hex)
        return vc_utf8_json_add(o, k, v ? v : "");
    char hex_name[32];
    snprintf(hex_name, sizeof hex_name, "%s_hex", k);
    return add_str(o, k, v ? v : "") && add_str(o, hex_name, hex);
}

cJSON *ledger_entry_to_json(const struct ledger_entry *e)
{
    cJSON *o = cJSON_CreateObject();
    bool ok = o && add_str(o, "source", e->source ? e->source : "") &&
              add_bytes(o, "file", e->file, e->file_hex) &&
              cJSON_AddNumberToObject(o, "index", (double)e->index) &&
              add_bytes(o, "key", e->key, e->key_hex) &&
              add_str(o, "state", ledger_state_name(e->state));
    if (ok && e->state == LEDGER_WRITTEN) {
        ok = add_str(o, "shard", e->shard) && add_str(o, "out_key", e->out_key) &&
             (e->copies <= 1 || cJSON_AddNumberToObject(o, "copies", (double)e->copies));
    } else if (ok) {
        ok = add_str(o, "stage", e->stage) && add_str(o, "reason", vc_reason_name(e->reason)) &&
             add_str(o, "filter", e->filter) &&
             (!e->has_score || (cJSON_AddNumberToObject(o, "score", e->score) &&
                                cJSON_AddNumberToObject(o, "threshold", e->threshold))) &&
             add_dup(o, e) && add_str(o, "message", e->message);
    }
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

static const char *get_str(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

enum vc_status ledger_entry_from_json(const cJSON *o, struct ledger_entry *e, struct vc_err *err)
{
    memset(e, 0, sizeof *e);
    const cJSON *idx = cJSON_GetObjectItemCaseSensitive(o, "index");
    const char *state = get_str(o, "state");
    int s = state ? ledger_state_from_name(state) : -1;
    e->source = get_str(o, "source");
    e->file = get_str(o, "file");
    e->file_hex = get_str(o, "file_hex");
    e->key = get_str(o, "key");
    e->key_hex = get_str(o, "key_hex");
    if (!cJSON_IsObject(o) || !cJSON_IsNumber(idx) || s < 0 || !e->source || !e->file || !e->key)
        return vc_err_set(err, VC_ESAMPLE, VC_REASON_json_invalid,
                          "not a ledger entry (source, file, index, key, state)");
    e->index = (uint64_t)idx->valuedouble;
    e->state = (enum ledger_state)s;
    e->shard = get_str(o, "shard");
    e->out_key = get_str(o, "out_key");
    const cJSON *copies = cJSON_GetObjectItemCaseSensitive(o, "copies");
    e->copies = cJSON_IsNumber(copies) ? (uint64_t)copies->valuedouble : 1;
    e->stage = get_str(o, "stage");
    const char *reason = get_str(o, "reason");
    int r = reason ? vc_reason_from_name(reason) : 0;
    e->reason = r < 0 ? VC_REASON_none : (enum vc_reason)r;
    e->message = get_str(o, "message");
    e->filter = get_str(o, "filter");
    const cJSON *score = cJSON_GetObjectItemCaseSensitive(o, "score");
    const cJSON *thr = cJSON_GetObjectItemCaseSensitive(o, "threshold");
    if (cJSON_IsNumber(score) && cJSON_IsNumber(thr)) {
        e->has_score = true;
        e->score = score->valuedouble;
        e->threshold = thr->valuedouble;
    }
    const cJSON *dup = cJSON_GetObjectItemCaseSensitive(o, "dup_of");
    if (cJSON_IsObject(dup)) {
        e->dup_source = get_str(dup, "source");
        e->dup_file = get_str(dup, "file");
        e->dup_key = get_str(dup, "key");
        e->dup_of = get_str(dup, "out_key");
        const cJSON *di = cJSON_GetObjectItemCaseSensitive(dup, "index");
        e->has_dup_index = cJSON_IsNumber(di);
        e->dup_index = e->has_dup_index ? (uint64_t)di->valuedouble : 0;
    }
    e->dup_method = get_str(o, "method");
    static const char *const measures[] = { "distance", "similarity" };
    for (int i = 0; i < 2; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, measures[i]);
        if (cJSON_IsNumber(v)) {
            e->dup_measure = measures[i];
            e->dup_value = v->valuedouble;
        }
    }
    if (e->state == LEDGER_WRITTEN ? !e->shard || !e->out_key : !e->stage || !reason)
        return vc_err_set(err, VC_ESAMPLE, VC_REASON_json_invalid,
                          "ledger entry in state %s lacks %s", state,
                          e->state == LEDGER_WRITTEN ? "shard/out_key" : "stage/reason");
    return VC_OK;
}

enum vc_status ledger_append_line(struct vc_buf *out, const struct ledger_entry *e,
                                  struct vc_err *err)
{
    cJSON *o = ledger_entry_to_json(e);
    char *s = o ? vc_utf8_json_print(o, false) : NULL;
    cJSON_Delete(o);
    int rc = s ? vc_buf_append(out, s, strlen(s)) : -1;
    if (rc == 0)
        rc = vc_buf_append(out, "\n", 1);
    free(s);
    if (rc != 0)
        return vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory, "ledger line");
    return VC_OK;
}

void ledger_totals_add(struct ledger_totals *t, enum ledger_state s)
{
    t->input++;
    switch (s) {
    case LEDGER_WRITTEN:
        t->written++;
        break;
    case LEDGER_REJECTED:
        t->rejected++;
        break;
    case LEDGER_DUPLICATE:
        t->duplicate++;
        break;
    case LEDGER_ERROR:
        t->error++;
        break;
    }
}

void ledger_totals_add_entry(struct ledger_totals *t, const struct ledger_entry *e)
{
    ledger_totals_add(t, e->state);
    if (e->state == LEDGER_ERROR && (unsigned)e->reason < LEDGER_MAX_REASONS)
        t->errors[e->reason]++;
}

void ledger_totals_breakdown(const struct ledger_totals *t, cJSON *into)
{
    cJSON_AddNumberToObject(into, "success_rate",
                            t->input ? (double)t->written / (double)t->input : 0.0);
    cJSON *errs = cJSON_AddObjectToObject(into, "errors");
    for (unsigned r = 0; errs && r < LEDGER_MAX_REASONS; r++)
        if (t->errors[r])
            cJSON_AddNumberToObject(errs, vc_reason_name((enum vc_reason)r), (double)t->errors[r]);
}

bool ledger_totals_balanced(const struct ledger_totals *t)
{
    return t->input == t->written + t->rejected + t->duplicate + t->error;
}

cJSON *ledger_totals_to_json(const struct ledger_totals *t)
{
    cJSON *o = cJSON_CreateObject();
    if (o && cJSON_AddNumberToObject(o, "input", (double)t->input) &&
        cJSON_AddNumberToObject(o, "written", (double)t->written) &&
        cJSON_AddNumberToObject(o, "rejected", (double)t->rejected) &&
        cJSON_AddNumberToObject(o, "duplicate", (double)t->duplicate) &&
        cJSON_AddNumberToObject(o, "error", (double)t->error))
        return o;
    cJSON_Delete(o);
    return NULL;
}

enum vc_status ledger_count_file(const char *path, struct ledger_totals *t, struct vc_err *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return vc_err_io(err, path);
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    uint64_t lineno = 0;
    enum vc_status rc = VC_OK;
    memset(t, 0, sizeof *t);
    while (rc == VC_OK && (n = getline(&line, &cap, f)) > 0) {
        lineno++;
        cJSON *o = cJSON_ParseWithLength(line, (size_t)n);
        struct ledger_entry e;
        rc = ledger_entry_from_json(o, &e, err);
        if (rc == VC_OK)
            ledger_totals_add_entry(t, &e);
        else
            vc_err_prefix(err, "%s:%llu", path, (unsigned long long)lineno);
        cJSON_Delete(o);
    }
    free(line);
    fclose(f);
    return rc;
}
