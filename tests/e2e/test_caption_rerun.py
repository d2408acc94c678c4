"""Model stages over input whose json already holds their keys: a dataset
captioned and scored before (our own output read again) gets the new
caption, provenance and scores, in the old keys' places.

Two shards of the idefics2-tiny fixture's images go through a caption
stage and a score stage: one without json, one whose json holds a
synthetic_caption, its provenance and model_scores from an earlier run,
between columns of its own. Expected: each sample of the second gets
exactly what the same sample of the first gets (the caption, the
provenance, the scores), the old values are gone, and the input's other
columns keep their order around the replaced keys. Before the fix the
writer's replace-by-name read the key from the item it had just freed
(cJSON frees the replacement's name first): the old caption stayed and
the new one was lost."""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tools"))
import pipeline_e2e as pe  # noqa: E402
import vctest  # noqa: E402

args = vctest.parse_args()
FIX = os.path.join(args.shared, "fixtures", "idefics2-tiny")
OLD = {"before": 1, "synthetic_caption": "old caption",
       "synthetic_caption_provenance": {"model": "older-model"},
       "model_scores": {"relevance": 9.0}, "after": 2}

data = os.path.join(args.tmp, "data")
os.makedirs(data)
for name, with_json in (("plain", False), ("old", True)):
    members = []
    for i, image in enumerate(pe.TINY_IMAGES[:3]):
        key = "s%d" % i
        members.append((key + "." + image.rsplit(".", 1)[1],
                        open(os.path.join(FIX, "images", image), "rb").read()))
        members.append((key + ".txt", ("original caption %d" % i).encode()))
        if with_json:
            members.append((key + ".json", json.dumps(OLD).encode()))
    with open(os.path.join(data, name + ".tar"), "wb") as f:
        f.write(pe.tar_bytes(members))


def run(name):
    spec = {"sources": [{"name": "w", "type": "webdataset", "urls": name + ".tar"}],
            "stages": [{"stage": "caption", "model": FIX, "max_new_tokens": 4, "batch": 2},
                       {"stage": "score", "model": FIX, "max_text_tokens": 16, "batch": 2}],
            "output": {"prefix": "cap"}}
    out = os.path.join(args.tmp, name)
    pe.run_spec(args, pe.write_spec(os.path.join(data, name + ".json"), spec), out)
    got = {}
    for shard in pe.shards(out, "cap"):
        for key, fields in pe.read_samples(shard):
            got[key] = pe.sample_json(fields)
    return got


fresh, rerun = run("plain"), run("old")
vctest.expect(sorted(fresh) == sorted(rerun) == ["s0", "s1", "s2"],
              "both runs write s0..s2: %s / %s" % (sorted(fresh), sorted(rerun)))
NEW = ("synthetic_caption", "synthetic_caption_provenance", "model_scores",
       "model_scores_provenance")
for key in sorted(fresh):
    f, r = fresh[key], rerun[key]
    for k in NEW:
        vctest.expect(k in f and r.get(k) == f[k],
                      "%s: %s replaced by this run's %r, got %r" % (key, k, f.get(k), r.get(k)))
    vctest.expect(r["synthetic_caption"] != OLD["synthetic_caption"],
                  "%s: the old caption is gone" % key)
    order = [k for k in r if k in OLD]
    vctest.expect(order == list(OLD),
                  "%s: the input's keys keep their order, got %s" % (key, order))
print("ok: caption and score over json that already holds their keys")

# The writer's own key is no caption field: before, the caption replaced the
# writer's object while it was being filled and the run died at the first
# sample with "stage 'write': out of memory".
spec = {"sources": [{"name": "w", "type": "webdataset", "urls": "plain.tar"}],
        "stages": [{"stage": "caption", "model": FIX, "max_new_tokens": 4, "field": "vlmcurate"}],
        "output": {"prefix": "cap"}}
out = os.path.join(args.tmp, "own-key")
r = pe.run_spec(args, pe.write_spec(os.path.join(data, "own-key.json"), spec), out, check=False)
vctest.expect(r.returncode == 2 and "bad_spec" in r.stderr and "vlmcurate" in r.stderr
              and not (os.path.isdir(out) and pe.shards(out, "cap")),
              "\"field\": \"vlmcurate\" is a spec error before any sample (rc %d: %s)"
              % (r.returncode, r.stderr.strip()[-300:]))
print("ok: a caption field named vlmcurate is refused")

# replace_txt over a sample whose main text is a .caption member: the new
# caption becomes .txt, the old text moves to json original_txt, and the
# .caption member is gone (before, it stayed beside .txt with the old text).
members = []
for i, image in enumerate(pe.TINY_IMAGES[:2]):
    key = "s%d" % i
    members.append((key + "." + image.rsplit(".", 1)[1],
                    open(os.path.join(FIX, "images", image), "rb").read()))
    members.append((key + ".caption", ("alt text %d" % i).encode()))
with open(os.path.join(data, "alt.tar"), "wb") as f:
    f.write(pe.tar_bytes(members))
spec = {"sources": [{"name": "w", "type": "webdataset", "urls": "alt.tar"}],
        "stages": [{"stage": "caption", "model": FIX, "max_new_tokens": 4, "batch": 2,
                    "replace_txt": True}],
        "output": {"prefix": "cap"}}
out = os.path.join(args.tmp, "alt")
pe.run_spec(args, pe.write_spec(os.path.join(data, "alt.json"), spec), out)
got = {key: fields for shard in pe.shards(out, "cap") for key, fields in pe.read_samples(shard)}
vctest.expect(sorted(got) == ["s0", "s1"], "replace_txt run writes s0, s1: %s" % sorted(got))
for i, key in enumerate(sorted(got)):
    fields, meta = got[key], pe.sample_json(got[key])
    vctest.expect("caption" not in fields and fields.get("txt", b"").decode() ==
                  fresh[key]["synthetic_caption"],
                  "%s: .txt holds the new caption, no stale .caption member: %s" %
                  (key, sorted(fields)))
    vctest.expect(meta.get("original_txt") == "alt text %d" % i,
                  "%s: the old .caption text is in json original_txt: %r" %
                  (key, meta.get("original_txt")))
print("ok: replace_txt over a .caption member")
