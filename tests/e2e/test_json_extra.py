"""JSON with more after its value is an error, never read as its first
value alone.

A JSONL file concatenated to one that lacked its final newline holds two
records on one line; cJSON read the first and ignored the second, which
then had no ledger line (3 input records were counted as 2).  Inputs
(Python's json and tarfile): a pairs JSONL and a documents JSONL each with
two records joined on one line and one record followed by stray text, and
a webdataset json member with text after the object.  Expected: each such
line or member is one ledger error json_invalid saying what follows the
value, the other records are written, and the totals add up."""
import json
import os
import sys
import tarfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tools"))
import pipeline_e2e as pe  # noqa: E402
import vctest  # noqa: E402

args = vctest.parse_args()
data, png = pe.images_folder(args.tmp)


def rec(key):
    return json.dumps({"image": "a.png", "caption": "caption " + key, "key": key})


def doc(key):
    return json.dumps({"id": key, "texts": ["text " + key, None], "images": [None, "a.png"]})


for name, make in (("pairs.jsonl", rec), ("docs.jsonl", doc)):
    with open(os.path.join(data, name), "w") as f:
        f.write(make("k1") + "\n" + make("k2") + make("k3") + "\n" + make("k4") + " stray\n" +
                make("k5") + "\n")
with open(os.path.join(data, "in.tar"), "wb") as f:
    f.write(pe.tar_bytes([("w1.png", png), ("w1.json", b'{"a": 1} {"b": 2}'),
                          ("w2.png", png), ("w2.json", b'{"a": 1}\r\n')], tarfile.GNU_FORMAT))
spec = {"sources": [
    {"name": "pairs", "type": "pairs", "list": "pairs.jsonl", "images_dir": "images"},
    {"name": "docs", "type": "documents", "path": "docs.jsonl", "images_dir": "images"},
    {"name": "web", "type": "webdataset", "urls": "in.tar"}],
    "output": {"prefix": "t"}}
out = os.path.join(args.tmp, "out")
pe.run_spec(args, pe.write_spec(os.path.join(data, "spec.json"), spec), out, threads=2)
led = pe.ledger(out)
tot = pe.run_json(out)["totals"]
vctest.expect(tot["input"] == 10 and pe.totals_add_up(tot), "10 inputs, all accounted (%s)" % tot)
for source in ("pairs", "docs"):
    errs = [e for e in led if e["source"] == source and e["state"] == "error"]
    vctest.expect([e["index"] for e in errs] == [1, 2] and
                  all(e["reason"] == "json_invalid" and "more after the JSON value" in e["message"]
                      for e in errs),
                  "%s: the joined line and the stray text are errors naming it (got %s)" %
                  (source, errs))
w1 = [e for e in led if e["key"] == "w1"]
vctest.expect(len(w1) == 1 and w1[0]["state"] == "error" and w1[0]["reason"] == "json_invalid",
              "a json member with a second object after it is an error (got %s)" % w1)
written = {k for sh in pe.shards(out, "t") for k, _ in pe.read_samples(sh)}
vctest.expect(written == {"k1", "k5", "k1_1", "k5_1", "w2"},
              "the well-formed records are written, the documents keyed k1_1, k5_1 (got %s)" %
              sorted(written))
print("all checks passed")
