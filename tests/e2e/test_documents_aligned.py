"""Interleaved documents stay aligned when images are dropped, malformed
positions are refused with a reason, image members are numbered
without gaps, and the audit counts the images kept documents lost, by
reason.

Documents in the OBELICS layout (texts, images, and "metadata" as a JSON
string of one entry per position), with pictures drawn by Pillow: one whose
second image is missing from disk, whose fourth is an SVG and whose fifth
an https URL read without "fetch" (all three dropped at read), one whose image a filter drops (an 8x8 icon), one position
holding both a text and an image, and one holding neither.  The written
json must keep texts, images and metadata the same length, each metadata
entry with its own image, and the image members must be 0.png, 1.png, ...
in document order."""
import io
import json
import os
import subprocess
import sys

from PIL import Image

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tools"))
import pipeline_e2e as pe  # noqa: E402
import vctest  # noqa: E402

args = vctest.parse_args()
data = os.path.join(args.tmp, "data")
os.makedirs(os.path.join(data, "img"))


def save_png(name, w, h, seed):
    im = Image.new("RGB", (w, h))
    im.putdata([((x * 3 + seed) & 255, (y * 7 + seed) & 255, ((x + y) * seed) & 255)
                for y in range(h) for x in range(w)])
    im.save(os.path.join(data, "img", name))


for i in range(4):
    save_png("p%d.png" % i, 200, 180, 11 * i + 5)
save_png("icon.png", 8, 8, 3)
with open(os.path.join(data, "img", "vector.svg"), "w") as f:
    f.write("<svg xmlns='http://www.w3.org/2000/svg'/>")


def meta(src):
    return {"src": src} if src else None


docs = [
    {"id": "gaps",
     "texts": ["intro", None, "middle", None, None, None, None, "outro"],
     "images": [None, "p0.png", None, "missing.png", "vector.svg",
                "https://cdn.example.org/p9.jpg", "p1.png", None],
     "metadata": json.dumps([None, meta("http://a/p0"), None, meta("http://a/missing"),
                             meta("http://a/vector"), meta("http://a/p9"), meta("http://a/p1"),
                             None])},
    {"id": "filtered",
     "texts": ["text one", None, None, "text two"],
     "images": [None, "icon.png", "p2.png", None],
     "metadata": json.dumps([None, meta("http://a/icon"), meta("http://a/p2"), None])},
    {"id": "both", "texts": ["a text", "and"], "images": [None, "p3.png"]},
    {"id": "neither", "texts": ["a text", None], "images": [None, None]},
]
docs[2]["texts"][1] = "also a text"  # position 1 holds a text and an image
with open(os.path.join(data, "docs.jsonl"), "w") as f:
    for d in docs:
        f.write(json.dumps(d) + "\n")

spec = {"sources": [{"name": "d", "type": "documents", "path": "docs.jsonl",
                     "images_dir": "img"}],
        "stages": [{"stage": "filter", "defaults": False,
                    "filters": [{"name": "img_width", "min": 100}]},
                   {"stage": "stats", "language": False}],
        "output": {"prefix": "doc"}}
out = os.path.join(args.tmp, "out")
pe.run_spec(args, pe.write_spec(os.path.join(data, "spec.json"), spec), out)

# Three images of "gaps" were dropped at read, one per reason; the audit of
# the run and `vlmcurate stats` of its shards both count them.
want_dropped = {"missing_image": 1, "unsupported_format": 1, "not_fetched": 1}
with open(os.path.join(out, "stats.json")) as f:
    counters = json.load(f)["groups"]["all"]["counters"]
got = {k: v["count"] for k, v in counters.get("dropped_image", {}).items()}
vctest.expect(got == want_dropped, "run audit: images dropped by reason %s" % got)
audit = os.path.join(args.tmp, "audit")
subprocess.run([args.bin, "stats", out, "--out", audit, "--no-language"], check=True,
               stdout=subprocess.DEVNULL)
with open(os.path.join(audit, "stats.json")) as f:
    counters = json.load(f)["groups"]["all"]["counters"]
