"""The caption stage against `vlmcurate generate` on the idefics2-tiny
fixture.

A webdataset shard of the fixture's images (and one image whose header is
fine but whose pixels cannot be decoded) goes through
`vlmcurate run` with a caption stage at batch 1 and 16, 1 and 2 threads.
Expected: byte-identical outputs for all four; every sample's caption and
generated token ids equal what `vlmcurate generate --ids` prints for that
image, prompt and parameters (run separately, one process per image); the
broken image is a ledger line with reason decode_error and the run goes
on.  Then: replace_txt moves the original text to json original_txt;
sampling with temperature > 0 draws from the per-sample seed recorded in
the provenance (generate with that seed gives the same ids; two samples
with the same image get different seeds); a prompt longer than the
engine's context is reason too_long for every sample, not a crash."""
import glob
import hashlib
import json
import os
import struct
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tools"))
import pipeline_e2e as pe  # noqa: E402
import vctest  # noqa: E402

args = vctest.parse_args()
FIX = os.path.join(args.shared, "fixtures", "idefics2-tiny")
IMAGES, PROMPT = pe.TINY_IMAGES, pe.SHORT_PROMPT
MAX_NEW = 6

members, image_of = [], {}
for i in range(20):
    name = IMAGES[i % len(IMAGES)]
    key = "s%03d" % i
    image_of[key] = name
    members.append((key + "." + name.rsplit(".", 1)[1], open(os.path.join(FIX, "images", name),
                                                             "rb").read()))
    members.append((key + ".txt", ("original caption %d" % i).encode()))
members.append(("zbad.jpg", vctest.jpeg_header_only(64, 48)))
members.append(("zbad.txt", b"pixels missing"))
data = os.path.join(args.tmp, "data")
os.makedirs(data)
with open(os.path.join(data, "in-000000.tar"), "wb") as f:
    f.write(pe.tar_bytes(members))


def spec_with(name, **caption):
    st = {"stage": "caption", "model": FIX, "prompt": "short", "max_new_tokens": MAX_NEW,
          "record_ids": True}
    st.update(caption)
    st = {k: v for k, v in st.items() if v is not None}
    spec = {"sources": [{"name": "w", "type": "webdataset", "urls": "in-000000.tar"}],
            "stages": [st], "output": {"prefix": "cap"}}
    return pe.write_spec(os.path.join(data, name + ".json"), spec)


def samples(out):
    got = {}
    for shard in pe.shards(out, "cap"):
        for key, fields in pe.read_samples(shard):
            got[key] = fields
    return got


runs = {}
for batch in (1, 16):
    for threads in (1, 2):
        out = os.path.join(args.tmp, "b%d-t%d" % (batch, threads))
        pe.run_spec(args, spec_with("b%d" % batch, batch=batch), out, threads=threads)
        runs[(batch, threads)] = out
ref = runs[(1, 1)]
for batch in (1, 16):
    pe.compare_trees(runs[(batch, 1)], runs[(batch, 2)], "batch %d: 2 threads vs 1" % batch)


def data_files(out):
    """The shards and the ledger: what a sample's outcome is written to (the
    shard manifests also hold the spec's hash, and the batch is in the spec)."""
    return {n: h for n, h in pe.output_files(out).items() if n.endswith((".tar", ".jsonl"))}


vctest.expect(data_files(runs[(16, 1)]) == data_files(ref) and len(data_files(ref)) == 2,
              "batch 16 writes the same shard and ledger bytes as batch 1")

got = samples(ref)
vctest.expect(sorted(got) == sorted(image_of), "every decodable sample written (%d)" % len(got))
bad = [r for r in pe.ledger(ref) if r.get("key") == "zbad"]
vctest.expect(len(bad) == 1 and bad[0].get("reason") == "decode_error"
              and bad[0].get("stage") == "caption",
              "the undecodable image is a ledger line of the caption stage: %s" % bad)

