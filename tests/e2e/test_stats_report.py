"""`vlmcurate stats` audits shards it did not write (made here with Python's
tarfile), and its HTML report renders in headless Chromium with every
chart laid out.  Expected counts, percentiles and per-shard rows are
computed here from what was written."""
import io
import json
import math
import os
import shutil
import subprocess
import sys
import tarfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tools"))
import vctest  # noqa: E402

args = vctest.parse_args()
shards = os.path.join(args.tmp, "shards")
os.makedirs(shards)

# (key, fields); sizes and captions chosen so the expectations are easy to
# state: 5 PNGs, 1 header-only JPEG, 1 garbage "png".
samples = [
    ("s0", {"png": vctest.png_bytes(100, 50), "txt": b"a red bus"}),
    ("s1", {"png": vctest.png_bytes(300, 300, 3), "txt": b"two dogs on the grass"}),
    ("s2", {"png": vctest.png_bytes(64, 200, 5), "txt": b"tall"}),
    ("s3", {"jpg": vctest.jpeg_header_only(640, 480), "txt": b"header only jpeg here"}),
    ("s4", {"png": b"not an image at all", "txt": b"broken"}),
    ("s5", {"png": vctest.png_bytes(256, 128, 9), "txt": b"x y"}),
    ("s6", {"png": vctest.png_bytes(20, 20, 1), "txt": "caf\u00e9 cr\u00e8me".encode()}),
]
for shard_no, chunk in enumerate((samples[:4], samples[4:])):
    with tarfile.open(os.path.join(shards, "ext-%06d.tar" % shard_no), "w",
                      format=tarfile.GNU_FORMAT) as tf:
        for key, fields in chunk:
            for ext, data in fields.items():
                info = tarfile.TarInfo("%s.%s" % (key, ext))
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))

out = os.path.join(args.tmp, "audit")
r = vctest.run(args, ["stats", shards, "--out", out, "--threads", "2"])
st = json.load(open(os.path.join(out, "stats.json")))
allg = st["groups"]["all"]
funnel = {k: v["count"] for k, v in allg["counters"]["funnel"].items()}
vctest.expect(st["schema"] == "vlmcurate-stats-v1", "schema named")
vctest.expect(funnel.get("input") == 7, "7 samples seen: %s" % funnel)
vctest.expect(funnel.get("readable") == 6 and funnel.get("error") == 1 and
              "written" not in funnel,
              "header-only audit: 6 readable (not 'written': we did not write them), 1 error: %s"
              % funnel)
fmts = {k: v["count"] for k, v in allg["counters"]["format"].items()}
vctest.expect(fmts == {"png": 5, "jpg": 1}, "formats from headers: %s" % fmts)
errs = allg["counters"]["error"]
vctest.expect(sum(v["count"] for v in errs.values()) == 1 and
              any("s4" in v["examples"] for v in errs.values()),
              "the garbage image is the error, with its key as example: %s" % errs)
h = allg["histograms"]
widths = [100, 300, 64, 640, 256, 20]
vctest.expect(h["width"]["n"] == 6 and h["width"]["sum"] == sum(widths),
              "width histogram sums the header widths")
vctest.expect(h["pixels"]["max"] == 640 * 480, "largest image is the 640x480 JPEG")
words = [3, 5, 1, 4, 1, 2, 2]
vctest.expect(h["text_words"]["n"] == 7 and h["text_words"]["sum"] == sum(words),
              "caption words: %s" % h["text_words"]["sum"])
vctest.expect(h["text_chars"]["max"] == len("two dogs on the grass"),
              "characters are counted as UTF-8 code points")
langs = allg["counters"].get("language", {})
vctest.expect({k: v["count"] for k, v in langs.items()} == {"und": 7},
              "captions under 25 characters are 'und', not a guess: %s" %
              {k: v["count"] for k, v in langs.items()})
vctest.expect("7 'und'" in r.stdout and "under 25 characters" in r.stdout,
              "stdout says why texts are 'und': " + r.stdout)
vctest.expect(os.path.exists(os.path.join(out, "stats", "ext-000000.tar.json")),
              "per-shard stats written")


def bin_edges(hj):
    """[lo, hi) of each of counts' entries, as the README defines the bins;
    the open-ended ends run to the observed min and max."""
    lo, hi, n = hj["lo"], hj["hi"], hj["bins"]
    if hj["scale"] == "log2":
        e = [2 ** (math.log2(lo) + b / n * (math.log2(hi) - math.log2(lo))) for b in range(n + 1)]
    else:
        e = [lo + b / n * (hi - lo) for b in range(n + 1)]
    return [(hj["min"], e[0])] + [(e[b], e[b + 1]) for b in range(n)] + [(e[n], hj["max"])]


