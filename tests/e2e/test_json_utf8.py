"""Every JSON file the tool writes is strict UTF-8 JSON, whatever bytes the
input names hold; raw bytes survive as hex; keys in other scripts stay
distinct and decodable; input json columns named like the tool's own
metadata survive.

The shard (Python's tarfile, GNU format, names written with
surrogateescape) sits in a folder whose name holds the byte 0xFF, reached
the spec's own folder, and holds members named with a Latin-1 byte (`caf\\xe9`),
Japanese keys (two that the old sanitiser turned into the same run of
underscores, and one too long for a member name), a key with a `%`, an
unkeyable member whose name is not UTF-8, and a json with columns source,
width, height, format, sha256 and orig_key, and 64-bit integers that a
double would round (they must come back exact).  After a run with a stats
stage, every .json, every .jsonl line and report.html under OUT (the
_work folder included) is decoded as strict UTF-8 and parsed, and every
string in it must encode back to UTF-8 (no lone surrogates)."""
import io
import json
import os
import sys
import tarfile
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tools"))
import pipeline_e2e as pe  # noqa: E402
import vctest  # noqa: E402

args = vctest.parse_args()
data = os.path.join(args.tmp, "data")
sub = os.path.join(os.fsencode(data), b"in\xff")
os.makedirs(sub)
png = vctest.png_bytes(24, 24)
long_key = "長い鍵" * 8  # 72 UTF-8 bytes, 216 percent-encoded
cols = {"source": "their-crawl", "width": 7, "height": 9, "format": "theirs",
        "sha256": "not-ours", "orig_key": "their-key", "caption_lang": "ja",
        # 64-bit ids and hashes (LAION's int64 `hash`) beyond a double's 2^53
        "SAMPLE_ID": 1234567890123456789, "hash": -5738465283294858241}
samples = [
    ("caf\udce9", [("png", png), ("txt", b"a latin-1 name")]),
    ("猫の写真", [("png", png), ("txt", "猫".encode())]),
    ("犬の写真", [("png", png), ("txt", "犬".encode())]),
    (long_key, [("png", png), ("txt", b"long")]),
    ("50%off", [("png", png), ("txt", b"percent")]),
    ("cols", [("png", png), ("json", json.dumps(cols).encode())]),
]
with tarfile.open(os.path.join(sub, b"in.tar"), "w", format=tarfile.GNU_FORMAT,
                  encoding="utf-8", errors="surrogateescape") as t:
    for key, fields in samples:
        for field, payload in fields:
            info = tarfile.TarInfo("%s.%s" % (key, field))
            info.size = len(payload)
            t.addfile(info, io.BytesIO(payload))
    info = tarfile.TarInfo("\udcff\udcfeno-extension")
    info.size = 1
    t.addfile(info, io.BytesIO(b"x"))

# The spec sits next to the shard: its folder's 0xFF byte reaches the
# paths the tool records (run.json, messages), while the spec itself stays
# valid UTF-8 JSON.
spec = {"sources": [{"name": "web", "type": "webdataset", "urls": ["in.tar"]}],
        "stages": [{"stage": "stats"}], "output": {"prefix": "u"}}
out = os.path.join(args.tmp, "out")
pe.run_spec(args, pe.write_spec(os.path.join(os.fsdecode(sub), "spec.json"), spec), out)


def strings(v):
    if isinstance(v, str):
        yield v
    elif isinstance(v, dict):
        for k, x in v.items():
            yield k
            yield from strings(x)
    elif isinstance(v, list):
        for x in v:
            yield from strings(x)


def strict(raw, what):
    try:
        text = raw.decode("utf-8")  # strict: invalid bytes and encoded surrogates fail
    except UnicodeDecodeError as e:
        raise SystemExit("FAILED: %s is not UTF-8: %s" % (what, e))
    return text


def strict_json(raw, what):
    doc = json.loads(strict(raw, what))
    for s in strings(doc):
        try:
            s.encode("utf-8")
        except UnicodeEncodeError:
            raise SystemExit("FAILED: %s holds a lone surrogate: %r" % (what, s))
    return doc


n_files = n_docs = 0
for root, _, names in os.walk(out):
    for n in names:
        path = os.path.join(root, n)
        raw = open(path, "rb").read()
        if n.endswith(".json"):
            strict_json(raw, path)
            n_docs += 1
        elif n.endswith(".jsonl"):
            for i, line in enumerate(raw.splitlines()):
                strict_json(line, "%s line %d" % (path, i + 1))
                n_docs += 1
        elif n.endswith(".html"):
            strict(raw, path)
        elif n.endswith(".tar"):
            for _, fields in pe.read_samples(path):
                strict_json(fields["json"], "%s json" % path)
                n_docs += 1
        else:
            continue
        n_files += 1
vctest.expect(n_files >= 6 and os.path.exists(os.path.join(out, "report.html")),
              "%d files (%d JSON documents, _work, shard json and report.html included) "
              "are strict UTF-8 JSON" % (n_files, n_docs))

led = pe.ledger(out)
cafe = [e for e in led if e["key"].startswith("caf")]
vctest.expect(len(cafe) == 1 and cafe[0]["key"] == "caf\ufffd" and
              cafe[0].get("key_hex") == "636166e9",
              "ledger: a Latin-1 key shows U+FFFD, key_hex keeps the bytes (%s)" % cafe)
bad = [e for e in led if e.get("key_hex") == "fffe6e6f2d657874656e73696f6e"]
vctest.expect(len(bad) == 1 and bad[0]["reason"] == "bad_member_name",
              "the unkeyable member with a non-UTF-8 name has its line, exact bytes in key_hex")

written = {}
for sh in pe.shards(out, "u"):
    for key, fields in pe.read_samples(sh):
        written[key] = pe.sample_json(fields)
by_orig = {m["vlmcurate"]["orig_key"]: (k, m) for k, m in written.items()}
cat, dog = by_orig["猫の写真"][0], by_orig["犬の写真"][0]
vctest.expect(cat != dog and urllib.parse.unquote(cat) == "猫の写真" and
              urllib.parse.unquote(dog) == "犬の写真",
              "Japanese keys stay distinct and percent-decode to the original (%s, %s)" %
              (cat, dog))
lk = by_orig[long_key][0]
vctest.expect(len(lk) <= 64 and lk[-9] == "-" and
              long_key.startswith(urllib.parse.unquote(lk[:-9])),
              "a key too long for a member name is cut on a character and hashed: %s" % lk)
vctest.expect(urllib.parse.unquote(by_orig["50%off"][0]) == "50%off",
              "'%' itself is escaped, so decoding is exact: " + by_orig["50%off"][0])
k, m = by_orig["caf\ufffd"]
vctest.expect(k == "caf%E9" and m["vlmcurate"].get("orig_key_hex") == "636166e9",
              "shard json: orig_key_hex keeps the Latin-1 byte, key %s" % k)
m = by_orig["cols"][1]
vctest.expect(all(m.get(c) == v for c, v in cols.items()),
              "input columns named source/width/height/format/sha256/orig_key and "
              "64-bit integers survive: %s" %
              {c: m.get(c) for c in cols})
vctest.expect(m["vlmcurate"]["source"] == "web" and m["vlmcurate"]["width"] == 24 and
              m["vlmcurate"]["format"] == "png",
              "the tool's own facts are under \"vlmcurate\"")
print("all checks passed")