expected = {}
for name in IMAGES:
    r = vctest.run(args, ["generate", "--model", FIX, "--image", os.path.join(FIX, "images", name),
                          "--chat", PROMPT, "--max-new-tokens", str(MAX_NEW), "--ids",
                          "--threads", "1"])
    text, ids = r.stdout.rstrip("\n").rsplit("\n", 1)
    expected[name] = (text, [int(x) for x in ids.split()])
for key, fields in sorted(got.items()):
    js = pe.sample_json(fields)
    prov = js["synthetic_caption_provenance"]
    text, ids = expected[image_of[key]]
    if js["synthetic_caption"] != text or prov["generated_ids"] != ids:
        raise SystemExit("FAILED: %s (%s): stage %r %s, generate %r %s" %
                         (key, image_of[key], js["synthetic_caption"], prov["generated_ids"],
                          text, ids))
    vctest.expect(fields["txt"] == ("original caption %d" % int(key[1:])).encode(),
                  "%s keeps its txt without replace_txt" % key)
vctest.expect(True, "%d captions: the same text and token ids as vlmcurate generate" % len(got))
prov = pe.sample_json(got["s000"])["synthetic_caption_provenance"]
cfg_sha = __import__("hashlib").sha256(open(os.path.join(FIX, "config.json"), "rb").read())
vctest.expect(prov["model"] == "idefics2-tiny" and prov["config_sha256"] == cfg_sha.hexdigest()
              and prov["prompt"] == PROMPT and prov["max_new_tokens"] == MAX_NEW
              and prov["generated_tokens"] == len(prov["generated_ids"])
              and prov["prompt_tokens"] > 0 and prov["engine"].startswith("vlmcurate "),
              "provenance: model, config sha256, prompt, parameters, engine, counts: %s" % prov)

# raw_prompt: the processor's text as is (base models lack the chat's
# <end_of_utterance>), the same tokens as generate --prompt
RAW = "<image>A picture of"
out = os.path.join(args.tmp, "raw")
pe.run_spec(args, spec_with("raw", raw_prompt=RAW, prompt=None), out)
js = pe.sample_json(samples(out)["s001"])
r = vctest.run(args, ["generate", "--model", FIX, "--image",
                      os.path.join(FIX, "images", image_of["s001"]), "--prompt", RAW,
                      "--max-new-tokens", str(MAX_NEW), "--ids"])
text, ids = r.stdout.rstrip("\n").rsplit("\n", 1)
prov = js["synthetic_caption_provenance"]
vctest.expect(js["synthetic_caption"] == text and prov["generated_ids"] == [int(x) for x in
                                                                             ids.split()]
              and prov["raw_prompt"] == RAW and "prompt" not in prov,
              "raw_prompt: generate --prompt's text and ids, recorded as raw_prompt: %s" % prov)
for i, bad_raw in enumerate(("A picture of", "<image><image>")):
    r = pe.run_spec(args, spec_with("rawbad", raw_prompt=bad_raw, prompt=None),
                    os.path.join(args.tmp, "rawbad%d" % i), check=False)
    vctest.expect(r.returncode != 0 and "exactly one <image>" in r.stderr,
                  "raw_prompt %r: a spec error at start" % bad_raw)

# replace_txt
out = os.path.join(args.tmp, "replace")
pe.run_spec(args, spec_with("replace", replace_txt=True), out)
for key, fields in samples(out).items():
    js = pe.sample_json(fields)
    vctest.expect(fields["txt"].decode() == expected[image_of[key]][0]
                  and js["original_txt"] == "original caption %d" % int(key[1:])
                  and "synthetic_caption" not in js,
                  "replace_txt: %s txt is the caption, the old one in json" % key)

# sampling: the per-sample seed. A 16-digit seed: the provenance printed
# it with cJSON's 15 significant digits (9.00719925474099e+15) before, and
# a global stage after the caption (reshard: the samples go through a spill)
# lost the digits again when it read the spill back.
SEED = 2**53 - 1  # the largest seed a JSON number holds exactly
out = os.path.join(args.tmp, "sampled")
spec = json.load(open(spec_with("sampled", sampling={"temperature": 1.5, "top_p": 0.9,
                                                     "seed": SEED}, max_new_tokens=12)))