def check_percentiles(hj, values, what):
    """Each percentile lies in the bin of the nearest-rank value computed
    here (exact to a bin's width), p1 and p99 of few values are the
    extremes, and they are ordered."""
    v = sorted(values)
    pct = hj["percentiles"]
    vctest.expect(sorted(pct) == sorted("p%d" % q for q in (1, 5, 25, 50, 75, 95, 99)),
                  "%s: p1 p5 p25 p50 p75 p95 p99 given: %s" % (what, sorted(pct)))
    edges = bin_edges(hj)
    for q in (1, 5, 25, 50, 75, 95, 99):
        true = v[max(1, math.ceil(q / 100 * len(v))) - 1]
        b = next(i for i, c in enumerate(hj["counts"]) if c and
                 sum(hj["counts"][:i + 1]) >= math.ceil(q / 100 * len(v)))
        lo, hi = edges[b]
        vctest.expect(lo <= true <= hi and lo <= pct["p%d" % q] <= hi,
                      "%s p%d: %s in the bin [%.4g, %.4g) holding the true value %s" %
                      (what, q, pct["p%d" % q], lo, hi, true))
    vctest.expect(pct["p1"] == v[0] and pct["p99"] == v[-1],
                  "%s: p1 and p99 of %d values are min and max" % (what, len(v)))
    ps = [pct["p%d" % q] for q in (1, 5, 25, 50, 75, 95, 99)]
    vctest.expect(ps == sorted(ps), "%s: percentiles ordered: %s" % (what, ps))


check_percentiles(h["width"], widths, "width")
check_percentiles(h["text_chars"], [9, 21, 4, 21, 6, 3, 10], "caption characters")

# The per-shard table: rows computed from what went into each tar.
rows = {g[len("shard:"):]: {k: v["count"] for k, v in grp["counters"]["shard"].items()}
        for g, grp in st["groups"].items() if g.startswith("shard:")}
p1 = os.path.join(shards, "ext-000001.tar")
vctest.expect(sorted(rows) == [os.path.join(shards, "ext-000000.tar"), p1],
              "one row per shard: %s" % sorted(rows))
vctest.expect(rows[p1] == {"samples": 3, "unreadable": 1, "images": 2,
                           "bytes": os.path.getsize(p1), "texts": 3,
                           "text_chars": len("broken") + len("x y") + len("caf\u00e9 cr\u00e8me")},
              "ext-000001: 3 samples, 1 unreadable, 2 images, its size, 3 texts of 19 "
              "characters: %s" % rows[p1])
report = open(os.path.join(out, "report.html")).read()
vctest.expect('id="shards"' in report and "ext-000001.tar" in report and
              "<td class=\"n\">6.3</td>" in report,
              "the report has the per-shard table (mean text characters 19/3 = 6.3)")
vctest.expect("p50&nbsp;" in report and "p99&nbsp;" in report, "the report gives percentiles")
vctest.expect(">readable<" in report or "readable<b>" in report,
              "the report says 'readable', not 'written'")

# A text of 25 characters or more gets a language only when TextCat is
# sure: a long English sentence is 'en', a 31-character jumble 'und'.
texts = {"l0": b"the quick brown fox jumps over the lazy dog while the children are "
               b"playing in the garden behind the old house",
         "l1": b"qzx vbn kjh wrt plm zzq xxv bbq", "l2": b"x y"}
lang_tar = os.path.join(args.tmp, "lang-000000.tar")
with tarfile.open(lang_tar, "w", format=tarfile.GNU_FORMAT) as tf:
    for key, txt in texts.items():
        info = tarfile.TarInfo(key + ".txt")
        info.size = len(txt)
        tf.addfile(info, io.BytesIO(txt))
outl = os.path.join(args.tmp, "audit-lang")
rl = vctest.run(args, ["stats", lang_tar, "--out", outl])
ll = json.load(open(os.path.join(outl, "stats.json")))["groups"]["all"]["counters"]["language"]
vctest.expect({k: v["count"] for k, v in ll.items()} == {"en": 1, "und": 2},
              "English sentence 'en'; jumble and 'x y' 'und': %s" % ll)
vctest.expect("1 texts identified, 2 'und'" in rl.stdout, "stdout: " + rl.stdout)

