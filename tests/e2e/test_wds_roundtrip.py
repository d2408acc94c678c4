"""Shards written by `vlmcurate run` read back by GNU tar and by Python's
tarfile (plus a raw walk of the 512-byte headers), every field
byte-identical to the input sample it came from: demo webdataset shards
(read here with tarfile), image-caption pairs (the image files and the
JSONL rows) and OBELICS documents.  Checks the webdataset rules (plain
ustar, names <= 100 bytes, ASCII, keys without dots, members of a sample
contiguous, no extension twice), the per-sample json (source, original
key, width/height/format/sha256 of the image), the ledger's written
entries, the DALI and wids indexes, and that with no shuffle and one source
the output keeps the input order."""
import csv
import hashlib
import json
import os
import re
import subprocess
import sys
import tarfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tools"))
import pipeline_e2e as pe  # noqa: E402
import vctest  # noqa: E402
import wds_tarcheck  # noqa: E402

args = vctest.parse_args()
data = os.path.join(args.tmp, "data")
demo = pe.demo_data(args, data, samples=40, seed=3)
n_shards = demo["wds_shards"]

# ---- the inputs, read independently --------------------------------------
web_in = {}  # orig key -> fields
for s in range(n_shards):
    for key, fields in pe.read_samples(os.path.join(data, "wds", "demo-%06d.tar" % s)):
        web_in[key] = fields
pairs_in = {}  # key (image stem, as the pairs source names it) -> row
with open(os.path.join(data, "pairs", "pairs.jsonl")) as f:
    for line in f:
        row = json.loads(line)
        pairs_in[os.path.splitext(os.path.basename(row["image"]))[0]] = row
docs_in = {}  # general_metadata (unique per document) -> document
with open(os.path.join(data, "docs", "docs.jsonl")) as f:
    for line in f:
        doc = json.loads(line)
        docs_in[doc["general_metadata"]] = doc

# The CSV export holds the same rows as the JSONL one.
with open(os.path.join(data, "pairs", "pairs.csv"), newline="") as f:
    csv_rows = list(csv.DictReader(f))
vctest.expect([r["image"] for r in csv_rows] == [r["image"] for r in pairs_in.values()] and
              [r["caption"] for r in csv_rows] == [r["caption"] for r in pairs_in.values()],
              "pairs.csv and pairs.jsonl list the same rows (RFC 4180 quoting read back)")

# ---- run 1: all three sources, mixed and shuffled --------------------------
spec = json.load(open(os.path.join(data, "spec.json")))
spec["output"]["samples_per_shard"] = 16
# Round trip = what went in comes out: without the filter stage, which
# rewrites documents whose paragraphs it removes.
spec["stages"] = [st for st in spec["stages"] if st["stage"] != "filter"]
spec_path = pe.write_spec(os.path.join(data, "spec-roundtrip.json"), spec)
out = os.path.join(args.tmp, "out")
pe.run_spec(args, spec_path, out, threads=2)
prefix = spec["output"]["prefix"]
shard_paths = pe.shards(out, prefix)
vctest.expect(len(shard_paths) >= 2, "%d output shards" % len(shard_paths))


def check_shard(path):
    """Raw headers, tarfile and GNU tar agree; returns [(key, fields)]."""
    raw = open(path, "rb").read()
    raw_names = wds_tarcheck.check_raw(raw)  # exits with a message on a bad header
    with tarfile.open(path, "r:") as t:
        members = t.getmembers()
        tf_names = [m.name for m in members]
        for m in members:
            if m.pax_headers or m.type != tarfile.REGTYPE:
                raise SystemExit("FAILED: %s: %s is not a plain ustar file" % (path, m.name))
        tf_bytes = {m.name: t.extractfile(m).read() for m in members}
    gnu_names = subprocess.run(["tar", "-tf", path], check=True, capture_output=True,
                               text=True).stdout.splitlines()
    if not (raw_names == tf_names == gnu_names):
        raise SystemExit("FAILED: %s: raw walk, tarfile and GNU tar list different members" %
                         path)
    x = os.path.join(args.tmp, "gnu-x")
    subprocess.run(["rm", "-rf", x], check=True)
    os.makedirs(x)
    subprocess.run(["tar", "-xf", path, "-C", x], check=True)
    for name, body in tf_bytes.items():
        if open(os.path.join(x, name), "rb").read() != body:
            raise SystemExit("FAILED: GNU tar and tarfile disagree on %s in %s" % (name, path))
    samples, seen = [], set()
    for name in tf_names:
        if len(name.encode()) > 100 or not name.isascii():
            raise SystemExit("FAILED: member name %r is not ASCII of <= 100 bytes" % name)
        key, dot, ext = name.partition(".")
        if not re.fullmatch(r"[A-Za-z0-9_%-]+", key) or not ext:
            raise SystemExit("FAILED: key %r of %r is not a dot-free webdataset key" % (key, name))
        if not samples or samples[-1][0] != key:
            if key in seen:
                raise SystemExit("FAILED: the members of %s are not contiguous" % key)
            seen.add(key)
            samples.append((key, {}))
        if ext in samples[-1][1]:
            raise SystemExit("FAILED: extension %s twice in %s" % (ext, key))
        samples[-1][1][ext] = tf_bytes[name]
    return samples


