"""A document's "metadata" JSON string keeps its numbers when positions
leave it.

OBELICS stores "metadata" as a JSON string holding one entry per position.
When a position leaves (an image missing at read, an image a filter drops,
an image the dedup stage's image_repeat rule removes), the list is written
again, and it was parsed with plain cJSON: a 64-bit id such as
12345678901234567891 came back as 1.2345678901234567e+19.  Inputs: PNGs made with zlib (vctest), one
documents JSONL (Python's json) whose metadata entries hold
64-bit integers.  Expected: the written metadata has one entry per kept
position, each integer digit for digit as read, for each of the three
ways a position leaves."""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tools"))
import pipeline_e2e as pe  # noqa: E402
import vctest  # noqa: E402

args = vctest.parse_args()
data = os.path.join(args.tmp, "data")
os.makedirs(os.path.join(data, "img"))
for name, side in (("photo.png", 200), ("icon.png", 8)):
    with open(os.path.join(data, "img", name), "wb") as f:
        f.write(vctest.png_bytes(side, side, seed=side))
BIG = [12345678901234567891, -5738465283294858241, 9007199254740993, 18446744073709551615]
# position -> (text, image, metadata entry)
positions = [
    ("A paragraph about the photo below, long enough to keep.", None, {"id": BIG[0]}),
    (None, "photo.png", {"src": "http://x.test/photo.png", "hash": BIG[1]}),
    (None, "missing.png", {"src": "http://x.test/missing.png", "hash": BIG[2]}),  # read
    (None, "icon.png", {"src": "http://x.test/icon.png", "hash": BIG[3]}),  # filter
    (None, "photo.png", {"src": "http://x.test/photo.png", "hash": BIG[1]}),  # dedup
    ("The closing paragraph of the page, also kept.", None, {"id": BIG[3]}),
]
doc = {"id": "page", "texts": [p[0] for p in positions], "images": [p[1] for p in positions],
       "metadata": json.dumps([p[2] for p in positions]),
       "general_metadata": json.dumps({"url": "http://x.test/page"})}
with open(os.path.join(data, "docs.jsonl"), "w") as f:
    f.write(json.dumps(doc) + "\n")

spec = {"sources": [{"name": "d", "type": "documents", "path": "docs.jsonl",
                     "images_dir": "img"}],
        "stages": [{"stage": "filter", "defaults": False,
                    "filters": [{"name": "img_width", "min": 64}]},
                   {"stage": "dedup", "image": False, "text": False,
                    "documents": {"url": False, "image_set": False, "image_url_max": 0,
                                  "image_repeat": True, "paragraph_repeat": 0}}],
        "output": {"prefix": "t"}}
out = os.path.join(args.tmp, "out")
pe.run_spec(args, pe.write_spec(os.path.join(data, "spec.json"), spec), out, threads=2)
samples = [s for sh in pe.shards(out, "t") for s in pe.read_samples(sh)]
vctest.expect(len(samples) == 1, "the document is written (%d samples)" % len(samples))
got = pe.sample_json(samples[0][1])
meta = json.loads(got["metadata"])
want = [positions[i][2] for i in (0, 1, 5)]
vctest.expect(len(got["texts"]) == 3 and got["images"][1] == "0.png",
              "three positions kept: text, the first photo, text (got %s)" % got["images"])
vctest.expect(meta == want, "metadata entries of the kept positions, integers exact "
              "(got %s)" % got["metadata"])
print("all checks passed")