got = {k: v["count"] for k, v in counters.get("dropped_image", {}).items()}
vctest.expect(got == want_dropped, "vlmcurate stats: images dropped by reason %s" % got)
with open(os.path.join(audit, "report.html")) as f:
    vctest.expect("Images dropped from kept documents" in f.read(),
                  "the report charts the dropped images")

led = {e["key"]: e for e in pe.ledger(out)}
for key, what in (("both", "both a text and an image"), ("neither", "neither a text nor")):
    e = led.get(key, {})
    vctest.expect(e.get("state") == "error" and e.get("reason") == "json_invalid" and
                  what in e.get("message", ""),
                  "document '%s': refused, the message says the position holds %s (%s)" %
                  (key, what, e.get("message")))

written = {}
for sh in pe.shards(out, "doc"):
    for key, fields in pe.read_samples(sh):
        written[pe.tool_meta(fields)["orig_key"]] = fields
vctest.expect(sorted(written) == ["filtered", "gaps"], "two documents written: %s" %
              sorted(written))
for key, want_srcs in (("gaps", ["http://a/p0", "http://a/p1"]), ("filtered", ["http://a/p2"])):
    fields = written[key]
    doc = pe.sample_json(fields)
    md = json.loads(doc["metadata"])
    vctest.expect(len(doc["texts"]) == len(doc["images"]) == len(md),
                  "%s: texts, images and metadata stay the same length (%d, %d, %d)" %
                  (key, len(doc["texts"]), len(doc["images"]), len(md)))
    pairs = [(im, m["src"] if m else None) for im, m in zip(doc["images"], md) if im]
    names = ["%d.png" % i for i in range(len(want_srcs))]
    vctest.expect(pairs == list(zip(names, want_srcs)),
                  "%s: each image keeps its own metadata entry, numbered without gaps: %s" %
                  (key, pairs))
    members = sorted(f for f in fields if f.endswith(".png"))
    vctest.expect(members == names, "%s: image members %s" % (key, members))
    for name, (im, _) in zip(names, pairs):
        Image.open(io.BytesIO(fields[name])).load()

# The same rules for documents in webdataset form (a json holding texts and
# images, each image a member of the sample), made with Python's tarfile:
# a malformed position or an image entry naming no member is an error at
# read, never written.
png = open(os.path.join(data, "img", "p0.png"), "rb").read()
wds_docs = [
    ("ok", {"texts": ["a", None], "images": [None, "0.png"]}, {"0.png": png}),
    ("both", {"texts": ["a", "b"], "images": [None, "0.png"]}, {"0.png": png}),
    ("neither", {"texts": ["a", None], "images": [None, None]}, {}),
    ("lengths", {"texts": ["a", None, "c"], "images": [None, "0.png"]}, {"0.png": png}),
    ("dangling", {"texts": ["a", None], "images": [None, "1.png"]}, {"0.png": png}),
]
import tarfile  # noqa: E402
with tarfile.open(os.path.join(data, "docs.tar"), "w", format=tarfile.PAX_FORMAT) as tf:
    for key, doc, members in wds_docs:
        for field, value in [("json", json.dumps(doc).encode())] + list(members.items()):
            info = tarfile.TarInfo("%s.%s" % (key, field))
            info.size = len(value)
            tf.addfile(info, io.BytesIO(value))
spec = {"sources": [{"name": "w", "type": "webdataset", "urls": "docs.tar"}],
        "stages": [], "output": {"prefix": "wdoc"}}
out = os.path.join(args.tmp, "out-wds")
pe.run_spec(args, pe.write_spec(os.path.join(data, "spec-wds.json"), spec), out)
led = {e["key"]: e for e in pe.ledger(out)}
want = {"ok": ("written", None), "both": ("error", "json_invalid"),
        "neither": ("error", "json_invalid"), "lengths": ("error", "json_invalid"),
        "dangling": ("error", "missing_image")}
vctest.expect({k: (e["state"], e.get("reason")) for k, e in led.items()} == want,
              "webdataset documents: malformed ones are errors with their reason: %s" %
              {k: (e["state"], e.get("reason"), e.get("message")) for k, e in led.items()})
vctest.expect("position 1" in led["both"]["message"] and "1.png" in led["dangling"]["message"],
              "the messages name the position and the missing member")
print("all checks passed")
