"""Ledger reasons say what is wrong (issue 7 item 15), on a shard made by
Python's tarfile (GNU format, so a member may repeat):
- a 0-byte image is `empty`, not unsupported_format;
- a field given twice (two "b.txt" members) is `repeated_field`, not
  too_many_fields;
- a json field nested 100,000 levels deep is json_invalid "nested deeper
  than 1000 levels", not "not a JSON object";
- a json field that is an array says so."""
import os
import sys
import tarfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tools"))
import pipeline_e2e as pe  # noqa: E402
import vctest  # noqa: E402

args = vctest.parse_args()
png = vctest.png_bytes(8, 8, 1)
deep = b"[" * 100000 + b"]" * 100000
members = [("a.jpg", b""), ("a.txt", b"a zero-byte image"),
           ("b.png", png), ("b.txt", b"first"), ("b.txt", b"second"),
           ("c.png", png), ("c.json", deep),
           ("d.png", png), ("d.json", b"[1, 2]"),
           ("e.png", png), ("e.txt", b"a fine sample")]
with open(os.path.join(args.tmp, "in.tar"), "wb") as f:
    f.write(pe.tar_bytes(members, tarfile.GNU_FORMAT))
spec = pe.write_spec(os.path.join(args.tmp, "spec.json"),
                     {"sources": [{"name": "s", "type": "webdataset", "urls": "in.tar"}],
                      "stages": [{"stage": "ingest"}],
                      "output": {"dir": "out"}})
out = os.path.join(args.tmp, "out")
pe.run_spec(args, spec, out)
by_key = {rec["key"]: rec for rec in pe.ledger(out)}
want = {"a": ("empty", ""), "b": ("repeated_field", "appears twice"),
        "c": ("json_invalid", "nested deeper than 1000 levels"),
        "d": ("json_invalid", "a JSON array, not an object")}
for key, (reason, words) in want.items():
    rec = by_key.get(key, {})
    vctest.expect(rec.get("state") == "error" and rec.get("reason") == reason and
                  words in rec.get("message", ""),
                  "sample %s: error %s with %r (ledger: %s)" % (key, reason, words, rec))
vctest.expect(by_key.get("e", {}).get("state") == "written", "sample e written")
print("PASS")