out_samples = {}  # (shard file, key) -> fields
order = []
for p in shard_paths:
    for key, fields in check_shard(p):
        if key in {k for _, k in out_samples}:
            raise SystemExit("FAILED: key %s written twice in the output" % key)
        out_samples[(os.path.basename(p), key)] = fields
        order.append((os.path.basename(p), key))
vctest.expect(True, "%d shards: raw ustar walk, tarfile and GNU tar agree on every member, "
              "names and keys follow the webdataset rules" % len(shard_paths))

by_source = {"web": 0, "pairs": 0, "docs": 0}
for (shard, key), fields in out_samples.items():
    meta, own = pe.sample_json(fields), pe.tool_meta(fields)
    src, orig = own.get("source"), own.get("orig_key")
    ext, img = pe.main_image(fields)
    if src in ("web", "pairs"):
        if img is None:
            raise SystemExit("FAILED: %s/%s has no image" % (shard, key))
        if own.get("sha256") != hashlib.sha256(img).hexdigest():
            raise SystemExit("FAILED: %s: sha256 in json is not the image's" % key)
        if own.get("format") != ext:
            raise SystemExit("FAILED: %s: format %r but field %s" % (key, own.get("format"),
                                                                    ext))
    if src == "web":
        inp = web_in.get(orig)
        if inp is None:
            raise SystemExit("FAILED: %s: orig_key %r is no input sample" % (key, orig))
        for f, body in fields.items():
            if f != "json" and inp.get(f) != body:
                raise SystemExit("FAILED: web %s field %s differs from the input" % (orig, f))
        if set(fields) != set(inp) | {"json"}:
            raise SystemExit("FAILED: web %s fields %s, input had %s (plus json)" %
                             (orig, sorted(fields), sorted(inp)))
        in_meta = pe.sample_json(inp)
        for k, v in in_meta.items():
            if meta.get(k) != v:
                raise SystemExit("FAILED: web %s: input json %s=%r became %r" %
                                 (orig, k, v, meta.get(k)))
        if key != pe.expected_key(orig) and not key.startswith(pe.expected_key(orig)):
            raise SystemExit("FAILED: key %s is not the sanitised %s" % (key, orig))
    elif src == "pairs":
        row = pairs_in.get(orig)
        if row is None:
            raise SystemExit("FAILED: pairs orig_key %r is no row" % orig)
        if img != open(os.path.join(data, "pairs", "images", row["image"]), "rb").read():
            raise SystemExit("FAILED: pairs %s image differs from %s" % (orig, row["image"]))
        if fields.get("txt", b"") != row["caption"].encode():
            raise SystemExit("FAILED: pairs %s caption differs" % orig)
        for col in ("url", "license", "width", "height"):
            if meta.get(col) != row[col]:
                raise SystemExit("FAILED: pairs %s column %s lost" % (orig, col))
    elif src == "docs":
        doc = docs_in.get(meta.get("general_metadata"))
        if doc is None:
            raise SystemExit("FAILED: document %s matches no input document" % key)
        kept = [p for p in doc["images"] if p is not None and
                os.path.exists(os.path.join(data, "docs", "images", p))]
        img_fields = [f for f in fields if f.split(".")[-1] in pe.IMAGE_EXTS]
        if len(img_fields) != len(kept):
            raise SystemExit("FAILED: document %s: %d image fields for %d readable images" %
                             (key, len(img_fields), len(kept)))
        for i, p in enumerate(kept):
            name = "%d.%s" % (i, p.rsplit(".", 1)[1])
            if fields.get(name) != open(os.path.join(data, "docs", "images", p), "rb").read():
                raise SystemExit("FAILED: document %s field %s is not %s" % (key, name, p))
        texts = [t for t in meta.get("texts", []) if t is not None]
        if texts != [t for t in doc["texts"] if t is not None]:
            raise SystemExit("FAILED: document %s texts changed" % key)
    else:
        raise SystemExit("FAILED: %s has source %r" % (key, src))
    by_source[src] += 1
vctest.expect(all(by_source.values()),
              "every output field is byte-identical to its input (web %d, pairs %d, docs %d)" %
              (by_source["web"], by_source["pairs"], by_source["docs"]))

# ---- the ledger's written entries are exactly the output -------------------
led = pe.ledger(out)
written = [e for e in led if e["state"] == "written"]
vctest.expect(len(written) == len(out_samples),
              "ledger: %d written entries for %d output samples" % (len(written),
                                                                    len(out_samples)))
vctest.expect({(os.path.basename(e["shard"]), e["out_key"]) for e in written} ==
              set(out_samples), "ledger: each written entry names its shard and key")
tot = pe.run_json(out)["totals"]
vctest.expect(pe.totals_add_up(tot) and tot["written"] == len(out_samples),
              "run.json totals %s add up" % tot)

