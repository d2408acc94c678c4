/* cmd_inspect: argument handling around wds_inspect. */
#include "cmd_inspect.h"

#include "stages/wds_inspect.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

int cmd_inspect_main(int argc, char **argv)
{
    bool verbose = true;
    int n = 0, bad = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: vlmcurate inspect SHARD... [--quiet]\n"
                   "Lists samples and fields of each webdataset shard (.tar, .tar.gz, .tar.zst)\n"
                   "and validates it: ustar only, names <= 100 bytes, keys without dots,\n"
                   "samples contiguous, no repeated extension, no key twice.\n"
                   "  --quiet  print only the verdict line per shard\n"
                   "Exit status: 0 all valid, 1 some shard invalid, 2 usage error.\n");
            return 0;
        }
        if (!strcmp(argv[i], "--quiet"))
            verbose = false;
    }
    for (int i = 1; i < argc; i++) {
        if (argv[i][0] == '-')
            continue;
        n++;
        struct vc_err err = { 0 };
        if (wds_inspect(argv[i], stdout, verbose, &err) < 0) {
            bad++;
            fprintf(stderr, "vlmcurate inspect: %s: %s: %s\n", argv[i], vc_reason_name(err.reason),
                    err.msg);
        }
    }
    if (n == 0) {
        fprintf(stderr, "usage: vlmcurate inspect SHARD... [--quiet]\n");
        return 2;
    }
    return bad ? 1 : 0;
}
