"""A NUL inside an input JSON string or a CSV record is an error naming
it, never a string silently cut short.

cJSON ends a string at \\u0000, so `{"caption": "a\\u0000b"}` was written
back as `{"caption": "a"}` (json member of a webdataset sample) and a
document text "before\\u0000after" became "before", with no word in the
ledger.  Inputs (Python's json and tarfile): a webdataset shard whose json
members hold \\u0000 (nested) and, as a control, the six characters
`\\\\u0000` (an escaped backslash: plain text that must survive); a pairs
JSONL whose record has \\u0000 in its caption; an OBELICS documents JSONL
with \\u0000 in a text node; a urls JSONL record with \\u0000 in its
caption (its URL never fetched); a pairs CSV whose caption and extra column
hold a NUL byte (they were written as "cap" and "ex").  Expected: each sample with a NUL is one
ledger error `json_invalid` whose message names the NUL (a list record
by its line), the control
sample is written with its text intact, and the totals add up."""
import json
import os
import sys
import tarfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tools"))
import pipeline_e2e as pe  # noqa: E402
import vctest  # noqa: E402

args = vctest.parse_args()
data, png = pe.images_folder(args.tmp)

nul_json = json.dumps({"meta": {"caption": "a\u0000b"}, "n": 1}).encode()
control = json.dumps({"caption": "a\\u0000b"}).encode()  # backslash, then "u0000"
vctest.expect(b"\\u0000" in nul_json and b"\\\\u0000" in control, "fixtures hold what they say")
with open(os.path.join(data, "in.tar"), "wb") as f:
    f.write(pe.tar_bytes([("nul.png", png), ("nul.json", nul_json),
                          ("control.png", png), ("control.json", control)], tarfile.GNU_FORMAT))
with open(os.path.join(data, "pairs.jsonl"), "w") as f:
    f.write(json.dumps({"image": "a.png", "caption": "cap\u0000tion", "key": "pnul"}) + "\n")
    f.write(json.dumps({"image": "a.png", "caption": "caption", "key": "pok"}) + "\n")
with open(os.path.join(data, "docs.jsonl"), "w") as f:
    f.write(json.dumps({"id": "dnul", "texts": ["before\u0000after", None],
                        "images": [None, "a.png"]}) + "\n")
    f.write(json.dumps({"id": "dok", "texts": ["text", None], "images": [None, "a.png"]}) + "\n")
with open(os.path.join(data, "urls.jsonl"), "w") as f:
    f.write(json.dumps({"url": "http://127.0.0.1:9/x.jpg", "caption": "cap\u0000tion"}) + "\n")
with open(os.path.join(data, "pairs.csv"), "wb") as f:
    f.write(b"image,caption,extra,key\na.png,cap\x00tion,ex\x00tra,cnul\na.png,caption,extra,cok\n")

spec = {"sources": [
    {"name": "web", "type": "webdataset", "urls": "in.tar"},
    {"name": "pairs", "type": "pairs", "list": "pairs.jsonl", "images_dir": "images"},
    {"name": "docs", "type": "documents", "path": "docs.jsonl", "images_dir": "images"},
    {"name": "csv", "type": "pairs", "list": "pairs.csv", "images_dir": "images"},
    {"name": "urls", "type": "urls", "files": "urls.jsonl"}],
    "output": {"prefix": "t"}}
out = os.path.join(args.tmp, "out")
pe.run_spec(args, pe.write_spec(os.path.join(data, "spec.json"), spec), out, threads=2)
led = {(e["source"], e["index"]): e for e in pe.ledger(out)}
tot = pe.run_json(out)["totals"]
vctest.expect(tot["input"] == 9 and pe.totals_add_up(tot), "9 inputs, all accounted (%s)" % tot)
# A list record that does not parse has no key: its line names it.
for key, source in (("nul", "web"), ("pnul", "pairs"), ("dnul", "docs"), ("unul", "urls")):
    e = led.get((source, 0), {})
    vctest.expect(e.get("state") == "error" and e.get("reason") == "json_invalid" and
                  "\\u0000" in e.get("message", ""),
                  "%s: an error json_invalid naming the NUL (got %s)" % (key, e))
e = led.get(("csv", 0), {})
vctest.expect(e.get("state") == "error" and e.get("reason") == "text_not_utf8" and
              e.get("message", "").startswith("line 2: a NUL byte at byte 9"),
              "cnul: an error naming the NUL byte and its line (got %s)" % e)
written = {k: s for sh in pe.shards(out, "t") for k, s in pe.read_samples(sh)}
vctest.expect(set(written) == {"control", "pok", "dok", "cok"},
              "the samples without a NUL are written (got %s)" % sorted(written))
vctest.expect(pe.sample_json(written["control"]).get("caption") == "a\\u0000b",
              "an escaped backslash before u0000 is text, kept as written")
print("all checks passed")
