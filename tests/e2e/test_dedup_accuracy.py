"""Accuracy of the dedup stage on real pictures and real sentences that
Debian ships (installed by scripts/install-deps.sh): the GNOME wallpapers
(gnome-backgrounds: 7 designs, each in a day and a night variant, which are
distinct-but-similar pairs), Debian's theme artwork and login-screen
screenshots (desktop-base), and the sentences of the GPL-3 text
(base-files).  Transforms are made here with PIL: JPEG re-encode at q45,
resize to 50 %, a 5 % border crop, PNG and WebP conversion, a small text
overlay.

Image pHash: one run per radius (4, 10, 16); pairwise precision/recall of
the clusters the run made against the truth "same original".  Pictures of
one desktop-base theme (same artwork in other layouts) are neither a
positive nor a negative and are left out of the counts; the day/night
pairs count as negatives.  Captions: sentences with planted near
duplicates (a suffix, one word replaced, punctuation and case changed).
Exact methods (byte copies) must have no false positive at all.
Prints the figures the README quotes; asserts floors below them."""
import glob
import io
import json
import os
import random
import re
import sys
import tarfile

from PIL import Image, ImageDraw

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tools"))
import pipeline_e2e as pe  # noqa: E402
import vctest  # noqa: E402

args = vctest.parse_args()
data = os.path.join(args.tmp, "data")
os.makedirs(data, exist_ok=True)

gnome = sorted(f for f in glob.glob("/usr/share/backgrounds/gnome/*.webp")
               if not os.path.basename(f).startswith("vnc"))
base = []
for theme in sorted(glob.glob("/usr/share/desktop-base/*-theme")):
    if os.path.islink(theme):
        continue
    for rel in ("grub/grub-16x9.png", "login/sddm-preview.jpg", "plymouth/background.png"):
        base += glob.glob(os.path.join(theme, rel))
    base += glob.glob(os.path.join(theme, "plymouth/plymouth_background_*.png"))
if len(gnome) < 10 or len(base) < 8:
    print("SKIP: gnome-backgrounds and desktop-base are not installed (scripts/install-deps.sh)")
    sys.exit(0)


def family(path):
    """Pictures of one family may legitimately look alike (same artwork):
    desktop-base theme name (joy and joy-inksplat are one artwork)."""
    m = re.search(r"desktop-base/([a-z]+)", path)
    return ("theme", m.group(1)) if m else ("gnome", path)


originals = []  # (name, PIL image, family)
seen = set()
for path in gnome + base:
    raw = open(path, "rb").read()
    if raw in seen:  # spacefun ships one picture under two names
        continue
    seen.add(raw)
    im = Image.open(io.BytesIO(raw)).convert("RGB")
    im.thumbnail((640, 640), Image.LANCZOS)  # keeps PIL's work in seconds
    name = re.sub(r"[^a-z0-9]+", "_", path.split("/share/")[1].lower())
    originals.append((name, im, family(path)))


def enc(im, fmt="JPEG", **kw):
    b = io.BytesIO()
    im.save(b, fmt, **kw)
    return b.getvalue()


def overlay(im):
    im = im.copy()
    d = ImageDraw.Draw(im)
    w, h = im.size
    d.rectangle([w * 0.03, h * 0.9, w * 0.45, h * 0.97], fill=(0, 0, 0))
    d.text((w * 0.04, h * 0.91), "(c) example.org 2024", fill=(255, 255, 255))
    return im


