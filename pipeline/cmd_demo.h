/* cmd_demo: `vlmcurate demo [--out DIR] [--threads N] [--samples N]
 * [--seed S] [--no-run] [--quiet]`: generates the demo dataset
 * (pipeline/demo.h) in DIR, runs its default spec into DIR/out, and prints
 * where everything went with a short summary of what became of every
 * sample.  The quick-start command of the README. */
#ifndef VC_PIPELINE_CMD_DEMO_H
#define VC_PIPELINE_CMD_DEMO_H

/* Exit status: 0 done, 1 generation or run failed, 2 usage error.
 * argv[0] = "demo". */
int cmd_demo_main(int argc, char **argv);

#endif