# ---- indexes ------------------------------------------------------------------
for p in shard_paths:
    raw = open(p, "rb").read()
    idx = open(p[:-len(".tar")] + ".idx").read().splitlines()
    head = idx[0].split()
    samples = pe.read_samples(p)
    if head != ["v1.2", str(len(samples))] or len(idx) != len(samples) + 1:
        raise SystemExit("FAILED: DALI index of %s: header %s for %d samples" %
                         (p, head, len(samples)))
    for line, (key, fields) in zip(idx[1:], samples):
        parts = line.split()
        for i in range(0, len(parts), 4):
            ext, off, size, name = parts[i], int(parts[i + 1]), int(parts[i + 2]), parts[i + 3]
            if name != "%s.%s" % (key, ext) or raw[off:off + size] != fields[ext]:
                raise SystemExit("FAILED: DALI entry %s does not point at its bytes" % name)
vctest.expect(True, "DALI index of every shard points at each member's bytes")

for p in shard_paths:
    man = json.load(open(p[:-len(".tar")] + ".json"))
    srcs = {}
    for _, f in pe.read_samples(p):
        src = pe.tool_meta(f)["source"]
        srcs[src] = srcs.get(src, 0) + 1
    if (man["shard"], man["samples"], man["bytes"], man["sha256"], man["sources"]) != \
            (os.path.basename(p), len(pe.read_samples(p)), os.path.getsize(p),
             hashlib.sha256(open(p, "rb").read()).hexdigest(), srcs):
        raise SystemExit("FAILED: shard manifest of %s disagrees with the shard: %s" % (p, man))
vctest.expect(True, "each shard's manifest gives its samples, bytes, sha256 and sources")

wids = [n for n in os.listdir(out) if n.endswith(".json") and
        json.load(open(os.path.join(out, n))).get("__kind__") == "wids-shard-index-v1"]
vctest.expect(len(wids) == 1, "one wids-shard-index-v1 file: %s" % wids)
shardlist = json.load(open(os.path.join(out, wids[0])))["shardlist"]
vctest.expect([(s["url"], s["nsamples"], s["filesize"]) for s in shardlist] ==
              [(os.path.basename(p), len(pe.read_samples(p)), os.path.getsize(p))
               for p in shard_paths], "wids index lists every shard with its samples and size")

# ---- run 2: one source, no shuffle: the output keeps the input order ------
spec2 = {
    "sources": [{"name": "web", "type": "webdataset",
                 "urls": "wds/demo-{000000..%06d}.tar" % (n_shards - 3)}],
    "stages": [{"stage": "ingest", "decode": True}, {"stage": "reshard", "shuffle": "none"},
               {"stage": "write"}],
    "output": {"dir": "out2", "prefix": "ordered", "samples_per_shard": 7},
}
out2 = os.path.join(args.tmp, "out2")
pe.run_spec(args, pe.write_spec(os.path.join(data, "spec-ordered.json"), spec2), out2)
got = [pe.tool_meta(f)["orig_key"] for p in pe.shards(out2, "ordered")
       for _, f in pe.read_samples(p)]
bad = {d["key"] for d in demo["defects"] if d["source"] == "web"}
want = [k for s in range(n_shards - 2)
        for k, _ in pe.read_samples(os.path.join(data, "wds", "demo-%06d.tar" % s))
        if k not in bad]
vctest.expect(got == want, "no shuffle, one source: %d samples in input order" % len(want))
sizes = [len(pe.read_samples(p)) for p in pe.shards(out2, "ordered")]
vctest.expect(all(n == 7 for n in sizes[:-1]) and 1 <= sizes[-1] <= 7,
              "samples_per_shard 7: shard sizes %s" % sizes)

# ---- runs 3 and 4: the shuffles permute that order ---------------------------
# A webdataset-style buffer of B slots emits an item no earlier than B - 1
# places before its input position (it must first enter the buffer); the
# global shuffle may move anything anywhere.
for shuffle, extra in (("buffer", {"buffer_size": 5}), ("global", {})):
    spec3 = json.loads(json.dumps(spec2))
    spec3["stages"][1] = dict({"stage": "reshard", "shuffle": shuffle, "seed": 9}, **extra)
    out3 = os.path.join(args.tmp, "out-" + shuffle)
    pe.run_spec(args, pe.write_spec(os.path.join(data, "spec-%s.json" % shuffle), spec3), out3)
    got3 = [pe.tool_meta(f)["orig_key"] for p in pe.shards(out3, "ordered")
            for _, f in pe.read_samples(p)]
    vctest.expect(sorted(got3) == sorted(want) and got3 != want,
                  "%s shuffle: a permutation of the %d samples, not the identity" %
                  (shuffle, len(want)))
    if shuffle == "buffer":
        early = [k for i, k in enumerate(got3) if i < want.index(k) - 4]
        vctest.expect(not early, "buffer of 5: nothing comes out more than 4 places early (%s)" %
                      early[:3])
print("PASS")
