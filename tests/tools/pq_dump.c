/* pq_dump: prints a parquet file through stages/pq as JSON lines, for
 * test_parquet.py to compare with what an independent writer stored.
 *   pq_dump FILE [FIRST [COUNT]]
 * Line 1: {"rows":N,"columns":[{"name":..,"type":..,"optional":..},..]};
 * then one object per row from FIRST (COUNT rows, default all): integers
 * exact, floating point with 17 digits, byte arrays as JSON strings.
 * Exit 2 with the reader's message on stderr when it refuses the file. */
#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stages/pq.h"

static void print_value(const struct pq_value *v)
{
    if (v->null) {
        fputs("null", stdout);
        return;
    }
    switch (v->type) {
    case PQ_BOOLEAN:
        fputs(v->v.b ? "true" : "false", stdout);
        break;
    case PQ_INT32:
    case PQ_INT64:
        if (v->is_unsigned)
            printf("%" PRIu64, v->v.u);
        else
            printf("%" PRId64, v->v.i);
        break;
    case PQ_FLOAT:
    case PQ_DOUBLE:
        printf("%.17g", v->v.d);
        break;
    default: {
        char *s = malloc((size_t)v->v.s.n + 1);
        if (!s)
            exit(1);
        memcpy(s, v->v.s.p, v->v.s.n);
        s[v->v.s.n] = '\0';
        cJSON *j = cJSON_CreateString(s);
        char *out = cJSON_PrintUnformatted(j);
        fputs(out, stdout);
        free(out);
        cJSON_Delete(j);
        free(s);
    }
    }
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: pq_dump FILE [FIRST [COUNT]]\n");
        return 1;
    }
    uint64_t first = argc > 2 ? strtoull(argv[2], NULL, 10) : 0;
    uint64_t count = argc > 3 ? strtoull(argv[3], NULL, 10) : UINT64_MAX;
    struct vc_err err = { 0 };
    struct pq_file *f;
    if (pq_open(argv[1], &f, &err) < 0) {
        fprintf(stderr, "%s [%s]\n", err.msg, vc_reason_name(err.reason));
        return 2;
    }
    size_t nc = pq_num_columns(f);
    printf("{\"rows\":%" PRIu64 ",\"columns\":[", pq_num_rows(f));
    struct pq_cursor **cur = calloc(nc ? nc : 1, sizeof *cur);
    int rc = 0;
    for (size_t i = 0; i < nc; i++) {
        const struct pq_column *c = pq_column_at(f, i);
        printf("%s{\"name\":\"%s\",\"type\":\"%s\",\"optional\":%s}", i ? "," : "", c->name,
               pq_type_name(c->type), c->optional ? "true" : "false");
        if (pq_cursor_open(f, i, first, &cur[i], &err) < 0) {
            fprintf(stderr, "%s [%s]\n", err.msg, vc_reason_name(err.reason));
            rc = 2;
        }
    }
    printf("]}\n");
    for (uint64_t r = 0; rc == 0 && r < count; r++) {
        for (size_t i = 0; i < nc; i++) {
            struct pq_value v;
            enum vc_status st = pq_cursor_next(cur[i], &v, &err);
            if (st == VC_EOF && i == 0)
                goto done;
            if (st != VC_OK) {
                fprintf(stderr, "%s [%s]\n", st == VC_EOF ? "column ended early" : err.msg,
                        vc_reason_name(err.reason));
                rc = 2;
                goto done;
            }
            printf("%s\"%s\":", i ? "," : "{", pq_column_at(f, i)->name);
            print_value(&v);
        }
        printf("}\n");
    }
done:
    for (size_t i = 0; i < nc; i++)
        pq_cursor_close(cur[i]);
    free(cur);
    pq_close(f);
    return rc;
}
