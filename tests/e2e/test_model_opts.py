"""The model stages' load options ("compute", "backend", "quant",
"weights") reach the engine, on the idefics2-tiny fixture.

A webdataset shard of the fixture's six images goes through the caption
stage with (a) "compute": "bf16", "backend": "fast" and (b) "quant":
"q4_0".  Expected: every caption and its token ids equal what `vlmcurate
generate` prints with the same options (--bf16 --backend fast; --quant
q4_0), one process per image; the provenance records the options; the
4-bit text weights change at least one sample's tokens against the
default float32 run (so the key is not ignored).  "weights": "map" (text
weights read in place instead of the default copy) gives the same captions
and ids as the default run and leaves the provenance as it is (where the
weights live changes no number).  Then: an unknown backend name, quant
name and weights place, in the caption and the score stage, stop
the run before any sample with an error naming the stage, the key and the
value."""
import os
import sys

MAX_NEW = 6  # tokens per caption

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tools"))
import pipeline_e2e as pe  # noqa: E402
import vctest  # noqa: E402

args = vctest.parse_args()
FIX = os.path.join(args.shared, "fixtures", "idefics2-tiny")
IMAGES, PROMPT = pe.TINY_IMAGES, pe.SHORT_PROMPT

members, image_of = [], {}
for i, name in enumerate(IMAGES):
    key = "s%03d" % i
    image_of[key] = name
    members.append((key + "." + name.rsplit(".", 1)[1],
                    open(os.path.join(FIX, "images", name), "rb").read()))
data = os.path.join(args.tmp, "data")
os.makedirs(data)
with open(os.path.join(data, "in-000000.tar"), "wb") as f:
    f.write(pe.tar_bytes(members))


def spec_with(name, stage="caption", **opts):
    st = {"stage": stage, "model": FIX}
    if stage == "caption":
        st.update({"prompt": "short", "max_new_tokens": MAX_NEW, "record_ids": True, "batch": 4})
    st.update(opts)
    spec = {"sources": [{"name": "w", "type": "webdataset", "urls": "in-000000.tar"}],
            "stages": [st], "output": {"prefix": "cap"}}
    return pe.write_spec(os.path.join(data, name + ".json"), spec)


def captions(name, **opts):
    out = os.path.join(args.tmp, name)
    pe.run_spec(args, spec_with(name, **opts), out, threads=2)
    got = {}
    for shard in pe.shards(out, "cap"):
        for key, fields in pe.read_samples(shard):
            js = pe.sample_json(fields)
            prov = js["synthetic_caption_provenance"]
            got[key] = (js["synthetic_caption"], prov["generated_ids"], prov)
    vctest.expect(sorted(got) == sorted(image_of), "%s: every sample captioned" % name)
    return got


def generate(flags):
    want = {}
    for name in IMAGES:
        r = vctest.run(args, ["generate", "--model", FIX, "--image",
                              os.path.join(FIX, "images", name), "--chat", PROMPT,
                              "--max-new-tokens", str(MAX_NEW), "--ids", "--threads", "1"] + flags)
        text, ids = r.stdout.rstrip("\n").rsplit("\n", 1)
        want[name] = (text, [int(x) for x in ids.split()])
    return want


plain = captions("plain")
for label, opts, flags, prov_want in (
        ("fast", {"compute": "bf16", "backend": "fast"}, ["--bf16", "--backend", "fast"],
         {"compute": "bf16", "backend": "fast"}),
        ("q4_0", {"quant": "q4_0"}, ["--quant", "q4_0"], {"compute": "f32", "quant": "q4_0"})):
    got, want = captions(label, **opts), generate(flags)
    for key, (text, ids, prov) in sorted(got.items()):
        # generate's stdout is read in text mode, which turns a caption's
        # trailing \r (before the ids line's \n) into nothing.
        vctest.expect((text.replace("\r", ""), ids) == want[image_of[key]],
                      "%s %s: the stage's caption %r %s is generate %s's %r %s" %
                      (label, key, text, ids, " ".join(flags), *want[image_of[key]]))
        vctest.expect(all(prov.get(k) == v for k, v in prov_want.items()),
                      "%s %s: provenance records %s: %s" % (label, key, prov_want, prov))
    if label == "q4_0":
        differ = [k for k in got if got[k][1] != plain[k][1]]
        vctest.expect(differ, "q4_0 text weights change the tokens of %d of %d samples" %
                      (len(differ), len(got)))
vctest.expect(all("backend" not in p and "quant" not in p for _, _, p in plain.values()),
              "without the keys the provenance is as before (compute only)")
mapped = captions("map", weights="map")
vctest.expect(mapped == plain, "weights map: the same captions, ids and provenance as the "
              "default (copy)")

for stage in ("caption", "score"):
    for key, value in (("backend", "avx9"), ("quant", "q3_k"), ("weights", "disk")):
        out = os.path.join(args.tmp, "bad-%s-%s" % (stage, key))
        r = pe.run_spec(args, spec_with("bad-%s-%s" % (stage, key), stage=stage, **{key: value}),
                        out, check=False)
        vctest.expect(r.returncode != 0 and ("(%s)" % stage) in r.stderr
                      and key in r.stderr and ("'%s'" % value) in r.stderr,
                      "%s with %s %r: refused before any sample, naming stage, key and value "
                      "(%d): %s" % (stage, key, value, r.returncode, r.stderr.strip()[-300:]))
