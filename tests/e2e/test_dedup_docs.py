"""The dedup stage's OBELICS document rules and its keep rules, end to end,
on documents and pairs made here with Pillow; every expectation below is
counted by hand from how the data was made.

Run A (documents, the document rules alone, two documents per unit so the
counts cross units):
  - the image at URL http://cdn/logo.png is in 12 documents (more than 10):
    removed from all of them; http://cdn/badge.png is in exactly 10: kept;
  - d04 holds its own picture twice (same URL): the second is removed;
  - the paragraph "Share this article on social media." is in 6 documents
    of news.example.com (removed there) and in 2 of blog.other.org (kept:
    counting is per domain); "Subscribe to our newsletter." is in 3 of
    news.example.com (3 or more: removed) and 2 of blog.other.org (kept);
    the END_OF_DOCUMENT_TOKEN_TO_BE_REPLACED paragraph, in every news
    document, is never judged;
  - d03's second text node held only the subscribe paragraph: its position
    leaves texts, images and metadata together;
  - d12 held only the logo and the share paragraph: nothing is left, the
    document is rejected (reason duplicate, stage dedup);
  - every removal is listed in the document's json "dedup_removed" with
    method and reason; run.json counts them; output identical at 1 and 2
    threads.
Run B: doc_url and doc_image_set drop whole documents (keep one each).
Run C/D: "keep": "largest" keeps the biggest picture of a near-duplicate
cluster, "keep": "first" the one of the earliest source, then smallest
key."""
import io
import json
import os
import sys

from PIL import Image, ImageDraw

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tools"))
import pipeline_e2e as pe  # noqa: E402
import vctest  # noqa: E402

args = vctest.parse_args()
data = os.path.join(args.tmp, "data")
os.makedirs(os.path.join(data, "img"), exist_ok=True)


def picture(seed, w=160, h=120):
    im = Image.new("RGB", (w, h), (seed * 37 % 256, seed * 71 % 256, seed * 113 % 256))
    dr = ImageDraw.Draw(im)
    for k in range(6):
        x = (seed * 29 + k * 41) % (w - 30)
        y = (seed * 17 + k * 23) % (h - 30)
        dr.rectangle([x, y, x + 25, y + 25], fill=((k * 50 + seed * 13) % 256, (k * 90) % 256,
                                                   (seed * 7 + k * 30) % 256))
    return im


def save(name, im):
    im.save(os.path.join(data, "img", name))


save("logo.png", picture(200))
save("badge.png", picture(201))
for i in range(14):
    save("own%02d.png" % i, picture(i))

SHARE = "Share this article on social media."
SUB = "Subscribe to our newsletter."
EOD = "END_OF_DOCUMENT_TOKEN_TO_BE_REPLACED"
WORDS = ("river stone maple copper lantern violet harbor meadow quartz falcon "
         "juniper orbit saffron tundra willow ember cobalt prairie").split()


def unique(i, k):
    return " ".join(WORDS[(i * 5 + k * 3 + j) % len(WORDS)] for j in range(7)) + " %d-%d." % (i, k)


docs = []
for i in range(13):
    news = i < 6 or i == 12
    url = ("https://News.Example.com:443/a/%d" % i) if news else ("https://blog.other.org/p/%d" % i)
    texts, images, md = [], [], []

    def text(t):
        texts.append(t), images.append(None), md.append(None)

    def image(name, src):
        texts.append(None), images.append(name), md.append({"src": src})

    if i == 12:
        image("logo.png", "http://cdn/logo.png")
        text(SHARE)
    else:
        paras = [unique(i, 0)]
        if i < 8:
            paras.append(SHARE)
        text("\n\n".join(paras))
        image("logo.png", "http://cdn/logo.png") if i < 12 else None
        image("own%02d.png" % i, "http://cdn/own%02d.png" % i)
        if i == 4:
            image("own04.png", "http://cdn/own04.png")
        if i == 3:
            text(SUB)
        else:
            body = [unique(i, 1)]
            if i in (0, 2, 6, 7):
                body.append(SUB)
            if news:
                body.append(EOD)
            text("\n\n".join(body))
        if i < 10:
            image("badge.png", "http://cdn/badge.png")
    docs.append({"id": "d%02d" % i, "url": url, "texts": texts, "images": images,
                 "metadata": json.dumps(md)})
