"""A list file split into several units gives each unit's unreadable rest its
own ledger line at that unit's first record, never at record 0 of the file
for every unit: a parquet URL list whose pages are damaged (the fuzz
corpus's hostile_pages_zeroed: 12 rows, a valid footer) in units of 5 rows
is three lines, indices 0, 5 and 10, each naming the file and the column,
and the run goes on to complete.  Nothing is fetched: the URL column is
what cannot be read."""
import json
import os
import shutil
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tools"))
import vctest  # noqa: E402

args = vctest.parse_args()
src = os.path.join(os.path.dirname(__file__), "..", "fuzz", "corpus", "pq", "hostile_pages_zeroed")
os.makedirs(args.tmp, exist_ok=True)
shutil.copy(src, os.path.join(args.tmp, "list.parquet"))
spec = os.path.join(args.tmp, "spec.json")
json.dump({"sources": [{"name": "u", "type": "urls", "files": "list.parquet", "url_col": "URL",
                        "caption_col": "TEXT", "urls_per_unit": 5}],
           "output": {"dir": "out"}}, open(spec, "w"))
r = vctest.run(args, ["run", spec, "--threads", "2"])
lines = [json.loads(x) for x in open(os.path.join(args.tmp, "out", "ledger.jsonl"))]
vctest.expect([(x["state"], x["reason"], x["index"]) for x in lines] ==
              [("error", "corrupt_archive", 0), ("error", "corrupt_archive", 5),
               ("error", "corrupt_archive", 10)],
              "one line per unit at its first record: %s" %
              [(x["state"], x["reason"], x["index"]) for x in lines])
vctest.expect(all(x["file"] == "list.parquet" and "column 'URL'" in x["message"] for x in lines),
              "each line names the file and the column: %s" % [x["message"] for x in lines])
vctest.expect(r.stderr.count("list.parquet") >= 3, "an error line per unit on stderr: " + r.stderr)
