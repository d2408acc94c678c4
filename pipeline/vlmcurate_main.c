/* vlmcurate: the command-line entry point.  Thin on purpose: one table of
 * subcommands, each a cmd_*_main(argc, argv) in pipeline/ with argv[0] the
 * command name.  A new command is one row here. */
#include "cmd_engine.h"
#include "cmd_demo.h"
#include "cmd_inspect.h"
#include "cmd_run.h"
#include "cmd_stats.h"
#include "cmd_status.h"
#include "cmd_task.h"

#include <stdio.h>
#include <string.h>

struct command {
    const char *name;
    int (*main)(int argc, char **argv);
    const char *summary;
};

static const struct command commands[] = {
    { "run", cmd_run_main, "run a pipeline spec: sources -> stages -> webdataset shards" },
    { "task", cmd_task_main, "run one task of a run (what a cluster array task runs)" },
    { "status", cmd_status_main, "a run's phases and their tasks committed" },
    { "inspect", cmd_inspect_main, "list and validate webdataset shards" },
    { "stats", cmd_stats_main, "audit shards: counts, sizes, formats, text; HTML report" },
    { "demo", cmd_demo_main, "generate a small realistic dataset and run the default pipeline" },
    { "generate", cmd_generate_main, "caption / answer with the bundled Idefics2 engine" },
    { "engine-cases", cmd_engine_cases_main, "run a fixture's cases.json, dump engine tensors" },
};
#define N_COMMANDS (sizeof commands / sizeof commands[0])

static void usage(FILE *out)
{
    fprintf(out, "usage: vlmcurate COMMAND [ARGS...]\n\ncommands:\n");
    for (size_t i = 0; i < N_COMMANDS; i++)
        fprintf(out, "  %-9s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\n'vlmcurate help COMMAND' or 'vlmcurate COMMAND --help' for details;\n"
                 "'vlmcurate --version' for the version.  Exit status: 0 success, 1 failure,\n"
                 "2 usage error.\n");
}

static const struct command *find(const char *name)
{
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(cmd, "--version")) {
        printf("vlmcurate %s\n", VC_VERSION);
        return 0;
    }
    if (!strcmp(cmd, "help")) {
        if (argc < 3) {
            usage(stdout);
            return 0;
        }
        const struct command *c = find(argv[2]);
        if (!c) {
            fprintf(stderr, "vlmcurate: unknown command '%s'\n", argv[2]);
            return 2;
        }
        char *help_argv[] = { argv[2], "--help", NULL };
        return c->main(2, help_argv);
    }
    const struct command *c = find(cmd);
    if (!c) {
        fprintf(stderr, "vlmcurate: unknown command '%s'\n", cmd);
        usage(stderr);
        return 2;
    }
    return c->main(argc - 1, argv + 1);
}