# The logo: d00..d11 and d12 = 13 documents; the badge: d00..d09 = 10.
assert sum("http://cdn/logo.png" in d["metadata"] for d in docs) == 13
assert sum("http://cdn/badge.png" in d["metadata"] for d in docs) == 10
with open(os.path.join(data, "docs.jsonl"), "w") as f:
    for d in docs:
        f.write(json.dumps(d) + "\n")

spec = {"sources": [{"name": "web", "type": "documents", "path": "docs.jsonl",
                     "images_dir": "img", "records_per_unit": 2}],
        "stages": [{"stage": "dedup", "image": False, "text": False,
                    "documents": {"url": False, "image_set": False},
                    "memory_mb": 4, "partitions": 4},
                   {"stage": "write"}],
        "output": {"dir": "out", "prefix": "doc"}}
spec_path = pe.write_spec(os.path.join(data, "spec-a.json"), spec)
one, two = os.path.join(args.tmp, "a1"), os.path.join(args.tmp, "a2")
pe.run_spec(args, spec_path, one, threads=1)
pe.run_spec(args, spec_path, two, threads=2)
pe.compare_trees(one, two, "document rules at --threads 1 vs --threads 2")

led = {e["key"]: e for e in pe.ledger(one)}
e = led.get("d12", {})
vctest.expect(e.get("state") == "rejected" and e.get("stage") == "dedup" and
              e.get("reason") == "duplicate" and "removed" in e.get("message", ""),
              "d12 emptied by the rules: rejected by dedup (%s)" % e)
written = {}
for sh in pe.shards(one, "doc"):
    for key, fields in pe.read_samples(sh):
        written[pe.tool_meta(fields)["orig_key"]] = fields
vctest.expect(sorted(written) == ["d%02d" % i for i in range(12)],
              "twelve documents written: %s" % sorted(written))

for i in range(12):
    key = "d%02d" % i
    doc = pe.sample_json(written[key])
    md = json.loads(doc["metadata"])
    vctest.expect(len(doc["texts"]) == len(doc["images"]) == len(md),
                  "%s: lists aligned (%d, %d, %d)" % (key, len(doc["texts"]), len(doc["images"]),
                                                      len(md)))
    srcs = [m["src"] for im, m in zip(doc["images"], md) if im]
    want = ["http://cdn/own%02d.png" % i] + (["http://cdn/badge.png"] if i < 10 else [])
    vctest.expect(srcs == want, "%s: images %s, expected %s" % (key, srcs, want))
    members = sorted(f for f in written[key] if f.endswith(".png"))
    vctest.expect(members == ["%d.png" % k for k in range(len(want))],
                  "%s: members %s" % (key, members))
    vctest.expect([im for im in doc["images"] if im] == members, "%s: json names %s" %
                  (key, doc["images"]))
    paras = [p for t in doc["texts"] if t for p in t.split("\n\n")]
    news = i < 6
    want_p = [unique(i, 0)]
    if i < 8 and not news:
        want_p.append(SHARE)
    if i != 3:
        want_p.append(unique(i, 1))
        if i in (6, 7):
            want_p.append(SUB)
        if news:
            want_p.append(EOD)
    vctest.expect(paras == want_p, "%s: paragraphs %s, expected %s" % (key, paras, want_p))
    got = sorted((r["method"], r["position"]) for r in doc.get("dedup_removed", []))
    exp = [("doc_image_url", 1)]
    if news:
        exp.append(("doc_paragraph", 0))
    if i in (0, 2, 3):
        exp.append(("doc_paragraph", 3))
    if i == 4:
        exp.append(("doc_image_repeat", 3))
    vctest.expect(got == sorted(exp), "%s: dedup_removed %s, expected %s" % (key, got, sorted(exp)))
    for r in doc.get("dedup_removed", []):
        vctest.expect(r.get("reason"), "%s: a removal names its reason: %s" % (key, r))
        if r["method"] == "doc_image_url":
            vctest.expect(r.get("src") == "http://cdn/logo.png" and
                          "more than 10" in r["reason"], "%s: %s" % (key, r))
        if r["method"] == "doc_paragraph":
            vctest.expect("3 or more" in r["reason"] and r.get("bytes") in (len(SHARE), len(SUB)),
                          "%s: %s" % (key, r))

rep = pe.run_json(one).get("dedup", {})
# Counted when PLAN decides, before d12 turns out empty: the logo in 13
# documents; paragraphs: share in d00..d05 and d12 (7), subscribe in d00,
# d02, d03 (3); the repeat in d04.
vctest.expect(rep.get("document_edits") == {"doc_image_url": 13, "doc_paragraph": 10,
                                            "doc_image_repeat": 1},
              "run.json document_edits %s" % rep.get("document_edits"))

