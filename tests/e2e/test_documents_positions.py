"""The write stage's "positions" layout: interleaved documents written the
way the Idefics2 training code's webdataset reader (Hugging Face m4's web
documents) takes them, one member per position.

Documents in the OBELICS layout made here (JSONL, pictures drawn by
Pillow), with an image missing from disk and an SVG (both dropped at
read), an icon a filter drops, and a position holding both a text and an
image (refused).  The shards are read with Python's tarfile and checked
against the rules that reader applies (written here from its documented
behaviour, not taken from it): every member is KEY.P.text.txt,
KEY.P.image.EXT or KEY.metadata.txt, and metadata.txt lists exactly the
sample's members.  The sequence rebuilt from the members must be the input
document less its dropped positions, image bytes equal to the files on
disk; the README's loader function, run on samples grouped by
webdataset's key rule, must rebuild it too."""
import io
import json
import os
import re
import sys
import tarfile

from PIL import Image

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tools"))
import pipeline_e2e as pe  # noqa: E402
import vctest  # noqa: E402

args = vctest.parse_args()
data = os.path.join(args.tmp, "data")
os.makedirs(os.path.join(data, "img"))


def save(name, w, h, seed, fmt="PNG"):
    im = Image.new("RGB", (w, h))
    im.putdata([((x * 3 + seed) & 255, (y * 7 + seed) & 255, ((x + y) * seed) & 255)
                for y in range(h) for x in range(w)])
    im.save(os.path.join(data, "img", name), fmt)


for i in range(3):
    save("p%d.png" % i, 160, 120, 11 * i + 5)
save("q.jpg", 200, 150, 7, "JPEG")
save("icon.png", 8, 8, 3)
with open(os.path.join(data, "img", "vector.svg"), "w") as f:
    f.write("<svg xmlns='http://www.w3.org/2000/svg'/>")

docs = [
    {"id": "gaps",
     "texts": ["intro", None, "caf\u00e9 \u732b", None, None, None, "outro"],
     "images": [None, "p0.png", None, "missing.png", "vector.svg", "q.jpg", None],
     "metadata": json.dumps([None, {"src": "a"}, None, {"src": "b"}, {"src": "c"},
                             {"src": "d"}, None])},
    {"id": "filtered",
     "texts": ["text one", None, None, "text two", None],
     "images": [None, "icon.png", "p1.png", None, "p2.png"]},
    {"id": "textonly", "texts": ["only", "words"], "images": [None, None]},
    {"id": "both", "texts": ["a text", "and"], "images": [None, "p2.png"]},
]
# What survives of each document: its positions less the dropped images.
dropped = {"gaps": {"missing.png", "vector.svg"}, "filtered": {"icon.png"}}
with open(os.path.join(data, "docs.jsonl"), "w") as f:
    for d in docs:
        f.write(json.dumps(d) + "\n")


def expected_sequence(doc):
    seq = []
    for text, image in zip(doc["texts"], doc["images"]):
        if image is None:
            seq.append(("text", text))
        elif image not in dropped.get(doc["id"], ()):
            with open(os.path.join(data, "img", image), "rb") as f:
                seq.append(("image", f.read()))
    return seq


spec = {"sources": [{"name": "d", "type": "documents", "path": "docs.jsonl",
                     "images_dir": "img"}],
        "stages": [{"stage": "filter", "defaults": False,
                    "filters": [{"name": "img_width", "min": 100}]},
                   {"stage": "write", "layout": "positions"}],
        "output": {"prefix": "doc", "samples_per_shard": 2}}
out = os.path.join(args.tmp, "out")
pe.run_spec(args, pe.write_spec(os.path.join(data, "spec.json"), spec), out, threads=2)

led = {e["key"]: e for e in pe.ledger(out)}
vctest.expect(led["both"]["state"] == "error" and led["both"]["reason"] == "json_invalid",
              "a position holding both a text and an image is refused: %s" % led["both"])

