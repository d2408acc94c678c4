"""A model stage's result cache (OUT/_work/<stage>-<hash>-<unit>.cache) as a
kill -9 can leave it, then the same command again: every file of the run,
the caches under _work included, is byte-identical to an uninterrupted
run's.  No kill is needed: the test writes those states itself, from the
uninterrupted run's own lines, so nothing depends on timing.

The engine finishes requests in an order set by which requests share its
slots (a request that stops on EOS leaves early), and a resumed unit
shares them differently, so a cache is appended out of index order and in
another order after a resume.  The states written here:
  caption  a later sample's record committed before an earlier one's,
           then the earlier one's line torn in the middle of the write;
  ocr      records out of order, one of them written twice;
  score    records in order, then a torn line;
and beside the caption cache the torn temporary file of a rewrite the
kill interrupted (a unit's cache is rewritten in sample order at its end).
With OCR up to 30 tokens the tiny fixture stops some requests early on
EOS (checked), so even the uninterrupted run appends out of order."""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tools"))
import pipeline_e2e as pe  # noqa: E402
import vctest  # noqa: E402

args = vctest.parse_args()
FIX = os.path.join(args.shared, "fixtures", "idefics2-tiny")
N = 15
texts = ["a cat on a mat", "zzzz qqqq", "Describe this image", "the the the", "1 2 3 4 5"]
members = []
for i in range(N):
    name = pe.TINY_IMAGES[i % len(pe.TINY_IMAGES)]
    members.append(("k%04d.%s" % (i, name.rsplit(".", 1)[1]),
                    open(os.path.join(FIX, "images", name), "rb").read()))
    members.append(("k%04d.txt" % i, texts[i % len(texts)].encode()))
data = os.path.join(args.tmp, "data")
os.makedirs(data)
with open(os.path.join(data, "in-000000.tar"), "wb") as f:
    f.write(pe.tar_bytes(members))
spec = {"sources": [{"name": "w", "type": "webdataset", "urls": "in-000000.tar"}],
        "stages": [{"stage": "caption", "model": FIX, "max_new_tokens": 40, "batch": 4},
                   {"stage": "ocr", "model": FIX, "field": "ocr_text", "max_new_tokens": 30,
                    "batch": 3},
                   {"stage": "score", "model": FIX, "batch": 4}],
        "output": {"prefix": "cap", "samples_per_shard": 8}}
spec_path = pe.write_spec(os.path.join(data, "spec.json"), spec)

ref = os.path.join(args.tmp, "ref")
pe.run_spec(args, spec_path, ref, threads=1)
work = os.path.join(ref, "_work")


def cache_path(out, stage):
    names = [n for n in os.listdir(os.path.join(out, "_work"))
             if n.startswith(stage + "-") and n.endswith(".cache")]
    vctest.expect(len(names) == 1, "one %s cache: %s" % (stage, names))
    return os.path.join(out, "_work", names[0])


lines = {}
for stage in ("caption", "ocr", "score"):
    recs = open(cache_path(ref, stage), "rb").read().splitlines(keepends=True)
    order = [json.loads(r)["i"] for r in recs]
    vctest.expect(order == list(range(N)),
                  "the %s cache lists each of the %d samples once, in index order" % (stage, N))
    lines[stage] = recs
ocr_eos = sum(json.loads(r)["stopped_on_eos"] for r in lines["ocr"])
vctest.expect(0 < ocr_eos < N, "%d of %d OCR requests stopped early on EOS" % (ocr_eos, N))

# The killed run: a run into OUT with everything but its spec marker
# removed, and the caches as the kill left them.
out = os.path.join(args.tmp, "killed")
pe.run_spec(args, spec_path, out, threads=1)
for root, _, names in os.walk(out):
    for n in names:
        if os.path.relpath(os.path.join(root, n), out) != os.path.join("_work", "spec.json"):
            os.unlink(os.path.join(root, n))
cap, ocr, score = lines["caption"], lines["ocr"], lines["score"]
planted = {"caption": cap[N - 1] + cap[0][:len(cap[0]) // 2],
           "ocr": ocr[9] + ocr[3] + ocr[9],
           "score": b"".join(score[:5]) + score[5][:20]}
for stage, body in planted.items():
    with open(os.path.join(out, "_work", os.path.basename(cache_path(ref, stage))), "wb") as f:
        f.write(body)
with open(os.path.join(out, "_work", os.path.basename(cache_path(ref, "caption")) + ".tmp"),
          "wb") as f:
    f.write(b"".join(cap[:3]) + cap[3][:9])
pe.run_spec(args, spec_path, out, threads=2)

pe.compare_trees(ref, out, "resumed from torn and unordered caches vs uninterrupted")
ref_work = pe.output_files(work)
out_work = pe.output_files(os.path.join(out, "_work"))
# spec.json names the run's own folder.
differ = sorted(n for n in set(ref_work) | set(out_work)
                if n != "spec.json" and ref_work.get(n) != out_work.get(n))
vctest.expect(not differ, "_work: %d files, all byte-identical to the uninterrupted run's "
              "(differ: %s)" % (len(ref_work), differ[:5]))
print("PASS")
