/* cmd_engine: the engine's commands.
 *   vlmcurate generate --model DIR [--image PATH]... (--prompt TEXT | --chat TEXT) ...
 *     prints the generated text;
 *   vlmcurate engine-cases FIXTURE_DIR --out FILE.safetensors
 *     runs every case of a cases.json fixture folder with the model in it and
 *     writes the intermediate tensors under the names of expected.safetensors.
 * Both take argv[0] = the command name and return the process exit status:
 * 0 success, 1 failure, 2 usage error. */
#ifndef VC_PIPELINE_CMD_ENGINE_H
#define VC_PIPELINE_CMD_ENGINE_H

int cmd_generate_main(int argc, char **argv);
int cmd_engine_cases_main(int argc, char **argv);

#endif