# Brace patterns as a spec's "urls" takes them, through the same expander.
outb = os.path.join(args.tmp, "audit-brace")
vctest.run(args, ["stats", os.path.join(shards, "ext-{000000..000001}.tar"), "--out", outb])
fb = json.load(open(os.path.join(outb, "stats.json")))["groups"]["all"]["counters"]["funnel"]
vctest.expect(fb["input"]["count"] == 7, "range pattern: both shards read: %s" % fb)
vctest.run(args, ["stats", os.path.join(shards, "ext-{000001,000000}.tar"), "--out", outb])
fb = json.load(open(os.path.join(outb, "stats.json")))["groups"]["all"]["counters"]["funnel"]
vctest.expect(fb["input"]["count"] == 7, "list pattern: both shards read: %s" % fb)
r = vctest.run(args, ["stats", os.path.join(shards, "ext-{000000..000002}.tar"), "--out", outb],
               check=False)
vctest.expect(r.returncode == 2 and "ext-000002.tar" in r.stderr,
              "a pattern naming a missing shard: exit 2 naming it: " + r.stderr.strip())
r = vctest.run(args, ["stats", os.path.join(shards, "ext-*.tar"), "--out", outb], check=False)
vctest.expect(r.returncode == 2 and "brace pattern" in r.stderr,
              "a quoted wildcard: exit 2 with the hint to use a brace pattern: " + r.stderr.strip())
r = vctest.run(args, ["stats", os.path.join(shards, "ext-000000.tar"), shards, "--out", outb],
               check=False)
vctest.expect(r.returncode == 2 and "two shards of one name" in r.stderr,
              "a shard named twice is refused, not counted twice: " + r.stderr.strip())

# Damaged shards count as a run's ledger counts them: a shard cut inside its
# third sample gives 2 readable samples, that sample in error and one input
# in error for the unreadable rest; a shard that is no archive is one input
# in error.  The error reasons add up to the funnel's errors, each shard's
# row says what it lost, the report is written and the exit status is 1.
damaged = os.path.join(args.tmp, "damaged")
os.makedirs(damaged)
whole = io.BytesIO()
with tarfile.open(fileobj=whole, mode="w", format=tarfile.GNU_FORMAT) as tf:
    for i in range(4):
        for ext, data in (("png", vctest.png_bytes(40, 30, i)), ("txt", b"words %d" % i)):
            info = tarfile.TarInfo("d%d.%s" % (i, ext))
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
with tarfile.open(fileobj=io.BytesIO(whole.getvalue())) as tf:
    third = [m for m in tf.getmembers() if m.name == "d2.png"][0]
with open(os.path.join(damaged, "cut-000000.tar"), "wb") as f:
    f.write(whole.getvalue()[:third.offset_data + 10])
with open(os.path.join(damaged, "junk-000001.tar"), "wb") as f:
    f.write(b"this is not a tar archive at all" * 40)
outd = os.path.join(args.tmp, "audit-damaged")
r = vctest.run(args, ["stats", damaged, "--out", outd, "--no-language"], check=False)
vctest.expect(r.returncode == 1 and "cut-000000.tar" in r.stderr and "junk-000001.tar" in r.stderr,
              "damaged shards: exit 1 naming both: %d %s" % (r.returncode, r.stderr.strip()))
dg = json.load(open(os.path.join(outd, "stats.json")))["groups"]
df = {k: v["count"] for k, v in dg["all"]["counters"]["funnel"].items()}
de = sum(v["count"] for v in dg["all"]["counters"]["error"].values())
vctest.expect(df == {"input": 5, "readable": 2, "error": 3} and de == 3,
              "damaged shards: 5 inputs = 2 readable + 3 errors, 3 error reasons: %s, %d" % (df, de))
drows = {g.split("/")[-1]: {k: v["count"] for k, v in dg[g]["counters"]["shard"].items()}
         for g in dg if g.startswith("shard:")}
vctest.expect(drows["cut-000000.tar"].get("samples") == 4 and
              drows["cut-000000.tar"].get("unreadable") == 2 and
              drows["junk-000001.tar"].get("samples") == 1 and
              drows["junk-000001.tar"].get("unreadable") == 1,
              "damaged shards: per-shard rows: %s" % drows)
vctest.expect("5 samples (3 unreadable)" in r.stdout, "damaged shards: stdout: " + r.stdout)

