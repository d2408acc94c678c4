/* vc_test: runs the cases of one suite and owns the per-case scratch
 * folder: removed when its case passes, kept for inspection when it fails
 * (each run's folders are new, named by process id, so kept ones would
 * otherwise pile up run after run).  Exit status 0 only if every selected
 * case passed, 77 when every one of them skipped (vc_test_skip). */
#include "vc_test.h"

#include <stdbool.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

int vc_test_failures;
static const char *current_case = "all";
static char scratch[4096];   /* the current case's folder; "" until asked for */
static const char *skip_why; /* set by vc_test_skip during the current case */

static int remove_tree(const char *path)
{
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
    return system(cmd);
}

int vc_test_run(const struct vc_test_case *cases, size_t n, int argc, char **argv)
{
    int ran = 0, skipped = 0;
    for (size_t i = 0; i < n; i++) {
        if (argc > 1 && strcmp(argv[1], cases[i].name) != 0)
            continue;
        current_case = cases[i].name;
        int before = vc_test_failures;
        scratch[0] = '\0';
        skip_why = NULL;
        cases[i].fn();
        bool passed = vc_test_failures == before;
        if (passed && scratch[0])
            remove_tree(scratch);
        else if (scratch[0])
            fprintf(stderr, "scratch kept: %s\n", scratch);
        if (passed && skip_why) {
            fprintf(stderr, "SKIP %s: %s\n", cases[i].name, skip_why);
            skipped++;
        } else {
            fprintf(stderr, "%s %s\n", passed ? "PASS" : "FAIL", cases[i].name);
        }
        ran++;
    }
    if (ran == 0) {
        fprintf(stderr, "no test case named '%s'\n", argc > 1 ? argv[1] : "");
        return 2;
    }
    return vc_test_failures ? 1 : skipped == ran ? 77 : 0;
}

void vc_test_skip(const char *why)
{
    skip_why = why;
}

const char *vc_test_tmpdir(void)
{
    char cwd[3000];
    if (!getcwd(cwd, sizeof cwd))
        return "/tmp";
    snprintf(scratch, sizeof scratch, "%s/tmp-%s-%ld", cwd, current_case, (long)getpid());
    if (remove_tree(scratch) != 0) {
        scratch[0] = '\0';
        return "/tmp";
    }
    mkdir(scratch, 0755);
    return scratch;
}

const char *vc_test_fixture(const char *rel)
{
    static char path[4096];
    snprintf(path, sizeof path, "%s/fixtures/%s", VC_SHARED_DIR, rel);
    return path;
}

unsigned char *vc_test_read_file(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 1 << 16, len = 0;
    unsigned char *buf = malloc(cap);
    while (buf) {
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (len < cap)
            break;
        unsigned char *grown = realloc(buf, cap * 2);
        if (!grown) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = grown;
        cap *= 2;
    }
    fclose(f);
    if (buf)
        *size = len;
    return buf;
}

int vc_test_write_file(const char *path, const void *data, size_t size)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    size_t put = fwrite(data, 1, size, f);
    return (fclose(f) == 0 && put == size) ? 0 : -1;
}
