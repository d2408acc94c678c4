"""`vlmcurate demo` captions end to end with a checkpoint it generates.

DIR/model must be a Hugging Face Idefics2 folder checked here with readers
of our own: every config file parses, the weights' safetensors header
(read by hand) has the tensor names and shapes the config implies, and
tokenizer.json is a BPE whose every merge joins two pieces of its own
vocabulary into a third, with the three Idefics2 added tokens at the end.
The run's samples carry a caption with provenance, and `vlmcurate
generate` on a written image gives that same caption."""
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tools"))
import pipeline_e2e as pe  # noqa: E402
import vctest  # noqa: E402

args = vctest.parse_args()
d = os.path.join(args.tmp, "demo")
vctest.run(args, ["demo", "--out", d, "--samples", "10", "--seed", "3", "--threads", "2"])
model = os.path.join(d, "model")
files = sorted(os.listdir(model))
vctest.expect(files == ["config.json", "generation_config.json", "model.safetensors",
                        "preprocessor_config.json", "processor_config.json", "tokenizer.json",
                        "tokenizer_config.json"], "the Hugging Face layout: %s" % files)
cfg = json.load(open(os.path.join(model, "config.json")))
tc, vc = cfg["text_config"], cfg["vision_config"]
V, Dt = tc["vocab_size"], tc["hidden_size"]
weights = vctest.read_safetensors(os.path.join(model, "model.safetensors"))
shapes = {n: w[1] for n, w in weights.items()}
vctest.expect(shapes["model.text_model.embed_tokens.weight"] == [V, Dt]
              and shapes["lm_head.weight"] == [V, Dt]
              and shapes["model.vision_model.embeddings.patch_embedding.weight"] ==
              [vc["hidden_size"], 3, vc["patch_size"], vc["patch_size"]]
              and sum(n.startswith("model.text_model.layers.") for n in shapes) ==
              9 * tc["num_hidden_layers"],
              "%d tensors with the shapes config.json implies" % len(shapes))
tok = json.load(open(os.path.join(model, "tokenizer.json")))
vocab = tok["model"]["vocab"]
added = {t["content"]: t["id"] for t in tok["added_tokens"]}
vctest.expect(len(vocab) + 3 == V and added["<image>"] == cfg["image_token_id"]
              and added["<end_of_utterance>"] == V - 1,
              "tokenizer: %d pieces + 3 added tokens = vocab_size" % len(vocab))
bad = [m for m in tok["model"]["merges"]
       if len(m.split(" ")) != 2 or any(p not in vocab for p in m.split(" "))
       or m.replace(" ", "") not in vocab]
vctest.expect(tok["model"]["merges"] and not bad,
              "every merge joins two vocabulary pieces into a third (%d merges)" %
              len(tok["model"]["merges"]))
for name in ("generation_config.json", "preprocessor_config.json", "processor_config.json",
             "tokenizer_config.json"):
    json.load(open(os.path.join(model, name)))

out = os.path.join(d, "out")
checked = 0
for shard in pe.shards(out, "demo"):
    for key, fields in pe.read_samples(shard):
        js = pe.sample_json(fields)
        ext, img = pe.main_image(fields)
        if not img:
            continue
        prov = js["synthetic_caption_provenance"]
        vctest.expect(prov["model"] == "model" and prov["generated_tokens"] > 0,
                      "%s: captioned, provenance %s" % (key, prov["model"]))
        if checked < 2:
            with tempfile.NamedTemporaryFile(suffix="." + ext, dir=args.tmp) as f:
                f.write(img)
                f.flush()
                r = vctest.run(args, ["generate", "--model", model, "--image", f.name, "--chat",
                                      prov["prompt"], "--max-new-tokens",
                                      str(prov["max_new_tokens"])])
            vctest.expect(r.stdout[:-1] == js["synthetic_caption"],
                          "%s: generate gives the same caption" % key)
            checked += 1
vctest.expect(checked == 2, "captions checked against generate")
print("PASS")