# On a run folder the score charts hold every judged sample: the kept ones
# (scores in the shards' json) and the rejected ones (scores in the ledger).
run_widths = [100, 200, 300, 400, 500, 50, 60]
with tarfile.open(os.path.join(args.tmp, "run-in.tar"), "w", format=tarfile.GNU_FORMAT) as tf:
    for i, w in enumerate(run_widths):
        for ext, data in (("png", vctest.png_bytes(w, 20, i)), ("txt", b"caption")):
            info = tarfile.TarInfo("r%d.%s" % (i, ext))
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
spec_path = os.path.join(args.tmp, "run-spec.json")
json.dump({"sources": [{"name": "r", "type": "webdataset", "urls": "run-in.tar"}],
           "stages": [{"stage": "filter", "defaults": False,
                       "filters": [{"name": "img_width", "min": 80}]}],
           "output": {"dir": "run-out"}}, open(spec_path, "w"))
vctest.run(args, ["run", spec_path, "--quiet"])
run_out = os.path.join(args.tmp, "run-out")
vctest.run(args, ["stats", run_out, "--no-language"])
rs = json.load(open(os.path.join(run_out, "stats.json")))["groups"]["all"]
rf = {k: v["count"] for k, v in rs["counters"]["funnel"].items()}
vctest.expect(rf.get("written") == 5 and rf.get("rejected") == 2 and "readable" not in rf,
              "run folder: the run's funnel, 5 written, 2 rejected: %s" % rf)
sw = rs["histograms"].get("score.img_width", {})
vctest.expect(sw.get("n") == 7 and sw.get("sum") == sum(run_widths) and sw.get("min") == 50 and
              sw.get("max") == 500,
              "run folder: img_width scores of all 7 samples (5 kept, 2 rejected): %s" %
              {k: sw.get(k) for k in ("n", "sum", "min", "max")})

# Full decode turns the header-only JPEG into an error too.
out2 = os.path.join(args.tmp, "audit-decode")
vctest.run(args, ["stats", shards, "--out", out2, "--decode"])
st2 = json.load(open(os.path.join(out2, "stats.json")))
f2 = {k: v["count"] for k, v in st2["groups"]["all"]["counters"]["funnel"].items()}
vctest.expect(f2.get("error") == 2 and f2.get("readable") == 5, "--decode: 2 errors: %s" % f2)

# Thread count does not change the merged statistics.
out3 = os.path.join(args.tmp, "audit-1t")
vctest.run(args, ["stats", shards, "--out", out3, "--threads", "1"])
vctest.expect(open(os.path.join(out3, "stats.json"), "rb").read() ==
              open(os.path.join(out, "stats.json"), "rb").read(),
              "stats.json identical for 1 and 2 threads")

# The report renders in a real browser: every chart has a laid-out box.
browser = shutil.which("chromium")
if browser is None:
    raise SystemExit("FAILED: chromium is not installed (scripts/install-deps.sh installs it)")
profile = os.path.join(args.tmp, "chromium-profile")
html = os.path.abspath(os.path.join(out, "report.html"))
cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
       "--no-first-run", "--disable-background-networking", "--disable-component-update",
       "--disable-sync", "--user-data-dir=" + profile, "--window-size=1200,3000",
       "--enable-logging=stderr", "--v=0", "--dump-dom", "file://" + html]
p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
dom = p.stdout
vctest.expect(p.returncode == 0 and "<body" in dom, "chromium loaded the report")
import re  # noqa: E402
m = re.search(r'data-charts="(\d+)"', dom)
n = re.search(r'data-rendered="(\d+)"', dom)
vctest.expect(m is not None and int(m.group(1)) >= 8,
              "the page script ran and found the charts (%s)" % (m and m.group(1)))
vctest.expect(n is not None and n.group(1) == m.group(1),
              "every chart has a non-empty layout box (%s of %s)" %
              (n and n.group(1), m and m.group(1)))
console_errors = [l for l in p.stderr.splitlines() if "CONSOLE" in l and "rror" in l]
vctest.expect(not console_errors, "no console errors: %s" % console_errors[:3])
vctest.expect('id="funnel"' in dom and 'id="reasons"' in dom, "funnel and reasons sections")
shot = os.path.join(args.tmp, "report.png")
subprocess.run(cmd[:-2] + ["--screenshot=" + shot, "file://" + html], capture_output=True,
               timeout=120)
vctest.expect(os.path.exists(shot) and os.path.getsize(shot) > 20000,
              "a screenshot of the report was taken")
print("all checks passed")
