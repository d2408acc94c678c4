"""The engine through the CLI, checked by a reader that is not ours.

`vlmcurate engine-cases` on the idefics2-tiny fixture: its output file is
parsed here with struct + json (the safetensors format by hand) and every
tensor is compared with expected.safetensors at the fixture README's
tolerances (ids and masks exact, pixel values 1e-6, hidden states on real
patches atol 2e-4 + rtol 1e-4, logits atol 1e-3 + rtol 1e-4).  Then the same
command on a fixture folder of our own making (other case names, prompts
and lengths) to show it is not tied to this cases.json, `vlmcurate
generate` against cases.json's expected text for a chat and a raw case,
and the usage errors."""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tools"))
import vctest  # noqa: E402

args = vctest.parse_args()
FIX = os.path.join(args.shared, "fixtures", "idefics2-tiny")
REQUIRED = ["input_ids", "pixel_values", "pixel_attention_mask", "vision_last_hidden_state",
            "image_hidden_states", "logits", "generated_ids"]
def compare(name, got, exp, atol, rtol, rowmask=None, row=1):
    gd, gs, gv = got
    ed, es, ev = exp
    if (gd, gs) != (ed, es):
        raise SystemExit("FAILED: %s: got %s %s, expected %s %s" % (name, gd, gs, ed, es))
    worst, bad = 0.0, 0
    for i, (a, b) in enumerate(zip(gv, ev)):
        if rowmask is not None and rowmask[i // row] == 0:
            continue
        d = abs(a - b)
        worst = max(worst, d)
        if not d <= atol + rtol * abs(b):
            bad += 1
    vctest.expect(bad == 0, "%s: %d values, max |diff| %.3g, %d off" % (name, len(gv), worst, bad))


def check_against_expected(got, expected, case_names):
    for case in case_names:
        have = {k[len(case) + 1:] for k in got if k.startswith(case + ".")}
        with_images = (case + ".pixel_values") in expected
        need = REQUIRED if with_images else ["input_ids", "logits", "generated_ids"]
        missing = [n for n in need if n not in have]
        vctest.expect(not missing, "%s: every required tensor written (missing %s)" %
                      (case, missing))
        for key, exp in expected.items():
            if not key.startswith(case + "."):
                continue
            what = key[len(case) + 1:]
            if key not in got:
                raise SystemExit("FAILED: %s not written" % key)
            if exp[0] == "I64":
                compare(key, got[key], exp, 0, 0)
            elif what == "pixel_values":
                compare(key, got[key], exp, 1e-6, 0)
            elif what in ("logits", "step_logits"):
                compare(key, got[key], exp, 1e-3, 1e-4)
            elif what in ("vision_last_hidden_state", "modality_projection"):
                mask = expected[case + ".patch_attention_mask"][2]
                compare(key, got[key], exp, 2e-4, 1e-4, mask, exp[1][2])
            else:
                compare(key, got[key], exp, 2e-4, 1e-4)


cases = json.load(open(os.path.join(FIX, "cases.json")))["cases"]
expected = vctest.read_safetensors(os.path.join(FIX, "expected.safetensors"))

# 1. engine-cases over the fixture, compared tensor by tensor.
out = os.path.join(args.tmp, "cases.safetensors")
r = vctest.run(args, ["engine-cases", FIX, "--out", out])
vctest.expect(r.stdout.count(" ok") == len(cases), "every case reported ok:\n" + r.stdout)
got = vctest.read_safetensors(out)
check_against_expected(got, expected, [c["name"] for c in cases])

# 2. A fixture folder of our own: the same checkpoint (linked), other case
#    names, a raw prompt written differently, fewer new tokens.  Its
#    expectations follow from the reference fixture: the same prompt gives
#    the same input_ids, the same greedy prefix and the same logits.
own = os.path.join(args.tmp, "own")
os.makedirs(own)
for f in os.listdir(FIX):
    if f not in ("cases.json", "expected.safetensors"):
        os.symlink(os.path.join(FIX, f), os.path.join(own, f))
by_name = {c["name"]: c for c in cases}
src = by_name["raw_two_images_adjacent"]
own_cases = {"cases": [
    {"name": "pair", "images": src["images"], "prompt": src["prompt"],
     "do_image_splitting": False, "max_new_tokens": 3,
     "expected_generated_ids": src["expected_generated_ids"][:3]},
    {"name": "chat", "images": by_name["chat_single_nosplit"]["images"],
     "messages": by_name["chat_single_nosplit"]["messages"], "max_new_tokens": 2},
]}
json.dump(own_cases, open(os.path.join(own, "cases.json"), "w"))
out2 = os.path.join(args.tmp, "own.safetensors")
vctest.run(args, ["engine-cases", own, "--out", out2])
got2 = vctest.read_safetensors(out2)
vctest.expect(list(got2["pair.generated_ids"][2]) == src["expected_generated_ids"][:3],
              "own fixture: greedy prefix of 3 tokens")
for what in ("input_ids", "pixel_values", "image_hidden_states", "logits"):
    a, b = got2["pair." + what], expected["raw_two_images_adjacent." + what]
    compare("own fixture pair." + what, a, b, 2e-4 if what != "logits" else 1e-3, 1e-4)
vctest.expect(got2["chat.step_logits"][1] == [2, 579], "own fixture: 2 step_logits rows")

# A case whose expected ids differ is reported and fails the command.
own_cases["cases"][0]["expected_generated_ids"] = [1, 2, 3]
json.dump(own_cases, open(os.path.join(own, "cases.json"), "w"))
r = vctest.run(args, ["engine-cases", own, "--out", out2], check=False)
vctest.expect(r.returncode == 1 and "DIFFERS" in r.stdout, "a differing case fails the run")

# 3. generate prints the expected text.
c = by_name["chat_single_nosplit"]
r = vctest.run(args, ["generate", "--model", FIX, "--image", os.path.join(FIX, c["images"][0]),
                      "--chat", "What is in the image?", "--max-new-tokens", "10",
                      "--image-splitting", "off"])
vctest.expect(r.stdout == c["expected_generated_text"] + "\n",
              "generate --chat: %r" % r.stdout)
c = by_name["raw_wide_split"]
r = vctest.run(args, ["generate", "--model", FIX, "--image", os.path.join(FIX, c["images"][0]),
                      "--prompt", c["prompt"], "--max-new-tokens", "10",
                      "--image-splitting", "on", "--threads", "2", "--bf16"])
vctest.expect(r.stdout == c["expected_generated_text"] + "\n",
              "generate --prompt --bf16: %r" % r.stdout)
c = by_name["text_only"]
r = vctest.run(args, ["generate", "--model", FIX, "--prompt", c["prompt"], "--stats"])
vctest.expect(r.stdout == c["expected_generated_text"] + "\n" and "peak RSS" in r.stderr,
              "generate stops on <end_of_utterance>: %r" % r.stdout)

# --weights: the bf16 text weights (295,296 bytes = 0.3 MiB, hand-counted in
# tests/golden/test_idf2_quant.c) copied by default, read in place with map;
# the same text either way.
runs = {}
for w in ("copy", "map"):
    runs[w] = vctest.run(args, ["generate", "--model", FIX, "--prompt", c["prompt"], "--bf16",
                                "--stats", "--weights", w])
vctest.expect("text weights copied 0.3 MiB" in runs["copy"].stderr
              and "text weights copied 0.0 MiB" in runs["map"].stderr,
              "--stats reports the copied text weights: %r / %r" %
              (runs["copy"].stderr, runs["map"].stderr))
# --quant q8_0 without --cache: the text weights are quantized at load into
# their own arena (156,928 bytes, hand-counted in tests/golden/test_idf2_quant.c),
# which --stats names; nothing else is copied.
r = vctest.run(args, ["generate", "--model", FIX, "--prompt", c["prompt"], "--bf16", "--stats",
                      "--quant", "q8_0"])
vctest.expect("quantized at load 0.1 MiB" in r.stderr and "text weights copied 0.0 MiB" in r.stderr
              and "quantized at load 0.0 MiB" in runs["copy"].stderr,
              "--stats reports the quantized text weights: %r" % r.stderr)
vctest.expect(runs["copy"].stdout == runs["map"].stdout,
              "--weights copy and map: the same text: %r" % runs["map"].stdout)

# 4. Usage and input errors.
r = vctest.run(args, ["generate", "--model", FIX, "--prompt", "x", "--weights", "disk"],
               check=False)
vctest.expect(r.returncode == 2 and "--weights" in r.stderr, "--weights disk: exit 2")
r = vctest.run(args, ["generate", "--prompt", "x"], check=False)
vctest.expect(r.returncode == 2, "generate without --model: exit 2")
r = vctest.run(args, ["generate", "--model", FIX, "--prompt", "x", "--chat", "y"], check=False)
vctest.expect(r.returncode == 2, "both --prompt and --chat: exit 2")
r = vctest.run(args, ["generate", "--model", FIX, "--prompt", "x", "--top-p", "2"], check=False)
vctest.expect(r.returncode == 2, "--top-p 2: exit 2")
r = vctest.run(args, ["generate", "--model", args.tmp, "--prompt", "x"], check=False)
vctest.expect(r.returncode == 1 and "config.json" in r.stderr,
              "a folder without a checkpoint: exit 1 naming config.json: " + r.stderr.strip())
bad = os.path.join(args.tmp, "bad.png")
open(bad, "wb").write(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
r = vctest.run(args, ["generate", "--model", FIX, "--image", bad, "--prompt", "<image>x"],
               check=False)
vctest.expect(r.returncode == 1 and r.stdout == "", "a broken image: exit 1, no text")
vctest.expect(bad + ": " in r.stderr, "the broken image is named by its path: " + r.stderr.strip())
r = vctest.run(args, ["generate", "--model", FIX, "--prompt", "x", "--top-p", "0.9"], check=False)
vctest.expect(r.returncode == 2 and "--temperature" in r.stderr,
              "--top-p without --temperature: exit 2 saying so: " + r.stderr.strip())
r = vctest.run(args, ["engine-cases", FIX], check=False)
vctest.expect(r.returncode == 2, "engine-cases without --out: exit 2")
print("PASS")
