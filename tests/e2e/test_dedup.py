"""The dedup stage end to end, on webdataset shards made here with PIL and
tarfile: exact copies, re-encodes, resizes, near-duplicate captions and
distinct images spread over several shards.  Checks, against answers that
follow from how the data was made:
  - which samples are duplicates, of which kept sample, by which method
    (ledger), and that "keep": "largest" keeps the largest picture;
  - the pHash in each written sample's json equals a numpy DCT of the same
    32x32 grey picture (images made 32x32 so no resize is involved);
  - run.json counts duplicates per method and lists the largest cluster;
  - byte-identical output at --threads 1 and 2, with a tiny memory budget
    and many partitions, and after a kill -9 during the reduce parts and a
    rerun, which keeps the parts committed before the kill."""
import hashlib
import io
import json
import os
import random
import sys
import tarfile

import numpy as np
from PIL import Image, ImageDraw

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tools"))
import pipeline_e2e as pe  # noqa: E402
import vctest  # noqa: E402

args = vctest.parse_args()
data = os.path.join(args.tmp, "data")
os.makedirs(data, exist_ok=True)


def scene(seed, w=480, h=360):
    """A picture with large shapes and texture (what pHash sees in photos)."""
    rnd = random.Random(seed)
    im = Image.new("RGB", (w, h), tuple(rnd.randrange(256) for _ in range(3)))
    d = ImageDraw.Draw(im)
    for _ in range(12):
        x0, y0 = rnd.randrange(w), rnd.randrange(h)
        x1, y1 = x0 + rnd.randrange(40, w // 2), y0 + rnd.randrange(40, h // 2)
        fill = tuple(rnd.randrange(256) for _ in range(3))
        (d.ellipse if rnd.random() < 0.5 else d.rectangle)([x0, y0, x1, y1], fill=fill)
    return im


def enc(im, fmt="JPEG", **kw):
    b = io.BytesIO()
    im.save(b, fmt, **kw)
    return b.getvalue()


def phash_numpy(gray32):
    """pHash of a 32x32 grey array: orthonormal DCT-II as a matrix product,
    8x8 low frequencies against their median, DC first = most significant."""
    n = 32
    k = np.arange(n)
    c = np.cos(np.pi * (2 * k[None, :] + 1) * k[:, None] / (2 * n)) * np.sqrt(2.0 / n)
    c[0] /= np.sqrt(2.0)
    d = (c @ gray32.astype(np.float64) @ c.T)[:8, :8].flatten()
    bits = d > np.median(d)
    return int("".join("1" if b else "0" for b in bits), 2)


long_caption = ("a wooden cabin stands at the edge of a quiet lake under tall pine trees "
                "while morning fog drifts slowly over the water and two small boats rest "
                "on the pebble shore near an old stone path")
A, B, C = scene(1), scene(2), scene(3)
a_jpg = enc(A, quality=90)
# (key, image bytes, caption); comments give the expected fate.
samples = [
    ("a0", a_jpg, "sunset over the hills"),                        # kept: largest of A's cluster
    ("a1", a_jpg, "completely different words here"),              # image_sha256 of a0
    ("a2", enc(A, quality=45), "another caption one"),              # image_phash of a0
    ("a3", enc(A.resize((240, 180), Image.LANCZOS), quality=90), "x y z"),  # image_phash of a0
    ("a4", enc(A, "PNG"), "a png copy"),                            # image_phash of a0
    ("b0", enc(B, quality=90), long_caption),                        # kept
    ("c0", enc(C, quality=90), long_caption.replace("two small", "three small")),
                                                                     # text_minhash of b0
    ("d0", enc(scene(4), quality=90), "Sunset  over the HILLS"),    # text_exact of a0
    ("e0", enc(scene(5), quality=90), "a caption of its own"),      # kept
]
# Tiny grey pictures for the pHash check (distinct, never duplicates).
grays = {}
for i in range(6):
    rnd = np.random.RandomState(100 + i)
    g = (rnd.rand(32, 32) * 60 + np.linspace(0, 180, 32)[None, :] * (i % 3) +
         np.linspace(0, 150, 32)[:, None] * ((i + 1) % 2)).clip(0, 255).astype(np.uint8)
    key = "g%d" % i
    grays[key] = g
    samples.append((key, enc(Image.fromarray(g, "L"), "PNG"), "grey test picture number %d" % i))

# Three shards, samples dealt round-robin so duplicates cross shards; the
# last one gzip'd (under the same .tar name: shards are read by content).
shards = [[] for _ in range(3)]
for i, s in enumerate(samples):
    shards[i % 3].append(s)
for n, members in enumerate(shards):
    with tarfile.open(os.path.join(data, "in-%06d.tar" % n), "w:gz" if n == 2 else "w",
                      format=tarfile.USTAR_FORMAT) as t:
        for key, img, cap in members:
            ext = "png" if img[:4] == b"\x89PNG" else "jpg"
            for name, payload in (("%s.%s" % (key, ext), img), ("%s.txt" % key, cap.encode())):
                ti = tarfile.TarInfo(name)
                ti.size = len(payload)
                t.addfile(ti, io.BytesIO(payload))

spec = {
    "sources": [{"name": "web", "type": "webdataset", "urls": "in-{000000..000002}.tar"}],
    "stages": [{"stage": "ingest"},
               {"stage": "dedup", "memory_mb": 4, "partitions": 64},
               {"stage": "write"}],
    "output": {"dir": "out", "prefix": "dd", "samples_per_shard": 4},
}
spec_path = pe.write_spec(os.path.join(data, "spec.json"), spec)
one, two = os.path.join(args.tmp, "t1"), os.path.join(args.tmp, "t2")
pe.run_spec(args, spec_path, one, threads=1)
pe.run_spec(args, spec_path, two, threads=2)
pe.compare_trees(one, two, "dedup at --threads 1 vs --threads 2")

# Spills do not copy the pictures.  A picture read from a plain tar is linked
# to that tar by every round (shards 0 and 1); one read from the gzip'd
# shard 2 is copied by round 0, and the round after dedup (write) links it
# to round 0's spill, which stays where a unit's manifest says it links (and
# only there).  A shard removed after the run is written again,
# byte-identical, from them.
work = os.path.join(two, "_work")


def spill_bytes(rnd, u):
    p = os.path.join(work, "r%d-map-%06d.bin" % (rnd, u))
    return os.path.getsize(p) if os.path.exists(p) else 0


def input_bytes(u):
    return os.path.getsize(os.path.join(data, "in-%06d.tar" % u))


linked = [json.load(open(os.path.join(work, "r1-map-%06d.json" % u))).get("links", False)
          for u in range(3)]
kept = [os.path.exists(os.path.join(work, "r0-map-%06d.bin" % u)) for u in range(3)]
vctest.expect(linked == [False, False, True] and kept == linked,
              "round 0's spill stays where round 1's links to it (links %s, kept %s)" %
              (linked, kept))
r1 = [spill_bytes(1, u) for u in range(3)]
vctest.expect(all(0 < r1[u] < input_bytes(u) / 4 for u in range(3)),
              "round 1's spills (%s bytes) link to the inputs (%s bytes) or round 0's spill" %
              (r1, [input_bytes(u) for u in range(3)]))
vctest.expect(0 < spill_bytes(0, 2) and spill_bytes(1, 2) < spill_bytes(0, 2) / 4,
              "round 1's spill of the gzip'd shard (%d bytes) links into round 0's (%d bytes)" %
              (spill_bytes(1, 2), spill_bytes(0, 2)))
with open(os.path.join(work, "r1-map-000000.bin"), "rb") as f:
    vctest.expect(f.read()[-24:-16] == b"vcspsrc1",
                  "a spill linked to its input ends with the input's identity")
for n in ("dd-000001.tar", "dd-000001.json", "run.json"):
    os.remove(os.path.join(two, n))
pe.run_spec(args, spec_path, two, threads=2)
pe.compare_trees(one, two, "a shard removed after the run, written again from the linked spills")

expect = {"a1": ("a0", "image_sha256"), "a2": ("a0", "image_phash"),
          "a3": ("a0", "image_phash"), "a4": ("a0", "image_phash"),
          "c0": ("b0", "text_minhash"), "d0": ("a0", "text_exact")}
by_key = {}
for e in pe.ledger(one):
    by_key[e["key"]] = e
dups = {k: e for k, e in by_key.items() if e["state"] == "duplicate"}
vctest.expect(sorted(dups) == sorted(expect), "duplicates %s, expected %s" %
              (sorted(dups), sorted(expect)))
for k, (kept, method) in expect.items():
    e = dups.get(k, {})
    vctest.expect(e.get("stage") == "dedup" and e.get("reason") == "duplicate", "%s: %s" % (k, e))
    dup_of = e.get("dup_of", {})
    kept_file = by_key[kept]["file"]
    vctest.expect(dup_of == {"source": "web", "file": kept_file, "index": by_key[kept]["index"],
                             "key": kept, "out_key": kept}, "%s dup_of %s" % (k, dup_of))
    vctest.expect(e.get("method") == method, "%s found by %s, expected %s" %
                  (k, e.get("method"), method))
    if method == "image_phash":
        vctest.expect(0 <= e.get("distance", -1) <= 10, "%s distance %s" % (k, e.get("distance")))
    elif method == "text_minhash":
        vctest.expect(0.8 <= e.get("similarity", -1) <= 1, "%s similarity %s" %
                      (k, e.get("similarity")))
    else:
        vctest.expect("distance" not in e and "similarity" not in e, "%s: exact, no measure" % k)
for k in ("a0", "b0", "e0") + tuple(grays):
    vctest.expect(by_key[k]["state"] == "written", "%s written: %s" % (k, by_key[k]))

# pHash of the grey pictures, as written into their json.
written = {}
for path in pe.shards(one, "dd"):
    for key, fields in pe.read_samples(path):
        written[key] = json.loads(fields["json"])
for key, doc in written.items():
    vctest.expect("decoded_sha256" not in doc and "decoded_sha256" not in doc.get("vlmcurate", {}),
                  "%s: the decode handoff between dedup and write stays out of the shard" % key)
for key, g in grays.items():
    want = "%016x" % phash_numpy(g)
    got = written.get(key, {}).get("phash")
    vctest.expect(got == want, "%s phash %s, numpy %s" % (key, got, want))

report = pe.run_json(one).get("dedup", {})
vctest.expect(report.get("duplicates") == 6, "run.json dedup %s" % report)
vctest.expect(report.get("by_method") == {"image_sha256": 1, "image_phash": 3, "text_exact": 1,
                                          "text_minhash": 1}, "by_method %s" % report)
top = report.get("largest_clusters", [{}])[0]
vctest.expect(top.get("size") == 6 and top.get("kept") == "a0", "largest cluster %s" % top)

# The audit counts the same duplicates in the input shards: a1 is a byte
# copy of a0; a0..a4 form one near-duplicate cluster; nothing else does.
audit = os.path.join(args.tmp, "audit")
r = vctest.run(args, ["stats", data, "--out", audit, "--phash", "--no-language"])
dup = json.load(open(os.path.join(audit, "stats.json")))["groups"]["all"]["counters"]["duplicates"]
for name, want in (("image_sha256", 1), ("image_phash_clusters", 1), ("image_phash_samples", 5),
                   ("image_phash_duplicates", 4), ("image_phash_largest", 5)):
    vctest.expect(dup.get(name, {}).get("count") == want, "stats --phash %s = %d (%s)" %
                  (name, want, dup.get(name)))
vctest.expect("exact image duplicates (SHA-256): 1" in r.stdout, r.stdout)

# kill -9 while the reduce parts commit (1024 parts make that phase long
# enough to hit), then the same command again.
spec["stages"][1]["partitions"] = 1024
spec_path = pe.write_spec(os.path.join(data, "spec-kill.json"), spec)
ref, out = os.path.join(args.tmp, "kill-ref"), os.path.join(args.tmp, "killed")
pe.run_spec(args, spec_path, ref, threads=2)


def reduce_markers(o):
    w = os.path.join(o, "_work")
    found = {}
    for n in os.listdir(w) if os.path.isdir(w) else []:
        if "-dedup-reduce-" in n and n.endswith(".json"):
            try:
                found[n] = os.stat(os.path.join(w, n)).st_mtime_ns
            except FileNotFoundError:  # renamed away while we looked
                pass
    return found


vctest.expect(pe.kill_when(args, spec_path, out, lambda o: len(reduce_markers(o)) >= 20,
                           valid=lambda o: len(reduce_markers(o)) < 1024),
              "run killed with SIGKILL during the reduce parts")
before = reduce_markers(out)
vctest.expect(0 < len(before) < 1024, "%d of 1024 reduce parts committed before the kill" %
              len(before))
pe.run_spec(args, spec_path, out, threads=2)
after = reduce_markers(out)
vctest.expect(len(after) == 1024 and all(after[n] == t for n, t in before.items()),
              "rerun keeps the parts committed before the kill")
pe.compare_trees(ref, out, "dedup killed during reduce, rerun vs uninterrupted")
print("PASS")
