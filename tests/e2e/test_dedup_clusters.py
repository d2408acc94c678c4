"""Dedup's clusters in bounded memory: the plan step joins duplicate pairs
of every method into clusters without a table per duplicate.

Samples (tars written here by hand: a tiny PNG and a caption each) are
laid out in blocks: long chains whose neighbours share alternately the
image (image_sha256) and the caption (text_exact), so a cluster is only
found across both methods and through hundreds of links; caption cliques
of up to 200 samples with distinct images; and a few distinct samples.
About 95 % of the samples are duplicates.  The answers are computed here
by a union-find of Python's own over the groups of equal images and equal
captions: each cluster's keeper (the most pixels, then the smallest key),
every duplicate's kept sample and method (image_sha256 when its image is
shared, else text_exact), the counts and the largest clusters of
run.json (biggest first, ties by their first sample), and the pairs (a
group of g equal signatures makes g - 1).

With "memory_mb": 4, the plan step rerun alone (`vlmcurate task OUT
r0-plan 0`, same drop bytes) peaks within 10 MB at 20,000 and at 120,000
samples (~100,000 more duplicates; the union-find the plan used before
grew by ~168 bytes a duplicate, ~16 MB here).  The small run is
byte-identical at 1 and 2 threads."""
import json
import os
import random
import shutil
import struct
import sys
import zlib

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tools"))
import pipeline_e2e as pe  # noqa: E402
import vctest  # noqa: E402

args = vctest.parse_args()
PER_TAR = 10000


def layout(n):
    """(image id, caption id) of each sample."""
    rnd = random.Random(n)
    out, img, cap, block = [], 0, 0, 0
    while len(out) < n:
        kind = block % 3
        block += 1
        size = min(n - len(out), (rnd.randrange(300, 1500), rnd.randrange(20, 200),
                                  rnd.randrange(1, 4))[kind])
        for j in range(size):
            if kind == 0:   # chain: 2k ~ 2k+1 by image, 2k+1 ~ 2k+2 by caption
                out.append((img + j // 2, cap + (j + 1) // 2))
            elif kind == 1:  # caption clique
                out.append((img + j, cap))
            else:
                out.append((img + j, cap + j))
        img, cap = img + size, cap + size
    return out


def key(i):
    """Unique, in no relation to the sample order; as long as real keys."""
    return "sample_with_a_rather_long_webdataset_key_%08x" % (i * 2654435761 % 2**32)


def dims(image):
    return 1 + image * 7 % 3, 1 + image * 5 % 2


def png(image):
    """A tiny RGB PNG whose pixels spell the image id."""
    w, h = dims(image)
    px = (image.to_bytes(6, "little") * 4)[:3 * w * h]
    rows = b"".join(b"\0" + px[3 * w * y:3 * w * (y + 1)] for y in range(h))

    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data +
                struct.pack(">I", zlib.crc32(kind + data)))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) +
            chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def make(folder, lay, memory_mb=4):
    def members(i):
        image, caption = lay[i]
        return [(key(i) + ".png", png(image)), (key(i) + ".txt", b"caption %d here" % caption)]
    urls = pe.write_tiny_tars(folder, len(lay), PER_TAR, members)
    spec = {"sources": [{"name": "tiny", "type": "webdataset", "urls": urls}],
            "stages": [{"stage": "ingest"},
                       {"stage": "dedup", "image": {"phash": False}, "text": {"minhash": False},
                        "memory_mb": memory_mb, "partitions": 4},
                       {"stage": "write"}],
            "output": {"dir": "out", "prefix": "m", "samples_per_shard": 5000}}
    return pe.write_spec(os.path.join(folder, "spec.json"), spec)


def expected(lay):
    """Duplicates {key: (kept key, method)}, the report's counts and its
    largest clusters [(size, kept key)]."""
    n = len(lay)
    parent = list(range(n))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i
    groups, pairs = {}, 0
    for i, (image, caption) in enumerate(lay):
        groups.setdefault(("i", image), []).append(i)
        groups.setdefault(("c", caption), []).append(i)
    shared_image = set()
    for (kind, _), members in groups.items():
        pairs += len(members) - 1
        if kind == "i" and len(members) > 1:
            shared_image.update(members)
        for m in members[1:]:
            a, b = find(members[0]), find(m)
            parent[max(a, b)] = min(a, b)
    clusters = {}
    for i in range(n):
        clusters.setdefault(find(i), []).append(i)
    dup, by_method, top = {}, {}, []
    for first, members in clusters.items():
        if len(members) < 2:
            continue
        w = {i: dims(lay[i][0])[0] * dims(lay[i][0])[1] for i in members}
        kept = min(members, key=lambda i: (-w[i], key(i)))
        top.append((-len(members), first, len(members), key(kept)))
        for i in members:
            if i != kept:
                method = "image_sha256" if i in shared_image else "text_exact"
                dup[key(i)] = (key(kept), method)
                by_method[method] = by_method.get(method, 0) + 1
    top.sort()
    report = {"duplicates": len(dup), "clusters": len(top), "pairs": pairs,
              "by_method": by_method}
    return dup, report, [(t[2], t[3]) for t in top[:10]]


def check(out, lay, what):
    dup, report, top = expected(lay)
    got = {x["key"]: (x["dup_of"]["key"], x["method"]) for x in pe.ledger(out)
           if x["state"] == "duplicate"}
    vctest.expect(got == dup, "%s: %d duplicates in the ledger with their kept sample and "
                  "method, %d expected (%d differ)" %
                  (what, len(got), len(dup), sum(1 for k in dup if got.get(k) != dup[k])))
    rj = pe.run_json(out)["dedup"]
    vctest.expect({k: rj[k] for k in report} == report,
                  "%s: run.json %s, expected %s" % (what, {k: rj[k] for k in report}, report))
    got_top = [(c["size"], c["kept"]) for c in rj["largest_clusters"]]
    vctest.expect(got_top == top, "%s: largest clusters %s, expected %s" % (what, got_top, top))
    written = sum(1 for p in pe.shards(out, "m") for _ in pe.read_samples(p))
    vctest.expect(written == len(lay) - len(dup), "%s: %d written" % (what, written))
    return len(dup)


peaks = {}
for n in (25000, 150000):
    folder = os.path.join(args.tmp, "n%d" % n)
    shutil.rmtree(folder, ignore_errors=True)
    lay = layout(n)
    spec = make(folder, lay)
    out = os.path.join(folder, "out")
    pe.run_spec(args, spec, out, threads=2)
    n_dup = check(out, lay, "n=%d" % n)
    vctest.expect(n_dup > 0.9 * n, "n=%d: %d duplicates, most of the samples" % (n, n_dup))
    peaks[n] = pe.rerun_alone(args, out, "r0-plan", "_work/r0-plan.json",
                              ["_work/r0-drops.jsonl", "_work/r0-order.bin"])
    if n == 25000:
        one = os.path.join(folder, "out1")
        pe.run_spec(args, spec, one, threads=1)
        pe.compare_trees(out, one, "1 vs 2 threads")
small, big = peaks[25000], peaks[150000]
print("peak RSS KB of the dedup plan step: %d -> %d" % (small, big))
vctest.expect(big - small < 10 * 1024,
              "dedup plan step: %d KB at 150k vs %d KB at 25k samples" % (big, small))
print("PASS")