# The reader's rules, applied to each tar: members of one document are
# contiguous and share KEY; each is KEY.P.text.txt, KEY.P.image.EXT or
# KEY.metadata.txt; metadata.txt lists exactly the other members.
POSITION = re.compile(r"^([^./]+)\.(\d+)\.(text|image)\.([a-z]+)$")
LIST = re.compile(r"^([^./]+)\.metadata\.txt$")
rebuilt, grouped = {}, []
for path in pe.shards(out, "doc"):
    with tarfile.open(path) as tf:
        members = [(m.name, tf.extractfile(m).read()) for m in tf.getmembers()]
    docs_here = []
    for name, value in members:
        m, l = POSITION.match(name), LIST.match(name)
        vctest.expect(m or l, "member %s has the reader's shape" % name)
        key = (m or l).group(1)
        if not docs_here or docs_here[-1][0] != key:
            vctest.expect(key not in rebuilt and all(k != key for k, _ in docs_here),
                          "the members of %s are contiguous" % key)
            docs_here.append((key, []))
        docs_here[-1][1].append((name, value))
    for key, items in docs_here:
        names = {n for n, _ in items}
        listed = dict(items)[key + ".metadata.txt"].decode()
        vctest.expect(listed.split("\n") ==
                      sorted((n for n in names if not LIST.match(n)),
                             key=lambda n: int(n.split(".")[1])),
                      "%s: metadata.txt lists every member in position order, no empty line: %r"
                      % (key, listed))
        pos = sorted((int(POSITION.match(n).group(2)), POSITION.match(n).group(3), v)
                     for n, v in items if POSITION.match(n))
        vctest.expect([p for p, _, _ in pos] == list(range(len(pos))),
                      "%s: positions numbered 0..%d without gaps" % (key, len(pos) - 1))
        rebuilt[key] = [(kind, v.decode() if kind == "text" else v) for _, kind, v in pos]
        # webdataset's grouping: key up to the first dot, field the rest.
        grouped.append({"__key__": key, **{n[len(key) + 1:]: v for n, v in items}})

out_key = {e["key"]: e.get("out_key") for e in led.values() if e["state"] == "written"}
vctest.expect(sorted(out_key) == ["filtered", "gaps", "textonly"],
              "three documents written: %s" % sorted(out_key))
for d in docs[:3]:
    key = out_key[d["id"]]
    want = expected_sequence(d)
    vctest.expect(rebuilt.get(key) == want,
                  "%s: the rebuilt sequence is the input less its dropped images (%s)" %
                  (d["id"], [(k, v if k == "text" else len(v)) for k, v in rebuilt.get(key, [])]))
    for kind, v in want:
        if kind == "image":
            Image.open(io.BytesIO(v)).load()

# The README's loader function, on samples as webdataset groups them.
readme = open(os.path.join(os.path.dirname(__file__), "..", "..", "README.md")).read()
src = re.search(r"^def positions_sequence\(sample\):\n(?:    .*\n)+", readme, re.M)
vctest.expect(src is not None, "the README has the positions loader")
scope = {}
exec(src.group(0), scope)
by_key = {s["__key__"]: scope["positions_sequence"](s) for s in grouped}
vctest.expect(all(by_key[out_key[d["id"]]] == expected_sequence(d) for d in docs[:3]),
              "the README's positions_sequence rebuilds every document")

# An unknown layout is refused at spec load, naming the stage and the key.
spec["stages"][1]["layout"] = "pages"
r = pe.run_spec(args, pe.write_spec(os.path.join(data, "bad.json"), spec),
                os.path.join(args.tmp, "bad"), check=False)
vctest.expect(r.returncode == 2 and "write" in r.stderr and "layout" in r.stderr,
              "an unknown layout: exit 2 naming stage and key: " + r.stderr.strip()[-300:])
print("all checks passed")