TRANSFORMS = {
    "q45": lambda im: enc(im, quality=45),
    "half": lambda im: enc(im.resize((im.width // 2, im.height // 2), Image.LANCZOS), quality=90),
    "crop5": lambda im: enc(im.crop((im.width * 5 // 200, im.height * 5 // 200,
                                     im.width - im.width * 5 // 200,
                                     im.height - im.height * 5 // 200)), quality=90),
    "png": lambda im: enc(im, "PNG"),
    "webp": lambda im: enc(im, "WEBP", quality=80),
    "text": lambda im: enc(overlay(im), quality=90),
}

samples = []  # (key, bytes, caption, truth id, family)
for i, (name, im, fam) in enumerate(originals):
    orig = enc(im, quality=92)
    samples.append(("o%02d_orig" % i, orig, "", i, fam))
    samples.append(("o%02d_copy" % i, orig, "", i, fam))  # byte copy: image_sha256
    for t, fn in TRANSFORMS.items():
        samples.append(("o%02d_%s" % (i, t), fn(im), "", i, fam))

# Captions: GPL-3 sentences of 12..60 words; every fourth gets planted
# near duplicates.
text = open("/usr/share/common-licenses/GPL-3").read()
sentences = []
for s in re.split(r"(?<=[.;:])\s+", re.sub(r"\s+", " ", text)):
    n = len(s.split())
    if 12 <= n <= 60 and s not in sentences:
        sentences.append(s)
rnd = random.Random(3)
sentences = sentences[:160]
captions = []  # (key, caption, truth id, kind)
for j, s in enumerate(sentences):
    captions.append(("s%03d" % j, s, j, "orig"))
    if j % 4:
        continue
    words = s.split()
    k = rnd.randrange(len(words) // 3, 2 * len(words) // 3)
    captions.append(("s%03d_suffix" % j, s + " Photo courtesy of the archive.", j, "suffix"))
    captions.append(("s%03d_word" % j, " ".join(words[:k] + ["banana"] + words[k + 1:]), j,
                     "word"))
    captions.append(("s%03d_punct" % j, re.sub(r"[,.;:]", "", s).upper(), j, "punct"))
    captions.append(("s%03d_space" % j, "  " + s.replace(" ", "\t ") + " ", j, "space"))


def write_shards(prefix, items, n_shards=4):
    paths = []
    for n in range(n_shards):
        path = os.path.join(data, "%s-%06d.tar" % (prefix, n))
        with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as t:
            for key, members in items[n::n_shards]:
                for ext, payload in members:
                    ti = tarfile.TarInfo("%s.%s" % (key, ext))
                    ti.size = len(payload)
                    t.addfile(ti, io.BytesIO(payload))
        paths.append(path)
    return "%s-{000000..%06d}.tar" % (prefix, n_shards - 1)


def ext_of(b):
    return "png" if b[:4] == b"\x89PNG" else "webp" if b[8:12] == b"WEBP" else "jpg"


img_urls = write_shards("img", [(k, [(ext_of(b), b)]) for k, b, _, _, _ in samples])
cap_urls = write_shards("cap", [(k, [("txt", c.encode())]) for k, c, _, _ in captions])


def run(urls, dedup, name):
    spec = {"sources": [{"name": "s", "type": "webdataset", "urls": urls}],
            "stages": [{"stage": "ingest"}, dict({"stage": "dedup"}, **dedup), {"stage": "write"}],
            "output": {"dir": "out", "prefix": "o", "samples_per_shard": 1000}}
    out = os.path.join(args.tmp, name)
    pe.run_spec(args, pe.write_spec(os.path.join(data, name + ".json"), spec), out, threads=2)
    clusters = {}
    for e in pe.ledger(out):
        if e["state"] == "written":
            clusters.setdefault(e["key"], set()).add(e["key"])
        elif e["state"] == "duplicate":
            kept = e["dup_of"]["key"]
            clusters.setdefault(kept, set()).add(e["key"])
    return clusters, out


def pair_scores(clusters, truth, ambiguous):
    """Pairwise precision/recall of predicted clusters vs truth ids."""
    keys = sorted(truth)
    pred = {}
    for kept, members in clusters.items():
        for k in members:
            pred[k] = kept
    tp = fp = fn = 0
    for i, a in enumerate(keys):
        for b in keys[i + 1:]:
            same_pred = pred[a] == pred[b]
            same_true = truth[a] == truth[b]
            if not same_true and ambiguous(a, b):
                continue
            tp += same_pred and same_true
            fp += same_pred and not same_true
            fn += same_true and not same_pred
    return tp / max(tp + fp, 1), tp / max(tp + fn, 1), tp, fp, fn


truth = {k: t for k, _, _, t, _ in samples}
fam = {k: f for k, _, _, _, f in samples}


def same_theme(a, b):
    return fam[a][0] == "theme" and fam[a] == fam[b]


results = {}
for radius in (4, 10, 16):
    clusters, _ = run(img_urls, {"text": False, "image": {"phash": {"radius": radius}}},
                      "img-r%d" % radius)
    results[radius] = pair_scores(clusters, truth, same_theme)
    p, r, tp, fp, fn = results[radius]
    print("pHash radius %2d: precision %.3f recall %.3f (pairs: %d true, %d false, %d missed)"
          % (radius, p, r, tp, fp, fn))
    pred = {k: kept for kept, m in clusters.items() for k in m}
    print("  with their original: " + ", ".join(
        "%s %d/%d" % (t, sum(pred["o%02d_%s" % (i, t)] == pred["o%02d_orig" % i]
                             for i in range(len(originals))), len(originals))
        for t in TRANSFORMS))
# Exact only: every pair it makes is a byte copy.
clusters, out = run(img_urls, {"text": False, "image": {"phash": False}}, "img-exact")
by_key = {k: b for k, b, _, _, _ in samples}
exact_fp = sum(1 for kept, m in clusters.items() for k in m if by_key[k] != by_key[kept])
exact_found = sum(len(m) - 1 for m in clusters.values())
print("image_sha256: %d duplicates, %d not byte-identical to their kept sample"
      % (exact_found, exact_fp))
vctest.expect(exact_fp == 0 and exact_found == len(originals), "exact image dedup")

ctruth = {k: t for k, _, t, _ in captions}
kind = {k: c for k, _, _, c in captions}
for th in (0.8, 0.5):
    clusters, _ = run(cap_urls, {"image": False,
                                 "text": {"exact": False, "minhash": {"threshold": th}}},
                      "cap-minhash-%g" % th)
    p, r, tp, fp, fn = pair_scores(clusters, ctruth, lambda a, b: False)
    print("caption MinHash (5-grams, 14x8, threshold %g): precision %.3f recall %.3f "
          "(pairs: %d true, %d false, %d missed)" % (th, p, r, tp, fp, fn))
    pred = {k: kept for kept, m in clusters.items() for k in m}
    for c in ("suffix", "word", "punct", "space"):
        ks = [k for k in ctruth if kind[k] == c]
        hit = sum(1 for k in ks if pred[k] == pred["s%03d" % ctruth[k]])
        print("  %-6s variants found: %d of %d" % (c, hit, len(ks)))
    results["minhash", th] = (p, r)
clusters, _ = run(cap_urls, {"image": False, "text": {"minhash": False}}, "cap-exact")
ex_p, ex_r, ex_tp, ex_fp, _ = pair_scores(clusters, ctruth, lambda a, b: False)
print("caption text_exact: %d pairs, %d false" % (ex_tp, ex_fp))
vctest.expect(ex_fp == 0, "text_exact has no false positive")
space = [k for k in ctruth if kind[k] == "space"]
vctest.expect(all(pred_k == "s%03d" % ctruth[k] for k in space
                  for pred_k in [next(kk for kk, m in clusters.items() if k in m)]),
              "text_exact finds every whitespace variant")

# Floors: the measured figures (README) minus a margin.
vctest.expect(results[4][0] >= 0.95 and results[4][1] >= 0.45, "radius 4: %s" % (results[4],))
vctest.expect(results[10][0] >= 0.85 and results[10][1] >= 0.70, "radius 10: %s" % (results[10],))
vctest.expect(results[16][1] >= results[10][1], "recall grows with the radius")
vctest.expect(results["minhash", 0.8][0] >= 0.95 and results["minhash", 0.8][1] >= 0.18,
              "minhash at 0.8: %s" % (results["minhash", 0.8],))
vctest.expect(results["minhash", 0.5][0] >= 0.95 and results["minhash", 0.5][1] >= 0.4,
              "minhash at 0.5: %s" % (results["minhash", 0.5],))
print("PASS")