spec["stages"].append({"stage": "reshard", "shuffle": "buffer", "buffer_size": 100, "seed": 1})
pe.run_spec(args, pe.write_spec(os.path.join(data, "sampled.json"), spec), out)
sampled = samples(out)
seeds = {}
for key in ("s000", "s006", "s002"):  # s000 and s006 share an image
    prov = pe.sample_json(sampled[key])["synthetic_caption_provenance"]
    seeds[key] = prov["sample_seed"]
    digest = hashlib.sha256(("%d:%s" % (SEED, key)).encode()).digest()
    want = struct.unpack("<Q", digest[:8])[0] & (2**63 - 1)
    vctest.expect(prov["seed"] == SEED and seeds[key] == str(want),
                  "sampled %s: provenance seed %r (spec %d), sample_seed %s (sha256: %d)" %
                  (key, prov["seed"], SEED, seeds[key], want))
    r = vctest.run(args, ["generate", "--model", FIX, "--image",
                          os.path.join(FIX, "images", image_of[key]), "--chat", PROMPT,
                          "--max-new-tokens", "12", "--temperature", "1.5", "--top-p", "0.9",
                          "--seed", prov["sample_seed"], "--ids"])
    ids = [int(x) for x in r.stdout.rstrip("\n").rsplit("\n", 1)[1].split()]
    vctest.expect(ids == prov["generated_ids"],
                  "sampled %s: generate --seed %s gives the same ids" % (key, seeds[key]))
vctest.expect(seeds["s000"] != seeds["s006"], "same image, other key: another seed")
# 2^53 + 1 reads as 2^53 (a JSON number is a double): refused, not run with
# the neighbouring seed as before.
r = pe.run_spec(args, spec_with("seed53", sampling={"temperature": 1.0, "seed": 2**53 + 1}),
                os.path.join(args.tmp, "seed53"), check=False)
vctest.expect(r.returncode == 2 and "'seed'" in r.stderr and "2^53" in r.stderr,
              "a seed from 2^53 on is a spec error: %s" % r.stderr.strip()[-200:])

# a prompt over the context
out = os.path.join(args.tmp, "long")
pe.run_spec(args, spec_with("long", prompt="many words " * 800), out)
reasons = {r.get("reason") for r in pe.ledger(out) if r.get("key") != "zbad"}
vctest.expect(reasons == {"too_long"}, "a prompt over the context: too_long for all (%s)" %
              reasons)

# Captions only for the samples that survive the stages before the caption
# stage: the 20 samples hold 6 distinct pictures (every 6th is an exact
# copy), and a caption-length filter (min 3 words) rejects zbad ("pixels
# missing"), so after it and dedup the result cache (one line per caption
# computed) holds exactly the 6 kept keys, which are the ones written.
spec = json.load(open(spec_with("survivors")))
spec["stages"] = [{"stage": "filter", "defaults": False,
                   "filters": [{"name": "cap_words", "min": 3}]},
                  {"stage": "dedup"}] + spec["stages"]
out = os.path.join(args.tmp, "survivors")
pe.run_spec(args, pe.write_spec(os.path.join(data, "survivors.json"), spec), out)
captioned = set()
for cache in glob.glob(os.path.join(out, "_work", "caption-*.cache")):
    captioned |= {json.loads(line)["k"] for line in open(cache, "rb").read().splitlines()}
led = pe.ledger(out)
written = {e["key"] for e in led if e["state"] == "written"}
dups = [e for e in led if e["state"] == "duplicate"]
vctest.expect(len(written) == len(IMAGES) and len(dups) == 20 - len(IMAGES),
              "dedup keeps one sample per picture (%d written, %d duplicates)" %
              (len(written), len(dups)))
vctest.expect(captioned == written,
              "captions computed for the %d survivors only: %s" % (len(written),
                                                                  sorted(captioned)))
print("PASS")
