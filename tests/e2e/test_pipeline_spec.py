"""The run command's own contract, on inputs written here (a TSV pairs list
with hand-made PNGs, independent of the demo generator): the image bytes
come back unchanged through Python's tarfile, keys are sanitised and unique
with the original kept in the json, spec errors exit 2 naming the key, a
different spec into a used folder is refused unless --force, and shard
sizing by bytes holds."""
import hashlib
import json
import os
import struct
import subprocess
import sys
import tarfile
import zlib

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tools"))
import vctest  # noqa: E402

args = vctest.parse_args()
root = os.path.join(args.tmp, "in")
os.makedirs(os.path.join(root, "img"), exist_ok=True)


def png(w, h, seed):
    """An RGB PNG written by hand (zlib from the standard library)."""
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
    rows = b"".join(b"\0" + bytes((x * seed + y * 7 + c) % 256 for x in range(w) for c in range(3))
                    for y in range(h))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


images = {}
rows = ["path\tcaption\tlicense"]
for i in range(12):
    name = "p%02d.png" % i
    images[name] = png(20 + i, 10 + i, i + 3)
    open(os.path.join(root, "img", name), "wb").write(images[name])
    rows.append("%s\tpicture %d\tcc-by" % (name, i))
# two rows with the same image: keys collide ("p00" twice) -> p00, p00_1
rows.append("p00.png\tagain\tcc0")
rows.append("../p01.png\tescape\tcc0")   # unsafe_path
rows.append("nope.png\tmissing\tcc0")    # missing_image
open(os.path.join(root, "pairs.tsv"), "w").write("\n".join(rows) + "\n")

spec = {"sources": [{"name": "p", "type": "pairs", "list": "pairs.tsv", "images_dir": "img",
                     "records_per_unit": 4}],
        "output": {"dir": "out", "prefix": "t", "shard_bytes": 20480}}
spec_path = os.path.join(root, "spec.json")
json.dump(spec, open(spec_path, "w"))


def run(*extra, expect=0):
    p = subprocess.run([args.bin, "run", spec_path, "--quiet", *extra], capture_output=True,
                       text=True)
    vctest.expect(p.returncode == expect, "exit %d (wanted %d): %s" % (p.returncode, expect,
                                                                       p.stderr))
    return p


out = os.path.join(args.tmp, "out")
run("--out", out)
ledger = [json.loads(line) for line in open(os.path.join(out, "ledger.jsonl"))]
states = [e["state"] for e in ledger]
vctest.expect(len(ledger) == 15, "ledger has %d lines" % len(ledger))
vctest.expect(states.count("written") == 13 and states.count("error") == 2, str(states))
reasons = sorted(e["reason"] for e in ledger if e["state"] == "error")
vctest.expect(reasons == ["missing_image", "unsafe_path"], str(reasons))
vctest.expect([e["index"] for e in ledger] == list(range(15)), "ledger not in record order")
totals = json.load(open(os.path.join(out, "run.json")))["totals"]
vctest.expect(totals == {"input": 15, "written": 13, "rejected": 0, "duplicate": 0, "error": 2},
              str(totals))

seen = {}
shards = sorted(f for f in os.listdir(out) if f.endswith(".tar"))
vctest.expect(len(shards) >= 2, "shard_bytes 20480 should cut several shards: %s" % shards)
per_shard = []
for shard in shards:
    with tarfile.open(os.path.join(out, shard)) as tf:
        members = tf.getmembers()
        n_samples = len({m.name.split(".")[0] for m in members})
        per_shard.append(n_samples)
        # the file, end blocks and record padding included, stays within
        # the byte target, unless a single sample is larger by itself
        size = os.path.getsize(os.path.join(out, shard))
        vctest.expect(size <= 20480 or n_samples == 1, "%s is %d bytes" % (shard, size))
        for m in members:
            vctest.expect(m.type == tarfile.REGTYPE and not m.pax_headers, m.name)
            key, field = m.name.split(".", 1)
            seen.setdefault(key, {})[field] = tf.extractfile(m).read()
vctest.expect(max(per_shard) > 1, "samples per shard: %s" % per_shard)
vctest.expect(sorted(seen) == sorted(["p%02d" % i for i in range(12)] + ["p00_1"]), str(seen))
for key, fields in seen.items():
    meta = json.loads(fields["json"])
    name = meta["image_path"]
    vctest.expect(fields["png"] == images[name], "%s: image bytes changed" % key)
    own = meta["vlmcurate"]
    vctest.expect(own["orig_key"] == name[:-4] and own["source"] == "p", str(meta))
    vctest.expect(own["width"] == 20 + int(name[1:3]), str(meta))

    vctest.expect(own["sha256"] == hashlib.sha256(images[name]).hexdigest(), key)
vctest.expect(seen["p00_1"]["txt"] == b"again", "second use of p00")

# a different spec into the same folder is refused, then taken with --force
spec["output"]["samples_per_shard"] = 5
del spec["output"]["shard_bytes"]
json.dump(spec, open(spec_path, "w"))
p = run("--out", out, expect=2)
vctest.expect("--force" in p.stderr, p.stderr)
# ... naming what changed, so that an unintended edit can be undone
vctest.expect("holds a run of another spec (the first difference: 'output.samples_per_shard')"
              in p.stderr, p.stderr)
run("--out", out, "--force")
vctest.expect(sorted(f for f in os.listdir(out) if f.endswith(".tar")) ==
              ["t-000000.tar", "t-000001.tar", "t-000002.tar"], str(os.listdir(out)))

# spec errors exit 2 and name the key
spec["stages"] = [{"stage": "reshard", "shufle": "global"}]
json.dump(spec, open(spec_path, "w"))
p = run("--out", os.path.join(args.tmp, "o2"), expect=2)
vctest.expect("stage 1 (reshard): unknown key 'shufle'" in p.stderr, p.stderr)
print("all checks passed")
