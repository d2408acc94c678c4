"""`vlmcurate stats` audits shards it did not write (made here with Python's
tarfile), and its HTML report renders in headless Chromium with every
chart laid out.  Expected counts are computed here from what was written."""
import io
import json
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
vctest.expect(funnel.get("written") == 6 and funnel.get("error") == 1,
              "header-only audit: 6 readable, 1 error: %s" % funnel)
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
vctest.expect(sum(v["count"] for v in langs.values()) == 7,
              "every caption got a language guess (or 'unknown'): %s" %
              {k: v["count"] for k, v in langs.items()})
vctest.expect(os.path.exists(os.path.join(out, "stats", "ext-000000.tar.json")),
              "per-shard stats written")

# Full decode turns the header-only JPEG into an error too.
out2 = os.path.join(args.tmp, "audit-decode")
vctest.run(args, ["stats", shards, "--out", out2, "--decode"])
st2 = json.load(open(os.path.join(out2, "stats.json")))
f2 = {k: v["count"] for k, v in st2["groups"]["all"]["counters"]["funnel"].items()}
vctest.expect(f2.get("error") == 2 and f2.get("written") == 5, "--decode: 2 errors: %s" % f2)

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