# Run B: whole-document rules.  b1 repeats a0's URL; c1 has c0's images
# in another order (a set) and another URL; the rest are unique.
b_docs = [
    {"id": "a0", "url": "https://x.org/1", "texts": [unique(50, 0), None],
     "images": [None, "own00.png"]},
    {"id": "a1", "url": "https://x.org/1", "texts": [unique(51, 0), None],
     "images": [None, "own01.png"]},
    {"id": "c0", "url": "https://x.org/2", "texts": [None, unique(52, 0), None],
     "images": ["own02.png", None, "own03.png"]},
    {"id": "c1", "url": "https://x.org/3", "texts": [None, None, unique(53, 0)],
     "images": ["own03.png", "own02.png", None]},
    {"id": "e0", "url": "https://x.org/4", "texts": [unique(54, 0), None],
     "images": [None, "own05.png"]},
]
with open(os.path.join(data, "docs-b.jsonl"), "w") as f:
    for d in b_docs:
        f.write(json.dumps(d) + "\n")
spec_b = {"sources": [{"name": "web", "type": "documents", "path": "docs-b.jsonl",
                       "images_dir": "img", "records_per_unit": 2}],
          "stages": [{"stage": "dedup", "image": False, "text": False}, {"stage": "write"}],
          "output": {"dir": "out", "prefix": "doc"}}
out_b = os.path.join(args.tmp, "b")
pe.run_spec(args, pe.write_spec(os.path.join(data, "spec-b.json"), spec_b), out_b)
led = {e["key"]: e for e in pe.ledger(out_b)}
for key, kept, method in (("a1", "a0", "doc_url"), ("c1", "c0", "doc_image_set")):
    e = led.get(key, {})
    vctest.expect(e.get("state") == "duplicate" and e.get("method") == method and
                  e.get("dup_of", {}).get("key") == kept,
                  "%s: duplicate of %s by %s (%s)" % (key, kept, method, e))
for key in ("a0", "c0", "e0"):
    vctest.expect(led.get(key, {}).get("state") == "written", "%s written: %s" % (key, led.get(key)))

# Runs C and D: keep rules on a near-duplicate picture cluster spread over
# two sources.  Source "first" (listed first) holds z9 (160x120) and y5
# (the same picture 80x60); source "second" holds a0 (320x240 of it).
base = picture(77)
pairs_dir = os.path.join(data, "pairs")
os.makedirs(pairs_dir, exist_ok=True)


def jpg(im):
    b = io.BytesIO()
    im.save(b, "JPEG", quality=92)
    return b.getvalue()


for name, members in (("first.tar", [("z9", base), ("y5", base.resize((80, 60)))]),
                      ("second.tar", [("a0", base.resize((320, 240))),
                                      ("b1", picture(90))])):
    tar = pe.tar_bytes([m for k, im in members
                        for m in (("%s.jpg" % k, jpg(im)),
                                  ("%s.txt" % k, ("caption of %s with its own words" % k).encode()))])
    with open(os.path.join(pairs_dir, name), "wb") as f:
        f.write(tar)
for keep, kept in (("largest", "a0"), ("first", "y5")):
    sp = {"sources": [{"name": "first", "type": "webdataset", "urls": "pairs/first.tar"},
                      {"name": "second", "type": "webdataset", "urls": "pairs/second.tar"}],
          "stages": [{"stage": "dedup", "keep": keep}, {"stage": "write"}],
          "output": {"dir": "out", "prefix": "p"}}
    out = os.path.join(args.tmp, "keep-" + keep)
    pe.run_spec(args, pe.write_spec(os.path.join(data, "spec-%s.json" % keep), sp), out)
    led = {e["key"]: e for e in pe.ledger(out)}
    states = {k: e["state"] for k, e in led.items()}
    want = {k: ("written" if k in (kept, "b1") else "duplicate") for k in ("z9", "y5", "a0", "b1")}
    vctest.expect(states == want, "keep %s: %s, expected %s" % (keep, states, want))
    for k, e in led.items():
        if e["state"] == "duplicate":
            vctest.expect(e.get("dup_of", {}).get("key") == kept and
                          e.get("method") == "image_phash",
                          "keep %s: %s duplicate of %s (%s)" % (keep, k, kept, e))
print("all checks passed")
